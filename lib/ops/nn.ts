/**
 * Layer ops, the building blocks of lib/nn: `embedding` (also the row gather of a model step), `rms_norm`,
 * `add_rms_norm` (the residual add fused with the next norm), `rope` and `silu_mul` (SwiGLU over a fused gate|up
 * projection). All compute in f32 whatever the storage dtype; native/cpu/ref/<op>_ref.cc is the spec of each.
 *
 * Index inputs (token ids, positions) may be `Int32Array`s (checked here, entry by entry, then uploaded) or i32
 * tensors (checked by the kernel when it runs: a bad entry fails the op, and its output reports the failure when
 * read).
 */
import { isFloat, type DType, type FloatDType } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { liveHandle, runNative, runNativeInto, Tensor, wrapNative } from '../tensor.js';
import { checkFiniteNumber, checkObject, expected, shapeStr } from '../validate.js';
import { disposeAll, i32Arg } from './args.js';

const FLOAT = "a float dtype ('f32', 'f16', 'bf16')";

function checkFloat(fn: string, param: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw typeError(expected(fn, FLOAT, `${param}.dtype`, t.dtype));
}

function checkDevice(fn: string, like: Tensor, param: string, t: Tensor): void {
  if (t.device !== like.device)
    throw new LlmKernelsError('ERR_DEVICE', expected(fn, `${param} on ${like.device.name}`, param, t.device.name, true));
}

function checkEps(fn: string, eps: unknown): number {
  const e = checkFiniteNumber(fn, 'eps', eps);
  if (!(e > 0)) throw rangeError(expected(fn, 'a finite number > 0', 'eps', e));
  return e;
}

/** Options of {@link embedding}. */
export interface EmbeddingOptions<E extends FloatDType> {
  /** The output dtype (default: the table's). */
  dtype?: E;
}

/**
 * Rows of `table` by index: `y[t] = table[ids[t]]`, converted to `options.dtype`. The embedding lookup of a model,
 * and the gather of the hidden rows whose logits a model step returns.
 * @param table - `[V, E]` f32, f16 or bf16
 * @param ids - `[T]` indices in [0, V), an Int32Array (checked here) or an i32 tensor (checked when the op runs)
 * @returns `[T, E]`
 * @throws {TypeError} | {RangeError} bad table, ids or dtype
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE
 * @example const h = embedding(embedTokens, new Int32Array([1, 104, 105]), { dtype: 'f32' });
 */
export function embedding<E extends FloatDType = FloatDType>(table: Tensor, ids: Int32Array | Tensor<'i32'>, options: EmbeddingOptions<E> = {}): Tensor<E> {
  const fn = 'embedding';
  const ht = liveHandle(fn, 'table', table);
  checkObject(fn, 'options', options);
  checkFloat(fn, 'table', table);
  if (table.shape.length !== 2) throw rangeError(expected(fn, 'a table [V, E]', 'table.shape', shapeStr(table.shape), true));
  const dtype = (options.dtype ?? table.dtype) as E;
  if (!isFloat(dtype as DType)) throw typeError(expected(fn, FLOAT, 'options.dtype', dtype));
  const [V, E] = table.shape as [number, number];
  const T = ids instanceof Int32Array ? ids.length : ids instanceof Tensor ? ids.numel : -1;
  if (ids instanceof Tensor && ids.shape.length !== 1) throw rangeError(expected(fn, 'ids of shape [T]', 'ids.shape', shapeStr(ids.shape), true));
  if (ids instanceof Int32Array)
    for (let t = 0; t < ids.length; t++)
      if (ids[t]! < 0 || ids[t]! >= V) throw rangeError(expected(fn, `an id in [0, ${V})`, `ids[${t}]`, ids[t]));
  const a = i32Arg(fn, 'ids', ids, T, table.device);
  try {
    const shape = [T, E];
    return wrapNative(runNative(fn, table.device, [ht, a.h], dtype, shape), dtype, shape, table.device);
  } finally {
    disposeAll([a.tmp]);
  }
}

