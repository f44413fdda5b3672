/**
 * Hugging Face `config.json` of Llama-family decoders (llama, mistral, qwen2) to a validated, camelCase
 * {@link LlamaConfig}, and the RoPE inverse frequencies the config implies ({@link ropeInvFreq}).
 *
 * The fields read, their checks and defaults (the defaults are transformers' `LlamaConfig` / `MistralConfig` /
 * `Qwen2Config` ones):
 * - `model_type`: llama | mistral | qwen2, anything else `ERR_UNSUPPORTED`;
 * - `hidden_size`, `intermediate_size` (<= 2^20), `num_hidden_layers` (<= 1024), `num_attention_heads` (<= 2^16),
 *   `vocab_size` (<= 2^22): positive integers, required;
 * - `num_key_value_heads` (default num_attention_heads; must divide it), `head_dim` (default hidden_size /
 *   num_attention_heads, which must then divide exactly; must be even, RoPE rotates pairs);
 * - `rms_norm_eps` (default 1e-6), `rope_theta` (default 10000): finite and > 0;
 * - `rope_scaling` (or transformers v5's `rope_parameters`): null, `{rope_type|type: 'default'}`, `'linear'` with
 *   `factor`, `'llama3'` with `factor`, `low_freq_factor`, `high_freq_factor` (> low) and
 *   `original_max_position_embeddings`; other types (yarn, dynamic, longrope, …) `ERR_UNSUPPORTED`;
 * - `max_position_embeddings` (default 4096), `tie_word_embeddings` (default false);
 * - biases as transformers builds the layers: llama reads `attention_bias` (q, k, v and o) and `mlp_bias` (default
 *   false); mistral has none; qwen2 always has q/k/v biases (no o bias, no MLP bias) whatever the config says;
 * - `sliding_window`: mistral a positive integer or null (default 4096); qwen2 only when `use_sliding_window` is
 *   true, and then on the layers from `max_window_layers` (default 28) on: all layers or none are supported, a
 *   mix is `ERR_UNSUPPORTED`; llama none;
 * - `hidden_act`: 'silu' (or its alias 'swish'), anything else `ERR_UNSUPPORTED`;
 * - `bos_token_id` / `eos_token_id`: a non-negative integer, an array of them, or null;
 * - `torch_dtype` (or v5's `dtype`): a string or null;
 * - `quantization_config`: null, or GPTQ / AWQ with 4 bits and group_size > 0 or -1 (others `ERR_UNSUPPORTED`),
 *   surfaced with its original snake_case keys.
 * Every failure is a {@link LlmKernelsError} naming the file and the field: `ERR_MODEL_FORMAT` for a malformed value,
 * `ERR_UNSUPPORTED` for a well-formed one this library does not implement. Other keys are ignored.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { describe, expected } from '../validate.js';

/** Read-only, non-blocking: opening a FIFO must not wait for a writer (fstat then refuses it). */
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

/** The `model_type`s this library runs. */
export const LLAMA_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;
/** A supported `model_type`. */
export type LlamaModelType = (typeof LLAMA_MODEL_TYPES)[number];

/** RoPE scaling, after validation (null: plain RoPE). */
export type RopeScaling =
  | null
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/**
 * `quantization_config`, validated, with its original snake_case keys (extra keys such as `checkpoint_format`,
 * `damp_percent` or `modules_to_not_convert` kept as they were). `bits` and `group_size` are filled with
 * transformers' defaults (AWQ bits 4, group_size 128) when absent.
 */
export interface HfQuantizationConfig {
  readonly quant_method: 'gptq' | 'awq';
  /** Always 4 here: other widths are refused. */
  readonly bits: 4;
  /** A positive group size, or -1 (one group per column). */
  readonly group_size: number;
  readonly desc_act?: boolean;
  readonly sym?: boolean;
  readonly zero_point?: boolean;
  readonly version?: string;
  readonly checkpoint_format?: string;
  readonly [key: string]: unknown;
}

