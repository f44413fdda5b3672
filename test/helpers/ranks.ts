/**
 * Spawning the ranks of a process group for the dist tests: each rank a Node process running a fixture from
 * test/dist/fixtures (compiled dist/ code: a child process cannot load the TypeScript sources), with the
 * environment `llm-kernels launch` would give it. Output is collected as JSON lines.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { packageRoot } from '../../lib/binding.js';

export const FIXTURES = join(packageRoot, 'test', 'dist', 'fixtures');

export interface RankRun {
  rank: number;
  child: ChildProcess;
  /** Parsed JSON lines written so far. */
  lines: Record<string, unknown>[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A fresh shm group name, unique per call. */
export function groupName(tag: string): string {
  return `lktest-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Starts `world` ranks of `fixture` with RANK/WORLD_SIZE/LLM_KERNELS_GROUP and `env`. */
export function startRanks(fixture: string, world: number, env: Record<string, string> = {}, name = groupName('g')): RankRun[] {
  const runs: RankRun[] = [];
  for (let rank = 0; rank < world; rank++) {
    const child = spawn(process.execPath, [join(FIXTURES, fixture)], {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(world), LLM_KERNELS_GROUP: name, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: RankRun = { rank, child, lines: [], stderr: '', exited: undefined as never };
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          run.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          run.stderr += `[stdout] ${line}\n`;
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()));
    run.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    runs.push(run);
  }
  return runs;
}

/** Waits until `pred` holds (polling), or rejects after ms. */
export async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Kills every rank still running (SIGKILL) and waits for them. */
export async function killAll(runs: RankRun[]): Promise<void> {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await Promise.all(runs.map((r) => r.exited));
}

/** Whether a process exists (a zombie counts as gone: it runs nothing). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const st = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return st !== '' && !st.startsWith('Z');
}
