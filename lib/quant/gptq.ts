/**
 * GPTQ and AWQ 4-bit checkpoints to the portable `q4_g{G}` row form, in plain TypeScript (no native code).
 *
 * The row form, for a weight `w[N, K]` (N output features, K input features, group size G ∈ {32, 64, 128}): rows
 * n = 0..N-1 one after another; each row has `ng = ceil(K / G)` groups of `4 + G/2` bytes: bytes 0-1 the scale s
 * (IEEE f16 bits, little-endian), byte 2 the zero point z (0..16), byte 3 zero, then G/2 bytes `qs` with
 * `qs[j] = q[2j] | (q[2j+1] << 4)`. Element k dequantizes to `s * (q - z)`. Elements of the last group past K hold
 * `q = z` (`q = 15` where z is 16, the one zero point a nibble cannot hold).
 *
 * The checkpoint packings (4 bits, int32 words, nibble b at bits 4b..4b+3):
 * - GPTQ (AutoGPTQ / GPTQModel `checkpoint_format: "gptq"`, "v1"): `qweight` int32 `[K/8, N]`, element `k = 8i + b`
 *   of column n in nibble b of `qweight[i, n]`; `qzeros` int32 `[ceil(K/G), N/8]`, column `n = 8j + b` in nibble b of
 *   `qzeros[g, j]`, stored as zero − 1 (so the zero point is the nibble + 1, 1..16); `scales` f16 `[ceil(K/G), N]`.
 * - GPTQ v2 (`"gptq_v2"`): the same, the zero point stored as is (0..15).
 * - AWQ (AutoAWQ GEMM): `qweight` int32 `[K, N/8]` and `qzeros` int32 `[ceil(K/G), N/8]` packed along N in the
 *   interleaved order `[0, 2, 4, 6, 1, 3, 5, 7]` (nibble i holds column `8j + order[i]`), so column `8j + c` sits in
 *   nibble `[0, 4, 1, 5, 2, 6, 3, 7][c]`; `scales` f16 `[ceil(K/G), N]`; zero points stored as is.
 */
import { f16ToF32 } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { checkInteger, expected } from '../validate.js';

/**
 * Which packing a checkpoint uses: `'gptq'` (AutoGPTQ / GPTQModel v1, zero points stored minus one), `'gptq_v2'`
 * (GPTQModel v2, zero points as is) or `'awq'` (AutoAWQ GEMM, interleaved along N).
 * @example
 * const format: GptqCheckpointFormat = config.quantization_config.quant_method === 'awq' ? 'awq' : 'gptq';
 */
export type GptqCheckpointFormat = 'gptq' | 'gptq_v2' | 'awq';

/**
 * The tensors of one quantized Linear layer, as read from the checkpoint (safetensors I32 / F16, raw).
 * @example
 * const t: GptqTensors = { qweight: i32('q_proj.qweight'), qzeros: i32('q_proj.qzeros'), scales: f16bits('q_proj.scales') };
 */
export interface GptqTensors {
  /** int32, `[K/8, N]` (GPTQ) or `[K, N/8]` (AWQ). */
  qweight: Int32Array;
  /** int32, `[ceil(K/G), N/8]`. */
  qzeros: Int32Array;
  /** f16 bits, `[ceil(K/G), N]`. */
  scales: Uint16Array;
  /** int32 `[K]`, optional: must be the trivial `floor(k / G)` (act-order checkpoints are not supported). */
  gIdx?: Int32Array;
}

/**
 * The shape and format of a quantized Linear layer.
 * @example
 * const shape: GptqShape = { outFeatures: 11008, inFeatures: 4096, groupSize: 128, format: 'gptq', bits: 4 };
 */
export interface GptqShape {
  /** N, the number of output features (rows of the weight). */
  outFeatures: number;
  /** K, the number of input features (columns of the weight). */
  inFeatures: number;
  /** G: 32, 64 or 128. */
  groupSize: number;
  /** How the tensors are packed. */
  format: GptqCheckpointFormat;
  /** Must be 4 if given. */
  bits?: number;
}

