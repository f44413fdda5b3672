/**
 * checkOp: runs an op on every available backend and compares it with the reference backend (native/cpu/ref, the
 * spec) on the same inputs.
 *
 * - Backends: 'cpu' (the SIMD level this CPU has), 'cpu-avx2' (the AVX2 kernels on an AVX-512 machine),
 *   'cpu-scalar' (the portable paths), 'cuda' when available.
 * - Tolerances come from the one table in native/common/cases.cc (through the addon), so lk_check and these tests
 *   judge alike: exact ops bit for bit (two NaNs match); reductions by NMSE and per element by
 *   |got - ref| <= rtol * (|ref| + rms(ref)).
 * - Inputs are seeded random data (never zeros), laid out as views inside a larger tensor whose first and last
 *   rows are NaN canaries: a kernel that reads outside its input turns the output NaN and fails.
 * - On failure the message names the case and shows the first mismatches.
 */
import { native, opId } from '../../lib/binding.js';
import { DTYPE_ID, type DType } from '../../lib/dtype.js';
import { device, type Device, Tensor } from '../../lib/index.js';
import { Rng } from '../../lib/random.js';
import { withReferenceBackend } from '../../lib/tensor.js';

export const cudaAvailable = native.info().cuda.available;
const detectedSimd = native.info().cpu.simdDetected as 'avx512' | 'avx2' | 'scalar';
export const avx2Available = detectedSimd !== 'scalar';
export const avx512Available = detectedSimd === 'avx512';

export interface Backend {
  name: 'cpu' | 'cpu-avx2' | 'cpu-scalar' | 'cuda';
  device: Device;
  /** Runs body with this backend selected (the SIMD level for the CPU ones). */
  use<T>(body: () => T): T;
}

function withSimd<T>(level: 'avx2' | 'scalar', body: () => T): T {
  native.setSimd(level);
  try {
    return body();
  } finally {
    native.setSimd(detectedSimd);
  }
}

/** Every backend this machine can run. */
export const BACKENDS: Backend[] = [
  { name: 'cpu', device: device('cpu'), use: (b) => b() },
  // On an AVX-512 machine the AVX2 kernels are a separate variant (matmul_q): checked too.
  ...(avx512Available ? [{ name: 'cpu-avx2' as const, device: device('cpu'), use: <T>(b: () => T) => withSimd('avx2', b) }] : []),
  ...(avx2Available ? [{ name: 'cpu-scalar' as const, device: device('cpu'), use: <T>(b: () => T) => withSimd('scalar', b) }] : []),
  ...(cudaAvailable ? [{ name: 'cuda' as const, device: device('cuda'), use: <T>(b: () => T) => b() }] : []),
];

export function tolerance(op: string, dtype: DType): { exact: boolean; nmse: number; rtol: number } {
  return native.tolerance(opId(op), DTYPE_ID[dtype]);
}

/** Seeded normal data (never all zeros), optionally with special values mixed in. */
export function randomData(n: number, seed: number, special = false): Float32Array {
  const rng = new Rng(seed);
  const a = rng.fillNormal(new Float32Array(n));
  if (special) {
    const specials = [NaN, Infinity, -Infinity, -0, 1e-40, -3e-39, 6.0e-8, 65504, 65520, 1e30, -1e30, 3.4e38, 2 ** -25, 1 + 2 ** -11];
    for (let i = 0; i < n; i += 3) a[i] = specials[rng.int(0, specials.length - 1)]!;
  }
  return a;
}

/**
 * A tensor of `dtype` holding `data` (converted), as a view between two NaN canary rows of a larger tensor.
 * The caller disposes it (the parent goes with the last view).
 */
export function canaried(data: Float32Array, shape: number[], dtype: DType, dev: Device): Tensor {
  const rows = shape.length === 0 ? 1 : shape[0]!;
  const rowLen = rows === 0 ? 0 : data.length / rows;
  const padded = new Float32Array(data.length + 2 * rowLen).fill(NaN);
  padded.set(data, rowLen);
  const parentShape = shape.length === 0 ? [3] : [rows + 2, ...shape.slice(1)];
  using parent32 = Tensor.fromArray(padded, { shape: parentShape, device: dev });
  let parent: Tensor = parent32;
  if (dtype !== 'f32') parent = dtype === 'f16' || dtype === 'bf16' ? parent32.cast(dtype) : integerTensor(padded, parentShape, dtype, dev);
  try {
    const v = parent.slice(1, rows + 1);
    return shape.length === 0 ? v.reshape([]) : v;
  } finally {
    if (parent !== parent32) parent.dispose();
  }
}

