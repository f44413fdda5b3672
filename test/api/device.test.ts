// Devices: 'auto' chooses (and info() says why), 'cuda' never silently falls back. Expectations that depend on CUDA
// being there carry the reason in their skip (it.skipIf(cudaAvailable) / it.skipIf(!cudaAvailable)).
import { describe, expect, it } from 'vitest';
import { Device, device, info, LlmKernelsError, scale, Tensor } from '../../lib/index.js';
import { cudaAvailable } from '../helpers/check.js';
import { caught, expectError } from './api-helpers.js';

/** The forms a CUDA failure reason takes: a CUDA runtime error name, or a CPU-only build. */
const CUDA_REASON = /cudaError\w+|no CUDA backend|no CUDA device/;

describe('device()', () => {
  it("'cpu' is one unique Device; Device instances are canonical", () => {
    const c = device('cpu');
    expect(c).toBeInstanceOf(Device);
    expect([c.kind, c.index, c.name, String(c)]).toEqual(['cpu', 0, 'cpu', 'cpu']);
    expect(device('cpu')).toBe(c);
    expect(device(c)).toBe(c);
    expect(device(new Device('cpu', 0))).toBe(c);
  });

  it('device() with no argument is device(\'auto\')', () => {
    expect(device()).toBe(device('auto'));
  });

  it('a Device synchronizes (async and sync) and tensors report it', async () => {
    const c = device('cpu');
    using t = Tensor.randn([8], { seed: 1, device: c });
    using y = scale(t, 2);
    expect(t.device).toBe(c);
    expect(y.device).toBe(c);
    await expect(c.synchronize()).resolves.toBeUndefined();
    expect(c.synchronizeSync()).toBeUndefined();
  });
});

describe.skipIf(cudaAvailable)('without a usable CUDA device (skipped: this machine has one)', () => {
  it("device('auto') picks the cpu, and info().auto says why (the CUDA reason)", () => {
    expect(device('auto')).toBe(device('cpu'));
    const i = info();
    expect(i.auto.device).toBe('cpu');
    expect(i.cuda.available).toBe(false);
    expect(i.cuda.reason).toMatch(CUDA_REASON);
    expect(i.auto.reason).toMatch(/^no usable CUDA device \(/);
    expect(i.auto.reason).toContain(i.cuda.reason);
  });

  for (const spec of ['cuda', 'cuda:0', 'cuda:1', 'cuda:7'] as const)
    it(`device('${spec}') throws ERR_DEVICE with the CUDA reason and the fix`, () => {
      const e = caught(() => device(spec));
      expectError(e, LlmKernelsError, 'ERR_DEVICE', /^device: CUDA unavailable: /);
      expect(e.message).toContain(info().cuda.reason);
      expect(e.message).toMatch(CUDA_REASON);
      expect(e.message).toMatch(/Use device\('cpu'\), or device\('auto'\)/);
      expect(e.name).toBe('LlmKernelsError');
    });

  it("device(new Device('cuda', 0)) does not bypass the check", () => {
    expectError(caught(() => device(new Device('cuda', 0))), LlmKernelsError, 'ERR_DEVICE', /^device: CUDA unavailable: /);
  });

  it('the reason matches the build: a CUDA build names the runtime error, a CPU-only build says so', () => {
    const i = info();
    if (i.build.cuda) expect(i.cuda.reason).toMatch(/cudaError\w+|no CUDA device/);
    else expect(i.cuda.reason).toMatch(/no CUDA backend/);
    expect(i.cuda.compiled).toBe(i.build.cuda);
  });

  it('asking again gives the same error (nothing cached from a failed attempt), and the cpu keeps working', () => {
    const m1 = caught(() => device('cuda')).message;
    const m2 = caught(() => device('cuda')).message;
    expect(m2).toBe(m1);
    using t = Tensor.fromArray([1, 2, 3]);
    using y = scale(t, -2);
    expect(Array.from(y.dataSync())).toEqual([-2, -4, -6]);
  });
});

describe.skipIf(!cudaAvailable)('with CUDA (skipped: no usable CUDA device here)', () => {
  it("device('auto') picks cuda:0, and info().auto names the GPU", () => {
    const g = device('auto');
    expect(g).toBe(device('cuda'));
    expect(g).toBe(device('cuda:0'));
    expect(device(new Device('cuda', 0))).toBe(g);
    expect([g.kind, g.index, g.name]).toEqual(['cuda', 0, 'cuda:0']);
    const i = info();
    expect(i.auto.device).toBe('cuda:0');
    expect(i.auto.reason).toContain(i.cuda.devices[0]!.name);
  });

  it('a device index past the last GPU -> ERR_DEVICE naming the count', () => {
    const n = info().cuda.devices.length;
    expectError(caught(() => device(`cuda:${n}` as 'cuda:0')), LlmKernelsError, 'ERR_DEVICE', new RegExp(`^device: no CUDA device ${n}; this machine has ${n}$`));
  });

  it('round trip cpu -> cuda -> cpu keeps every bit; an op on the GPU is right', async () => {
    using t = Tensor.randn([33, 65], { seed: 3 });
    using g = t.to('cuda');
    expect(g.device).toBe(device('cuda'));
    using y = scale(g, 0.5);
    using back = y.to('cpu');
    const want = Array.from(t.dataSync(), (v) => Math.fround(v * 0.5));
    expect(Array.from(await back.data())).toEqual(want);
    expect(Array.from(y.dataSync())).toEqual(want);
    await expect(device('cuda').synchronize()).resolves.toBeUndefined();
  });
});
