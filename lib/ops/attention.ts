/**
 * Paged attention over a block-table KV cache (native/common/kv.h has the layout; cpu/ref/paged_attention_ref.cc
 * the math): the ops `cache_write`, `kv_copy_blocks`, `paged_attention_decode` and `paged_attention_prefill`.
 *
 * A cache of one layer is two tensors: `kv` `[numBlocks, Hkv, 2, P, D]` (f32, f16, bf16, i8 or f8e4m3; index 0 of
 * the "2" holds K, 1 holds V) and `kvScale` `[numBlocks, Hkv, 2, P]` f32 (one scale per token and head for i8 and
 * f8e4m3; an empty `[0]` tensor for the float dtypes). Token slot `s` is block `s / P`, row `s % P`.
 * {@link PagedKvCache} (lib/kv) manages these tensors and the block tables; these functions are the raw ops.
 *
 * Block tables, context lengths and query offsets may be given as `Int32Array`s (checked here, entry by entry,
 * then uploaded) or as i32 tensors (checked by the kernel when it runs: a bad entry then fails the op, and its
 * outputs report that failure when read).
 */
import { isFloat, type FloatDType } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { liveHandle, runNative, runNativeInto, wrapNative, Tensor } from '../tensor.js';
import { checkFiniteNumber, checkInteger, checkObject, expected, shapeStr } from '../validate.js';
import { disposeAll, i32Arg } from './args.js';

/** The dtypes a paged KV cache can hold. */
export const KV_DTYPES = ['f32', 'f16', 'bf16', 'i8', 'f8e4m3'] as const;
/** A paged KV cache dtype: i8 and f8e4m3 are quantized per token and head (a scale each, in `kvScale`). */
export type KvDType = (typeof KV_DTYPES)[number];

/** The two tensors of one layer's paged KV cache. */
export interface KvCacheTensors {
  /** `[numBlocks, Hkv, 2, P, D]` */
  kv: Tensor;
  /** `[numBlocks, Hkv, 2, P]` f32 for i8/f8e4m3 caches, `[0]` for float caches */
  kvScale: Tensor<'f32'>;
}

/** Options of {@link pagedAttentionDecode} and {@link pagedAttentionPrefill}. */
export interface PagedAttentionOptions {
  /** Softmax scale applied to q.k (default 1 / sqrt(D)). */
  scale?: number;
  /** Logit soft-cap c: s = c tanh(s / c) (Gemma 2); 0 or absent: none. */
  softCap?: number;
  /** Sliding window W: a query at position p sees positions p - W + 1 .. p (Mistral); 0 or absent: none. */
  slidingWindow?: number;
  /** ALiBi slopes, one per query head `[H]`: s += slope_h (t - p). */
  alibiSlopes?: Float32Array | Tensor<'f32'>;
  /** Flash-decoding partition in positions (0 or absent: chosen from the batch and the thread count). */
  partitionSize?: number;
}

interface KvShape {
  numBlocks: number;
  hkv: number;
  P: number;
  D: number;
  quantized: boolean;
}

/** Checks a cache's two tensors; returns its geometry. @internal */
export function checkKvCache(fn: string, param: string, cache: unknown): KvShape {
  if (cache === null || typeof cache !== 'object') throw typeError(expected(fn, 'a cache { kv, kvScale }', param, cache));
  const { kv, kvScale } = cache as Partial<KvCacheTensors>;
  liveHandle(fn, `${param}.kv`, kv);
  liveHandle(fn, `${param}.kvScale`, kvScale);
  const k = kv as Tensor;
  const s = kvScale as Tensor;
  if (!(KV_DTYPES as readonly string[]).includes(k.dtype))
    throw typeError(expected(fn, `a KV cache dtype (${KV_DTYPES.join(', ')})`, `${param}.kv.dtype`, k.dtype));
  const sh = k.shape;
  if (sh.length !== 5 || sh[2] !== 2 || sh.some((d) => d < 1))
    throw rangeError(expected(fn, 'a cache [numBlocks, Hkv, 2, P, D] with every size >= 1', `${param}.kv.shape`, shapeStr(sh), true));
  const quantized = k.dtype === 'i8' || k.dtype === 'f8e4m3';
  const want = quantized ? [sh[0]!, sh[1]!, 2, sh[3]!] : [0];
  if (s.dtype !== 'f32' || s.shape.length !== want.length || s.shape.some((d, i) => d !== want[i]))
    throw rangeError(expected(fn, `f32 scales ${shapeStr(want)} for a ${k.dtype} cache`, `${param}.kvScale`, `${s.dtype} ${shapeStr(s.shape)}`, true));
  if (s.device !== k.device)
    throw new LlmKernelsError('ERR_DEVICE', expected(fn, `kvScale on ${k.device.name} (kv's device)`, `${param}.kvScale`, s.device.name, true));
  return { numBlocks: sh[0]!, hkv: sh[1]!, P: sh[3]!, D: sh[4]!, quantized };
}

