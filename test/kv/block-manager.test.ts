// BlockManager (paged KV cache block allocation, copy-on-write, prefix cache): (1) hand-written cases pin block ids,
// slots, copies, hashes, LRU order and the ERR_KV_FULL results; (2) every bad argument throws the right class, code
// and message and changes nothing; (3) a randomized model check runs a plain shadow model (arrays and maps, O(n)
// scans) side by side with the manager for 10^5+ operations and, after each, checks the invariants and a simulated
// KV memory: reading each sequence's table must give back exactly its tokens.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LlmKernelsError } from '../../lib/errors.js';
import { BlockManager, kvFullError, type AllocOk, type AllocResult, type KvFull } from '../../lib/kv/block-manager.js';
import { Rng } from '../../lib/random.js';
import { describe as show } from '../../lib/validate.js';

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
const arr = (a: Int32Array): number[] => Array.from(a);

function ok(r: AllocResult): AllocOk {
  if (!r.ok) expect.fail(`expected ok, got ERR_KV_FULL (needed ${r.needed}, available ${r.available})`);
  return r;
}

function full(r: AllocResult): KvFull {
  if (r.ok) expect.fail('expected ERR_KV_FULL, got ok');
  return r;
}

/** Everything observable about a manager, to prove an operation changed nothing. */
function snapshot(bm: BlockManager): unknown {
  const d = bm.debugBlocks();
  return {
    stats: bm.stats(),
    available: bm.available,
    refCounts: arr(d.refCounts),
    free: arr(d.free),
    cached: arr(d.cached),
    seqs: bm.sequences().map((id) => [id, bm.length(id), arr(bm.blockTable(id)), bm.blockHashes(id)]),
  };
}

