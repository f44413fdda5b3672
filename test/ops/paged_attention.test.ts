// Paged attention and the KV cache writes through the public API, on every backend against the reference backend
// (native/cpu/ref), and the reference itself against an independent TypeScript transcription of the spec that
// walks the block table token by token in double precision. Caches start as NaN everywhere (for i8, whose bytes
// have no NaN, the scales are NaN), so a kernel that reads an unused slot, an unused block or a table entry past a
// sequence's length turns its result into NaN and fails. Blocks are assigned in random order.
import { describe, expect, it } from 'vitest';
import {
  cacheWrite,
  f32ToF8e4m3,
  f8e4m3ToF32,
  kvCopyBlocks,
  LlmKernelsError,
  pagedAttentionDecode,
  pagedAttentionPrefill,
  Tensor,
  type KvCacheTensors,
  type KvDType,
  type PagedAttentionOptions,
} from '../../lib/index.js';
import { f16ToF32, bf16ToF32, type FloatDType } from '../../lib/dtype.js';
import { Rng } from '../../lib/random.js';
import { withReferenceBackend } from '../../lib/tensor.js';
import { BACKENDS, compare, expectThrows, randomData } from '../helpers/check.js';

const KV_TYPES: KvDType[] = ['f32', 'f16', 'bf16', 'i8', 'f8e4m3'];

interface Shape {
  kv: KvDType;
  P: number;
  H: number;
  Hkv: number;
  D: number;
  lens: number[];
  nq?: number[]; // prefill: new tokens per sequence (absent: decode)
  q?: FloatDType;
}

/** A cache holding every sequence's K/V (written by cacheWrite from seeded data) and its block tables. */
function buildCache(s: Shape, seed: number) {
  const rng = new Rng(seed);
  const B = s.lens.length;
  const used = s.lens.reduce((a, L) => a + Math.ceil(L / s.P), 0);
  const numBlocks = used + 3;
  const perm = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = numBlocks - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const maxBlocks = Math.max(1, ...s.lens.map((L) => Math.ceil(L / s.P))) + 1;
  const tables = new Int32Array(B * maxBlocks).fill(-1);
  let next = 0;
  const slots: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < Math.ceil(s.lens[b]! / s.P); j++) tables[b * maxBlocks + j] = perm[next++]!;
    for (let t = 0; t < s.lens[b]!; t++) slots.push(tables[b * maxBlocks + Math.floor(t / s.P)]! * s.P + (t % s.P));
  }
  const n = numBlocks * s.Hkv * 2 * s.P * s.D;
  const quantized = s.kv === 'i8' || s.kv === 'f8e4m3';
  const nanCache = (): Tensor => {
    if (s.kv === 'i8') return Tensor.fromArray(new Int8Array(n).fill(77), { dtype: 'i8', shape: [numBlocks, s.Hkv, 2, s.P, s.D] });
    if (s.kv === 'f8e4m3') return Tensor.fromArray(new Uint8Array(n).fill(0x7f), { dtype: 'f8e4m3', shape: [numBlocks, s.Hkv, 2, s.P, s.D] });
    return Tensor.full([numBlocks, s.Hkv, 2, s.P, s.D], NaN, { dtype: s.kv });
  };
  const kvData = randomData(slots.length * s.Hkv * s.D * 2, seed + 1);
  return { numBlocks, maxBlocks, tables, slots: Int32Array.from(slots), quantized, nanCache, kvData };
}

function makeCache(s: Shape, built: ReturnType<typeof buildCache>): KvCacheTensors {
  const kv = built.nanCache();
  const kvScale = built.quantized ? Tensor.full([built.numBlocks, s.Hkv, 2, s.P], NaN) : Tensor.empty([0]);
  const T = built.slots.length;
  const half = T * s.Hkv * s.D;
  using k = Tensor.fromArray(built.kvData.subarray(0, half), { shape: [T, s.Hkv, s.D] });
  using v = Tensor.fromArray(built.kvData.subarray(half), { shape: [T, s.Hkv, s.D] });
  cacheWrite({ kv, kvScale }, k, v, built.slots);
  return { kv, kvScale };
}

function queryStart(s: Shape): Int32Array {
  const qs = new Int32Array(s.lens.length + 1);
  s.nq!.forEach((n, b) => (qs[b + 1] = qs[b]! + n));
  return qs;
}

