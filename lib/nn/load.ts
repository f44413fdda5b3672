/**
 * Loading a model from disk: a Hugging Face folder (config.json + model.safetensors or a sharded index) or a GGUF
 * file (v3; F32/F16/BF16/Q8_0/Q4_0 tensors; llama.cpp's q/k row permutation undone, so one attention path serves
 * both sources).
 */
import { statSync } from 'node:fs';
import { LlmKernelsError, typeError } from '../errors.js';
import { GgufFile, ggufLlamaConfig, ggufWeightSource } from '../io/gguf.js';
import { loadLlamaConfig } from '../io/hf-config.js';
import { SafetensorsModel } from '../io/safetensors.js';
import { expected } from '../validate.js';
import { LlamaForCausalLM, type LlamaLoadOptions } from './llama.js';

/**
 * Loads a Llama-family model.
 * @param path - a folder with config.json and safetensors weights, or a .gguf file
 * @throws {LlmKernelsError} ERR_MODEL_FORMAT (named file and field), ERR_UNSUPPORTED (an architecture, dtype or
 *   file type without support)
 * @example const model = await loadModel('models/tiny-py', { quantize: 'q4_0' });
 */
export async function loadModel(path: string, options: LlamaLoadOptions = {}): Promise<LlamaForCausalLM> {
  const fn = 'loadModel';
  if (typeof path !== 'string') throw typeError(expected(fn, 'a path', 'path', path));
  let dir: boolean;
  try {
    dir = statSync(path).isDirectory();
  } catch (e) {
    throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!dir) {
    if (!path.endsWith('.gguf'))
      throw new LlmKernelsError('ERR_MODEL_FORMAT', `${fn}: expected a model folder (config.json + *.safetensors) or a .gguf file for path, got ${path}`);
    const file = GgufFile.open(path);
    try {
      const config = ggufLlamaConfig(file);
      return await LlamaForCausalLM.fromWeights(config, ggufWeightSource(file, config), options);
    } finally {
      file.close();
    }
  }
  const config = loadLlamaConfig(path);
  const weights = SafetensorsModel.open(path);
  try {
    // Float tensors are read straight into native memory at their validated place in the shard.
    const source = {
      has: (n: string) => weights.has(n),
      info: (n: string) => weights.info(n),
      read: (n: string) => weights.read(n),
      locate: (n: string) => {
        const i = weights.info(n);
        return { path: weights.shardOf(n), offset: i.offset, byteLength: i.byteLength };
      },
    };
    return await LlamaForCausalLM.fromWeights(config, source, options);
  } finally {
    weights.close();
  }
}