function checkNormArgs(fn: string, x: Tensor, weight: Tensor): void {
  checkFloat(fn, 'x', x);
  checkFloat(fn, 'weight', weight);
  const N = x.shape[x.shape.length - 1];
  if (x.shape.length < 1 || N === undefined || N < 1) throw rangeError(expected(fn, 'x of shape [..., N] with N >= 1', 'x.shape', shapeStr(x.shape), true));
  if (weight.shape.length !== 1 || weight.shape[0] !== N)
    throw rangeError(expected(fn, `weight of shape [N=${N}]`, 'weight.shape', shapeStr(weight.shape), true));
  checkDevice(fn, x, 'weight', weight);
}

/**
 * RMSNorm over the last dimension: `y = x * weight / sqrt(mean(x²) + eps)`, in f32 (Hugging Face's LlamaRMSNorm).
 * @param x - `[..., N]` f32, f16 or bf16
 * @param weight - `[N]`, any float dtype
 * @param eps - > 0 (Llama: 1e-5 or 1e-6, from the model config)
 * @returns x's shape and dtype
 * @throws {TypeError} | {RangeError} bad dtypes, shapes or eps
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE
 * @example const h = rmsNorm(x, normWeight, 1e-5);
 */
export function rmsNorm<D extends DType>(x: Tensor<D>, weight: Tensor, eps: number): Tensor<D> {
  const fn = 'rmsNorm';
  const hx = liveHandle(fn, 'x', x);
  const hw = liveHandle(fn, 'weight', weight);
  checkNormArgs(fn, x, weight);
  const e = checkEps(fn, eps);
  const shape = x.shape.slice();
  return wrapNative(runNative('rms_norm', x.device, [hx, hw], x.dtype, shape, e), x.dtype, shape, x.device);
}

/**
 * The residual add fused with the next RMSNorm: `sum = x + residual` (rounded to the dtype: the new residual
 * stream) and `y = rmsNorm(sum, weight, eps)`, in one pass over the rows.
 * @param x - `[..., N]` f32, f16 or bf16
 * @param residual - x's shape and dtype
 * @param weight - `[N]`, any float dtype
 * @returns `{ sum, y }`, both of x's shape and dtype
 * @throws see {@link rmsNorm}; residual's shape or dtype differs from x's
 * @example ({ sum: h, y: normed } = addRmsNorm(h, attnOut, postNorm, 1e-5));
 */
export function addRmsNorm<D extends DType>(x: Tensor<D>, residual: Tensor<D>, weight: Tensor, eps: number): { sum: Tensor<D>; y: Tensor<D> } {
  const fn = 'addRmsNorm';
  const hx = liveHandle(fn, 'x', x);
  const hr = liveHandle(fn, 'residual', residual);
  const hw = liveHandle(fn, 'weight', weight);
  checkNormArgs(fn, x, weight);
  if (residual.dtype !== x.dtype) throw typeError(expected(fn, `residual.dtype ${x.dtype} (x's dtype)`, 'residual.dtype', residual.dtype));
  if (shapeStr(residual.shape) !== shapeStr(x.shape))
    throw rangeError(expected(fn, `residual of x's shape ${shapeStr(x.shape)}`, 'residual.shape', shapeStr(residual.shape), true));
  checkDevice(fn, x, 'residual', residual);
  const e = checkEps(fn, eps);
  const sum = Tensor.empty(x.shape, { dtype: x.dtype, device: x.device });
  const y = Tensor.empty(x.shape, { dtype: x.dtype, device: x.device });
  try {
    runNativeInto('add_rms_norm', x.device, [hx, hr, hw], [sum.handle(fn), y.handle(fn)], [e]);
  } catch (err) {
    disposeAll([sum, y]);
    throw err;
  }
  return { sum, y };
}

/** The two ways of pairing dimensions in {@link rope}. */
export type RopePairing = 'rotate-half' | 'interleaved';

/** Options of {@link rope}. */
export interface RopeOptions {
  /**
   * `'rotate-half'` (default; Hugging Face Llama, Mistral, Qwen2): dimension i turns with i + R/2.
   * `'interleaved'` (GPT-J; llama.cpp's GGUF q/k rows): dimension 2i turns with 2i + 1.
   */
  pairing?: RopePairing;
}

