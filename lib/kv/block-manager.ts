/**
 * The block manager of a paged KV cache (vLLM's PagedAttention memory model), in plain TypeScript: it hands out
 * block ids and tells the caller which slots to write and which blocks to copy; the KV memory lives elsewhere.
 *
 * Memory model: `numBlocks` blocks of P = `blockSize` token slots; slot `block * P + offsetInBlock`. A sequence of
 * L tokens owns a block table of `ceil(L / P)` blocks; token t lives in slot `table[floor(t / P)] * P + t % P`. All
 * blocks but the last of a table are full. Blocks are shared by reference count (fork, prefix cache); a full shared
 * block is never written again, a partly filled shared block is copied before a write (copy-on-write).
 *
 * Every block is in exactly one state: free (free list, holds nothing useful), used (refcount > 0) or cached
 * (refcount 0, still holds a registered full block of the prefix cache, evictable in LRU order).
 *
 * Prefix caching: a full block's hash is SHA-256(salt, parent block's hash (32 bytes, none for block 0), its P
 * token ids as int32 little-endian), so a hash names the whole prefix up to the end of that block. The registry
 * maps hash -> one block; a later block with the same hash is not registered (the first keeps its place).
 *
 * Cost: every operation is O(tokens + blocks it touches); nothing scans the `numBlocks` blocks except `reset()`
 * and `debugBlocks()`. Run the tests with `npx vitest run test/kv/block-manager.test.ts`.
 */
import { createHash } from 'node:crypto';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { checkInteger, checkObject, expected } from '../validate.js';

/**
 * Options of {@link BlockManager}.
 * @example
 * const opts: BlockManagerOptions = { numBlocks: 4096, blockSize: 16, prefixCaching: true, hashSalt: 'tenant-7' };
 */
export interface BlockManagerOptions {
  /** Number of KV blocks, an integer in [1, floor((2^31 - 1) / blockSize)] so every slot fits in int32. */
  numBlocks: number;
  /** P, the tokens per block, an integer ≥ 1. */
  blockSize: number;
  /** Reuse full blocks whose token prefix matches (default true). */
  prefixCaching?: boolean;
  /** Mixed into every block hash (default ''): managers with different salts never produce the same hashes. */
  hashSalt?: string | Uint8Array;
}

/**
 * A successful allocation: write the new tokens' K/V at `slots`, after doing the block `copies`.
 * @example
 * const r = bm.append(7, [next]);
 * if (r.ok) { for (let i = 0; i < r.copies.length; i += 2) copyBlock(r.copies[i], r.copies[i + 1]); writeKv(r.slots); }
 */
export interface AllocOk {
  ok: true;
  /** Tokens at the start of the sequence whose K/V is already in the cache (prefix hit); always 0 for `append`. */
  cachedTokens: number;
  /** Slots of the tokens the caller must compute, in order: tokens `cachedTokens..end` (addSequence) or the appended ones. */
  slots: Int32Array;
  /** Whole-block copies to do before writing `slots`, flat pairs `[src0, dst0, src1, dst1, ...]`. */
  copies: Int32Array;
}

/**
 * An allocation that did not fit; nothing changed. `needed` blocks would have been taken from the `available` pool
 * (free plus cached blocks, the {@link BlockManager.available} getter); prefix-cache hits on cached blocks count as
 * taken, hits on used blocks do not.
 * @example
 * const r = bm.addSequence(id, prompt);
 * if (!r.ok) throw kvFullError('addSequence', r);
 */
export interface KvFull {
  ok: false;
  code: 'ERR_KV_FULL';
  needed: number;
  available: number;
}

/**
 * What {@link BlockManager.addSequence} and {@link BlockManager.append} return.
 * @example
 * const r: AllocResult = bm.addSequence(1, prompt);
 * if (!r.ok) scheduler.preempt(r.needed - r.available);
 */
export type AllocResult = AllocOk | KvFull;

/**
 * A snapshot of the manager's occupancy and prefix-cache counters ({@link BlockManager.stats}).
 * @example
 * const s: KvStats = bm.stats();
 * console.log(`${s.used}/${s.numBlocks} blocks used, hit rate ${(100 * s.hitRate).toFixed(1)}%`);
 */
