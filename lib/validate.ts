/**
 * Argument checks. Each predicate throws the right typed error with the house message form
 * `<fn>: expected <what> for <param>, got <actual>`; `describe` renders the actual value.
 */
import { rangeError, typeError } from './errors.js';

/** A short, safe rendering of any value for error messages (never throws, never huge). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'number':
      return Number.isNaN(v) ? 'NaN' : String(v);
    case 'bigint':
      return `${v}n`;
    case 'string':
      return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
    case 'boolean':
      return String(v);
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
  }
  if (Array.isArray(v)) {
    const items = v.slice(0, 8).map((x) => (typeof x === 'number' ? String(x) : typeof x === 'object' ? '…' : describe(x)));
    return `[${items.join(', ')}${v.length > 8 ? ', …' : ''}]`;
  }
  if (ArrayBuffer.isView(v)) return `${article(v.constructor.name)} of length ${(v as unknown as { length?: number }).length ?? v.byteLength}`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? article(name) : 'an object';
}

function article(name: string): string {
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

export function expected(fn: string, what: string, param: string, got: unknown, gotIsText = false): string {
  return `${fn}: expected ${what} for ${param}, got ${gotIsText ? String(got) : describe(got)}`;
}

/** Largest integer a shape dimension or element count may have (exactly representable in a double). */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** At most this many dimensions (native/common/tensor.h kMaxDims). */
export const MAX_DIMS = 8;

export function checkInteger(fn: string, param: string, v: unknown, min = 0, max = MAX_SAFE): number {
  if (typeof v !== 'number') throw typeError(expected(fn, 'an integer', param, v));
  if (!Number.isInteger(v) || v < min || v > max)
    throw rangeError(expected(fn, `an integer in [${min}, ${max}]`, param, v));
  return v;
}

export function checkFiniteNumber(fn: string, param: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(expected(fn, 'a number', param, v));
  if (!Number.isFinite(v)) throw rangeError(expected(fn, 'a finite number', param, v));
  return v;
}

export function checkObject(fn: string, param: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw typeError(expected(fn, 'an options object', param, v));
  return v as Record<string, unknown>;
}

/** A shape: an array of at most 8 non-negative integers whose product stays a safe integer. */
export function checkShape(fn: string, param: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw typeError(expected(fn, 'an array of integers', param, v));
  if (v.length > MAX_DIMS) throw rangeError(expected(fn, `at most ${MAX_DIMS} dimensions`, param, v));
  // Bounded over the non-zero dimensions: [2^52, 2^52, 0] is empty, but its partial products are not.
  let nonzero = 1;
  for (let i = 0; i < v.length; i++) {
    const d = v[i];
    if (typeof d !== 'number') throw typeError(expected(fn, 'an array of integers', param, v));
    if (!Number.isInteger(d) || d < 0) throw rangeError(expected(fn, 'non-negative integer dimensions', param, v));
    if (d !== 0) nonzero *= d;
    if (nonzero > MAX_SAFE) throw rangeError(expected(fn, 'at most 2^53 elements', param, v));
  }
  return v.slice() as number[];
}

export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

