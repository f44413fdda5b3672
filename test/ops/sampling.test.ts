// argmax and top_k (lib/ops/sampling.ts, native/cpu/ref/sampling_ref.cc) on every backend against the reference, the
// reference against a plain JS transcription of the spec, the rejected rows (NaN, +Inf, all -Inf), ties, argument
// checks; and the Sampler's tensor path (Sampler.sampleTensor / sampleRows), which must give the array path's token,
// token for token, over many seeds and option sets (its argument is in lib/nn/sampler.ts's header).
import { describe, expect, it } from 'vitest';
import { argmax, LlmKernelsError, Sampler, Tensor, topK, TOP_K_MAX, type SamplerOptions } from '../../lib/index.js';
import type { FloatDType } from '../../lib/dtype.js';
import { withReferenceBackend } from '../../lib/tensor.js';
import { Rng } from '../../lib/random.js';
import { BACKENDS, checkOp, expectThrows, randomData } from '../helpers/check.js';

const FLOATS: FloatDType[] = ['f32', 'f16', 'bf16'];

// The spec in JS over f32 values (as the tensor holds them): a rejected row, else the ids by value descending, ties
// by lower id (Array.prototype.sort is stable).
function specRow(row: Float32Array): number[] | null {
  if (row.some((v) => Number.isNaN(v) || v === Infinity) || !row.some((v) => Number.isFinite(v))) return null;
  return Array.from(row.keys()).sort((a, b) => (row[b]! > row[a]! ? 1 : row[b]! < row[a]! ? -1 : 0));
}

// Random logits with ties: quantized to steps of 1/4 when `ties`, some -Inf when `masked`.
function logitsData(n: number, seed: number, ties: boolean, masked: boolean): Float32Array {
  const a = randomData(n, seed);
  const rng = new Rng(seed ^ 0x51);
  for (let i = 0; i < n; i++) {
    if (ties) a[i] = Math.round(a[i]! * 4) / 4;
    if (masked && rng.uniform() < 0.2) a[i] = -Infinity;
  }
  return a;
}

const SHAPES: [number, number][] = [[1, 1], [3, 7], [5, 33], [2, 1000], [3, 4099], [1, 152064]];

describe('argmax: every backend vs the reference', () => {
  for (const dtype of FLOATS)
    for (const [B, V] of SHAPES)
      for (const kind of ['random', 'ties', 'special'] as const)
        it(`argmax(B=${B},V=${V},${dtype},${kind})`, () =>
          checkOp({
            name: `argmax(B=${B},V=${V},${dtype},${kind})`,
            op: 'argmax',
            inputs: [{ data: kind === 'special' ? randomData(B * V, B + V, true) : logitsData(B * V, B * V + 1, kind === 'ties', kind === 'ties'), shape: [B, V], dtype }],
            run: ([t]) => argmax(t!),
          }));
});

describe('top_k: every backend vs the reference', () => {
  for (const dtype of FLOATS)
    for (const [B, V] of SHAPES)
      for (const k of [1, 7, 50, 1024])
        if (k <= V)
          for (const kind of ['random', 'ties'] as const)
            for (const out of ['values', 'ids'] as const)
              it(`top_k(B=${B},V=${V},k=${k},${dtype},${kind}) ${out}`, () =>
                checkOp({
                  name: `top_k(B=${B},V=${V},k=${k},${dtype},${kind}) ${out}`,
                  op: 'top_k',
                  inputs: [{ data: logitsData(B * V, B * V + k, kind === 'ties', kind === 'ties'), shape: [B, V], dtype }],
                  run: ([t]) => {
                    const r = topK(t!, k);
                    if (out === 'values') {
                      r.ids.dispose();
                      return r.values;
                    }
                    r.values.dispose();
                    return r.ids;
                  },
                }));
  it('top_k with special values (rejected rows) on every backend', () =>
    checkOp({
      name: 'top_k(B=9,V=33,k=7,special) ids',
      op: 'top_k',
      inputs: [{ data: randomData(9 * 33, 5, true), shape: [9, 33], dtype: 'f32' }],
      run: ([t]) => {
        const r = topK(t!, 7);
        r.values.dispose();
        return r.ids;
      },
    }));
});

