/**
 * Quantizers, dequantization and the quantization error report.
 *
 * Rounding rules (native/common/quant_rows.h): q8_0 and q4_0 produce exactly the bytes of llama.cpp's reference
 * quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref); q4_gG is round-to-nearest asymmetric (GPTQ's RTN,
 * range widened to include 0, the f16-rounded scale used for q); i8_pc is symmetric per row with an f32 scale.
 * All-zero blocks, groups or rows get scale 0 and dequantize to exact zeros.
 */
import { type DeviceSpec } from '../device.js';
import { isFloat, type FloatDType, checkDType } from '../dtype.js';
import { rangeError, typeError } from '../errors.js';
import { liveHandle, runNative, wrapNative, type Tensor } from '../tensor.js';
import { checkObject, expected, shapeStr } from '../validate.js';
import { checkFormat, QUANT_ID, type QuantFormat } from './formats.js';
import { gptqToQ4GRows, type GptqShape, type GptqTensors } from './gptq.js';
import { liveWeight, QuantizedTensor } from './quantized-tensor.js';

function enqueueQuantize(fn: string, w: Tensor, format: QuantFormat): QuantizedTensor {
  const h = liveHandle(fn, 'w', w);
  const f = checkFormat(fn, 'format', format);
  if (!isFloat(w.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'w.dtype', w.dtype));
  if (w.shape.length !== 2) throw rangeError(expected(fn, 'w of 2 dimensions [N, K]', 'w.shape', shapeStr(w.shape), true));
  const [N, K] = w.shape as [number, number];
  if (N < 1 || K < 1) throw rangeError(expected(fn, 'N >= 1 and K >= 1', 'w.shape', shapeStr(w.shape), true));
  return new QuantizedTensor(runNative('quantize', w.device, [h], QUANT_ID[f], [N, K]), f, [N, K], w.device);
}

/**
 * Quantizes a weight `w[N, K]` (a Linear layer's weight: N outputs, K inputs) into `format`, on w's device: the
 * same bytes on the CPU and on CUDA. Resolves when the weight is ready. On the CPU the event loop is never blocked;
 * on a CUDA device the call waits for the device (the work queued before it, then the quantization) so that a bad
 * value is reported like on the CPU: quantizing is load-time work.
 * @param w - f32, f16 or bf16, 2-D `[N, K]`; K need not be a multiple of 32 or of the group size
 * @param format - 'q8_0' | 'q4_0' | 'q4_g32' | 'q4_g64' | 'q4_g128' | 'i8_pc'
 * @throws {TypeError} w is not a Tensor or not float; format is not a string
 * @throws {RangeError} w is not 2-D or is empty, format unknown; rejects with a RangeError naming the row and
 *   column of a NaN or Infinity in w, or of a value too large for an f16 scale
 * @throws {LlmKernelsError} ERR_DISPOSED
 * @example
 * const w = Tensor.randn([11008, 4096]);
 * using q = await quantize(w, 'q4_0');
 * const y = matmul(x, q);
 */
export async function quantize(w: Tensor, format: QuantFormat): Promise<QuantizedTensor> {
  const q = enqueueQuantize('quantize', w, format);
  try {
    await q.ready();
  } catch (e) {
    q.dispose();
    throw e;
  }
  return q;
}

/** Like {@link quantize}, blocking the calling thread until the weight is ready (for scripts). */
export function quantizeSync(w: Tensor, format: QuantFormat): QuantizedTensor {
  const q = enqueueQuantize('quantizeSync', w, format);
  try {
    q.readySync();
  } catch (e) {
    q.dispose();
    throw e;
  }
  return q;
}

/**
 * The values of a quantized weight as a dense `[N, K]` tensor: `scale * (q - zero)` in f32, rounded to `dtype`.
 * @param dtype - 'f32' (default), 'f16' or 'bf16'
 * @throws {TypeError} w is not a QuantizedTensor; bad dtype type
 * @throws {RangeError} dtype is not a float dtype
 * @throws {LlmKernelsError} ERR_DISPOSED
 * @example const dense = dequantize(q); // Tensor<'f32'> [N, K]
 */
