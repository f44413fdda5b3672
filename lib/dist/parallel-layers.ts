/**
 * Tensor-parallel layers (Megatron-style): each rank of a {@link ProcessGroup} holds a slice of every weight, and
 * the partial results meet in collectives that are enqueued like any op (the JS thread never waits).
 *
 *   ColumnParallelLinear   W [N, K] split by rows: rank r computes outputs [r N/R, (r+1) N/R); optionally
 *                          all-gathered along the last dimension (a vocabulary-parallel LM head)
 *   RowParallelLinear      W [N, K] split by columns: rank r multiplies its slice of the input by its columns
 *                          and the partial products are all-reduced (sum), then the bias is added once
 *   VocabParallelEmbedding rows [v0, v1) of the table per rank; a token outside them reads a zero row, and the
 *                          all-reduce sums exactly one non-zero row per token (so the result is exact)
 *
 * In a Llama block: q/k/v and gate/up are column-parallel without a gather (each rank keeps its heads and its
 * slice of the MLP), o_proj and down_proj are row-parallel: two all-reduces of [T, E] per layer.
 * {@link shardLlama} says which slice each rank holds.
 */
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { add } from '../ops/elementwise.js';
import { embedding } from '../ops/nn.js';
import { isFloat, type FloatDType } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { expected, shapeStr } from '../validate.js';
import { Linear, type LinearLayer } from '../nn/layers.js';
import { ProcessGroup } from './process-group.js';
import type { LlamaConfig } from '../io/hf-config.js';

function checkGroup(fn: string, group: unknown): ProcessGroup {
  if (!(group instanceof ProcessGroup)) throw typeError(expected(fn, 'a ProcessGroup (initProcessGroup)', 'group', group));
  return group;
}

/**
 * A Linear whose output features are split over the ranks. `local` holds this rank's rows of W (and of the bias).
 * @example new ColumnParallelLinear(new Linear(wSlice), pg, { gatherOutput: true }) // LM head: full logits on every rank
 */
export class ColumnParallelLinear implements LinearLayer {
  readonly local: Linear;
  readonly group: ProcessGroup;
  readonly gatherOutput: boolean;
  readonly inFeatures: number;
  /** The local slice's width, or the full width when the output is gathered. */
  readonly outFeatures: number;

  constructor(local: Linear, group: ProcessGroup, options: { gatherOutput?: boolean } = {}) {
    const fn = 'ColumnParallelLinear';
    if (!(local instanceof Linear)) throw typeError(expected(fn, 'a Linear (this rank\'s rows)', 'local', local));
    this.group = checkGroup(fn, group);
    this.local = local;
    this.gatherOutput = options.gatherOutput ?? false;
    this.inFeatures = local.inFeatures;
    this.outFeatures = this.gatherOutput ? local.outFeatures * group.worldSize : local.outFeatures;
  }

  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    const y = this.local.forward(x);
    if (!this.gatherOutput || this.group.worldSize === 1) return y;
    using _y = y;
    return this.group.allGather(y, { dim: -1 });
  }

  get nbytes(): number {
    return this.local.nbytes;
  }

  dispose(): void {
    this.local.dispose();
  }
}

/**
 * A Linear whose input features are split over the ranks: `local` holds this rank's columns of W (no bias); the
 * partial products are summed over the ranks (in rank order: every rank gets the same bits), then `bias` is added.
 * @example new RowParallelLinear(new Linear(oSlice), null, pg) // o_proj: x [T, H/R * D] -> [T, E]
 */
export class RowParallelLinear implements LinearLayer {
  readonly local: Linear;
  readonly bias: Tensor<'f32'> | null;
  readonly group: ProcessGroup;
  /** This rank's slice of the input. */
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(local: Linear, bias: Tensor<'f32'> | null, group: ProcessGroup) {
    const fn = 'RowParallelLinear';
    if (!(local instanceof Linear)) throw typeError(expected(fn, "a Linear (this rank's columns)", 'local', local));
    if (local.bias) throw rangeError(expected(fn, 'a local Linear without bias (pass the bias separately: it is added once, after the sum)', 'local.bias', 'a bias', true));
    if (bias !== null && (!(bias instanceof Tensor) || bias.dtype !== 'f32' || bias.shape.length !== 1 || bias.shape[0] !== local.outFeatures))
      throw typeError(expected(fn, `an f32 Tensor [${local.outFeatures}] or null`, 'bias', bias));
    this.group = checkGroup(fn, group);
    this.local = local;
    this.bias = bias;
    this.inFeatures = local.inFeatures;
    this.outFeatures = local.outFeatures;
  }

  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    const y = this.local.forward(x);
    if (this.group.worldSize > 1) this.group.allReduce(y, { out: y });
    if (!this.bias) return y;
    using _y = y;
    return add(y, this.bias);
  }

  get nbytes(): number {
    return this.local.nbytes + (this.bias?.nbytes ?? 0);
  }

  dispose(): void {
    this.local.dispose();
    this.bias?.dispose();
  }
}

/**
 * Token embeddings split by vocabulary: this rank holds rows [v0, v0 + rows) of the [V, E] table. A token outside
 * them reads a zero row; the all-reduce then sums one real row and R - 1 zeros per token, which is exact.
 */
export class VocabParallelEmbedding {
  /** `[rows + 1, E]`: this rank's rows and a zero row last (what the other ranks' tokens read). */
  readonly table: Tensor<FloatDType>;
  readonly group: ProcessGroup;
  readonly v0: number;
  readonly rows: number;
  readonly vocabSize: number;

