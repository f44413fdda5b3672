/**
 * safetensors reader (single files and sharded checkpoints) and writer, in plain TypeScript: every byte of the file
 * is checked here, with overflow-safe arithmetic, before anything reads tensor data or hands offsets to native code.
 *
 * The format (https://github.com/huggingface/safetensors):
 * ```
 * bytes 0..7        N, the header length: an unsigned 64-bit little-endian integer
 * bytes 8..8+N-1    the header: UTF-8 JSON, an object
 *                     { "<tensor name>": { "dtype": "BF16", "shape": [320, 256], "data_offsets": [begin, end] }, ...,
 *                       "__metadata__": { "<key>": "<string value>", ... } }      (__metadata__ optional)
 *                   (writers pad it with spaces to a multiple of 8 bytes)
 * bytes 8+N..EOF    the data region; a tensor's bytes are data[begin, end), raw little-endian, row-major
 * ```
 *
 * The checks ({@link parseSafetensorsHeader}), each an `ERR_MODEL_FORMAT` {@link LlmKernelsError} that names the file
 * and the field, in the house form `<file>: expected <what> for <field>, got <actual>`:
 * - the file holds the 8 length bytes; 1 <= N <= min(file size - 8, 100 MiB) (N is compared as a 64-bit integer
 *   before it becomes a number, so a header length near 2^64 is refused, never allocated);
 * - the header is valid UTF-8 (a byte-order mark is not skipped), valid JSON, and an object;
 * - `__metadata__`, if present, is an object of strings;
 * - every other key is a tensor whose value is an object with `dtype` (one of {@link SAFETENSORS_DTYPES}; the newer
 *   sub-byte / exotic dtypes F4, F6_E2M3, F6_E3M2, F8_E8M0, C64 are `ERR_UNSUPPORTED`), `shape` (at most 8
 *   non-negative safe integers) and `data_offsets` (two non-negative safe integers, begin <= end); unknown extra keys
 *   are ignored;
 * - numel x element size fits in 2^53 - 1 (computed with BigInt), and end - begin equals it exactly;
 * - end <= the size of the data region (file size - 8 - N), so every tensor lies inside the file;
 * - no two tensors share a byte (sorted by begin; empty tensors overlap nothing).
 * Gaps between tensors and bytes after the last one are allowed: the format does not forbid them.
 *
 * JSON duplicate keys: `JSON.parse` keeps the last one; the earlier entry's bytes are then just a gap.
 *
 * Reading ({@link SafetensorsFile}, on the {@link TensorFile} base it shares with the GGUF reader, tensor-file.ts) uses
 * synchronous `fs.readSync` at checked offsets into fresh buffers; a short read (the file shrank after it was opened)
 * is `ERR_MODEL_FORMAT` (truncated), never a partly filled tensor.
 * Sharded checkpoints ({@link SafetensorsModel}) are described by `model.safetensors.index.json`.
 */
import { statSync } from 'node:fs';
import { join, posix, win32 } from 'node:path';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { describe, expected, MAX_DIMS } from '../validate.js';
import { checkNoOverlap, formatError, openTensorFile, q, readFully, TensorFile, useFile } from './tensor-file.js';

/** The element types of safetensors that this reader accepts (the `dtype` strings of the header). */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'U8',
  'I8',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
  'F8_E4M3',
  'F8_E5M2',
] as const;

/** A safetensors element type, as spelled in the header. */
export type SafetensorsDType = (typeof SAFETENSORS_DTYPES)[number];

const DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** Valid in newer safetensors versions, not supported here (sub-byte or complex element types). */
const UNSUPPORTED_DTYPES: readonly string[] = ['F4', 'F6_E2M3', 'F6_E3M2', 'F8_E8M0', 'C64'];

/** The largest header accepted: a sanity limit, far above any real checkpoint's (a few MiB at most). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** The largest `model.safetensors.index.json` accepted. */
const MAX_INDEX_BYTES = 100 * 1024 * 1024;

/** The name of the optional metadata entry of the header. */
const METADATA_KEY = '__metadata__';