/** A validated Llama-family config. A frozen plain object. */
export interface LlamaConfig {
  readonly modelType: LlamaModelType;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  /** `num_hidden_layers`. */
  readonly numLayers: number;
  /** H, the query heads. */
  readonly numHeads: number;
  /** Hkv, the key/value heads; divides H. */
  readonly numKvHeads: number;
  /** D, the head dimension; even. */
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly vocabSize: number;
  readonly tieWordEmbeddings: boolean;
  /** Biases on the attention projections: q, k, v and o (llama); q, k and v only (qwen2, always). */
  readonly attentionBias: boolean;
  /** Biases on gate/up/down (llama only). */
  readonly mlpBias: boolean;
  /** The sliding attention window in tokens (on every layer), or null for full attention. */
  readonly slidingWindow: number | null;
  readonly bosTokenId: number | null;
  /** Every end-of-sequence id (`eos_token_id` may be one id or a list); empty when none. */
  readonly eosTokenIds: readonly number[];
  /** `torch_dtype` as written (e.g. 'bfloat16'), or null. */
  readonly torchDtype: string | null;
  readonly quantization: HfQuantizationConfig | null;
}

/** The largest config.json read. */
const MAX_CONFIG_BYTES = 1024 * 1024;

const ROPE_TYPES = ['default', 'linear', 'llama3'] as const;
const QUANT_METHODS = ['gptq', 'awq'] as const;

