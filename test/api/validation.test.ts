// Every public function and method of lib/index.ts called with bad arguments: the exact error class, its code, and a
// message of the house form `<fn>: expected <what> for <param>, got <actual>` naming the function and parameter.
// After each bad call a valid one still works (afterEach: sanity). The raw binding is hit with garbage too: the
// native layer re-validates and must throw typed errors, never crash.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../lib/binding.js';
import { DTYPE_ID } from '../../lib/dtype.js';
import {
  add,
  bf16ToF32,
  cast,
  copy,
  Device,
  device,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  getThreads,
  LlmKernelsError,
  matmul,
  mul,
  roofline,
  scale,
  setThreads,
  Tensor,
} from '../../lib/index.js';
import { cudaAvailable } from '../helpers/check.js';
import { caught, expectError, house, rejected, sanity, type ErrorClass } from './api-helpers.js';

// Fixtures, alive for the whole file. Seeded, never zeros.
let x: Tensor<'f32'>; // [2, 3]
let w: Tensor<'f32'>; // [4, 3]
let x16: Tensor<'f16'>; // [2, 3]
let i8: Tensor<'i8'>; // [2, 3]
let i32: Tensor<'i32'>; // [2, 3]
let row: Tensor<'f32'>; // [3]
let scalar: Tensor<'f32'>; // []

beforeAll(() => {
  x = Tensor.randn([2, 3], { seed: 11 });
  w = Tensor.randn([4, 3], { seed: 12 });
  x16 = Tensor.randn([2, 3], { seed: 13, dtype: 'f16' });
  i8 = Tensor.fromArray([1, -2, 3, -4, 5, -6], { shape: [2, 3], dtype: 'i8' });
  i32 = Tensor.fromArray([7, -8, 9, 10, -11, 12], { shape: [2, 3], dtype: 'i32' });
  row = Tensor.randn([3], { seed: 14 });
  scalar = Tensor.fromArray([2.5], { shape: [] });
});
afterAll(() => [x, w, x16, i8, i32, row, scalar].forEach((t) => t.dispose()));
afterEach(sanity);

interface Case {
  name: string;
  f: () => unknown;
  cls: ErrorClass;
  code?: string;
  msg: RegExp;
}

function cases(title: string, list: () => Case[]): void {
  describe(title, () => {
    // The thunks use the fixtures only when called (the fixtures exist after beforeAll).
    const built = list();
    for (const c of built)
      it(`${c.name} -> ${c.cls.name}${c.code ? ` ${c.code}` : ''}`, () => {
        expectError(caught(c.f), c.cls, c.code, c.msg);
      });
  });
}

const T = TypeError;
const R = RangeError;
const L = LlmKernelsError;
const BAD_TYPES: [string, unknown][] = [
  ['a string', 'abc'],
  ['an object', { dtype: 'f32', shape: [2, 3] }],
  ['null', null],
  ['undefined', undefined],
  ['a bigint', 3n],
  ['an array', [1, 2, 3]],
  ['a Float32Array', new Float32Array(6)],
];
const BAD_NUMBERS: [string, unknown][] = [
  ['a string', '2'],
  ['null', null],
  ['undefined', undefined],
  ['a bigint', 2n],
  ['an array', [2]],
  ['an object', { valueOf: () => 2 }],
];

// ---------------------------------------------------------------------------------------------------------------
cases('device()', () => [
  ...[42, null, {}, 1n, ['cpu'], true].map((v) => ({ name: `device(${String(v)})`, f: () => device(v as never), cls: T, msg: house('device', 'spec') })),
  ...['gpu', 'cuda:x', 'CPU', 'cuda:-1', 'cuda:99999', '', 'cuda:', ' cpu', 'cuda:0 '].map((v) => ({
    name: `device(${JSON.stringify(v)})`,
    f: () => device(v as never),
    cls: R,
    msg: house('device', 'spec'),
  })),
  {
    name: 'device(new Device("gpu", 0))',
    f: () => device(new (Device as unknown as new (k: string, i: number) => Device)('gpu', 0)),
    cls: R,
    msg: house('device', 'spec'),
  },
  { name: 'device(new Device("cpu", 3))', f: () => device(new Device('cpu', 3)), cls: R, msg: house('device', 'spec') },
]);

describe('device(): CUDA', () => {
  it.skipIf(cudaAvailable)("device('cuda') without CUDA -> LlmKernelsError ERR_DEVICE naming the reason and the fix", () => {
    for (const spec of ['cuda', 'cuda:0', 'cuda:1'] as const) {
      const e = caught(() => device(spec));
      expectError(e, L, 'ERR_DEVICE', /^device: CUDA unavailable: .+\. Use device\('cpu'\)/s);
      expect(e.message).toContain(native.info().cuda.reason);
    }
  });
  it.skipIf(!cudaAvailable)("device('cuda:N') past the last GPU -> ERR_DEVICE naming the count", () => {
    const n = native.info().cuda.devices.length;
    expectError(caught(() => device(`cuda:${n}`)), L, 'ERR_DEVICE', new RegExp(`^device: no CUDA device ${n}; this machine has ${n}`));
  });
  it.skipIf(!cudaAvailable)('ops across devices -> ERR_DEVICE naming the parameter', () => {
    using g = x.to('cuda');
    using gw = w.to('cuda');
    expectError(caught(() => add(x, g)), L, 'ERR_DEVICE', house('add', 'b'));
    expectError(caught(() => mul(g, x)), L, 'ERR_DEVICE', house('mul', 'b'));
    expectError(caught(() => matmul(x, gw)), L, 'ERR_DEVICE', house('matmul', 'w'));
  });
});

cases('setThreads / roofline', () => [
  ...BAD_NUMBERS.map(([d, v]) => ({ name: `setThreads(${d})`, f: () => setThreads(v as number), cls: T, msg: house('setThreads', 'n') })),
  ...[0, -1, 1.5, 1025, NaN, Infinity].map((v) => ({ name: `setThreads(${v})`, f: () => setThreads(v), cls: R, msg: house('setThreads', 'n') })),
  ...BAD_NUMBERS.filter(([, v]) => v !== undefined).map(([d, v]) => ({
    name: `roofline(${d})`,
    f: () => roofline(v as number),
    cls: T,
    msg: house('roofline', 'threads'),
  })),
  ...[0, 1.5, 2000, NaN].map((v) => ({ name: `roofline(${v})`, f: () => roofline(v), cls: R, msg: house('roofline', 'threads') })),
]);

it('setThreads after the bad calls still has the old count', () => {
  const n = getThreads();
  expect(caught(() => setThreads(0))).toBeInstanceOf(RangeError);
  expect(getThreads()).toBe(n);
});