/**
 * Writes new tokens' keys and values into their cache slots, quantizing for i8/f8e4m3 caches (scale amax/127 or
 * amax/448 per token and head, round to nearest even). Slots must be distinct; a negative slot skips its token
 * (padding). Enqueued like every op: returns at once.
 * @param cache - the layer's cache, written in place
 * @param k - `[T, Hkv, D]` keys (f32, f16 or bf16)
 * @param v - `[T, Hkv, D]` values, k's dtype
 * @param slotMapping - `[T]` slots (block * P + row), as an Int32Array or an i32 tensor
 * @throws {TypeError} | {RangeError} bad shapes, dtypes or slots (an Int32Array is checked here)
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE, ERR_UNSUPPORTED (CUDA, until its kernels land)
 * @example cacheWrite(cache, k, v, new Int32Array([17, 40]));
 */
export function cacheWrite(cache: KvCacheTensors, k: Tensor, v: Tensor, slotMapping: Int32Array | Tensor<'i32'>): void {
  const fn = 'cacheWrite';
  const { hk, hv, sm } = writeArgs(fn, cache, k, v, slotMapping);
  try {
    runNativeInto('cache_write', cache.kv.device, [hk, hv, sm.h], [cache.kv.handle(fn), cache.kvScale.handle(fn)]);
  } finally {
    disposeAll([sm.tmp]);
  }
}

function writeArgs(fn: string, cache: KvCacheTensors, k: Tensor, v: Tensor, slotMapping: Int32Array | Tensor<'i32'>) {
  const g = checkKvCache(fn, 'cache', cache);
  const hk = liveHandle(fn, 'k', k);
  const hv = liveHandle(fn, 'v', v);
  if (!isFloat(k.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'k.dtype', k.dtype));
  if (v.dtype !== k.dtype) throw typeError(expected(fn, `v.dtype ${k.dtype} (k's dtype)`, 'v.dtype', v.dtype));
  if (k.shape.length !== 3 || k.shape[1] !== g.hkv || k.shape[2] !== g.D)
    throw rangeError(expected(fn, `k of shape [T, Hkv=${g.hkv}, D=${g.D}]`, 'k.shape', shapeStr(k.shape), true));
  if (shapeStr(v.shape) !== shapeStr(k.shape)) throw rangeError(expected(fn, `v of k's shape ${shapeStr(k.shape)}`, 'v.shape', shapeStr(v.shape), true));
  for (const [t, name] of [[k, 'k'], [v, 'v']] as const)
    if (t.device !== cache.kv.device)
      throw new LlmKernelsError('ERR_DEVICE', expected(fn, `${name} on ${cache.kv.device.name} (the cache's device)`, name, t.device.name, true));
  const T = k.shape[0]!;
  if (slotMapping instanceof Int32Array) {
    const slots = g.numBlocks * g.P;
    const seen = new Set<number>();
    for (let t = 0; t < slotMapping.length; t++) {
      const s = slotMapping[t]!;
      if (s >= slots) throw rangeError(expected(fn, `a slot in [0, ${slots}) (numBlocks * P) or negative to skip`, `slotMapping[${t}]`, s));
      if (s >= 0) {
        if (seen.has(s)) throw rangeError(expected(fn, 'distinct slots', `slotMapping[${t}]`, `${s} again`, true));
        seen.add(s);
      }
    }
  }
  const sm = i32Arg(fn, 'slotMapping', slotMapping, T, cache.kv.device);
  return { hk, hv, sm, T, g };
}

