// Collectives of CUDA tensors (native/dist/cuda_ar.h, nccl.cc, native/addon/dist.cc): the selection rules (pure
// functions), the NCCL loader without NCCL, the options and the errors a machine without a GPU gives; and, on a GPU
// host, two ranks as processes on one device checked bit for bit (fixtures/cuda-allreduce-rank.mjs: allReduce,
// allGather, reduceScatter, broadcast).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { info, initProcessGroup, LlmKernelsError, ncclStatus, resolveProcessGroupOptions, selectAllReduce, selectCollective } from '../../lib/index.js';
import { expectThrows } from '../helpers/check.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const cuda = info().cuda;
const cudaAvailable = cuda.available && cuda.devices.length > 0;
const MiB = 1 << 20;

describe('selectAllReduce', () => {
  const both = { custom: true, nccl: true };
  it('one-shot for small messages, two-shot for medium, NCCL for large (names the thresholds it used)', () => {
    expect(selectAllReduce(4, 2, both).algo).toBe('one_shot');
    expect(selectAllReduce(MiB, 2, both).algo).toBe('one_shot'); // R x bytes = 2 MiB
    expect(selectAllReduce(MiB + 16, 2, both).algo).toBe('two_shot');
    expect(selectAllReduce(MiB, 4, both).algo).toBe('two_shot'); // R x bytes = 4 MiB
    expect(selectAllReduce(16 * MiB, 8, both).algo).toBe('two_shot');
    const big = selectAllReduce(16 * MiB + 1, 2, both);
    expect(big).toEqual({ algo: 'nccl', why: 'nccl: 16777217 bytes > 16777216' });
  });
  it('a single rank is a one-shot copy; slices too small for R ranks stay one-shot', () => {
    expect(selectAllReduce(64 * MiB, 1, { custom: true, nccl: false }).algo).toBe('one_shot');
    expect(selectAllReduce(0, 2, both).algo).toBe('one_shot');
  });
  it('NCCL when P2P is missing; chunked two-shot when NCCL is; none when neither', () => {
    expect(selectAllReduce(64, 2, { custom: false, nccl: true }).algo).toBe('nccl');
    expect(selectAllReduce(64 * MiB, 2, { custom: true, nccl: false }).algo).toBe('two_shot');
    const none = selectAllReduce(64, 2, { custom: false, nccl: false });
    expect(none.algo).toBe('none');
    expect(none.why).toMatch(/no P2P between every pair of ranks\) and NCCL is not loaded/);
    expect(selectAllReduce(64, 16, { custom: true, nccl: false }).why).toMatch(/more than 8 ranks/);
    expect(selectAllReduce(64, 16, { custom: true, nccl: true }).algo).toBe('nccl');
  });
  it('is the same function on every call (pure)', () => {
    for (const b of [0, 1, 4096, 3 * MiB, 40 * MiB])
      for (const w of [1, 2, 3, 8, 9])
        for (const custom of [false, true])
          for (const nccl of [false, true]) expect(selectAllReduce(b, w, { custom, nccl })).toEqual(selectAllReduce(b, w, { custom, nccl }));
  });
  it('checks its arguments', () => {
    expectThrows(() => selectAllReduce(-1, 2, both), RangeError, 'ERR_OUT_OF_RANGE', /bytes/);
    expectThrows(() => selectAllReduce(1.5, 2, both), RangeError, undefined, /bytes/);
    expectThrows(() => selectAllReduce(8, 0, both), RangeError, 'ERR_OUT_OF_RANGE', /worldSize/);
    expectThrows(() => selectAllReduce(8, 2, { custom: 1 as unknown as boolean, nccl: true }), TypeError, 'ERR_INVALID_ARG_TYPE', /a boolean for paths.custom/);
  });
});

