/**
 * Process groups: the ranks of a tensor-parallel job and their collectives on CPU tensors.
 *
 * ```ts
 * const pg = await initProcessGroup();            // reads RANK / WORLD_SIZE ... (see below)
 * const y = pg.allReduce(partial);                // enqueued like any op; the JS thread does not wait
 * console.log(pg.rank, (await y.data())[0]);
 * pg.close();
 * ```
 *
 * Collectives are enqueued on the CPU stream (native/addon/dist.cc): they run after the ops that produce their
 * input, and the ops queued after them see their result. A collective that fails (a rank died: ERR_PEER_LOST; a
 * deadline passed: ERR_TIMEOUT; the ranks called different collectives: ERR_COLLECTIVE_MISMATCH) poisons its
 * output, so the next `await t.data()` or `device('cpu').synchronize()` rejects with that error; the group is then
 * failed and every later call throws at once. Every rank gets bit-identical results: reductions run in rank order,
 * in f32, rounded once (native/dist/reduce.h), whichever backend moves the bytes.
 *
 * Backends:
 * - `shm`: ranks on one host (processes, e.g. from `llm-kernels launch`) over a shared-memory segment.
 * - `mpi`: OpenMPI, loaded at run time (libmpi.so.40); for ranks started by `mpirun`, across hosts too.
 *
 * CUDA tensors: open the group with `{ device: 'cuda' }` (or `'cuda:N'`) and every collective takes tensors on that
 * device. Chosen explicitly at open, not on the first CUDA tensor: registering the buffers is itself a collective
 * (every rank exchanges CUDA IPC handles and starts NCCL), which must happen at the same point on every rank and
 * may take seconds, so it belongs to the awaited open. Per call the group picks the custom kernels over the
 * registered buffers (one-shot or two-shot all-reduce, single-barrier all-gather, reduce-scatter and broadcast;
 * small and medium messages, P2P between every pair of ranks) or NCCL (large messages, or no P2P; when
 * libnccl.so.2 loads on every rank): see {@link selectCollective}. The collective is launched on the device's
 * stream; the JS thread never waits. The custom kernels sum in rank order in f32 like the CPU backends (the same
 * bits on every rank); NCCL uses its own order. allGather and broadcast only move bytes: the same bits on every
 * path. One process per rank (worker threads cannot share CUDA IPC
 * buffers). On a machine without a usable GPU `initProcessGroup({ device: 'cuda' })` rejects with ERR_DEVICE (or
 * ERR_UNSUPPORTED in a build without CUDA) saying why, and a CPU-only group refuses CUDA tensors with ERR_UNSUPPORTED.
 */
import { native } from '../binding.js';
import { device } from '../device.js';
import { isFloat } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { liveHandle, Tensor } from '../tensor.js';
import { checkInteger, checkObject, expected, shapeStr } from '../validate.js';
import type { DType } from '../dtype.js';

/** A backend that moves the bytes of collectives. */
export type DistBackend = 'shm' | 'mpi';

/** The reduction of {@link ProcessGroup.allReduce} and {@link ProcessGroup.reduceScatter}. */
export type ReduceOp = 'sum' | 'max';

