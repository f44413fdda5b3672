/**
 * The paged KV cache of a whole model: one pair of cache tensors per layer ({@link KvCacheTensors}, layout in
 * native/common/kv.h) and one {@link BlockManager} shared by the layers (a sequence's blocks hold every layer's K/V
 * for the same positions). It applies the manager's copy-on-write copies to every layer, writes K/V into the slots
 * the manager hands out, and builds the block tables of a batch once per step for all layers.
 *
 * A decode step of a runtime:
 * ```ts
 * const r = cache.append(seq, [token]);          // or: if (!r.ok) preempt a sequence (nothing changed)
 * using batch = cache.batch([seq]);              // block tables + lengths, uploaded once for every layer
 * for (let l = 0; l < layers; l++) {
 *   cache.write(l, k[l], v[l], r.slots);         // this step's K/V, quantized for i8/f8e4m3 caches
 *   y[l] = cache.decode(l, q[l], batch);
 * }
 * ```
 */
import { type DeviceSpec, resolveDevice, type Device } from '../device.js';
import { DTYPE_SIZE } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { cacheWrite, ropeCacheWrite, kvCopyBlocks, KV_DTYPES, pagedAttentionDecode, pagedAttentionPrefill, type KvCacheTensors, type KvDType, type PagedAttentionOptions } from '../ops/attention.js';
import { Tensor } from '../tensor.js';
import { checkInteger, checkObject, expected } from '../validate.js';
import { BlockManager, kvFullError, type AllocResult, type KvStats } from './block-manager.js';

/** Options of {@link PagedKvCache}. */
export interface PagedKvCacheOptions {
  /** Layers (one K/V pool each). */
  numLayers: number;
  /** Blocks per layer. */
  numBlocks: number;
  /** P, tokens per block (1, 8, 16 and 32 are tested; 16 is the usual choice). */
  blockSize: number;
  /** Hkv, KV heads. */
  numKvHeads: number;
  /** D, head dimension. */
  headDim: number;
  /** Storage type (default 'f16'); i8 and f8e4m3 keep one f32 scale per token and head. */
  dtype?: KvDType;
  /** Device (default 'cpu'). */
  device?: DeviceSpec;
  /** Reuse cached full blocks of equal prefixes (default true). */
  prefixCaching?: boolean;
  /** Mixed into the prefix hashes (default ''). */
  hashSalt?: string | Uint8Array;
}

/**
 * The block tables and lengths of a batch of sequences, uploaded once and used by every layer's attention.
 * Dispose it (or `using`) when the step is done.
 */
export class AttentionBatch {
  /** Sequence ids, in batch order. */
  readonly seqIds: readonly number[];
  /** `[B, maxBlocks]` i32 */
  readonly blockTables: Tensor<'i32'>;
  /** `[B]` i32 context lengths */
  readonly contextLens: Tensor<'i32'>;
  /** `[B + 1]` i32 query offsets (prefill batches only) */
  readonly queryStart: Tensor<'i32'> | null;
  /** Total query tokens (B for a decode batch). */
  readonly numQueries: number;

  /** @internal */
  constructor(seqIds: number[], blockTables: Tensor<'i32'>, contextLens: Tensor<'i32'>, queryStart: Tensor<'i32'> | null, numQueries: number) {
    this.seqIds = seqIds;
    this.blockTables = blockTables;
    this.contextLens = contextLens;
    this.queryStart = queryStart;
    this.numQueries = numQueries;
  }

