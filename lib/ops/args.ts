/**
 * Argument helpers shared by the op families (lib/ops/*.ts). @internal
 */
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expected, shapeStr } from '../validate.js';

/** An Int32Array or a live i32 tensor, of `length` elements; returns [handle, host data or null, owned tensor]. */
export function i32Arg(fn: string, param: string, v: unknown, length: number, device: Tensor['device']): { h: number; host: Int32Array | null; tmp: Tensor | null } {
  if (v instanceof Int32Array) {
    if (v.length !== length) throw rangeError(expected(fn, `${length} elements`, `${param}.length`, v.length));
    const tmp = Tensor.fromArray(v, { dtype: 'i32', device });
    return { h: tmp.handle(fn, param), host: v, tmp };
  }
  if (v instanceof Tensor) {
    const h = v.handle(fn, param);
    if (v.dtype !== 'i32') throw typeError(expected(fn, 'an i32 tensor or an Int32Array', `${param}.dtype`, v.dtype));
    if (v.numel !== length) throw rangeError(expected(fn, `${length} elements`, `${param}`, `shape ${shapeStr(v.shape)}`, true));
    if (v.device !== device) throw new LlmKernelsError('ERR_DEVICE', expected(fn, `${param} on ${device.name}`, param, v.device.name, true));
    return { h, host: null, tmp: null };
  }
  throw typeError(expected(fn, 'an Int32Array or an i32 Tensor', param, v));
}

export function disposeAll(ts: (Tensor | null)[]): void {
  for (const t of ts) t?.dispose();
}

