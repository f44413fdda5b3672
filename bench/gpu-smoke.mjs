// The Node-level check of the CUDA backend on a GPU host, for what lk_check (C++, op by op) cannot reach: the
// TypeScript layer on CUDA tensors (streams, cross-device copies, the quantized-weight and KV-cache classes), the
// whole model on the GPU (alone and tensor-parallel), sampling on the device, and the GPU collectives between
// processes. bench/gpu-check.sh runs it when a Node binary was carried to the GPU host (the host has no Node; see the
// "Carrying Node" part of the GPU notes): `node --test bench/gpu-smoke.mjs`, with the compiled dist/ and the addon
// built there.
//
// Every check compares the CUDA result with the CPU backend's on the same inputs (the CPU backend is checked against
// the references by the test suite). Bounds: quantizers and exact ops bit for bit; f32 products and the model within
// a few times f32 summation-order noise; timings are printed, never asserted.
// Without CUDA every test fails with the reason. A dry run of this file on a machine without a GPU:
// LK_SMOKE_DEVICE=cpu compares the CPU with itself (every path of the file runs; the collectives on CPU tensors).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { argmax, device, generate, info, loadModel, matmul, PagedKvCache, quantize, Tensor, topK } from '../dist/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = join(ROOT, 'models', 'tiny-py');
const cuda = info().cuda;
const DEV = process.env.LK_SMOKE_DEVICE ?? 'cuda';
const cpu = device('cpu');

// The device under test: CUDA, or the CPU itself in a dry run.
function gpu() {
  if (DEV === 'cpu') return cpu;
  assert.ok(cuda.available, `CUDA is not available: ${cuda.reason}`);
  return device(DEV);
}

// Node 20 has no `using`: tensors made in a test go into a bin that the test empties at its end.
function scope() {
  const bin = [];
  return { keep: (t) => (bin.push(t), t), done: () => bin.splice(0).reverse().forEach((t) => t.dispose()) };
}

/** max |a - b| / (max |a| + tiny): one number for "how far apart", printed with every comparison. */
function relMax(a, b) {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(a[i]));
  }
  return d / (m + 1e-30);
}

test('CUDA is available and named', { skip: DEV === 'cpu' && 'dry run on the CPU' }, () => {
  gpu();
  const d = cuda.devices[0];
  console.log(`# cuda: ${d.name}, sm_${d.computeCapability.replace('.', '')}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB`);
});

test('quantize on CUDA gives the CPU bytes; matmul_q on CUDA matches the CPU at M = 1, 7 and 33', async () => {
  const dev = gpu();
  const { keep, done } = scope();
  try {
    for (const [N, K] of [[96, 4096], [33, 688]]) {
      const w = keep(Tensor.randn([N, K], { seed: N + K }));
      const wd = keep(w.to(dev));
      for (const f of ['q8_0', 'q4_0', 'q4_g32', 'q4_g128', 'i8_pc']) {
        const qc = keep(await quantize(w, f));
        const qd = keep(await quantize(wd, f));
        assert.deepEqual(qd.toBytesSync(), qc.toBytesSync(), `quantize(${f}) [${N}, ${K}]: CUDA bytes differ from the CPU's`);
        for (const M of [1, 7, 33])
          for (const dtype of ['f32', 'f16'])
            for (const path of ['int8', 'dequant']) {
              const x = keep(keep(Tensor.randn([M, K], { seed: M })).cast(dtype));
              const xd = keep(x.to(dev));
              const yc = keep(matmul(x, qc, { path }));
              const yd = keep(matmul(xd, qd, { path }));
              const e = relMax(await yc.toFloat32(), await yd.toFloat32());
              assert.ok(e < (dtype === 'f32' ? 1e-5 : 2e-3), `matmul_q(${f}, ${path}, ${dtype}) M=${M} N=${N} K=${K}: rel max diff ${e}`);
            }
      }
    }
  } finally {
    done();
  }
});

