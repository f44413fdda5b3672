/**
 * matmul: `y[M,N] = x[M,K] · w[N,K]ᵀ` — the layout of a Linear layer's weight (N output features, K input
 * features, K contiguous), f32 accumulation, y in x's dtype. x may have leading dimensions `[..., K]`.
 */
import { isFloat, type FloatDType } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { liveHandle, runNative, wrapNative, type Tensor } from '../tensor.js';
import { expected, shapeStr } from '../validate.js';

/**
 * Multiplies x by the transpose of w: `y = x · wᵀ`.
 * @param x - `[..., K]` activations (f32, f16 or bf16)
 * @param w - `[N, K]` weights, same dtype and device as x
 * @returns `[..., N]` in x's dtype
 * @throws {TypeError} x or w is not a Tensor, or their dtypes differ or are not float
 * @throws {RangeError} w is not 2-D, or K differs
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE (different devices)
 * @example
 * const y = matmul(x, w); // x [7, 4096], w [11008, 4096] -> y [7, 11008]
 */
export function matmul<D extends FloatDType>(x: Tensor<D>, w: Tensor<D>): Tensor<D> {
  const fn = 'matmul';
  const hx = liveHandle(fn, 'x', x);
  const hw = liveHandle(fn, 'w', w);
  if (!isFloat(x.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'x.dtype', x.dtype));
  if (w.dtype !== x.dtype) throw typeError(expected(fn, `w.dtype ${x.dtype} (x's dtype)`, 'w.dtype', w.dtype));
  if (w.device !== x.device)
    throw new LlmKernelsError('ERR_DEVICE', expected(fn, `w on ${x.device.name} (x's device)`, 'w', w.device.name, true));
  if (x.shape.length < 1) throw rangeError(expected(fn, 'x with at least 1 dimension [..., K]', 'x.shape', shapeStr(x.shape), true));
  if (w.shape.length !== 2) throw rangeError(expected(fn, 'w of 2 dimensions [N, K]', 'w.shape', shapeStr(w.shape), true));
  const K = x.shape[x.shape.length - 1]!;
  if (w.shape[1] !== K) throw rangeError(expected(fn, `w.shape[1] to equal x's last dimension (K=${K})`, 'w.shape[1]', w.shape[1]));
  const shape = [...x.shape.slice(0, -1), w.shape[0]!];
  return wrapNative(runNative(fn, x.device, [hx, hw], x.dtype, shape), x.dtype, shape, x.device);
}
