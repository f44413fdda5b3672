/**
 * The tokenizer of a GGUF file's own vocabulary: llama.cpp's SentencePiece tokenizer (`tokenizer.ggml.model` =
 * "llama": Llama 1/2, Mistral 7B v0.1, TinyLlama, Gemma and other SentencePiece BPE vocabularies with byte fallback),
 * reimplemented from `src/llama-vocab.cpp` (`llm_tokenizer_spm_session`, `llama_vocab::impl::tokenize`,
 * `token_to_piece`, `detokenize`) so that a prompt gives the ids llama.cpp gives.
 *
 * Encoding, as llama.cpp does it:
 * 1. The text is split around the user-defined tokens (type 4) found in it, longest token text first (with
 *    `parseSpecial`, control and unknown tokens too). Those pieces become their ids as they are.
 * 2. Each remaining piece gets a space in front when `tokenizer.ggml.add_space_prefix` (default true) and the piece
 *    is the first one or follows a token of step 1; every space becomes U+2581 '▁'.
 * 3. The piece is cut into characters (code points): the first symbols. A priority queue holds every adjacent pair
 *    whose concatenation is a vocabulary token, keyed by that token's score; the best pair (highest score, ties: the
 *    leftmost) is merged into one symbol and the pairs it forms with its neighbours are queued, until no pair is left
 *    (queued pairs that a merge made stale are skipped when they come up).
 * 4. Each final symbol is a token (its id), or a single character outside the vocabulary: its UTF-8 bytes as byte
 *    tokens `<0xXX>` (or a one-character token of that byte), or the unknown id when a byte has no token.
 *    (llama.cpp also keeps a merge history to re-split a symbol that is no token, but every merged symbol is a
 *    token, so that path never runs; nor does it here.)
 * 5. BOS in front when `tokenizer.ggml.add_bos_token` (default true), EOS at the end when
 *    `tokenizer.ggml.add_eos_token` (default false); neither with `{ bos: false }`.
 *
 * Decoding: a normal token is its text with '▁' turned into spaces, a byte token its byte, a user-defined token its
 * text; control, unknown, unused and undefined tokens give nothing. With add_space_prefix, one leading space of the
 * first token that gives any text is dropped, so `decode(encode(text)) === text` (see {@link GgufSpmTokenizer.decode}
 * for where this differs from llama.cpp).
 *
 * Other vocabularies (gpt2 / BPE, bert / WordPiece, t5 / Unigram, ...) are ERR_UNSUPPORTED: pass token ids.
 * Expected ids to check against a real Llama 2 vocabulary (llama.cpp's old tests/test-tokenizer-0-llama.cpp, text
 * encoded without BOS): "Hello world" -> 15043 3186, " Hello world" -> 29871 15043 3186, " this is 🦙.cpp" ->
 * 29871 445 338 29871 243 162 169 156 29889 8223 (the llama has no token: '▁' alone, then its four byte tokens).
 */
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { expected } from '../validate.js';
import { GgufFile, type GgufHeader, type GgufValue } from './gguf.js';
import type { Tokenizer } from './tokenizer.js';

