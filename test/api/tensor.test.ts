// Tensor factories, conversions, views and lifetime, through the public API. Numeric data is seeded random, never
// zeros; dtype conversions are checked bit for bit against the scalar converters of lib/dtype.ts (the same rules as
// native/common/dtype.h) on every CPU backend (the SIMD path and the scalar one).
import { describe, expect, it } from 'vitest';
import {
  add,
  bf16ToF32,
  Device,
  device,
  DTYPES,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  info,
  Tensor,
  type DType,
} from '../../lib/index.js';
import { Rng } from '../../lib/random.js';
import { BACKENDS, randomData } from '../helpers/check.js';
import { bits } from './api-helpers.js';

const cpu = device('cpu');

/** f32 values from random bit patterns (every class: normals, subnormals, Inf, NaN with payloads), plus specials. */
function randomBitsF32(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) u[i] = rng.nextU32();
  const specials = [
    0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0xff812345, 0x00000001,
    0x807fffff, 0x33000000, 0x33000001, 0x337fffff, 0x38800000, 0x387fffff, 0x477fe000, 0x477ff000, 0x477fefff,
    0x3f801000, 0x3f803000, 0x3f800fff, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x3f808000, 0x3f818000, 0x3f80ffff,
  ];
  u.set(specials, 0);
  return new Float32Array(u.buffer);
}

function firstMismatches(got: ArrayLike<number>, want: ArrayLike<number>, input?: ArrayLike<number>): string {
  const out: string[] = [];
  for (let i = 0; i < want.length && out.length < 8; i++)
    if (got[i] !== want[i]) out.push(`[${i}]${input ? ` input 0x${(input[i]! >>> 0).toString(16)}` : ''}: got 0x${got[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`);
  return out.join('\n');
}

async function liveCpuBytes(): Promise<number> {
  await cpu.synchronize(); // memory of finished ops is released before a sync resolves
  return info().cpu.liveBytes;
}