/**
 * {@link cacheWrite} of rotary-embedded keys: `cacheWrite(cache, rope(k, positions, invFreq), v, slots)` in one
 * pass (the K written is bit for bit what rope then cacheWrite would write). A model's attention uses it so that the
 * rotated keys are never stored and read back.
 * @param positions - `[T]` positions >= 0 of the tokens (an Int32Array, checked here, or an i32 tensor)
 * @param invFreq - `[R/2]` f32 inverse frequencies (see {@link rope})
 * @param options - `pairing` as in {@link rope}
 * @throws see {@link cacheWrite} and {@link rope}
 * @example ropeCacheWrite(cache, k, v, slots, positions, invFreq);
 */
export function ropeCacheWrite(
  cache: KvCacheTensors,
  k: Tensor,
  v: Tensor,
  slotMapping: Int32Array | Tensor<'i32'>,
  positions: Int32Array | Tensor<'i32'>,
  invFreq: Tensor<'f32'>,
  options: { pairing?: 'rotate-half' | 'interleaved' } = {},
): void {
  const fn = 'ropeCacheWrite';
  const { hk, hv, sm, T, g } = writeArgs(fn, cache, k, v, slotMapping);
  const tmps: (Tensor | null)[] = [sm.tmp];
  try {
    checkObject(fn, 'options', options);
    const pairing = options.pairing ?? 'rotate-half';
    if (pairing !== 'rotate-half' && pairing !== 'interleaved') throw rangeError(expected(fn, "'rotate-half' or 'interleaved'", 'options.pairing', pairing));
    liveHandle(fn, 'invFreq', invFreq);
    if (invFreq.dtype !== 'f32' || invFreq.shape.length !== 1 || invFreq.numel < 1 || 2 * invFreq.numel > g.D)
      throw rangeError(expected(fn, `f32 invFreq of length R/2 in [1, D/2=${Math.floor(g.D / 2)}]`, 'invFreq', `${invFreq.dtype} ${shapeStr(invFreq.shape)}`, true));
    if (invFreq.device !== cache.kv.device) throw new LlmKernelsError('ERR_DEVICE', expected(fn, `invFreq on ${cache.kv.device.name}`, 'invFreq', invFreq.device.name, true));
    if (positions instanceof Int32Array)
      for (let t = 0; t < positions.length; t++)
        if (positions[t]! < 0) throw rangeError(expected(fn, 'a position >= 0', `positions[${t}]`, positions[t]));
    const pos = i32Arg(fn, 'positions', positions, T, cache.kv.device);
    tmps.push(pos.tmp);
    runNativeInto('rope_cache_write', cache.kv.device, [hk, hv, sm.h, pos.h, invFreq.handle(fn, 'invFreq')], [cache.kv.handle(fn), cache.kvScale.handle(fn)], [0, 0, 0, 0, pairing === 'interleaved' ? 1 : 0]);
  } finally {
    disposeAll(tmps);
  }
}

/**
 * Copies whole blocks (every head, K and V, and their scales) within a cache, pair by pair in order: the
 * copy-on-write of {@link BlockManager} (its results' `copies`).
 * @param cache - the layer's cache, written in place
 * @param pairs - flat `[src0, dst0, src1, dst1, ...]` block ids, as an Int32Array or an i32 tensor `[n, 2]`
 * @throws {RangeError} an id out of range; {@link LlmKernelsError} ERR_DISPOSED, ERR_DEVICE, ERR_UNSUPPORTED
 */
export function kvCopyBlocks(cache: KvCacheTensors, pairs: Int32Array | Tensor<'i32'>): void {
  const fn = 'kvCopyBlocks';
  const g = checkKvCache(fn, 'cache', cache);
  const n = pairs instanceof Tensor ? pairs.numel : pairs instanceof Int32Array ? pairs.length : -1;
  if (n < 0) throw typeError(expected(fn, 'an Int32Array or an i32 Tensor', 'pairs', pairs));
  if (n % 2 !== 0) throw rangeError(expected(fn, 'an even number of block ids (src, dst pairs)', 'pairs.length', n));
  if (n === 0) return;
  if (pairs instanceof Int32Array)
    for (let i = 0; i < n; i++)
      if (pairs[i]! < 0 || pairs[i]! >= g.numBlocks) throw rangeError(expected(fn, `a block id in [0, ${g.numBlocks})`, `pairs[${i}]`, pairs[i]));
  const p = i32Arg(fn, 'pairs', pairs, n, cache.kv.device);
  try {
    // The op reads pairs as [n, 2]: a view of the same memory.
    const v = p.tmp ?? (pairs as Tensor<'i32'>);
    using view = v.reshape([n / 2, 2]);
    runNativeInto('kv_copy_blocks', cache.kv.device, [view.handle(fn, 'pairs')], [cache.kv.handle(fn), cache.kvScale.handle(fn)]);
  } finally {
    disposeAll([p.tmp]);
  }
}

