/**
 * Tensor: a typed, shaped view of memory on a device.
 *
 * Ops return tensors at once; their contents are computed on the device's stream. Reading waits:
 * `await t.data()` (never blocks the event loop) or `t.dataSync()` (blocks; for scripts). Free memory with
 * `t.dispose()` or `using t = ...`; disposing while ops that use the tensor are still queued is safe (they hold
 * the memory until they ran). Garbage collection frees a forgotten tensor eventually: a safety net, not a plan.
 */
import { native, opId, type NativeTensor } from './binding.js';
import { Device, resolveDevice, type DeviceSpec } from './device.js';
import {
  checkDType,
  DTYPE_ID,
  DTYPE_SIZE,
  f8e4m3ToF32,
  isFloat,
  TYPED_ARRAY,
  type AnyTypedArray,
  type DType,
  type TypedArrayFor,
} from './dtype.js';
import { LlmKernelsError, rangeError, typeError } from './errors.js';
import { Rng } from './random.js';
import { checkInteger, checkObject, checkShape, expected, MAX_SAFE, shapeNumel, shapeStr } from './validate.js';

/** Options of the tensor factories. */
export interface TensorOptions<D extends DType = DType> {
  /** Element type; default from the data ('f32' for number arrays and Float32Array). */
  dtype?: D;
  /** Device or device spec; default 'cpu'. */
  device?: DeviceSpec;
}

/** Options of {@link Tensor.fromArray}. */
export interface FromArrayOptions<D extends DType = DType> extends TensorOptions<D> {
  /** Shape; default `[data.length]`. */
  shape?: readonly number[];
}

/** Options of {@link Tensor.rand} and {@link Tensor.randn}. */
export interface RandomOptions<D extends DType = DType> extends TensorOptions<D> {
  /** Seed of the generator (an integer); the same seed gives the same tensor. Default 0. */
  seed?: number;
}

const FN_FROM = 'Tensor.fromArray';

function inferDType(data: unknown): DType | undefined {
  if (data instanceof Float32Array || data instanceof Float64Array || Array.isArray(data)) return 'f32';
  if (data instanceof Int8Array) return 'i8';
  if (data instanceof Uint8Array) return 'u8';
  if (data instanceof Int32Array) return 'i32';
  return undefined;
}

/** A dense tensor on a device. Create with the static factories or ops; never with `new`. */
export class Tensor<D extends DType = DType> {
  #h: NativeTensor | null;
  /** Element type. */
  readonly dtype: D;
  /** Dimensions, outermost first (row-major). */
  readonly shape: readonly number[];
  /** The device holding the data. */
  readonly device: Device;

  /** @internal Use the factories. */
  constructor(handle: NativeTensor, dtype: D, shape: readonly number[], dev: Device) {
    if (typeof handle !== 'number')
      throw typeError(expected('Tensor', 'a native tensor handle (create tensors with the factories, not new)', 'handle', handle));
    this.#h = handle;
    gcSafetyNet.register(this, handle);
    this.dtype = dtype;
    // Callers hand over a fresh array (or one already frozen): frozen as is, not copied again.
    this.shape = Object.isFrozen(shape) ? shape : Object.freeze(shape as number[]);
    this.device = dev;
  }