/** Options of {@link initProcessGroup}. Every field has a default from the environment. */
export interface InitProcessGroupOptions {
  /**
   * 'auto' (default): 'mpi' when started by mpirun (OMPI_COMM_WORLD_SIZE is set), 'shm' otherwise (RANK and
   * WORLD_SIZE from `llm-kernels launch` or torchrun on one host, or a single rank when neither is set).
   */
  backend?: 'auto' | DistBackend;
  /** This process's rank; default RANK (or OMPI_COMM_WORLD_RANK), else 0. */
  rank?: number;
  /** Number of ranks; default WORLD_SIZE (or OMPI_COMM_WORLD_SIZE), else 1. */
  worldSize?: number;
  /**
   * shm: the group's name on this host, the same on every rank ([A-Za-z0-9._-], at most 100 characters). Default
   * LLM_KERNELS_GROUP (set by `llm-kernels launch`), else `MASTER_ADDR-MASTER_PORT` (torchrun).
   */
  name?: string;
  /** The default deadline of each collective, in ms (default 60 000). */
  timeoutMs?: number;
  /** The deadline of the rendezvous in ms (default 60 000): every rank must have called initProcessGroup by then. */
  initTimeoutMs?: number;
  /**
   * Debug mode: each collective also compares its call site (file:line of the caller) across ranks, so that ranks
   * that call the same collective from different places fail with ERR_COLLECTIVE_MISMATCH. Sizes, dtypes, ops and
   * order are always compared. Default: LLM_KERNELS_DIST_DEBUG=1.
   */
  debug?: boolean;
  /** mpi: the MPI library to load (default libmpi.so.40, then libmpi.so). */
  mpiLibrary?: string;
  /**
   * 'cpu' (default): collectives on CPU tensors only. 'cuda' (= `cuda:${localRank % number of GPUs}`) or 'cuda:N':
   * also register the CUDA collective paths on that GPU, so that the collectives take CUDA tensors on it. Several ranks may name one GPU (separate processes).
   */
  device?: 'cpu' | 'cuda' | `cuda:${number}`;
  /** The environment to read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** What {@link resolveProcessGroupOptions} makes of the options and the environment. */
export interface ResolvedProcessGroup {
  backend: DistBackend;
  rank: number;
  worldSize: number;
  localRank: number;
  name: string;
  timeoutMs: number;
  initTimeoutMs: number;
  debug: boolean;
  mpiLibrary: string;
  /** 'cpu', or the CUDA device of the group's CUDA collectives. */
  device: 'cpu' | `cuda:${number}`;
}

/** Options of one collective. */
export interface CollectiveOptions<D extends DType = DType> {
  /** Where the result goes: x itself (in place, where the shapes allow) or another tensor; default a new one. */
  out?: Tensor<D>;
  /** This call's deadline in ms (default: the group's timeoutMs). */
  timeoutMs?: number;
}

/** Options of {@link ProcessGroup.allReduce} and {@link ProcessGroup.reduceScatter}. */
export interface ReduceOptions<D extends DType = DType> extends CollectiveOptions<D> {
  /** 'sum' (default) or 'max' (a NaN on any rank gives NaN). */
  op?: ReduceOp;
}

const FN_INIT = 'initProcessGroup';
const DEFAULT_TIMEOUT_MS = 60_000;
const NAME_RE = /^[A-Za-z0-9._-]{1,100}$/;

function envInt(fn: string, env: Readonly<Record<string, string | undefined>>, key: string): number | undefined {
  const v = env[key];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v.trim())) throw rangeError(expected(fn, 'a non-negative integer', `the environment variable ${key}`, v));
  return Number(v.trim());
}

/**
 * The backend, rank, world size and group name {@link initProcessGroup} would use, from the options and the
 * environment (exported for tests and for tools that print the plan).
 * @throws {TypeError | RangeError} a bad option or environment variable, named
 */
