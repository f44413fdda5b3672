#!/usr/bin/env node
// `npm test`: the native tests, lk_check (every op on every available backend against its reference) and
// lk_dist_check (the collectives of the shm backend with 3 ranks, and of the mpi backend under mpirun when OpenMPI is
// installed), then the vitest suite. Ends with one line `N passed, N failed` over all three (CI reads it), and exits non-zero on any
// failure. Runs the tools from build/tools (built by `npm install`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
let passed = 0;
let failed = 0;
let skipped = 0;

function run(label, cmd, args) {
  process.stdout.write(`\n=== ${label}: ${[cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 256 << 20 });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  const lines = `${r.stdout ?? ''}`.trim().split('\n');
  const summary = lines.reverse().find((l) => /^\s*(?:\S+: )?\d+ passed, \d+ failed/.test(l));
  const m = summary && /(\d+) passed, (\d+) failed(?:, (\d+) skipped)?/.exec(summary);
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
    skipped += Number(m[3] ?? 0);
  }
  if (r.status !== 0 || r.signal) {
    // A crash or a non-zero exit with no failure counted is still a failure.
    if (!m || Number(m[2]) === 0) failed += 1;
    process.stdout.write(`${label}: exited with ${r.signal ?? r.status}\n`);
  }
}

for (const tool of ['lk_native_tests', 'lk_check']) {
  const p = join(root, 'build', 'tools', tool);
  if (existsSync(p)) run(tool, p, []);
  else {
    process.stdout.write(`${tool}: not built (${p}); run npm install\n`);
    failed += 1;
  }
}
const distCheck = join(root, 'build', 'tools', 'lk_dist_check');
if (existsSync(distCheck)) {
  run('lk_dist_check shm', distCheck, ['--backend', 'shm', '--world', '3']);
  if (spawnSync('mpirun', ['--version']).status === 0)
    run('lk_dist_check mpi', 'mpirun', ['--allow-run-as-root', '--oversubscribe', '-np', '2', distCheck, '--backend', 'mpi']);
  else process.stdout.write('\nlk_dist_check mpi: skipped (no mpirun: apt-get install openmpi-bin)\n');
} else {
  process.stdout.write(`lk_dist_check: not built (${distCheck}); run npm install\n`);
  failed += 1;
}
run('vitest', process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...process.argv.slice(2)]);

process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