  /**
   * A tensor holding a copy of `data`.
   * @param data - a Float32Array or number[] (converted to `dtype` if it is f16/bf16), or the typed array of
   *   `dtype` itself: Uint16Array raw bits for f16/bf16, Int8Array, Uint8Array, Int32Array; Float64Array is
   *   rounded to f32 first
   * @param options - `shape` (default `[data.length]`), `dtype`, `device`
   * @throws {TypeError} data or an option has the wrong type
   * @throws {RangeError} shape does not match data's length, or an option is out of range
   * @example
   * const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
   * const h = Tensor.fromArray(new Float32Array(8), { dtype: 'f16' });
   */
  static fromArray<D extends DType = 'f32'>(
    data: ArrayLike<number> | AnyTypedArray | Float64Array,
    options: FromArrayOptions<D> = {},
  ): Tensor<D> {
    checkObject(FN_FROM, 'options', options);
    const isView = ArrayBuffer.isView(data);
    if (!isView && !Array.isArray(data)) throw typeError(expected(FN_FROM, 'a typed array or an array of numbers', 'data', data));
    if (isView && (data instanceof DataView || data instanceof BigInt64Array || data instanceof BigUint64Array))
      throw typeError(expected(FN_FROM, 'a typed array of numbers', 'data', data));
    const length = (data as ArrayLike<number>).length;
    const dtype = (options.dtype === undefined ? inferDType(data) : checkDType(FN_FROM, 'options.dtype', options.dtype)) as D | undefined;
    if (dtype === undefined) {
      if (data instanceof Uint16Array)
        throw typeError(expected(FN_FROM, "options.dtype ('f16' or 'bf16') with a Uint16Array", 'options.dtype', undefined));
      throw typeError(
        expected(FN_FROM, 'a number[], Float32Array, Float64Array, Int8Array, Uint8Array or Int32Array (or options.dtype)', 'data', data),
      );
    }
    const shape = options.shape === undefined ? [length] : checkShape(FN_FROM, 'options.shape', options.shape);
    if (shapeNumel(shape) !== length)
      throw rangeError(expected(FN_FROM, `${shapeNumel(shape)} elements (shape ${shapeStr(shape)})`, 'data.length', length));
    const dev = resolveDevice(FN_FROM, 'options.device', options.device ?? 'cpu');
    // Raw data of the dtype itself: copied as is.
    const raw =
      (dtype === 'f32' && data instanceof Float32Array) ||
      ((dtype === 'f16' || dtype === 'bf16') && data instanceof Uint16Array) ||
      (dtype === 'i8' && data instanceof Int8Array) ||
      ((dtype === 'u8' || dtype === 'f8e4m3') && data instanceof Uint8Array) ||
      (dtype === 'i32' && data instanceof Int32Array);
    if (raw) return wrapNative(native.fromBytes(dev.kindId, dev.index, DTYPE_ID[dtype], shape, data as AnyTypedArray), dtype, shape, dev);
    if (data instanceof Uint16Array) throw typeError(expected(FN_FROM, `a Uint16Array only with dtype 'f16' or 'bf16'`, 'options.dtype', dtype));
    if (dtype === 'f8e4m3') throw typeError(expected(FN_FROM, "a Uint8Array of raw bits for dtype 'f8e4m3'", 'data', data));
    // Numbers: check them, store as f32 (or the integer type), convert on the device when the dtype is f16/bf16.
    if (isFloat(dtype)) {
      // Check the elements before converting: Float32Array.from throws an untyped error on a bigint.
      if (!isView) {
        for (let i = 0; i < length; i++)
          if (typeof (data as ArrayLike<unknown>)[i] !== 'number')
            throw typeError(expected(FN_FROM, 'numbers', `data[${i}]`, (data as ArrayLike<unknown>)[i]));
      }
      const f = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
      const t32 = wrapNative(native.fromBytes(dev.kindId, dev.index, DTYPE_ID.f32, shape, f), 'f32', shape, dev);
      if (dtype === 'f32') return t32 as unknown as Tensor<D>;
      try {
        return t32.cast(dtype) as unknown as Tensor<D>;
      } finally {
        t32.dispose();
      }
    }
    const Ctor = TYPED_ARRAY[dtype] as unknown as { from(a: ArrayLike<number>): AnyTypedArray };
    const [lo, hi] = dtype === 'i8' ? [-128, 127] : dtype === 'u8' ? [0, 255] : [-2147483648, 2147483647];
    for (let i = 0; i < length; i++) {
      const v = (data as ArrayLike<unknown>)[i];
      if (typeof v !== 'number') throw typeError(expected(FN_FROM, 'numbers', `data[${i}]`, v));
      if (!Number.isInteger(v) || v < lo || v > hi) throw rangeError(expected(FN_FROM, `an ${dtype} integer in [${lo}, ${hi}]`, `data[${i}]`, v));
    }
    return wrapNative(native.fromBytes(dev.kindId, dev.index, DTYPE_ID[dtype], shape, Ctor.from(data as ArrayLike<number>)), dtype, shape, dev);
  }