function integerTensor(data: Float32Array, shape: number[], dtype: DType, dev: Device): Tensor {
  const [lo, hi] = dtype === 'i8' ? [-128, 127] : dtype === 'u8' ? [0, 255] : [-2147483648, 2147483647];
  const ints = Array.from(data, (v) => (Number.isNaN(v) ? hi : Math.max(lo, Math.min(hi, Math.round(v * 40)))));
  return Tensor.fromArray(ints, { shape, dtype, device: dev });
}

/** Bits of the raw elements, for exact comparison. */
async function rawBits(t: Tensor): Promise<Float64Array> {
  if (t.dtype === 'f32') {
    const f = (await t.data()) as Float32Array;
    return Float64Array.from(f);
  }
  return Float64Array.from((await t.toFloat32()) as Float32Array);
}

export interface CompareResult {
  ok: boolean;
  nmse: number;
  maxAbs: number;
  message: string;
}

/** Compares got with want under the tolerance of `op` for dtype. */
export function compare(op: string, dtype: DType, got: ArrayLike<number>, want: ArrayLike<number>, label: string): CompareResult {
  const tol = tolerance(op, dtype);
  if (got.length !== want.length) return { ok: false, nmse: Infinity, maxAbs: Infinity, message: `${label}: length ${got.length} != ${want.length}` };
  let sumSq = 0;
  let errSq = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i]!)) sumSq += want[i]! * want[i]!;
  const rms = Math.sqrt(sumSq / Math.max(1, want.length));
  const bad: string[] = [];
  let nbad = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    let ok: boolean;
    if (tol.exact) ok = Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w));
    else if (!Number.isFinite(w) || !Number.isFinite(g)) ok = Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w));
    else {
      const d = Math.abs(g - w);
      errSq += d * d;
      maxAbs = Math.max(maxAbs, d);
      ok = d <= tol.rtol * (Math.abs(w) + rms);
    }
    if (!ok) {
      nbad++;
      if (bad.length < 8) bad.push(`  [${i}] got ${g}, want ${w}`);
    }
  }
  const nmse = sumSq > 0 ? errSq / sumSq : errSq;
  const nmseOk = tol.exact || nmse <= tol.nmse;
  const ok = nbad === 0 && nmseOk;
  return {
    ok,
    nmse,
    maxAbs,
    message: ok
      ? ''
      : `${label}: ${nbad} of ${want.length} elements off (nmse ${nmse.toExponential(2)} vs ${tol.nmse}, ` +
        `maxAbs ${maxAbs.toExponential(2)}):\n${bad.join('\n')}`,
  };
}

export interface OpCase {
  /** Case name, op first: `matmul(M=7,N=33,K=96,f16)`. */
  name: string;
  /** The op's name in ops.def (selects the tolerance). */
  op: string;
  /** Inputs: data (f32 values), shape and dtype of each. */
  inputs: { data: Float32Array; shape: number[]; dtype: DType }[];
  /** Runs the op through the public API. */
  run: (inputs: Tensor[]) => Tensor;
}

/**
 * Runs `c` on the reference backend and on every backend of {@link BACKENDS}; throws with the first mismatches.
 */
export async function checkOp(c: OpCase, backends: Backend[] = BACKENDS): Promise<void> {
  const cpu = device('cpu');
  const refInputs = c.inputs.map((i) => canaried(i.data, i.shape, i.dtype, cpu));
  let want: Float64Array;
  let outDtype: DType;
  try {
    using out = withReferenceBackend(() => c.run(refInputs));
    outDtype = out.dtype;
    want = await rawBits(out);
  } finally {
    refInputs.forEach((t) => t.dispose());
  }
  const failures: string[] = [];
  for (const b of backends) {
    const ins = c.inputs.map((i) => canaried(i.data, i.shape, i.dtype, b.device));
    try {
      using out = b.use(() => c.run(ins));
      const got = await rawBits(out);
      const r = compare(c.op, outDtype, got, want, `${c.name} on ${b.name}`);
      if (!r.ok) failures.push(r.message);
    } finally {
      ins.forEach((t) => t.dispose());
    }
  }
  if (failures.length) throw new Error(failures.join('\n'));
}

/** Asserts that `fn` throws an error of class `cls` whose code/message match. */
export function expectThrows(fn: () => unknown, cls: new (...a: never[]) => Error, code?: string, message?: RegExp): Error {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof cls)) throw new Error(`expected ${cls.name}${code ? ` ${code}` : ''}, got ${err === undefined ? 'no error' : String(err)}`);
  if (code && (err as { code?: string }).code !== code) throw new Error(`expected code ${code}, got ${(err as { code?: string }).code}: ${err.message}`);
  if (message && !message.test(err.message)) throw new Error(`expected message ${message}, got: ${err.message}`);
  return err;
}
