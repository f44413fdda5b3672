// One rank of bench/dist.mjs (started by it through `llm-kernels launch` or mpirun). MODE (argv[2]):
//   allreduce  all-reduce of f32 from 4 KiB to 64 MiB in place: the median time of each size (warm-up first;
//              enough repetitions for ~0.25 s per size, at least 5); up to 1 MiB, 32 calls back to back per
//              sample (us is per call), and apart the time of one call plus the promise of a sync (syncUs)
//   tiny       decode steps of the bundled tiny-py (B = 1 and 8, context 256): tokens/s, with a sync per step
//   layer8b    one decoder layer at Llama-3-8B shapes (q8_0), this rank's shard, decode B = 1 at context 1024
// Rank 0 prints one JSON line.
import { fileURLToPath } from 'node:url';
import * as lk from '../dist/index.js';

const mode = process.argv[2];
const backend = process.argv[3] ?? 'auto';
const pg = await lk.initProcessGroup({ backend, timeoutMs: 120_000 });
const R = pg.worldSize;
// Ranks on one host share its cores.
lk.setThreads(Math.max(1, Math.floor(lk.info().cpu.hardwareThreads / R)));
const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const out = {};

async function timeIt(fn, minMs = 250, minReps = 5) {
  await fn();
  await fn();
  const times = [];
  const t0 = performance.now();
  for (;;) {
    // All ranks must run the same number of iterations: rank 0 decides after each one (a local test would let
    // the ranks drift apart, and the group would fail with ERR_COLLECTIVE_MISMATCH).
    const s = performance.now();
    await fn();
    times.push(performance.now() - s);
    const flag = lk.Tensor.fromArray([times.length < minReps || performance.now() - t0 < minMs ? 1 : 0]);
    pg.broadcast(flag, { root: 0, out: flag });
    const more = (await flag.data())[0];
    flag.dispose();
    if (more === 0) break;
  }
  return median(times);
}

if (mode === 'allreduce') {
  out.sizes = [];
  for (let bytes = 4096; bytes <= 64 << 20; bytes *= 4) {
    // Back to back, as a model step issues them (enqueued, no JS wait in between), then one sync: small messages
    // measure the collective's own latency, not the promise round trip (reported apart as syncUs).
    const x = lk.Tensor.fromArray(new Float32Array(bytes / 4).fill(1e-3 * (pg.rank + 1)));
    const k = bytes <= 1 << 20 ? 32 : 1;
    const ms = await timeIt(async () => {
      for (let i = 0; i < k; i++) pg.allReduce(x, { out: x });
      await pg.synchronize();
    });
    const syncMs = await timeIt(async () => {
      pg.allReduce(x, { out: x });
      await pg.synchronize();
    });
    x.dispose();
    out.sizes.push({ bytes, us: (ms * 1e3) / k, syncUs: syncMs * 1e3 });
  }
} else if (mode === 'tiny') {
  const model = await lk.loadModel(fileURLToPath(new URL('../models/tiny-py', import.meta.url)), { group: pg, quantize: 'q8_0' });
  out.tiny = [];
  for (const B of [1, 8]) {
    const cache = model.createCache({ maxTokens: B * 400, dtype: 'f16', prefixCaching: false });
    const prompt = Array.from({ length: 256 }, (_, i) => 3 + ((i * 37) % 250));
    for (let b = 0; b < B; b++) cache.addSequence(b, prompt);
    let steps = 0;
    const ms = await timeIt(async () => {
      if (++steps % 64 === 0) for (let b = 0; b < B; b++) (cache.free(b), cache.addSequence(b, prompt));
      const seqs = Array.from({ length: B }, (_, b) => ({ seqId: b, tokens: [5], slots: cache.appendOrThrow(b, [5]) }));
      const { logits } = model.forward(cache, seqs);
      await logits.data();
      logits.dispose();
    }, 1000, 20);
    out.tiny.push({ B, msPerStep: ms, tokensPerS: (B * 1e3) / ms });
    cache.dispose();
  }
  model.dispose();
} else if (mode === 'layer8b') {
  const E = 4096, F = 14336, H = 32, Hkv = 8, D = 128, ctx = 1024;
  const Hl = H / R, Hkvl = Math.max(1, Hkv / R), Fl = F / R;
  const lin = (N, K, seed) => {
    const w = lk.Tensor.randn([N, K], { seed: seed * 100 + pg.rank });
    const ws = lk.scale(w, 1 / Math.sqrt(K));
    const q = lk.quantizeSync(ws, 'q8_0');
    w.dispose(), ws.dispose();
    return new lk.Linear(q);
  };
  const rowPar = (N, K, seed) => (R > 1 ? new lk.RowParallelLinear(lin(N, K, seed), null, pg) : lin(N, K, seed));
  const ones = () => lk.Tensor.full([E], 1);
  const ropeEmb = new lk.RotaryEmbedding(Float32Array.from({ length: D / 2 }, (_, i) => 500000 ** ((-2 * i) / D)), 'rotate-half');
  const attn = new lk.Attention(lin(Hl * D, E, 1), lin(Hkvl * D, E, 2), lin(Hkvl * D, E, 3), rowPar(E, Hl * D, 4), ropeEmb, { layer: 0, numHeads: Hl, numKvHeads: Hkvl, headDim: D });
  const layer = new lk.DecoderLayer(new lk.RMSNorm(ones(), 1e-5), attn, new lk.RMSNorm(ones(), 1e-5), new lk.SwiGluMlp(lin(2 * Fl, E, 5), rowPar(E, Fl, 6)));
  const final = new lk.RMSNorm(ones(), 1e-5);
  const cache = new lk.PagedKvCache({ numLayers: 1, numBlocks: Math.ceil((ctx + 64) / 16) + 8, blockSize: 16, numKvHeads: Hkvl, headDim: D, dtype: 'f16', prefixCaching: false });
  const x = lk.Tensor.randn([1, E], { seed: 9 });
  const ms = await timeIt(async () => {
    for (const id of cache.manager.sequences()) cache.free(id);
    cache.addSequence(0, new Int32Array(ctx - 1).fill(1));
    const slots = cache.appendOrThrow(0, [1]);
    const batch = cache.batch([0]);
    const positions = lk.Tensor.fromArray([ctx - 1], { dtype: 'i32' });
    const h = lk.rmsNorm(x, final.weight, 1e-5);
    const r = layer.forward(x.clone(), h, { cache, batch, positions, slots, decode: true }, final);
    batch.dispose(), positions.dispose(), r.h.dispose();
    await r.x.data();
    r.x.dispose();
  }, 1000, 10);
  out.layer8b = { msPerLayer: ms, weightBytesPerRank: layer.nbytes };
  layer.dispose(), final.dispose(), ropeEmb.dispose(), cache.dispose(), x.dispose();
}
if (pg.rank === 0) process.stdout.write(JSON.stringify({ mode, backend: pg.backend, worldSize: R, threadsPerRank: lk.getThreads(), ...out }) + '\n');
await pg.barrier();
pg.close();
