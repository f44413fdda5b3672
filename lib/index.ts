/**
 * llm-kernels: the public surface (re-exports only).
 * @packageDocumentation
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from './binding.js';
import { setVersion } from './device.js';

setVersion((createRequire(import.meta.url)(join(packageRoot, 'package.json')) as { version: string }).version);

export { LlmKernelsError, type ErrorCode } from './errors.js';
export { Device, device, info, setThreads, getThreads, emptyCache, type DeviceSpec, type DeviceKind, type Info } from './device.js';
export { Tensor, type TensorOptions, type FromArrayOptions, type RandomOptions } from './tensor.js';
export { DTYPES, type DType, type FloatDType, type TypedArrayFor, f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, f8e4m3ToF32, f32ToF8e4m3 } from './dtype.js';
export { add, mul, scale, cast, copy } from './ops/elementwise.js';
export { matmul } from './ops/matmul.js';
export { embedding, rmsNorm, addRmsNorm, rope, siluMul, silu, layerNorm, gelu, type EmbeddingOptions, type RopeOptions, type RopePairing, type GeluOptions } from './ops/nn.js';
export { topK, TOP_K_MAX } from './ops/sampling.js';
export { roofline, type Roofline } from './roofline.js';
export { type QuantPath, type MatmulOptions } from './ops/matmul.js';
export { QUANT_FORMATS, type QuantFormat, rowFormBytes, panelFormBytes, groupSize } from './quant/formats.js';
export { QuantizedTensor, type FromBytesOptions } from './quant/quantized-tensor.js';
export { quantize, quantizeSync, dequantize, quantizationError, importGptq, type QuantizationReport, type ImportGptqOptions } from './quant/quantize.js';
export { gptqToQ4GRows, gptqDequantize, type GptqTensors, type GptqShape, type GptqCheckpointFormat } from './quant/gptq.js';
export {
  cacheWrite,
  ropeCacheWrite,
  kvCopyBlocks,
  pagedAttentionDecode,
  pagedAttentionPrefill,
  KV_DTYPES,
  type KvDType,
  type KvCacheTensors,
  type PagedAttentionOptions,
} from './ops/attention.js';
export { BlockManager, kvFullError, type BlockManagerOptions, type AllocResult, type AllocOk, type KvFull, type KvStats } from './kv/block-manager.js';
export { PagedKvCache, AttentionBatch, type PagedKvCacheOptions } from './kv/paged-kv-cache.js';
export { Linear, Embedding, RMSNorm, LayerNorm, RotaryEmbedding, SwiGluMlp, Attention, DecoderLayer, type LinearLayer, type LinearWeight, type AttentionContext, type AttentionOptions } from './nn/layers.js';
export {
  LlamaForCausalLM,
  type WeightSource,
  type LoadProgress,
  type LlamaLoadOptions,
  type StepSequence,
  type StepResult,
} from './nn/llama.js';
export { loadModel } from './nn/load.js';
export { generate, type GenerateOptions, type GenerateResult } from './nn/generate.js';
export { evaluate, type EvaluateOptions, type EvaluateResult } from './nn/eval.js';
export { Sampler, argmax, DEFAULT_SAMPLER_SEED, type SamplerOptions } from './nn/sampler.js';
export {
  SafetensorsFile,
  SafetensorsModel,
  parseSafetensorsHeader,
  encodeSafetensors,
  safetensorsDTypeSize,
  bf16ToF32 as bf16BytesToF32,
  f16ToF32 as f16BytesToF32,
  SAFETENSORS_DTYPES,
  type SafetensorsDType,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type SafetensorsTensorData,
} from './io/safetensors.js';
export { parseLlamaConfig, loadLlamaConfig, ropeInvFreq, LLAMA_MODEL_TYPES, type LlamaConfig, type LlamaModelType, type RopeScaling, type HfQuantizationConfig } from './io/hf-config.js';
export { ByteTokenizer, HfTokenizer, loadTokenizer, type Tokenizer } from './io/tokenizer.js';
export {
  GgufFile,
  parseGgufHeader,
  encodeGguf,
  ggufLlamaConfig,
  ggufWeightSource,
  hfToGguf,
  ggufQuantize,
  GGML_TYPES,
  GGUF_TENSOR_TYPES,
  type GgufHeader,
  type GgufTensorInfo,
  type GgufValue,
  type GgufTensorType,
  type HfToGgufOptions,
} from './io/gguf.js';
export { GgufSpmTokenizer, ggufTokenizer, GGUF_TOKEN_TYPES } from './io/gguf-tokenizer.js';
export {
  initProcessGroup,
  resolveProcessGroupOptions,
  ProcessGroup,
  selectAllReduce,
  selectCollective,
  type CollectiveKind,
  ncclStatus,
  type AllReduceChoice,
  type InitProcessGroupOptions,
  type ResolvedProcessGroup,
  type DistBackend,
  type ReduceOp,
  type CollectiveOptions,
  type ReduceOptions,
} from './dist/process-group.js';
export {
  launch,
  findFreePort,
  LAUNCH_ENV_VARS,
  LAUNCHER_FD_ENV,
  MAX_NPROC,
  DEFAULT_KILL_GRACE_MS,
  type LaunchOptions,
  type LaunchResult,
  type RankResult,
  type LaunchOutput,
  type LaunchEnvVar,
} from './dist/launch.js';
export { ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding, shardLlama, type LlamaShard } from './dist/parallel-layers.js';
