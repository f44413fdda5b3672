/**
 * Quantized weight formats. Mirrors native/common/quant.h (the layouts are described there); the ids cross the
 * N-API boundary as dtype numbers.
 *
 * | format    | element value     | scale                 | zero point     | bits/weight (K % G = 0) |
 * |-----------|-------------------|-----------------------|----------------|-------------------------|
 * | `q8_0`    | `d * q`, q int8   | f16 per 32            | —              | 8.5   (GGUF Q8_0)       |
 * | `q4_0`    | `d * (q - 8)`     | f16 per 32            | 8              | 4.5   (GGUF Q4_0)       |
 * | `q4_g32`  | `s * (q - z)`     | f16 per 32            | 0..16 per 32   | 4.75  (GPTQ/AWQ, G=32)  |
 * | `q4_g64`  | `s * (q - z)`     | f16 per 64            | 0..16 per 64   | 4.375                   |
 * | `q4_g128` | `s * (q - z)`     | f16 per 128           | 0..16 per 128  | 4.1875                  |
 * | `i8_pc`   | `s * q`, q int8   | f32 per output row    | —              | 8 (+ 32 per row)        |
 *
 * K (the reduced dimension) need not be a multiple of 32 or of G: the last block or group of a row is shorter.
 */
import { rangeError, typeError } from '../errors.js';
import { expected } from '../validate.js';

export const QUANT_FORMATS = ['q8_0', 'q4_0', 'q4_g32', 'q4_g64', 'q4_g128', 'i8_pc'] as const;
export type QuantFormat = (typeof QUANT_FORMATS)[number];

/** Native dtype ids (native/common/dtype.h). */
export const QUANT_ID: Readonly<Record<QuantFormat, number>> = { q8_0: 16, q4_0: 17, q4_g32: 18, q4_g64: 19, q4_g128: 20, i8_pc: 21 };

/** The group size G of a format (elements of K sharing a scale); i8_pc has one group per row (K). */
export function groupSize(format: QuantFormat, K: number): number {
  switch (format) {
    case 'q4_g64':
      return 64;
    case 'q4_g128':
      return 128;
    case 'i8_pc':
      return K;
    default:
      return 32;
  }
}

/** Whether the format is one of the 4-bit ones. */
export function isQ4(format: QuantFormat): boolean {
  return format !== 'q8_0' && format !== 'i8_pc';
}

/**
 * Bytes of the portable row form of a [N, K] weight (quant.h): GGUF rows for q8_0/q4_0; for q4_gG, per group
 * `{f16 s, u8 z, u8 0, G/2 bytes of nibbles (element 2j low)}`; for i8_pc the N*K int8 values then N f32 scales.
 */
export function rowFormBytes(format: QuantFormat, N: number, K: number): number {
  if (N <= 0 || K <= 0) return 0;
  const nb = Math.ceil(K / 32);
  switch (format) {
    case 'q8_0':
      return N * nb * 34;
    case 'q4_0':
      return N * nb * 18;
    case 'i8_pc':
      return N * K + 4 * N;
    default: {
      const G = groupSize(format, K);
      return N * Math.ceil(K / G) * (4 + G / 2);
    }
  }
}

/** Bytes a [N, K] weight takes in memory (the panel form: rows in panels of 8, N rounded up to 8). */
export function panelFormBytes(format: QuantFormat, N: number, K: number): number {
  if (N <= 0 || K <= 0) return 0;
  const nb = Math.ceil(K / 32);
  let panel: number;
  switch (format) {
    case 'q8_0':
      panel = nb * 272;
      break;
    case 'q4_0':
      panel = nb * 144;
      break;
    case 'i8_pc':
      panel = 32 + nb * 256;
      break;
    default:
      panel = Math.ceil(K / groupSize(format, K)) * 24 + nb * 128;
  }
  return Math.ceil(N / 8) * panel;
}

export function checkFormat(fn: string, param: string, v: unknown): QuantFormat {
  const list = QUANT_FORMATS.map((f) => `'${f}'`).join(', ');
  if (typeof v !== 'string') throw typeError(expected(fn, `a quantized format (${list})`, param, v));
  if (!(QUANT_FORMATS as readonly string[]).includes(v)) throw rangeError(expected(fn, `a quantized format (${list})`, param, v));
  return v as QuantFormat;
}
