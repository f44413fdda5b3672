/**
 * Tokenizers. This phase has the byte-level tokenizer of the bundled tiny-py model (`tokenizer.json` of
 * `"type": "bytes"`: id = byte + offset, a few special ids below the offset). Hugging Face `tokenizer.json` files
 * (BPE, SentencePiece) and GGUF vocabularies are refused with ERR_UNSUPPORTED until their readers land; token ids
 * (`--tokens`) always work.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { expected } from '../validate.js';

/** What every tokenizer offers. */
export interface Tokenizer {
  /** 'bytes' for the byte-level tokenizer. */
  readonly kind: string;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  /** Text to ids; `bos` (default true) puts the BOS id in front. */
  encode(text: string, options?: { bos?: boolean }): number[];
  /** Ids to bytes (special ids and ids that map to no byte are dropped). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** Ids to text (invalid UTF-8 becomes U+FFFD). */
  decode(ids: ArrayLike<number>): string;
  /** Bytes per token of an encoded text, for bits-per-byte figures (1 for byte-level). */
  readonly bytesPerToken: number | null;
}

/** id = byte + offset; ids below the offset are special, ids from offset + 256 on are unused. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'bytes';
  readonly vocabSize: number;
  readonly offset: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly bytesPerToken = 1;

  constructor(options: { offset: number; vocabSize: number; bosId: number | null; eosIds: readonly number[] }) {
    const fn = 'ByteTokenizer';
    const { offset, vocabSize, bosId, eosIds } = options;
    if (!Number.isInteger(offset) || offset < 0) throw rangeError(expected(fn, 'an integer >= 0', 'offset', offset));
    if (!Number.isInteger(vocabSize) || vocabSize < offset + 256) throw rangeError(expected(fn, `an integer >= offset + 256 (${offset + 256})`, 'vocabSize', vocabSize));
    this.offset = offset;
    this.vocabSize = vocabSize;
    this.bosId = bosId;
    this.eosIds = eosIds.slice();
  }

  encode(text: string, options: { bos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw typeError(expected('encode', 'a string', 'text', text));
    const bytes = new TextEncoder().encode(text);
    const out: number[] = options.bos === false || this.bosId === null ? [] : [this.bosId];
    for (const b of bytes) out.push(b + this.offset);
    return out;
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const out: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const b = ids[i]! - this.offset;
      if (b >= 0 && b < 256) out.push(b);
    }
    return Uint8Array.from(out);
  }

  decode(ids: ArrayLike<number>): string {
    return new TextDecoder('utf-8', { fatal: false }).decode(this.decodeBytes(ids));
  }
}

/**
 * The tokenizer of a model folder (`tokenizer.json`).
 * @throws {LlmKernelsError} ERR_MODEL_FORMAT (missing, unreadable or malformed), ERR_UNSUPPORTED (a tokenizer type
 *   without a reader yet; pass token ids instead)
 */
export function loadTokenizer(dir: string): Tokenizer {
  const fn = 'loadTokenizer';
  const path = join(dir, 'tokenizer.json');
  let json: unknown;
  try {
    if (statSync(path).size > 64 * 1024 * 1024) throw new Error('larger than 64 MiB');
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, 'a JSON object', path, json));
  const j = json as Record<string, unknown>;
  if (j.type === 'bytes') {
    const special = (j.special ?? {}) as Record<string, unknown>;
    const int = (v: unknown, field: string): number => {
      if (!Number.isInteger(v) || (v as number) < 0) throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, 'an integer >= 0', `${path}: ${field}`, v));
      return v as number;
    };
    const offset = int(j.offset, 'offset');
    const vocabSize = int(j.vocab_size, 'vocab_size');
    if (vocabSize < offset + 256) throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, `vocab_size >= offset + 256`, `${path}: vocab_size`, vocabSize));
    const bos = special['<s>'] === undefined ? null : int(special['<s>'], 'special["<s>"]');
    const eos = special['</s>'] === undefined ? [] : [int(special['</s>'], 'special["</s>"]')];
    return new ByteTokenizer({ offset, vocabSize, bosId: bos, eosIds: eos });
  }
  throw new LlmKernelsError(
    'ERR_UNSUPPORTED',
    `${fn}: ${path} is not a byte-level tokenizer ("type": "bytes"); Hugging Face BPE/SentencePiece tokenizers have no reader yet: pass token ids (--tokens) instead`,
  );
}