export interface KvStats {
  numBlocks: number;
  blockSize: number;
  /** Blocks with refcount > 0. */
  used: number;
  /** Blocks on the free list. */
  free: number;
  /** Evictable blocks: refcount 0, still registered in the prefix cache. `used + free + cached == numBlocks`. */
  cached: number;
  /** Live sequences. */
  sequences: number;
  /** Sum of the lengths of the live sequences. */
  tokens: number;
  /** Tokens of the prompts looked up in the prefix cache (successful `addSequence` calls, prefix caching on). */
  prefixQueries: number;
  /** Of those, tokens found in the cache (`cachedTokens`). */
  prefixHits: number;
  /** `prefixHits / prefixQueries`, 0 before any query. */
  hitRate: number;
  /** Slots of used blocks that hold no token of any sequence (a shared block counts once). */
  wastedSlots: number;
  /** `wastedSlots / (used * blockSize)`, 0 when no block is used. */
  fragmentation: number;
}

/**
 * Every block's state, for tests and debugging ({@link BlockManager.debugBlocks}); O(numBlocks) to build.
 * @example
 * const { refCounts, free, cached } = bm.debugBlocks();
 */
export interface BlockDebugState {
  /** Reference count of each block (number of block-table entries pointing at it). */
  refCounts: Int32Array;
  /** The free blocks, the next one handed out first. */
  free: Int32Array;
  /** The cached (evictable) blocks, the next one evicted first. */
  cached: Int32Array;
}

interface Seq {
  table: number[];
  len: number;
  /** Tokens of the partly filled last block, kept to hash it once full (prefix caching only). */
  tail: number[];
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
/** Shared by results: a zero-length array has nothing a caller could change. */
const EMPTY = new Int32Array(0);
const OPTION_KEYS = ['numBlocks', 'blockSize', 'prefixCaching', 'hashSalt'];

/**
 * The error a caller that prefers exceptions throws for a {@link KvFull} result.
 * @param fn - the operation that failed, for the message (`'append'`, `'addSequence'`, or the caller's own name)
 * @param r - the failed result (or any `{ needed, available }`)
 * @returns an `LlmKernelsError` with code `ERR_KV_FULL` and a message like
 *   `append: expected 3 free KV blocks, got 1 (free finished sequences or preempt one)`
 * @throws {TypeError} if `fn` is not a string or `r` not an object with numeric `needed` and `available`
 * @throws {RangeError} if `needed` or `available` is not a non-negative integer
 * @example
 * const r = bm.append(id, [token]);
 * if (!r.ok) throw kvFullError('append', r);
 */
export function kvFullError(fn: string, r: { needed: number; available: number }): LlmKernelsError {
  if (typeof fn !== 'string') throw typeError(expected('kvFullError', 'a string', 'fn', fn));
  if (r === null || typeof r !== 'object') throw typeError(expected('kvFullError', 'a { needed, available } object', 'r', r));
  const o = r as unknown as Record<string, unknown>;
  const needed = checkInteger('kvFullError', 'r.needed', o.needed);
  const available = checkInteger('kvFullError', 'r.available', o.available);
  return new LlmKernelsError(
    'ERR_KV_FULL',
    `${fn}: expected ${needed} free KV block${needed === 1 ? '' : 's'}, got ${available} (free finished sequences or preempt one)`,
  );
}

/**
 * Allocates KV-cache blocks to sequences: block tables, reference-counted sharing (fork, copy-on-write) and an
 * LRU prefix cache of full blocks keyed by chained SHA-256 hashes, like vLLM's block manager. It manages ids only:
 * the caller owns the KV memory, writes the slots it is given and performs the block copies it is told.
 *
 * Sequences are named by caller-chosen ids (non-negative safe integers). Allocating calls return an
 * {@link AllocResult}; when the cache is full they return `{ ok: false, code: 'ERR_KV_FULL' }` and change nothing,
 * so a scheduler can preempt and retry. Argument errors throw (TypeError / RangeError) before anything changes.
 * @example
 * const bm = new BlockManager({ numBlocks: 1024, blockSize: 16 });
 * const r = bm.addSequence(1, promptIds);
 * if (!r.ok) throw kvFullError('addSequence', r);
 * prefill(promptIds.slice(r.cachedTokens), r.slots, bm.blockTable(1));
 * const d = bm.append(1, [nextId]); // one decode step
 * bm.free(1);
 */
export class BlockManager {
  /** Number of blocks. */
  readonly numBlocks: number;
  /** P, token slots per block. */
  readonly blockSize: number;
  /** Whether full blocks are shared by prefix. */
  readonly prefixCaching: boolean;