const FORMATS: readonly GptqCheckpointFormat[] = ['gptq', 'gptq_v2', 'awq'];
const GROUP_SIZES: readonly number[] = [32, 64, 128];
/** Nibble index of column `8j + c` in an AWQ word: the inverse of AutoAWQ's pack order [0, 2, 4, 6, 1, 3, 5, 7]. */
const AWQ_NIBBLE = [0, 4, 1, 5, 2, 6, 3, 7] as const;
/** Rows (GPTQ) or packed columns (AWQ) per tile: one 64-byte cache line of int32 words. */
const TILE = 16;

interface Checked {
  N: number;
  K: number;
  G: number;
  ng: number;
  format: GptqCheckpointFormat;
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Uint16Array;
}

function checkTensor<T extends Int32Array | Uint16Array>(fn: string, param: string, v: unknown, cls: new (n: number) => T, what: string): T {
  if (!(v instanceof cls)) throw typeError(expected(fn, what, param, v));
  return v;
}

function checkLength(fn: string, param: string, a: { length: number }, want: number, what: string): void {
  if (a.length !== want) throw rangeError(expected(fn, `${want} ${what}`, param, a.length));
}

/** Validates everything but the scale values ({@link checkScales}); returns the parsed shape. */
function check(fn: string, t: unknown, shape: unknown): Checked {
  if (t === null || typeof t !== 'object' || Array.isArray(t) || ArrayBuffer.isView(t))
    throw typeError(expected(fn, 'a tensors object { qweight, qzeros, scales, gIdx? }', 't', t));
  if (shape === null || typeof shape !== 'object' || Array.isArray(shape))
    throw typeError(expected(fn, 'a shape object { outFeatures, inFeatures, groupSize, format, bits? }', 'shape', shape));
  const s = shape as Record<string, unknown>;
  const tt = t as Record<string, unknown>;

  const format = s.format;
  if (typeof format !== 'string') throw typeError(expected(fn, `a checkpoint format (${FORMATS.map((f) => `'${f}'`).join(', ')})`, 'shape.format', format));
  if (!(FORMATS as readonly string[]).includes(format))
    throw new LlmKernelsError(
      'ERR_UNSUPPORTED',
      expected(fn, `a supported checkpoint format (${FORMATS.map((f) => `'${f}'`).join(', ')})`, 'shape.format', format),
    );
  if (s.bits !== undefined) {
    const bits = checkInteger(fn, 'shape.bits', s.bits, 1, 32);
    if (bits !== 4) throw new LlmKernelsError('ERR_UNSUPPORTED', expected(fn, '4 (only 4-bit checkpoints are supported)', 'shape.bits', bits));
  }
  const N = checkInteger(fn, 'shape.outFeatures', s.outFeatures, 1, 0x7fffffff);
  const K = checkInteger(fn, 'shape.inFeatures', s.inFeatures, 1, 0x7fffffff);
  const G = s.groupSize;
  if (typeof G !== 'number') throw typeError(expected(fn, 'a group size (32, 64 or 128)', 'shape.groupSize', G));
  if (!GROUP_SIZES.includes(G))
    throw new LlmKernelsError(
      'ERR_UNSUPPORTED',
      expected(fn, 'a supported group size (32, 64 or 128)', 'shape.groupSize', G) +
        (G === -1 ? ' (per-channel quantization is not supported; re-quantize with group_size 32, 64 or 128)' : ''),
    );
  if (N % 8 !== 0) throw rangeError(expected(fn, 'a multiple of 8 (qzeros packs 8 columns per int32)', 'shape.outFeatures', N));
  if (format !== 'awq' && K % 8 !== 0)
    throw rangeError(expected(fn, 'a multiple of 8 (GPTQ qweight packs 8 rows of K per int32)', 'shape.inFeatures', K));
  const ng = Math.ceil(K / G);

  const qweight = checkTensor(fn, 't.qweight', tt.qweight, Int32Array, 'an Int32Array');
  const qzeros = checkTensor(fn, 't.qzeros', tt.qzeros, Int32Array, 'an Int32Array');
  const scales = checkTensor(fn, 't.scales', tt.scales, Uint16Array, 'a Uint16Array (f16 bits)');
  const gIdx = tt.gIdx === undefined ? undefined : checkTensor(fn, 't.gIdx', tt.gIdx, Int32Array, 'an Int32Array or undefined');
  if (format === 'awq') checkLength(fn, 't.qweight', qweight, K * (N / 8), `int32 ([K=${K}, N/8=${N / 8}])`);
  else checkLength(fn, 't.qweight', qweight, (K / 8) * N, `int32 ([K/8=${K / 8}, N=${N}])`);
  checkLength(fn, 't.qzeros', qzeros, ng * (N / 8), `int32 ([ceil(K/G)=${ng}, N/8=${N / 8}])`);
  checkLength(fn, 't.scales', scales, ng * N, `f16 ([ceil(K/G)=${ng}, N=${N}])`);
  if (gIdx !== undefined) {
    checkLength(fn, 't.gIdx', gIdx, K, `int32 ([K=${K}])`);
    for (let k = 0; k < K; k++)
      if (gIdx[k] !== Math.floor(k / G))
        throw new LlmKernelsError(
          'ERR_UNSUPPORTED',
          expected(fn, `the trivial g_idx (g_idx[k] = floor(k / ${G}))`, 't.gIdx', `g_idx[${k}] = ${gIdx[k]}`, true) +
            ': act-order (desc_act) checkpoints are not supported; re-quantize without desc_act (desc_act=False)',
        );
  }
  // The zero points need no range check: a nibble is 0..15, so z is 0..15 (gptq_v2, awq) or 1..16 (gptq v1).
  return { N, K, G, ng, format: format as GptqCheckpointFormat, qweight, qzeros, scales };
}

