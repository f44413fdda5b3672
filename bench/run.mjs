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

// Paged attention: the decode grid (H = 32, Hkv = 8, D = 128, P = 16), f16 and i8 caches (f8e4m3 on one
// shape), and prefill. Caches are filled the way a server fills them: sequences grow block by block in turn, so
// each sequence's blocks are spread over the pool (stride B blocks). "GB/s" counts the KV bytes read (rows and
// scales of every position of every sequence); the roof is the read bandwidth.
const PA = { H: 32, Hkv: 8, D: 128, P: 16 };
const kvBytesPerToken = (dt) => PA.Hkv * 2 * (PA.D * (dt === 'f32' ? 4 : dt === 'f16' || dt === 'bf16' ? 2 : 1) + (dt === 'i8' || dt === 'f8e4m3' ? 4 : 0));
function filledCache(dt, B, L) {
  const cache = new lk.PagedKvCache({ numLayers: 1, numBlocks: B * Math.ceil(L / PA.P) + 4, blockSize: PA.P, numKvHeads: PA.Hkv, headDim: PA.D, dtype: dt, prefixCaching: false });
  const tok = (n) => new Int32Array(n).fill(1);
  for (let done = 0; done < L; done += PA.P)
    for (let b = 0; b < B; b++) {
      const n = Math.min(PA.P, L - done);
      const r = done === 0 ? cache.addSequence(b, tok(n)) : cache.append(b, tok(n));
      if (!r.ok) throw new Error('bench cache too small');
    }
  const chunk = 512;
  const k = Tensor.randn([chunk, PA.Hkv, PA.D], { seed: 1 });
  const v = Tensor.randn([chunk, PA.Hkv, PA.D], { seed: 2 });
  for (let b = 0; b < B; b++) {
    const table = cache.manager.blockTable(b);
    for (let t0 = 0; t0 < L; t0 += chunk) {
      const n = Math.min(chunk, L - t0);
      const slots = Int32Array.from({ length: n }, (_, i) => table[Math.floor((t0 + i) / PA.P)] * PA.P + ((t0 + i) % PA.P));
      const ks = k.slice(0, n), vs = v.slice(0, n);
      cache.write(0, ks, vs, slots);
      ks.dispose(), vs.dispose();
    }
  }
  k.dispose(), v.dispose();
  return cache;
}
function decodeEntry(dt, B, L) {
  return entry(`paged_attention_decode_${dt} B=${B} L=${L} threads=${threads}`, 4 * B * L * PA.H * PA.D, B * L * kvBytesPerToken(dt), () => {
    const cache = filledCache(dt, B, L);
    const batch = cache.batch(Array.from({ length: B }, (_, b) => b));
    const q = Tensor.randn([B, PA.H, PA.D], { seed: 3 });
    return { run: () => cache.decode(0, q, batch), free: () => (q.dispose(), batch.dispose(), cache.dispose()) };
  });
}
function prefillEntry(dt, L, nq) {
  let pairs = 0;
  for (let i = 0; i < nq; i++) pairs += L - nq + i + 1;
  return entry(`paged_attention_prefill_${dt} L=${L} new=${nq} threads=${threads}`, 4 * pairs * PA.H * PA.D, L * kvBytesPerToken(dt), () => {
    const cache = filledCache(dt, 1, L);
    const batch = cache.batch([0], [nq]);
    const q = Tensor.randn([nq, PA.H, PA.D], { seed: 3 });
    return { run: () => cache.prefill(0, q, batch), free: () => (q.dispose(), batch.dispose(), cache.dispose()), tokens: nq };
  });
}
if (!quick || filter.includes('paged_attention')) {
  for (const dt of ['f16', 'i8'])
    for (const B of [1, 8, 32])
      for (const L of [512, 4096, 16384]) specs.push(decodeEntry(dt, B, L));
  specs.push(decodeEntry('f8e4m3', 8, 4096), decodeEntry('bf16', 8, 4096), decodeEntry('f32', 8, 4096));
  for (const dt of ['f16', 'i8']) specs.push(prefillEntry(dt, 512, 512), prefillEntry(dt, 4096, 512));
}

