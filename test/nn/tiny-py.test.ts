// The bundled tiny-py model against the reference numbers of models/tiny-py/README.md (computed there with PyTorch
// in fp32 from the bf16 weights): perplexity on the first 4096 bytes of eval.txt and three greedy transcripts.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hfToGguf } from '../../lib/io/gguf.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteTokenizer, loadTokenizer } from '../../lib/io/tokenizer.js';
import { evaluate } from '../../lib/nn/eval.js';
import { LlamaForCausalLM } from '../../lib/nn/llama.js';
import { loadModel } from '../../lib/nn/load.js';
import { argmax } from '../../lib/nn/sampler.js';
import { allLogits } from '../helpers/model.js';

const DIR = new URL('../../models/tiny-py/', import.meta.url).pathname;

// models/tiny-py/README.md, "Greedy continuations".
const TRANSCRIPTS: [string, number[]][] = [
  ['def fibonacci(n):\n    if n <= 1:\n        return n\n    return ', [118, 104, 111, 105, 49, 98, 102, 111, 114, 118, 104, 43, 44, 13, 13, 35, 35, 35, 35, 103, 104, 105, 35, 98, 98, 108, 113, 108, 119, 98, 98, 43, 118, 104, 111, 105, 47, 35, 118, 104, 111, 105, 47, 35, 118, 104, 111, 105, 47, 35, 118, 104, 111, 105, 47, 35, 118, 104, 111, 105, 47, 35, 118, 104]],
  ['import os\n\n\ndef ', [98, 98, 108, 113, 108, 119, 98, 98, 43, 118, 104, 111, 105, 47, 35, 105, 108, 111, 104, 113, 100, 112, 104, 47, 35, 118, 104, 111, 105, 44, 61, 13, 35, 35, 35, 35, 37, 37, 37, 85, 104, 119, 120, 117, 113, 35, 119, 107, 104, 35, 102, 114, 112, 115, 108, 111, 104, 117, 35, 119, 107, 104, 35, 118]],
  ['class Stack:\n    def ', [98, 98, 108, 113, 108, 119, 98, 98, 43, 118, 104, 111, 105, 47, 35, 118, 104, 111, 105, 44, 61, 13, 35, 35, 35, 35, 35, 35, 35, 35, 117, 104, 119, 120, 117, 113, 35, 118, 104, 111, 105, 49, 98, 102, 111, 114, 118, 104, 43, 44, 13, 13, 35, 35, 35, 35, 103, 104, 105, 35, 98, 98, 108, 113]],
];

let model: LlamaForCausalLM;
let tok: ByteTokenizer;

beforeAll(async () => {
  model = await loadModel(DIR);
  tok = loadTokenizer(DIR) as ByteTokenizer;
});
afterAll(() => model?.dispose());

describe('tiny-py (f32 compute from the bf16 weights)', () => {
  it('has the README architecture', () => {
    expect(model.config.numLayers).toBe(4);
    expect(model.config.numKvHeads).toBe(2);
    expect(tok.encode('ab')).toEqual([1, 100, 101]);
  });

  it('perplexity on the first 4096 bytes of eval.txt is 1.07759 nats/byte (README, within 1e-4)', async () => {
    const text = readFileSync(DIR + 'eval.txt').subarray(0, 4096);
    const tokens = [1, ...Array.from(text, (b) => b + 3)];
    const r = await evaluate(model, tokens, { window: 256, stride: 128 });
    expect(r.targets).toBe(4096);
    expect(r.windows).toBe(32);
    expect(Math.abs(r.nllPerToken - 1.07759)).toBeLessThan(1e-4);
  });

  it('greedy transcripts match the README, all three prompts as one batch over the paged cache', async () => {
    using cache = model.createCache({ maxTokens: 3 * 160, dtype: 'f32' });
    const prompts = TRANSCRIPTS.map(([p]) => tok.encode(p));
    const seqs = prompts.map((p, i) => {
      const r = cache.addSequence(i, p);
      if (!r.ok) throw new Error('cache full');
      return { seqId: i, tokens: p.slice(r.cachedTokens), slots: r.slots };
    });
    const out: number[][] = prompts.map(() => []);
    let { logits } = model.forward(cache, seqs);
    for (let step = 0; step < 64; step++) {
      const data = await logits.data();
      logits.dispose();
      const next = prompts.map((_, i) => argmax(data.subarray(i * 320, (i + 1) * 320)));
      next.forEach((t, i) => out[i]!.push(t));
      if (step === 63) break;
      const dec = next.map((t, i) => ({ seqId: i, tokens: [t], slots: cache.appendOrThrow(i, [t]) }));
      ({ logits } = model.forward(cache, dec));
    }
    TRANSCRIPTS.forEach(([, want], i) => expect(out[i]).toEqual(want));
  });

  // Measured when written (first 4096 bytes): q8_0 nll +6e-5, KL 5.6e-5, top-1 99.7%; q4_0 nll -4e-4, KL 1.9e-3,
  // top-1 97.4%. The bounds leave room for kernel changes but not for a broken format (KL ~1 or more).
  for (const [fmt, dNll, maxKl, minTop1] of [['q8_0', 0.005, 5e-4, 0.99], ['q4_0', 0.03, 1e-2, 0.95]] as const)
    it(`${fmt} weights stay close to the f32 model (perplexity, KL, top-1 agreement)`, async () => {
      const q = await loadModel(DIR, { quantize: fmt });
      try {
        const text = readFileSync(DIR + 'eval.txt').subarray(0, 4096);
        const tokens = [1, ...Array.from(text, (b) => b + 3)];
        const r = await evaluate(q, tokens, { reference: model });
        expect(Math.abs(r.nllPerToken - 1.07759)).toBeLessThan(dNll);
        expect(r.kl!).toBeLessThan(maxKl);
        expect(r.kl!).toBeGreaterThan(0);
        expect(r.top1Agreement!).toBeGreaterThan(minTop1);
      } finally {
        q.dispose();
      }
    });

  // The same model from a GGUF file (written here by hfToGguf, llama.cpp's layout with its q/k row permutation):
  // as stored (BF16) it must give exactly the safetensors logits; as Q8_0 (every 2-D tensor, lm_head included, as
  // llama.cpp quantizes it) it stays close.
  it('loads from GGUF with the same logits as from safetensors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lk-gguf-'));
    const toks = [1, ...Array.from(readFileSync(DIR + 'eval.txt').subarray(0, 200), (b) => b + 3)];
    const logitsOf = (m: LlamaForCausalLM) => allLogits(m, toks);
    const want = await logitsOf(model);
    for (const outtype of ['keep', 'Q8_0'] as const) {
      const path = join(dir, `tiny-py-${outtype}.gguf`);
      writeFileSync(path, hfToGguf(DIR, { outtype }));
      const g = await loadModel(path);
      try {
        expect(g.config.numKvHeads).toBe(2);
        const got = await logitsOf(g);
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
        if (outtype === 'keep') expect(worst).toBe(0);
        else {
          expect(worst).toBeGreaterThan(0);
          const r = await evaluate(g, toks, { reference: model });
          expect(r.kl!).toBeLessThan(1e-3);
          expect(r.top1Agreement!).toBeGreaterThan(0.95);
        }
      } finally {
        g.dispose();
      }
    }
  });
});
