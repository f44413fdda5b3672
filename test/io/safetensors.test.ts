// safetensors: (1) valid files round-trip through encodeSafetensors -> parseSafetensorsHeader / SafetensorsFile.open,
// (2) the bundled tiny-py model opens with the tensors its README lists, (3) a corpus of crafted bad files, each
// refused through both entry points with the right code and a message naming the file and the field, (4) sharded
// checkpoints and their bad indexes, (5) the bf16/f16 converters against the scalar ones for all 65536 patterns,
// (6) property-based fuzzing: mutated, truncated and random-header files either parse to tensors inside the file or
// throw LlmKernelsError / RangeError / TypeError.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { bf16ToF32 as bf16Scalar, f16ToF32 as f16Scalar } from '../../lib/dtype.js';
import { LlmKernelsError } from '../../lib/errors.js';
import {
  bf16ToF32,
  encodeSafetensors,
  f16ToF32,
  parseSafetensorsHeader,
  SAFETENSORS_DTYPES,
  safetensorsDTypeSize,
  SafetensorsFile,
  SafetensorsModel,
  type SafetensorsDType,
  type SafetensorsHeader,
  type SafetensorsTensorData,
} from '../../lib/io/safetensors.js';
import { Rng } from '../../lib/random.js';
import { entry, f32Shard, rawSafetensors, tempDir, VALID_DATA_BYTES, validFile, validHeader } from './fixtures-safetensors.js';

const MODEL_DIR = join(import.meta.dirname, '..', '..', 'models', 'tiny-py');
const tmp = tempDir('lk-safetensors-');
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

/** Every tensor lies inside the file and after the header; none overlap. */
function checkInside(h: SafetensorsHeader, fileSize: number): void {
  expect(h.dataStart).toBe(8 + h.headerBytes);
  const ranges: Array<[number, number]> = [];
  for (const t of h.tensors.values()) {
    expect(Number.isSafeInteger(t.offset) && Number.isSafeInteger(t.byteLength)).toBe(true);
    expect(t.offset).toBeGreaterThanOrEqual(h.dataStart);
    expect(t.byteLength).toBeGreaterThanOrEqual(0);
    expect(t.offset + t.byteLength).toBeLessThanOrEqual(fileSize);
    expect(t.byteLength).toBe(t.shape.reduce((a, d) => a * d, 1) * safetensorsDTypeSize(t.dtype));
    if (t.byteLength > 0) ranges.push([t.offset, t.offset + t.byteLength]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1]);
}

function randomTensor(rng: Rng, name: string): SafetensorsTensorData {
  const dtype = SAFETENSORS_DTYPES[rng.int(0, SAFETENSORS_DTYPES.length - 1)]!;
  const rank = rng.int(0, 3);
  const shape = Array.from({ length: rank }, () => rng.int(0, 5));
  const n = shape.reduce((a, d) => a * d, 1) * safetensorsDTypeSize(dtype);
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.int(0, 255);
  return { name, dtype, shape, data };
}

