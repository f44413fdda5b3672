#!/usr/bin/env node
// `npm run bench [-- --json FILE] [--filter S] [--quick] [--no-native]`
//
// 1. The roofline probe of this machine (memory read bandwidth, f32 FMA peak, int8 dot peak).
// 2. The cost of enqueueing a small op from JavaScript (the stream model's promise: about a microsecond per op).
// 3. tinybench entries through the public API: each prints time, GFLOP/s and GB/s, and the fraction of the
//    roofline: max(flops / FMA peak, bytes / read bandwidth) / time, with "bound" naming the larger term.
// 4. lk_bench (native, same machine, same run) for the peer: OpenBLAS sgemm on the same shapes, as ratios.
// Entry names are stable (`matmul_f32 M=1024 N=1024 K=1024 threads=2`); --json writes them all.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lk = await import(join(root, 'dist', 'index.js'));
const { Tensor, matmul, add, scale, getThreads, setThreads, roofline, info, quantizeSync, QuantizedTensor } = lk;

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const jsonPath = opt('--json');
const filter = opt('--filter') ?? '';
const quick = args.includes('--quick');
const threads = getThreads();

const results = { machine: info(), roofline: null, enqueue: null, entries: [], native: null };

// ---- 1. roofline ----
const roof = roofline(threads);
results.roofline = roof;
console.log(
  `roofline (threads=${roof.threads}, ${roof.simd}): read ${roof.readGBs.toFixed(1)} GB/s, ` +
    `fma ${roof.fmaGflops.toFixed(1)} GFLOP/s, int8 ${roof.int8Gops.toFixed(1)} Gop/s`,
);

// ---- 2. enqueue cost ----
{
  const x = Tensor.randn([16], { seed: 1 });
  const n = quick ? 20000 : 200000;
  const batch = 1000;
  let enqueueNs = 0;
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < n; done += batch) {
    const outs = new Array(batch);
    const e0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) outs[i] = scale(x, 1.5);
    enqueueNs += Number(process.hrtime.bigint() - e0);
    for (const o of outs) o.dispose();
  }
  await x.device.synchronize();
  const totalNs = Number(process.hrtime.bigint() - t0);
  x.dispose();
  results.enqueue = { op: 'scale_f32 n=16', enqueueUs: enqueueNs / n / 1e3, throughputUs: totalNs / n / 1e3 };
  console.log(
    `enqueue: scale on a 16-element f32 tensor: ${(enqueueNs / n / 1e3).toFixed(2)} us per op on the JS thread ` +
      `(goal <= 2 us); ${(totalNs / n / 1e3).toFixed(2)} us per op end to end incl. execution and dispose`,
  );
}

// ---- 3. entries ----
// threads: the pool size to run with (default: all); peak: 'fma' (f32 FMA) or 'int8' (the int8 dot probe), the
// compute roof the entry is judged against.
function entry(name, flops, bytes, setup, { threads: t = threads, peak = 'fma' } = {}) {
  if (filter && !name.includes(filter)) return null;
  return { name, flops, bytes, setup, threads: t, peak };
}
const dsize = { f32: 4, f16: 2, bf16: 2 };
const specs = [];
for (const [dt, sizes] of [
  ['f32', quick ? [1024] : [1024, 4096]],
  ['f16', [1024]],
  ['bf16', [1024]],
]) {
  for (const n of sizes) {
    specs.push(
      entry(`matmul_${dt} M=${n} N=${n} K=${n} threads=${threads}`, 2 * n ** 3, 3 * n * n * dsize[dt], () => {
        const x = Tensor.randn([n, n], { seed: 1, dtype: dt });
        const w = Tensor.randn([n, n], { seed: 2, dtype: dt });
        return { run: () => matmul(x, w), free: () => (x.dispose(), w.dispose()) };
      }),
    );
  }
  const K = 4096;
  specs.push(
    entry(`matmul_${dt} M=1 N=${K} K=${K} threads=${threads}`, 2 * K * K, (K * K + 2 * K) * dsize[dt], () => {
      const x = Tensor.randn([1, K], { seed: 1, dtype: dt });
      const w = Tensor.randn([K, K], { seed: 2, dtype: dt });
      return { run: () => matmul(x, w), free: () => (x.dispose(), w.dispose()) };
    }),
  );
}
const N = 16 * 1024 * 1024;
specs.push(
  entry(`add_f32 n=${N} threads=${threads}`, N, 3 * 4 * N, () => {
    const a = Tensor.randn([N], { seed: 1 });
    const b = Tensor.randn([N], { seed: 2 });
    return { run: () => add(a, b), free: () => (a.dispose(), b.dispose()) };
  }),
  entry(`scale_f32 n=${N} threads=${threads}`, N, 2 * 4 * N, () => {
    const a = Tensor.randn([N], { seed: 1 });
    return { run: () => scale(a, 0.5), free: () => a.dispose() };
  }),
  entry(`cast_f32_f16 n=${N} threads=${threads}`, 0, 6 * N, () => {
    const a = Tensor.randn([N], { seed: 1 });
    return { run: () => a.cast('f16'), free: () => a.dispose() };
  }),
  entry(`copy_f32 n=${N} threads=${threads}`, 0, 8 * N, () => {
    const a = Tensor.randn([N], { seed: 1 });
    return { run: () => a.clone(), free: () => a.dispose() };
  }),
);

