/**
 * This machine's measured ceilings (native/tools/roofline.h): memory read bandwidth, f32 FMA peak and int8 dot
 * peak. Benchmarks report every figure as a fraction of these.
 */
import { native } from './binding.js';
import { getThreads } from './device.js';
import { checkInteger } from './validate.js';

export interface Roofline {
  threads: number;
  /** Memory read bandwidth, GB/s (256-bit loads, one stream per thread). */
  readGBs: number;
  /** f32 FMA peak, GFLOP/s. */
  fmaGflops: number;
  /** int8 multiply-add peak with int32 accumulation, GOP/s (2 ops per MAC). */
  int8Gops: number;
  simd: string;
}

/**
 * Runs the probes (about a second, during which the calling thread waits: for benchmarks and tools, not servers).
 * @param threads - threads to use; default the kernels' thread count
 * @throws {RangeError} threads is not an integer in [1, 1024]
 */
export function roofline(threads: number = getThreads()): Roofline {
  checkInteger('roofline', 'threads', threads, 1, 1024);
  return native.roofline(threads);
}