// ---------------------------------------------------------------------------------------------------------------
// Field readers: each takes the source (the file), the object, the key.

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Own property, or undefined (never reads Object.prototype). */
function own(o: Obj, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

/** Renders a value from the file for a message: never throws, never huge. */
function show(v: unknown): string {
  if (isObj(v)) return 'an object';
  try {
    return describe(v);
  } catch {
    return 'a value';
  }
}

function bad(source: string, what: string, field: string, got: unknown): LlmKernelsError {
  return new LlmKernelsError('ERR_MODEL_FORMAT', expected(source, what, field, show(got), true));
}

function unsupported(source: string, what: string, field: string, got: unknown, why = ''): LlmKernelsError {
  return new LlmKernelsError('ERR_UNSUPPORTED', expected(source, what, field, show(got), true) + why);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** A positive integer at most `max`; `def` when absent (undefined) or, if `nullIsAbsent`, null. */
function posInt(source: string, o: Obj, key: string, max: number, def?: number, nullIsAbsent = false, field = key): number {
  const v = own(o, key);
  if (v === undefined || (nullIsAbsent && v === null)) {
    if (def !== undefined) return def;
    throw bad(source, 'a positive integer', field, v);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(source, 'a positive integer', field, v);
  if (v > max) throw bad(source, `a positive integer of at most ${max}`, field, v);
  return v;
}

/** A finite number > 0; `def` when absent. */
function posFinite(source: string, o: Obj, key: string, def: number | undefined, field = key): number {
  const v = own(o, key);
  if (v === undefined && def !== undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(source, 'a finite number > 0', field, v);
  return v;
}

function bool(source: string, o: Obj, key: string, def: boolean, field = key): boolean {
  const v = own(o, key);
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw bad(source, 'true or false', field, v);
  return v;
}

/** A token id: a non-negative integer below 2^31. */
function tokenId(v: unknown): v is number {
  return isInt(v) && v >= 0 && v < 2 ** 31;
}

function tokenIds(source: string, o: Obj, key: string): number[] {
  const v = own(o, key);
  if (v === undefined || v === null) return [];
  if (tokenId(v)) return [v];
  if (Array.isArray(v) && v.length <= 1024 && v.every(tokenId)) return v.slice() as number[];
  throw bad(source, 'a token id (non-negative integer), an array of them, or null', key, v);
}

// ---------------------------------------------------------------------------------------------------------------

function parseRopeScaling(source: string, v: unknown, field: string): RopeScaling {
  if (v === undefined || v === null || v === 'default') return null;
  if (!isObj(v)) throw bad(source, "null or an object { rope_type, ... }", field, v);
  const rt = own(v, 'rope_type');
  const t = own(v, 'type');
  if (rt !== undefined && t !== undefined && rt !== t) throw bad(source, `the same value as ${field}.type (${show(t)})`, `${field}.rope_type`, rt);
  const type = rt ?? t ?? 'default';
  const tf = rt !== undefined ? `${field}.rope_type` : `${field}.type`;
  if (typeof type !== 'string') throw bad(source, `a RoPE type string (${ROPE_TYPES.join(', ')})`, tf, type);
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return Object.freeze({ type: 'linear' as const, factor: posFinite(source, v, 'factor', undefined, `${field}.factor`) });
    case 'llama3': {
      const factor = posFinite(source, v, 'factor', undefined, `${field}.factor`);
      const lowFreqFactor = posFinite(source, v, 'low_freq_factor', undefined, `${field}.low_freq_factor`);
      const highFreqFactor = posFinite(source, v, 'high_freq_factor', undefined, `${field}.high_freq_factor`);
      const originalMaxPositionEmbeddings = posInt(source, v, 'original_max_position_embeddings', 2 ** 30, undefined, false, `${field}.original_max_position_embeddings`);
      if (!(highFreqFactor > lowFreqFactor))
        throw bad(source, `a number > low_freq_factor (${lowFreqFactor})`, `${field}.high_freq_factor`, highFreqFactor);
      return Object.freeze({ type: 'llama3' as const, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings });
    }
    default:
      throw unsupported(source, `a supported RoPE type (${ROPE_TYPES.join(', ')})`, tf, type);
  }
}

function parseQuantization(source: string, v: unknown): HfQuantizationConfig | null {
  if (v === undefined || v === null) return null;
  const f = 'quantization_config';
  if (!isObj(v)) throw bad(source, 'null or an object { quant_method, bits, group_size, ... }', f, v);
  const method = own(v, 'quant_method');
  if (typeof method !== 'string') throw bad(source, `a quantization method string (${QUANT_METHODS.join(', ')})`, `${f}.quant_method`, method);
  if (!(QUANT_METHODS as readonly string[]).includes(method))
    throw unsupported(source, `a supported quantization method (${QUANT_METHODS.join(', ')})`, `${f}.quant_method`, method);
  const bitsRaw = own(v, 'bits');
  const bits = bitsRaw === undefined && method === 'awq' ? 4 : bitsRaw;
  if (!isInt(bits) || bits <= 0 || bits > 64) throw bad(source, 'a positive integer', `${f}.bits`, bits);
  if (bits !== 4) throw unsupported(source, '4 (only 4-bit checkpoints are supported)', `${f}.bits`, bits);
  const gsRaw = own(v, 'group_size');
  const gs = gsRaw === undefined ? 128 : gsRaw;
  if (!isInt(gs) || (gs <= 0 && gs !== -1) || gs > 2 ** 20) throw bad(source, 'a positive integer or -1', `${f}.group_size`, gs);
  for (const k of ['desc_act', 'sym', 'zero_point'] as const) {
    const x = own(v, k);
    if (x !== undefined && x !== null && typeof x !== 'boolean') throw bad(source, 'true, false or null', `${f}.${k}`, x);
  }
  for (const k of ['version', 'checkpoint_format'] as const) {
    const x = own(v, k);
    if (x !== undefined && x !== null && typeof x !== 'string') throw bad(source, 'a string or null', `${f}.${k}`, x);
  }
  return Object.freeze({ ...v, quant_method: method as 'gptq' | 'awq', bits: 4 as const, group_size: gs });
}

/** Sliding window as transformers applies it, or null; mixed per-layer windows are refused. */
function parseSlidingWindow(source: string, o: Obj, modelType: LlamaModelType, numLayers: number): number | null {
  const window = (def: number | null): number | null => {
    const v = own(o, 'sliding_window');
    if (v === undefined) return def;
    if (v === null) return null;
    if (!isInt(v) || v <= 0) throw bad(source, 'a positive integer or null', 'sliding_window', v);
    return v;
  };
  if (modelType === 'mistral') return window(4096);
  if (modelType === 'qwen2') {
    if (!bool(source, o, 'use_sliding_window', false)) return null;
    const w = window(4096);
    if (w === null) return null;
    const mwl = own(o, 'max_window_layers');
    const from = mwl === undefined ? 28 : mwl;
    if (!isInt(from) || from < 0) throw bad(source, 'a non-negative integer', 'max_window_layers', from);
    if (from >= numLayers) return null;
    if (from === 0) return w;
    throw unsupported(
      source,
      `0 or at least num_hidden_layers (${numLayers}) (a sliding window on all layers or none)`,
      'max_window_layers',
      from,
      ': a sliding window on only some layers is not supported',
    );
  }
  return null;
}

/**
 * Validates a parsed Hugging Face `config.json` of a llama / mistral / qwen2 model (see the file header for every
 * field, check and default).
 * @param json - the parsed JSON
 * @param source - names the file in error messages
 * @returns a frozen {@link LlamaConfig}
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` naming the field for a malformed value (e.g.
 *   `config.json: expected a positive integer for hidden_size, got -3`); `ERR_UNSUPPORTED` for a model type, RoPE
 *   type, activation, quantization or sliding-window layout this library does not run
 * @throws {TypeError} source is not a string
 * @example
 * const cfg = parseLlamaConfig(JSON.parse(readFileSync('config.json', 'utf8')));
 * cfg.numKvHeads; // 2
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof source !== 'string') throw typeError(expected('parseLlamaConfig', 'a string', 'source', source));
  if (!isObj(json)) throw bad(source, 'a JSON object', 'the config', json);
  const o = json;

  const mt = own(o, 'model_type');
  if (typeof mt !== 'string') throw bad(source, `a model type string (${LLAMA_MODEL_TYPES.join(', ')})`, 'model_type', mt);
  if (!(LLAMA_MODEL_TYPES as readonly string[]).includes(mt))
    throw unsupported(source, `a supported model type (${LLAMA_MODEL_TYPES.join(', ')})`, 'model_type', mt);
  const modelType = mt as LlamaModelType;

  const hiddenSize = posInt(source, o, 'hidden_size', 2 ** 20);
  const intermediateSize = posInt(source, o, 'intermediate_size', 2 ** 20);
  const numLayers = posInt(source, o, 'num_hidden_layers', 1024);
  const numHeads = posInt(source, o, 'num_attention_heads', 2 ** 16);
  const vocabSize = posInt(source, o, 'vocab_size', 2 ** 22);
  const numKvHeads = posInt(source, o, 'num_key_value_heads', numHeads, numHeads, true);
  if (numHeads % numKvHeads !== 0)
    throw bad(source, `a divisor of num_attention_heads (${numHeads})`, 'num_key_value_heads', numKvHeads);
  let headDim: number;
  const hd = own(o, 'head_dim');
  if (hd === undefined || hd === null) {
    if (hiddenSize % numHeads !== 0)
      throw bad(source, `a multiple of num_attention_heads (${numHeads}) when head_dim is absent`, 'hidden_size', hiddenSize);
    headDim = hiddenSize / numHeads;
  } else headDim = posInt(source, o, 'head_dim', 2 ** 16);
  if (headDim % 2 !== 0) throw bad(source, 'an even head dimension (RoPE rotates pairs)', hd === undefined || hd === null ? 'hidden_size / num_attention_heads' : 'head_dim', headDim);

  const rmsNormEps = posFinite(source, o, 'rms_norm_eps', 1e-6);
  // transformers v5 writes { rope_theta, rope_type, ... } as rope_parameters; older configs rope_theta + rope_scaling.
  const rp = own(o, 'rope_parameters');
  let ropeTheta: number;
  let ropeScaling: RopeScaling;
  if (rp !== undefined && rp !== null) {
    if (!isObj(rp)) throw bad(source, 'null or an object { rope_type, rope_theta, ... }', 'rope_parameters', rp);
    ropeTheta = own(rp, 'rope_theta') === undefined ? posFinite(source, o, 'rope_theta', 10000) : posFinite(source, rp, 'rope_theta', undefined, 'rope_parameters.rope_theta');
    ropeScaling = parseRopeScaling(source, rp, 'rope_parameters');
  } else {
    ropeTheta = posFinite(source, o, 'rope_theta', 10000);
    ropeScaling = parseRopeScaling(source, own(o, 'rope_scaling'), 'rope_scaling');
  }
  const maxPositionEmbeddings = posInt(source, o, 'max_position_embeddings', 2 ** 30, 4096);
  const tieWordEmbeddings = bool(source, o, 'tie_word_embeddings', false);
  // Validated for every model type; used as transformers builds the layers (see the file header).
  const attentionBiasCfg = bool(source, o, 'attention_bias', modelType === 'qwen2');
  const mlpBiasCfg = bool(source, o, 'mlp_bias', false);
  const attentionBias = modelType === 'llama' ? attentionBiasCfg : modelType === 'qwen2';
  const mlpBias = modelType === 'llama' ? mlpBiasCfg : false;
  const slidingWindow = parseSlidingWindow(source, o, modelType, numLayers);

  const act = own(o, 'hidden_act');
  if (act !== undefined && act !== 'silu' && act !== 'swish') {
    if (typeof act !== 'string') throw bad(source, "an activation name ('silu')", 'hidden_act', act);
    throw unsupported(source, "'silu' (the only activation supported)", 'hidden_act', act);
  }

  const bos = tokenIds(source, o, 'bos_token_id');
  const eosTokenIds = Object.freeze(tokenIds(source, o, 'eos_token_id'));
  const td = own(o, 'torch_dtype') ?? own(o, 'dtype');
  if (td !== undefined && td !== null && typeof td !== 'string') throw bad(source, 'a string or null', 'torch_dtype', td);
  const quantization = parseQuantization(source, own(o, 'quantization_config'));

  return Object.freeze({
    modelType,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    vocabSize,
    tieWordEmbeddings,
    attentionBias,
    mlpBias,
    slidingWindow,
    bosTokenId: bos.length > 0 ? bos[0]! : null,
    eosTokenIds,
    torchDtype: typeof td === 'string' ? td : null,
    quantization,
  });
}

/**
 * Reads and validates `<dir>/config.json` (see {@link parseLlamaConfig}).
 * @param dir - the model folder
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` with the path if the file is missing, unreadable, over 1 MiB, not
 *   UTF-8 JSON, or invalid; `ERR_UNSUPPORTED` as {@link parseLlamaConfig}
 * @throws {TypeError} dir is not a string
 * @example
 * const cfg = loadLlamaConfig('models/tiny-py'); // { modelType: 'llama', hiddenSize: 256, ... }
 */
export function loadLlamaConfig(dir: string): LlamaConfig {
  if (typeof dir !== 'string') throw typeError(expected('loadLlamaConfig', 'a folder path string', 'dir', dir));
  const path = join(dir, 'config.json');
  const fail = (what: string, got: string, cause?: unknown) =>
    new LlmKernelsError('ERR_MODEL_FORMAT', expected(path, what, 'the model config', got, true), cause === undefined ? undefined : { cause });
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw fail('a readable file', (e as NodeJS.ErrnoException).code ?? String(e), e);
  }
  let bytes: Uint8Array;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fail('a regular file', 'not a regular file');
    if (st.size > MAX_CONFIG_BYTES) throw fail(`at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`, `${st.size} bytes`);
    bytes = new Uint8Array(st.size);
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(fd, bytes, done, bytes.length - done, done);
      if (n === 0) break;
      done += n;
    }
    bytes = bytes.subarray(0, done);
  } catch (e) {
    if (e instanceof LlmKernelsError) throw e;
    throw fail('a readable file', (e as NodeJS.ErrnoException).code ?? String(e), e);
  } finally {
    closeSync(fd);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw fail('UTF-8 JSON', msg.length > 120 ? msg.slice(0, 120) + '…' : msg, e);
  }
  return parseLlamaConfig(json, path);
}

