/**
 * Transformer layers over the ops of lib/ops: Linear (float or quantized weight, optional bias), Embedding,
 * RMSNorm, RotaryEmbedding, SwiGluMlp. Activations are f32 tensors `[T, features]` (T tokens of a batch); each
 * layer owns its weights and releases them with `dispose()`.
 *
 * Every forward only enqueues ops (lib/tensor's stream model): a model step returns at once and the caller reads the
 * logits with `await t.data()`. Intermediate tensors are disposed as soon as the next op is enqueued; the stream
 * keeps their memory alive until the ops that use them have run.
 */
import { isFloat, type FloatDType } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { add, cast } from '../ops/elementwise.js';
import { matmul } from '../ops/matmul.js';
import { addRmsNorm, embedding, layerNorm, rmsNorm, rope, siluMul, type RopePairing } from '../ops/nn.js';
import { AttentionBatch, PagedKvCache } from '../kv/paged-kv-cache.js';
import { QuantizedTensor } from '../quant/quantized-tensor.js';
import { Tensor } from '../tensor.js';
import { checkFiniteNumber, expected, shapeStr } from '../validate.js';

/** A weight of a Linear layer: a float tensor `[N, K]` or a quantized one. */
export type LinearWeight = Tensor<FloatDType> | QuantizedTensor;

function weightShape(w: LinearWeight): readonly number[] {
  return w instanceof QuantizedTensor ? w.shape : w.shape;
}

/**
 * What attention and the MLP need of a projection: {@link Linear}, or a tensor-parallel one (lib/dist/
 * parallel-layers.ts: RowParallelLinear sums its partial products over the ranks inside `forward`).
 */
export interface LinearLayer {
  /** Input features this layer takes (on a tensor-parallel rank: the rank's slice). */
  readonly inFeatures: number;
  /** Output features `forward` returns. */
  readonly outFeatures: number;
  /** `x [T, inFeatures]` f32 -> `[T, outFeatures]` f32; only enqueues. */
  forward(x: Tensor<'f32'>): Tensor<'f32'>;
  /** Bytes of the weights this rank holds. */
  readonly nbytes: number;
  dispose(): void;
}

/**
 * `y = x · Wᵀ (+ b)`. A float weight of another dtype than x's computes in the weight's dtype (x is cast to it and
 * y back); a quantized weight takes f32 activations directly (matmul's int8 path).
 * @example const proj = new Linear(w, bias); const y = proj.forward(x); // x [T, K] -> y [T, N]
 */
export class Linear implements LinearLayer {
  readonly weight: LinearWeight;
  readonly bias: Tensor<'f32'> | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  /**
   * @param weight - `[N, K]` float tensor or QuantizedTensor (the layer takes ownership)
   * @param bias - `[N]` f32, or null
   * @throws {TypeError} | {RangeError} bad weight or bias
   */
  constructor(weight: LinearWeight, bias: Tensor<'f32'> | null = null) {
    const fn = 'Linear';
    if (weight instanceof Tensor) {
      if (!isFloat(weight.dtype)) throw typeError(expected(fn, "a float or quantized weight", 'weight.dtype', weight.dtype));
    } else if (!(weight instanceof QuantizedTensor)) {
      throw typeError(expected(fn, 'a Tensor or a QuantizedTensor', 'weight', weight));
    }
    const s = weightShape(weight);
    if (s.length !== 2) throw rangeError(expected(fn, 'a weight [N, K]', 'weight.shape', shapeStr(s), true));
    this.outFeatures = s[0]!;
    this.inFeatures = s[1]!;
    if (bias !== null) {
      if (!(bias instanceof Tensor) || bias.dtype !== 'f32') throw typeError(expected(fn, 'an f32 Tensor or null', 'bias', bias));
      if (bias.shape.length !== 1 || bias.shape[0] !== this.outFeatures)
        throw rangeError(expected(fn, `a bias [N=${this.outFeatures}]`, 'bias.shape', shapeStr(bias.shape), true));
    }
    this.weight = weight;
    this.bias = bias;
  }

