// The model commands of the CLI, called as functions (what `llm-kernels <command>` runs), on the bundled model:
// logits (one batched forward, JSON out), generate, eval, demo, and their argument errors.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BUNDLED_MODEL, demoCommand, evalCommand, generateCommand, logitsCommand } from '../../lib/cli/model-commands.js';
import { loadModel } from '../../lib/nn/load.js';
import { packageRoot } from '../../lib/binding.js';
import { cudaAvailable } from '../helpers/check.js';

function captureStdout(): { text: () => string } {
  let buf = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((buf += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  return { text: () => buf };
}
afterEach(() => vi.restoreAllMocks());

describe('llm-kernels logits', () => {
  it('writes every sequence of one batched forward, equal to running each alone', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'lk-cli-')), 'logits.json');
    captureStdout();
    await logitsCommand({ model: BUNDLED_MODEL, device: 'cpu', kvDtype: 'f32', tokens: ['1,104,105,106', '1,50'], out });
    const j = JSON.parse(readFileSync(out, 'utf8')) as { sequences: { tokens: number[]; logits: number[][] }[] };
    expect(j.sequences.map((s) => s.tokens)).toEqual([[1, 104, 105, 106], [1, 50]]);
    expect(j.sequences.map((s) => s.logits.length)).toEqual([4, 2]);
    expect(j.sequences[0]!.logits[0]!.length).toBe(320);
    using m = await loadModel(BUNDLED_MODEL);
    using cache = m.createCache({ maxTokens: 64, dtype: 'f32' });
    const r = cache.addSequence(0, [1, 50]);
    if (!r.ok) throw new Error('cache full');
    const { logits } = m.forward(cache, [{ seqId: 0, tokens: [1, 50], slots: r.slots, logits: 'all' }]);
    using _l = logits;
    const alone = await logits.data();
    let worst = 0;
    j.sequences[1]!.logits.flat().forEach((v, i) => (worst = Math.max(worst, Math.abs(v - alone[i]!))));
    expect(worst).toBeLessThan(1e-5);
  });
  it('refuses bad arguments', async () => {
    await expect(logitsCommand({ model: BUNDLED_MODEL, device: 'cpu', kvDtype: 'f32', tokens: ['1,x'], out: '/dev/null' })).rejects.toThrow(/comma-separated token ids/);
    await expect(logitsCommand({ model: BUNDLED_MODEL, device: 'cpu', kvDtype: 'f64', tokens: ['1'], out: '/dev/null' })).rejects.toThrow(/--kv-dtype/);
    await expect(logitsCommand({ model: BUNDLED_MODEL, quantize: 'q3_k', device: 'cpu', kvDtype: 'f32', tokens: ['1'], out: '/dev/null' })).rejects.toThrow(/--quantize/);
    await expect(logitsCommand({ model: '/nonexistent', device: 'cpu', kvDtype: 'f32', tokens: ['1'], out: '/dev/null' })).rejects.toMatchObject({ code: 'ERR_MODEL_FORMAT' });
  });
});

describe('llm-kernels --device', () => {
  it.skipIf(cudaAvailable)('cuda on a machine without a GPU: ERR_DEVICE saying why (this machine has none)', async () => {
    await expect(logitsCommand({ model: BUNDLED_MODEL, device: 'cuda', kvDtype: 'f32', tokens: ['1'], out: '/dev/null' })).rejects.toMatchObject({ code: 'ERR_DEVICE', message: expect.stringMatching(/CUDA unavailable/) });
  });
  it.skipIf(cudaAvailable)('cuda with --tp 2 on a machine without a GPU: ERR_DEVICE before any rank starts (this machine has none)', async () => {
    await expect(logitsCommand({ model: BUNDLED_MODEL, device: 'cuda', kvDtype: 'f32', tokens: ['1'], out: '/dev/null', tp: '2' })).rejects.toMatchObject({ code: 'ERR_DEVICE', message: expect.stringMatching(/CUDA unavailable/) });
  });
  it.skipIf(!cudaAvailable)('logits --device cuda --tp 2 (ranks on the GPU, the LM head gathered on it) writes the CPU logits within the tolerance table (needs a GPU)', async () => {
    const { spawnSync } = await import('node:child_process');
    const { compare } = await import('../helpers/check.js');
    const cli = join(packageRoot, 'dist', 'cli', 'main.js');
    const dir = mkdtempSync(join(tmpdir(), 'lk-cli-tp-cuda-'));
    const tokens = ['--tokens', '1,104,105,106', '--tokens', '1,50'];
    for (const [name, extra] of [['cpu', []], ['cuda2', ['--device', 'cuda', '--tp', '2']]] as const) {
      const r = spawnSync(process.execPath, [cli, 'logits', ...tokens, '--kv-dtype', 'f16', '--out', join(dir, `${name}.json`), ...extra], { encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
    }
    type L = { sequences: { logits: number[][] }[] };
    const [a, b] = ['cpu', 'cuda2'].map((n) => (JSON.parse(readFileSync(join(dir, `${n}.json`), 'utf8')) as L).sequences.flatMap((s) => s.logits.flat()));
    const c = compare('matmul', 'f32', b!, a!, 'logits --device cuda --tp 2');
    expect(c.ok, c.message).toBe(true);
  }, 240_000);
  it.skipIf(!cudaAvailable)('logits --device cuda writes the CPU logits (max abs diff < 1e-4) (needs a GPU)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lk-cli-'));
    captureStdout();
    const tokens = ['1,104,105,106', '1,50'];
    await logitsCommand({ model: BUNDLED_MODEL, device: 'cpu', kvDtype: 'f16', tokens, out: join(dir, 'cpu.json') });
    await logitsCommand({ model: BUNDLED_MODEL, device: 'cuda', kvDtype: 'f16', tokens, out: join(dir, 'cuda.json') });
    const flat = (f: string) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { sequences: { logits: number[][] }[] }).sequences.flatMap((s) => s.logits.flat());
    const a = flat('cpu.json'), b = flat('cuda.json');
    expect(b.length).toBe(a.length);
    let worst = 0;
    a.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[i]!))));
    expect(worst).toBeLessThan(1e-4);
  });
});

