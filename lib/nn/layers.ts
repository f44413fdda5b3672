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
import { addRmsNorm, embedding, rmsNorm, rope, siluMul, type RopePairing } from '../ops/nn.js';
import { QuantizedTensor } from '../quant/quantized-tensor.js';
import { Tensor } from '../tensor.js';
import { checkFiniteNumber, expected, shapeStr } from '../validate.js';

/** A weight of a Linear layer: a float tensor `[N, K]` or a quantized one. */
export type LinearWeight = Tensor<FloatDType> | QuantizedTensor;

function weightShape(w: LinearWeight): readonly number[] {
  return w instanceof QuantizedTensor ? w.shape : w.shape;
}

/**
 * `y = x · Wᵀ (+ b)`. A float weight of another dtype than x's computes in the weight's dtype (x is cast to it and
 * y back); a quantized weight takes f32 activations directly (matmul's int8 path).
 * @example const proj = new Linear(w, bias); const y = proj.forward(x); // x [T, K] -> y [T, N]
 */
export class Linear {
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
  readonly gateUp: Linear;
  readonly down: Linear;
  constructor(gateUp: Linear, down: Linear) {
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
