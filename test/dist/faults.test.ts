// Faults of a process group across real processes: a rank killed with SIGKILL at a random point (20 times), a
// rank that stops calling, a rank that never joins, and ranks whose calls do not match. The survivors must fail
// with ERR_PEER_LOST / ERR_TIMEOUT / ERR_COLLECTIVE_MISMATCH within the deadline + 2 s, later calls must throw at
// once, and no process may be left behind.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../lib/random.js';
import { alive, FIXTURES, killAll, startRanks, until, type RankRun } from '../helpers/ranks.js';

type Line = { rank: number; pid?: number; code?: string; message?: string; at?: number; laterCall?: string; ok?: boolean; stalled?: boolean };
const lines = (r: RankRun) => r.lines as unknown as Line[];
const find = (r: RankRun, key: keyof Line) => lines(r).find((l) => l[key] !== undefined);

describe('a rank killed with SIGKILL', () => {
  it('20 times at a random point: the survivors fail in time, nothing hangs, no process is left', async () => {
    const rng = new Rng(2026);
    const timeoutMs = 3000;
    for (let trial = 0; trial < 20; trial++) {
      const world = 3;
      const runs = startRanks('fault-rank.mjs', world, { LK_MODE: 'loop', LK_TIMEOUT_MS: String(timeoutMs) });
      try {
        await until(() => runs.every((r) => find(r, 'pid')), 30_000, 'every rank to join');
        await new Promise((r) => setTimeout(r, rng.int(0, 300)));
        const victim = runs[rng.int(0, world - 1)]!;
        const killedAt = Date.now();
        victim.child.kill('SIGKILL');
        const survivors = runs.filter((r) => r !== victim);
        await until(() => survivors.every((r) => find(r, 'laterCall')), timeoutMs + 10_000, `trial ${trial}: the survivors to report`);
        for (const s of survivors) {
          const err = find(s, 'code')!;
          expect(['ERR_PEER_LOST', 'ERR_TIMEOUT'], `trial ${trial} rank ${s.rank}: ${err.message}`).toContain(err.code);
          expect(err.at! - killedAt, `trial ${trial} rank ${s.rank}: reported within the deadline + 2 s`).toBeLessThanOrEqual(timeoutMs + 2000);
          expect(find(s, 'laterCall')!.laterCall, 'the group is failed: a later call throws at once').toBe(err.code);
        }
        const exits = await Promise.all(survivors.map((r) => r.exited));
        for (const e of exits) expect(e.code).toBe(0);
        for (const r of runs) expect(alive(find(r, 'pid')!.pid!), `trial ${trial}: rank ${r.rank} is gone`).toBe(false);
      } finally {
        await killAll(runs);
      }
    }
  }, 240_000);
});

