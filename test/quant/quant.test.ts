// Quantized formats: llama.cpp byte identity of q8_0/q4_0, row-form round trips, the documented value semantics of
// every format, zero groups, bad values, the error report, and the argument checks of the quantization API.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  dequantize,
  gptqDequantize,
  importGptq,
  LlmKernelsError,
  matmul,
  quantizationError,
  quantize,
  quantizeSync,
  QuantizedTensor,
  rowFormBytes,
  Tensor,
  type QuantFormat,
} from '../../lib/index.js';
import { f16ToF32, f32ToF16 } from '../../lib/dtype.js';
import { Rng } from '../../lib/random.js';
import { BACKENDS, expectThrows, randomData } from '../helpers/check.js';

const FORMATS: QuantFormat[] = ['q8_0', 'q4_0', 'q4_g32', 'q4_g64', 'q4_g128', 'i8_pc'];
const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'ggml-quantizers.json'), 'utf8')) as {
  K: number;
  rows: number;
  input: number[];
  q8_0_hex: string[];
  q4_0_hex: string[];
  ties: { input: number[]; q8_0_hex: string; q4_0_hex: string };
};

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fr = Math.fround;

// llama.cpp's reference quantizers transcribed from their documented algorithm (ggml-quants.c), in f32 arithmetic:
// an independent check of the native ones on random data. Rows are zero-padded to a multiple of 32.
function refQ8_0(x: Float32Array, K: number): Uint8Array {
  const nb = Math.ceil(K / 32);
  const out = new Uint8Array(nb * 34);
  for (let b = 0; b < nb; b++) {
    const v = (j: number) => (32 * b + j < K ? x[32 * b + j]! : 0);
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(v(j)));
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    out[b * 34] = h & 0xff;
    out[b * 34 + 1] = h >> 8;
    for (let j = 0; j < 32; j++) {
      const p = fr(v(j) * id);
      const q = Math.sign(p) * Math.floor(Math.abs(p) + 0.5); // roundf: half away from zero
      out[b * 34 + 2 + j] = q & 0xff;
    }
  }
  return out;
}
function refQ4_0(x: Float32Array, K: number): Uint8Array {
  const nb = Math.ceil(K / 32);
  const out = new Uint8Array(nb * 18);
  for (let b = 0; b < nb; b++) {
    const v = (j: number) => (32 * b + j < K ? x[32 * b + j]! : 0);
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++)
      if (amax < Math.abs(v(j))) {
        amax = Math.abs(v(j));
        max = v(j);
      }
    const d = fr(max / -8);
    const id = d !== 0 ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    out[b * 18] = h & 0xff;
    out[b * 18 + 1] = h >> 8;
    const q = (j: number) => Math.min(15, Math.trunc(fr(fr(v(j) * id) + 8.5)));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q(j) | (q(j + 16) << 4);
  }
  return out;
}

// The value of element (n, k) of a row-form weight, decoded in TS from the format's documented semantics.
function rowFormValue(format: QuantFormat, bytes: Uint8Array, N: number, K: number, n: number, k: number): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rb = rowFormBytes(format, 1, K) - (format === 'i8_pc' ? 4 : 0);
  const b = Math.floor(k / 32);
  switch (format) {
    case 'q8_0': {
      const o = n * rb + b * 34;
      return fr(f16ToF32(dv.getUint16(o, true)) * dv.getInt8(o + 2 + (k % 32)));
    }
    case 'q4_0': {
      const o = n * rb + b * 18;
      const kk = k % 32;
      const byte = bytes[o + 2 + (kk % 16)]!;
      const q = kk < 16 ? byte & 15 : byte >> 4;
      return fr(f16ToF32(dv.getUint16(o, true)) * (q - 8));
    }
    case 'i8_pc':
      return fr(dv.getFloat32(N * K + 4 * n, true) * dv.getInt8(n * K + k));
    default: {
      const G = Number(format.slice(4));
      const g = Math.floor(k / G);
      const o = n * rb + g * (4 + G / 2);
      const j = k - g * G;
      const q = (bytes[o + 4 + (j >> 1)]! >> (4 * (j & 1))) & 15;
      return fr(f16ToF32(dv.getUint16(o, true)) * (q - bytes[o + 2]!));
    }
  }
}

