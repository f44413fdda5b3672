// The stream model: ops are enqueued and return a tensor at once; reading waits (data() without blocking the event
// loop, dataSync() blocking); disposal while queued is safe; order is kept. (Thread counts: threads.test.ts, its own
// process.) No timing is asserted: only what is observable regardless of speed.
import { describe, expect, it } from 'vitest';
import { add, device, getThreads, info, matmul, mul, scale, Tensor } from '../../lib/index.js';
import { cudaAvailable, compare, randomData } from '../helpers/check.js';
import { bits, matmulRef } from './api-helpers.js';

const cpu = device('cpu');


describe('enqueue and read', () => {
  it('ops return tensors at once (not promises); data() is a pending promise until the stream ran', async () => {
    const M = 64, N = 96, K = 160;
    using x = Tensor.fromArray(randomData(M * K, 1), { shape: [M, K] });
    using w = Tensor.fromArray(randomData(N * K, 2), { shape: [N, K] });
    const outs: Tensor[] = [];
    for (let i = 0; i < 40; i++) {
      if (i % 2) outs.push(matmul(x, w));
      else {
        using xs = scale(x, 1 + i / 64);
        outs.push(matmul(xs, w));
      }
    }
    for (const y of outs) {
      expect(y).toBeInstanceOf(Tensor);
      expect(y.shape).toEqual([M, N]);
    }
    // The promise settles through the event loop: it cannot be settled within this synchronous stretch.
    const p = outs[outs.length - 1]!.data();
    const marker = {};
    expect(await Promise.race([p, Promise.resolve(marker)])).toBe(marker);
    const want = matmulRef(x.dataSync(), w.dataSync(), M, N, K);
    const r = compare('matmul', 'f32', await p, want, 'last of 40 queued matmuls');
    expect(r.ok, r.message).toBe(true);
    // Every queued output is right (the even ones used a scaled x: y = s·(x·wᵀ) up to rounding).
    for (let i = 0; i < outs.length; i++) {
      const s = i % 2 ? 1 : Math.fround(1 + i / 64);
      const got = await outs[i]!.data();
      const r2 = compare('matmul', 'f32', got, want.map((v) => v * s), `queued matmul ${i}`);
      expect(r2.ok, r2.message).toBe(true);
      outs[i]!.dispose();
    }
  });

  it('await data() and dataSync() agree bit for bit, for every dtype', async () => {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      using a = Tensor.randn([33, 17], { seed: 3, dtype });
      using b = Tensor.randn([17], { seed: 4, dtype });
      using s = add(a, b);
      using y = mul(s, a);
      const async = await y.data();
      const sync = y.dataSync();
      expect(Array.from(async)).toEqual(Array.from(sync));
      expect(new Set(sync).size).toBeGreaterThan(100);
    }
  });

  it('device.synchronize() resolves (to undefined) after queued work, and synchronizeSync() returns', async () => {
    using x = Tensor.randn([128, 128], { seed: 5 });
    const ys = Array.from({ length: 10 }, () => matmul(x, x));
    await expect(cpu.synchronize()).resolves.toBeUndefined();
    ys.push(scale(x, 3));
    expect(cpu.synchronizeSync()).toBeUndefined();
    expect(Array.from(ys[10]!.dataSync())).toEqual(Array.from(x.dataSync(), (v) => Math.fround(3 * v)));
    ys.forEach((y) => y.dispose());
  });

  it('many concurrent data() promises all resolve, each with its own values', async () => {
    const n = 300;
    const ts = Array.from({ length: n }, (_, i) => Tensor.full([i % 7 + 1, 5], i + 0.5));
    const ys = ts.map((t, i) => scale(t, i % 3 === 0 ? -1 : 2));
    const all = await Promise.all(ys.flatMap((y) => [y.data(), y.data()]));
    for (let i = 0; i < n; i++) {
      const want = (i + 0.5) * (i % 3 === 0 ? -1 : 2);
      for (const d of [all[2 * i]!, all[2 * i + 1]!]) {
        expect(d.length).toBe((i % 7 + 1) * 5);
        expect(d.every((v) => v === want), `tensor ${i}`).toBe(true);
      }
    }
    [...ts, ...ys].forEach((t) => t.dispose());
  });

  it('reads of tensors made after a read was requested do not disturb it (interleaved data() and ops)', async () => {
    using a = Tensor.randn([1000], { seed: 6 });
    const pending: Promise<Float32Array>[] = [];
    const outs: Tensor<'f32'>[] = [];
    let cur = a.clone();
    for (let i = 0; i < 50; i++) {
      pending.push(cur.data());
      const next = scale(cur, 0.5);
      cur.dispose(); // disposed right after its read was queued: the read still gets its data
      cur = next;
      outs.push(next);
    }
    const got = await Promise.all(pending);
    const base = a.dataSync();
    for (let i = 0; i < 50; i++) expect(bits(got[i]!)).toEqual(bits(base.map((v) => v * 0.5 ** i)));
    cur.dispose();
  });
});