describe('deadlines', () => {
  it('a rank that stops calling: the others get ERR_TIMEOUT within the deadline + 2 s, naming it', async () => {
    const timeoutMs = 1500;
    const runs = startRanks('fault-rank.mjs', 3, { LK_MODE: 'stall', LK_TIMEOUT_MS: String(timeoutMs) });
    try {
      const staller = runs[2]!;
      await until(() => Boolean(find(staller, 'stalled')), 30_000, 'rank 2 to stall');
      const stalledAt = Date.now();
      await until(() => runs.slice(0, 2).every((r) => find(r, 'laterCall')), timeoutMs + 10_000, 'ranks 0 and 1 to report');
      for (const r of runs.slice(0, 2)) {
        const err = find(r, 'code')!;
        expect(err.code, err.message).toBe('ERR_TIMEOUT');
        expect(err.message).toMatch(/allReduce #\d+ \(sum, 4096 x f32\).*still missing: rank 2/);
        expect(err.at! - stalledAt).toBeLessThanOrEqual(timeoutMs + 2000);
        expect(find(r, 'laterCall')!.laterCall).toBe('ERR_TIMEOUT');
      }
    } finally {
      await killAll(runs);
    }
  }, 60_000);

  it('a rank that never joins: initProcessGroup rejects with ERR_TIMEOUT after initTimeoutMs', async () => {
    const runs = startRanks('fault-rank.mjs', 2, { LK_MODE: 'init', LK_INIT_TIMEOUT_MS: '1000' });
    try {
      const t0 = Date.now();
      await until(() => Boolean(find(runs[0]!, 'code')), 15_000, 'rank 0 to give up');
      const err = find(runs[0]!, 'code')!;
      expect(err.code, err.message).toBe('ERR_TIMEOUT');
      expect(err.message).toMatch(/initProcessGroup.*still missing: rank 1/);
      expect(err.at! - t0).toBeLessThan(1000 + 2000 + 5000); // + process start
    } finally {
      await killAll(runs);
    }
  }, 60_000);
});

describe('mismatched calls', () => {
  it.each([
    ['count', /rank 0: allReduce #1 \(sum, 10 x f32\); rank 1: allReduce #1 \(sum, 11 x f32\)/],
    ['dtype', /rank 0: allReduce #1 \(sum, 11 x f16\); rank 1: allReduce #1 \(sum, 11 x f32\)/],
    ['order', /rank 0: allGather #1 \(11 x f32\); rank 1: allReduce #1 \(sum, 11 x f32\)/],
  ])('%s: every rank fails with ERR_COLLECTIVE_MISMATCH naming each call', async (mode, re) => {
    const runs = startRanks('fault-rank.mjs', 2, { LK_MODE: mode });
    try {
      await Promise.all(runs.map((r) => r.exited));
      for (const r of runs) {
        const err = find(r, 'code');
        expect(err?.code, r.stderr).toBe('ERR_COLLECTIVE_MISMATCH');
        expect(err!.message).toMatch(re);
        expect(find(r, 'laterCall')!.laterCall).toBe('ERR_COLLECTIVE_MISMATCH');
      }
    } finally {
      await killAll(runs);
    }
  }, 60_000);

  it('debug mode also tells apart the same call made from different lines', async () => {
    for (const debug of ['0', '1']) {
      const runs = startRanks('fault-rank.mjs', 2, { LK_MODE: 'site', LK_DEBUG: debug });
      try {
        await Promise.all(runs.map((r) => r.exited));
        for (const r of runs) {
          if (debug === '1') expect(find(r, 'code')?.code, r.stderr).toBe('ERR_COLLECTIVE_MISMATCH');
          else expect(find(r, 'ok')?.ok, r.stderr).toBe(true);
        }
      } finally {
        await killAll(runs);
      }
    }
  }, 60_000);
});

const haveMpi = spawnSync('mpirun', ['--version']).status === 0;

describe('the mpi backend under mpirun', () => {
  // Under the ASan suite the ranks need libasan preloaded, mpirun itself does not.
  const { LD_PRELOAD, ...env } = process.env;
  const mpirun = (mode: string, extra: Record<string, string>) =>
    spawn(
      'mpirun',
      ['--allow-run-as-root', '--oversubscribe', '-np', '2', ...(LD_PRELOAD ? ['-x', `LD_PRELOAD=${LD_PRELOAD}`] : []), process.execPath, join(FIXTURES, 'fault-rank.mjs')],
      { env: { ...env, LK_MODE: mode, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
  const collect = (p: ReturnType<typeof mpirun>) => {
    const lines: Line[] = [];
    let buf = '';
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) {
        try {
          lines.push(JSON.parse(buf.slice(0, nl)) as Line);
        } catch {
          // mpirun's own messages
        }
      }
    });
    const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    return { lines, exited };
  };

  it.skipIf(!haveMpi)('mismatched counts: both ranks fail with ERR_COLLECTIVE_MISMATCH and exit cleanly (needs OpenMPI)', async () => {
    const p = mpirun('count', {});
    const { lines, exited } = collect(p);
    expect(await exited).toBe(0);
    for (const r of [0, 1]) {
      const err = lines.find((l) => l.rank === r && l.code);
      expect(err?.code, JSON.stringify(lines)).toBe('ERR_COLLECTIVE_MISMATCH');
      expect(err!.message).toMatch(/rank 0: allReduce #1 \(sum, 10 x f32\).*rank 1: allReduce #1 \(sum, 11 x f32\)/);
      expect(lines.find((l) => l.rank === r && l.laterCall)?.laterCall).toBe('ERR_COLLECTIVE_MISMATCH');
    }
  }, 60_000);

  it.skipIf(!haveMpi)('a rank that stops calling: the other gets ERR_TIMEOUT within the deadline + 2 s (needs OpenMPI)', async () => {
    const timeoutMs = 1500;
    const p = mpirun('stall', { LK_TIMEOUT_MS: String(timeoutMs) });
    const { lines, exited } = collect(p);
    try {
      await until(() => lines.some((l) => l.stalled), 30_000, 'rank 1 to stall');
      const stalledAt = Date.now();
      await until(() => lines.some((l) => l.rank === 0 && l.laterCall), timeoutMs + 10_000, 'rank 0 to report');
      const err = lines.find((l) => l.rank === 0 && l.code)!;
      expect(err.code, err.message).toBe('ERR_TIMEOUT');
      expect(err.at! - stalledAt).toBeLessThanOrEqual(timeoutMs + 2000);
      expect(lines.find((l) => l.rank === 0 && l.laterCall)!.laterCall).toBe('ERR_TIMEOUT');
    } finally {
      p.kill('SIGTERM');
      await exited;
    }
  }, 60_000);
});