/** `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`). */
export const GGUF_TOKEN_TYPES = Object.freeze({ undefined: 0, normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const);

/** What GGUF vocabularies `tokenizer.ggml.model` names, for messages. */
const MODEL_KINDS: Readonly<Record<string, string>> = {
  gpt2: 'a byte-level BPE vocabulary',
  gemma4: 'a BPE vocabulary',
  hybriddna: 'a BPE vocabulary',
  whitespace: 'a BPE vocabulary',
  bert: 'a WordPiece vocabulary',
  t5: 'a Unigram vocabulary',
  rwkv: 'an RWKV vocabulary',
  plamo2: 'a PLaMo-2 vocabulary',
  none: 'no vocabulary',
  no_vocab: 'no vocabulary',
};

const K = {
  model: 'tokenizer.ggml.model',
  tokens: 'tokenizer.ggml.tokens',
  scores: 'tokenizer.ggml.scores',
  types: 'tokenizer.ggml.token_type',
  bos: 'tokenizer.ggml.bos_token_id',
  eos: 'tokenizer.ggml.eos_token_id',
  eot: 'tokenizer.ggml.eot_token_id',
  eom: 'tokenizer.ggml.eom_token_id',
  unk: 'tokenizer.ggml.unknown_token_id',
  addBos: 'tokenizer.ggml.add_bos_token',
  addEos: 'tokenizer.ggml.add_eos_token',
  addSpace: 'tokenizer.ggml.add_space_prefix',
} as const;

const SPACE = '\u2581';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

function formatError(source: string, what: string, key: string, got: unknown, gotIsText = false): LlmKernelsError {
  return new LlmKernelsError('ERR_MODEL_FORMAT', expected(source, what, `metadata ${JSON.stringify(key)}`, got, gotIsText));
}

/** A short description of a metadata value for messages (a typed array by its element type). */
function describeValue(v: GgufValue | undefined): string {
  if (v === undefined) return 'no such key';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'bigint') return `${v}`;
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length} ${v.every((x) => typeof x === 'string') ? 'strings' : 'non-strings'}`;
  return `${v.constructor.name} of length ${v.length}`;
}

/** One step of the SPM merge queue: symbols `left` + `right` (adjacent when queued) form a token of this score. */
interface Bigram {
  left: number;
  right: number;
  score: number;
  /** left + right length in UTF-16 units when queued: a later mismatch means the pair went stale. */
  size: number;
}

/** Whether `a` comes out of the queue before `b`: the higher score, then the leftmost (llama.cpp's comparator). */
function before(a: Bigram, b: Bigram): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

/** A binary max-heap of bigrams in {@link before} order. */
class BigramQueue {
  readonly #h: Bigram[] = [];
  get size(): number {
    return this.#h.length;
  }
  push(b: Bigram): void {
    const h = this.#h;
    let i = h.length;
    h.push(b);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(b, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = b;
  }
  pop(): Bigram {
    const h = this.#h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && before(h[l + 1]!, h[l]!) ? l + 1 : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

/**
 * llama.cpp's SentencePiece tokenizer over a GGUF vocabulary (`tokenizer.ggml.model` = "llama"). Build it with
 * {@link ggufTokenizer} (or `new GgufSpmTokenizer(file.metadata, file.path)`); see the file header for the
 * algorithm. Immutable, so one instance may serve many callers.
 * @example
 * using f = GgufFile.open('tinyllama-q8_0.gguf');
 * const tok = new GgufSpmTokenizer(f.metadata, f.path);
 * tok.encode('Hello world'); // [1, 15043, 3186]
 * tok.decode([1, 15043, 3186]); // 'Hello world'
 */
export class GgufSpmTokenizer implements Tokenizer {
  /** Always 'gguf-spm'. */
  readonly kind = 'gguf-spm';
  /** The number of tokens (`tokenizer.ggml.tokens`). */
  readonly vocabSize: number;
  /** `tokenizer.ggml.bos_token_id` (default 1 as in llama.cpp, null if the vocabulary is smaller). */
  readonly bosId: number | null;
  /** `tokenizer.ggml.eos_token_id` (default 2), then `eot_token_id` and `eom_token_id` when present. */
  readonly eosIds: readonly number[];
  /** `tokenizer.ggml.unknown_token_id` (default 0): a character with neither a token nor byte tokens. */
  readonly unkId: number;
  /** `tokenizer.ggml.add_bos_token` (default true). */
  readonly addBos: boolean;
  /** `tokenizer.ggml.add_eos_token` (default false). */
  readonly addEos: boolean;
  /** `tokenizer.ggml.add_space_prefix` (default true). */
  readonly addSpacePrefix: boolean;
  /** No fixed ratio. */
  readonly bytesPerToken = null;

  readonly #tokens: readonly string[];
  readonly #scores: Float32Array;
  readonly #types: Uint8Array;
  readonly #ids = new Map<string, number>();
  /** The token of each byte: `<0xXX>`, else a one-character token of that byte (ASCII), else -1. */
  readonly #byteIds = new Int32Array(256).fill(-1);
  /** User-defined tokens, longest UTF-8 text first (then by id): split out of the text before the SPM pass. */
  readonly #userDefined: { text: string; id: number }[] = [];
  /** User-defined, control and unknown tokens, longest first (then by id), for `parseSpecial`. */
  readonly #special: { text: string; id: number }[] = [];
  readonly #eosId: number | null;
  /** The bytes each id decodes to, filled on first use. */
  readonly #pieces: (Uint8Array | undefined)[];

  /**
   * @param metadata - a GGUF file's metadata (`GgufFile.metadata` or `GgufHeader.metadata`)
   * @param source - names the file in messages (its path)
   * @throws {LlmKernelsError} `ERR_UNSUPPORTED` if `tokenizer.ggml.model` is not "llama" or is absent (a file without
   *   a vocabulary, such as hfToGguf writes): pass token ids instead;
   *   `ERR_MODEL_FORMAT` naming the key for a missing or malformed value: no tokens or not strings, duplicate tokens,
   *   scores (f32 or i32) or token types (i32 in 0..6) of another length or type, a NaN score, a byte token (type 6)
   *   not written `<0xXX>`, an id out of range, a flag that is not a bool, add_bos / add_eos without the id
   * @throws {TypeError} metadata is not a Map
   * @example
   * const tok = new GgufSpmTokenizer(parseGgufHeader(bytes, bytes.length).metadata, 'vocab.gguf');
   */
  constructor(metadata: ReadonlyMap<string, GgufValue>, source = 'gguf') {
    if (!(metadata instanceof Map)) throw typeError(expected('GgufSpmTokenizer', 'a Map of GGUF metadata', 'metadata', metadata));
    checkModel(metadata, source);

    const tokens = metadata.get(K.tokens);
    if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => typeof t === 'string'))
      throw formatError(source, 'a non-empty array of strings', K.tokens, describeValue(tokens), true);
    const n = tokens.length;
    this.vocabSize = n;
    // llama.cpp names empty tokens so that they stay unique and never match text.
    this.#tokens = (tokens as string[]).map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));

    const scores = metadata.get(K.scores);
    if (scores === undefined) this.#scores = new Float32Array(n);
    else {
      if (!(scores instanceof Float32Array || scores instanceof Int32Array))
        throw formatError(source, 'an array of f32 (or i32)', K.scores, describeValue(scores), true);
      if (scores.length !== n) throw formatError(source, `${n} scores (one per token)`, K.scores, `${scores.length}`, true);
      const i = scores.findIndex((s) => Number.isNaN(s));
      if (i >= 0) throw formatError(source, 'scores that are numbers', K.scores, `NaN at index ${i}`, true);
      this.#scores = Float32Array.from(scores);
    }

    const types = metadata.get(K.types);
    if (types === undefined) this.#types = new Uint8Array(n).fill(GGUF_TOKEN_TYPES.normal);
    else {
      if (!(types instanceof Int32Array)) throw formatError(source, 'an array of i32', K.types, describeValue(types), true);
      if (types.length !== n) throw formatError(source, `${n} token types (one per token)`, K.types, `${types.length}`, true);
      const i = types.findIndex((t) => t < 0 || t > 6);
      if (i >= 0) throw formatError(source, 'token types in 0..6', K.types, `${types[i]} at index ${i}`, true);
      this.#types = Uint8Array.from(types);
    }

    for (let i = 0; i < n; i++) {
      const t = this.#tokens[i]!;
      const first = this.#ids.get(t);
      if (first !== undefined) throw formatError(source, 'distinct tokens', `${K.tokens}[${i}]`, `${JSON.stringify(t)}, also token ${first}`, true);
      this.#ids.set(t, i);
      if (this.#types[i] === GGUF_TOKEN_TYPES.byte && !BYTE_TOKEN.test(t))
        throw formatError(source, 'the text <0xXX> for a byte token (type 6)', `${K.tokens}[${i}]`, t);
    }
    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = this.#ids.get(hex) ?? (b < 0x80 ? this.#ids.get(String.fromCharCode(b)) : undefined);
      if (id !== undefined) this.#byteIds[b] = id;
    }

    const idKey = (key: string, dflt: number | null): number | null => {
      const v = metadata.get(key);
      if (v === undefined) return dflt !== null && dflt < n ? dflt : null;
      if (typeof v !== 'number' && typeof v !== 'bigint') throw formatError(source, 'a token id (an integer)', key, describeValue(v), true);
      if (typeof v === 'bigint' || !Number.isInteger(v) || v < 0 || v >= n)
        throw formatError(source, `a token id in [0, ${n})`, key, describeValue(v), true);
      return v;
    };
    const flag = (key: string, dflt: boolean): boolean => {
      const v = metadata.get(key);
      if (v === undefined) return dflt;
      if (typeof v !== 'boolean') throw formatError(source, 'a bool', key, describeValue(v), true);
      return v;
    };
    this.bosId = idKey(K.bos, 1);
    this.#eosId = idKey(K.eos, 2);
    this.unkId = idKey(K.unk, 0)!;
    const eos: number[] = [];
    for (const e of [this.#eosId, idKey(K.eot, null), idKey(K.eom, null)]) if (e !== null && !eos.includes(e)) eos.push(e);
    this.eosIds = Object.freeze(eos);
    this.addBos = flag(K.addBos, true);
    this.addEos = flag(K.addEos, false);
    this.addSpacePrefix = flag(K.addSpace, true);
    if (this.addBos && this.bosId === null) throw formatError(source, `a token id when ${K.addBos} is true`, K.bos, 'no such key', true);
    if (this.addEos && this.#eosId === null) throw formatError(source, `a token id when ${K.addEos} is true`, K.eos, 'no such key', true);

    // llama.cpp sorts by UTF-8 length, longest first (ties in no set order; here by id).
    const bytes = new Map<number, number>();
    const byLength = (a: { text: string; id: number }, b: { text: string; id: number }): number =>
      bytes.get(b.id)! - bytes.get(a.id)! || a.id - b.id;
    for (let i = 0; i < n; i++) {
      const t = this.#types[i];
      if (t === GGUF_TOKEN_TYPES.userDefined) this.#userDefined.push({ text: this.#tokens[i]!, id: i });
      if (t === GGUF_TOKEN_TYPES.userDefined || t === GGUF_TOKEN_TYPES.control || t === GGUF_TOKEN_TYPES.unknown) {
        this.#special.push({ text: this.#tokens[i]!, id: i });
        bytes.set(i, utf8.encode(this.#tokens[i]!).length);
      }
    }
    this.#userDefined.sort(byLength);
    this.#special.sort(byLength);
    this.#pieces = new Array<Uint8Array | undefined>(n);
  }

  /**
   * Text to ids, as llama.cpp's `llama_tokenize` (see the file header).
   * @param text - any string (lone surrogates become U+FFFD, as in UTF-8)
   * @param options - `bos` (default true): add BOS (and EOS) as the file's add_bos_token / add_eos_token say; false
   *   adds neither. `parseSpecial` (default false): also match control and unknown tokens written in the text
   *   (`<s>`), as llama.cpp's parse_special; user-defined tokens are always matched.
   * @throws {TypeError} text is not a string
   * @example
   * tok.encode('hello world'); // [bos, ...ids of '▁hello', '▁world' ...]
   * tok.encode('<s>hi', { bos: false, parseSpecial: true }); // [1, ...]
   */
  encode(text: string, options: { bos?: boolean; parseSpecial?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw typeError(expected('encode', 'a string', 'text', text));
    const special = options.bos !== false;
    const out: number[] = [];
    if (special && this.addBos && this.bosId !== null) out.push(this.bosId);
    if (text.length > 0) {
      let prevSpecial = true; // a space in front of the first piece, and of each piece after a split-out token
      for (const f of this.#partition(text.replace(LONE_SURROGATE, '\uFFFD'), options.parseSpecial === true)) {
        if (typeof f === 'number') {
          out.push(f);
          prevSpecial = true;
        } else {
          this.#spm((this.addSpacePrefix && prevSpecial ? ' ' + f : f).replaceAll(' ', SPACE), out);
          prevSpecial = false;
        }
      }
    }
    if (special && this.addEos && this.#eosId !== null) out.push(this.#eosId);
    return out;
  }

  /** Splits out the user-defined tokens (and with `all`, the control and unknown ones), longest first. */
  #partition(text: string, all: boolean): (string | number)[] {
    let frags: (string | number)[] = [text];
    for (const { text: t, id } of all ? this.#special : this.#userDefined) {
      if (!text.includes(t)) continue;
      const next: (string | number)[] = [];
      for (const f of frags) {
        if (typeof f === 'number') {
          next.push(f);
          continue;
        }
        const parts = f.split(t);
        for (let k = 0; k < parts.length; k++) {
          if (k > 0) next.push(id);
          if (parts[k]!.length > 0) next.push(parts[k]!);
        }
      }
      frags = next;
    }
    return frags;
  }

  /** The SPM pass over one escaped piece (llm_tokenizer_spm_session::tokenize); appends its ids to `out`. */
  #spm(s: string, out: number[]): void {
    // Symbols: one per code point, as [start, start + len) in UTF-16 units, linked through prev / next.
    const count = s.length;
    const start = new Int32Array(count);
    const len = new Int32Array(count);
    let m = 0;
    for (let i = 0; i < s.length; ) {
      const c = s.charCodeAt(i);
      const w = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1;
      start[m] = i;
      len[m] = w;
      m++;
      i += w;
    }
    const prev = new Int32Array(m);
    const next = new Int32Array(m);
    for (let i = 0; i < m; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < m ? i + 1 : -1;
    }
    const queue = new BigramQueue();
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const size = len[left]! + len[right]!;
      const id = this.#ids.get(s.slice(start[left]!, start[left]! + size));
      if (id !== undefined) queue.push({ left, right, score: this.#scores[id]!, size });
    };
    for (let i = 1; i < m; i++) tryAdd(i - 1, i);
    while (queue.size > 0) {
      const b = queue.pop();
      const l = b.left;
      const r = b.right;
      if (len[l] === 0 || len[r] === 0 || len[l]! + len[r]! !== b.size) continue; // stale: one side changed
      len[l] = b.size;
      len[r] = 0;
      next[l] = next[r]!;
      if (next[r]! >= 0) prev[next[r]!] = l;
      tryAdd(prev[l]!, l);
      tryAdd(l, next[l]!);
    }
    for (let i = 0; m > 0 && i !== -1; i = next[i]!) {
      const piece = s.slice(start[i]!, start[i]! + len[i]!);
      const id = this.#ids.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // A character outside the vocabulary (merged symbols are always tokens): its bytes, or the unknown id.
      const bytes = utf8.encode(piece);
      const ids = Array.from(bytes, (b) => this.#byteIds[b]!);
      if (ids.every((x) => x >= 0)) out.push(...ids);
      else out.push(this.unkId);
    }
  }

  /** The bytes of one token as llama.cpp's token_to_piece with special = false. */
  #piece(id: number): Uint8Array {
    let p = this.#pieces[id];
    if (p !== undefined) return p;
    const text = this.#tokens[id]!;
    switch (this.#types[id]) {
      case GGUF_TOKEN_TYPES.normal:
        p = utf8.encode(text.replaceAll(SPACE, ' '));
        break;
      case GGUF_TOKEN_TYPES.userDefined:
        p = utf8.encode(text);
        break;
      case GGUF_TOKEN_TYPES.byte:
        p = Uint8Array.of(parseInt(BYTE_TOKEN.exec(text)![1]!, 16));
        break;
      default: // control, unknown, unused, undefined: nothing
        p = new Uint8Array(0);
    }
    this.#pieces[id] = p;
    return p;
  }

  /**
   * Ids to bytes: normal tokens with '▁' as spaces, byte tokens as their bytes, user-defined tokens as written;
   * control, unknown, unused and undefined tokens, and ids outside the vocabulary, give nothing. With
   * add_space_prefix, one leading space of the first token that gives any bytes is dropped (the space encode put in
   * front). llama.cpp's detokenize drops it only from the very first id, so after a BOS (which gives nothing) it
   * keeps it (" Hello"); this follows SentencePiece and Hugging Face instead ("Hello"), so decode(encode(text))
   * gives the text back. Decoding a continuation alone drops its first space too (as Hugging Face does).
   * @throws {TypeError} ids is not array-like
   * @example
   * tok.decodeBytes(tok.encode('é', { bos: false })); // Uint8Array [0xc3, 0xa9]
   */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number')
      throw typeError(expected('decodeBytes', 'an array of token ids', 'ids', ids));
    const parts: Uint8Array[] = [];
    let total = 0;
    let removeSpace = this.addSpacePrefix;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) continue;
      let p = this.#piece(id);
      if (p.length === 0) continue;
      if (removeSpace && p[0] === 0x20) p = p.subarray(1);
      removeSpace = false;
      parts.push(p);
      total += p.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * Ids to text: {@link GgufSpmTokenizer.decodeBytes} as UTF-8 (invalid sequences, such as a character cut between
   * byte tokens, become U+FFFD; a leading U+FEFF is kept).
   * @throws {TypeError} ids is not array-like
   * @example
   * tok.decode(tok.encode('hello world')); // 'hello world'
   */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(ids));
  }

  /**
   * The text of a token as stored in the vocabulary ('▁hello', '<0x0A>', '<s>').
   * @throws {RangeError} id is not a token id
   * @example
   * tok.tokenText(tok.bosId!); // '<s>'
   */
  tokenText(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw rangeError(expected('tokenText', `a token id in [0, ${this.vocabSize})`, 'id', id));
    return this.#tokens[id]!;
  }
}

/** Checks `tokenizer.ggml.model`: "llama" passes; another vocabulary, or none (no key), is ERR_UNSUPPORTED. */
function checkModel(metadata: ReadonlyMap<string, GgufValue>, source: string): void {
  const model = metadata.get(K.model);
  if (model === undefined)
    throw new LlmKernelsError(
      'ERR_UNSUPPORTED',
      expected(
        source,
        'a tokenizer vocabulary ("llama")',
        `metadata ${JSON.stringify(K.model)}`,
        'no such key (the file has no vocabulary): pass token ids (--tokens) instead',
        true,
      ),
    );
  if (typeof model !== 'string') throw formatError(source, 'a string naming the vocabulary', K.model, describeValue(model), true);
  if (model !== 'llama') {
    const kind = MODEL_KINDS[model] ?? 'a vocabulary';
    throw new LlmKernelsError(
      'ERR_UNSUPPORTED',
      expected(
        source,
        '"llama" (a SentencePiece vocabulary, the only GGUF tokenizer this library reads)',
        `metadata ${JSON.stringify(K.model)}`,
        `${JSON.stringify(model)} (${kind}): pass token ids (--tokens) instead`,
        true,
      ),
    );
  }
}

/**
 * The tokenizer of a GGUF file's own vocabulary. Only SentencePiece vocabularies (`tokenizer.ggml.model` = "llama")
 * have one: a {@link GgufSpmTokenizer}. It reads the metadata only, so the file may be closed afterwards.
 * @param file - an open (or closed) {@link GgufFile}, or a {@link GgufHeader}
 * @throws {LlmKernelsError} `ERR_UNSUPPORTED` for another `tokenizer.ggml.model` (gpt2, bert, t5, ...), naming it,
 *   or none (a file without a vocabulary): pass token ids (--tokens) instead; `ERR_MODEL_FORMAT` naming the key for
 *   a missing or malformed value (see {@link GgufSpmTokenizer})
 * @throws {TypeError} file is not a GgufFile or GgufHeader
 * @example
 * using f = GgufFile.open('llama-2-7b.Q8_0.gguf');
 * const tok = ggufTokenizer(f);
 * tok.encode('Hello world'); // [1, 15043, 3186]
 */
export function ggufTokenizer(file: GgufFile | GgufHeader): Tokenizer {
  let source: string;
  if (file instanceof GgufFile) source = file.path;
  else {
    const h = file as GgufHeader | null;
    if (h === null || typeof h !== 'object' || !(h.metadata instanceof Map) || typeof h.source !== 'string')
      throw typeError(expected('ggufTokenizer', 'a GgufFile (or a GgufHeader)', 'file', file));
    source = h.source;
  }
  checkModel(file.metadata, source);
  return new GgufSpmTokenizer(file.metadata, source);
}