describe('Tensor.fromArray', () => {
  it('from number[]: f32, default shape [n], values rounded to f32', async () => {
    const src = Array.from(randomData(37, 1), (v) => v * 1.0000001);
    using t = Tensor.fromArray(src);
    expect([t.dtype, t.shape, t.device]).toEqual(['f32', [37], cpu]);
    expect(Array.from(await t.data())).toEqual(src.map(Math.fround));
  });

  it('with a shape, and copied at once (later changes to the source do not show)', () => {
    const src = randomData(24, 2);
    const keep = src.slice();
    using t = Tensor.fromArray(src, { shape: [2, 3, 4] });
    src.fill(7);
    expect(t.shape).toEqual([2, 3, 4]);
    expect(bits(t.dataSync())).toEqual(bits(keep));
  });

  it('from a Float32Array: every bit kept (NaN payloads, -0, subnormals)', () => {
    const src = randomBitsF32(4099, 3);
    using t = Tensor.fromArray(src);
    expect(bits(t.dataSync())).toEqual(bits(src));
  });

  it('from a Float32Array view with an offset into a larger buffer', () => {
    const big = randomData(100, 4);
    const sub = big.subarray(13, 13 + 21);
    using t = Tensor.fromArray(sub, { shape: [3, 7] });
    expect(bits(t.dataSync())).toEqual(bits(sub.slice()));
  });

  it('from a Float64Array: rounded to f32', () => {
    const src = Float64Array.from(randomData(50, 5), (v, i) => v + i * 1e-9);
    using t = Tensor.fromArray(src);
    expect(t.dtype).toBe('f32');
    expect(Array.from(t.dataSync())).toEqual(Array.from(src, Math.fround));
  });

  it('from Int8Array, Uint8Array, Int32Array: the integer dtypes, exact', () => {
    const rng = new Rng(6);
    const i8 = Int8Array.from({ length: 300 }, () => rng.int(-128, 127));
    const u8 = Uint8Array.from({ length: 300 }, () => rng.int(0, 255));
    const i32 = Int32Array.from({ length: 300 }, () => rng.int(-(2 ** 31), 2 ** 31 - 1));
    i32.set([-(2 ** 31), 2 ** 31 - 1, 0, -1]);
    i8.set([-128, 127]);
    u8.set([0, 255]);
    for (const [src, dtype] of [[i8, 'i8'], [u8, 'u8'], [i32, 'i32']] as const) {
      using t = Tensor.fromArray(src, { shape: [3, 100] });
      expect(t.dtype).toBe(dtype);
      const got = t.dataSync();
      expect(got.constructor).toBe(src.constructor);
      expect(Array.from(got)).toEqual(Array.from(src));
    }
  });

  it('from number[] with an integer dtype', () => {
    const vals = [-128, 127, 0, -1, 5, 99];
    using t = Tensor.fromArray(vals, { dtype: 'i8', shape: [2, 3] });
    expect(Array.from(t.dataSync())).toEqual(vals);
    using u = Tensor.fromArray([0, 255, 17], { dtype: 'u8' });
    expect(Array.from(u.dataSync())).toEqual([0, 255, 17]);
    using w = Tensor.fromArray([-(2 ** 31), 2 ** 31 - 1], { dtype: 'i32' });
    expect(Array.from(w.dataSync())).toEqual([-(2 ** 31), 2 ** 31 - 1]);
  });

  it('from a Uint16Array with dtype f16 / bf16: the raw bits, kept as is', () => {
    const rng = new Rng(7);
    const raw = Uint16Array.from({ length: 1000 }, () => rng.nextU32() & 0xffff);
    for (const dtype of ['f16', 'bf16'] as const) {
      using t = Tensor.fromArray(raw, { dtype });
      expect(t.dtype).toBe(dtype);
      expect(Array.from(t.dataSync())).toEqual(Array.from(raw));
    }
  });

  for (const b of BACKENDS)
    it(`Float32Array -> f16 / bf16 matches f32ToF16 / f32ToBf16 bit for bit (random bits and specials, ${b.name})`, () => {
      const src = randomBitsF32(20011, 8);
      const input = bits(src);
      for (const [dtype, conv] of [['f16', f32ToF16], ['bf16', f32ToBf16]] as const) {
        using t = b.use(() => Tensor.fromArray(src, { dtype }));
        const got = t.dataSync() as Uint16Array;
        const want = Uint16Array.from(src, (v) => conv(v));
        expect(got.length).toBe(want.length);
        const bad = firstMismatches(got, want, input);
        expect(bad, `${dtype} on ${b.name}:\n${bad}`).toBe('');
      }
    });

  for (const b of BACKENDS)
    it(`number[] -> f16 / bf16 rounds like the scalar converters (ties, overflow, subnormals, ${b.name})`, () => {
      const src = [
        ...Array.from(randomData(500, 9)),
        1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519.99, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-8, -0, 0,
        1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, -3.4e38, 1e39, Infinity, -Infinity, NaN, 0.1, 1 / 3,
      ];
      for (const [dtype, conv] of [['f16', f32ToF16], ['bf16', f32ToBf16]] as const) {
        using t = b.use(() => Tensor.fromArray(src, { dtype }));
        const got = t.dataSync() as Uint16Array;
        const want = src.map((v) => conv(v));
        const bad = firstMismatches(got, want);
        expect(bad, `${dtype} on ${b.name}:\n${bad}`).toBe('');
      }
    });

  for (const b of BACKENDS)
    it(`every f16 and bf16 bit pattern -> f32 matches f16ToF32 / bf16ToF32 (${b.name})`, async () => {
      const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
      for (const [dtype, conv] of [['f16', f16ToF32], ['bf16', bf16ToF32]] as const) {
        using t = Tensor.fromArray(all, { dtype });
        const got = await b.use(() => t.toFloat32());
        const bad: string[] = [];
        for (let i = 0; i < 65536 && bad.length < 8; i++) {
          const want = conv(i);
          if (!(Object.is(got[i], Math.fround(want)) || (Number.isNaN(want) && Number.isNaN(got[i]!)))) bad.push(`0x${i.toString(16)}: got ${got[i]}, want ${want}`);
        }
        expect(bad.join('\n'), `${dtype} on ${b.name}`).toBe('');
      }
    });
});