/**
 * The RoPE inverse frequencies `inv_freq[i]`, i < rotaryDim / 2, as Hugging Face transformers computes them in
 * float32 (`_compute_default_rope_parameters`, then linear or llama3 scaling). Each float32 operation of torch is
 * reproduced as a float64 operation rounded with `Math.fround` (exact for + - * /: a float64 result rounded once to
 * float32 is the correctly rounded float32 result), in torch's order:
 * - base: `e = f32(2i / dim)`, `p = f32(theta^e)`, `inv = f32(1 / p)` (torch computes `1.0 / t` as
 *   `reciprocal(t) * 1.0`, the same value). The power is the one step not reproduced exactly: we take the correctly
 *   rounded float32 power (float64 `Math.pow` rounded once), while torch's CPU float32 `pow` is SLEEF's vectorized
 *   powf (error bound 1 ulp) and numpy's is a SIMD powf that is up to 2 ulp off; so an element may differ from torch
 *   in its last bit or two, and every later step is then exact on that value;
 * - linear: `f32(inv / f32(factor))`;
 * - llama3: `wavelen = f32(f32(1 / inv) * f32(2π))` (`2π / t` is `reciprocal(t) * 2π` in torch); wavelen >
 *   low_freq_wavelen: `f32(inv / factor)`; wavelen < high_freq_wavelen: inv; otherwise with
 *   `smooth = f32(f32(f32(f32(1 / wavelen) * old) - low) / f32(high - low))`:
 *   `f32(f32(f32(f32(1 - smooth) * inv) / factor) + f32(smooth * inv))`, where old = original_max_position_embeddings,
 *   low_freq_wavelen = old / low_freq_factor, high_freq_wavelen = old / high_freq_factor (float64, then compared as
 *   float32, as torch compares a tensor with a Python float).
 * The angle of position p is `p * inv_freq[i]`, shared by dimensions i and i + rotaryDim / 2 (rotate_half).
 * @param cfg - a config from {@link parseLlamaConfig}
 * @param rotaryDim - the rotated dimensions per head, even (default: the head dimension)
 * @returns a Float32Array of rotaryDim / 2 frequencies
 * @throws {TypeError} cfg is not a config object, rotaryDim not a number
 * @throws {RangeError} rotaryDim is not a positive even integer of at most 65536, or cfg.ropeTheta not finite > 0
 * @example
 * ropeInvFreq(loadLlamaConfig('models/tiny-py')); // Float32Array(32) [1, 0.749894..., ...]
 */
