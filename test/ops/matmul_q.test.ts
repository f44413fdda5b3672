// matmul_q (y = x · dequant(w)ᵀ, w quantized) for every format, both paths, on every backend against the reference,
// over the shape matrix; and the int32 overflow cases, which must come out exact.
import { describe, expect, it } from 'vitest';
import { getThreads, matmul, QuantizedTensor, quantizeSync, setThreads, Tensor, type QuantFormat, type QuantPath } from '../../lib/index.js';
import type { FloatDType } from '../../lib/dtype.js';
import { f32ToF16 } from '../../lib/dtype.js';
import { BACKENDS, checkOp, randomData } from '../helpers/check.js';
import { Rng } from '../../lib/random.js';

const FORMATS: QuantFormat[] = ['q8_0', 'q4_0', 'q4_g32', 'q4_g64', 'q4_g128', 'i8_pc'];
const PATHS: QuantPath[] = ['int8', 'dequant'];

function caseOf(format: QuantFormat, path: QuantPath, M: number, N: number, K: number, dtype: FloatDType) {
  const name = `matmul_q(${format},M=${M},N=${N},K=${K},${dtype},${path})`;
  return checkOp({
    name,
    op: 'matmul_q',
    inputs: [
      { data: randomData(M * K, M * 131 + K), shape: [M, K], dtype },
      { data: randomData(N * K, N * 17 + K + 5), shape: [N, K], dtype },
    ],
    // The weight is quantized on the backend under test (quantizers are exact across backends).
    run: ([x, w]) => {
      using q = quantizeSync(w as Tensor<FloatDType>, format);
      return matmul(x as Tensor<FloatDType>, q, { path });
    },
  });
}