  /** Releases the tensors (idempotent). */
  dispose(): void {
    this.blockTables.dispose();
    this.contextLens.dispose();
    this.queryStart?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * A model's paged KV cache: per-layer K/V pools plus the block manager.
 * @example
 * const cache = new PagedKvCache({ numLayers: 32, numBlocks: 2048, blockSize: 16, numKvHeads: 8, headDim: 128, dtype: 'i8' });
 * const r = cache.addSequence(1, promptTokens);
 * if (!r.ok) throw kvFullError('addSequence', r);
 */
export class PagedKvCache {
  readonly numLayers: number;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly dtype: KvDType;
  readonly device: Device;
  /** The block manager (allocation, sharing, prefix cache, stats). */
  readonly manager: BlockManager;
  #layers: KvCacheTensors[] | null;

  /**
   * Allocates every layer's pools (uninitialized memory: only written slots are ever read).
   * @throws {TypeError} | {RangeError} bad options; {@link LlmKernelsError} ERR_OOM, ERR_DEVICE
   */
  constructor(options: PagedKvCacheOptions) {
    const fn = 'PagedKvCache';
    const o = checkObject(fn, 'options', options) as unknown as PagedKvCacheOptions;
    this.numLayers = checkInteger(fn, 'options.numLayers', o.numLayers, 1, 100000);
    this.numBlocks = checkInteger(fn, 'options.numBlocks', o.numBlocks, 1, 2 ** 31 - 1);
    this.blockSize = checkInteger(fn, 'options.blockSize', o.blockSize, 1, 2 ** 20);
    this.numKvHeads = checkInteger(fn, 'options.numKvHeads', o.numKvHeads, 1, 4096);
    this.headDim = checkInteger(fn, 'options.headDim', o.headDim, 1, 1024);
    const dtype = o.dtype ?? 'f16';
    if (typeof dtype !== 'string') throw typeError(expected(fn, `a KV dtype (${KV_DTYPES.join(', ')})`, 'options.dtype', dtype));
    if (!(KV_DTYPES as readonly string[]).includes(dtype)) throw rangeError(expected(fn, `a KV dtype (${KV_DTYPES.join(', ')})`, 'options.dtype', dtype));
    this.dtype = dtype;
    this.device = resolveDevice(fn, 'options.device', o.device ?? 'cpu');
    this.manager = new BlockManager({
      numBlocks: this.numBlocks,
      blockSize: this.blockSize,
      ...(o.prefixCaching !== undefined ? { prefixCaching: o.prefixCaching } : {}),
      ...(o.hashSalt !== undefined ? { hashSalt: o.hashSalt } : {}),
    });
    const quantized = dtype === 'i8' || dtype === 'f8e4m3';
    const layers: KvCacheTensors[] = [];
    try {
      for (let l = 0; l < this.numLayers; l++) {
        const kv = Tensor.empty([this.numBlocks, this.numKvHeads, 2, this.blockSize, this.headDim], { dtype, device: this.device });
        let kvScale: Tensor<'f32'>;
        try {
          kvScale = Tensor.empty(quantized ? [this.numBlocks, this.numKvHeads, 2, this.blockSize] : [0], { device: this.device });
        } catch (e) {
          kv.dispose();
          throw e;
        }
        layers.push({ kv, kvScale });
      }
    } catch (e) {
      for (const t of layers) {
        t.kv.dispose();
        t.kvScale.dispose();
      }
      throw e;
    }
    this.#layers = layers;
  }

  #live(fn: string): KvCacheTensors[] {
    if (!this.#layers) throw new LlmKernelsError('ERR_DISPOSED', `${fn}: expected a live PagedKvCache, got a disposed one`);
    return this.#layers;
  }

  /** Bytes of every layer's pools and scales. */
  get bytes(): number {
    const per = this.numBlocks * this.numKvHeads * 2 * this.blockSize;
    const quantized = this.dtype === 'i8' || this.dtype === 'f8e4m3';
    return this.numLayers * per * (this.headDim * DTYPE_SIZE[this.dtype] + (quantized ? 4 : 0));
  }

  /** The cache tensors of layer `l` (owned by the cache: do not dispose them). */
  layer(l: number): KvCacheTensors {
    const layers = this.#live('layer');
    return layers[checkInteger('layer', 'l', l, 0, this.numLayers - 1)]!;
  }

  #copies(fn: string, r: AllocResult): AllocResult {
    if (r.ok && r.copies.length > 0) for (const c of this.#live(fn)) kvCopyBlocks(c, r.copies);
    return r;
  }

  /**
   * A new sequence holding `tokens` (its prompt). Cached blocks of an equal prefix are reused: the result's
   * `cachedTokens` positions need no compute; write the K/V of the rest at `slots`. Out of blocks: `{ ok: false,
   * code: 'ERR_KV_FULL' }` and nothing changed.
   */
  addSequence(seqId: number, tokens: ArrayLike<number>): AllocResult {
    this.#live('addSequence');
    return this.#copies('addSequence', this.manager.addSequence(seqId, tokens));
  }

  /** Appends tokens to a sequence (copy-on-write of a shared last block is done here, on every layer). */
  append(seqId: number, tokens: ArrayLike<number>): AllocResult {
    this.#live('append');
    return this.#copies('append', this.manager.append(seqId, tokens));
  }

  /** {@link PagedKvCache.append}, throwing ERR_KV_FULL instead of returning a full result. */
  appendOrThrow(seqId: number, tokens: ArrayLike<number>): Int32Array {
    const r = this.append(seqId, tokens);
    if (!r.ok) throw kvFullError('append', r);
    return r.slots;
  }

  /** A child sharing every block of the parent (beam search, parallel sampling). */
  fork(parentId: number, childId: number): void {
    this.#live('fork');
    this.manager.fork(parentId, childId);
  }

  /** Releases a sequence; its full blocks stay in the prefix cache until evicted. */
  free(seqId: number): void {
    this.#live('free');
    this.manager.free(seqId);
  }

  /** Occupancy and prefix-cache counters, plus the pools' bytes. */
  stats(): KvStats & { bytes: number } {
    return { ...this.manager.stats(), bytes: this.bytes };
  }

  /**
   * Writes K/V of new tokens of layer `l` at `slots` (from addSequence/append).
   * @param k - `[T, Hkv, D]`, v the same; T = slots.length
   */
  write(l: number, k: Tensor, v: Tensor, slots: Int32Array): void {
    cacheWrite(this.layer(l), k, v, slots);
  }

  /**
   * Writes K/V of new tokens of layer `l` with K rotary-embedded on the way (`ropeCacheWrite`): the keys a model's
   * attention reads are the rotated ones, and they are never stored anywhere else.
   * @param positions - `[T]` i32 positions of the tokens
   * @param invFreq - `[R/2]` f32 inverse frequencies
   */
  writeRotary(l: number, k: Tensor, v: Tensor, slots: Int32Array, positions: Int32Array | Tensor<'i32'>, invFreq: Tensor<'f32'>, pairing: 'rotate-half' | 'interleaved' = 'rotate-half'): void {
    ropeCacheWrite(this.layer(l), k, v, slots, positions, invFreq, { pairing });
  }

  /**
   * The block tables of a batch: decode (one query per sequence: `newTokens` absent) or prefill (`newTokens[i]`
   * queries for sequence i, the last positions of its context). Upload once per step, use for every layer.
   */
  batch(seqIds: readonly number[], newTokens?: readonly number[]): AttentionBatch {
    const fn = 'batch';
    this.#live(fn);
    if (!Array.isArray(seqIds)) throw typeError(expected(fn, 'an array of sequence ids', 'seqIds', seqIds));
    if (seqIds.length === 0) throw rangeError(expected(fn, 'at least one sequence', 'seqIds.length', 0));
    if (newTokens !== undefined) {
      if (!Array.isArray(newTokens)) throw typeError(expected(fn, 'an array of token counts', 'newTokens', newTokens));
      if (newTokens.length !== seqIds.length) throw rangeError(expected(fn, `${seqIds.length} counts (one per sequence)`, 'newTokens.length', newTokens.length));
    }
    const tables = seqIds.map((id) => this.manager.blockTable(id));
    const B = seqIds.length;
    const maxBlocks = Math.max(1, ...tables.map((t) => t.length));
    const flat = new Int32Array(B * maxBlocks);
    const lens = new Int32Array(B);
    const qs = new Int32Array(B + 1);
    for (let b = 0; b < B; b++) {
      flat.set(tables[b]!, b * maxBlocks);
      lens[b] = this.manager.length(seqIds[b]!);
      if (newTokens) {
        const n = checkInteger(fn, `newTokens[${b}]`, newTokens[b], 0, lens[b]!);
        qs[b + 1] = qs[b]! + n;
      }
    }
    const bt = Tensor.fromArray(flat, { dtype: 'i32', shape: [B, maxBlocks], device: this.device });
    const cl = Tensor.fromArray(lens, { dtype: 'i32', device: this.device });
    const q = newTokens ? Tensor.fromArray(qs, { dtype: 'i32', device: this.device }) : null;
    return new AttentionBatch(seqIds.slice(), bt, cl, q, newTokens ? qs[B]! : B);
  }

  /** Decode attention of layer `l` for a decode batch: q `[B, H, D]` -> `[B, H, D]`. */
  decode<D extends 'f32' | 'f16' | 'bf16'>(l: number, q: Tensor<D>, batch: AttentionBatch, options: PagedAttentionOptions = {}): Tensor<D> {
    if (!(batch instanceof AttentionBatch)) throw typeError(expected('decode', 'an AttentionBatch (from batch())', 'batch', batch));
    if (batch.queryStart) throw rangeError(expected('decode', 'a decode batch (no newTokens)', 'batch', 'a prefill batch', true));
    return pagedAttentionDecode(q, this.layer(l), batch.blockTables, batch.contextLens, options);
  }

  /** Prefill attention of layer `l` for a prefill batch: q `[T, H, D]` (T = batch.numQueries) -> `[T, H, D]`. */
  prefill<D extends 'f32' | 'f16' | 'bf16'>(l: number, q: Tensor<D>, batch: AttentionBatch, options: PagedAttentionOptions = {}): Tensor<D> {
    if (!(batch instanceof AttentionBatch)) throw typeError(expected('prefill', 'an AttentionBatch (from batch())', 'batch', batch));
    if (!batch.queryStart) throw rangeError(expected('prefill', 'a prefill batch (batch(seqIds, newTokens))', 'batch', 'a decode batch', true));
    return pagedAttentionPrefill(q, this.layer(l), batch.blockTables, batch.contextLens, batch.queryStart, options);
  }

  /** Releases every layer's memory (idempotent); later calls throw ERR_DISPOSED. */
  dispose(): void {
    if (!this.#layers) return;
    for (const t of this.#layers) {
      t.kv.dispose();
      t.kvScale.dispose();
    }
    this.#layers = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
