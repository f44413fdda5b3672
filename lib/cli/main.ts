#!/usr/bin/env node
/**
 * The `llm-kernels` command (commander). `llm-kernels --help` lists the commands; each has its own --help.
 *   demo       the bundled tiny-py model in bf16, q8_0 and q4_0: batched generation over the paged cache, speed,
 *              KV use, perplexity, KL and top-1 agreement against bf16
 *   generate   text from a model (--prompt TEXT or --tokens 1,2,3)
 *   logits     every --tokens list is one sequence; all go through one batched forward; logits to a JSON file
 *   eval       perplexity of a model on a text file, and its divergence from a reference format
 *   info       build, SIMD level, threads, CUDA devices or why there are none
 *   kernels    the kernels checked against float64 references and timed on this machine
 *   launch     run a script as N ranks on this host (like torchrun): rank env, [rank R] output, no orphans
 */
import { Command, Option } from 'commander';
import { info } from '../index.js';
import { LAUNCH_HELP, launchCommand } from '../dist/launch.js';
import { kernelsDemo } from './kernels.js';
import { BUNDLED_MODEL, demoCommand, evalCommand, generateCommand, logitsCommand } from './model-commands.js';

function printInfo(json: boolean): void {
  const i = info();
  if (json) {
    process.stdout.write(JSON.stringify(i, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `llm-kernels ${i.version}\n` +
      `build:   ${i.build.compiler}; CUDA ${i.build.cuda ? `compiled (${i.build.cudaArchs})` : 'not compiled'}\n` +
      `cpu:     SIMD ${i.cpu.simd} (detected ${i.cpu.simdDetected}), ${i.cpu.threads} threads of ${i.cpu.hardwareThreads}\n` +
      `cuda:    ${i.cuda.available ? i.cuda.devices.map((d) => `${d.index}: ${d.name} (sm_${d.computeCapability.replace('.', '')}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB)`).join('; ') : `unavailable: ${i.cuda.reason}`}\n` +
      `auto:    ${i.auto.device} (${i.auto.reason})\n`,
  );
}

const program = new Command('llm-kernels')
  .description('quantized matmul, paged attention and Llama-family models for Node.js')
  .showHelpAfterError()
  .enablePositionalOptions() // so that `launch` can pass the script's own options through
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

const modelOpt = () => new Option('--model <path>', 'a model folder (config.json + safetensors)').default(BUNDLED_MODEL, 'the bundled tiny-py');
const quantOpt = () => new Option('--quantize <format>', 'quantize the Linear weights on load: q8_0, q4_0, q4_g32, q4_g64, q4_g128, i8_pc');
const tpOpt = () => new Option('--tp <n>', 'tensor parallelism: run as n ranks on this host (llm-kernels launch), each holding 1/n of the model').default('1');
const deviceOpt = () => new Option('--device <device>', 'cpu, cuda, cuda:N or auto (auto: a GPU when there is one)').default('cpu');

program
  .command('demo')
  .description('the bundled model in bf16, q8_0 and q4_0: batched generation, tokens/s, KV use and quality')
  .option('-n <tokens>', 'new tokens per prompt', '48')
  .option('--eval-bytes <n>', "bytes of the held-out text to score ('all' for the whole 65,531)", '16384')
  .option('--kv-dtype <dtype>', 'KV cache dtype for generation: f32, f16, bf16, i8, f8e4m3', 'f16')
  .addOption(tpOpt())
  .action((o) => demoCommand({ n: o.n, evalBytes: o.evalBytes, kvDtype: o.kvDtype, tp: o.tp }));

program
  .command('generate')
  .description('generate text (or token ids) from a prompt')
  .addOption(modelOpt())
  .addOption(quantOpt())
  .addOption(deviceOpt())
  .option('--prompt <text>', 'the prompt text (needs the model\'s tokenizer)')
  .option('--tokens <ids>', 'the prompt as comma-separated token ids')
  .option('-n <tokens>', 'new tokens at most', '64')
  .option('--temperature <t>', 'sampling temperature (0: greedy, the default)')
  .option('--top-k <k>', 'keep the k most likely tokens (0: off)')
  .option('--top-p <p>', 'nucleus sampling (1: off)')
  .option('--seed <s>', 'sampling seed')
  .option('--json', 'print one JSON object')
  .addOption(tpOpt())
  .action((o) => generateCommand({ ...o, n: o.n }));

program
  .command('logits')
  .description('logits of every position of each --tokens sequence, all in one batched forward, as JSON')
  .addOption(modelOpt())
  .addOption(quantOpt())
  .addOption(deviceOpt())
  .option('--kv-dtype <dtype>', 'KV cache dtype: f32, f16, bf16, i8, f8e4m3', 'f32')
  .requiredOption('--tokens <ids>', 'one sequence as comma-separated ids; repeat for more sequences', (v: string, prev: string[] = []) => [...prev, v])
  .requiredOption('--out <file>', 'the JSON file to write: {"sequences": [{"tokens": [...], "logits": [[...], ...]}]}')
  .addOption(tpOpt())
  .action((o) => logitsCommand(o));

program
  .command('eval')
  .description('perplexity on a text file (bits per byte for byte-level models); KL and top-1 against --reference')
  .addOption(modelOpt())
  .requiredOption('--text <file>', 'the text to score')
  .addOption(quantOpt())
  .option('--reference <format>', "a format to compare with: 'bf16' (the float weights) or a quantized format")
  .addOption(deviceOpt())
  .option('--bytes <n>', 'score only the first n bytes of the text')
  .option('--json', 'print one JSON object')
  .addOption(tpOpt())
  .action((o) => evalCommand(o));

program
  .command('info')
  .description('build, CPU SIMD level and threads, CUDA devices')
  .option('--json', 'print JSON')
  .action((o) => printInfo(Boolean(o.json)));

program
  .command('kernels')
  .description('matmul, quantized matmul and paged attention checked against float64 references and timed')
  .option('--device <device>', 'auto, cpu, cuda or cuda:N', 'auto')
  .option('--size <n>', 'matmul size M = N = K', '1024')
  .action((o) => kernelsDemo(o));

program
  .command('launch')
  .description('run a script as N ranks on this host (like torchrun): rank environment, [rank R] output, no orphans')
  .option('--nproc <n>', 'number of ranks, 1 to 256', '1')
  .option('--kill-grace-ms <ms>', 'after a rank fails or on SIGINT/SIGTERM: milliseconds from SIGTERM to SIGKILL', '5000')
  .option('--node-arg <arg>', 'a Node.js option for every rank (repeat for more), e.g. --node-arg=--max-old-space-size=8192', (v: string, prev: string[] = []) => [...prev, v])
  .argument('<script>', 'the Node.js script every rank runs')
  .argument('[args...]', "the script's own arguments, passed through untouched")
  .passThroughOptions()
  .addHelpText('after', LAUNCH_HELP)
  .action(async (script: string, args: string[], o: { nproc: string; killGraceMs: string; nodeArg?: string[] }) => {
    process.exit(await launchCommand(script, args, o));
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as Error & { code?: string };
  const rank = process.env.LLM_KERNELS_TP ? ` (rank ${process.env.RANK})` : '';
  process.stderr.write(`llm-kernels${rank}: ${err.code ? `[${err.code}] ` : ''}${err.message}\n`);
  process.exit(1);
});
