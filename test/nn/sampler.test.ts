// Sampler and argmax (lib/nn/sampler.ts): (1) every bad option and argument throws the right class, code and exact
// house message; (2) greedy is the argmax (lowest id on ties), top-k 1 is greedy; (3) the empirical frequencies of
// seeded draws match distributions computed here by hand for temperature, top-k, top-p, min-p, their order
// (temperature before top-p matters), repetition penalty and masked (-Infinity) logits: a chi-square statistic with
// a generous bound, and exactly zero draws of every excluded token; (4) seeds: same seed same sequence, samplers
// independent of each other.
import { describe, expect, it } from 'vitest';
import { argmax, DEFAULT_SAMPLER_SEED, Sampler, type SamplerOptions } from '../../lib/nn/sampler.js';
import { Rng } from '../../lib/random.js';

function caught(f: () => unknown): Error & { code?: string } {
  try {
    f();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

function expectThrow(f: () => unknown, cls: typeof TypeError | typeof RangeError, message: string): void {
  const e = caught(f);
  expect(e, e.message).toBeInstanceOf(cls);
  expect(e.code).toBe(cls === TypeError ? 'ERR_INVALID_ARG_TYPE' : 'ERR_OUT_OF_RANGE');
  expect(e.message).toBe(message);
}

const bad = (o: unknown) => () => new Sampler(o as SamplerOptions);

describe('Sampler: validation', () => {
  const cases: [string, unknown, typeof TypeError | typeof RangeError, string][] = [
    ['options not an object', 5, TypeError, 'sampler: expected an options object for options, got 5'],
    ['options null', null, TypeError, 'sampler: expected an options object for options, got null'],
    ['options an array', [], TypeError, 'sampler: expected an options object for options, got []'],
    ['options a typed array', new Float32Array(2), TypeError, 'sampler: expected an options object for options, got a Float32Array of length 2'],
    ['unknown option', { top_p: 0.9 }, RangeError, 'sampler: expected only the options temperature, topK, topP, minP, repetitionPenalty, seed for options, got an option "top_p"'],
    ['temperature string', { temperature: '1' }, TypeError, 'sampler: expected a number for temperature, got "1"'],
    ['temperature < 0', { temperature: -0.5 }, RangeError, 'sampler: expected a finite number >= 0 (0: greedy) for temperature, got -0.5'],
    ['temperature NaN', { temperature: NaN }, RangeError, 'sampler: expected a finite number >= 0 (0: greedy) for temperature, got NaN'],
    ['temperature Infinity', { temperature: Infinity }, RangeError, 'sampler: expected a finite number >= 0 (0: greedy) for temperature, got Infinity'],
    ['topK fractional', { topK: 1.5 }, RangeError, 'sampler: expected a non-negative integer (0: off) for topK, got 1.5'],
    ['topK negative', { topK: -1 }, RangeError, 'sampler: expected a non-negative integer (0: off) for topK, got -1'],
    ['topK bigint', { topK: 3n }, TypeError, 'sampler: expected a number for topK, got 3n'],
    ['topP 0', { topP: 0 }, RangeError, 'sampler: expected a number in (0, 1] (1: off) for topP, got 0'],
    ['topP > 1', { topP: 1.5 }, RangeError, 'sampler: expected a number in (0, 1] (1: off) for topP, got 1.5'],
    ['topP NaN', { topP: NaN }, RangeError, 'sampler: expected a number in (0, 1] (1: off) for topP, got NaN'],
    ['topP null', { topP: null }, TypeError, 'sampler: expected a number for topP, got null'],
    ['minP 1', { minP: 1 }, RangeError, 'sampler: expected a number in [0, 1) (0: off) for minP, got 1'],
    ['minP < 0', { minP: -0.1 }, RangeError, 'sampler: expected a number in [0, 1) (0: off) for minP, got -0.1'],
    ['minP NaN', { minP: NaN }, RangeError, 'sampler: expected a number in [0, 1) (0: off) for minP, got NaN'],
    ['repetitionPenalty 0', { repetitionPenalty: 0 }, RangeError, 'sampler: expected a finite number > 0 (1: off) for repetitionPenalty, got 0'],
    ['repetitionPenalty < 0', { repetitionPenalty: -1.2 }, RangeError, 'sampler: expected a finite number > 0 (1: off) for repetitionPenalty, got -1.2'],
    ['repetitionPenalty Infinity', { repetitionPenalty: Infinity }, RangeError, 'sampler: expected a finite number > 0 (1: off) for repetitionPenalty, got Infinity'],
    ['repetitionPenalty boolean', { repetitionPenalty: true }, TypeError, 'sampler: expected a number for repetitionPenalty, got true'],
    ['seed fractional', { seed: 0.5 }, RangeError, 'sampler: expected an integer in [0, 9007199254740991] for seed, got 0.5'],
    ['seed negative', { seed: -1 }, RangeError, 'sampler: expected an integer in [0, 9007199254740991] for seed, got -1'],
    ['seed 2^53', { seed: 2 ** 53 }, RangeError, 'sampler: expected an integer in [0, 9007199254740991] for seed, got 9007199254740992'],
    ['seed string', { seed: '7' }, TypeError, 'sampler: expected a number for seed, got "7"'],
  ];
  for (const [name, o, cls, msg] of cases) it(name, () => expectThrow(bad(o), cls, msg));

  it('defaults: greedy, every filter off, the fixed default seed; undefined options are defaults', () => {
    for (const s of [new Sampler(), new Sampler({}), new Sampler({ temperature: undefined, topK: undefined, seed: undefined })])
      expect({ ...s, rng: undefined }).toEqual({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: DEFAULT_SAMPLER_SEED, rng: undefined });
    const s = new Sampler({ temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, seed: 3 });
    expect([s.temperature, s.topK, s.topP, s.minP, s.repetitionPenalty, s.seed]).toEqual([0.7, 40, 0.9, 0.05, 1.1, 3]);
    // The edges of each range are valid.
    expect(() => new Sampler({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1e-9, seed: 2 ** 53 - 1 })).not.toThrow();
  });

  const ok = new Sampler({ temperature: 1 });
  const arg: [string, () => unknown, typeof TypeError | typeof RangeError, string][] = [
    ['logits an array', () => ok.sample([1, 2] as unknown as Float32Array), TypeError, 'sample: expected a Float32Array or a Float64Array for logits, got [1, 2]'],
    ['logits an Int32Array', () => ok.sample(new Int32Array(3) as unknown as Float32Array), TypeError, 'sample: expected a Float32Array or a Float64Array for logits, got an Int32Array of length 3'],
    ['logits missing', () => (ok.sample as (l?: unknown) => number)(), TypeError, 'sample: expected a Float32Array or a Float64Array for logits, got undefined'],
    ['logits empty', () => ok.sample(new Float32Array(0)), RangeError, 'sample: expected at least one logit for logits, got a Float32Array of length 0'],
    ['logits NaN', () => ok.sample(new Float32Array([0, 1, NaN])), RangeError, 'sample: expected no NaN for logits, got NaN at index 2'],
    ['logits +Infinity', () => ok.sample(new Float64Array([0, Infinity])), RangeError, 'sample: expected finite values or -Infinity (masked) for logits, got Infinity at index 1'],
    ['logits all -Infinity', () => ok.sample(new Float32Array([-Infinity, -Infinity])), RangeError, 'sample: expected at least one finite logit for logits, got all 2 -Infinity'],
    ['greedy, all -Infinity', () => new Sampler().sample(new Float32Array([-Infinity])), RangeError, 'sample: expected at least one finite logit for logits, got all 1 -Infinity'],
    ['history a string', () => ok.sample(new Float32Array(3), '01' as unknown as number[]), TypeError, 'sample: expected an array-like of token ids or undefined for history, got "01"'],
    ['history a number', () => ok.sample(new Float32Array(3), 1 as unknown as number[]), TypeError, 'sample: expected an array-like of token ids or undefined for history, got 1'],
    ['history null', () => ok.sample(new Float32Array(3), null as unknown as number[]), TypeError, 'sample: expected an array-like of token ids or undefined for history, got null'],
    ['history id not a number', () => ok.sample(new Float32Array(3), [0, '1'] as unknown as number[]), TypeError, 'sample: expected token ids (numbers) for history[1], got "1"'],
    ['history id out of range', () => ok.sample(new Float32Array(3), [0, 3]), RangeError, 'sample: expected a token id in [0, 2] for history[1], got 3'],
    ['history id negative', () => ok.sample(new Float32Array(3), new Int32Array([-1])), RangeError, 'sample: expected a token id in [0, 2] for history[0], got -1'],
    ['history id fractional', () => ok.sample(new Float32Array(3), [1.5]), RangeError, 'sample: expected a token id in [0, 2] for history[0], got 1.5'],
    ['argmax of an array', () => argmax([3, 4] as unknown as Float64Array), TypeError, 'argmax: expected a Float32Array or a Float64Array for logits, got [3, 4]'],
    ['argmax empty', () => argmax(new Float64Array(0)), RangeError, 'argmax: expected at least one logit for logits, got a Float64Array of length 0'],
    ['argmax NaN', () => argmax(new Float64Array([NaN])), RangeError, 'argmax: expected no NaN for logits, got NaN at index 0'],
    ['argmax all -Infinity', () => argmax(new Float32Array([-Infinity, -Infinity, -Infinity])), RangeError, 'argmax: expected at least one finite logit for logits, got all 3 -Infinity'],
  ];
  for (const [name, f, cls, msg] of arg) it(`sample/argmax: ${name}`, () => expectThrow(f, cls, msg));

  it('a bad call changes no state: the random sequence continues as if it had not happened', () => {
    const a = new Sampler({ temperature: 1, seed: 9 });
    const b = new Sampler({ temperature: 1, seed: 9 });
    const l = new Float32Array([0.1, 0.2, 0.3, 0.4]);
    expect(() => a.sample(new Float32Array([NaN]))).toThrow(RangeError);
    expect(() => a.sample(l, [7])).toThrow(RangeError);
    for (let i = 0; i < 50; i++) expect(a.sample(l)).toBe(b.sample(l));
  });
});

// ---- greedy ----

function randomLogits(rng: Rng, V: number, f64 = false): Float32Array | Float64Array {
  const a = f64 ? new Float64Array(V) : new Float32Array(V);
  for (let i = 0; i < V; i++) a[i] = 3 * rng.normal();
  return a;
}

function plainArgmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

describe('Sampler: greedy', () => {
  it('temperature 0 (the default) returns the argmax, for Float32Array and Float64Array', () => {
    const rng = new Rng(1);
    const s = new Sampler();
    const filtered = new Sampler({ topK: 3, topP: 0.5, minP: 0.5 }); // filters never remove the argmax
    for (let t = 0; t < 200; t++) {
      const l = randomLogits(rng, 1 + rng.int(0, 500), t % 2 === 0);
      expect(s.sample(l)).toBe(plainArgmax(l));
      expect(filtered.sample(l)).toBe(plainArgmax(l));
      expect(argmax(l)).toBe(plainArgmax(l));
    }
  });

  it('ties: the lowest id wins (greedy and argmax); -Infinity entries are skipped', () => {
    const l = new Float32Array([-Infinity, 1, 3, 3, -2, 3]);
    expect(new Sampler().sample(l)).toBe(2);
    expect(argmax(l)).toBe(2);
    expect(argmax(new Float64Array([-Infinity, -Infinity, -1e30]))).toBe(2);
    expect(argmax(new Float64Array([-0, 0]))).toBe(0);
    expect(argmax(new Float32Array([5]))).toBe(0);
  });

  it('topK 1 is greedy at any temperature', () => {
    const rng = new Rng(2);
    const s = new Sampler({ temperature: 1.5, topK: 1, seed: 4 });
    for (let t = 0; t < 300; t++) {
      const l = randomLogits(rng, 2 + rng.int(0, 300));
      expect(s.sample(l)).toBe(plainArgmax(l));
    }
  });

  it('a tiny temperature is (numerically) greedy; the input logits are not modified', () => {
    const rng = new Rng(3);
    const s = new Sampler({ temperature: 1e-300, repetitionPenalty: 1.3 });
    for (let t = 0; t < 100; t++) {
      const l = randomLogits(rng, 50, true);
      const copy = l.slice();
      expect(s.sample(l)).toBe(plainArgmax(l));
      expect(s.sample(l, [0, 1, 2])).toBe(new Sampler({ repetitionPenalty: 1.3 }).sample(l, [0, 1, 2]));
      expect(l).toEqual(copy);
    }
  });
});

// ---- repetition penalty ----

describe('Sampler: repetition penalty (CTRL / transformers semantics)', () => {
  const greedy = (p: number) => new Sampler({ repetitionPenalty: p });

  it('divides positive logits and multiplies negative ones, only for ids in the history', () => {
    // 2 / 1.2 = 1.667 < 1.9: id 0 loses to id 1.
    expect(greedy(1.2).sample(new Float32Array([2, 1.9, -0.5]), [0])).toBe(1);
    expect(greedy(1.2).sample(new Float32Array([2, 1.9, -0.5]), [2])).toBe(0);
    // -1 * 1.2 = -1.2 < -1.1: the negative logit gets more negative.
    expect(greedy(1.2).sample(new Float32Array([-1, -1.1]), [0])).toBe(1);
    // a penalty below 1 favours repeats: 1.5 / 0.5 = 3 > 2.5
    expect(greedy(0.5).sample(new Float32Array([2.5, 1.5]), [1])).toBe(1);
    // -3 * 0.5 = -1.5 > -2
    expect(greedy(0.5).sample(new Float32Array([-2, -3]), [1])).toBe(1);
    // 0 stays 0 (0 / p): tie with id 0, lowest id wins either way
    expect(greedy(5).sample(new Float32Array([0, 0]), [0])).toBe(0);
    expect(greedy(5).sample(new Float32Array([-1e-9, 0]), [1])).toBe(1);
    // -Infinity stays masked
    expect(greedy(0.5).sample(new Float32Array([-Infinity, -5]), [0])).toBe(1);
  });

  it('applies once per distinct id, however often it repeats', () => {
    // once: 2 / 1.2 = 1.667 > 1.5 (id 0 still wins); three times would give 1.157 < 1.5
    expect(greedy(1.2).sample(new Float32Array([2, 1.5]), [0, 0, 0])).toBe(0);
    expect(greedy(1.2).sample(new Float32Array([2, 1.5]), new Uint16Array([0, 0, 0, 1, 1]))).toBe(0); // both penalized: 1.667 vs 1.25
  });

  it('penalty 1 is off; history is still validated', () => {
    expect(new Sampler().sample(new Float32Array([2, 1.9]), [0, 0])).toBe(0);
    expect(() => new Sampler().sample(new Float32Array([2, 1.9]), [2])).toThrow(RangeError);
  });
});

// ---- distributions ----

const N = 20_000;

/** Counts of N draws. */
function draw(opts: SamplerOptions, logits: Float32Array | Float64Array, history?: number[], n = N): number[] {
  const s = new Sampler(opts);
  const c = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) c[s.sample(logits, history)]!++;
  return c;
}

/** Pearson chi-square of counts against probabilities; zero-probability tokens must have no draws. */
function expectDistribution(counts: number[], probs: number[]): void {
  const n = counts.reduce((a, b) => a + b, 0);
  const total = probs.reduce((a, b) => a + b, 0);
  let chi = 0;
  let df = -1;
  probs.forEach((p, i) => {
    if (p === 0) {
      expect(counts[i], `token ${i} has probability 0`).toBe(0);
      return;
    }
    const e = (n * p) / total;
    chi += (counts[i]! - e) ** 2 / e;
    df++;
  });
  // mean df, sd sqrt(2 df): 6 sd is a p-value far below 1e-6, still far below what any wrong distribution here gives.
  const bound = df + 6 * Math.sqrt(2 * Math.max(df, 1)) + 4;
  expect(chi, `chi-square ${chi.toFixed(2)} (df ${df}) counts ${counts} expected ∝ ${probs.map((p) => p.toFixed(4))}`).toBeLessThan(bound);
}

// A known distribution, shuffled so that order != id: p = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04] at ids [3, 0, 5, 1, 4, 2].
const P_BY_RANK = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
const ID_OF_RANK = [3, 0, 5, 1, 4, 2];
const known = new Float64Array(6);
ID_OF_RANK.forEach((id, r) => (known[id] = Math.log(P_BY_RANK[r]!) + 1.234)); // a constant shift changes nothing
/** probabilities by id from values by rank, the ranks in `keep` only. */
function byId(valueOfRank: (r: number) => number, keep: number[]): number[] {
  const p = new Array<number>(6).fill(0);
  for (const r of keep) p[ID_OF_RANK[r]!] = valueOfRank(r);
  return p;
}
const all = [0, 1, 2, 3, 4, 5];

describe('Sampler: sampled frequencies match the distribution', () => {
  it('temperature 1: softmax of the logits (Float32Array and Float64Array)', () => {
    expectDistribution(draw({ temperature: 1, seed: 1 }, known), byId((r) => P_BY_RANK[r]!, all));
    expectDistribution(draw({ temperature: 1, seed: 2 }, Float32Array.from(known)), byId((r) => P_BY_RANK[r]!, all));
  });

  it('temperature 0.5 squares the probabilities, temperature 2 takes their square root', () => {
    expectDistribution(draw({ temperature: 0.5, seed: 3 }, known), byId((r) => P_BY_RANK[r]! ** 2, all));
    expectDistribution(draw({ temperature: 2, seed: 4 }, known), byId((r) => Math.sqrt(P_BY_RANK[r]!), all));
  });

  it('the chi-square check does reject a wrong distribution', () => {
    const counts = draw({ temperature: 1, seed: 5 }, known);
    expect(() => expectDistribution(counts, byId((r) => Math.sqrt(P_BY_RANK[r]!), all))).toThrow();
    expect(() => expectDistribution(counts, byId((r) => P_BY_RANK[r]!, [0, 1, 2, 3, 4]))).toThrow();
  });

  it('top-k 3 keeps the three most likely, renormalized', () => {
    expectDistribution(draw({ temperature: 1, topK: 3, seed: 6 }, known), byId((r) => P_BY_RANK[r]!, [0, 1, 2]));
    // top-k larger than the vocabulary is no filter
    expectDistribution(draw({ temperature: 1, topK: 100, seed: 7 }, known), byId((r) => P_BY_RANK[r]!, all));
  });

  it('top-k keeps ties with the k-th largest logit (as transformers does)', () => {
    const l = new Float32Array([1, 0, 1, 1, -3]);
    expectDistribution(draw({ temperature: 1, topK: 2, seed: 8 }, l), [1, 0, 1, 1, 0]);
  });

  it('top-p 0.7 keeps 0.4, 0.25 and 0.15 (0.65 before the third is below 0.7; 0.8 before the fourth is not)', () => {
    expectDistribution(draw({ temperature: 1, topP: 0.7, seed: 9 }, known), byId((r) => P_BY_RANK[r]!, [0, 1, 2]));
    // top-p below the largest probability keeps just the argmax
    expect(draw({ temperature: 1, topP: 0.1, seed: 10 }, known, undefined, 500)[3]).toBe(500);
  });

  it('min-p 0.3 drops probabilities below 0.3 x 0.4 = 0.12; min-p 0.12 those below 0.048', () => {
    expectDistribution(draw({ temperature: 1, minP: 0.3, seed: 11 }, known), byId((r) => P_BY_RANK[r]!, [0, 1, 2]));
    expectDistribution(draw({ temperature: 1, minP: 0.12, seed: 12 }, known), byId((r) => P_BY_RANK[r]!, [0, 1, 2, 3, 4]));
  });

  it('temperature applies before top-p: at T 0.5 the probabilities are ∝ p², and top-p 0.7 keeps two tokens, not three', () => {
    // p² ∝ [0.615, 0.240, 0.086, ...]: 0.615 < 0.7 before the second, 0.855 before the third.
    expectDistribution(draw({ temperature: 0.5, topP: 0.7, seed: 13 }, known), byId((r) => P_BY_RANK[r]! ** 2, [0, 1]));
  });

  it('all filters together, in order: T 2, top-k 4, top-p 0.8, min-p 0.7', () => {
    // T 2: ∝ sqrt(p) = [.632, .5, .387, .316, .245, .2]; top-k 4 keeps 4 (sum 1.835): [.345, .272, .211, .172];
    // top-p 0.8: before = 0, .345, .617, .828 -> keeps 3; min-p 0.7: .387 / .632 = .61 < .7 -> keeps 2.
    expectDistribution(draw({ temperature: 2, topK: 4, topP: 0.8, minP: 0.7, seed: 14 }, known), byId((r) => Math.sqrt(P_BY_RANK[r]!), [0, 1]));
    // without min-p: three
    expectDistribution(draw({ temperature: 2, topK: 4, topP: 0.8, seed: 15 }, known), byId((r) => Math.sqrt(P_BY_RANK[r]!), [0, 1, 2]));
  });

  it('repetition penalty before sampling: penalized ids are less likely by exactly the penalized logits', () => {
    const l = new Float64Array([1.5, -0.5, 0.8, 0.2, -1]);
    const pen = 1.8;
    const z = [1.5 / pen, -0.5 * pen, 0.8, 0.2 / pen, -1];
    expectDistribution(draw({ temperature: 1, repetitionPenalty: pen, seed: 16 }, l, [0, 3, 1, 0]), z.map(Math.exp));
    expectDistribution(draw({ temperature: 0.7, repetitionPenalty: pen, seed: 17 }, l, [0, 3, 1, 0]), z.map((v) => Math.exp(v / 0.7)));
  });

  it('-Infinity logits are never sampled; the rest keep their relative probabilities', () => {
    const l = new Float32Array([-Infinity, 0.5, -Infinity, 0, -Infinity, 1]);
    expectDistribution(draw({ temperature: 1, seed: 18 }, l), [0, Math.exp(0.5), 0, 1, 0, Math.E]);
    expectDistribution(draw({ temperature: 1, topK: 5, seed: 19 }, l), [0, Math.exp(0.5), 0, 1, 0, Math.E]);
    expectDistribution(draw({ temperature: 3, topP: 0.99, minP: 0.01, seed: 20 }, l, [0, 2]), [0, Math.exp(0.5 / 3), 0, 1, 0, Math.exp(1 / 3)]);
    // only one finite logit: always that one
    expect(draw({ temperature: 1, seed: 21 }, new Float32Array([-Infinity, -Infinity, -40]), undefined, 200)).toEqual([0, 0, 200]);
  });

  it('extreme logits (float32 range, huge spread) stay finite: softmax computed from the max', () => {
    const l = new Float32Array([3e38, 3e38 - 2e31, -3e38, 1]);
    const c = draw({ temperature: 1e30, seed: 22 }, l, undefined, 4000);
    expect(c[2]).toBe(0); // (-3e38 - 3e38) / 1e30 = -6e8: exp underflows to 0
    expect(c[0]! + c[1]!).toBeGreaterThan(0);
  });

  it('a large vocabulary (152,064, Qwen2 size) with top-p samples from the head', () => {
    const rng = new Rng(23);
    const l = randomLogits(rng, 152_064) as Float32Array;
    const s = new Sampler({ temperature: 0.8, topP: 0.9, seed: 24 });
    const t0 = performance.now();
    const ids = Array.from({ length: 10 }, () => s.sample(l));
    const ms = (performance.now() - t0) / 10;
    for (const id of ids) expect(l[id]!).toBeGreaterThan(6); // 3 sd tails: the nucleus at T 0.8 is far above the mean
    expect(ms).toBeLessThan(1000);
  });
});

describe('Sampler: seeds', () => {
  const l = new Float32Array([0.3, 0.1, 0.25, -0.2, 0.05, 0.4, 0, 0.2]);
  const seq = (o: SamplerOptions, n = 200): number[] => {
    const s = new Sampler(o);
    return Array.from({ length: n }, () => s.sample(l));
  };

  it('the same seed gives the same sequence; another seed another one; no seed = the default seed', () => {
    expect(seq({ temperature: 1, seed: 42 })).toEqual(seq({ temperature: 1, seed: 42 }));
    expect(seq({ temperature: 1, seed: 42 })).not.toEqual(seq({ temperature: 1, seed: 43 }));
    expect(seq({ temperature: 1 })).toEqual(seq({ temperature: 1, seed: DEFAULT_SAMPLER_SEED }));
    // seeds above 2^32 are not folded onto small ones
    expect(seq({ temperature: 1, seed: 2 ** 32 + 42 })).not.toEqual(seq({ temperature: 1, seed: 42 }));
    expect(seq({ temperature: 1, seed: 2 ** 40 })).not.toEqual(seq({ temperature: 1, seed: 0 }));
  });

  it('each Sampler has its own state: interleaving two does not change either sequence', () => {
    const a = new Sampler({ temperature: 1, seed: 1 });
    const b = new Sampler({ temperature: 1, seed: 2 });
    const ia: number[] = [];
    const ib: number[] = [];
    for (let i = 0; i < 200; i++) {
      ia.push(a.sample(l));
      if (i % 3 === 0) ib.push(b.sample(l));
    }
    expect(ia).toEqual(seq({ temperature: 1, seed: 1 }));
    expect(ib).toEqual(seq({ temperature: 1, seed: 2 }, ib.length));
  });

});

// ---- the documented algorithm, written out naively (full sorts, Sets), token for token ----

interface Opts {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
}

/** The file header's steps 1-6, naively; one rng.uniform() per non-greedy draw, as documented. */
function specSample(o: Opts, logits: ArrayLike<number>, history: number[], rng: Rng): number {
  const V = logits.length;
  let z = Array.from(logits);
  if (o.repetitionPenalty !== 1)
    for (const id of new Set(history)) z[id] = z[id]! > 0 ? z[id]! / o.repetitionPenalty : z[id]! * o.repetitionPenalty;
  const best = plainArgmax(z);
  if (o.temperature === 0) return best;
  if (o.topK > 0 && o.topK < V) {
    const kth = [...z].sort((a, b) => b - a)[o.topK - 1]!;
    z = z.map((v) => (v < kth ? -Infinity : v));
  }
  let w = z.map((v) => (v === -Infinity ? 0 : Math.exp((v - z[best]!) / o.temperature)));
  if (o.topP < 1) {
    const total = w.reduce((a, b) => a + b, 0);
    const order = w.map((_, i) => i).filter((i) => w[i]! > 0).sort((a, b) => w[b]! - w[a]! || a - b);
    const keep = new Set<number>();
    let before = 0;
    for (const id of order) {
      if (keep.size > 0 && before >= o.topP * total) break;
      keep.add(id);
      before += w[id]!;
    }
    w = w.map((v, i) => (keep.has(i) ? v : 0));
  }
  if (o.minP > 0) w = w.map((v) => (v < o.minP ? 0 : v));
  const total = w.reduce((a, b) => a + b, 0);
  const u = rng.uniform() * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < V; i++) {
    if (w[i] === 0) continue;
    acc += w[i]!;
    last = i;
    if (acc > u) return i;
  }
  return last;
}

