/**
 * llama-ref: an independent float64 reference forward of a Llama-family decoder (Llama 1-3, Mistral, Qwen2), for
 * tests. It is the spec the library's model is compared against, so it uses none of the library's ops: plain loops
 * over Float64Array, one token at a time, written from the Hugging Face definitions.
 *
 * Semantics (exactly those of transformers' `LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM`):
 * - x = embed_tokens[token]; per layer: x += o_proj(attn(input_layernorm(x))), then
 *   x += down_proj(silu(gate_proj(h)) * up_proj(h)) with h = post_attention_layernorm(x); logits =
 *   lm_head(norm(x)) (lm_head = embed_tokens when tieWordEmbeddings).
 * - RMSNorm: x * 1/sqrt(mean(x^2) + eps) * w.
 * - q/k/v: [H*D, E], [Hkv*D, E], [Hkv*D, E] (+ bias when attentionBias, as in Qwen2); o_proj [E, H*D].
 * - Rotary, `rotate_half` convention: within each head, dim i (i < D/2) is rotated with dim i + D/2 by the angle
 *   position * invFreq[i]; invFreq[i] = theta^(-2i/D), then linear (÷ factor) or llama3 scaling ({@link ropeInvFreq}).
 * - Causal grouped-query attention: query head h reads KV head floor(h / (H/Hkv)); scores scaled by 1/sqrt(D);
 *   the query at position p sees the earlier (and its own) tokens of the call whose position q has
 *   p - q < slidingWindow (HF Mistral: the last `window` positions including itself).
 * - Everything in float64; the softmax subtracts its max.
 *
 * Shapes: weights are [out, in] row-major (Hugging Face layout). E hidden, I intermediate, H query heads,
 * Hkv KV heads, D head dim, V vocab, T tokens.
 */
import { Rng } from '../../lib/random.js';

/** A Llama-family config, camelCase (Hugging Face config.json → {@link llamaRefConfigFromHf}). */
export interface LlamaRefConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling:
    | null
    | { type: 'linear'; factor: number }
    | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
  vocabSize: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  slidingWindow: number | null;
}

/** Weights by Hugging Face name, [out, in] row-major. */
export type LlamaRefWeights = Map<string, Float64Array>;

/**
 * The config of a Hugging Face config.json (llama, mistral, qwen2).
 * @example llamaRefConfigFromHf(JSON.parse(readFileSync('models/tiny-py/config.json', 'utf8')))
 */
export function llamaRefConfigFromHf(j: Record<string, unknown>): LlamaRefConfig {
  const num = (k: string, d?: number): number => {
    const v = j[k] ?? d;
    if (typeof v !== 'number') throw new Error(`llama-ref: config.${k} missing`);
    return v;
  };
  const E = num('hidden_size');
  const H = num('num_attention_heads');
  const rs = j['rope_scaling'] as Record<string, unknown> | null | undefined;
  let ropeScaling: LlamaRefConfig['ropeScaling'] = null;
  if (rs) {
    const type = rs['rope_type'] ?? rs['type'];
    if (type === 'linear') ropeScaling = { type: 'linear', factor: rs['factor'] as number };
    else if (type === 'llama3')
      ropeScaling = {
        type: 'llama3',
        factor: rs['factor'] as number,
        lowFreqFactor: rs['low_freq_factor'] as number,
        highFreqFactor: rs['high_freq_factor'] as number,
        originalMaxPositionEmbeddings: rs['original_max_position_embeddings'] as number,
      };
    else if (type !== 'default') throw new Error(`llama-ref: rope_scaling type ${String(type)} not supported`);
  }
  const mt = j['model_type'];
  const useSw = mt === 'qwen2' ? j['use_sliding_window'] === true : true;
  const sw = j['sliding_window'];
  return {
    hiddenSize: E,
    intermediateSize: num('intermediate_size'),
    numLayers: num('num_hidden_layers'),
    numHeads: H,
    numKvHeads: num('num_key_value_heads', H),
    headDim: num('head_dim', E / H),
    rmsNormEps: num('rms_norm_eps'),
    ropeTheta: num('rope_theta', 10000),
    ropeScaling,
    vocabSize: num('vocab_size'),
    tieWordEmbeddings: j['tie_word_embeddings'] === true,
    attentionBias: mt === 'qwen2' ? true : j['attention_bias'] === true,
    slidingWindow: useSw && typeof sw === 'number' ? sw : null,
  };
}

