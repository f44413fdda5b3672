#!/usr/bin/env node
// `npm run bench:dist [-- --json FILE]`: collectives and tensor parallelism on this host, in one run.
//
// 1. All-reduce (f32, in place, 2 ranks) from 4 KiB to 64 MiB: the shm backend (ranks from `llm-kernels launch`),
//    our mpi backend and OpenMPI's own MPI_Allreduce (both under mpirun, when OpenMPI is installed), side by side:
//    latency, bus bandwidth (2 (R - 1) / R * bytes / time, NCCL's convention) and its fraction of this machine's
//    read probe, and shm's speed-up over MPI_Allreduce.
// 2. Decode tokens/s of the bundled tiny-py (q8_0) at TP = 1 and TP = 2, and the time of one decoder layer at
//    Llama-3-8B shapes (q8_0, B = 1, context 1024) at TP = 1 and TP = 2. Ranks split this host's cores, so on a
//    small machine TP = 2 shows the cost of the collectives more than a speed-up (the note printed says so).
// Ranks run bench/dist-rank.mjs; the raw MPI_Allreduce timing is `lk_dist_check --bench-raw` (native).
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lk = await import(join(root, 'dist', 'index.js'));
const args = process.argv.slice(2);
const jsonPath = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
const rankScript = join(root, 'bench', 'dist-rank.mjs');
const cli = join(root, 'dist', 'cli', 'main.js');
const haveMpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
const mpirunArgs = ['--allow-run-as-root', '--oversubscribe', '-np', '2'];

function lastJson(r, what) {
  if (r.status !== 0) {
    console.log(`${what}: failed (exit ${r.status})\n${(r.stderr || '').slice(-2000)}${(r.stdout || '').slice(-2000)}`);
    return null;
  }
  const line = r.stdout.split('\n').map((l) => l.replace(/^\[rank \d+\] /, '')).filter((l) => l.startsWith('{')).pop();
  return line ? JSON.parse(line) : null;
}
const launchRanks = (n, mode) => lastJson(spawnSync(process.execPath, [cli, 'launch', '--nproc', String(n), rankScript, mode], { encoding: 'utf8', timeout: 600_000 }), `${mode} TP=${n}`);
const mpiRanks = (mode) => lastJson(spawnSync('mpirun', [...mpirunArgs, process.execPath, rankScript, mode, 'mpi'], { encoding: 'utf8', timeout: 600_000 }), `${mode} (mpi)`);

const roof = lk.roofline();
console.log(`machine: ${lk.info().cpu.hardwareThreads} hardware threads, ${roof.simd}; read probe ${roof.readGBs.toFixed(1)} GB/s (${roof.threads} threads)`);
const results = { roofline: roof };

// 1. all-reduce
results.shm = launchRanks(2, 'allreduce');
if (haveMpirun) {
  results.mpi = mpiRanks('allreduce');
  const raw = join(root, 'build', 'tools', 'lk_dist_check');
  if (existsSync(raw)) results.mpiRaw = lastJson(spawnSync('mpirun', [...mpirunArgs, raw, '--backend', 'mpi', '--bench-raw', '--json'], { encoding: 'utf8', timeout: 600_000 }), 'MPI_Allreduce');
} else console.log('OpenMPI not installed (apt-get install openmpi-bin): the MPI columns are skipped');
const R = 2;
const busbw = (bytes, us) => (2 * (R - 1) / R) * bytes / (us * 1e-6) / 1e9;
const col = (e) => (e ? `${e.us.toFixed(1).padStart(9)} ${busbw(e.bytes, e.us).toFixed(2).padStart(6)} ${(busbw(e.bytes, e.us) / roof.readGBs).toFixed(2).padStart(5)}` : '        -      -     -');
const human = (b) => (b >= 1 << 20 ? `${b >> 20} MiB` : `${b >> 10} KiB`);
console.log(`\nall-reduce, f32 in place, R = 2 (us per call; bus GB/s; fraction of the read probe)`);
console.log('shm and mpi: our backends through the Node API (enqueued back to back on the CPU stream, as a model step');
console.log('issues them); MPI_Allreduce: Open MPI called from C++ (lk_dist_check --bench-raw), no Node in the path.');
console.log(`${'size'.padEnd(8)} | ${'shm us'.padStart(9)} ${'GB/s'.padStart(6)} ${'roof'.padStart(5)} | ${'mpi us'.padStart(9)} ${'GB/s'.padStart(6)} ${'roof'.padStart(5)} | ${'MPI_Allr'.padStart(9)} ${'GB/s'.padStart(6)} ${'roof'.padStart(5)} | shm speed-up vs mpi, vs MPI_Allreduce`);
for (const e of results.shm?.sizes ?? []) {
  const m = results.mpi?.sizes?.find((x) => x.bytes === e.bytes);
  const raw = results.mpiRaw?.sizes?.find((x) => x.bytes === e.bytes);
  console.log(`${human(e.bytes).padEnd(8)} | ${col(e)} | ${col(m)} | ${col(raw)} | ${m ? `${(m.us / e.us).toFixed(2)}x` : '-'}, ${raw ? `${(raw.us / e.us).toFixed(2)}x` : '-'}`);
}

// 2. tensor-parallel decode
results.tiny = [launchRanks(1, 'tiny'), launchRanks(2, 'tiny')];
results.layer8b = [launchRanks(1, 'layer8b'), launchRanks(2, 'layer8b')];
console.log(`\ntensor-parallel decode (ranks split the ${lk.info().cpu.hardwareThreads} hardware threads; shm)`);
for (const [i, t] of results.tiny.entries())
  if (t) console.log(`tiny-py q8_0 TP=${i + 1} (${t.threadsPerRank} threads per rank): ${t.tiny.map((x) => `B=${x.B} ${x.tokensPerS.toFixed(0)} tokens/s`).join(', ')}`);
const [l1, l2] = results.layer8b;
if (l1) console.log(`8B-shaped decoder layer q8_0, decode B=1 ctx=1024, TP=1: ${l1.layer8b.msPerLayer.toFixed(3)} ms (${(l1.layer8b.weightBytesPerRank / 2 ** 20).toFixed(0)} MiB of weights)`);
if (l2) console.log(`8B-shaped decoder layer q8_0, decode B=1 ctx=1024, TP=2: ${l2.layer8b.msPerLayer.toFixed(3)} ms (${(l2.layer8b.weightBytesPerRank / 2 ** 20).toFixed(0)} MiB per rank)${l1 ? `; TP=2 / TP=1 speed ${(l1.layer8b.msPerLayer / l2.layer8b.msPerLayer).toFixed(2)}x` : ''}`);
if (results.tiny[0] && results.tiny[1])
  console.log(`tiny-py TP=2 / TP=1 decode speed: ${results.tiny[1].tiny.map((x, i) => `B=${x.B} ${(x.tokensPerS / results.tiny[0].tiny[i].tokensPerS).toFixed(2)}x`).join(', ')}`);
console.log('(TP = 2 on one host uses the same cores and memory bandwidth as TP = 1: it pays for the collectives and gains only where one process could not use the whole machine.)');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify(results, null, 2));