  private readonly salt: Buffer;
  private readonly ref: Int32Array;
  /** Slots holding a token, per block; meaningful for used and cached blocks. */
  private readonly fill: Int32Array;
  /** Free list: a stack of released blocks, then the never-used ids `untouched..numBlocks-1` (so construction is O(1)). */
  private readonly freeStack: Int32Array;
  private freeTop = 0;
  private untouched = 0;
  /** Doubly-linked LRU list of cached blocks; index numBlocks is the sentinel (next = oldest, prev = newest). */
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private cachedCount = 0;
  /** Hash (32-byte digest as a latin1 string) of every full block in use or cached, prefix caching on. */
  private readonly blockKey = new Map<number, string>();
  /** Hash -> the one block registered for it. */
  private readonly registry = new Map<string, number>();
  private readonly seqs = new Map<number, Seq>();
  private totalTokens = 0;
  /** Sum of `fill` over used blocks, so that wastedSlots is O(1). */
  private filledUsed = 0;
  private queries = 0;
  private hits = 0;
  private scratch: Buffer | null = null;

  /**
   * @param options - `{ numBlocks, blockSize, prefixCaching = true, hashSalt = '' }`, see {@link BlockManagerOptions}
   * @throws {TypeError} if `options` is not an object or an option has the wrong type
   * @throws {RangeError} for an unknown option, or `blockSize` / `numBlocks` not integers in range
   *   (`numBlocks * blockSize` slots must fit in int32)
   * @throws {LlmKernelsError} `ERR_OOM` if the per-block state (20 bytes a block) cannot be allocated
   * @example
   * const bm = new BlockManager({ numBlocks: 2048, blockSize: 16, hashSalt: 'model-a' });
   */
  constructor(options: BlockManagerOptions) {
    const fn = 'BlockManager';
    // checkObject lets typed arrays through; their index keys would read as unknown options.
    if (ArrayBuffer.isView(options)) throw typeError(expected(fn, 'an options object', 'options', options));
    const o = checkObject(fn, 'options', options);
    for (const k of Object.keys(o))
      if (!OPTION_KEYS.includes(k)) throw rangeError(expected(fn, `only the options ${OPTION_KEYS.join(', ')}`, 'options', `an option ${JSON.stringify(k)}`, true));
    const P = checkInteger(fn, 'options.blockSize', o.blockSize, 1, INT32_MAX);
    const maxBlocks = Math.floor(INT32_MAX / P);
    const nb = o.numBlocks;
    if (typeof nb !== 'number') throw typeError(expected(fn, 'an integer', 'options.numBlocks', nb));
    if (!Number.isInteger(nb) || nb < 1 || nb > maxBlocks)
      throw rangeError(expected(fn, `an integer in [1, ${maxBlocks}] (numBlocks * blockSize slots must fit in int32)`, 'options.numBlocks', nb));
    const pc = o.prefixCaching === undefined ? true : o.prefixCaching;
    if (typeof pc !== 'boolean') throw typeError(expected(fn, 'a boolean or undefined', 'options.prefixCaching', pc));
    const salt = o.hashSalt === undefined ? '' : o.hashSalt;
    if (typeof salt !== 'string' && !(salt instanceof Uint8Array))
      throw typeError(expected(fn, 'a string, a Uint8Array or undefined', 'options.hashSalt', salt));
    this.numBlocks = nb;
    this.blockSize = P;
    this.prefixCaching = pc;
    // A copy: the caller may reuse its buffer, and a changing salt would silently corrupt the cache.
    this.salt = typeof salt === 'string' ? Buffer.from(salt, 'utf8') : Buffer.from(salt);
    try {
      this.ref = new Int32Array(nb);
      this.fill = new Int32Array(nb);
      this.freeStack = new Int32Array(nb);
      this.lruPrev = new Int32Array(nb + 1);
      this.lruNext = new Int32Array(nb + 1);
    } catch (e) {
      throw new LlmKernelsError('ERR_OOM', `${fn}: could not allocate the state of ${nb} blocks (${20 * nb} bytes); use fewer blocks`, { cause: e });
    }
    this.lruPrev[nb] = nb;
    this.lruNext[nb] = nb;
  }