function checkConfig(c: LlamaRefConfig): void {
  const ints = ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize'] as const;
  for (const k of ints)
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`llama-ref: expected a positive integer for ${k}, got ${c[k]}`);
  if (c.numHeads % c.numKvHeads !== 0) throw new Error(`llama-ref: numHeads ${c.numHeads} not a multiple of numKvHeads ${c.numKvHeads}`);
  if (c.headDim % 2 !== 0) throw new Error(`llama-ref: headDim ${c.headDim} must be even`);
  if (c.slidingWindow !== null && !(Number.isInteger(c.slidingWindow) && c.slidingWindow >= 1))
    throw new Error(`llama-ref: expected null or a positive integer for slidingWindow, got ${c.slidingWindow}`);
}

/** The expected length of every weight of a config, by name, in a fixed order. */
export function llamaRefWeightShapes(c: LlamaRefConfig): Map<string, number[]> {
  const E = c.hiddenSize;
  const I = c.intermediateSize;
  const HD = c.numHeads * c.headDim;
  const KD = c.numKvHeads * c.headDim;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, E]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + 'input_layernorm.weight', [E]);
    m.set(p + 'self_attn.q_proj.weight', [HD, E]);
    m.set(p + 'self_attn.k_proj.weight', [KD, E]);
    m.set(p + 'self_attn.v_proj.weight', [KD, E]);
    if (c.attentionBias) {
      m.set(p + 'self_attn.q_proj.bias', [HD]);
      m.set(p + 'self_attn.k_proj.bias', [KD]);
      m.set(p + 'self_attn.v_proj.bias', [KD]);
    }
    m.set(p + 'self_attn.o_proj.weight', [E, HD]);
    m.set(p + 'post_attention_layernorm.weight', [E]);
    m.set(p + 'mlp.gate_proj.weight', [I, E]);
    m.set(p + 'mlp.up_proj.weight', [I, E]);
    m.set(p + 'mlp.down_proj.weight', [E, I]);
  }
  m.set('model.norm.weight', [E]);
  if (!c.tieWordEmbeddings) m.set('lm_head.weight', [c.vocabSize, E]);
  return m;
}

/**
 * The rotary inverse frequencies (D/2 of them), with the config's scaling, as transformers computes them
 * (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`).
 * @example ropeInvFreq(cfg)[0] === 1
 */
export function ropeInvFreq(c: LlamaRefConfig): Float64Array {
  const D = c.headDim;
  const inv = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) inv[i] = 1 / Math.pow(c.ropeTheta, (2 * i) / D);
  const s = c.ropeScaling;
  if (s === null) return inv;
  if (s.type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i] = inv[i]! / s.factor;
    return inv;
  }
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowWavelen) inv[i] = f / s.factor; // low frequency: scaled
    else if (wavelen < highWavelen) inv[i] = f; // high frequency: unchanged
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
    }
  }
  return inv;
}

// ---- the forward, one token at a time with a per-layer KV cache ----

function weight(w: LlamaRefWeights, name: string, len: number): Float64Array {
  const a = w.get(name);
  if (!a) throw new Error(`llama-ref: missing weight ${name}`);
  if (a.length !== len) throw new Error(`llama-ref: expected ${len} values for ${name}, got ${a.length}`);
  return a;
}

/**
 * y[o] = sum_i W[o, i] x[i] (+ b[o]); W [out, in]. Four partial sums (i mod 4) only for speed: V8 runs this about
 * 1.8x faster than one chain, and in float64 the summation order does not matter at the tolerances used.
 */
function linear(W: Float64Array, x: Float64Array, out: number, b?: Float64Array): Float64Array {
  const inn = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    const row = o * inn;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let i = 0;
    for (; i + 3 < inn; i += 4) {
      s0 += W[row + i]! * x[i]!;
      s1 += W[row + i + 1]! * x[i + 1]!;
      s2 += W[row + i + 2]! * x[i + 2]!;
      s3 += W[row + i + 3]! * x[i + 3]!;
    }
    for (; i < inn; i++) s0 += W[row + i]! * x[i]!;
    const s = s0 + s1 + (s2 + s3);
    y[o] = b ? s + b[o]! : s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * r * w[i]!;
  return y;
}