function run(s: Shape, cache: KvCacheTensors, built: ReturnType<typeof buildCache>, q: Tensor<FloatDType>, o: PagedAttentionOptions): Tensor {
  const lens = Int32Array.from(s.lens);
  return s.nq
    ? pagedAttentionPrefill(q, cache, built.tables, lens, queryStart(s), o)
    : pagedAttentionDecode(q, cache, built.tables, lens, o);
}

function name(s: Shape, o: PagedAttentionOptions): string {
  const lens = s.lens.map((L, b) => (s.nq ? `${L}:${s.nq[b]}` : `${L}`)).join('/');
  const opts = Object.entries(o)
    .map(([k, v]) => `${k}=${v instanceof Float32Array ? 'slopes' : v}`)
    .join(',');
  return `${s.nq ? 'paged_attention_prefill' : 'paged_attention_decode'}(${s.kv},P=${s.P},H=${s.H},Hkv=${s.Hkv},D=${s.D},L=${lens}${s.q ? `,q=${s.q}` : ''}${opts ? ',' + opts : ''})`;
}

/** Every backend against the reference backend; returns the reference's output as f32 for further checks. */
async function checkAttention(s: Shape, o: PagedAttentionOptions = {}, seed = 1): Promise<{ want: Float32Array; built: ReturnType<typeof buildCache>; qdata: Float32Array }> {
  const built = buildCache(s, seed);
  const T = s.nq ? s.nq.reduce((a, n) => a + n, 0) : s.lens.length;
  const qdata = randomData(T * s.H * s.D, seed + 7);
  const qt = s.q ?? 'f32';
  const label = name(s, o);
  const op = s.nq ? 'paged_attention_prefill' : 'paged_attention_decode';
  let want: Float32Array;
  {
    const cache = withReferenceBackend(() => makeCache(s, built));
    using q32 = Tensor.fromArray(qdata, { shape: [T, s.H, s.D] });
    using q = q32.cast(qt);
    using y = withReferenceBackend(() => run(s, cache, built, q, o));
    want = await y.toFloat32();
    cache.kv.dispose();
    cache.kvScale.dispose();
  }
  const failures: string[] = [];
  for (const b of BACKENDS) {
    const cache = b.use(() => makeCache(s, built));
    try {
      using q32 = Tensor.fromArray(qdata, { shape: [T, s.H, s.D], device: b.device });
      using q = q32.cast(qt);
      using y = b.use(() => run(s, cache, built, q, o));
      const r = compare(op, qt, await y.toFloat32(), want, `${label} on ${b.name}`);
      if (!r.ok) failures.push(r.message);
    } finally {
      cache.kv.dispose();
      cache.kvScale.dispose();
    }
  }
  if (failures.length) throw new Error(failures.join('\n'));
  return { want, built, qdata };
}

// ---- the TypeScript transcription of the spec ----

async function roundTo(dtype: FloatDType, x: Float32Array): Promise<Float32Array> {
  if (dtype === 'f32') return x;
  using t32 = Tensor.fromArray(x);
  using t = t32.cast(dtype);
  return t.toFloat32();
}

/** The cache's stored values as f64 (scale applied), read back from the reference backend's cache. */
type CacheValue = ((blk: number, h: number, which: number, off: number, j: number) => number) & {
  raw: (blk: number, h: number, which: number, off: number, j: number) => number;
  scale: (blk: number, h: number, which: number, off: number) => number;
};

async function cacheValues(s: Shape, cache: KvCacheTensors): Promise<CacheValue> {
  const raw = await cache.kv.data();
  const sc = s.kv === 'i8' || s.kv === 'f8e4m3' ? ((await cache.kvScale.data()) as Float32Array) : null;
  const dec =
    s.kv === 'f32' ? (i: number) => (raw as Float32Array)[i]!
    : s.kv === 'f16' ? (i: number) => f16ToF32((raw as Uint16Array)[i]!)
    : s.kv === 'bf16' ? (i: number) => bf16ToF32((raw as Uint16Array)[i]!)
    : s.kv === 'i8' ? (i: number) => (raw as Int8Array)[i]!
    : (i: number) => f8e4m3ToF32((raw as Uint8Array)[i]!);
  const value: CacheValue = Object.assign((blk: number, h: number, which: number, off: number, j: number) => {
    const row = ((blk * s.Hkv + h) * 2 + which) * s.P + off;
    const v = dec(row * s.D + j);
    return sc ? v * sc[row]! : v;
  }, {
    // The stored value without its scale, and the scale (i8 caches take q . k in integers).
    raw: (blk: number, h: number, which: number, off: number, j: number) => dec((((blk * s.Hkv + h) * 2 + which) * s.P + off) * s.D + j),
    scale: (blk: number, h: number, which: number, off: number) => (sc ? sc[((blk * s.Hkv + h) * 2 + which) * s.P + off]! : 1),
  });
  return value;
}