  /**
   * Blocks that can be handed out now: the free list plus the cached (evictable) blocks.
   * @example
   * if (bm.available < bm.blocksNeededToAppend(id, 1)) preempt();
   */
  get available(): number {
    return this.freeCount() + this.cachedCount;
  }

  /**
   * Creates sequence `seqId` holding `tokens`. With prefix caching, the longest prefix of full blocks found in the
   * cache is shared instead of allocated, but never the block of the last token (the caller must compute at least
   * one token to get logits): at most `floor((tokens.length - 1) / P)` blocks.
   * @param seqId - a new sequence id (non-negative safe integer, not live)
   * @param tokens - the prompt's int32 token ids (may be empty)
   * @returns `{ ok: true, cachedTokens, slots, copies }` where `slots` are the slots of tokens `cachedTokens..end`
   *   (`copies` is empty), or `{ ok: false, code: 'ERR_KV_FULL', needed, available }` and nothing changed
   * @throws {TypeError} if `seqId` is not a number, `tokens` not an array-like or a token not a number
   * @throws {RangeError} if `seqId` is invalid or already live, or a token is not an int32 integer
   * @example
   * const r = bm.addSequence(1, [1, 15043, 3186]);
   * if (r.ok) prefill(tokens.slice(r.cachedTokens), r.slots);
   */
  addSequence(seqId: number, tokens: ArrayLike<number>): AllocResult {
    const fn = 'addSequence';
    checkSeqId(fn, 'seqId', seqId);
    if (this.seqs.has(seqId)) throw rangeError(expected(fn, 'a sequence id not in use', 'seqId', seqId));
    const toks = checkTokens(fn, 'tokens', tokens);
    const P = this.blockSize;
    const len = toks.length;
    const nBlocks = Math.ceil(len / P);
    const nFull = Math.floor(len / P);

    // Plan without mutating: hits and their hashes; the miss's hash is kept for registering the fresh block.
    const hitBlocks: number[] = [];
    const keys: string[] = [];
    let cachedHits = 0;
    if (this.prefixCaching && len > 0) {
      const maxHits = Math.floor((len - 1) / P);
      let parent: string | undefined;
      for (let i = 0; i < maxHits; i++) {
        const k = this.hashBlock(parent, toks, i * P);
        keys.push(k);
        const b = this.registry.get(k);
        if (b === undefined) break;
        hitBlocks.push(b);
        if (this.ref[b] === 0) cachedHits++;
        parent = k;
      }
    }
    // A hit on a cached block takes it out of the pool as surely as a fresh allocation does.
    const needed = nBlocks - hitBlocks.length + cachedHits;
    const available = this.available;
    if (needed > available) return { ok: false, code: 'ERR_KV_FULL', needed, available };

    // Claim the hits before allocating, so that eviction cannot take a block we are about to share.
    const table: number[] = [];
    for (const b of hitBlocks) {
      this.claim(b);
      table.push(b);
    }
    for (let i = hitBlocks.length; i < nBlocks; i++) {
      const b = this.allocate();
      const f = Math.min(P, len - i * P);
      this.fill[b] = f;
      this.filledUsed += f;
      table.push(b);
    }
    const seq: Seq = { table, len, tail: [] };
    if (this.prefixCaching) {
      for (let i = hitBlocks.length; i < nFull; i++) {
        const parent = i > 0 ? this.blockKey.get(table[i - 1]!) : undefined;
        this.register(table[i]!, keys[i] ?? this.hashBlock(parent, toks, i * P));
      }
      for (let t = nFull * P; t < len; t++) seq.tail.push(toks[t]!);
      this.queries += len;
      this.hits += hitBlocks.length * P;
    }
    this.seqs.set(seqId, seq);
    this.totalTokens += len;

    const cachedTokens = hitBlocks.length * P;
    const slots = new Int32Array(len - cachedTokens);
    for (let t = cachedTokens; t < len; t++) {
      const i = Math.floor(t / P);
      slots[t - cachedTokens] = table[i]! * P + (t - i * P);
    }
    return { ok: true, cachedTokens, slots, copies: EMPTY };
  }

