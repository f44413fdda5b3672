/**
 * Elementwise ops: add, mul (same shape or row-broadcast), scale, and cast/copy through Tensor methods. All compute
 * in f32 and round once to the output dtype, bit-identical on every backend (native/cpu/ref/*_ref.cc is the spec).
 */
import { isFloat } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { liveHandle, runNative, Tensor, wrapNative } from '../tensor.js';
import { checkFiniteNumber, expected, shapeStr } from '../validate.js';
import type { DType } from '../dtype.js';

function checkSameDevice(fn: string, a: Tensor, param: string, b: Tensor): void {
  if (a.device !== b.device)
    throw new LlmKernelsError('ERR_DEVICE', expected(fn, `${param} on ${a.device.name} (a's device)`, param, b.device.name, true));
}

function binary<D extends DType>(fn: 'add' | 'mul', a: Tensor<D>, b: Tensor<D>): Tensor<D> {
  const ha = liveHandle(fn, 'a', a);
  const hb = liveHandle(fn, 'b', b);
  if (!isFloat(a.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'a.dtype', a.dtype));
  if (b.dtype !== a.dtype) throw typeError(expected(fn, `b.dtype ${a.dtype} (a's dtype)`, 'b.dtype', b.dtype));
  checkSameDevice(fn, a, 'b', b);
  const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  const cols = a.shape.length === 0 ? 1 : a.shape[a.shape.length - 1]!;
  const rowBroadcast = b.shape.length === 1 && b.shape[0] === cols && a.shape.length >= 1;
  if (!same && !rowBroadcast)
    throw rangeError(expected(fn, `b of a's shape ${shapeStr(a.shape)} or of its last dimension [${cols}]`, 'b.shape', shapeStr(b.shape), true));
  const shape = a.shape.slice();
  return wrapNative(runNative(fn, a.device, [ha, hb], a.dtype, shape), a.dtype, shape, a.device);
}

/**
 * `a + b`, elementwise in f32, rounded to the dtype. `b` has a's shape, or is `[N]` with N a's last dimension
 * (added to every row).
 * @throws {TypeError} a or b is not a Tensor, dtypes differ or are not float
 * @throws {RangeError} shapes do not match
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE (different devices)
 * @example const y = add(x, bias); // x [T, N], bias [N]
 */
export function add<D extends DType>(a: Tensor<D>, b: Tensor<D>): Tensor<D> {
  return binary('add', a, b);
}

/**
 * `a * b`, elementwise in f32, rounded to the dtype; b of a's shape or row-broadcast like {@link add}.
 * @throws see {@link add}
 */
export function mul<D extends DType>(a: Tensor<D>, b: Tensor<D>): Tensor<D> {
  return binary('mul', a, b);
}

/**
 * `alpha * x` in f32 (alpha rounded to f32), rounded to x's dtype.
 * @throws {TypeError} x is not a Tensor or alpha not a number
 * @throws {RangeError} alpha is NaN or infinite
 * @example const y = scale(x, 1 / Math.sqrt(128));
 */
export function scale<D extends DType>(x: Tensor<D>, alpha: number): Tensor<D> {
  const fn = 'scale';
  const hx = liveHandle(fn, 'x', x);
  checkFiniteNumber(fn, 'alpha', alpha);
  // alpha is rounded to f32: a finite double beyond the f32 range would become Infinity there.
  if (!Number.isFinite(Math.fround(alpha)))
    throw rangeError(expected(fn, 'a number within the f32 range (|alpha| <= 3.4028234663852886e38)', 'alpha', alpha));
  if (!isFloat(x.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'x.dtype', x.dtype));
  const shape = x.shape.slice();
  return wrapNative(runNative(fn, x.device, [hx], x.dtype, shape, alpha), x.dtype, shape, x.device);
}

/**
 * A copy of x converted to `dtype` (f32/f16/bf16; from any dtype). Same as `x.cast(dtype)`.
 * @throws {TypeError} x is not a Tensor; {@link RangeError} dtype is not a float dtype
 */
export function cast<E extends DType>(x: Tensor, dtype: E): Tensor<E> {
  liveHandle('cast', 'x', x);
  return x.cast(dtype);
}

/** A copy of x on its device. Same as `x.clone()`. */
export function copy<D extends DType>(x: Tensor<D>): Tensor<D> {
  liveHandle('copy', 'x', x);
  return x.clone();
}