describe('Sampler: token for token equal to the naive documented algorithm', () => {
  it('2,000 random cases: vocabularies 1..400, ties, masked tokens, every option combination', () => {
    const rng = new Rng(99);
    const pick = <T>(xs: T[]): T => xs[rng.int(0, xs.length - 1)]!;
    for (let c = 0; c < 2000; c++) {
      const V = pick([1, 2, 3, 7, 50, 400]);
      const kind = rng.int(0, 2);
      const logits = kind === 0 ? new Float32Array(V) : new Float64Array(V);
      for (let i = 0; i < V; i++) {
        logits[i] = kind === 2 ? rng.int(-2, 2) : 2 * rng.normal(); // kind 2: many ties
        if (rng.uniform() < 0.15) logits[i] = -Infinity;
      }
      if (logits.every((v) => v === -Infinity)) logits[rng.int(0, V - 1)] = 0.5;
      const o: Opts = {
        temperature: pick([0, 0.3, 1, 2.5]),
        topK: pick([0, 1, 3, Math.max(1, V - 1), V + 5]),
        topP: pick([1, 0.5, 0.9, 0.999]),
        minP: pick([0, 0.05, 0.5]),
        repetitionPenalty: pick([1, 1.3, 0.7]),
      };
      const history = Array.from({ length: rng.int(0, 6) }, () => rng.int(0, V - 1));
      const seed = rng.int(0, 1e9);
      const s = new Sampler({ ...o, seed });
      const ref = new Rng(seed);
      for (let d = 0; d < 10; d++) {
        const want = specSample(o, logits, history, ref);
        expect(s.sample(logits, history), `case ${c} ${JSON.stringify(o)} V=${V} draw ${d}`).toBe(want);
      }
    }
  });
});