  /**
   * Appends tokens to a live sequence (usually one per decode step). If its last block is partly filled and shared,
   * it is first copied to a fresh block (copy-on-write, reported in `copies`); full shared blocks are never written.
   * A block that becomes full enters the prefix cache.
   * @param seqId - a live sequence id
   * @param tokens - the int32 token ids to append (any count, 0 is a no-op)
   * @returns `{ ok: true, cachedTokens: 0, slots, copies }` or `{ ok: false, code: 'ERR_KV_FULL', needed, available }`
   *   and nothing changed
   * @throws {TypeError} if `seqId` is not a number, `tokens` not an array-like or a token not a number
   * @throws {RangeError} if `seqId` is not a live sequence or a token is not an int32 integer
   * @example
   * const r = bm.append(1, [next]);
   * if (!r.ok) preempt(); else { doCopies(r.copies); decode(next, r.slots[0], bm.blockTable(1)); }
   */
  append(seqId: number, tokens: ArrayLike<number>): AllocResult {
    const fn = 'append';
    const s = this.live(fn, 'seqId', seqId);
    const toks = checkTokens(fn, 'tokens', tokens);
    const n = toks.length;
    if (n === 0) return { ok: true, cachedTokens: 0, slots: EMPTY, copies: EMPTY };
    const needed = this.needToAppend(s, n);
    const available = this.available;
    if (needed > available) return { ok: false, code: 'ERR_KV_FULL', needed, available };

    const P = this.blockSize;
    const L = s.len;
    const table = s.table;
    let copies = EMPTY;
    if (this.cowNeeded(s)) {
      const last = table.length - 1;
      const src = table[last]!;
      const dst = this.allocate();
      this.fill[dst] = this.fill[src]!;
      this.filledUsed += this.fill[dst]!;
      // src stays used by its other holders (its refcount was > 1), so this is not a release.
      this.ref[src]!--;
      table[last] = dst;
      copies = Int32Array.of(src, dst);
    }
    const slots = new Int32Array(n);
    for (let j = 0; j < n; j++) {
      const pos = L + j;
      const i = Math.floor(pos / P);
      const off = pos - i * P;
      if (off === 0) table.push(this.allocate());
      const b = table[i]!;
      slots[j] = b * P + off;
      this.fill[b]!++;
      this.filledUsed++;
      if (this.prefixCaching) {
        s.tail.push(toks[j]!);
        if (off === P - 1) {
          const parent = i > 0 ? this.blockKey.get(table[i - 1]!) : undefined;
          this.register(b, this.hashBlock(parent, s.tail, 0));
          s.tail.length = 0;
        }
      }
    }
    s.len += n;
    this.totalTokens += n;
    return { ok: true, cachedTokens: 0, slots, copies };
  }