describe('matmul_q', () => {
  for (const format of FORMATS)
    for (const path of PATHS)
      describe(`${format} ${path}`, () => {
        for (const M of [1, 2, 7, 33, 128])
          for (const N of [1, 17, 256])
            for (const K of [32, 96, 688, 4096])
              it(`matmul_q(${format},M=${M},N=${N},K=${K},f32,${path})`, () => caseOf(format, path, M, N, K, 'f32'));
        for (const dtype of ['f16', 'bf16'] as FloatDType[])
          for (const [M, N, K] of [
            [1, 17, 96],
            [5, 33, 688],
            [33, 8, 4096],
          ] as const)
            it(`matmul_q(${format},M=${M},N=${N},K=${K},${dtype},${path})`, () => caseOf(format, path, M, N, K, dtype));
      });

  it('matmul_q(x [2,3,K]) flattens leading dimensions', () =>
    checkOp({
      name: 'matmul_q(x=[2,3,40],w=[9,40])',
      op: 'matmul_q',
      inputs: [
        { data: randomData(240, 3), shape: [2, 3, 40], dtype: 'f32' },
        { data: randomData(360, 4), shape: [9, 40], dtype: 'f32' },
      ],
      run: ([x, w]) => {
        using q = quantizeSync(w as Tensor<'f32'>, 'q4_g32');
        return matmul(x as Tensor<'f32'>, q);
      },
    }));

  it('results do not depend on the thread count (each output is computed by one thread, in one order)', async () => {
    const before = getThreads();
    try {
      for (const [M, N, K] of [
        [1, 257, 688],
        [3, 33, 4096],
        [37, 100, 96],
      ] as const) {
        using x = Tensor.fromArray(randomData(M * K, 5), { shape: [M, K] });
        using w = Tensor.fromArray(randomData(N * K, 6), { shape: [N, K] });
        for (const format of FORMATS) {
          using q = quantizeSync(w, format);
          for (const path of PATHS) {
            if (path === 'dequant' && M > 4) continue; // the GEMM driver's thread grid may change the K split
            setThreads(1);
            using ya = matmul(x, q, { path });
            const a = await ya.data();
            setThreads(2);
            using yb = matmul(x, q, { path });
            const b = await yb.data();
            expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${format} ${path} M=${M} N=${N} K=${K}`).toBe(true);
          }
        }
      }
    } finally {
      setThreads(before);
    }
  });

  it('a NaN or Infinity in x makes its row of y NaN on the int8 path (never garbage), like the dequant path', async () => {
    const K = 96;
    const xs = randomData(3 * K, 9);
    xs[K + 40] = NaN;
    xs[2 * K + 3] = Infinity;
    for (const b of BACKENDS)
      for (const path of PATHS) {
        using w = Tensor.fromArray(randomData(16 * K, 10), { shape: [16, K], device: b.device });
        using q = quantizeSync(w, 'q8_0');
        using x = Tensor.fromArray(xs, { shape: [3, K], device: b.device });
        const y = await b.use(() => matmul(x, q, { path })).data();
        expect(y.slice(0, 16).every(Number.isFinite), `${b.name} ${path} row 0`).toBe(true);
        // int8: the block's scale is NaN, so NaN; dequant: NaN * w and Inf * w as f32 arithmetic makes them
        const bad = y.slice(16);
        expect(path === 'int8' ? bad.every(Number.isNaN) : bad.every((v) => !Number.isFinite(v)), `${b.name} ${path} rows 1-2`).toBe(true);
      }
  });
});

// The largest integer sums: K = 131072 with every product at its extreme. On the int8 path the f32 arithmetic of
// each case is exact (every partial sum is an integer below 2^24 times a power of two), so y must equal the exact
// value bit for bit on every backend: an int32 overflow (or an i16 one inside a block) would show as a wrong sign
// or value. The dequant path sums 131072 f32 products: exact except for q4_g (1905 = 127 * 15 is odd), within 1e-6.
describe('matmul_q int32 overflow', () => {
  const K = 131072;
  const f16one = f32ToF16(1);
  // Row-form bytes of one row of K elements for each format, all quants at the extreme value.
  function extremeRow(format: QuantFormat): { bytes: Uint8Array; weight: number } {
    const nb = K / 32;
    switch (format) {
      case 'q8_0': {
        const b = new Uint8Array(nb * 34);
        for (let i = 0; i < nb; i++) {
          b[i * 34] = f16one & 0xff;
          b[i * 34 + 1] = f16one >> 8;
          b.fill(0x80, i * 34 + 2, i * 34 + 34); // q = -128
        }
        return { bytes: b, weight: -128 };
      }
      case 'q4_0': {
        const b = new Uint8Array(nb * 18);
        for (let i = 0; i < nb; i++) {
          b[i * 18] = f16one & 0xff;
          b[i * 18 + 1] = f16one >> 8; // nibbles 0: value -8
        }
        return { bytes: b, weight: -8 };
      }
      case 'i8_pc': {
        const b = new Uint8Array(K + 4).fill(0x80);
        new DataView(b.buffer).setFloat32(K, 1, true);
        return { bytes: b, weight: -128 };
      }
      default: {
        const G = Number(format.slice(4));
        const ng = K / G;
        const b = new Uint8Array(ng * (4 + G / 2));
        for (let g = 0; g < ng; g++) {
          const o = g * (4 + G / 2);
          b[o] = f16one & 0xff;
          b[o + 1] = f16one >> 8;
          b[o + 2] = 0; // z = 0
          b.fill(0xff, o + 4, o + 4 + G / 2); // q = 15: value +15, the largest 16-bit partial sums
        }
        return { bytes: b, weight: 15 };
      }
    }
  }
  it('matmul_q(i8_pc,M=2,N=9,K=262144): a row sum beyond int32 (4.26e9) is still exact (flushed to f32 in parts)', async () => {
    const K2 = 262144;
    const N = 9;
    const bytes = new Uint8Array(N * K2 + 4 * N).fill(0x80); // q = -128
    const dv = new DataView(bytes.buffer);
    for (let n = 0; n < N; n++) dv.setFloat32(N * K2 + 4 * n, 1, true);
    const want = K2 * 127 * 128;
    for (const b of BACKENDS) {
      using q = QuantizedTensor.fromBytes('i8_pc', [N, K2], bytes, { device: b.device });
      using x = Tensor.full([2, K2], -127, { device: b.device });
      for (const path of PATHS) {
        using y = b.use(() => matmul(x, q, { path }));
        const v = await y.data();
        for (let i = 0; i < v.length; i++) expect(v[i], `${path} on ${b.name}, element ${i}`).toBe(want);
      }
    }
  });

  for (const format of FORMATS)
    it(`matmul_q(${format},M=1,N=1,K=131072) at the extremes is exact`, async () => {
      const { bytes, weight } = extremeRow(format);
      // x = -127 everywhere (the activation quantizer maps it to q = -127 with scale exactly 1); against the
      // positive weights of q4_g, x = +127 makes every product positive.
      const xv = weight > 0 ? 127 : -127;
      const want = K * xv * weight;
      for (const b of BACKENDS) {
        using q = QuantizedTensor.fromBytes(format, [1, K], bytes, { device: b.device });
        using x = Tensor.full([1, K], xv, { device: b.device });
        for (const path of PATHS) {
          const y = await b.use(() => matmul(x, q, { path })).data();
          if (path === 'int8') expect(y[0], `${format} ${path} on ${b.name}`).toBe(want);
          else expect(Math.abs(y[0]! - want) / want, `${format} ${path} on ${b.name}: ${y[0]}`).toBeLessThan(1e-6);
        }
      }
    });
});

// Bit-exact integer arithmetic on random data: scales of exactly 1 and activations whose every block of 32 holds a
// +-127 (so the activation quantizer maps x to itself, with d = 1), and K small enough that every partial sum is an
// integer below 2^24. Then y is an exact integer on both paths, whatever the summation order, and must equal the
// integer product computed here: any lost or doubled product, wrong zero point or nibble shows.
describe('matmul_q exact integer products', () => {
  const ONE_F16 = 0x3c00;
  function weights(format: QuantFormat, N: number, K: number, rng: Rng): { bytes: Uint8Array; q: Int32Array } {
    const q = new Int32Array(N * K); // q - zero, per element
    const nb = Math.ceil(K / 32);
    if (format === 'i8_pc') {
      const bytes = new Uint8Array(N * K + 4 * N);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < N * K; i++) {
        const v = rng.int(-128, 127);
        dv.setInt8(i, v);
        q[i] = v;
      }
      for (let n = 0; n < N; n++) dv.setFloat32(N * K + 4 * n, 1, true);
      return { bytes, q };
    }
    if (format === 'q8_0' || format === 'q4_0') {
      const bs = format === 'q8_0' ? 34 : 18;
      const bytes = new Uint8Array(N * nb * bs);
      const dv = new DataView(bytes.buffer);
      for (let n = 0; n < N; n++)
        for (let b = 0; b < nb; b++) {
          const o = (n * nb + b) * bs;
          dv.setUint16(o, ONE_F16, true);
          for (let j = 0; j < bs - 2; j++) bytes[o + 2 + j] = rng.int(0, 255);
          for (let j = 0; j < 32 && 32 * b + j < K; j++) {
            const k = 32 * b + j;
            q[n * K + k] = format === 'q8_0' ? dv.getInt8(o + 2 + j) : (j < 16 ? bytes[o + 2 + j]! & 15 : bytes[o + 2 + j - 16]! >> 4) - 8;
          }
        }
      return { bytes, q };
    }
    const G = Number(format.slice(4));
    const ng = Math.ceil(K / G);
    const gb = 4 + G / 2;
    const bytes = new Uint8Array(N * ng * gb);
    const dv = new DataView(bytes.buffer);
    for (let n = 0; n < N; n++)
      for (let g = 0; g < ng; g++) {
        const o = (n * ng + g) * gb;
        dv.setUint16(o, ONE_F16, true);
        const z = rng.int(0, 16);
        bytes[o + 2] = z;
        for (let j = 0; j < G / 2; j++) bytes[o + 4 + j] = rng.int(0, 255);
        for (let j = 0; j < G && g * G + j < K; j++) q[n * K + g * G + j] = ((bytes[o + 4 + (j >> 1)]! >> (4 * (j & 1))) & 15) - z;
      }
    return { bytes, q };
  }
  for (const format of FORMATS)
    for (const [M, N, K] of [
      [1, 17, 688],
      [7, 9, 96],
      [33, 24, 200],
    ] as const)
      it(`matmul_q(${format},M=${M},N=${N},K=${K}) is the exact integer product on both paths`, async () => {
        const rng = new Rng(M * 1000 + N * 10 + K);
        const { bytes, q } = weights(format, N, K, rng);
        const x = new Float32Array(M * K);
        for (let m = 0; m < M; m++)
          for (let k = 0; k < K; k++) x[m * K + k] = k % 32 === 0 ? (rng.int(0, 1) ? 127 : -127) : rng.int(-127, 127);
        const want = new Float64Array(M * N);
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += x[m * K + k]! * q[n * K + k]!;
            want[m * N + n] = s;
          }
        for (const b of BACKENDS) {
          using w = QuantizedTensor.fromBytes(format, [N, K], bytes, { device: b.device });
          using xt = Tensor.fromArray(x, { shape: [M, K], device: b.device });
          for (const path of PATHS) {
            using y = b.use(() => matmul(xt, w, { path }));
            const got = await y.data();
            for (let i = 0; i < M * N; i++)
              if (got[i] !== want[i]) throw new Error(`${format} ${path} on ${b.name}: y[${i}] = ${got[i]}, exact ${want[i]}`);
          }
        }
      });
});