  /** `x [..., K]` f32 -> `[..., N]` f32. */
  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    const w = this.weight;
    let y: Tensor<'f32'>;
    if (w instanceof QuantizedTensor || w.dtype === 'f32') {
      y = matmul(x, w as Tensor<'f32'> | QuantizedTensor);
    } else {
      using xc = cast(x, w.dtype);
      using yc = matmul(xc, w);
      y = cast(yc, 'f32');
    }
    if (!this.bias) return y;
    using yb = y;
    return add(yb, this.bias);
  }

  /** Bytes of the weight and bias. */
  get nbytes(): number {
    return this.weight.nbytes + (this.bias?.nbytes ?? 0);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}

/** Token embeddings: `ids [T]` -> `[T, E]` f32 rows of the table. */
export class Embedding {
  /** `[V, E]`, any float dtype. */
  readonly table: Tensor<FloatDType>;
  constructor(table: Tensor<FloatDType>) {
    if (!(table instanceof Tensor) || !isFloat(table.dtype)) throw typeError(expected('Embedding', 'a float Tensor [V, E]', 'table', table));
    if (table.shape.length !== 2) throw rangeError(expected('Embedding', 'a table [V, E]', 'table.shape', shapeStr(table.shape), true));
    this.table = table;
  }
  get vocabSize(): number {
    return this.table.shape[0]!;
  }
  forward(ids: Int32Array | Tensor<'i32'>): Tensor<'f32'> {
    return embedding(this.table, ids, { dtype: 'f32' });
  }
  dispose(): void {
    this.table.dispose();
  }
}

/** RMSNorm with a learned scale (Llama). `forwardAdd` fuses the residual add before it. */
export class RMSNorm {
  readonly weight: Tensor<FloatDType>;
  readonly eps: number;
  constructor(weight: Tensor<FloatDType>, eps: number) {
    if (!(weight instanceof Tensor) || !isFloat(weight.dtype)) throw typeError(expected('RMSNorm', 'a float Tensor [N]', 'weight', weight));
    checkFiniteNumber('RMSNorm', 'eps', eps);
    if (!(eps > 0)) throw rangeError(expected('RMSNorm', 'a finite number > 0', 'eps', eps));
    this.weight = weight;
    this.eps = eps;
  }
  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    return rmsNorm(x, this.weight, this.eps);
  }
  /** `sum = x + residual`, `y = norm(sum)`. */
  forwardAdd(x: Tensor<'f32'>, residual: Tensor<'f32'>): { sum: Tensor<'f32'>; y: Tensor<'f32'> } {
    return addRmsNorm(x, residual, this.weight, this.eps);
  }
  dispose(): void {
    this.weight.dispose();
  }
}

/** LayerNorm with a learned scale and optional bias (GPT-2, BERT-style blocks). */
export class LayerNorm {
  readonly weight: Tensor<FloatDType>;
  readonly bias: Tensor<FloatDType> | null;
  readonly eps: number;
  constructor(weight: Tensor<FloatDType>, bias: Tensor<FloatDType> | null, eps: number) {
    if (!(weight instanceof Tensor) || !isFloat(weight.dtype)) throw typeError(expected('LayerNorm', 'a float Tensor [N]', 'weight', weight));
    checkFiniteNumber('LayerNorm', 'eps', eps);
    if (!(eps > 0)) throw rangeError(expected('LayerNorm', 'a finite number > 0', 'eps', eps));
    this.weight = weight;
    this.bias = bias;
    this.eps = eps;
  }
  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}