// ---- models ----
// The bundled tiny-py model (4 layers, E = 256, F = 768, V = 320) per weight format: prefill of one 512-token prompt
// and a decode step of B sequences at a context of ~256 (the sequences are reset to 256 tokens every 64 steps;
// timing does not depend on the cached values). flops = 2 x Linear parameters per token + attention; bytes = the
// weights read once per step (decode is a weight stream).
const tinyDir = join(root, 'models', 'tiny-py');
const tinyModels = new Map();
async function tiny(fmt) {
  if (!tinyModels.has(fmt)) tinyModels.set(fmt, await lk.loadModel(tinyDir, fmt === 'bf16' ? {} : { quantize: fmt }));
  return tinyModels.get(fmt);
}
function linearParams(c) {
  const E = c.hiddenSize, HD = c.numHeads * c.headDim, KD = c.numKvHeads * c.headDim;
  return c.numLayers * (E * HD * 2 + E * KD * 2 + 3 * E * c.intermediateSize) + c.vocabSize * E;
}
function modelPrefillEntry(fmt, T) {
  return entry(`model_tiny-py_${fmt} prefill T=${T} threads=${threads}`, 2 * 3.0e6 * T, 0, async () => {
    const m = await tiny(fmt);
    const cache = m.createCache({ maxTokens: T + 64, dtype: 'f16', prefixCaching: false });
    const toks = Array.from({ length: T }, (_, i) => 3 + ((i * 37) % 250));
    return {
      run: () => {
        if (cache.manager.sequences().length) cache.free(0);
        const r = cache.addSequence(0, toks);
        return m.forward(cache, [{ seqId: 0, tokens: toks, slots: r.slots }]).logits;
      },
      free: () => cache.dispose(),
      tokens: T,
      flops: 2 * linearParams(m.config) * T,
    };
  }, { peak: fmt === 'bf16' ? 'fma' : 'int8' });
}
function modelDecodeEntry(fmt, B, ctx) {
  return entry(`model_tiny-py_${fmt} decode B=${B} ctx=${ctx} threads=${threads}`, 0, 0, async () => {
    const m = await tiny(fmt);
    const cache = m.createCache({ maxTokens: B * (ctx + 80), dtype: 'f16', prefixCaching: false });
    const prompt = Array.from({ length: ctx }, (_, i) => 3 + ((i * 37) % 250));
    let steps = 0;
    const reset = () => {
      for (const id of cache.manager.sequences()) cache.free(id);
      for (let b = 0; b < B; b++) if (!cache.addSequence(b, prompt).ok) throw new Error('bench cache too small');
    };
    reset();
    return {
      run: () => {
        if (++steps % 64 === 0) reset();
        const seqs = Array.from({ length: B }, (_, b) => ({ seqId: b, tokens: [5], slots: cache.appendOrThrow(b, [5]) }));
        return m.forward(cache, seqs).logits;
      },
      free: () => cache.dispose(),
      tokens: B,
      flops: 2 * linearParams(m.config) * B,
      weightBytes: m.nbytes,
    };
  }, { peak: fmt === 'bf16' ? 'fma' : 'int8' });
}
// One decoder layer at Llama-3-8B shapes (E = 4096, F = 14336, H = 32, Hkv = 8, D = 128), quantized weights:
// decode of B = 1 at a context of 1024 (a weight stream: bytes = weights + KV read) and a prefill chunk of T = 128.
async function layer8b(fmt) {
  const E = 4096, F = 14336, H = 32, Hkv = 8, D = 128;
  const lin = (N, K, seed) => {
    const w = Tensor.randn([N, K], { seed });
    const ws = lk.scale(w, 1 / Math.sqrt(K));
    w.dispose();
    const q = quantizeSync(ws, fmt);
    ws.dispose();
    return new lk.Linear(q);
  };
  const ones = () => Tensor.full([E], 1);
  const ropeEmb = new lk.RotaryEmbedding(Float32Array.from({ length: D / 2 }, (_, i) => 500000 ** (-2 * i / D)), 'rotate-half');
  const attn = new lk.Attention(lin(H * D, E, 1), lin(Hkv * D, E, 2), lin(Hkv * D, E, 3), lin(E, H * D, 4), ropeEmb, { layer: 0, numHeads: H, numKvHeads: Hkv, headDim: D });
  const layer = new lk.DecoderLayer(new lk.RMSNorm(ones(), 1e-5), attn, new lk.RMSNorm(ones(), 1e-5), new lk.SwiGluMlp(lin(2 * F, E, 5), lin(E, F, 6)));
  return { layer, final: new lk.RMSNorm(ones(), 1e-5), ropeEmb, E, Hkv, D };
}
function layerEntry(fmt, mode) {
  const T = mode === 'decode' ? 1 : 128, ctx = 1024;
  return entry(`decoder_layer_8b_${fmt} ${mode} T=${T} ctx=${ctx} threads=${threads}`, 0, 0, async () => {
    const L = await layer8b(fmt);
    const cache = new lk.PagedKvCache({ numLayers: 1, numBlocks: Math.ceil((ctx + T + 64) / 16) + 8, blockSize: 16, numKvHeads: L.Hkv, headDim: L.D, dtype: 'f16', prefixCaching: false });
    const prompt = new Int32Array(ctx - T).fill(1);
    const x = Tensor.randn([T, L.E], { seed: 9 });
    const params = (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 14336 * 4096);
    const run = () => {
      for (const id of cache.manager.sequences()) cache.free(id);
      cache.addSequence(0, prompt);
      const slots = cache.appendOrThrow(0, new Int32Array(T).fill(1));
      const batch = mode === 'decode' ? cache.batch([0]) : cache.batch([0], [T]);
      const positions = Tensor.fromArray(Int32Array.from({ length: T }, (_, i) => ctx - T + i), { dtype: 'i32' });
      const h = lk.rmsNorm(x, L.final.weight, 1e-5);
      const r = L.layer.forward(x.clone(), h, { cache, batch, positions, slots, decode: mode === 'decode' }, L.final);
      batch.dispose(), positions.dispose(), r.h.dispose();
      return r.x;
    };
    const kvBytes = ctx * L.Hkv * 2 * L.D * 2;
    return {
      run,
      free: () => (L.layer.dispose(), L.final.dispose(), L.ropeEmb.dispose(), cache.dispose(), x.dispose()),
      tokens: T,
      flops: 2 * params * T,
      weightBytes: L.layer.nbytes,
      bytes: L.layer.nbytes + kvBytes,
    };
  }, { peak: 'int8' });
}
if (!quick || filter.includes('model') || filter.includes('decoder_layer')) {
  for (const fmt of ['bf16', 'q8_0', 'q4_0']) specs.push(modelPrefillEntry(fmt, 512), modelDecodeEntry(fmt, 1, 256), modelDecodeEntry(fmt, 8, 256));
  for (const fmt of ['q8_0', 'q4_0']) specs.push(layerEntry(fmt, 'decode'), layerEntry(fmt, 'prefill'));
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
  const set = await s.setup();
  const { run, free, weightBytes, tokens } = set;
  if (set.flops !== undefined) s.flops = set.flops;
  if (set.bytes !== undefined) s.bytes = set.bytes;
  else if (weightBytes !== undefined && !s.bytes) s.bytes = weightBytes;
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
  const tps = tokens ? tokens / median : undefined;
  results.entries.push({ name: s.name, medianS: median, gflops, gbs, weightGBs: wgbs, tokensPerS: tps, roofFraction: frac, readFraction: gbs / eroof.readGBs, bound, threads: s.threads });
  console.log(
    `${s.name.padEnd(58)} ${fmt(median).padStart(11)} ${s.flops ? gflops.toFixed(1).padStart(9) : '-'.padStart(9)} ` +
      `${gbs.toFixed(2).padStart(8)} ${frac.toFixed(2).padStart(6)} ${bound}` +
      (wgbs ? ` (weights ${wgbs.toFixed(1)} GB/s = ${(wgbs / eroof.readGBs).toFixed(2)} of read)` : '') +
      (s.name.startsWith('paged_attention_decode') ? ` (KV read at ${(gbs / eroof.readGBs).toFixed(2)} of read)` : '') +
      (tps ? ` (${tps.toFixed(0)} tokens/s)` : ''),
  );
}
if (getThreads() !== threads) setThreads(threads);
for (const m of tinyModels.values()) m.dispose();

