#!/usr/bin/env node
// Peer comparison: llm-kernels against llama.cpp (through node-llama-cpp, its Node binding) on the same GGUF files
// of the bundled tiny-py model, in one process, 2 threads each, runs alternating between the two libraries.
//
//   NODE_LLAMA_CPP=$PEER/node_modules/node-llama-cpp node bench/peer-llama-cpp.mjs [--formats Q8_0,Q4_0,BF16,F32]
//       [--rounds 6] [--reps 3] [--threads 2] [--out DIR] [--json FILE]          (~80 s on the 2-vCPU machine)
//
// node-llama-cpp is NOT a dependency of this project (not even a devDependency): install it anywhere else, e.g.
//   PEER=$(mktemp -d) && cd "$PEER" && npm init -y && npm i node-llama-cpp@3
// (its prebuilt CPU binaries come from npm as @node-llama-cpp/linux-x64; nothing is built or downloaded at run
// time: getLlama({ build: 'never', skipDownload: true })). Without NODE_LLAMA_CPP, or when it does not load, the
// script prints one "skip" line with the reason and exits 0. Needs a built dist/ (npm run build).
//
// What it does, per GGUF type (hfToGguf of models/tiny-py, written to --out, default $TMPDIR/llm-kernels-peer):
// 1. Agreement: next-token logits of two prompts (a 62-token Python prompt, the 512-token prefill prompt) from both
//    libraries (max |diff|, argmax equal), and the greedy continuation (32 tokens) of the Python prompt.
// 2. Prefill: one 512-token prompt (<s> + the first 511 bytes of eval.txt) into an empty KV cache, logits of the
//    last position only: tokens/s. llama.cpp: clearHistory, then evaluateWithoutGeneratingNewTokens (the sequence
//    is checked empty before and 512 tokens long after: no prefix reuse).
// 3. Decode at B = 1: after a 255-token prefill (untimed), 128 single-token steps (the 256th prompt token, then
//    each greedy token), each step a forward of one token plus the argmax: tokens/s. llama.cpp: the
//    sequence.evaluate generator at temperature 0 (no chat wrapper, no token predictor).
// 4. Decode again with both at 1 thread (llama.cpp: a second context; ours: setThreads(1) for those runs).
//    node-llama-cpp attaches no persistent ggml threadpool, so each llama_decode at 2 threads starts a fresh ggml
//    worker thread (perf: one new thread id per step) and the calling thread spins in ggml_barrier meanwhile; on
//    the 2-vCPU machine of bench/NOTES.md a 2-thread step costs 15-18 ms, so 1 thread is llama.cpp's decode setting
//    there. llama.cpp's own counters (performanceTracking + printTimings, llama_decode only) are printed too.
// Each round runs ours and theirs for prefill and decode (the order flips every round); each figure is the median of
// rounds x reps (llama.cpp's 2-thread decode: rounds x 1). KV caches are f16 on both sides (llama.cpp's default;
// its flash attention is 'auto', which enables it). The read-bandwidth roofline is printed for context only:
// tiny-py's weights (1.9-13 MB) sit in L2/L3, and at this size per-op costs, not bytes, bound both libraries.
//
// The GGUF vocabulary: tokenizer.ggml.model "llama" (SentencePiece) with <unk>, <s>, </s>, the 256 byte tokens
// <0x00>..<0xFF> (ids 3..258 = byte + 3, as tiny-py) and 61 unused placeholders. llama.cpp's SentencePiece
// tokenizer always rewrites ' ' as U+2581 ('▁') before the lookup, so the token of byte 0x20 (id 35) is written as
// '▁' with type NORMAL instead of '<0x20>': then text tokenizes to exactly tiny-py's ids (checked below).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
// For tiny-py (a bf16 checkpoint) 'keep' and 'BF16' write the same file: bf16 matrices, f32 vectors (llama.cpp's CPU
// backend cannot combine f32 activations with 1-D bf16 tensors, so hfToGguf always writes those as F32).
const FORMATS = opt('formats', 'Q8_0,Q4_0,BF16,F32').split(',');
const ROUNDS = Number(opt('rounds', '6'));
const REPS = Number(opt('reps', '3'));
const THREADS = Number(opt('threads', '2'));
const OUT = opt('out', join(tmpdir(), 'llm-kernels-peer'));
const JSON_OUT = opt('json', null);
const PREFILL_T = 512;
const DECODE_CTX = 256;
const DECODE_STEPS = 128;
const GREEDY_N = 32;

function skip(reason) {
  console.log(`skip: peer-llama-cpp: ${reason}`);
  process.exit(0);
}