describe('llm-kernels generate', () => {
  it('greedy text from a prompt (the README transcript of tiny-py)', async () => {
    const o = captureStdout();
    await generateCommand({ model: BUNDLED_MODEL, device: 'cpu', prompt: 'class Stack:\n    def ', n: '24', json: true });
    const j = JSON.parse(o.text()) as { tokens: number[]; text: string };
    expect(j.text).toBe('__init__(self, self):\n  ');
    expect(j.tokens.length).toBe(24);
  });
  it('token ids in, with sampling options', async () => {
    const o = captureStdout();
    await generateCommand({ model: BUNDLED_MODEL, quantize: 'q8_0', device: 'cpu', tokens: '1,104,105', n: '8', temperature: '0.8', topK: '20', topP: '0.9', seed: '7', json: true });
    expect(JSON.parse(o.text()).tokens.length).toBeGreaterThan(0);
    await expect(generateCommand({ model: BUNDLED_MODEL, device: 'cpu', n: '8' })).rejects.toThrow(/exactly one of --prompt/);
    await expect(generateCommand({ model: BUNDLED_MODEL, device: 'cpu', tokens: '1', n: '0' })).rejects.toThrow(/-n/);
  });
});

describe('llm-kernels eval and demo', () => {
  it('eval: perplexity and bits per byte, KL and top-1 against a reference format', async () => {
    const o = captureStdout();
    await evalCommand({ model: BUNDLED_MODEL, text: join(BUNDLED_MODEL, 'eval.txt'), quantize: 'q4_0', reference: 'bf16', device: 'cpu', bytes: '600', json: true });
    const j = JSON.parse(o.text());
    expect(j.targets).toBe(600);
    expect(j.bitsPerByte).toBeCloseTo(j.nllPerToken / Math.LN2, 10);
    expect(j.kl).toBeGreaterThan(0);
    expect(j.top1Agreement).toBeGreaterThan(0.9);
  });
  it('demo runs end to end on a small budget', async () => {
    const o = captureStdout();
    await demoCommand({ n: '4', evalBytes: '600', kvDtype: 'i8' });
    const t = o.text();
    for (const s of ['== bf16:', '== q8_0:', '== q4_0:', 'tokens/s', 'KV cache:', 'perplexity', 'top-1 agreement']) expect(t).toContain(s);
  }, 120_000);
});

describe('--tp N (the command relaunched as N ranks)', () => {
  it('logits --tp 2 writes the TP = 1 logits within the tolerance table; generate --tp 2 the same tokens', async () => {
    const { spawnSync } = await import('node:child_process');
    const { compare } = await import('../helpers/check.js');
    const cli = join(packageRoot, 'dist', 'cli', 'main.js');
    const dir = mkdtempSync(join(tmpdir(), 'lk-cli-tp-'));
    const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
    for (const tp of ['1', '2']) {
      const r = run(['logits', '--tokens', '1,104,105,106', '--tokens', '1,50', '--out', join(dir, `l${tp}.json`), '--tp', tp]);
      expect(r.status, r.stderr).toBe(0);
    }
    type L = { sequences: { logits: number[][] }[] };
    const [one, two] = ['1', '2'].map((tp) => JSON.parse(readFileSync(join(dir, `l${tp}.json`), 'utf8')) as L);
    const c = compare('matmul', 'f32', two!.sequences.flatMap((s) => s.logits.flat()), one!.sequences.flatMap((s) => s.logits.flat()), 'logits --tp 2');
    expect(c.ok, c.message).toBe(true);
    const g1 = run(['generate', '--tokens', '1,100,101', '-n', '12', '--json']);
    const g2 = run(['generate', '--tokens', '1,100,101', '-n', '12', '--json', '--tp', '2']);
    expect(g2.status, g2.stderr).toBe(0);
    // Only rank 0 prints: one JSON line.
    expect(g2.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(g2.stdout).tokens).toEqual(JSON.parse(g1.stdout).tokens);
  }, 120_000);
});