test('paged KV cache on CUDA: writes, decode and prefill match the CPU for every KV dtype', async () => {
  const dev = gpu();
  const H = 8, Hkv = 2, D = 64, P = 16, L = 77;
  const { keep, done } = scope();
  try {
    const k = keep(Tensor.randn([L, Hkv, D], { seed: 1 }));
    const v = keep(Tensor.randn([L, Hkv, D], { seed: 2 }));
    const q1 = keep(Tensor.randn([2, H, D], { seed: 3 }));
    const qp = keep(Tensor.randn([L, H, D], { seed: 4 }));
    for (const dtype of ['f32', 'f16', 'bf16', 'i8', 'f8e4m3']) {
      const out = [];
      for (const d of [cpu, dev]) {
        const cache = keep(new PagedKvCache({ numLayers: 1, numBlocks: 16, blockSize: P, numKvHeads: Hkv, headDim: D, dtype, device: d }));
        const a = cache.addSequence(0, new Int32Array(L).fill(1));
        const b = cache.addSequence(1, new Int32Array(40).fill(2));
        assert.ok(a.ok && b.ok);
        const kd = keep(k.to(d)), vd = keep(v.to(d));
        cache.write(0, kd, vd, a.slots);
        cache.write(0, keep(kd.slice(0, 40)), keep(vd.slice(0, 40)), b.slots);
        const yd = keep(cache.decode(0, keep(q1.to(d)), keep(cache.batch([0, 1]))));
        const yp = keep(cache.prefill(0, keep(qp.to(d)), keep(cache.batch([0], [L]))));
        out.push([await yd.toFloat32(), await yp.toFloat32()]);
      }
      const ed = relMax(out[0][0], out[1][0]), ep = relMax(out[0][1], out[1][1]);
      console.log(`# kv ${dtype}: decode ${ed.toExponential(2)}, prefill ${ep.toExponential(2)} (rel max diff vs cpu)`);
      assert.ok(ed < 1e-4 && ep < 1e-4, `paged attention (${dtype}): decode ${ed}, prefill ${ep}`);
    }
  } finally {
    done();
  }
});

test('argmax and topK on CUDA equal the CPU (ties to the lower id)', async () => {
  const dev = gpu();
  const { keep, done } = scope();
  try {
    const logits = keep(Tensor.randn([5, 32000], { seed: 9 }));
    const ld = keep(logits.to(dev));
    assert.deepEqual(Array.from(await keep(argmax(ld)).data()), Array.from(await keep(argmax(logits)).data()));
    const t = topK(logits, 40), td = topK(ld, 40);
    [t.ids, t.values, td.ids, td.values].forEach(keep);
    assert.deepEqual(Array.from(await td.ids.data()), Array.from(await t.ids.data()));
    assert.deepEqual(Array.from(await td.values.data()), Array.from(await t.values.data()));
  } finally {
    done();
  }
});

// The bundled tiny-py: one batched step of three prompts (prefill), then greedy decoding; the CUDA model against the
// CPU model with the same options.
async function runModel(dev, options, kvDtype) {
  const { keep, done } = scope();
  try {
    return await runModelIn(keep, dev, options, kvDtype);
  } finally {
    done();
  }
}
async function runModelIn(keep, dev, options, kvDtype) {
  const model = keep(await loadModel(MODEL, { ...options, device: dev }));
  const cache = keep(model.createCache({ maxTokens: 512, dtype: kvDtype }));
  const prompts = [[1, 104, 105, 106, 107, 32, 33], [1, 50], [1, 70, 71, 72]];
  const steps = prompts.map((p, i) => {
    const r = cache.addSequence(i, p);
    assert.ok(r.ok);
    return { seqId: i, tokens: p, slots: r.slots, logits: 'all' };
  });
  const { logits } = model.forward(cache, steps);
  const first = await logits.toFloat32();
  logits.dispose();
  for (let i = 0; i < prompts.length; i++) cache.free(i);
  const t0 = performance.now();
  const g = await generate(model, cache, [prompts[0]], { maxNewTokens: 32, stopIds: [] });
  return { first, tokens: g.outputs[0], ms: performance.now() - t0, decodeMs: g.decodeMs, decodeTokens: g.decodeTokens };
}