/** Rotary embedding of queries or keys `[T, H, D]` at per-token positions. */
export class RotaryEmbedding {
  /** `[R/2]` f32 inverse frequencies (scaling included). */
  readonly invFreq: Tensor<'f32'>;
  readonly pairing: RopePairing;
  constructor(invFreq: Float32Array, pairing: RopePairing, device: Tensor['device'] | 'cpu' = 'cpu') {
    this.invFreq = Tensor.fromArray(invFreq, { dtype: 'f32', device });
    this.pairing = pairing;
  }
  forward(x: Tensor<'f32'>, positions: Tensor<'i32'>): Tensor<'f32'> {
    return rope(x, positions, this.invFreq, { pairing: this.pairing });
  }
  dispose(): void {
    this.invFreq.dispose();
  }
}

/** SwiGLU MLP: `down(silu(gate(x)) * up(x))`, with gate and up fused into one Linear `[2F, E]` (gate rows first). */
export class SwiGluMlp {
  readonly gateUp: LinearLayer;
  readonly down: LinearLayer;
  constructor(gateUp: LinearLayer, down: LinearLayer) {
    if (gateUp.outFeatures !== 2 * down.inFeatures)
      throw new LlmKernelsError('ERR_MODEL_FORMAT', expected('SwiGluMlp', `gateUp with 2F = ${2 * down.inFeatures} outputs`, 'gateUp.outFeatures', gateUp.outFeatures));
    this.gateUp = gateUp;
    this.down = down;
  }
  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    using gu = this.gateUp.forward(x);
    using a = siluMul(gu);
    return this.down.forward(a);
  }
  get nbytes(): number {
    return this.gateUp.nbytes + this.down.nbytes;
  }
  dispose(): void {
    this.gateUp.dispose();
    this.down.dispose();
  }
}

/** What the attention of every layer shares in one model step. */
export interface AttentionContext {
  /** The model's paged KV cache. */
  cache: PagedKvCache;
  /** Block tables and lengths of the step's sequences (decode or prefill form). */
  batch: AttentionBatch;
  /** `[T]` i32 positions of the step's tokens. */
  positions: Tensor<'i32'>;
  /** `[T]` cache slots of the step's tokens. */
  slots: Int32Array;
  /** Every sequence has one new token (the decode kernel), else the ragged prefill kernel. */
  decode: boolean;
}

/** Shape and options of an {@link Attention} layer. */
export interface AttentionOptions {
  /** The layer's index in the cache. */
  layer: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Sliding window in tokens (Mistral), or null. */
  slidingWindow?: number | null;
  /** Softmax scale (default 1 / sqrt(headDim)). */
  scale?: number;
}

/**
 * Grouped-query attention over the paged KV cache: q, k, v projections, rotary embedding of q and k, the new keys
 * and values written into the cache, attention over each sequence's history (decode or ragged prefill kernel),
 * the output projection. `x [T, E]` -> `[T, E]`.
 */
export class Attention {
  readonly q: LinearLayer;
  readonly k: LinearLayer;
  readonly v: LinearLayer;
  readonly o: LinearLayer;
  /** Shared between layers; not disposed with this one. */
  readonly rope: RotaryEmbedding;
  readonly options: Readonly<Required<AttentionOptions>>;

