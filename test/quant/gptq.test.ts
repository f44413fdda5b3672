// GPTQ / GPTQ v2 / AWQ 4-bit checkpoints to the q4_g{G} row form. Random checkpoints are packed here, by a packer
// written from the format description (not by the code under test), from known q, zero points and scales; then
// (1) gptqDequantize must give exactly s * (q - z) for those values, (2) the row form decoded by a decoder written here
// must give exactly gptqDequantize's weights, (3) hand-written examples pin the bytes, (4) every bad argument throws
// the right class, code and message, (5) a trivial g_idx is accepted and an act-order one refused.
import { describe, expect, it } from 'vitest';
import { f16ToF32 } from '../../lib/dtype.js';
import { LlmKernelsError } from '../../lib/errors.js';
import { Rng } from '../../lib/random.js';
import { gptqDequantize, gptqToQ4GRows, type GptqCheckpointFormat, type GptqShape, type GptqTensors } from '../../lib/quant/gptq.js';

const FORMATS: GptqCheckpointFormat[] = ['gptq', 'gptq_v2', 'awq'];
/** AutoAWQ's pack order: nibble i of a word holds column 8j + AWQ_ORDER[i]. */
const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7];

/** What a checkpoint means: q[n*K + k] (0..15), true zero points z[g*N + n], scales s[g*N + n] (f16 bits). */
interface Plain {
  N: number;
  K: number;
  G: number;
  q: Uint8Array;
  z: Uint8Array;
  s: Uint16Array;
}

function randomPlain(rng: Rng, N: number, K: number, G: number, format: GptqCheckpointFormat): Plain {
  const ng = Math.ceil(K / G);
  const q = new Uint8Array(N * K);
  for (let i = 0; i < q.length; i++) q[i] = rng.int(0, 15);
  const z = new Uint8Array(ng * N);
  // v1 stores zero - 1 in a nibble: true zero points 1..16. v2 and AWQ store them as is: 0..15.
  for (let i = 0; i < z.length; i++) z[i] = format === 'gptq' ? rng.int(1, 16) : rng.int(0, 15);
  const s = new Uint16Array(ng * N);
  // Any finite f16: sign, exponent 0..30 (subnormals and zeros included), mantissa.
  for (let i = 0; i < s.length; i++) s[i] = (rng.int(0, 1) << 15) | (rng.int(0, 30) << 10) | rng.int(0, 1023);
  return { N, K, G, q, z, s };
}

/** Packs per the format description: GPTQ along K (qweight) and N (qzeros) in natural nibble order, AWQ along N
 * in AutoAWQ's interleaved order; v1 stores zero - 1. */
function pack(p: Plain, format: GptqCheckpointFormat): GptqTensors {
  const { N, K, G, q, z, s } = p;
  const ng = Math.ceil(K / G);
  const qzeros = new Int32Array(ng * (N / 8));
  const stored = (g: number, n: number) => z[g * N + n]! - (format === 'gptq' ? 1 : 0);
  let qweight: Int32Array;
  if (format === 'awq') {
    qweight = new Int32Array(K * (N / 8));
    for (let k = 0; k < K; k++)
      for (let j = 0; j < N / 8; j++)
        for (let i = 0; i < 8; i++) qweight[k * (N / 8) + j]! |= q[(8 * j + AWQ_ORDER[i]!) * K + k]! << (4 * i);
    for (let g = 0; g < ng; g++)
      for (let j = 0; j < N / 8; j++) for (let i = 0; i < 8; i++) qzeros[g * (N / 8) + j]! |= stored(g, 8 * j + AWQ_ORDER[i]!) << (4 * i);
  } else {
    qweight = new Int32Array((K / 8) * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) qweight[Math.floor(k / 8) * N + n]! |= q[n * K + k]! << (4 * (k % 8));
    for (let g = 0; g < ng; g++) for (let n = 0; n < N; n++) qzeros[g * (N / 8) + Math.floor(n / 8)]! |= stored(g, n) << (4 * (n % 8));
  }
  return { qweight, qzeros, scales: s.slice() };
}