describe('scalar converters', () => {
  it('known values', () => {
    expect([f32ToF16(1), f32ToF16(-2), f32ToF16(65504), f32ToF16(65520), f32ToF16(2 ** -24), f32ToF16(-0)]).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x8000]);
    expect([f32ToBf16(1), f32ToBf16(-2), f32ToBf16(1 + 2 ** -8), f32ToBf16(1 + 3 * 2 ** -8)]).toEqual([0x3f80, 0xc000, 0x3f80, 0x3f82]);
    expect([f16ToF32(0x3c00), f16ToF32(0xc000), f16ToF32(0x0001), f16ToF32(0x7c00), f16ToF32(0xfc00)]).toEqual([1, -2, 2 ** -24, Infinity, -Infinity]);
    expect([bf16ToF32(0x3f80), bf16ToF32(0x4049), bf16ToF32(0xff80)]).toEqual([1, 3.140625, -Infinity]);
    expect(Number.isNaN(f16ToF32(0x7e00)) && Number.isNaN(bf16ToF32(0x7fc1))).toBe(true);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
  });
});

describe('empty / zeros / full', () => {
  it('empty: shape, dtype, sizes; its memory is allocated', async () => {
    const before = await liveCpuBytes();
    for (const dtype of DTYPES) {
      using t = Tensor.empty([3, 5, 7], { dtype });
      expect([t.dtype, t.shape, t.numel, t.ndim]).toEqual([dtype, [3, 5, 7], 105, 3]);
      expect(t.dataSync().length).toBe(105);
      expect(info().cpu.liveBytes - before).toBe(t.nbytes);
    }
  });

  it('zeros: every element 0, every dtype', () => {
    for (const dtype of DTYPES) {
      using t = Tensor.zeros([4099], { dtype });
      const d = t.dataSync();
      expect(d.length).toBe(4099);
      expect(d.every((v) => v === 0 && !Object.is(v, -0))).toBe(true);
    }
  });

  it('full: the value converted to each dtype', () => {
    const v = -1.2345678;
    const cases: [DType, number, number][] = [
      ['f32', v, Math.fround(v)],
      ['f16', v, f32ToF16(v)],
      ['bf16', v, f32ToBf16(v)],
      ['f16', 70000, 0x7c00],
      ['i8', -128, -128],
      ['u8', 255, 255],
      ['i32', -(2 ** 31), -(2 ** 31)],
      ['i32', 2 ** 31 - 1, 2 ** 31 - 1],
    ];
    for (const [dtype, value, want] of cases) {
      using t = Tensor.full([2, 33], value, { dtype });
      const d = t.dataSync();
      expect(d.length).toBe(66);
      expect(Array.from(new Set(d)), `${dtype} ${value}`).toEqual([want]);
    }
  });

  it('full: NaN and Infinity for float dtypes', async () => {
    using a = Tensor.full([3], NaN);
    using b = Tensor.full([3], -Infinity, { dtype: 'bf16' });
    expect((await a.data()).every(Number.isNaN)).toBe(true);
    expect(Array.from(await b.toFloat32())).toEqual([-Infinity, -Infinity, -Infinity]);
  });

  it('0-d and zero-size tensors', () => {
    using s = Tensor.full([], 3.5);
    expect([s.numel, s.ndim, s.nbytes, Array.from(s.dataSync())]).toEqual([1, 0, 4, [3.5]]);
    using z = Tensor.zeros([4, 0, 3], { dtype: 'bf16' });
    expect([z.numel, z.nbytes, z.dataSync().length]).toEqual([0, 0, 0]);
  });
});