describe('encodeSafetensors -> parse / open round trip', () => {
  it('random tensors of every dtype (seeded), metadata, scalars and empty tensors', () => {
    const rng = new Rng(20261129);
    for (let trial = 0; trial < 20; trial++) {
      const names = ['a', 'b.weight', 'model.layers.0.q_proj.weight', 'ünïcødé ✓', '0', '__proto__', 'constructor', ''];
      const tensors = names.slice(0, rng.int(0, names.length)).map((n) => randomTensor(rng, n));
      const meta = trial % 2 === 0 ? { format: 'pt', trial: String(trial) } : undefined;
      const file = encodeSafetensors(tensors, meta);
      const n = Number(new DataView(file.buffer).getBigUint64(0, true));
      expect(n % 8, 'header padded to a multiple of 8').toBe(0);
      const h = parseSafetensorsHeader(file, file.length, `trial${trial}.safetensors`);
      expect(h.headerBytes).toBe(n);
      expect([...h.tensors.keys()].sort()).toEqual(tensors.map((t) => t.name).sort());
      expect({ ...h.metadata }).toEqual(meta ?? {});
      checkInside(h, file.length);
      for (const t of tensors) {
        const info = h.tensors.get(t.name)!;
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        expect(file.subarray(info.offset, info.offset + info.byteLength)).toEqual(t.data);
      }
      const p = tmp.write(`rt-${trial}.safetensors`, file);
      const f = SafetensorsFile.open(p);
      try {
        expect(f.fileSize).toBe(file.length);
        expect(f.names().sort()).toEqual(tensors.map((t) => t.name).sort());
        for (const t of tensors) {
          expect(f.has(t.name)).toBe(true);
          const got = f.read(t.name);
          expect(got.length).toBe(t.data.length);
          expect(got.byteOffset).toBe(0);
          expect(got.buffer.byteLength).toBe(t.data.length);
          expect(got).toEqual(t.data);
        }
      } finally {
        f.close();
      }
    }
  });

  it('the fixture file: gaps and trailing bytes are allowed, tensors in header order', () => {
    const file = rawSafetensors(
      { a: entry('U8', [4], 10, 14), b: entry('U16', [2], 0, 4), c: entry('I8', [0], 3, 3) /* empty, inside b: fine */ },
      64,
    );
    const h = parseSafetensorsHeader(file, file.length, 'gaps.safetensors');
    expect([...h.tensors.keys()]).toEqual(['a', 'b', 'c']);
    expect(h.tensors.get('a')).toEqual({ name: 'a', dtype: 'U8', shape: [4], offset: h.dataStart + 10, byteLength: 4 });
    const v = parseSafetensorsHeader(validFile(), validFile().length);
    expect(v.tensors.get('scalar')!.shape).toEqual([]);
    expect(v.tensors.get('empty')!.byteLength).toBe(0);
    expect(v.metadata.format).toBe('pt');
  });

  it('parse accepts exactly the first 8 + N bytes with the real file size', () => {
    const file = validFile();
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    const h = parseSafetensorsHeader(file.subarray(0, 8 + n), file.length, 'prefix');
    checkInside(h, file.length);
    // Odd byteOffset of the input bytes.
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    expect(parseSafetensorsHeader(shifted.subarray(1), file.length).tensors.size).toBe(5);
  });

  it('encodeSafetensors refuses bad arguments (TypeError / RangeError)', () => {
    const d = new Uint8Array(4);
    expect(() => encodeSafetensors('x' as never)).toThrow(TypeError);
    expect(() => encodeSafetensors([{ name: 1 as never, dtype: 'F32', shape: [1], data: d }])).toThrow(/tensors\[0\]\.name/);
    expect(() => encodeSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [1], data: d }])).toThrow(RangeError);
    expect(() => encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [1], data: d }, { name: 'a', dtype: 'F32', shape: [1], data: d }])).toThrow(
      /unique names/,
    );
    expect(() => encodeSafetensors([{ name: 'a', dtype: 'F17' as never, shape: [1], data: d }])).toThrow(RangeError);
    expect(() => encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [2], data: d }])).toThrow(/tensors\[0\]\.data\.length/);
    expect(() => encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [-1], data: d }])).toThrow(RangeError);
    expect(() => encodeSafetensors([], { a: 1 as never })).toThrow(/metadata\["a"\]/);
  });

  it('parse refuses bad arguments (TypeError / RangeError, not file errors)', () => {
    const file = validFile();
    expect(() => parseSafetensorsHeader([1, 2] as never, 2)).toThrow(TypeError);
    expect(() => parseSafetensorsHeader(file, '9' as never)).toThrow(TypeError);
    expect(() => parseSafetensorsHeader(file, -1)).toThrow(RangeError);
    expect(() => parseSafetensorsHeader(file, 1.5)).toThrow(RangeError);
    expect(() => parseSafetensorsHeader(file, file.length - 1)).toThrow(RangeError);
    expect(() => parseSafetensorsHeader(file, file.length, 7 as never)).toThrow(TypeError);
    expect(() => safetensorsDTypeSize('X' as never)).toThrow(RangeError);
    expect(SAFETENSORS_DTYPES.map((d) => safetensorsDTypeSize(d))).toEqual([1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8, 1, 1]);
  });
});