/** One tensor of a safetensors file, after validation. Frozen. */
export interface SafetensorsTensorInfo {
  /** The tensor's name (the header key). */
  readonly name: string;
  /** Its element type. */
  readonly dtype: SafetensorsDType;
  /** Its shape (at most 8 dimensions; `[]` is a scalar). */
  readonly shape: readonly number[];
  /** The absolute file offset of its first byte (data start + data_offsets[0]). */
  readonly offset: number;
  /** Its size in bytes: numel x element size (= data_offsets[1] - data_offsets[0]). */
  readonly byteLength: number;
}

/** A validated safetensors header. */
export interface SafetensorsHeader {
  /** N, the length of the JSON header in bytes. */
  readonly headerBytes: number;
  /** 8 + N, the file offset of the data region. */
  readonly dataStart: number;
  /** The tensors, in header order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** The `__metadata__` strings (an empty object when absent). Has no prototype, so any key is safe. */
  readonly metadata: Readonly<Record<string, string>>;
}

/** A tensor to write with {@link encodeSafetensors}. */
export interface SafetensorsTensorData {
  /** The header key; not `__metadata__`, unique. */
  name: string;
  /** The element type. */
  dtype: SafetensorsDType;
  /** The shape (at most 8 non-negative integers). */
  shape: readonly number[];
  /** The raw little-endian bytes: exactly numel x element size of them. */
  data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** Renders a value from the file for a message: never throws, never huge. */
function show(v: unknown): string {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return 'an object';
  try {
    return describe(v);
  } catch {
    return 'a value';
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Own property, or undefined (never reads Object.prototype). */
function own(o: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

function isSafeNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The byte size of one element of a safetensors dtype.
 * @param dtype - one of {@link SAFETENSORS_DTYPES}
 * @returns 1, 2, 4 or 8
 * @throws {TypeError} dtype is not a string
 * @throws {RangeError} dtype is not a safetensors dtype
 * @example
 * safetensorsDTypeSize('BF16'); // 2
 */
export function safetensorsDTypeSize(dtype: SafetensorsDType): number {
  if (typeof dtype !== 'string') throw typeError(expected('safetensorsDTypeSize', 'a safetensors dtype string', 'dtype', dtype));
  if (!Object.prototype.hasOwnProperty.call(DTYPE_SIZE, dtype))
    throw rangeError(expected('safetensorsDTypeSize', `a safetensors dtype (${SAFETENSORS_DTYPES.join(', ')})`, 'dtype', dtype));
  return DTYPE_SIZE[dtype];
}

/**
 * Reads the 8-byte header length and checks it against the file size and the header limit.
 * @returns N, a number in [1, min(fileSize - 8, 100 MiB)]
 */
function headerLength(bytes: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || bytes.length < 8)
    throw formatError(source, 'at least 8 bytes (the header length)', 'the file size', `${Math.min(fileSize, bytes.length)} bytes`, true);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) throw formatError(source, 'a header length of at least 1 byte', 'the header length (bytes 0-7)', '0', true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES))
    throw formatError(
      source,
      `a header length of at most ${SAFETENSORS_MAX_HEADER_BYTES} bytes (100 MiB)`,
      'the header length (bytes 0-7)',
      `${n}`,
      true,
    );
  if (n > BigInt(fileSize - 8))
    throw formatError(
      source,
      `a header length of at most the file size - 8 (${fileSize - 8} bytes)`,
      'the header length (bytes 0-7)',
      `${n} (the file is truncated or not safetensors)`,
      true,
    );
  return Number(n);
}

/** Validates one tensor entry of the header. */
function parseEntry(source: string, name: string, v: unknown, dataStart: number, dataSize: number): SafetensorsTensorInfo {
  const t = `tensor ${q(name)}`;
  if (!isPlainObject(v)) throw formatError(source, 'an object { dtype, shape, data_offsets }', t, show(v), true);

  const dtype = own(v, 'dtype');
  if (dtype === undefined) throw formatError(source, 'a dtype', `dtype of ${t}`, 'no dtype field', true);
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPE_SIZE, dtype)) {
    if (typeof dtype === 'string' && UNSUPPORTED_DTYPES.includes(dtype))
      throw new LlmKernelsError(
        'ERR_UNSUPPORTED',
        expected(source, `a supported dtype (${SAFETENSORS_DTYPES.join(', ')})`, `dtype of ${t}`, dtype),
      );
    throw formatError(source, `a dtype (${SAFETENSORS_DTYPES.join(', ')})`, `dtype of ${t}`, show(dtype), true);
  }
  const size = DTYPE_SIZE[dtype as SafetensorsDType];

  const shape = own(v, 'shape');
  if (shape === undefined) throw formatError(source, 'a shape', `shape of ${t}`, 'no shape field', true);
  if (!Array.isArray(shape)) throw formatError(source, 'an array of non-negative integers', `shape of ${t}`, show(shape), true);
  if (shape.length > MAX_DIMS) throw formatError(source, `at most ${MAX_DIMS} dimensions`, `shape of ${t}`, `${shape.length} dimensions`, true);
  let numel = 1n;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (!isSafeNonNegInt(d))
      throw formatError(source, 'a non-negative safe integer', `shape[${i}] of ${t}`, show(d), true);
    numel *= BigInt(d);
  }
  const want = numel * BigInt(size);
  if (want > BigInt(Number.MAX_SAFE_INTEGER))
    throw formatError(
      source,
      `numel x ${size} bytes to be at most 2^53 - 1`,
      `shape of ${t}`,
      `[${shape.join(', ')}] (${want} bytes)`,
      true,
    );

  const offs = own(v, 'data_offsets');
  if (offs === undefined) throw formatError(source, 'data_offsets [begin, end]', `data_offsets of ${t}`, 'no data_offsets field', true);
  if (!Array.isArray(offs) || offs.length !== 2)
    throw formatError(source, 'an array [begin, end] of two integers', `data_offsets of ${t}`, show(offs), true);
  const begin: unknown = offs[0];
  const end: unknown = offs[1];
  if (!isSafeNonNegInt(begin)) throw formatError(source, 'a non-negative safe integer', `data_offsets[0] of ${t}`, show(begin), true);
  if (!isSafeNonNegInt(end)) throw formatError(source, 'a non-negative safe integer', `data_offsets[1] of ${t}`, show(end), true);
  if (begin > end) throw formatError(source, `data_offsets[0] <= data_offsets[1] (${end})`, `data_offsets[0] of ${t}`, begin);
  if (end > dataSize)
    throw formatError(
      source,
      `at most the size of the data region (${dataSize} bytes; the file is truncated or the offset is wrong)`,
      `data_offsets[1] of ${t}`,
      end,
    );
  const byteLength = end - begin;
  if (BigInt(byteLength) !== want)
    throw formatError(
      source,
      `data_offsets[1] - data_offsets[0] to equal numel x ${size} = ${want} bytes (${dtype} [${shape.join(', ')}])`,
      t,
      byteLength,
    );
  return Object.freeze({ name, dtype: dtype as SafetensorsDType, shape: Object.freeze((shape as number[]).map((d) => (d === 0 ? 0 : d))) /* -0 -> 0 */, offset: dataStart + begin, byteLength });
}