/**
 * Rotary position embedding: each pair of dimensions of every head turns by `angle = position * invFreq[i]` (the
 * angle rounded to f32, as Hugging Face computes it). Dimensions from R = 2 * invFreq.length on pass unchanged
 * (partial rotary). Frequency scaling (linear, llama3) lives in `invFreq` (lib/nn computes it from the config).
 * @param x - `[T, H, D]` f32, f16 or bf16 (queries or keys)
 * @param positions - `[T]` positions >= 0, an Int32Array (checked here) or an i32 tensor
 * @param invFreq - `[R/2]` f32 inverse frequencies, 1 <= R/2 <= D/2
 * @returns x's shape and dtype
 * @throws {TypeError} | {RangeError} bad shapes, dtypes, positions or pairing
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE
 * @example const qr = rope(q, new Int32Array([0, 1, 2]), invFreq);
 */
export function rope<D extends DType>(x: Tensor<D>, positions: Int32Array | Tensor<'i32'>, invFreq: Float32Array | Tensor<'f32'>, options: RopeOptions = {}): Tensor<D> {
  const fn = 'rope';
  const hx = liveHandle(fn, 'x', x);
  checkObject(fn, 'options', options);
  checkFloat(fn, 'x', x);
  if (x.shape.length !== 3) throw rangeError(expected(fn, 'x of shape [T, H, D]', 'x.shape', shapeStr(x.shape), true));
  const [T, , D] = x.shape as [number, number, number];
  const pairing = options.pairing ?? 'rotate-half';
  if (pairing !== 'rotate-half' && pairing !== 'interleaved')
    throw rangeError(expected(fn, "'rotate-half' or 'interleaved'", 'options.pairing', pairing));
  if (positions instanceof Tensor && positions.shape.length !== 1)
    throw rangeError(expected(fn, `positions of shape [T=${T}]`, 'positions.shape', shapeStr(positions.shape), true));
  if (positions instanceof Int32Array)
    for (let t = 0; t < positions.length; t++)
      if (positions[t]! < 0) throw rangeError(expected(fn, 'a position >= 0', `positions[${t}]`, positions[t]));
  let freq: Tensor<'f32'>;
  let ownFreq: Tensor | null = null;
  if (invFreq instanceof Float32Array) {
    for (let i = 0; i < invFreq.length; i++)
      if (!Number.isFinite(invFreq[i]!)) throw rangeError(expected(fn, 'finite inverse frequencies', `invFreq[${i}]`, invFreq[i]));
    ownFreq = freq = Tensor.fromArray(invFreq, { dtype: 'f32', device: x.device });
  } else if (invFreq instanceof Tensor) {
    liveHandle(fn, 'invFreq', invFreq);
    if (invFreq.dtype !== 'f32') throw typeError(expected(fn, 'an f32 tensor or a Float32Array', 'invFreq.dtype', invFreq.dtype));
    checkDevice(fn, x, 'invFreq', invFreq);
    freq = invFreq;
  } else {
    throw typeError(expected(fn, 'a Float32Array or an f32 Tensor', 'invFreq', invFreq));
  }
  const half = freq.numel;
  if (freq.shape.length !== 1 || half < 1 || 2 * half > D) {
    disposeAll([ownFreq]);
    throw rangeError(expected(fn, `invFreq of length R/2 in [1, D/2=${Math.floor(D / 2)}]`, 'invFreq.length', half));
  }
  let pos: ReturnType<typeof i32Arg>;
  try {
    pos = i32Arg(fn, 'positions', positions, T, x.device);
  } catch (err) {
    disposeAll([ownFreq]);
    throw err;
  }
  try {
    const shape = x.shape.slice();
    const h = runNative(fn, x.device, [hx, pos.h, freq.handle(fn, 'invFreq')], x.dtype, shape, 0, 0, pairing === 'interleaved' ? 1 : 0);
    return wrapNative(h, x.dtype, shape, x.device);
  } finally {
    disposeAll([pos.tmp, ownFreq]);
  }
}

/**
 * SwiGLU's activation over a fused gate|up projection: for `x = [gate | up]` along the last dimension,
 * `y = silu(gate) * up` with `silu(a) = a / (1 + e^-a)`, in f32.
 * @param x - `[..., 2F]` f32, f16 or bf16
 * @returns `[..., F]`, x's dtype
 * @throws {TypeError} | {RangeError} not a float tensor, or an odd last dimension
 * @throws {LlmKernelsError} ERR_DISPOSED
 * @example const a = siluMul(matmul(h, gateUp)); // gateUp [2F, E]
 */
