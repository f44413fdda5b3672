/**
 * Token sampling from one row of logits: greedy (argmax) or temperature sampling with repetition penalty, top-k,
 * top-p (nucleus) and min-p, seeded and reproducible.
 *
 * Order of operations, as in Hugging Face transformers' `generate` (its logits processors, then its warpers, in the
 * order `_get_logits_processor` adds them):
 * 1. repetition penalty (CTRL, `RepetitionPenaltyLogitsProcessor`): for each distinct id in `history`,
 *    `logit > 0 ? logit / p : logit * p`;
 * 2. temperature (`TemperatureLogitsWarper`): logits / T. T = 0 means greedy: the argmax of the penalized logits
 *    (lowest id wins ties); steps 3-6 cannot change it and are skipped;
 * 3. top-k (`TopKLogitsWarper`): drop every token whose logit is below the k-th largest (ties with the k-th are
 *    kept, as in transformers);
 * 4. top-p (`TopPLogitsWarper`): keep the most probable tokens up to and including the first at which their total
 *    probability (after steps 1-3) reaches p; a token is dropped when the tokens ranked above it (probability
 *    descending, lower id first on ties) already hold at least p. The most probable token always stays;
 * 5. min-p (`MinPLogitsWarper`): drop tokens whose probability (after steps 1-4) is below minP x the largest;
 * 6. sample from the softmax of what is left, computed stably in float64 (exp of (logit - max) / T).
 *
 * The random source is each Sampler's own {@link Rng} (xoshiro128** seeded through splitmix32): one uniform draw
 * per sampled token, none when greedy, so a batch of sequences can each have their own reproducible Sampler. The
 * draw picks the first id whose cumulative weight exceeds u x the total weight, ids in ascending order.
 *
 * Logits: a Float32Array or Float64Array [V], never modified; -Infinity masks a token; NaN, +Infinity and a row with
 * no finite value are RangeErrors. A token whose weight exp((logit - max) / T) underflows to 0 in float64 (it is
 * more than ~745 T below the max) is never drawn.
 *
 * Logits on a device ({@link Sampler.sampleTensor}, {@link Sampler.sampleRows}): a [B, V] Tensor (any device, any
 * float dtype) without downloading it where the result allows:
 * - greedy (and repetition penalty 1): `argmax` on the device, B ids come back;
 * - temperature > 0 with 0 < topK < V, topK + 1 <= 1024 and repetition penalty 1: `topK(logits, topK + 1)` on the
 *   device, then steps 4-6 above on the topK candidates. Why the token is the one of the host path, for the same
 *   Sampler state: (a) top-k keeps exactly the candidates the host path keeps. The host keeps every logit >= the k-th
 *   largest; the device returns the k + 1 largest (ties by lower id). When the (k+1)-th value is below the k-th,
 *   nothing outside the first k reaches the k-th value, so the kept set is those k; when it equals the k-th, more ties
 *   may be kept than the device returned, and the row is downloaded and sampled on the host (rare with real logits).
 *   (b) Values are the same numbers: the device returns the logits converted exactly to f32, the host path reads the
 *   same f32 values. (c) Steps 4-6 only ever see the kept tokens: every other weight is exactly 0, and the host loops
 *   skip zeros (adding 0 leaves a float sum unchanged), while every sum, the top-p ranking (weight, then lower id)
 *   and the final draw go over ids in ascending order. So the candidates are sorted by id before steps 4-6, and
 *   every sum is then the same sequence of the same additions; the one uniform draw is the same draw of the same Rng.
 * - otherwise (repetition penalty != 1: it needs the penalized logits of the history's ids, and penalizing on the
 *   device is not done yet; topK 0 or >= V; topK + 1 > 1024) the row is downloaded and sampled as an array.
 * A row that argmax or topK rejects (id -1: NaN, +Infinity or no finite value) is downloaded and goes through the host
 * path, which throws the same RangeError as for an array.
 *
 * Cost, V = 152,064 on one core of the development machine: greedy ~1 ms, temperature ~2.5 ms, + top-k ~1 ms (a
 * quickselect for the k-th value, not a sort), + top-p ~3 ms (only the candidates above a power-of-two threshold that
 * already holds p of the mass are sorted; the result is that of a full sort). Tests: test/nn/sampler.test.ts (it
 * also holds the naive version of steps 1-6 that this file must match token for token).
 */