describe('disposal while queued', () => {
  it('disposing inputs right after enqueueing (before any sync) is safe; the op sees their data', async () => {
    const M = 33, N = 47, K = 129;
    const xd = randomData(M * K, 7);
    const wd = randomData(N * K, 8);
    const ys: Tensor<'f32'>[] = [];
    for (let i = 0; i < 20; i++) {
      const x = Tensor.fromArray(xd, { shape: [M, K] });
      const w = Tensor.fromArray(wd, { shape: [N, K] });
      ys.push(matmul(x, w));
      x.dispose();
      w.dispose();
    }
    // Overwrite the freed memory with other data, so a use-after-free would show.
    const noise = Array.from({ length: 20 }, (_, i) => Tensor.full([M * K + N * K], 1e6 + i));
    const want = matmulRef(xd, wd, M, N, K);
    for (const y of ys) {
      const r = compare('matmul', 'f32', await y.data(), want, 'matmul with disposed inputs');
      expect(r.ok, r.message).toBe(true);
      y.dispose();
    }
    noise.forEach((t) => t.dispose());
  });

  it('disposing the output right after enqueueing is safe; later reads of other tensors are right', async () => {
    using a = Tensor.randn([4096], { seed: 9 });
    using b = Tensor.randn([4096], { seed: 10 });
    for (let i = 0; i < 100; i++) {
      const y = add(a, b);
      y.dispose(); // nobody will read it; the stream still runs the op into memory it holds
      const z = mul(a, b);
      z.dispose();
    }
    using s = add(a, b);
    const da = a.dataSync();
    const db = b.dataSync();
    expect(bits(await s.data())).toEqual(bits(da.map((v, i) => v + db[i]!)));
    await expect(cpu.synchronize()).resolves.toBeUndefined();
  });

  it('a view whose parent is disposed while ops on it are queued', async () => {
    const t = Tensor.randn([8, 64], { seed: 11 });
    const want = t.dataSync().slice(3 * 64, 5 * 64);
    const v = t.slice(3, 5);
    const y = scale(v, 2);
    t.dispose();
    v.dispose();
    expect(bits(await y.data())).toEqual(bits(want.map((x) => 2 * x)));
    y.dispose();
  });

  it('all memory comes back after everything is disposed and the stream ran', async () => {
    await cpu.synchronize();
    const before = info().cpu.liveBytes;
    for (let i = 0; i < 50; i++) {
      const a = Tensor.randn([256], { seed: i });
      const v = a.reshape([16, 16]);
      const b = matmul(v, v);
      a.dispose();
      v.dispose();
      b.dispose();
    }
    await cpu.synchronize();
    expect(info().cpu.liveBytes).toBe(before);
  });
});