describe('rand / randn', () => {
  it('same seed, same data; another seed, other data; default seed is 0', () => {
    for (const f of [Tensor.rand, Tensor.randn]) {
      using a = f([64, 33], { seed: 1234 });
      using b = f([64, 33], { seed: 1234 });
      using c = f([64, 33], { seed: 1235 });
      using d = f([64, 33]);
      using e = f([64, 33], { seed: 0 });
      const [da, db, dc] = [a.dataSync(), b.dataSync(), c.dataSync()];
      expect(bits(da)).toEqual(bits(db));
      let same = 0;
      for (let i = 0; i < da.length; i++) if (da[i] === dc[i]) same++;
      expect(same).toBeLessThan(5);
      expect(bits(d.dataSync())).toEqual(bits(e.dataSync()));
    }
  });

  it('rand: uniform in [0, 1), not constant, mean about 1/2', () => {
    using t = Tensor.rand([8192], { seed: 3 });
    const d = t.dataSync();
    expect(d.every((v) => v >= 0 && v < 1)).toBe(true);
    const mean = d.reduce((s, v) => s + v, 0) / d.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03);
    expect(new Set(d).size).toBeGreaterThan(8000);
  });

  it('randn: mean about 0, variance about 1, finite', () => {
    using t = Tensor.randn([8192], { seed: 4 });
    const d = t.dataSync();
    expect(d.every(Number.isFinite)).toBe(true);
    const mean = d.reduce((s, v) => s + v, 0) / d.length;
    const variance = d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(variance - 1)).toBeLessThan(0.08);
  });

  it('f16 / bf16: the f32 stream of the same seed, rounded', () => {
    for (const f of [Tensor.rand, Tensor.randn])
      for (const [dtype, conv] of [['f16', f32ToF16], ['bf16', f32ToBf16]] as const) {
        using a = f([500], { seed: 9 });
        using h = f([500], { seed: 9, dtype });
        expect(h.dtype).toBe(dtype);
        expect(Array.from(h.dataSync())).toEqual(Array.from(a.dataSync(), (v) => conv(v)));
      }
  });

  it('shape is kept', () => {
    using t = Tensor.randn([2, 3, 5], { seed: 1 });
    expect([t.shape, t.numel, t.nbytes]).toEqual([[2, 3, 5], 30, 120]);
  });
});