/** Rotates each of the n heads of v ([n, D]) in place by position * invFreq (rotate_half pairing i, i + D/2). */
function rope(v: Float64Array, n: number, D: number, pos: number, inv: Float64Array): void {
  const half = D / 2;
  for (let h = 0; h < n; h++) {
    const base = h * D;
    for (let i = 0; i < half; i++) {
      const a = pos * inv[i]!;
      const c = Math.cos(a);
      const s = Math.sin(a);
      const x1 = v[base + i]!;
      const x2 = v[base + i + half]!;
      v[base + i] = x1 * c - x2 * s;
      v[base + i + half] = x2 * c + x1 * s;
    }
  }
}

interface Layer {
  ln1: Float64Array;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  qb?: Float64Array;
  kb?: Float64Array;
  vb?: Float64Array;
  o: Float64Array;
  ln2: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  down: Float64Array;
}

/** A model bound to its weights, with a KV cache: feed tokens one at a time. */
class RefSession {
  private readonly embed: Float64Array;
  private readonly layers: Layer[] = [];
  private readonly norm: Float64Array;
  private readonly head: Float64Array;
  private readonly inv: Float64Array;
  /** Per layer, per fed token: the rotated keys [Hkv*D] and values [Hkv*D]. */
  private readonly kCache: Float64Array[][] = [];
  private readonly vCache: Float64Array[][] = [];
  private readonly positions: number[] = [];

  constructor(private readonly c: LlamaRefConfig, w: LlamaRefWeights) {
    checkConfig(c);
    const shapes = llamaRefWeightShapes(c);
    const get = (name: string): Float64Array => weight(w, name, shapes.get(name)!.reduce((a, b) => a * b, 1));
    this.embed = get('model.embed_tokens.weight');
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const layer: Layer = {
        ln1: get(p + 'input_layernorm.weight'),
        q: get(p + 'self_attn.q_proj.weight'),
        k: get(p + 'self_attn.k_proj.weight'),
        v: get(p + 'self_attn.v_proj.weight'),
        o: get(p + 'self_attn.o_proj.weight'),
        ln2: get(p + 'post_attention_layernorm.weight'),
        gate: get(p + 'mlp.gate_proj.weight'),
        up: get(p + 'mlp.up_proj.weight'),
        down: get(p + 'mlp.down_proj.weight'),
      };
      if (c.attentionBias) {
        layer.qb = get(p + 'self_attn.q_proj.bias');
        layer.kb = get(p + 'self_attn.k_proj.bias');
        layer.vb = get(p + 'self_attn.v_proj.bias');
      }
      this.layers.push(layer);
      this.kCache.push([]);
      this.vCache.push([]);
    }
    this.norm = get('model.norm.weight');
    this.head = c.tieWordEmbeddings ? this.embed : get('lm_head.weight');
    this.inv = ropeInvFreq(c);
  }

  /** Feeds one token at `pos`; returns its logits [V]. */
  step(token: number, pos: number): Float64Array {
    const c = this.c;
    const E = c.hiddenSize;
    const H = c.numHeads;
    const Hkv = c.numKvHeads;
    const D = c.headDim;
    const group = H / Hkv;
    const scale = 1 / Math.sqrt(D);
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize)
      throw new Error(`llama-ref: expected a token id in [0, ${c.vocabSize - 1}], got ${token}`);
    if (!Number.isInteger(pos) || pos < 0) throw new Error(`llama-ref: expected a non-negative integer position, got ${pos}`);
    this.positions.push(pos);
    const t = this.positions.length - 1; // this token's index in the call

    const x = this.embed.slice(token * E, (token + 1) * E);
    for (let l = 0; l < c.numLayers; l++) {
      const L = this.layers[l]!;
      // attention
      const hN = rmsNorm(x, L.ln1, c.rmsNormEps);
      const q = linear(L.q, hN, H * D, L.qb);
      const k = linear(L.k, hN, Hkv * D, L.kb);
      const v = linear(L.v, hN, Hkv * D, L.vb);
      rope(q, H, D, pos, this.inv);
      rope(k, Hkv, D, pos, this.inv);
      this.kCache[l]!.push(k);
      this.vCache[l]!.push(v);
      const Ks = this.kCache[l]!;
      const Vs = this.vCache[l]!;
      const attn = new Float64Array(H * D);
      const scores = new Float64Array(t + 1);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        let max = -Infinity;
        for (let j = 0; j <= t; j++) {
          const visible = c.slidingWindow === null || pos - this.positions[j]! < c.slidingWindow;
          if (!visible) {
            scores[j] = -Infinity;
            continue;
          }
          const kj = Ks[j]!;
          let s = 0;
          for (let d = 0; d < D; d++) s += q[h * D + d]! * kj[kvh * D + d]!;
          scores[j] = s * scale;
          if (scores[j]! > max) max = scores[j]!;
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) {
          const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        for (let j = 0; j <= t; j++) {
          const p = scores[j]! / sum;
          if (p === 0) continue;
          const vj = Vs[j]!;
          for (let d = 0; d < D; d++) attn[h * D + d] += p * vj[kvh * D + d]!;
        }
      }
      const o = linear(L.o, attn, E);
      for (let i = 0; i < E; i++) x[i] += o[i]!;
      // MLP
      const h2 = rmsNorm(x, L.ln2, c.rmsNormEps);
      const g = linear(L.gate, h2, c.intermediateSize);
      const u = linear(L.up, h2, c.intermediateSize);
      for (let i = 0; i < g.length; i++) g[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
      const dn = linear(L.down, g, E);
      for (let i = 0; i < E; i++) x[i] += dn[i]!;
    }
    return linear(this.head, rmsNorm(x, this.norm, c.rmsNormEps), c.vocabSize);
  }
}