  /**
   * Creates `childId` sharing every block of `parentId` (beam search, parallel sampling). Needs no new block: the
   * first write to a shared, partly filled last block copies it then ({@link BlockManager.append}).
   * @param parentId - a live sequence id
   * @param childId - a new sequence id (non-negative safe integer, not live)
   * @throws {TypeError} if an id is not a number
   * @throws {RangeError} if `parentId` is not live, or `childId` is invalid or live
   * @example
   * bm.fork(1, 2); // sequence 2 continues from sequence 1's tokens
   */
  fork(parentId: number, childId: number): void {
    const fn = 'fork';
    const p = this.live(fn, 'parentId', parentId);
    checkSeqId(fn, 'childId', childId);
    if (this.seqs.has(childId)) throw rangeError(expected(fn, 'a sequence id not in use', 'childId', childId));
    for (const b of p.table) this.ref[b]!++;
    this.seqs.set(childId, { table: p.table.slice(), len: p.len, tail: p.tail.slice() });
    this.totalTokens += p.len;
  }

  /**
   * Releases a sequence. Each of its blocks loses a reference; a block left unreferenced becomes cached (if it is a
   * registered full block) or free. The last block is released first, so the LRU evicts a prefix's tail before its
   * head (a head shared by more prompts stays longer).
   * @param seqId - a live sequence id
   * @throws {TypeError} if `seqId` is not a number
   * @throws {RangeError} if `seqId` is not live (including a second free)
   * @example
   * bm.free(1);
   */
  free(seqId: number): void {
    const s = this.live('free', 'seqId', seqId);
    this.seqs.delete(seqId);
    this.totalTokens -= s.len;
    for (let i = s.table.length - 1; i >= 0; i--) this.release(s.table[i]!);
  }

  /**
   * A copy of a sequence's block table: entry i is the block holding tokens `i*P .. i*P + P - 1`.
   * @param seqId - a live sequence id
   * @throws {TypeError} if `seqId` is not a number
   * @throws {RangeError} if `seqId` is not live
   * @example
   * const table = bm.blockTable(1); // Int32Array of ceil(length / P) block ids
   */
  blockTable(seqId: number): Int32Array {
    return Int32Array.from(this.live('blockTable', 'seqId', seqId).table);
  }

  /**
   * The hashes of a sequence's full blocks, in order, as 64-digit hex strings (empty with prefix caching off): the
   * keys of the prefix cache, e.g. for routing requests to the worker that holds a prefix.
   * @param seqId - a live sequence id
   * @throws {TypeError} if `seqId` is not a number
   * @throws {RangeError} if `seqId` is not live
   * @example
   * const [first] = bm.blockHashes(1); // SHA-256(salt, P int32 LE token ids) of the first block
   */
  blockHashes(seqId: number): string[] {
    const s = this.live('blockHashes', 'seqId', seqId);
    if (!this.prefixCaching) return [];
    const n = Math.floor(s.len / this.blockSize);
    return s.table.slice(0, n).map((b) => Buffer.from(this.blockKey.get(b)!, 'latin1').toString('hex'));
  }

  /**
   * The number of tokens of a sequence.
   * @param seqId - a live sequence id
   * @throws {TypeError} if `seqId` is not a number
   * @throws {RangeError} if `seqId` is not live
   * @example
   * const pos = bm.length(1); // position of the next token
   */
  length(seqId: number): number {
    return this.live('length', 'seqId', seqId).len;
  }

  /**
   * The live sequence ids, in creation order.
   * @example
   * for (const id of bm.sequences()) bm.free(id);
   */
  sequences(): number[] {
    return [...this.seqs.keys()];
  }

  /**
   * Whether a new sequence of `nTokens` tokens fits for sure: `ceil(nTokens / P) <= available`. Conservative:
   * prefix hits can only lower the need, so `true` means {@link BlockManager.addSequence} succeeds.
   * @param nTokens - the prompt length, a non-negative safe integer
   * @throws {TypeError} if `nTokens` is not a number
   * @throws {RangeError} if `nTokens` is not a non-negative safe integer
   * @example
   * while (queue.length && bm.canAllocate(queue[0].length)) start(queue.shift());
   */
  canAllocate(nTokens: number): boolean {
    const n = checkInteger('canAllocate', 'nTokens', nTokens);
    return Math.ceil(n / this.blockSize) <= this.available;
  }