export function dequantize<D extends FloatDType = 'f32'>(w: QuantizedTensor, dtype: D = 'f32' as D): Tensor<D> {
  const fn = 'dequantize';
  const h = liveWeight(fn, 'w', w);
  const t = checkDType(fn, 'dtype', dtype);
  if (!isFloat(t)) throw rangeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'dtype', t));
  const shape = [w.shape[0], w.shape[1]];
  return wrapNative(runNative(fn, w.device, [h], t, shape), t as D, shape, w.device);
}

/** How far a quantized weight is from the original. */
export interface QuantizationReport {
  /** The format. */
  format: QuantFormat;
  /** Largest |w - dequantize(q)|. */
  maxAbs: number;
  /** Root mean square of w - dequantize(q). */
  rms: number;
  /** Root mean square of w (the signal). */
  signalRms: number;
  /** Signal-to-noise ratio in dB: 10 log10(sum w^2 / sum (w - q)^2); Infinity when exact. */
  snrDb: number;
  /** Bits per weight in memory (the panel form, scales and padding included). */
  bitsPerWeight: number;
}

/**
 * The quantization error of `q` against the weight `w` it was made from: max abs, RMS and SNR in dB, for judging
 * a format (q8_0 is typically ~40 dB on normal weights, q4 formats ~20 dB).
 * @throws {TypeError} w is not a Tensor, q not a QuantizedTensor
 * @throws {RangeError} their shapes differ
 * @throws {LlmKernelsError} ERR_DISPOSED
 * @example
 * const r = await quantizationError(w, await quantize(w, 'q4_g128'));
 * console.log(`${r.snrDb.toFixed(1)} dB, max ${r.maxAbs}`);
 */
export async function quantizationError(w: Tensor, q: QuantizedTensor): Promise<QuantizationReport> {
  const fn = 'quantizationError';
  liveHandle(fn, 'w', w);
  liveWeight(fn, 'q', q);
  if (!isFloat(w.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'w.dtype', w.dtype));
  if (w.shape.length !== 2 || w.shape[0] !== q.shape[0] || w.shape[1] !== q.shape[1])
    throw rangeError(expected(fn, `w of q's shape ${shapeStr(q.shape)}`, 'w.shape', shapeStr(w.shape), true));
  using dq = dequantize(q, 'f32');
  const [a, b] = await Promise.all([w.toFloat32(), dq.data()]);
  let maxAbs = 0;
  let err2 = 0;
  let sig2 = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    const ad = Math.abs(d);
    if (ad > maxAbs) maxAbs = ad;
    err2 += d * d;
    sig2 += a[i]! * a[i]!;
  }
  const n = Math.max(1, a.length);
  return {
    format: q.format,
    maxAbs,
    rms: Math.sqrt(err2 / n),
    signalRms: Math.sqrt(sig2 / n),
    snrDb: err2 === 0 ? Infinity : 10 * Math.log10(sig2 / err2),
    bitsPerWeight: (8 * q.nbytes) / (q.shape[0] * q.shape[1]),
  };
}

/** Options of {@link importGptq}. */
export interface ImportGptqOptions {
  /** Device to hold the weight; default 'cpu'. */
  device?: DeviceSpec;
}

/**
 * A GPTQ (v1 or v2) or AWQ 4-bit Linear layer as a `q4_g{G}` weight: the packed int32 `qweight`/`qzeros` and f16
 * `scales` of the checkpoint, unpacked exactly (`w = s * (q - z)`). Act-order checkpoints (a non-trivial `g_idx`)
 * are refused with ERR_UNSUPPORTED.
 * @throws {TypeError} | {RangeError} tensors or shape that do not match (see ./gptq.ts)
 * @throws {LlmKernelsError} ERR_UNSUPPORTED for bits other than 4, group sizes other than 32/64/128, act-order
 * @example
 * const q = importGptq({ qweight, qzeros, scales }, { outFeatures: 11008, inFeatures: 4096, groupSize: 128, format: 'gptq' });
 */
export function importGptq(tensors: GptqTensors, shape: GptqShape, options: ImportGptqOptions = {}): QuantizedTensor {
  checkObject('importGptq', 'options', options);
  const rows = gptqToQ4GRows(tensors, shape);
  const format = `q4_g${shape.groupSize}` as QuantFormat;
  return QuantizedTensor.fromBytes(format, [shape.outFeatures, shape.inFeatures], rows, { device: options.device ?? 'cpu' });
}
