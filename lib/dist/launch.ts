/**
 * The launcher: `llm-kernels launch --nproc N script.js [args...]` runs N ranks of a Node.js script on this host,
 * like `torchrun --standalone --nproc-per-node N`.
 *
 * - Environment of every rank (on top of `process.env` and `options.env`): {@link LAUNCH_ENV_VARS}, i.e. RANK,
 *   WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE (= N), GROUP_RANK (0), MASTER_ADDR (127.0.0.1), MASTER_PORT (a free TCP
 *   port) and LLM_KERNELS_GROUP (an id unique to this launch; the shared-memory process group names its segment
 *   after it).
 * - Output: every line a rank writes to stdout / stderr is written to the launcher's stdout / stderr as
 *   `[rank R] <line>`. Lines are whole: a partial line is held until its newline, the rank's exit, or 64 KiB.
 * - Failure: when a rank exits non-zero or by a signal, the others get SIGTERM, then SIGKILL after `killGraceMs`;
 *   one line on stderr says which rank failed and how. SIGINT / SIGTERM to the launcher (`forwardSignals`, on in
 *   the CLI) are forwarded to the ranks with the same escalation; a second one sends SIGKILL at once.
 * - No orphans: every rank gets a pipe on fd 3 and preloads launch-watchdog.js (`node --import`), which kills the
 *   rank when that pipe reaches end-of-file, i.e. when the launcher is gone, even after a SIGKILL.
 * - stdin: rank 0 inherits the launcher's stdin; the other ranks get none (/dev/null).
 *
 * Run the tests with `npm run build && npx vitest run test/dist/launch.test.ts`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { rangeError, typeError } from '../errors.js';
import { checkInteger, checkObject, describe as describeValue, expected } from '../validate.js';

/**
 * The environment variables the launcher sets in every rank.
 * @example
 * // in a rank:
 * const rank = Number(process.env.RANK), worldSize = Number(process.env.WORLD_SIZE);
 */
export const LAUNCH_ENV_VARS = [
  'RANK',
  'WORLD_SIZE',
  'LOCAL_RANK',
  'LOCAL_WORLD_SIZE',
  'GROUP_RANK',
  'MASTER_ADDR',
  'MASTER_PORT',
  'LLM_KERNELS_GROUP',
] as const;

/** One of {@link LAUNCH_ENV_VARS}. */
export type LaunchEnvVar = (typeof LAUNCH_ENV_VARS)[number];

/**
 * Set to `3` in every rank: the fd of the launcher pipe that launch-watchdog.js watches. The watchdog removes it
 * from the rank's `process.env`, so the script and its children do not see it.
 */
export const LAUNCHER_FD_ENV = 'LLM_KERNELS_LAUNCHER_FD';

/** The most ranks one launch may start. */
export const MAX_NPROC = 256;

/** Default of {@link LaunchOptions.killGraceMs}: the time between SIGTERM and SIGKILL. */
export const DEFAULT_KILL_GRACE_MS = 5000;

/** A partial line longer than this is written out as a line of its own. */
const MAX_PENDING_LINE = 64 * 1024;
/** After a rank has exited, wait this long for the end of its output (a child it started may hold the pipes). */
const STDIO_DRAIN_MS = 2000;

/** A stream the launcher writes prefixed lines to (`process.stdout`, a file stream, a PassThrough...). */
export interface LaunchOutput {
  /** Writes a chunk; `false` means the caller should wait for 'drain'. */
  write(chunk: Uint8Array): boolean;
  /** Used for back-pressure when `write` returns false. */
  once?(event: 'drain', listener: () => void): unknown;
}

/**
 * Options of {@link launch}.
 * @example
 * const opts: LaunchOptions = { nproc: 4, script: 'train.js', args: ['--steps', '100'], killGraceMs: 2000 };
 */