  /**
   * On a tensor-parallel rank, numHeads and numKvHeads are the rank's own heads, q/k/v give their outputs, and o is
   * a RowParallelLinear over their inputs.
   */
  constructor(q: LinearLayer, k: LinearLayer, v: LinearLayer, o: LinearLayer, rope: RotaryEmbedding, options: AttentionOptions) {
    const fn = 'Attention';
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = options;
    if (!(Number.isInteger(H) && Number.isInteger(Hkv) && Number.isInteger(D) && H > 0 && Hkv > 0 && D > 0 && H % Hkv === 0))
      throw rangeError(expected(fn, 'positive heads with numKvHeads dividing numHeads', 'options', `H=${H}, Hkv=${Hkv}, D=${D}`, true));
    if (q.outFeatures !== H * D || k.outFeatures !== Hkv * D || v.outFeatures !== Hkv * D || o.inFeatures !== H * D)
      throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, `projections of ${H * D}, ${Hkv * D}, ${Hkv * D} outputs and o of ${H * D} inputs`, 'q/k/v/o', `${q.outFeatures}, ${k.outFeatures}, ${v.outFeatures}, ${o.inFeatures}`, true));
    this.q = q;
    this.k = k;
    this.v = v;
    this.o = o;
    this.rope = rope;
    this.options = Object.freeze({ layer: options.layer, numHeads: H, numKvHeads: Hkv, headDim: D, slidingWindow: options.slidingWindow ?? null, scale: options.scale ?? 1 / Math.sqrt(D) });
  }

  forward(x: Tensor<'f32'>, ctx: AttentionContext): Tensor<'f32'> {
    const { layer, numHeads: H, numKvHeads: Hkv, headDim: D, slidingWindow, scale } = this.options;
    const T = x.shape[0]!;
    using q0 = this.q.forward(x);
    using k0 = this.k.forward(x);
    using v0 = this.v.forward(x);
    using q1 = q0.reshape([T, H, D]);
    using k1 = k0.reshape([T, Hkv, D]);
    using v = v0.reshape([T, Hkv, D]);
    using qr = this.rope.forward(q1, ctx.positions);
    // K is rotated on its way into the cache (one fused pass: rope_cache_write).
    ctx.cache.writeRotary(layer, k1, v, ctx.slots, ctx.positions, this.rope.invFreq, this.rope.pairing);
    const opts = { scale, slidingWindow: slidingWindow ?? 0 };
    using a = ctx.decode ? ctx.cache.decode(layer, qr, ctx.batch, opts) : ctx.cache.prefill(layer, qr, ctx.batch, opts);
    using a2 = a.reshape([T, H * D]);
    return this.o.forward(a2);
  }

  get nbytes(): number {
    return this.q.nbytes + this.k.nbytes + this.v.nbytes + this.o.nbytes;
  }

  dispose(): void {
    this.q.dispose();
    this.k.dispose();
    this.v.dispose();
    this.o.dispose();
  }
}

/**
 * A pre-norm decoder block (Llama): `h += attn(norm1(h))`, then `h += mlp(norm2(h))`. Each residual add is fused
 * with the norm that follows it, so the block takes the residual stream `h` and its normalized form `x`
 * (`inputNorm(h)`, computed by the previous block's last fused step) and returns both for the next block, whose
 * input norm (or the model's final norm) it is given.
 */
export class DecoderLayer {
  readonly inputNorm: RMSNorm;
  readonly attention: Attention;
  readonly postNorm: RMSNorm;
  readonly mlp: SwiGluMlp;

  constructor(inputNorm: RMSNorm, attention: Attention, postNorm: RMSNorm, mlp: SwiGluMlp) {
    this.inputNorm = inputNorm;
    this.attention = attention;
    this.postNorm = postNorm;
    this.mlp = mlp;
  }

  /**
   * @param h - the residual stream `[T, E]` (disposed here)
   * @param x - `inputNorm(h)` (disposed here)
   * @param next - the norm after this block: the next block's input norm, or the model's final norm
   * @returns the new residual stream and `next(h)`
   */
  forward(h: Tensor<'f32'>, x: Tensor<'f32'>, ctx: AttentionContext, next: RMSNorm): { h: Tensor<'f32'>; x: Tensor<'f32'> } {
    let s: { sum: Tensor<'f32'>; y: Tensor<'f32'> };
    {
      using _h = h;
      using _x = x;
      using a = this.attention.forward(x, ctx);
      s = this.postNorm.forwardAdd(h, a);
    }
    using h1 = s.sum;
    using x1 = s.y;
    using m = this.mlp.forward(x1);
    const r = next.forwardAdd(h1, m);
    return { h: r.sum, x: r.y };
  }

  get nbytes(): number {
    return this.inputNorm.weight.nbytes + this.attention.nbytes + this.postNorm.weight.nbytes + this.mlp.nbytes;
  }

  dispose(): void {
    this.inputNorm.dispose();
    this.attention.dispose();
    this.postNorm.dispose();
    this.mlp.dispose();
  }
}