// Random valid row-form bytes: finite, moderate scales; q4_g zero points in [0, 16].
function randomRowForm(format: QuantFormat, N: number, K: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const bytes = new Uint8Array(rowFormBytes(format, N, K));
  for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(0, 255);
  const dv = new DataView(bytes.buffer);
  const scale = () => f32ToF16(rng.uniform() * 0.1 + 1e-3);
  if (format === 'q8_0' || format === 'q4_0') {
    const bs = format === 'q8_0' ? 34 : 18;
    for (let o = 0; o < bytes.length; o += bs) dv.setUint16(o, scale(), true);
  } else if (format === 'i8_pc') {
    for (let n = 0; n < N; n++) dv.setFloat32(N * K + 4 * n, rng.uniform() * 0.02, true);
  } else {
    const G = Number(format.slice(4));
    const gb = 4 + G / 2;
    const ng = Math.ceil(K / G);
    const padFrom = Math.ceil(K / 32) * 32 - (ng - 1) * G; // in the last group: nibbles past the last block are q = z
    for (let o = 0, g = 0; o < bytes.length; o += gb, g = (g + 1) % ng) {
      dv.setUint16(o, scale(), true);
      const z = rng.int(0, 16);
      bytes[o + 2] = z;
      bytes[o + 3] = 0;
      if (g === ng - 1)
        for (let j = padFrom; j < G; j++) {
          const p = o + 4 + (j >> 1);
          bytes[p] = j & 1 ? (bytes[p]! & 0x0f) | (Math.min(z, 15) << 4) : (bytes[p]! & 0xf0) | Math.min(z, 15);
        }
    }
  }
  return bytes;
}

describe('llama.cpp byte identity (q8_0, q4_0)', () => {
  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`quantize(${format}) gives the bytes of ggml's quantize_row_${format}_ref on the fixture rows`, () => {
      for (const b of BACKENDS) {
        using x = Tensor.fromArray(fixtures.input, { shape: [fixtures.rows, fixtures.K], device: b.device });
        using q = b.use(() => quantizeSync(x, format));
        const bytes = q.toBytesSync();
        const rb = rowFormBytes(format, 1, fixtures.K);
        const want = format === 'q8_0' ? fixtures.q8_0_hex : fixtures.q4_0_hex;
        for (let r = 0; r < fixtures.rows; r++) expect(hex(bytes.subarray(r * rb, (r + 1) * rb)), `row ${r} on ${b.name}`).toBe(want[r]);
      }
    });
    it(`quantize(${format}) rounds ties like ggml's reference (roundf / +8.5 truncation)`, () => {
      using x = Tensor.fromArray(fixtures.ties.input, { shape: [1, 64] });
      using q = quantizeSync(x, format);
      expect(hex(q.toBytesSync())).toBe(format === 'q8_0' ? fixtures.ties.q8_0_hex : fixtures.ties.q4_0_hex);
    });
    it(`quantize(${format}) matches a transcription of the reference algorithm on random rows, K = 4096 and 96`, () => {
      for (const [N, K, scale] of [
        [16, 4096, 1],
        [9, 96, 1e-3],
        [5, 4096, 300],
        [3, 40, 1],
      ] as const) {
        const data = randomData(N * K, N * K + 7).map((v) => v * scale);
        using x = Tensor.fromArray(data, { shape: [N, K] });
        using q = quantizeSync(x, format);
        const got = q.toBytesSync();
        const rb = rowFormBytes(format, 1, K);
        for (let n = 0; n < N; n++) {
          const row = data.subarray(n * K, (n + 1) * K);
          const want = format === 'q8_0' ? refQ8_0(row, K) : refQ4_0(row, K);
          expect(hex(got.subarray(n * rb, (n + 1) * rb)), `N=${N} K=${K} row ${n}`).toBe(hex(want));
        }
      }
    });
  }

  it('f16 and bf16 weights quantize like their f32 values', () => {
    const data = randomData(8 * 96, 3);
    for (const dtype of ['f16', 'bf16'] as const) {
      using h = Tensor.fromArray(data, { shape: [8, 96], dtype });
      using f = h.cast('f32');
      for (const format of FORMATS) {
        using a = quantizeSync(h, format);
        using b = quantizeSync(f, format);
        expect(hex(a.toBytesSync()), `${format} from ${dtype}`).toBe(hex(b.toBytesSync()));
      }
    }
  });
});

