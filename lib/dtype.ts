/**
 * Element types. Ids mirror native/common/dtype.h (they cross the N-API boundary as numbers).
 * f16 and bf16 are held in `Uint16Array`s as raw bit patterns; {@link Tensor.toFloat32} converts.
 * f8e4m3 (OCP FP8 E4M3: bias 7, no Inf, NaN = 0x7f/0xff, largest 448) is a storage type of the paged KV cache, held
 * in a `Uint8Array` as raw bits; only copies, views and the KV ops take it.
 */
import { rangeError, typeError } from './errors.js';
import { expected } from './validate.js';

export const DTYPES = ['f32', 'f16', 'bf16', 'i8', 'u8', 'i32', 'f8e4m3'] as const;
export type DType = (typeof DTYPES)[number];
export type FloatDType = 'f32' | 'f16' | 'bf16';

export const DTYPE_ID: Readonly<Record<DType, number>> = { f32: 0, f16: 1, bf16: 2, i8: 3, u8: 4, i32: 5, f8e4m3: 6 };
export const DTYPE_SIZE: Readonly<Record<DType, number>> = { f32: 4, f16: 2, bf16: 2, i8: 1, u8: 1, i32: 4, f8e4m3: 1 };

/** The typed array that holds the raw elements of a dtype. */
export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f16' | 'bf16'
    ? Uint16Array
    : D extends 'i8'
      ? Int8Array
      : D extends 'u8' | 'f8e4m3'
        ? Uint8Array
        : Int32Array;

export type AnyTypedArray = Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array;

export const TYPED_ARRAY: Readonly<Record<DType, new (buf: ArrayBuffer, off?: number, len?: number) => AnyTypedArray>> = {
  f32: Float32Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i8: Int8Array,
  u8: Uint8Array,
  i32: Int32Array,
  f8e4m3: Uint8Array,
};

export function isFloat(d: DType): d is FloatDType {
  return d === 'f32' || d === 'f16' || d === 'bf16';
}

export function checkDType(fn: string, param: string, v: unknown): DType {
  if (typeof v !== 'string') throw typeError(expected(fn, `a dtype (${DTYPES.join(', ')})`, param, v));
  if (!(DTYPES as readonly string[]).includes(v)) throw rangeError(expected(fn, `a dtype (${DTYPES.join(', ')})`, param, v));
  return v as DType;
}

// Scalar conversions, the same rules as native/common/dtype.h (round to nearest even, NaN kept quiet). Used for
// small host-side conversions; bulk conversions run natively (the cast op).
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

function checkBits(fn: string, v: unknown): void {
  if (typeof v !== 'number') throw typeError(expected(fn, 'an integer (16-bit pattern)', 'bits', v));
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw rangeError(expected(fn, 'an integer in [0, 65535] (16-bit pattern)', 'bits', v));
}

function checkNumber(fn: string, v: unknown): void {
  if (typeof v !== 'number') throw typeError(expected(fn, 'a number', 'value', v));
}

/** The f32 value of f16 bits (an integer in [0, 65535]). @throws {TypeError} | {RangeError} not 16-bit bits */
export function f16ToF32(h: number): number {
  checkBits('f16ToF32', h);
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** The f32 value of bf16 bits (an integer in [0, 65535]). @throws {TypeError} | {RangeError} not 16-bit bits */
export function bf16ToF32(b: number): number {
  checkBits('bf16ToF32', b);
  u32buf[0] = (b & 0xffff) << 16;
  return f32buf[0]!;
}

/** The bf16 bits of a number (rounded to f32 first, then to nearest even). @throws {TypeError} not a number */
export function f32ToBf16(f: number): number {
  checkNumber('f32ToBf16', f);
  f32buf[0] = f;
  const x = u32buf[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x0040) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f16 bits of a number (rounded to f32 first, then to nearest even). @throws {TypeError} not a number */
export function f32ToF16(f: number): number {
  checkNumber('f32ToF16', f);
  f32buf[0] = f;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return ax === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((ax >>> 13) & 0x3ff);
  if (ax >= 0x477ff000) return sign | 0x7c00;
  if (ax < 0x38800000) {
    if (ax < 0x33000000) return sign;
    const e = ax >>> 23;
    const m = (ax & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = ax - 0x38000000;
  const rem = r & 0x1fff;
  r >>>= 13;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return sign | r;
}

function checkByte(fn: string, v: unknown): void {
  if (typeof v !== 'number') throw typeError(expected(fn, 'an integer (8-bit pattern)', 'bits', v));
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw rangeError(expected(fn, 'an integer in [0, 255] (8-bit pattern)', 'bits', v));
}

/** The value of f8e4m3 bits (an integer in [0, 255]). @throws {TypeError} | {RangeError} not 8-bit bits */
export function f8e4m3ToF32(b: number): number {
  checkByte('f8e4m3ToF32', b);
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 7;
  if (e === 0xf && m === 7) return NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

/**
 * The f8e4m3 bits of a number: rounded to f32, then to nearest even, saturating at +-448 (Inf too); NaN gives
 * 0x7f (0xff when negative). The rules of native/common/dtype.h (and of CUDA's __NV_SATFINITE conversion).
 * @throws {TypeError} not a number
 */
export function f32ToF8e4m3(f: number): number {
  checkNumber('f32ToF8e4m3', f);
  f32buf[0] = f;
  const x = u32buf[0]!;
  const sign = (x >>> 24) & 0x80;
  const ax = x & 0x7fffffff;
  if (ax > 0x7f800000) return sign | 0x7f;
  if (ax >= 0x43e00000) return sign | 0x7e;
  if (ax < 0x3c800000) {
    const v = Math.fround(Math.abs(f32buf[0]!) * 512);
    let r = Math.floor(v);
    const frac = v - r;
    if (frac > 0.5 || (frac === 0.5 && r & 1)) r++;
    return sign | r;
  }
  let r = ax - (120 << 23);
  const rem = r & 0xfffff;
  r >>>= 20;
  if (rem > 0x80000 || (rem === 0x80000 && r & 1)) r++;
  if (r > 0x7e) r = 0x7e;
  return sign | r;
}
