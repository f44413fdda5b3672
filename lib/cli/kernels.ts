/**
 * `llm-kernels kernels`: the kernels on this machine, each checked against a float64 reference and timed on the
 * chosen device: f32 matmul, quantized matmul and a paged-attention decode step. Rates are judged against this
 * machine's own probes: the CPU roofline, or on a GPU the device-to-device copy rate measured here.
 */
import { type Device, device, matmul, PagedKvCache, quantize, quantizationError, roofline, Tensor, type KvDType, type QuantFormat } from '../index.js';
import { Rng } from '../random.js';

export async function kernelsDemo(opts: { device: string; size: string }): Promise<void> {
  const dev = device(opts.device as 'auto');
  const n = Number(opts.size);
  if (!Number.isInteger(n) || n < 1 || n > 16384) throw new RangeError(`kernels: expected an integer in [1, 16384] for --size, got ${opts.size}`);
  process.stdout.write(`\nmatmul y = x · wᵀ, f32, M = N = K = ${n}, on ${dev.name}\n`);
  using x = Tensor.randn([n, n], { seed: 1, device: dev });
  using w = Tensor.randn([n, n], { seed: 2, device: dev });
  { using warm = matmul(x, w); await warm.data(); }
  const reps = 5;
  const t0 = performance.now();
  const ys = Array.from({ length: reps }, () => matmul(x, w));
  await dev.synchronize();
  const ms = (performance.now() - t0) / reps;
  const y = ys.pop()!;
  ys.forEach((t) => t.dispose());
  const got = await y.data();
  // float64 reference on a few rows
  const xs = new Rng(1).fillNormal(new Float32Array(n * n));
  const wsd = new Rng(2).fillNormal(new Float32Array(n * n));
  let maxRel = 0;
  for (const r of [0, n >> 1, n - 1])
    for (let c = 0; c < n; c += Math.max(1, n >> 5)) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += xs[r * n + k]! * wsd[c * n + k]!;
      maxRel = Math.max(maxRel, Math.abs(got[r * n + c]! - acc) / (Math.abs(acc) + Math.sqrt(n)));
    }
  y.dispose();
  const gflops = (2 * n * n * n) / (ms * 1e6);
  process.stdout.write(`  ${ms.toFixed(2)} ms per matmul, ${gflops.toFixed(1)} GFLOP/s\n`);
  if (dev.kind === 'cpu') {
    const r = roofline();
    process.stdout.write(`  ${(100 * gflops / r.fmaGflops).toFixed(0)}% of this machine's f32 FMA peak (${r.fmaGflops.toFixed(0)} GFLOP/s, ${r.threads} threads)\n`);
  }
  process.stdout.write(`  max relative error vs float64 reference: ${maxRel.toExponential(2)} ${maxRel < 1e-5 ? '(ok)' : '(TOO LARGE)'}\n`);
  if (maxRel >= 1e-5) process.exitCode = 1;
  const roof = dev.kind === 'cpu' ? { name: 'read probe', gbs: roofline().readGBs } : { name: 'device copy', gbs: await copyGBs(dev) };
  await quantDemo(4096, dev, roof);
  await kvDemo(8, 4096, dev, roof);
}

type Roof = { name: string; gbs: number };

// A GPU's memory roof as measured here: a 256 MiB device-to-device copy (read + write bytes per second), best of 5.
async function copyGBs(dev: Device): Promise<number> {
  using src = Tensor.empty([1 << 26], { device: dev });
  { using warm = src.clone(); await dev.synchronize(); }
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const c = src.clone();
    await dev.synchronize();
    best = Math.min(best, performance.now() - t0);
    c.dispose();
  }
  return (2 * src.nbytes) / (best * 1e6);
}