// ---- node-llama-cpp, from outside the project ----
const nlcDir = process.env.NODE_LLAMA_CPP;
if (!nlcDir) skip('NODE_LLAMA_CPP is not set (an installed node-llama-cpp@3 package folder, e.g. $PEER/node_modules/node-llama-cpp, where $PEER is a folder outside the project)');
let nlc, nlcVersion;
const perfLines = [];
try {
  const pkg = JSON.parse(readFileSync(join(nlcDir, 'package.json'), 'utf8'));
  nlcVersion = pkg.version;
  const exp = pkg.exports?.['.'];
  const entry = (typeof exp === 'string' ? exp : exp?.import ?? exp?.default) ?? pkg.main ?? 'index.js';
  nlc = await import(pathToFileURL(join(nlcDir, entry)).href);
} catch (e) {
  skip(`cannot load node-llama-cpp from NODE_LLAMA_CPP=${nlcDir}: ${e.message}`);
}
let llama;
try {
  // info-level logs are needed for llama.cpp's own timings (printTimings); everything else but errors is dropped
  llama = await nlc.getLlama({
    gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, maxThreads: THREADS, logLevel: 'info',
    logger: (level, message) => {
      if (/eval time|flash.?attn|flash attention/i.test(message)) perfLines.push(message);
      else if (level === 'error' || level === 'fatal') console.error(`[node-llama-cpp] ${message}`);
    },
  });
} catch (e) {
  skip(`node-llama-cpp found (${nlcVersion}) but no usable prebuilt CPU binary: ${e.message}`);
}

const lk = await import(pathToFileURL(join(root, 'dist', 'index.js')).href);
const { hfToGguf, loadModel, setThreads, roofline, argmax } = lk;
if (typeof hfToGguf !== 'function') {
  console.error('peer-llama-cpp: dist/ has no hfToGguf export: run `npm run build` first');
  process.exit(1);
}
setThreads(THREADS);

// ---- the GGUF files ----
const tinyDir = join(root, 'models', 'tiny-py');
const V = 320;
const vocab = ['<unk>', '<s>', '</s>'];
for (let b = 0; b < 256; b++) vocab.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
vocab[0x20 + 3] = '\u2581';
while (vocab.length < V) vocab.push(`<unused${vocab.length - 259}>`);
// llama.cpp token types: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte
const tokenType = vocab.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i === 0x20 + 3 ? 1 : i < 259 ? 6 : 5));
const metadata = {
  'general.name': 'tiny-py',
  'tokenizer.ggml.model': 'llama',
  'tokenizer.ggml.tokens': vocab,
  'tokenizer.ggml.scores': { type: 'array', itemType: 'f32', value: new Array(V).fill(0) },
  'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: tokenType },
  'tokenizer.ggml.unknown_token_id': { type: 'u32', value: 0 },
  'tokenizer.ggml.add_space_prefix': false,
};
mkdirSync(OUT, { recursive: true });
const files = new Map();
for (const f of FORMATS) {
  const path = join(OUT, `tiny-py-${f}.gguf`);
  writeFileSync(path, hfToGguf(tinyDir, { outtype: f, metadata }));
  files.set(f, path);
}

// ---- prompts (token ids as tiny-py: <s> + byte + 3) ----
const enc = (s) => [1, ...Buffer.from(s, 'utf8')].map((b, i) => (i === 0 ? 1 : b + 3));
const PY = 'def fibonacci(n):\n    if n <= 1:\n        return n\n    return ';
const pyPrompt = enc(PY);
const evalBytes = readFileSync(join(tinyDir, 'eval.txt'));
const longPrompt = [1, ...Array.from(evalBytes.subarray(0, PREFILL_T - 1), (b) => b + 3)];
const decodePrompt = longPrompt.slice(0, DECODE_CTX);
// README transcript of the Python prompt (bf16 weights computed in f32), first 32 tokens
const README_GREEDY = [118, 104, 111, 105, 49, 98, 102, 111, 114, 118, 104, 43, 44, 13, 13, 35, 35, 35, 35, 103, 104, 105, 35, 98, 98, 108, 113, 108, 119, 98, 98, 43];

