/**
 * Tokenizers: the byte-level tokenizer of the bundled tiny-py model (`tokenizer.json` of `"type": "bytes"`: id =
 * byte + offset, a few special ids below the offset), and Hugging Face `tokenizer.json` files (BPE, WordPiece,
 * Unigram/SentencePiece, with their normalizers, pre-tokenizers, post-processors and decoders) through
 * @huggingface/tokenizers (pure JavaScript, no dependencies), and the SentencePiece-style vocabulary of a GGUF file
 * (./gguf-tokenizer.ts: llama.cpp's "llama" tokenizer model with byte fallback). Token ids (`--tokens`) always work.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { join } from 'node:path';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { expected } from '../validate.js';
import { GgufFile } from './gguf.js';
import { ggufTokenizer } from './gguf-tokenizer.js';

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

/** A Hugging Face `tokenizer.json` (+ `tokenizer_config.json`), through @huggingface/tokenizers. */
export class HfTokenizer implements Tokenizer {
  readonly kind = 'huggingface';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly bytesPerToken = null;
  readonly #t: HfTokenizerImpl;

  /**
   * @param tokenizerJson - the parsed tokenizer.json
   * @param config - the parsed tokenizer_config.json (or {})
   * @param ids - BOS and EOS ids from the model config, when the tokenizer files do not name them
   */
  constructor(tokenizerJson: object, config: object = {}, ids: { bosId?: number | null; eosIds?: readonly number[] } = {}) {
    try {
      this.#t = new HfTokenizerImpl(tokenizerJson, config);
    } catch (e) {
      throw new LlmKernelsError('ERR_MODEL_FORMAT', `HfTokenizer: cannot build the tokenizer: ${(e as Error).message}`, { cause: e });
    }
    const j = tokenizerJson as { model?: { vocab?: unknown }; added_tokens?: { id?: unknown }[] };
    const vocab = j.model?.vocab;
    let n = Array.isArray(vocab) ? vocab.length : vocab && typeof vocab === 'object' ? Object.keys(vocab).length : 0;
    for (const a of j.added_tokens ?? []) if (typeof a.id === 'number') n = Math.max(n, a.id + 1);
    this.vocabSize = n;
    const c = config as { bos_token?: unknown; eos_token?: unknown };
    const idOf = (t: unknown): number | null => {
      const s = typeof t === 'string' ? t : t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string' ? (t as { content: string }).content : null;
      if (s === null) return null;
      const ids = this.#t.encode(s, { add_special_tokens: false }).ids;
      return ids.length === 1 ? ids[0]! : null;
    };
    this.bosId = ids.bosId ?? idOf(c.bos_token);
    const eos = idOf(c.eos_token);
    this.eosIds = ids.eosIds?.length ? ids.eosIds.slice() : eos === null ? [] : [eos];
  }

  encode(text: string, options: { bos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw typeError(expected('encode', 'a string', 'text', text));
    return this.#t.encode(text, { add_special_tokens: options.bos !== false }).ids.map(Number);
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return new TextEncoder().encode(this.decode(ids));
  }

  decode(ids: ArrayLike<number>): string {
    return this.#t.decode(Array.from(ids), { skip_special_tokens: true });
  }
}

/**
 * The tokenizer of a model: a folder's `tokenizer.json` (byte-level or Hugging Face), or a `.gguf` file's vocabulary.
 * @example const tok = loadTokenizer('models/tiny-py'); tok.encode('def ');
 * @throws {LlmKernelsError} ERR_MODEL_FORMAT (missing, unreadable or malformed), ERR_UNSUPPORTED (a tokenizer type
 *   without a reader yet; pass token ids instead)
 */
export function loadTokenizer(dir: string): Tokenizer {
  const fn = 'loadTokenizer';
  if (typeof dir !== 'string') throw typeError(expected(fn, 'a model folder', 'dir', dir));
  if (dir.endsWith('.gguf')) {
    using f = GgufFile.open(dir);
    return ggufTokenizer(f);
  }
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
  if (j.model !== null && typeof j.model === 'object') {
    let config: object = {};
    const cpath = join(dir, 'tokenizer_config.json');
    if (existsSync(cpath)) {
      try {
        if (statSync(cpath).size > 16 * 1024 * 1024) throw new Error('larger than 16 MiB');
        const c = JSON.parse(readFileSync(cpath, 'utf8')) as unknown;
        if (c !== null && typeof c === 'object' && !Array.isArray(c)) config = c;
      } catch (e) {
        throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: cannot read ${cpath}: ${(e as Error).message}`, { cause: e });
      }
    }
    return new HfTokenizer(j, config);
  }
  throw new LlmKernelsError(
    'ERR_UNSUPPORTED',
    `${fn}: ${path} is neither a byte-level tokenizer ("type": "bytes") nor a Hugging Face tokenizer.json (no "model"): pass token ids (--tokens) instead`,
  );
}