  /**
   * The blocks {@link BlockManager.append} of `n` tokens would take from the pool: new blocks plus one for a
   * copy-on-write of a shared, partly filled last block. The append succeeds iff this is ≤ `available`.
   * @param seqId - a live sequence id
   * @param n - the number of tokens to append, a non-negative safe integer
   * @throws {TypeError} if an argument is not a number
   * @throws {RangeError} if `seqId` is not live or `n` is not a non-negative safe integer
   * @example
   * const need = bm.sequences().reduce((a, id) => a + bm.blocksNeededToAppend(id, 1), 0);
   * if (need > bm.available) preemptLowestPriority();
   */
  blocksNeededToAppend(seqId: number, n: number): number {
    const s = this.live('blocksNeededToAppend', 'seqId', seqId);
    const k = checkInteger('blocksNeededToAppend', 'n', n);
    return k === 0 ? 0 : this.needToAppend(s, k);
  }

  /**
   * Occupancy and prefix-cache counters; O(1).
   * @example
   * const { used, cached, free, hitRate } = bm.stats();
   */
  stats(): KvStats {
    const P = this.blockSize;
    const free = this.freeCount();
    const used = this.numBlocks - free - this.cachedCount;
    const wastedSlots = used * P - this.filledUsed;
    return {
      numBlocks: this.numBlocks,
      blockSize: P,
      used,
      free,
      cached: this.cachedCount,
      sequences: this.seqs.size,
      tokens: this.totalTokens,
      prefixQueries: this.queries,
      prefixHits: this.hits,
      hitRate: this.queries === 0 ? 0 : this.hits / this.queries,
      wastedSlots,
      fragmentation: used === 0 ? 0 : wastedSlots / (used * P),
    };
  }

  /**
   * Zeroes the prefix-cache counters (`prefixQueries`, `prefixHits`).
   * @example
   * bm.resetStats(); runBenchmark(); console.log(bm.stats().hitRate);
   */
  resetStats(): void {
    this.queries = 0;
    this.hits = 0;
  }

  /**
   * Drops every sequence and the prefix cache, and zeroes the counters: the state of a new manager. O(numBlocks).
   * @example
   * bm.reset(); // e.g. after the KV memory was reallocated
   */
  reset(): void {
    this.seqs.clear();
    this.registry.clear();
    this.blockKey.clear();
    this.ref.fill(0);
    this.fill.fill(0);
    this.freeTop = 0;
    this.untouched = 0;
    this.lruPrev[this.numBlocks] = this.numBlocks;
    this.lruNext[this.numBlocks] = this.numBlocks;
    this.cachedCount = 0;
    this.totalTokens = 0;
    this.filledUsed = 0;
    this.resetStats();
  }

  /**
   * Every block's state, for tests and debugging; O(numBlocks).
   * @example
   * const { refCounts, free, cached } = bm.debugBlocks(); // cached[0] is the next block evicted
   */
  debugBlocks(): BlockDebugState {
    const N = this.numBlocks;
    const free = new Int32Array(this.freeCount());
    let k = 0;
    for (let i = this.freeTop - 1; i >= 0; i--) free[k++] = this.freeStack[i]!;
    for (let b = this.untouched; b < N; b++) free[k++] = b;
    const cached = new Int32Array(this.cachedCount);
    k = 0;
    for (let b = this.lruNext[N]!; b !== N; b = this.lruNext[b]!) cached[k++] = b;
    return { refCounts: this.ref.slice(), free, cached };
  }

  // -------------------------------------------------------------------------------------------------------------

  private freeCount(): number {
    return this.freeTop + (this.numBlocks - this.untouched);
  }

  private live(fn: string, param: string, seqId: unknown): Seq {
    checkSeqId(fn, param, seqId);
    const s = this.seqs.get(seqId as number);
    if (s === undefined) throw rangeError(expected(fn, 'a live sequence id', param, seqId));
    return s;
  }

  private cowNeeded(s: Seq): boolean {
    return s.len % this.blockSize !== 0 && this.ref[s.table[s.table.length - 1]!]! > 1;
  }

  private needToAppend(s: Seq, n: number): number {
    return Math.ceil((s.len + n) / this.blockSize) - s.table.length + (this.cowNeeded(s) ? 1 : 0);
  }