describe('row form', () => {
  for (const format of FORMATS)
    it(`${format}: fromBytes -> toBytes is the identity, and the values follow the documented semantics`, () => {
      const shapes: [number, number][] = [
        [1, 32],
        [7, 128],
        [9, 256],
        [17, 384],
      ];
      for (const [N, K] of shapes) {
        const bytes = randomRowForm(format, N, K, N * 1000 + K);
        using q = QuantizedTensor.fromBytes(format, [N, K], bytes);
        expect(q.nbytes).toBeGreaterThanOrEqual(bytes.length - (format === 'i8_pc' ? 4 * N : 0));
        expect(hex(q.toBytesSync()), `${format} [${N},${K}]`).toBe(hex(bytes));
        using copy = q.to('cpu'); // a copy on the same device: every byte of the panel form
        expect(hex(copy.toBytesSync()), `${format} [${N},${K}] copy`).toBe(hex(bytes));
        using d = dequantize(q);
        const v = d.dataSync() as Float32Array;
        for (let n = 0; n < N; n++)
          for (let k = 0; k < K; k++)
            if (v[n * K + k] !== rowFormValue(format, bytes, N, K, n, k))
              throw new Error(`${format} [${N},${K}] (${n},${k}): dequantize ${v[n * K + k]}, row form says ${rowFormValue(format, bytes, N, K, n, k)}`);
      }
    });

  for (const format of FORMATS)
    it(`${format}: K not a multiple of the group (K = 688, 33, 7) round-trips through quantize`, async () => {
      for (const [N, K] of [
        [11, 688],
        [3, 33],
        [9, 7],
      ] as const) {
        using x = Tensor.fromArray(randomData(N * K, K), { shape: [N, K] });
        using q = await quantize(x, format);
        const bytes = await q.toBytes();
        expect(bytes.length).toBe(rowFormBytes(format, N, K));
        using q2 = QuantizedTensor.fromBytes(format, [N, K], bytes);
        expect(hex(await q2.toBytes())).toBe(hex(bytes));
        using d = dequantize(q2);
        const v = (await d.data()) as Float32Array;
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) expect(v[n * K + k]).toBe(rowFormValue(format, bytes, N, K, n, k));
        const r = await quantizationError(x, q);
        expect(r.snrDb).toBeGreaterThan(format === 'q8_0' || format === 'i8_pc' ? 30 : 12);
      }
    });
});

describe('zero groups and bad values', () => {
  for (const format of FORMATS)
    it(`${format}: an all-zero weight has scale 0 and dequantizes to exact zeros (no NaN)`, async () => {
      using x = Tensor.zeros([9, 100]);
      using q = await quantize(x, format);
      using d = dequantize(q);
      const v = await d.data();
      expect(v.every((e) => e === 0 && !Object.is(e, NaN))).toBe(true);
      // a zero block inside a non-zero row
      const data = randomData(2 * 128, 5);
      data.fill(0, 32, 64);
      data.fill(0, 128 + 64, 128 + 128);
      using x2 = Tensor.fromArray(data, { shape: [2, 128] });
      using q2 = await quantize(x2, format);
      using d2 = dequantize(q2);
      const v2 = await d2.data();
      expect(v2.every(Number.isFinite)).toBe(true);
      // exact zeros (q4_0's scale is -0 there, as in llama.cpp: 0 / -8)
      if (format !== 'i8_pc') for (const i of [40, 128 + 100]) expect(v2[i] === 0).toBe(true);
      // and matmul stays finite on both paths
      using xm = Tensor.fromArray(randomData(3 * 128, 9), { shape: [3, 128] });
      for (const path of ['int8', 'dequant'] as const) {
        using y = matmul(xm, q2, { path });
        expect((await y.data()).every(Number.isFinite)).toBe(true);
      }
    });

  for (const format of FORMATS)
    it(`${format}: NaN or Infinity in the weight is a RangeError naming the row and column`, async () => {
      const data = randomData(5 * 70, 2);
      data[3 * 70 + 41] = NaN;
      using x = Tensor.fromArray(data, { shape: [5, 70] });
      await expect(quantize(x, format)).rejects.toThrow(RangeError);
      await expect(quantize(x, format)).rejects.toThrow(/quantize: expected finite values in x, got NaN at row 3, column 41/);
      data[3 * 70 + 41] = 1;
      data[1 * 70 + 2] = -Infinity;
      using x2 = Tensor.fromArray(data, { shape: [5, 70] });
      expectThrows(() => quantizeSync(x2, format), RangeError, 'ERR_OUT_OF_RANGE', /-Infinity at row 1, column 2/);
    });

  it('a value too large for an f16 scale is a RangeError (q8_0 at 1e7; i8_pc has an f32 scale and accepts it)', async () => {
    const data = randomData(2 * 64, 3);
    data[64 + 5] = 1e7;
    using x = Tensor.fromArray(data, { shape: [2, 64] });
    await expect(quantize(x, 'q8_0')).rejects.toThrow(/f16.*row 1, column 0/);
    using q = await quantize(x, 'i8_pc');
    expect(q.format).toBe('i8_pc');
  });
});

