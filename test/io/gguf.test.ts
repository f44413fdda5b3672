// GGUF: (1) the valid fixture (every metadata type, typed and nested arrays, supported and unsupported tensor types)
// through parseGgufHeader, parseGgufHeaderAt and GgufFile.open; (2) encodeGguf -> parse round trips and its argument
// errors; (3) a corpus of crafted bad files, each refused through both entry points with the right code and a message
// naming the file and the field; (4) the Llama bridge on the bundled tiny-py model: hfToGguf -> GgufFile ->
// ggufLlamaConfig / ggufWeightSource against the safetensors checkpoint (bytes for F32 / BF16, the library's own
// quantizer for Q8_0 / Q4_0, the q/k permutation in the file and undone by the source), plus synthetic qwen2 /
// mistral / tied / biased / scaled configs; (5) property-based fuzzing: mutated, truncated and random files either
// parse to tensors inside the file or throw LlmKernelsError / RangeError / TypeError, reading nothing past the end.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ToF16 } from '../../lib/dtype.js';
import { LlmKernelsError } from '../../lib/errors.js';
import { loadLlamaConfig, type LlamaConfig } from '../../lib/io/hf-config.js';
import {
  encodeGguf,
  GGML_TYPES,
  GgufFile,
  ggufLlamaConfig,
  ggufQuantize,
  ggufToHfTensorName,
  ggufWeightSource,
  hfToGguf,
  hfToGgufTensorName,
  llamaQkPermute,
  parseGgufHeader,
  parseGgufHeaderAt,
  type GgufHeader,
  type GgufTensorData,
  type GgufTensorType,
} from '../../lib/io/gguf.js';
import { bf16ToF32, SafetensorsModel } from '../../lib/io/safetensors.js';
import type { WeightSource } from '../../lib/nn/llama.js';
import { quantizeSync } from '../../lib/quant/quantize.js';
import { Rng } from '../../lib/random.js';
import { Tensor } from '../../lib/tensor.js';
import {
  arr,
  cat,
  GT,
  kv,
  onlyKvs,
  rawGguf,
  str,
  tinfo,
  u32,
  u64,
  u8,
  VALID_DATA_BYTES,
  validFile,
  validKvs,
  validTensors,
  VT,
  withKv,
  withTensor,
} from './fixtures-gguf.js';
import { tempDir } from './fixtures-safetensors.js';

const MODEL_DIR = join(import.meta.dirname, '..', '..', 'models', 'tiny-py');
const tmp = tempDir('lk-gguf-');
afterAll(() => tmp.cleanup());

