/**
 * Llama-family causal language models (Llama 2/3, Mistral with its sliding window, Qwen2 with q/k/v biases) over a
 * paged KV cache, and the batched model step that runtimes build on.
 *
 * The step (`forward`) takes many sequences at once, each prefilling a chunk of new tokens or decoding one
 * (continuous batching): their tokens run through every layer as one `[T, E]` batch; attention reads each
 * sequence's history through its block table. It only enqueues work and returns the logits tensor at once; read
 * it with `await logits.data()`, so a server's event loop stays free.
 *
 * Per layer, for the T new tokens of the batch:
 *   h_norm = rmsNorm(h)                                   (fused with the residual add of the previous block)
 *   q, k, v = Linear(h_norm); q, k = rope(q, k, positions)
 *   cache.write(k, v, slots); a = pagedAttention(q, cache, block tables)
 *   h, h_norm = addRmsNorm(h, o_proj(a))
 *   h += down(silu(gate(h_norm)) * up(h_norm))            (gate and up fused into one [2F, E] weight)
 * then the final norm (fused likewise), the rows whose logits are asked for, and lm_head.
 *
 * Activations are f32. Float checkpoints keep their Linear weights in `weightDtype` (default f32: bf16 and f16
 * weights are widened exactly, so a bf16 checkpoint computes like Hugging Face's float32 forward of it);
 * `quantize` turns every Linear weight except lm_head into a quantized format (lm_head and the embedding table stay
 * float, as llama.cpp and the GPTQ/AWQ toolchains keep them at higher precision).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { DTYPE_SIZE, isFloat, type FloatDType } from '../dtype.js';
import { device as resolveDevice, type DeviceSpec } from '../device.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { bf16ToF32, f16ToF32 } from '../io/safetensors.js';
import { ropeInvFreq, type LlamaConfig } from '../io/hf-config.js';
import { PagedKvCache, type PagedKvCacheOptions } from '../kv/paged-kv-cache.js';
import { type KvDType } from '../ops/attention.js';
import { embedding } from '../ops/nn.js';
import { QUANT_FORMATS, rowFormBytes, groupSize, type QuantFormat } from '../quant/formats.js';
import { dequantize, quantize } from '../quant/quantize.js';
import { gptqToQ4GRows, type GptqCheckpointFormat, type GptqTensors } from '../quant/gptq.js';
import { QuantizedTensor } from '../quant/quantized-tensor.js';
import { Tensor } from '../tensor.js';
import { checkInteger, checkObject, expected, shapeStr } from '../validate.js';
import { Attention, DecoderLayer, Embedding, Linear, RMSNorm, RotaryEmbedding, SwiGluMlp, type LinearLayer, type LinearWeight } from './layers.js';
import { ProcessGroup } from '../dist/process-group.js';
import { ColumnParallelLinear, RowParallelLinear, shardLlama, VocabParallelEmbedding, type LlamaShard } from '../dist/parallel-layers.js';

/** Where a model's tensors come from: Hugging Face names, raw little-endian bytes (a safetensors file, a test). */
export interface WeightSource {
  has(name: string): boolean;
  info(name: string): { readonly dtype: string; readonly shape: readonly number[] };
  read(name: string): Uint8Array;
  /**
   * Where the tensor's bytes lie in a file, if they are stored as is (safetensors; GGUF float and q8_0/q4_0
   * tensors): the loader then reads them straight into native memory (`Tensor.fromFile`) and converts there,
   * instead of through a JS buffer, and a tensor-parallel rank reads only its slice.
   */
  locate?(name: string): { readonly path: string; readonly offset: number; readonly byteLength: number } | null;
  /**
   * Rows [r0, r1) of a 2-D tensor, read alone (GGUF: its permuted q / k rows too, by whole heads): a tensor-parallel
   * rank's row slice of a tensor that `locate` cannot place.
   */
  readRows?(name: string, rows: readonly [number, number]): Uint8Array;
}

/** Progress of a model load: `done` of `total` weights, the last one's name and what happened to it. */
export interface LoadProgress {
  done: number;
  total: number;
  name: string;
  stage: 'read' | 'quantized';
}

/** Options of {@link LlamaForCausalLM.fromWeights}. */
export interface LlamaLoadOptions {
  /** Quantize every Linear weight but lm_head to this format on load. */
  quantize?: QuantFormat;
  /** Storage of float Linear weights (default 'f32'; 'bf16'/'f16' halve the memory, computing in that dtype). */
  weightDtype?: FloatDType;
  /** Device of the weights and activations (default 'cpu'). */
  device?: DeviceSpec;
  /** Called after each weight. */
  onProgress?: (p: LoadProgress) => void;
  /**
   * Tensor parallelism: this process is one rank of `group` and loads only its slice of every weight
   * ({@link shardLlama}): its attention heads and KV heads, its slice of the MLP, its rows of the vocabulary.
   * Every rank calls fromWeights and then forward with the same arguments; each gets the full logits.
   */
  group?: ProcessGroup;
}