describe('views: reshape, view, slice', () => {
  const rows = (d: Float32Array, cols: number) => Array.from({ length: d.length / cols }, (_, r) => Array.from(d.subarray(r * cols, (r + 1) * cols)));

  it('reshape with -1 infers the dimension; same elements; no copy', async () => {
    using t = Tensor.randn([2, 3, 4], { seed: 5 });
    const before = await liveCpuBytes();
    using a = t.reshape([-1, 4]);
    using b = t.reshape([4, -1]);
    using c = t.view([24]);
    using d = t.reshape([2, -1, 2, 1]);
    using e = t.reshape([-1]);
    expect([a.shape, b.shape, c.shape, d.shape, e.shape]).toEqual([[6, 4], [4, 6], [24], [2, 6, 2, 1], [24]]);
    for (const v of [a, b, c, d, e]) expect(bits(v.dataSync())).toEqual(bits(t.dataSync()));
    expect(await liveCpuBytes()).toBe(before);
  });

  it('reshape of a zero-size tensor and to 0-d', () => {
    using z = Tensor.empty([0, 4]);
    using z2 = z.reshape([2, 0, 7]);
    expect(z2.shape).toEqual([2, 0, 7]);
    using one = Tensor.full([1, 1], 6.5);
    using s = one.reshape([]);
    expect([s.shape, Array.from(s.dataSync())]).toEqual([[], [6.5]]);
  });

  it('slice reads back the right rows, with negative and out-of-range bounds like Array.prototype.slice', async () => {
    const n = 7;
    const cols = 5;
    using t = Tensor.randn([n, cols], { seed: 6 });
    const all = rows(t.dataSync(), cols);
    const before = await liveCpuBytes();
    const bounds: [number, number | undefined][] = [
      [0, undefined], [2, undefined], [2, 5], [-2, undefined], [1, -1], [-100, 100], [-3, -1], [5, 2], [7, 9], [0, 0], [-7, 1],
    ];
    for (const [s, e] of bounds) {
      using v = e === undefined ? t.slice(s) : t.slice(s, e);
      const want = all.slice(s, e);
      expect(v.shape, `slice(${s}, ${e})`).toEqual([want.length, cols]);
      expect(rows(v.dataSync(), cols), `slice(${s}, ${e})`).toEqual(want);
    }
    expect(await liveCpuBytes()).toBe(before); // views share memory
  });

  it('slices of slices and reshapes of slices, 3-d and f16', async () => {
    using t = Tensor.randn([6, 4, 3], { seed: 7, dtype: 'f16' });
    const all = Array.from(t.dataSync());
    using s = t.slice(1, 5); // rows 1..4
    using ss = s.slice(-3, -1); // rows 2..3 of t
    using r = ss.reshape([-1]);
    expect(ss.shape).toEqual([2, 4, 3]);
    expect(Array.from(r.dataSync())).toEqual(all.slice(2 * 12, 4 * 12));
    using r2 = r.reshape([2, 12]);
    using back = r2.slice(1);
    expect(Array.from(await back.data())).toEqual(all.slice(3 * 12, 4 * 12));
  });

  it('a slice is usable by ops (the op reads the view, not the parent)', async () => {
    using t = Tensor.randn([5, 8], { seed: 8 });
    using s = t.slice(2, 4);
    using y = s.clone();
    const d = t.dataSync();
    expect(bits(await y.data())).toEqual(bits(d.slice(16, 32)));
  });

  it('disposing the parent keeps a view alive and readable; the memory goes with the last view', async () => {
    const before = await liveCpuBytes();
    const t = Tensor.randn([4, 16], { seed: 9 });
    const want = t.dataSync().slice(32, 64);
    const v = t.slice(2);
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(v.disposed).toBe(false);
    expect(bits(v.dataSync())).toEqual(bits(want));
    expect(bits(await v.data())).toEqual(bits(want));
    expect((await liveCpuBytes()) - before).toBe(4 * 16 * 4); // the whole parent is kept, not only the view
    v.dispose();
    expect(await liveCpuBytes()).toBe(before);
  });
});