cases('scalar converters', () => [
  ...(['f16ToF32', 'bf16ToF32'] as const).flatMap((fn) => {
    const f = fn === 'f16ToF32' ? f16ToF32 : bf16ToF32;
    return [
      ...BAD_NUMBERS.map(([d, v]) => ({ name: `${fn}(${d})`, f: () => f(v as number), cls: T, msg: house(fn, 'bits') })),
      ...[-1, 65536, 1.5, NaN, Infinity].map((v) => ({ name: `${fn}(${v})`, f: () => f(v), cls: R, msg: house(fn, 'bits') })),
    ];
  }),
  ...(['f32ToF16', 'f32ToBf16'] as const).flatMap((fn) => {
    const f = fn === 'f32ToF16' ? f32ToF16 : f32ToBf16;
    return BAD_NUMBERS.map(([d, v]) => ({ name: `${fn}(${d})`, f: () => f(v as number), cls: T, msg: house(fn, 'value') }));
  }),
]);

// ---------------------------------------------------------------------------------------------------------------
const FA = 'Tensor.fromArray';
cases('Tensor.fromArray', () => [
  ...(
    [
      ['a string', 'abc'],
      ['null', null],
      ['undefined', undefined],
      ['a number', 42],
      ['an object', {}],
      ['an array-like object', { length: 2, 0: 1, 1: 2 }],
      ['an ArrayBuffer', new ArrayBuffer(8)],
      ['a DataView', new DataView(new ArrayBuffer(8))],
      ['a BigInt64Array', new BigInt64Array(2)],
      ['a BigUint64Array', new BigUint64Array(2)],
      ['an Int16Array without dtype', new Int16Array(2)],
      ['a Uint32Array without dtype', new Uint32Array(2)],
      ['a Uint8ClampedArray without dtype', new Uint8ClampedArray(2)],
    ] as [string, unknown][]
  ).map(([d, v]) => ({ name: `data: ${d}`, f: () => Tensor.fromArray(v as never), cls: T, msg: house(FA, 'data') })),
  { name: 'data: an ArrayBuffer names it with "an"', f: () => Tensor.fromArray(new ArrayBuffer(8) as never), cls: T, msg: /got an ArrayBuffer$/ },
  { name: 'data: [1, "a"]', f: () => Tensor.fromArray([1, 'a'] as never), cls: T, msg: house(FA, 'data[1]') },
  { name: 'data: [1n]', f: () => Tensor.fromArray([1n] as never), cls: T, msg: house(FA, 'data[0]') },
  { name: 'data: [1n] as f16', f: () => Tensor.fromArray([1n] as never, { dtype: 'f16' }), cls: T, msg: house(FA, 'data[0]') },
  { name: 'data: [1, null]', f: () => Tensor.fromArray([1, null] as never), cls: T, msg: house(FA, 'data[1]') },
  { name: 'data: sparse [1, , 3]', f: () => Tensor.fromArray([1, , 3] as never), cls: T, msg: house(FA, 'data[1]') },
  { name: 'data: ["1"] as i8', f: () => Tensor.fromArray(['1'] as never, { dtype: 'i8' }), cls: T, msg: house(FA, 'data[0]') },
  { name: 'Uint16Array without dtype', f: () => Tensor.fromArray(new Uint16Array(2)), cls: T, msg: house(FA, 'options.dtype') },
  { name: "Uint16Array with dtype 'f32'", f: () => Tensor.fromArray(new Uint16Array(2), { dtype: 'f32' }), cls: T, msg: house(FA, 'options.dtype') },
  ...[null, 'f32', [], 42].map((o) => ({ name: `options ${JSON.stringify(o)}`, f: () => Tensor.fromArray([1], o as never), cls: T, msg: house(FA, 'options') })),
  { name: "options.dtype 'f64'", f: () => Tensor.fromArray([1], { dtype: 'f64' as never }), cls: R, msg: house(FA, 'options.dtype') },
  { name: "options.dtype 'F32'", f: () => Tensor.fromArray([1], { dtype: 'F32' as never }), cls: R, msg: house(FA, 'options.dtype') },
  { name: 'options.dtype 0', f: () => Tensor.fromArray([1], { dtype: 0 as never }), cls: T, msg: house(FA, 'options.dtype') },
  { name: "options.shape 'x'", f: () => Tensor.fromArray([1], { shape: 'x' as never }), cls: T, msg: house(FA, 'options.shape') },
  { name: "options.shape [1, '1']", f: () => Tensor.fromArray([1], { shape: [1, '1'] as never }), cls: T, msg: house(FA, 'options.shape') },
  { name: 'options.shape [2, 2] for 3 elements', f: () => Tensor.fromArray([1, 2, 3], { shape: [2, 2] }), cls: R, msg: house(FA, 'data.length') },
  { name: 'options.shape [-1, -3]', f: () => Tensor.fromArray([1, 2, 3], { shape: [-1, -3] }), cls: R, msg: house(FA, 'options.shape') },
  { name: 'options.shape [1.5]', f: () => Tensor.fromArray([1], { shape: [1.5] }), cls: R, msg: house(FA, 'options.shape') },
  { name: 'options.shape [NaN]', f: () => Tensor.fromArray([1], { shape: [NaN] }), cls: R, msg: house(FA, 'options.shape') },
  { name: 'options.shape of 9 dims', f: () => Tensor.fromArray([1], { shape: [1, 1, 1, 1, 1, 1, 1, 1, 1] }), cls: R, msg: house(FA, 'options.shape') },
  { name: 'options.shape [2^27, 2^27] (> 2^53 elements)', f: () => Tensor.fromArray([1], { shape: [2 ** 27, 2 ** 27] }), cls: R, msg: house(FA, 'options.shape') },
  { name: 'i8 data 128', f: () => Tensor.fromArray([1, 128], { dtype: 'i8' }), cls: R, msg: house(FA, 'data[1]') },
  { name: 'i8 data -129', f: () => Tensor.fromArray([-129], { dtype: 'i8' }), cls: R, msg: house(FA, 'data[0]') },
  { name: 'u8 data -1', f: () => Tensor.fromArray([-1], { dtype: 'u8' }), cls: R, msg: house(FA, 'data[0]') },
  { name: 'u8 data 256', f: () => Tensor.fromArray(new Float32Array([256]), { dtype: 'u8' }), cls: R, msg: house(FA, 'data[0]') },
  { name: 'i32 data 1.5', f: () => Tensor.fromArray([1.5], { dtype: 'i32' }), cls: R, msg: house(FA, 'data[0]') },
  { name: 'i32 data 2^31', f: () => Tensor.fromArray([2 ** 31], { dtype: 'i32' }), cls: R, msg: house(FA, 'data[0]') },
  { name: 'i8 data NaN', f: () => Tensor.fromArray([NaN], { dtype: 'i8' }), cls: R, msg: house(FA, 'data[0]') },
  { name: 'i32 data Infinity', f: () => Tensor.fromArray(new Float64Array([Infinity]), { dtype: 'i32' }), cls: R, msg: house(FA, 'data[0]') },
  { name: "options.device 'gpu'", f: () => Tensor.fromArray([1], { device: 'gpu' as never }), cls: R, msg: house(FA, 'options.device') },
  { name: "options.device 'cuda:x'", f: () => Tensor.fromArray([1], { device: 'cuda:x' as never }), cls: R, msg: house(FA, 'options.device') },
  { name: 'options.device 42', f: () => Tensor.fromArray([1], { device: 42 as never }), cls: T, msg: house(FA, 'options.device') },
]);

