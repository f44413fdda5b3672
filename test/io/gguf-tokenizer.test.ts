// The GGUF SentencePiece tokenizer (lib/io/gguf-tokenizer.ts) on a small hand-made vocabulary written with encodeGguf:
// exact encodings worked out by hand from llama.cpp's algorithm (merge order by score, a tie, byte fallback, multi-byte
// characters, BOS / EOS / space prefix flags, user-defined tokens), decoding, seeded round trips, the merge loop
// against a naive reference on random vocabularies, loadTokenizer on a .gguf path, and the metadata errors.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LlmKernelsError } from '../../lib/errors.js';
import { encodeGguf, GgufFile, parseGgufHeader, type GgufMetadataInput } from '../../lib/io/gguf.js';
import { GgufSpmTokenizer, ggufTokenizer } from '../../lib/io/gguf-tokenizer.js';
import { loadTokenizer } from '../../lib/io/tokenizer.js';
import { Rng } from '../../lib/random.js';

const U = '\u2581'; // '▁'
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER = 4, BYTE = 6;
const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

// The vocabulary: <unk> <s> </s>, the 256 byte tokens (ids 3..258), then pieces. Scores are chosen so that the merge
// order matters: 'll' (-4) beats 'el' (-4.5) beats '▁h' (-5), and '▁he' / '▁hell' / '▁hello' are reachable only
// through '▁h' + 'e', '▁he' + 'll', '▁hell' + 'o'; 'ab' and 'bc' tie at -20.
const PIECES: [string, number][] = [
  [U, -1], ['h', -2], ['e', -2], ['l', -2], ['o', -2], ['w', -2], ['r', -2], ['d', -2], ['a', -2], ['b', -2], ['c', -2], ['ü', -2],
  ['ll', -4], ['el', -4.5], [`${U}h`, -5], [`${U}he`, -6], [`${U}hell`, -7], [`${U}hello`, -8], ['lo', -9], ['or', -10], ['ld', -11],
  [`${U}w`, -12], [`${U}wor`, -13], [`${U}world`, -14], [`${U}ü`, -15], ['ab', -20], ['bc', -20],
];

interface VocabOptions {
  bytes?: boolean;
  model?: string;
  extra?: Record<string, GgufMetadataInput>;
  drop?: string[];
}

function vocab(o: VocabOptions = {}): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const scores = [0, 0, 0];
  const types = [UNKNOWN, CONTROL, CONTROL];
  if (o.bytes !== false)
    for (let b = 0; b < 256; b++) {
      tokens.push(hex(b));
      scores.push(0);
      types.push(BYTE);
    }
  for (const [t, s] of PIECES) {
    tokens.push(t);
    scores.push(s);
    types.push(NORMAL);
  }
  tokens.push('<br>');
  scores.push(0);
  types.push(USER);
  return { tokens, scores, types };
}

function metadata(o: VocabOptions = {}): Map<string, GgufMetadataInput> {
  const v = vocab(o);
  const m = new Map<string, GgufMetadataInput>([
    ['general.architecture', 'llama'],
    ['tokenizer.ggml.model', o.model ?? 'llama'],
    ['tokenizer.ggml.tokens', v.tokens],
    ['tokenizer.ggml.scores', Float32Array.from(v.scores)],
    ['tokenizer.ggml.token_type', Int32Array.from(v.types)],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
    ['tokenizer.ggml.unknown_token_id', 0],
  ]);
  for (const k of o.drop ?? []) m.delete(k);
  for (const [k, val] of Object.entries(o.extra ?? {})) m.set(k, val);
  return m;
}

/** A GGUF file's bytes: the vocabulary metadata and one tiny tensor. */
function file(o: VocabOptions = {}): Uint8Array {
  return encodeGguf({ metadata: metadata(o), tensors: [{ name: 'output_norm.weight', type: 'F32', shape: [4], data: new Uint8Array(16) }] });
}

function header(o: VocabOptions = {}) {
  const b = file(o);
  return parseGgufHeader(b, b.length, 'vocab.gguf');
}