export function resolveProcessGroupOptions(options: InitProcessGroupOptions = {}): ResolvedProcessGroup {
  const fn = FN_INIT;
  checkObject(fn, 'options', options);
  const env = options.env ?? process.env;
  const requested = options.backend ?? 'auto';
  if (!['auto', 'shm', 'mpi'].includes(requested as string))
    throw rangeError(expected(fn, "'auto', 'shm' or 'mpi'", 'options.backend', requested));
  const underMpirun = env.OMPI_COMM_WORLD_SIZE !== undefined;
  const backend: DistBackend = requested === 'auto' ? (underMpirun ? 'mpi' : 'shm') : requested;
  const envRank = underMpirun ? envInt(fn, env, 'OMPI_COMM_WORLD_RANK') : envInt(fn, env, 'RANK');
  const envWorld = underMpirun ? envInt(fn, env, 'OMPI_COMM_WORLD_SIZE') : envInt(fn, env, 'WORLD_SIZE');
  const envLocal = underMpirun ? envInt(fn, env, 'OMPI_COMM_WORLD_LOCAL_RANK') : envInt(fn, env, 'LOCAL_RANK');
  const worldSize = options.worldSize !== undefined ? checkInteger(fn, 'options.worldSize', options.worldSize, 1, 1024) : (envWorld ?? 1);
  const rank = options.rank !== undefined ? checkInteger(fn, 'options.rank', options.rank, 0, 1023) : (envRank ?? 0);
  if (worldSize < 1 || worldSize > 1024) throw rangeError(expected(fn, 'a world size in [1, 1024]', 'WORLD_SIZE', worldSize));
  if (rank >= worldSize) throw rangeError(expected(fn, `a rank in [0, ${worldSize - 1}] (world size ${worldSize})`, 'rank', rank));
  const timeoutMs = options.timeoutMs !== undefined ? checkInteger(fn, 'options.timeoutMs', options.timeoutMs, 1, 2 ** 31) : DEFAULT_TIMEOUT_MS;
  const initTimeoutMs = options.initTimeoutMs !== undefined ? checkInteger(fn, 'options.initTimeoutMs', options.initTimeoutMs, 1, 2 ** 31) : DEFAULT_TIMEOUT_MS;
  let name = '';
  if (backend === 'shm') {
    if (options.name !== undefined) {
      if (typeof options.name !== 'string') throw typeError(expected(fn, 'a string', 'options.name', options.name));
      name = options.name;
    } else if (env.LLM_KERNELS_GROUP) {
      name = env.LLM_KERNELS_GROUP;
    } else if (env.MASTER_ADDR && env.MASTER_PORT) {
      name = `${env.MASTER_ADDR}-${env.MASTER_PORT}`.replace(/[^A-Za-z0-9._-]/g, '_');
    } else if (worldSize > 1) {
      throw rangeError(
        `${fn}: expected a group name for the shm backend with ${worldSize} ranks (options.name, LLM_KERNELS_GROUP, or ` +
          `MASTER_ADDR and MASTER_PORT), got none; start the ranks with \`llm-kernels launch --nproc ${worldSize} script.js\``,
      );
    } else {
      name = 'single';
    }
    if (!NAME_RE.test(name)) throw rangeError(expected(fn, 'a group name of 1-100 characters [A-Za-z0-9._-]', 'name', name));
    const localWorld = envInt(fn, env, 'LOCAL_WORLD_SIZE');
    if (localWorld !== undefined && localWorld !== worldSize && options.worldSize === undefined)
      throw rangeError(
        `${fn}: expected every rank on this host for the shm backend (LOCAL_WORLD_SIZE = WORLD_SIZE), got ` +
          `LOCAL_WORLD_SIZE=${localWorld} of WORLD_SIZE=${worldSize}; use backend 'mpi' (mpirun) across hosts`,
      );
  }
  let debug = env.LLM_KERNELS_DIST_DEBUG === '1';
  if (options.debug !== undefined) {
    if (typeof options.debug !== 'boolean') throw typeError(expected(fn, 'a boolean', 'options.debug', options.debug));
    debug = options.debug;
  }
  let mpiLibrary = '';
  if (options.mpiLibrary !== undefined) {
    if (typeof options.mpiLibrary !== 'string') throw typeError(expected(fn, 'a string', 'options.mpiLibrary', options.mpiLibrary));
    mpiLibrary = options.mpiLibrary;
  }
  const localRank = envLocal ?? rank;
  let dev: 'cpu' | `cuda:${number}` = 'cpu';
  if (options.device !== undefined && options.device !== 'cpu') {
    if (typeof options.device !== 'string') throw typeError(expected(fn, "a string ('cpu', 'cuda' or 'cuda:N')", 'options.device', options.device));
    const m = /^cuda(?::(\d{1,4}))?$/.exec(options.device);
    if (!m) throw rangeError(expected(fn, "'cpu', 'cuda' or 'cuda:N'", 'options.device', options.device));
    if (m[1] !== undefined) {
      dev = `cuda:${Number(m[1])}`;
    } else {
      const n = native.info().cuda.devices.length;
      dev = `cuda:${n > 0 ? localRank % n : 0}`;  // no device: initProcessGroup says why
    }
  }
  return { backend, rank, worldSize, localRank, name, timeoutMs, initTimeoutMs, debug, mpiLibrary, device: dev };
}