  /**
   * A CPU tensor read straight from a file: `numel * dtype size` bytes at `offset`, little-endian, into native
   * memory (no JS buffer in between). The model loaders use it for tensor data whose place in the file they have
   * validated; the native side checks the range against the file's size again.
   * @param path - a regular file
   * @param options - `dtype`, `shape`, `offset` (bytes, default 0)
   * @throws {TypeError} | {RangeError} bad path, dtype, shape or offset
   * @throws {LlmKernelsError} ERR_MODEL_FORMAT (cannot open or read, or the range lies outside the file), ERR_OOM
   * @example const w = Tensor.fromFile('model.safetensors', { dtype: 'bf16', shape: [320, 256], offset: 4096 });
   */
  static fromFile<D extends DType>(path: string, options: { dtype: D; shape: readonly number[]; offset?: number }): Tensor<D> {
    const fn = 'Tensor.fromFile';
    if (typeof path !== 'string' || path.length === 0) throw typeError(expected(fn, 'a file path', 'path', path));
    checkObject(fn, 'options', options);
    const dtype = checkDType(fn, 'options.dtype', options.dtype) as D;
    const shape = checkShape(fn, 'options.shape', options.shape);
    checkBytes(fn, shape, dtype);
    const offset = checkInteger(fn, 'options.offset', options.offset ?? 0, 0, MAX_SAFE);
    return Tensor.fromFileSegments([{ path, offset, byteLength: shapeNumel(shape) * DTYPE_SIZE[dtype] }], dtype, shape);
  }

  /**
   * A CPU tensor filled from several file ranges one after another (e.g. two weights stacked into one), read
   * straight into native memory. @internal (lib/nn's loaders)
   */
  static fromFileSegments<D extends DType>(segments: readonly { path: string; offset: number; byteLength: number }[], dtype: D, shape: readonly number[]): Tensor<D> {
    const fn = 'Tensor.fromFile';
    const s = checkShape(fn, 'shape', shape);
    checkBytes(fn, s, dtype);
    const segs = segments.map((g, i): [string, number, number] => {
      if (typeof g.path !== 'string' || g.path.length === 0) throw typeError(expected(fn, 'a file path', `segments[${i}].path`, g.path));
      return [g.path, checkInteger(fn, `segments[${i}].offset`, g.offset, 0, MAX_SAFE), checkInteger(fn, `segments[${i}].byteLength`, g.byteLength, 0, MAX_SAFE)];
    });
    const dev = resolveDevice(fn, 'device', 'cpu');
    return wrapNative(native.fromFile(dev.kindId, dev.index, DTYPE_ID[dtype], s, segs), dtype, s, dev);
  }

  /**
   * An uninitialized tensor (its contents are whatever the memory held). Use it as a buffer that an op fills.
   * @throws {TypeError} | {RangeError} bad shape or options
   * @throws {LlmKernelsError} ERR_OOM when the memory cannot be allocated
   */
  static empty<D extends DType = 'f32'>(shape: readonly number[], options: TensorOptions<D> = {}): Tensor<D> {
    const fn = 'Tensor.empty';
    checkObject(fn, 'options', options);
    const s = checkShape(fn, 'shape', shape);
    const dtype = checkDType(fn, 'options.dtype', options.dtype ?? 'f32') as D;
    checkBytes(fn, s, dtype);
    const dev = resolveDevice(fn, 'options.device', options.device ?? 'cpu');
    return wrapNative(native.empty(dev.kindId, dev.index, DTYPE_ID[dtype], s), dtype, s, dev);
  }

  /** A tensor of zeros. @throws see {@link Tensor.empty} */
  static zeros<D extends DType = 'f32'>(shape: readonly number[], options: TensorOptions<D> = {}): Tensor<D> {
    return Tensor.#full('Tensor.zeros', shape, 0, options);
  }

  /**
   * A tensor with every element `value` (converted to the dtype: rounded for f16/bf16; an exact integer in range
   * for integer dtypes).
   * @throws {RangeError} value is not representable in an integer dtype, or is NaN/Infinity there
   */
  static full<D extends DType = 'f32'>(shape: readonly number[], value: number, options: TensorOptions<D> = {}): Tensor<D> {
    return Tensor.#full('Tensor.full', shape, value, options);
  }

