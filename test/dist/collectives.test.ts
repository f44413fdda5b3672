// Collectives of the shm backend (and MPI under mpirun when OpenMPI is installed) across real processes: every
// collective x f32/f16/bf16 x sizes 1, 7, 33, 1000003, checked by each rank bit for bit against the spec (rank
// order, f32 accumulation, one rounding) and against a float64 sum within its error bound; every rank's outputs
// must hash alike. The checks themselves live in fixtures/collectives-rank.mjs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { FIXTURES, groupName, killAll, startRanks } from '../helpers/ranks.js';

interface RankReport {
  rank: number;
  worldSize: number;
  backend: string;
  failures: string[];
  hashes: Record<string, string>;
}

function checkReports(reports: RankReport[], world: number, backend: string): void {
  expect(reports.map((r) => r.rank).sort()).toEqual(Array.from({ length: world }, (_, i) => i));
  for (const r of reports) {
    expect(r.worldSize).toBe(world);
    expect(r.backend).toBe(backend);
    expect(r.failures, `rank ${r.rank}`).toEqual([]);
    expect(Object.keys(r.hashes).length).toBeGreaterThan(40);
    expect(r.hashes, `rank ${r.rank}'s outputs equal rank 0's bit for bit`).toEqual(reports[0]!.hashes);
  }
}

describe('shm collectives against the spec and float64', () => {
  it.each([2, 3, 4])('world size %i', async (world) => {
    const runs = startRanks('collectives-rank.mjs', world);
    try {
      const exits = await Promise.all(runs.map((r) => r.exited));
      for (const [i, e] of exits.entries()) expect(e.code, `rank ${i}: ${runs[i]!.stderr}`).toBe(0);
      checkReports(runs.map((r) => r.lines.at(-1) as unknown as RankReport), world, 'shm');
    } finally {
      await killAll(runs);
    }
  }, 120_000);
});

describe('shm collectives between worker threads of one process', () => {
  // Each environment has its own CPU stream, so ranks that are threads of one process do not block each other.
  it.each([2, 3])('world size %i', async (world) => {
    const name = groupName('w');
    const workers = Array.from(
      { length: world },
      (_, rank) => new Worker(join(FIXTURES, 'collectives-rank.mjs'), { env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), LLM_KERNELS_GROUP: name } }),
    );
    try {
      const reports = await Promise.all(
        workers.map((w) => new Promise<RankReport>((resolve, reject) => (w.once('message', resolve), w.once('error', reject)))),
      );
      checkReports(reports, world, 'shm');
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  }, 120_000);
});

const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
const haveMpi = mpirun.status === 0;

describe('mpi collectives under mpirun', () => {
  it.skipIf(!haveMpi)('world size 2 (needs OpenMPI: apt-get install openmpi-bin)', () => {
    // Under the ASan suite (.ci/run) the ranks need libasan preloaded, mpirun itself does not: pass it with -x.
    const { LD_PRELOAD, ...env } = process.env;
    const preload = LD_PRELOAD ? ['-x', `LD_PRELOAD=${LD_PRELOAD}`] : [];
    const dir = mkdtempSync(join(tmpdir(), 'lk-mpi-'));
    const r = spawnSync(
      'mpirun',
      ['--allow-run-as-root', '--oversubscribe', '-np', '2', ...preload, process.execPath, join(FIXTURES, 'collectives-rank.mjs')],
      { encoding: 'utf8', timeout: 110_000, env: { ...env, LK_TEST_BACKEND: 'mpi', LK_REPORT_DIR: dir } },
    );
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const reports = [0, 1].map((rank) => JSON.parse(readFileSync(join(dir, `rank-${rank}.json`), 'utf8')) as RankReport);
    checkReports(reports, 2, 'mpi');
  }, 120_000);
});