describe('quantizationError', () => {
  it('reports max abs, RMS and SNR, and ranks the formats as their bits say', async () => {
    using w = Tensor.fromArray(randomData(64 * 512, 11), { shape: [64, 512] });
    const snr: Record<string, number> = {};
    for (const format of FORMATS) {
      using q = await quantize(w, format);
      const r = await quantizationError(w, q);
      expect(r.format).toBe(format);
      expect(r.maxAbs).toBeGreaterThan(0);
      expect(r.rms).toBeGreaterThan(0);
      expect(r.rms).toBeLessThanOrEqual(r.maxAbs);
      expect(r.signalRms).toBeGreaterThan(0.9);
      expect(r.bitsPerWeight).toBeGreaterThan(4);
      snr[format] = r.snrDb;
    }
    expect(snr.q8_0!).toBeGreaterThan(35);
    expect(snr.q8_0!).toBeGreaterThan(snr.q4_g32!);
    expect(snr.q4_g32!).toBeGreaterThan(snr.q4_g64!);
    expect(snr.q4_g64!).toBeGreaterThan(snr.q4_g128!);
    expect(snr.q4_0!).toBeGreaterThan(15);
    using z = Tensor.zeros([8, 64]);
    using qz = await quantize(z, 'q4_0');
    expect((await quantizationError(z, qz)).snrDb).toBe(Infinity);
  });
});

describe('GPTQ import', () => {
  it('importGptq gives the weight gptqDequantize says, and matmul uses it', async () => {
    const N = 16;
    const K = 256;
    const G = 64;
    const rng = new Rng(4);
    const qweight = new Int32Array((K / 8) * N).map(() => rng.int(-(2 ** 31), 2 ** 31 - 1));
    const qzeros = new Int32Array((K / G) * (N / 8)).map(() => rng.int(-(2 ** 31), 2 ** 31 - 1));
    const scales = new Uint16Array((K / G) * N).map(() => f32ToF16(rng.uniform() * 0.01 + 1e-3));
    const shape = { outFeatures: N, inFeatures: K, groupSize: G, format: 'gptq' as const };
    using q = importGptq({ qweight, qzeros, scales }, shape);
    expect(q.format).toBe('q4_g64');
    using d = dequantize(q);
    expect(Array.from(await d.data())).toEqual(Array.from(gptqDequantize({ qweight, qzeros, scales }, shape)));
  });
});