/** The weights the plain values mean: w[n*K + k] = s * (q - z), rounded to f32. */
function meaning(p: Plain): Float32Array {
  const { N, K, G, q, z, s } = p;
  const w = new Float32Array(N * K);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const g = Math.floor(k / G);
      w[n * K + k] = f16ToF32(s[g * N + n]!) * (q[n * K + k]! - z[g * N + n]!);
    }
  return w;
}

/** Decodes q4_g{G} rows; checks the structural rules (length, byte 3, z range, padding q = min(z, 15)) on the way. */
function decodeRows(bytes: Uint8Array, N: number, K: number, G: number): Float32Array {
  const ng = Math.ceil(K / G);
  const gb = 4 + G / 2;
  expect(bytes.length).toBe(N * ng * gb);
  const w = new Float32Array(N * K);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < ng; g++) {
      const o = (n * ng + g) * gb;
      const s = f16ToF32(bytes[o]! | (bytes[o + 1]! << 8));
      const z = bytes[o + 2]!;
      if (bytes[o + 3] !== 0 || z > 16) expect.fail(`row ${n} group ${g}: byte 3 ${bytes[o + 3]}, z ${z}`);
      for (let e = 0; e < G; e++) {
        const byte = bytes[o + 4 + (e >> 1)]!;
        const q = e & 1 ? byte >> 4 : byte & 15;
        const k = g * G + e;
        if (k < K) w[n * K + k] = s * (q - z);
        else if (q !== Math.min(z, 15)) expect.fail(`row ${n} group ${g} element ${e} past K: q ${q}, z ${z}`);
      }
    }
  return w;
}

/** Bits of a Float32Array, so that -0 and +0 differ. */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Bit-exact equality of two weight arrays, failing fast with the first difference (no giant diff). */
function expectSameWeights(actual: Float32Array, want: Float32Array, K: number): void {
  expect(actual.length).toBe(want.length);
  const a = bits(actual);
  const b = bits(want);
  for (let i = 0; i < a.length; i++)
    if (a[i] !== b[i]) expect.fail(`w[n=${Math.floor(i / K)}, k=${i % K}]: got ${actual[i]}, expected ${want[i]}`);
}

function trivialGIdx(K: number, G: number): Int32Array {
  return Int32Array.from({ length: K }, (_, k) => Math.floor(k / G));
}

