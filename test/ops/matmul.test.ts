// matmul (y = x · wᵀ) for f32/f16/bf16 on every backend against the double-precision reference.
import { describe, it } from 'vitest';
import { matmul, Tensor } from '../../lib/index.js';
import type { FloatDType } from '../../lib/dtype.js';
import { BACKENDS, checkOp, randomData } from '../helpers/check.js';

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 33, 96],
  [33, 17, 7],
  [1, 256, 1000],
  [2, 64, 4096],
  [4, 33, 257],
  [5, 97, 31],
  [16, 48, 64],
  [67, 129, 257],
  [128, 96, 300],
  [33, 1, 688],
  [255, 70, 129],
];

describe('matmul', () => {
  for (const dtype of ['f32', 'f16', 'bf16'] as FloatDType[])
    for (const [M, N, K] of SHAPES)
      it(`matmul(M=${M},N=${N},K=${K},${dtype})`, () =>
        checkOp({
          name: `matmul(M=${M},N=${N},K=${K},${dtype})`,
          op: 'matmul',
          inputs: [
            { data: randomData(M * K, M * 31 + K), shape: [M, K], dtype },
            { data: randomData(N * K, N * 17 + K + 1), shape: [N, K], dtype },
          ],
          run: ([x, w]) => matmul(x as Tensor<FloatDType>, w as Tensor<FloatDType>),
        }));

  it('matmul(x [2,3,K]) flattens leading dimensions', () =>
    checkOp({
      name: 'matmul(x=[2,3,40],w=[9,40])',
      op: 'matmul',
      inputs: [
        { data: randomData(240, 3), shape: [2, 3, 40], dtype: 'f32' },
        { data: randomData(360, 4), shape: [9, 40], dtype: 'f32' },
      ],
      run: ([x, w]) => matmul(x as Tensor<'f32'>, w as Tensor<'f32'>),
    }));

  it('matmul with K=0 gives zeros and with M=0 an empty result', async () => {
    for (const b of BACKENDS) {
      using x = Tensor.empty([3, 0], { device: b.device });
      using w = Tensor.empty([4, 0], { device: b.device });
      using y = matmul(x, w);
      const d = await y.data();
      if (d.length !== 12 || d.some((v) => v !== 0)) throw new Error(`K=0 on ${b.name}: ${Array.from(d)}`);
      using x0 = Tensor.empty([0, 5], { device: b.device });
      using w0 = Tensor.rand([4, 5], { device: b.device });
      using y0 = matmul(x0, w0);
      if (y0.shape.join() !== '0,4') throw new Error('M=0 shape');
    }
  });
});