/** One sequence of a model step. */
export interface StepSequence {
  /** The sequence id in the cache (its tokens were already added with `addSequence`/`append`). */
  seqId: number;
  /** The new tokens to compute: the last `tokens.length` tokens of the sequence in the cache. */
  tokens: ArrayLike<number>;
  /** Their cache slots (from `addSequence`/`append`), in order. */
  slots: Int32Array;
  /** Which new tokens' logits to return: 'last' (default), 'all' or 'none'. */
  logits?: 'last' | 'all' | 'none';
}

/** The result of {@link LlamaForCausalLM.forward}. */
export interface StepResult {
  /** `[R, V]` f32 logits, one row per requested position, in the order of `rows`. */
  logits: Tensor<'f32'>;
  /** Row r of logits belongs to sequence `rows[r].seqId`, new token `rows[r].index`. */
  rows: { seqId: number; index: number }[];
}

function toF32(fn: string, name: string, dtype: string, bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case 'F32': {
      if (bytes.byteLength % 4 !== 0) throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, 'a multiple of 4 bytes', name, bytes.byteLength));
      const out = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    }
    case 'BF16':
      return bf16ToF32(bytes);
    case 'F16':
      return f16ToF32(bytes);
    default:
      throw new LlmKernelsError('ERR_UNSUPPORTED', expected(fn, 'an F32, F16 or BF16 tensor', `${name}.dtype`, dtype));
  }
}

/**
 * A Llama-family model. Build it with {@link LlamaForCausalLM.fromWeights} (or lib/io's loaders), make a cache
 * with {@link LlamaForCausalLM.createCache}, and run steps with {@link LlamaForCausalLM.forward}.
 */
export class LlamaForCausalLM {
  readonly config: LlamaConfig;
  /** The quantized format of the Linear weights, or null for float weights. */
  readonly quantization: QuantFormat | null;
  readonly device: Tensor['device'];
  /** The tensor-parallel group this rank belongs to, or null (the whole model in this process). */
  readonly group: ProcessGroup | null;
  /** KV heads this rank holds (its cache's numKvHeads): config.numKvHeads without tensor parallelism. */
  readonly localKvHeads: number;
  #embed: Embedding | VocabParallelEmbedding | null;
  #layers: DecoderLayer[];
  #norm: RMSNorm;
  #lmHead: LinearLayer;
  #rope: RotaryEmbedding;

  private constructor(
    config: LlamaConfig,
    quantization: QuantFormat | null,
    embed: Embedding | VocabParallelEmbedding,
    layers: DecoderLayer[],
    norm: RMSNorm,
    lmHead: LinearLayer,
    ropeEmb: RotaryEmbedding,
    group: ProcessGroup | null,
    localKvHeads: number,
  ) {
    this.config = config;
    this.group = group;
    this.localKvHeads = localKvHeads;
    this.quantization = quantization;
    this.device = embed.table.device;
    this.#embed = embed;
    this.#layers = layers;
    this.#norm = norm;
    this.#lmHead = lmHead;
    this.#rope = ropeEmb;
  }