/** kv_quantize_query (native/common/kv.h): a row of q * scale to int8, s = amax / 127, round half to even, in f32. */
function quantizeQuery(x: Float32Array): { q: number[]; s: number } {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const id = amax > 0 ? Math.fround(127 / amax) : 0;
  const q = Array.from(x, (v) => {
    const y = Math.fround(v * id);
    const f = Math.floor(y);
    const r = y - f > 0.5 || (y - f === 0.5 && f % 2 !== 0) ? f + 1 : f;
    return Math.max(-127, Math.min(127, r)) + 0;
  });
  return { q, s: Math.fround(amax / 127) };
}

/**
 * One query row over an i8 cache (native/common/kv.h's spec: integer q.k, softmax weights rounded to u8 per aligned
 * chunk of 16 positions, integer p.v). Transcribed with JavaScript's arithmetic: no fused multiply-add, so a weight
 * that sits on a rounding tie may land one step away from the native spec's; compared with i8's looser tolerance.
 */
function i8Row(
  s: Shape,
  tables: Int32Array,
  maxBlocks: number,
  b: number,
  kh: number,
  value: CacheValue,
  qq: { q: number[]; s: number },
  o: PagedAttentionOptions,
  h: number,
  t0: number,
  pos: number,
): number[] {
  const blkOf = (t: number) => tables[b * maxBlocks + Math.floor(t / s.P)]!;
  const chunks: { m: number; esum: number; c: number; isum: number[] }[] = [];
  for (let c0 = t0; c0 <= pos; ) {
    const c1 = Math.min(pos + 1, (Math.floor(c0 / 16) + 1) * 16);
    const sc: number[] = [];
    for (let t = c0; t < c1; t++) {
      let dot = 0;
      for (let j = 0; j < s.D; j++) dot += qq.q[j]! * value.raw(blkOf(t), kh, 0, t % s.P, j);
      let v = Math.fround(Math.fround(dot * value.scale(blkOf(t), kh, 0, t % s.P)) * qq.s);
      if (o.softCap) v = Math.fround(o.softCap * Math.fround(Math.tanh(v / o.softCap)));
      if (o.alibiSlopes instanceof Float32Array) v = Math.fround(v + o.alibiSlopes[h]! * (t - pos));
      sc.push(v);
    }
    const m = Math.max(...sc);
    const e = sc.map((x) => Math.fround(Math.exp(x - m)));
    const w = e.map((x, i) => Math.fround(x * value.scale(blkOf(c0 + i), kh, 1, (c0 + i) % s.P)));
    const wmax = Math.max(...w);
    const inv = Math.fround(255 / wmax);
    const u = w.map((x) => {
      const y = Math.fround(x * inv);
      const f = Math.floor(y);
      return Math.min(255, y - f > 0.5 || (y - f === 0.5 && f % 2 !== 0) ? f + 1 : f);
    });
    const isum = new Array<number>(s.D).fill(0);
    for (let t = c0; t < c1; t++) for (let j = 0; j < s.D; j++) isum[j]! += u[t - c0]! * value.raw(blkOf(t), kh, 1, t % s.P, j);
    chunks.push({ m, esum: e.reduce((a, x) => a + x, 0), c: Math.fround(wmax / 255), isum });
    c0 = c1;
  }
  const M = Math.max(...chunks.map((c) => c.m));
  let l = 0;
  const y = new Array<number>(s.D).fill(0);
  for (const c of chunks) {
    const f = Math.exp(c.m - M);
    l += f * c.esum;
    for (let j = 0; j < s.D; j++) y[j]! += f * c.c * c.isum[j]!;
  }
  return y.map((x) => x / l);
}