// int8 against f16 KV at the same shape (the goal: >= 1.6x at context >= 4096).
{
  const byName = new Map(results.entries.map((e) => [e.name, e]));
  const lines = [];
  for (const B of [1, 8, 32])
    for (const L of [512, 4096, 16384]) {
      const f = byName.get(`paged_attention_decode_f16 B=${B} L=${L} threads=${threads}`);
      const q = byName.get(`paged_attention_decode_i8 B=${B} L=${L} threads=${threads}`);
      if (f && q) lines.push(`  B=${B} L=${L}: i8 ${(f.medianS / q.medianS).toFixed(2)}x faster than f16`);
    }
  if (lines.length) console.log(`\ndecode, int8 KV against f16 KV (same run):\n${lines.join('\n')}`);
}

// KV memory waste on a synthetic serving workload (block manager only): requests with mixed prompt and output
// lengths arrive, run one token per step, and leave; waste = allocated slots holding no token, sampled each step.
if (!quick || filter.includes('kv_waste')) {
  const rng = new (await import(join(root, 'dist', 'random.js'))).Rng(7);
  for (const P of [8, 16, 32]) {
    const bm = new lk.BlockManager({ numBlocks: Math.ceil(262144 / P), blockSize: P, prefixCaching: false });
    const running = new Map();
    let nextId = 0, wasted = 0, allocated = 0;
    for (let step = 0; step < 4000; step++) {
      // Admit while there is room (prompts 16..2048 tokens, log-uniform; outputs 16..1024).
      for (;;) {
        const prompt = Math.round(Math.exp(Math.log(16) + rng.uniform() * Math.log(128)));
        if (bm.available < Math.ceil((prompt + 1) / P) + 8) break;
        const r = bm.addSequence(nextId, new Int32Array(prompt));
        if (!r.ok) break;
        running.set(nextId++, Math.round(Math.exp(Math.log(16) + rng.uniform() * Math.log(64))));
      }
      for (const [id, left] of running) {
        if (left === 0 || !bm.append(id, [1]).ok) {
          bm.free(id);
          running.delete(id);
        } else running.set(id, left - 1);
      }
      const st = bm.stats();
      wasted += st.wastedSlots;
      allocated += st.used * P;
    }
    const w = wasted / allocated;
    results.entries.push({ name: `kv_waste P=${P}`, wasteFraction: w });
    console.log(`kv_waste P=${P}: ${(100 * w).toFixed(2)}% of allocated KV slots hold no token (vLLM reports < 4%)`);
  }
}

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