  /**
   * Builds the model from Hugging Face-named weights (`model.embed_tokens.weight`, `model.layers.{i}.self_attn.
   * q_proj.weight`, ...; `lm_head.weight` unless the embeddings are tied).
   * @throws {LlmKernelsError} ERR_MODEL_FORMAT (a missing tensor or a wrong shape, named), ERR_UNSUPPORTED (a
   *   tensor dtype other than F32/F16/BF16), ERR_OOM
   * @example const model = await LlamaForCausalLM.fromWeights(config, SafetensorsModel.open(dir), { quantize: 'q8_0' });
   */
  static async fromWeights(config: LlamaConfig, source: WeightSource, options: LlamaLoadOptions = {}): Promise<LlamaForCausalLM> {
    const fn = 'LlamaForCausalLM.fromWeights';
    checkObject(fn, 'options', options);
    if (config === null || typeof config !== 'object') throw typeError(expected(fn, 'a LlamaConfig (parseLlamaConfig)', 'config', config));
    if (source === null || typeof source !== 'object' || typeof source.read !== 'function')
      throw typeError(expected(fn, 'a weight source { has, info, read }', 'source', source));
    const q = options.quantize ?? null;
    if (q !== null && !(QUANT_FORMATS as readonly string[]).includes(q))
      throw rangeError(expected(fn, `a quantized format (${QUANT_FORMATS.join(', ')})`, 'options.quantize', q));
    const wdt = options.weightDtype ?? 'f32';
    if (!isFloat(wdt)) throw rangeError(expected(fn, "'f32', 'f16' or 'bf16'", 'options.weightDtype', wdt));
    const device = options.device ?? 'cpu';
    const c = config;
    const E = c.hiddenSize, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, F = c.intermediateSize, V = c.vocabSize;
    const names: string[] = ['model.embed_tokens.weight', 'model.norm.weight'];
    if (!c.tieWordEmbeddings) names.push('lm_head.weight');
    const proj = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.`;
      names.push(`${p}input_layernorm.weight`, `${p}post_attention_layernorm.weight`);
      for (const n of proj) names.push(`${p}self_attn.${n}.weight`);
      for (const n of ['gate_proj', 'up_proj', 'down_proj']) names.push(`${p}mlp.${n}.weight`);
    }
    const total = names.length;
    let done = 0;
    const progress = (name: string, stage: LoadProgress['stage']) => options.onProgress?.({ done, total, name, stage });
    const owned: { dispose(): void }[] = [];

    const shapeOf = (name: string, shape: readonly number[]): { dtype: string } => {
      if (!source.has(name)) throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: the checkpoint has no tensor "${name}"`);
      const info = source.info(name);
      if (shapeStr(info.shape) !== shapeStr(shape))
        throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, `shape ${shapeStr(shape)} (from the config)`, `"${name}".shape`, shapeStr(info.shape), true));
      return info;
    };
    const read = (name: string, shape: readonly number[]): Float32Array => toF32(fn, name, shapeOf(name, shape).dtype, source.read(name));
    const optional = (name: string, shape: readonly number[]): Float32Array | null => (source.has(name) ? read(name, shape) : null);
    const dense = (data: Float32Array, shape: number[]): Tensor<'f32'> => Tensor.fromArray(data, { shape, device });

    // A Linear weight's rows from the checkpoint: floats, or the row form of a quantized format (GGUF q8_0/q4_0
    // tensors are that row form; GPTQ/AWQ layers are unpacked to q4_g{G} rows), so that gate and up can be stacked
    // before the weight is made.
    type Segment = { path: string; offset: number; byteLength: number };
    type Rows = { kind: 'float'; data: Float32Array } | { kind: 'quant'; format: QuantFormat; bytes: Uint8Array } | { kind: 'file'; dtype: FloatDType; segments: Segment[] };
    const FILE_DTYPES: Record<string, FloatDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
    const gq = c.quantization;
    // A slice of a weight [N, K]: rows [r0, r1) and columns [k0, k1) (tensor parallelism); null = the whole.
    type Slice = { rows?: [number, number]; cols?: [number, number] } | null;
    const sliceDims = (N: number, K: number, sl: Slice): { r: [number, number]; k: [number, number] } => ({ r: sl?.rows ?? [0, N], k: sl?.cols ?? [0, K] });
    const sliceFloat = (data: Float32Array, N: number, K: number, sl: Slice): Float32Array => {
      if (!sl) return data;
      const { r, k } = sliceDims(N, K, sl);
      const w = k[1] - k[0];
      if (w === K) return data.subarray(r[0] * K, r[1] * K);
      const out = new Float32Array((r[1] - r[0]) * w);
      for (let i = r[0]; i < r[1]; i++) out.set(data.subarray(i * K + k[0], i * K + k[1]), (i - r[0]) * w);
      return out;
    };
    // Quantized row form: each row is a run of blocks (32 elements for q8_0/q4_0, G for q4_gG), so a column
    // slice must start and end on block boundaries. The slice as byte ranges [start, length) of the row form.
    const quantRanges = (format: QuantFormat, N: number, K: number, sl: Slice, name: string): [number, number][] => {
      const { r, k } = sliceDims(N, K, sl);
      const rowBytes = rowFormBytes(format, 1, K);
      if (k[0] === 0 && k[1] === K) return [[r[0] * rowBytes, (r[1] - r[0]) * rowBytes]];
      const B = format === 'i8_pc' ? 0 : groupSize(format, K);
      if (!B || k[0] % B !== 0 || (k[1] % B !== 0 && k[1] !== K))
        throw new LlmKernelsError('ERR_UNSUPPORTED', `${fn}: ${name}: a ${format} weight cannot be split at column ${k[0] % B !== 0 ? k[0] : k[1]} (blocks of ${B || K}); use fewer ranks`);
      const blockBytes = rowFormBytes(format, 1, B);
      const b0 = (k[0] / B) * blockBytes, b1 = Math.ceil(k[1] / B) * blockBytes;
      return Array.from({ length: r[1] - r[0] }, (_, i) => [(r[0] + i) * rowBytes + b0, b1 - b0]);
    };
    const gather = (ranges: [number, number][], from: (start: number, length: number, into: Uint8Array) => void): Uint8Array => {
      const out = new Uint8Array(ranges.reduce((a, [, n]) => a + n, 0));
      let o = 0;
      for (const [start, n] of ranges) from(start, n, out.subarray(o, (o += n)));
      return out;
    };
    const sliceQuant = (bytes: Uint8Array, format: QuantFormat, N: number, K: number, sl: Slice, name: string): Uint8Array => {
      if (!sl) return bytes;
      const ranges = quantRanges(format, N, K, sl, name);
      if (ranges.length === 1) return bytes.subarray(ranges[0]![0], ranges[0]![0] + ranges[0]![1]);
      return gather(ranges, (start, n, into) => into.set(bytes.subarray(start, start + n)));
    };
    // The slice straight from the file (GGUF tensors stored as served): only this rank's bytes are read.
    const readQuantSlice = (at: { path: string; offset: number }, format: QuantFormat, N: number, K: number, sl: Slice, name: string): Uint8Array => {
      const fd = openSync(at.path, 'r');
      try {
        return gather(quantRanges(format, N, K, sl, name), (start, n, into) => {
          for (let done = 0; done < n; ) {
            const got = readSync(fd, into, done, n - done, at.offset + start + done);
            if (got <= 0) throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: ${name}: ${at.path} ended before byte ${at.offset + start + done}`);
            done += got;
          }
        });
      } finally {
        closeSync(fd);
      }
    };
    const rowsOf = (prefix: string, N: number, K: number, quantizable = true, sl: Slice = null): Rows => {
      if (gq && quantizable) {
        const i32 = (n: string): Int32Array => {
          const b = source.read(`${prefix}.${n}`);
          const out = new Int32Array(b.byteLength >> 2);
          new Uint8Array(out.buffer).set(b.subarray(0, out.byteLength));
          return out;
        };
        for (const n of ['qweight', 'qzeros', 'scales'])
          if (!source.has(`${prefix}.${n}`)) throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: the ${gq.quant_method} checkpoint has no tensor "${prefix}.${n}"`);
        const sb = source.read(`${prefix}.scales`);
        const scales = new Uint16Array(sb.byteLength >> 1);
        new Uint8Array(scales.buffer).set(sb.subarray(0, scales.byteLength));
        const tensors: GptqTensors = { qweight: i32('qweight'), qzeros: i32('qzeros'), scales };
        if (source.has(`${prefix}.g_idx`)) tensors.gIdx = i32('g_idx');
        const format: GptqCheckpointFormat = gq.quant_method === 'awq' ? 'awq' : gq.checkpoint_format === 'gptq_v2' ? 'gptq_v2' : 'gptq';
        const G = gq.group_size;
        const bytes = gptqToQ4GRows(tensors, { outFeatures: N, inFeatures: K, groupSize: G, format, bits: 4 });
        const qf = `q4_g${G}` as QuantFormat;
        return { kind: 'quant', format: qf, bytes: sliceQuant(bytes, qf, N, K, sl, prefix) };
      }
      const name = `${prefix}.weight`;
      const { dtype } = shapeOf(name, [N, K]);
      if (dtype === 'Q8_0' || dtype === 'Q4_0') {
        const qf = dtype === 'Q8_0' ? 'q8_0' : 'q4_0';
        const at = sl ? source.locate?.(name) : null;
        if (at && at.byteLength === rowFormBytes(qf, N, K)) return { kind: 'quant', format: qf, bytes: readQuantSlice(at, qf, N, K, sl, name) };
        if (sl && !sl.cols && sl.rows && source.readRows) return { kind: 'quant', format: qf, bytes: source.readRows(name, sl.rows) };
        return { kind: 'quant', format: qf, bytes: sliceQuant(source.read(name), qf, N, K, sl, name) };
      }
      const at = FILE_DTYPES[dtype] ? source.locate?.(name) : null;
      if (at) {
        const es = DTYPE_SIZE[FILE_DTYPES[dtype]!];
        if (at.byteLength !== N * K * es)
          throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(fn, `${N * K * es} bytes`, `"${name}".byteLength`, at.byteLength));
        // Only this rank's slice is read from disk: one range for a row slice, one per row for a column slice.
        const { r, k } = sliceDims(N, K, sl);
        const segments: Segment[] =
          k[0] === 0 && k[1] === K
            ? [{ path: at.path, offset: at.offset + r[0] * K * es, byteLength: (r[1] - r[0]) * K * es }]
            : Array.from({ length: r[1] - r[0] }, (_, i) => ({ path: at.path, offset: at.offset + ((r[0] + i) * K + k[0]) * es, byteLength: (k[1] - k[0]) * es }));
        return { kind: 'file', dtype: FILE_DTYPES[dtype]!, segments };
      }
      if (sl && !sl.cols && sl.rows && source.readRows) return { kind: 'float', data: toF32(fn, name, dtype, source.readRows(name, sl.rows)) };
      return { kind: 'float', data: sliceFloat(read(name, [N, K]), N, K, sl) };
    };
    // File rows: read into native memory, widened to f32 there (the cast op), moved to the device.
    const fileTensor = (rows: { dtype: FloatDType; segments: Segment[] }, shape: number[]): Tensor<'f32'> => {
      const raw = Tensor.fromFileSegments(rows.segments, rows.dtype, shape);
      let t: Tensor<'f32'>;
      if (rows.dtype === 'f32') t = raw as Tensor<'f32'>;
      else {
        t = raw.cast('f32');
        raw.dispose();
      }
      if (t.device === resolveDevice(device as 'cpu')) return t;
      try {
        return t.to(device);
      } finally {
        t.dispose();
      }
    };
    const fileF32 = (rows: { dtype: FloatDType; segments: Segment[] }): Float32Array => {
      using t = Tensor.fromFileSegments(rows.segments, rows.dtype, [rows.segments.reduce((a, g) => a + g.byteLength, 0) / DTYPE_SIZE[rows.dtype]]);
      using f = rows.dtype === 'f32' ? t.clone() : t.cast('f32');
      return f.dataSync() as Float32Array;
    };
    const stack = (parts: Rows[], name: string): Rows => {
      if (parts.every((p) => p.kind === 'float')) {
        const data = new Float32Array(parts.reduce((a, p) => a + (p as { data: Float32Array }).data.length, 0));
        let o = 0;
        for (const p of parts as { data: Float32Array }[]) data.set(p.data, o), (o += p.data.length);
        return { kind: 'float', data };
      }
      if (parts.every((p) => p.kind === 'file' && p.dtype === (parts[0] as { dtype: FloatDType }).dtype))
        return { kind: 'file', dtype: (parts[0] as { dtype: FloatDType }).dtype, segments: parts.flatMap((p) => (p as { segments: Segment[] }).segments) };
      if (parts.some((p) => p.kind === 'file')) return stack(parts.map((p) => (p.kind === 'file' ? { kind: 'float', data: fileF32(p) } : p)), name);
      const fmt = (parts[0] as { format?: QuantFormat }).format;
      if (!parts.every((p) => p.kind === 'quant' && p.format === fmt))
        throw new LlmKernelsError('ERR_UNSUPPORTED', `${fn}: ${name}: gate and up stored in different formats`);
      const qs = parts as { bytes: Uint8Array }[];
      const bytes = new Uint8Array(qs.reduce((a, p) => a + p.bytes.byteLength, 0));
      let o = 0;
      for (const p of qs) bytes.set(p.bytes, o), (o += p.bytes.byteLength);
      return { kind: 'quant', format: fmt!, bytes };
    };
    const makeWeight = async (rows: Rows, shape: [number, number], name: string, quantizable = true): Promise<LinearWeight> => {
      if (rows.kind === 'quant') return QuantizedTensor.fromBytes(rows.format, shape, rows.bytes, { device });
      const w = rows.kind === 'file' ? fileTensor(rows, shape) : dense(rows.data, shape);
      if (q && quantizable) {
        try {
          const qw = await quantize(w, q);
          progress(name, 'quantized');
          return qw;
        } finally {
          w.dispose();
        }
      }
      if (wdt === 'f32') return w;
      try {
        return w.cast(wdt);
      } finally {
        w.dispose();
      }
    };
    // A Linear of this rank: rows [r0, r1) (column-parallel) or columns (row-parallel: no bias here, see below).
    const linear = async (name: string, N: number, K: number, bias: boolean, sl: Slice = null): Promise<Linear> => {
      const { r, k } = sliceDims(N, K, sl);
      const w = await makeWeight(rowsOf(name, N, K, true, sl), [r[1] - r[0], k[1] - k[0]], name);
      const b = bias ? optional(`${name}.bias`, [N]) : null;
      done++;
      progress(`${name}.weight`, 'read');
      return new Linear(w, b ? dense(b.slice(r[0], r[1]), [r[1] - r[0]]) : null);
    };
    const group = options.group;
    if (group !== undefined && !(group instanceof ProcessGroup)) throw typeError(expected(fn, 'a ProcessGroup (initProcessGroup)', 'options.group', group));
    const shard: LlamaShard | null = group && group.worldSize > 1 ? shardLlama(c, group.worldSize, group.rank) : null;
    // A row-parallel projection: this rank's columns, the partial sums all-reduced, the bias added once after.
    const rowParallel = async (name: string, N: number, K: number, bias: boolean, cols: [number, number]): Promise<LinearLayer> => {
      if (!shard) return linear(name, N, K, bias);
      const local = await linear(name, N, K, false, { cols });
      const b = bias ? optional(`${name}.bias`, [N]) : null;
      return new RowParallelLinear(local, b ? dense(b, [N]) : null, group!);
    };
    const norm = (name: string): RMSNorm => {
      const n = new RMSNorm(dense(read(name, [E]), [E]), c.rmsNormEps);
      done++;
      progress(name, 'read');
      return n;
    };
    if (gq && q) throw rangeError(expected(fn, 'no options.quantize for a checkpoint that is already quantized', 'options.quantize', q));

    try {
      // The embedding table is gathered, not multiplied: a quantized one (GGUF) is dequantized to f32.
      const vocab = shard?.vocab ?? null;
      const Vl = vocab ? vocab[1] - vocab[0] : V;
      const embRows = rowsOf('model.embed_tokens', V, E, false, vocab ? { rows: vocab } : null);
      let embTable: Tensor<'f32'>;
      if (embRows.kind === 'float') embTable = dense(embRows.data, [Vl, E]);
      else if (embRows.kind === 'file') embTable = fileTensor(embRows, [Vl, E]);
      else {
        using qe = QuantizedTensor.fromBytes(embRows.format, [Vl, E], embRows.bytes, { device });
        embTable = dequantize(qe, 'f32');
      }
      const embed = vocab ? new VocabParallelEmbedding(embTable, vocab[0], V, group!) : new Embedding(embTable);
      owned.push(embed);
      done++;
      progress('model.embed_tokens.weight', 'read');
      const layers: DecoderLayer[] = [];
      const ropeEmb = new RotaryEmbedding(ropeInvFreq(c), 'rotate-half', embed.table.device);
      owned.push(ropeEmb);
      if (c.mlpBias) throw new LlmKernelsError('ERR_UNSUPPORTED', `${fn}: MLP biases (mlp_bias: true) are not supported yet`);
      for (let l = 0; l < c.numLayers; l++) {
        const p = `model.layers.${l}.`;
        const qkvBias = c.attentionBias;
        const oBias = c.attentionBias && c.modelType !== 'qwen2';
        const inputNorm = norm(`${p}input_layernorm.weight`);
        owned.push(inputNorm);
        const heads: [number, number] = shard ? shard.heads : [0, H];
        const kvh: [number, number] = shard ? shard.kvHeads : [0, Hkv];
        const qRows = shard ? { rows: [heads[0] * D, heads[1] * D] as [number, number] } : null;
        const kvRows = shard ? { rows: [kvh[0] * D, kvh[1] * D] as [number, number] } : null;
        const qL = await linear(`${p}self_attn.q_proj`, H * D, E, qkvBias, qRows);
        owned.push(qL);
        const kL = await linear(`${p}self_attn.k_proj`, Hkv * D, E, qkvBias, kvRows);
        owned.push(kL);
        const vL = await linear(`${p}self_attn.v_proj`, Hkv * D, E, qkvBias, kvRows);
        owned.push(vL);
        const oL = await rowParallel(`${p}self_attn.o_proj`, E, H * D, oBias, [heads[0] * D, heads[1] * D]);
        owned.push(oL);
        const postNorm = norm(`${p}post_attention_layernorm.weight`);
        owned.push(postNorm);
        // gate and up stacked into one [2F, E] weight: one matmul gives both halves for silu_mul.
        const ffn: [number, number] = shard ? shard.ffn : [0, F];
        const Fl = ffn[1] - ffn[0];
        const ffnRows = shard ? { rows: ffn } : null;
        const gu = stack([rowsOf(`${p}mlp.gate_proj`, F, E, true, ffnRows), rowsOf(`${p}mlp.up_proj`, F, E, true, ffnRows)], `${p}mlp`);
        const gateUp = new Linear(await makeWeight(gu, [2 * Fl, E], `${p}mlp.gate_up`));
        owned.push(gateUp);
        done += 2;
        progress(`${p}mlp.up_proj.weight`, 'read');
        const down = await rowParallel(`${p}mlp.down_proj`, E, F, false, ffn);
        owned.push(down);
        const attn = new Attention(qL, kL, vL, oL, ropeEmb, { layer: l, numHeads: heads[1] - heads[0], numKvHeads: kvh[1] - kvh[0], headDim: D, slidingWindow: c.slidingWindow });
        layers.push(new DecoderLayer(inputNorm, attn, postNorm, new SwiGluMlp(gateUp, down)));
      }
      const finalNorm = norm('model.norm.weight');
      owned.push(finalNorm);
      // lm_head stays as stored: float (quantize does not touch it), or the GGUF's own quantized rows.
      // Vocabulary-parallel: this rank's rows of the head, the logits all-gathered along the vocabulary.
      const headRows: Rows = c.tieWordEmbeddings ? embRows : rowsOf('lm_head', V, E, false, vocab ? { rows: vocab } : null);
      const headLocal = new Linear(await makeWeight(headRows, [Vl, E], 'lm_head', false));
      const lmHead: LinearLayer = vocab ? new ColumnParallelLinear(headLocal, group!, { gatherOutput: true }) : headLocal;
      owned.push(lmHead);
      if (!c.tieWordEmbeddings) {
        done++;
        progress('lm_head.weight', 'read');
      }
      return new LlamaForCausalLM(c, q, embed, layers, finalNorm, lmHead, ropeEmb, shard ? group! : null, shard ? shard.kvHeads[1] - shard.kvHeads[0] : Hkv);
    } catch (err) {
      for (const o of owned) o.dispose();
      throw err;
    }
  }

  #live(fn: string): Embedding | VocabParallelEmbedding {
    if (!this.#embed) throw new LlmKernelsError('ERR_DISPOSED', `${fn}: the model was disposed`);
    return this.#embed;
  }

  /** Bytes of every weight. */
  get nbytes(): number {
    let n = this.#live('nbytes').table.nbytes + this.#norm.weight.nbytes + this.#lmHead.nbytes + this.#rope.invFreq.nbytes;
    for (const l of this.#layers) n += l.nbytes;
    return n;
  }

  /** The decoder blocks (shared, not copies: do not dispose them). */
  get layers(): readonly DecoderLayer[] {
    this.#live('layers');
    return this.#layers;
  }

  /**
   * A paged KV cache shaped for this model.
   * @param options - `numBlocks` (or `maxTokens`, rounded up to whole blocks), `blockSize` (default 16), `dtype`
   *   (default 'f16'), `prefixCaching`
   */
  createCache(options: { numBlocks?: number; maxTokens?: number; blockSize?: number; dtype?: KvDType; prefixCaching?: boolean }): PagedKvCache {
    const fn = 'createCache';
    this.#live(fn);
    checkObject(fn, 'options', options);
    const P = options.blockSize ?? 16;
    checkInteger(fn, 'options.blockSize', P, 1, 1024);
    let numBlocks = options.numBlocks;
    if (numBlocks === undefined) {
      if (options.maxTokens === undefined) throw rangeError(expected(fn, 'numBlocks or maxTokens', 'options', 'neither', true));
      numBlocks = Math.ceil(checkInteger(fn, 'options.maxTokens', options.maxTokens, 1) / P);
    }
    const o: PagedKvCacheOptions = {
      numLayers: this.config.numLayers,
      numBlocks,
      blockSize: P,
      numKvHeads: this.localKvHeads,
      headDim: this.config.headDim,
      dtype: options.dtype ?? 'f16',
      device: this.device,
    };
    if (options.prefixCaching !== undefined) o.prefixCaching = options.prefixCaching;
    return new PagedKvCache(o);
  }

  /**
   * One batched model step over the sequences' new tokens (each sequence's tokens must already be in the cache:
   * `cache.addSequence` / `cache.append` gave their slots). Enqueues the work and returns at once.
   * @throws {TypeError} | {RangeError} bad sequences, tokens, slots, or a cache of another shape
   * @throws {LlmKernelsError} ERR_DISPOSED
   * @example
   * const r = cache.append(seq, [tok]); if (!r.ok) preempt();
   * const { logits } = model.forward(cache, [{ seqId: seq, tokens: [tok], slots: r.slots }]);
   * const row = await logits.data();
   */
  forward(cache: PagedKvCache, sequences: readonly StepSequence[]): StepResult {
    const fn = 'forward';
    const embed = this.#live(fn);
    const c = this.config;
    if (!(cache instanceof PagedKvCache)) throw typeError(expected(fn, 'a PagedKvCache (model.createCache)', 'cache', cache));
    if (cache.numLayers !== c.numLayers || cache.numKvHeads !== this.localKvHeads || cache.headDim !== c.headDim)
      throw rangeError(
        expected(fn, `a cache of ${c.numLayers} layers, ${this.localKvHeads} KV heads of dimension ${c.headDim}`, 'cache', `${cache.numLayers}, ${cache.numKvHeads}, ${cache.headDim}`, true),
      );
    if (!Array.isArray(sequences) || sequences.length === 0) throw rangeError(expected(fn, 'a non-empty array of sequences', 'sequences', sequences));
    const seen = new Set<number>();
    let T = 0;
    for (const [i, s] of sequences.entries()) {
      if (s === null || typeof s !== 'object') throw typeError(expected(fn, 'a { seqId, tokens, slots }', `sequences[${i}]`, s));
      if (seen.has(s.seqId)) throw rangeError(expected(fn, 'distinct sequence ids', `sequences[${i}].seqId`, s.seqId));
      seen.add(s.seqId);
      const n = s.tokens?.length;
      if (typeof n !== 'number' || n < 1) throw rangeError(expected(fn, 'at least one new token', `sequences[${i}].tokens`, s.tokens));
      if (!(s.slots instanceof Int32Array) || s.slots.length !== n)
        throw rangeError(expected(fn, `an Int32Array of ${n} slots`, `sequences[${i}].slots`, s.slots));
      const len = cache.manager.length(s.seqId);
      if (len < n) throw rangeError(expected(fn, `a sequence holding its ${n} new tokens`, `sequences[${i}] (length ${len})`, s.seqId));
      if (s.logits !== undefined && s.logits !== 'last' && s.logits !== 'all' && s.logits !== 'none')
        throw rangeError(expected(fn, "'last', 'all' or 'none'", `sequences[${i}].logits`, s.logits));
      T += n;
    }
    const ids = new Int32Array(T);
    const pos = new Int32Array(T);
    const slots = new Int32Array(T);
    const rows: { seqId: number; index: number }[] = [];
    const rowIds: number[] = [];
    let t = 0;
    for (const [i, s] of sequences.entries()) {
      const n = s.tokens.length;
      const len = cache.manager.length(s.seqId);
      for (let j = 0; j < n; j++, t++) {
        const tok = s.tokens[j]!;
        if (!Number.isInteger(tok) || tok < 0 || tok >= c.vocabSize)
          throw rangeError(expected(fn, `a token id in [0, ${c.vocabSize})`, `sequences[${i}].tokens[${j}]`, tok));
        ids[t] = tok;
        pos[t] = len - n + j;
        slots[t] = s.slots[j]!;
        const want = s.logits ?? 'last';
        if (want === 'all' || (want === 'last' && j === n - 1)) {
          rows.push({ seqId: s.seqId, index: j });
          rowIds.push(t);
        }
      }
    }
    const decode = sequences.every((s) => s.tokens.length === 1);
    const seqIds = sequences.map((s) => s.seqId);
    
    using batch = decode ? cache.batch(seqIds) : cache.batch(seqIds, sequences.map((s) => s.tokens.length));
    using positions = Tensor.fromArray(pos, { dtype: 'i32', device: this.device });
    const ctx = { cache, batch, positions, slots, decode };
    let h = embed.forward(ids);
    let x = this.#layers[0]!.inputNorm.forward(h);
    for (let l = 0; l < this.#layers.length; l++) {
      const next = l + 1 < this.#layers.length ? this.#layers[l + 1]!.inputNorm : this.#norm;
      ({ h, x } = this.#layers[l]!.forward(h, x, ctx, next));
    }
    h.dispose();
    using _x = x;
    if (rowIds.length === 0) return { logits: Tensor.empty([0, c.vocabSize], { device: this.device }) as Tensor<'f32'>, rows };
    if (rowIds.length === T && rowIds.every((r, i) => r === i)) return { logits: this.#lmHead.forward(x), rows };
    using picked = embedding(x, Int32Array.from(rowIds), { dtype: 'f32' });
    return { logits: this.#lmHead.forward(picked), rows };
  }

  /** Releases every weight (idempotent); later calls throw ERR_DISPOSED. */
  dispose(): void {
    if (!this.#embed) return;
    this.#embed.dispose();
    this.#embed = null;
    for (const l of this.#layers) l.dispose();
    this.#layers = [];
    this.#norm.dispose();
    this.#lmHead.dispose();
    this.#rope.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
