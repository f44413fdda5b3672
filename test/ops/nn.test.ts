// The layer ops (embedding, rms_norm, add_rms_norm, rope, silu_mul) on every backend against the reference, the
// reference against a float64 transcription of Hugging Face's definitions, and their argument checks.
import { describe, expect, it } from 'vitest';
import { addRmsNorm, embedding, gelu, layerNorm, silu, LlmKernelsError, rmsNorm, rope, siluMul, Tensor } from '../../lib/index.js';
import type { DType, FloatDType } from '../../lib/dtype.js';
import { BACKENDS, checkOp, expectThrows, randomData } from '../helpers/check.js';
import { cacheWrite, PagedKvCache, ropeCacheWrite } from '../../lib/index.js';
import { withReferenceBackend } from '../../lib/tensor.js';

const FLOATS: FloatDType[] = ['f32', 'f16', 'bf16'];
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

function ids(n: number, V: number, seed: number): Int32Array {
  const r = randomData(n, seed);
  return Int32Array.from(r, (v, i) => (i === 0 ? V - 1 : Math.floor(Math.abs(v * 7919)) % V));
}

describe('embedding', () => {
  for (const dtype of FLOATS)
    for (const out of ['f32', dtype] as FloatDType[])
      for (const [V, E, T] of [[1, 1, 1], [7, 33, 7], [320, 256, 64], [33, 4099, 3]] as const)
        it(`embedding(V=${V},E=${E},T=${T},${dtype}->${out})`, () => {
          const idx = ids(T, V, V + T);
          return checkOp({
            name: `embedding(${V},${E},${T},${dtype}->${out})`,
            op: 'embedding',
            inputs: [{ data: randomData(V * E, 3, true), shape: [V, E], dtype }],
            run: ([t]) => embedding(t!, idx, { dtype: out }),
          });
        });
  it('returns the rows it names (value check)', () => {
    using table = Tensor.fromArray(new Float32Array([0, 1, 10, 11, 20, 21]), { shape: [3, 2] });
    using y = embedding(table, new Int32Array([2, 0, 2]));
    expect(Array.from(y.dataSync())).toEqual([20, 21, 0, 1, 20, 21]);
  });
  it('checks ids and shapes', () => {
    using table = Tensor.zeros([4, 3]);
    expectThrows(() => embedding(table, new Int32Array([0, 4])), RangeError, undefined, /expected an id in \[0, 4\) for ids\[1\], got 4/);
    expectThrows(() => embedding(table, new Int32Array([-1])), RangeError, undefined, /ids\[0\]/);
    expectThrows(() => embedding(table, [1, 2] as unknown as Int32Array), TypeError, undefined, /Int32Array or an i32 Tensor/);
    using flat = Tensor.zeros([12]);
    expectThrows(() => embedding(flat, new Int32Array([0])), RangeError, undefined, /table \[V, E\]/);
    using i8 = Tensor.zeros([4, 3], { dtype: 'i8' });
    expectThrows(() => embedding(i8, new Int32Array([0])), TypeError, undefined, /table\.dtype/);
    expectThrows(() => embedding(table, new Int32Array([0]), { dtype: 'i32' as FloatDType }), TypeError, undefined, /options\.dtype/);
  });
  it('reports an out-of-range id in an i32 tensor when the output is read', async () => {
    using table = Tensor.zeros([4, 3]);
    using bad = Tensor.fromArray(new Int32Array([1, 9]), { dtype: 'i32' });
    using y = embedding(table, bad);
    await expect(y.data()).rejects.toThrow(/expected ids in \[0, 4\) for ids\[1\], got 9/);
  });
});

// Hugging Face's RMSNorm in float64: x / sqrt(mean(x^2) + eps) * w.
function rmsNormF64(x: Float64Array, w: Float64Array, N: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / N; r++) {
    let ss = 0;
    for (let j = 0; j < N; j++) ss += x[r * N + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / N + eps);
    for (let j = 0; j < N; j++) y[r * N + j] = x[r * N + j]! * inv * w[j]!;
  }
  return y;
}

function near(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number): void {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (Math.abs(want[i]!) + 1e-3));
  expect(worst).toBeLessThan(rtol);
}