  static #full<D extends DType>(fn: string, shape: readonly number[], value: number, options: TensorOptions<D>): Tensor<D> {
    checkObject(fn, 'options', options);
    const s = checkShape(fn, 'shape', shape);
    const dtype = checkDType(fn, 'options.dtype', options.dtype ?? 'f32') as D;
    if (typeof value !== 'number') throw typeError(expected(fn, 'a number', 'value', value));
    if (dtype === 'f8e4m3') {
      // No native fill for a storage type: zeros only, from host memory.
      if (value !== 0) throw rangeError(expected(fn, "0 for dtype 'f8e4m3' (a KV cache storage type)", 'value', value));
      checkBytes(fn, s, dtype);
      const dev = resolveDevice(fn, 'options.device', options.device ?? 'cpu');
      return wrapNative(native.fromBytes(dev.kindId, dev.index, DTYPE_ID[dtype], s, new Uint8Array(shapeNumel(s))), dtype, s, dev);
    }
    if (!isFloat(dtype)) {
      const [lo, hi] = dtype === 'i8' ? [-128, 127] : dtype === 'u8' ? [0, 255] : [-2147483648, 2147483647];
      if (!Number.isInteger(value) || value < lo || value > hi)
        throw rangeError(expected(fn, `an ${dtype} integer in [${lo}, ${hi}]`, 'value', value));
    }
    checkBytes(fn, s, dtype);
    const dev = resolveDevice(fn, 'options.device', options.device ?? 'cpu');
    return Tensor.#run('fill', dev, [], dtype, s, value);
  }

  /**
   * Uniform random numbers in [0, 1), reproducible from `seed`.
   * @example const w = Tensor.rand([64, 32], { seed: 1, dtype: 'bf16' });
   */
  static rand<D extends DType = 'f32'>(shape: readonly number[], options: RandomOptions<D> = {}): Tensor<D> {
    return Tensor.#random('Tensor.rand', shape, options, (rng, a) => rng.fillUniform(a));
  }

  /** Standard normal random numbers, reproducible from `seed`. */
  static randn<D extends DType = 'f32'>(shape: readonly number[], options: RandomOptions<D> = {}): Tensor<D> {
    return Tensor.#random('Tensor.randn', shape, options, (rng, a) => rng.fillNormal(a));
  }

  static #random<D extends DType>(
    fn: string,
    shape: readonly number[],
    options: RandomOptions<D>,
    fill: (rng: Rng, a: Float32Array) => void,
  ): Tensor<D> {
    checkObject(fn, 'options', options);
    const s = checkShape(fn, 'shape', shape);
    const dtype = checkDType(fn, 'options.dtype', options.dtype ?? 'f32') as D;
    if (!isFloat(dtype)) throw rangeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'options.dtype', dtype));
    checkBytes(fn, s, 'f32');
    const seed = checkInteger(fn, 'options.seed', options.seed ?? 0, 0, 2 ** 32 - 1);
    const dev = resolveDevice(fn, 'options.device', options.device ?? 'cpu');
    const n = shapeNumel(s);
    let a: Float32Array;
    try {
      a = new Float32Array(n);
    } catch (e) {
      throw new LlmKernelsError('ERR_OOM', `${fn}: out of memory: cannot allocate ${n * 4} bytes of host memory for shape ${shapeStr(s)}`, { cause: e });
    }
    fill(new Rng(seed), a);
    return Tensor.fromArray(a, { shape: s, dtype, device: dev });
  }


  /** @internal Enqueue an op with one output on `dev` (backend: the device's own). */
  static #run<D extends DType>(op: string, dev: Device, inputs: NativeTensor[], dtype: D, shape: number[], f0 = 0): Tensor<D> {
    return wrapNative(runNative(op, dev, inputs, dtype, shape, f0), dtype, shape, dev);
  }

  /** @internal The native handle; throws ERR_DISPOSED if disposed. */
  handle(fn: string, param = 'tensor'): NativeTensor {
    const h = this.#h;
    if (h === null) throw new LlmKernelsError('ERR_DISPOSED', `${fn}: expected a live tensor for ${param}, got a disposed tensor`);
    return h;
  }

  /** Number of elements. */
  get numel(): number {
    return shapeNumel(this.shape);
  }
  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }
  /** Bytes of the elements. */
  get nbytes(): number {
    return this.numel * DTYPE_SIZE[this.dtype];
  }
  /** True after {@link Tensor.dispose}. */
  get disposed(): boolean {
    return this.#h === null;
  }

  /**
   * The elements, once every op enqueued before this call on the tensor's device has run. Never blocks the
   * event loop. f16/bf16 come as raw Uint16Array bits (see {@link Tensor.toFloat32}).
   * @throws {LlmKernelsError} ERR_DISPOSED; rejects with the error of a failed op queued before
   */
  async data(): Promise<TypedArrayFor<D>> {
    const buf = await native.read(this.handle('data'));
    return new TYPED_ARRAY[this.dtype](buf) as TypedArrayFor<D>;
  }

  /** Like {@link Tensor.data}, blocking the calling thread until the data is ready. */
  dataSync(): TypedArrayFor<D> {
    return new TYPED_ARRAY[this.dtype](native.readSync(this.handle('dataSync'))) as TypedArrayFor<D>;
  }

  /** The elements as f32 numbers, whatever the dtype (converted on the device first when needed). */
  async toFloat32(): Promise<Float32Array> {
    this.handle('toFloat32');
    if (this.dtype === 'f32') return (await this.data()) as Float32Array;
    if (this.dtype === 'f8e4m3') return Float32Array.from((await this.data()) as Uint8Array, f8e4m3ToF32);
    using f = this.cast('f32');
    return (await f.data()) as Float32Array;
  }

  /** The elements as a nested JS array of numbers (small tensors; for printing and tests). */
  async toArray(): Promise<unknown> {
    this.handle('toArray');
    const flat = Array.from(await this.toFloat32());
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return flat[off];
      const stride = shapeNumel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, off + i * stride));
    };
    return build(0, 0);
  }

  /**
   * A copy on another device (or the same). CPU → CUDA waits for the CPU's queued work and the upload; CUDA → CPU
   * is queued and returns at once.
   * @throws {LlmKernelsError} ERR_DEVICE if the device is unavailable, ERR_OOM, ERR_DISPOSED
   */
  to(dev: DeviceSpec): Tensor<D> {
    const h = this.handle('to'); // liveness first, then the device
    const d = resolveDevice('to', 'device', dev);
    return wrapNative(native.to(h, d.kindId, d.index), this.dtype, this.shape.slice(), d);
  }

  /** A copy with another dtype (f32/f16/bf16 target; round to nearest even; NaN and Inf kept). */
  cast<E extends DType>(dtype: E): Tensor<E> {
    const fn = 'cast';
    const to = checkDType(fn, 'dtype', dtype) as E;
    if (!isFloat(to)) throw rangeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'dtype', to));
    const h = this.handle(fn, 'x');
    if (this.dtype === 'f8e4m3')
      throw typeError(expected(fn, "x of a dtype other than 'f8e4m3' (a KV cache storage type: read it with toFloat32())", 'x.dtype', 'f8e4m3', true));
    return Tensor.#run(fn, this.device, [h], to, this.shape.slice());
  }

  /** A copy of this tensor on the same device. */
  clone(): Tensor<D> {
    return Tensor.#run('copy', this.device, [this.handle('clone', 'x')], this.dtype, this.shape.slice());
  }

  /**
   * A view with another shape of the same elements (no copy; shares memory). One dimension may be -1 (inferred).
   * @throws {RangeError} the element counts differ
   */
  reshape(shape: readonly number[]): Tensor<D> {
    return this.#reshape('reshape', shape);
  }

  /** Same as {@link Tensor.reshape}. */
  view(shape: readonly number[]): Tensor<D> {
    return this.#reshape('view', shape);
  }

  #reshape(fn: string, shape: readonly number[]): Tensor<D> {
    if (!Array.isArray(shape)) throw typeError(expected(fn, 'an array of integers', 'shape', shape));
    const s = shape.slice() as number[];
    const infer = s.indexOf(-1);
    if (infer >= 0) {
      if (s.indexOf(-1, infer + 1) >= 0) throw rangeError(expected(fn, 'at most one -1', 'shape', shape));
      const rest = shapeNumel(s.filter((_, i) => i !== infer));
      if (rest === 0 || this.numel % rest !== 0)
        throw rangeError(expected(fn, `a shape of ${this.numel} elements`, 'shape', shape));
      s[infer] = this.numel / rest;
    }
    checkShape(fn, 'shape', s);
    if (shapeNumel(s) !== this.numel)
      throw rangeError(expected(fn, `a shape of ${this.numel} elements (from ${shapeStr(this.shape)})`, 'shape', shape));
    return wrapNative(native.view(this.handle(fn), 0, DTYPE_ID[this.dtype], s), this.dtype, s, this.device);
  }

  /**
   * Rows [start, end) of the first dimension, as a view (no copy; shares memory). Negative indices count from the
   * end, like Array.prototype.slice.
   * @throws {RangeError} for a 0-dimensional tensor or non-integer bounds
   */
  slice(start: number, end: number = this.shape[0] ?? 0): Tensor<D> {
    const fn = 'slice';
    if (this.shape.length === 0) throw rangeError(expected(fn, 'a tensor with at least 1 dimension', 'tensor', shapeStr(this.shape), true));
    const n = this.shape[0]!;
    checkInteger(fn, 'start', start, -MAX_SAFE, MAX_SAFE);
    checkInteger(fn, 'end', end, -MAX_SAFE, MAX_SAFE);
    const s = Math.min(Math.max(start < 0 ? n + start : start, 0), n);
    const e = Math.min(Math.max(end < 0 ? n + end : end, s), n);
    const rowBytes = shapeNumel(this.shape.slice(1)) * DTYPE_SIZE[this.dtype];
    const shape = [e - s, ...this.shape.slice(1)];
    return wrapNative(native.view(this.handle(fn), s * rowBytes, DTYPE_ID[this.dtype], shape), this.dtype, shape, this.device);
  }

  /** Releases this tensor's memory reference now. Idempotent. Queued ops that use it still complete. */
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
    return `Tensor(${this.dtype}, ${shapeStr(this.shape)}, ${this.device.name}${this.disposed ? ', disposed' : ''})`;
  }
}


