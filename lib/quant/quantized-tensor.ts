/**
 * QuantizedTensor: a weight `w[N, K]` (N output rows, K reduced) in one of the formats of ./formats.ts, held in
 * device memory in the kernels' panel form. Make one with {@link quantize}, {@link QuantizedTensor.fromBytes}
 * (row-form bytes: GGUF Q8_0/Q4_0 rows, or our q4_g/i8_pc row form) or {@link importGptq}; use it as `w` of
 * {@link matmul}. Dispose it like a Tensor (`dispose()`, `using`); garbage collection is a safety net only.
 */
import { native, type NativeTensor } from '../binding.js';
import { type Device, resolveDevice, type DeviceSpec } from '../device.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { DTYPE_ID } from '../dtype.js';
import { runNative } from '../tensor.js';
import { checkInteger, checkObject, expected, shapeStr } from '../validate.js';
import { checkFormat, groupSize, isQ4, panelFormBytes, QUANT_ID, rowFormBytes, type QuantFormat } from './formats.js';

const gcSafetyNet = new FinalizationRegistry<NativeTensor>((id) => native.dispose(id));

/** Largest N or K of a quantized weight (native/addon: both below 2^40). */
const MAX_DIM = 2 ** 40 - 1;

/** Options of {@link QuantizedTensor.fromBytes}. */
export interface FromBytesOptions {
  /** Device to hold the weight; default 'cpu'. */
  device?: DeviceSpec;
}

/** Checks a weight shape `[N, K]` with N, K >= 1. @internal */
export function checkWeightShape(fn: string, param: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw (Array.isArray(v) ? rangeError : typeError)(expected(fn, 'a shape [N, K]', param, v));
  const N = checkInteger(fn, `${param}[0]`, v[0], 1, MAX_DIM);
  const K = checkInteger(fn, `${param}[1]`, v[1], 1, MAX_DIM);
  return [N, K];
}

export class QuantizedTensor {
  #h: NativeTensor | null;
  /** The format of the weight. */
  readonly format: QuantFormat;
  /** `[N, K]`: N output rows, K the reduced dimension. */
  readonly shape: readonly [number, number];
  /** The device holding the weight. */
  readonly device: Device;

  /** @internal Use {@link quantize}, {@link QuantizedTensor.fromBytes} or {@link importGptq}. */
  constructor(handle: NativeTensor, format: QuantFormat, shape: readonly [number, number], dev: Device) {
    if (typeof handle !== 'number')
      throw typeError(expected('QuantizedTensor', 'a native tensor handle (use quantize() or QuantizedTensor.fromBytes())', 'handle', handle));
    this.#h = handle;
    gcSafetyNet.register(this, handle);
    this.format = format;
    this.shape = Object.freeze([shape[0], shape[1]]) as readonly [number, number];
    this.device = dev;
  }

  /**
   * A weight from its row-form bytes (see ./formats.ts): for `q8_0` and `q4_0` exactly the bytes of a GGUF tensor's
   * rows when K is a multiple of 32 (the last block of each row zero-padded otherwise); for `q4_gG` per group
   * `{f16 scale, u8 zero 0..16, u8 0, G/2 bytes of nibbles, element 2j in the low one}`; for `i8_pc` the N*K int8
   * values then N f32 scales. The bytes are copied.
   * @param format - the format of the bytes
   * @param shape - `[N, K]`
   * @param bytes - a Uint8Array (or any typed array / ArrayBuffer) of exactly {@link rowFormBytes} bytes
   * @throws {TypeError} a bad format, shape or bytes type
   * @throws {RangeError} the wrong number of bytes, or a q4_g zero point above 16 (named by row and group)
   * @throws {LlmKernelsError} ERR_DEVICE, ERR_OOM
   * @example
   * const w = QuantizedTensor.fromBytes('q4_0', [4096, 4096], ggufTensorBytes);
   */
  static fromBytes(format: QuantFormat, shape: readonly number[], bytes: ArrayBufferView | ArrayBuffer, options: FromBytesOptions = {}): QuantizedTensor {
    const fn = 'QuantizedTensor.fromBytes';
    const f = checkFormat(fn, 'format', format);
    const [N, K] = checkWeightShape(fn, 'shape', shape);
    checkObject(fn, 'options', options);
    const dev = resolveDevice(fn, 'options.device', options.device ?? 'cpu');
    let u8: Uint8Array;
    if (bytes instanceof ArrayBuffer) u8 = new Uint8Array(bytes);
    else if (ArrayBuffer.isView(bytes)) u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    else throw typeError(expected(fn, 'a Uint8Array, typed array or ArrayBuffer', 'bytes', bytes));
    const want = rowFormBytes(f, N, K);
    if (u8.byteLength !== want)
      throw rangeError(expected(fn, `${want} bytes (the ${f} row form of ${shapeStr([N, K])})`, 'bytes.byteLength', u8.byteLength));
    if (isQ4(f) && f !== 'q4_0') {
      const G = groupSize(f, K);
      const ng = Math.ceil(K / G);
      const gb = 4 + G / 2;
      for (let n = 0; n < N; n++)
        for (let g = 0; g < ng; g++) {
          const z = u8[(n * ng + g) * gb + 2]!;
          if (z > 16) throw rangeError(expected(fn, 'zero points in [0, 16]', `bytes (row ${n}, group ${g})`, z));
        }
    }
    const cpu = resolveDevice(fn, 'device', 'cpu');
    const raw = native.fromBytes(cpu.kindId, cpu.index, DTYPE_ID.u8, [want], u8);
    let h: NativeTensor;
    try {
      h = runNative('quant_import', cpu, [raw], QUANT_ID[f], [N, K]);
    } finally {
      native.dispose(raw);
    }
    const q = new QuantizedTensor(h, f, [N, K], cpu);
    if (dev === cpu) return q;
    try {
      return q.to(dev);
    } finally {
      q.dispose();
    }
  }

