// Model-test helpers.
import type { LlamaForCausalLM } from '../../lib/nn/llama.js';

/** Logits of every position of one sequence run alone through a fresh f32 KV cache: `[T * V]`. */
export async function allLogits(m: LlamaForCausalLM, toks: number[]): Promise<Float32Array> {
  using cache = m.createCache({ maxTokens: toks.length + 16, dtype: 'f32' });
  const r = cache.addSequence(0, toks);
  if (!r.ok) throw new Error('cache full');
  const { logits } = m.forward(cache, [{ seqId: 0, tokens: toks, slots: r.slots, logits: 'all' }]);
  using _l = logits;
  return logits.data();
}

/** sum((a - b)^2) / sum(a^2): the relative squared error of b against a. */
export function relSq(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) (e += (a[i]! - b[i]!) ** 2), (s += a[i]! ** 2);
  return e / s;
}
