/**
 * Loads the native addon (build/Release/llm_kernels.node, through node-gyp-build) and declares its raw interface
 * once. Nothing else in lib/ touches the addon's exports without going through the {@link NativeBinding} type.
 * native/addon/*.cc implements exactly this interface; keep the two in step.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlmKernelsError } from './errors.js';

/**
 * A tensor handle of the addon: a number naming a slot of this environment's handle table (generation * 2^24 +
 * index; native/addon/addon.h). A disposed or forged id is refused with ERR_DISPOSED, never dereferenced.
 */
export type NativeTensor = number;

export interface NativeCudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  smCount: number;
  totalMemory: number;
  freeMemory: number;
  memoryBandwidthGBs: number;
}

export interface NativeInfo {
  build: { compiler: string; cuda: boolean; cudaArchs: string; sanitizers: boolean };
  cpu: { simd: string; simdDetected: string; threads: number; hardwareThreads: number; liveBytes: number; cachedBytes: number };
  cuda: {
    compiled: boolean;
    available: boolean;
    reason: string;
    runtimeVersion: number;
    driverVersion: number;
    liveBytes: number;
    devices: NativeCudaDevice[];
  };
}

export interface NativeRoofline {
  threads: number;
  readGBs: number;
  fmaGflops: number;
  int8Gops: number;
  simd: string;
}

export interface NativeBinding {
  /** Drops the handle's reference to the memory (queued ops keep theirs). Idempotent; a stale id is a no-op. */
  dispose(t: NativeTensor): void;
  /** Whether the id names a live tensor of this environment. */
  isLive(t: NativeTensor): boolean;
  /** The tensor's bytes, read after every op queued before it on its device has run. */
  read(t: NativeTensor): Promise<ArrayBuffer>;
  /** Same, blocking the calling thread. */
  readSync(t: NativeTensor): ArrayBuffer;
  /** Settles like read() without copying: every op queued before has run and this tensor was computed. */
  ready(t: NativeTensor): Promise<void>;
  /** Same, blocking the calling thread. */
  readySync(t: NativeTensor): void;
  /** A view on the same memory: byteOffset from the view's start, within its bytes. */
  view(t: NativeTensor, byteOffset: number, dtype: number, shape: number[]): NativeTensor;
  /** A copy on device (kind 0 = cpu, 1 = cuda; index). */
  to(t: NativeTensor, kind: number, index: number): NativeTensor;
  setErrorClass(ctor: new (code: string, message: string) => Error): void;
  /** Op names in op-id order (native/common/ops.def). */
  opNames(): string[];
  empty(kind: number, index: number, dtype: number, shape: number[]): NativeTensor;
  fromBytes(kind: number, index: number, dtype: number, shape: number[], data: ArrayBufferView | ArrayBuffer): NativeTensor;
  fromFile(kind: number, index: number, dtype: number, shape: number[], segments: [string, number, number][]): NativeTensor;
  /** Enqueue op `op` on backend (0 ref, 1 cpu, 2 cuda) of device (kind, index); returns the output at once. */
  run(
    op: number,
    backend: number,
    kind: number,
    index: number,
    inputs: NativeTensor[],
    outDtype: number,
    outShape: number[],
    f0?: number,
    f1?: number,
    i0?: number,
    i1?: number,
  ): NativeTensor;
  /**
   * Enqueue an op that writes into existing tensors (the paged KV cache ops); params = [f0, f1, f2, f3, i0, i1,
   * i2, i3] (optional). Outputs may not overlap inputs or each other.
   */
  runInto(op: number, backend: number, kind: number, index: number, inputs: NativeTensor[], outputs: NativeTensor[], params?: number[]): void;
  synchronize(kind: number, index: number): Promise<void>;
  synchronizeSync(kind: number, index: number): void;
  setThreads(n: number): void;
  getThreads(): number;
  setSimd(level: 'avx512' | 'avx2' | 'scalar'): void;
  info(): NativeInfo;
  roofline(threads: number): NativeRoofline;
  /** The tolerance table row (native/common/cases.cc) for an op and output dtype: one table for every test. */
  tolerance(op: number, dtype: number): { exact: boolean; nmse: number; rtol: number };
  /** Releases the CPU block cache; returns the bytes released. */
  emptyCache(): number;
  /**
   * Opens a process group (native/addon/dist.cc): [group id, a promise settled when the rendezvous is done].
   * rank/worldSize -1: take the backend's (MPI). library: the MPI library ('' for the default).
   */
  /** cudaDevice: register the CUDA all-reduce paths on that device (-1 or absent: a CPU-only group). */
  distOpen(backend: 'shm' | 'mpi', rank: number, worldSize: number, name: string, library: string, timeoutMs: number, cudaDevice?: number): [number, Promise<void>];
  distInfo(group: number): {
    rank: number;
    worldSize: number;
    backend: string;
    cuda?: { device: number; custom: boolean; customReason: string; nccl: boolean; ncclReason: string };
  };
  /** The CUDA all-reduce selection rule (native/dist/cuda_ar.h), a pure function. */
  distSelectAllReduce(bytes: number, worldSize: number, custom: boolean, nccl: boolean, kind?: number): { algo: 'one_shot' | 'two_shot' | 'nccl' | 'none'; why: string };
  /** Whether libnccl.so.2 loads in this process (tried once). */
  distNcclProbe(): { loaded: boolean; version: number; reason: string };
  /** The group's failure (an LlmKernelsError), or undefined while it is healthy. */
  distFailure(group: number): Error | undefined;
  /**
   * Enqueue a collective on the CPU stream (kind 1 allReduce, 2 allGather, 3 reduceScatter, 4 broadcast; op 0 sum,
   * 1 max); out may be x (in place). Throws at once if the group has failed.
   */
  distCollective(group: number, kind: number, op: number, x: NativeTensor, out: NativeTensor, root: number, timeoutMs: number, site: number, inner?: number): void;
  distBarrier(group: number, timeoutMs: number, site: number): Promise<void>;
  distClose(group: number): void;
}