describe('selectCollective', () => {
  const both = { custom: true, nccl: true };
  it('allReduce is selectAllReduce', () => {
    for (const b of [4, MiB, MiB + 16, 16 * MiB + 1]) expect(selectCollective('allReduce', b, 2, both)).toEqual(selectAllReduce(b, 2, both));
  });
  it('the custom kernel while a rank reads <= 16 MiB (allGather reads R x bytes), NCCL above', () => {
    expect(selectCollective('allGather', 8 * MiB, 2, both)).toEqual({ algo: 'one_shot', why: `custom: reads ${16 * MiB} bytes <= ${16 * MiB}` });
    expect(selectCollective('allGather', 8 * MiB + 4, 2, both).algo).toBe('nccl');
    expect(selectCollective('allGather', 4 * MiB, 8, both).algo).toBe('nccl'); // reads 32 MiB
    expect(selectCollective('reduceScatter', 16 * MiB, 8, both).algo).toBe('one_shot');
    expect(selectCollective('reduceScatter', 16 * MiB + 2, 8, both).algo).toBe('nccl');
    expect(selectCollective('broadcast', 16 * MiB, 2, both).algo).toBe('one_shot');
    expect(selectCollective('broadcast', 16 * MiB + 2, 2, both).why).toMatch(/^nccl: reads \d+ bytes > 16777216$/);
  });
  it('without NCCL the custom kernel at any size (in chunks); without P2P NCCL; neither: none, saying why', () => {
    expect(selectCollective('allGather', 1 << 30, 2, { custom: true, nccl: false })).toEqual({ algo: 'one_shot', why: `custom in chunks: reads ${2 * 2 ** 30} bytes, NCCL not loaded` });
    expect(selectCollective('broadcast', 64, 2, { custom: false, nccl: true }).why).toMatch(/no P2P between every pair of ranks/);
    expect(selectCollective('reduceScatter', 64, 16, { custom: true, nccl: true }).why).toMatch(/more than 8 ranks/);
    const none = selectCollective('allGather', 64, 2, { custom: false, nccl: false });
    expect(none.algo).toBe('none');
    expect(none.why).toMatch(/^no CUDA allGather: the custom kernels are not registered \(no P2P between every pair of ranks\) and NCCL is not loaded$/);
  });
  it('validates its arguments', () => {
    expectThrows(() => selectCollective('gather' as 'allGather', 8, 2, both), RangeError, 'ERR_OUT_OF_RANGE', /expected 'allReduce', 'allGather', 'reduceScatter' or 'broadcast' for kind, got "gather"/);
    expectThrows(() => selectCollective(3 as unknown as 'allGather', 8, 2, both), TypeError, 'ERR_INVALID_ARG_TYPE', /for kind, got 3/);
    expectThrows(() => selectCollective('toString' as 'allGather', 8, 2, both), RangeError, 'ERR_OUT_OF_RANGE', /for kind/);
    expectThrows(() => selectCollective('allGather', -1, 2, both), RangeError, 'ERR_OUT_OF_RANGE', /^selectCollective: .*bytes/);
    expectThrows(() => selectCollective('allGather', 8, 0, both), RangeError, 'ERR_OUT_OF_RANGE', /worldSize/);
    expectThrows(() => selectCollective('allGather', 8, 2, { custom: true } as { custom: boolean; nccl: boolean }), TypeError, 'ERR_INVALID_ARG_TYPE', /paths.nccl/);
  });
});

describe('NCCL loader', () => {
  const s = ncclStatus();
  it.skipIf(s.loaded)('says libnccl.so.2 was not found and how to install it (no NCCL on this machine)', () => {
    expect(s.loaded).toBe(false);
    expect(s.version).toBe(0);
    expect(s.reason).toMatch(/^unsupported: libnccl\.so\.2 not found \(.*\)\. Install NCCL 2\.18 or newer/);
    expect(ncclStatus()).toEqual(s); // tried once, the same answer after
  });
  it.skipIf(!s.loaded)('reports the version of the NCCL it loaded', () => {
    expect(s.version).toBeGreaterThanOrEqual(21800);
  });
});