/** Throws naming group and column if any scale is NaN or ±Inf. */
function checkScales(fn: string, scales: Uint16Array, N: number): void {
  for (let i = 0; i < scales.length; i++) {
    const h = scales[i]!;
    if ((h & 0x7c00) === 0x7c00) {
      const value = h & 0x3ff ? 'NaN' : h & 0x8000 ? '-Infinity' : 'Infinity';
      throw rangeError(
        expected(fn, 'finite f16 scales', 't.scales', `${value} (f16 bits 0x${h.toString(16).padStart(4, '0')}) at group ${Math.floor(i / N)}, column ${i % N}`, true),
      );
    }
  }
}

/** The zero point of (group g, column n): nibble + 1 for v1 GPTQ. */
function zeroPoints(c: Checked): Uint8Array {
  const { N, ng, format, qzeros } = c;
  const z = new Uint8Array(ng * N);
  const add = format === 'gptq' ? 1 : 0;
  for (let g = 0; g < ng; g++)
    for (let j = 0; j < N / 8; j++) {
      const word = qzeros[g * (N / 8) + j]!;
      for (let b = 0; b < 8; b++) {
        const nib = format === 'awq' ? AWQ_NIBBLE[b]! : b;
        z[g * N + 8 * j + b] = ((word >>> (4 * nib)) & 15) + add;
      }
    }
  return z;
}