/**
 * Joins this process to its process group: waits (without blocking the event loop) until every rank has called
 * it, then resolves. Options default to the environment that `llm-kernels launch`, torchrun or mpirun set.
 * @param options - see {@link InitProcessGroupOptions}
 * @throws {TypeError | RangeError} bad options or environment (named)
 * @throws {LlmKernelsError} (the promise rejects) ERR_TIMEOUT when the other ranks did not join in
 *   initTimeoutMs; ERR_PEER_LOST when one exited while joining; ERR_UNSUPPORTED when MPI cannot be loaded;
 *   with `device: 'cuda...'`: ERR_DEVICE when no CUDA device is usable (the reason, e.g. cudaErrorNoDevice),
 *   ERR_UNSUPPORTED in a build without CUDA
 * @example
 * // llm-kernels launch --nproc 2 script.js
 * const pg = await initProcessGroup();
 * const sum = pg.allReduce(Tensor.fromArray([pg.rank + 1]));   // [3] on both ranks
 */
export async function initProcessGroup(options: InitProcessGroupOptions = {}): Promise<ProcessGroup> {
  const r = resolveProcessGroupOptions(options);
  // MPI reports its own rank and size: -1 lets it, unless the caller gave them explicitly.
  const rank = r.backend === 'mpi' && options.rank === undefined ? -1 : r.rank;
  const world = r.backend === 'mpi' && options.worldSize === undefined ? -1 : r.worldSize;
  const cudaDevice = r.device === 'cpu' ? -1 : Number(r.device.slice(5));
  const [id, opened] = native.distOpen(r.backend, rank, world, r.name, r.mpiLibrary, r.initTimeoutMs, cudaDevice);
  try {
    await opened;
  } catch (e) {
    native.distClose(id);
    throw e;
  }
  const inf = native.distInfo(id);
  const pg = new ProcessGroup(id, { ...r, rank: inf.rank, worldSize: inf.worldSize, backend: inf.backend as DistBackend });
  if (pg.backend === 'mpi') closeAtExit(pg);
  return pg;
}

const KIND = { allReduce: 1, allGather: 2, reduceScatter: 3, broadcast: 4 } as const;

// MPI must be finalized before the process exits (mpirun reports a rank that did not as an abnormal termination):
// groups still open at exit are closed then.
const openMpiGroups = new Set<ProcessGroup>();
let exitHook = false;
function closeAtExit(pg: ProcessGroup): void {
  openMpiGroups.add(pg);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const g of [...openMpiGroups]) g.close();
  });
}

