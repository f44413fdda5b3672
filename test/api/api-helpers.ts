// Shared by test/api/*.test.ts: catching an error for inspection, the house message form as a regex, and a sanity
// call that proves the process and the CPU stream still work after a bad call.
import { expect } from 'vitest';
import { add, device, LlmKernelsError, Tensor } from '../../lib/index.js';

export type ErrorClass = typeof TypeError | typeof RangeError | typeof LlmKernelsError | typeof Error;

/** The code every error class carries (LlmKernelsError: its own code). */
export const CODE_OF = new Map<ErrorClass, string>([
  [TypeError, 'ERR_INVALID_ARG_TYPE'],
  [RangeError, 'ERR_OUT_OF_RANGE'],
]);

/** Runs f, which must throw synchronously; returns what it threw. */
export function caught(f: () => unknown): Error & { code?: string } {
  let result: unknown;
  try {
    result = f();
  } catch (e) {
    return e as Error & { code?: string };
  }
  if (result instanceof Promise) result.catch(() => undefined);
  throw new Error(`expected a synchronous throw, got ${result instanceof Promise ? 'a promise' : `a return value (${String(result)})`}`);
}

/** Awaits p, which must reject; returns the reason. */
export async function rejected(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection, got a resolved promise');
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `<fn>: expected <what> for <param>, got <actual>`, whole message. */
export function house(fn: string, param: string): RegExp {
  return new RegExp(`^${esc(fn)}: expected .+ for ${esc(param)}, got .+$`, 's');
}

/** Checks class, code and message of an error in one go (with a useful failure message). */
export function expectError(e: Error & { code?: string }, cls: ErrorClass, code: string | undefined, message: RegExp): void {
  const seen = `${e?.constructor?.name} ${e?.code}: ${e?.message}`;
  expect(e, seen).toBeInstanceOf(cls);
  // A TypeError must not be mistaken for a subclass check passing on LlmKernelsError and vice versa.
  if (cls !== LlmKernelsError) expect(e, seen).not.toBeInstanceOf(LlmKernelsError);
  expect(e.code, seen).toBe(code ?? CODE_OF.get(cls));
  expect(e.message, seen).toMatch(message);
}

/** A valid call after a bad one: results right, stream not poisoned (synchronize resolves). */
export async function sanity(): Promise<void> {
  using a = Tensor.fromArray([1, 2, 3, -4.5]);
  using b = Tensor.fromArray([0.5, 0.25, 4, 1]);
  using y = add(a, b);
  expect(Array.from(y.dataSync())).toEqual([1.5, 2.25, 7, -3.5]);
  expect(Array.from(await y.data())).toEqual([1.5, 2.25, 7, -3.5]);
  await expect(device('cpu').synchronize()).resolves.toBeUndefined();
}

/** Bits of a Float32Array, for bit-exact comparisons (NaN payloads included). */
export function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** y = x · wᵀ in double, rounded to f32 (the spec of matmul). */
export function matmulRef(x: Float32Array, w: Float32Array, M: number, N: number, K: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s;
    }
  return y;
}