describe('argmax / top_k: the reference is the spec', () => {
  // Rows: plain, ties at the top, +0 and -0 tie, -Inf, NaN, +Inf, all -Inf, a single finite value among -Inf.
  const rows: number[][] = [
    [0.5, 2, 2, -1, 0.25, 2, -3],
    [-0, 0, -1, -1, -2, 0, -0],
    [-Infinity, -1, -Infinity, -1, 3, -Infinity, 3],
    [1, 2, NaN, 4, 5, 6, 7],
    [1, 2, 3, Infinity, 5, 6, 7],
    [-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity],
    [-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, 7, -Infinity],
  ];
  const data = new Float32Array(rows.flat());
  for (const b of BACKENDS)
    for (const ref of [true, false])
      it(`${ref ? 'ref' : b.name}: fixed rows`, async () => {
        const run = <T>(f: () => T): T => (ref ? withReferenceBackend(f) : b.use(f));
        using x = Tensor.fromArray(data, { shape: [rows.length, 7], device: b.device });
        using ids = run(() => argmax(x));
        const got = Array.from((await ids.data()) as Int32Array);
        const want = rows.map((r) => specRow(Float32Array.from(r))?.[0] ?? -1);
        expect(got).toEqual(want);
        expect(want).toEqual([1, 0, 4, -1, -1, -1, 5]); // row 1: -0 and +0 tie, the lowest index wins
        for (const k of [1, 3, 7]) {
          const t = run(() => topK(x, k));
          try {
            const vals = (await t.values.data()) as Float32Array;
            const idv = (await t.ids.data()) as Int32Array;
            rows.forEach((r, i) => {
              const spec = specRow(Float32Array.from(r));
              const gotIds = Array.from(idv.subarray(i * k, (i + 1) * k));
              const gotVals = Array.from(vals.subarray(i * k, (i + 1) * k));
              if (spec === null) {
                expect(gotIds).toEqual(new Array(k).fill(-1));
                expect(gotVals.every((v) => Number.isNaN(v))).toBe(true);
              } else {
                expect(gotIds).toEqual(spec.slice(0, k));
                expect(gotVals.map((v) => Object.is(v, -0) ? '-0' : v)).toEqual(spec.slice(0, k).map((j) => (Object.is(r[j], -0) ? '-0' : r[j])));
              }
            });
          } finally {
            t.values.dispose();
            t.ids.dispose();
          }
        }
      });
  it('the reference matches the JS spec on random rows with ties and -Inf (f16, V = 1000, k = 50)', async () => {
    const B = 4, V = 1000, k = 50;
    const d = logitsData(B * V, 77, true, true);
    using x = Tensor.fromArray(d, { shape: [B, V], dtype: 'f16' });
    using xf = x.cast('f32');
    const f = (await xf.data()) as Float32Array;
    const t = withReferenceBackend(() => topK(x, k));
    using a = withReferenceBackend(() => argmax(x));
    try {
      const idv = (await t.ids.data()) as Int32Array;
      const av = (await a.data()) as Int32Array;
      for (let b = 0; b < B; b++) {
        const spec = specRow(f.subarray(b * V, (b + 1) * V))!;
        expect(Array.from(idv.subarray(b * k, (b + 1) * k))).toEqual(spec.slice(0, k));
        expect(av[b]).toBe(spec[0]);
      }
    } finally {
      t.values.dispose();
      t.ids.dispose();
    }
  });
});

describe('argmax / topK: arguments', () => {
  it('checks logits and k', () => {
    using x = Tensor.zeros([2, 5]);
    using flat = Tensor.zeros([5]);
    using empty = Tensor.zeros([2, 0]);
    using i32 = Tensor.zeros([2, 5], { dtype: 'i32' });
    expectThrows(() => argmax(flat), RangeError, undefined, /^argmax: expected logits of shape \[B, V\] with 1 <= V < 2\^31 for logits.shape, got \[5\]$/);
    expectThrows(() => argmax(empty), RangeError, undefined, /for logits.shape, got \[2,0\]/);
    expectThrows(() => argmax(i32), TypeError, undefined, /^argmax: expected a float dtype \('f32', 'f16', 'bf16'\) for logits.dtype, got "i32"$/);
    expectThrows(() => argmax({} as unknown as Tensor), TypeError, undefined, /argmax/);
    expectThrows(() => topK(x, 0), RangeError, undefined, /^topK: expected an integer in \[1, 5\] for k, got 0$/);
    expectThrows(() => topK(x, 6), RangeError, undefined, /^topK: expected an integer in \[1, 5\] for k, got 6$/);
    expectThrows(() => topK(x, 1.5), RangeError, undefined, /for k, got 1.5/);
    expectThrows(() => topK(x, '2' as unknown as number), TypeError, undefined, /^topK: expected an integer for k, got "2"$/);
    expectThrows(() => topK(flat, 1), RangeError, undefined, /^topK: expected logits of shape \[B, V\]/);
    using wide = Tensor.zeros([1, 2000]);
    expectThrows(() => topK(wide, TOP_K_MAX + 1), RangeError, undefined, /^topK: expected an integer in \[1, 1024\] for k, got 1025$/);
    const d = Tensor.zeros([1, 3]);
    d.dispose();
    expectThrows(() => argmax(d), LlmKernelsError, 'ERR_DISPOSED');
    expectThrows(() => topK(d, 1), LlmKernelsError, 'ERR_DISPOSED');
  });
  it('B = 0 gives empty outputs', async () => {
    using x = Tensor.zeros([0, 5]);
    using ids = argmax(x);
    expect(ids.shape).toEqual([0]);
    const t = topK(x, 2);
    expect(t.values.shape).toEqual([0, 2]);
    t.values.dispose();
    t.ids.dispose();
  });
});