// ---------------------------------------------------------------------------------------------------------------
describe('random checkpoints', () => {
  const shapes: [number, number, number][] = [];
  for (const N of [8, 16, 24]) for (const K of [32, 64, 96, 128, 256]) for (const G of [32, 64, 128]) shapes.push([N, K, G]);
  let seed = 1;
  for (const format of FORMATS) {
    // AWQ packs along N only, so K need not be a multiple of 8.
    const all = format === 'awq' ? [...shapes, [8, 1, 32], [16, 7, 32], [8, 33, 32], [24, 100, 64], [8, 131, 128]] : shapes;
    for (const [N, K, G] of all as [number, number, number][]) {
      const s = seed++;
      const shape: GptqShape = { outFeatures: N, inFeatures: K, groupSize: G, format };
      it(`gptqDequantize(${format}, N=${N}, K=${K}, G=${G}) = s * (q - z) of the packed values`, () => {
        const p = randomPlain(new Rng(s), N, K, G, format);
        expectSameWeights(gptqDequantize(pack(p, format), shape), meaning(p), K);
      });
      it(`gptqToQ4GRows(${format}, N=${N}, K=${K}, G=${G}) decodes to gptqDequantize exactly`, () => {
        const p = randomPlain(new Rng(s), N, K, G, format);
        const t = pack(p, format);
        const tg = format === 'awq' ? t : { ...t, gIdx: trivialGIdx(K, G) };
        const rows = gptqToQ4GRows(tg, { ...shape, bits: 4 });
        expectSameWeights(decodeRows(rows, N, K, G), gptqDequantize(t, shape), K);
        // Scales and zero points land in the headers as they are (f16 bits copied, v1's +1 applied).
        const ng = Math.ceil(K / G);
        for (let n = 0; n < N; n++)
          for (let g = 0; g < ng; g++) {
            const o = (n * ng + g) * (4 + G / 2);
            expect(rows[o]! | (rows[o + 1]! << 8)).toBe(p.s[g * N + n]);
            expect(rows[o + 2]).toBe(p.z[g * N + n]);
          }
      });
    }
  }
  for (const format of FORMATS)
    it(`a larger layer (${format}, N=256, K=1024, G=128): rows, dequantize and the packed values agree`, () => {
      const p = randomPlain(new Rng(1000 + FORMATS.indexOf(format)), 256, 1024, 128, format);
      const shape: GptqShape = { outFeatures: 256, inFeatures: 1024, groupSize: 128, format };
      const t = pack(p, format);
      const w = gptqDequantize(t, shape);
      expectSameWeights(w, meaning(p), 1024);
      expectSameWeights(decodeRows(gptqToQ4GRows(t, shape), 256, 1024, 128), w, 1024);
    });
  it('the inputs are not modified', () => {
    for (const format of FORMATS) {
      const t = pack(randomPlain(new Rng(77), 16, 96, 64, format), format);
      const copy = { qweight: t.qweight.slice(), qzeros: t.qzeros.slice(), scales: t.scales.slice() };
      gptqToQ4GRows(t, { outFeatures: 16, inFeatures: 96, groupSize: 64, format });
      gptqDequantize(t, { outFeatures: 16, inFeatures: 96, groupSize: 64, format });
      expect(t).toEqual(copy);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('byte layout, hand-written examples', () => {
  const EVEN = 0x76543210; // nibbles 0, 1, ..., 7 from the low end
  const ODD = 0xfedcba98 | 0; // nibbles 8, 9, ..., 15

  it('gptq v1, N=8, K=32, G=32: qweight words are the qs bytes little-endian, z = stored + 1, scales copied', () => {
    const N = 8;
    // qweight [K/8=4, N=8]: even columns hold q = k % 8, odd columns q = 8 + k % 8.
    const qweight = Int32Array.from({ length: 32 }, (_, i) => (i % 2 ? ODD : EVEN));
    const qzeros = Int32Array.of(EVEN); // column n stores n: zero point n + 1
    const scales = Uint16Array.of(0x3c00, 0x4000, 0x3800, 0xbc00, 0x0001, 0x7bff, 0x0000, 0x8000); // 1, 2, .5, -1, 2^-24, 65504, 0, -0
    const shape: GptqShape = { outFeatures: N, inFeatures: 32, groupSize: 32, format: 'gptq' };
    const rows = gptqToQ4GRows({ qweight, qzeros, scales }, shape);
    expect(rows.length).toBe(8 * 1 * (4 + 16));
    const lowQs = [0x10, 0x32, 0x54, 0x76];
    const highQs = [0x98, 0xba, 0xdc, 0xfe];
    expect(Array.from(rows.subarray(0, 20))).toEqual([0x00, 0x3c, 1, 0, ...lowQs, ...lowQs, ...lowQs, ...lowQs]);
    expect(Array.from(rows.subarray(20, 40))).toEqual([0x00, 0x40, 2, 0, ...highQs, ...highQs, ...highQs, ...highQs]);
    expect(Array.from(rows.subarray(60, 64))).toEqual([0x00, 0xbc, 4, 0]);
    expect(Array.from(rows.subarray(80, 84))).toEqual([0x01, 0x00, 5, 0]);
    expect(Array.from(rows.subarray(100, 104))).toEqual([0xff, 0x7b, 6, 0]);
    expect(Array.from(rows.subarray(140, 160))).toEqual([0x00, 0x80, 8, 0, ...highQs, ...highQs, ...highQs, ...highQs]);

    const w = gptqDequantize({ qweight, qzeros, scales }, shape);
    expect(w.length).toBe(8 * 32);
    expect(w[0]).toBe(-1); // 1 * (0 - 1)
    expect(w[7]).toBe(6); // 1 * (7 - 1)
    expect(w[1 * 32 + 3]).toBe(18); // 2 * (11 - 2)
    expect(w[2 * 32 + 31]).toBe(2); // 0.5 * (7 - 3)
    expect(w[3 * 32 + 0]).toBe(-4); // -1 * (8 - 4)
    expect(w[4 * 32 + 0]).toBe(-5 * 2 ** -24); // 2^-24 * (0 - 5)
    expect(w[5 * 32 + 15]).toBe(65504 * (15 - 6));
    expect(Object.is(w[6 * 32 + 0], -0)).toBe(true); // 0 * (0 - 7)
    expect(Object.is(w[7 * 32 + 1], -0)).toBe(true); // -0 * (9 - 8)
  });

  it('gptq_v2: the same words, zero points as stored', () => {
    const qweight = new Int32Array(32).fill(EVEN);
    const qzeros = Int32Array.of(EVEN);
    const scales = new Uint16Array(8).fill(0x3c00);
    const shape: GptqShape = { outFeatures: 8, inFeatures: 32, groupSize: 32, format: 'gptq_v2' };
    const rows = gptqToQ4GRows({ qweight, qzeros, scales }, shape);
    for (let n = 0; n < 8; n++) expect(rows[n * 20 + 2]).toBe(n);
    const w = gptqDequantize({ qweight, qzeros, scales }, shape);
    expect(Array.from(w.subarray(3 * 32, 3 * 32 + 8))).toEqual([-3, -2, -1, 0, 1, 2, 3, 4]);
  });

  it('awq, N=8, K=32, G=32: nibble i holds column [0, 2, 4, 6, 1, 3, 5, 7][i]', () => {
    const qweight = new Int32Array(32).fill(EVEN); // [K=32, N/8=1]: nibble i = i
    const qzeros = Int32Array.of(0x00000021); // nibble 0 = 1 -> column 0, nibble 1 = 2 -> column 2, the rest 0
    const scales = new Uint16Array(8).fill(0x3c00);
    const shape: GptqShape = { outFeatures: 8, inFeatures: 32, groupSize: 32, format: 'awq' };
    const rows = gptqToQ4GRows({ qweight, qzeros, scales }, shape);
    const qOfColumn = [0, 4, 1, 5, 2, 6, 3, 7];
    const zOfColumn = [1, 0, 2, 0, 0, 0, 0, 0];
    for (let n = 0; n < 8; n++) {
      const q = qOfColumn[n]!;
      expect(Array.from(rows.subarray(n * 20, n * 20 + 20)), `row ${n}`).toEqual([0x00, 0x3c, zOfColumn[n], 0, ...new Array(16).fill(q | (q << 4))]);
    }
    const w = gptqDequantize({ qweight, qzeros, scales }, shape);
    for (let n = 0; n < 8; n++) expect(Array.from(w.subarray(n * 32, n * 32 + 32)), `row ${n}`).toEqual(new Array(32).fill(qOfColumn[n]! - zOfColumn[n]!));
  });

  it('K not a multiple of G (gptq v1, N=8, K=40, G=32): the last group padded with q = z, 15 where z is 16', () => {
    const qweight = Int32Array.from({ length: 5 * 8 }, (_, i) => (i % 2 ? ODD : EVEN)); // [K/8=5, N=8]
    const qzeros = Int32Array.of(0, 0x0000000f); // group 0: z = 1 everywhere; group 1: column 0 stores 15 (z = 16), others z = 1
    const scales = new Uint16Array(16).fill(0x3c00);
    const shape: GptqShape = { outFeatures: 8, inFeatures: 40, groupSize: 32, format: 'gptq' };
    const rows = gptqToQ4GRows({ qweight, qzeros, scales }, shape);
    expect(rows.length).toBe(8 * 2 * 20);
    // Row 0, group 1 (bytes 20..39): z 16, 8 real elements (4 bytes), then 24 padding elements of q = 15.
    expect(Array.from(rows.subarray(20, 40))).toEqual([0x00, 0x3c, 16, 0, 0x10, 0x32, 0x54, 0x76, ...new Array(12).fill(0xff)]);
    // Row 1, group 1 (bytes 60..79): z 1, padding q = 1.
    expect(Array.from(rows.subarray(60, 80))).toEqual([0x00, 0x3c, 1, 0, 0x98, 0xba, 0xdc, 0xfe, ...new Array(12).fill(0x11)]);
    const w = gptqDequantize({ qweight, qzeros, scales }, shape);
    expect(Array.from(w.subarray(32, 40))).toEqual([-16, -15, -14, -13, -12, -11, -10, -9]); // row 0, k 32..39: q - 16
    expectSameWeights(decodeRows(rows, 8, 40, 32), w, 40);
  });

  it('awq with odd K (N=8, K=33, G=32): the last group holds one element, the rest padding', () => {
    const p = randomPlain(new Rng(5), 8, 33, 32, 'awq');
    const rows = gptqToQ4GRows(pack(p, 'awq'), { outFeatures: 8, inFeatures: 33, groupSize: 32, format: 'awq' });
    for (let n = 0; n < 8; n++) {
      const o = n * 40 + 20; // group 1
      const z = p.z[1 * 8 + n]!;
      expect(rows[o + 4], `row ${n}`).toBe(p.q[n * 33 + 32]! | (z << 4));
      expect(Array.from(rows.subarray(o + 5, o + 20))).toEqual(new Array(15).fill(z | (z << 4)));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('errors', () => {
  type Cls = typeof TypeError | typeof RangeError | typeof LlmKernelsError;
  const CODE = new Map<Cls, string>([
    [TypeError, 'ERR_INVALID_ARG_TYPE'],
    [RangeError, 'ERR_OUT_OF_RANGE'],
  ]);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  // A valid layer: gptq, N=8, K=32, G=32 (qweight 32, qzeros 1, scales 8); awq: qweight [32, 1].
  const good = (format: GptqCheckpointFormat = 'gptq'): [GptqTensors, GptqShape] => {
    const p = randomPlain(new Rng(3), 8, 32, 32, format);
    return [pack(p, format), { outFeatures: 8, inFeatures: 32, groupSize: 32, format }];
  };
  const withShape = (patch: Record<string, unknown>, format: GptqCheckpointFormat = 'gptq'): [unknown, unknown] => {
    const [t, s] = good(format);
    return [t, { ...s, ...patch }];
  };
  const withT = (patch: Record<string, unknown>, format: GptqCheckpointFormat = 'gptq'): [unknown, unknown] => {
    const [t, s] = good(format);
    return [{ ...t, ...patch }, s];
  };
  const badScale = (at: number, h: number): [unknown, unknown] => {
    const p = randomPlain(new Rng(4), 16, 64, 32, 'gptq'); // scales [2, 16]
    const t = pack(p, 'gptq');
    t.scales[at] = h;
    return [t, { outFeatures: 16, inFeatures: 64, groupSize: 32, format: 'gptq' }];
  };
  const permuted = (): [unknown, unknown] => {
    const p = randomPlain(new Rng(6), 8, 64, 32, 'gptq');
    const gIdx = trivialGIdx(64, 32);
    gIdx[3] = 1;
    gIdx[40] = 0; // a desc_act g_idx: group ids in permuted (not sorted) order
    return [{ ...pack(p, 'gptq'), gIdx }, { outFeatures: 8, inFeatures: 64, groupSize: 32, format: 'gptq' }];
  };

  interface Case {
    name: string;
    args: () => [unknown, unknown];
    cls: Cls;
    code?: string;
    param: string;
    frag: string;
  }
  const T = TypeError;
  const R = RangeError;
  const L = LlmKernelsError;
  const list: Case[] = [
    ...([null, 42, 'x', [1], new Int32Array(4)] as unknown[]).map((v) => ({ name: `t = ${String(v)}`, args: (): [unknown, unknown] => [v, good()[1]], cls: T, param: 't', frag: 'a tensors object' })),
    ...([null, undefined, 7, [8, 32]] as unknown[]).map((v) => ({ name: `shape = ${String(v)}`, args: (): [unknown, unknown] => [good()[0], v], cls: T, param: 'shape', frag: 'a shape object' })),
    ...([undefined, 5, null] as unknown[]).map((v) => ({ name: `format ${String(v)}`, args: () => withShape({ format: v }), cls: T, param: 'shape.format', frag: "'gptq', 'gptq_v2', 'awq'" })),
    ...['marlin', 'GPTQ', 'gptq_v1', ''].map((v) => ({ name: `format ${JSON.stringify(v)}`, args: () => withShape({ format: v }), cls: L, code: 'ERR_UNSUPPORTED', param: 'shape.format', frag: 'a supported checkpoint format' })),
    ...(['4', null, 4n] as unknown[]).map((v) => ({ name: `bits ${String(v)}`, args: () => withShape({ bits: v }), cls: T, param: 'shape.bits', frag: 'an integer' })),
    ...[4.5, 0, NaN].map((v) => ({ name: `bits ${v}`, args: () => withShape({ bits: v }), cls: R, param: 'shape.bits', frag: 'an integer in' })),
    ...[2, 3, 8].map((v) => ({ name: `bits ${v}`, args: () => withShape({ bits: v }), cls: L, code: 'ERR_UNSUPPORTED', param: 'shape.bits', frag: 'only 4-bit checkpoints are supported' })),
    ...(['8', undefined] as unknown[]).map((v) => ({ name: `outFeatures ${String(v)}`, args: () => withShape({ outFeatures: v }), cls: T, param: 'shape.outFeatures', frag: 'an integer' })),
    ...[0, -8, 8.5, NaN, Infinity].map((v) => ({ name: `outFeatures ${v}`, args: () => withShape({ outFeatures: v }), cls: R, param: 'shape.outFeatures', frag: 'an integer in [1,' })),
    ...FORMATS.map((f) => ({ name: `outFeatures 12 (${f})`, args: () => withShape({ outFeatures: 12 }, f), cls: R, param: 'shape.outFeatures', frag: 'a multiple of 8' })),
    ...(['32', null] as unknown[]).map((v) => ({ name: `inFeatures ${String(v)}`, args: () => withShape({ inFeatures: v }), cls: T, param: 'shape.inFeatures', frag: 'an integer' })),
    ...[0, -32, 31.5].map((v) => ({ name: `inFeatures ${v}`, args: () => withShape({ inFeatures: v }), cls: R, param: 'shape.inFeatures', frag: 'an integer in [1,' })),
    ...(['gptq', 'gptq_v2'] as const).map((f) => ({ name: `inFeatures 36 (${f})`, args: () => withShape({ inFeatures: 36 }, f), cls: R, param: 'shape.inFeatures', frag: 'a multiple of 8 (GPTQ qweight' })),
    ...(['128', undefined, null] as unknown[]).map((v) => ({ name: `groupSize ${String(v)}`, args: () => withShape({ groupSize: v }), cls: T, param: 'shape.groupSize', frag: 'a group size (32, 64 or 128)' })),
    { name: 'groupSize -1 (per-channel)', args: () => withShape({ groupSize: -1 }), cls: L, code: 'ERR_UNSUPPORTED', param: 'shape.groupSize', frag: 'got -1 (per-channel quantization is not supported' },
    ...[16, 256, 0, 32.5, NaN, 1024].map((v) => ({ name: `groupSize ${v}`, args: () => withShape({ groupSize: v }), cls: L, code: 'ERR_UNSUPPORTED', param: 'shape.groupSize', frag: 'a supported group size (32, 64 or 128)' })),
    ...([new Uint32Array(32), new Float32Array(32), [0], undefined] as unknown[]).map((v) => ({ name: `qweight ${String(v)}`, args: () => withT({ qweight: v }), cls: T, param: 't.qweight', frag: 'an Int32Array' })),
    { name: 'qweight 31 int32 (gptq)', args: () => withT({ qweight: new Int32Array(31) }), cls: R, param: 't.qweight', frag: 'expected 32 int32 ([K/8=4, N=8]) for t.qweight, got 31' },
    { name: 'qweight 33 int32 (gptq_v2)', args: () => withT({ qweight: new Int32Array(33) }, 'gptq_v2'), cls: R, param: 't.qweight', frag: 'expected 32 int32 ([K/8=4, N=8]) for t.qweight, got 33' },
    { name: 'qweight 4 int32 (awq)', args: () => withT({ qweight: new Int32Array(4) }, 'awq'), cls: R, param: 't.qweight', frag: 'expected 32 int32 ([K=32, N/8=1]) for t.qweight, got 4' },
    {
      name: 'qweight [K/8, N] for gptq at N=16, K=64 (512 expected)',
      args: () => [{ qweight: new Int32Array(500), qzeros: new Int32Array(4), scales: new Uint16Array(32) }, { outFeatures: 16, inFeatures: 64, groupSize: 32, format: 'gptq' }],
      cls: R,
      param: 't.qweight',
      frag: 'expected 128 int32 ([K/8=8, N=16]) for t.qweight, got 500',
    },
    ...([new Uint32Array(1), null] as unknown[]).map((v) => ({ name: `qzeros ${String(v)}`, args: () => withT({ qzeros: v }), cls: T, param: 't.qzeros', frag: 'an Int32Array' })),
    { name: 'qzeros 2 int32', args: () => withT({ qzeros: new Int32Array(2) }), cls: R, param: 't.qzeros', frag: 'expected 1 int32 ([ceil(K/G)=1, N/8=1]) for t.qzeros, got 2' },
    { name: 'qzeros 0 int32 (awq)', args: () => withT({ qzeros: new Int32Array(0) }, 'awq'), cls: R, param: 't.qzeros', frag: 'for t.qzeros, got 0' },
    ...([new Float32Array(8), new Int16Array(8), new Uint8Array(16), [0x3c00]] as unknown[]).map((v) => ({ name: `scales ${String(v)}`, args: () => withT({ scales: v }), cls: T, param: 't.scales', frag: 'a Uint16Array (f16 bits)' })),
    { name: 'scales 16 f16', args: () => withT({ scales: new Uint16Array(16) }), cls: R, param: 't.scales', frag: 'expected 8 f16 ([ceil(K/G)=1, N=8]) for t.scales, got 16' },
    ...([[0, 0], new Uint32Array(32), null] as unknown[]).map((v) => ({ name: `gIdx ${String(v)}`, args: () => withT({ gIdx: v }), cls: T, param: 't.gIdx', frag: 'an Int32Array or undefined' })),
    { name: 'gIdx of 31', args: () => withT({ gIdx: new Int32Array(31) }), cls: R, param: 't.gIdx', frag: 'expected 32 int32 ([K=32]) for t.gIdx, got 31' },
    { name: 'gIdx act-order (permuted)', args: permuted, cls: L, code: 'ERR_UNSUPPORTED', param: 't.gIdx', frag: 'got g_idx[3] = 1: act-order (desc_act) checkpoints are not supported; re-quantize without desc_act' },
    { name: 'scale NaN at group 1, column 5', args: () => badScale(1 * 16 + 5, 0x7e00), cls: R, param: 't.scales', frag: 'expected finite f16 scales for t.scales, got NaN (f16 bits 0x7e00) at group 1, column 5' },
    { name: 'scale +Inf at group 0, column 15', args: () => badScale(15, 0x7c00), cls: R, param: 't.scales', frag: 'got Infinity (f16 bits 0x7c00) at group 0, column 15' },
    { name: 'scale -Inf at group 1, column 0', args: () => badScale(16, 0xfc00), cls: R, param: 't.scales', frag: 'got -Infinity (f16 bits 0xfc00) at group 1, column 0' },
    { name: 'scale NaN with payload', args: () => badScale(3, 0xfc01), cls: R, param: 't.scales', frag: 'got NaN (f16 bits 0xfc01) at group 0, column 3' },
  ];

  const fns = { gptqToQ4GRows, gptqDequantize } as const;
  for (const [fnName, f] of Object.entries(fns))
    for (const c of list)
      it(`${fnName}: ${c.name} -> ${c.cls.name}${c.code ? ` ${c.code}` : ''}`, () => {
        const [t, shape] = c.args();
        let err: unknown;
        try {
          f(t as GptqTensors, shape as GptqShape);
        } catch (e) {
          err = e;
        }
        const e = err as Error & { code?: string };
        const seen = `${e?.constructor?.name} ${e?.code}: ${e?.message}`;
        expect(e, seen).toBeInstanceOf(c.cls);
        if (c.cls !== LlmKernelsError) expect(e, seen).not.toBeInstanceOf(LlmKernelsError);
        expect(e.code, seen).toBe(c.code ?? CODE.get(c.cls));
        expect(e.message, seen).toMatch(new RegExp(`^${esc(fnName)}: expected .+ for ${esc(c.param)}, got .+$`, 's'));
        expect(e.message, seen).toContain(c.frag);
      });

  it('valid corner cases do not throw: bits 4, gIdx undefined, awq with K not a multiple of 8, v1 zero 16', () => {
    const [t, s] = good();
    expect(() => gptqToQ4GRows(t, { ...s, bits: 4 })).not.toThrow();
    expect(() => gptqToQ4GRows({ ...t, gIdx: undefined }, { ...s, bits: undefined })).not.toThrow();
    const p = randomPlain(new Rng(9), 8, 36, 32, 'awq');
    expect(() => gptqToQ4GRows(pack(p, 'awq'), { outFeatures: 8, inFeatures: 36, groupSize: 32, format: 'awq' })).not.toThrow();
    // v1 stored zero 15 is zero point 16 (allowed: 15 + 1).
    const qz = Int32Array.of(0xffffffff | 0);
    const w = gptqDequantize({ qweight: new Int32Array(32), qzeros: qz, scales: new Uint16Array(8).fill(0x3c00) }, s);
    expect(w.every((x) => x === -16)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('g_idx', () => {
  for (const format of FORMATS)
    for (const [K, G] of [
      [32, 32],
      [96, 64],
      [256, 128],
    ] as const)
      it(`a trivial g_idx (floor(k / G)) is accepted and changes nothing (${format}, K=${K}, G=${G})`, () => {
        const p = randomPlain(new Rng(K + G), 16, K, G, format);
        const t = pack(p, format);
        const shape: GptqShape = { outFeatures: 16, inFeatures: K, groupSize: G, format };
        const gIdx = trivialGIdx(K, G);
        expect(Buffer.from(gptqToQ4GRows({ ...t, gIdx }, shape)).equals(gptqToQ4GRows(t, shape))).toBe(true);
        expectSameWeights(gptqDequantize({ ...t, gIdx }, shape), gptqDequantize(t, shape), K);
      });

  const refused: [string, (g: Int32Array) => void][] = [
    ['two entries swapped across groups', (g) => ([g[5], g[70]] = [g[70]!, g[5]!])],
    ['a desc_act permutation of group ids', (g) => g.set(Int32Array.from(g).reverse())],
    ['one group boundary moved by one', (g) => (g[63] = 1)],
    ['all zeros (a G = K mapping)', (g) => g.fill(0)],
  ];
  for (const format of FORMATS)
    for (const [name, edit] of refused)
      it(`a non-trivial g_idx is refused with ERR_UNSUPPORTED (${format}, ${name})`, () => {
        const t = pack(randomPlain(new Rng(12), 8, 128, 64, format), format);
        const gIdx = trivialGIdx(128, 64);
        edit(gIdx);
        for (const f of [gptqToQ4GRows, gptqDequantize]) {
          let err: unknown;
          try {
            f({ ...t, gIdx }, { outFeatures: 8, inFeatures: 128, groupSize: 64, format });
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(LlmKernelsError);
          expect((err as LlmKernelsError).code).toBe('ERR_UNSUPPORTED');
          expect((err as Error).message).toMatch(/act-order \(desc_act\) checkpoints are not supported; re-quantize without desc_act/);
        }
      });
});