/** The package root: the folder with package.json, above lib/ (sources, under vitest) or dist/ (compiled). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const reasons: string[] = [];
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    const b = nodeGypBuild(packageRoot) as NativeBinding;
    b.setErrorClass(LlmKernelsError as unknown as new (code: string, message: string) => Error);
    return b;
  } catch (e) {
    reasons.push((e as Error).message);
  }
  const built = join(packageRoot, 'build', 'Release', 'llm_kernels.node');
  if (!existsSync(built)) reasons.push(`${built} does not exist: the addon was not built`);
  if (process.platform !== 'linux') reasons.push(`platform ${process.platform} is untested (Linux x86-64 and aarch64 are supported)`);
  const napi = Number(process.versions.napi ?? 0);
  if (napi < 8) reasons.push(`Node-API ${napi} is too old: Node.js >= 20 (Node-API 8) is required`);
  throw new LlmKernelsError(
    'ERR_NATIVE_LOAD',
    `llm-kernels: cannot load the native addon.\n  - ${reasons.join('\n  - ')}\n` +
      `Fix: run \`npm rebuild llm-kernels\` (or \`npm run build:native\` in a clone), which needs cmake and a C++17 ` +
      `compiler; set LLMK_CUDA=OFF to build without CUDA.`,
  );
}

/** The addon, loaded once at import. */
export const native: NativeBinding = load();

/** Op ids by name, from the addon's own op list (one op list: native/common/ops.def). */
export const OP_IDS: ReadonlyMap<string, number> = new Map(native.opNames().map((n, i) => [n, i]));

export function opId(name: string): number {
  const id = OP_IDS.get(name);
  if (id === undefined) throw new LlmKernelsError('ERR_INTERNAL', `op '${name}' is not in this build's op list`);
  return id;
}