function referenceAttention(
  s: Shape,
  tables: Int32Array,
  maxBlocks: number,
  value: CacheValue,
  q: Float32Array,
  o: PagedAttentionOptions,
): Float64Array {
  const G = s.H / s.Hkv;
  const scale = o.scale ?? 1 / Math.sqrt(s.D);
  const out: number[] = [];
  let row = 0;
  for (let b = 0; b < s.lens.length; b++) {
    const L = s.lens[b]!;
    const nq = s.nq ? s.nq[b]! : 1;
    for (let i = 0; i < nq; i++, row++) {
      const pos = L - nq + i;
      for (let h = 0; h < s.H; h++) {
        const kh = Math.floor(h / G);
        const t0 = o.slidingWindow ? Math.max(0, pos - o.slidingWindow + 1) : 0;
        const at = (t: number, which: number, j: number) => value(tables[b * maxBlocks + Math.floor(t / s.P)]!, kh, which, t % s.P, j);
        const sc: number[] = [];
        const qrow = q.subarray((row * s.H + h) * s.D, (row * s.H + h + 1) * s.D);
        const qq = s.kv === 'i8' ? quantizeQuery(Float32Array.from(qrow, (x) => Math.fround(x * Math.fround(scale)))) : null;
        if (qq) {
          out.push(...i8Row(s, tables, maxBlocks, b, kh, value, qq, o, h, t0, pos));
          continue;
        }
        for (let t = t0; t <= pos; t++) {
          let st: number;
          if (qq) {
            const blk = tables[b * maxBlocks + Math.floor(t / s.P)]!;
            let dot = 0;
            for (let j = 0; j < s.D; j++) dot += qq.q[j]! * value.raw(blk, kh, 0, t % s.P, j);
            st = qq.s * value.scale(blk, kh, 0, t % s.P) * dot;
          } else {
            let dot = 0;
            for (let j = 0; j < s.D; j++) dot += qrow[j]! * at(t, 0, j);
            st = scale * dot;
          }
          if (o.softCap) st = o.softCap * Math.tanh(st / o.softCap);
          if (o.alibiSlopes instanceof Float32Array) st += o.alibiSlopes[h]! * (t - pos);
          sc.push(st);
        }
        const m = Math.max(...sc);
        const e = sc.map((x) => Math.exp(x - m));
        const l = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < s.D; j++) {
          let acc = 0;
          for (let t = t0; t <= pos; t++) acc += (e[t - t0]! / l) * at(t, 1, j);
          out.push(sc.length ? acc : 0);
        }
      }
    }
  }
  return Float64Array.from(out);
}

async function checkAgainstSpec(s: Shape, o: PagedAttentionOptions = {}, seed = 1): Promise<void> {
  const { want, built, qdata } = await checkAttention(s, o, seed);
  const cache = withReferenceBackend(() => makeCache(s, built));
  try {
    const value = await cacheValues(s, cache);
    const q = await roundTo(s.q ?? 'f32', qdata);
    const spec = referenceAttention(s, built.tables, built.maxBlocks, value, q, o);
    // i8: the transcription's exp and products are not fused like the native spec's, so a weight on a rounding tie
    // may differ by one step (1/255 of its chunk's largest): judged with bf16's row of the table.
    const r = compare(s.nq ? 'paged_attention_prefill' : 'paged_attention_decode', s.kv === 'i8' && !s.q ? 'bf16' : (s.q ?? 'f32'), want, await roundTo(s.q ?? 'f32', Float32Array.from(spec)), `${name(s, o)}: reference vs TS spec`);
    if (!r.ok) throw new Error(r.message);
    // ... but overall it must still be far closer than skipping the weights' rounding would be (nmse ~7e-6 here).
    if (s.kv === 'i8' && !s.q && r.nmse > 1e-8) throw new Error(`${name(s, o)}: reference vs TS spec nmse ${r.nmse}`);
  } finally {
    cache.kv.dispose();
    cache.kvScale.dispose();
  }
}