export function ropeInvFreq(cfg: LlamaConfig, rotaryDim: number = cfg?.headDim): Float32Array {
  const fn = 'ropeInvFreq';
  if (!isObj(cfg)) throw typeError(expected(fn, 'a LlamaConfig', 'cfg', cfg));
  if (typeof rotaryDim !== 'number') throw typeError(expected(fn, 'an integer', 'rotaryDim', rotaryDim));
  if (!Number.isInteger(rotaryDim) || rotaryDim <= 0 || rotaryDim % 2 !== 0 || rotaryDim > 65536)
    throw rangeError(expected(fn, 'a positive even integer of at most 65536', 'rotaryDim', rotaryDim));
  const theta = cfg.ropeTheta;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) throw rangeError(expected(fn, 'a finite number > 0', 'cfg.ropeTheta', theta));
  const f = Math.fround;
  const half = rotaryDim / 2;
  const out = new Float32Array(half);
  const base = f(theta);
  for (let i = 0; i < half; i++) out[i] = f(1 / f(Math.pow(base, f((2 * i) / rotaryDim))));

  const s = cfg.ropeScaling;
  if (s === null || s === undefined) return out;
  if (s.type === 'linear') {
    const factor = f(s.factor);
    for (let i = 0; i < half; i++) out[i] = f(out[i]! / factor);
    return out;
  }
  if (s.type === 'llama3') {
    const factor = f(s.factor);
    const old = s.originalMaxPositionEmbeddings;
    const low = s.lowFreqFactor;
    const high = s.highFreqFactor;
    const lowWavelen = f(old / low);
    const highWavelen = f(old / high);
    const twoPi = f(2 * Math.PI);
    const old32 = f(old);
    const low32 = f(low);
    const span = f(high - low);
    for (let i = 0; i < half; i++) {
      const inv = out[i]!;
      const wavelen = f(f(1 / inv) * twoPi);
      if (wavelen > lowWavelen) out[i] = f(inv / factor);
      else if (!(wavelen < highWavelen)) {
        const smooth = f(f(f(f(1 / wavelen) * old32) - low32) / span);
        out[i] = f(f(f(f(1 - smooth) * inv) / factor) + f(smooth * inv));
      }
    }
    return out;
  }
  throw rangeError(expected(fn, "a ropeScaling of null, 'linear' or 'llama3'", 'cfg.ropeScaling.type', (s as { type?: unknown }).type));
}
