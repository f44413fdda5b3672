// worker_threads: environments that load the addon, enqueue work and reads, and are terminated with all of it
// pending must not take the process down (each was a crash: a write into a freed ArrayBuffer, a call into a
// finalized thread-safe function, an error thrown while JS could not run, the addon unmapped under its threads).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/binding.js';
import { matmul, Tensor } from '../../lib/index.js';

const dist = join(packageRoot, 'dist', 'index.js');

// The worker runs compiled JS (dist/, built by `npm install`): a Worker cannot load the TypeScript sources.
const workerSource = `
  const { parentPort, workerData } = require('node:worker_threads');
  import(workerData.dist).then(async (lk) => {
    const x = lk.Tensor.randn([256, 256], { seed: 1 });
    let y = x;
    for (let i = 0; i < 4; i++) y = lk.matmul(y, x);
    const reads = [];
    for (let i = 0; i < 64; i++) reads.push(y.data().catch(() => {}));
    for (let i = 0; i < 16; i++) lk.device('cpu').synchronize().catch(() => {});
    parentPort.postMessage('queued');
    await Promise.all(reads);
    parentPort.postMessage('done');
  });
`;

function runWorker(terminateEarly: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerSource, { eval: true, workerData: { dist } });
    w.on('message', (m) => {
      if (m === 'queued' && terminateEarly) void w.terminate().then(() => resolve('terminated'));
      if (m === 'done' && !terminateEarly) void w.terminate().then(() => resolve('done'));
    });
    w.on('error', reject);
  });
}

describe('worker_threads', () => {
  it('dist/ is built (npm install runs tsc)', () => {
    expect(existsSync(dist)).toBe(true);
  });

  it('a worker finishes its reads and exits; the main thread keeps working', async () => {
    expect(await runWorker(false)).toBe('done');
    using x = Tensor.fromArray([1, 2, 3, 4], { shape: [2, 2] });
    using y = matmul(x, x);
    expect(Array.from(await y.data())).toEqual([5, 11, 11, 25]);
  });

  it('workers terminated with ops, reads and syncs pending do not crash the process', async () => {
    for (let i = 0; i < 8; i++) expect(await runWorker(true)).toBe('terminated');
    using x = Tensor.fromArray([1, 2, 3, 4], { shape: [2, 2] });
    using y = matmul(x, x);
    expect(Array.from(await y.data())).toEqual([5, 11, 11, 25]);
  });
});