describe('rms_norm and add_rms_norm', () => {
  for (const dtype of FLOATS)
    for (const wdt of ['f32', dtype] as FloatDType[])
      for (const shape of [[1, 1], [1, 7], [7, 33], [5, 256], [33, 688], [2, 3, 4099]]) {
        const N = shape[shape.length - 1]!;
        const eps = N === 7 ? 0.5 : 1e-5;
        const x = { data: randomData(numel(shape), 21 + N), shape, dtype };
        const r = { data: randomData(numel(shape), 22 + N), shape, dtype };
        const w = { data: randomData(N, 23 + N), shape: [N], dtype: wdt as DType };
        it(`rms_norm(shape=[${shape}],${dtype},w=${wdt})`, () =>
          checkOp({ name: `rms_norm(${shape},${dtype},${wdt})`, op: 'rms_norm', inputs: [x, w], run: ([a, b]) => rmsNorm(a!, b!, eps) }));
        it(`add_rms_norm(shape=[${shape}],${dtype},w=${wdt}) y`, () =>
          checkOp({ name: `add_rms_norm(${shape},${dtype},${wdt})`, op: 'add_rms_norm', inputs: [x, r, w], run: ([a, b, c]) => keep(addRmsNorm(a!, b!, c!, eps), 'y') }));
        it(`add_rms_norm(shape=[${shape}],${dtype},w=${wdt}) sum`, () =>
          checkOp({ name: `add_rms_norm.sum(${shape},${dtype},${wdt})`, op: 'add', inputs: [x, r, w], run: ([a, b, c]) => keep(addRmsNorm(a!, b!, c!, eps), 'sum') }));
      }
  it('matches a float64 transcription of LlamaRMSNorm (f32)', () => {
    const N = 688;
    const xs = randomData(3 * N, 5);
    const ws = randomData(N, 6);
    using x = Tensor.fromArray(xs, { shape: [3, N] });
    using w = Tensor.fromArray(ws);
    using y = rmsNorm(x, w, 1e-6);
    near(y.dataSync(), rmsNormF64(Float64Array.from(xs), Float64Array.from(ws), N, 1e-6), 1e-5);
    using r = Tensor.fromArray(xs.map((v) => -v / 2), { shape: [3, N] });
    const { sum, y: y2 } = addRmsNorm(x, r, w, 1e-6);
    using _s = sum;
    using _y = y2;
    near(sum.dataSync(), Float64Array.from(xs, (v) => v / 2), 1e-6);
    near(y2.dataSync(), rmsNormF64(Float64Array.from(xs, (v) => v / 2), Float64Array.from(ws), N, 1e-6), 1e-5);
  });
  it('checks its arguments', () => {
    using x = Tensor.zeros([2, 4]);
    using w = Tensor.zeros([4]);
    using w5 = Tensor.zeros([5]);
    expectThrows(() => rmsNorm(x, w5, 1e-5), RangeError, undefined, /expected weight of shape \[N=4\] for weight\.shape, got \[5\]/);
    expectThrows(() => rmsNorm(x, w, 0), RangeError, undefined, /eps/);
    expectThrows(() => rmsNorm(x, w, NaN), RangeError, undefined, /eps/);
    using xi = Tensor.zeros([2, 4], { dtype: 'i32' });
    expectThrows(() => rmsNorm(xi, w, 1e-5), TypeError, undefined, /x\.dtype/);
    using r3 = Tensor.zeros([2, 3]);
    expectThrows(() => addRmsNorm(x, r3, w, 1e-5), RangeError, undefined, /residual of x's shape \[2,4\]/);
    using rh = Tensor.zeros([2, 4], { dtype: 'f16' });
    expectThrows(() => addRmsNorm(x, rh as unknown as Tensor<'f32'>, w, 1e-5), TypeError, undefined, /residual\.dtype/);
    x.dispose();
    expectThrows(() => rmsNorm(x, w, 1e-5), LlmKernelsError, 'ERR_DISPOSED');
  });
});

function keep<T extends { dispose(): void }>(o: Record<'sum' | 'y', T>, k: 'sum' | 'y'): T {
  (k === 'sum' ? o.y : o.sum).dispose();
  return o[k];
}

// Hugging Face's rotary embedding in float64, both pairings; the angle rounded to f32 like theirs.
function ropeF64(x: Float64Array, T: number, H: number, D: number, pos: Int32Array, freq: Float32Array, interleaved: boolean): Float64Array {
  const y = Float64Array.from(x);
  const half = freq.length;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(pos[t]! * freq[i]!);
        const [a, b] = interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
        const o = (t * H + h) * D;
        y[o + a] = x[o + a]! * Math.cos(ang) - x[o + b]! * Math.sin(ang);
        y[o + b] = x[o + b]! * Math.cos(ang) + x[o + a]! * Math.sin(ang);
      }
  return y;
}