function tokenizer(o: VocabOptions = {}): GgufSpmTokenizer {
  const t = ggufTokenizer(header(o));
  expect(t).toBeInstanceOf(GgufSpmTokenizer);
  return t as GgufSpmTokenizer;
}

const TOKENS = vocab().tokens;
/** Ids by token text; a number is a byte (its <0xXX> token). */
function ids(...pieces: (string | number)[]): number[] {
  return pieces.map((p) => {
    const i = TOKENS.indexOf(typeof p === 'number' ? hex(p) : p);
    if (i < 0) throw new Error(`no token ${p}`);
    return i;
  });
}

function throwsWith(fn: () => unknown, code: string, message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(LlmKernelsError);
  expect((err as LlmKernelsError).code).toBe(code);
  expect((err as Error).message).toMatch(message);
}

describe('GgufSpmTokenizer: encoding', () => {
  const tok = tokenizer();

  it('reads the metadata: ids, flags, kind', () => {
    expect(tok.kind).toBe('gguf-spm');
    expect(tok.vocabSize).toBe(TOKENS.length);
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.unkId).toBe(0);
    expect([tok.addBos, tok.addEos, tok.addSpacePrefix]).toEqual([true, false, true]);
    expect(tok.bytesPerToken).toBeNull();
    expect(tok.tokenText(ids(`${U}hello`)[0]!)).toBe(`${U}hello`);
  });

  it('merges by score: "hello" climbs ▁h, ▁he, ▁hell, ▁hello; "hel" takes "el" first and stops at ▁h + el', () => {
    // ▁ h e l l o: 'll' (-4) first, which makes 'el' stale; then ▁h (-5), ▁he (-6), ▁hell (-7), ▁hello (-8).
    expect(tok.encode('hello')).toEqual(ids('<s>', `${U}hello`));
    expect(tok.encode('hell', { bos: false })).toEqual(ids(`${U}hell`));
    // ▁ h e l: 'el' (-4.5) beats '▁h' (-5); '▁h' + 'el' is no token, so '▁he' (longer, in the vocabulary) never forms.
    expect(tok.encode('hel', { bos: false })).toEqual(ids(`${U}h`, 'el'));
    // 'p' has no token: its byte.
    expect(tok.encode('help', { bos: false })).toEqual(ids(`${U}h`, 'el', 0x70));
    // ▁ w o r l d: or (-10), ld (-11), ▁w (-12), then ▁wor (-13), ▁world (-14).
    expect(tok.encode('hello world')).toEqual(ids('<s>', `${U}hello`, `${U}world`));
  });

  it('a tie between two pairs goes to the leftmost', () => {
    // ▁ a b c: 'ab' and 'bc' both -20; 'ab' (left) merges, 'bc' goes stale.
    expect(tok.encode('abc', { bos: false })).toEqual(ids(U, 'ab', 'c'));
    expect(tok.encode('bcab', { bos: false })).toEqual(ids(U, 'bc', 'ab'));
  });

  it('characters outside the vocabulary fall back to their UTF-8 bytes; multi-byte characters in it merge', () => {
    expect(tok.encode('é', { bos: false })).toEqual(ids(U, 0xc3, 0xa9));
    // As llama.cpp's " this is 🦙.cpp" -> 29871 ... 29871 243 162 169 156 ...: '▁' alone, then the four bytes.
    expect(tok.encode('hello 🦙', { bos: false })).toEqual(ids(`${U}hello`, U, 0xf0, 0x9f, 0xa6, 0x99));
    expect(tok.encode('über', { bos: false })).toEqual(ids(`${U}ü`, 'b', 'e', 'r'));
    expect(tok.encode('a\nb', { bos: false })).toEqual(ids(U, 'a', 0x0a, 'b'));
    // A lone surrogate is U+FFFD (EF BF BD), as UTF-8 would have it.
    expect(tok.encode('\ud800', { bos: false })).toEqual(ids(U, 0xef, 0xbf, 0xbd));
  });

  it('spaces: every one is ▁, one more in front; an empty text is BOS alone', () => {
    expect(tok.encode(' hello', { bos: false })).toEqual(ids(U, `${U}hello`));
    expect(tok.encode('hello  ', { bos: false })).toEqual(ids(`${U}hello`, U, U));
    expect(tok.encode(' ', { bos: false })).toEqual(ids(U, U));
    expect(tok.encode('')).toEqual(ids('<s>'));
    expect(tok.encode('', { bos: false })).toEqual([]);
  });

  it('add_bos_token false, add_eos_token true, add_space_prefix false', () => {
    const noBos = tokenizer({ extra: { 'tokenizer.ggml.add_bos_token': false } });
    expect(noBos.addBos).toBe(false);
    expect(noBos.encode('hello')).toEqual(ids(`${U}hello`));
    const eos = tokenizer({ extra: { 'tokenizer.ggml.add_eos_token': true } });
    expect(eos.encode('hello')).toEqual(ids('<s>', `${U}hello`, '</s>'));
    expect(eos.encode('hello', { bos: false })).toEqual(ids(`${U}hello`));
    const bare = tokenizer({ extra: { 'tokenizer.ggml.add_space_prefix': false } });
    // h e l l o: 'll' first, then nothing: 'he', 'ell', 'llo' are no tokens.
    expect(bare.encode('hello')).toEqual(ids('<s>', 'h', 'e', 'll', 'o'));
    expect(bare.encode(' hello', { bos: false })).toEqual(ids(`${U}hello`));
    expect(bare.decode(bare.encode(' hello'))).toBe(' hello');
    expect(bare.decode(ids(`${U}hello`))).toBe(' hello');
  });

  it('user-defined tokens are split out first; the text after one gets its own space prefix (llama.cpp)', () => {
    // As llama.cpp's tinyllama test: "a</s>b" -> ▁a </s> ▁b, "a</s> b" -> ▁a </s> ▁ ▁b.
    expect(tok.encode('hello<br>world')).toEqual(ids('<s>', `${U}hello`, '<br>', `${U}world`));
    expect(tok.encode('hello<br> world', { bos: false })).toEqual(ids(`${U}hello`, '<br>', U, `${U}world`));
    expect(tok.encode('<br>', { bos: false })).toEqual(ids('<br>'));
    expect(tok.decode(tok.encode('hello<br>world'))).toBe('hello<br> world');
  });

  it('control tokens in the text are plain text unless parseSpecial', () => {
    expect(tok.encode('<s>hello', { bos: false })).toEqual(ids(U, 0x3c, 0x73, 0x3e, 'h', 'e', 'll', 'o'));
    expect(tok.encode('<s>hello', { bos: false, parseSpecial: true })).toEqual(ids('<s>', `${U}hello`));
  });

  it('without byte tokens an unknown character is the unknown id (one per character)', () => {
    const t = tokenizer({ bytes: false });
    const id = (s: string) => vocab({ bytes: false }).tokens.indexOf(s);
    expect(t.encode('hé', { bos: false })).toEqual([id(`${U}h`), 0]);
    expect(t.encode('z🦙a', { bos: false })).toEqual([id(U), 0, 0, id('a')]);
    expect(t.decode(t.encode('hé'))).toBe('h');
  });

  it('the text must be a string', () => {
    expect(() => tok.encode(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('GgufSpmTokenizer: decoding', () => {
  const tok = tokenizer();

  it('▁ becomes a space, the first one is dropped, control and unknown tokens give nothing, bytes are bytes', () => {
    expect(tok.decode(ids('<s>', `${U}hello`, `${U}world`, '</s>'))).toBe('hello world');
    expect(tok.decode(ids(`${U}hello`, `${U}world`))).toBe('hello world');
    expect(tok.decode(ids(U, `${U}hello`))).toBe(' hello');
    expect(tok.decode(ids('<unk>'))).toBe('');
    expect(tok.decode(ids(U, 0xc3, 0xa9))).toBe('é');
    expect(tok.decode(ids('h', 'e', 'll', 'o'))).toBe('hello');
    expect(tok.decode(ids('<br>', `${U}w`))).toBe('<br> w');
    // Ids outside the vocabulary give nothing.
    expect(tok.decode([-1, ids(`${U}hello`)[0]!, 1.5, TOKENS.length])).toBe('hello');
  });

  it('a character cut between byte tokens: its bytes, U+FFFD as text', () => {
    expect(Array.from(tok.decodeBytes(ids(0xc3)))).toEqual([0xc3]);
    expect(tok.decode(ids(0xc3))).toBe('\ufffd');
    expect(Array.from(tok.decodeBytes(ids(`${U}hello`, 0xf0, 0x9f)))).toEqual([...new TextEncoder().encode('hello'), 0xf0, 0x9f]);
  });

  it('decode(encode(text)) === text over seeded random strings (ASCII, Latin, CJK, emoji, controls)', () => {
    const rng = new Rng(1234);
    const common = ['h', 'e', 'l', 'l', 'o', 'w', 'r', 'd', 'a', 'b', 'c', 'ü', ' ', ' ', '\n', '\t', 'é', '🦙', '日本', '\u0000', '\ufeff'];
    const randomChar = (): string => {
      const k = rng.int(0, 9);
      if (k < 5) return common[rng.int(0, common.length - 1)]!;
      let cp: number;
      if (k === 5) cp = rng.int(0x20, 0x7e);
      else if (k === 6) cp = rng.int(0xa0, 0x7ff);
      else if (k === 7) cp = rng.int(0x800, 0xffff);
      else cp = rng.int(0x10000, 0x10ffff);
      if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 0x2581 || cp === 0x3c) return 'x'; // no surrogates, '▁', '<'
      return String.fromCodePoint(cp);
    };
    const toks = [tok, tokenizer({ extra: { 'tokenizer.ggml.add_space_prefix': false } }), tokenizer({ extra: { 'tokenizer.ggml.add_eos_token': true } })];
    for (let n = 0; n < 300; n++) {
      let s = '';
      const len = rng.int(0, 30);
      for (let i = 0; i < len; i++) s += randomChar();
      for (const t of toks) {
        expect(t.decode(t.encode(s)), JSON.stringify(s)).toBe(s);
        expect(t.decode(t.encode(s, { bos: false })), JSON.stringify(s)).toBe(s);
      }
    }
  });
});

describe('GgufSpmTokenizer: the merge loop against a naive reference', () => {
  // The naive rule: while some adjacent pair concatenates to a token, merge the pair of the highest score, the
  // leftmost among equals; then each symbol is its token, or its bytes.
  function naive(tokens: string[], scores: number[], text: string): number[] {
    const index = new Map(tokens.map((t, i) => [t, i]));
    const syms = [...(U + text.replaceAll(' ', U))];
    for (;;) {
      let best = -1;
      let bestScore = -Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const id = index.get(syms[i]! + syms[i + 1]!);
        if (id !== undefined && (best < 0 || scores[id]! > bestScore)) {
          best = i;
          bestScore = scores[id]!;
        }
      }
      if (best < 0) break;
      syms.splice(best, 2, syms[best]! + syms[best + 1]!);
    }
    return syms.flatMap((s) => (index.has(s) ? [index.get(s)!] : Array.from(new TextEncoder().encode(s), (b) => index.get(hex(b))!)));
  }

  it('200 random vocabularies over ▁ a b c (scores from 3 values: many ties), 20 texts each', () => {
    const rng = new Rng(99);
    const alphabet = [U, 'a', 'b', 'c', 'é'];
    for (let v = 0; v < 200; v++) {
      const tokens = ['<unk>', '<s>', '</s>'];
      const types = [UNKNOWN, CONTROL, CONTROL];
      for (let b = 0; b < 256; b++) {
        tokens.push(hex(b));
        types.push(BYTE);
      }
      const pieces = new Set<string>([U, 'a', 'b', 'c']);
      const want = rng.int(3, 25);
      while (pieces.size < want) {
        let p = '';
        const len = rng.int(2, 5);
        for (let i = 0; i < len; i++) p += alphabet[rng.int(0, alphabet.length - 2)]!;
        pieces.add(p);
      }
      for (const p of pieces) {
        tokens.push(p);
        types.push(NORMAL);
      }
      const scores = tokens.map((_, i) => (i < 259 ? 0 : -rng.int(1, 3)));
      const b = encodeGguf({
        metadata: {
          'tokenizer.ggml.model': 'llama',
          'tokenizer.ggml.tokens': tokens,
          'tokenizer.ggml.scores': Float32Array.from(scores),
          'tokenizer.ggml.token_type': Int32Array.from(types),
        },
      });
      const t = ggufTokenizer(parseGgufHeader(b, b.length));
      for (let n = 0; n < 20; n++) {
        let s = '';
        const len = rng.int(1, 24);
        for (let i = 0; i < len; i++) s += [' ', 'a', 'b', 'c', 'é'][rng.int(0, 4)];
        expect(t.encode(s, { bos: false }), `${JSON.stringify(s)} over ${JSON.stringify([...pieces])}`).toEqual(naive(tokens, scores, s));
        expect(t.decode(t.encode(s))).toBe(s);
      }
    }
  });
});

describe('GGUF files and loadTokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lk-gguf-tok-'));

  it('GgufFile.open and loadTokenizer(path.gguf) give the tokenizer; the file may be closed after', () => {
    const path = join(dir, 'vocab.gguf');
    writeFileSync(path, file());
    const f = GgufFile.open(path);
    const t = ggufTokenizer(f);
    f.close();
    expect(t.encode('hello world')).toEqual(ids('<s>', `${U}hello`, `${U}world`));
    const l = loadTokenizer(path);
    expect(l).toBeInstanceOf(GgufSpmTokenizer);
    expect(l.encode('hello world')).toEqual(ids('<s>', `${U}hello`, `${U}world`));
    expect(l.decode(l.encode('hello 🦙 world'))).toBe('hello 🦙 world');
  });

  it('a BPE (gpt2) vocabulary is ERR_UNSUPPORTED naming the model and --tokens, also through loadTokenizer', () => {
    throwsWith(() => ggufTokenizer(header({ model: 'gpt2' })), 'ERR_UNSUPPORTED', /tokenizer\.ggml\.model.*"gpt2" \(a byte-level BPE vocabulary\).*--tokens/);
    throwsWith(() => ggufTokenizer(header({ model: 't5' })), 'ERR_UNSUPPORTED', /"t5" \(a Unigram vocabulary\)/);
    throwsWith(() => ggufTokenizer(header({ model: 'mystery' })), 'ERR_UNSUPPORTED', /"mystery".*--tokens/);
    // No vocabulary at all (hfToGguf writes none): the same advice.
    throwsWith(
      () => ggufTokenizer(header({ drop: ['tokenizer.ggml.model'] })),
      'ERR_UNSUPPORTED',
      /vocab\.gguf: expected a tokenizer vocabulary .* for metadata "tokenizer\.ggml\.model", got no such key .*--tokens/,
    );
    const path = join(dir, 'bpe.gguf');
    writeFileSync(path, file({ model: 'gpt2' }));
    throwsWith(() => loadTokenizer(path), 'ERR_UNSUPPORTED', /bpe\.gguf: expected "llama".*"gpt2"/);
  });

  it('ggufTokenizer needs a GgufFile or a GgufHeader', () => {
    expect(() => ggufTokenizer({} as never)).toThrow(TypeError);
    expect(() => new GgufSpmTokenizer({} as never)).toThrow(TypeError);
  });
});