  /**
   * @param rows - `[rows, E]` this rank's slice of the table (any float dtype; the layer takes ownership)
   * @param v0 - the vocabulary id of its first row
   * @param vocabSize - V of the whole table
   */
  constructor(rows: Tensor<FloatDType>, v0: number, vocabSize: number, group: ProcessGroup) {
    const fn = 'VocabParallelEmbedding';
    this.group = checkGroup(fn, group);
    if (!(rows instanceof Tensor) || !isFloat(rows.dtype) || rows.shape.length !== 2)
      throw typeError(expected(fn, 'a float Tensor [rows, E]', 'rows', rows));
    const n = rows.shape[0]!, E = rows.shape[1]!;
    if (!Number.isInteger(v0) || v0 < 0 || v0 + n > vocabSize)
      throw rangeError(expected(fn, `rows within the vocabulary of ${vocabSize}`, 'v0', `${v0} (+${n} rows)`, true));
    using zero = Tensor.zeros([1, E], { dtype: rows.dtype, device: rows.device });
    // One table with the zero row last: a single gather per step, no masking op.
    this.table = concatRows(rows, zero);
    rows.dispose();
    this.v0 = v0;
    this.rows = n;
    this.vocabSize = vocabSize;
  }

  /** `ids` (host token ids) -> `[T, E]` f32, identical on every rank. */
  forward(ids: Int32Array): Tensor<'f32'> {
    const fn = 'VocabParallelEmbedding.forward';
    if (!(ids instanceof Int32Array)) throw typeError(expected(fn, 'an Int32Array of token ids', 'ids', ids));
    const local = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const j = ids[i]! - this.v0;
      local[i] = j >= 0 && j < this.rows ? j : this.rows;
    }
    const y = embedding(this.table, local, { dtype: 'f32' });
    if (this.group.worldSize > 1) this.group.allReduce(y, { out: y });
    return y;
  }

  dispose(): void {
    this.table.dispose();
  }
}

/** `[a; b]` stacked by rows (same dtype, device and row width), through the host: load time only. */
function concatRows<D extends FloatDType>(a: Tensor<D>, b: Tensor<D>): Tensor<D> {
  if (a.shape[1] !== b.shape[1]) throw rangeError(expected('concatRows', `rows of ${a.shape[1]}`, 'b.shape', shapeStr(b.shape), true));
  // dataSync gives the raw elements (f16/bf16 as Uint16Array bits), and fromArray takes them back as is.
  const da = a.dataSync() as Float32Array | Uint16Array;
  const db = b.dataSync() as Float32Array | Uint16Array;
  const out = da instanceof Float32Array ? new Float32Array(da.length + db.length) : new Uint16Array(da.length + db.length);
  out.set(da, 0);
  out.set(db, da.length);
  return Tensor.fromArray(out, { dtype: a.dtype, shape: [a.shape[0]! + b.shape[0]!, a.shape[1]!], device: a.device });
}

/** Which slice of a Llama model rank r of R holds (half-open ranges). */
export interface LlamaShard {
  rank: number;
  worldSize: number;
  /** Query heads [h0, h1). */
  heads: [number, number];
  /**
   * KV heads [k0, k1): split like the query heads when R divides Hkv; when Hkv divides R instead, each KV head is
   * replicated on R / Hkv ranks (each rank holds the one its query heads use).
   */
  kvHeads: [number, number];
  /** MLP intermediate features [f0, f1). */
  ffn: [number, number];
  /** Vocabulary rows [v0, v1) of the embedding and LM head, or null: both replicated (R does not divide V). */
  vocab: [number, number] | null;
}

/**
 * The tensor-parallel slice of rank `rank` of `worldSize` for a Llama config.
 * @throws {LlmKernelsError} ERR_UNSUPPORTED when the heads, KV heads or MLP width do not split evenly (named)
 */
export function shardLlama(config: LlamaConfig, worldSize: number, rank: number): LlamaShard {
  const fn = 'shardLlama';
  const R = worldSize;
  const { numHeads: H, numKvHeads: Hkv, intermediateSize: F, vocabSize: V } = config;
  if (!Number.isInteger(R) || R < 1) throw rangeError(expected(fn, 'a world size >= 1', 'worldSize', R));
  if (!Number.isInteger(rank) || rank < 0 || rank >= R) throw rangeError(expected(fn, `a rank in [0, ${R})`, 'rank', rank));
  const unsupported = (what: string) =>
    new LlmKernelsError('ERR_UNSUPPORTED', `${fn}: tensor parallelism over ${R} ranks needs ${what}; use a world size that divides it`);
  if (H % R !== 0) throw unsupported(`a number of attention heads divisible by ${R}, got ${H}`);
  if (F % R !== 0) throw unsupported(`an intermediate size divisible by ${R}, got ${F}`);
  let kvHeads: [number, number];
  if (Hkv % R === 0) kvHeads = [(rank * Hkv) / R, ((rank + 1) * Hkv) / R];
  else if (R % Hkv === 0) {
    const k = Math.floor(rank / (R / Hkv));
    kvHeads = [k, k + 1];
  } else throw unsupported(`KV heads (${Hkv}) divisible by ${R} or dividing it`);
  return {
    rank,
    worldSize: R,
    heads: [(rank * H) / R, ((rank + 1) * H) / R],
    kvHeads,
    ffn: [(rank * F) / R, ((rank + 1) * F) / R],
    vocab: V % R === 0 ? [(rank * V) / R, ((rank + 1) * V) / R] : null,
  };
}