interface Parsed {
  scale: number;
  cap: number;
  window: number;
  partition: number;
  alibi: { h: number; tmp: Tensor | null };
}

// The empty "no ALiBi" input, one per device for the life of the module (0 bytes): not an allocation per call.
const emptySlopes = new Map<Tensor['device'], Tensor>();
function noSlopes(device: Tensor['device']): Tensor {
  let t = emptySlopes.get(device);
  if (!t) emptySlopes.set(device, (t = Tensor.empty([0], { device })));
  return t;
}

function parseOptions(fn: string, options: unknown, H: number, D: number, device: Tensor['device']): Parsed {
  const o = checkObject(fn, 'options', options) as PagedAttentionOptions;
  const scale = o.scale === undefined ? 1 / Math.sqrt(D) : checkFiniteNumber(fn, 'options.scale', o.scale);
  const cap = o.softCap === undefined ? 0 : checkFiniteNumber(fn, 'options.softCap', o.softCap);
  if (cap < 0) throw rangeError(expected(fn, 'a soft-cap >= 0 (0: none)', 'options.softCap', cap));
  const window = o.slidingWindow === undefined ? 0 : checkInteger(fn, 'options.slidingWindow', o.slidingWindow, 0, 2 ** 31 - 1);
  const partition = o.partitionSize === undefined ? 0 : checkInteger(fn, 'options.partitionSize', o.partitionSize, 0, 2 ** 31 - 1);
  let alibi: { h: number; tmp: Tensor | null };
  const a = o.alibiSlopes;
  if (a === undefined) {
    alibi = { h: noSlopes(device).handle(fn), tmp: null };
  } else if (a instanceof Float32Array) {
    if (a.length !== H) throw rangeError(expected(fn, `${H} slopes (one per query head)`, 'options.alibiSlopes.length', a.length));
    const tmp = Tensor.fromArray(a, { device });
    alibi = { h: tmp.handle(fn), tmp };
  } else if (a instanceof Tensor) {
    const h = a.handle(fn, 'options.alibiSlopes');
    if (a.dtype !== 'f32' || a.shape.length !== 1 || a.shape[0] !== H)
      throw rangeError(expected(fn, `f32 slopes [H=${H}]`, 'options.alibiSlopes', `${a.dtype} ${shapeStr(a.shape)}`, true));
    alibi = { h, tmp: null };
  } else {
    throw typeError(expected(fn, 'a Float32Array or an f32 Tensor', 'options.alibiSlopes', a));
  }
  return { scale, cap, window, partition, alibi };
}

function checkQ(fn: string, q: unknown, g: KvShape, cache: KvCacheTensors, lead: string): Tensor<FloatDType> {
  liveHandle(fn, 'q', q);
  const t = q as Tensor;
  if (!isFloat(t.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'q.dtype', t.dtype));
  if (t.shape.length !== 3 || t.shape[2] !== g.D || t.shape[1]! < 1 || t.shape[1]! % g.hkv !== 0)
    throw rangeError(expected(fn, `q of shape [${lead}, H, D=${g.D}] with H a multiple of Hkv=${g.hkv}`, 'q.shape', shapeStr(t.shape), true));
  if (t.device !== cache.kv.device)
    throw new LlmKernelsError('ERR_DEVICE', expected(fn, `q on ${cache.kv.device.name} (the cache's device)`, 'q', t.device.name, true));
  return t as Tensor<FloatDType>;
}

/** Host-side checks of tables and lengths given as Int32Arrays (the kernel makes the same ones at run time). */
function checkTables(fn: string, g: KvShape, B: number, tables: Int32Array | null, maxBlocks: number, lens: Int32Array | null): void {
  if (!lens) return;
  for (let b = 0; b < B; b++) {
    const L = lens[b]!;
    if (L < 0 || L > maxBlocks * g.P)
      throw rangeError(expected(fn, `a length in [0, ${maxBlocks * g.P}] (maxBlocks * P)`, `contextLens[${b}]`, L));
    if (!tables) continue;
    for (let j = 0; j < Math.ceil(L / g.P); j++) {
      const blk = tables[b * maxBlocks + j]!;
      if (blk < 0 || blk >= g.numBlocks) throw rangeError(expected(fn, `a block id in [0, ${g.numBlocks})`, `blockTables[${b}][${j}]`, blk));
    }
  }
}

