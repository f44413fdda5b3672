// PagedKvCache end to end: the block manager's slots, copies and prefix hits applied to real K/V memory, checked by
// attention. Each sequence keeps its logical list of K/V rows here; attention through the cache must equal dense
// attention over that list (a wrong copy-on-write, a shared block written in place, or a prefix hit mapped to the
// wrong block changes the result).
import { describe, expect, it } from 'vitest';
import { kvFullError, LlmKernelsError, PagedKvCache, Tensor, type KvDType } from '../../lib/index.js';
import { Rng } from '../../lib/random.js';
import { compare, expectThrows } from '../helpers/check.js';

const Hkv = 2;
const H = 4;
const D = 16;

/** K and V of a token: a function of (token id, position), as in a model (same prefix, same K/V). */
function kvOf(token: number, pos: number): { k: Float32Array; v: Float32Array } {
  const rng = new Rng(token * 7919 + pos * 104729 + 1);
  return { k: rng.fillNormal(new Float32Array(Hkv * D)), v: rng.fillNormal(new Float32Array(Hkv * D)) };
}

class Seq {
  tokens: number[] = [];
  constructor(readonly id: number) {}
}

function write(cache: PagedKvCache, seq: Seq, from: number, slots: Int32Array): void {
  const n = slots.length;
  const k = new Float32Array(n * Hkv * D);
  const v = new Float32Array(n * Hkv * D);
  for (let i = 0; i < n; i++) {
    const pos = from + i;
    const r = kvOf(seq.tokens[pos]!, pos);
    k.set(r.k, i * Hkv * D);
    v.set(r.v, i * Hkv * D);
  }
  for (let l = 0; l < cache.numLayers; l++) {
    using kt = Tensor.fromArray(k, { shape: [n, Hkv, D] });
    using vt = Tensor.fromArray(v, { shape: [n, Hkv, D] });
    cache.write(l, kt, vt, slots);
  }
}

/** Dense attention of queries at the last nq positions of seq, in double. */
function dense(seq: Seq, q: Float32Array, nq: number): Float64Array {
  const G = H / Hkv;
  const L = seq.tokens.length;
  const rows = Array.from({ length: L }, (_, t) => kvOf(seq.tokens[t]!, t));
  const out: number[] = [];
  for (let i = 0; i < nq; i++) {
    const pos = L - nq + i;
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      const s: number[] = [];
      for (let t = 0; t <= pos; t++) {
        let dot = 0;
        for (let j = 0; j < D; j++) dot += q[(i * H + h) * D + j]! * rows[t]!.k[kh * D + j]!;
        s.push(dot / Math.sqrt(D));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const l = e.reduce((a, x) => a + x, 0);
      for (let j = 0; j < D; j++) {
        let acc = 0;
        for (let t = 0; t <= pos; t++) acc += (e[t]! / l) * rows[t]!.v[kh * D + j]!;
        out.push(acc);
      }
    }
  }
  return Float64Array.from(out);
}

async function expectDecodeMatches(cache: PagedKvCache, seqs: Seq[], label: string): Promise<void> {
  const q = new Rng(seqs.length).fillNormal(new Float32Array(seqs.length * H * D));
  using batch = cache.batch(seqs.map((s) => s.id));
  for (let l = 0; l < cache.numLayers; l++) {
    using qt = Tensor.fromArray(q, { shape: [seqs.length, H, D] });
    using y = cache.decode(l, qt, batch);
    const got = await y.toFloat32();
    seqs.forEach((s, b) => {
      const want = dense(s, q.subarray(b * H * D, (b + 1) * H * D), 1);
      const r = compare('paged_attention_decode', cache.dtype === 'f32' ? 'f32' : 'bf16', got.subarray(b * H * D, (b + 1) * H * D), want, `${label} seq ${s.id} layer ${l}`);
      if (!r.ok) throw new Error(r.message);
    });
  }
}

