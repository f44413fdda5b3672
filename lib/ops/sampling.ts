/**
 * Sampling helpers that run on the logits' device: `argmax` (greedy decoding) and `topK` (the candidates of top-k
 * sampling), so that a decode step downloads B ids or B x k candidates instead of the [B, V] logits.
 * native/cpu/ref/sampling_ref.cc is the spec of both; every backend matches it exactly.
 *
 * Values compare as f32 (f16 and bf16 convert exactly): +0 and -0 tie, -Infinity is an ordinary (masked) value, and
 * ties go to the lower index. A row holding NaN or +Infinity, or no finite value, has no answer: a kernel cannot throw,
 * so such a row gets id -1 (and values NaN from `topK`); {@link Sampler} turns it into the RangeError of its host path.
 */
import { isFloat } from '../dtype.js';
import { rangeError, typeError } from '../errors.js';
import { liveHandle, runNative, runNativeInto, Tensor, wrapNative } from '../tensor.js';
import { checkInteger, expected, shapeStr } from '../validate.js';
import { disposeAll } from './args.js';

/** The largest k of {@link topK} (native kTopKMax: the CUDA kernel sorts a row's k candidates in shared memory). */
export const TOP_K_MAX = 1024;

/** Checks logits [B, V] (V >= 1, float); returns the handle and the shape. */
function checkLogits(fn: string, logits: unknown): { h: number; B: number; V: number } {
  const h = liveHandle(fn, 'logits', logits);
  const t = logits as Tensor;
  if (!isFloat(t.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'logits.dtype', t.dtype));
  if (t.shape.length !== 2 || t.shape[1]! < 1 || t.shape[1]! > 2 ** 31 - 1)
    throw rangeError(expected(fn, 'logits of shape [B, V] with 1 <= V < 2^31', 'logits.shape', shapeStr(t.shape), true));
  return { h, B: t.shape[0]!, V: t.shape[1]! };
}

/**
 * The index of the largest logit of each row, the lowest index on ties, computed on the logits' device.
 * @param logits - `[B, V]` f32, f16 or bf16; -Infinity marks masked tokens
 * @returns `[B]` i32: the ids, or -1 for a row holding NaN or +Infinity, or no finite value
 * @throws {TypeError} logits is not a Tensor, or not of a float dtype
 * @throws {RangeError} logits is not `[B, V]` with V >= 1
 * @throws {LlmKernelsError} ERR_DISPOSED
 * @example
 * using ids = argmax(logits); // [B]
 * const next = await ids.data();   // Int32Array
 */
export function argmax(logits: Tensor): Tensor<'i32'> {
  const fn = 'argmax';
  const { h, B } = checkLogits(fn, logits);
  const shape = [B];
  return wrapNative(runNative('argmax', logits.device, [h], 'i32', shape), 'i32', shape, logits.device);
}

/**
 * The k largest logits of each row and their ids, in descending order, ties by the lower id, computed on the logits'
 * device.
 * @param logits - `[B, V]` f32, f16 or bf16; -Infinity marks masked tokens (they rank last)
 * @param k - an integer in [1, min(V, {@link TOP_K_MAX})]
 * @returns `values` `[B, k]` f32 (the logits, converted exactly) and `ids` `[B, k]` i32; a row holding NaN or
 *   +Infinity, or no finite value, gets values NaN and ids -1
 * @throws {TypeError} logits is not a Tensor or not of a float dtype; k is not a number
 * @throws {RangeError} logits is not `[B, V]` with V >= 1; k is not an integer in [1, min(V, 1024)]
 * @throws {LlmKernelsError} ERR_DISPOSED
 * @example
 * const { values, ids } = topK(logits, 50);
 */
export function topK(logits: Tensor, k: number): { values: Tensor<'f32'>; ids: Tensor<'i32'> } {
  const fn = 'topK';
  const { h, B, V } = checkLogits(fn, logits);
  checkInteger(fn, 'k', k, 1, Math.min(V, TOP_K_MAX));
  const values = Tensor.empty([B, k], { dtype: 'f32', device: logits.device });
  const ids = Tensor.empty([B, k], { dtype: 'i32', device: logits.device });
  try {
    runNativeInto('top_k', logits.device, [h], [values.handle(fn), ids.handle(fn)]);
  } catch (err) {
    disposeAll([values, ids]);
    throw err;
  }
  return { values, ids };
}