/** Calls body, expects an LlmKernelsError; returns it. */
function catchLk(body: () => unknown): LlmKernelsError {
  let err: unknown = null;
  try {
    body();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a throw').toBeInstanceOf(LlmKernelsError);
  return err as LlmKernelsError;
}

/** Arrays nested depth + 1 deep around one u8. */
const nest = (depth: number): Uint8Array => (depth === 0 ? arr(VT.u8, [u8(1)]) : arr(VT.array, [nest(depth - 1)]));

const TYPE_BY_NAME = new Map(GGML_TYPES.map((t) => [t.name, t]));

/** Every tensor lies inside the file, after the header, aligned, sized by its type; none overlap. */
function checkInside(h: GgufHeader, fileSize: number): void {
  expect(h.dataStart).toBeGreaterThanOrEqual(h.headerBytes);
  expect(h.dataStart).toBeLessThanOrEqual(fileSize);
  const ranges: Array<[number, number]> = [];
  for (const t of h.tensors.values()) {
    expect(Number.isSafeInteger(t.offset) && Number.isSafeInteger(t.byteLength)).toBe(true);
    expect(t.offset).toBeGreaterThanOrEqual(h.dataStart);
    expect((t.offset - h.dataStart) % h.alignment).toBe(0);
    expect(t.offset + t.byteLength).toBeLessThanOrEqual(fileSize);
    expect(t.dims.length).toBeGreaterThanOrEqual(1);
    expect(t.dims.length).toBeLessThanOrEqual(4);
    expect(t.shape).toEqual(t.dims.slice().reverse());
    const ty = GGML_TYPES[t.type]!;
    expect(ty.removed).toBe(false);
    expect(t.byteLength).toBe((t.dims.reduce((a, d) => a * d, 1) / ty.blockSize) * ty.typeSize);
    ranges.push([t.offset, t.offset + t.byteLength]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1]);
}

/** Byte equality of large buffers (vitest's deep equality is slow on big typed arrays); names the first difference. */
function expectBytes(got: Uint8Array, want: Uint8Array, label: string): void {
  if (got.length === want.length && Buffer.compare(got, want) === 0) return;
  const i = got.findIndex((b, j) => b !== want[j]);
  expect.fail(`${label}: ${got.length} bytes vs ${want.length} expected; first difference at byte ${i}: got ${got[i]}, want ${want[i]}`);
}

// ---------------------------------------------------------------------------------------------------------------

describe('the valid fixture', () => {
  const want: Array<[string, string, unknown]> = [
    ['general.architecture', 'string', 'llama'],
    ['general.alignment', 'u32', 32],
    ['t.u8', 'u8', 200],
    ['t.i8', 'i8', -5],
    ['t.u16', 'u16', 60000],
    ['t.i16', 'i16', -300],
    ['t.u32', 'u32', 4_000_000_000],
    ['t.i32', 'i32', -2_000_000_000],
    ['t.f32', 'f32', 1.5],
    ['t.bool', 'bool', true],
    ['t.string', 'string', 'héllo ✓'],
    ['t.u64', 'u64', 2n ** 60n],
    ['t.u64small', 'u64', 7],
    ['t.i64', 'i64', -(2n ** 60n)],
    ['t.i64small', 'i64', -7],
    ['t.f64', 'f64', Math.PI],
    ['t.strs', 'array<string>', ['a', 'ü', '']],
    ['t.f32s', 'array<f32>', new Float32Array([0.5, -2])],
    ['t.i32s', 'array<i32>', new Int32Array([-1, 2])],
    ['t.bools', 'array<bool>', [false, true]],
    ['t.u64s', 'array<u64>', new BigUint64Array([1n, 2n ** 64n - 1n])],
    ['t.nested', 'array<array>', [new Int32Array([1, 2]), ['x']]],
    ['t.empty', 'array<u8>', new Uint8Array(0)],
  ];

  function checkHeader(h: GgufHeader, fileSize: number): void {
    expect(h.version).toBe(3);
    expect(h.alignment).toBe(32);
    expect([...h.metadata.keys()]).toEqual(want.map((w) => w[0]));
    for (const [key, type, value] of want) {
      expect(h.metadataTypes.get(key), key).toBe(type);
      expect(h.metadata.get(key), key).toEqual(value);
    }
    expect(h.metadata.get('t.f32s')).toBeInstanceOf(Float32Array);
    expect(h.metadata.get('t.u64s')).toBeInstanceOf(BigUint64Array);
    expect([...h.tensors.keys()]).toEqual(['a', 'b', 'q', 'k']);
    expect(h.dataStart % 32).toBe(0);
    expect(h.dataStart + VALID_DATA_BYTES).toBe(fileSize);
    expect(h.tensors.get('a')).toEqual({ name: 'a', type: 0, typeName: 'F32', dims: [4, 2], shape: [2, 4], offset: h.dataStart, byteLength: 32, supported: true });
    expect(h.tensors.get('q')).toMatchObject({ typeName: 'Q8_0', dims: [32, 2], shape: [2, 32], offset: h.dataStart + 64, byteLength: 68, supported: true });
    expect(h.tensors.get('k')).toMatchObject({ type: 12, typeName: 'Q4_K', shape: [256], byteLength: 144, supported: false });
    checkInside(h, fileSize);
  }

  it('parseGgufHeader: every metadata type, typed / string / nested arrays, four tensors', () => {
    const file = validFile();
    checkHeader(parseGgufHeader(file, file.length, 'valid.gguf'), file.length);
    // Arrays nested 4 deep are read (5 are refused, see the corpus).
    const deep = rawGguf({ kvs: [kv('deep', VT.array, nest(3))] });
    expect(parseGgufHeader(deep, deep.length).metadata.get('deep')).toEqual([[[Uint8Array.of(1)]]]);
    expect(parseGgufHeader(deep, deep.length).metadataTypes.get('deep')).toBe('array<array>');
    // Version 2 has the same layout.
    const v2 = rawGguf({ version: 2, kvs: validKvs(), tensors: validTensors(), data: VALID_DATA_BYTES });
    expect(parseGgufHeader(v2, v2.length).version).toBe(2);
    // An odd byteOffset of the input bytes.
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    checkHeader(parseGgufHeader(shifted.subarray(1), file.length), file.length);
  });

  it('parseGgufHeaderAt and GgufFile.open read the same header; read / info / has / names / close', () => {
    const file = validFile();
    checkHeader(parseGgufHeaderAt((p, n) => file.subarray(p, p + n), file.length), file.length);
    const p = tmp.write('valid.gguf', file);
    const f = GgufFile.open(p);
    try {
      checkHeader({ ...f, source: p, headerBytes: f.dataStart, metadata: f.metadata, metadataTypes: f.metadataTypes, tensors: f.tensors, alignment: f.alignment, version: f.version, dataStart: f.dataStart }, file.length);
      expect(f.fileSize).toBe(file.length);
      expect(f.names()).toEqual(['a', 'b', 'q', 'k']);
      expect(f.has('q')).toBe(true);
      expect(f.has('nope')).toBe(false);
      const a = f.read('a');
      expect(a.byteOffset).toBe(0);
      expect(a.buffer.byteLength).toBe(32);
      expect(a).toEqual(file.subarray(f.dataStart, f.dataStart + 32));
      expect(f.read('q')).toEqual(file.subarray(f.dataStart + 64, f.dataStart + 132));
      // Q4_K parses (info works) but is not loaded: ERR_UNSUPPORTED naming the type.
      expect(f.info('k').typeName).toBe('Q4_K');
      const u = catchLk(() => f.read('k'));
      expect(u.code).toBe('ERR_UNSUPPORTED');
      expect(u.message).toBe(`${p}: expected a supported tensor type (F32, F16, BF16, Q8_0, Q4_0) for the type of tensor "k", got Q4_K (12)`);
      const e = catchLk(() => f.info('nope'));
      expect(e.code).toBe('ERR_MODEL_FORMAT');
      expect(e.message).toBe(`${p}: expected a tensor of this name for the name, got no tensor "nope"`);
      expect(() => f.read(3 as never)).toThrow(TypeError);
    } finally {
      f[Symbol.dispose]();
    }
    expect(f.closed).toBe(true);
    f.close();
    for (const call of [() => f.read('a'), () => f.info('a'), () => f.has('a'), () => f.names()]) {
      const d = catchLk(call);
      expect(d.code).toBe('ERR_DISPOSED');
      expect(d.message).toMatch(/^GgufFile\.\w+: expected an open file for this, got a closed file/);
    }
  });

  it('a prefix of the file: parseGgufHeader asks for more (RangeError with bytesNeeded) until it has the header', () => {
    const file = validFile();
    let have = 10;
    let rounds = 0;
    for (;;) {
      try {
        const h = parseGgufHeader(file.subarray(0, have), file.length);
        expect(have).toBeGreaterThanOrEqual(h.headerBytes);
        break;
      } catch (e) {
        expect(e).toBeInstanceOf(RangeError);
        const need = (e as RangeError & { bytesNeeded: number }).bytesNeeded;
        expect((e as Error).message).toMatch(/^parseGgufHeader: expected at least \d+ bytes of the \d+-byte file .* for bytes\.length, got \d+$/);
        expect(need).toBeGreaterThan(have);
        expect(need).toBeLessThanOrEqual(file.length);
        have = need;
        rounds++;
      }
    }
    expect(rounds).toBeGreaterThan(3);
  });

  it('a 150k-entry vocabulary spans many 1 MiB read windows; reads never pass the end of the file', () => {
    const n = 150_000;
    const tokens = Array.from({ length: n }, (_, i) => (i % 7 === 0 ? `▁tök${i}` : `t${i}`));
    const scores = Float32Array.from({ length: n }, (_, i) => -i / 7);
    const file = encodeGguf({
      metadata: { 'general.architecture': 'llama', 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.scores': scores, after: 'the end' },
      tensors: [{ name: 'w', type: 'F32', shape: [3, 32], data: new Uint8Array(384) }],
    });
    expect(file.length).toBeGreaterThan(2 << 20);
    const reads: Array<[number, number]> = [];
    const h = parseGgufHeaderAt((p, len) => {
      reads.push([p, len]);
      expect(p + len).toBeLessThanOrEqual(file.length);
      return file.subarray(p, p + len);
    }, file.length);
    expect(reads.length).toBeGreaterThan(2);
    expect(h.metadata.get('tokenizer.ggml.tokens')).toEqual(tokens);
    expect(h.metadata.get('tokenizer.ggml.scores')).toEqual(scores);
    expect(h.metadata.get('after')).toBe('the end');
    const f = GgufFile.open(tmp.write('vocab.gguf', file));
    try {
      expect((f.metadata.get('tokenizer.ggml.tokens') as string[]).length).toBe(n);
      expect(f.read('w').length).toBe(384);
    } finally {
      f.close();
    }
  });

  it('a file truncated after open: read throws ERR_MODEL_FORMAT (truncated), earlier tensors still read', () => {
    const file = validFile();
    const p = tmp.write('shrinks.gguf', file);
    const f = GgufFile.open(p);
    try {
      const q = f.info('q');
      truncateSync(p, q.offset + 5);
      expect(f.read('a').length).toBe(32);
      const e = catchLk(() => f.read('q'));
      expect(e.code).toBe('ERR_MODEL_FORMAT');
      expect(e.message).toBe(`${p}: expected 68 bytes at file offset ${q.offset} for tensor "q", got 5 (the file is truncated)`);
    } finally {
      f.close();
    }
  });

  it('missing file, a folder, a FIFO, the path type; a failed open leaves no file descriptor behind', () => {
    const missing = join(tmp.dir, 'nope.gguf');
    expect(catchLk(() => GgufFile.open(missing)).message).toBe(`${missing}: expected a readable GGUF file for the path, got ENOENT`);
    expect(catchLk(() => GgufFile.open(tmp.dir)).message).toBe(`${tmp.dir}: expected a regular file for the path, got a directory`);
    expect(() => GgufFile.open(undefined as never)).toThrow(TypeError);
    const fifo = join(tmp.dir, 'fifo.gguf');
    if (spawnSync('mkfifo', [fifo]).status === 0) expect(catchLk(() => GgufFile.open(fifo)).message).toBe(`${fifo}: expected a regular file for the path, got not a regular file`);
    const p = tmp.write('fd-leak.gguf', withTensor(tinfo('a', [4, 2], 99, 0), 0));
    const before = openSync(p, 'r');
    closeSync(before);
    for (let i = 0; i < 50; i++) expect(() => GgufFile.open(p)).toThrow(LlmKernelsError);
    const after = openSync(p, 'r');
    closeSync(after);
    expect(after).toBe(before);
  });

  it('parse refuses bad arguments (TypeError / RangeError, not file errors)', () => {
    const file = validFile();
    expect(() => parseGgufHeader([1, 2] as never, 2)).toThrow(TypeError);
    expect(() => parseGgufHeader(file, '9' as never)).toThrow(TypeError);
    expect(() => parseGgufHeader(file, -1)).toThrow(RangeError);
    expect(() => parseGgufHeader(file, file.length - 1)).toThrow(RangeError);
    expect(() => parseGgufHeader(file, file.length, 7 as never)).toThrow(TypeError);
    expect(() => parseGgufHeaderAt('x' as never, 10)).toThrow(TypeError);
    expect(() => parseGgufHeaderAt(() => 'x' as never, file.length)).toThrow(TypeError);
    // readAt returning fewer bytes than the file size promised: the file shrank.
    const e = catchLk(() => parseGgufHeaderAt((p, n) => file.subarray(p, Math.min(p + n, 30)), file.length, 'short.gguf'));
    expect(e.message).toBe('short.gguf: expected 8 bytes at file offset 24 for the header, got 6 (the file is truncated or shrank while reading)');
  });

  it('the ggml type table: ids, names, block and type sizes of the types this library loads', () => {
    expect(GGML_TYPES.length).toBe(42);
    GGML_TYPES.forEach((t, i) => expect(t.id).toBe(i));
    expect(TYPE_BY_NAME.get('Q8_0')).toMatchObject({ id: 8, blockSize: 32, typeSize: 34 });
    expect(TYPE_BY_NAME.get('Q4_0')).toMatchObject({ id: 2, blockSize: 32, typeSize: 18 });
    expect(TYPE_BY_NAME.get('BF16')).toMatchObject({ id: 30, blockSize: 1, typeSize: 2 });
    expect(TYPE_BY_NAME.get('Q4_K')).toMatchObject({ id: 12, blockSize: 256, typeSize: 144 });
    expect(TYPE_BY_NAME.get('Q6_K')).toMatchObject({ id: 14, blockSize: 256, typeSize: 210 });
    expect(GGML_TYPES.filter((t) => t.removed).map((t) => t.id)).toEqual([4, 5, 31, 32, 33, 36, 37, 38]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('encodeGguf', () => {
  it('round trip: inferred and explicit metadata types, tensors of every type, llama.cpp layout', () => {
    const rng = new Rng(7);
    const bytesFor = (type: GgufTensorType, shape: number[]) => {
      const n = shape.reduce((a, d) => a * d, 1);
      const size = { F32: 4 * n, F16: 2 * n, BF16: 2 * n, Q8_0: (n / 32) * 34, Q4_0: (n / 32) * 18 }[type];
      return Uint8Array.from({ length: size }, () => rng.int(0, 255));
    };
    const tensors: GgufTensorData[] = [
      { name: 'token_embd.weight', type: 'Q8_0', shape: [5, 64], data: bytesFor('Q8_0', [5, 64]) },
      { name: 'x', type: 'F32', shape: [3], data: bytesFor('F32', [3]) },
      { name: 'y', type: 'F16', shape: [2, 3, 4, 1], data: bytesFor('F16', [2, 3, 4, 1]) },
      { name: 'z', type: 'BF16', shape: [7, 1], data: bytesFor('BF16', [7, 1]) },
      { name: 'ünï ✓', type: 'Q4_0', shape: [3, 96], data: bytesFor('Q4_0', [3, 96]) },
    ];
    const file = encodeGguf({
      metadata: new Map<string, unknown>([
        ['s', 'text'],
        ['b', false],
        ['u', 5],
        ['neg', -5],
        ['big', 2 ** 40],
        ['negbig', -(2 ** 40)],
        ['float', 0.1],
        ['bigint', 2n ** 63n],
        ['negbigint', -3n],
        ['strs', ['a', 'b']],
        ['ints', [1, -2, 3]],
        ['uints', [1, 2 ** 31]],
        ['floats', [0.5, 1]],
        ['bools', [true, false]],
        ['f32s', new Float32Array([1, 2])],
        ['i64s', new BigInt64Array([-1n])],
        ['nested', [['a'], [1, 2]]],
        ['empty', []],
        ['x.u8', { type: 'u8', value: 255 }],
        ['x.i16', { type: 'i16', value: -32768 }],
        ['x.u64', { type: 'u64', value: 5 }],
        ['x.i64', { type: 'i64', value: -(2n ** 63n) }],
        ['x.f64', { type: 'f64', value: 0.1 }],
        ['x.arr', { type: 'array', itemType: 'u16', value: [1, 65535] }],
        ['__proto__', 'safe'],
      ]) as never,
      tensors,
      alignment: 64,
    });
    const h = parseGgufHeader(file, file.length, 'rt.gguf');
    const types = Object.fromEntries(h.metadataTypes);
    expect(types).toEqual({
      s: 'string',
      b: 'bool',
      u: 'u32',
      neg: 'i32',
      big: 'u64',
      negbig: 'i64',
      float: 'f32',
      bigint: 'u64',
      negbigint: 'i64',
      strs: 'array<string>',
      ints: 'array<i32>',
      uints: 'array<u32>',
      floats: 'array<f32>',
      bools: 'array<bool>',
      f32s: 'array<f32>',
      i64s: 'array<i64>',
      nested: 'array<array>',
      empty: 'array<i32>',
      'x.u8': 'u8',
      'x.i16': 'i16',
      'x.u64': 'u64',
      'x.i64': 'i64',
      'x.f64': 'f64',
      'x.arr': 'array<u16>',
      ['__proto__']: 'string',
      'general.alignment': 'u32',
    });
    const m = h.metadata;
    expect(m.get('float')).toBe(Math.fround(0.1));
    expect(m.get('x.f64')).toBe(0.1);
    expect(m.get('bigint')).toBe(2n ** 63n);
    expect(m.get('negbigint')).toBe(-3);
    expect(m.get('x.i64')).toBe(-(2n ** 63n));
    expect(m.get('nested')).toEqual([['a'], new Int32Array([1, 2])]);
    expect(m.get('x.arr')).toEqual(new Uint16Array([1, 65535]));
    expect(m.get('__proto__')).toBe('safe');
    expect(h.alignment).toBe(64);
    checkInside(h, file.length);
    // llama.cpp's layout: each offset is the previous end rounded up to the alignment; the file ends padded.
    let expectOffset = 0;
    for (const t of tensors) {
      const info = h.tensors.get(t.name)!;
      expect(info.shape).toEqual(t.shape);
      expect(info.typeName).toBe(t.type);
      expect(info.offset - h.dataStart).toBe(expectOffset);
      expect(file.subarray(info.offset, info.offset + info.byteLength)).toEqual(t.data);
      expectOffset = Math.ceil((expectOffset + t.data.length) / 64) * 64;
    }
    expect(file.length).toBe(h.dataStart + expectOffset);
    // And through a file.
    const f = GgufFile.open(tmp.write('roundtrip.gguf', file));
    try {
      expect(f.version).toBe(3);
      expect(f.alignment).toBe(64);
      expect([...f.metadata]).toEqual([...h.metadata]);
      expect([...f.metadataTypes]).toEqual([...h.metadataTypes]);
      for (const t of tensors) expectBytes(f.read(t.name), t.data, t.name);
    } finally {
      f.close();
    }
    // No tensors: no padding, data starts at the end of the metadata.
    const empty = encodeGguf({});
    expect(empty.length).toBe(24);
    expect(parseGgufHeader(empty, 24).dataStart).toBe(24);
  });

  it('refuses bad arguments, naming them (TypeError / RangeError)', () => {
    const d = new Uint8Array(128);
    const t = (over: Partial<GgufTensorData>) => ({ tensors: [{ name: 'w', type: 'F32' as const, shape: [32], data: d, ...over }] });
    expect(() => encodeGguf(null as never)).toThrow(TypeError);
    expect(() => encodeGguf({ tensors: 'x' as never })).toThrow(/input\.tensors/);
    expect(() => encodeGguf({ metadata: 5 as never })).toThrow(/input\.metadata/);
    expect(() => encodeGguf({ metadata: { a: {} as never } })).toThrow(/metadata\["a"\]\.type/);
    expect(() => encodeGguf({ metadata: { a: { type: 'u8', value: 256 } } })).toThrow(/an integer in \[0, 255\] \(u8\) for metadata\["a"\], got 256/);
    expect(() => encodeGguf({ metadata: { a: { type: 'u32', value: 'x' } } })).toThrow(TypeError);
    expect(() => encodeGguf({ metadata: { a: { type: 'u64', value: -1n } } })).toThrow(RangeError);
    expect(() => encodeGguf({ metadata: { a: { type: 'u64', value: 2 ** 60 } } })).toThrow(/safe integer or a bigint/);
    expect(() => encodeGguf({ metadata: { a: [1, 'x'] as never } })).toThrow(/all strings, all numbers/);
    expect(() => encodeGguf({ metadata: { a: (() => 1) as never } })).toThrow(TypeError);
    expect(() => encodeGguf({ metadata: { '': 1 } })).toThrow(/a non-empty key/);
    expect(() => encodeGguf({ metadata: { '\ud800': 1 } })).toThrow(/lone surrogates/);
    expect(() => encodeGguf({ metadata: { a: 'x\udc00' } })).toThrow(/lone surrogates/);
    expect(() => encodeGguf({ metadata: { a: [[[[[1]]]]] } })).toThrow(/nested at most 4 deep/);
    expect(() => encodeGguf({ metadata: { 'general.alignment': 48 } })).toThrow(/a power of two \(u32\) for metadata\["general\.alignment"\], got 48/);
    expect(() => encodeGguf({ metadata: { 'general.alignment': 32 }, alignment: 64 })).toThrow(/the same value as metadata\["general\.alignment"\]/);
    expect(() => encodeGguf({ alignment: 3 })).toThrow(/input\.alignment/);
    expect(() => encodeGguf(t({ name: 5 as never }))).toThrow(/tensors\[0\]\.name/);
    expect(() => encodeGguf(t({ type: 'Q4_K' as never }))).toThrow(/a tensor type \(F32, F16, BF16, Q8_0, Q4_0\) for tensors\[0\]\.type, got "Q4_K"/);
    expect(() => encodeGguf(t({ shape: [] }))).toThrow(/tensors\[0\]\.shape/);
    expect(() => encodeGguf(t({ shape: [1, 1, 1, 1, 32] }))).toThrow(/tensors\[0\]\.shape/);
    expect(() => encodeGguf(t({ shape: [0, 32] }))).toThrow(/tensors\[0\]\.shape/);
    expect(() => encodeGguf(t({ type: 'Q8_0', shape: [2, 33] }))).toThrow(/multiple of 32 \(the Q8_0 block\) for tensors\[0\]\.shape/);
    expect(() => encodeGguf(t({ shape: [33] }))).toThrow(/132 bytes \(F32 \[33\]\) for tensors\[0\]\.data\.length, got 128/);
    expect(() => encodeGguf(t({ data: [1] as never }))).toThrow(/tensors\[0\]\.data/);
    expect(() => encodeGguf({ tensors: [...t({}).tensors, ...t({}).tensors] })).toThrow(/unique names for tensors\[1\]\.name, got a second "w"/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The bad-file corpus: each file must be refused by parseGgufHeader(bytes, bytes.length) and by GgufFile.open(path)
// with this code and a message that starts with the file name and names the field.

interface BadCase {
  name: string;
  bytes: () => Uint8Array;
  code?: 'ERR_MODEL_FORMAT' | 'ERR_UNSUPPORTED';
  /** Must match the message (after the file name). */
  field: RegExp;
}

const G = new TextEncoder().encode('GGUF');
const head = (version: number, tensors: number | bigint, kvs: number | bigint) => cat(G, u32(version), u64(tensors), u64(kvs));
/** The valid fixture cut to `n` bytes (negative: that many bytes off the end). */
const cut = (n: number) => {
  const f = validFile();
  return f.slice(0, n < 0 ? f.length + n : n);
};
/** The offset where the tensor infos end in the valid fixture. */
const infosEnd = () => {
  const f = validFile();
  return parseGgufHeader(f, f.length).headerBytes;
};

const BAD: BadCase[] = [
  // The fixed header.
  { name: 'empty file', bytes: () => new Uint8Array(0), field: /expected at least 4 bytes \(the magic "GGUF"\) for the file size, got 0 bytes$/ },
  { name: '3 bytes', bytes: () => G.slice(0, 3), field: /for the file size, got 3 bytes$/ },
  { name: 'magic GGML', bytes: () => cat(new TextEncoder().encode('GGML'), validFile().slice(4)), field: /expected the magic "GGUF" for the magic \(bytes 0-3\), got "GGML" \(not a GGUF file\)$/ },
  { name: 'magic with binary bytes', bytes: () => cat(Uint8Array.of(0, 0xff, 0x47, 0x47), validFile().slice(4)), field: /for the magic \(bytes 0-3\), got "\\\\x00\\\\xffGG"/ },
  { name: 'version 1', bytes: () => head(1, 0, 0), code: 'ERR_UNSUPPORTED', field: /expected GGUF version 2 or 3 for the version \(bytes 4-7\), got 1 \(GGUF v1 is no longer supported/ },
  { name: 'version 4', bytes: () => head(4, 0, 0), code: 'ERR_UNSUPPORTED', field: /expected GGUF version 2 or 3 for the version \(bytes 4-7\), got 4$/ },
  { name: 'version 0', bytes: () => head(0, 0, 0), code: 'ERR_UNSUPPORTED', field: /for the version \(bytes 4-7\), got 0$/ },
  { name: 'big-endian version 3', bytes: () => head(0x03000000, 0, 0), code: 'ERR_UNSUPPORTED', field: /got 50331648 \(a big-endian file\? only little-endian GGUF is supported\)$/ },
  { name: 'truncated in the version', bytes: () => cut(6), field: /expected 4 bytes at file offset 4 for the version \(bytes 4-7\), got 2 \(the file is truncated\)$/ },
  { name: 'truncated in the tensor count', bytes: () => cut(12), field: /expected 8 bytes at file offset 8 for the tensor count \(bytes 8-15\), got 4 \(the file is truncated\)$/ },
  { name: 'truncated in the metadata count', bytes: () => cut(20), field: /expected 8 bytes at file offset 16 for the metadata count \(bytes 16-23\), got 4 \(the file is truncated\)$/ },
  // Counts that cannot fit in the file (never allocated).
  { name: 'tensor count 2^64 - 1', bytes: () => cat(head(3, 2n ** 64n - 1n, 0), new Uint8Array(64)), field: /a tensor count whose infos \(at least 32 bytes each\) fit in the file \(88 bytes\) for the tensor count \(bytes 8-15\), got 18446744073709551615$/ },
  { name: 'tensor count 2^32', bytes: () => rawGguf({ tensorCount: 2 ** 32, kvs: validKvs(), tensors: validTensors(), data: 304 }), field: /for the tensor count \(bytes 8-15\), got 4294967296$/ },
  { name: 'metadata count 2^64 - 1', bytes: () => cat(head(3, 0, 2n ** 64n - 1n), new Uint8Array(64)), field: /a metadata count whose entries \(at least 14 bytes each\) fit in the file \(88 bytes\) with the tensor infos for the metadata count \(bytes 16-23\), got 18446744073709551615$/ },
  { name: 'metadata count 10^6', bytes: () => rawGguf({ kvCount: 1_000_000, kvs: validKvs(), tensors: validTensors(), data: 304 }), field: /for the metadata count \(bytes 16-23\), got 1000000$/ },
  { name: 'one entry more than the file holds', bytes: () => rawGguf({ kvCount: validKvs().length + 1, kvs: validKvs() }), field: /\(the file is truncated\)$/ },
  // Keys.
  { name: 'empty key', bytes: () => cat(onlyKvs(kv('', VT.u8, u8(1))), new Uint8Array(8)), field: /expected a non-empty key for metadata key #0, got ""$/ },
  { name: 'key length 2^64 - 1', bytes: () => onlyKvs(cat(u64(2n ** 64n - 1n), new Uint8Array(20))), field: /expected a length of at most 65536 bytes for the length of metadata key #0, got 18446744073709551615$/ },
  { name: 'key length past the end', bytes: () => onlyKvs(cat(u64(1000), new Uint8Array(20))), field: /expected a length of at most the 20 bytes left in the file for the length of metadata key #0, got 1000 \(past the end of the file\)$/ },
  { name: 'key of 70000 bytes', bytes: () => onlyKvs(kv('k'.repeat(70000), VT.u8, u8(1))), field: /expected a length of at most 65536 bytes for the length of metadata key #0, got 70000$/ },
  { name: 'key invalid UTF-8 (0xff)', bytes: () => onlyKvs(kv(Uint8Array.of(0x61, 0xff), VT.u8, u8(1))), field: /expected valid UTF-8 for metadata key #0, got invalid UTF-8 bytes$/ },
  { name: 'key overlong UTF-8 (0xc0 0xaf)', bytes: () => onlyKvs(kv(Uint8Array.of(0xc0, 0xaf), VT.u8, u8(1))), field: /expected valid UTF-8 for metadata key #0/ },
  { name: 'key UTF-8 of a lone surrogate (ed a0 80)', bytes: () => onlyKvs(kv(Uint8Array.of(0xed, 0xa0, 0x80), VT.u8, u8(1))), field: /expected valid UTF-8 for metadata key #0/ },
  { name: 'duplicate key', bytes: () => withKv(kv('general.architecture', VT.string, str('qwen2')), 2), field: /expected unique keys for metadata key #2, got a second "general\.architecture"$/ },
  // Values.
  { name: 'value type 13', bytes: () => withKv(kv('x', 13, u8(1))), field: /expected a metadata value type \(0-12: u8, i8, u16, i16, u32, i32, f32, bool, string, array, u64, i64, f64\) for the value type of metadata "x", got 13$/ },
  { name: 'value type 2^32 - 1', bytes: () => withKv(kv('x', 0xffffffff, u8(1))), field: /for the value type of metadata "x", got 4294967295$/ },
  { name: 'bool 2', bytes: () => withKv(kv('t.bool', VT.bool, u8(2)), 9), field: /expected a bool of 0 or 1 for metadata "t\.bool", got 2$/ },
  { name: 'string value past the end', bytes: () => onlyKvs(kv('general.name', VT.string, cat(u64(5000), new Uint8Array(10)))), field: /expected a length of at most the 10 bytes left in the file for the length of metadata "general\.name", got 5000 \(past the end of the file\)$/ },
  { name: 'string value 2^63 bytes', bytes: () => onlyKvs(kv('general.name', VT.string, cat(u64(2n ** 63n), new Uint8Array(10)))), field: /expected a length of at most 1073741824 bytes for the length of metadata "general\.name", got 9223372036854775808$/ },
  { name: 'truncated inside a u64 value', bytes: () => cat(head(3, 0, 1), str('t.u64'), u32(VT.u64), u8(1), u8(2), u8(3)), field: /expected 8 bytes at file offset 41 for metadata "t\.u64", got 3 \(the file is truncated\)$/ },
  // Arrays.
  { name: 'array element type 13', bytes: () => withKv(kv('arr', VT.array, cat(u32(13), u64(1), u8(0)))), field: /for the element type of metadata "arr", got 13$/ },
  { name: 'array element count 2^64 - 1', bytes: () => withKv(kv('arr', VT.array, arr(VT.u8, [], 2n ** 64n - 1n))), field: /expected at most 1073741824 elements for the element count of metadata "arr", got 18446744073709551615$/ },
  { name: 'u32 array count past the end', bytes: () => onlyKvs(kv('arr', VT.array, arr(VT.u32, [u32(1)], 1000))), field: /expected an element count whose u32 elements \(at least 4 bytes each\) fit in the 4 bytes left in the file for the element count of metadata "arr", got 1000$/ },
  { name: 'string array count 10^6', bytes: () => withKv(kv('arr', VT.array, arr(VT.string, [str('a')], 1_000_000))), field: /whose string elements \(at least 8 bytes each\) fit in the \d+ bytes left in the file for the element count of metadata "arr", got 1000000$/ },
  { name: 'second string of an array past the end', bytes: () => onlyKvs(kv('arr', VT.array, arr(VT.string, [str('a'), cat(u64(1000), new Uint8Array(8))]))), field: /for the length of metadata "arr"\[1\], got 1000 \(past the end of the file\)$/ },
  { name: 'arrays nested 5 deep', bytes: () => withKv(kv('deep', VT.array, nest(4))), field: /expected arrays nested at most 4 deep for the element type of metadata "deep"\[0\]\[0\]\[0\], got an array at depth 5$/ },
  { name: 'bool array with a 5', bytes: () => withKv(kv('bools', VT.array, arr(VT.bool, [u8(1), u8(5)]))), field: /expected a bool of 0 or 1 for metadata "bools"\[1\], got 5$/ },
  // Alignment.
  { name: 'alignment of type i32', bytes: () => withKv(kv('general.alignment', VT.i32, u32(32)), 1), field: /expected a value of type u32 for metadata "general\.alignment", got type i32$/ },
  { name: 'alignment a string', bytes: () => withKv(kv('general.alignment', VT.string, str('32')), 1), field: /for metadata "general\.alignment", got type string$/ },
  { name: 'alignment 0', bytes: () => withKv(kv('general.alignment', VT.u32, u32(0)), 1), field: /expected a power of two for metadata "general\.alignment", got 0$/ },
  { name: 'alignment 48', bytes: () => withKv(kv('general.alignment', VT.u32, u32(48)), 1), field: /expected a power of two for metadata "general\.alignment", got 48$/ },
  // Tensor infos.
  { name: 'tensor name invalid UTF-8', bytes: () => withTensor(tinfo(Uint8Array.of(0x62, 0xfe), [8], GT.F16, 32), 1), field: /expected valid UTF-8 for the name of tensor #1, got invalid UTF-8 bytes$/ },
  { name: 'tensor name past the end', bytes: () => cat(head(3, 1, 0), u64(500), new Uint8Array(40)), field: /for the length of the name of tensor #0, got 500 \(past the end of the file\)$/ },
  { name: 'duplicate tensor name', bytes: () => withTensor(tinfo('a', [8], GT.F16, 32), 1), field: /expected unique tensor names for the name of tensor #1, got a second "a"$/ },
  { name: 'n_dims 0', bytes: () => withTensor(tinfo('a', [], GT.F32, 0), 0), field: /expected 1 to 4 dimensions for n_dims of tensor "a", got 0$/ },
  { name: 'n_dims 5', bytes: () => withTensor(tinfo('a', [4, 2, 1, 1, 1], GT.F32, 0), 0), field: /expected 1 to 4 dimensions for n_dims of tensor "a", got 5$/ },
  { name: 'n_dims 2^32 - 1', bytes: () => withTensor(tinfo('a', [4, 2], GT.F32, 0, 0xffffffff), 0), field: /for n_dims of tensor "a", got 4294967295$/ },
  { name: 'ne 0', bytes: () => withTensor(tinfo('a', [4, 0], GT.F32, 0), 0), field: /expected a positive dimension for ne\[1\] of tensor "a", got 0$/ },
  { name: 'ne -1 (2^64 - 1)', bytes: () => withTensor(tinfo('a', [2n ** 64n - 1n, 2], GT.F32, 0), 0), field: /expected a positive dimension for ne\[0\] of tensor "a", got 18446744073709551615 \(-1 as a signed 64-bit integer\)$/ },
  { name: 'ne 2^63', bytes: () => withTensor(tinfo('a', [4, 2n ** 63n], GT.F32, 0), 0), field: /for ne\[1\] of tensor "a", got 9223372036854775808 \(-9223372036854775808 as a signed/ },
  { name: 'element count overflow [2^27, 2^27]', bytes: () => withTensor(tinfo('a', [2 ** 27, 2 ** 27], GT.F32, 0), 0), field: /expected at most 2\^53 - 1 elements for the dimensions of tensor "a", got a product of 18014398509481984 or more at ne\[1\]$/ },
  { name: 'element count overflow over 4 dims', bytes: () => withTensor(tinfo('a', [2 ** 14, 2 ** 14, 2 ** 14, 2 ** 14], GT.F32, 0), 0), field: /for the dimensions of tensor "a", got a product of \d+ or more at ne\[3\]$/ },
  { name: 'byte size overflow (F64 2^51 elements)', bytes: () => withTensor(tinfo('a', [2 ** 26, 2 ** 25], GT.F64, 0), 0), field: /expected a size of at most 2\^53 - 1 bytes for the dimensions of tensor "a", got 18014398509481984 bytes$/ },
  { name: 'unknown ggml type 99', bytes: () => withTensor(tinfo('a', [4, 2], 99, 0), 0), field: /expected a ggml type id \(0-41\) for the type of tensor "a", got 99 \(unknown\)$/ },
  { name: 'ggml type 2^32 - 1', bytes: () => withTensor(tinfo('a', [4, 2], 0xffffffff, 0), 0), field: /for the type of tensor "a", got 4294967295 \(unknown\)$/ },
  { name: 'removed ggml type Q4_2 (4)', bytes: () => withTensor(tinfo('a', [32], GT.Q4_2, 0), 0), field: /expected a ggml type id in use for the type of tensor "a", got Q4_2 \(4\), removed from ggml$/ },
  { name: 'Q8_0 row of 33', bytes: () => withTensor(tinfo('q', [33, 2], GT.Q8_0, 64), 2), field: /expected a multiple of the block size of Q8_0 \(8\) \(32\) for ne\[0\] \(the row length\) of tensor "q", got 33$/ },
  { name: 'Q4_K row of 100', bytes: () => withTensor(tinfo('k', [100], GT.Q4_K, 160), 3), field: /expected a multiple of the block size of Q4_K \(12\) \(256\) for ne\[0\] \(the row length\) of tensor "k", got 100$/ },
  { name: 'offset not aligned', bytes: () => withTensor(tinfo('b', [8], GT.F16, 33), 1), field: /expected a multiple of the alignment \(32\) for the offset of tensor "b", got 33$/ },
  { name: 'offset not aligned to general.alignment 64', bytes: () => rawGguf({ kvs: [kv('general.alignment', VT.u32, u32(64))], tensors: [tinfo('a', [4], GT.F32, 32)], alignment: 64, data: 64 }), field: /expected a multiple of the alignment \(64\) for the offset of tensor "a", got 32$/ },
  { name: 'tensor data past the end', bytes: () => withTensor(tinfo('k', [256], GT.Q4_K, 192), 3), field: /expected offset \+ size \(144 bytes\) within the data section \(304 bytes; the file is truncated or the offset is wrong\) for the offset of tensor "k", got 192$/ },
  { name: 'offset 2^63', bytes: () => withTensor(tinfo('a', [4, 2], GT.F32, 2n ** 63n), 0), field: /within the data section \(304 bytes; .*\) for the offset of tensor "a", got 9223372036854775808$/ },
  { name: 'overlapping tensors', bytes: () => withTensor(tinfo('b', [8], GT.F16, 0), 1), field: /expected data that does not overlap another tensor for the offset of tensor "a", got \[0, 32\), overlapping tensor "b" \[0, 16\)$/ },
  { name: 'a tensor inside another', bytes: () => withTensor(tinfo('small', [4], GT.F32, 192)), field: /for the offset of tensor "small", got \[192, 208\), overlapping tensor "k" \[160, 304\)$/ },
  // Truncation at the end.
  { name: 'truncated inside the last tensor', bytes: () => cut(-1), field: /within the data section \(303 bytes; the file is truncated or the offset is wrong\) for the offset of tensor "k", got 160$/ },
  { name: 'truncated at the data start', bytes: () => cut(Math.ceil(infosEnd() / 32) * 32), field: /within the data section \(0 bytes;.*\) for the offset of tensor "a", got 0$/ },
  { name: 'truncated inside the padding', bytes: () => cut(infosEnd() + 1), field: /expected a data section starting at or before the end of the file \(\d+ bytes\) for the data section, got a start at \d+ \(the file is truncated\)$/ },
  { name: 'truncated inside the tensor infos', bytes: () => cut(infosEnd() - 6), field: /expected 8 bytes at file offset \d+ for the offset of tensor "k", got 2 \(the file is truncated\)$/ },
  { name: 'truncated inside a tensor name', bytes: () => cat(head(3, 1, 0), u64(40), new Uint8Array(30).fill(0x61)), field: /expected a length of at most the 30 bytes left in the file for the length of the name of tensor #0, got 40 \(past the end of the file\)$/ },
];

describe(`the bad-file corpus (${BAD.length} files)`, () => {
  it('has at least 40 cases', () => expect(BAD.length).toBeGreaterThanOrEqual(40));

  it.each(BAD.map((c, i) => [c.name, i] as const))('%s', (_name, i) => {
    const c = BAD[i]!;
    const bytes = c.bytes();
    const code = c.code ?? 'ERR_MODEL_FORMAT';
    const e1 = catchLk(() => parseGgufHeader(bytes, bytes.length, 'bad.gguf'));
    expect(e1.code).toBe(code);
    expect(e1.message.startsWith('bad.gguf: expected ')).toBe(true);
    expect(e1.message).toMatch(c.field);
    const p = tmp.write(`bad-${i}.gguf`, bytes);
    const e2 = catchLk(() => GgufFile.open(p));
    expect(e2.code).toBe(code);
    expect(e2.message.startsWith(`${p}: expected `)).toBe(true);
    expect(e2.message).toMatch(c.field);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** numpy's `w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)` on row indices,
 * written out literally: the row order convert_hf_to_gguf.py produces. */
function numpyPermutedRowOrder(rows: number, nHead: number): number[] {
  const half = rows / nHead / 2;
  const a: number[][][] = [];
  for (let h = 0; h < nHead; h++) {
    a.push([]);
    for (let s = 0; s < 2; s++) a[h]!.push(Array.from({ length: half }, (_, j) => h * 2 * half + s * half + j));
  }
  const swapped = a.map((byS) => Array.from({ length: half }, (_, j) => [byS[0]![j]!, byS[1]![j]!]));
  return swapped.flat(2);
}

function rowsOf(bytes: Uint8Array, rows: number, order: number[]): Uint8Array {
  const rb = bytes.length / rows;
  const out = new Uint8Array(bytes.length);
  order.forEach((src, dst) => out.set(bytes.subarray(src * rb, src * rb + rb), dst * rb));
  return out;
}

describe('llamaQkPermute and the name mapping', () => {
  it("equals numpy's reshape / swapaxes / reshape, and its inverse undoes it", () => {
    const rng = new Rng(3);
    for (const [rows, nHead, rb] of [[256, 4, 3], [128, 2, 34], [8, 1, 1], [12, 3, 5], [64, 8, 18]] as const) {
      const bytes = Uint8Array.from({ length: rows * rb }, () => rng.int(0, 255));
      const g = llamaQkPermute(bytes, rows, nHead);
      expect(g).toEqual(rowsOf(bytes, rows, numpyPermutedRowOrder(rows, nHead)));
      expect(llamaQkPermute(g, rows, nHead, true)).toEqual(bytes);
    }
    // GGUF row 1 of head 0 is Hugging Face row D/2 (the partner of row 0 in rotate-half).
    const ids = Uint8Array.from({ length: 8 }, (_, i) => i);
    expect([...llamaQkPermute(ids, 8, 2)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(() => llamaQkPermute(ids, 6, 2)).toThrow(RangeError);
    expect(() => llamaQkPermute(ids.subarray(1), 8, 2)).toThrow(/bytes\.length/);
    expect(() => llamaQkPermute([1] as never, 8, 2)).toThrow(TypeError);
  });

  it('Hugging Face <-> GGUF names', () => {
    const pairs = [
      ['model.embed_tokens.weight', 'token_embd.weight'],
      ['model.norm.weight', 'output_norm.weight'],
      ['lm_head.weight', 'output.weight'],
      ['model.layers.0.input_layernorm.weight', 'blk.0.attn_norm.weight'],
      ['model.layers.12.self_attn.q_proj.bias', 'blk.12.attn_q.bias'],
      ['model.layers.3.self_attn.o_proj.weight', 'blk.3.attn_output.weight'],
      ['model.layers.3.post_attention_layernorm.weight', 'blk.3.ffn_norm.weight'],
      ['model.layers.7.mlp.down_proj.weight', 'blk.7.ffn_down.weight'],
    ];
    for (const [hf, g] of pairs) {
      expect(hfToGgufTensorName(hf!)).toBe(g);
      expect(ggufToHfTensorName(g!)).toBe(hf);
    }
    for (const bad of ['model.layers.01.mlp.up_proj.weight', 'model.layers.0.mlp.act.weight', 'rope_freqs.weight', 'x'])
      expect(hfToGgufTensorName(bad) ?? ggufToHfTensorName(bad)).toBe(null);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('the Llama bridge on the tiny-py model', () => {
  let st: SafetensorsModel;
  let hfConfig: LlamaConfig;
  const files = new Map<string, GgufFile>();
  beforeAll(() => {
    st = SafetensorsModel.open(MODEL_DIR);
    hfConfig = loadLlamaConfig(MODEL_DIR);
    for (const outtype of ['keep', 'F32', 'F16', 'Q8_0', 'Q4_0'] as const)
      files.set(outtype, GgufFile.open(tmp.write(`tiny-${outtype}.gguf`, hfToGguf(MODEL_DIR, { outtype }))));
  });
  afterAll(() => {
    st?.close();
    for (const f of files.values()) f.close();
  });
  const hfF32 = (name: string) => bf16ToF32(st.read(name));

  it('ggufLlamaConfig equals the safetensors config (eps as its f32 value; no torch_dtype in GGUF)', () => {
    for (const f of files.values()) {
      const c = ggufLlamaConfig(f);
      expect({ ...c, rmsNormEps: 0, torchDtype: null }).toEqual({ ...hfConfig, rmsNormEps: 0, torchDtype: null });
      expect(c.rmsNormEps).toBe(Math.fround(hfConfig.rmsNormEps));
    }
    const f = files.get('keep')!;
    expect(f.metadata.get('general.architecture')).toBe('llama');
    expect(f.metadataTypes.get('llama.block_count')).toBe('u32');
    expect(f.metadataTypes.get('llama.attention.layer_norm_rms_epsilon')).toBe('f32');
    expect(f.metadata.get('general.file_type')).toBe(32); // MOSTLY_BF16
    expect(files.get('Q8_0')!.metadata.get('general.file_type')).toBe(7);
    expect(files.get('Q4_0')!.metadata.get('general.file_type')).toBe(2);
  });

  it('keep (BF16 matrices, F32 vectors) and F32: every weight via ggufWeightSource is byte-identical to the safetensors weight (vectors widened exactly)', () => {
    const names = st.names().sort();
    const keep = ggufWeightSource(files.get('keep')!, hfConfig);
    const full = ggufWeightSource(files.get('F32')!, hfConfig);
    expect(keep.names().sort()).toEqual(names);
    expect(full.names().sort()).toEqual(names);
    for (const name of names) {
      expect(keep.has(name)).toBe(true);
      if (st.info(name).shape.length === 2) {
        expect(keep.info(name)).toEqual({ dtype: 'BF16', shape: st.info(name).shape });
        expectBytes(keep.read(name), st.read(name), name);
      } else {
        // 1-D tensors are written as F32 (llama.cpp's CPU backend cannot combine f32 activations with bf16 vectors):
        // the exact widening of the stored bf16.
        expect(keep.info(name)).toEqual({ dtype: 'F32', shape: st.info(name).shape });
        expectBytes(keep.read(name), new Uint8Array(hfF32(name).buffer), name);
      }
      expect(full.info(name)).toEqual({ dtype: 'F32', shape: st.info(name).shape });
      expectBytes(full.read(name), new Uint8Array(hfF32(name).buffer), name);
    }
    const f16 = ggufWeightSource(files.get('F16')!, hfConfig);
    expect(f16.info('model.norm.weight').dtype).toBe('F32'); // 1-D tensors stay F32, as llama.cpp
    const w = hfF32('model.layers.1.self_attn.k_proj.weight');
    expect(f16.info('model.layers.1.self_attn.k_proj.weight').dtype).toBe('F16');
    expectBytes(f16.read('model.layers.1.self_attn.k_proj.weight'), new Uint8Array(Uint16Array.from(w, (x) => f32ToF16(x)).buffer), 'F16 k_proj');
  });

  it('the q/k permutation is in the file (raw rows differ from Hugging Face order) and undone by the source', () => {
    const f = files.get('keep')!;
    const src = ggufWeightSource(f, hfConfig);
    for (let l = 0; l < hfConfig.numLayers; l++)
      for (const [proj, g, nHead] of [['q_proj', 'attn_q', hfConfig.numHeads], ['k_proj', 'attn_k', hfConfig.numKvHeads]] as const) {
        const hfName = `model.layers.${l}.self_attn.${proj}.weight`;
        const hf = st.read(hfName);
        const rows = st.info(hfName).shape[0]!;
        const raw = f.read(`blk.${l}.${g}.weight`);
        expect(Buffer.compare(raw, hf)).not.toBe(0);
        expectBytes(raw, rowsOf(hf, rows, numpyPermutedRowOrder(rows, nHead)), `raw ${hfName}`);
        expectBytes(src.read(hfName), hf, hfName);
      }
    // Other tensors are not moved.
    expectBytes(f.read('blk.0.attn_v.weight'), st.read('model.layers.0.self_attn.v_proj.weight'), 'v_proj');
    // locate: the file range of float, q8_0 and q4_0 tensors stored as served; null for the permuted q / k.
    const v = f.info('blk.0.attn_v.weight');
    expect(src.locate('model.layers.0.self_attn.v_proj.weight')).toEqual({ path: f.path, offset: v.offset, byteLength: v.byteLength });
    expect(src.locate('model.layers.0.self_attn.q_proj.weight')).toBe(null);
    expect(src.locate('model.layers.3.self_attn.k_proj.weight')).toBe(null);
    const q8 = files.get('Q8_0')!;
    const up = q8.info('blk.0.ffn_up.weight');
    expect(ggufWeightSource(q8, hfConfig).locate('model.layers.0.mlp.up_proj.weight')).toEqual({ path: q8.path, offset: up.offset, byteLength: up.byteLength });
    expect(ggufWeightSource(q8, hfConfig).locate('model.layers.0.self_attn.q_proj.weight')).toBe(null);
    // readRows: a rank's heads read alone, un-permuted within each head, equal to the same rows of read().
    const D = hfConfig.headDim;
    for (const [source, label] of [[src, 'float'], [ggufWeightSource(q8, hfConfig), 'Q8_0']] as const)
      for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.weight', 'model.layers.0.mlp.up_proj.weight']) {
        const all = source.read(name);
        const rows = source.info(name).shape[0]!;
        const rowBytes = all.byteLength / rows;
        const got = source.readRows(name, [D, 2 * D]);
        expectBytes(got, all.subarray(D * rowBytes, 2 * D * rowBytes), `${label} readRows ${name}`);
      }
    expect(() => src.readRows('model.layers.0.self_attn.q_proj.weight', [1, D + 1])).toThrow(/whole heads of/);
    expect(() => src.readRows('model.layers.0.self_attn.q_proj.weight', [0, 1e9])).toThrow(RangeError);
    expect(ggufWeightSource(files.get('Q8_0')!, hfConfig).locate('model.norm.weight')).toMatchObject({ byteLength: 1024 });
  });

  for (const [outtype, format] of [['Q8_0', 'q8_0'], ['Q4_0', 'q4_0']] as const)
    it(`${outtype}: every 2-D weight equals quantizeSync(w, '${format}') rows; 1-D weights are F32`, () => {
      const src = ggufWeightSource(files.get(outtype)!, hfConfig);
      for (const name of st.names()) {
        const shape = st.info(name).shape;
        const x = hfF32(name);
        if (shape.length === 1) {
          expect(src.info(name)).toEqual({ dtype: 'F32', shape });
          expectBytes(src.read(name), new Uint8Array(x.buffer), name);
          continue;
        }
        expect(src.info(name)).toEqual({ dtype: outtype, shape });
        using t = Tensor.fromArray(x, { shape });
        using q = quantizeSync(t, format);
        const want = q.toBytesSync();
        expectBytes(src.read(name), want, `${name} (${outtype} blocks of ${outtype === 'Q8_0' ? 34 : 18} bytes)`);
        // And the TS quantizer on the Hugging Face rows gives the same bytes.
        expectBytes(ggufQuantize(outtype, x, shape[0]!, shape[1]!), want, `ggufQuantize ${name}`);
      }
    });

  it('ggufWeightSource errors: unknown names, closed files, bad arguments', () => {
    const p = tmp.write('tiny-errors.gguf', hfToGguf(MODEL_DIR));
    const f = GgufFile.open(p);
    const src = ggufWeightSource(f, hfConfig);
    expect(src.has('model.layers.9.mlp.up_proj.weight')).toBe(false);
    expect(src.has('nope')).toBe(false);
    const e = catchLk(() => src.read('model.layers.9.mlp.up_proj.weight'));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toBe(`${p}: expected a tensor of this name for the name, got no tensor "model.layers.9.mlp.up_proj.weight" (blk.9.ffn_up.weight)`);
    expect(() => src.info(1 as never)).toThrow(TypeError);
    f.close();
    expect(catchLk(() => src.read('model.norm.weight')).code).toBe('ERR_DISPOSED');
    expect(catchLk(() => ggufLlamaConfig(f)).code).toBe('ERR_DISPOSED');
    expect(() => ggufWeightSource({} as never, hfConfig)).toThrow(TypeError);
    expect(() => ggufWeightSource(files.get('keep')!, null as never)).toThrow(TypeError);
    expect(() => ggufWeightSource(files.get('keep')!, { ...hfConfig, numHeads: 0 })).toThrow(/config\.numHeads/);
    // A q tensor whose rows do not match the config's heads.
    const bad = ggufWeightSource(files.get('keep')!, { ...hfConfig, headDim: 32 });
    expect(catchLk(() => bad.read('model.layers.0.self_attn.q_proj.weight')).message).toMatch(/expected 4 heads x head_dim 32 = 128 rows for tensor "blk\.0\.attn_q\.weight", got 256 rows/);
  });

  it('hfToGguf refuses bad arguments and checkpoints it cannot convert', () => {
    expect(() => hfToGguf(MODEL_DIR, { outtype: 'Q4_K' as never })).toThrow(/options\.outtype/);
    expect(() => hfToGguf(MODEL_DIR, { alignment: 3 })).toThrow(/options\.alignment/);
    expect(() => hfToGguf(MODEL_DIR, { metadata: { 'llama.block_count': 1 } })).toThrow(/a key the converter does not write/);
    expect(() => hfToGguf(5 as never)).toThrow(TypeError);
    expect(() => hfToGguf({ config: hfConfig, weights: {} as never })).toThrow(/input\.weights/);
    const missing = catchLk(() => hfToGguf({ config: hfConfig, weights: { has: () => false, info: () => ({ dtype: 'F32', shape: [] }), read: () => new Uint8Array(0) } }));
    expect(missing.message).toBe('hfToGguf: expected a tensor of this name in the checkpoint for the weights, got no tensor "model.embed_tokens.weight"');
    const wrongShape = catchLk(() => hfToGguf({ config: { ...hfConfig, hiddenSize: 128 }, weights: st }));
    expect(wrongShape.message).toMatch(/expected shape \[320, 128\] \(from the config\) for tensor "model\.embed_tokens\.weight", got \[320, 256\]/);
    const q = catchLk(() => hfToGguf({ config: { ...hfConfig, quantization: { quant_method: 'gptq', bits: 4, group_size: 128 } }, weights: st }));
    expect(q.code).toBe('ERR_UNSUPPORTED');
    // Extra metadata is written; the alignment is applied.
    const bytes = hfToGguf(MODEL_DIR, { metadata: { 'general.name': 'tiny' }, alignment: 64 });
    const h = parseGgufHeader(bytes, bytes.length);
    expect(h.metadata.get('general.name')).toBe('tiny');
    expect(h.alignment).toBe(64);
    checkInside(h, bytes.length);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** A WeightSource over F32 tensors in memory. */
function memorySource(tensors: Map<string, { shape: number[]; data: Float32Array }>): WeightSource {
  return {
    has: (n) => tensors.has(n),
    info: (n) => ({ dtype: 'F32', shape: tensors.get(n)!.shape }),
    read: (n) => new Uint8Array(tensors.get(n)!.data.slice().buffer),
  };
}

/** Random F32 weights for a config JSON (with q/k/v biases when asked). */
function syntheticModel(cfg: Record<string, number | string | boolean | object | null>, biases: boolean, seed: number): WeightSource {
  const rng = new Rng(seed);
  const E = cfg.hidden_size as number, F = cfg.intermediate_size as number, H = cfg.num_attention_heads as number;
  const Hkv = (cfg.num_key_value_heads as number) ?? H, V = cfg.vocab_size as number, D = (cfg.head_dim as number) ?? E / H;
  const t = new Map<string, { shape: number[]; data: Float32Array }>();
  const add = (name: string, shape: number[]) => t.set(name, { shape, data: rng.fillNormal(new Float32Array(shape.reduce((a, d) => a * d, 1))) });
  add('model.embed_tokens.weight', [V, E]);
  add('model.norm.weight', [E]);
  if (!cfg.tie_word_embeddings) add('lm_head.weight', [V, E]);
  for (let l = 0; l < (cfg.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [E]);
    add(`${p}post_attention_layernorm.weight`, [E]);
    add(`${p}self_attn.q_proj.weight`, [H * D, E]);
    add(`${p}self_attn.k_proj.weight`, [Hkv * D, E]);
    add(`${p}self_attn.v_proj.weight`, [Hkv * D, E]);
    add(`${p}self_attn.o_proj.weight`, [E, H * D]);
    if (biases) for (const [n, N] of [['q_proj', H * D], ['k_proj', Hkv * D], ['v_proj', Hkv * D]] as const) add(`${p}self_attn.${n}.bias`, [N]);
    add(`${p}mlp.gate_proj.weight`, [F, E]);
    add(`${p}mlp.up_proj.weight`, [F, E]);
    add(`${p}mlp.down_proj.weight`, [E, F]);
  }
  return memorySource(t);
}

const BASE = { hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 40, max_position_embeddings: 512, rms_norm_eps: 1e-6, bos_token_id: 1, eos_token_id: [2, 5] };

describe('the Llama bridge on synthetic configs', () => {
  function roundTrip(cfgJson: Record<string, unknown>, biases: boolean, seed: number) {
    const weights = syntheticModel(cfgJson as never, biases, seed);
    const bytes = hfToGguf({ config: cfgJson, weights });
    const p = tmp.write(`synthetic-${seed}.gguf`, bytes);
    return { weights, file: GgufFile.open(p), path: p };
  }

  it('qwen2: architecture qwen2, biases served, q/k rows NOT permuted; config round trip', () => {
    const cfgJson = { ...BASE, model_type: 'qwen2', rope_theta: 1e6 };
    const { weights, file } = roundTrip(cfgJson, true, 11);
    try {
      expect(file.metadata.get('general.architecture')).toBe('qwen2');
      const c = ggufLlamaConfig(file);
      expect(c).toMatchObject({ modelType: 'qwen2', attentionBias: true, numKvHeads: 2, headDim: 16, ropeTheta: 1e6, bosTokenId: 1, eosTokenIds: [2], slidingWindow: null });
      const src = ggufWeightSource(file, c);
      for (const n of ['model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.layers.0.self_attn.k_proj.bias']) {
        expect(file.read(hfToGgufTensorName(n)!), n).toEqual(weights.read(n));
        expect(src.read(n)).toEqual(weights.read(n));
      }
    } finally {
      file.close();
    }
  });

  it('llama with attention biases: q/k biases permuted in the file and undone by the source', () => {
    const cfgJson = { ...BASE, model_type: 'llama', attention_bias: true };
    const { weights, file } = roundTrip(cfgJson, true, 12);
    try {
      const c = ggufLlamaConfig(file);
      expect(c.attentionBias).toBe(true);
      const src = ggufWeightSource(file, c);
      for (const [n, nHead] of [['model.layers.0.self_attn.q_proj.bias', 4], ['model.layers.1.self_attn.k_proj.bias', 2]] as const) {
        const hf = weights.read(n);
        expect(file.read(hfToGgufTensorName(n)!)).toEqual(rowsOf(hf, hf.length / 4, numpyPermutedRowOrder(hf.length / 4, nHead)));
        expect(src.read(n)).toEqual(hf);
      }
      expect(src.read('model.layers.0.self_attn.v_proj.bias')).toEqual(weights.read('model.layers.0.self_attn.v_proj.bias'));
    } finally {
      file.close();
    }
  });

  it('mistral (stored as llama + sliding window), tied embeddings, head_dim != hidden / heads, linear RoPE scaling', () => {
    const cfgJson = { ...BASE, model_type: 'mistral', sliding_window: 128, tie_word_embeddings: true, head_dim: 32, rope_scaling: { type: 'linear', factor: 2.5 } };
    const { file } = roundTrip(cfgJson, false, 13);
    try {
      expect(file.metadata.get('general.architecture')).toBe('llama');
      expect(file.has('output.weight')).toBe(false);
      expect(file.metadata.get('llama.attention.key_length')).toBe(32);
      const c = ggufLlamaConfig(file);
      expect(c).toMatchObject({ modelType: 'mistral', slidingWindow: 128, tieWordEmbeddings: true, headDim: 32, ropeScaling: { type: 'linear', factor: 2.5 } });
      const src = ggufWeightSource(file, c);
      expect(src.has('lm_head.weight')).toBe(false);
      expect(src.info('model.layers.0.self_attn.q_proj.weight').shape).toEqual([128, 64]);
    } finally {
      file.close();
    }
  });

  it('llama3 RoPE scaling: hfToGguf writes rope_freqs.weight (as llama.cpp); ggufLlamaConfig refuses it (ERR_UNSUPPORTED)', () => {
    const rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const { file, path } = roundTrip({ ...BASE, model_type: 'llama', rope_scaling }, false, 14);
    try {
      const rf = new Float32Array(file.read('rope_freqs.weight').buffer);
      expect(rf.length).toBe(8);
      expect(rf[0]).toBe(1);
      expect(rf[7]).toBe(8);
      const e = catchLk(() => ggufLlamaConfig(file));
      expect(e.code).toBe('ERR_UNSUPPORTED');
      expect(e.message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected no rope_freqs\\.weight tensor for tensor "rope_freqs\\.weight", got per-frequency RoPE factors`));
    } finally {
      file.close();
    }
  });

  it('ggufLlamaConfig refuses files it cannot map, naming the key', () => {
    const base = (): Map<string, unknown> =>
      new Map<string, unknown>([
        ['general.architecture', 'llama'],
        ['llama.embedding_length', { type: 'u32', value: 64 }],
        ['llama.feed_forward_length', { type: 'u32', value: 96 }],
        ['llama.block_count', { type: 'u32', value: 2 }],
        ['llama.attention.head_count', { type: 'u32', value: 4 }],
        ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
        ['llama.context_length', { type: 'u32', value: 256 }],
        ['llama.vocab_size', { type: 'u32', value: 40 }],
      ]);
    const cfgOf = (m: Map<string, unknown>) => {
      const b = encodeGguf({ metadata: m as never });
      return ggufLlamaConfig(parseGgufHeader(b, b.length, 'm.gguf'));
    };
    const c = cfgOf(base());
    expect(c).toMatchObject({ modelType: 'llama', hiddenSize: 64, numKvHeads: 4, headDim: 16, ropeTheta: 10000, vocabSize: 40, tieWordEmbeddings: true, bosTokenId: null });
    const cases: Array<[string, (m: Map<string, unknown>) => void, string, RegExp]> = [
      ['architecture', (m) => m.set('general.architecture', 'gemma'), 'ERR_UNSUPPORTED', /expected a supported architecture \(llama, qwen2\) for metadata "general\.architecture", got "gemma"$/],
      ['no architecture', (m) => m.delete('general.architecture'), 'ERR_MODEL_FORMAT', /for metadata "general\.architecture", got no such key$/],
      ['missing block_count', (m) => m.delete('llama.block_count'), 'ERR_MODEL_FORMAT', /expected a positive integer for metadata "llama\.block_count", got no such key$/],
      ['block_count a string', (m) => m.set('llama.block_count', '2'), 'ERR_MODEL_FORMAT', /for metadata "llama\.block_count", got a value of type string$/],
      ['block_count 0', (m) => m.set('llama.block_count', 0), 'ERR_MODEL_FORMAT', /for metadata "llama\.block_count", got 0 \(u32\)$/],
      ['per-layer head counts', (m) => m.set('llama.attention.head_count', new Int32Array([4, 4])), 'ERR_UNSUPPORTED', /per-layer values are not supported\) for metadata "llama\.attention\.head_count", got a value of type array<i32>$/],
      ['kv heads not a divisor', (m) => m.set('llama.attention.head_count_kv', 3), 'ERR_MODEL_FORMAT', /expected a divisor of llama\.attention\.head_count \(4\) for metadata "llama\.attention\.head_count_kv", got 3$/],
      ['eps negative', (m) => m.set('llama.attention.layer_norm_rms_epsilon', -1), 'ERR_MODEL_FORMAT', /expected a finite number > 0 for metadata "llama\.attention\.layer_norm_rms_epsilon", got -1 \(i32\)$/],
      ['partial rope', (m) => m.set('llama.rope.dimension_count', 8), 'ERR_UNSUPPORTED', /for metadata "llama\.rope\.dimension_count", got 8 \(partial RoPE is not supported\)$/],
      ['yarn', (m) => m.set('llama.rope.scaling.type', 'yarn'), 'ERR_UNSUPPORTED', /expected a supported RoPE scaling type \('none', 'linear'\) for metadata "llama\.rope\.scaling\.type", got "yarn"$/],
      ['linear without a factor', (m) => m.set('llama.rope.scaling.type', 'linear'), 'ERR_MODEL_FORMAT', /for metadata "llama\.rope\.scaling\.factor", got no such key$/],
      ['value length differs', (m) => m.set('llama.attention.value_length', 32), 'ERR_UNSUPPORTED', /for metadata "llama\.attention\.value_length", got 32/],
      ['no vocabulary', (m) => m.delete('llama.vocab_size'), 'ERR_MODEL_FORMAT', /for metadata "llama\.vocab_size", got no such key$/],
    ];
    for (const [name, edit, code, re] of cases) {
      const m = base();
      edit(m);
      const e = catchLk(() => cfgOf(m));
      expect(e.code, name).toBe(code);
      expect(e.message, name).toMatch(/^m\.gguf: expected /);
      expect(e.message, name).toMatch(re);
    }
    // Defaults and alternatives: tokens list for the vocabulary, the old scale_linear key.
    const m = base();
    m.delete('llama.vocab_size');
    m.set('tokenizer.ggml.tokens', ['a', 'b', 'c']);
    m.set('llama.rope.scale_linear', { type: 'f32', value: 4 });
    expect(cfgOf(m)).toMatchObject({ vocabSize: 3, ropeScaling: { type: 'linear', factor: 4 } });
    expect(() => ggufLlamaConfig({} as never)).toThrow(TypeError);
  });

  it('a Q4_K tensor: the file parses, the source refuses it naming the type', () => {
    const bytes = rawGguf({
      kvs: [kv('general.architecture', VT.string, str('llama'))],
      tensors: [tinfo('token_embd.weight', [256, 2], GT.Q4_K, 0), tinfo('output_norm.weight', [256], GT.F32, 288)],
      data: 288 + 1024,
    });
    const p = tmp.write('q4k.gguf', bytes);
    const f = GgufFile.open(p);
    try {
      const src = ggufWeightSource(f, { numHeads: 4, numKvHeads: 4, headDim: 64 } as LlamaConfig);
      expect(src.has('model.embed_tokens.weight')).toBe(true);
      for (const call of [() => src.info('model.embed_tokens.weight'), () => src.read('model.embed_tokens.weight')]) {
        const e = catchLk(call);
        expect(e.code).toBe('ERR_UNSUPPORTED');
        expect(e.message).toBe(`${p}: expected a supported tensor type (F32, F16, BF16, Q8_0, Q4_0) for the type of tensor "token_embd.weight", got Q4_K (12)`);
      }
      expect(src.info('model.norm.weight')).toEqual({ dtype: 'F32', shape: [256] });
    } finally {
      f.close();
    }
  });
});

describe('ggufQuantize', () => {
  it('Q8_0 / Q4_0 on ties, zeros, signs and scales: equal to the native quantizer (llama.cpp reference rules)', () => {
    const rng = new Rng(99);
    const rows = 24, cols = 96;
    const x = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        x[i] = r % 6 === 0 ? 0 : r % 6 === 1 ? (c % 32) - 16 : r % 6 === 2 ? ((c % 5) - 2) * 0.5 : rng.normal() * 10 ** (r % 4 - 2);
      }
    for (const [type, format] of [['Q8_0', 'q8_0'], ['Q4_0', 'q4_0']] as const) {
      using t = Tensor.fromArray(x, { shape: [rows, cols] });
      using q = quantizeSync(t, format);
      expectBytes(ggufQuantize(type, x, rows, cols), q.toBytesSync(), type);
    }
    expect(() => ggufQuantize('Q8_0', new Float32Array(31), 1, 31)).toThrow(/cols/);
    expect(() => ggufQuantize('Q8_0', Float32Array.of(...new Array(31).fill(0), NaN), 1, 32)).toThrow(/finite values for x \(row 0, column 31\), got NaN/);
    expect(() => ggufQuantize('Q8_0', new Float32Array(32).fill(1e7), 1, 32)).toThrow(/f16 range/);
    expect(() => ggufQuantize('Q4_K' as never, new Float32Array(32), 1, 32)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('fuzzing (fast-check)', () => {
  /** Parses; on success checks every tensor is inside the file; on failure only our error classes are allowed. Also
   * parses through parseGgufHeaderAt, checking no read passes the end of the file and both agree. */
  function parseOrRefuse(bytes: Uint8Array): void {
    let first: unknown = null;
    let h: GgufHeader | null = null;
    try {
      h = parseGgufHeader(bytes, bytes.length, 'fuzz.gguf');
      checkInside(h, bytes.length);
    } catch (e) {
      first = e;
      if (e instanceof LlmKernelsError) {
        expect(['ERR_MODEL_FORMAT', 'ERR_UNSUPPORTED']).toContain(e.code);
        expect(e.message.startsWith('fuzz.gguf: expected ')).toBe(true);
      } else if (!(e instanceof RangeError || e instanceof TypeError)) throw e;
    }
    let second: unknown = null;
    try {
      const h2 = parseGgufHeaderAt((p, n) => {
        if (p < 0 || n < 0 || p + n > bytes.length) throw new Error(`read past the end: ${p} + ${n} > ${bytes.length}`);
        return bytes.subarray(p, p + n);
      }, bytes.length, 'fuzz.gguf');
      if (h !== null) expect(h2.tensors.size).toBe(h.tensors.size);
    } catch (e) {
      second = e;
    }
    expect(second === null).toBe(first === null);
    if (first instanceof LlmKernelsError) expect((second as Error).message).toBe(first.message);
  }

  const base = validFile();
  const encoded = encodeGguf({
    metadata: { 'general.architecture': 'llama', strs: ['a', 'bb', 'ccc'], n: 5, f: 0.5, nested: [[1], ['x']], big: 2n ** 62n },
    tensors: [
      { name: 'w', type: 'Q8_0', shape: [2, 32], data: new Uint8Array(68) },
      { name: 'n', type: 'F32', shape: [5], data: new Uint8Array(20) },
      { name: 'h', type: 'BF16', shape: [3, 2], data: new Uint8Array(12) },
    ],
  });

  it('random byte mutations and truncations of valid files', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(base, encoded),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
        fc.option(fc.nat(), { nil: undefined }),
        (file, muts, cutAt) => {
          const f = file.slice(0, cutAt === undefined ? file.length : cutAt % (file.length + 1));
          for (const m of muts) if (f.length > 0) f[m.at % f.length] = m.byte;
          parseOrRefuse(f);
        },
      ),
      { numRuns: 4000, seed: 1130 },
    );
  });

  it('mutations of the length, count, type and dimension fields (u32 / u64 words set to edge values)', () => {
    const edges = [0n, 1n, 2n, 3n, 12n, 13n, 31n, 32n, 33n, 255n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
    fc.assert(
      fc.property(fc.constantFrom(base, encoded), fc.array(fc.record({ at: fc.nat(), v: fc.constantFrom(...edges), wide: fc.boolean() }), { minLength: 1, maxLength: 3 }), (file, muts) => {
        const f = file.slice();
        const dv = new DataView(f.buffer);
        for (const m of muts) {
          const at = m.at % (f.length - 8);
          if (m.wide) dv.setBigUint64(at, m.v, true);
          else dv.setUint32(at, Number(BigInt.asUintN(32, m.v)), true);
        }
        parseOrRefuse(f);
      }),
      { numRuns: 4000, seed: 17 },
    );
  });

  it('random headers: magic, version, counts and random bytes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 3, 3, 3, 4),
        fc.oneof(fc.bigInt({ min: 0n, max: 4n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        fc.oneof(fc.bigInt({ min: 0n, max: 4n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        fc.uint8Array({ maxLength: 200 }),
        (version, nT, nKv, rest) => parseOrRefuse(cat(G, u32(version), u64(nT), u64(nKv), rest)),
      ),
      { numRuns: 3000, seed: 5 },
    );
  });

  it('random structured entries: any value type, declared lengths and counts near the real ones', () => {
    const lenish = (real: number) => fc.oneof(fc.constant(BigInt(real)), fc.bigInt({ min: 0n, max: BigInt(real + 4) }), fc.constantFrom(2n ** 64n - 1n, 2n ** 31n));
    const entry = fc.oneof(
      fc.record({ key: fc.string({ maxLength: 6 }), type: fc.integer({ min: 0, max: 14 }), payload: fc.uint8Array({ maxLength: 16 }) }).map(({ key, type, payload }) => kv(key, type, payload)),
      fc.tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0, max: 13 }), fc.uint8Array({ maxLength: 24 }), fc.nat(6)).chain(([key, et, payload, n]) =>
        lenish(n).map((count) => kv(key, VT.array, cat(u32(et), u64(count), payload))),
      ),
      fc.tuple(fc.string({ maxLength: 8 }), fc.integer({ min: 0, max: 5 })).chain(([s, extra]) => lenish(s.length).map((d) => kv('s', VT.string, str(s + 'x'.repeat(extra), d)))),
    );
    const tensor = fc
      .record({
        name: fc.constantFrom('a', 'b', 'c', ''),
        ne: fc.array(fc.oneof(fc.integer({ min: 0, max: 70 }), fc.constantFrom(256, 2 ** 40)), { maxLength: 5 }),
        type: fc.oneof(fc.constantFrom(0, 1, 2, 8, 12, 30), fc.integer({ min: 0, max: 45 })),
        offset: fc.oneof(fc.constantFrom(0, 32, 64, 96, 128), fc.nat(300)),
      })
      .map(({ name, ne, type, offset }) => tinfo(name, ne, type, offset));
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 5 }), fc.array(tensor, { maxLength: 4 }), fc.nat(400), fc.option(fc.integer({ min: -2, max: 2 }), { nil: undefined }), (kvs, tensors, dataLen, countSkew) => {
        const spec = { kvs, tensors, data: dataLen, ...(countSkew === undefined ? {} : { kvCount: Math.max(0, kvs.length + countSkew) }) };
        parseOrRefuse(rawGguf(spec));
      }),
      { numRuns: 4000, seed: 42 },
    );
  });

  it('random valid files round-trip exactly (encodeGguf -> parse)', () => {
    const scalar = fc.oneof(
      fc.string(),
      fc.boolean(),
      fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.float({ noNaN: true }).map((x) => (x === 0 ? 0 : Math.fround(x))),
    );
    const value = fc.oneof(scalar, fc.array(fc.string(), { maxLength: 4 }), fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 4 }), fc.float32Array({ maxLength: 4, noDefaultInfinity: true, noNaN: true }));
    const tensor = fc.record({ type: fc.constantFrom<GgufTensorType>('F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'), shape: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }) });
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), value), { selector: (x) => x[0], maxLength: 6 }),
        fc.uniqueArray(fc.tuple(fc.string({ maxLength: 6 }), tensor), { selector: (x) => x[0], maxLength: 4 }),
        fc.constantFrom(undefined, 1, 8, 32, 64),
        (meta, list, alignment) => {
          const metadata = meta.filter(([k]) => k !== 'general.alignment' && !/[\uD800-\uDFFF]/.test(k));
          const tensors = list
            .filter(([name]) => !/[\uD800-\uDFFF]/.test(name))
            .map(([name, { type, shape }]) => {
              const s = type === 'Q8_0' || type === 'Q4_0' ? [...shape.slice(0, -1), shape[shape.length - 1]! * 32] : shape;
              const n = s.reduce((a, d) => a * d, 1);
              const size = { F32: 4 * n, F16: 2 * n, BF16: 2 * n, Q8_0: (n / 32) * 34, Q4_0: (n / 32) * 18 }[type];
              return { name, type, shape: s, data: Uint8Array.from({ length: size }, (_, i) => (i * 31 + name.length) & 255) };
            });
          const cleanMeta = metadata.filter(([, v]) => typeof v !== 'string' || !/[\uD800-\uDFFF]/.test(v)).filter(([, v]) => !Array.isArray(v) || v.every((x) => typeof x !== 'string' || !/[\uD800-\uDFFF]/.test(x)));
          const file = encodeGguf({ metadata: Object.fromEntries(cleanMeta) as never, tensors, ...(alignment === undefined ? {} : { alignment }) });
          const h = parseGgufHeader(file, file.length);
          checkInside(h, file.length);
          for (const [k, v] of cleanMeta) {
            const got = h.metadata.get(k);
            if (typeof v === 'bigint') expect(BigInt(got as number | bigint)).toBe(v);
            else if (Array.isArray(v)) expect(Array.from(got as ArrayLike<unknown>)).toEqual(v);
            else expect(got).toEqual(v);
          }
          for (const t of tensors) {
            const info = h.tensors.get(t.name)!;
            expect(info.shape).toEqual(t.shape);
            expect(file.subarray(info.offset, info.offset + info.byteLength)).toEqual(t.data);
          }
        },
      ),
      { numRuns: 600, seed: 9 },
    );
  });
});
