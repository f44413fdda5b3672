#!/usr/bin/env node
// The register and spill report of every CUDA kernel, for CI (`.ci/run`) and for anyone changing a kernel:
//   node scripts/ptxas-report.mjs            # builds build-ptxas/ (CUDA on, -Xptxas -v, no addon), prints the table
//   node scripts/ptxas-report.mjs LOG        # parses an existing build log instead
// It configures its own build folder with the same CMake options as the real build plus LLMK_PTXAS_VERBOSE=ON, so the
// kernels are compiled with the flags users get, for every architecture of LLMK_CUDA_ARCHS (default 80 and 90a),
// and reads ptxas's "Compiling entry function / Used N registers / N bytes spill stores" lines. Ninja keeps each
// compiler's output together (make would interleave the two jobs' lines), so it is used when present.
// One line per kernel and architecture: registers, spill stores/loads, stack frame, shared memory, the source file.
// A kernel that spills is a defect (its registers went to local memory, which is slow in a hot loop): the exit status
// is 1 when any kernel spills or the build fails, 0 otherwise, and 0 with a note when there is no nvcc (a CPU-only
// machine has no CUDA kernels to report). Ends with a line `ptxas: N kernels, N spill` that CI greps.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;

function buildLog() {
  const nvcc = has('nvcc') || existsSync('/usr/local/cuda/bin/nvcc');
  if (!nvcc) {
    console.log('ptxas: no nvcc on this machine: no CUDA kernels to report');
    console.log('ptxas: 0 kernels, 0 spill');
    process.exit(0);
  }
  const dir = join(root, 'build-ptxas');
  // A fresh folder each time: an up-to-date object would print nothing, and its kernels would be missing.
  rmSync(dir, { recursive: true, force: true });
  const gen = has('ninja') ? ['-G', 'Ninja'] : [];
  const conf = spawnSync('cmake', ['-S', root, '-B', dir, ...gen, '-DCMAKE_BUILD_TYPE=Release', '-DLLMK_ADDON=OFF',
    '-DLLMK_CUDA=ON', '-DLLMK_PTXAS_VERBOSE=ON'], { encoding: 'utf8' });
  if (conf.status !== 0) {
    process.stdout.write(conf.stdout + conf.stderr);
    console.log('ptxas: configure failed');
    process.exit(1);
  }
  const jobs = process.env.LK_PTXAS_JOBS ?? '2';
  const b = spawnSync('cmake', ['--build', dir, '-j', jobs, '--target', 'llmk_core'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const log = `${b.stdout}${b.stderr}`;
  if (b.status !== 0) {
    process.stdout.write(log.split('\n').filter((l) => /error|Error|FAILED/.test(l)).slice(0, 40).join('\n') + '\n');
    console.log('ptxas: build failed');
    process.exit(1);
  }
  return log;
}

const log = process.argv[2] ? readFileSync(process.argv[2], 'utf8') : buildLog();

// Walk the log: ninja's "[i/n] Building CUDA object .../native/cuda/x.cu.o" names the file whose ptxas lines follow.
const kernels = [];
let file = '?';
let cur = null;
for (const line of log.split('\n')) {
  let m = /Building CUDA object \S*?((?:native)\/\S+?\.cu)\.o/.exec(line);
  if (m) { file = m[1]; continue; }
  m = /Compiling entry function '([^']+)' for '(sm_\w+)'/.exec(line);
  if (m) {
    cur = { mangled: m[1], arch: m[2], file, regs: 0, spillSt: 0, spillLd: 0, stack: 0, smem: 0 };
    kernels.push(cur);
    continue;
  }
  if (!cur) continue;
  m = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
  if (m) { cur.stack = +m[1]; cur.spillSt = +m[2]; cur.spillLd = +m[3]; continue; }
  m = /Used (\d+) registers/.exec(line);
  if (m) {
    cur.regs = +m[1];
    const s = /(\d+) bytes smem/.exec(line);
    cur.smem = s ? +s[1] : 0;
    cur = null;
  }
}

// Demangled, without the namespace noise, so that a reader sees which kernel and which template arguments.
const names = kernels.map((k) => k.mangled);
let pretty = names;
if (names.length && has('c++filt')) {
  const r = spawnSync('c++filt', [], { input: names.join('\n'), encoding: 'utf8' });
  if (r.status === 0) pretty = r.stdout.trim().split('\n');
}
kernels.forEach((k, i) => {
  k.name = (pretty[i] ?? k.mangled).replace(/lk::\(anonymous namespace\)::/g, '').replace(/lk::/g, '')
    .replace(/\(anonymous namespace\)::/g, '');
});
kernels.sort((a, b) => a.file.localeCompare(b.file) || a.name.localeCompare(b.name) || a.arch.localeCompare(b.arch));

const spilling = kernels.filter((k) => k.spillSt > 0 || k.spillLd > 0);
console.log('arch     regs  spill st/ld  stack  smem  file / kernel');
for (const k of kernels) {
  const flag = k.spillSt || k.spillLd ? '  <-- SPILLS' : '';
  const name = k.name.length > 150 ? `${k.name.slice(0, 147)}...` : k.name;
  console.log(`${k.arch.padEnd(8)} ${String(k.regs).padStart(4)}  ${`${k.spillSt}/${k.spillLd}`.padStart(11)}  ` +
    `${String(k.stack).padStart(5)}  ${String(k.smem).padStart(5)}  ${k.file}: ${name}${flag}`);
}
const maxRegs = kernels.reduce((m, k) => Math.max(m, k.regs), 0);
console.log(`ptxas: ${kernels.length} kernels, ${spilling.length} spill (max ${maxRegs} registers)`);
if (kernels.length === 0) console.log('ptxas: no kernel found in the log (was -Xptxas -v on?)');
// exitCode, not exit(): exit() drops what is still queued for a piped stdout (CI's `| tee` kept 468 of 790 lines).
process.exitCode = kernels.length === 0 || spilling.length ? 1 : 0;