describe('process groups with a CUDA device', () => {
  it('resolves the device option', () => {
    expect(resolveProcessGroupOptions({ env: {} }).device).toBe('cpu');
    expect(resolveProcessGroupOptions({ env: {}, device: 'cpu' }).device).toBe('cpu');
    expect(resolveProcessGroupOptions({ env: {}, device: 'cuda:3' }).device).toBe('cuda:3');
    expect(resolveProcessGroupOptions({ env: {}, device: 'cuda' }).device).toMatch(/^cuda:\d+$/);
    expectThrows(() => resolveProcessGroupOptions({ env: {}, device: 'gpu' as 'cuda' }), RangeError, 'ERR_OUT_OF_RANGE', /expected 'cpu', 'cuda' or 'cuda:N' for options.device, got "gpu"/);
    expectThrows(() => resolveProcessGroupOptions({ env: {}, device: 0 as unknown as 'cuda' }), TypeError, 'ERR_INVALID_ARG_TYPE', /options.device/);
  });
  it.skipIf(cudaAvailable)('without a usable GPU, opening one rejects with the reason (no GPU on this machine)', async () => {
    const err = await initProcessGroup({ env: {}, device: 'cuda' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LlmKernelsError);
    expect(['ERR_DEVICE', 'ERR_UNSUPPORTED']).toContain((err as LlmKernelsError).code);
    expect((err as Error).message).toMatch(/^initProcessGroup: expected an available CUDA device for options.device 'cuda:0', got none: .+\. Omit options.device/);
  });
  it('a CPU-only group has no CUDA paths and still works', async () => {
    const pg = await initProcessGroup({ env: {} });
    expect(pg.device).toBe('cpu');
    expect(pg.cuda).toBeUndefined();
    pg.close();
    expectThrows(() => pg.cuda, LlmKernelsError, 'ERR_DISPOSED');
  });
  it.skipIf(!cudaAvailable)('a CPU-only group refuses CUDA tensors, saying how to open one', async () => {
    const { Tensor } = await import('../../lib/index.js');
    const pg = await initProcessGroup({ env: {} });
    const x = Tensor.fromArray([1, 2, 3]).to('cuda:0');
    expectThrows(() => pg.allReduce(x), LlmKernelsError, 'ERR_UNSUPPORTED', /this group was opened without a CUDA device; use initProcessGroup\(\{ device: 'cuda:0' \}\)/);
    for (const f of [() => pg.allGather(x), () => pg.broadcast(x), () => pg.reduceScatter(x)])
      expectThrows(f, LlmKernelsError, 'ERR_UNSUPPORTED', /this group was opened without a CUDA device/);
    x.dispose();
    pg.close();
  });
});

function runRanks(world: number, env: Record<string, string>): Promise<{ code: number | null; out: string[]; err: string }[]> {
  const name = `cuda-ar-${process.pid}-${Date.now()}`;
  return Promise.all(
    Array.from({ length: world }, (_, rank) => {
      const p = spawn(process.execPath, [join(FIXTURES, 'cuda-allreduce-rank.mjs')], {
        env: { ...process.env, ...env, RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), LLM_KERNELS_GROUP: name },
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      return new Promise<{ code: number | null; out: string[]; err: string }>((res) => p.on('close', (code) => res({ code, out: out.trim().split('\n'), err })));
    }),
  );
}

describe('collectives of CUDA tensors', () => {
  it('the check that runs on a GPU host, on CPU tensors (shm): its spec agrees with the CPU backends bit for bit', async () => {
    const results = await runRanks(2, { LK_TEST_CUDA_DEVICE: 'cpu' });
    for (const r of results) {
      expect(r.code, r.err).toBe(0);
      const line = JSON.parse(r.out[r.out.length - 1]!) as { failures: string[] };
      expect(line.failures).toEqual([]);
    }
  }, 120_000);
  it.skipIf(!cudaAvailable)(
    '2 ranks (processes) on one device: allReduce, allGather (dim 0 and -1), reduceScatter, broadcast, bit-identical to the spec on every path (needs a GPU; none here)',
    async () => {
      const results = await runRanks(2, { LK_TEST_CUDA_DEVICE: 'cuda:0' });
      for (const r of results) {
        expect(r.code, r.err).toBe(0);
        const line = JSON.parse(r.out[r.out.length - 1]!) as { failures: string[]; cuda: { custom: boolean } };
        expect(line.failures).toEqual([]);
      }
    },
    300_000,
  );
});