export function siluMul<D extends DType>(x: Tensor<D>): Tensor<D> {
  const fn = 'siluMul';
  const hx = liveHandle(fn, 'x', x);
  checkFloat(fn, 'x', x);
  const n = x.shape[x.shape.length - 1];
  if (x.shape.length < 1 || n === undefined || n < 2 || n % 2 !== 0)
    throw rangeError(expected(fn, 'x of shape [..., 2F] (an even last dimension >= 2)', 'x.shape', shapeStr(x.shape), true));
  const shape = [...x.shape.slice(0, -1), n / 2];
  return wrapNative(runNative('silu_mul', x.device, [hx], x.dtype, shape), x.dtype, shape, x.device);
}

/**
 * LayerNorm over the last dimension: `y = (x − mean) / sqrt(var + eps) * weight + bias` (biased variance, as
 * torch.nn.LayerNorm), in f32.
 * @param x - `[..., N]` f32, f16 or bf16
 * @param weight - `[N]`, any float dtype
 * @param bias - `[N]` of weight's dtype, or null
 * @returns x's shape and dtype
 * @throws {TypeError} | {RangeError} bad dtypes, shapes or eps
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE
 * @example const y = layerNorm(x, gamma, beta, 1e-5);
 */
export function layerNorm<D extends DType>(x: Tensor<D>, weight: Tensor, bias: Tensor | null, eps: number): Tensor<D> {
  const fn = 'layerNorm';
  const hx = liveHandle(fn, 'x', x);
  const hw = liveHandle(fn, 'weight', weight);
  checkNormArgs(fn, x, weight);
  if (bias !== null) {
    liveHandle(fn, 'bias', bias);
    if (bias.dtype !== weight.dtype) throw typeError(expected(fn, `bias.dtype ${weight.dtype} (weight's dtype)`, 'bias.dtype', bias.dtype));
    if (shapeStr(bias.shape) !== shapeStr(weight.shape))
      throw rangeError(expected(fn, `bias of weight's shape ${shapeStr(weight.shape)}`, 'bias.shape', shapeStr(bias.shape), true));
    checkDevice(fn, x, 'bias', bias);
  }
  const e = checkEps(fn, eps);
  const none = bias === null ? Tensor.empty([0], { dtype: weight.dtype, device: x.device }) : null;
  try {
    const shape = x.shape.slice();
    const h = runNative('layer_norm', x.device, [hx, hw, (bias ?? none!).handle(fn, 'bias')], x.dtype, shape, e);
    return wrapNative(h, x.dtype, shape, x.device);
  } finally {
    disposeAll([none]);
  }
}

/** Options of {@link gelu}. */
export interface GeluOptions {
  /** 'none' (default): the exact erf form; 'tanh': the tanh approximation (GPT-2's gelu_new, torch's approximate='tanh'). */
  approximate?: 'none' | 'tanh';
}

/**
 * GELU, elementwise in f32: `x/2 (1 + erf(x/√2))`, or with `approximate: 'tanh'` `x/2 (1 + tanh(√(2/π)(x + 0.044715x³)))`.
 * @throws {TypeError} | {RangeError} not a float tensor, or a bad option
 * @example const a = gelu(h, { approximate: 'tanh' });
 */
export function gelu<D extends DType>(x: Tensor<D>, options: GeluOptions = {}): Tensor<D> {
  const fn = 'gelu';
  const hx = liveHandle(fn, 'x', x);
  checkObject(fn, 'options', options);
  checkFloat(fn, 'x', x);
  const mode = options.approximate ?? 'none';
  if (mode !== 'none' && mode !== 'tanh') throw rangeError(expected(fn, "'none' or 'tanh'", 'options.approximate', mode));
  const shape = x.shape.slice();
  return wrapNative(runNative('gelu', x.device, [hx], x.dtype, shape, 0, 0, mode === 'tanh' ? 1 : 0), x.dtype, shape, x.device);
}

/**
 * SiLU (swish), elementwise in f32: `x / (1 + e^-x)`. (SwiGLU MLPs use the fused {@link siluMul}.)
 * @throws {TypeError} not a float tensor
 * @example const a = silu(h);
 */
export function silu<D extends DType>(x: Tensor<D>): Tensor<D> {
  const fn = 'silu';
  const hx = liveHandle(fn, 'x', x);
  checkFloat(fn, 'x', x);
  const shape = x.shape.slice();
  return wrapNative(runNative('silu', x.device, [hx], x.dtype, shape), x.dtype, shape, x.device);
}