describe('copies: to, cast, clone', () => {
  it("to('cpu') and to(Device) copy: same data, new memory, the unique cpu Device", async () => {
    using t = Tensor.randn([3, 11], { seed: 10 });
    const before = await liveCpuBytes();
    using a = t.to('cpu');
    using b = t.to(device('cpu'));
    using c = t.to(new Device('cpu', 0));
    for (const y of [a, b, c]) {
      expect(y.device).toBe(cpu);
      expect(y.shape).toEqual([3, 11]);
      expect(bits(await y.data())).toEqual(bits(t.dataSync()));
    }
    expect((await liveCpuBytes()) - before).toBe(3 * t.nbytes);
  });

  it("a tensor made with new Device('cpu', 0) works with tensors of device('cpu')", async () => {
    using a = Tensor.randn([4], { seed: 1, device: new Device('cpu', 0) });
    using b = Tensor.fromArray([1, 2, 3, 4], { device: new Device('cpu', 0) });
    expect(a.device).toBe(device('cpu'));
    using c = a.clone();
    using y = add(c, b);
    const da = a.dataSync();
    expect(Array.from(y.dataSync())).toEqual(Array.from(da, (v, i) => Math.fround(v + i + 1)));
  });

  it('cast f32 -> f16/bf16 -> f32 equals the scalar converters composed', async () => {
    const src = randomData(3000, 11, true);
    using t = Tensor.fromArray(src);
    for (const [dtype, to, from] of [['f16', f32ToF16, f16ToF32], ['bf16', f32ToBf16, bf16ToF32]] as const) {
      using h = t.cast(dtype);
      using back = h.cast('f32');
      const got = await back.data();
      for (let i = 0; i < src.length; i++) {
        const want = Math.fround(from(to(src[i]!)));
        if (!(Object.is(got[i], want) || (Number.isNaN(want) && Number.isNaN(got[i]!)))) throw new Error(`${dtype} [${i}] ${src[i]}: got ${got[i]}, want ${want}`);
      }
    }
  });

  it('cast f16/bf16 -> f32 -> back is the identity on every non-NaN pattern; f16 <-> bf16 goes through f32', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const dtype of ['f16', 'bf16'] as const) {
      const conv = dtype === 'f16' ? f16ToF32 : bf16ToF32;
      using t = Tensor.fromArray(all, { dtype });
      using f = t.cast('f32');
      using back = f.cast(dtype);
      const got = back.dataSync();
      for (let i = 0; i < 65536; i++) if (!Number.isNaN(conv(i)) && got[i] !== i) throw new Error(`${dtype} 0x${i.toString(16)} came back as 0x${got[i]!.toString(16)}`);
      using other = t.cast(dtype === 'f16' ? 'bf16' : 'f16');
      const o = other.dataSync();
      const to = dtype === 'f16' ? f32ToBf16 : f32ToF16;
      for (let i = 0; i < 65536; i += 7) if (!Number.isNaN(conv(i)) && o[i] !== to(conv(i))) throw new Error(`${dtype}->other 0x${i.toString(16)}`);
    }
  });

  it('cast from integer dtypes to floats', () => {
    using a = Tensor.fromArray([-128, 127, 0, -3], { dtype: 'i8' });
    using b = Tensor.fromArray([2 ** 31 - 1, -(2 ** 31), 16777217, 3], { dtype: 'i32' });
    using af = a.cast('f32');
    using bf = b.cast('f32');
    using bh = b.cast('bf16');
    expect(Array.from(af.dataSync())).toEqual([-128, 127, 0, -3]);
    expect(Array.from(bf.dataSync())).toEqual([2 ** 31, -(2 ** 31), 16777216, 3]);
    expect(Array.from(bh.dataSync())).toEqual([2 ** 31 - 1, -(2 ** 31), 16777217, 3].map((v) => f32ToBf16(Math.fround(v))));
  });

  it('clone: same data and dtype, its own memory; a clone of a view holds the view', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      using t = Tensor.randn([6, 5], { seed: 12, dtype });
      const before = await liveCpuBytes();
      using c = t.clone();
      expect([c.dtype, c.shape]).toEqual([dtype, [6, 5]]);
      expect(Array.from(c.dataSync())).toEqual(Array.from(t.dataSync()));
      expect((await liveCpuBytes()) - before).toBe(t.nbytes);
      using last = t.slice(-2);
      using vc = last.clone();
      expect(Array.from(vc.dataSync())).toEqual(Array.from(t.dataSync()).slice(20));
    }
    for (const dtype of ['i8', 'u8', 'i32'] as const) {
      using t = Tensor.fromArray([1, 2, 3, 100, 5, 6], { dtype, shape: [3, 2] });
      using c = t.clone();
      expect(Array.from(c.dataSync())).toEqual([1, 2, 3, 100, 5, 6]);
    }
  });
});