/** The documented hash: SHA-256(salt, parent hash, P int32 LE token ids), written here from the definition. */
function sha(salt: Uint8Array, parentHex: string | null, toks: number[]): string {
  const h = createHash('sha256');
  h.update(salt);
  if (parentHex !== null) h.update(Buffer.from(parentHex, 'hex'));
  const b = Buffer.alloc(4 * toks.length);
  toks.forEach((t, i) => b.writeInt32LE(t, 4 * i));
  h.update(b);
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
describe('hand cases', () => {
  for (const L of [1, 15, 16, 17])
    it(`a single sequence, P=16, length ${L}: blocks from 0, slots 0..${L - 1}, then append at slot ${L}`, () => {
      const bm = new BlockManager({ numBlocks: 8, blockSize: 16 });
      const r = ok(bm.addSequence(0, range(100, 100 + L)));
      const nb = Math.ceil(L / 16);
      expect(r.cachedTokens).toBe(0);
      expect(arr(r.slots)).toEqual(range(0, L));
      expect(arr(r.copies)).toEqual([]);
      expect(arr(bm.blockTable(0))).toEqual(range(0, nb));
      expect(bm.length(0)).toBe(L);
      expect(bm.sequences()).toEqual([0]);
      const s = bm.stats();
      expect(s).toMatchObject({ numBlocks: 8, blockSize: 16, used: nb, free: 8 - nb, cached: 0, sequences: 1, tokens: L });
      expect(s.wastedSlots).toBe(nb * 16 - L);
      expect(s.fragmentation).toBeCloseTo((nb * 16 - L) / (nb * 16), 12);
      expect(bm.blocksNeededToAppend(0, 1)).toBe(L % 16 === 0 ? 1 : 0);
      const a = ok(bm.append(0, [7]));
      expect(arr(a.slots)).toEqual([L]);
      expect(arr(a.copies)).toEqual([]);
      expect(a.cachedTokens).toBe(0);
      expect(bm.length(0)).toBe(L + 1);
      expect(arr(bm.blockTable(0))).toEqual(range(0, Math.ceil((L + 1) / 16)));
      // A second sequence starts at the next block.
      const r2 = ok(bm.addSequence(5, [1, 2, 3]));
      const next = Math.ceil((L + 1) / 16);
      expect(arr(r2.slots)).toEqual([next * 16, next * 16 + 1, next * 16 + 2]);
      expect(bm.stats().tokens).toBe(L + 4);
    });

  it('an empty prompt holds no block; its first append allocates one', () => {
    const bm = new BlockManager({ numBlocks: 2, blockSize: 8 });
    const r = ok(bm.addSequence(3, []));
    expect([r.cachedTokens, arr(r.slots), arr(bm.blockTable(3)), bm.length(3)]).toEqual([0, [], [], 0]);
    expect(bm.stats().used).toBe(0);
    expect(arr(ok(bm.append(3, [9, 9])).slots)).toEqual([0, 1]);
    expect(arr(ok(bm.append(3, [])).slots)).toEqual([]);
    expect(bm.blocksNeededToAppend(3, 0)).toBe(0);
  });

  it('fork then append on both: the first appender gets a copy-on-write of the shared partial block, the second writes in place', () => {
    const bm = new BlockManager({ numBlocks: 8, blockSize: 16 });
    ok(bm.addSequence(1, range(0, 20))); // blocks [0, 1], block 1 holds 4 tokens
    bm.fork(1, 2);
    expect(arr(bm.blockTable(2))).toEqual([0, 1]);
    expect(bm.length(2)).toBe(20);
    expect(arr(bm.debugBlocks().refCounts.subarray(0, 3))).toEqual([2, 2, 0]);
    // Shared blocks count once: 2 blocks used, 12 slots empty, whatever the number of holders.
    expect(bm.stats()).toMatchObject({ used: 2, sequences: 2, tokens: 40, wastedSlots: 12 });
    expect(bm.blocksNeededToAppend(2, 1)).toBe(1);
    expect(bm.blocksNeededToAppend(2, 13)).toBe(2);

    const c = ok(bm.append(2, [7]));
    expect(arr(c.copies)).toEqual([1, 2]);
    expect(arr(c.slots)).toEqual([2 * 16 + 4]);
    expect(arr(bm.blockTable(2))).toEqual([0, 2]);
    expect(arr(bm.blockTable(1))).toEqual([0, 1]);
    expect(arr(bm.debugBlocks().refCounts.subarray(0, 3))).toEqual([2, 1, 1]);

    expect(bm.blocksNeededToAppend(1, 1)).toBe(0);
    const p = ok(bm.append(1, [8]));
    expect(arr(p.copies)).toEqual([]);
    expect(arr(p.slots)).toEqual([1 * 16 + 4]);
    expect(bm.stats()).toMatchObject({ used: 3, tokens: 42, wastedSlots: 3 * 16 - (16 + 5 + 5) });

    // The parent leaves; the child keeps its blocks, the parent's tail block is freed.
    bm.free(1);
    expect(arr(bm.blockTable(2))).toEqual([0, 2]);
    expect(arr(bm.debugBlocks().refCounts.subarray(0, 3))).toEqual([1, 0, 1]);
    expect(bm.stats()).toMatchObject({ used: 2, free: 6, cached: 0, tokens: 21 });
  });

  it('fork at a full-block boundary: no copy, each appender gets a new block', () => {
    const bm = new BlockManager({ numBlocks: 8, blockSize: 16 });
    ok(bm.addSequence(1, range(0, 32)));
    bm.fork(1, 2);
    expect(bm.blocksNeededToAppend(2, 1)).toBe(1);
    const c = ok(bm.append(2, [5]));
    expect([arr(c.copies), arr(c.slots), arr(bm.blockTable(2))]).toEqual([[], [32], [0, 1, 2]]);
    const p = ok(bm.append(1, [6]));
    expect([arr(p.copies), arr(p.slots), arr(bm.blockTable(1))]).toEqual([[], [48], [0, 1, 3]]);
    expect(arr(bm.debugBlocks().refCounts.subarray(0, 4))).toEqual([2, 2, 1, 1]);
  });

  it('prefix hit: a second 40-token prompt (P=16) shares the 2 full blocks, cachedTokens 32', () => {
    const rng = new Rng(42);
    const prompt = Array.from({ length: 40 }, () => rng.int(0, 50_000));
    const bm = new BlockManager({ numBlocks: 8, blockSize: 16 });
    const a = ok(bm.addSequence(1, prompt));
    expect([a.cachedTokens, arr(a.slots), arr(bm.blockTable(1))]).toEqual([0, range(0, 40), [0, 1, 2]]);
    const b = ok(bm.addSequence(2, prompt));
    expect(b.cachedTokens).toBe(32);
    expect(arr(b.slots)).toEqual(range(48, 56));
    expect(arr(b.copies)).toEqual([]);
    expect(arr(bm.blockTable(2))).toEqual([0, 1, 3]);
    expect(arr(bm.debugBlocks().refCounts.subarray(0, 4))).toEqual([2, 2, 1, 1]);
    expect(bm.blockHashes(2)).toEqual(bm.blockHashes(1));
    expect(bm.stats()).toMatchObject({ used: 4, prefixQueries: 80, prefixHits: 32, hitRate: 0.4 });
    // A prompt that shares only the first 20 tokens hits the first block only.
    const c = ok(bm.addSequence(3, [...prompt.slice(0, 20), 1, 2, 3]));
    expect([c.cachedTokens, arr(bm.blockTable(3))]).toEqual([16, [0, 4]]);
    expect(arr(c.slots)).toEqual(range(64, 71));
    // Hits are by chained hash: the second block's tokens after a different first block do not hit.
    const d = ok(bm.addSequence(4, [...range(0, 16), ...prompt.slice(16, 40)]));
    expect(d.cachedTokens).toBe(0);
    bm.resetStats();
    expect(bm.stats()).toMatchObject({ prefixQueries: 0, prefixHits: 0, hitRate: 0 });
  });

  it('a fully cached 32-token prompt (P=16) gets cachedTokens 16: the block of the last token is always computed', () => {
    const bm = new BlockManager({ numBlocks: 8, blockSize: 16 });
    const prompt = range(1000, 1032);
    ok(bm.addSequence(1, prompt)); // [0, 1]
    const b = ok(bm.addSequence(2, prompt));
    expect([b.cachedTokens, arr(b.slots), arr(bm.blockTable(2))]).toEqual([16, range(32, 48), [0, 2]]);
    // Block 2 has block 1's hash; block 1 keeps the registry entry, so block 2 is freed, not cached.
    bm.free(1);
    bm.free(2);
    const d = bm.debugBlocks();
    expect(arr(d.cached)).toEqual([1, 0]);
    expect(arr(d.free).slice(0, 2)).toEqual([2, 3]);
    expect(bm.stats()).toMatchObject({ used: 0, cached: 2, free: 6 });
    // A one-token prompt never hits (nothing before its last token).
    expect(ok(bm.addSequence(3, [1000])).cachedTokens).toBe(0);
    // Hashes of a 16-token prompt exist even though it cannot hit itself.
    expect(ok(bm.addSequence(4, range(1000, 1016))).cachedTokens).toBe(0);
    expect(bm.blockHashes(4)).toEqual(bm.blockHashes(4).slice(0, 1));
  });

  it('block hashes are SHA-256(salt, parent hash, P int32 LE token ids); the salt changes every hash, so no hit crosses salts', () => {
    const toks = [1, 2, 3, 4, -1, 2147483647, -2147483648, 0, 9];
    const salted = new BlockManager({ numBlocks: 4, blockSize: 4, hashSalt: 'tenant-a' });
    ok(salted.addSequence(1, toks));
    const saltBytes = Buffer.from('tenant-a', 'utf8');
    const h0 = sha(saltBytes, null, toks.slice(0, 4));
    const h1 = sha(saltBytes, h0, toks.slice(4, 8));
    expect(salted.blockHashes(1)).toEqual([h0, h1]);
    // The same bytes as a Uint8Array give the same hashes; copied, so changing the caller's buffer changes nothing.
    const bytes = new Uint8Array(saltBytes);
    const same = new BlockManager({ numBlocks: 4, blockSize: 4, hashSalt: bytes });
    bytes.fill(0);
    ok(same.addSequence(1, toks));
    expect(same.blockHashes(1)).toEqual([h0, h1]);
    // No salt and another salt: different hashes for the same tokens, so a hash-keyed cache never hits across them.
    const plain = new BlockManager({ numBlocks: 4, blockSize: 4 });
    ok(plain.addSequence(1, toks));
    expect(plain.blockHashes(1)).toEqual([sha(new Uint8Array(0), null, toks.slice(0, 4)), sha(new Uint8Array(0), sha(new Uint8Array(0), null, toks.slice(0, 4)), toks.slice(4, 8))]);
    const other = new BlockManager({ numBlocks: 4, blockSize: 4, hashSalt: 'tenant-b' });
    ok(other.addSequence(1, toks));
    const all = [...salted.blockHashes(1), ...plain.blockHashes(1), ...other.blockHashes(1)];
    expect(new Set(all).size).toBe(6);
    // Within a manager the salt is constant: the same prompt hits.
    expect(ok(salted.addSequence(2, toks)).cachedTokens).toBe(8);
  });

  it('prefix caching off: no hits, no hashes, released blocks go to the free list', () => {
    const bm = new BlockManager({ numBlocks: 8, blockSize: 4, prefixCaching: false });
    ok(bm.addSequence(1, range(0, 9)));
    const b = ok(bm.addSequence(2, range(0, 9)));
    expect([b.cachedTokens, arr(bm.blockTable(2))]).toEqual([0, [3, 4, 5]]);
    expect(bm.blockHashes(1)).toEqual([]);
    bm.free(1);
    bm.free(2);
    expect(bm.stats()).toMatchObject({ used: 0, cached: 0, free: 8, prefixQueries: 0, prefixHits: 0 });
    expect(arr(bm.debugBlocks().free).slice(0, 6)).toEqual([3, 4, 5, 0, 1, 2]);
  });

  it('eviction takes the least recently released cached block; a hit refreshes a block; ERR_KV_FULL changes nothing', () => {
    const bm = new BlockManager({ numBlocks: 4, blockSize: 4 });
    const a = range(1, 9);
    const b = range(11, 19);
    ok(bm.addSequence(1, a)); // [0, 1]
    ok(bm.addSequence(2, b)); // [2, 3]
    bm.free(1); // tail first: 1, then 0
    bm.free(2);
    expect(arr(bm.debugBlocks().cached)).toEqual([1, 0, 3, 2]);
    expect(bm.stats()).toMatchObject({ used: 0, free: 0, cached: 4 });
    expect(bm.available).toBe(4);

    // No free block: a new prompt evicts block 1 (a's tail), the least recently released.
    ok(bm.addSequence(3, [21, 22, 23, 24]));
    expect(arr(bm.blockTable(3))).toEqual([1]);
    expect(arr(bm.debugBlocks().cached)).toEqual([0, 3, 2]);
    // a again: its first block (0) is still cached and hits; its second was evicted; the fresh block evicts 3.
    const r4 = ok(bm.addSequence(4, a));
    expect([r4.cachedTokens, arr(r4.slots), arr(bm.blockTable(4))]).toEqual([4, range(12, 16), [0, 3]]);
    expect(arr(bm.debugBlocks().cached)).toEqual([2]);

    // b + 1 token: block 2 hits (a cached block, taken from the pool), b's second block is gone: 2 fresh + 1 = 3 > 1.
    const before = snapshot(bm);
    const f = full(bm.addSequence(5, [...b, 19]));
    expect(f).toEqual({ ok: false, code: 'ERR_KV_FULL', needed: 3, available: 1 });
    expect(snapshot(bm)).toEqual(before);
    expect(bm.canAllocate(4)).toBe(true);
    expect(bm.canAllocate(5)).toBe(false);

    // Released later, blocks 3 and 0 (used again by sequence 4) are now more recent than block 2.
    bm.free(4);
    bm.free(3);
    expect(arr(bm.debugBlocks().cached)).toEqual([2, 3, 0, 1]);
    const r6 = ok(bm.addSequence(6, a));
    expect([r6.cachedTokens, arr(bm.blockTable(6))]).toEqual([4, [0, 2]]);
    expect(arr(bm.debugBlocks().cached)).toEqual([3, 1]);

    // append of 9 tokens needs 3 blocks, 2 available.
    const before2 = snapshot(bm);
    const g = full(bm.append(6, range(50, 59)));
    expect(g).toEqual({ ok: false, code: 'ERR_KV_FULL', needed: 3, available: 2 });
    expect(snapshot(bm)).toEqual(before2);
    expect(bm.blocksNeededToAppend(6, 9)).toBe(3);
    const e = kvFullError('append', g);
    expect(e).toBeInstanceOf(LlmKernelsError);
    expect(e.code).toBe('ERR_KV_FULL');
    expect(e.message).toBe('append: expected 3 free KV blocks, got 2 (free finished sequences or preempt one)');
    expect(kvFullError('addSequence', { needed: 1, available: 0 }).message).toBe(
      'addSequence: expected 1 free KV block, got 0 (free finished sequences or preempt one)',
    );
  });

  it('ERR_KV_FULL for a copy-on-write that has no block leaves tables, refcounts and stats unchanged', () => {
    const bm = new BlockManager({ numBlocks: 2, blockSize: 4 });
    ok(bm.addSequence(1, [1, 2, 3, 4, 5])); // [0, 1]
    bm.fork(1, 2);
    expect(bm.blocksNeededToAppend(2, 1)).toBe(1);
    const before = snapshot(bm);
    expect(full(bm.append(2, [6]))).toEqual({ ok: false, code: 'ERR_KV_FULL', needed: 1, available: 0 });
    expect(full(bm.addSequence(3, [1]))).toEqual({ ok: false, code: 'ERR_KV_FULL', needed: 1, available: 0 });
    expect(snapshot(bm)).toEqual(before);
    // Freeing the parent makes the child the only holder: it writes in place.
    bm.free(1);
    const r = ok(bm.append(2, [6]));
    expect([arr(r.copies), arr(r.slots)]).toEqual([[], [5]]);
  });

  it('freeing twice throws RangeError and releases nothing twice; ids can be reused after free', () => {
    const bm = new BlockManager({ numBlocks: 4, blockSize: 4 });
    ok(bm.addSequence(1, range(0, 6)));
    bm.fork(1, 2);
    bm.free(1);
    const before = snapshot(bm);
    expect(() => bm.free(1)).toThrow(RangeError);
    expect(() => bm.free(1)).toThrow('free: expected a live sequence id for seqId, got 1');
    expect(snapshot(bm)).toEqual(before);
    expect(arr(bm.debugBlocks().refCounts.subarray(0, 2))).toEqual([1, 1]);
    expect(bm.sequences()).toEqual([2]);
    ok(bm.addSequence(1, [5]));
    expect(bm.sequences()).toEqual([2, 1]);
  });

  it('reset() gives the state of a new manager', () => {
    const bm = new BlockManager({ numBlocks: 6, blockSize: 2 });
    ok(bm.addSequence(1, range(0, 5)));
    bm.fork(1, 2);
    ok(bm.append(2, [1]));
    bm.free(1);
    bm.reset();
    expect(snapshot(bm)).toEqual(snapshot(new BlockManager({ numBlocks: 6, blockSize: 2 })));
    expect(ok(bm.addSequence(1, range(0, 5))).cachedTokens).toBe(0);
    expect(arr(bm.blockTable(1))).toEqual([0, 1, 2]);
  });

  it('tokens of every array-like kind; a bad token in the middle changes nothing', () => {
    const bm = new BlockManager({ numBlocks: 16, blockSize: 4 });
    ok(bm.addSequence(1, Int32Array.of(1, 2, 3)));
    ok(bm.addSequence(2, Uint16Array.of(1, 2, 3)));
    ok(bm.addSequence(3, Buffer.from([1, 2, 3])));
    ok(bm.addSequence(4, { length: 2, 0: 5, 1: 6 }));
    ok(bm.addSequence(5, Float64Array.of(-2147483648, 2147483647)));
    const before = snapshot(bm);
    expect(() => bm.append(1, [4, 5, 6.5])).toThrow(RangeError);
    expect(() => bm.addSequence(9, [4, 5, '6' as unknown as number])).toThrow(TypeError);
    expect(snapshot(bm)).toEqual(before);
  });

  it('valid extremes of the options: blockSize 2^31 - 1 with 1 block, blockSize 2^30 with 1 block', () => {
    expect(new BlockManager({ numBlocks: 1, blockSize: 2 ** 31 - 1 }).stats().numBlocks).toBe(1);
    const bm = new BlockManager({ numBlocks: 1, blockSize: 2 ** 30, prefixCaching: false, hashSalt: undefined });
    expect(arr(ok(bm.addSequence(0, [1])).slots)).toEqual([0]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('errors', () => {
  type Cls = typeof TypeError | typeof RangeError;
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  interface Case {
    name: string;
    f: (bm: BlockManager) => unknown;
    cls: Cls;
    fn: string;
    param: string;
    frag: string;
  }
  const T = TypeError;
  const R = RangeError;
  const make = (o: unknown) => () => new BlockManager(o as { numBlocks: number; blockSize: number });
  const opts = (patch: Record<string, unknown>) => make({ numBlocks: 8, blockSize: 16, ...patch });
  const u = (v: unknown) => v as number;
  const toks = (v: unknown) => v as number[];
  const list: Case[] = [
    ...([undefined, null, 5, 'x', [1], new Int32Array(2)] as unknown[]).map((v) => ({ name: `options ${show(v)}`, f: make(v), cls: T, fn: 'BlockManager', param: 'options', frag: 'an options object' })),
    { name: 'unknown option', f: opts({ prefixCache: false }), cls: R, fn: 'BlockManager', param: 'options', frag: 'got an option "prefixCache"' },
    ...(['8', undefined, null, 8n] as unknown[]).map((v) => ({ name: `numBlocks ${show(v)}`, f: opts({ numBlocks: v }), cls: T, fn: 'BlockManager', param: 'options.numBlocks', frag: 'an integer' })),
    ...[0, -1, 1.5, NaN, Infinity, 134217728].map((v) => ({ name: `numBlocks ${v}`, f: opts({ numBlocks: v }), cls: R, fn: 'BlockManager', param: 'options.numBlocks', frag: 'an integer in [1, 134217727] (numBlocks * blockSize slots must fit in int32)' })),
    { name: 'numBlocks 2 with blockSize 2^30', f: make({ numBlocks: 2, blockSize: 2 ** 30 }), cls: R, fn: 'BlockManager', param: 'options.numBlocks', frag: 'an integer in [1, 1]' },
    ...(['16', undefined, null] as unknown[]).map((v) => ({ name: `blockSize ${show(v)}`, f: opts({ blockSize: v }), cls: T, fn: 'BlockManager', param: 'options.blockSize', frag: 'an integer' })),
    ...[0, -16, 2.5, NaN, 2 ** 31].map((v) => ({ name: `blockSize ${v}`, f: opts({ blockSize: v }), cls: R, fn: 'BlockManager', param: 'options.blockSize', frag: 'an integer in [1, 2147483647]' })),
    ...(['yes', 1, null] as unknown[]).map((v) => ({ name: `prefixCaching ${show(v)}`, f: opts({ prefixCaching: v }), cls: T, fn: 'BlockManager', param: 'options.prefixCaching', frag: 'a boolean or undefined' })),
    ...([5, [1, 2], null, new Uint16Array(2)] as unknown[]).map((v) => ({ name: `hashSalt ${show(v)}`, f: opts({ hashSalt: v }), cls: T, fn: 'BlockManager', param: 'options.hashSalt', frag: 'a string, a Uint8Array or undefined' })),

    ...(['1', null, 1n, undefined] as unknown[]).map((v) => ({ name: `addSequence seqId ${show(v)}`, f: (bm: BlockManager) => bm.addSequence(u(v), [1]), cls: T, fn: 'addSequence', param: 'seqId', frag: 'a sequence id (a non-negative safe integer)' })),
    ...[-1, 1.5, NaN, 2 ** 53].map((v) => ({ name: `addSequence seqId ${v}`, f: (bm: BlockManager) => bm.addSequence(v, [1]), cls: R, fn: 'addSequence', param: 'seqId', frag: 'a sequence id (a non-negative safe integer)' })),
    { name: 'addSequence of a live id', f: (bm) => bm.addSequence(1, [1]), cls: R, fn: 'addSequence', param: 'seqId', frag: 'expected a sequence id not in use for seqId, got 1' },
    ...(['abc', null, undefined, 5, { length: -1 }, { length: 1.5 }, { length: '2' }, new DataView(new ArrayBuffer(4))] as unknown[]).map((v) => ({ name: `addSequence tokens ${show(v)}`, f: (bm: BlockManager) => bm.addSequence(7, toks(v)), cls: T, fn: 'addSequence', param: 'tokens', frag: 'an array of int32 token ids' })),
    ...([[1, '2'], [1, null], [1, 2n], { length: 2, 0: 1 }] as unknown[]).map((v) => ({ name: `addSequence tokens ${JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x))}`, f: (bm: BlockManager) => bm.addSequence(7, toks(v)), cls: T, fn: 'addSequence', param: 'tokens[1]', frag: 'an int32 token id' })),
    { name: 'addSequence tokens BigInt64Array', f: (bm) => bm.addSequence(7, toks(new BigInt64Array(1))), cls: T, fn: 'addSequence', param: 'tokens[0]', frag: 'got 0n' },
    ...[1.5, 2147483648, -2147483649, NaN, Infinity].map((v) => ({ name: `addSequence token ${v}`, f: (bm: BlockManager) => bm.addSequence(7, [0, 1, v]), cls: R, fn: 'addSequence', param: 'tokens[2]', frag: `an int32 token id for tokens[2], got ${v}` })),
    { name: 'addSequence token 0.5 in a Float32Array', f: (bm) => bm.addSequence(7, Float32Array.of(0.5)), cls: R, fn: 'addSequence', param: 'tokens[0]', frag: 'got 0.5' },

    { name: 'append to an unknown id', f: (bm) => bm.append(3, [1]), cls: R, fn: 'append', param: 'seqId', frag: 'expected a live sequence id for seqId, got 3' },
    { name: 'append seqId "1"', f: (bm) => bm.append(u('1'), [1]), cls: T, fn: 'append', param: 'seqId', frag: 'got "1"' },
    { name: 'append tokens 5', f: (bm) => bm.append(1, toks(5)), cls: T, fn: 'append', param: 'tokens', frag: 'an array of int32 token ids' },
    { name: 'append token -1.5', f: (bm) => bm.append(1, [-1.5]), cls: R, fn: 'append', param: 'tokens[0]', frag: 'got -1.5' },

    { name: 'fork of an unknown parent', f: (bm) => bm.fork(9, 10), cls: R, fn: 'fork', param: 'parentId', frag: 'a live sequence id' },
    { name: 'fork parentId "1"', f: (bm) => bm.fork(u('1'), 10), cls: T, fn: 'fork', param: 'parentId', frag: 'a sequence id' },
    { name: 'fork to a live child', f: (bm) => bm.fork(1, 2), cls: R, fn: 'fork', param: 'childId', frag: 'a sequence id not in use' },
    { name: 'fork to itself', f: (bm) => bm.fork(1, 1), cls: R, fn: 'fork', param: 'childId', frag: 'a sequence id not in use' },
    { name: 'fork childId -1', f: (bm) => bm.fork(1, -1), cls: R, fn: 'fork', param: 'childId', frag: 'a sequence id (a non-negative safe integer)' },
    { name: 'fork childId null', f: (bm) => bm.fork(1, u(null)), cls: T, fn: 'fork', param: 'childId', frag: 'got null' },

    { name: 'free of an unknown id', f: (bm) => bm.free(99), cls: R, fn: 'free', param: 'seqId', frag: 'a live sequence id' },
    { name: 'free "1"', f: (bm) => bm.free(u('1')), cls: T, fn: 'free', param: 'seqId', frag: 'a sequence id' },
    { name: 'blockTable of an unknown id', f: (bm) => bm.blockTable(99), cls: R, fn: 'blockTable', param: 'seqId', frag: 'a live sequence id' },
    { name: 'blockHashes of an unknown id', f: (bm) => bm.blockHashes(99), cls: R, fn: 'blockHashes', param: 'seqId', frag: 'a live sequence id' },
    { name: 'length of an unknown id', f: (bm) => bm.length(99), cls: R, fn: 'length', param: 'seqId', frag: 'a live sequence id' },
    { name: 'length(-0.5)', f: (bm) => bm.length(-0.5), cls: R, fn: 'length', param: 'seqId', frag: 'a sequence id' },
    { name: 'canAllocate(-1)', f: (bm) => bm.canAllocate(-1), cls: R, fn: 'canAllocate', param: 'nTokens', frag: 'an integer in [0,' },
    { name: 'canAllocate(1.5)', f: (bm) => bm.canAllocate(1.5), cls: R, fn: 'canAllocate', param: 'nTokens', frag: 'an integer in [0,' },
    { name: 'canAllocate("3")', f: (bm) => bm.canAllocate(u('3')), cls: T, fn: 'canAllocate', param: 'nTokens', frag: 'an integer' },
    { name: 'blocksNeededToAppend(1, -1)', f: (bm) => bm.blocksNeededToAppend(1, -1), cls: R, fn: 'blocksNeededToAppend', param: 'n', frag: 'an integer in [0,' },
    { name: 'blocksNeededToAppend(1, "1")', f: (bm) => bm.blocksNeededToAppend(1, u('1')), cls: T, fn: 'blocksNeededToAppend', param: 'n', frag: 'an integer' },
    { name: 'blocksNeededToAppend(99, 1)', f: (bm) => bm.blocksNeededToAppend(99, 1), cls: R, fn: 'blocksNeededToAppend', param: 'seqId', frag: 'a live sequence id' },
    { name: 'kvFullError(5, r)', f: () => kvFullError(u(5) as unknown as string, { needed: 1, available: 0 }), cls: T, fn: 'kvFullError', param: 'fn', frag: 'a string' },
    { name: 'kvFullError("x", null)', f: () => kvFullError('x', null as unknown as KvFull), cls: T, fn: 'kvFullError', param: 'r', frag: 'a { needed, available } object' },
    { name: 'kvFullError("x", { needed: "a" })', f: () => kvFullError('x', { needed: u('a'), available: 1 }), cls: T, fn: 'kvFullError', param: 'r.needed', frag: 'an integer' },
    { name: 'kvFullError("x", { available: -1 })', f: () => kvFullError('x', { needed: 1, available: -1 }), cls: R, fn: 'kvFullError', param: 'r.available', frag: 'an integer in [0,' },
  ];

  for (const c of list)
    it(`${c.fn}: ${c.name} -> ${c.cls.name}`, () => {
      // A manager with sequences 1 (6 tokens) and 2 (its fork), so that every call has live state to leave alone.
      const bm = new BlockManager({ numBlocks: 8, blockSize: 4 });
      ok(bm.addSequence(1, range(0, 6)));
      bm.fork(1, 2);
      const before = snapshot(bm);
      let err: unknown;
      try {
        c.f(bm);
      } catch (e) {
        err = e;
      }
      const e = err as Error & { code?: string };
      const seen = `${e?.constructor?.name} ${e?.code}: ${e?.message}`;
      expect(e, seen).toBeInstanceOf(c.cls);
      expect(e, seen).not.toBeInstanceOf(LlmKernelsError);
      expect(e.code, seen).toBe(c.cls === TypeError ? 'ERR_INVALID_ARG_TYPE' : 'ERR_OUT_OF_RANGE');
      expect(e.message, seen).toMatch(new RegExp(`^${esc(c.fn)}: expected .+ for ${esc(c.param)}, got .+$`, 's'));
      expect(e.message, seen).toContain(c.frag);
      expect(snapshot(bm)).toEqual(before);
    });
});

// ---------------------------------------------------------------------------------------------------------------
// The shadow model: the same policy written the plain way. Block ids are its own (it never needs to agree on which
// id is handed out); the check compares the sharing structure through a bijection of ids, and every counter.

interface ModelSeq {
  table: number[];
  tokens: number[];
}
type Outcome = { ok: true; cachedTokens: number; cow: boolean } | { ok: false; needed: number; available: number };

class Model {
  readonly ref: number[];
  /** Chain key of each full block that is used or cached; null otherwise. */
  readonly key: (string | null)[];
  readonly releasedAt: number[];
  readonly registry = new Map<string, number>();
  readonly free: number[];
  readonly seqs = new Map<number, ModelSeq>();
  private readonly keyIds = new Map<string, number>();
  private clock = 0;
  queries = 0;
  hits = 0;
  evictions = 0;

  constructor(
    readonly N: number,
    readonly P: number,
    readonly caching: boolean,
  ) {
    this.ref = new Array<number>(N).fill(0);
    this.key = new Array<string | null>(N).fill(null);
    this.releasedAt = new Array<number>(N).fill(-1);
    this.free = range(0, N);
  }

  /** The key of a full block: its tokens after the key of the block before (interned, so keys stay short). */
  chainKey(parent: string | null, toks: number[]): string {
    const s = `${parent ?? '-'}|${toks.join(',')}`;
    let id = this.keyIds.get(s);
    if (id === undefined) this.keyIds.set(s, (id = this.keyIds.size));
    return `k${id}`;
  }

  isCached(b: number): boolean {
    return this.ref[b] === 0 && this.key[b] !== null && this.registry.get(this.key[b]!) === b;
  }

  cachedBlocks(): number[] {
    return range(0, this.N).filter((b) => this.isCached(b));
  }

  available(): number {
    return this.free.length + this.cachedBlocks().length;
  }

  private take(): number {
    let b: number;
    if (this.free.length > 0) b = this.free.pop()!;
    else {
      const c = this.cachedBlocks();
      b = c.reduce((x, y) => (this.releasedAt[y]! < this.releasedAt[x]! ? y : x));
      this.registry.delete(this.key[b]!);
      this.key[b] = null;
      this.evictions++;
    }
    this.ref[b] = 1;
    return b;
  }

  private release(b: number): void {
    if (--this.ref[b]! > 0) return;
    const k = this.key[b]!;
    if (k !== null && (!this.registry.has(k) || this.registry.get(k) === b)) {
      this.registry.set(k, b);
      this.releasedAt[b] = this.clock++;
      return;
    }
    this.key[b] = null;
    this.free.push(b);
  }

  private fullBlock(s: ModelSeq, i: number): void {
    if (!this.caching) return;
    const parent = i > 0 ? this.key[s.table[i - 1]!]! : null;
    const k = this.chainKey(parent, s.tokens.slice(i * this.P, (i + 1) * this.P));
    this.key[s.table[i]!] = k;
    if (!this.registry.has(k)) this.registry.set(k, s.table[i]!);
  }

  add(id: number, tokens: number[]): Outcome {
    const { P } = this;
    const len = tokens.length;
    const hit: number[] = [];
    if (this.caching && len > 0) {
      let parent: string | null = null;
      for (let i = 0; i < Math.floor((len - 1) / P); i++) {
        const k = this.chainKey(parent, tokens.slice(i * P, (i + 1) * P));
        const b = this.registry.get(k);
        if (b === undefined) break;
        hit.push(b);
        parent = k;
      }
    }
    const needed = Math.ceil(len / P) - hit.length + hit.filter((b) => this.ref[b] === 0).length;
    const available = this.available();
    if (needed > available) return { ok: false, needed, available };
    for (const b of hit) this.ref[b]!++;
    const s: ModelSeq = { table: [...hit], tokens: [...tokens] };
    while (s.table.length < Math.ceil(len / P)) s.table.push(this.take());
    for (let i = hit.length; i < Math.floor(len / P); i++) this.fullBlock(s, i);
    this.seqs.set(id, s);
    if (this.caching) {
      this.queries += len;
      this.hits += hit.length * P;
    }
    return { ok: true, cachedTokens: hit.length * P, cow: false };
  }

  append(id: number, toks: number[]): Outcome {
    const { P } = this;
    const s = this.seqs.get(id)!;
    const L = s.tokens.length;
    if (toks.length === 0) return { ok: true, cachedTokens: 0, cow: false };
    const cow = L % P !== 0 && this.ref[s.table[s.table.length - 1]!]! > 1;
    const needed = Math.ceil((L + toks.length) / P) - s.table.length + (cow ? 1 : 0);
    const available = this.available();
    if (needed > available) return { ok: false, needed, available };
    if (cow) {
      this.ref[s.table.pop()!]!--;
      s.table.push(this.take());
    }
    for (const t of toks) {
      const pos = s.tokens.length;
      s.tokens.push(t);
      if (pos % P === 0) s.table.push(this.take());
      if (pos % P === P - 1) this.fullBlock(s, Math.floor(pos / P));
    }
    return { ok: true, cachedTokens: 0, cow };
  }

  fork(parent: number, child: number): void {
    const p = this.seqs.get(parent)!;
    for (const b of p.table) this.ref[b]!++;
    this.seqs.set(child, { table: [...p.table], tokens: [...p.tokens] });
  }

  freeSeq(id: number): void {
    const s = this.seqs.get(id)!;
    this.seqs.delete(id);
    for (let i = s.table.length - 1; i >= 0; i--) this.release(s.table[i]!);
  }

  /** wastedSlots from scratch: for each used block, P minus the tokens the fullest holder keeps in it. */
  wasted(): number {
    const fill = new Map<number, number>();
    for (const s of this.seqs.values())
      s.table.forEach((b, i) => fill.set(b, Math.max(fill.get(b) ?? 0, Math.min(this.P, s.tokens.length - i * this.P))));
    let w = 0;
    for (const f of fill.values()) w += this.P - f;
    return w;
  }
}

interface Config {
  P: number;
  N: number;
  caching: boolean;
  salt?: string;
  ops: number;
  seed: number;
}

function modelCheck(cfg: Config): void {
  const { P, N } = cfg;
  const rng = new Rng(cfg.seed);
  const bm = new BlockManager({ numBlocks: N, blockSize: P, prefixCaching: cfg.caching, ...(cfg.salt !== undefined ? { hashSalt: cfg.salt } : {}) });
  const model = new Model(N, P, cfg.caching);
  const mem = new Int32Array(N * P).fill(-1);
  const tok = () => rng.int(0, 99_999);
  // Shared prefixes, so that prompts hit; one repeats a single token, so that only the hash chain tells its blocks apart.
  const plen = Math.max(4 * P + 3, 12);
  const prefixes = [Array.from({ length: plen }, () => 7), ...Array.from({ length: 5 }, () => Array.from({ length: plen }, tok))];
  const maxSeqs = 16;
  const maxLen = Math.max(10 * P, 48);
  const counts = { fails: 0, cows: 0, hitTokens: 0, ops: 0, errors: 0 };

  const fail = (msg: string): never => expect.fail(`${JSON.stringify(cfg)} op ${counts.ops}: ${msg}`);

  function check(): void {
    const d = bm.debugBlocks();
    const refs = new Int32Array(N);
    const m2r = new Map<number, number>();
    const r2m = new Map<number, number>();
    const ids = [...model.seqs.keys()];
    const realIds = bm.sequences();
    if (realIds.length !== ids.length || !ids.every((id) => realIds.includes(id))) fail(`sequences ${realIds} vs model ${ids}`);
    let tokens = 0;
    for (const [id, s] of model.seqs) {
      const table = bm.blockTable(id);
      const len = s.tokens.length;
      tokens += len;
      if (bm.length(id) !== len) fail(`seq ${id}: length ${bm.length(id)}, model ${len}`);
      if (table.length !== Math.ceil(len / P)) fail(`seq ${id}: ${table.length} blocks for ${len} tokens`);
      for (let i = 0; i < table.length; i++) {
        const r = table[i]!;
        const m = s.table[i]!;
        if (r < 0 || r >= N) fail(`seq ${id}: block ${r} out of range`);
        refs[r]!++;
        // The same sharing structure: model block m and real block r always pair up.
        if ((m2r.get(m) ?? r) !== r || (r2m.get(r) ?? m) !== m) fail(`seq ${id} block ${i}: real ${r} / model ${m} pair inconsistently`);
        m2r.set(m, r);
        r2m.set(r, m);
      }
      // The data: each token is where the table says.
      for (let t = 0; t < len; t++) {
        const v = mem[table[Math.floor(t / P)]! * P + (t % P)];
        if (v !== s.tokens[t]) fail(`seq ${id}: token ${t} reads ${v}, expected ${s.tokens[t]}`);
      }
    }
    for (let b = 0; b < N; b++) if (d.refCounts[b] !== refs[b]) fail(`block ${b}: refcount ${d.refCounts[b]}, ${refs[b]} table entries`);
    const seen = new Uint8Array(N);
    for (const b of d.free) {
      if (refs[b] !== 0) fail(`free block ${b} is in a table`);
      if (seen[b]++) fail(`block ${b} listed twice`);
    }
    for (const b of d.cached) {
      if (refs[b] !== 0) fail(`cached block ${b} is in a table`);
      if (seen[b]++) fail(`block ${b} listed twice`);
    }
    const st = bm.stats();
    const used = refs.reduce((a, r) => a + (r > 0 ? 1 : 0), 0);
    if (st.used !== used || st.free !== d.free.length || st.cached !== d.cached.length || used + st.free + st.cached !== N)
      fail(`stats used ${st.used} free ${st.free} cached ${st.cached}: ${used} blocks referenced, ${d.free.length} free, ${d.cached.length} cached, N ${N}`);
    const want = {
      used,
      free: model.free.length,
      cached: model.cachedBlocks().length,
      sequences: ids.length,
      tokens,
      prefixQueries: model.queries,
      prefixHits: model.hits,
      wastedSlots: model.wasted(),
    };
    for (const [k, v] of Object.entries(want)) if (st[k as keyof typeof want] !== v) fail(`stats.${k} ${st[k as keyof typeof want]}, model ${v}`);
    if (bm.available !== want.free + want.cached) fail(`available ${bm.available}`);
  }

  /** Compares the outcome, applies copies and writes to the simulated memory, checks slots. */
  function apply(id: number, r: AllocResult, m: Outcome, written: number[], before: unknown, firstPos: number): boolean {
    if (r.ok !== m.ok) fail(`seq ${id}: ok ${r.ok}, model ${m.ok} (${JSON.stringify(m)})`);
    if (!r.ok || !m.ok) {
      const mm = m as { needed: number; available: number };
      if (r.ok || r.needed !== mm.needed || r.available !== mm.available || r.code !== 'ERR_KV_FULL')
        fail(`seq ${id}: ${JSON.stringify(r)}, model ${JSON.stringify(m)}`);
      counts.fails++;
      expect(snapshot(bm)).toEqual(before);
      return false;
    }
    if (r.cachedTokens !== m.cachedTokens) fail(`seq ${id}: cachedTokens ${r.cachedTokens}, model ${m.cachedTokens}`);
    if (r.copies.length !== (m.cow ? 2 : 0)) fail(`seq ${id}: copies ${r.copies}, model cow ${m.cow}`);
    if (r.slots.length !== written.length) fail(`seq ${id}: ${r.slots.length} slots for ${written.length} tokens`);
    counts.hitTokens += r.cachedTokens;
    const d = bm.debugBlocks();
    const table = bm.blockTable(id);
    for (let i = 0; i < r.copies.length; i += 2) {
      const [src, dst] = [r.copies[i]!, r.copies[i + 1]!];
      if (d.refCounts[dst] !== 1 || table[Math.floor((firstPos - 1) / P)] !== dst) fail(`copy ${src} -> ${dst} is not to the block that replaced the partial one`);
      mem.copyWithin(dst * P, src * P, src * P + P);
      counts.cows++;
    }
    for (let i = 0; i < written.length; i++) {
      const pos = firstPos + i;
      const slot = r.slots[i]!;
      if (slot !== table[Math.floor(pos / P)]! * P + (pos % P)) fail(`seq ${id}: slot ${slot} for token ${pos}, table ${table}`);
      // Never a write into a block someone else holds.
      if (d.refCounts[Math.floor(slot / P)] !== 1) fail(`seq ${id}: slot ${slot} is in a shared block`);
      mem[slot] = written[i]!;
    }
    return true;
  }

  /** What a scheduler does on ERR_KV_FULL half of the time: preempt (free) a sequence. */
  function preempt(): void {
    const live = [...model.seqs.keys()];
    if (live.length === 0 || rng.uniform() < 0.5) return;
    const id = live[rng.int(0, live.length - 1)]!;
    bm.free(id);
    model.freeSeq(id);
  }

  for (counts.ops = 0; counts.ops < cfg.ops; counts.ops++) {
    const live = [...model.seqs.keys()];
    const x = rng.uniform();
    const pick = () => live[rng.int(0, live.length - 1)]!;
    const newId = () => {
      let id: number;
      do id = rng.int(0, 99);
      while (model.seqs.has(id));
      return id;
    };
    if (live.length === 0 || (x < 0.25 && live.length < maxSeqs)) {
      const id = newId();
      const prompt: number[] = [];
      if (rng.uniform() > 0.05) {
        const p = prefixes[rng.int(0, prefixes.length - 1)]!;
        prompt.push(...p.slice(0, rng.int(0, p.length)));
        for (let n = rng.int(0, 2 * P + 1); n > 0; n--) prompt.push(tok());
      }
      const before = snapshot(bm);
      const r = bm.addSequence(id, prompt);
      const m = model.add(id, prompt);
      if (!apply(id, r, m, r.ok ? prompt.slice(r.cachedTokens) : [], before, r.ok ? r.cachedTokens : 0)) preempt();
    } else if (x < 0.8) {
      const id = pick();
      if (model.seqs.get(id)!.tokens.length >= maxLen) {
        bm.free(id);
        model.freeSeq(id);
      } else {
        const n = rng.uniform() < 0.3 ? 1 : rng.int(0, 40);
        const toks = Array.from({ length: n }, tok);
        const L = bm.length(id);
        const before = snapshot(bm);
        const r = bm.append(id, toks);
        if (!apply(id, r, model.append(id, toks), toks, before, L)) preempt();
      }
    } else if (x < 0.85 && live.length < maxSeqs) {
      const parent = pick();
      const child = newId();
      bm.fork(parent, child);
      model.fork(parent, child);
    } else if (x < 0.99) {
      const id = pick();
      bm.free(id);
      model.freeSeq(id);
    } else {
      // A bad call must throw and change nothing.
      const before = snapshot(bm);
      const y = rng.int(0, 3);
      const dead = newId();
      const id = pick();
      const f =
        y === 0 ? () => bm.free(dead) : y === 1 ? () => bm.addSequence(id, [1]) : y === 2 ? () => bm.append(id, [1, 2, 0.5]) : () => bm.fork(dead, id);
      expect(f).toThrow(y === 2 ? 'append: expected an int32 token id for tokens[2], got 0.5' : RangeError);
      expect(snapshot(bm)).toEqual(before);
      counts.errors++;
    }
    check();
  }

  for (const id of bm.sequences()) {
    bm.free(id);
    model.freeSeq(id);
  }
  check();
  const st = bm.stats();
  expect(st.used).toBe(0);
  expect(st.free + st.cached).toBe(N);
  expect(st.tokens).toBe(0);
  // The run exercised what it is meant to: KV_FULL, copy-on-write, eviction, prefix hits.
  expect(counts.fails, 'ERR_KV_FULL results').toBeGreaterThan(200);
  if (P > 1) expect(counts.cows, 'copy-on-write copies').toBeGreaterThan(200);
  expect(counts.errors, 'bad calls').toBeGreaterThan(50);
  if (cfg.caching) {
    expect(model.evictions, 'evictions').toBeGreaterThan(200);
    expect(counts.hitTokens, 'prefix-hit tokens').toBeGreaterThan(1000);
  }
}

describe('randomized model check', () => {
  const configs: Config[] = [
    { P: 1, N: 64, caching: true, ops: 24_000, seed: 1 },
    { P: 8, N: 64, caching: true, ops: 24_000, seed: 2 },
    { P: 16, N: 64, caching: true, ops: 24_000, seed: 3, salt: 'tenant' },
    { P: 32, N: 64, caching: true, ops: 24_000, seed: 4 },
    { P: 16, N: 64, caching: false, ops: 12_000, seed: 5 },
  ];
  for (const cfg of configs)
    it(`P=${cfg.P}, numBlocks=${cfg.N}, prefixCaching ${cfg.caching}${cfg.salt ? `, salt ${cfg.salt}` : ''}: ${cfg.ops} random operations`, () => modelCheck(cfg));
});

describe('cost', () => {
  /** 20000 operations (prompts with prefix hits, decode steps, frees) on a manager of `numBlocks` blocks; ms. */
  function churn(numBlocks: number): number {
    const bm = new BlockManager({ numBlocks, blockSize: 16 });
    const rng = new Rng(9);
    const prompts = Array.from({ length: 4 }, () => Array.from({ length: 40 }, () => rng.int(0, 50_000)));
    const live: number[] = [];
    const t0 = performance.now();
    for (let op = 0, next = 0; op < 20_000; op++) {
      const x = rng.uniform();
      if (live.length < 24 && x < 0.2) {
        if (bm.addSequence(next, prompts[rng.int(0, 3)]!).ok) live.push(next);
        next++;
      } else if (live.length > 0 && x < 0.9) bm.append(live[rng.int(0, live.length - 1)]!, [rng.int(0, 50_000)]);
      else if (live.length > 0) bm.free(live.splice(rng.int(0, live.length - 1), 1)[0]!);
      bm.stats();
    }
    return performance.now() - t0;
  }

  it('operations do not scan the blocks: 2^20 blocks cost about what 64 do', () => {
    churn(64); // warm up the JIT
    const small = churn(64);
    const big = churn(1 << 20);
    // An O(numBlocks) step would make the big run ~16000x slower; allow noise, not that.
    expect(big, `2^20 blocks: ${big.toFixed(0)} ms, 64 blocks: ${small.toFixed(0)} ms`).toBeLessThan(10 * small + 200);
  });
});