let f16Table: Float32Array | undefined;
/** f32 values of all 65536 f16 bit patterns (built once, with {@link f16ToF32}). */
function f16Values(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/**
 * Converts a GPTQ / GPTQ v2 / AWQ 4-bit checkpoint layer to `q4_g{G}` row-form bytes (see the module comment).
 * Scales are copied bit for bit; every element keeps its q and its group's zero point, so the row form dequantizes
 * to exactly {@link gptqDequantize}'s weights.
 * @param t - the layer's tensors: qweight, qzeros, scales (f16 bits), optional gIdx
 * @param shape - N (outFeatures), K (inFeatures), G (groupSize), format, optional bits
 * @returns `N * ceil(K/G) * (4 + G/2)` bytes
 * @throws {TypeError} t or shape not an object; a tensor of the wrong typed-array type; a field of the wrong type
 * @throws {RangeError} N or K not an integer ≥ 1; K (GPTQ) or N not a multiple of 8; a tensor whose length is not the
 *   one its shape implies; a NaN or infinite scale (named by group and column)
 * @throws {LlmKernelsError} ERR_UNSUPPORTED: a group size other than 32, 64, 128 (per-channel −1 included), bits
 *   other than 4, an unknown format, or an act-order (desc_act) g_idx
 * @example
 * const rows = gptqToQ4GRows(
 *   { qweight, qzeros, scales, gIdx },
 *   { outFeatures: 11008, inFeatures: 4096, groupSize: 128, format: 'gptq' },
 * ); // 11008 * 32 * 68 bytes
 */
export function gptqToQ4GRows(t: GptqTensors, shape: GptqShape): Uint8Array {
  const fn = 'gptqToQ4GRows';
  const c = check(fn, t, shape);
  checkScales(fn, c.scales, c.N);
  const { N, K, G, ng, format, qweight, scales } = c;
  const zeros = zeroPoints(c);
  const gb = 4 + G / 2; // bytes per group
  const rowBytes = ng * gb;
  const out = new Uint8Array(N * rowBytes);

  // Headers, and the padding of the last group past K (q = z, or 15 where z is 16).
  const tail = K - (ng - 1) * G; // elements in the last group (1..G)
  for (let n = 0; n < N; n++)
    for (let g = 0; g < ng; g++) {
      const o = n * rowBytes + g * gb;
      const s = scales[g * N + n]!;
      const z = zeros[g * N + n]!;
      out[o] = s & 0xff;
      out[o + 1] = s >>> 8;
      out[o + 2] = z;
      if (g === ng - 1 && tail < G) {
        const p = z > 15 ? 15 : z;
        const qs = o + 4;
        if (tail & 1) out[qs + (tail >> 1)] = p << 4; // the low nibble, element tail - 1, is written below
        out.fill(p | (p << 4), qs + ((tail + 1) >> 1), qs + G / 2);
      }
    }

  if (format === 'awq') {
    // qweight[k, j]: 8 columns of one k. Tiles of TILE words along N (one cache line) × all k, two k per pass
    // (a byte of qs holds elements k, k + 1 of one row).
    const W = N / 8;
    for (let j0 = 0; j0 < W; j0 += TILE) {
      const j1 = Math.min(j0 + TILE, W);
      for (let k = 0; k < K; k += 2) {
        const g = Math.floor(k / G);
        const at = g * gb + 4 + ((k - g * G) >> 1);
        const two = k + 1 < K;
        for (let j = j0; j < j1; j++) {
          const w0 = qweight[k * W + j]!;
          const w1 = two ? qweight[(k + 1) * W + j]! : 0;
          let o = 8 * j * rowBytes + at;
          for (let c8 = 0; c8 < 8; c8++, o += rowBytes) {
            const sh = 4 * AWQ_NIBBLE[c8]!;
            const lo = (w0 >>> sh) & 15;
            out[o] = two ? lo | (((w1 >>> sh) & 15) << 4) : lo | (out[o]! & 0xf0);
          }
        }
      }
    }
  } else {
    // qweight[i, n]: elements 8i..8i+7 of row n, nibble b = element 8i + b: exactly the 4 qs bytes, little-endian.
    // G is a multiple of 8, so a word never straddles two groups. Tiles of TILE rows (one cache line) × all i.
    const I = K / 8;
    for (let n0 = 0; n0 < N; n0 += TILE) {
      const n1 = Math.min(n0 + TILE, N);
      for (let i = 0; i < I; i++) {
        const k = 8 * i;
        const g = Math.floor(k / G);
        const at = g * gb + 4 + ((k - g * G) >> 1);
        const row = i * N;
        for (let n = n0; n < n1; n++) {
          const w = qweight[row + n]!;
          const o = n * rowBytes + at;
          out[o] = w & 0xff;
          out[o + 1] = (w >>> 8) & 0xff;
          out[o + 2] = (w >>> 16) & 0xff;
          out[o + 3] = w >>> 24;
        }
      }
    }
  }
  return out;
}

/**
 * The dense f32 weights `w[N, K]` (row-major, `w[n * K + k]`) a GPTQ / GPTQ v2 / AWQ 4-bit checkpoint layer means:
 * `w[n, k] = scale[g, n] * (q[k, n] − zero[g, n])` with `g = floor(k / G)`, the zero point including v1's +1. Exact:
 * an f16 scale times an integer in [−16, 15] is representable in f32. Decoded independently of
 * {@link gptqToQ4GRows}, for tests and for callers that want the dense weight.
 * @param t - the layer's tensors: qweight, qzeros, scales (f16 bits), optional gIdx
 * @param shape - N (outFeatures), K (inFeatures), G (groupSize), format, optional bits
 * @returns `N * K` f32 values
 * @throws {TypeError} t or shape not an object; a tensor of the wrong typed-array type; a field of the wrong type
 * @throws {RangeError} N or K not an integer ≥ 1; K (GPTQ) or N not a multiple of 8; a tensor whose length is not the
 *   one its shape implies; a NaN or infinite scale (named by group and column)
 * @throws {LlmKernelsError} ERR_UNSUPPORTED: a group size other than 32, 64, 128 (per-channel −1 included), bits
 *   other than 4, an unknown format, or an act-order (desc_act) g_idx
 * @example
 * const w = gptqDequantize({ qweight, qzeros, scales }, { outFeatures: 4096, inFeatures: 4096, groupSize: 128, format: 'awq' });
 * const w00 = w[0]; // row 0 (output feature 0), input feature 0
 */
export function gptqDequantize(t: GptqTensors, shape: GptqShape): Float32Array {
  const fn = 'gptqDequantize';
  const c = check(fn, t, shape);
  checkScales(fn, c.scales, c.N);
  const { N, K, G, format, qweight, scales } = c;
  const zeros = zeroPoints(c);
  const f16 = f16Values();
  const w = new Float32Array(N * K);
  if (format === 'awq') {
    const W = N / 8;
    for (let j0 = 0; j0 < W; j0 += TILE) {
      const j1 = Math.min(j0 + TILE, W);
      for (let k = 0; k < K; k++) {
        const g = Math.floor(k / G);
        for (let j = j0; j < j1; j++) {
          const word = qweight[k * W + j]!;
          for (let c8 = 0; c8 < 8; c8++) {
            const n = 8 * j + c8;
            const q = (word >>> (4 * AWQ_NIBBLE[c8]!)) & 15;
            w[n * K + k] = f16[scales[g * N + n]!]! * (q - zeros[g * N + n]!);
          }
        }
      }
    }
  } else {
    for (let n0 = 0; n0 < N; n0 += TILE) {
      const n1 = Math.min(n0 + TILE, N);
      for (let i = 0; i < K / 8; i++) {
        const g = Math.floor((8 * i) / G);
        for (let n = n0; n < n1; n++) {
          const word = qweight[i * N + n]!;
          const s = f16[scales[g * N + n]!]!;
          const z = zeros[g * N + n]!;
          const o = n * K + 8 * i;
          for (let b = 0; b < 8; b++) w[o + b] = s * (((word >>> (4 * b)) & 15) - z);
        }
      }
    }
  }
  return w;
}