// Quantized matmul: every format, M in {1, 16, 128}, N x K in {4096 x 4096, 11008 x 4096}, 1 and 2 threads, the
// int8 path (the default); the dequantize path on a few shapes. The weights are streamed from memory, as in
// inference: the entry rotates through copies of the weight totalling >= 256 MB (L3 here is 32 MB), one per call.
// "weight GB/s" counts the quantized weight's bytes; GFLOP/s counts 2*M*N*K.
const QFORMATS = ['q8_0', 'q4_0', 'q4_g32', 'q4_g64', 'q4_g128', 'i8_pc'];
const qThreads = [...new Set([1, threads])];
function quantEntry(fmtName, M, N, K, t, path) {
  const suffix = path === 'dequant' ? ' path=dequant' : '';
  const name = `matmul_${fmtName} M=${M} N=${N} K=${K} threads=${t}${suffix}`;
  const wbytes = lk.panelFormBytes(fmtName, N, K);
  return entry(
    name,
    2 * M * N * K,
    wbytes + M * K * 4 + M * N * 4,
    () => {
      const x = Tensor.randn([M, K], { seed: 1 });
      const w = Tensor.randn([N, K], { seed: 2 });
      const q0 = quantizeSync(w, fmtName);
      w.dispose();
      const copies = [q0];
      while (copies.length * wbytes < 256e6) copies.push(q0.to('cpu'));
      let i = 0;
      return {
        run: () => matmul(x, copies[i++ % copies.length], { path: path ?? 'int8' }),
        free: () => (x.dispose(), copies.forEach((c) => c.dispose())),
        weightBytes: wbytes,
      };
    },
    { threads: t, peak: path === 'dequant' ? 'fma' : 'int8' },
  );
}
if (!quick || filter.includes('matmul_q') || filter.includes('matmul_i8')) {
  for (const t of qThreads)
    for (const f of QFORMATS)
      for (const [N, K] of [
        [4096, 4096],
        [11008, 4096],
      ])
        for (const M of [1, 16, 128]) specs.push(quantEntry(f, M, N, K, t));
  for (const f of ['q8_0', 'q4_0', 'q4_g128'])
    for (const M of [1, 128]) specs.push(quantEntry(f, M, 4096, 4096, threads, 'dequant'));
}

const roofs = new Map([[threads, roof]]);
const roofFor = (t) => {
  if (!roofs.has(t)) roofs.set(t, roofline(t));
  return roofs.get(t);
};

const fmt = (s) => (s >= 1 ? `${s.toFixed(3)} s` : s >= 1e-3 ? `${(s * 1e3).toFixed(3)} ms` : `${(s * 1e6).toFixed(1)} us`);
console.log(`\n${'entry'.padEnd(58)} ${'median'.padStart(11)} ${'GFLOP/s'.padStart(9)} ${'GB/s'.padStart(8)} ${'roof'.padStart(6)} bound`);
for (const s of specs.filter(Boolean)) {
  if (getThreads() !== s.threads) setThreads(s.threads);
  const eroof = roofFor(s.threads);
  const { run, free, weightBytes } = s.setup();
  const bench = new Bench({ time: quick ? 200 : 1000, warmupIterations: 2, iterations: 3 });
  // One call: enqueue, then wait for it (reads one element's worth: synchronize), then free the output.
  bench.add(s.name, async () => {
    const y = run();
    await y.device.synchronize();
    y.dispose();
  });
  await bench.run();
  free();
  const r = bench.tasks[0].result;
  const median = (r.latency?.p50 ?? r.latency?.mean ?? NaN) / 1e3;
  const gflops = s.flops / median / 1e9;
  const gbs = s.bytes / median / 1e9;
  const peak = s.peak === 'int8' ? eroof.int8Gops : eroof.fmaGflops;
  const tFlops = s.flops / (peak * 1e9);
  const tBytes = s.bytes / (eroof.readGBs * 1e9);
  const frac = Math.max(tFlops, tBytes) / median;
  const bound = tFlops >= tBytes ? (s.peak === 'int8' ? 'int8' : 'compute') : 'memory';
  const wgbs = weightBytes ? weightBytes / median / 1e9 : undefined;
  results.entries.push({ name: s.name, medianS: median, gflops, gbs, weightGBs: wgbs, roofFraction: frac, bound, threads: s.threads });
  console.log(
    `${s.name.padEnd(58)} ${fmt(median).padStart(11)} ${s.flops ? gflops.toFixed(1).padStart(9) : '-'.padStart(9)} ` +
      `${gbs.toFixed(2).padStart(8)} ${frac.toFixed(2).padStart(6)} ${bound}` +
      (wgbs ? ` (weights ${wgbs.toFixed(1)} GB/s = ${(wgbs / eroof.readGBs).toFixed(2)} of read)` : ''),
  );
}
if (getThreads() !== threads) setThreads(threads);

// ---- 4. native bench with the OpenBLAS peer ----
const lkBench = join(root, 'build', 'tools', 'lk_bench');
if (args.includes('--no-native')) {
  console.log('\nlk_bench: skipped (--no-native)');
} else if (!existsSync(lkBench)) {
  console.log(`\nlk_bench: not built (${lkBench}); run npm install`);
} else {
  const out = join(mkdtempSync(join(tmpdir(), 'llmk-bench-')), 'native.json');
  const nargs = ['--json', out, '--threads', String(threads), '--filter', filter || 'matmul_f32'];
  if (quick) nargs.push('--quick');
  console.log(`\n=== lk_bench ${nargs.join(' ')} (native timings and the OpenBLAS peer, same machine, same run)`);
  const r = spawnSync(lkBench, nargs, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status === 0 && existsSync(out)) results.native = JSON.parse(readFileSync(out, 'utf8'));
}

if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify(results, null, 2));
  console.log(`\nwrote ${jsonPath}`);
}
process.exit(0);