/** A 32-bit FNV-1a hash of the first stack frame outside this file: the caller's call site (debug mode). */
function callSite(): number {
  const stack = new Error().stack ?? '';
  const frames = stack.split('\n').slice(1);
  const here = frames[0] ?? '';
  const file = /\((.*):\d+:\d+\)$/.exec(here)?.[1] ?? /at (.*):\d+:\d+$/.exec(here)?.[1];
  const frame = frames.find((f) => !file || !f.includes(file)) ?? '';
  let h = 0x811c9dc5;
  for (let i = 0; i < frame.length; i++) h = Math.imul(h ^ frame.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * One rank's handle on its process group. Create with {@link initProcessGroup}; close with {@link close} (or
 * `using`). Every rank must make the same collective calls, in the same order, with the same sizes and dtypes.
 */
export class ProcessGroup implements Disposable {
  #id: number | null;
  /** This process's rank, 0..worldSize-1. */
  readonly rank: number;
  /** Number of ranks. */
  readonly worldSize: number;
  /** The rank on this host (LOCAL_RANK), for binding to devices. */
  readonly localRank: number;
  /** The backend moving the bytes. */
  readonly backend: DistBackend;
  /** Whether call sites are compared too (see {@link InitProcessGroupOptions.debug}). */
  readonly debug: boolean;
  /** The default deadline of a collective, in ms. */
  readonly timeoutMs: number;
  /** 'cpu', or the CUDA device whose tensors {@link allReduce} takes (see {@link InitProcessGroupOptions.device}). */
  readonly device: 'cpu' | `cuda:${number}`;

  /** @internal Use {@link initProcessGroup}. */
  constructor(id: number, r: ResolvedProcessGroup) {
    this.#id = id;
    this.rank = r.rank;
    this.worldSize = r.worldSize;
    this.localRank = r.localRank;
    this.backend = r.backend;
    this.debug = r.debug;
    this.timeoutMs = r.timeoutMs;
    this.device = r.device;
  }

  /**
   * The CUDA all-reduce paths this group registered (undefined for a CPU-only group): `custom` (the one-/two-shot
   * kernels over CUDA IPC; false with `customReason` when a pair of ranks has no P2P access, ...) and `nccl` (false
   * with `ncclReason`, e.g. "libnccl.so.2 not found", when NCCL did not load on every rank).
   * @throws {LlmKernelsError} ERR_DISPOSED for a closed group
   */
  get cuda(): { device: number; custom: boolean; customReason: string; nccl: boolean; ncclReason: string } | undefined {
    return native.distInfo(this.#live('cuda')).cuda;
  }

  #live(fn: string): number {
    if (this.#id === null) throw new LlmKernelsError('ERR_DISPOSED', `${fn}: expected an open process group, got a closed one`);
    return this.#id;
  }

  /** The error that failed the group (ERR_PEER_LOST, ERR_TIMEOUT, ERR_COLLECTIVE_MISMATCH), or undefined. */
  get failure(): LlmKernelsError | undefined {
    if (this.#id === null) return undefined;
    return native.distFailure(this.#id) as LlmKernelsError | undefined;
  }

  #timeout(fn: string, o: CollectiveOptions): number {
    return o.timeoutMs === undefined ? this.timeoutMs : checkInteger(fn, 'options.timeoutMs', o.timeoutMs, 1, 2 ** 31);
  }

  #input(fn: string, x: unknown): Tensor {
    liveHandle(fn, 'x', x);
    const t = x as Tensor;
    if (!isFloat(t.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'x.dtype', t.dtype));
    if (t.device.kind !== 'cpu') {
      if (this.device === 'cpu')
        throw new LlmKernelsError(
          'ERR_UNSUPPORTED',
          expected(fn, `a CPU tensor (this group was opened without a CUDA device; use initProcessGroup({ device: '${t.device.name}' }))`, 'x.device', t.device.name, true),
        );
      if (t.device.name !== this.device) throw rangeError(expected(fn, `a tensor on the group's device ${this.device}`, 'x.device', t.device.name, true));
    }
    return t;
  }

  #out<D extends DType>(fn: string, x: Tensor<D>, o: CollectiveOptions<D>, shape: readonly number[]): Tensor<D> {
    if (o.out === undefined) return Tensor.empty(shape, { dtype: x.dtype, device: x.device });
    liveHandle(fn, 'options.out', o.out);
    if (o.out.dtype !== x.dtype) throw typeError(expected(fn, `dtype ${x.dtype} (x's)`, 'options.out.dtype', o.out.dtype));
    if (o.out.device.name !== x.device.name) {
      const msg = expected(fn, `a tensor on x's device ${x.device.name}`, 'options.out.device', o.out.device.name, true);
      throw x.device.kind === 'cpu' ? new LlmKernelsError('ERR_UNSUPPORTED', msg) : rangeError(msg);
    }
    if (o.out.shape.length !== shape.length || o.out.shape.some((d, i) => d !== shape[i]))
      throw rangeError(expected(fn, `shape ${shapeStr(shape)}`, 'options.out.shape', shapeStr(o.out.shape), true));
    return o.out;
  }

  #op(fn: string, o: ReduceOptions): number {
    const op = o.op ?? 'sum';
    if (op !== 'sum' && op !== 'max') throw rangeError(expected(fn, "'sum' or 'max'", 'options.op', op));
    return op === 'sum' ? 0 : 1;
  }

  #run(fn: keyof typeof KIND, x: Tensor, out: Tensor, op: number, root: number, timeoutMs: number, inner = 0): void {
    const id = this.#live(fn);
    native.distCollective(id, KIND[fn], op, x.handle(fn, 'x'), out.handle(fn, 'options.out'), root, timeoutMs, this.debug ? callSite() : 0, inner);
  }

  /**
   * The elementwise sum (or max) of x over all ranks, on every rank. In place with `{ out: x }`.
   * @returns a tensor of x's shape and dtype (options.out when given)
   * @throws {TypeError} x not a Tensor, not a float dtype, out of another dtype
   * @throws {RangeError} out of another shape, a bad op or timeoutMs
   * CUDA tensors (a group opened with `device: 'cuda...'`): launched on the device's stream by the custom one-/two-shot
   * kernels or NCCL ({@link selectAllReduce}); a failure (ERR_TIMEOUT: a peer did not arrive before timeoutMs on the
   * device; ERR_PEER_LOST when that peer's process is gone (shm groups can tell); ERR_COLLECTIVE_MISMATCH) poisons
   * out and fails the group like on the CPU.
   * @throws {LlmKernelsError} ERR_DISPOSED (closed group or tensor), ERR_UNSUPPORTED (a CUDA tensor in a group
   *   opened without a CUDA device, or no CUDA path usable: the reasons are in the message), and the
   *   group's failure when it has failed (ERR_PEER_LOST, ERR_TIMEOUT, ERR_COLLECTIVE_MISMATCH). A failure of this
   *   call itself surfaces at the next read or synchronize.
   * @example const y = pg.allReduce(partial); // sum of every rank's partial
   */
  allReduce<D extends DType>(x: Tensor<D>, options: ReduceOptions<D> = {}): Tensor<D> {
    const fn = 'allReduce';
    this.#live(fn);
    checkObject(fn, 'options', options);
    const t = this.#input(fn, x) as Tensor<D>;
    const op = this.#op(fn, options);
    const timeout = this.#timeout(fn, options);
    const out = this.#out(fn, t, options, t.shape);
    this.#run(fn, t, out, op, 0, timeout);
    return out;
  }

  /**
   * Every rank's x, concatenated in rank order along dimension `dim` (default 0; negative counts from the end):
   * `[R * x.shape[0], ...]`, or e.g. with `dim: -1` on logits `[T, V / R]` -> `[T, V]` ([R] for a scalar).
   * CUDA tensors: as {@link allReduce}, the path picked by {@link selectCollective} (so for reduceScatter and
   * broadcast too).
   * @throws see {@link allReduce}; RangeError for a dim outside x's dimensions
   */
  allGather<D extends DType>(x: Tensor<D>, options: CollectiveOptions<D> & { dim?: number } = {}): Tensor<D> {
    const fn = 'allGather';
    this.#live(fn);
    checkObject(fn, 'options', options);
    const t = this.#input(fn, x) as Tensor<D>;
    const timeout = this.#timeout(fn, options);
    const nd = t.shape.length;
    let dim = 0;
    if (options.dim !== undefined) {
      dim = checkInteger(fn, 'options.dim', options.dim, -Math.max(nd, 1), Math.max(nd - 1, 0));
      if (dim < 0) dim += nd;
    }
    const shape = nd === 0 ? [this.worldSize] : t.shape.map((d, i) => (i === dim ? d * this.worldSize : d));
    const out = this.#out(fn, t, options, shape);
    if (out === t && this.worldSize > 1) throw rangeError(expected(fn, 'an output other than x', 'options.out', 'x', true));
    // Along dim > 0: blocks of `inner` elements (the dims from dim on) interleave by rank.
    const inner = dim === 0 ? 0 : t.shape.slice(dim).reduce((a, b) => a * b, 1);
    this.#run(fn, t, out, 0, 0, timeout, inner === t.numel || t.numel === 0 ? 0 : inner);
    return out;
  }

  /**
   * Splits x along its first dimension into R blocks and gives rank r the sum (or max) over ranks of block r:
   * [x.shape[0] / R, ...]. x.shape[0] must be a multiple of the world size.
   * @throws see {@link allReduce}; RangeError when x.shape[0] is not a multiple of R
   */
  reduceScatter<D extends DType>(x: Tensor<D>, options: ReduceOptions<D> = {}): Tensor<D> {
    const fn = 'reduceScatter';
    this.#live(fn);
    checkObject(fn, 'options', options);
    const t = this.#input(fn, x) as Tensor<D>;
    const op = this.#op(fn, options);
    const timeout = this.#timeout(fn, options);
    const rows = t.shape[0];
    if (rows === undefined || rows % this.worldSize !== 0)
      throw rangeError(expected(fn, `a first dimension that is a multiple of the world size ${this.worldSize}`, 'x.shape', shapeStr(t.shape), true));
    const out = this.#out(fn, t, options, [rows / this.worldSize, ...t.shape.slice(1)]);
    if (out === t && this.worldSize > 1) throw rangeError(expected(fn, 'an output other than x', 'options.out', 'x', true));
    this.#run(fn, t, out, op, 0, timeout);
    return out;
  }

  /**
   * Rank `root`'s x on every rank. In place with `{ out: x }` (the usual form: every rank passes a tensor of the
   * same shape, and the non-roots' contents are replaced).
   * @throws see {@link allReduce}; RangeError for a root outside [0, R)
   */
  broadcast<D extends DType>(x: Tensor<D>, options: CollectiveOptions<D> & { root?: number } = {}): Tensor<D> {
    const fn = 'broadcast';
    this.#live(fn);
    checkObject(fn, 'options', options);
    const t = this.#input(fn, x) as Tensor<D>;
    const root = options.root === undefined ? 0 : checkInteger(fn, 'options.root', options.root, 0, this.worldSize - 1);
    const timeout = this.#timeout(fn, options);
    const out = this.#out(fn, t, options, t.shape);
    this.#run(fn, t, out, 0, root, timeout);
    return out;
  }

  /**
   * Resolves when every rank has reached this barrier (after the ops queued before it on this process's stream).
   * @throws {LlmKernelsError} (rejects) ERR_PEER_LOST, ERR_TIMEOUT, ERR_COLLECTIVE_MISMATCH
   */
  barrier(options: { timeoutMs?: number } = {}): Promise<void> {
    const fn = 'barrier';
    const id = this.#live(fn);
    checkObject(fn, 'options', options);
    return native.distBarrier(id, this.#timeout(fn, options), this.debug ? callSite() : 0);
  }

  /**
   * Waits for everything queued on this rank's streams (collectives included: the CPU stream, and the group's GPU's
   * when it was opened with a CUDA device) and rethrows the first failure.
   * @throws {LlmKernelsError} the failure of a queued op or collective
   */
  async synchronize(): Promise<void> {
    this.#live('synchronize');
    const waits = [device('cpu').synchronize()];
    if (this.device !== 'cpu') waits.push(device(this.device).synchronize());
    await Promise.all(waits);
  }

  /**
   * Leaves the group (idempotent): waits for the work queued on this rank's stream (collectives included, each
   * bounded by its deadline), then closes the backend (MPI is finalized with its last group). A failure of that
   * work stays for the next read or synchronize. Other ranks that call a collective afterwards get ERR_PEER_LOST.
   * MPI groups still open when the process exits are closed then.
   */
  close(): void {
    if (this.#id === null) return;
    const id = this.#id;
    this.#id = null;
    openMpiGroups.delete(this);
    native.distClose(id);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  toString(): string {
    return `ProcessGroup(rank ${this.rank} of ${this.worldSize}, ${this.backend}${this.#id === null ? ', closed' : ''})`;
  }
}

/** What {@link selectAllReduce} returns: the algorithm and why. */
export interface AllReduceChoice {
  algo: 'one_shot' | 'two_shot' | 'nccl' | 'none';
  why: string;
}

/**
 * The rule that picks the algorithm of an allReduce of CUDA tensors (native/dist/cuda_ar.h; a pure function, the
 * same on every rank): the custom one-shot kernel while R x bytes <= 2 MiB, two-shot up to 16 MiB per rank, NCCL
 * above, or whenever the custom kernels are not registered (no P2P between every pair of ranks, more than 8 ranks);
 * two-shot in chunks when NCCL is missing; 'none' when neither path exists. The thresholds are untuned guesses
 * until measured on a GPU.
 * @param bytes - the message per rank
 * @param worldSize - R
 * @param paths - which paths every rank registered (see {@link ProcessGroup.cuda})
 * @throws {TypeError | RangeError} bad arguments
 * @example selectAllReduce(8192, 2, { custom: true, nccl: true }).algo // 'one_shot'
 */
export function selectAllReduce(bytes: number, worldSize: number, paths: { custom: boolean; nccl: boolean }): AllReduceChoice {
  return select('selectAllReduce', 'allReduce', bytes, worldSize, paths);
}

/** A collective of {@link ProcessGroup}. */
export type CollectiveKind = keyof typeof KIND;

/**
 * The rule that picks how a collective of CUDA tensors runs (a pure function, the same on every rank). allReduce:
 * {@link selectAllReduce}. allGather, reduceScatter and broadcast: the custom single-barrier kernel over the
 * registered buffers ('one_shot') while the bytes a rank reads there (allGather: R x bytes; the others: bytes)
 * are <= 16 MiB, or at any size, in chunks, when NCCL is missing; NCCL above that or whenever the custom kernels
 * are not registered; 'none' when neither path exists. Untuned guesses until measured on a GPU.
 * @param kind - 'allReduce', 'allGather', 'reduceScatter' or 'broadcast'
 * @param bytes - x's bytes on a rank
 * @param worldSize - R
 * @param paths - which paths every rank registered (see {@link ProcessGroup.cuda})
 * @throws {TypeError | RangeError} bad arguments
 * @example selectCollective('allGather', 4096, 2, { custom: true, nccl: true }).algo // 'one_shot'
 */
export function selectCollective(kind: CollectiveKind, bytes: number, worldSize: number, paths: { custom: boolean; nccl: boolean }): AllReduceChoice {
  const fn = 'selectCollective';
  if (typeof kind !== 'string' || !Object.hasOwn(KIND, kind))
    throw (typeof kind === 'string' ? rangeError : typeError)(expected(fn, "'allReduce', 'allGather', 'reduceScatter' or 'broadcast'", 'kind', kind));
  return select(fn, kind, bytes, worldSize, paths);
}

function select(fn: string, kind: CollectiveKind, bytes: number, worldSize: number, paths: { custom: boolean; nccl: boolean }): AllReduceChoice {
  checkInteger(fn, 'bytes', bytes, 0, Number.MAX_SAFE_INTEGER);
  checkInteger(fn, 'worldSize', worldSize, 1, 1024);
  checkObject(fn, 'paths', paths);
  if (typeof paths.custom !== 'boolean') throw typeError(expected(fn, 'a boolean', 'paths.custom', paths.custom));
  if (typeof paths.nccl !== 'boolean') throw typeError(expected(fn, 'a boolean', 'paths.nccl', paths.nccl));
  return native.distSelectAllReduce(bytes, worldSize, paths.custom, paths.nccl, KIND[kind]);
}

/**
 * Whether NCCL (libnccl.so.2, 2.18 or newer) loads in this process, its version code (e.g. 22105), or why not.
 * Loading is tried once per process.
 * @example if (!ncclStatus().loaded) console.log(ncclStatus().reason);
 */
export function ncclStatus(): { loaded: boolean; version: number; reason: string } {
  return native.distNcclProbe();
}