/**
 * Parses and validates a safetensors header.
 * @param bytes - at least the first 8 + N bytes of the file (the whole file is fine too)
 * @param fileSize - the size of the whole file in bytes (tensors must lie inside it)
 * @param source - names the file in error messages (a path or a file name)
 * @returns the header length, the data start and the validated tensors and metadata
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` naming the file and the field, for anything wrong in the file (see the
 *   file header for the list); `ERR_UNSUPPORTED` for a valid but unsupported dtype (F4, F6_*, F8_E8M0, C64)
 * @throws {TypeError} bytes is not a Uint8Array, source not a string
 * @throws {RangeError} fileSize is not a non-negative safe integer or is smaller than bytes.length
 * @example
 * // SafetensorsFile.open reads just the 8 + N header bytes; a whole file in memory works too:
 * const file = readFileSync('model.safetensors');
 * const h = parseSafetensorsHeader(file, file.length, 'model.safetensors');
 * h.tensors.get('lm_head.weight'); // { name, dtype: 'BF16', shape: [320, 256], offset, byteLength: 163840 }
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, source = 'safetensors'): SafetensorsHeader {
  const fn = 'parseSafetensorsHeader';
  if (!(bytes instanceof Uint8Array)) throw typeError(expected(fn, 'a Uint8Array', 'bytes', bytes));
  if (typeof fileSize !== 'number') throw typeError(expected(fn, 'an integer', 'fileSize', fileSize));
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) throw rangeError(expected(fn, 'a non-negative safe integer', 'fileSize', fileSize));
  if (fileSize < bytes.length) throw rangeError(expected(fn, `at least bytes.length (${bytes.length})`, 'fileSize', fileSize));
  if (typeof source !== 'string') throw typeError(expected(fn, 'a string', 'source', source));

  const n = headerLength(bytes, fileSize, source);
  if (bytes.length < 8 + n)
    throw formatError(source, `${n} header bytes (the header length)`, 'the header', `${bytes.length - 8} (truncated)`, true);
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;

  let text: string;
  try {
    text = utf8.decode(bytes.subarray(8, dataStart));
  } catch {
    throw formatError(source, 'valid UTF-8', 'the header', 'invalid UTF-8 bytes', true);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw formatError(source, 'valid JSON', 'the header', `a syntax error (${msg.length > 120 ? msg.slice(0, 120) + '…' : msg})`, true);
  }
  if (!isPlainObject(json)) throw formatError(source, 'a JSON object', 'the header', show(json), true);

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const key of Object.keys(json)) {
    const v = json[key];
    if (key === METADATA_KEY) {
      if (!isPlainObject(v)) throw formatError(source, 'an object of strings', METADATA_KEY, show(v), true);
      for (const mk of Object.keys(v)) {
        const mv = v[mk];
        if (typeof mv !== 'string') throw formatError(source, 'a string', `${METADATA_KEY}[${q(mk)}]`, show(mv), true);
        metadata[mk] = mv;
      }
      continue;
    }
    tensors.set(key, parseEntry(source, key, v, dataStart, dataSize));
  }

  // Overlaps (empty tensors overlap nothing).
  checkNoOverlap(source, tensors.values(), dataStart, 'data_offsets that do not overlap another tensor', (n) => `tensor ${n}`);
  return Object.freeze({ headerBytes: n, dataStart, tensors, metadata: Object.freeze(metadata) });
}

// ---------------------------------------------------------------------------------------------------------------
// Files

/**
 * One safetensors file, opened for reading: the header is read and validated at {@link SafetensorsFile.open}, then
 * {@link SafetensorsFile.read} reads one tensor's bytes at a time. Close it (or `using f = SafetensorsFile.open(p)`).
 * `path`, `tensors` (header order), `fileSize`, `dataStart` (8 + N) and the methods but `open` are
 * {@link TensorFile}'s.
 * @example
 * using f = SafetensorsFile.open('models/tiny-py/model.safetensors');
 * const info = f.info('model.norm.weight'); // { dtype: 'BF16', shape: [256], ... }
 * const w = bf16ToF32(f.read('model.norm.weight')); // Float32Array(256)
 */