// A decode step of paged attention: B sequences of L tokens (H = 32, Hkv = 8, D = 128, P = 16, blocks scattered as
// on a server) for each KV dtype; time per step, KV GB/s against the roof, and the error of y against the f32 cache
// holding the same keys and values.
async function kvDemo(B: number, L: number, dev: Device, roof: Roof): Promise<void> {
  const H = 32, Hkv = 8, D = 128, P = 16;
  process.stdout.write(
    `\npaged attention decode on ${dev.name}: B = ${B} sequences x ${L} tokens, H = ${H}, Hkv = ${Hkv}, D = ${D}, P = ${P}; ` +
      `KV read per step and its rate against the ${roof.name} (${roof.gbs.toFixed(1)} GB/s), error vs an f32 cache\n`,
  );
  using k = Tensor.randn([512, Hkv, D], { seed: 4, device: dev });
  using v = Tensor.randn([512, Hkv, D], { seed: 5, device: dev });
  using q = Tensor.randn([B, H, D], { seed: 6, device: dev });
  let ref: Float32Array | null = null;
  for (const dt of ['f32', 'f16', 'i8', 'f8e4m3'] as KvDType[]) {
    using cache = new PagedKvCache({ numLayers: 1, numBlocks: B * Math.ceil(L / P), blockSize: P, numKvHeads: Hkv, headDim: D, dtype: dt, device: dev });
    for (let t = 0; t < L; t += P)  // sequences grow block by block in turn, as on a server
      for (let b = 0; b < B; b++) {
        const r = t === 0 ? cache.addSequence(b, new Int32Array(P).fill(b)) : cache.append(b, new Int32Array(P).fill(t));
        if (!r.ok) throw new Error('kv demo: cache too small');
      }
    for (let b = 0; b < B; b++) {
      const table = cache.manager.blockTable(b);
      for (let t0 = 0; t0 < L; t0 += 512) {
        const slots = Int32Array.from({ length: 512 }, (_, i) => table[Math.floor((t0 + i) / P)]! * P + ((t0 + i) % P));
        cache.write(0, k, v, slots);
      }
    }
    using batch = cache.batch(Array.from({ length: B }, (_, b) => b));
    { using warm = cache.decode(0, q, batch); await warm.data(); }
    const reps = 10;
    const t0 = performance.now();
    const ys = Array.from({ length: reps }, () => cache.decode(0, q, batch));
    await dev.synchronize();
    const ms = (performance.now() - t0) / reps;
    const y = ys.pop()!;
    ys.forEach((t) => t.dispose());
    const got = await y.data();
    y.dispose();
    if (!ref) ref = got as Float32Array;
    const bytes = B * L * Hkv * 2 * (D * (dt === 'f32' ? 4 : dt === 'f16' ? 2 : 1) + (dt === 'i8' || dt === 'f8e4m3' ? 4 : 0));
    const gbs = bytes / (ms * 1e6);
    process.stdout.write(
      `  ${dt.padEnd(7)} ${ms.toFixed(2).padStart(6)} ms, ${(bytes / 2 ** 20).toFixed(0).padStart(4)} MiB of KV, ` +
        `${gbs.toFixed(1).padStart(5)} GB/s = ${(gbs / roof.gbs).toFixed(2)} of the roof, error ${(100 * relRms(got as Float32Array, ref)).toFixed(2)}%\n`,
    );
  }
}

/** rms(a - b) / rms(b) */
function relRms(a: Float32Array, b: Float32Array): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    e += (a[i]! - b[i]!) ** 2;
    s += b[i]! ** 2;
  }
  return Math.sqrt(e / s);
}

// Quantized weights: each format's error, and the decode-shaped product (M = 1) on both paths, against the f32
// product of the same weight. The weight is quantized on the CPU (the spec's bytes) and moved to the device.
async function quantDemo(n: number, dev: Device, roof: Roof): Promise<void> {
  const cpu = device('cpu');
  process.stdout.write(
    `\nquantized weights on ${dev.name}, w [${n}, ${n}]: SNR of the weight; y = x · wᵀ for one row x (a decode step) on each ` +
      `path: time per call (incl. enqueue and wait), GB/s of weights and their share of the ${roof.name} (${roof.gbs.toFixed(1)} GB/s), ` +
      `rms error vs the f32 weight's y\n`,
  );
  using w = Tensor.randn([n, n], { seed: 2, device: cpu });
  using x = Tensor.randn([1, n], { seed: 3, device: dev });
  using wd = w.to(dev);
  using yRef = matmul(x, wd);
  const ref = await yRef.data();
  for (const f of ['q8_0', 'q4_0', 'q4_g128', 'i8_pc'] as QuantFormat[]) {
    using qc = await quantize(w, f);
    const r = await quantizationError(w, qc);
    using q = qc.to(dev);
    const line = [`  ${f.padEnd(8)} ${r.snrDb.toFixed(1).padStart(5)} dB, ${r.bitsPerWeight.toFixed(2)} bits/weight |`];
    for (const path of ['int8', 'dequant'] as const) {
      { using warm = matmul(x, q, { path }); await warm.data(); }
      const reps = 50;
      const t0 = performance.now();
      const ys = Array.from({ length: reps }, () => matmul(x, q, { path }));
      await dev.synchronize();
      const us = ((performance.now() - t0) / reps) * 1e3;
      const y = ys.pop()!;
      ys.forEach((t) => t.dispose());
      const err = relRms(await y.data(), ref);
      y.dispose();
      const gbs = (q.nbytes / us) * 1e-3;
      line.push(` ${path}: ${us.toFixed(0).padStart(4)} us, ${gbs.toFixed(1).padStart(5)} GB/s = ${(gbs / roof.gbs).toFixed(2)}, error ${(100 * err).toFixed(2)}% |`);
    }
    process.stdout.write(line.join('') + '\n');
  }
}