export interface LaunchOptions {
  /** N, the number of ranks: an integer in [1, 256]. */
  nproc: number;
  /** The script every rank runs: a path to an existing file (relative paths are from the current directory). */
  script: string;
  /** The script's own arguments (default none). */
  args?: readonly string[];
  /** Extra Node.js options for every rank, before the script (e.g. `['--max-old-space-size=8192']`). */
  nodeArgs?: readonly string[];
  /**
   * Extra environment for every rank, on top of `process.env` (an `undefined` value removes a variable). The
   * launcher's own variables ({@link LAUNCH_ENV_VARS}) take precedence.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where the ranks' prefixed stdout lines go (default `process.stdout`). */
  stdout?: LaunchOutput;
  /** Where the ranks' prefixed stderr lines and the launcher's own messages go (default `process.stderr`). */
  stderr?: LaunchOutput;
  /** Milliseconds between SIGTERM and SIGKILL when stopping ranks: an integer in [0, 2^31 - 1] (default 5000). */
  killGraceMs?: number;
  /**
   * Forward SIGINT and SIGTERM received by this process to the ranks (then SIGKILL after `killGraceMs`; a second
   * signal kills at once). Default false; the CLI turns it on. While on, the launcher's process does not die of
   * these signals itself: it waits for its ranks.
   */
  forwardSignals?: boolean;
  /**
   * Prefix each line with `[rank R] ` (default true). `llm-kernels <command> --tp N` turns it off: there only rank 0
   * writes results, and the other ranks' errors name their rank themselves.
   */
  prefixOutput?: boolean;
}

/** How one rank ended: its exit code, or the signal that killed it (then `code` is null). */
export interface RankResult {
  /** The rank, 0..N-1. */
  rank: number;
  /** The exit code, or null when the rank was killed by a signal. */
  code: number | null;
  /** The signal that killed the rank, or null. */
  signal: NodeJS.Signals | null;
}

/** What {@link launch} resolves with. */
export interface LaunchResult {
  /**
   * 0 when every rank exited with 0; else the exit code of the first rank that failed (exited non-zero or by a
   * signal), 128 + the signal number for a signal. When the launcher was interrupted (`interrupted`) and every rank
   * still exited with 0: 128 + the number of that signal.
   */
  code: number;
  /** The signal that killed the first failed rank, if a signal did. */
  signal?: NodeJS.Signals;
  /** The first rank that failed, if any. */
  failedRank?: number;
  /** The signal the launcher received and forwarded (with `forwardSignals`), if any. */
  interrupted?: NodeJS.Signals;
  /** Every rank's end, indexed by rank. */
  results: RankResult[];
}

/** The exit status a shell would report for a process that ended this way: its code, or 128 + signal number. */
function shellCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (osConstants.signals[signal] ?? 0);
  return code ?? 1;
}

/**
 * A free TCP port on 127.0.0.1: listen on port 0, read the port the system chose, close. (Another process may take
 * it before it is used again; the launcher accepts that race, as torchrun does.)
 * @returns the port number
 * @throws Error when the system cannot open a listening socket
 * @example
 * const port = await findFreePort(); // e.g. 41735
 */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('findFreePort: no port assigned'))));
    });
  });
}