export class SafetensorsFile extends TensorFile<SafetensorsTensorInfo> {
  /** The `__metadata__` strings (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;

  private constructor(path: string, fd: number, fileSize: number, header: SafetensorsHeader) {
    super('SafetensorsFile', path, fd, fileSize, header.dataStart, header.tensors);
    this.metadata = header.metadata;
  }

  /**
   * Opens a file and validates its header: reads 8 bytes, checks the header length against the file size (from
   * fstat), then reads and parses the header. Tensor data is not read.
   * @param path - the file
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` if the file cannot be opened or read, is not a regular file, or its
   *   header is invalid (see {@link parseSafetensorsHeader}); the message starts with the path
   * @throws {TypeError} path is not a string
   * @example
   * const f = SafetensorsFile.open('/models/llama/model.safetensors');
   * try { console.log([...f.tensors.keys()]); } finally { f.close(); }
   */
  static open(path: string): SafetensorsFile {
    return openTensorFile('SafetensorsFile', 'safetensors', path, (fd, size) => {
      const first = new Uint8Array(8);
      const n = headerLength(first.subarray(0, readFully(fd, first, 0)), size, path);
      const all = new Uint8Array(8 + n);
      all.set(first);
      const got = readFully(fd, all.subarray(8), 8);
      if (got !== n) throw formatError(path, `${n} header bytes (the header length)`, 'the header', `${got} (truncated)`, true);
      return new SafetensorsFile(path, fd, size, parseSafetensorsHeader(all, size, path));
    });
  }
}