  /** A fresh block with refcount 1: from the free list, else the least recently released cached block. */
  private allocate(): number {
    let b: number;
    if (this.freeTop > 0) b = this.freeStack[--this.freeTop]!;
    else if (this.untouched < this.numBlocks) b = this.untouched++;
    else {
      b = this.lruNext[this.numBlocks]!;
      if (b === this.numBlocks) throw new LlmKernelsError('ERR_INTERNAL', 'BlockManager: allocate() with no available block');
      this.lruRemove(b);
      this.registry.delete(this.blockKey.get(b)!);
      this.blockKey.delete(b);
    }
    this.ref[b] = 1;
    this.fill[b] = 0;
    return b;
  }

  /** One more reference to a prefix-cache hit; a cached block leaves the LRU. */
  private claim(b: number): void {
    if (this.ref[b] === 0) {
      this.lruRemove(b);
      this.filledUsed += this.fill[b]!;
    }
    this.ref[b]!++;
  }

  private release(b: number): void {
    if (--this.ref[b]! > 0) return;
    this.filledUsed -= this.fill[b]!;
    const k = this.blockKey.get(b);
    if (k !== undefined) {
      // An unregistered duplicate takes over the hash if its registered twin was evicted meanwhile.
      let owner = this.registry.get(k);
      if (owner === undefined) this.registry.set(k, (owner = b));
      if (owner === b) {
        this.lruPush(b);
        return;
      }
      this.blockKey.delete(b);
    }
    this.freeStack[this.freeTop++] = b;
  }

  private register(b: number, key: string): void {
    this.blockKey.set(b, key);
    if (!this.registry.has(key)) this.registry.set(key, b);
  }

  private lruPush(b: number): void {
    const S = this.numBlocks;
    const last = this.lruPrev[S]!;
    this.lruNext[last] = b;
    this.lruPrev[b] = last;
    this.lruNext[b] = S;
    this.lruPrev[S] = b;
    this.cachedCount++;
  }

  private lruRemove(b: number): void {
    const p = this.lruPrev[b]!;
    const n = this.lruNext[b]!;
    this.lruNext[p] = n;
    this.lruPrev[n] = p;
    this.cachedCount--;
  }

  /** SHA-256(salt, parent hash, P int32 LE tokens from `start`) as a 32-char latin1 string (a cheap Map key). */
  private hashBlock(parent: string | undefined, tokens: ArrayLike<number>, start: number): string {
    const P = this.blockSize;
    const buf = (this.scratch ??= Buffer.allocUnsafe(4 * P));
    for (let i = 0; i < P; i++) buf.writeInt32LE(tokens[start + i]!, 4 * i);
    const h = createHash('sha256');
    h.update(this.salt);
    if (parent !== undefined) h.update(parent, 'latin1');
    h.update(buf);
    return h.digest('binary'); // 'binary' is latin1: one char per byte
  }
}

function checkSeqId(fn: string, param: string, v: unknown): void {
  if (typeof v !== 'number') throw typeError(expected(fn, 'a sequence id (a non-negative safe integer)', param, v));
  if (!Number.isSafeInteger(v) || v < 0) throw rangeError(expected(fn, 'a sequence id (a non-negative safe integer)', param, v));
}

/** Validates every token before the caller mutates anything; returns an Int32Array copy. */
function checkTokens(fn: string, param: string, v: unknown): Int32Array {
  if (v instanceof Int32Array) return v.slice();
  const len = v !== null && typeof v === 'object' ? (v as { length?: unknown }).length : undefined;
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0)
    throw typeError(expected(fn, 'an array of int32 token ids', param, v));
  const a = v as ArrayLike<unknown>;
  for (let i = 0; i < len; i++) {
    const x = a[i];
    if (typeof x !== 'number') throw typeError(expected(fn, 'an int32 token id', `${param}[${i}]`, x));
    if (!Number.isInteger(x) || x < INT32_MIN || x > INT32_MAX) throw rangeError(expected(fn, 'an int32 token id', `${param}[${i}]`, x));
  }
  return Int32Array.from(a as ArrayLike<number>);
}