describe('paged_attention_decode', () => {
  const LENS = [1, 15, 16, 17, 54, 97, 1029];
  const heads: [number, number][] = [
    [4, 4],
    [8, 2],
    [16, 2],
  ];
  let i = 0;
  for (const kv of KV_TYPES)
    for (const P of [1, 8, 16, 32])
      for (const [H, Hkv] of heads) {
        const D = [64, 128, 80, 96][i++ % 4]!;
        const s: Shape = { kv, P, H, Hkv, D, lens: LENS };
        it(name(s, {}), () => checkAttention(s));
      }
  it('matches the TypeScript spec: every KV dtype, GQA 4, odd D', async () => {
    for (const kv of KV_TYPES) await checkAgainstSpec({ kv, P: 8, H: 8, Hkv: 2, D: 24, lens: [1, 17, 40] });
  });
  it('matches the TypeScript spec with soft-cap, window, ALiBi and partitions', async () => {
    const slopes = Float32Array.from({ length: 8 }, (_, h) => 2 ** (-(h + 1)));
    await checkAgainstSpec({ kv: 'f16', P: 16, H: 8, Hkv: 2, D: 32, lens: [3, 70, 300] }, { softCap: 5, scale: 0.4, slidingWindow: 50, alibiSlopes: slopes, partitionSize: 32 });
    await checkAgainstSpec({ kv: 'i8', P: 1, H: 6, Hkv: 1, D: 16, lens: [33, 200] }, { slidingWindow: 7 });
  });
  it('options on every backend: soft-cap, window, ALiBi, partition sizes, q in f16/bf16', async () => {
    const slopes = Float32Array.from({ length: 8 }, (_, h) => 2 ** (-8 * (h + 1) / 8));
    for (const kv of ['f16', 'i8', 'f8e4m3'] as KvDType[]) {
      const base: Shape = { kv, P: 16, H: 8, Hkv: 2, D: 128, lens: [1, 17, 97, 2100] };
      await checkAttention(base, { softCap: 5, scale: 0.5 });
      await checkAttention(base, { slidingWindow: 40 });
      await checkAttention(base, { alibiSlopes: slopes });
      await checkAttention(base, { partitionSize: 64 });
      await checkAttention(base, { partitionSize: 48, slidingWindow: 300, alibiSlopes: slopes, softCap: 30 });
      await checkAttention({ ...base, q: 'f16' });
      await checkAttention({ ...base, q: 'bf16', D: 64 });
    }
  });
  it('an empty context gives zeros, never NaN', async () => {
    const s: Shape = { kv: 'f16', P: 16, H: 4, Hkv: 2, D: 64, lens: [0, 5] };
    await checkAttention(s);
    const built = buildCache(s, 3);
    const cache = makeCache(s, built);
    using q = Tensor.randn([2, 4, 64], { seed: 1 });
    using y = pagedAttentionDecode(q, cache, built.tables, Int32Array.from(s.lens));
    const out = await y.toFloat32();
    expect(Array.from(out.subarray(0, 4 * 64)).every((x) => x === 0)).toBe(true);
    expect(out.every((x) => Number.isFinite(x))).toBe(true);
    cache.kv.dispose();
    cache.kvScale.dispose();
  });
  it('the block tables as i32 tensors (checked by the kernel)', async () => {
    const s: Shape = { kv: 'bf16', P: 8, H: 8, Hkv: 2, D: 64, lens: [9, 30] };
    const built = buildCache(s, 5);
    const cache = makeCache(s, built);
    using q = Tensor.randn([2, 8, 64], { seed: 2 });
    using bt = Tensor.fromArray(built.tables, { dtype: 'i32', shape: [2, built.maxBlocks] });
    using cl = Tensor.fromArray(Int32Array.from(s.lens), { dtype: 'i32' });
    using y1 = pagedAttentionDecode(q, cache, bt, cl);
    using y2 = pagedAttentionDecode(q, cache, built.tables, Int32Array.from(s.lens));
    expect(await y1.toFloat32()).toEqual(await y2.toFloat32());
    // A bad entry in a tensor table is found when the op runs: the output reports it, the process lives on.
    const bad = built.tables.slice();
    bad[0] = 9999;
    using btBad = Tensor.fromArray(bad, { dtype: 'i32', shape: [2, built.maxBlocks] });
    using y3 = pagedAttentionDecode(q, cache, btBad, cl);
    await expect(y3.data()).rejects.toThrow(/block_tables\[0\]\[0\]/);
    cache.kv.dispose();
    cache.kvScale.dispose();
  });
});

describe('paged_attention_prefill', () => {
  let i = 0;
  for (const kv of KV_TYPES)
    for (const P of [1, 8, 16, 32])
      for (const [H, Hkv] of [
        [4, 4],
        [8, 2],
        [16, 2],
      ] as [number, number][]) {
        if ((i++ + P) % 2 === 1 && H !== 8) continue; // half the matrix: every axis still covered
        const s: Shape = { kv, P, H, Hkv, D: [64, 128, 80, 96][i % 4]!, lens: [1, 15, 16, 17, 54, 97, 300], nq: [1, 15, 1, 5, 54, 33, 70] };
        it(name(s, {}), () => checkAttention(s));
      }
  it('matches the TypeScript spec (chunks over history, window, ALiBi, soft-cap)', async () => {
    const slopes = Float32Array.from({ length: 4 }, (_, h) => 2 ** (-(h + 1)));
    for (const kv of KV_TYPES) await checkAgainstSpec({ kv, P: 8, H: 4, Hkv: 2, D: 16, lens: [5, 40, 19], nq: [5, 12, 1] });
    await checkAgainstSpec({ kv: 'f32', P: 16, H: 4, Hkv: 1, D: 24, lens: [60, 33], nq: [20, 33] }, { slidingWindow: 9, alibiSlopes: slopes, softCap: 3 });
  });
  it('options on every backend', async () => {
    const slopes = Float32Array.from({ length: 8 }, (_, h) => 2 ** (-(h + 1)));
    for (const kv of ['f16', 'i8'] as KvDType[]) {
      const base: Shape = { kv, P: 16, H: 8, Hkv: 2, D: 128, lens: [17, 97, 1029], nq: [17, 40, 100] };
      await checkAttention(base, { softCap: 5, scale: 0.5 });
      await checkAttention(base, { slidingWindow: 40 });
      await checkAttention(base, { alibiSlopes: slopes, slidingWindow: 7, softCap: 30 });
      await checkAttention({ ...base, q: 'bf16' });
    }
  });
});