  /** @internal The native handle; throws ERR_DISPOSED if disposed. */
  handle(fn: string, param = 'weight'): NativeTensor {
    const h = this.#h;
    if (h === null) throw new LlmKernelsError('ERR_DISPOSED', `${fn}: expected a live quantized weight for ${param}, got a disposed one`);
    return h;
  }

  /** Bytes the weight takes in memory (its panel form). */
  get nbytes(): number {
    return panelFormBytes(this.format, this.shape[0], this.shape[1]);
  }
  /** True after {@link QuantizedTensor.dispose}. */
  get disposed(): boolean {
    return this.#h === null;
  }

  /**
   * Resolves once every op enqueued before on the weight's device has run and the weight was computed; rejects
   * with the error that stopped it (e.g. the RangeError of {@link quantize} for a NaN in the input).
   * @throws {LlmKernelsError} ERR_DISPOSED
   */
  ready(): Promise<void> {
    return native.ready(this.handle('ready'));
  }
  /** Like {@link QuantizedTensor.ready}, blocking the calling thread. */
  readySync(): void {
    native.readySync(this.handle('readySync'));
  }

  /**
   * The row-form bytes of the weight (the inverse of {@link QuantizedTensor.fromBytes}): GGUF rows for q8_0/q4_0.
   * @throws {LlmKernelsError} ERR_DISPOSED; rejects with the error of a failed op queued before
   */
  async toBytes(): Promise<Uint8Array> {
    const h = this.#exportHandle('toBytes');
    try {
      return new Uint8Array(await native.read(h));
    } finally {
      native.dispose(h);
    }
  }
  /** Like {@link QuantizedTensor.toBytes}, blocking the calling thread. */
  toBytesSync(): Uint8Array {
    const h = this.#exportHandle('toBytesSync');
    try {
      return new Uint8Array(native.readSync(h));
    } finally {
      native.dispose(h);
    }
  }

  #exportHandle(fn: string): NativeTensor {
    let src = this.handle(fn);
    const cpu = resolveDevice(fn, 'device', 'cpu');
    const moved = this.device !== cpu;
    if (moved) src = native.to(src, cpu.kindId, cpu.index);
    try {
      return runNative('quant_export', cpu, [src], 'u8', [rowFormBytes(this.format, this.shape[0], this.shape[1])]);
    } finally {
      if (moved) native.dispose(src);
    }
  }

  /**
   * A copy on another device (or the same).
   * @throws {LlmKernelsError} ERR_DEVICE, ERR_OOM, ERR_DISPOSED
   */
  to(dev: DeviceSpec): QuantizedTensor {
    const h = this.handle('to');
    const d = resolveDevice('to', 'device', dev);
    return new QuantizedTensor(native.to(h, d.kindId, d.index), this.format, this.shape, d);
  }

  /** Releases the weight's memory reference now. Idempotent. Queued ops that use it still complete. */
  dispose(): void {
    const h = this.#h;
    if (h !== null) {
      this.#h = null;
      native.dispose(h);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `QuantizedTensor(${this.format}, ${shapeStr(this.shape)}, ${this.device.name}${this.disposed ? ', disposed' : ''})`;
  }
}

/** Throws the typed error if `w` is not a live QuantizedTensor; returns its handle. @internal */
export function liveWeight(fn: string, param: string, w: unknown): NativeTensor {
  if (!(w instanceof QuantizedTensor)) throw typeError(expected(fn, 'a QuantizedTensor', param, w));
  return w.handle(fn, param);
}