for (const [label, options, kv, bound] of [
  ['f32 weights, f32 KV', {}, 'f32', 1e-4],
  ['bf16 weights, f16 KV', { weightDtype: 'bf16' }, 'f16', 2e-3],
  ['q4_0 weights (quantized on the device), i8 KV', { quantize: 'q4_0' }, 'i8', 2e-3],
  ['q8_0 weights, f8e4m3 KV', { quantize: 'q8_0' }, 'f8e4m3', 2e-3],
])
  test(`tiny-py on CUDA (${label}): logits of a batched prefill match the CPU; greedy tokens too`, async () => {
    const dev = gpu();
    const c = await runModel(cpu, options, kv);
    const g = await runModel(dev, options, kv);
    const e = relMax(c.first, g.first);
    const same = g.tokens.findIndex((t, i) => t !== c.tokens[i]);
    console.log(
      `# tiny-py ${label}: logits rel max diff ${e.toExponential(2)}; greedy tokens ${same < 0 ? 'identical' : `differ from #${same}`}; ` +
        `decode ${(g.decodeTokens / (g.decodeMs / 1e3)).toFixed(0)} tok/s on ${dev.name} vs ${(c.decodeTokens / (c.decodeMs / 1e3)).toFixed(0)} on cpu`,
    );
    assert.ok(e < bound, `logits: rel max diff ${e} >= ${bound}`);
    if (kv === 'f32') assert.equal(same, -1, `greedy tokens differ from position ${same}: cpu ${c.tokens}, cuda ${g.tokens}`);
  });

test('GPU collectives: 2 ranks (processes) on one device, allReduce / allGather / reduceScatter / broadcast bit for bit with the rank-order spec', async () => {
  gpu();
  const fixture = join(ROOT, 'test', 'dist', 'fixtures', 'cuda-allreduce-rank.mjs');
  const name = `smoke-${process.pid}`;
  const runs = await Promise.all(
    [0, 1].map(
      (rank) =>
        new Promise((resolve) => {
          const p = spawn(process.execPath, [fixture], {
            env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), LLM_KERNELS_GROUP: name, LK_TEST_CUDA_DEVICE: DEV === 'cuda' ? 'cuda:0' : DEV },
          });
          let out = '', err = '';
          p.stdout.on('data', (d) => (out += d));
          p.stderr.on('data', (d) => (err += d));
          const timer = setTimeout(() => p.kill('SIGKILL'), 180_000);
          p.on('close', (code) => (clearTimeout(timer), resolve({ rank, code, out: out.trim(), err })));
        }),
    ),
  );
  for (const r of runs) {
    assert.equal(r.code, 0, `rank ${r.rank} exited ${r.code}: ${r.err.slice(-2000)}`);
    const line = JSON.parse(r.out.split('\n').pop());
    console.log(`# collectives rank ${r.rank}: paths ${JSON.stringify(line.cuda)}, ${line.failures.length} failures`);
    assert.deepEqual(line.failures, []);
  }
});

test('logits --device cuda --tp 2 (each rank on the GPU, the LM head gathered there) match the CPU at TP = 1', async () => {
  gpu();
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'lk-smoke-tp-'));
  const cli = join(ROOT, 'dist', 'cli', 'main.js');
  const tokens = ['--tokens', '1,104,105,106,107', '--tokens', '1,50'];
  const run = (name, extra) =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [cli, 'logits', ...tokens, '--kv-dtype', 'f32', '--out', join(dir, name), ...extra]);
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), 180_000);
      p.on('close', (code) => (clearTimeout(timer), resolve({ code, err })));
    });
  for (const [name, extra] of [['cpu.json', ['--device', 'cpu']], ['tp.json', ['--device', DEV, '--tp', '2']]]) {
    const r = await run(name, extra);
    assert.equal(r.code, 0, `${name}: exited ${r.code}: ${r.err.slice(-2000)}`);
  }
  const flat = (n) => JSON.parse(readFileSync(join(dir, n), 'utf8')).sequences.flatMap((q) => q.logits.flat());
  const e = relMax(flat('tp.json'), flat('cpu.json'));
  console.log(`# logits --device ${DEV} --tp 2 vs cpu: rel max diff ${e.toExponential(2)}`);
  assert.ok(e < 1e-4, `rel max diff ${e} >= 1e-4`);
});

test('kernels demo on CUDA (matmul, quantized GEMV, paged decode against the measured device copy rate)', async () => {
  gpu();
  const { kernelsDemo } = await import('../dist/cli/kernels.js');
  process.exitCode = 0;
  await kernelsDemo({ device: DEV, size: DEV === 'cpu' ? '512' : '4096' });
  assert.equal(process.exitCode, 0, 'the demo reported an error above its bound');
});