/**
 * The logits of every token of one sequence, [T][V], in float64. The sequence attends over all its earlier
 * tokens in this call (nothing before it).
 * @param positions - the rotary position of each token (default 0..T-1); sliding windows are measured in positions
 * @example const logits = llamaRefForward(cfg, weights, [1, 72, 105]); // logits[2] predicts the 4th token
 */
export function llamaRefForward(cfg: LlamaRefConfig, weights: LlamaRefWeights, tokens: number[], positions?: number[]): Float64Array[] {
  if (positions !== undefined && positions.length !== tokens.length)
    throw new Error(`llama-ref: expected ${tokens.length} positions, got ${positions.length}`);
  const s = new RefSession(cfg, weights);
  return tokens.map((tok, i) => s.step(tok, positions ? positions[i]! : i));
}

/** Index of the largest value; the lowest index wins ties. */
export function argmaxRef(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/**
 * Greedy generation: n tokens after `prompt`, each the argmax of the logits (lowest id wins ties), positions from 0.
 * Uses the reference's own KV cache, which gives the same logits as re-running the whole forward every step.
 * @example greedyRef(cfg, weights, [1, 102, 108], 8) // 8 generated ids
 */
export function greedyRef(cfg: LlamaRefConfig, weights: LlamaRefWeights, prompt: number[], n: number): number[] {
  if (prompt.length === 0) throw new Error('llama-ref: expected a non-empty prompt');
  const s = new RefSession(cfg, weights);
  let logits!: Float64Array;
  prompt.forEach((tok, i) => (logits = s.step(tok, i)));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const next = argmaxRef(logits);
    out.push(next);
    if (i + 1 < n) logits = s.step(next, prompt.length + i);
  }
  return out;
}

/**
 * Seeded random weights for `cfg` with O(1) activations through every layer: each matrix [out, in] is N(0, 1/in)
 * (std 1/sqrt(in), about 0.06 for in = 256: a projection of an O(1) vector stays O(1); embed_tokens [V, E] too, so
 * tied and untied logits are both O(1)), norm weights 1 + 0.1·N(0, 1), biases 0.1·N(0, 1) (never zero). Attention
 * scores come out O(1): neither uniform nor one-hot.
 * @example const w = randomLlamaWeights(cfg, 7);
 */
export function randomLlamaWeights(cfg: LlamaRefConfig, seed: number): LlamaRefWeights {
  checkConfig(cfg);
  const rng = new Rng(seed);
  const w: LlamaRefWeights = new Map();
  for (const [name, shape] of llamaRefWeightShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float64Array(n);
    if (name.endsWith('norm.weight')) for (let i = 0; i < n; i++) a[i] = 1 + 0.1 * rng.normal();
    else if (name.endsWith('.bias')) for (let i = 0; i < n; i++) a[i] = 0.1 * rng.normal() || 0.01;
    else {
      const std = 1 / Math.sqrt(shape[1]!);
      for (let i = 0; i < n; i++) a[i] = std * rng.normal();
    }
    w.set(name, a);
  }
  return w;
}