/**
 * The GC safety net: a Tensor collected without dispose() has its handle disposed. After an explicit dispose()
 * the id is stale (its slot's generation moved on), and disposing it again is a no-op, so there is nothing to
 * unregister.
 */
const gcSafetyNet = new FinalizationRegistry<NativeTensor>((id) => native.dispose(id));

/** The bytes of a shape must stay within 2^53 (the native limit): a RangeError naming the factory otherwise. */
function checkBytes(fn: string, shape: number[], dtype: DType): void {
  if (shapeNumel(shape) * DTYPE_SIZE[dtype] > 2 ** 53)
    throw rangeError(expected(fn, `at most 2^53 bytes (${dtype}: ${DTYPE_SIZE[dtype]} bytes per element)`, 'shape', shape));
}

/** @internal The backend that runs ops of a device ('ref' is for tests, on the CPU). */
let forcedBackend: 'ref' | null = null;
/** @internal Run `body` with every CPU op on the reference backend (tests compare backends with it). */
export function withReferenceBackend<T>(body: () => T): T {
  const prev = forcedBackend;
  forcedBackend = 'ref';
  try {
    return body();
  } finally {
    forcedBackend = prev;
  }
}

/**
 * @internal Enqueue op `op` with one output of `dtype` (a dense dtype, or a native dtype id: the quantized formats
 * pass theirs) and `shape`; scalars f0, f1 (numbers) and i0 (an integer).
 */
