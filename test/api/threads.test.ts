// setThreads / getThreads and the pool behind them. In a file of its own (its own process under the forks pool):
// resizing the pool is process-wide state, and a resize bug must not hide the results of the stream tests.
import { afterAll, describe, expect, it } from 'vitest';
import { add, getThreads, info, matmul, mul, scale, setThreads, Tensor } from '../../lib/index.js';
import { compare, randomData } from '../helpers/check.js';
import { bits, matmulRef } from './api-helpers.js';

const initialThreads = getThreads();
afterAll(() => setThreads(initialThreads));


describe('threads', () => {
  it('setThreads / getThreads', () => {
    setThreads(1);
    expect(getThreads()).toBe(1);
    setThreads(2);
    expect(getThreads()).toBe(2);
    expect(info().cpu.threads).toBe(2);
    setThreads(initialThreads);
    expect(getThreads()).toBe(initialThreads);
  });

  it('results are the same with 1, 2 and 3 threads: bit-exact for elementwise, within tolerance for matmul', async () => {
    const M = 67, N = 129, K = 257;
    using x = Tensor.fromArray(randomData(M * K, 14), { shape: [M, K] });
    using w = Tensor.fromArray(randomData(N * K, 15), { shape: [N, K] });
    using big = Tensor.randn([70001], { seed: 16 });
    using big2 = Tensor.randn([70001], { seed: 17 });
    const runs: { mm: Float32Array; ew: Float32Array; h: Uint16Array }[] = [];
    for (const t of [1, 2, 3]) {
      setThreads(t); // queued in order: the ops below run with t threads
      using mm = matmul(x, w);
      using s = add(big, big2);
      using p = mul(s, big);
      using ew = scale(p, 0.37);
      using h1 = big.cast('bf16');
      using h2 = big2.cast('bf16');
      using h = add(h1, h2);
      runs.push({ mm: await mm.data(), ew: await ew.data(), h: (await h.data()) as Uint16Array });
    }
    setThreads(initialThreads);
    const want = matmulRef(x.dataSync(), w.dataSync(), M, N, K);
    for (const [i, r] of runs.entries()) {
      const c = compare('matmul', 'f32', r.mm, want, `matmul with ${i + 1} threads`);
      expect(c.ok, c.message).toBe(true);
      const c2 = compare('matmul', 'f32', r.mm, runs[0]!.mm, `matmul ${i + 1} threads vs 1`);
      expect(c2.ok, c2.message).toBe(true);
      expect(bits(r.ew)).toEqual(bits(runs[0]!.ew));
      expect(Array.from(r.h)).toEqual(Array.from(runs[0]!.h));
    }
  });
});

describe('resizing the pool after parallel work', () => {
  // Growing the pool after it ran parallel jobs used to start workers that took a stale job (a null job pointer)
  // and crashed the process (native/common/thread_pool.cc: new workers must start from the current generation).
  it('grow, shrink, grow again: every op right, the process alive', async () => {
    using a = Tensor.randn([100003], { seed: 31 });
    using b = Tensor.randn([100003], { seed: 32 });
    const da = a.dataSync();
    const db = b.dataSync();
    const want = bits(da.map((v, i) => v + db[i]!));
    for (const t of [2, 4, 3, 1, 2, 5, 2]) {
      setThreads(t);
      for (let i = 0; i < 3; i++) {
        using y = add(a, b);
        expect(bits(await y.data()), `${t} threads`).toEqual(want);
      }
    }
    setThreads(initialThreads);
  });
});