describe('reading and describing', () => {
  it('toArray nests by shape (0-d: a number; zero-size: empty rows), f16 read as numbers', async () => {
    using t = Tensor.fromArray([1.5, -2, 3, 4.25, 5, -6], { shape: [2, 3] });
    expect(await t.toArray()).toEqual([[1.5, -2, 3], [4.25, 5, -6]]);
    using t3 = t.reshape([3, 1, 2]);
    expect(await t3.toArray()).toEqual([[[1.5, -2]], [[3, 4.25]], [[5, -6]]]);
    using h = t.cast('f16');
    expect(await h.toArray()).toEqual([[1.5, -2, 3], [4.25, 5, -6]]);
    using s = Tensor.full([], -7.25);
    expect(await s.toArray()).toBe(-7.25);
    using z = Tensor.empty([2, 0]);
    expect(await z.toArray()).toEqual([[], []]);
  });

  it('data() and dataSync() give fresh copies (changing one does not change the tensor)', async () => {
    using t = Tensor.randn([16], { seed: 13 });
    const a = t.dataSync();
    const keep = a.slice();
    a.fill(0);
    const b = await t.data();
    expect(bits(b)).toEqual(bits(keep));
    b.fill(1);
    expect(bits(t.dataSync())).toEqual(bits(keep));
  });

  it('data() returns the typed array of the dtype', async () => {
    const want: Record<DType, unknown> = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i8: Int8Array, u8: Uint8Array, i32: Int32Array, f8e4m3: Uint8Array };
    for (const dtype of DTYPES) {
      using t = Tensor.full([3], dtype === 'f8e4m3' ? 0 : 1, { dtype }); // f8e4m3, a storage type, has zeros only
      expect((await t.data()).constructor, dtype).toBe(want[dtype]);
      expect(t.dataSync().constructor, dtype).toBe(want[dtype]);
    }
  });

  it('numel, ndim, nbytes, toString', () => {
    const sizes: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i8: 1, u8: 1, i32: 4, f8e4m3: 1 };
    for (const dtype of DTYPES) {
      using t = Tensor.empty([2, 3, 5], { dtype });
      expect([t.numel, t.ndim, t.nbytes]).toEqual([30, 3, 30 * sizes[dtype]]);
      expect(t.toString()).toBe(`Tensor(${dtype}, [2,3,5], cpu)`);
      expect(String(t)).toBe(t.toString());
    }
    using s = Tensor.empty([]);
    expect([s.numel, s.ndim, s.nbytes, s.toString()]).toEqual([1, 0, 4, 'Tensor(f32, [], cpu)']);
  });

  it('shape is frozen (a copy of what was passed)', () => {
    const shape = [2, 4];
    using t = Tensor.zeros(shape);
    shape[0] = 99;
    expect(t.shape).toEqual([2, 4]);
    expect(Object.isFrozen(t.shape)).toBe(true);
  });
});

describe('lifetime', () => {
  it('`using` disposes at the end of the block, also when the block throws', () => {
    let seen: Tensor | undefined;
    {
      using t = Tensor.randn([4], { seed: 1 });
      seen = t;
      expect(t.disposed).toBe(false);
    }
    expect(seen.disposed).toBe(true);
    let thrown: Tensor | undefined;
    expect(() => {
      using t = Tensor.randn([4], { seed: 2 });
      thrown = t;
      throw new Error('boom');
    }).toThrow('boom');
    expect(thrown!.disposed).toBe(true);
  });

  it('dispose() is idempotent and frees the memory once', async () => {
    const before = await liveCpuBytes();
    const t = Tensor.randn([1000], { seed: 3 });
    const u = Tensor.randn([10], { seed: 4 });
    expect((await liveCpuBytes()) - before).toBe(4040);
    t.dispose();
    t.dispose();
    t[Symbol.dispose]();
    expect((await liveCpuBytes()) - before).toBe(40);
    expect(u.disposed).toBe(false);
    expect(u.dataSync().length).toBe(10);
    u.dispose();
    expect(await liveCpuBytes()).toBe(before);
  });

  it('fromArray with f16 frees its f32 staging tensor', async () => {
    const before = await liveCpuBytes();
    const t = Tensor.fromArray(randomData(1000, 5), { dtype: 'f16' });
    expect((await liveCpuBytes()) - before).toBe(2000);
    t.dispose();
    expect(await liveCpuBytes()).toBe(before);
  });
});
