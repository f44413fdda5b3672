/**
 * Batched generation over a paged KV cache: every prompt is prefilled in one batched step, then all sequences
 * decode together, one token each per step, until each stops (an end id or its token budget). A finished sequence
 * leaves the batch at once and its blocks go back to the cache.
 */
import { rangeError, typeError } from '../errors.js';
import { type PagedKvCache } from '../kv/paged-kv-cache.js';
import { kvFullError } from '../kv/block-manager.js';
import { checkInteger, checkObject, expected } from '../validate.js';
import { LlamaForCausalLM, type StepSequence } from './llama.js';
import { Sampler, type SamplerOptions } from './sampler.js';

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** New tokens per sequence at most (default 64). */
  maxNewTokens?: number;
  /** Sampling (default greedy); one Sampler per sequence is made from these options (seed + sequence index). */
  sampling?: SamplerOptions;
  /** Ids that end a sequence (default: the model config's EOS ids); the end id is kept in the output. */
  stopIds?: readonly number[];
  /** Called after every step with each sequence's newest token (undefined for a finished one). */
  onStep?: (tokens: (number | undefined)[]) => void;
}

/** What {@link generate} returns: the new tokens and the timing of both phases. */
export interface GenerateResult {
  /** New tokens of each prompt. */
  outputs: number[][];
  /** Prompt tokens computed (prefix-cache hits excluded) and the wall time of that first step, ms. */
  prefillTokens: number;
  prefillMs: number;
  /** Tokens decoded after the first and the wall time of those steps, ms. */
  decodeTokens: number;
  decodeMs: number;
  /** The most KV blocks in use at once. */
  peakBlocks: number;
}

/**
 * Generates continuations of `prompts` as one batch.
 * @throws {LlmKernelsError} ERR_KV_FULL when the cache cannot hold the prompts (or their growth); nothing is left
 *   allocated in the cache
 * @example const r = await generate(model, cache, [tok.encode('def ')], { maxNewTokens: 32 });
 */
export async function generate(model: LlamaForCausalLM, cache: PagedKvCache, prompts: readonly (readonly number[])[], options: GenerateOptions = {}): Promise<GenerateResult> {
  const fn = 'generate';
  if (!(model instanceof LlamaForCausalLM)) throw typeError(expected(fn, 'a LlamaForCausalLM', 'model', model));
  checkObject(fn, 'options', options);
  if (!Array.isArray(prompts) || prompts.length === 0) throw rangeError(expected(fn, 'a non-empty array of prompts', 'prompts', prompts));
  prompts.forEach((p, i) => {
    if (!Array.isArray(p) || p.length === 0) throw rangeError(expected(fn, 'a non-empty array of token ids', `prompts[${i}]`, p));
  });
  const maxNew = checkInteger(fn, 'options.maxNewTokens', options.maxNewTokens ?? 64, 1, 1 << 20);
  const stop = new Set(options.stopIds ?? model.config.eosTokenIds);
  const samplers = prompts.map((_, i) => new Sampler({ ...options.sampling, seed: (options.sampling?.seed ?? 0x5eed) + i }));
  const base = Math.max(-1, ...cache.manager.sequences()) + 1;
  const ids = prompts.map((_, i) => base + i);
  const outputs: number[][] = prompts.map(() => []);
  const history = prompts.map((p) => p.slice());
  let peak = 0;
  const live: number[] = [];
  try {
    const t0 = performance.now();
    const seqs: StepSequence[] = [];
    let prefillTokens = 0;
    for (const [i, p] of prompts.entries()) {
      const r = cache.addSequence(ids[i]!, p);
      if (!r.ok) throw kvFullError(fn, r);
      live.push(i);
      seqs.push({ seqId: ids[i]!, tokens: p.slice(r.cachedTokens), slots: r.slots });
      prefillTokens += p.length - r.cachedTokens;
    }
    peak = cache.manager.stats().used;
    let { logits } = model.forward(cache, seqs);
    let active = prompts.map((_, i) => i);
    let prefillMs = 0;
    let decodeTokens = 0;
    let t1 = 0;
    for (let step = 0; ; step++) {
      // One token per active row, row r for sequence active[r]; on the logits' device where the sampler allows it
      // (greedy: argmax; top-k: the k + 1 candidates), else from the downloaded rows (Sampler.sampleRows).
      let toks: number[];
      try {
        toks = await Sampler.sampleRows(active.map((i) => samplers[i]!), logits, active.map((i) => history[i]!));
      } finally {
        logits.dispose();
      }
      if (step === 0) {
        prefillMs = performance.now() - t0;
        t1 = performance.now();
      } else {
        decodeTokens += active.length;
      }
      const newest: (number | undefined)[] = prompts.map(() => undefined);
      const next: number[] = [];
      for (const [r, i] of active.entries()) {
        const tok = toks[r]!;
        outputs[i]!.push(tok);
        history[i]!.push(tok);
        newest[i] = tok;
        if (!stop.has(tok) && outputs[i]!.length < maxNew) next.push(i);
        else {
          cache.free(ids[i]!);
          live.splice(live.indexOf(i), 1);
        }
      }
      options.onStep?.(newest);
      active = next;
      if (active.length === 0) break;
      const dec: StepSequence[] = active.map((i) => {
        const tok = outputs[i]![outputs[i]!.length - 1]!;
        const r = cache.append(ids[i]!, [tok]);
        if (!r.ok) throw kvFullError(fn, r);
        return { seqId: ids[i]!, tokens: [tok], slots: r.slots };
      });
      peak = Math.max(peak, cache.manager.stats().used);
      ({ logits } = model.forward(cache, dec));
    }
    return { outputs, prefillTokens, prefillMs, decodeTokens, decodeMs: performance.now() - t1, peakBlocks: peak };
  } finally {
    for (const i of live) cache.free(ids[i]!);
  }
}