describe('rope', () => {
  const invFreq = (R: number) => Float32Array.from({ length: R / 2 }, (_, i) => 10000 ** ((-2 * i) / R));
  for (const dtype of FLOATS)
    for (const [T, H, D, R] of [[1, 1, 2, 2], [7, 3, 64, 64], [33, 4, 128, 128], [5, 2, 80, 40], [9, 8, 96, 96], [3, 2, 256, 256]] as const)
      for (const pairing of ['rotate-half', 'interleaved'] as const)
        it(`rope(T=${T},H=${H},D=${D},R=${R},${pairing},${dtype})`, () => {
          const pos = Int32Array.from({ length: T }, (_, t) => (t * 7919) % 40000);
          return checkOp({
            name: `rope(${T},${H},${D},${R},${pairing},${dtype})`,
            op: 'rope',
            inputs: [{ data: randomData(T * H * D, T + D), shape: [T, H, D], dtype }],
            run: ([x]) => rope(x!, pos, invFreq(R), { pairing }),
          });
        });
  for (const interleaved of [false, true])
    it(`matches a float64 transcription of Hugging Face's rotary embedding (${interleaved ? 'interleaved' : 'rotate-half'})`, () => {
      const [T, H, D, R] = [6, 3, 64, 48];
      const xs = randomData(T * H * D, 9);
      const pos = new Int32Array([0, 1, 2, 100, 1023, 30000]);
      using x = Tensor.fromArray(xs, { shape: [T, H, D] });
      using y = rope(x, pos, invFreq(R), { pairing: interleaved ? 'interleaved' : 'rotate-half' });
      near(y.dataSync(), ropeF64(Float64Array.from(xs), T, H, D, pos, invFreq(R), interleaved), 1e-5);
    });
  it('checks its arguments', () => {
    using x = Tensor.zeros([2, 1, 8]);
    expectThrows(() => rope(x, new Int32Array([0, -1]), invFreq(8)), RangeError, undefined, /positions\[1\]/);
    expectThrows(() => rope(x, new Int32Array([0]), invFreq(8)), RangeError, undefined, /2 elements/);
    expectThrows(() => rope(x, new Int32Array([0, 1]), invFreq(10)), RangeError, undefined, /invFreq of length R\/2 in \[1, D\/2=4\]/);
    expectThrows(() => rope(x, new Int32Array([0, 1]), new Float32Array([NaN])), RangeError, undefined, /invFreq\[0\]/);
    expectThrows(() => rope(x, new Int32Array([0, 1]), invFreq(8), { pairing: 'neox' as 'interleaved' }), RangeError, undefined, /pairing/);
    using x2 = Tensor.zeros([2, 8]);
    expectThrows(() => rope(x2, new Int32Array([0, 1]), invFreq(8)), RangeError, undefined, /\[T, H, D\]/);
  });
});

describe('silu_mul', () => {
  for (const dtype of FLOATS)
    for (const [rows, F] of [[1, 1], [1, 7], [7, 33], [5, 688], [33, 768], [2, 4099]] as const)
      it(`silu_mul(rows=${rows},F=${F},${dtype})`, () =>
        checkOp({
          name: `silu_mul(${rows},${F},${dtype})`,
          op: 'silu_mul',
          inputs: [{ data: randomData(rows * 2 * F, F + 1), shape: [rows, 2 * F], dtype }],
          run: ([x]) => siluMul(x!),
        }));
  it('is silu(gate) * up over the two halves', () => {
    using x = Tensor.fromArray(new Float32Array([1, -2, 3, 4]), { shape: [1, 4] });
    using y = siluMul(x);
    near(y.dataSync(), [(1 / (1 + Math.exp(-1))) * 3, (-2 / (1 + Math.exp(2))) * 4], 1e-6);
  });
  it('checks its arguments', () => {
    using x = Tensor.zeros([2, 5]);
    expectThrows(() => siluMul(x), RangeError, undefined, /even last dimension/);
  });
});

