// copy, cast, fill, add, mul, scale on every backend against the reference, bit for bit.
import { describe, it } from 'vitest';
import { add, cast, copy, mul, scale, Tensor } from '../../lib/index.js';
import type { DType } from '../../lib/dtype.js';
import { BACKENDS, canaried, checkOp, compare, randomData } from '../helpers/check.js';

const FLOATS: DType[] = ['f32', 'f16', 'bf16'];
const SHAPES: number[][] = [[1], [7], [33], [3, 1], [7, 33], [33, 100], [5, 4099], [2, 3, 17]];

describe('copy', () => {
  for (const dtype of ['f32', 'f16', 'bf16', 'i8', 'u8', 'i32'] as DType[])
    for (const shape of [[1], [7], [33, 5], [65537]])
      it(`copy(shape=[${shape}],${dtype})`, () =>
        checkOp({ name: `copy(${shape},${dtype})`, op: 'copy', inputs: [{ data: randomData(shape.reduce((a, b) => a * b), 11), shape, dtype }], run: ([x]) => copy(x!) }));
});

describe('cast', () => {
  for (const from of ['f32', 'f16', 'bf16', 'i8', 'u8', 'i32'] as DType[])
    for (const to of FLOATS)
      for (const special of from === 'f32' || from === 'f16' || from === 'bf16' ? [false, true] : [false])
        for (const n of [1, 7, 33, 4099])
          it(`cast(n=${n},${from}->${to}${special ? ',special' : ''})`, () =>
            checkOp({
              name: `cast(n=${n},${from}->${to})`,
              op: 'cast',
              inputs: [{ data: randomData(n, n * 7 + 1, special), shape: [n], dtype: from }],
              run: ([x]) => cast(x!, to),
            }));
});

describe('fill', () => {
  const values: Record<DType, number[]> = {
    f32: [-1.2345678, 0, 3.4e38, -0],
    f16: [-1.2345678, 65519, 1e-7, 70000],
    bf16: [-1.2345678, 1e38, 3.14159],
    i8: [-128, 127, 5],
    u8: [0, 255],
    i32: [-2147483648, 2147483647, 42],
  };
  for (const [dtype, vs] of Object.entries(values) as [DType, number[]][])
    for (const v of vs)
      for (const n of [1, 7, 5000])
        it(`fill(n=${n},${dtype},value=${v})`, async () => {
          const fill = () => Tensor.full([n], v, { dtype });
          await checkOp({ name: `fill(n=${n},${dtype},${v})`, op: 'fill', inputs: [], run: fill });
        });
});

describe.each(['add', 'mul'] as const)('%s', (op) => {
  const f = op === 'add' ? add : mul;
  for (const dtype of FLOATS)
    for (const shape of SHAPES)
      for (const bcast of [false, true]) {
        const n = shape.reduce((a, b) => a * b);
        const bShape = bcast ? [shape[shape.length - 1]!] : shape;
        it(`${op}(shape=[${shape}],${dtype}${bcast ? ',row-broadcast' : ''})`, () =>
          checkOp({
            name: `${op}(${shape},${dtype},${bcast})`,
            op,
            inputs: [
              { data: randomData(n, 1, true), shape, dtype },
              { data: randomData(bShape.reduce((a, b) => a * b), 2), shape: bShape, dtype },
            ],
            run: ([a, b]) => f(a!, b!),
          }));
      }
});

describe('scale', () => {
  for (const dtype of FLOATS)
    for (const shape of SHAPES)
      for (const alpha of [-0.3183098861837907, 1e-3, 7])
        it(`scale(shape=[${shape}],${dtype},alpha=${alpha})`, () =>
          checkOp({
            name: `scale(${shape},${dtype},${alpha})`,
            op: 'scale',
            inputs: [{ data: randomData(shape.reduce((a, b) => a * b), 5, true), shape, dtype }],
            run: ([x]) => scale(x!, alpha),
          }));
});

describe('elementwise edge cases', () => {
  it('add of empty tensors gives an empty tensor', async () => {
    for (const b of BACKENDS) {
      using a = Tensor.empty([0, 5], { device: b.device });
      using c = Tensor.empty([0, 5], { device: b.device });
      using y = add(a, c);
      if ((await y.data()).length !== 0) throw new Error('expected empty');
    }
  });
  it('cast keeps NaN and Inf, rounds ties to even (f32 -> f16 -> f32)', async () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -25, -0]);
    const want = [NaN, Infinity, -Infinity, 1, 1 + 2 ** -9, Infinity, 0, -0];
    for (const b of BACKENDS) {
      using t = canaried(x, [x.length], 'f32', b.device);
      using h = b.use(() => t.cast('f16'));
      const got = await h.toFloat32();
      const r = compare('cast', 'f32', got, want, `cast specials on ${b.name}`);
      if (!r.ok) throw new Error(r.message);
    }
  });
});