/** Reads a small file whole, refusing one over `limit` bytes before allocating. */
function readSmallFile(path: string, limit: number, what: string): Uint8Array {
  return useFile(path, `a readable ${what}`, (fd, st) => {
    if (!st.isFile()) throw formatError(path, `a regular file (${what})`, 'the path', 'not a regular file', true);
    if (st.size > limit) throw formatError(path, `at most ${limit} bytes`, `the ${what}`, `${st.size} bytes`, true);
    const buf = new Uint8Array(st.size);
    return buf.subarray(0, readFully(fd, buf, 0));
  });
}

function exists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

/** A plain shard file name: no directory part, no '..', not absolute on any platform, ends in .safetensors. */
function isPlainShardName(name: string): boolean {
  return (
    name.length > '.safetensors'.length &&
    name.endsWith('.safetensors') &&
    !name.includes('/') &&
    !name.includes('\\') &&
    !name.includes('..') &&
    !name.includes(':') &&
    !name.includes('\0') &&
    !posix.isAbsolute(name) &&
    !win32.isAbsolute(name)
  );
}

/** The index file of a sharded checkpoint folder. */
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';
/** The single-file checkpoint name. */
export const SAFETENSORS_SINGLE_FILE = 'model.safetensors';

/**
 * A checkpoint folder: either sharded (`model.safetensors.index.json` and the shards it names) or one
 * `model.safetensors`. Every shard is opened and validated at {@link SafetensorsModel.open}; close it when done.
 *
 * The index (`{"metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...}}`) is checked: `weight_map` an
 * object of strings; shard names plain file names ending in `.safetensors` (no '/', '\\', '..', ':' or absolute
 * path: the index cannot point outside the folder); every shard present; every tensor of `weight_map` present in
 * its shard; no tensor in two shards. Tensors of a shard that `weight_map` does not name are not exposed.
 * @example
 * using m = SafetensorsModel.open('models/tiny-py');
 * for (const name of m.names()) console.log(name, m.info(name).shape);
 */
export class SafetensorsModel {
  /** The folder. */
  readonly dir: string;
  /** The `metadata` object of the index (raw, e.g. `{ total_size: 123 }`), or null for a single file. */
  readonly indexMetadata: Readonly<Record<string, unknown>> | null;
  /** The open shards (one for a single file), sorted by file name. */
  readonly shards: readonly SafetensorsFile[];
  readonly #where: Map<string, SafetensorsFile>;
  #closed = false;

  private constructor(dir: string, shards: SafetensorsFile[], where: Map<string, SafetensorsFile>, indexMetadata: Record<string, unknown> | null) {
    this.dir = dir;
    this.shards = Object.freeze(shards);
    this.#where = where;
    this.indexMetadata = indexMetadata;
  }

