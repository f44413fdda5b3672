/**
 * The model commands of `llm-kernels`: demo, generate, logits, eval. Models are Hugging Face folders (config.json
 * + safetensors); the bundled tiny-py model (models/tiny-py) is the default.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { type Device, device, info, LlmKernelsError, roofline, setThreads } from '../index.js';
import { launch } from '../dist/launch.js';
import { initProcessGroup, type ProcessGroup } from '../dist/process-group.js';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.js';
import { type KvDType, KV_DTYPES } from '../ops/attention.js';
import { QUANT_FORMATS, type QuantFormat } from '../quant/formats.js';
import { evaluate, type EvaluateResult } from '../nn/eval.js';
import { generate } from '../nn/generate.js';
import { type LlamaForCausalLM, type LoadProgress } from '../nn/llama.js';
import { loadModel } from '../nn/load.js';

/** The bundled model (the package's models/tiny-py). */
export const BUNDLED_MODEL = fileURLToPath(new URL('../../models/tiny-py', import.meta.url));

// Under --tp N every rank runs the command (the same calls in the same order: the collectives must match); only
// rank 0 writes results.
let quiet = false;

function out(s: string): void {
  if (!quiet) process.stdout.write(s + '\n');
}

function note(s: string): void {
  if (!quiet) process.stderr.write(s);
}

/** The environment variable that marks a process as one rank of `llm-kernels <command> --tp N`. */
const TP_ENV = 'LLM_KERNELS_TP';

/**
 * --device and --tp N. The device is checked first (a bad or unavailable one fails before any rank starts). N = 1:
 * no group, the whole model on that device. In the process the user started: relaunches this very command as N
 * ranks (`llm-kernels launch`, unprefixed output), waits, sets the exit code and returns 'done'. In a rank: joins
 * the group, gives the rank its share of the cores, silences ranks other than 0, and returns the group with the
 * rank's device: with a CUDA device every rank opens its group on a GPU ('cuda' and 'auto': cuda:<local rank mod
 * the number of GPUs>; 'cuda:N': every rank on N), so that the collectives take that GPU's tensors.
 */
async function tensorParallel(tpArg: string | undefined, spec: string): Promise<{ group: ProcessGroup | null; dev: Device } | 'done'> {
  const dev = device(spec as 'auto');
  const tp = num(tpArg, '--tp', 1, 256, true) ?? 1;
  if (tp === 1) return { group: null, dev };
  if (process.env[TP_ENV] !== String(tp)) {
    const script = process.argv[1];
    if (!script) throw new LlmKernelsError('ERR_INTERNAL', '--tp: cannot find the llm-kernels script to relaunch');
    const r = await launch({ nproc: tp, script, args: process.argv.slice(2), env: { [TP_ENV]: String(tp) }, forwardSignals: true, prefixOutput: false });
    process.exitCode = r.code;
    return 'done';
  }
  const group = await initProcessGroup(dev.kind === 'cpu' ? {} : { device: /^cuda:\d+$/.test(spec) ? (dev.name as `cuda:${number}`) : 'cuda' });
  setThreads(Math.max(1, Math.floor(info().cpu.hardwareThreads / tp)));
  quiet = group.rank !== 0;
  return { group, dev: device(group.device) };
}