describe('metadata errors: ERR_MODEL_FORMAT naming the key', () => {
  const n = TOKENS.length;
  const cases: [string, VocabOptions, RegExp][] = [
    ['model not a string', { extra: { 'tokenizer.ggml.model': 3 } }, /"tokenizer\.ggml\.model", got 3/],
    ['no tokens', { drop: ['tokenizer.ggml.tokens'] }, /non-empty array of strings for metadata "tokenizer\.ggml\.tokens", got no such key/],
    ['tokens not strings', { extra: { 'tokenizer.ggml.tokens': Int32Array.of(1, 2) } }, /"tokenizer\.ggml\.tokens", got Int32Array of length 2/],
    ['empty tokens', { extra: { 'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: [] } } }, /"tokenizer\.ggml\.tokens"/],
    ['scores too short', { extra: { 'tokenizer.ggml.scores': new Float32Array(n - 1) } }, new RegExp(`${n} scores .*"tokenizer\\.ggml\\.scores", got ${n - 1}`)],
    ['scores of strings', { extra: { 'tokenizer.ggml.scores': ['a'] } }, /f32 .*"tokenizer\.ggml\.scores"/],
    ['a NaN score', { extra: { 'tokenizer.ggml.scores': new Float32Array(n).fill(NaN, 7, 8) } }, /"tokenizer\.ggml\.scores", got NaN at index 7/],
    ['token types too long', { extra: { 'tokenizer.ggml.token_type': new Int32Array(n + 1).fill(1) } }, /"tokenizer\.ggml\.token_type", got/],
    ['token types f32', { extra: { 'tokenizer.ggml.token_type': new Float32Array(n) } }, /i32 .*"tokenizer\.ggml\.token_type", got Float32Array/],
    ['a token type 9', { extra: { 'tokenizer.ggml.token_type': Int32Array.from(vocab().types, (t, i) => (i === 5 ? 9 : t)) } }, /0\.\.6 .*"tokenizer\.ggml\.token_type", got 9 at index 5/],
    ['bos out of range', { extra: { 'tokenizer.ggml.bos_token_id': n } }, new RegExp(`\\[0, ${n}\\) for metadata "tokenizer\\.ggml\\.bos_token_id", got ${n}`)],
    ['eos a string', { extra: { 'tokenizer.ggml.eos_token_id': 'x' } }, /"tokenizer\.ggml\.eos_token_id", got "x"/],
    ['unk negative', { extra: { 'tokenizer.ggml.unknown_token_id': -1 } }, /"tokenizer\.ggml\.unknown_token_id", got -1/],
    ['eot out of range', { extra: { 'tokenizer.ggml.eot_token_id': 1 << 20 } }, /"tokenizer\.ggml\.eot_token_id"/],
    ['add_bos not a bool', { extra: { 'tokenizer.ggml.add_bos_token': 1 } }, /a bool for metadata "tokenizer\.ggml\.add_bos_token", got 1/],
    ['add_space_prefix a string', { extra: { 'tokenizer.ggml.add_space_prefix': 'yes' } }, /"tokenizer\.ggml\.add_space_prefix"/],
    [
      'a duplicate token',
      { extra: { 'tokenizer.ggml.tokens': vocab().tokens.map((t) => (t === 'h' ? 'll' : t)) } },
      new RegExp(`distinct tokens for metadata "tokenizer\\.ggml\\.tokens\\[${TOKENS.indexOf('ll')}\\]", got "ll", also token ${TOKENS.indexOf('h')}`),
    ],
    ['a byte token not <0xXX>', { extra: { 'tokenizer.ggml.tokens': vocab().tokens.map((t, i) => (i === 10 ? '<0x7>' : t)) } }, /<0xXX> .*"tokenizer\.ggml\.tokens\[10\]", got "<0x7>"/],
  ];
  for (const [name, o, re] of cases) it(name, () => throwsWith(() => ggufTokenizer(header(o)), 'ERR_MODEL_FORMAT', re));

  it('add_bos_token true without a BOS id (the default 1 is outside a 1-token vocabulary)', () => {
    const b = encodeGguf({ metadata: { 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.tokens': ['a'] } });
    throwsWith(() => ggufTokenizer(parseGgufHeader(b, b.length, 'one.gguf')), 'ERR_MODEL_FORMAT', /one\.gguf: .*add_bos_token is true for metadata "tokenizer\.ggml\.bos_token_id", got no such key/);
    const ok = encodeGguf({ metadata: { 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.tokens': ['a', '▁'], 'tokenizer.ggml.add_bos_token': false } });
    const t = ggufTokenizer(parseGgufHeader(ok, ok.length));
    // No scores or types: every token normal with score 0; llama.cpp's default ids where they fit (BOS 1, unknown 0;
    // EOS 2 is outside the vocabulary, so none).
    expect([t.bosId, t.eosIds, (t as GgufSpmTokenizer).unkId]).toEqual([1, [], 0]);
    expect(t.encode('a a')).toEqual([1, 0, 1, 0]);
  });
});