  /**
   * Opens a checkpoint folder (see the class description for the checks).
   * @param dir - the folder holding `model.safetensors.index.json` or `model.safetensors`
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` if neither file is there, the index is invalid, a shard is missing or
   *   invalid, a tensor is missing from its shard or present in two shards
   * @throws {TypeError} dir is not a string
   * @example
   * const m = SafetensorsModel.open('/models/Llama-3.1-8B');
   * const emb = m.read('model.embed_tokens.weight');
   * m.close();
   */
  static open(dir: string): SafetensorsModel {
    if (typeof dir !== 'string') throw typeError(expected('SafetensorsModel.open', 'a folder path string', 'dir', dir));
    const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
    if (exists(indexPath)) return SafetensorsModel.#openIndex(dir, indexPath);
    const single = join(dir, SAFETENSORS_SINGLE_FILE);
    if (exists(single)) {
      const f = SafetensorsFile.open(single);
      return new SafetensorsModel(dir, [f], new Map([...f.tensors.keys()].map((n) => [n, f])), null);
    }
    throw formatError(
      dir,
      `${SAFETENSORS_INDEX_FILE} or ${SAFETENSORS_SINGLE_FILE} in the folder`,
      'the model folder',
      exists(dir) ? 'neither' : 'no such folder',
      true,
    );
  }