describe('cache_write and kv_copy_blocks', () => {
  /** The quantization rule of native/common/kv.h, transcribed. */
  function quantizeRow(x: Float32Array, kv: KvDType): { q: number[]; s: number } {
    let amax = 0;
    for (const v of x) amax = Math.max(amax, Math.abs(v));
    if (amax === 0) return { q: Array.from(x, () => 0), s: 0 };
    if (kv === 'i8') {
      const inv = Math.fround(127 / amax);
      return {
        q: Array.from(x, (v) => {
          const y = Math.fround(v * inv);
          const r = Math.round(y);
          const even = Math.abs(y - Math.trunc(y)) === 0.5 ? 2 * Math.round(y / 2) : r; // ties to even
          return Math.max(-127, Math.min(127, even)) + 0; // no -0
        }),
        s: Math.fround(amax / 127),
      };
    }
    const inv = Math.fround(448 / amax);
    return { q: Array.from(x, (v) => f32ToF8e4m3(Math.fround(v * inv))), s: Math.fround(amax / 448) };
  }

  for (const kv of KV_TYPES)
    for (const P of [1, 16])
      it(`cache_write(${kv},P=${P},T=33,Hkv=2,D=80) is bit-exact on every backend`, async () => {
        const T = 33;
        const Hkv = 2;
        const D = 80;
        const numBlocks = Math.ceil((2 * T) / P) + 2;
        const slots = Int32Array.from({ length: T }, (_, t) => (t % 5 === 0 ? -1 : (t * 7) % (2 * T))); // distinct: 7 is odd, 2T even
        const k = randomData(T * Hkv * D, 11);
        const v = randomData(T * Hkv * D, 12);
        k.fill(0, 0, D); // an all-zero row: scale 0
        const outs: { raw: Float32Array; scales: Float32Array }[] = [];
        for (const b of [{ name: 'ref', use: <X>(f: () => X) => withReferenceBackend(f) }, ...BACKENDS]) {
          const quant = kv === 'i8' || kv === 'f8e4m3';
          const cache: KvCacheTensors = {
            kv: Tensor.zeros([numBlocks, Hkv, 2, P, D], { dtype: kv }),
            kvScale: quant ? Tensor.zeros([numBlocks, Hkv, 2, P]) : Tensor.empty([0]),
          };
          using kt = Tensor.fromArray(k, { shape: [T, Hkv, D] });
          using vt = Tensor.fromArray(v, { shape: [T, Hkv, D] });
          b.use(() => cacheWrite(cache, kt, vt, slots));
          const bytes = await cache.kv.data();
          outs.push({ raw: Float32Array.from(bytes as ArrayLike<number>), scales: quant ? ((await cache.kvScale.data()) as Float32Array) : new Float32Array(0) });
          if (b.name === 'ref' && quant) {
            // Against the transcription: token 4, head 1, K and V rows.
            const t = 4;
            for (const [which, src] of [[0, k], [1, v]] as const) {
              const row = src.subarray((t * Hkv + 1) * D, (t * Hkv + 2) * D);
              const { q, s } = quantizeRow(row, kv);
              const blk = Math.floor(slots[t]! / P);
              const off = slots[t]! % P;
              const r = ((blk * Hkv + 1) * 2 + which) * P + off;
              expect(Array.from(bytes.subarray(r * D, r * D + D) as ArrayLike<number>)).toEqual(q);
              expect((outs[0]!.scales)[r]).toBe(s);
            }
            // The zero row: token 0 is skipped (slot -1), so check through a direct write instead below.
          }
          cache.kv.dispose();
          cache.kvScale.dispose();
        }
        for (const o of outs.slice(1)) {
          expect(o.raw).toEqual(outs[0]!.raw);
          expect(o.scales).toEqual(outs[0]!.scales);
        }
      });

  it('an all-zero row gets scale 0 and zero bytes; NaN or Inf gives scale NaN', async () => {
    for (const kv of ['i8', 'f8e4m3'] as KvDType[]) {
      const cache: KvCacheTensors = { kv: Tensor.zeros([1, 1, 2, 4, 8], { dtype: kv }), kvScale: Tensor.full([1, 1, 2, 4], 7) };
      const k = new Float32Array(3 * 8);
      k[8] = NaN;
      k[16] = Infinity;
      using kt = Tensor.fromArray(k, { shape: [3, 1, 8] });
      cacheWrite(cache, kt, kt, Int32Array.from([0, 1, 2]));
      const sc = (await cache.kvScale.data()) as Float32Array;
      expect(sc[0]).toBe(0);
      expect(Number.isNaN(sc[1])).toBe(true);
      expect(Number.isNaN(sc[2])).toBe(true);
      expect(sc[3]).toBe(7); // slot 3 untouched
      expect(Array.from((await cache.kv.data()).subarray(0, 8) as ArrayLike<number>)).toEqual(new Array(8).fill(0));
      cache.kv.dispose();
      cache.kvScale.dispose();
    }
  });

  it('f8e4m3 conversions follow the OCP E4M3 rules', () => {
    expect(f32ToF8e4m3(448)).toBe(0x7e);
    expect(f32ToF8e4m3(1e9)).toBe(0x7e);
    expect(f32ToF8e4m3(-Infinity)).toBe(0xfe);
    expect(f32ToF8e4m3(NaN)).toBe(0x7f);
    expect(f32ToF8e4m3(2 ** -9)).toBe(1);
    expect(f32ToF8e4m3(2 ** -10)).toBe(0); // tie to even
    expect(f32ToF8e4m3(3 * 2 ** -10)).toBe(2); // tie to even (1.5 -> 2)
    expect(f32ToF8e4m3(1.0625)).toBe(0x38); // 1 + 1/16: tie between 1 and 1.125 -> 1
    expect(f8e4m3ToF32(0x7e)).toBe(448);
    expect(Number.isNaN(f8e4m3ToF32(0xff))).toBe(true);
    for (let b = 0; b < 256; b++) if ((b & 0x7f) !== 0x7f) expect(f32ToF8e4m3(f8e4m3ToF32(b))).toBe(b === 0x80 ? 0x80 : b);
  });

  it('kv_copy_blocks copies whole blocks on every backend', async () => {
    for (const kv of KV_TYPES)
      for (const b of BACKENDS) {
        const quant = kv === 'i8' || kv === 'f8e4m3';
        const n = 6 * 2 * 2 * 4 * 8;
        const init = Uint8Array.from({ length: n * (kv === 'f32' ? 4 : kv === 'f16' || kv === 'bf16' ? 2 : 1) }, (_, i) => (i * 7) % 120);
        const kvT =
          kv === 'f32' ? Tensor.fromArray(new Float32Array(init.buffer.slice(0)), { shape: [6, 2, 2, 4, 8] })
          : kv === 'f16' || kv === 'bf16' ? Tensor.fromArray(new Uint16Array(init.buffer.slice(0)), { dtype: kv, shape: [6, 2, 2, 4, 8] })
          : kv === 'i8' ? Tensor.fromArray(new Int8Array(init.buffer.slice(0)), { dtype: 'i8', shape: [6, 2, 2, 4, 8] })
          : Tensor.fromArray(new Uint8Array(init.buffer.slice(0)), { dtype: 'f8e4m3', shape: [6, 2, 2, 4, 8] });
        const cache: KvCacheTensors = { kv: kvT, kvScale: quant ? Tensor.fromArray(Float32Array.from({ length: 6 * 16 }, (_, i) => i)).reshape([6, 2, 2, 4]) : Tensor.empty([0]) };
        const before = await cache.kv.toFloat32();
        b.use(() => kvCopyBlocks(cache, Int32Array.from([1, 4, 2, 5])));
        const after = await cache.kv.toFloat32();
        const blk = n / 6;
        for (const [src, dst] of [[1, 4], [2, 5]]) expect(Array.from(after.subarray(dst! * blk, dst! * blk + blk))).toEqual(Array.from(before.subarray(src! * blk, src! * blk + blk)));
        expect(Array.from(after.subarray(0, 4 * blk))).toEqual(Array.from(before.subarray(0, 4 * blk)));
        if (quant) {
          const s = (await cache.kvScale.data()) as Float32Array;
          expect(Array.from(s.subarray(4 * 16, 5 * 16))).toEqual(Array.from({ length: 16 }, (_, i) => 16 + i));
        }
        cache.kv.dispose();
        cache.kvScale.dispose();
      }
  });
});

