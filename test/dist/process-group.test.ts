// The process-group API in one process: the environment it reads, a single-rank group (every collective is a copy
// or a one-source reduction), argument errors with their messages, closed groups, and the shard plan of the
// tensor-parallel model.
import { describe, expect, it } from 'vitest';
import { initProcessGroup, LlmKernelsError, resolveProcessGroupOptions, Tensor } from '../../lib/index.js';
import { shardLlama } from '../../lib/dist/parallel-layers.js';
import { parseLlamaConfig } from '../../lib/io/hf-config.js';
import { expectThrows } from '../helpers/check.js';

describe('resolveProcessGroupOptions', () => {
  it('reads llm-kernels launch / torchrun variables', () => {
    const r = resolveProcessGroupOptions({ env: { RANK: '2', WORLD_SIZE: '4', LOCAL_RANK: '2', LOCAL_WORLD_SIZE: '4', LLM_KERNELS_GROUP: 'job-1' } });
    expect(r).toMatchObject({ backend: 'shm', rank: 2, worldSize: 4, localRank: 2, name: 'job-1', timeoutMs: 60_000, debug: false });
    const t = resolveProcessGroupOptions({ env: { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' } });
    expect(t.name).toBe('127.0.0.1-29500');
  });
  it('reads mpirun variables and picks mpi under auto', () => {
    const r = resolveProcessGroupOptions({ env: { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_LOCAL_RANK: '1' } });
    expect(r).toMatchObject({ backend: 'mpi', rank: 1, worldSize: 2, localRank: 1 });
  });
  it('a single rank without any environment; options win over it', () => {
    expect(resolveProcessGroupOptions({ env: {} })).toMatchObject({ backend: 'shm', rank: 0, worldSize: 1 });
    expect(resolveProcessGroupOptions({ env: { RANK: '0', WORLD_SIZE: '2', LLM_KERNELS_GROUP: 'a' }, rank: 1, name: 'b', debug: true, timeoutMs: 5 })).toMatchObject({
      rank: 1,
      name: 'b',
      debug: true,
      timeoutMs: 5,
    });
    expect(resolveProcessGroupOptions({ env: { LLM_KERNELS_DIST_DEBUG: '1' } }).debug).toBe(true);
  });
  it('refuses what it cannot use, saying what was expected', () => {
    expectThrows(() => resolveProcessGroupOptions({ env: { RANK: 'x', WORLD_SIZE: '2' } }), RangeError, 'ERR_OUT_OF_RANGE', /expected a non-negative integer for the environment variable RANK, got "x"/);
    expectThrows(() => resolveProcessGroupOptions({ env: { RANK: '2', WORLD_SIZE: '2', LLM_KERNELS_GROUP: 'a' } }), RangeError, 'ERR_OUT_OF_RANGE', /expected a rank in \[0, 1\]/);
    expectThrows(() => resolveProcessGroupOptions({ env: { RANK: '0', WORLD_SIZE: '2' } }), RangeError, 'ERR_OUT_OF_RANGE', /expected a group name .*llm-kernels launch --nproc 2/);
    expectThrows(() => resolveProcessGroupOptions({ env: {}, backend: 'nccl' as 'shm' }), RangeError, 'ERR_OUT_OF_RANGE', /expected 'auto', 'shm' or 'mpi' for options.backend, got "nccl"/);
    expectThrows(() => resolveProcessGroupOptions({ env: {}, name: 'a/b', worldSize: 2 }), RangeError, 'ERR_OUT_OF_RANGE', /group name of 1-100 characters/);
    expectThrows(() => resolveProcessGroupOptions({ env: { RANK: '0', WORLD_SIZE: '4', LOCAL_WORLD_SIZE: '2', LLM_KERNELS_GROUP: 'a' } }), RangeError, 'ERR_OUT_OF_RANGE', /use backend 'mpi'/);
    expectThrows(() => resolveProcessGroupOptions({ env: {}, timeoutMs: 0 }), RangeError, 'ERR_OUT_OF_RANGE', /options.timeoutMs/);
    expectThrows(() => resolveProcessGroupOptions({ env: {}, debug: 1 as unknown as boolean }), TypeError, 'ERR_INVALID_ARG_TYPE', /a boolean for options.debug/);
  });
});

describe('a single-rank group', () => {
  it('collectives are the identity (allReduce rounds like a reduction), in and out of place', async () => {
    using pg = await initProcessGroup({ env: {} });
    expect([pg.rank, pg.worldSize, pg.backend]).toEqual([0, 1, 'shm']);
    using x = Tensor.fromArray([1.5, -2, 3.25, 7], { shape: [2, 2] });
    using y = pg.allReduce(x);
    expect(Array.from(await y.data())).toEqual([1.5, -2, 3.25, 7]);
    expect(pg.allReduce(x, { out: x, op: 'max' })).toBe(x);
    using g = pg.allGather(x, { dim: 1 });
    expect(g.shape).toEqual([2, 2]);
    using rs = pg.reduceScatter(x);
    expect(rs.shape).toEqual([2, 2]);
    using b = pg.broadcast(x);
    expect(Array.from(await b.data())).toEqual([1.5, -2, 3.25, 7]);
    // An empty tensor gathered along an inner dimension (a step with no rows): [0, 5] -> [0, 5 R].
    using e = Tensor.empty([0, 5]);
    using ge = pg.allGather(e, { dim: -1 });
    expect(ge.shape).toEqual([0, 5]);
    await pg.synchronize();
    await pg.barrier();
    expect(pg.failure).toBeUndefined();
    expect(pg.toString()).toBe('ProcessGroup(rank 0 of 1, shm)');
  });

  it('argument errors', async () => {
    using pg = await initProcessGroup({ env: {} });
    using x = Tensor.fromArray([1, 2, 3, 4], { shape: [2, 2] });
    using i = Tensor.fromArray([1, 2], { dtype: 'i32' });
    using h = Tensor.fromArray([1, 2, 3, 4], { shape: [4], dtype: 'f16' });
    expectThrows(() => pg.allReduce(null as unknown as Tensor), TypeError, 'ERR_INVALID_ARG_TYPE', /allReduce: expected a Tensor for x, got null/);
    expectThrows(() => pg.allReduce(i as unknown as Tensor), TypeError, 'ERR_INVALID_ARG_TYPE', /expected a float dtype .* for x.dtype, got "i32"/);
    expectThrows(() => pg.allReduce(x, { op: 'min' as 'sum' }), RangeError, 'ERR_OUT_OF_RANGE', /expected 'sum' or 'max' for options.op, got "min"/);
    expectThrows(() => pg.allReduce(x, { out: h as unknown as Tensor<'f32'> }), TypeError, 'ERR_INVALID_ARG_TYPE', /expected dtype f32 \(x's\) for options.out.dtype, got "f16"/);
    using o = Tensor.empty([4]);
    expectThrows(() => pg.allReduce(x, { out: o }), RangeError, 'ERR_OUT_OF_RANGE', /expected shape \[2,2\] for options.out.shape, got \[4\]/);
    expectThrows(() => pg.allGather(x, { dim: 2 }), RangeError, 'ERR_OUT_OF_RANGE', /options.dim/);
    expectThrows(() => pg.broadcast(x, { root: 1 }), RangeError, 'ERR_OUT_OF_RANGE', /expected an integer in \[0, 0\] for options.root, got 1/);
    expectThrows(() => pg.allReduce(x, { timeoutMs: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /options.timeoutMs/);
    expectThrows(() => pg.allReduce(x, 3 as unknown as object), TypeError, 'ERR_INVALID_ARG_TYPE', /an options object for options/);
    const d = Tensor.fromArray([1]);
    d.dispose();
    expectThrows(() => pg.allReduce(d), LlmKernelsError, 'ERR_DISPOSED', /allReduce: expected a live tensor for x/);
  });

  it('a closed group throws ERR_DISPOSED; close is idempotent', async () => {
    const pg = await initProcessGroup({ env: {} });
    pg.close();
    pg.close();
    using x = Tensor.fromArray([1]);
    expectThrows(() => pg.allReduce(x), LlmKernelsError, 'ERR_DISPOSED', /allReduce: expected an open process group, got a closed one/);
    expect(() => pg.barrier()).toThrow(/closed/);
    expect(pg.toString()).toMatch(/closed/);
  });

  it('an MPI library that does not exist is ERR_UNSUPPORTED naming it', async () => {
    await expect(initProcessGroup({ env: {}, backend: 'mpi', mpiLibrary: '/nonexistent/libmpi.so.40' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED',
      message: expect.stringMatching(/\/nonexistent\/libmpi\.so\.40/),
    });
  });
});

describe('shardLlama', () => {
  const config = (h: number, hkv: number, f: number, v: number) =>
    parseLlamaConfig({ architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64 * h, intermediate_size: f, num_attention_heads: h, num_key_value_heads: hkv, num_hidden_layers: 1, vocab_size: v, rms_norm_eps: 1e-5 });
  it('splits heads, KV heads (or replicates them), the MLP and the vocabulary', () => {
    const c = config(32, 8, 14336, 128256);
    expect(shardLlama(c, 4, 1)).toEqual({ rank: 1, worldSize: 4, heads: [8, 16], kvHeads: [2, 4], ffn: [3584, 7168], vocab: [32064, 64128] });
    // Hkv = 8 < R = 16: each KV head on two ranks.
    expect(shardLlama(c, 16, 5).kvHeads).toEqual([2, 3]);
    expect(shardLlama(config(4, 2, 768, 321), 2, 1).vocab).toBeNull();
  });
  it('refuses splits that do not divide', () => {
    expectThrows(() => shardLlama(config(6, 2, 768, 320), 4, 0), LlmKernelsError, 'ERR_UNSUPPORTED', /attention heads divisible by 4, got 6/);
    expectThrows(() => shardLlama(config(12, 3, 768, 320), 2, 0), LlmKernelsError, 'ERR_UNSUPPORTED', /KV heads \(3\) divisible by 2 or dividing it/);
    expectThrows(() => shardLlama(config(4, 2, 770, 320), 4, 0), LlmKernelsError, 'ERR_UNSUPPORTED', /intermediate size divisible by 4, got 770/);
  });
});
