// Hugging Face config.json -> LlamaConfig: (1) the tiny-py config and realistic llama / mistral / qwen2 / Llama 3.1 /
// GPTQ / AWQ configs parse to the expected values, with transformers' defaults; (2) a table of bad configs, one per
// field and failure, each refused with the right code and a message naming the field; (3) loadLlamaConfig's file
// errors; (4) ropeInvFreq against float32 references computed with numpy in torch's order of operations; (5) fuzzing
// with fast-check: anything either parses to a consistent config or throws LlmKernelsError.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { LlmKernelsError } from '../../lib/errors.js';
import { loadLlamaConfig, parseLlamaConfig, ropeInvFreq, type LlamaConfig } from '../../lib/io/hf-config.js';
import { tempDir } from './fixtures-safetensors.js';

const MODEL_DIR = join(import.meta.dirname, '..', '..', 'models', 'tiny-py');
const TINY = JSON.parse(readFileSync(join(MODEL_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const tmp = tempDir('lk-hf-config-');
afterAll(() => tmp.cleanup());

function catchLk(body: () => unknown): LlmKernelsError {
  let err: unknown = null;
  try {
    body();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a throw').toBeInstanceOf(LlmKernelsError);
  return err as LlmKernelsError;
}

/** The tiny-py config with keys replaced (undefined deletes a key). */
function tiny(patch: Record<string, unknown> = {}): Record<string, unknown> {
  const o: Record<string, unknown> = { ...TINY, ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete o[k];
  return o;
}

const MINIMAL = { model_type: 'llama', hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2, num_attention_heads: 8, vocab_size: 1000 };

const LLAMA31_8B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.43.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

describe('parseLlamaConfig: valid configs', () => {
  it('the tiny-py config.json (loadLlamaConfig and parseLlamaConfig agree)', () => {
    const want: LlamaConfig = {
      modelType: 'llama',
      hiddenSize: 256,
      intermediateSize: 768,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      maxPositionEmbeddings: 1024,
      vocabSize: 320,
      tieWordEmbeddings: false,
      attentionBias: false,
      mlpBias: false,
      slidingWindow: null,
      bosTokenId: 1,
      eosTokenIds: [2],
      torchDtype: 'bfloat16',
      quantization: null,
    };
    const cfg = loadLlamaConfig(MODEL_DIR);
    expect(cfg).toEqual(want);
    expect(parseLlamaConfig(TINY)).toEqual(want);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.eosTokenIds)).toBe(true);
  });

  it("transformers' defaults for a minimal llama config", () => {
    expect(parseLlamaConfig(MINIMAL)).toEqual({
      modelType: 'llama',
      hiddenSize: 512,
      intermediateSize: 1024,
      numLayers: 2,
      numHeads: 8,
      numKvHeads: 8,
      headDim: 64,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      ropeScaling: null,
      maxPositionEmbeddings: 4096,
      vocabSize: 1000,
      tieWordEmbeddings: false,
      attentionBias: false,
      mlpBias: false,
      slidingWindow: null,
      bosTokenId: null,
      eosTokenIds: [],
      torchDtype: null,
      quantization: null,
    });
    // null means "the default" for the optional fields.
    expect(parseLlamaConfig({ ...MINIMAL, num_key_value_heads: null, head_dim: null, rope_scaling: null, bos_token_id: null, eos_token_id: null, torch_dtype: null, quantization_config: null })).toEqual(
      parseLlamaConfig(MINIMAL),
    );
  });

  it('Llama 3.1 8B: llama3 RoPE scaling, a list of EOS ids, GQA', () => {
    const c = parseLlamaConfig(LLAMA31_8B);
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(c.bosTokenId).toBe(128000);
    expect([c.numHeads, c.numKvHeads, c.headDim, c.ropeTheta, c.maxPositionEmbeddings]).toEqual([32, 8, 128, 500000, 131072]);
  });

  it('explicit head_dim that is not hidden_size / heads; attention and MLP biases; tied embeddings', () => {
    const c = parseLlamaConfig({ ...MINIMAL, head_dim: 128, attention_bias: true, mlp_bias: true, tie_word_embeddings: true, hidden_act: 'swish' });
    expect([c.headDim, c.attentionBias, c.mlpBias, c.tieWordEmbeddings]).toEqual([128, true, true, true]);
  });

  it('mistral: sliding_window default 4096, null, explicit; no biases whatever the config says', () => {
    const m = { ...MINIMAL, model_type: 'mistral' };
    expect(parseLlamaConfig(m).slidingWindow).toBe(4096);
    expect(parseLlamaConfig({ ...m, sliding_window: null }).slidingWindow).toBe(null);
    expect(parseLlamaConfig({ ...m, sliding_window: 32768 }).slidingWindow).toBe(32768);
    const b = parseLlamaConfig({ ...m, attention_bias: true, mlp_bias: true });
    expect([b.modelType, b.attentionBias, b.mlpBias]).toEqual(['mistral', false, false]);
  });

  it('qwen2: q/k/v biases always; sliding window only with use_sliding_window, on all layers or none', () => {
    const q = { ...MINIMAL, model_type: 'qwen2', sliding_window: 131072, max_window_layers: 28, use_sliding_window: false };
    expect(parseLlamaConfig(q)).toMatchObject({ modelType: 'qwen2', attentionBias: true, mlpBias: false, slidingWindow: null });
    expect(parseLlamaConfig({ ...q, attention_bias: false }).attentionBias).toBe(true);
    // max_window_layers (28) >= num_hidden_layers (2): no layer slides.
    expect(parseLlamaConfig({ ...q, use_sliding_window: true }).slidingWindow).toBe(null);
    expect(parseLlamaConfig({ ...q, use_sliding_window: true, max_window_layers: 0 }).slidingWindow).toBe(131072);
    expect(parseLlamaConfig({ ...q, use_sliding_window: true, max_window_layers: 0, sliding_window: undefined }).slidingWindow).toBe(4096);
  });

  it('rope_scaling forms: type alias, default, linear; transformers v5 rope_parameters', () => {
    expect(parseLlamaConfig({ ...MINIMAL, rope_scaling: { type: 'linear', factor: 2.0 } }).ropeScaling).toEqual({ type: 'linear', factor: 2 });
    expect(parseLlamaConfig({ ...MINIMAL, rope_scaling: { rope_type: 'linear', type: 'linear', factor: 4 } }).ropeScaling).toEqual({ type: 'linear', factor: 4 });
    expect(parseLlamaConfig({ ...MINIMAL, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBe(null);
    expect(parseLlamaConfig({ ...MINIMAL, rope_scaling: 'default' }).ropeScaling).toBe(null);
    const v5 = parseLlamaConfig({ ...MINIMAL, rope_parameters: { rope_type: 'default', rope_theta: 1000000.0 } });
    expect([v5.ropeTheta, v5.ropeScaling]).toEqual([1000000, null]);
    const v5l3 = parseLlamaConfig({ ...MINIMAL, rope_theta: 500000, rope_parameters: { ...LLAMA31_8B.rope_scaling } });
    expect(v5l3.ropeTheta).toBe(500000);
    expect(v5l3.ropeScaling).toMatchObject({ type: 'llama3', factor: 8 });
  });

  it('GPTQ and AWQ quantization_config surfaced with their keys', () => {
    const gptq = { bits: 4, group_size: 128, damp_percent: 0.01, desc_act: false, sym: true, true_sequential: true, quant_method: 'gptq', checkpoint_format: 'gptq' };
    expect(parseLlamaConfig({ ...MINIMAL, quantization_config: gptq }).quantization).toEqual(gptq);
    const awq = { quant_method: 'awq', zero_point: true, version: 'gemm', group_size: 128, modules_to_not_convert: null };
    const q = parseLlamaConfig({ ...MINIMAL, quantization_config: awq }).quantization!;
    expect(q).toEqual({ ...awq, bits: 4 });
    expect(Object.isFrozen(q)).toBe(true);
    expect(parseLlamaConfig({ ...MINIMAL, quantization_config: { ...gptq, group_size: -1 } }).quantization!.group_size).toBe(-1);
  });

  it('token ids: a one-element bos list, an empty eos list; unknown keys are ignored', () => {
    const c = parseLlamaConfig({ ...MINIMAL, bos_token_id: [7], eos_token_id: [], whatever: { deep: [1, 2] }, pad_token_id: -1 });
    expect([c.bosTokenId, c.eosTokenIds]).toEqual([7, []]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface BadConfig {
  name: string;
  json: () => unknown;
  code?: 'ERR_MODEL_FORMAT' | 'ERR_UNSUPPORTED';
  /** Must match the message after `config.json: expected `. */
  message: RegExp;
}

const mistral = (p: Record<string, unknown>) => tiny({ model_type: 'mistral', ...p });
const qwen2 = (p: Record<string, unknown>) => tiny({ model_type: 'qwen2', ...p });
const l3 = (p: Record<string, unknown>) => tiny({ rope_scaling: { ...LLAMA31_8B.rope_scaling, ...p } });
const quant = (p: Record<string, unknown>) => tiny({ quantization_config: { bits: 4, group_size: 128, quant_method: 'gptq', ...p } });

const BAD_CONFIGS: BadConfig[] = [
  { name: 'a JSON array', json: () => [], message: /^a JSON object for the config, got \[\]$/ },
  { name: 'null', json: () => null, message: /^a JSON object for the config, got null$/ },
  { name: 'a string', json: () => 'llama', message: /for the config, got "llama"$/ },
  { name: 'model_type missing', json: () => tiny({ model_type: undefined }), message: /^a model type string \(llama, mistral, qwen2\) for model_type, got undefined$/ },
  { name: 'model_type a number', json: () => tiny({ model_type: 1 }), message: /for model_type, got 1$/ },
  { name: 'model_type gpt2', json: () => tiny({ model_type: 'gpt2' }), code: 'ERR_UNSUPPORTED', message: /^a supported model type \(llama, mistral, qwen2\) for model_type, got "gpt2"$/ },
  { name: 'model_type mixtral', json: () => tiny({ model_type: 'mixtral' }), code: 'ERR_UNSUPPORTED', message: /for model_type, got "mixtral"$/ },
  { name: 'hidden_size -3', json: () => tiny({ hidden_size: -3 }), message: /^a positive integer for hidden_size, got -3$/ },
  { name: 'hidden_size 0', json: () => tiny({ hidden_size: 0 }), message: /^a positive integer for hidden_size, got 0$/ },
  { name: 'hidden_size fractional', json: () => tiny({ hidden_size: 256.5 }), message: /for hidden_size, got 256\.5$/ },
  { name: 'hidden_size a string', json: () => tiny({ hidden_size: '256' }), message: /for hidden_size, got "256"$/ },
  { name: 'hidden_size NaN', json: () => tiny({ hidden_size: NaN }), message: /for hidden_size, got NaN$/ },
  { name: 'hidden_size 2^21', json: () => tiny({ hidden_size: 2 ** 21 }), message: /^a positive integer of at most 1048576 for hidden_size, got 2097152$/ },
  { name: 'hidden_size missing', json: () => tiny({ hidden_size: undefined }), message: /^a positive integer for hidden_size, got undefined$/ },
  { name: 'intermediate_size null', json: () => tiny({ intermediate_size: null }), message: /for intermediate_size, got null$/ },
  { name: 'intermediate_size huge', json: () => tiny({ intermediate_size: 1e300 }), message: /at most 1048576 for intermediate_size/ },
  { name: 'num_hidden_layers 2000', json: () => tiny({ num_hidden_layers: 2000 }), message: /^a positive integer of at most 1024 for num_hidden_layers, got 2000$/ },
  { name: 'num_hidden_layers 0', json: () => tiny({ num_hidden_layers: 0 }), message: /for num_hidden_layers, got 0$/ },
  { name: 'num_attention_heads -1', json: () => tiny({ num_attention_heads: -1 }), message: /for num_attention_heads, got -1$/ },
  { name: 'vocab_size 2^23', json: () => tiny({ vocab_size: 2 ** 23 }), message: /at most 4194304 for vocab_size, got 8388608$/ },
  { name: 'vocab_size missing', json: () => tiny({ vocab_size: undefined }), message: /for vocab_size, got undefined$/ },
  { name: 'num_key_value_heads 3 (does not divide 4)', json: () => tiny({ num_key_value_heads: 3 }), message: /^a divisor of num_attention_heads \(4\) for num_key_value_heads, got 3$/ },
  { name: 'num_key_value_heads 8 > heads', json: () => tiny({ num_key_value_heads: 8 }), message: /^a positive integer of at most 4 for num_key_value_heads, got 8$/ },
  { name: 'num_key_value_heads 0', json: () => tiny({ num_key_value_heads: 0 }), message: /for num_key_value_heads, got 0$/ },
  { name: 'no head_dim and hidden_size not a multiple of heads', json: () => tiny({ head_dim: undefined, hidden_size: 250 }), message: /^a multiple of num_attention_heads \(4\) when head_dim is absent for hidden_size, got 250$/ },
  { name: 'no head_dim and an odd hidden_size / heads', json: () => tiny({ head_dim: undefined, hidden_size: 252 }), message: /^an even head dimension \(RoPE rotates pairs\) for hidden_size \/ num_attention_heads, got 63$/ },
  { name: 'head_dim odd', json: () => tiny({ head_dim: 63 }), message: /^an even head dimension .* for head_dim, got 63$/ },
  { name: 'head_dim negative', json: () => tiny({ head_dim: -64 }), message: /^a positive integer for head_dim, got -64$/ },
  { name: 'rms_norm_eps 0', json: () => tiny({ rms_norm_eps: 0 }), message: /^a finite number > 0 for rms_norm_eps, got 0$/ },
  { name: 'rms_norm_eps negative', json: () => tiny({ rms_norm_eps: -1e-5 }), message: /for rms_norm_eps, got -0\.00001$/ },
  { name: 'rms_norm_eps a string', json: () => tiny({ rms_norm_eps: '1e-5' }), message: /for rms_norm_eps, got "1e-5"$/ },
  { name: 'rope_theta 0', json: () => tiny({ rope_theta: 0 }), message: /^a finite number > 0 for rope_theta, got 0$/ },
  { name: 'rope_theta Infinity', json: () => tiny({ rope_theta: Infinity }), message: /for rope_theta, got Infinity$/ },
  { name: 'rope_theta null', json: () => tiny({ rope_theta: null }), message: /for rope_theta, got null$/ },
  { name: 'rope_scaling a string', json: () => tiny({ rope_scaling: 'linear' }), message: /^null or an object \{ rope_type, \.\.\. \} for rope_scaling, got "linear"$/ },
  { name: 'rope_scaling an array', json: () => tiny({ rope_scaling: [8] }), message: /for rope_scaling, got \[8\]$/ },
  { name: 'rope_scaling linear without factor', json: () => tiny({ rope_scaling: { type: 'linear' } }), message: /^a finite number > 0 for rope_scaling\.factor, got undefined$/ },
  { name: 'rope_scaling linear factor -2', json: () => tiny({ rope_scaling: { rope_type: 'linear', factor: -2 } }), message: /for rope_scaling\.factor, got -2$/ },
  { name: 'rope_scaling yarn', json: () => tiny({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }), code: 'ERR_UNSUPPORTED', message: /^a supported RoPE type \(default, linear, llama3\) for rope_scaling\.rope_type, got "yarn"$/ },
  { name: 'rope_scaling dynamic (type)', json: () => tiny({ rope_scaling: { type: 'dynamic', factor: 2 } }), code: 'ERR_UNSUPPORTED', message: /for rope_scaling\.type, got "dynamic"$/ },
  { name: 'rope_scaling longrope', json: () => tiny({ rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [2] } }), code: 'ERR_UNSUPPORTED', message: /got "longrope"$/ },
  { name: 'rope_scaling rope_type a number', json: () => tiny({ rope_scaling: { rope_type: 3 } }), message: /^a RoPE type string .* for rope_scaling\.rope_type, got 3$/ },
  { name: 'rope_scaling rope_type and type differ', json: () => tiny({ rope_scaling: { rope_type: 'linear', type: 'dynamic', factor: 2 } }), message: /^the same value as rope_scaling\.type \("dynamic"\) for rope_scaling\.rope_type, got "linear"$/ },
  { name: 'llama3 high_freq_factor <= low_freq_factor', json: () => l3({ high_freq_factor: 1 }), message: /^a number > low_freq_factor \(1\) for rope_scaling\.high_freq_factor, got 1$/ },
  { name: 'llama3 without original_max_position_embeddings', json: () => l3({ original_max_position_embeddings: undefined }), message: /for rope_scaling\.original_max_position_embeddings, got undefined$/ },
  { name: 'llama3 original_max_position_embeddings fractional', json: () => l3({ original_max_position_embeddings: 8192.5 }), message: /for rope_scaling\.original_max_position_embeddings, got 8192\.5$/ },
  { name: 'llama3 low_freq_factor 0', json: () => l3({ low_freq_factor: 0 }), message: /for rope_scaling\.low_freq_factor, got 0$/ },
  { name: 'llama3 factor missing', json: () => tiny({ rope_scaling: { rope_type: 'llama3', low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }), message: /for rope_scaling\.factor, got undefined$/ },
  { name: 'rope_parameters a string', json: () => tiny({ rope_parameters: 'default' }), message: /for rope_parameters, got "default"$/ },
  { name: 'rope_parameters.rope_theta -1', json: () => tiny({ rope_parameters: { rope_type: 'default', rope_theta: -1 } }), message: /for rope_parameters\.rope_theta, got -1$/ },
  { name: 'max_position_embeddings 0', json: () => tiny({ max_position_embeddings: 0 }), message: /for max_position_embeddings, got 0$/ },
  { name: 'max_position_embeddings 1.5', json: () => tiny({ max_position_embeddings: 1.5 }), message: /for max_position_embeddings, got 1\.5$/ },
  { name: 'tie_word_embeddings "false"', json: () => tiny({ tie_word_embeddings: 'false' }), message: /^true or false for tie_word_embeddings, got "false"$/ },
  { name: 'tie_word_embeddings 0', json: () => tiny({ tie_word_embeddings: 0 }), message: /for tie_word_embeddings, got 0$/ },
  { name: 'attention_bias "no"', json: () => tiny({ attention_bias: 'no' }), message: /^true or false for attention_bias, got "no"$/ },
  { name: 'mlp_bias 1', json: () => tiny({ mlp_bias: 1 }), message: /^true or false for mlp_bias, got 1$/ },
  { name: 'mistral sliding_window 0', json: () => mistral({ sliding_window: 0 }), message: /^a positive integer or null for sliding_window, got 0$/ },
  { name: 'mistral sliding_window a string', json: () => mistral({ sliding_window: '4096' }), message: /for sliding_window, got "4096"$/ },
  { name: 'qwen2 use_sliding_window "yes"', json: () => qwen2({ use_sliding_window: 'yes' }), message: /^true or false for use_sliding_window, got "yes"$/ },
  { name: 'qwen2 sliding window on some layers only', json: () => qwen2({ use_sliding_window: true, sliding_window: 4096, max_window_layers: 2 }), code: 'ERR_UNSUPPORTED', message: /for max_window_layers, got 2: a sliding window on only some layers is not supported$/ },
  { name: 'qwen2 max_window_layers -1', json: () => qwen2({ use_sliding_window: true, max_window_layers: -1 }), message: /^a non-negative integer for max_window_layers, got -1$/ },
  { name: 'hidden_act gelu', json: () => tiny({ hidden_act: 'gelu' }), code: 'ERR_UNSUPPORTED', message: /^'silu' \(the only activation supported\) for hidden_act, got "gelu"$/ },
  { name: 'hidden_act a number', json: () => tiny({ hidden_act: 5 }), message: /for hidden_act, got 5$/ },
  { name: 'bos_token_id -1', json: () => tiny({ bos_token_id: -1 }), message: /^a token id \(non-negative integer\), an array of them, or null for bos_token_id, got -1$/ },
  { name: 'bos_token_id 1.5', json: () => tiny({ bos_token_id: 1.5 }), message: /for bos_token_id, got 1\.5$/ },
  { name: 'eos_token_id ["2"]', json: () => tiny({ eos_token_id: ['2'] }), message: /for eos_token_id, got \["2"\]$/ },
  { name: 'eos_token_id an object', json: () => tiny({ eos_token_id: { id: 2 } }), message: /for eos_token_id, got an object$/ },
  { name: 'torch_dtype a number', json: () => tiny({ torch_dtype: 16 }), message: /^a string or null for torch_dtype, got 16$/ },
  { name: 'quantization_config a string', json: () => tiny({ quantization_config: 'gptq' }), message: /for quantization_config, got "gptq"$/ },
  { name: 'quant_method bitsandbytes', json: () => quant({ quant_method: 'bitsandbytes' }), code: 'ERR_UNSUPPORTED', message: /^a supported quantization method \(gptq, awq\) for quantization_config\.quant_method, got "bitsandbytes"$/ },
  { name: 'quant_method missing', json: () => quant({ quant_method: undefined }), message: /for quantization_config\.quant_method, got undefined$/ },
  { name: 'bits 8', json: () => quant({ bits: 8 }), code: 'ERR_UNSUPPORTED', message: /^4 \(only 4-bit checkpoints are supported\) for quantization_config\.bits, got 8$/ },
  { name: 'bits "4"', json: () => quant({ bits: '4' }), message: /^a positive integer for quantization_config\.bits, got "4"$/ },
  { name: 'gptq bits missing', json: () => quant({ bits: undefined }), message: /for quantization_config\.bits, got undefined$/ },
  { name: 'group_size 0', json: () => quant({ group_size: 0 }), message: /^a positive integer or -1 for quantization_config\.group_size, got 0$/ },
  { name: 'group_size -2', json: () => quant({ group_size: -2 }), message: /for quantization_config\.group_size, got -2$/ },
  { name: 'desc_act "no"', json: () => quant({ desc_act: 'no' }), message: /^true, false or null for quantization_config\.desc_act, got "no"$/ },
  { name: 'version 2', json: () => quant({ quant_method: 'awq', version: 2 }), message: /^a string or null for quantization_config\.version, got 2$/ },
];

describe(`parseLlamaConfig: bad configs (${BAD_CONFIGS.length})`, () => {
  it.each(BAD_CONFIGS.map((c, i) => [c.name, i] as const))('%s', (_name, i) => {
    const c = BAD_CONFIGS[i]!;
    const e = catchLk(() => parseLlamaConfig(c.json()));
    expect(e.code).toBe(c.code ?? 'ERR_MODEL_FORMAT');
    expect(e.message.startsWith('config.json: expected ')).toBe(true);
    expect(e.message.slice('config.json: expected '.length)).toMatch(c.message);
  });

  it('the source names the file; a non-string source is a TypeError', () => {
    expect(catchLk(() => parseLlamaConfig({}, '/m/config.json')).message).toMatch(/^\/m\/config\.json: expected a model type string/);
    expect(() => parseLlamaConfig(TINY, 5 as never)).toThrow(TypeError);
  });
});

describe('loadLlamaConfig: file errors', () => {
  it('missing, too large, not JSON, not UTF-8, a folder, invalid content', () => {
    const dir = (name: string) => {
      const d = join(tmp.dir, name);
      mkdirSync(d, { recursive: true });
      return d;
    };
    const none = dir('none');
    let e = catchLk(() => loadLlamaConfig(none));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toBe(`${join(none, 'config.json')}: expected a readable file for the model config, got ENOENT`);

    tmp.write('big/config.json', JSON.stringify(TINY) + ' '.repeat(1024 * 1024));
    e = catchLk(() => loadLlamaConfig(join(tmp.dir, 'big')));
    expect(e.message).toMatch(/big\/config\.json: expected at most 1048576 bytes \(1 MiB\) for the model config, got \d+ bytes$/);

    tmp.write('json/config.json', '{"model_type": "llama",');
    e = catchLk(() => loadLlamaConfig(join(tmp.dir, 'json')));
    expect(e.message).toMatch(/json\/config\.json: expected UTF-8 JSON for the model config, got /);

    tmp.write('utf8/config.json', Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]));
    expect(catchLk(() => loadLlamaConfig(join(tmp.dir, 'utf8'))).message).toMatch(/expected UTF-8 JSON/);

    mkdirSync(join(dir('folder'), 'config.json'));
    e = catchLk(() => loadLlamaConfig(join(tmp.dir, 'folder')));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toMatch(/folder\/config\.json: expected a (regular|readable) file for the model config/);

    tmp.write('bad/config.json', JSON.stringify(tiny({ hidden_size: -3 })));
    e = catchLk(() => loadLlamaConfig(join(tmp.dir, 'bad')));
    expect(e.message).toBe(`${join(tmp.dir, 'bad', 'config.json')}: expected a positive integer for hidden_size, got -3`);

    expect(() => loadLlamaConfig(1 as never)).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

// float32 bit patterns of inv_freq, computed with numpy float32 arithmetic in the order of transformers'
// _compute_default_rope_parameters / linear / _compute_llama3_parameters (including torch's `s / t` =
// `reciprocal(t) * s`), with the power correctly rounded to float32 (float64 pow, rounded once).
const REF: Record<string, string> = {
  default_10000_64:
    '3f800000 3f3ff911 3f0ff59a 3ed7e89b 3ea1e89b 3e72d423 3e361887 3e088d77 3dcccccd 3d99940d 3d6655c2 3d2cba15 3d0186e3 3cc2434f 3c91ad39 3c5a7bf2 3c23d70a 3bf5b9b0 3bb8449c 3b8a2e77 3b4f3e38 3b1b690d 3ae91528 3aaec98e 3a83126f 3a44948c 3a136a16 39dd1725 39a5cb60 3978a815 393a7753 390bd472',
  default_500000_128:
    '3f800000 3f508ac1 3f29e1c6 3f0a6384 3ee177bc 3eb7ab7d 3e959ee3 3e73c461 3e4693b0 3e21c3a0 3e03c6a0 3dd6b19c 3daee4ad 3d8e7898 3d681e67 3d3d1684 3d1a08c8 3cfaf53f 3ccc6f49 3ca68939 3c87a9c3 3c5d06ec 3c340d6d 3c12ac7f 3beef74f 3bc2aa76 3b9e9402 3b812e35 3b527720 3b2b72dc 3b0baa41 3ae38c10 3ab95d21 3a970023 3a7603ea 3a486886 3a23418d 3a04fdbf 39d8ac81 39b08199 398fc8f8 396a426f 393ed4f4 391b7475 38fd45c3 38ce51f5 38a8126b 3888ea0f 385f10c4 3835b687 381406cb 37f12b80 37c47610 37a00a69 37825f34 37546808 372d07a7 370cf400 36e5a54d 36bb12c7 369864a7 367848c2 364a41b0 3624c2ff',
  default_1000000_128:
    '3f800000 3f4e4bad 3f263de0 3f05f6ef 3ed7e89b 3eadfcff 3e8c3504 3e61f835 3e361887 3e12bd91 3dec7fd6 3dbe94c6 3d99940d 3d778513 3d47763f 3d20bc1d 3d0186e3 3cd0c1a8 3ca8398b 3c879008 3c5a7bf2 3c301052 3c0de12d 3be4aa46 3bb8449c 3b947dae 3b6f520e 3b40dac5 3b1b690d 3afa78f0 3ac9d75c 3aa2a6f7 3a83126f 3a533f28 3a2a3b44 3a092e02 39dd1725 39b229fa 398f9272 39676492 393a7753 39164324 38f22ce2 38c327b5 389d43a4 387d75d4 384c3fbe 382497ab 3804a2b2 37d5c441 37ac431d 378ad0ed 375fba4f 37344a0e 371148e3 36ea2732 36bcb0c1 36980e02 36751070 36457bab 361f23e4 36003dec 35ceaf79 35a68e4c',
  linear_10000_128_4:
    '3e800000 3e5dafd7 3e3ff911 3e263de0 3e0ff59a 3df953cf 3dd7e89b 3dbaf81b 3da1e89b 3d8c3504 3d72d423 3d5247ed 3d361887 3d1db040 3d088d77 3cec7fd6 3ccccccd 3cb15978 3c99940d 3c84fe4d 3c6655c2 3c47763f 3c2cba15 3c159348 3c0186e3 3be054d2 3bc2434f 3ba8398b 3b91ad39 3b7c4d33 3b5a7bf2 3b3d3311 3b23d70a 3b0de12d 3af5b9b0 3ad4ca15 3ab8449c 3a9f91cc 3a8a2e77 3a6f520e 3a4f3e38 3a33770f 3a1b690d 3a06946f 39e91528 39c9d75c 39aec98e 39975c0e 3983126f 396301e2 3944948c 392a3b44 39136a16 38ff4fac 38dd1725 38bf74d7 38a5cb60 388f9272 3878a815 385753e4 383a7753 38217916 380bd472 37f22ce2',
  llama3_500000_128_8_1_4_8192:
    '3f800000 3f508ac1 3f29e1c6 3f0a6384 3ee177bc 3eb7ab7d 3e959ee3 3e73c461 3e4693b0 3e21c3a0 3e03c6a0 3dd6b19c 3daee4ad 3d8e7898 3d681e67 3d3d1684 3d1a08c8 3cfaf53f 3ccc6f49 3ca68939 3c87a9c3 3c5d06ec 3c340d6d 3c12ac7f 3beef74f 3bc2aa76 3b9e9402 3b812e35 3b527720 3b0dfd06 3ab3d11d 3a60979e 3a0995d2 39a3f108 393b2dd2 38c86886 38a3418d 3884fdbf 3858ac81 38308199 380fc8f8 37ea426f 37bed4f4 379b7475 377d45c3 374e51f5 3728126b 3708ea0f 36df10c4 36b5b687 369406cb 36712b80 36447610 36200a69 36025f34 35d46808 35ad07a7 358cf400 3565a54d 353b12c7 351864a7 34f848c2 34ca41b0 34a4c2ff',
  llama3_500000_64_32_1_4_8192:
    '3f800000 3f29e1c6 3ee177bc 3e959ee3 3e4693b0 3e03c6a0 3daee4ad 3d681e67 3d1a08c8 3ccc6f49 3c87a9c3 3c340d6d 3beef74f 3b9e9402 3b527720 3aa9279b 39e13620 38cb98f7 37a3418d 3758ac81 370fc8f8 36bed4f4 367d45c3 3628126b 35df10c4 359406cb 35447610 35025f34 34ad07a7 3465a54d 341864a7 33ca41b0',
};

function bits(a: Float32Array): string {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)].map((x) => x.toString(16).padStart(8, '0')).join(' ');
}

describe('ropeInvFreq', () => {
  const big = { ...MINIMAL, hidden_size: 4096, num_attention_heads: 32 };
  const l3s = (factor: number) => ({ rope_type: 'llama3', factor, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });

  it('bit-exact against the float32 references (default, linear, llama3)', () => {
    expect(bits(ropeInvFreq(loadLlamaConfig(MODEL_DIR)))).toBe(REF.default_10000_64);
    expect(bits(ropeInvFreq(parseLlamaConfig({ ...big, rope_theta: 500000 })))).toBe(REF.default_500000_128);
    expect(bits(ropeInvFreq(parseLlamaConfig({ ...big, rope_theta: 1e6 })))).toBe(REF.default_1000000_128);
    expect(bits(ropeInvFreq(parseLlamaConfig({ ...big, rope_scaling: { type: 'linear', factor: 4 } })))).toBe(REF.linear_10000_128_4);
    expect(bits(ropeInvFreq(parseLlamaConfig(LLAMA31_8B)))).toBe(REF.llama3_500000_128_8_1_4_8192);
    expect(bits(ropeInvFreq(parseLlamaConfig({ ...big, rope_theta: 500000, rope_scaling: l3s(32) }), 64))).toBe(REF.llama3_500000_64_32_1_4_8192);
  });

  it('tiny-py: within 2 ulp of 10000^(-2i/64), the README formula (three float32 roundings: exponent, power, reciprocal)', () => {
    const inv = ropeInvFreq(loadLlamaConfig(MODEL_DIR));
    expect(inv.length).toBe(32);
    for (let i = 0; i < 32; i++) {
      const exact = 10000 ** (-(2 * i) / 64);
      expect(Math.abs(inv[i]! - exact)).toBeLessThanOrEqual(2 * 2 ** (Math.floor(Math.log2(exact)) - 23));
    }
  });

  it('llama3: high frequencies kept, low ones divided by the factor, a smooth band between', () => {
    const base = ropeInvFreq(parseLlamaConfig({ ...LLAMA31_8B, rope_scaling: null }));
    const l3 = ropeInvFreq(parseLlamaConfig(LLAMA31_8B));
    let kept = 0;
    let divided = 0;
    let smooth = 0;
    for (let i = 0; i < 64; i++) {
      const wavelen = (2 * Math.PI) / base[i]!;
      if (wavelen < 8192 / 4) {
        expect(l3[i]).toBe(base[i]);
        kept++;
      } else if (wavelen > 8192) {
        expect(l3[i]).toBe(base[i]! / 8); // exact: 8 is a power of two
        divided++;
      } else {
        expect(l3[i]!).toBeLessThan(base[i]!);
        expect(l3[i]!).toBeGreaterThan(base[i]! / 8);
        smooth++;
      }
    }
    expect([kept > 0, divided > 0, smooth > 0]).toEqual([true, true, true]);
    expect(kept + divided + smooth).toBe(64);
  });

  it('rotaryDim and argument errors', () => {
    const cfg = loadLlamaConfig(MODEL_DIR);
    expect(ropeInvFreq(cfg, 32).length).toBe(16);
    expect(ropeInvFreq(cfg, 2)[0]).toBe(1);
    for (const d of [0, 3, -2, 1.5, 2 ** 17]) expect(() => ropeInvFreq(cfg, d)).toThrow(RangeError);
    expect(() => ropeInvFreq(cfg, '64' as never)).toThrow(TypeError);
    expect(() => ropeInvFreq(null as never)).toThrow(TypeError);
    expect(() => ropeInvFreq({ ...cfg, ropeTheta: -1 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('fuzzing parseLlamaConfig (fast-check)', () => {
  /** Parses; a result must be consistent and give finite frequencies; a failure must be an LlmKernelsError. */
  function parseOrRefuse(v: unknown): void {
    let c: LlamaConfig;
    try {
      c = parseLlamaConfig(v);
    } catch (e) {
      if (!(e instanceof LlmKernelsError)) throw e;
      expect(['ERR_MODEL_FORMAT', 'ERR_UNSUPPORTED']).toContain(e.code);
      expect(e.message.startsWith('config.json: expected ')).toBe(true);
      return;
    }
    expect(c.numHeads % c.numKvHeads).toBe(0);
    expect(c.headDim % 2).toBe(0);
    expect(c.rmsNormEps > 0 && Number.isFinite(c.rmsNormEps)).toBe(true);
    const inv = ropeInvFreq(c);
    expect(inv.length).toBe(c.headDim / 2);
    expect(inv.every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
  }

  it('fc.anything() and fc.object()', () => {
    fc.assert(fc.property(fc.anything(), parseOrRefuse), { numRuns: 500, seed: 11 });
    fc.assert(fc.property(fc.object(), parseOrRefuse), { numRuns: 500, seed: 12 });
  });

  it('valid configs with random fields replaced by random JSON values', () => {
    const keys = [...Object.keys(LLAMA31_8B), 'head_dim', 'sliding_window', 'use_sliding_window', 'max_window_layers', 'quantization_config', 'rope_parameters'];
    const value = fc.oneof(
      fc.jsonValue(),
      fc.integer({ min: -2, max: 200 }),
      fc.constantFrom(null, true, 'silu', 'llama', 'mistral', 'qwen2', 0.5, 2 ** 53, -1),
      fc.record({ rope_type: fc.constantFrom('llama3', 'linear', 'default', 'yarn'), factor: fc.double(), low_freq_factor: fc.double(), high_freq_factor: fc.double(), original_max_position_embeddings: fc.integer() }, { requiredKeys: [] }),
      fc.record({ quant_method: fc.constantFrom('gptq', 'awq', 'x'), bits: fc.integer({ min: -1, max: 9 }), group_size: fc.integer({ min: -3, max: 256 }) }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(fc.constantFrom(LLAMA31_8B, TINY, MINIMAL), fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 4 }), (base, patch) => {
        parseOrRefuse({ ...base, ...patch });
      }),
      { numRuns: 1000, seed: 13 },
    );
  });
});