describe('paged attention: argument errors', () => {
  const cache = (): KvCacheTensors => ({ kv: Tensor.zeros([4, 2, 2, 8, 16], { dtype: 'f16' }), kvScale: Tensor.empty([0]) });
  it('throws typed errors with the house message, before anything runs', () => {
    const c = cache();
    using q = Tensor.randn([2, 4, 16]);
    const tables = Int32Array.from([0, 1, 2, 3]);
    const lens = Int32Array.from([3, 9]);
    expectThrows(() => pagedAttentionDecode(q, c, tables, Int32Array.from([3, 17])), RangeError, 'ERR_OUT_OF_RANGE', /contextLens\[1\]/);
    expectThrows(() => pagedAttentionDecode(q, c, Int32Array.from([0, 1, 9, 3]), lens), RangeError, 'ERR_OUT_OF_RANGE', /blockTables\[1\]\[0\]/);
    expectThrows(() => pagedAttentionDecode(q, c, Int32Array.from([0, 1, 2]), lens), RangeError, 'ERR_OUT_OF_RANGE', /blockTables/);
    expectThrows(() => pagedAttentionDecode(q, c, tables, lens, { slidingWindow: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /slidingWindow/);
    expectThrows(() => pagedAttentionDecode(q, c, tables, lens, { scale: NaN }), RangeError, 'ERR_OUT_OF_RANGE', /scale/);
    expectThrows(() => pagedAttentionDecode(q, c, tables, lens, { softCap: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /softCap/);
    expectThrows(() => pagedAttentionDecode(q, c, tables, lens, { alibiSlopes: new Float32Array(3) }), RangeError, 'ERR_OUT_OF_RANGE', /alibiSlopes/);
    expectThrows(() => pagedAttentionDecode(q, c, [0, 1] as unknown as Int32Array, lens), TypeError, 'ERR_INVALID_ARG_TYPE', /blockTables/);
    using q3 = Tensor.randn([2, 3, 16]);
    expectThrows(() => pagedAttentionDecode(q3, c, tables, lens), RangeError, 'ERR_OUT_OF_RANGE', /multiple of Hkv=2/);
    using qi = Tensor.zeros([2, 4, 16], { dtype: 'i32' });
    expectThrows(() => pagedAttentionDecode(qi as unknown as Tensor<'f32'>, c, tables, lens), TypeError, 'ERR_INVALID_ARG_TYPE', /q.dtype/);
    expectThrows(() => pagedAttentionDecode(q, { kv: c.kv, kvScale: Tensor.zeros([4, 2, 2, 8]) }, tables, lens), RangeError, 'ERR_OUT_OF_RANGE', /kvScale/);
    expectThrows(() => pagedAttentionPrefill(q, c, tables, lens, Int32Array.from([0, 1, 3])), RangeError, 'ERR_OUT_OF_RANGE', /queryStart/);
    expectThrows(() => pagedAttentionPrefill(q, c, tables, Int32Array.from([3, 0]), Int32Array.from([0, 1, 2])), RangeError, 'ERR_OUT_OF_RANGE', /query count/);
    using k = Tensor.randn([2, 2, 16]);
    expectThrows(() => cacheWrite(c, k, k, Int32Array.from([0, 64])), RangeError, 'ERR_OUT_OF_RANGE', /slotMapping\[1\]/);
    expectThrows(() => cacheWrite(c, k, k, Int32Array.from([5, 5])), RangeError, 'ERR_OUT_OF_RANGE', /distinct/);
    expectThrows(() => cacheWrite(c, k, k, Int32Array.from([5])), RangeError, 'ERR_OUT_OF_RANGE', /2 elements/);
    expectThrows(() => kvCopyBlocks(c, Int32Array.from([0, 4])), RangeError, 'ERR_OUT_OF_RANGE', /pairs\[1\]/);
    expectThrows(() => kvCopyBlocks(c, Int32Array.from([0])), RangeError, 'ERR_OUT_OF_RANGE', /even/);
    c.kv.dispose();
    expectThrows(() => pagedAttentionDecode(q, c, tables, lens), LlmKernelsError, 'ERR_DISPOSED');
    c.kvScale.dispose();
  });
});