export function runNative(
  op: string,
  dev: Device,
  inputs: NativeTensor[],
  dtype: DType | number,
  shape: number[],
  f0 = 0,
  f1 = 0,
  i0 = 0,
  i1 = 0,
): NativeTensor {
  const backend = dev.kindId === 1 ? 2 : forcedBackend === 'ref' ? 0 : 1;
  let id = opIdCache[op];
  if (id === undefined) id = opIdCache[op] = opId(op);
  const dt = typeof dtype === 'number' ? dtype : DTYPE_ID[dtype];
  if (i1 !== 0) return native.run(id, backend, dev.kindId, dev.index, inputs, dt, shape, f0, f1, i0, i1);
  return i0 === 0
    ? native.run(id, backend, dev.kindId, dev.index, inputs, dt, shape, f0, f1)
    : native.run(id, backend, dev.kindId, dev.index, inputs, dt, shape, f0, f1, i0);
}

/** @internal Enqueue an op that writes into `outputs` in place (same backend choice as {@link runNative}). */
export function runNativeInto(op: string, dev: Device, inputs: NativeTensor[], outputs: NativeTensor[], params?: number[]): void {
  const backend = dev.kindId === 1 ? 2 : forcedBackend === 'ref' ? 0 : 1;
  let id = opIdCache[op];
  if (id === undefined) id = opIdCache[op] = opId(op);
  native.runInto(id, backend, dev.kindId, dev.index, inputs, outputs, params);
}
// Op ids by name in a plain object: the hot path of every op (a Map lookup costs more in V8's inline caches).
const opIdCache: Record<string, number> = Object.create(null);

/** @internal Wrap a native output. */
export function wrapNative<D extends DType>(h: NativeTensor, dtype: D, shape: readonly number[], dev: Device): Tensor<D> {
  return new Tensor(h, dtype, shape, dev);
}

/** Throws the typed error if `t` is not a live Tensor; returns its handle. @internal */
export function liveHandle(fn: string, param: string, t: unknown): NativeTensor {
  if (!(t instanceof Tensor)) throw typeError(expected(fn, 'a Tensor', param, t));
  return t.handle(fn, param);
}