import { isFloat } from '../dtype.js';
import { rangeError, typeError } from '../errors.js';
import { argmax as argmaxOp, TOP_K_MAX, topK as topKOp } from '../ops/sampling.js';
import { Rng } from '../random.js';
import { Tensor } from '../tensor.js';
import { checkObject, expected, MAX_SAFE, shapeStr } from '../validate.js';

/**
 * The options of a {@link Sampler}. Every one defaults to "off"; the default is greedy decoding. Unknown keys are a
 * RangeError (a misspelt `top_p` must not silently sample without it).
 * @example
 * const opts: SamplerOptions = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, seed: 1 };
 */
export interface SamplerOptions {
  /** Softmax temperature, finite and >= 0. 0 (the default) is greedy: the argmax, lowest id on ties. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th kept). A non-negative integer; 0 (default) is off. */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches p. In (0, 1]; 1 (default) is off. */
  topP?: number;
  /** Drop tokens less likely than minP x the most likely one. In [0, 1); 0 (default) is off. */
  minP?: number;
  /** CTRL repetition penalty over the distinct ids of `history`: finite and > 0; 1 (default) is off, > 1 discourages repeats. */
  repetitionPenalty?: number;
  /** Seed of the sampler's random generator: an integer in [0, 2^53 - 1]. Default {@link DEFAULT_SAMPLER_SEED}. */
  seed?: number;
}

/**
 * The seed a {@link Sampler} uses when none is given, so that runs are reproducible by default.
 * @example
 * new Sampler({ temperature: 1 }).seed === DEFAULT_SAMPLER_SEED // true
 */
export const DEFAULT_SAMPLER_SEED = 0x5eed;

const FN = 'sampler';
const OPTION_KEYS = ['temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'seed'];

function checkNumber(param: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(expected(FN, 'a number', param, v));
  return v;
}

/**
 * Checks one row of logits: a Float32Array or Float64Array, non-empty, no NaN, no +Infinity, at least one finite
 * value (-Infinity marks a masked token).
 */
function checkLogits(fn: string, logits: unknown): Float32Array | Float64Array {
  if (!(logits instanceof Float32Array) && !(logits instanceof Float64Array))
    throw typeError(expected(fn, 'a Float32Array or a Float64Array', 'logits', logits));
  if (logits.length === 0) throw rangeError(expected(fn, 'at least one logit', 'logits', logits));
  let finite = false;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v === -Infinity) continue;
    if (Number.isNaN(v)) throw rangeError(expected(fn, 'no NaN', 'logits', `NaN at index ${i}`, true));
    if (v === Infinity) throw rangeError(expected(fn, 'finite values or -Infinity (masked)', 'logits', `Infinity at index ${i}`, true));
    finite = true;
  }
  if (!finite) throw rangeError(expected(fn, 'at least one finite logit', 'logits', `all ${logits.length} -Infinity`, true));
  return logits;
}