describe('layer_norm', () => {
  for (const dtype of FLOATS)
    for (const wdt of ['f32', dtype] as FloatDType[])
      for (const bias of [true, false])
        for (const shape of [[1, 1], [1, 7], [7, 33], [33, 688], [2, 3, 4099]]) {
          const N = shape[shape.length - 1]!;
          const eps = N === 7 ? 0.5 : 1e-5;
          // rows far from zero (an offset of 50): the variance must not cancel
          const x = { data: randomData(numel(shape), 41 + N).map((v) => v + 50), shape, dtype };
          const w = { data: randomData(N, 42 + N), shape: [N], dtype: wdt as DType };
          const b = { data: randomData(N, 43 + N), shape: [N], dtype: wdt as DType };
          it(`layer_norm(shape=[${shape}],${dtype},w=${wdt}${bias ? ',bias' : ''})`, () =>
            checkOp({ name: `layer_norm(${shape},${dtype},${wdt},${bias})`, op: 'layer_norm', inputs: bias ? [x, w, b] : [x, w], run: ([a, c, d]) => layerNorm(a!, c!, bias ? d! : null, eps) }));
        }
  it('matches a float64 transcription of torch.nn.LayerNorm (f32)', () => {
    const N = 100;
    const xs = randomData(2 * N, 7).map((v) => 3 * v - 20);
    const ws = randomData(N, 8), bs = randomData(N, 9);
    using x = Tensor.fromArray(xs, { shape: [2, N] });
    using w = Tensor.fromArray(ws);
    using b = Tensor.fromArray(bs);
    using y = layerNorm(x, w, b, 1e-5);
    const want = new Float64Array(2 * N);
    for (let r = 0; r < 2; r++) {
      let m = 0, v = 0;
      for (let j = 0; j < N; j++) m += xs[r * N + j]! / N;
      for (let j = 0; j < N; j++) v += (xs[r * N + j]! - m) ** 2 / N;
      for (let j = 0; j < N; j++) want[r * N + j] = ((xs[r * N + j]! - m) / Math.sqrt(v + 1e-5)) * ws[j]! + bs[j]!;
    }
    near(y.dataSync(), want, 3e-4);
  });
  it('checks its arguments', () => {
    using x = Tensor.zeros([2, 4]);
    using w = Tensor.zeros([4]);
    using b3 = Tensor.zeros([3]);
    using bh = Tensor.zeros([4], { dtype: 'f16' });
    expectThrows(() => layerNorm(x, w, b3, 1e-5), RangeError, undefined, /bias of weight's shape/);
    expectThrows(() => layerNorm(x, w, bh, 1e-5), TypeError, undefined, /bias\.dtype/);
    expectThrows(() => layerNorm(x, w, null, -1), RangeError, undefined, /eps/);
  });
});

describe('gelu', () => {
  for (const dtype of FLOATS)
    for (const approximate of ['none', 'tanh'] as const)
      for (const n of [1, 7, 33, 4099, 70001])
        it(`gelu(n=${n},${dtype},${approximate})`, () =>
          checkOp({ name: `gelu(${n},${dtype},${approximate})`, op: 'gelu', inputs: [{ data: randomData(n, n + 5).map((v) => 4 * v), shape: [n], dtype }], run: ([x]) => gelu(x!, { approximate }) }));
  it('has its known values', () => {
    using x = Tensor.fromArray(new Float32Array([-3, -1, 0, 1, 3]));
    using y = gelu(x);
    near(y.dataSync(), [-0.00404969409489031, -0.15865525393145707, 0, 0.8413447460685429, 2.99595030590511], 2e-5);
    using t = gelu(x, { approximate: 'tanh' });
    near(t.dataSync(), [-0.0036373920817729943, -0.15880800939172324, 0, 0.8411919906082768, 2.996362607918227], 2e-5);
    expectThrows(() => gelu(x, { approximate: 'fast' as 'tanh' }), RangeError, undefined, /approximate/);
  });
});

// rope_cache_write: the fused write must store exactly what rope then cache_write store (the model relies on it),
// on every backend, and the reference and every backend must agree byte for byte.
describe('rope_cache_write', () => {
  const cacheBytes = async (c: PagedKvCache) => {
    const kv = new Uint8Array((await c.layer(0).kv.data()).buffer.slice(0));
    const sc = c.layer(0).kvScale.numel ? Array.from(await c.layer(0).kvScale.data()) : [];
    return { kv: Array.from(kv), sc };
  };
  for (const kvDtype of ['f32', 'f16', 'bf16', 'i8', 'f8e4m3'] as const)
    for (const [xdt, pairing, R] of [['f32', 'rotate-half', 64], ['f16', 'interleaved', 64], ['bf16', 'rotate-half', 32]] as const)
      it(`rope_cache_write(${kvDtype},${xdt},${pairing},R=${R}) = rope + cache_write, every backend = reference`, async () => {
        const T = 9, Hkv = 2, D = 64;
        const invFreq = Float32Array.from({ length: R / 2 }, (_, i) => 10000 ** ((-2 * i) / R));
        const pos = Int32Array.from({ length: T }, (_, t) => (t * 977) % 3000);
        const slots = Int32Array.from({ length: T }, (_, t) => (t === 3 ? -1 : (t * 7) % 40));
        const run = async (fused: boolean) => {
          const c = new PagedKvCache({ numLayers: 1, numBlocks: 5, blockSize: 8, numKvHeads: Hkv, headDim: D, dtype: kvDtype });
          using k = Tensor.fromArray(randomData(T * Hkv * D, 1), { shape: [T, Hkv, D], dtype: xdt });
          using v = Tensor.fromArray(randomData(T * Hkv * D, 2), { shape: [T, Hkv, D], dtype: xdt });
          using f = Tensor.fromArray(invFreq);
          {
            // Every slot defined first (the pools start uninitialized): zeros everywhere.
            using z = Tensor.zeros([40, Hkv, D], { dtype: xdt });
            cacheWrite(c.layer(0), z, z, Int32Array.from({ length: 40 }, (_, i) => i));
          }
          if (fused) ropeCacheWrite(c.layer(0), k, v, slots, pos, f, { pairing });
          else {
            using kr = rope(k, pos, invFreq, { pairing });
            cacheWrite(c.layer(0), kr, v, slots);
          }
          try {
            return await cacheBytes(c);
          } finally {
            c.dispose();
          }
        };
        const want = await withReferenceBackend(() => run(true));
        for (const b of BACKENDS) {
          expect(await b.use(() => run(true)), `${b.name} fused vs reference`).toEqual(want);
          expect(await b.use(() => run(false)), `${b.name} rope + cache_write`).toEqual(want);
        }
      });
  it('checks its arguments', () => {
    using c = new PagedKvCache({ numLayers: 1, numBlocks: 2, blockSize: 4, numKvHeads: 1, headDim: 8 });
    using k = Tensor.zeros([2, 1, 8]);
    using f = Tensor.fromArray(new Float32Array([1, 0.1]));
    using f5 = Tensor.fromArray(new Float32Array(5));
    expectThrows(() => ropeCacheWrite(c.layer(0), k, k, new Int32Array([0, 1]), new Int32Array([0, -2]), f), RangeError, undefined, /positions\[1\]/);
    expectThrows(() => ropeCacheWrite(c.layer(0), k, k, new Int32Array([0, 1]), new Int32Array([0]), f), RangeError, undefined, /2 elements/);
    expectThrows(() => ropeCacheWrite(c.layer(0), k, k, new Int32Array([0, 1]), new Int32Array([0, 1]), f5), RangeError, undefined, /invFreq/);
    expectThrows(() => ropeCacheWrite(c.layer(0), k, k, new Int32Array([0, 1]), new Int32Array([0, 1]), f, { pairing: 'x' as 'interleaved' }), RangeError, undefined, /pairing/);
  });
});

describe('silu', () => {
  for (const dtype of FLOATS)
    for (const n of [1, 7, 33, 4099, 70001])
      it(`silu(n=${n},${dtype})`, () =>
        checkOp({ name: `silu(${n},${dtype})`, op: 'silu', inputs: [{ data: randomData(n, n + 9).map((v) => 6 * v), shape: [n], dtype }], run: ([x]) => silu(x!) }));
  it('is x * sigmoid(x)', () => {
    using x = Tensor.fromArray(new Float32Array([-20, -1, 0, 2]));
    using y = silu(x);
    near(y.dataSync(), [-20 / (1 + Math.exp(20)), -1 / (1 + Math.E), 0, 2 / (1 + Math.exp(-2))], 1e-5);
    using i = Tensor.zeros([2], { dtype: 'i32' });
    expectThrows(() => silu(i as unknown as Tensor<'f32'>), TypeError, undefined, /x\.dtype/);
  });
});