// ---- ours ----
let seqCounter = 0;
function oursPrefill(m, cache, tokens) {
  const seqId = seqCounter++;
  const r = cache.addSequence(seqId, tokens);
  if (!r.ok) throw new Error('bench cache too small');
  return { seqId, logits: m.forward(cache, [{ seqId, tokens, slots: r.slots, logits: 'last' }]).logits };
}
async function oursLogits(m, cache, tokens) {
  const { seqId, logits } = oursPrefill(m, cache, tokens);
  const data = await logits.data();
  logits.dispose();
  cache.free(seqId);
  return data;
}
// greedy: prefill `prompt`, then `n` steps (the first forwards prompt's last token when `prefillAllButLast`)
async function oursGreedy(m, cache, prompt, n, timed = false) {
  const pre = prompt.slice(0, -1);
  const { seqId, logits: l0 } = oursPrefill(m, cache, pre);
  await l0.data();
  l0.dispose();
  const out = [];
  let tok = prompt[prompt.length - 1];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const slots = cache.appendOrThrow(seqId, [tok]);
    const { logits } = m.forward(cache, [{ seqId, tokens: [tok], slots }]);
    const data = await logits.data();
    logits.dispose();
    tok = argmax(data);
    out.push(tok);
  }
  const ms = performance.now() - t0;
  cache.free(seqId);
  return timed ? { out, ms } : out;
}
async function oursPrefillTimed(m, cache, tokens) {
  const t0 = performance.now();
  const { seqId, logits } = oursPrefill(m, cache, tokens);
  await logits.data();
  const ms = performance.now() - t0;
  logits.dispose();
  cache.free(seqId);
  return ms;
}

// ---- theirs ----
async function theirsLogits(seq, tokens) {
  await seq.clearHistory();
  const input = tokens.map((t, i) => (i === tokens.length - 1 ? [t, { generateNext: { logits: true } }] : t));
  const res = await seq.controlledEvaluate(input);
  const map = res[tokens.length - 1]?.next?.logits;
  if (!map) throw new Error('node-llama-cpp returned no logits');
  const out = new Float32Array(V).fill(Number.NaN);
  for (const [t, v] of map) out[t] = v;
  return out;
}
async function theirsGreedy(seq, prompt, n, timed = false) {
  await seq.clearHistory();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
  if (seq.nextTokenIndex !== prompt.length - 1) throw new Error(`node-llama-cpp: ${seq.nextTokenIndex} tokens in the sequence after the prefill`);
  const out = [];
  const t0 = performance.now();
  for await (const tok of seq.evaluate([prompt[prompt.length - 1]], { temperature: 0, yieldEogToken: true })) {
    out.push(tok);
    if (out.length === n) break;
  }
  const ms = performance.now() - t0;
  if (out.length !== n) throw new Error(`node-llama-cpp: ${out.length} of ${n} tokens`);
  return timed ? { out, ms } : out;
}
async function theirsPrefillTimed(seq, tokens) {
  await seq.clearHistory();
  if (seq.nextTokenIndex !== 0) throw new Error('node-llama-cpp: the sequence is not empty after clearHistory');
  const t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(tokens);
  const ms = performance.now() - t0;
  if (seq.nextTokenIndex !== tokens.length) throw new Error(`node-llama-cpp: ${seq.nextTokenIndex} of ${tokens.length} tokens evaluated`);
  return ms;
}

// ---- run ----
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const t0All = performance.now();
const load0 = loadavg();
const roof = roofline(THREADS);
console.log(`llm-kernels (dist) vs node-llama-cpp ${nlcVersion} (llama.cpp ${await readLlamaCppTag()}), ` +
  `threads ${THREADS}, CPU backend ${llama.gpu === false ? 'cpu' : llama.gpu}; ${llama.systemInfo.trim()}`);
console.log(`roofline (threads=${roof.threads}, ${roof.simd}): read ${roof.readGBs.toFixed(1)} GB/s, ` +
  `FMA ${fmt(roof.fmaGflops)} GFLOP/s, int8 ${fmt(roof.int8Gops)} GOP/s`);

async function readLlamaCppTag() {
  try {
    return JSON.parse(readFileSync(join(nlcDir, 'llama', 'binariesGithubRelease.json'), 'utf8')).release;
  } catch {
    return '?';
  }
}

