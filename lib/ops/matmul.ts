/**
 * matmul: `y[M,N] = x[M,K] · w[N,K]ᵀ` — the layout of a Linear layer's weight (N output features, K input
 * features, K contiguous), f32 accumulation, y in x's dtype. x may have leading dimensions `[..., K]`. w is a dense
 * Tensor of x's dtype, or a {@link QuantizedTensor} (op `matmul_q`).
 */
import { isFloat, type FloatDType } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { QuantizedTensor } from '../quant/quantized-tensor.js';
import { liveHandle, runNative, wrapNative, Tensor } from '../tensor.js';
import { checkObject, expected, shapeStr } from '../validate.js';

/**
 * How matmul computes with a quantized weight:
 * - `'int8'` (default): each row of x is quantized to int8 per block of 32 (per row for i8_pc weights; scale
 *   amax/127, round to nearest even) and multiplied with integer dot products, int32 accumulation, f32 scaling —
 *   ggml's method, W8A8 / W4A8. Exact integer sums; the activation rounding adds an error of about 0.2-0.4% RMS.
 * - `'dequant'`: the weight is dequantized to f32 in registers and multiplied with f32 FMAs (W8A16 / W4A16): only
 *   the weight's quantization error.
 */
export type QuantPath = 'int8' | 'dequant';

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Compute path for a quantized w (see {@link QuantPath}); not allowed with a dense w. */
  path?: QuantPath;
}

/**
 * Multiplies x by the transpose of w: `y = x · wᵀ`.
 * @param x - `[..., K]` activations (f32, f16 or bf16)
 * @param w - `[N, K]` weights: a Tensor of x's dtype, or a QuantizedTensor of any format, on x's device
 * @param options - `path` for a quantized w: 'int8' (default) or 'dequant'
 * @returns `[..., N]` in x's dtype
 * @throws {TypeError} x or w is not a Tensor/QuantizedTensor, or their dtypes differ or are not float
 * @throws {RangeError} w is not 2-D, K differs, or a bad path
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE (different devices), ERR_UNSUPPORTED (quantized w on CUDA)
 * @example
 * const y = matmul(x, w);                       // x [7, 4096], w [11008, 4096] -> y [7, 11008]
 * const yq = matmul(x, await quantize(w, 'q4_0')); // the same with a 4-bit weight
 */
export function matmul<D extends FloatDType>(x: Tensor<D>, w: Tensor<D> | QuantizedTensor, options: MatmulOptions = {}): Tensor<D> {
  const fn = 'matmul';
  const hx = liveHandle(fn, 'x', x);
  checkObject(fn, 'options', options);
  const quant = w instanceof QuantizedTensor;
  if (!quant && !(w instanceof Tensor)) throw typeError(expected(fn, 'a Tensor or a QuantizedTensor', 'w', w));
  const hw = w.handle(fn, 'w');
  if (!isFloat(x.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'x.dtype', x.dtype));
  if (!quant && w.dtype !== x.dtype) throw typeError(expected(fn, `w.dtype ${x.dtype} (x's dtype)`, 'w.dtype', w.dtype));
  if (w.device !== x.device)
    throw new LlmKernelsError('ERR_DEVICE', expected(fn, `w on ${x.device.name} (x's device)`, 'w', w.device.name, true));
  if (x.shape.length < 1) throw rangeError(expected(fn, 'x with at least 1 dimension [..., K]', 'x.shape', shapeStr(x.shape), true));
  if (w.shape.length !== 2) throw rangeError(expected(fn, 'w of 2 dimensions [N, K]', 'w.shape', shapeStr(w.shape), true));
  const K = x.shape[x.shape.length - 1]!;
  if (w.shape[1] !== K) throw rangeError(expected(fn, `w.shape[1] to equal x's last dimension (K=${K})`, 'w.shape[1]', w.shape[1]));
  const shape = [...x.shape.slice(0, -1), w.shape[0]!];
  const path = options.path;
  if (!quant) {
    if (path !== undefined) throw rangeError(expected(fn, 'no path with a dense w (paths are for quantized weights)', 'options.path', path));
    return wrapNative(runNative(fn, x.device, [hx, hw], x.dtype, shape), x.dtype, shape, x.device);
  }
  if (path !== undefined && typeof path !== 'string') throw typeError(expected(fn, "'int8' or 'dequant'", 'options.path', path));
  if (path !== undefined && path !== 'int8' && path !== 'dequant') throw rangeError(expected(fn, "'int8' or 'dequant'", 'options.path', path));
  return wrapNative(runNative('matmul_q', x.device, [hx, hw], x.dtype, shape, 0, 0, path === 'dequant' ? 1 : 0), x.dtype, shape, x.device);
}