describe('argument checks', () => {
  it('quantize refuses bad weights and formats with typed errors', async () => {
    using w = Tensor.rand([4, 32]);
    expectThrows(() => quantizeSync(w, 'q5_0' as QuantFormat), RangeError, 'ERR_OUT_OF_RANGE', /quantizeSync: expected a quantized format/);
    expectThrows(() => quantizeSync(w, 3 as unknown as QuantFormat), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectThrows(() => quantizeSync({} as Tensor, 'q8_0'), TypeError, 'ERR_INVALID_ARG_TYPE', /expected a Tensor for w/);
    using i = Tensor.fromArray([1, 2, 3, 4], { dtype: 'i8', shape: [2, 2] });
    expectThrows(() => quantizeSync(i, 'q8_0'), TypeError, 'ERR_INVALID_ARG_TYPE', /float dtype/);
    using v = Tensor.rand([32]);
    expectThrows(() => quantizeSync(v, 'q8_0'), RangeError, 'ERR_OUT_OF_RANGE', /2 dimensions/);
    using e = Tensor.empty([0, 32]);
    expectThrows(() => quantizeSync(e, 'q8_0'), RangeError, 'ERR_OUT_OF_RANGE', /N >= 1/);
    const d = Tensor.rand([4, 32]);
    d.dispose();
    await expect(quantize(d, 'q8_0')).rejects.toThrow(/disposed/);
  });

  it('matmul with a quantized weight checks K, dtypes, path and liveness', () => {
    using w = Tensor.rand([8, 64]);
    using q = quantizeSync(w, 'q4_0');
    using x = Tensor.rand([2, 64]);
    using xbad = Tensor.rand([2, 63]);
    expectThrows(() => matmul(xbad, q), RangeError, 'ERR_OUT_OF_RANGE', /w.shape\[1\] to equal x's last dimension \(K=63\)/);
    using xi = Tensor.fromArray(new Int8Array(128), { shape: [2, 64] });
    expectThrows(() => matmul(xi as unknown as Tensor<'f32'>, q), TypeError, 'ERR_INVALID_ARG_TYPE', /float dtype/);
    expectThrows(() => matmul(x, q, { path: 'fast' as 'int8' }), RangeError, 'ERR_OUT_OF_RANGE', /'int8' or 'dequant'/);
    expectThrows(() => matmul(x, q, { path: 1 as unknown as 'int8' }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectThrows(() => matmul(x, w, { path: 'int8' }), RangeError, 'ERR_OUT_OF_RANGE', /paths are for quantized weights/);
    expectThrows(() => matmul(x, {} as QuantizedTensor), TypeError, 'ERR_INVALID_ARG_TYPE', /a Tensor or a QuantizedTensor/);
    const q2 = quantizeSync(w, 'q8_0');
    q2.dispose();
    expectThrows(() => matmul(x, q2), LlmKernelsError, 'ERR_DISPOSED', /disposed/);
    expectThrows(() => dequantize(q2), LlmKernelsError, 'ERR_DISPOSED');
    expectThrows(() => q2.toBytesSync(), LlmKernelsError, 'ERR_DISPOSED');
    expect(String(q2)).toBe('QuantizedTensor(q8_0, [8,64], cpu, disposed)');
    q2.dispose(); // idempotent
  });

  it('fromBytes checks format, shape, length and zero points; dequantize checks its dtype', () => {
    expectThrows(() => QuantizedTensor.fromBytes('q8_0', [2, 32], new Uint8Array(67)), RangeError, 'ERR_OUT_OF_RANGE', /expected 68 bytes/);
    expectThrows(() => QuantizedTensor.fromBytes('q8_0', [2], new Uint8Array(68)), RangeError, 'ERR_OUT_OF_RANGE', /a shape \[N, K\]/);
    expectThrows(() => QuantizedTensor.fromBytes('q8_0', [0, 32], new Uint8Array(0)), RangeError, 'ERR_OUT_OF_RANGE');
    expectThrows(() => QuantizedTensor.fromBytes('q8_0', [1, 32], 'bytes' as unknown as Uint8Array), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectThrows(() => QuantizedTensor.fromBytes('q9' as QuantFormat, [1, 32], new Uint8Array(34)), RangeError, 'ERR_OUT_OF_RANGE');
    const g = new Uint8Array(rowFormBytes('q4_g32', 2, 64));
    g[20 + 2] = 17; // row 0, group 1
    expectThrows(() => QuantizedTensor.fromBytes('q4_g32', [2, 64], g), RangeError, 'ERR_OUT_OF_RANGE', /zero points in \[0, 16\] for bytes \(row 0, group 1\), got 17/);
    using q = QuantizedTensor.fromBytes('q4_0', [1, 32], new Uint8Array(18));
    expectThrows(() => dequantize(q, 'i8' as 'f32'), RangeError, 'ERR_OUT_OF_RANGE', /float dtype/);
    expectThrows(() => new QuantizedTensor('x' as unknown as number, 'q8_0', [1, 1], q.device), TypeError, 'ERR_INVALID_ARG_TYPE');
  });
});