/** argmax without checks; lowest index wins ties. */
function argmaxOf(a: ArrayLike<number>): number {
  let best = 0;
  let bv = a[0]!;
  for (let i = 1; i < a.length; i++) {
    const v = a[i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/**
 * The index of the largest logit; the lowest index wins ties. An array is one row, on the host; a Tensor `[B, V]` is
 * B rows, computed on its device (lib/ops/sampling.ts: a row holding NaN or +Infinity, or no finite value, gets -1).
 * @param logits - one row of logits [V], or a Tensor `[B, V]` (f32, f16, bf16); -Infinity marks masked tokens
 * @returns the token id, or for a Tensor an i32 Tensor `[B]` of ids
 * @throws {TypeError} if `logits` is not a Float32Array, Float64Array or float Tensor
 * @throws {RangeError} if the array is empty, holds NaN or +Infinity, or holds no finite value; a Tensor not [B, V]
 * @example
 * argmax(new Float32Array([0.5, 2, 2, -1])) // 1
 * const ids = await argmax(logitsTensor).data(); // Int32Array [B]
 */
export function argmax(logits: Float32Array | Float64Array): number;
export function argmax(logits: Tensor): Tensor<'i32'>;
export function argmax(logits: Float32Array | Float64Array | Tensor): number | Tensor<'i32'> {
  if (logits instanceof Tensor) return argmaxOp(logits);
  return argmaxOf(checkLogits('argmax', logits));
}

/**
 * Checks `history` (undefined, or an array-like of ids in [0, V)) and, when `z` is given, applies the repetition
 * penalty to it once per distinct id.
 */
function applyHistory(fn: string, history: ArrayLike<number> | undefined, V: number, z: Float64Array | null, penalty: number): void {
  if (history !== undefined && history !== null) {
    if (typeof history !== 'object' || typeof (history as { length?: unknown }).length !== 'number')
      throw typeError(expected(fn, 'an array-like of token ids or undefined', 'history', history));
    const seen = z && penalty !== 1 ? new Uint8Array(V) : null;
    for (let i = 0; i < history.length; i++) {
      const id = history[i];
      if (typeof id !== 'number') throw typeError(expected(fn, 'token ids (numbers)', `history[${i}]`, id));
      if (!Number.isInteger(id) || id < 0 || id >= V) throw rangeError(expected(fn, `a token id in [0, ${V - 1}]`, `history[${i}]`, id));
      if (seen && !seen[id]) {
        seen[id] = 1;
        const v = z![id]!;
        z![id] = v > 0 ? v / penalty : v * penalty;
      }
    }
  } else if (history === null) {
    throw typeError(expected(fn, 'an array-like of token ids or undefined', 'history', history));
  }
}

/**
 * The k-th largest value of z (1 <= k <= length), counting repeats: Wirth's quickselect (Hoare partition around the
 * middle element) on a copy, O(V) on average instead of a full sort's O(V log V).
 */
function kthLargest(z: Float64Array, k: number): number {
  const a = Float64Array.from(z);
  const target = a.length - k; // its index in ascending order
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    // now a[lo..j] <= pivot <= a[i..hi], and everything strictly between j and i equals the pivot
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

/** Tokens ranked by weight, descending, lower id first on ties. */
function ranked(w: Float64Array, minWeight: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < w.length; i++) if (w[i]! > minWeight) ids.push(i);
  return ids.sort((a, b) => w[b]! - w[a]! || a - b);
}

/**
 * Top-p on unnormalized weights (largest exactly 1), in place: in descending order, a token is zeroed when the
 * tokens ranked above it already hold at least p of the total. Only a candidate set is sorted: the weights above
 * the largest power-of-two threshold 2^-(b+1) whose tokens already hold p of the mass. They are a prefix of the full
 * order, so the result is the same as sorting everything (if rounding leaves the candidates short of the target,
 * everything is sorted after all); with a peaked distribution over a large vocabulary that is a few tokens, not V.
 */
function topP(w: Float64Array, p: number): void {
  const V = w.length;
  // mass[b]: the weights in (2^-(b+1), 2^-b], b < 64; weights at or below 2^-64 go to mass[64].
  const mass = new Float64Array(65);
  let total = 0;
  for (let i = 0; i < V; i++) {
    const wi = w[i]!;
    if (wi === 0) continue;
    total += wi;
    mass[Math.min(64, Math.floor(-Math.log2(wi)))]! += wi;
  }
  const target = p * total;
  let cum = 0;
  let b = 0;
  for (; b < 64; b++) if ((cum += mass[b]!) >= target) break;
  let ids = b < 64 ? ranked(w, 2 ** -(b + 1)) : ranked(w, 0);
  for (let pass = 0; pass < 2; pass++) {
    let before = 0;
    let r = 0;
    for (; r < ids.length && (r === 0 || before < target); r++) before += w[ids[r]!]!;
    if (r === ids.length && before < target && pass === 0) {
      ids = ranked(w, 0); // rounding: the candidates fell short; use the full order
      continue;
    }
    const keep = new Uint8Array(V);
    for (let j = 0; j < r; j++) keep[ids[j]!] = 1;
    for (let i = 0; i < V; i++) if (!keep[i]) w[i] = 0;
    return;
  }
}

/**
 * Picks the next token from a row of logits. Greedy by default; with a temperature it samples, after repetition
 * penalty, top-k, top-p and min-p (in that order, as Hugging Face transformers does). Each Sampler owns a seeded
 * random generator: the same options, seed and inputs give the same tokens. Give each sequence of a batch its own.
 * @example
 * const sampler = new Sampler({ temperature: 0.8, topP: 0.95, repetitionPenalty: 1.1, seed: 42 });
 * const next = sampler.sample(logits, tokensSoFar);
 */
export class Sampler {
  /** Softmax temperature; 0 is greedy. */
  readonly temperature: number;
  /** Top-k; 0 is off. */
  readonly topK: number;
  /** Top-p; 1 is off. */
  readonly topP: number;
  /** Min-p; 0 is off. */
  readonly minP: number;
  /** Repetition penalty; 1 is off. */
  readonly repetitionPenalty: number;
  /** The seed the generator started from. */
  readonly seed: number;
  private readonly rng: Rng;

  /**
   * @param opts - see {@link SamplerOptions}; omitted or undefined options are off (greedy by default)
   * @throws {TypeError} if `opts` is not an object or an option is not a number
   * @throws {RangeError} for an unknown option or an option out of its range
   * @example
   * const greedy = new Sampler();
   * const creative = new Sampler({ temperature: 1.0, minP: 0.05, seed: 7 });
   */
  constructor(opts: SamplerOptions = {}) {
    if (ArrayBuffer.isView(opts)) throw typeError(expected(FN, 'an options object', 'options', opts));
    const o = checkObject(FN, 'options', opts);
    for (const k of Object.keys(o))
      if (!OPTION_KEYS.includes(k)) throw rangeError(expected(FN, `only the options ${OPTION_KEYS.join(', ')}`, 'options', `an option ${JSON.stringify(k)}`, true));

    const t = o.temperature === undefined ? 0 : checkNumber('temperature', o.temperature);
    if (!Number.isFinite(t) || t < 0) throw rangeError(expected(FN, 'a finite number >= 0 (0: greedy)', 'temperature', t));
    const k = o.topK === undefined ? 0 : checkNumber('topK', o.topK);
    if (!Number.isInteger(k) || k < 0 || k > MAX_SAFE) throw rangeError(expected(FN, 'a non-negative integer (0: off)', 'topK', k));
    const p = o.topP === undefined ? 1 : checkNumber('topP', o.topP);
    if (!(p > 0 && p <= 1)) throw rangeError(expected(FN, 'a number in (0, 1] (1: off)', 'topP', p));
    const m = o.minP === undefined ? 0 : checkNumber('minP', o.minP);
    if (!(m >= 0 && m < 1)) throw rangeError(expected(FN, 'a number in [0, 1) (0: off)', 'minP', m));
    const r = o.repetitionPenalty === undefined ? 1 : checkNumber('repetitionPenalty', o.repetitionPenalty);
    if (!Number.isFinite(r) || r <= 0) throw rangeError(expected(FN, 'a finite number > 0 (1: off)', 'repetitionPenalty', r));
    const s = o.seed === undefined ? DEFAULT_SAMPLER_SEED : checkNumber('seed', o.seed);
    if (!Number.isInteger(s) || s < 0 || s > MAX_SAFE) throw rangeError(expected(FN, `an integer in [0, ${MAX_SAFE}]`, 'seed', s));

    this.temperature = t;
    this.topK = k;
    this.topP = p;
    this.minP = m;
    this.repetitionPenalty = r;
    this.seed = s;
    // Rng takes 32 bits; fold the high bits of a larger seed in so that they still matter.
    this.rng = new Rng((s % 4294967296) ^ Math.imul(Math.floor(s / 4294967296), 0x9e3779b1));
  }

  /**
   * The next token id.
   * @param logits - one row of logits [V] (not modified); -Infinity marks tokens that must not be chosen
   * @param history - the ids so far (prompt and generated), for the repetition penalty; each an integer in [0, V)
   * @returns a token id in [0, V) whose logit is finite
   * @throws {TypeError} if `logits` is not a Float32Array / Float64Array, or `history` not an array-like of numbers
   * @throws {RangeError} if `logits` is empty, holds NaN or +Infinity, or has no finite value; or a history id is
   *   not an integer in [0, V)
   * @example
   * const s = new Sampler({ temperature: 0.7, topK: 40, seed: 1 });
   * const ids = [1, 72];
   * ids.push(s.sample(model.logits(ids), ids));
   */
  sample(logits: Float32Array | Float64Array, history?: ArrayLike<number>): number {
    const fn = 'sample';
    checkLogits(fn, logits);
    const V = logits.length;
    const z = Float64Array.from(logits);

    // 1. repetition penalty, once per distinct id
    applyHistory(fn, history, V, z, this.repetitionPenalty);

    // 2. temperature; 0 is greedy
    const best = argmaxOf(z);
    if (this.temperature === 0) return best;

    // 3. top-k: keep logits >= the k-th largest
    if (this.topK > 0 && this.topK < V) {
      const kth = kthLargest(z, this.topK);
      for (let i = 0; i < V; i++) if (z[i]! < kth) z[i] = -Infinity;
    }
    return this.draw(z, best);
  }

  /**
   * Steps 4-6 on z (penalized, top-k masked with -Infinity), whose argmax (lowest index) is `best`: the index drawn.
   * The tensor path calls it on the top-k candidates sorted by id (see the file header for why that is the same draw).
   */
  private draw(z: Float64Array, best: number): number {
    const V = z.length;
    const max = z[best]!;
    const T = this.temperature;

    // Unnormalized probabilities exp((z - max) / T): the largest is exactly 1, masked ones exactly 0.
    const w = new Float64Array(V);
    for (let i = 0; i < V; i++) w[i] = z[i] === -Infinity ? 0 : Math.exp((z[i]! - max) / T);

    // 4. top-p
    if (this.topP < 1) topP(w, this.topP);

    // 5. min-p: relative to the most likely token, whose weight is 1
    if (this.minP > 0) {
      for (let i = 0; i < V; i++) {
        if (w[i]! < this.minP) w[i] = 0;
      }
    }

    // 6. sample: the first id whose cumulative weight exceeds u * total
    let total = 0;
    for (let i = 0; i < V; i++) total += w[i]!;
    const u = this.rng.uniform() * total;
    let acc = 0;
    let last = best;
    for (let i = 0; i < V; i++) {
      const wi = w[i]!;
      if (wi === 0) continue;
      acc += wi;
      last = i;
      if (acc > u) return i;
    }
    return last; // rounding: u * total can reach the summed weight
  }

  /** How a row of V logits on a device is sampled: argmax, top-k with k + 1 candidates, or downloaded ('full'). */
  private devicePlan(V: number): 'greedy' | 'full' | number {
    if (this.repetitionPenalty !== 1) return 'full';
    if (this.temperature === 0) return 'greedy';
    if (this.topK > 0 && this.topK + 1 <= Math.min(V, TOP_K_MAX)) return this.topK + 1;
    return 'full';
  }

  /**
   * The token from the `topK + 1` device candidates of a row (values descending, ties by lower id, at `off`), or null
   * when the (k+1)-th value ties with the k-th (the host path may keep more tokens than were returned).
   */
  private fromCandidates(vals: Float32Array, ids: Int32Array, off: number): number | null {
    const k = this.topK;
    if (vals[off + k] === vals[off + k - 1]) return null;
    const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => ids[off + a]! - ids[off + b]!);
    const z = new Float64Array(k);
    const idc = new Int32Array(k);
    for (let c = 0; c < k; c++) {
      z[c] = vals[off + order[c]!]!;
      idc[c] = ids[off + order[c]!]!;
    }
    return idc[this.draw(z, argmaxOf(z))]!;
  }

  /**
   * The next token from logits held in a Tensor on any device: like {@link Sampler.sample}, the same token for the
   * same state, downloading only an id (greedy) or topK + 1 candidates (top-k sampling) where it can (file header).
   * @param logits - `[V]` or `[1, V]`, f32, f16 or bf16 (not modified)
   * @param history - as for {@link Sampler.sample}
   * @returns a promise of the token id
   * @throws {TypeError} | {RangeError} as {@link Sampler.sample} (the promise rejects), and for a logits Tensor of
   *   another shape or a non-float dtype
   * @example
   * const next = await sampler.sampleTensor(logits.slice(r, r + 1), history);
   */
  async sampleTensor(logits: Tensor, history?: ArrayLike<number>): Promise<number> {
    const fn = 'sampleTensor';
    if (!(logits instanceof Tensor)) throw typeError(expected(fn, 'a Tensor', 'logits', logits));
    if (logits.shape.length === 1) {
      using rows = logits.reshape([1, logits.shape[0]!]);
      return (await Sampler.sampleRows([this], rows, [history]))[0]!;
    }
    if (logits.shape.length !== 2 || logits.shape[0] !== 1)
      throw rangeError(expected(fn, 'logits of shape [V] or [1, V]', 'logits.shape', shapeStr(logits.shape), true));
    return (await Sampler.sampleRows([this], logits, [history]))[0]!;
  }

  /**
   * One token per row of a `[B, V]` logits Tensor, row b drawn by `samplers[b]` with `histories[b]`: what
   * `samplers[b].sample(row b, histories[b])` returns, with one argmax and one topK per distinct k on the device for
   * all rows together, and only the rows that need it downloaded (file header).
   * @param samplers - B Samplers (one per sequence; each advances its own random generator)
   * @param logits - `[B, V]` f32, f16 or bf16, on any device (not modified)
   * @param histories - undefined, or B histories (each undefined or an array-like of ids)
   * @returns a promise of B token ids
   * @throws {TypeError} | {RangeError} for bad arguments, and as {@link Sampler.sample} for a bad row or history
   * @example
   * const next = await Sampler.sampleRows(samplers, logits, histories);
   */
  static async sampleRows(samplers: readonly Sampler[], logits: Tensor, histories?: readonly (ArrayLike<number> | undefined)[]): Promise<number[]> {
    const fn = 'sampleRows';
    if (!(logits instanceof Tensor)) throw typeError(expected(fn, 'a Tensor', 'logits', logits));
    if (logits.shape.length !== 2 || logits.shape[1]! < 1)
      throw rangeError(expected(fn, 'logits of shape [B, V] with V >= 1', 'logits.shape', shapeStr(logits.shape), true));
    if (!isFloat(logits.dtype)) throw typeError(expected(fn, "a float dtype ('f32', 'f16', 'bf16')", 'logits.dtype', logits.dtype));
    const [B, V] = logits.shape as [number, number];
    if (!Array.isArray(samplers)) throw typeError(expected(fn, 'an array of Samplers', 'samplers', samplers));
    if (samplers.length !== B) throw rangeError(expected(fn, `${B} Samplers (one per row of logits)`, 'samplers.length', samplers.length));
    samplers.forEach((s, i) => {
      if (!(s instanceof Sampler)) throw typeError(expected(fn, 'a Sampler', `samplers[${i}]`, s));
    });
    if (histories !== undefined) {
      if (!Array.isArray(histories)) throw typeError(expected(fn, 'an array of histories or undefined', 'histories', histories));
      if (histories.length !== B) throw rangeError(expected(fn, `${B} histories (one per row of logits)`, 'histories.length', histories.length));
    }
    const plans = samplers.map((s) => s.devicePlan(V));
    const owned: Tensor[] = [];
    try {
      // Enqueue every device op first, then wait for the downloads together.
      const argmaxIds = plans.includes('greedy') ? argmaxOp(logits) : null;
      if (argmaxIds) owned.push(argmaxIds);
      const ks = [...new Set(plans.filter((p): p is number => typeof p === 'number'))];
      const tops = ks.map((k) => {
        const t = topKOp(logits, k);
        owned.push(t.values, t.ids);
        return t;
      });
      const needFull = plans.includes('full');
      const [greedyIds, full, ...topData] = await Promise.all([
        argmaxIds ? argmaxIds.data() : Promise.resolve(null),
        needFull ? logits.toFloat32() : Promise.resolve(null),
        ...tops.flatMap((t) => [t.values.data(), t.ids.data()]),
      ]);
      const out: number[] = [];
      for (let b = 0; b < B; b++) {
        const s = samplers[b]!;
        const history = histories?.[b];
        const plan = plans[b]!;
        // The host path over row b: for 'full' rows, rows the device rejected (it throws their RangeError) and
        // top-k ties beyond the k-th.
        const host = async (): Promise<number> => {
          if (full) return s.sample(full.subarray(b * V, (b + 1) * V), history);
          using row = logits.slice(b, b + 1);
          return s.sample(await row.toFloat32(), history);
        };
        if (plan === 'full') {
          out.push(await host());
        } else if (plan === 'greedy') {
          const id = (greedyIds as Int32Array)[b]!;
          if (id < 0) out.push(await host());
          else {
            applyHistory('sample', history, V, null, 1);
            out.push(id);
          }
        } else {
          const g = ks.indexOf(plan);
          const vals = topData[2 * g] as Float32Array;
          const ids = topData[2 * g + 1] as Int32Array;
          if (ids[b * plan]! < 0) {
            out.push(await host());
            continue;
          }
          applyHistory('sample', history, V, null, 1);
          const tok = s.fromCandidates(vals, ids, b * plan);
          out.push(tok ?? (await host()));
        }
      }
      return out;
    } finally {
      for (const t of owned) t.dispose();
    }
  }
}
