// The GC safety net: a Tensor that is garbage-collected without dispose() gives its memory back (the
// FinalizationRegistry of lib/tensor.ts disposes its handle). dispose() remains the way to free memory on time.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { info, Tensor } from '../../lib/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20)); // finalization callbacks run in a later task
  }
}

it('tensors dropped without dispose() are freed after garbage collection', async () => {
  await collect();
  const before = info().cpu.liveBytes;
  (() => {
    for (let i = 0; i < 64; i++) Tensor.full([256 * 1024], i + 1); // 64 x 1 MiB, never disposed
  })();
  expect(info().cpu.liveBytes - before).toBeGreaterThanOrEqual(64 * 2 ** 20);
  await collect();
  expect(info().cpu.liveBytes - before).toBeLessThan(8 * 2 ** 20);
});

it('a disposed tensor that is later collected does not free the tensor that reused its slot', async () => {
  (() => {
    const a = Tensor.full([4], 1);
    a.dispose();
  })();
  const b = Tensor.full([4], 2); // takes a's slot, with a new generation
  await collect(); // `a` is collected now: its finalizer disposes a stale id, which must be a no-op
  expect(Array.from(await b.data())).toEqual([2, 2, 2, 2]);
  b.dispose();
});