describe('PagedKvCache', () => {
  for (const dtype of ['f32', 'f16'] as KvDType[])
    it(`fork and copy-on-write keep each sequence's own K/V (${dtype})`, async () => {
      using cache = new PagedKvCache({ numLayers: 2, numBlocks: 16, blockSize: 4, numKvHeads: Hkv, headDim: D, dtype });
      const a = new Seq(1);
      a.tokens = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
      const r = cache.addSequence(1, a.tokens);
      if (!r.ok) throw new Error('full');
      write(cache, a, 0, r.slots);
      cache.fork(1, 2);
      const b = new Seq(2);
      b.tokens = a.tokens.slice();
      // Both append to the shared, partly filled last block: the first appender gets a copy.
      a.tokens.push(100);
      const ra = cache.append(1, [100]);
      if (!ra.ok) throw new Error('full');
      expect(ra.copies.length).toBe(2);
      write(cache, a, 10, ra.slots);
      b.tokens.push(200);
      const rb = cache.append(2, [200]);
      if (!rb.ok) throw new Error('full');
      expect(rb.copies.length).toBe(0);
      write(cache, b, 10, rb.slots);
      await expectDecodeMatches(cache, [a, b], 'after fork');
      // Grow both past a block boundary and check again.
      for (let i = 0; i < 6; i++) {
        for (const s of [a, b]) {
          s.tokens.push(300 + i + s.id);
          const rr = cache.append(s.id, [s.tokens.at(-1)!]);
          if (!rr.ok) throw new Error('full');
          write(cache, s, s.tokens.length - 1, rr.slots);
        }
      }
      await expectDecodeMatches(cache, [a, b], 'after growth');
    });

  it('a prefix hit reuses the cached blocks: only the rest is written', async () => {
    using cache = new PagedKvCache({ numLayers: 1, numBlocks: 12, blockSize: 4, numKvHeads: Hkv, headDim: D, dtype: 'f32' });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const a = new Seq(1);
    a.tokens = prompt.slice();
    const r = cache.addSequence(1, prompt);
    if (!r.ok) throw new Error('full');
    write(cache, a, 0, r.slots);
    cache.free(1);
    const b = new Seq(2);
    b.tokens = [...prompt.slice(0, 12), 99];
    const rb = cache.addSequence(2, b.tokens);
    if (!rb.ok) throw new Error('full');
    expect(rb.cachedTokens).toBe(12);
    expect(rb.slots.length).toBe(1);
    write(cache, b, 12, rb.slots);
    await expectDecodeMatches(cache, [b], 'prefix hit');
    expect(cache.stats().hitRate).toBeGreaterThan(0);
  });

  it('prefill over a ragged batch equals dense causal attention', async () => {
    using cache = new PagedKvCache({ numLayers: 1, numBlocks: 20, blockSize: 8, numKvHeads: Hkv, headDim: D, dtype: 'f32' });
    const a = new Seq(1);
    a.tokens = Array.from({ length: 19 }, (_, i) => i + 1);
    const b = new Seq(2);
    b.tokens = Array.from({ length: 7 }, (_, i) => 50 + i);
    for (const s of [a, b]) {
      const r = cache.addSequence(s.id, s.tokens);
      if (!r.ok) throw new Error('full');
      write(cache, s, 0, r.slots);
    }
    const nq = [5, 7];
    using batch = cache.batch([1, 2], nq);
    const q = new Rng(3).fillNormal(new Float32Array(12 * H * D));
    using qt = Tensor.fromArray(q, { shape: [12, H, D] });
    using y = cache.prefill(0, qt, batch);
    const got = await y.toFloat32();
    const want = Float64Array.from([...dense(a, q.subarray(0, 5 * H * D), 5), ...dense(b, q.subarray(5 * H * D), 7)]);
    const r = compare('paged_attention_prefill', 'f32', got, want, 'prefill');
    if (!r.ok) throw new Error(r.message);
  });

  it('out of blocks is a result (or ERR_KV_FULL), and nothing changes', () => {
    using cache = new PagedKvCache({ numLayers: 1, numBlocks: 3, blockSize: 4, numKvHeads: Hkv, headDim: D, dtype: 'i8' });
    expect(cache.addSequence(1, [1, 2, 3, 4, 5, 6, 7, 8, 9]).ok).toBe(true);
    const before = cache.stats();
    const r = cache.addSequence(2, [1, 2, 3, 4, 5]);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe('ERR_KV_FULL');
      const e = kvFullError('addSequence', r);
      expect(e).toBeInstanceOf(LlmKernelsError);
      expect(e.code).toBe('ERR_KV_FULL');
    }
    expect(cache.appendOrThrow(1, [10, 11, 12])).toHaveLength(3);
    expectThrows(() => cache.appendOrThrow(1, [13]), LlmKernelsError, 'ERR_KV_FULL', /append: expected 1 free KV block/);
    expect(cache.stats().used).toBe(3);
    expect(before.used).toBe(3);
    expect(cache.manager.sequences()).toEqual([1]);
  });

  it('validates its options and refuses use after dispose', () => {
    expectThrows(() => new PagedKvCache({ numLayers: 0, numBlocks: 4, blockSize: 4, numKvHeads: 1, headDim: 8 }), RangeError, 'ERR_OUT_OF_RANGE', /numLayers/);
    expectThrows(() => new PagedKvCache({ numLayers: 1, numBlocks: 4, blockSize: 4, numKvHeads: 1, headDim: 8, dtype: 'q4_0' as KvDType }), RangeError, 'ERR_OUT_OF_RANGE', /options.dtype/);
    expectThrows(() => new PagedKvCache(null as never), TypeError, 'ERR_INVALID_ARG_TYPE', /options/);
    const cache = new PagedKvCache({ numLayers: 2, numBlocks: 4, blockSize: 4, numKvHeads: 1, headDim: 8, dtype: 'f8e4m3' });
    expect(cache.bytes).toBe(2 * 4 * 1 * 2 * 4 * (8 + 4));
    expect(cache.layer(1).kv.dtype).toBe('f8e4m3');
    expectThrows(() => cache.layer(2), RangeError, 'ERR_OUT_OF_RANGE', /\bl\b/);
    cache.dispose();
    cache.dispose();
    expectThrows(() => cache.layer(0), LlmKernelsError, 'ERR_DISPOSED');
    expectThrows(() => cache.addSequence(1, [1]), LlmKernelsError, 'ERR_DISPOSED');
  });
});