/** The block tables and lengths as [B, maxBlocks] and [B] i32 views (uploading Int32Arrays into `tmps`). */
function tableViews(
  fn: string,
  blockTables: Int32Array | Tensor<'i32'>,
  contextLens: Int32Array | Tensor<'i32'>,
  B: number,
  maxBlocks: number,
  device: Tensor['device'],
  tmps: (Tensor | null)[],
): [Tensor<'i32'>, Tensor<'i32'>] {
  const bt = i32Arg(fn, 'blockTables', blockTables, B * maxBlocks, device);
  tmps.push(bt.tmp);
  const cl = i32Arg(fn, 'contextLens', contextLens, B, device);
  tmps.push(cl.tmp);
  const btv = (bt.tmp ?? (blockTables as Tensor<'i32'>)).reshape([B, maxBlocks]);
  tmps.push(btv);
  const clv = (cl.tmp ?? (contextLens as Tensor<'i32'>)).reshape([B]);
  tmps.push(clv);
  return [btv as Tensor<'i32'>, clv as Tensor<'i32'>];
}

function tableWidth(fn: string, tables: unknown, B: number): number {
  const n = tables instanceof Int32Array ? tables.length : tables instanceof Tensor ? tables.numel : -1;
  if (n < 0) throw typeError(expected(fn, 'an Int32Array or an i32 Tensor', 'blockTables', tables));
  if (B === 0 || n % B !== 0 || n === 0)
    throw rangeError(expected(fn, `B * maxBlocks entries (B = ${B}, maxBlocks >= 1)`, 'blockTables.length', n));
  return n / B;
}

/**
 * Decode attention: one new query token per sequence over its paged context (GQA/MQA: Hkv divides H; any D up to
 * 1024, 64/80/96/128/256 on the fast path). Sequence b's query sits at position `contextLens[b] - 1` (its own K/V
 * already written with {@link cacheWrite}); an empty context gives zeros. Long contexts are split into partitions
 * computed in parallel and merged (flash-decoding); softmax and accumulation in f32.
 * @param q - `[B, H, D]` queries (f32, f16 or bf16)
 * @param cache - the layer's cache
 * @param blockTables - `[B, maxBlocks]` block ids (row b: sequence b's blocks in order), flat
 * @param contextLens - `[B]` context lengths (positions 0 .. len - 1 are read)
 * @returns `[B, H, D]` in q's dtype
 * @throws {TypeError} | {RangeError} bad shapes, dtypes, options or (Int32Array) table entries
 * @throws {LlmKernelsError} ERR_DISPOSED, ERR_DEVICE, ERR_UNSUPPORTED (CUDA, until its kernels land)
 * @example const y = pagedAttentionDecode(q, cache, tables, lens, { slidingWindow: 4096 });
 */
export function pagedAttentionDecode<D extends FloatDType>(
  q: Tensor<D>,
  cache: KvCacheTensors,
  blockTables: Int32Array | Tensor<'i32'>,
  contextLens: Int32Array | Tensor<'i32'>,
  options: PagedAttentionOptions = {},
): Tensor<D> {
  const fn = 'pagedAttentionDecode';
  const g = checkKvCache(fn, 'cache', cache);
  const qt = checkQ(fn, q, g, cache, 'B');
  const B = qt.shape[0]!;
  const maxBlocks = tableWidth(fn, blockTables, B);
  checkTables(fn, g, B, blockTables instanceof Int32Array ? blockTables : null, maxBlocks, contextLens instanceof Int32Array ? contextLens : null);
  const o = parseOptions(fn, options, qt.shape[1]!, g.D, qt.device);
  const tmps: (Tensor | null)[] = [o.alibi.tmp];
  try {
    const [btv, clv] = tableViews(fn, blockTables, contextLens, B, maxBlocks, qt.device, tmps);
    const inputs = [qt.handle(fn, 'q'), cache.kv.handle(fn), cache.kvScale.handle(fn), btv.handle(fn), clv.handle(fn), o.alibi.h];
    const shape = qt.shape.slice();
    return wrapNative(runNative('paged_attention_decode', qt.device, inputs, qt.dtype, shape, o.scale, o.cap, o.window, o.partition), qt.dtype, shape, qt.device) as Tensor<D>;
  } finally {
    disposeAll(tmps);
  }
}