function progressBar(label: string): { onProgress: (p: LoadProgress) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { onProgress: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} {name}`, stream: process.stderr, clearOnComplete: true, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onProgress: (p) => {
      if (!started) bar.start(p.total, 0, { name: '' }), (started = true);
      bar.update(p.done, { name: p.name });
    },
    stop: () => started && bar.stop(),
  };
}

function checkFormat(q: string | undefined): QuantFormat | undefined {
  if (q === undefined || q === 'bf16' || q === 'f32' || q === 'none') return undefined;
  if (!(QUANT_FORMATS as readonly string[]).includes(q))
    throw new RangeError(`expected a format (${QUANT_FORMATS.join(', ')}, or none) for --quantize, got '${q}'`);
  return q as QuantFormat;
}

async function load(path: string, quantize: QuantFormat | undefined, label = 'loading', group: ProcessGroup | null = null, dev: Device = device('cpu')): Promise<LlamaForCausalLM> {
  const bar = quiet ? { onProgress: () => {}, stop: () => {} } : progressBar(`${label}${quantize ? ` (${quantize})` : ''}${dev.kind !== 'cpu' ? ` on ${dev.name}` : ''}${group ? ` (rank 0 of ${group.worldSize})` : ''}`);
  try {
    return await loadModel(path, { ...(quantize ? { quantize } : {}), ...(group ? { group } : {}), device: dev, onProgress: bar.onProgress });
  } finally {
    bar.stop();
  }
}

function parseTokens(s: string, flag = '--tokens'): number[] {
  const t = s.split(',').map((x) => x.trim());
  const ids = t.map(Number);
  if (t.length === 0 || ids.some((v, i) => t[i] === '' || !Number.isInteger(v) || v < 0))
    throw new RangeError(`expected comma-separated token ids (e.g. 1,104,105) for ${flag}, got '${s}'`);
  return ids;
}

function num(s: string | undefined, flag: string, lo: number, hi: number, integer = false): number | undefined {
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v)))
    throw new RangeError(`expected ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}] for ${flag}, got '${s}'`);
  return v;
}

export interface GenerateCliOptions {
  model: string;
  quantize?: string;
  device: string;
  prompt?: string;
  tokens?: string;
  n: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  seed?: string;
  json?: boolean;
  tp?: string;
}

/** `llm-kernels generate` */
export async function generateCommand(o: GenerateCliOptions): Promise<void> {
  const tpr = await tensorParallel(o.tp, o.device);
  if (tpr === 'done') return;
  const { group, dev } = tpr;
  const q = checkFormat(o.quantize);
  if ((o.prompt === undefined) === (o.tokens === undefined)) throw new RangeError('generate: give exactly one of --prompt TEXT or --tokens 1,2,3');
  const n = num(o.n, '-n', 1, 1 << 20, true)!;
  const sampling: Record<string, number> = {};
  const t = num(o.temperature, '--temperature', 0, 100);
  if (t !== undefined) sampling.temperature = t;
  const k = num(o.topK, '--top-k', 0, 1 << 24, true);
  if (k !== undefined) sampling.topK = k;
  const p = num(o.topP, '--top-p', Number.MIN_VALUE, 1);
  if (p !== undefined) sampling.topP = p;
  const s = num(o.seed, '--seed', 0, 2 ** 32 - 1, true);
  if (s !== undefined) sampling.seed = s;
  const tok: Tokenizer | null = o.prompt !== undefined ? loadTokenizer(o.model) : tryTokenizer(o.model);
  const prompt = o.prompt !== undefined ? tok!.encode(o.prompt) : parseTokens(o.tokens!);
  using model = await load(o.model, q, 'loading', group, dev);
  using cache = model.createCache({ maxTokens: prompt.length + n + 64 });
  const r = await generate(model, cache, [prompt], { maxNewTokens: n, sampling });
  const ids = r.outputs[0]!;
  if (o.json) {
    out(JSON.stringify({ prompt, tokens: ids, text: tok ? tok.decode(ids) : null, prefillMs: r.prefillMs, decodeMs: r.decodeMs, decodeTokens: r.decodeTokens }));
    return;
  }
  out(tok ? (o.prompt ?? tok.decode(prompt)) + tok.decode(ids) : ids.join(','));
  note(`\n[${group ? `TP = ${group.worldSize}; ` : ''}${prompt.length} prompt tokens in ${r.prefillMs.toFixed(0)} ms; ${r.decodeTokens} more in ${r.decodeMs.toFixed(0)} ms = ${(r.decodeTokens / (r.decodeMs / 1e3)).toFixed(1)} tokens/s]\n`);
}

function tryTokenizer(dir: string): Tokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch {
    return null;
  }
}

export interface LogitsCliOptions {
  model: string;
  quantize?: string;
  device: string;
  kvDtype: string;
  tokens: string[];
  out: string;
  tp?: string;
}

/** `llm-kernels logits`: every --tokens list is one sequence; all run in one batched forward over the paged cache. */
export async function logitsCommand(o: LogitsCliOptions): Promise<void> {
  const tpr = await tensorParallel(o.tp, o.device);
  if (tpr === 'done') return;
  const { group, dev } = tpr;
  const q = checkFormat(o.quantize);
  if (!(KV_DTYPES as readonly string[]).includes(o.kvDtype)) throw new RangeError(`expected one of ${KV_DTYPES.join(', ')} for --kv-dtype, got '${o.kvDtype}'`);
  if (!o.tokens || o.tokens.length === 0) throw new RangeError('logits: expected at least one --tokens list');
  const seqs = o.tokens.map((t) => parseTokens(t));
  using model = await load(o.model, q, 'loading', group, dev);
  using cache = model.createCache({ maxTokens: seqs.reduce((a, s) => a + s.length + 32, 0), dtype: o.kvDtype as KvDType, prefixCaching: false });
  const step = seqs.map((toks, i) => {
    const r = cache.addSequence(i, toks);
    if (!r.ok) throw new Error('logits: the cache was sized for these sequences');
    return { seqId: i, tokens: toks, slots: r.slots, logits: 'all' as const };
  });
  const { logits, rows } = model.forward(cache, step);
  const data = await logits.data();
  logits.dispose();
  const V = model.config.vocabSize;
  const result = { sequences: seqs.map((tokens) => ({ tokens, logits: [] as number[][] })) };
  rows.forEach((r, i) => result.sequences[r.seqId]!.logits.push(Array.from(data.subarray(i * V, (i + 1) * V))));
  // Every rank has the same logits (gathered bit-identically); rank 0 writes the file.
  if (group && group.rank !== 0) return;
  writeFileSync(o.out, JSON.stringify(result));
  note(`wrote ${o.out}: ${seqs.length} sequences, ${rows.length} rows of ${V} logits\n`);
}

export interface EvalCliOptions {
  model: string;
  text: string;
  quantize?: string;
  reference?: string;
  device: string;
  bytes?: string;
  json?: boolean;
  tp?: string;
}

/** `llm-kernels eval`: perplexity (and bits per byte for byte-level models), KL and top-1 against a reference format. */
export async function evalCommand(o: EvalCliOptions): Promise<void> {
  const tpr = await tensorParallel(o.tp, o.device);
  if (tpr === 'done') return;
  const { group, dev } = tpr;
  const q = checkFormat(o.quantize);
  const tok = loadTokenizer(o.model);
  let text = readFileSync(o.text);
  const maxBytes = num(o.bytes, '--bytes', 1, 2 ** 31, true);
  if (maxBytes !== undefined) text = text.subarray(0, maxBytes);
  const tokens = tok.encode(text.toString('utf8'));
  using model = await load(o.model, q, 'loading', group, dev);
  let ref: LlamaForCausalLM | null = null;
  try {
    if (o.reference !== undefined) ref = await load(o.model, checkFormat(o.reference), 'loading reference', group, dev);
    const bar = quiet ? { onProgress: () => {}, stop: () => {} } : progressBar('evaluating');
    let r: EvaluateResult;
    try {
      r = await evaluate(model, tokens, {
        ...(ref ? { reference: ref } : {}),
        onProgress: (done, total) => bar.onProgress({ done, total, name: 'targets', stage: 'read' }),
      });
    } finally {
      bar.stop();
    }
    const bpb = tok.bytesPerToken ? r.nllPerToken / Math.LN2 / tok.bytesPerToken : null;
    const res = { model: o.model, quantize: q ?? 'none', tp: group?.worldSize ?? 1, reference: o.reference ?? null, targets: r.targets, nllPerToken: r.nllPerToken, perplexity: r.perplexity, bitsPerByte: bpb, kl: r.kl ?? null, top1Agreement: r.top1Agreement ?? null };
    if (o.json) return out(JSON.stringify(res));
    out(`${q ?? 'float'}: ${r.targets} targets, ${r.nllPerToken.toFixed(5)} nats/token, perplexity ${r.perplexity.toFixed(4)}${bpb !== null ? `, ${bpb.toFixed(4)} bits/byte` : ''}`);
    if (ref) out(`against ${o.reference}: KL ${r.kl!.toExponential(3)} nats/token, top-1 agreement ${(100 * r.top1Agreement!).toFixed(2)}%`);
  } finally {
    ref?.dispose();
  }
}

const DEMO_PROMPTS = ['def fibonacci(n):\n    if n <= 1:\n        return n\n    return ', 'import os\n\n\ndef ', 'class Stack:\n    def ', 'for i in range(10):\n    ', 'def read_config(path):\n    with open(path) as f:\n        '];

export interface DemoOptions {
  n: string;
  evalBytes: string;
  kvDtype: string;
  tp?: string;
}

/**
 * `llm-kernels demo`: the bundled tiny-py model in bf16 (f32 compute), q8_0 and q4_0: one batch of Python prompts
 * generated over the paged cache per format (text, prefill and decode tokens/s, KV use), then quality on the held-out
 * text (perplexity, bits per byte, KL and top-1 agreement against bf16).
 */
export async function demoCommand(o: DemoOptions): Promise<void> {
  const tpr = await tensorParallel(o.tp, 'cpu');
  if (tpr === 'done') return;
  const { group } = tpr;
  const n = num(o.n, '-n', 1, 4096, true)!;
  const evalBytes = o.evalBytes === 'all' ? Infinity : num(o.evalBytes, '--eval-bytes', 2, 2 ** 31, true)!;
  if (!(KV_DTYPES as readonly string[]).includes(o.kvDtype)) throw new RangeError(`expected one of ${KV_DTYPES.join(', ')} for --kv-dtype, got '${o.kvDtype}'`);
  const dir = BUNDLED_MODEL;
  const tok = loadTokenizer(dir);
  const r = roofline();
  out(`llm-kernels demo: the bundled tiny-py model (4 layers, 3.3M parameters, byte-level, trained on Python's standard library)`);
  out(`cpu: ${r.threads} threads, ${r.simd}; read ${r.readGBs.toFixed(1)} GB/s, f32 FMA ${r.fmaGflops.toFixed(0)} GFLOP/s (this machine's probes)`);
  out(group ? `tensor parallel: ${group.worldSize} ranks over ${group.backend}, ${r.threads} threads each (rank 0 prints)\n` : '');
  const formats: (QuantFormat | undefined)[] = [undefined, 'q8_0', 'q4_0'];
  const models: LlamaForCausalLM[] = [];
  try {
    for (const f of formats) {
      const t0 = performance.now();
      models.push(await load(dir, f, 'loading', group));
      out(`loaded ${f ?? 'bf16 (computed in f32)'} in ${(performance.now() - t0).toFixed(0)} ms, weights ${(models[models.length - 1]!.nbytes / 2 ** 20).toFixed(2)} MiB`);
    }
    const prompts = DEMO_PROMPTS.map((p) => tok.encode(p));
    for (const [i, m] of models.entries()) {
      const name = formats[i] ?? 'bf16';
      using cache = m.createCache({ maxTokens: prompts.reduce((a, p) => a + p.length + n + 16, 0), dtype: o.kvDtype as KvDType });
      const g = await generate(m, cache, prompts, { maxNewTokens: n, stopIds: [] });
      out(`\n== ${name}: ${prompts.length} prompts as one batch, ${n} new tokens each (greedy), ${o.kvDtype} KV cache ==`);
      g.outputs.forEach((ids, j) => out(`--- ${JSON.stringify(DEMO_PROMPTS[j])} ->\n${DEMO_PROMPTS[j]}${tok.decode(ids)}`));
      const st = cache.stats();
      out(
        `prefill ${g.prefillTokens} tokens in ${g.prefillMs.toFixed(0)} ms = ${(g.prefillTokens / (g.prefillMs / 1e3)).toFixed(0)} tokens/s; ` +
          `decode ${g.decodeTokens} tokens in ${g.decodeMs.toFixed(0)} ms = ${(g.decodeTokens / (g.decodeMs / 1e3)).toFixed(0)} tokens/s ` +
          `(${prompts.length} sequences per step)`,
      );
      out(`KV cache: ${g.peakBlocks} of ${st.numBlocks} blocks of ${st.blockSize} tokens at the peak, ${(st.bytes / 2 ** 20).toFixed(2)} MiB allocated`);
    }
    let text = readFileSync(dir + '/eval.txt');
    if (evalBytes < text.length) text = text.subarray(0, evalBytes);
    const tokens = tok.encode(text.toString('utf8'));
    out(`\n== quality on held-out Python (eval.txt, ${text.length} bytes; windows of 256, stride 128) ==`);
    for (const [i, m] of models.entries()) {
      const t0 = performance.now();
      const e = await evaluate(m, tokens, i === 0 ? {} : { reference: models[0]! });
      const bpb = e.nllPerToken / Math.LN2;
      out(
        `${(formats[i] ?? 'bf16').padEnd(5)} ${e.nllPerToken.toFixed(5)} nats/byte, ${bpb.toFixed(4)} bits/byte, perplexity ${e.perplexity.toFixed(4)}` +
          (i === 0 ? '' : `; against bf16: KL ${e.kl!.toExponential(2)} nats/byte, top-1 agreement ${(100 * e.top1Agreement!).toFixed(2)}%`) +
          ` (${(e.targets / ((performance.now() - t0) / 1e3)).toFixed(0)} tokens/s)`,
      );
    }
    if (evalBytes === Infinity) out('(reference, models/tiny-py/README.md: 1.19273 nats/byte on all of eval.txt, fp32 PyTorch)');
    else if (text.length === 4096) out('(reference, models/tiny-py/README.md: 1.07759 nats/byte on these 4096 bytes, fp32 PyTorch)');
  } finally {
    for (const m of models) m.dispose();
  }
}
