/**
 * Devices: `device('auto' | 'cpu' | 'cuda' | 'cuda:N')`. Each device has one in-order stream: ops return at once
 * and run in the order they were enqueued; `synchronize()` waits for all of them.
 */
import { native, type NativeInfo } from './binding.js';
import { LlmKernelsError, rangeError, typeError } from './errors.js';
import { checkInteger, expected } from './validate.js';

export type DeviceKind = 'cpu' | 'cuda';
export type DeviceSpec = 'auto' | 'cpu' | 'cuda' | `cuda:${number}` | Device;

/** A compute device. Obtain one with {@link device}; instances are unique per device. */
export class Device {
  /** @internal */
  readonly kindId: number;
  /** @internal */
  constructor(
    readonly kind: DeviceKind,
    readonly index: number,
  ) {
    this.kindId = kind === 'cpu' ? 0 : 1;
  }
  /** `'cpu'` or `'cuda:N'`. */
  get name(): string {
    return this.kind === 'cpu' ? 'cpu' : `cuda:${this.index}`;
  }
  /**
   * Resolves when every op enqueued so far on this device has run; rejects with the first error one of them met.
   * @throws {LlmKernelsError} ERR_DEVICE (rejects) if the device failed
   */
  synchronize(): Promise<void> {
    return native.synchronize(this.kindId, this.index);
  }
  /** Like {@link Device.synchronize}, blocking the calling thread (for scripts). */
  synchronizeSync(): void {
    native.synchronizeSync(this.kindId, this.index);
  }
  toString(): string {
    return this.name;
  }
}

const cpuDevice = new Device('cpu', 0);
const cudaDevices = new Map<number, Device>();

function cudaUnavailable(fn: string, why: string): LlmKernelsError {
  return new LlmKernelsError(
    'ERR_DEVICE',
    `${fn}: CUDA unavailable: ${why}. Use device('cpu'), or device('auto') to take CUDA only when it is there.`,
  );
}

const SPEC_FORMS = "'auto', 'cpu', 'cuda', 'cuda:N' or a Device";

/**
 * Picks a device.
 * @param spec - `'auto'` (CUDA device 0 when available, else the CPU; see {@link info}), `'cpu'`, `'cuda'`
 *   (= `'cuda:0'`), `'cuda:N'`, or a Device (its unique instance is returned)
 * @throws {TypeError} spec is not a string or Device
 * @throws {RangeError} spec is not one of the forms above
 * @throws {LlmKernelsError} ERR_DEVICE when CUDA was asked for and is unavailable, with the reason
 * @example
 * const dev = device('auto'); console.log(dev.name);
 */
export function device(spec: DeviceSpec = 'auto'): Device {
  return resolveDevice('device', 'spec', spec);
}

/**
 * @internal {@link device} for a parameter of another function (`options.device` of a factory, `to(device)`):
 * the errors name that function and parameter. A Device built with `new Device(...)` is replaced by the unique
 * instance of its device (tensors compare devices by identity).
 */
export function resolveDevice(fn: string, param: string, spec: unknown): Device {
  if (spec instanceof Device) {
    if (spec.kind === 'cpu' && spec.index === 0) return cpuDevice;
    if (spec.kind === 'cuda' && Number.isInteger(spec.index) && spec.index >= 0 && spec.index <= 9999) return cudaAt(fn, spec.index);
    throw rangeError(expected(fn, 'a device returned by device()', param, `Device(${String(spec.kind)}, ${String(spec.index)})`, true));
  }
  if (typeof spec !== 'string') throw typeError(expected(fn, SPEC_FORMS, param, spec));
  if (spec === 'cpu') return cpuDevice;
  if (spec === 'auto') {
    const c = native.info().cuda;
    return c.available && c.devices.length > 0 ? cudaAt(fn, 0) : cpuDevice;
  }
  const m = /^cuda(?::(\d{1,4}))?$/.exec(spec);
  if (!m) throw rangeError(expected(fn, SPEC_FORMS, param, spec));
  return cudaAt(fn, m[1] === undefined ? 0 : Number(m[1]));
}

function cudaAt(fn: string, index: number): Device {
  const known = cudaDevices.get(index);
  if (known) return known;
  const c = native.info().cuda;
  if (!c.available) throw cudaUnavailable(fn, c.reason);
  if (index >= c.devices.length)
    throw new LlmKernelsError('ERR_DEVICE', `${fn}: no CUDA device ${index}; this machine has ${c.devices.length}`);
  const d = new Device('cuda', index);
  cudaDevices.set(index, d);
  return d;
}

/** What this build is and what it found here. */
export interface Info {
  /** Package version. */
  version: string;
  /** The device `device('auto')` picks, and why. */
  auto: { device: string; reason: string };
  build: NativeInfo['build'];
  /** SIMD level in use (and detected), pool threads. */
  cpu: NativeInfo['cpu'];
  /** CUDA devices (name, memory, compute capability), or why there are none. */
  cuda: NativeInfo['cuda'];
}

let version = '0.0.0';
/** @internal */
export function setVersion(v: string): void {
  version = v;
}

/**
 * Build and machine facts: version, CUDA compiled and archs, SIMD level, threads, CUDA devices or the reason there
 * are none (e.g. `cudaErrorNoDevice`).
 * @example
 * console.log(info().auto.device, info().cuda.reason);
 */
export function info(): Info {
  const n = native.info();
  const cuda = n.cuda.available && n.cuda.devices.length > 0;
  return {
    version,
    auto: {
      device: cuda ? 'cuda:0' : 'cpu',
      reason: cuda ? `CUDA device 0: ${n.cuda.devices[0]!.name}` : `no usable CUDA device (${n.cuda.reason})`,
    },
    build: n.build,
    cpu: { ...n.cpu, threads: native.getThreads() },
    cuda: n.cuda,
  };
}

/**
 * Sets the number of CPU threads the kernels use (default: the number of cores). Ops already enqueued keep the
 * old count.
 * @throws {RangeError} n is not an integer in [1, 1024]
 */
export function setThreads(n: number): void {
  checkInteger('setThreads', 'n', n, 1, 1024);
  native.setThreads(n);
}

/** The number of CPU threads the kernels use. */
export function getThreads(): number {
  return native.getThreads();
}

/**
 * Returns the CPU memory that freed tensors left in the block cache to the system. Freed blocks of 1 MiB and more
 * are kept (up to LLMK_CPU_CACHE_MB, default 1024) so that the next tensor of the same size skips page faults;
 * call this after a phase that used much memory.
 * @returns the number of bytes released
 */
export function emptyCache(): number {
  return native.emptyCache();
}