  static #openIndex(dir: string, indexPath: string): SafetensorsModel {
    const bytes = readSmallFile(indexPath, MAX_INDEX_BYTES, 'index file');
    let json: unknown;
    try {
      json = JSON.parse(utf8.decode(bytes));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw formatError(indexPath, 'valid UTF-8 JSON', 'the index', msg.length > 120 ? msg.slice(0, 120) + '…' : msg, true);
    }
    if (!isPlainObject(json)) throw formatError(indexPath, 'a JSON object', 'the index', show(json), true);
    const meta = own(json, 'metadata');
    if (meta !== undefined && meta !== null && !isPlainObject(meta)) throw formatError(indexPath, 'an object or null', 'metadata', show(meta), true);
    const wm = own(json, 'weight_map');
    if (!isPlainObject(wm)) throw formatError(indexPath, 'an object { tensor name: shard file }', 'weight_map', show(wm), true);
    const wanted = new Map<string, string>();
    for (const name of Object.keys(wm)) {
      const file = wm[name];
      if (typeof file !== 'string') throw formatError(indexPath, 'a shard file name (a string)', `weight_map[${q(name)}]`, show(file), true);
      if (!isPlainShardName(file))
        throw formatError(
          indexPath,
          "a plain file name ending in .safetensors (no '/', '\\', '..', ':' or absolute path)",
          `weight_map[${q(name)}]`,
          file,
        );
      wanted.set(name, file);
    }
    const files = [...new Set(wanted.values())].sort();
    const opened = new Map<string, SafetensorsFile>();
    try {
      for (const file of files) {
        const p = join(dir, file);
        if (!exists(p)) {
          const user = [...wanted].find(([, f]) => f === file)![0];
          throw formatError(indexPath, 'an existing shard file', `weight_map[${q(user)}]`, `${JSON.stringify(file)} (no such file: ${p})`, true);
        }
        opened.set(file, SafetensorsFile.open(p));
      }
      // A tensor in two shards is ambiguous, whether or not weight_map names it.
      const owner = new Map<string, string>();
      for (const [file, f] of opened)
        for (const name of f.tensors.keys()) {
          const prev = owner.get(name);
          if (prev !== undefined)
            throw formatError(indexPath, 'each tensor in one shard only', `tensor ${q(name)}`, `in both ${JSON.stringify(prev)} and ${JSON.stringify(file)}`, true);
          owner.set(name, file);
        }
      const where = new Map<string, SafetensorsFile>();
      for (const [name, file] of wanted) {
        const f = opened.get(file)!;
        if (!f.tensors.has(name))
          throw formatError(indexPath, `tensor ${q(name)} in its shard ${JSON.stringify(file)}`, `weight_map[${q(name)}]`, 'a shard without it', true);
        where.set(name, f);
      }
      return new SafetensorsModel(dir, [...opened.values()], where, meta === undefined || meta === null ? null : Object.freeze({ ...meta }));
    } catch (e) {
      for (const f of opened.values()) f.close();
      throw e;
    }
  }

  #live(fn: string): void {
    if (this.#closed) throw new LlmKernelsError('ERR_DISPOSED', `SafetensorsModel.${fn}: expected an open model for this, got a closed model (${this.dir})`);
  }

  #file(fn: string, name: string): SafetensorsFile {
    this.#live(fn);
    if (typeof name !== 'string') throw typeError(expected(`SafetensorsModel.${fn}`, 'a tensor name string', 'name', name));
    const f = this.#where.get(name);
    if (f === undefined) throw formatError(this.dir, 'a tensor of this name in the model', 'the name', `no tensor ${q(name)}`, true);
    return f;
  }

  /**
   * The tensor names (index order for a sharded checkpoint, header order for one file).
   * @throws {LlmKernelsError} `ERR_DISPOSED` after close
   * @example
   * const layers = m.names().filter((n) => n.startsWith('model.layers.0.'));
   */
  names(): string[] {
    this.#live('names');
    return [...this.#where.keys()];
  }

  /**
   * Whether the model has a tensor of this name.
   * @throws {LlmKernelsError} `ERR_DISPOSED` after close
   * @example
   * const tied = !m.has('lm_head.weight');
   */
  has(name: string): boolean {
    this.#live('has');
    return this.#where.has(name);
  }

  /**
   * The validated description of a tensor (its offset is within its shard).
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` if there is no such tensor; `ERR_DISPOSED` after close
   * @example
   * m.info('model.norm.weight').shape; // [4096]
   */
  info(name: string): SafetensorsTensorInfo {
    return this.#file('info', name).info(name);
  }

  /**
   * The path of the shard that holds a tensor.
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` if there is no such tensor; `ERR_DISPOSED` after close
   * @example
   * m.shardOf('lm_head.weight'); // '/models/x/model-00004-of-00004.safetensors'
   */
  shardOf(name: string): string {
    return this.#file('shardOf', name).path;
  }

  /**
   * Reads one tensor's bytes, see {@link SafetensorsFile.read}.
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` (no such tensor, truncated shard), `ERR_DISPOSED` after close
   * @example
   * const w = bf16ToF32(m.read('model.layers.0.mlp.up_proj.weight'));
   */
  read(name: string): Uint8Array {
    return this.#file('read', name).read(name);
  }

  /** Closes every shard. Idempotent. @example m.close(); */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const f of this.shards) f.close();
  }

  /** Same as {@link SafetensorsModel.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Conversions

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian u16 view of bytes; copies when the byte offset is odd (a Uint16Array needs 2-byte alignment). */
function u16View(fn: string, bytes: Uint8Array): Uint16Array {
  if (!(bytes instanceof Uint8Array)) throw typeError(expected(fn, 'a Uint8Array', 'bytes', bytes));
  if (bytes.length % 2 !== 0) throw rangeError(expected(fn, 'an even number of bytes (2 per element)', 'bytes.length', bytes.length));
  if (!LITTLE_ENDIAN) {
    const out = new Uint16Array(bytes.length / 2);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
    return out;
  }
  const src = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(src.buffer, src.byteOffset, src.length / 2);
}

/**
 * Widens BF16 data (raw little-endian bytes, as read from a file) to float32. Exact: bf16 is the top half of f32,
 * NaN payloads included.
 * @param bytes - 2 bytes per element; any byte offset (odd ones are copied first)
 * @throws {TypeError} not a Uint8Array
 * @throws {RangeError} an odd number of bytes
 * @example
 * const w = bf16ToF32(file.read('model.norm.weight')); // Float32Array(256)
 */
export function bf16ToF32(bytes: Uint8Array): Float32Array {
  const src = u16View('bf16ToF32', bytes);
  const out = new Float32Array(src.length);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) o32[i] = src[i]! << 16;
  return out;
}

let f16Table: Uint32Array | null = null;