// The tensor path against the array path: two Samplers with the same options and seed, one fed arrays (the logits
// as f32, as the tensor holds them), one fed the tensor; every token equal.
describe('Sampler: the tensor path gives the array path\'s tokens', () => {
  const optionSets: SamplerOptions[] = [
    {},
    { temperature: 0.8, topK: 40 },
    { temperature: 1, topK: 5, topP: 0.9, minP: 0.05 },
    { temperature: 0.7, topK: 1 },
    { temperature: 1.3, topK: 50, topP: 0.5 },
    { temperature: 1, topK: 3, repetitionPenalty: 1.3 }, // downloads the row
    { temperature: 0.9 }, // no top-k: downloads the row
    { temperature: 0.9, topK: 1023 }, // topK + 1 > 1024 for V >= 1024: downloads
    { repetitionPenalty: 1.2 }, // greedy with a penalty: downloads
  ];
  for (const b of BACKENDS)
    for (const dtype of ['f32', 'bf16'] as FloatDType[])
      for (const [oi, opts] of optionSets.entries())
        for (const kind of ['random', 'ties'] as const)
          it(`${b.name} ${dtype} ${JSON.stringify(opts)} ${kind}`, async () => {
            const V = kind === 'ties' ? 40 : 1500;
            for (let seed = 0; seed < 12; seed++) {
              const host = new Sampler({ ...opts, seed });
              const dev = new Sampler({ ...opts, seed });
              const history: number[] = [];
              for (let step = 0; step < 4; step++) {
                // ties: quantized logits, so the k-th value often ties with the next (the fallback path)
                const d = logitsData(V, seed * 131 + step * 7 + oi, kind === 'ties', step % 2 === 1);
                using x = Tensor.fromArray(d, { shape: [V], dtype, device: b.device });
                using xf = x.cast('f32');
                const row = (await xf.toFloat32()) as Float32Array;
                const want = host.sample(row, history);
                const got = await b.use(() => dev.sampleTensor(x, history));
                expect(got, `seed ${seed} step ${step}`).toBe(want);
                history.push(want);
              }
            }
          });
  it('sampleRows: B rows with their own samplers and histories, mixed plans', async () => {
    const B = 6, V = 700;
    const opts: SamplerOptions[] = [{}, { temperature: 0.8, topK: 20 }, { temperature: 1, topK: 20, topP: 0.8 }, { temperature: 1, topK: 7 }, { temperature: 1 }, { repetitionPenalty: 1.5 }];
    for (const b of BACKENDS)
      for (let seed = 0; seed < 8; seed++) {
        const hosts = opts.map((o) => new Sampler({ ...o, seed }));
        const devs = opts.map((o) => new Sampler({ ...o, seed }));
        const histories = opts.map((_, i) => [i, 2 * i + 1]);
        const d = logitsData(B * V, seed + 1000, seed % 2 === 0, seed % 3 === 0);
        using x = Tensor.fromArray(d, { shape: [B, V], device: b.device });
        const want = hosts.map((s, i) => s.sample(d.subarray(i * V, (i + 1) * V), histories[i]));
        const got = await Sampler.sampleRows(devs, x, histories);
        expect(got).toEqual(want);
      }
  });
  it('a rejected row throws the array path\'s RangeError', async () => {
    for (const opts of [{}, { temperature: 1, topK: 3 }] as SamplerOptions[])
      for (const row of [[1, NaN, 3, 2], [1, 2, Infinity, 0], [-Infinity, -Infinity, -Infinity, -Infinity]]) {
        const a = Float32Array.from(row);
        let msg = '';
        try {
          new Sampler(opts).sample(a);
        } catch (e) {
          msg = (e as Error).message;
        }
        expect(msg).toMatch(/^sample: expected/);
        using x = Tensor.fromArray(a, { shape: [4] });
        await expect(new Sampler(opts).sampleTensor(x)).rejects.toThrow(msg);
        await expect(new Sampler(opts).sampleTensor(x)).rejects.toBeInstanceOf(RangeError);
      }
  });
  it('a bad history throws the array path\'s error', async () => {
    using x = Tensor.fromArray(new Float32Array([1, 2, 3]), { shape: [3] });
    await expect(new Sampler().sampleTensor(x, [0, 3])).rejects.toThrow('sample: expected a token id in [0, 2] for history[1], got 3');
    await expect(new Sampler({ temperature: 1, topK: 1 }).sampleTensor(x, [0, 1.5])).rejects.toThrow(/history\[1\]/);
  });
  it('checks its arguments', async () => {
    using x = Tensor.zeros([2, 5]);
    await expect(new Sampler().sampleTensor(x)).rejects.toThrow(/^sampleTensor: expected logits of shape \[V\] or \[1, V\] for logits.shape, got \[2,5\]$/);
    await expect(new Sampler().sampleTensor(new Float32Array(3) as unknown as Tensor)).rejects.toBeInstanceOf(TypeError);
    await expect(Sampler.sampleRows([new Sampler()], x)).rejects.toThrow(/^sampleRows: expected 2 Samplers \(one per row of logits\) for samplers.length, got 1$/);
    await expect(Sampler.sampleRows([new Sampler(), {} as Sampler], x)).rejects.toBeInstanceOf(TypeError);
    await expect(Sampler.sampleRows([new Sampler(), new Sampler()], x, [[]])).rejects.toThrow(/histories.length/);
  });
});