describe('SafetensorsFile', () => {
  it('the tiny-py model: 39 BF16 tensors with the README shapes, 3,311,872 parameters', () => {
    const f = SafetensorsFile.open(join(MODEL_DIR, 'model.safetensors'));
    try {
      const want = new Map<string, number[]>([
        ['model.embed_tokens.weight', [320, 256]],
        ['model.norm.weight', [256]],
        ['lm_head.weight', [320, 256]],
      ]);
      for (let i = 0; i < 4; i++) {
        const p = `model.layers.${i}.`;
        want.set(`${p}input_layernorm.weight`, [256]);
        want.set(`${p}self_attn.q_proj.weight`, [256, 256]);
        want.set(`${p}self_attn.k_proj.weight`, [128, 256]);
        want.set(`${p}self_attn.v_proj.weight`, [128, 256]);
        want.set(`${p}self_attn.o_proj.weight`, [256, 256]);
        want.set(`${p}post_attention_layernorm.weight`, [256]);
        want.set(`${p}mlp.gate_proj.weight`, [768, 256]);
        want.set(`${p}mlp.up_proj.weight`, [768, 256]);
        want.set(`${p}mlp.down_proj.weight`, [256, 768]);
      }
      // 4 layers x 9 + embed_tokens + norm + lm_head (the README's table; the header has 40 keys with __metadata__).
      expect(f.tensors.size).toBe(39);
      expect([...f.tensors.keys()].sort()).toEqual([...want.keys()].sort());
      let params = 0;
      for (const [name, shape] of want) {
        const t = f.info(name);
        expect(t.dtype).toBe('BF16');
        expect(t.shape).toEqual(shape);
        params += t.byteLength / 2;
      }
      expect(params).toBe(3_311_872);
      expect({ ...f.metadata }).toEqual({ format: 'pt' });
      expect(f.dataStart + params * 2).toBe(f.fileSize);
      // RMSNorm weights: trained, finite, near 1 on average; the bf16 -> f32 widening is exact.
      const w = bf16ToF32(f.read('model.norm.weight'));
      expect(w.length).toBe(256);
      expect(w.every(Number.isFinite)).toBe(true);
      const mean = w.reduce((a, x) => a + Math.abs(x), 0) / w.length;
      expect(mean).toBeGreaterThan(0.05);
      expect(mean).toBeLessThan(20);
      const emb = f.read('model.embed_tokens.weight');
      expect(emb.length).toBe(320 * 256 * 2);
    } finally {
      f.close();
    }
  });

  it('SafetensorsModel opens the tiny-py folder (single file)', () => {
    const m = SafetensorsModel.open(MODEL_DIR);
    try {
      expect(m.names().length).toBe(39);
      expect(m.shards.length).toBe(1);
      expect(m.indexMetadata).toBe(null);
      expect(m.info('lm_head.weight').shape).toEqual([320, 256]);
      expect(m.read('model.layers.0.input_layernorm.weight').length).toBe(512);
      expect(m.shardOf('lm_head.weight')).toBe(join(MODEL_DIR, 'model.safetensors'));
    } finally {
      m[Symbol.dispose]();
    }
    expect(m.shards[0]!.closed).toBe(true);
  });

  it('unknown names, closed files (ERR_DISPOSED), idempotent close, dispose', () => {
    const p = tmp.write('closed.safetensors', validFile());
    const f = SafetensorsFile.open(p);
    const e = catchLk(() => f.info('nope'));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toBe(`${p}: expected a tensor of this name for the name, got no tensor "nope"`);
    expect(() => f.read(3 as never)).toThrow(TypeError);
    expect(f.has('nope')).toBe(false);
    f.close();
    f.close();
    expect(f.closed).toBe(true);
    for (const call of [() => f.read('z'), () => f.info('z'), () => f.has('z'), () => f.names()]) {
      const d = catchLk(call);
      expect(d.code).toBe('ERR_DISPOSED');
      expect(d.message).toMatch(/^SafetensorsFile\.\w+: expected an open file for this, got a closed file/);
    }
    const g = SafetensorsFile.open(p);
    g[Symbol.dispose]();
    expect(catchLk(() => g.read('z')).code).toBe('ERR_DISPOSED');
  });

  it('a file truncated after open: read throws ERR_MODEL_FORMAT (truncated), earlier tensors still read', () => {
    const file = validFile();
    const p = tmp.write('shrinks.safetensors', file);
    const f = SafetensorsFile.open(p);
    try {
      const z = f.info('z');
      truncateSync(p, z.offset + 3);
      expect(f.read('x.weight').length).toBe(120);
      const e = catchLk(() => f.read('z'));
      expect(e.code).toBe('ERR_MODEL_FORMAT');
      expect(e.message).toBe(`${p}: expected 16 bytes at file offset ${z.offset} for tensor "z", got 3 (the file is truncated)`);
    } finally {
      f.close();
    }
  });

  it('missing file, a folder, and the path type', () => {
    const missing = join(tmp.dir, 'nope.safetensors');
    const e = catchLk(() => SafetensorsFile.open(missing));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toBe(`${missing}: expected a readable safetensors file for the path, got ENOENT`);
    const d = catchLk(() => SafetensorsFile.open(tmp.dir));
    expect(d.code).toBe('ERR_MODEL_FORMAT');
    expect(d.message).toContain(tmp.dir);
    expect(() => SafetensorsFile.open(undefined as never)).toThrow(TypeError);
    // A FIFO: opened without blocking on a writer, then refused (where mkfifo exists).
    const fifo = join(tmp.dir, 'fifo.safetensors');
    if (spawnSync('mkfifo', [fifo]).status === 0) {
      const f = catchLk(() => SafetensorsFile.open(fifo));
      expect(f.message).toBe(`${fifo}: expected a regular file for the path, got not a regular file`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The bad-file corpus: each file must be refused by parseSafetensorsHeader(bytes, bytes.length) and by
// SafetensorsFile.open(path) with this code and a message that starts with the file name and names the field.

interface BadCase {
  name: string;
  bytes: () => Uint8Array;
  code?: 'ERR_MODEL_FORMAT' | 'ERR_UNSUPPORTED';
  /** Must match the message (after the file name). */
  field: RegExp;
}

const enc = (s: string) => new TextEncoder().encode(s);
const headerLen = (f: Uint8Array) => Number(new DataView(f.buffer, f.byteOffset).getBigUint64(0, true));
/** The valid header with one tensor entry replaced. */
const withEntry = (name: string, v: unknown) => rawSafetensors({ ...validHeader(), [name]: v }, VALID_DATA_BYTES);
const withX = (patch: Record<string, unknown>) => withEntry('x.weight', { ...entry('F16', [3, 20], 0, 120), ...patch });
const without = (key: string) => {
  const e: Record<string, unknown> = { ...entry('F16', [3, 20], 0, 120) };
  delete e[key];
  return withEntry('x.weight', e);
};

const BAD: BadCase[] = [
  // Truncated at many points.
  { name: 'empty file', bytes: () => new Uint8Array(0), field: /expected at least 8 bytes \(the header length\) for the file size, got 0 bytes/ },
  { name: 'truncated inside the length (3 bytes)', bytes: () => validFile().slice(0, 3), field: /for the file size, got 3 bytes/ },
  { name: 'truncated inside the length (7 bytes)', bytes: () => validFile().slice(0, 7), field: /for the file size, got 7 bytes/ },
  { name: 'only the length', bytes: () => validFile().slice(0, 8), field: /for the header length \(bytes 0-7\), got \d+ \(the file is truncated/ },
  { name: 'truncated inside the header (first byte)', bytes: () => validFile().slice(0, 9), field: /the header length/ },
  { name: 'truncated inside the header (middle)', bytes: () => { const f = validFile(); return f.slice(0, 8 + (headerLen(f) >> 1)); }, field: /the header length/ },
  { name: 'truncated inside the header (last byte missing)', bytes: () => { const f = validFile(); return f.slice(0, 7 + headerLen(f)); }, field: /at most the file size - 8/ },
  { name: 'truncated at the data start', bytes: () => { const f = validFile(); return f.slice(0, 8 + headerLen(f)); }, field: /for data_offsets\[1\] of tensor "x\.weight", got 120/ },
  { name: 'truncated inside the first tensor', bytes: () => { const f = validFile(); return f.slice(0, 8 + headerLen(f) + 50); }, field: /at most the size of the data region \(50 bytes.*data_offsets\[1\] of tensor "x\.weight"/ },
  { name: 'truncated inside the last tensor (1 byte missing)', bytes: () => validFile().slice(0, -1), field: /data region \(144 bytes.*data_offsets\[1\] of tensor "scalar", got 145/ },
  // Header length.
  { name: 'header length 0', bytes: () => rawSafetensors('', 16, 0), field: /at least 1 byte for the header length \(bytes 0-7\), got 0/ },
  { name: 'header length 2^64 - 1', bytes: () => rawSafetensors('{}', 16, 2n ** 64n - 1n), field: /at most 104857600 bytes \(100 MiB\) for the header length \(bytes 0-7\), got 18446744073709551615/ },
  { name: 'header length 2^53 + 1', bytes: () => rawSafetensors('{}', 16, 2n ** 53n + 1n), field: /100 MiB.*got 9007199254740993/ },
  { name: 'header length 100 MiB + 1', bytes: () => rawSafetensors('{}', 16, 100 * 1024 * 1024 + 1), field: /100 MiB\) for the header length/ },
  { name: 'header length 1 past the end', bytes: () => rawSafetensors('{}', 6, 9), field: /at most the file size - 8 \(8 bytes\) for the header length \(bytes 0-7\), got 9/ },
  // Encoding and JSON.
  { name: 'invalid UTF-8 (0xff)', bytes: () => rawSafetensors(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), field: /valid UTF-8 for the header/ },
  { name: 'overlong UTF-8 (0xc0 0xaf)', bytes: () => rawSafetensors(Uint8Array.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d])), field: /valid UTF-8 for the header/ },
  { name: 'UTF-8 of a lone surrogate (ed a0 80)', bytes: () => rawSafetensors(Uint8Array.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d])), field: /valid UTF-8 for the header/ },
  { name: 'UTF-8 cut inside a character', bytes: () => rawSafetensors(Uint8Array.from([0x7b, 0x22, 0xe2, 0x9c])), field: /valid UTF-8 for the header/ },
  { name: 'byte-order mark before the JSON', bytes: () => rawSafetensors('\ufeff{}'), field: /valid JSON for the header/ },
  { name: 'JSON cut short', bytes: () => rawSafetensors('{"a": '), field: /valid JSON for the header, got a syntax error/ },
  { name: 'JSON trailing comma', bytes: () => rawSafetensors('{"__metadata__": {},}'), field: /valid JSON for the header/ },
  { name: 'JSON NaN', bytes: () => rawSafetensors('{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 0]}}'), field: /valid JSON for the header/ },
  { name: 'NUL padding instead of spaces', bytes: () => rawSafetensors('{}\0\0\0\0\0\0'), field: /valid JSON for the header/ },
  { name: 'JSON array', bytes: () => rawSafetensors('[]'), field: /a JSON object for the header, got \[\]/ },
  { name: 'JSON string', bytes: () => rawSafetensors('"x"'), field: /a JSON object for the header, got "x"/ },
  { name: 'JSON null', bytes: () => rawSafetensors('null'), field: /a JSON object for the header, got null/ },
  { name: 'JSON number', bytes: () => rawSafetensors('8'), field: /a JSON object for the header, got 8/ },
  // Entries.
  { name: 'entry a number', bytes: () => withEntry('x.weight', 1), field: /an object \{ dtype, shape, data_offsets \} for tensor "x\.weight", got 1/ },
  { name: 'entry an array', bytes: () => withEntry('x.weight', ['F16', [3, 20], [0, 120]]), field: /for tensor "x\.weight", got \["F16"/ },
  { name: 'entry null', bytes: () => withEntry('x.weight', null), field: /for tensor "x\.weight", got null/ },
  { name: 'missing dtype', bytes: () => without('dtype'), field: /a dtype for dtype of tensor "x\.weight", got no dtype field/ },
  { name: 'missing shape', bytes: () => without('shape'), field: /a shape for shape of tensor "x\.weight", got no shape field/ },
  { name: 'missing data_offsets', bytes: () => without('data_offsets'), field: /for data_offsets of tensor "x\.weight", got no data_offsets field/ },
  { name: 'bad dtype F17', bytes: () => withX({ dtype: 'F17' }), field: /a dtype \(BOOL, U8, .*F8_E5M2\) for dtype of tensor "x\.weight", got "F17"/ },
  { name: 'lower-case dtype', bytes: () => withX({ dtype: 'f16' }), field: /for dtype of tensor "x\.weight", got "f16"/ },
  { name: 'dtype a number', bytes: () => withX({ dtype: 2 }), field: /for dtype of tensor "x\.weight", got 2/ },
  { name: 'dtype __proto__ (not an own key of the table)', bytes: () => withX({ dtype: '__proto__' }), field: /for dtype of tensor "x\.weight", got "__proto__"/ },
  { name: 'dtype F8_E8M0 (valid, unsupported)', bytes: () => withX({ dtype: 'F8_E8M0' }), code: 'ERR_UNSUPPORTED', field: /a supported dtype .* for dtype of tensor "x\.weight", got "F8_E8M0"/ },
  { name: 'shape a string', bytes: () => withX({ shape: '3,20' }), field: /an array of non-negative integers for shape of tensor "x\.weight", got "3,20"/ },
  { name: 'shape negative', bytes: () => withX({ shape: [-3, -20] }), field: /a non-negative safe integer for shape\[0\] of tensor "x\.weight", got -3/ },
  { name: 'shape fractional', bytes: () => withX({ shape: [3, 20.5] }), field: /for shape\[1\] of tensor "x\.weight", got 20\.5/ },
  { name: 'shape 2^53', bytes: () => withX({ shape: [2 ** 53, 0] }), field: /for shape\[0\] of tensor "x\.weight", got 9007199254740992/ },
  { name: 'shape 1e400 (Infinity)', bytes: () => rawSafetensors('{"a": {"dtype": "U8", "shape": [1e400], "data_offsets": [0, 1]}}', 1), field: /for shape\[0\] of tensor "a", got Infinity/ },
  { name: 'shape "NaN"', bytes: () => withX({ shape: ['NaN', 20] }), field: /for shape\[0\] of tensor "x\.weight", got "NaN"/ },
  { name: 'shape null element', bytes: () => withX({ shape: [3, null] }), field: /for shape\[1\] of tensor "x\.weight", got null/ },
  { name: 'shape of 9 dimensions', bytes: () => withX({ shape: [1, 1, 1, 1, 1, 1, 1, 3, 20] }), field: /at most 8 dimensions for shape of tensor "x\.weight", got 9 dimensions/ },
  { name: 'numel overflow [2^40, 2^40]', bytes: () => withX({ shape: [2 ** 40, 2 ** 40] }), field: /numel x 2 bytes to be at most 2\^53 - 1 for shape of tensor "x\.weight", got \[1099511627776, 1099511627776\]/ },
  { name: 'bytes overflow [2^26, 2^26, 2] F64', bytes: () => withX({ dtype: 'F64', shape: [2 ** 26, 2 ** 26, 2] }), field: /numel x 8 bytes to be at most 2\^53 - 1/ },
  { name: 'data_offsets not an array', bytes: () => withX({ data_offsets: 120 }), field: /an array \[begin, end\] of two integers for data_offsets of tensor "x\.weight", got 120/ },
  { name: 'data_offsets of 3', bytes: () => withX({ data_offsets: [0, 60, 120] }), field: /for data_offsets of tensor "x\.weight", got \[0, 60, 120\]/ },
  { name: 'data_offsets strings', bytes: () => withX({ data_offsets: ['0', '120'] }), field: /a non-negative safe integer for data_offsets\[0\] of tensor "x\.weight", got "0"/ },
  { name: 'data_offsets negative', bytes: () => withX({ data_offsets: [-8, 112] }), field: /for data_offsets\[0\] of tensor "x\.weight", got -8/ },
  { name: 'data_offsets fractional', bytes: () => withX({ data_offsets: [0, 119.5] }), field: /for data_offsets\[1\] of tensor "x\.weight", got 119\.5/ },
  { name: 'begin > end', bytes: () => withX({ data_offsets: [120, 0] }), field: /data_offsets\[0\] <= data_offsets\[1\] \(0\) for data_offsets\[0\] of tensor "x\.weight", got 120/ },
  { name: 'end past the data region', bytes: () => withX({ data_offsets: [100, 220] }), field: /data region \(145 bytes.* for data_offsets\[1\] of tensor "x\.weight", got 220/ },
  { name: 'end 2^53 - 1', bytes: () => withX({ data_offsets: [0, 2 ** 53 - 1] }), field: /for data_offsets\[1\] of tensor "x\.weight", got 9007199254740991/ },
  { name: 'byte length short for the dtype', bytes: () => withX({ data_offsets: [0, 118] }), field: /data_offsets\[1\] - data_offsets\[0\] to equal numel x 2 = 120 bytes \(F16 \[3, 20\]\) for tensor "x\.weight", got 118/ },
  { name: 'byte length of F32 for an F16 tensor', bytes: () => withEntry('z', entry('F16', [2, 2], 128, 144)), field: /numel x 2 = 8 bytes \(F16 \[2, 2\]\) for tensor "z", got 16/ },
  { name: 'empty tensor with bytes', bytes: () => withEntry('empty', entry('I64', [0, 5], 144, 145)), field: /= 0 bytes .* for tensor "empty", got 1/ },
  { name: 'overlapping tensors', bytes: () => withEntry('y.bias', entry('BF16', [4], 116, 124)), field: /data_offsets that do not overlap another tensor for tensor "y\.bias", got \[116, 124\), overlapping tensor "x\.weight" \[0, 120\)/ },
  { name: 'a tensor inside another', bytes: () => withEntry('scalar', entry('U8', [], 10, 11)), field: /for tensor "scalar", got \[10, 11\), overlapping tensor "x\.weight" \[0, 120\)/ },
  { name: 'two tensors at the same offsets', bytes: () => withEntry('twin', entry('F32', [2, 2], 128, 144)), field: /overlapping tensor "(z|twin)" \[128, 144\)/ },
  { name: 'metadata value a number', bytes: () => rawSafetensors({ ...validHeader(), __metadata__: { format: 'pt', n: 1 } }, VALID_DATA_BYTES), field: /a string for __metadata__\["n"\], got 1/ },
  { name: 'metadata value null', bytes: () => rawSafetensors({ ...validHeader(), __metadata__: { format: null } }, VALID_DATA_BYTES), field: /a string for __metadata__\["format"\], got null/ },
  { name: 'metadata an array', bytes: () => rawSafetensors({ ...validHeader(), __metadata__: ['pt'] }, VALID_DATA_BYTES), field: /an object of strings for __metadata__, got \["pt"\]/ },
  { name: 'metadata a string', bytes: () => rawSafetensors({ ...validHeader(), __metadata__: 'pt' }, VALID_DATA_BYTES), field: /an object of strings for __metadata__, got "pt"/ },
];

describe(`the bad-file corpus (${BAD.length} files)`, () => {
  it('has at least 40 cases', () => expect(BAD.length).toBeGreaterThanOrEqual(40));

  it.each(BAD.map((c, i) => [c.name, i] as const))('%s', (_name, i) => {
    const c = BAD[i]!;
    const bytes = c.bytes();
    const code = c.code ?? 'ERR_MODEL_FORMAT';
    const e1 = catchLk(() => parseSafetensorsHeader(bytes, bytes.length, 'bad.safetensors'));
    expect(e1.code).toBe(code);
    expect(e1.message.startsWith('bad.safetensors: expected ')).toBe(true);
    expect(e1.message).toMatch(c.field);
    const p = tmp.write(`bad-${i}.safetensors`, bytes);
    const e2 = catchLk(() => SafetensorsFile.open(p));
    expect(e2.code).toBe(code);
    expect(e2.message.startsWith(`${p}: expected `)).toBe(true);
    expect(e2.message).toMatch(c.field);
  });

  it('a failed open leaves no file descriptor behind', () => {
    const p = tmp.write('fd-leak.safetensors', withX({ dtype: 'F17' }));
    const before = openSync(p, 'r');
    closeSync(before);
    for (let i = 0; i < 50; i++) expect(() => SafetensorsFile.open(p)).toThrow(LlmKernelsError);
    const after = openSync(p, 'r');
    closeSync(after);
    expect(after).toBe(before);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('SafetensorsModel (sharded checkpoints)', () => {
  const INDEX = 'model.safetensors.index.json';
  let n = 0;
  /** A folder with the given files (objects are JSON-encoded). */
  function folder(files: Record<string, Uint8Array | object | string>): string {
    const dir = join(tmp.dir, `model-${n++}`);
    for (const [name, v] of Object.entries(files))
      tmp.write(join(dir.slice(tmp.dir.length + 1), name), v instanceof Uint8Array || typeof v === 'string' ? v : JSON.stringify(v));
    return dir;
  }
  const shard1 = () => f32Shard([['a', 3], ['b', 2]]);
  const shard2 = () => f32Shard([['c', 4]]);
  const S1 = 'model-00001-of-00002.safetensors';
  const S2 = 'model-00002-of-00002.safetensors';
  const goodIndex = () => ({ metadata: { total_size: 36 }, weight_map: { a: S1, b: S1, c: S2 } });

  it('opens a sharded checkpoint; reads across shards; close closes every shard', () => {
    const dir = folder({ [INDEX]: goodIndex(), [S1]: shard1(), [S2]: shard2() });
    const m = SafetensorsModel.open(dir);
    expect(m.names()).toEqual(['a', 'b', 'c']);
    expect(m.indexMetadata).toEqual({ total_size: 36 });
    expect(m.shards.map((s) => s.path)).toEqual([join(dir, S1), join(dir, S2)]);
    expect(m.shardOf('c')).toBe(join(dir, S2));
    expect(m.info('c').shape).toEqual([4]);
    expect(m.read('b')).toEqual(f32Shard([['a', 3], ['b', 2]]).slice(-8));
    expect(m.has('a')).toBe(true);
    expect(m.has('zz')).toBe(false);
    const e = catchLk(() => m.info('zz'));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toBe(`${dir}: expected a tensor of this name in the model for the name, got no tensor "zz"`);
    m.close();
    m.close();
    expect(m.shards.every((s) => s.closed)).toBe(true);
    const d = catchLk(() => m.read('a'));
    expect(d.code).toBe('ERR_DISPOSED');
    expect(d.message).toMatch(/^SafetensorsModel\.read: expected an open model for this, got a closed model/);
  });

  it('the index wins over a model.safetensors next to it; tensors not in weight_map are not exposed', () => {
    const dir = folder({ [INDEX]: { weight_map: { a: S1 } }, [S1]: shard1(), 'model.safetensors': shard2() });
    const m = SafetensorsModel.open(dir);
    expect(m.names()).toEqual(['a']);
    expect(m.has('b')).toBe(false);
    expect(m.indexMetadata).toBe(null);
    m.close();
  });

  interface BadDir {
    name: string;
    files: () => Record<string, Uint8Array | object | string>;
    /** The file the message starts with (relative to the folder; '' for the folder itself). */
    where: string;
    field: RegExp;
  }
  const idx = (weight_map: unknown) => ({ weight_map });
  const BAD_DIRS: BadDir[] = [
    { name: 'neither file', files: () => ({ 'other.bin': 'x' }), where: '', field: /expected model\.safetensors\.index\.json or model\.safetensors in the folder for the model folder, got neither/ },
    { name: 'index not JSON', files: () => ({ [INDEX]: '{"weight_map": ' }), where: INDEX, field: /expected valid UTF-8 JSON for the index/ },
    { name: 'index not UTF-8', files: () => ({ [INDEX]: Uint8Array.from([0x7b, 0xff, 0x7d]) }), where: INDEX, field: /expected valid UTF-8 JSON for the index/ },
    { name: 'index an array', files: () => ({ [INDEX]: [] }), where: INDEX, field: /expected a JSON object for the index, got \[\]/ },
    { name: 'weight_map missing', files: () => ({ [INDEX]: { metadata: {} } }), where: INDEX, field: /for weight_map, got undefined/ },
    { name: 'weight_map an array', files: () => ({ [INDEX]: idx([S1]) }), where: INDEX, field: /for weight_map, got \[/ },
    { name: 'metadata a string', files: () => ({ [INDEX]: { metadata: 'x', weight_map: {} } }), where: INDEX, field: /an object or null for metadata, got "x"/ },
    { name: 'weight_map value a number', files: () => ({ [INDEX]: idx({ a: 1 }) }), where: INDEX, field: /a shard file name \(a string\) for weight_map\["a"\], got 1/ },
    { name: 'path traversal ../', files: () => ({ [INDEX]: idx({ a: '../model.safetensors' }) }), where: INDEX, field: /a plain file name ending in \.safetensors .* for weight_map\["a"\], got "\.\.\/model\.safetensors"/ },
    { name: 'path traversal in a folder name', files: () => ({ [INDEX]: idx({ a: 'sub/../../x.safetensors' }) }), where: INDEX, field: /for weight_map\["a"\]/ },
    { name: 'absolute path', files: () => ({ [INDEX]: idx({ a: '/etc/model.safetensors' }) }), where: INDEX, field: /a plain file name .* for weight_map\["a"\], got "\/etc\/model\.safetensors"/ },
    { name: 'Windows absolute path', files: () => ({ [INDEX]: idx({ a: 'C:\\x.safetensors' }) }), where: INDEX, field: /for weight_map\["a"\]/ },
    { name: 'backslash traversal', files: () => ({ [INDEX]: idx({ a: '..\\x.safetensors' }) }), where: INDEX, field: /for weight_map\["a"\]/ },
    { name: 'not a .safetensors file', files: () => ({ [INDEX]: idx({ a: 'pytorch_model.bin' }) }), where: INDEX, field: /ending in \.safetensors .* got "pytorch_model\.bin"/ },
    { name: 'only the extension', files: () => ({ [INDEX]: idx({ a: '.safetensors' }) }), where: INDEX, field: /for weight_map\["a"\]/ },
    { name: 'missing shard', files: () => ({ [INDEX]: goodIndex(), [S1]: shard1() }), where: INDEX, field: new RegExp(`an existing shard file for weight_map\\["c"\\], got "${S2}" \\(no such file`) },
    { name: 'tensor missing from its shard', files: () => ({ [INDEX]: idx({ a: S1, c: S1 }), [S1]: shard1() }), where: INDEX, field: new RegExp(`tensor "c" in its shard "${S1}" for weight_map\\["c"\\], got a shard without it`) },
    { name: 'tensor in the wrong shard', files: () => ({ [INDEX]: idx({ a: S2, c: S2 }), [S1]: shard1(), [S2]: shard2() }), where: INDEX, field: /tensor "a" in its shard/ },
    { name: 'duplicate tensor across shards', files: () => ({ [INDEX]: goodIndex(), [S1]: shard1(), [S2]: f32Shard([['c', 4], ['a', 1]]) }), where: INDEX, field: new RegExp(`each tensor in one shard only for tensor "a", got in both "${S1}" and "${S2}"`) },
    { name: 'a bad shard', files: () => ({ [INDEX]: goodIndex(), [S1]: shard1(), [S2]: shard2().slice(0, -1) }), where: S2, field: /data_offsets\[1\] of tensor "c"/ },
    { name: 'single model.safetensors invalid', files: () => ({ 'model.safetensors': rawSafetensors('[]') }), where: 'model.safetensors', field: /a JSON object for the header/ },
  ];

  it.each(BAD_DIRS.map((c, i) => [c.name, i] as const))('refuses: %s', (_name, i) => {
    const c = BAD_DIRS[i]!;
    const dir = folder(c.files());
    const e = catchLk(() => SafetensorsModel.open(dir));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message.startsWith(`${c.where === '' ? dir : join(dir, c.where)}: expected `)).toBe(true);
    expect(e.message).toMatch(c.field);
  });

  it('a folder that does not exist, and the dir type', () => {
    const e = catchLk(() => SafetensorsModel.open(join(tmp.dir, 'no-such-model')));
    expect(e.code).toBe('ERR_MODEL_FORMAT');
    expect(e.message).toMatch(/got no such folder$/);
    expect(() => SafetensorsModel.open(42 as never)).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('bf16ToF32 / f16ToF32', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bytes = new Uint8Array(all.buffer);

  it('bf16: all 65536 patterns, bit-exact widening (NaN payloads kept)', () => {
    const out = new Uint32Array(bf16ToF32(bytes).buffer);
    for (let i = 0; i < 65536; i++) if (out[i] !== i << 16 >>> 0) expect.fail(`bf16 ${i.toString(16)}: got bits ${out[i]!.toString(16)}`);
    const vals = bf16ToF32(bytes);
    for (let i = 0; i < 65536; i += 97) expect(Object.is(vals[i], bf16Scalar(i)) || (Number.isNaN(vals[i]) && Number.isNaN(bf16Scalar(i)))).toBe(true);
  });

  it('f16: all 65536 patterns equal the scalar conversion; NaN payloads kept', () => {
    const vals = f16ToF32(bytes);
    const bits = new Uint32Array(vals.buffer);
    for (let i = 0; i < 65536; i++) {
      const want = f16Scalar(i);
      if (Number.isNaN(want)) {
        if (bits[i] !== ((((i & 0x8000) << 16) | 0x7f800000 | ((i & 0x3ff) << 13)) >>> 0)) expect.fail(`f16 NaN ${i.toString(16)}`);
      } else if (!Object.is(vals[i], want)) expect.fail(`f16 ${i.toString(16)}: got ${vals[i]}, want ${want}`);
    }
  });

  it('odd byteOffset inputs are copied, not misread; odd lengths refused', () => {
    const buf = new Uint8Array(9);
    buf.set([0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3c, 0x00, 0xc0], 1); // bf16 1, -2; f16 1, -2
    expect([...bf16ToF32(buf.subarray(1, 5))]).toEqual([1, -2]);
    expect([...f16ToF32(buf.subarray(5, 9))]).toEqual([1, -2]);
    expect(bf16ToF32(new Uint8Array(0)).length).toBe(0);
    expect(() => bf16ToF32(new Uint8Array(3))).toThrow(RangeError);
    expect(() => f16ToF32(new Uint8Array(1))).toThrow(/bytes\.length/);
    expect(() => f16ToF32(new Uint16Array(2) as never)).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('fuzzing (fast-check)', () => {
  /** Parses; on success checks every tensor is inside the file; on failure only our error classes are allowed. */
  function parseOrRefuse(bytes: Uint8Array): void {
    try {
      const h = parseSafetensorsHeader(bytes, bytes.length, 'fuzz.safetensors');
      checkInside(h, bytes.length);
    } catch (e) {
      if (e instanceof LlmKernelsError) {
        expect(['ERR_MODEL_FORMAT', 'ERR_UNSUPPORTED']).toContain(e.code);
        expect(e.message.startsWith('fuzz.safetensors: expected ')).toBe(true);
      } else if (!(e instanceof RangeError || e instanceof TypeError)) throw e;
    }
  }

  const base = validFile();
  const big = encodeSafetensors(
    Array.from({ length: 6 }, (_, i) => randomTensor(new Rng(i + 1), `t${i}`)),
    { format: 'pt' },
  );

  it('random byte mutations and truncations of valid files', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(base, big),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
        fc.option(fc.nat(), { nil: undefined }),
        (file, muts, cut) => {
          const f = file.slice(0, cut === undefined ? file.length : cut % (file.length + 1));
          for (const m of muts) if (f.length > 0) f[m.at % f.length] = m.byte;
          parseOrRefuse(f);
        },
      ),
      { numRuns: 1000, seed: 1129 },
    );
  });

  it('mutations biased to the header: digits, quotes and brackets', () => {
    const n = headerLen(base);
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: n + 7 }), ch: fc.constantFrom(...'0123456789-.e"[]{},: \\x'.split('')) }), { minLength: 1, maxLength: 4 }),
        (muts) => {
          const f = base.slice();
          for (const m of muts) f[m.at] = m.ch.charCodeAt(0);
          parseOrRefuse(f);
        },
      ),
      { numRuns: 1000, seed: 7 },
    );
  });

  it('random JSON headers (structured near-valid entries and arbitrary JSON values)', () => {
    const num = fc.oneof(
      fc.nat(40),
      fc.integer({ min: -3, max: 300 }),
      fc.constantFrom(2 ** 31, 2 ** 40, 2 ** 53 - 1, 2 ** 53, 2 ** 64, -0, 0.5, 1e308),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
    );
    const ent = fc.oneof(
      { weight: 4, arbitrary: fc.record({ dtype: fc.oneof(fc.constantFrom(...SAFETENSORS_DTYPES, 'F4', 'X'), fc.string()), shape: fc.array(num, { maxLength: 9 }), data_offsets: fc.array(num, { minLength: 1, maxLength: 3 }) }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: fc.jsonValue() },
    );
    const header = fc.oneof(
      { weight: 4, arbitrary: fc.dictionary(fc.oneof(fc.string(), fc.constant('__metadata__')), ent, { maxKeys: 6 }) },
      { weight: 1, arbitrary: fc.jsonValue() },
    );
    fc.assert(
      fc.property(header, fc.nat(400), fc.integer({ min: 0, max: 7 }), (h, dataLen, pad) => {
        parseOrRefuse(rawSafetensors(JSON.stringify(h) + ' '.repeat(pad), dataLen));
      }),
      { numRuns: 1000, seed: 42 },
    );
  });

  it('random header lengths and leading bytes', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.uint8Array({ maxLength: 64 }), (len, rest) => {
        const f = new Uint8Array(8 + rest.length);
        new DataView(f.buffer).setBigUint64(0, len, true);
        f.set(rest, 8);
        parseOrRefuse(f);
      }),
      { numRuns: 500, seed: 3 },
    );
  });

  it('random valid files round-trip exactly (encode -> parse)', () => {
    const t = fc.record({
      dtype: fc.constantFrom(...SAFETENSORS_DTYPES),
      shape: fc.array(fc.nat(4), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(fc.string(), t), { selector: (x) => x[0], maxLength: 6 }), (list) => {
        const tensors = list
          .filter(([name]) => name !== '__metadata__')
          .map(([name, { dtype, shape }]) => {
            const n = shape.reduce((a, d) => a * d, 1) * safetensorsDTypeSize(dtype as SafetensorsDType);
            return { name, dtype, shape, data: Uint8Array.from({ length: n }, (_, i) => (i * 31 + name.length) & 255) };
          });
        const file = encodeSafetensors(tensors);
        const h = parseSafetensorsHeader(file, file.length);
        checkInside(h, file.length);
        for (const x of tensors) {
          const info = h.tensors.get(x.name)!;
          expect(info.shape).toEqual(x.shape);
          expect(file.subarray(info.offset, info.offset + info.byteLength)).toEqual(x.data);
        }
      }),
      { numRuns: 300, seed: 5 },
    );
  });
});