const FACTORIES = {
  'Tensor.empty': (s: unknown, o?: unknown) => Tensor.empty(s as number[], o as never),
  'Tensor.zeros': (s: unknown, o?: unknown) => Tensor.zeros(s as number[], o as never),
  'Tensor.full': (s: unknown, o?: unknown) => Tensor.full(s as number[], 1.25, o as never),
  'Tensor.rand': (s: unknown, o?: unknown) => Tensor.rand(s as number[], o as never),
  'Tensor.randn': (s: unknown, o?: unknown) => Tensor.randn(s as number[], o as never),
} as const;

cases('Tensor.empty / zeros / full / rand / randn: shape, options', () =>
  Object.entries(FACTORIES).flatMap(([fn, f]) => [
    ...BAD_TYPES.filter(([, v]) => !Array.isArray(v)).map(([d, v]) => ({ name: `${fn}(${d})`, f: () => f(v), cls: T, msg: house(fn, 'shape') })),
    { name: `${fn}(['2'])`, f: () => f(['2']), cls: T, msg: house(fn, 'shape') },
    { name: `${fn}([2n])`, f: () => f([2n]), cls: T, msg: house(fn, 'shape') },
    { name: `${fn}([-1])`, f: () => f([-1]), cls: R, msg: house(fn, 'shape') },
    { name: `${fn}([2, 1.5])`, f: () => f([2, 1.5]), cls: R, msg: house(fn, 'shape') },
    { name: `${fn}([Infinity])`, f: () => f([Infinity]), cls: R, msg: house(fn, 'shape') },
    { name: `${fn}(9 dims)`, f: () => f([1, 1, 1, 1, 1, 1, 1, 1, 1]), cls: R, msg: house(fn, 'shape') },
    { name: `${fn}([2^53])`, f: () => f([2 ** 53]), cls: R, msg: house(fn, 'shape') },
    { name: `${fn}([2^30, 2^30, 2^30]) (overflow)`, f: () => f([2 ** 30, 2 ** 30, 2 ** 30]), cls: R, msg: house(fn, 'shape') },
    { name: `${fn}([2^52]) f32 (> 2^53 bytes)`, f: () => f([2 ** 52]), cls: R, msg: house(fn, 'shape') },
    ...[null, 'f32', [], 7].map((o) => ({ name: `${fn}([2], ${JSON.stringify(o)})`, f: () => f([2], o), cls: T, msg: house(fn, 'options') })),
    { name: `${fn}([2], { dtype: 'f64' })`, f: () => f([2], { dtype: 'f64' }), cls: R, msg: house(fn, 'options.dtype') },
    { name: `${fn}([2], { dtype: 1 })`, f: () => f([2], { dtype: 1 }), cls: T, msg: house(fn, 'options.dtype') },
    { name: `${fn}([2], { device: 'gpu' })`, f: () => f([2], { device: 'gpu' }), cls: R, msg: house(fn, 'options.device') },
    { name: `${fn}([2], { device: 0 })`, f: () => f([2], { device: 0 }), cls: T, msg: house(fn, 'options.device') },
  ]),
);

cases('Tensor.full: value', () => [
  ...BAD_NUMBERS.map(([d, v]) => ({ name: `value ${d}`, f: () => Tensor.full([2], v as number), cls: T, msg: house('Tensor.full', 'value') })),
  { name: 'value NaN for i8', f: () => Tensor.full([2], NaN, { dtype: 'i8' }), cls: R, msg: house('Tensor.full', 'value') },
  { name: 'value 128 for i8', f: () => Tensor.full([2], 128, { dtype: 'i8' }), cls: R, msg: house('Tensor.full', 'value') },
  { name: 'value -1 for u8', f: () => Tensor.full([2], -1, { dtype: 'u8' }), cls: R, msg: house('Tensor.full', 'value') },
  { name: 'value 300 for u8', f: () => Tensor.full([2], 300, { dtype: 'u8' }), cls: R, msg: house('Tensor.full', 'value') },
  { name: 'value 0.5 for i32', f: () => Tensor.full([2], 0.5, { dtype: 'i32' }), cls: R, msg: house('Tensor.full', 'value') },
  { name: 'value 2^31 for i32', f: () => Tensor.full([2], 2 ** 31, { dtype: 'i32' }), cls: R, msg: house('Tensor.full', 'value') },
  { name: 'value -Infinity for i32', f: () => Tensor.full([2], -Infinity, { dtype: 'i32' }), cls: R, msg: house('Tensor.full', 'value') },
]);

cases('Tensor.rand / randn: dtype, seed', () =>
  (['Tensor.rand', 'Tensor.randn'] as const).flatMap((fn) => {
    const f = fn === 'Tensor.rand' ? Tensor.rand : Tensor.randn;
    return [
      ...(['i8', 'u8', 'i32'] as const).map((d) => ({ name: `${fn} dtype ${d}`, f: () => f([2], { dtype: d }), cls: R, msg: house(fn, 'options.dtype') })),
      // undefined and null seeds mean "the default" (like every optional option).
      ...BAD_NUMBERS.filter(([, v]) => v != null).map(([d, v]) => ({
        name: `${fn} seed ${d}`,
        f: () => f([2], { seed: v as number }),
        cls: T,
        msg: house(fn, 'options.seed'),
      })),
      ...[-1, 1.5, 2 ** 32, NaN].map((v) => ({ name: `${fn} seed ${v}`, f: () => f([2], { seed: v }), cls: R, msg: house(fn, 'options.seed') })),
    ];
  }),
);

