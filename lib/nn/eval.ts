/**
 * Quality of a model on a text: perplexity over sliding windows, and the divergence of a model from a reference
 * model (the same weights in another format) position by position.
 *
 * Windows (the definition of models/tiny-py/README.md): window k covers tokens [k·stride, k·stride + window); each
 * runs as its own sequence from position 0. Window 0 scores its targets 1 .. window − 1; window k ≥ 1 scores only
 * the targets after the previous window's end, j in [k·stride + window − stride, k·stride + window), so every
 * target is scored exactly once with stride .. window − 1 tokens of context. Windows run as one batched prefill of
 * `batchWindows` sequences at a time over a paged cache.
 */
import { rangeError, typeError } from '../errors.js';
import { type KvDType } from '../ops/attention.js';
import { checkInteger, checkObject, expected } from '../validate.js';
import { LlamaForCausalLM } from './llama.js';

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Tokens per window (default 256). */
  window?: number;
  /** Distance between window starts (default window / 2). */
  stride?: number;
  /** Windows per batched forward (default 8). */
  batchWindows?: number;
  /** KV cache dtype (default 'f32', so that the cache adds no error to the figure). */
  kvDtype?: KvDType;
  /** A model to compare with (same vocabulary): KL divergence and top-1 agreement are then reported. */
  reference?: LlamaForCausalLM;
  /** Called after each batch with the targets scored so far. */
  onProgress?: (scored: number, total: number) => void;
}

/** The result of {@link evaluate}. */
export interface EvaluateResult {
  /** Targets scored (tokens − 1). */
  targets: number;
  /** Sum of −ln p(target) over the targets (nats). */
  nll: number;
  /** nll / targets. */
  nllPerToken: number;
  /** exp(nllPerToken). */
  perplexity: number;
  /** Mean KL(reference ‖ model) per target in nats, when a reference was given. */
  kl?: number;
  /** Fraction of targets where both models' argmax agree, when a reference was given. */
  top1Agreement?: number;
  /** Windows run. */
  windows: number;
}

function logSoftmax(row: Float32Array, off: number, V: number, out: Float64Array): void {
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, row[off + i]!);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(row[off + i]! - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < V; i++) out[i] = row[off + i]! - lse;
}

/**
 * Perplexity of `model` on `tokens` (and its divergence from `options.reference`).
 * @param tokens - the token ids of the text (BOS included if the model expects it)
 * @throws {TypeError} | {RangeError} bad tokens or options
 * @example const r = await evaluate(model, tok.encode(text)); console.log(r.nllPerToken / Math.LN2, 'bits per byte');
 */
export async function evaluate(model: LlamaForCausalLM, tokens: ArrayLike<number>, options: EvaluateOptions = {}): Promise<EvaluateResult> {
  const fn = 'evaluate';
  if (!(model instanceof LlamaForCausalLM)) throw typeError(expected(fn, 'a LlamaForCausalLM', 'model', model));
  checkObject(fn, 'options', options);
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') throw typeError(expected(fn, 'an array of token ids', 'tokens', tokens));
  const L = tokens.length;
  if (L < 2) throw rangeError(expected(fn, 'at least 2 tokens', 'tokens.length', L));
  const W = checkInteger(fn, 'options.window', options.window ?? 256, 2, 1 << 20);
  const S = checkInteger(fn, 'options.stride', options.stride ?? Math.floor(W / 2), 1, W - 1);
  const BW = checkInteger(fn, 'options.batchWindows', options.batchWindows ?? 8, 1, 4096);
  const ref = options.reference;
  if (ref !== undefined && !(ref instanceof LlamaForCausalLM)) throw typeError(expected(fn, 'a LlamaForCausalLM', 'options.reference', ref));
  const V = model.config.vocabSize;
  if (ref && ref.config.vocabSize !== V) throw rangeError(expected(fn, `a reference with the model's vocabulary (${V})`, 'options.reference', ref.config.vocabSize));
  // Windows and the targets each scores: [from, to) in absolute token indices.
  const wins: { start: number; end: number; from: number }[] = [];
  for (let k = 0; ; k++) {
    const start = k * S, end = Math.min(start + W, L);
    const from = k === 0 ? 1 : start + W - S;
    if (from >= L) break;
    wins.push({ start, end, from });
    if (end >= L) break;
  }
  const models = ref ? [model, ref] : [model];
  const caches = models.map((m) => m.createCache({ maxTokens: BW * (W + 16) + 16 * BW, dtype: options.kvDtype ?? 'f32', prefixCaching: false }));
  let nll = 0, kl = 0, agree = 0, scored = 0;
  const lp = new Float64Array(V), lq = new Float64Array(V);
  const total = L - 1;
  try {
    for (let b0 = 0; b0 < wins.length; b0 += BW) {
      const batch = wins.slice(b0, b0 + BW);
      const outs: Float32Array[] = [];
      for (const [mi, m] of models.entries()) {
        const cache = caches[mi]!;
        const seqs = batch.map((w, i) => {
          const toks = Array.from({ length: w.end - w.start }, (_, j) => tokens[w.start + j]!);
          const r = cache.addSequence(i, toks);
          if (!r.ok) throw new Error('evaluate: the cache was sized for the batch');
          return { seqId: i, tokens: toks, slots: r.slots, logits: 'all' as const };
        });
        const { logits } = m.forward(cache, seqs);
        outs.push(await logits.data());
        logits.dispose();
        for (let i = 0; i < batch.length; i++) cache.free(i);
      }
      let row = 0;
      for (const w of batch) {
        for (let p = 0; p < w.end - w.start; p++, row++) {
          const j = w.start + p + 1;  // the target this position predicts
          if (j < w.from || j >= w.end) continue;
          logSoftmax(outs[0]!, row * V, V, lq);
          const target = tokens[j]!;
          nll -= lq[target]!;
          if (ref) {
            logSoftmax(outs[1]!, row * V, V, lp);
            let d = 0, am = 0, bm = 0;
            for (let i = 0; i < V; i++) {
              d += Math.exp(lp[i]!) * (lp[i]! - lq[i]!);
              if (lq[i]! > lq[am]!) am = i;
              if (lp[i]! > lp[bm]!) bm = i;
            }
            kl += d;
            if (am === bm) agree++;
          }
          scored++;
        }
      }
      options.onProgress?.(scored, total);
    }
  } finally {
    for (const c of caches) c.dispose();
  }
  const r: EvaluateResult = { targets: scored, nll, nllPerToken: nll / scored, perplexity: Math.exp(nll / scored), windows: wins.length };
  if (ref) {
    r.kl = kl / scored;
    r.top1Agreement = agree / scored;
  }
  return r;
}