/** A new launch id, `launch-<pid>-<8 hex digits>` (only [A-Za-z0-9._-]). */
function newGroupId(): string {
  return `launch-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * The file URL of the compiled watchdog (dist/dist/launch-watchdog.js), or null when there is none. From the
 * compiled module it is the sibling file; from the TypeScript sources (lib/dist/launch.ts under vitest) the copy
 * that `npm run build` wrote into dist/.
 */
function watchdogUrl(): string | null {
  for (const rel of ['./launch-watchdog.js', '../../dist/dist/launch-watchdog.js']) {
    const url = new URL(rel, import.meta.url);
    if (url.protocol === 'file:' && existsSync(fileURLToPath(url))) return url.href;
  }
  return null;
}

function checkStringArray(param: string, v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw typeError(expected('launch', 'an array of strings', param, v));
  return v.slice() as string[];
}

function checkOutput(param: string, v: unknown): LaunchOutput | undefined {
  if (v === undefined) return undefined;
  if (v === null || typeof v !== 'object' || typeof (v as LaunchOutput).write !== 'function')
    throw typeError(expected('launch', 'a writable stream', param, v));
  return v as LaunchOutput;
}

interface CheckedOptions {
  nproc: number;
  script: string;
  args: string[];
  nodeArgs: string[];
  env: Record<string, string | undefined>;
  stdout: LaunchOutput;
  stderr: LaunchOutput;
  killGraceMs: number;
  forwardSignals: boolean;
  prefixOutput: boolean;
}

function checkOptions(options: unknown): CheckedOptions {
  const o = checkObject('launch', 'options', options);
  const nproc = checkInteger('launch', 'nproc', o.nproc, 1, MAX_NPROC);
  const script = o.script;
  if (typeof script !== 'string') throw typeError(expected('launch', 'a path string', 'script', script));
  const st = script === '' ? undefined : statSync(script, { throwIfNoEntry: false });
  if (!st || !st.isFile())
    throw rangeError(expected('launch', 'the path of an existing file', 'script', `${describeValue(script)} (${st ? 'not a file' : 'no such file'})`, true));
  const env: Record<string, string | undefined> = {};
  if (o.env !== undefined) {
    for (const [k, v] of Object.entries(checkObject('launch', 'env', o.env))) {
      if (v !== undefined && typeof v !== 'string') throw typeError(expected('launch', 'a string or undefined', `env.${k}`, v));
      env[k] = v;
    }
  }
  if (o.forwardSignals !== undefined && typeof o.forwardSignals !== 'boolean')
    throw typeError(expected('launch', 'a boolean', 'forwardSignals', o.forwardSignals));
  return {
    nproc,
    script,
    args: checkStringArray('args', o.args),
    nodeArgs: checkStringArray('nodeArgs', o.nodeArgs),
    env,
    stdout: checkOutput('stdout', o.stdout) ?? process.stdout,
    stderr: checkOutput('stderr', o.stderr) ?? process.stderr,
    killGraceMs: o.killGraceMs === undefined ? DEFAULT_KILL_GRACE_MS : checkInteger('launch', 'killGraceMs', o.killGraceMs, 0, 2 ** 31 - 1),
    forwardSignals: o.forwardSignals === true,
    prefixOutput: o.prefixOutput !== false,
  };
}

/** Writes to one output, pausing the sources that fed it while it asks for back-pressure. */
class Sink {
  private readonly paused = new Set<Readable>();
  private waiting = false;
  constructor(readonly out: LaunchOutput) {}
  write(buf: Uint8Array, source?: Readable): void {
    if (this.out.write(buf) || !source || typeof this.out.once !== 'function') return;
    source.pause();
    this.paused.add(source);
    if (this.waiting) return;
    this.waiting = true;
    this.out.once('drain', () => {
      this.waiting = false;
      for (const s of this.paused) s.resume();
      this.paused.clear();
    });
  }
}

/** Cuts one rank's stream into whole lines and writes each as `[rank R] <line>\n`. */
class LinePrefixer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  constructor(
    private readonly prefix: Buffer,
    private readonly sink: Sink,
  ) {}

  push(chunk: Buffer, source: Readable): void {
    const last = chunk.lastIndexOf(10);
    if (last < 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes >= MAX_PENDING_LINE) this.flush(source);
      return;
    }
    const whole = this.pendingBytes ? Buffer.concat([...this.pending, chunk.subarray(0, last + 1)]) : chunk.subarray(0, last + 1);
    this.pending = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : [];
    this.pendingBytes = chunk.length - last - 1;
    const parts: Buffer[] = [];
    for (let start = 0; start < whole.length; ) {
      const nl = whole.indexOf(10, start);
      parts.push(this.prefix, whole.subarray(start, nl + 1));
      start = nl + 1;
    }
    this.sink.write(Buffer.concat(parts), source);
  }

  /** Writes a held partial line, ended with a newline. */
  flush(source?: Readable): void {
    if (this.pendingBytes === 0) return;
    const line = Buffer.concat([this.prefix, ...this.pending, Buffer.from('\n')]);
    this.pending = [];
    this.pendingBytes = 0;
    this.sink.write(line, source);
  }
}

interface Rank {
  rank: number;
  child: ChildProcess;
  exited: boolean;
  /** stdout and stderr not yet ended */
  openStreams: number;
  drainTimer?: NodeJS.Timeout;
  done: boolean;
}

/**
 * Runs `nproc` ranks of a Node.js script on this host (`process.execPath`), each with the launch environment
 * ({@link LAUNCH_ENV_VARS}), and resolves when every rank has exited. Output lines are prefixed with `[rank R] `.
 * When a rank fails (non-zero exit or a signal) the others get SIGTERM, then SIGKILL after `killGraceMs`. Ranks
 * kill themselves if the launcher dies (see launch-watchdog.ts). Arguments are checked before anything starts:
 * argument errors are thrown, not returned as a rejected promise.
 * @param options - see {@link LaunchOptions}
 * @returns the exit code (0, or the first failed rank's), the failed rank and how every rank ended
 * @throws TypeError when an option has the wrong type (e.g. `script` not a string)
 * @throws RangeError when `nproc` is not an integer in [1, 256], `killGraceMs` is out of range, or `script` names
 *   no existing file
 * @example
 * const r = await launch({ nproc: 2, script: 'worker.js', args: ['--steps', '10'] });
 * if (r.code !== 0) console.error(`rank ${r.failedRank} failed`);
 * process.exitCode = r.code;
 */
export function launch(options: LaunchOptions): Promise<LaunchResult> {
  const o = checkOptions(options);
  return findFreePort().then((port) => runRanks(o, port));
}

function runRanks(o: CheckedOptions, port: number): Promise<LaunchResult> {
  return new Promise((resolve) => {
    const group = newGroupId();
    const out = new Sink(o.stdout);
    const err = new Sink(o.stderr);
    const note = (line: string): void => err.write(Buffer.from(`llm-kernels launch: ${line}\n`));
    const watchdog = watchdogUrl();
    if (!watchdog)
      note('warning: launch-watchdog.js not found next to launch.js (run npm run build); the ranks will not stop by themselves if the launcher is killed');
    const nodeArgs = watchdog ? ['--import', watchdog, ...o.nodeArgs] : o.nodeArgs;

    const results: RankResult[] = [];
    const ranks: Rank[] = [];
    let running = 0;
    let pending = o.nproc; // ranks not done (exited and output ended)
    let stopping = false;
    let failed: RankResult | undefined;
    let interrupted: NodeJS.Signals | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const killRunning = (sig: NodeJS.Signals): void => {
      for (const r of ranks) if (!r.exited) r.child.kill(sig);
    };
    const stopAll = (sig: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      killRunning(sig);
      if (running > 0) killTimer = setTimeout(() => killRunning('SIGKILL'), o.killGraceMs);
    };

    const onSignal = (sig: NodeJS.Signals): void => {
      if (interrupted || stopping) {
        note(`received ${sig} again; killing the ${running} running rank${running === 1 ? '' : 's'}`);
        killRunning('SIGKILL');
        return;
      }
      interrupted = sig;
      note(`received ${sig}; stopping the ${running} running rank${running === 1 ? '' : 's'}`);
      stopAll(sig);
    };
    const signals: NodeJS.Signals[] = o.forwardSignals ? ['SIGINT', 'SIGTERM'] : [];
    for (const s of signals) process.on(s, onSignal);

    const finish = (): void => {
      if (killTimer) clearTimeout(killTimer);
      for (const s of signals) process.off(s, onSignal);
      const res: LaunchResult = { code: 0, results };
      if (failed) {
        res.code = shellCode(failed.code, failed.signal);
        res.failedRank = failed.rank;
        if (failed.signal) res.signal = failed.signal;
      } else if (interrupted) {
        res.code = shellCode(null, interrupted);
      }
      if (interrupted) res.interrupted = interrupted;
      resolve(res);
    };

    const rankDone = (r: Rank): void => {
      if (r.done || !r.exited || r.openStreams > 0) return;
      r.done = true;
      if (r.drainTimer) clearTimeout(r.drainTimer);
      if (--pending === 0) finish();
    };

    const onExit = (r: Rank, code: number | null, signal: NodeJS.Signals | null): void => {
      if (r.exited) return;
      r.exited = true;
      running--;
      const result: RankResult = { rank: r.rank, code, signal };
      results[r.rank] = result;
      (r.child.stdio[3] as Readable | null | undefined)?.destroy();
      if ((code !== 0 || signal !== null) && !failed) {
        failed = result;
        if (!stopping) {
          const how = signal ? `signal ${signal}` : `code ${code}`;
          const rest = running > 0 ? `; stopping the other ${running} rank${running === 1 ? '' : 's'}` : '';
          note(`rank ${r.rank} exited with ${how}${rest}`);
          stopAll('SIGTERM');
        }
      }
      if (running === 0 && killTimer) clearTimeout(killTimer);
      if (r.openStreams > 0) {
        // Normally the pipes end right after the exit; a process the rank started may still hold them.
        r.drainTimer = setTimeout(() => {
          r.child.stdout?.destroy();
          r.child.stderr?.destroy();
        }, STDIO_DRAIN_MS);
      }
      rankDone(r);
    };

    for (let rank = 0; rank < o.nproc; rank++) {
      const env: Record<string, string | undefined> = {
        ...process.env,
        ...o.env,
        RANK: String(rank),
        WORLD_SIZE: String(o.nproc),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(o.nproc),
        GROUP_RANK: '0',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        LLM_KERNELS_GROUP: group,
        [LAUNCHER_FD_ENV]: watchdog ? '3' : undefined,
      };
      const child = spawn(process.execPath, [...nodeArgs, o.script, ...o.args], {
        env,
        stdio: [rank === 0 ? 'inherit' : 'ignore', 'pipe', 'pipe', 'pipe'],
      });
      const r: Rank = { rank, child, exited: false, openStreams: 0, done: false };
      ranks.push(r);
      running++;
      const prefix = Buffer.from(o.prefixOutput ? `[rank ${rank}] ` : '');
      for (const [stream, sink] of [
        [child.stdout, out],
        [child.stderr, err],
      ] as const) {
        if (!stream) continue;
        r.openStreams++;
        const lines = new LinePrefixer(prefix, sink);
        let ended = false;
        const end = (): void => {
          if (ended) return;
          ended = true;
          lines.flush();
          r.openStreams--;
          rankDone(r);
        };
        stream.on('data', (chunk: Buffer) => lines.push(chunk, stream));
        stream.on('end', end);
        stream.on('close', end);
        stream.on('error', () => {});
      }
      // The launcher end of the watchdog pipe: never written, never read from; it closes when the launcher dies.
      (child.stdio[3] as Readable | null | undefined)?.on('error', () => {});
      child.on('error', (e) => {
        if (child.pid !== undefined) return; // a failed kill() of a rank that already exited
        note(`rank ${rank} could not start: ${e.message}`);
        child.stdout?.destroy();
        child.stderr?.destroy();
        onExit(r, 1, null);
      });
      child.on('exit', (code, signal) => onExit(r, code, signal));
    }
  });
}

/** Parses a non-negative decimal integer option of the CLI. */
function cliInteger(param: string, v: string, min: number, max: number): number {
  const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw rangeError(expected('launch', `an integer in [${min}, ${max}]`, param, v));
  return n;
}

/**
 * The `llm-kernels launch` command: parses the CLI's option strings, runs {@link launch} with signal forwarding,
 * and resolves with the exit code for the launcher's process.
 * @param script - the script every rank runs
 * @param args - the script's own arguments
 * @param opts - `nproc` (default '1'), `killGraceMs` (default '5000'), `nodeArg` (extra Node.js options)
 * @throws RangeError when `--nproc` or `--kill-grace-ms` is not an integer in range, or the script does not exist
 * @example
 * process.exit(await launchCommand('train.js', ['--steps', '10'], { nproc: '4' }));
 */
export async function launchCommand(
  script: string,
  args: string[],
  opts: { nproc?: string; killGraceMs?: string; nodeArg?: string[] },
): Promise<number> {
  const nproc = cliInteger('--nproc', opts.nproc ?? '1', 1, MAX_NPROC);
  const killGraceMs = cliInteger('--kill-grace-ms', opts.killGraceMs ?? String(DEFAULT_KILL_GRACE_MS), 0, 2 ** 31 - 1);
  const r = await launch({ nproc, script, args, nodeArgs: opts.nodeArg ?? [], killGraceMs, forwardSignals: true });
  return r.code;
}

/** The `llm-kernels launch --help` text after the options: the environment of the ranks and the rules. */
export const LAUNCH_HELP = `
Every rank runs \`node --import <launch-watchdog.js> [--node-arg ...] <script> [args...]\` with, on top of the
launcher's environment:
  RANK, LOCAL_RANK              this rank, 0 .. N-1
  WORLD_SIZE, LOCAL_WORLD_SIZE  N (--nproc)
  GROUP_RANK                    0 (one host)
  MASTER_ADDR, MASTER_PORT      127.0.0.1 and a free TCP port
  LLM_KERNELS_GROUP             an id unique to this launch; the shared-memory process group names its segment
                                after it
Options after <script> are the script's own. Each line a rank writes is printed as "[rank R] <line>". Rank 0
reads the launcher's stdin; the others get none.
When a rank exits non-zero or by a signal, the other ranks get SIGTERM, then SIGKILL after --kill-grace-ms.
SIGINT and SIGTERM to the launcher are forwarded to the ranks the same way (a second one kills at once). If the
launcher is killed, even with SIGKILL, its ranks kill themselves.
Exit code: 0 when every rank exited 0, else the first failed rank's code (128 + the signal number if a signal
killed it).

Example:
  llm-kernels launch --nproc 4 train.js --steps 100
`;
