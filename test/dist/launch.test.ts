// The launcher (`llm-kernels launch`, lib/dist/launch.ts) and its orphan watchdog (lib/dist/launch-watchdog.ts):
// the ranks' environment, whole prefixed lines, failure propagation and escalation, signal forwarding, no orphans
// after a SIGKILL of the launcher, stdin, and argument errors. Spawns the compiled CLI and watchdog: run
// `npm run build` first. Run with `npx vitest run test/dist/launch.test.ts`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { LAUNCH_ENV_VARS, launch, type LaunchOutput } from '../../lib/dist/launch.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const watchdog = join(root, 'dist', 'dist', 'launch-watchdog.js');
const fixture = (name: string): string => join(root, 'test', 'dist', 'fixtures', name);

beforeAll(() => {
  for (const f of [cli, watchdog, join(root, 'dist', 'dist', 'launch.js')])
    if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build before this test`);
});

/** A LaunchOutput that keeps everything written to it. */
function collector(): LaunchOutput & { text: () => string } {
  const chunks: Buffer[] = [];
  return { write: (c: Uint8Array) => (chunks.push(Buffer.from(c)), true), text: () => Buffer.concat(chunks).toString('utf8') };
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

/** True once the process is gone: no such pid, or a zombie (dead, waiting for a parent that is not us to reap it). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw e;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true; // /proc entry vanished between the two checks
  }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const end = Date.now() + ms;
  let alive = pids;
  while ((alive = alive.filter((p) => !gone(p))).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return alive;
}

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stdout has `n` lines `[rank R] pid P`, with the pids by rank. */
  pids: (n: number) => Promise<number[]>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node dist/cli/main.js launch ...args`. */
function runCli(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}): Cli {
  const child = spawn(process.execPath, [cli, 'launch', ...args], {
    cwd: root,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout!.setEncoding('utf8').on('data', (s: string) => ((out += s), waiters.splice(0).forEach((w) => w())));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  child.stdin!.end(opts.stdin ?? '');
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const pids = (n: number): Promise<number[]> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${n} pids within 10 s; stdout: ${out}; stderr: ${err}`)), 10_000);
      const check = (): void => {
        const found = [...out.matchAll(/^\[rank (\d+)\] pid (\d+)$/gm)];
        if (found.length >= n) {
          clearTimeout(timer);
          const byRank: number[] = [];
          for (const m of found) byRank[Number(m[1])] = Number(m[2]);
          resolve(byRank);
        } else waiters.push(check);
      };
      check();
    });
  return { child, stdout: () => out, stderr: () => err, pids, exit };
}

describe('launch: environment and output', () => {
  it('(a) 3 ranks: every line prefixed, the rank environment, one group id, the script arguments untouched', async () => {
    const c = runCli(['--nproc', '3', fixture('launch-env.mjs'), '--foo', '1', '-x', '--nproc', '7']);
    const { code } = await c.exit;
    expect(c.stderr().split('\n').filter((l) => l && !l.startsWith('[rank ')), c.stderr()).toEqual([]);
    expect(code).toBe(0);
    const out = lines(c.stdout());
    expect(out).toHaveLength(3);
    const groups = new Set<string>();
    const ports = new Set<string>();
    for (const l of out) {
      const m = /^\[rank (\d)\] RANK=(\d) WORLD_SIZE=(\d) LOCAL_RANK=(\d) LOCAL_WORLD_SIZE=(\d) GROUP_RANK=(\d) MASTER_ADDR=(\S+) MASTER_PORT=(\d+) LLM_KERNELS_GROUP=(\S+) FD_ENV=(\S+) ARGS=(.*)$/.exec(l);
      expect(m, l).not.toBeNull();
      const [, prefixRank, rank, world, localRank, localWorld, groupRank, addr, port, group, fdEnv, argv] = m!;
      expect([rank, localRank]).toEqual([prefixRank, prefixRank]);
      expect([world, localWorld, groupRank, addr]).toEqual(['3', '3', '0', '127.0.0.1']);
      expect(Number(port)).toBeGreaterThan(0);
      expect(group).toMatch(/^launch-\d+-[0-9a-f]{8}$/);
      expect(fdEnv).toBe('unset'); // the watchdog took LLM_KERNELS_LAUNCHER_FD out of the script's env
      expect(JSON.parse(argv!)).toEqual(['--foo', '1', '-x', '--nproc', '7']);
      groups.add(group!);
      ports.add(port!);
    }
    expect(out.map((l) => l.slice(0, 9)).sort()).toEqual(['[rank 0] ', '[rank 1] ', '[rank 2] ']);
    expect(groups.size).toBe(1);
    expect(ports.size).toBe(1);
    expect(lines(c.stderr()).sort()).toEqual(['[rank 0] stderr of rank 0', '[rank 1] stderr of rank 1', '[rank 2] stderr of rank 2']);
    expect(LAUNCH_ENV_VARS).toEqual(['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'LLM_KERNELS_GROUP']);
  });

  it('(b) lines written in pieces by 3 ranks at once come out whole, in order per rank; a last partial line is flushed at exit', async () => {
    const stdout = collector();
    const stderr = collector();
    const r = await launch({ nproc: 3, script: fixture('launch-lines.mjs'), stdout, stderr });
    expect(stderr.text()).toBe('');
    expect(r.code).toBe(0);
    expect(r.results).toEqual([0, 1, 2].map((rank) => ({ rank, code: 0, signal: null })));
    expect(stdout.text().endsWith('\n')).toBe(true);
    const byRank: string[][] = [[], [], []];
    for (const l of lines(stdout.text())) {
      const m = /^\[rank (\d)\] (.*)$/.exec(l);
      expect(m, l).not.toBeNull();
      byRank[Number(m![1])]!.push(m![2]!);
    }
    for (let rank = 0; rank < 3; rank++) {
      const want: string[] = [];
      for (let i = 0; i < 20; i++) {
        want.push(`${rank}:${i}:` + String(rank).repeat(50 + i));
        if (i % 5 === 0) want.push(`${rank}:x${i}:two-lines`);
      }
      want.push(`${rank}:tail-without-newline`);
      expect(byRank[rank]).toEqual(want);
    }
  });

  it('rank 0 reads the launcher\'s stdin; the other ranks get none', async () => {
    const c = runCli(['--nproc', '2', fixture('launch-stdin.mjs')], { stdin: 'hello\nworld\n' });
    expect((await c.exit).code).toBe(0);
    expect(lines(c.stdout()).sort()).toEqual(['[rank 0] stdin "HELLO\\nWORLD\\n"', '[rank 1] stdin ""']);
  });
});

describe('launch: failures', () => {
  it('(c) rank 1 exits with code 3: the others get SIGTERM, the launch resolves with code 3 and failedRank 1', async () => {
    const stdout = collector();
    const stderr = collector();
    const t0 = Date.now();
    const r = await launch({ nproc: 3, script: fixture('launch-fail.mjs'), stdout, stderr });
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(r.code).toBe(3);
    expect(r.failedRank).toBe(1);
    expect(r.signal).toBeUndefined();
    expect(r.results).toEqual([
      { rank: 0, code: null, signal: 'SIGTERM' },
      { rank: 1, code: 3, signal: null },
      { rank: 2, code: null, signal: 'SIGTERM' },
    ]);
    expect(stderr.text()).toBe('llm-kernels launch: rank 1 exited with code 3; stopping the other 2 ranks\n');
    const pids = [...stdout.text().matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(3);
    expect(await waitGone(pids, 1000)).toEqual([]);
  });

  it('(d) a rank killed by SIGKILL: the others are stopped, code 137', async () => {
    const stderr = collector();
    const r = await launch({ nproc: 3, script: fixture('launch-fail.mjs'), env: { FAIL_SIGNAL: '1', FAIL_RANK: '2' }, stdout: collector(), stderr });
    expect(r).toMatchObject({ code: 137, signal: 'SIGKILL', failedRank: 2 });
    expect(r.results.map((x) => x.signal)).toEqual(['SIGTERM', 'SIGTERM', 'SIGKILL']);
    expect(stderr.text()).toBe('llm-kernels launch: rank 2 exited with signal SIGKILL; stopping the other 2 ranks\n');
  });

  it('ranks that ignore SIGTERM get SIGKILL after killGraceMs', async () => {
    const stdout = collector();
    const t0 = Date.now();
    const r = await launch({
      nproc: 3,
      script: fixture('launch-fail.mjs'),
      env: { IGNORE_TERM: '1', FAIL_RANK: '0', FAIL_CODE: '5', FAIL_DELAY_MS: '800' },
      killGraceMs: 400,
      stdout,
      stderr: collector(),
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);
    expect(r).toMatchObject({ code: 5, failedRank: 0 });
    expect(r.results.map((x) => x.signal)).toEqual([null, 'SIGKILL', 'SIGKILL']);
    expect(stdout.text()).toContain('[rank 1] ignoring SIGTERM\n');
  });
});

describe('launch: the launcher process', () => {
  it('(e) the launcher killed with SIGKILL: every rank is gone within 3 s', async () => {
    const c = runCli(['--nproc', '3', fixture('launch-sleep.mjs')]);
    const pids = await c.pids(3);
    expect(pids.every((p) => !gone(p))).toBe(true);
    c.child.kill('SIGKILL');
    expect((await c.exit).signal).toBe('SIGKILL');
    expect(await waitGone(pids, 3000)).toEqual([]);
  });

  it('SIGINT to the launcher is forwarded: the ranks stop, the launcher exits with 130', async () => {
    const c = runCli(['--nproc', '2', fixture('launch-sleep.mjs')]);
    const pids = await c.pids(2);
    c.child.kill('SIGINT');
    const { code } = await c.exit;
    expect(code).toBe(130);
    expect(c.stderr()).toContain('llm-kernels launch: received SIGINT; stopping the 2 running ranks\n');
    expect(await waitGone(pids, 1000)).toEqual([]);
  });

  it('the watchdog does nothing without a launcher pipe: env var unset, or set with no fd 3', () => {
    const url = pathToFileURL(watchdog).href;
    for (const env of [{}, { LLM_KERNELS_LAUNCHER_FD: '3' }]) {
      const r = spawnSync(process.execPath, ['--import', url, fixture('launch-env.mjs'), 'z'], {
        env: { ...process.env, ...env, RANK: '5' },
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^RANK=5 .* FD_ENV=unset ARGS=\["z"\]\n$/);
    }
  });
});

describe('launch: arguments', () => {
  const script = fixture('launch-env.mjs');
  it('(f) bad options throw before anything starts, with the house message', () => {
    /** launch(o) must throw synchronously an error of class `cls` with exactly `message` (or matching it) and Node's code. */
    const throws = (o: unknown, cls: typeof TypeError | typeof RangeError, message: string | RegExp): void => {
      let err: unknown;
      try {
        void launch(o as Parameters<typeof launch>[0]);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(o)).toBeInstanceOf(cls);
      if (typeof message === 'string') expect((err as Error).message).toBe(message);
      else expect((err as Error).message).toMatch(message);
      expect((err as { code?: string }).code).toBe(cls === TypeError ? 'ERR_INVALID_ARG_TYPE' : 'ERR_OUT_OF_RANGE');
    };
    throws({ nproc: 0, script }, RangeError, 'launch: expected an integer in [1, 256] for nproc, got 0');
    throws({ nproc: 257, script }, RangeError, 'launch: expected an integer in [1, 256] for nproc, got 257');
    throws({ nproc: 1.5, script }, RangeError, 'launch: expected an integer in [1, 256] for nproc, got 1.5');
    throws({ nproc: '2', script }, TypeError, 'launch: expected an integer for nproc, got "2"');
    throws({ nproc: 2, script: 'nope.mjs' }, RangeError, 'launch: expected the path of an existing file for script, got "nope.mjs" (no such file)');
    throws({ nproc: 2, script: join(root, 'test', 'dist', 'fixtures', 'nope.mjs') }, RangeError, /^launch: expected the path of an existing file for script, got ".*" \(no such file\)$/);
    throws({ nproc: 2, script: root }, RangeError, /^launch: expected the path of an existing file for script, got ".*" \(not a file\)$/);
    throws({ nproc: 2, script: 42 }, TypeError, 'launch: expected a path string for script, got 42');
    throws({ nproc: 2, script, args: 'x' }, TypeError, 'launch: expected an array of strings for args, got "x"');
    throws({ nproc: 2, script, nodeArgs: [1] }, TypeError, 'launch: expected an array of strings for nodeArgs, got [1]');
    throws({ nproc: 2, script, env: { A: 1 } }, TypeError, 'launch: expected a string or undefined for env.A, got 1');
    throws({ nproc: 2, script, killGraceMs: -1 }, RangeError, 'launch: expected an integer in [0, 2147483647] for killGraceMs, got -1');
    throws({ nproc: 2, script, stdout: 1 }, TypeError, 'launch: expected a writable stream for stdout, got 1');
    throws({ nproc: 2, script, forwardSignals: 'yes' }, TypeError, 'launch: expected a boolean for forwardSignals, got "yes"');
    throws(null, TypeError, 'launch: expected an options object for options, got null');
  });

  it('(f) the CLI: --nproc 0 and a missing script exit 1 with the message', async () => {
    const a = runCli(['--nproc', '0', script]);
    expect((await a.exit).code).toBe(1);
    expect(a.stderr()).toContain('launch: expected an integer in [1, 256] for --nproc, got "0"');
    const b = runCli(['--nproc', '2', 'nope.mjs']);
    expect((await b.exit).code).toBe(1);
    expect(b.stderr()).toContain('launch: expected the path of an existing file for script, got "nope.mjs" (no such file)');
    expect(b.stdout()).toBe('');
  });
});