describe('huge shapes that cannot be allocated: ERR_OOM, never a crash', () => {
  // 2^48 f32 elements are 2^50 bytes: more than any machine's address space, so the allocation fails everywhere.
  const HUGE = [2 ** 48];
  for (const [fn, f] of Object.entries(FACTORIES))
    it(`${fn}([2^48]) -> LlmKernelsError ERR_OOM`, () => {
      expectError(caught(() => f(HUGE)), L, 'ERR_OOM', /out of memory/);
    });
  it("Tensor.full([2^48], 7, { dtype: 'i8' }) -> ERR_OOM", () => {
    expectError(caught(() => Tensor.full(HUGE, 7, { dtype: 'i8' })), L, 'ERR_OOM', /out of memory/);
  });
  it('matmul whose output cannot be allocated (x [2^24, 0], w [2^26, 0]) -> ERR_OOM', () => {
    using a = Tensor.empty([2 ** 24, 0]);
    using b = Tensor.empty([2 ** 26, 0]);
    expectError(caught(() => matmul(a, b)), L, 'ERR_OOM', /out of memory/);
  });
  it('zero-size tensors with huge other dimensions run at once (no loop over the huge dimension)', async () => {
    using a = Tensor.empty([2 ** 53 - 1, 0]);
    using b = Tensor.empty([0]);
    using s = add(a, b);
    using m = matmul(Tensor.empty([2 ** 50, 0]), Tensor.empty([0, 0]));
    using z = Tensor.zeros([0, 2 ** 26, 2 ** 26]);
    // Empty, but the product of its other dimensions overflows what kernels may compute: refused.
    expectError(caught(() => Tensor.zeros([0, 2 ** 52, 2 ** 52])), R, undefined, /^Tensor.zeros: expected at most 2\^53 elements for shape/);
    expect([(await s.data()).length, (await m.data()).length, (await z.data()).length]).toEqual([0, 0, 0]);
    expect(m.shape).toEqual([2 ** 50, 0]);
  });
  it('matmul whose output has more than 2^53 elements (x [2^30, 0], w [2^30, 0]) -> RangeError', () => {
    using a = Tensor.empty([2 ** 30, 0]);
    using b = Tensor.empty([2 ** 30, 0]);
    expectError(caught(() => matmul(a, b)), R, undefined, /^matmul: expected at most 2\^53 elements \(counting non-zero dimensions\) for output shape, got more$/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
cases('Tensor methods: reshape, view, slice, cast, to', () => [
  ...(['reshape', 'view'] as const).flatMap((m) => [
    ...BAD_TYPES.filter(([, v]) => !Array.isArray(v)).map(([d, v]) => ({ name: `${m}(${d})`, f: () => x[m](v as never), cls: T, msg: house(m, 'shape') })),
    { name: `${m}([6, 'a'])`, f: () => x[m]([6, 'a'] as never), cls: T, msg: house(m, 'shape') },
    { name: `${m}([7])`, f: () => x[m]([7]), cls: R, msg: house(m, 'shape') },
    { name: `${m}([-1, -1])`, f: () => x[m]([-1, -1]), cls: R, msg: house(m, 'shape') },
    { name: `${m}([-2, -3])`, f: () => x[m]([-2, -3]), cls: R, msg: house(m, 'shape') },
    { name: `${m}([4, 1.5])`, f: () => x[m]([4, 1.5]), cls: R, msg: house(m, 'shape') },
    { name: `${m}([-1, 4])`, f: () => x[m]([-1, 4]), cls: R, msg: house(m, 'shape') },
    { name: `${m}([-1, 0])`, f: () => x[m]([-1, 0]), cls: R, msg: house(m, 'shape') },
    { name: `${m}(9 dims)`, f: () => x[m]([6, 1, 1, 1, 1, 1, 1, 1, 1]), cls: R, msg: house(m, 'shape') },
  ]),
  ...BAD_NUMBERS.filter(([, v]) => v !== undefined).map(([d, v]) => ({ name: `slice(${d})`, f: () => x.slice(v as number), cls: T, msg: house('slice', 'start') })),
  { name: "slice(0, '1')", f: () => x.slice(0, '1' as never), cls: T, msg: house('slice', 'end') },
  { name: 'slice(0, null)', f: () => x.slice(0, null as never), cls: T, msg: house('slice', 'end') },
  { name: 'slice(1.5)', f: () => x.slice(1.5), cls: R, msg: house('slice', 'start') },
  { name: 'slice(NaN)', f: () => x.slice(NaN), cls: R, msg: house('slice', 'start') },
  { name: 'slice(0, Infinity)', f: () => x.slice(0, Infinity), cls: R, msg: house('slice', 'end') },
  { name: 'slice(-Infinity)', f: () => x.slice(-Infinity), cls: R, msg: house('slice', 'start') },
  { name: 'slice of a 0-d tensor', f: () => scalar.slice(0), cls: R, msg: house('slice', 'tensor') },
  ...(['i8', 'u8', 'i32', 'f64', 'F16', ''] as const).map((d) => ({ name: `cast('${d}')`, f: () => x.cast(d as never), cls: R, msg: house('cast', 'dtype') })),
  ...BAD_TYPES.filter(([, v]) => typeof v !== 'string').map(([d, v]) => ({ name: `cast(${d})`, f: () => x.cast(v as never), cls: T, msg: house('cast', 'dtype') })),
  { name: "to('gpu')", f: () => x.to('gpu' as never), cls: R, msg: house('to', 'device') },
  { name: "to('cuda:x')", f: () => x.to('cuda:x' as never), cls: R, msg: house('to', 'device') },
  ...[42, null, undefined, {}].map((v) => ({ name: `to(${String(v)})`, f: () => x.to(v as never), cls: T, msg: house('to', 'device') })),
  {
    name: 'new Tensor(plain object, ...)',
    f: () => new Tensor({} as never, 'f32', [1], device('cpu')),
    cls: T,
    msg: house('Tensor', 'handle'),
  },
]);

describe('CUDA requests without CUDA name the function, the reason and the fix', () => {
  const re = (fn: string) => new RegExp(`^${fn.replace('.', '\\.')}: CUDA unavailable: .+\\. Use device\\('cpu'\\)`, 's');
  it.skipIf(cudaAvailable)("factories with device 'cuda' -> ERR_DEVICE", () => {
    for (const [fn, f] of Object.entries(FACTORIES)) expectError(caught(() => f([2], { device: 'cuda' })), L, 'ERR_DEVICE', re(fn));
    expectError(caught(() => Tensor.fromArray([1], { device: 'cuda:0' })), L, 'ERR_DEVICE', re(FA));
  });
  it.skipIf(cudaAvailable)("to('cuda') -> ERR_DEVICE", () => {
    const e = caught(() => x.to('cuda'));
    expectError(e, L, 'ERR_DEVICE', re('to'));
    expect(e.message).toContain(native.info().cuda.reason);
  });
});

// ---------------------------------------------------------------------------------------------------------------
cases('add / mul', () =>
  (['add', 'mul'] as const).flatMap((fn) => {
    const f = fn === 'add' ? add : mul;
    return [
      ...BAD_TYPES.map(([d, v]) => ({ name: `${fn}(${d}, x)`, f: () => f(v as never, x), cls: T, msg: house(fn, 'a') })),
      ...BAD_TYPES.map(([d, v]) => ({ name: `${fn}(x, ${d})`, f: () => f(x, v as never), cls: T, msg: house(fn, 'b') })),
      { name: `${fn}(i8, i8)`, f: () => f(i8 as never, i8 as never), cls: T, msg: house(fn, 'a.dtype') },
      { name: `${fn}(i32, i32)`, f: () => f(i32 as never, i32 as never), cls: T, msg: house(fn, 'a.dtype') },
      { name: `${fn}(f32, f16)`, f: () => f(x as never, x16 as never), cls: T, msg: house(fn, 'b.dtype') },
      { name: `${fn}(f16, f32)`, f: () => f(x16 as never, x as never), cls: T, msg: house(fn, 'b.dtype') },
      { name: `${fn}(f32, i8)`, f: () => f(x as never, i8 as never), cls: T, msg: house(fn, 'b.dtype') },
      { name: `${fn}([2,3], [3,2])`, f: () => f(x, x.reshape([3, 2])), cls: R, msg: house(fn, 'b.shape') },
      { name: `${fn}([2,3], [2]) (broadcast of the wrong dimension)`, f: () => f(x, x.slice(0, 1).reshape([3]).slice(0, 2)), cls: R, msg: house(fn, 'b.shape') },
      { name: `${fn}([2,3], [1,3]) (2-d broadcast is not supported)`, f: () => f(x, x.slice(0, 1)), cls: R, msg: house(fn, 'b.shape') },
      { name: `${fn}([3], [2,3]) (reversed broadcast)`, f: () => f(row, x), cls: R, msg: house(fn, 'b.shape') },
      { name: `${fn}([], [1])`, f: () => f(scalar, row.slice(0, 1)), cls: R, msg: house(fn, 'b.shape') },
      { name: `${fn}([2,3], [6])`, f: () => f(x, x.reshape([6])), cls: R, msg: house(fn, 'b.shape') },
    ];
  }),
);

cases('scale', () => [
  ...BAD_TYPES.map(([d, v]) => ({ name: `scale(${d}, 2)`, f: () => scale(v as never, 2), cls: T, msg: house('scale', 'x') })),
  ...BAD_NUMBERS.map(([d, v]) => ({ name: `scale(x, ${d})`, f: () => scale(x, v as number), cls: T, msg: house('scale', 'alpha') })),
  ...[NaN, Infinity, -Infinity, 1e39, -3.5e38, Number.MAX_VALUE].map((v) => ({
    name: `scale(x, ${v})`,
    f: () => scale(x, v),
    cls: R,
    msg: house('scale', 'alpha'),
  })),
  { name: 'scale(i32, 2)', f: () => scale(i32 as never, 2), cls: T, msg: house('scale', 'x.dtype') },
  { name: 'scale(i8, 2)', f: () => scale(i8 as never, 2), cls: T, msg: house('scale', 'x.dtype') },
]);

cases('cast / copy', () => [
  ...BAD_TYPES.map(([d, v]) => ({ name: `cast(${d}, 'f16')`, f: () => cast(v as never, 'f16'), cls: T, msg: house('cast', 'x') })),
  { name: "cast(x, 'i8')", f: () => cast(x, 'i8'), cls: R, msg: house('cast', 'dtype') },
  { name: "cast(x, 'f64')", f: () => cast(x, 'f64' as never), cls: R, msg: house('cast', 'dtype') },
  { name: 'cast(x, 1)', f: () => cast(x, 1 as never), cls: T, msg: house('cast', 'dtype') },
  { name: 'cast(x, undefined)', f: () => cast(x, undefined as never), cls: T, msg: house('cast', 'dtype') },
  ...BAD_TYPES.map(([d, v]) => ({ name: `copy(${d})`, f: () => copy(v as never), cls: T, msg: house('copy', 'x') })),
]);

cases('matmul', () => [
  ...BAD_TYPES.map(([d, v]) => ({ name: `matmul(${d}, w)`, f: () => matmul(v as never, w), cls: T, msg: house('matmul', 'x') })),
  ...BAD_TYPES.map(([d, v]) => ({ name: `matmul(x, ${d})`, f: () => matmul(x, v as never), cls: T, msg: house('matmul', 'w') })),
  { name: 'matmul(i8, i8)', f: () => matmul(i8 as never, i8 as never), cls: T, msg: house('matmul', 'x.dtype') },
  { name: 'matmul(f32, f16)', f: () => matmul(x as never, x16 as never), cls: T, msg: house('matmul', 'w.dtype') },
  { name: 'matmul(f16, f32)', f: () => matmul(x16 as never, w as never), cls: T, msg: house('matmul', 'w.dtype') },
  { name: 'matmul(f32, i32)', f: () => matmul(x as never, i32 as never), cls: T, msg: house('matmul', 'w.dtype') },
  {
    name: 'matmul(x [2,3], w [2,2]) (mismatched K)',
    f: () => matmul(x, w.reshape([6, 2]).slice(0, 2)),
    cls: R,
    msg: /^matmul: expected w\.shape\[1\] to equal x's last dimension \(K=3\) for w\.shape\[1\], got 2$/,
  },
  { name: 'matmul(x [2,3], w [3,2]) (w transposed)', f: () => matmul(x, x.reshape([3, 2])), cls: R, msg: house('matmul', 'w.shape[1]') },
  { name: 'matmul(x, w [3]) (1-d w)', f: () => matmul(x, row), cls: R, msg: house('matmul', 'w.shape') },
  { name: 'matmul(x, w [1,4,3]) (3-d w)', f: () => matmul(x, w.reshape([1, 4, 3])), cls: R, msg: house('matmul', 'w.shape') },
  { name: 'matmul(x [], w)', f: () => matmul(scalar, w.reshape([12, 1])), cls: R, msg: house('matmul', 'x.shape') },
]);

// ---------------------------------------------------------------------------------------------------------------
describe('disposed tensors: every op and method -> LlmKernelsError ERR_DISPOSED', () => {
  const dead = (fn: string, param: string) => new RegExp(`^${fn}: expected a live tensor for ${param.replace(/[.[\]]/g, '\\$&')}, got a disposed tensor$`);
  const mk = () => Tensor.randn([2, 3], { seed: 21 });
  const sync: [string, (d: Tensor<'f32'>) => unknown, string, string][] = [
    ['dataSync()', (d) => d.dataSync(), 'dataSync', 'tensor'],
    ["to('cpu')", (d) => d.to('cpu'), 'to', 'tensor'],
    ["to('gpu') (liveness first)", (d) => d.to('gpu' as never), 'to', 'tensor'],
    ["cast('f16')", (d) => d.cast('f16'), 'cast', 'x'],
    ['clone()', (d) => d.clone(), 'clone', 'x'],
    ['reshape([6])', (d) => d.reshape([6]), 'reshape', 'tensor'],
    ['reshape([-1])', (d) => d.reshape([-1]), 'reshape', 'tensor'],
    ['view([3, 2])', (d) => d.view([3, 2]), 'view', 'tensor'],
    ['slice(0)', (d) => d.slice(0), 'slice', 'tensor'],
    ['slice(-1, 2)', (d) => d.slice(-1, 2), 'slice', 'tensor'],
    ['add(d, x)', (d) => add(d, x), 'add', 'a'],
    ['add(x, d)', (d) => add(x, d), 'add', 'b'],
    ['mul(d, x)', (d) => mul(d, x), 'mul', 'a'],
    ['mul(x, d)', (d) => mul(x, d), 'mul', 'b'],
    ['add(d, d)', (d) => add(d, d), 'add', 'a'],
    ['scale(d, 2)', (d) => scale(d, 2), 'scale', 'x'],
    ["cast(d, 'bf16')", (d) => cast(d, 'bf16'), 'cast', 'x'],
    ['copy(d)', (d) => copy(d), 'copy', 'x'],
    ['matmul(d, w)', (d) => matmul(d, w), 'matmul', 'x'],
    ['matmul(x, d)', (d) => matmul(x, d.reshape === undefined ? d : d), 'matmul', 'w'],
  ];
  for (const [name, f, fn, param] of sync)
    it(`${name} -> ERR_DISPOSED naming ${fn} and ${param}`, () => {
      const d = mk();
      d.dispose();
      expectError(caught(() => f(d)), L, 'ERR_DISPOSED', dead(fn, param));
    });

  const async: [string, (d: Tensor<'f32'>) => Promise<unknown>, string][] = [
    ['data()', (d) => d.data(), 'data'],
    ['toFloat32()', (d) => d.toFloat32(), 'toFloat32'],
    ['toArray()', (d) => d.toArray(), 'toArray'],
  ];
  for (const [name, f, fn] of async)
    it(`${name} -> rejects with ERR_DISPOSED naming ${fn}`, async () => {
      const d = mk();
      d.dispose();
      expectError(await rejected(f(d)), L, 'ERR_DISPOSED', dead(fn, 'tensor'));
    });

  it('a disposed f16 tensor: toFloat32() rejects too (no cast attempted)', async () => {
    const d = Tensor.randn([4], { seed: 2, dtype: 'f16' });
    d.dispose();
    expectError(await rejected(d.toFloat32()), L, 'ERR_DISPOSED', dead('toFloat32', 'tensor'));
  });

  it('metadata stays readable, dispose() stays idempotent, toString says disposed', () => {
    const d = mk();
    d.dispose();
    d.dispose();
    d[Symbol.dispose]();
    expect(d.disposed).toBe(true);
    expect([d.numel, d.ndim, d.nbytes, d.dtype, d.shape]).toEqual([6, 2, 24, 'f32', [2, 3]]);
    expect(d.toString()).toBe('Tensor(f32, [2,3], cpu, disposed)');
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('LlmKernelsError', () => {
  it('is an Error with a name and a stable code', () => {
    const e = new LlmKernelsError('ERR_KV_FULL', 'kv: full', { cause: 1 });
    expect(e).toBeInstanceOf(Error);
    expect([e.name, e.code, e.message, e.cause]).toEqual(['LlmKernelsError', 'ERR_KV_FULL', 'kv: full', 1]);
  });
  it('native errors other than type/range come as LlmKernelsError (the class set at load)', () => {
    const e = caught(() => native.empty(0, 0, 0, [2 ** 48]));
    expectError(e, L, 'ERR_OOM', /^out of memory: /);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The raw binding: the native layer re-validates everything the TypeScript layer checked, and never crashes.
describe('native guard (raw binding)', () => {
  const F32 = DTYPE_ID.f32;
  const op = (name: string) => native.opNames().indexOf(name);
  const h = () => x.handle('test');
  const anyNative = native as unknown as Record<string, (...a: unknown[]) => unknown>;

  const list: () => Case[] = () => [
    // handles are numbers: anything else is a TypeError, a number that names no live tensor ERR_DISPOSED
    ...(['read', 'readSync', 'view', 'to'] as const).flatMap((fn) => {
      const label = fn === 'read' ? 'data' : fn === 'readSync' ? 'dataSync' : fn;
      return [
        { name: `${fn}({})`, f: () => anyNative[fn]!({}, 0, 0, [1]), cls: T, msg: new RegExp(`^${label}: expected a tensor for tensor, got `) },
        { name: `${fn}('1')`, f: () => anyNative[fn]!('1', 0, 0, [1]), cls: T, msg: new RegExp(`^${label}: expected a tensor for tensor, got `) },
        { name: `${fn}(forged id 123456789)`, f: () => anyNative[fn]!(123456789, 0, 0, [1]), cls: L, code: 'ERR_DISPOSED', msg: new RegExp(`^${label}: expected a live tensor for tensor, got a disposed tensor$`) },
        { name: `${fn}(-1)`, f: () => anyNative[fn]!(-1, 0, 0, [1]), cls: L, code: 'ERR_DISPOSED', msg: new RegExp(`^${label}: expected a live tensor`) },
        { name: `${fn}(0.5)`, f: () => anyNative[fn]!(0.5, 0, 0, [1]), cls: L, code: 'ERR_DISPOSED', msg: new RegExp(`^${label}: expected a live tensor`) },
        { name: `${fn}(NaN)`, f: () => anyNative[fn]!(NaN, 0, 0, [1]), cls: L, code: 'ERR_DISPOSED', msg: new RegExp(`^${label}: expected a live tensor`) },
      ];
    }),
    // arguments: counts and types
    ...(['empty', 'fromBytes', 'run', 'synchronizeSync', 'synchronize', 'setThreads', 'tolerance', 'roofline'] as const).map((fn) => ({
      name: `${fn}() with no arguments`,
      f: () => anyNative[fn]!(),
      cls: T,
      msg: new RegExp(`^${fn === 'fromBytes' ? 'fromArray' : fn}: expected an integer for \\w+`),
    })),
    { name: 'setSimd()', f: () => anyNative.setSimd!(), cls: T, msg: /^setSimd: expected 'avx512', 'avx2' or 'scalar' for level/ },
    { name: "setSimd('sse')", f: () => anyNative.setSimd!('sse'), cls: R, msg: /^setSimd: expected 'avx512', 'avx2' or 'scalar' for level, got 'sse'$/ },
    { name: 'setErrorClass(1)', f: () => anyNative.setErrorClass!(1), cls: T, msg: house('setErrorClass', 'ctor') },
    { name: "empty(0, 0, 0, 'abc')", f: () => anyNative.empty!(0, 0, F32, 'abc'), cls: T, msg: house('empty', 'shape') },
    { name: "empty(0, 0, 0, ['a'])", f: () => anyNative.empty!(0, 0, F32, ['a']), cls: T, msg: house('empty', 'shape') },
    { name: 'empty(0, 0, 0, [-1])', f: () => native.empty(0, 0, F32, [-1]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty(0, 0, 0, [1.5])', f: () => native.empty(0, 0, F32, [1.5]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty(0, 0, 0, [2^53 + 2])', f: () => native.empty(0, 0, F32, [2 ** 53 + 2]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty(9 dims)', f: () => native.empty(0, 0, F32, [1, 1, 1, 1, 1, 1, 1, 1, 1]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty([2^30, 2^30, 2^30]) (element overflow)', f: () => native.empty(0, 0, F32, [2 ** 30, 2 ** 30, 2 ** 30]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty([2^31, 2^31, 2^31, 2^31]) (int64 overflow)', f: () => native.empty(0, 0, F32, [2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty([2^52]) f32 (byte overflow)', f: () => native.empty(0, 0, F32, [2 ** 52]), cls: R, msg: house('empty', 'shape') },
    { name: 'empty dtype 7', f: () => native.empty(0, 0, 7, [1]), cls: R, msg: house('empty', 'dtype') },
    { name: 'empty dtype -1', f: () => native.empty(0, 0, -1, [1]), cls: R, msg: house('empty', 'dtype') },
    { name: "empty dtype 'f32'", f: () => anyNative.empty!(0, 0, 'f32', [1]), cls: T, msg: house('empty', 'dtype') },
    { name: 'empty device kind 2', f: () => native.empty(2, 0, F32, [1]), cls: R, msg: house('empty', 'device kind') },
    { name: 'empty device kind 0.5', f: () => native.empty(0.5, 0, F32, [1]), cls: R, msg: house('empty', 'device kind') },
    { name: 'empty cpu index 1', f: () => native.empty(0, 1, F32, [1]), cls: R, msg: /^empty: expected device index 0 for cpu, got 1$/ },
    { name: 'empty index 1024', f: () => native.empty(0, 1024, F32, [1]), cls: R, msg: house('empty', 'device index') },
    { name: 'fromBytes(…, 12 bytes for [4])', f: () => native.fromBytes(0, 0, F32, [4], new Float32Array(3)), cls: R, msg: /^fromArray: expected 16 bytes of data for shape \[4\], got 12$/ },
    { name: 'fromBytes(…, {})', f: () => anyNative.fromBytes!(0, 0, F32, [1], {}), cls: T, msg: /^fromArray: expected a typed array or ArrayBuffer for data/ },
    { name: 'fromBytes(…, missing data)', f: () => anyNative.fromBytes!(0, 0, F32, [1]), cls: T, msg: /^fromArray: expected a typed array or ArrayBuffer for data/ },
    // run(): op, backend, device, inputs, output
    { name: 'run(op 99)', f: () => native.run(99, 1, 0, 0, [], F32, [1]), cls: R, msg: house('run', 'op') },
    { name: "run(op 'add')", f: () => anyNative.run!('add', 1, 0, 0, [], F32, [1]), cls: T, msg: house('run', 'op') },
    { name: 'run(backend 3)', f: () => native.run(op('copy'), 3, 0, 0, [h()], F32, [2, 3]), cls: R, msg: house('copy', 'backend') },
    { name: 'run(backend cuda on cpu)', f: () => native.run(op('copy'), 2, 0, 0, [h()], F32, [2, 3]), cls: R, msg: /^copy: expected backend cuda to match the device, got cpu$/ },
    { name: "run(inputs 'x')", f: () => anyNative.run!(op('copy'), 1, 0, 0, 'x', F32, [2, 3]), cls: T, msg: /^copy: expected an array of tensors for inputs/ },
    { name: 'run(inputs [{}])', f: () => native.run(op('copy'), 1, 0, 0, [{} as never], F32, [2, 3]), cls: T, msg: /^copy: expected a tensor for inputs\[0\], got / },
    { name: 'run(inputs [null])', f: () => native.run(op('copy'), 1, 0, 0, [null as never], F32, [2, 3]), cls: T, msg: /^copy: expected a tensor for inputs\[0\], got / },
    { name: 'run(inputs [a Tensor]) (the wrapper, not its handle)', f: () => native.run(op('copy'), 1, 0, 0, [x as never], F32, [2, 3]), cls: T, msg: /^copy: expected a tensor for inputs\[0\], got / },
    { name: 'run(inputs [h, "x"])', f: () => native.run(op('add'), 1, 0, 0, [h(), 'x' as never], F32, [2, 3]), cls: T, msg: /^add: expected a tensor for inputs\[1\], got / },
    { name: 'run(copy with 5 inputs)', f: () => native.run(op('copy'), 1, 0, 0, [h(), h(), h(), h(), h()], F32, [2, 3]), cls: R, msg: /^copy: expected 1 tensors for inputs, got 5$/ },
    { name: 'run(add with 1 input)', f: () => native.run(op('add'), 1, 0, 0, [h()], F32, [2, 3]), cls: R, msg: /^add: expected 2 tensors for inputs, got 1$/ },
    { name: 'run(fill with 1 input)', f: () => native.run(op('fill'), 1, 0, 0, [h()], F32, [2, 3]), cls: R, msg: /^fill: expected 0 tensors for inputs, got 1$/ },
    { name: 'run(copy into 7 elements)', f: () => native.run(op('copy'), 1, 0, 0, [h()], F32, [7]), cls: R, msg: house('copy', 'y') },
    { name: 'run(copy into another dtype)', f: () => native.run(op('copy'), 1, 0, 0, [h()], DTYPE_ID.f16, [2, 3]), cls: T, msg: house('copy', 'y.dtype') },
    { name: 'run(cast to i8)', f: () => native.run(op('cast'), 1, 0, 0, [h()], DTYPE_ID.i8, [2, 3]), cls: T, msg: house('cast', 'y.dtype') },
    { name: 'run(add with y of another shape)', f: () => native.run(op('add'), 1, 0, 0, [h(), h()], F32, [3, 2]), cls: R, msg: house('add', 'y.shape') },
    { name: 'run(add with y f16)', f: () => native.run(op('add'), 1, 0, 0, [h(), h()], DTYPE_ID.f16, [2, 3]), cls: T, msg: house('add', 'y.dtype') },
    { name: 'run(add of i8)', f: () => native.run(op('add'), 1, 0, 0, [i8.handle('t'), i8.handle('t')], DTYPE_ID.i8, [2, 3]), cls: T, msg: house('add', 'a.dtype') },
    { name: 'run(add with a bad broadcast)', f: () => native.run(op('add'), 1, 0, 0, [h(), w.handle('t')], F32, [2, 3]), cls: R, msg: house('add', 'b.shape') },
    { name: 'run(scale with alpha Infinity)', f: () => native.run(op('scale'), 1, 0, 0, [h()], F32, [2, 3], Infinity), cls: R, msg: house('scale', 'alpha') },
    { name: 'run(scale with alpha NaN)', f: () => native.run(op('scale'), 1, 0, 0, [h()], F32, [2, 3], NaN), cls: R, msg: house('scale', 'alpha') },
    { name: 'run(fill i8 with NaN)', f: () => native.run(op('fill'), 1, 0, 0, [], DTYPE_ID.i8, [2], NaN), cls: R, msg: house('fill', 'value') },
    { name: 'run(fill u8 with 256)', f: () => native.run(op('fill'), 1, 0, 0, [], DTYPE_ID.u8, [2], 256), cls: R, msg: house('fill', 'value') },
    { name: 'run(fill i32 with 0.5)', f: () => native.run(op('fill'), 1, 0, 0, [], DTYPE_ID.i32, [2], 0.5), cls: R, msg: house('fill', 'value') },
    { name: 'run(matmul K mismatch)', f: () => native.run(op('matmul'), 1, 0, 0, [h(), native.view(h(), 0, F32, [3, 2])], F32, [2, 3]), cls: R, msg: house('matmul', 'w.shape[1]') },
    { name: 'run(matmul with a wrong y)', f: () => native.run(op('matmul'), 1, 0, 0, [h(), w.handle('t')], F32, [2, 5]), cls: R, msg: house('matmul', 'y.shape') },
    { name: 'run(output shape overflow)', f: () => native.run(op('fill'), 1, 0, 0, [], F32, [2 ** 30, 2 ** 30, 2 ** 30], 1), cls: R, msg: house('fill', 'output shape') },
    { name: 'run(output dtype 7)', f: () => native.run(op('fill'), 1, 0, 0, [], 7, [1], 1), cls: R, msg: house('fill', 'output dtype') },
    // tensor handles
    { name: 'view(past the end)', f: () => native.view(h(), 4, F32, [100]), cls: R, msg: /^view: expected a view within the tensor's 24 bytes, got bytes \[4, 404\)$/ },
    { name: 'view(offset -4)', f: () => native.view(h(), -4, F32, [1]), cls: R, msg: house('view', 'byteOffset') },
    { name: 'view(offset 25)', f: () => native.view(h(), 25, F32, [0]), cls: R, msg: house('view', 'byteOffset') },
    { name: 'view(misaligned offset)', f: () => native.view(h(), 2, F32, [1]), cls: R, msg: /^view: expected byteOffset aligned to 4 bytes, got 2$/ },
    { name: 'view(dtype 7)', f: () => native.view(h(), 0, 7, [1]), cls: R, msg: house('view', 'dtype') },
    { name: 'view(huge shape)', f: () => native.view(h(), 0, F32, [2 ** 40, 2 ** 20]), cls: R, msg: /^view: / },
    { name: 'view() with no arguments', f: () => (native.view as unknown as (t: number) => unknown)(h()), cls: T, msg: house('view', 'byteOffset') },
    { name: "to('a', 0)", f: () => (native.to as unknown as (t: number, a: unknown, b: unknown) => unknown)(h(), 'a', 0), cls: T, msg: house('to', 'device kind') },
    { name: 'to(2, 0)', f: () => native.to(h(), 2, 0), cls: R, msg: house('to', 'device kind') },
    { name: 'to(0, 1)', f: () => native.to(h(), 0, 1), cls: R, msg: /^to: expected device index 0 for cpu, got 1$/ },
    { name: 'to() with no arguments', f: () => (native.to as unknown as (t: number) => unknown)(h()), cls: T, msg: house('to', 'device kind') },
    { name: "synchronizeSync('x')", f: () => anyNative.synchronizeSync!('x', 0), cls: T, msg: house('synchronizeSync', 'device kind') },
    { name: 'synchronize({})', f: () => anyNative.synchronize!({}, 0), cls: T, msg: house('synchronize', 'device kind') },
    { name: 'tolerance(99, 0)', f: () => native.tolerance(99, 0), cls: R, msg: house('tolerance', 'op') },
    { name: 'tolerance(0, 9)', f: () => native.tolerance(0, 9), cls: R, msg: house('tolerance', 'dtype') },
    { name: 'setThreads(0)', f: () => native.setThreads(0), cls: R, msg: house('setThreads', 'threads') },
    { name: 'roofline(0)', f: () => native.roofline(0), cls: R, msg: house('roofline', 'threads') },
  ];
  for (const c of list())
    it(`${c.name} -> ${c.cls.name}`, () => {
      const e = caught(c.f);
      if ('code' in c && c.code === undefined) {
        expect(e).toBeInstanceOf(c.cls);
        expect(e.message).toMatch(c.msg);
      } else expectError(e, c.cls, c.code, c.msg);
    });

  it('dispose() and isLive() of garbage are harmless no-ops', () => {
    for (const v of [{}, undefined, 'x', -1, 0.5, NaN, 2 ** 60, 123456789]) {
      expect(() => anyNative.dispose!(v)).not.toThrow();
      expect(anyNative.isLive!(v)).toBe(false);
    }
    expect(native.isLive(h())).toBe(true);
  });

  it('a disposed handle: ERR_DISPOSED from every method and as an input; dispose() idempotent', async () => {
    const t = Tensor.randn([2, 3], { seed: 5 });
    const hd = t.handle('test');
    native.dispose(hd);
    native.dispose(hd);
    expect(native.isLive(hd)).toBe(false);
    // a new tensor may reuse the slot: the old id still names nothing (its generation moved on)
    using other = Tensor.randn([2, 3], { seed: 6 });
    expect(native.isLive(hd)).toBe(false);
    expect(native.isLive(other.handle('test'))).toBe(true);
    expectError(caught(() => native.readSync(hd)), L, 'ERR_DISPOSED', /^dataSync: expected a live tensor for tensor, got a disposed tensor$/);
    expectError(caught(() => native.read(hd)), L, 'ERR_DISPOSED', /^data: expected a live tensor for tensor, got a disposed tensor$/);
    expectError(caught(() => native.view(hd, 0, F32, [1])), L, 'ERR_DISPOSED', /^view: expected a live tensor for tensor, got a disposed tensor$/);
    expectError(caught(() => native.to(hd, 0, 0)), L, 'ERR_DISPOSED', /^to: expected a live tensor for tensor, got a disposed tensor$/);
    expectError(caught(() => native.run(op('copy'), 1, 0, 0, [hd], F32, [2, 3])), L, 'ERR_DISPOSED', /^copy: expected a live tensor for inputs\[0\], got a disposed tensor$/);
    expectError(caught(() => native.run(op('add'), 1, 0, 0, [h(), hd], F32, [2, 3])), L, 'ERR_DISPOSED', /^add: expected a live tensor for inputs\[1\]/);
    // The wrapper does not know its handle was disposed under it; the native layer still refuses.
    expectError(caught(() => t.dataSync()), L, 'ERR_DISPOSED', /^dataSync: /);
    expectError(caught(() => scale(t, 2)), L, 'ERR_DISPOSED', /^scale: expected a live tensor for (x|inputs\[0\])/);
    t.dispose();
  });

  it.skipIf(cudaAvailable)('CUDA entry points without CUDA -> ERR_DEVICE with the reason', async () => {
    const reason = native.info().cuda.reason;
    for (const f of [() => native.empty(1, 0, F32, [1]), () => native.to(h(), 1, 0), () => native.synchronizeSync(1, 0), () => native.synchronize(1, 0)]) {
      const e = caught(f);
      expectError(e, L, 'ERR_DEVICE', /CUDA unavailable: /);
      expect(e.message).toContain(reason);
    }
    expectError(caught(() => native.run(op('copy'), 2, 1, 0, [h()], F32, [2, 3])), L, 'ERR_DEVICE', /^copy: expected every input on cuda:0, got inputs\[0\] on cpu$/);
  });

  it('valid raw calls still work after all that garbage: empty, fromBytes, run on ref and cpu, view, to, read', async () => {
    const data = new Float32Array([1.5, -2, 3.25, 4, -5.5, 6]);
    const a = native.fromBytes(0, 0, F32, [2, 3], data);
    const e = native.empty(0, 0, F32, [0]);
    const ref = native.run(op('scale'), 0, 0, 0, [a], F32, [2, 3], 2);
    const cpu = native.run(op('scale'), 1, 0, 0, [a], F32, [2, 3], 2);
    const v = native.view(cpu, 12, F32, [3]);
    const moved = native.to(v, 0, 0);
    expect(Array.from(new Float32Array(await native.read(ref)))).toEqual([3, -4, 6.5, 8, -11, 12]);
    expect(Array.from(new Float32Array(native.readSync(cpu)))).toEqual([3, -4, 6.5, 8, -11, 12]);
    expect(Array.from(new Float32Array(await native.read(moved)))).toEqual([8, -11, 12]);
    expect(new Float32Array(native.readSync(e)).length).toBe(0);
    for (const t of [a, e, ref, cpu, v, moved]) native.dispose(t);
  });
});