/**
 * Prefill attention (chunked prefill): several new query tokens per sequence, variable counts in one ragged
 * batch, causal over the sequence's cached history plus the new tokens. Sequence b's queries are rows
 * `queryStart[b] .. queryStart[b + 1] - 1` of q; the last of them sits at position `contextLens[b] - 1` (the new
 * tokens are the last positions of the context, already written with {@link cacheWrite}). Same options as decode.
 * @param q - `[T, H, D]` queries of every sequence, concatenated
 * @param cache - the layer's cache
 * @param blockTables - `[B, maxBlocks]` block ids, flat
 * @param contextLens - `[B]` context lengths, new tokens included
 * @param queryStart - `[B + 1]` offsets of each sequence's queries in q (0, ..., T)
 * @returns `[T, H, D]` in q's dtype
 * @throws see {@link pagedAttentionDecode}
 */
export function pagedAttentionPrefill<D extends FloatDType>(
  q: Tensor<D>,
  cache: KvCacheTensors,
  blockTables: Int32Array | Tensor<'i32'>,
  contextLens: Int32Array | Tensor<'i32'>,
  queryStart: Int32Array | Tensor<'i32'>,
  options: PagedAttentionOptions = {},
): Tensor<D> {
  const fn = 'pagedAttentionPrefill';
  const g = checkKvCache(fn, 'cache', cache);
  const qt = checkQ(fn, q, g, cache, 'T');
  const T = qt.shape[0]!;
  const B = contextLens instanceof Int32Array ? contextLens.length : contextLens instanceof Tensor ? contextLens.numel : -1;
  if (B < 0) throw typeError(expected(fn, 'an Int32Array or an i32 Tensor', 'contextLens', contextLens));
  if (B === 0) throw rangeError(expected(fn, 'at least one sequence', 'contextLens.length', 0));
  const maxBlocks = tableWidth(fn, blockTables, B);
  checkTables(fn, g, B, blockTables instanceof Int32Array ? blockTables : null, maxBlocks, contextLens instanceof Int32Array ? contextLens : null);
  if (queryStart instanceof Int32Array) {
    if (queryStart.length !== B + 1) throw rangeError(expected(fn, `${B + 1} offsets (B + 1)`, 'queryStart.length', queryStart.length));
    if (queryStart[0] !== 0 || queryStart[B] !== T)
      throw rangeError(expected(fn, `queryStart[0] = 0 and queryStart[${B}] = ${T} (q.shape[0])`, 'queryStart', Array.from(queryStart)));
    for (let b = 0; b < B; b++) {
      const nq = queryStart[b + 1]! - queryStart[b]!;
      const L = contextLens instanceof Int32Array ? contextLens[b]! : Infinity;
      if (nq < 0 || nq > L)
        throw rangeError(expected(fn, `a query count in [0, contextLens[${b}]]`, `queryStart[${b + 1}] - queryStart[${b}]`, nq));
    }
  }
  const o = parseOptions(fn, options, qt.shape[1]!, g.D, qt.device);
  const tmps: (Tensor | null)[] = [o.alibi.tmp];
  try {
    const [btv, clv] = tableViews(fn, blockTables, contextLens, B, maxBlocks, qt.device, tmps);
    const qs = i32Arg(fn, 'queryStart', queryStart, B + 1, qt.device);
    tmps.push(qs.tmp);
    using qsv = (qs.tmp ?? (queryStart as Tensor<'i32'>)).reshape([B + 1]);
    const inputs = [qt.handle(fn, 'q'), cache.kv.handle(fn), cache.kvScale.handle(fn), btv.handle(fn), clv.handle(fn), qsv.handle(fn), o.alibi.h];
    const shape = qt.shape.slice();
    return wrapNative(runNative('paged_attention_prefill', qt.device, inputs, qt.dtype, shape, o.scale, o.cap, o.window, o.partition), qt.dtype, shape, qt.device) as Tensor<D>;
  } finally {
    disposeAll(tmps);
  }
}