const results = { nodeLlamaCpp: nlcVersion, threads: THREADS, roofline: roof, formats: [] };
for (const f of FORMATS) {
  const path = files.get(f);
  const ours = await loadModel(path);
  const cache = ours.createCache({ maxTokens: 2048, dtype: 'f16', prefixCaching: false });
  const tModel = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const ctxOptions = { contextSize: 1024, batchSize: PREFILL_T, threads: { ideal: THREADS, min: THREADS }, sequences: 1 };
  perfLines.length = 0;
  let ctx = await tModel.createContext(ctxOptions);
  let seq = ctx.getSequence();

  // tokenizer check: llama.cpp's tokenization of the Python prompt is tiny-py's
  const tokOk = JSON.stringify([1, ...tModel.tokenize(PY, false)]) === JSON.stringify(pyPrompt);

  // agreement
  const agree = [];
  for (const [name, p] of [['python 62 tok', pyPrompt], ['eval.txt 512 tok', longPrompt]]) {
    const a = await oursLogits(ours, cache, p);
    const b = await theirsLogits(seq, p);
    let maxd = 0, maxa = 0;
    for (let i = 0; i < V; i++) {
      maxd = Math.max(maxd, Math.abs(a[i] - b[i]));
      maxa = Math.max(maxa, Math.abs(a[i]));
    }
    agree.push({ prompt: name, maxAbsDiff: maxd, maxAbsLogit: maxa, argmaxOurs: argmax(a), argmaxTheirs: argmax(b) });
  }
  const gOurs = await oursGreedy(ours, cache, pyPrompt, GREEDY_N);
  const gTheirs = await theirsGreedy(seq, pyPrompt, GREEDY_N);
  const firstDiff = gOurs.findIndex((t, i) => t !== gTheirs[i]);
  const readmeDiff = gOurs.findIndex((t, i) => t !== README_GREEDY[i]);

  // timing (warm-up: one of each, on the agreement context); then a fresh context whose llama.cpp perf counters
  // (printTimings: llama_decode's own time, without node-llama-cpp's JS) cover exactly the timed runs
  await oursPrefillTimed(ours, cache, longPrompt);
  await theirsPrefillTimed(seq, longPrompt);
  await oursGreedy(ours, cache, decodePrompt, 8);
  await theirsGreedy(seq, decodePrompt, 8);
  const faLine = perfLines.find((l) => /flash attention (enabled|disabled)/i.test(l));
  const flashAttention = `${ctx.flashAttention}${faLine ? ` (${/flash attention (enabled|disabled)/i.exec(faLine)[1]})` : ''}`;
  await ctx.dispose();
  ctx = await tModel.createContext({ ...ctxOptions, performanceTracking: true });
  seq = ctx.getSequence();
  // llama.cpp at 1 thread, decode only: see the note on ggml's per-graph worker thread at the top
  const ctx1 = await tModel.createContext({ ...ctxOptions, threads: 1 });
  const seq1 = ctx1.getSequence();
  await theirsGreedy(seq1, decodePrompt, 8);
  const ms = { oursPrefill: [], theirsPrefill: [], oursDecode: [], theirsDecode: [], theirs1Decode: [], ours1Decode: [] };
  const decodeDiff = {}; // first step where two 128-step greedy decode transcripts differ, per pair of settings
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours'];
    for (const who of order)
      for (let k = 0; k < REPS; k++)
        ms[`${who}Prefill`].push(who === 'ours' ? await oursPrefillTimed(ours, cache, longPrompt) : await theirsPrefillTimed(seq, longPrompt));
    const outs = {};
    for (const who of r % 2 === 0 ? ['ours', 'theirs', 'theirs1', 'ours1'] : ['ours1', 'theirs1', 'theirs', 'ours']) {
      if (who === 'ours1') setThreads(1);
      // llama.cpp's 2-thread decode runs ~2 s per 128 steps here: one rep per round keeps the run short
      for (let k = 0; k < (who === 'theirs' ? 1 : REPS); k++) {
        const d = who.startsWith('ours')
          ? await oursGreedy(ours, cache, decodePrompt, DECODE_STEPS, true)
          : await theirsGreedy(who === 'theirs' ? seq : seq1, decodePrompt, DECODE_STEPS, true);
        ms[`${who}Decode`].push(d.ms);
        outs[who] = d.out;
      }
      if (who === 'ours1') setThreads(THREADS);
    }
    for (const [a, b] of [['ours', 'theirs'], ['ours', 'theirs1'], ['theirs', 'theirs1'], ['ours', 'ours1']]) {
      const i = outs[a].findIndex((t, j) => t !== outs[b][j]);
      if (i >= 0) decodeDiff[`${a}-${b}`] = Math.min(decodeDiff[`${a}-${b}`] ?? i, i);
    }
  }
  perfLines.length = 0;
  await ctx.printTimings();
  const perf = { prompt: null, eval: null };
  for (const l of perfLines) {
    const m = /(prompt eval|eval) time\s*=\s*([\d.]+) ms \/\s*(\d+)/.exec(l);
    if (m) perf[m[1] === 'eval' ? 'eval' : 'prompt'] = { ms: Number(m[2]), tokens: Number(m[3]) };
  }
  const tps = (n, list) => (n * 1000) / median(list);
  const spread = (n, list) => [(n * 1000) / Math.max(...list), (n * 1000) / Math.min(...list)];
  const pair = (n, a, b) => ({ ours: tps(n, a), theirs: tps(n, b), oursRange: spread(n, a), theirsRange: spread(n, b) });
  const row = {
    format: f,
    fileBytes: readFileSync(path).length,
    tokenizerMatches: tokOk,
    flashAttention,
    agreement: agree,
    greedy: { ours: gOurs, theirs: gTheirs, equal: firstDiff < 0, firstDiff, oursEqualsReadme: readmeDiff < 0 },
    decodeTranscriptFirstDiff: decodeDiff,
    prefill: pair(PREFILL_T, ms.oursPrefill, ms.theirsPrefill),
    decode: pair(DECODE_STEPS, ms.oursDecode, ms.theirsDecode),
    decode1Thread: pair(DECODE_STEPS, ms.ours1Decode, ms.theirs1Decode),
    // llama.cpp's own counters over the timed runs: prompt eval = the 512-token prefills and the 255-token decode
    // prefills together; eval = the single-token steps (llama_decode only: no sampling, no JS)
    llamaCppInternal: {
      promptTokensPerS: perf.prompt && (perf.prompt.tokens * 1000) / perf.prompt.ms,
      evalTokensPerS: perf.eval && (perf.eval.tokens * 1000) / perf.eval.ms,
      raw: perf,
    },
  };
  results.formats.push(row);

  const rng = ([lo, hi]) => `${fmt(lo)}-${fmt(hi)}`;
  const line = (label, p) =>
    `  ${label}: ours ${fmt(p.ours)} tok/s (${rng(p.oursRange)}), theirs ${fmt(p.theirs)} (${rng(p.theirsRange)}), ` +
    `ours/theirs ${(p.ours / p.theirs).toFixed(2)}`;
  const who = (k) => ({ ours: 'ours@2', ours1: 'ours@1', theirs: 'llama.cpp@2', theirs1: 'llama.cpp@1' })[k];
  const diffs = Object.entries(decodeDiff).map(([k, i]) => `${k.split('-').map(who).join(' vs ')} differ at step ${i}`);
  console.log(`\n${f} (${fmt(row.fileBytes / 1e6, 1)} MB; llama.cpp tokenizer ${tokOk ? 'gives tiny-py ids' : 'DIFFERS from tiny-py ids'}; ` +
    `flash attention ${row.flashAttention})`);
  for (const a of agree)
    console.log(`  logits ${a.prompt.padEnd(17)} max |ours - theirs| ${a.maxAbsDiff.toExponential(2)} (max |logit| ` +
      `${a.maxAbsLogit.toFixed(1)}), argmax ${a.argmaxOurs}/${a.argmaxTheirs}`);
  console.log(`  greedy ${GREEDY_N} tokens: ${firstDiff < 0 ? 'identical' : `differ from token ${firstDiff}`}; ours ` +
    `${readmeDiff < 0 ? '=' : '!='} README transcript`);
  console.log(`  ${DECODE_STEPS}-step decode transcripts (eval.txt prompt): ${diffs.length === 0 ? 'all identical' : `${diffs.join(', ')}; others identical`}`);
  console.log(line(`prefill T=${PREFILL_T}`, row.prefill));
  console.log(line(`decode B=1 ctx=${DECODE_CTX}, ${DECODE_STEPS} steps`, row.decode));
  console.log(`${line('decode, both at 1 thread', row.decode1Thread)}; ours@2 / llama.cpp@1 ${(row.decode.ours / row.decode1Thread.theirs).toFixed(2)}`);
  const li = row.llamaCppInternal;
  if (li.promptTokensPerS && li.evalTokensPerS)
    console.log(`  llama.cpp's own counters at ${THREADS} threads (llama_decode only, all timed runs): prompt eval ${fmt(li.promptTokensPerS)} tok/s ` +
      `(${li.raw.prompt.tokens} tokens), single-token eval ${fmt(li.evalTokensPerS)} tok/s (${li.raw.eval.tokens} runs)`);

  await ctx1.dispose();
  await ctx.dispose();
  await tModel.dispose();
  cache.dispose();
  ours.dispose();
}
const secs = ((performance.now() - t0All) / 1000).toFixed(1);
console.log(`\nload average before the run ${load0.map((x) => x.toFixed(2)).join(' ')} (1, 5, 15 min; above ~0.5 another ` +
  'process shares the cores; this run itself adds ~2)');
console.log(`(${ROUNDS} rounds x ${REPS} reps per figure (llama.cpp@2 decode: x 1), alternating order; medians, range ` +
  `in parentheses; ${secs} s)`);
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(results, null, 2));
await llama.dispose();