describe('order', () => {
  it('a chain of 1000 small dependent ops gives the right result (bit for bit: f32 math, one rounding per op)', async () => {
    const n = 37;
    const x0 = randomData(n, 12);
    const bias = randomData(n, 13);
    // (0.99·x + b)·c with c in [0.95, 1): a contraction, so the values stay finite, normal and not zero.
    const gain = Float32Array.from(randomData(n, 14), (v) => 0.95 + 0.05 * (Math.abs(v) % 1));
    using b = Tensor.fromArray(bias);
    using c = Tensor.fromArray(gain);
    let x = Tensor.fromArray(x0);
    const want = x0.slice();
    const alpha = 0.99;
    const fa = Math.fround(alpha);
    for (let i = 0; i < 1000; i++) {
      const next = i % 3 === 0 ? scale(x, alpha) : i % 3 === 1 ? add(x, b) : mul(x, c);
      x.dispose();
      x = next;
      for (let j = 0; j < n; j++) want[j] = i % 3 === 0 ? Math.fround(fa * want[j]!) : i % 3 === 1 ? Math.fround(want[j]! + bias[j]!) : Math.fround(want[j]! * gain[j]!);
    }
    const got = await x.data();
    x.dispose();
    expect(want.every((v) => v !== 0 && Number.isFinite(v) && Math.abs(v) > 1e-30)).toBe(true);
    expect(bits(got)).toEqual(bits(want));
  });

  it('a chain that alternates reads and ops sees each step in order', async () => {
    let x = Tensor.full([3], 1);
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      const next = scale(x, 2);
      x.dispose();
      x = next;
      if (i % 4 === 3) seen.push((await x.data())[0]!);
    }
    x.dispose();
    expect(seen).toEqual([16, 256, 4096, 65536, 1048576]);
  });
});

describe('info()', () => {
  it('has the documented fields', () => {
    const i = info();
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(['cpu', 'cuda:0']).toContain(i.auto.device);
    expect(typeof i.auto.reason).toBe('string');
    expect(i.auto.reason.length).toBeGreaterThan(0);
    expect(typeof i.build.cuda).toBe('boolean');
    expect(typeof i.build.compiler).toBe('string');
    expect(typeof i.build.cudaArchs).toBe('string');
    expect(['avx512', 'avx2', 'scalar']).toContain(i.cpu.simd);
    expect(typeof i.cpu.simdDetected).toBe('string');
    expect(i.cpu.threads).toBe(getThreads());
    expect(i.cpu.hardwareThreads).toBeGreaterThanOrEqual(1);
    expect(i.cpu.liveBytes).toBeGreaterThanOrEqual(0);
    expect(i.cuda.compiled).toBe(i.build.cuda);
    expect(Array.isArray(i.cuda.devices)).toBe(true);
  });

  it.skipIf(cudaAvailable)('without CUDA: cuda.available is false, cuda.reason says why, auto picks the cpu', () => {
    const i = info();
    expect(i.cuda.available).toBe(false);
    expect(i.cuda.devices).toEqual([]);
    expect(i.cuda.reason).toMatch(/cudaError\w+|no CUDA backend|no CUDA device/);
    expect(i.auto.device).toBe('cpu');
    expect(i.auto.reason).toContain(i.cuda.reason);
  });

  it.skipIf(!cudaAvailable)('with CUDA: devices are listed with their facts and auto picks cuda:0', () => {
    const i = info();
    expect(i.cuda.available).toBe(true);
    expect(i.cuda.devices.length).toBeGreaterThan(0);
    const d = i.cuda.devices[0]!;
    expect(d.index).toBe(0);
    expect(d.name.length).toBeGreaterThan(0);
    expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
    expect(d.totalMemory).toBeGreaterThan(0);
    expect(i.auto.device).toBe('cuda:0');
    expect(i.auto.reason).toContain(d.name);
  });
});

describe.skipIf(!cudaAvailable)('the CUDA stream', () => {
  it('to(cuda) and back, an op chain on the GPU, disposal while queued, concurrent reads', async () => {
    const g = device('cuda');
    using x = Tensor.randn([300, 64], { seed: 20 });
    using w = Tensor.randn([50, 64], { seed: 21 });
    using gx = x.to(g);
    using gw = w.to(g);
    const outs = Array.from({ length: 20 }, () => matmul(gx, gw));
    const want = matmulRef(x.dataSync(), w.dataSync(), 300, 50, 64);
    const reads = await Promise.all(outs.map((y) => y.data()));
    for (const r of reads) {
      const c = compare('matmul', 'f32', r, want, 'cuda matmul');
      expect(c.ok, c.message).toBe(true);
    }
    outs.forEach((y) => y.dispose());
    let y = gx.clone();
    for (let i = 0; i < 50; i++) {
      const next = scale(y, 0.5);
      y.dispose();
      y = next;
    }
    using back = y.to('cpu');
    y.dispose();
    expect(bits(await back.data())).toEqual(bits(x.dataSync().map((v) => v * 0.5 ** 50)));
    await expect(g.synchronize()).resolves.toBeUndefined();
  });
});
