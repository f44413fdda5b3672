// Tokenizers: the byte-level one of tiny-py and Hugging Face tokenizer.json files (through @huggingface/tokenizers),
// and the errors of a folder without a usable tokenizer.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer, HfTokenizer, loadTokenizer } from '../../lib/io/tokenizer.js';
import { LlmKernelsError } from '../../lib/errors.js';
import { expectThrows } from '../helpers/check.js';

const TINY = new URL('../../models/tiny-py/', import.meta.url).pathname;

function folder(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'lk-tok-'));
  for (const [n, c] of Object.entries(files)) writeFileSync(join(d, n), c);
  return d;
}

// A small BPE tokenizer.json: merges build "hello"; <s> is added by the post-processor.
const BPE = JSON.stringify({
  version: '1.0',
  added_tokens: [
    { id: 0, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ],
  normalizer: null,
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } },
  },
  decoder: { type: 'Fuse' },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
    vocab: { '<s>': 0, '</s>': 1, h: 2, e: 3, l: 4, o: 5, he: 6, ll: 7, hell: 8, hello: 9, ' ': 10, w: 11, r: 12, d: 13 },
    merges: ['h e', 'l l', 'he ll', 'hell o'],
  },
});

describe('tokenizers', () => {
  it('tiny-py: byte + 3, <s> in front, UTF-8 round trip', () => {
    const t = loadTokenizer(TINY);
    expect(t).toBeInstanceOf(ByteTokenizer);
    expect(t.encode('é!')).toEqual([1, 0xc3 + 3, 0xa9 + 3, 33 + 3]);
    expect(t.encode('a', { bos: false })).toEqual([100]);
    expect(t.decode(t.encode('déjà vu\n'))).toBe('déjà vu\n');
    expect(t.eosIds).toEqual([2]);
  });
  it('a Hugging Face BPE tokenizer.json with its config', () => {
    const t = loadTokenizer(folder({ 'tokenizer.json': BPE, 'tokenizer_config.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }) }));
    expect(t).toBeInstanceOf(HfTokenizer);
    expect(t.encode('hello world')).toEqual([0, 9, 10, 11, 5, 12, 4, 13]);
    expect(t.encode('hello', { bos: false })).toEqual([9]);
    expect(t.decode(t.encode('hello world'))).toBe('hello world');
    expect(t.bosId).toBe(0);
    expect(t.eosIds).toEqual([1]);
    expect(t.vocabSize).toBe(14);
  });
  it('explains a folder without a usable tokenizer', () => {
    expectThrows(() => loadTokenizer(folder({})), LlmKernelsError, 'ERR_MODEL_FORMAT', /cannot read .*tokenizer\.json/);
    expectThrows(() => loadTokenizer(folder({ 'tokenizer.json': '{"type": ' })), LlmKernelsError, 'ERR_MODEL_FORMAT');
    expectThrows(() => loadTokenizer(folder({ 'tokenizer.json': '[1, 2]' })), LlmKernelsError, 'ERR_MODEL_FORMAT', /JSON object/);
    expectThrows(() => loadTokenizer(folder({ 'tokenizer.json': '{"type": "sentencepiece"}' })), LlmKernelsError, 'ERR_UNSUPPORTED', /--tokens/);
    expectThrows(() => loadTokenizer(folder({ 'tokenizer.json': '{"type": "bytes", "offset": -1, "vocab_size": 300}' })), LlmKernelsError, 'ERR_MODEL_FORMAT', /offset/);
    expectThrows(() => loadTokenizer(folder({ 'tokenizer.json': '{"type": "bytes", "offset": 3, "vocab_size": 100}' })), LlmKernelsError, 'ERR_MODEL_FORMAT', /vocab_size/);
    expectThrows(() => loadTokenizer(folder({ 'tokenizer.json': BPE, 'tokenizer_config.json': '{oops' })), LlmKernelsError, 'ERR_MODEL_FORMAT', /tokenizer_config/);
  });
});