/** f32 bits of every f16 pattern: exact (every f16 value is an f32 value), NaN payloads kept. */
function f16Bits(): Uint32Array {
  if (f16Table !== null) return f16Table;
  const t = new Uint32Array(65536);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0x1f) t[h] = (sign | 0x7f800000 | (m << 13)) >>> 0;
    else if (e === 0) {
      f[0] = m * 2 ** -24; // subnormal (or zero): exact in f32
      t[h] = (sign | u[0]!) >>> 0;
    } else t[h] = (sign | ((e - 15 + 127) << 23) | (m << 13)) >>> 0;
  }
  f16Table = t;
  return t;
}

/**
 * Widens F16 (IEEE half) data (raw little-endian bytes) to float32. Exact, subnormals, infinities and NaN payloads
 * included.
 * @param bytes - 2 bytes per element; any byte offset (odd ones are copied first)
 * @throws {TypeError} not a Uint8Array
 * @throws {RangeError} an odd number of bytes
 * @example
 * const scales = f16ToF32(file.read('model.layers.0.mlp.up_proj.scales'));
 */
export function f16ToF32(bytes: Uint8Array): Float32Array {
  const src = u16View('f16ToF32', bytes);
  const table = f16Bits();
  const out = new Float32Array(src.length);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) o32[i] = table[src[i]!]!;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

/**
 * Encodes tensors as a safetensors file, in memory: the tensors in the order given, contiguous from data offset 0,
 * the header padded with spaces to a multiple of 8 bytes (as the reference implementation does, so the data region
 * starts 8-byte aligned). `__metadata__` is written first when given.
 * @param tensors - names unique and not `__metadata__`; data exactly numel x element size bytes each
 * @param metadata - optional string-to-string metadata, e.g. `{ format: 'pt' }`
 * @returns the whole file
 * @throws {TypeError} | {RangeError} a bad argument (names the tensor and the field)
 * @example
 * const file = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) }]);
 * writeFileSync('w.safetensors', file);
 */
export function encodeSafetensors(tensors: readonly SafetensorsTensorData[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const fn = 'encodeSafetensors';
  if (!Array.isArray(tensors)) throw typeError(expected(fn, 'an array of { name, dtype, shape, data }', 'tensors', tensors));
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw typeError(expected(fn, 'an object of strings', 'metadata', metadata));
    for (const k of Object.keys(metadata))
      if (typeof metadata[k] !== 'string') throw typeError(expected(fn, 'a string', `metadata[${q(k)}]`, metadata[k]));
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  const seen = new Set<string>();
  let offset = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i] as unknown;
    const p = `tensors[${i}]`;
    if (!isPlainObject(t)) throw typeError(expected(fn, 'an object { name, dtype, shape, data }', p, t));
    const { name, dtype, shape, data } = t;
    if (typeof name !== 'string') throw typeError(expected(fn, 'a string', `${p}.name`, name));
    if (name === METADATA_KEY) throw rangeError(expected(fn, `a name other than ${METADATA_KEY}`, `${p}.name`, name));
    if (seen.has(name)) throw rangeError(expected(fn, 'unique names', `${p}.name`, `a second ${q(name)}`, true));
    seen.add(name);
    const size = safetensorsDTypeSize(dtype as SafetensorsDType);
    if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every(isSafeNonNegInt))
      throw rangeError(expected(fn, `at most ${MAX_DIMS} non-negative safe integers`, `${p}.shape`, shape));
    if (!(data instanceof Uint8Array)) throw typeError(expected(fn, 'a Uint8Array', `${p}.data`, data));
    const want = (shape as number[]).reduce((a, d) => a * BigInt(d), 1n) * BigInt(size);
    if (BigInt(data.length) !== want)
      throw rangeError(expected(fn, `numel x ${size} = ${want} bytes (${dtype} [${shape.join(', ')}])`, `${p}.data.length`, data.length));
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, offset + data.length] })}`);
    offset += data.length;
  }
  let header = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(header.length / 8) * 8;
  if (padded !== header.length) {
    const h = new Uint8Array(padded).fill(0x20);
    h.set(header);
    header = h;
  }
  const out = new Uint8Array(8 + header.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
