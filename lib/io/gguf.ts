/**
 * GGUF (llama.cpp's model file format, versions 2 and 3) reader and writer in plain TypeScript, and the bridge to the
 * Llama family: {@link ggufLlamaConfig}, {@link ggufWeightSource} (Hugging Face names and layouts served from a GGUF
 * file) and {@link hfToGguf} (a Hugging Face folder converted to GGUF, as llama.cpp's convert_hf_to_gguf.py does).
 * Every byte of the header is checked here with overflow-safe arithmetic (u64 fields are read as BigInt and compared
 * before they become numbers) before anything reads tensor data or hands offsets to native code; no allocation is
 * sized by a count from the file before that count was checked against the bytes left in the file.
 *
 * The format (little-endian throughout; ggml/include/gguf.h, ggml/src/gguf.cpp):
 * ```
 * magic "GGUF" | u32 version | u64 tensor count | u64 metadata count
 * metadata, count times: string key | u32 value type | value
 *   value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte), 8 string, 9 array, 10 u64, 11 i64,
 *   12 f64; string = u64 byte length + UTF-8 bytes; array = u32 element type + u64 count + the elements
 * tensor infos, count times: string name | u32 n_dims | n_dims x u64 ne (ne[0] varies fastest: a row) |
 *   u32 ggml type | u64 offset (relative to the data section, a multiple of the alignment)
 * padding to `general.alignment` (a u32 power of two; default 32), then the data section
 * ```
 * A tensor of ggml type T holds ne[0] x ... x ne[n-1] elements in blocks of `blockSize(T)` elements of `typeSize(T)`
 * bytes along ne[0]; its row-major shape (PyTorch's) is ne reversed: a Linear weight [N, K] has ne = [K, N].
 *
 * The checks ({@link parseGgufHeader}), each an `ERR_MODEL_FORMAT` {@link LlmKernelsError} naming the file and the
 * field in the house form `<file>: expected <what> for <field>, got <actual>`:
 * - the magic; the version (1 and anything but 2 or 3 are `ERR_UNSUPPORTED`, naming the version, and a byte-swapped
 *   version says the file is big-endian);
 * - truncation anywhere (every read is checked against the file size first);
 * - the counts: tensor count x 32 + metadata count x 14 (the smallest encodings) must fit in the file;
 * - keys: non-empty, at most 65536 bytes, valid UTF-8, unique; tensor names: at most 65536 bytes, valid UTF-8,
 *   unique; string values: at most 1 GiB (llama.cpp's limit) and inside the file; invalid UTF-8 in a string *value*
 *   is decoded with U+FFFD (llama.cpp does not check values, and real vocabularies contain odd bytes);
 * - value types 0-12 only; bools 0 or 1; arrays: at most 2^30 elements (llama.cpp's limit) whose smallest encoding
 *   fits in the file, nested at most 4 deep (llama.cpp refuses nested arrays; we read them);
 * - `general.alignment`: of type u32, a power of two;
 * - tensor infos: 1 <= n_dims <= 4; every ne in [1, 2^63) and their product at most 2^53 - 1; a known ggml type
 *   ({@link GGML_TYPES}; removed ids such as Q4_2 (4) and unknown ids are errors, while a known type this library
 *   does not load, e.g. Q4_K (12), parses and is `ERR_UNSUPPORTED` only when read); ne[0] a multiple of the type's
 *   block size; the byte size at most 2^53 - 1; the offset a multiple of the alignment; the data inside the file;
 *   no two tensors sharing a byte.
 * Unlike llama.cpp we accept tensors in any order and gaps between them (llama.cpp wants each offset to be the
 * previous end rounded up to the alignment); {@link encodeGguf} writes llama.cpp's layout. With no tensors the data
 * section starts right after the metadata (no padding), as in llama.cpp.
 *
 * Reading ({@link GgufFile}) is synchronous: the header is parsed incrementally through a window of 1 MiB reads
 * (metadata can be large: a 150k-token vocabulary is a few MB), tensor data is read with `fs.readSync` at checked
 * offsets into fresh buffers (the {@link TensorFile} base it shares with the safetensors reader, tensor-file.ts).
 *
 * Llama q/k permutation. llama.cpp runs architecture `llama` with its "normal" RoPE, which rotates adjacent pairs
 * (x[2j], x[2j+1]) of each head, while Hugging Face's Llama rotates halves (x[j], x[j + D/2]). convert_hf_to_gguf.py
 * therefore reorders the rows of q_proj and k_proj (weights and biases; n_head = num_attention_heads for q and
 * num_key_value_heads for k): viewing the rows as [n_head, 2, D/2], it swaps the last two axes, so GGUF row
 * `h*D + 2j + s` is Hugging Face row `h*D + s*D/2 + j` (s in {0, 1}). {@link ggufWeightSource} undoes this for
 * architecture `llama` (whole rows move, so it works on the raw bytes of every type: a row is ne[0] elements, a whole
 * number of blocks), so one rotate-half attention path serves both sources; {@link hfToGguf} applies it. Qwen2 is not
 * permuted: llama.cpp's `llama_model_rope_type` gives LLM_ARCH_QWEN2 the NeoX RoPE (pairs offset by n_rot/2, i.e.
 * rotate-half), and its converter (Qwen2Model) has no permutation.
 */
import { f32ToBf16, f32ToF16 } from '../dtype.js';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import type { WeightSource } from '../nn/llama.js';
import { expected } from '../validate.js';
import { loadLlamaConfig, parseLlamaConfig, type LlamaConfig } from './hf-config.js';
import { bf16ToF32, f16ToF32, SafetensorsModel } from './safetensors.js';
import { checkNoOverlap, formatError, openTensorFile, q, readFully, TensorFile, unsupported } from './tensor-file.js';

// ---------------------------------------------------------------------------------------------------------------
// Constants

/** The magic, bytes 0-3 of every GGUF file. */
export const GGUF_MAGIC = 'GGUF';
/** The version {@link encodeGguf} writes. */
export const GGUF_VERSION = 3;
/** The data alignment when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Longest key or tensor name accepted, in bytes. */
export const GGUF_MAX_NAME_BYTES = 65536;
/** Longest string value accepted, in bytes (llama.cpp's GGUF_MAX_STRING_LENGTH). */
export const GGUF_MAX_STRING_BYTES = 1024 * 1024 * 1024;
/** Most elements of one array (llama.cpp's GGUF_MAX_ARRAY_ELEMENTS). */
export const GGUF_MAX_ARRAY_ELEMENTS = 1024 * 1024 * 1024;
/** Deepest nesting of arrays accepted (an array of arrays is 2). */
export const GGUF_MAX_ARRAY_DEPTH = 4;

/** The metadata value types, indexed by their id in the file. */
export const GGUF_VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
/** A metadata value type. */
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

const T_U8 = 0, T_I8 = 1, T_U16 = 2, T_I16 = 3, T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STRING = 8, T_ARRAY = 9, T_U64 = 10, T_I64 = 11, T_F64 = 12;
/** Byte size of each fixed-size value type (0 for string and array). */
const VALUE_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8] as const;

/** One ggml tensor type: its id in the file, name, block size (elements) and block byte size. */
export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  /** Elements per block along ne[0] (0 for a removed type). */
  readonly blockSize: number;
  /** Bytes per block (0 for a removed type). */
  readonly typeSize: number;
  /** Removed from ggml: files with it are refused, as llama.cpp does. */
  readonly removed: boolean;
}

const QK_K = 256;
const TYPE_ROWS: ReadonlyArray<[number, string, number, number]> = [
  [0, 'F32', 1, 4],
  [1, 'F16', 1, 2],
  [2, 'Q4_0', 32, 2 + 16],
  [3, 'Q4_1', 32, 2 + 2 + 16],
  [4, 'Q4_2', 0, 0],
  [5, 'Q4_3', 0, 0],
  [6, 'Q5_0', 32, 2 + 4 + 16],
  [7, 'Q5_1', 32, 2 + 2 + 4 + 16],
  [8, 'Q8_0', 32, 2 + 32],
  [9, 'Q8_1', 32, 4 + 4 + 32],
  [10, 'Q2_K', QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
  [11, 'Q3_K', QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  [12, 'Q4_K', QK_K, 2 + 2 + QK_K / 2 + 12],
  [13, 'Q5_K', QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
  [14, 'Q6_K', QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16],
  [15, 'Q8_K', QK_K, 4 + QK_K + QK_K / 8],
  [16, 'IQ2_XXS', QK_K, 2 + QK_K / 4],
  [17, 'IQ2_XS', QK_K, 2 + QK_K / 4 + QK_K / 32],
  [18, 'IQ3_XXS', QK_K, 2 + QK_K / 4 + QK_K / 8],
  [19, 'IQ1_S', QK_K, 2 + QK_K / 8 + QK_K / 16],
  [20, 'IQ4_NL', 32, 2 + 16],
  [21, 'IQ3_S', QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  [22, 'IQ2_S', QK_K, 2 + QK_K / 4 + QK_K / 16],
  [23, 'IQ4_XS', QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  [24, 'I8', 1, 1],
  [25, 'I16', 1, 2],
  [26, 'I32', 1, 4],
  [27, 'I64', 1, 8],
  [28, 'F64', 1, 8],
  [29, 'IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  [30, 'BF16', 1, 2],
  [31, 'Q4_0_4_4', 0, 0],
  [32, 'Q4_0_4_8', 0, 0],
  [33, 'Q4_0_8_8', 0, 0],
  [34, 'TQ1_0', QK_K, 2 + 4 * 13],
  [35, 'TQ2_0', QK_K, 2 + 64],
  [36, 'IQ4_NL_4_4', 0, 0],
  [37, 'IQ4_NL_4_8', 0, 0],
  [38, 'IQ4_NL_8_8', 0, 0],
  [39, 'MXFP4', 32, 1 + 16],
  [40, 'NVFP4', 64, 4 + 32],
  [41, 'Q1_0', 128, 2 + 16],
];

/**
 * Every ggml tensor type id with its name, block size and block byte size (gguf-py's GGML_QUANT_SIZES), indexed by
 * id. Ids past the end are unknown.
 */
export const GGML_TYPES: readonly GgmlTypeInfo[] = Object.freeze(
  TYPE_ROWS.map(([id, name, blockSize, typeSize]) => Object.freeze({ id, name, blockSize, typeSize, removed: blockSize === 0 })),
);

/** The tensor types this library reads and writes. */
export const GGUF_TENSOR_TYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'] as const;
/** A tensor type this library reads and writes (the dtype strings of {@link ggufWeightSource}). */
export type GgufTensorType = (typeof GGUF_TENSOR_TYPES)[number];

const TYPE_ID: Readonly<Record<GgufTensorType, number>> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 };
const SUPPORTED_IDS = new Set<number>(Object.values(TYPE_ID));

/** `Q4_K (12)`: how messages name a type. */
function typeLabel(t: GgmlTypeInfo): string {
  return `${t.name} (${t.id})`;
}

// ---------------------------------------------------------------------------------------------------------------
// Public shapes

/** A metadata array: a typed array for numbers (BigInt64Array / BigUint64Array for i64 / u64), else a plain array. */
export type GgufArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | boolean[]
  | string[]
  | GgufArray[];

/** A metadata value as read: numbers (u64 / i64 as a number when it is a safe integer, else a bigint), booleans,
 * strings, or arrays. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

/** One tensor of a GGUF file, after validation. Frozen. */
export interface GgufTensorInfo {
  /** The tensor's name (e.g. `blk.0.attn_q.weight`). */
  readonly name: string;
  /** The ggml type id (e.g. 8 for Q8_0). */
  readonly type: number;
  /** The ggml type name (e.g. 'Q8_0', 'Q4_K'). */
  readonly typeName: string;
  /** ne: the dimensions as the file stores them, ne[0] the fastest-varying (a row). */
  readonly dims: readonly number[];
  /** The row-major shape: dims reversed (a Linear weight is [N, K]). */
  readonly shape: readonly number[];
  /** The absolute file offset of its first byte. */
  readonly offset: number;
  /** Its size in bytes: numel / blockSize x typeSize. */
  readonly byteLength: number;
  /** Whether this library reads its type (F32, F16, BF16, Q8_0, Q4_0). */
  readonly supported: boolean;
}

/** A validated GGUF header. */
export interface GgufHeader {
  /** The name used in messages (a path or a file name). */
  readonly source: string;
  /** 2 or 3. */
  readonly version: number;
  /** The data alignment: `general.alignment`, or 32. */
  readonly alignment: number;
  /** The metadata, in file order. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** The type of each metadata value as written: 'u32', 'string', 'array<string>', 'array<array>', ... */
  readonly metadataTypes: ReadonlyMap<string, string>;
  /** The tensors, in file order. */
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  /** The file offset where the tensor infos end (before the padding). */
  readonly headerBytes: number;
  /** The file offset of the data section. */
  readonly dataStart: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const looseUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const TWO_63 = 1n << 63n;

const scratch = new ArrayBuffer(8);
const scratchU8 = new Uint8Array(scratch);
const scratchF32 = new Float32Array(scratch, 0, 1);
const scratchF64 = new Float64Array(scratch);

/** Lone surrogates cannot be written as UTF-8 (TextEncoder would turn them into U+FFFD). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function printableMagic(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return JSON.stringify(s);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Reverses the byte order of each `size`-byte element in place (big-endian hosts only). */
function byteSwap(b: Uint8Array, size: number): void {
  for (let i = 0; i + size <= b.length; i += size) b.subarray(i, i + size).reverse();
}

// ---------------------------------------------------------------------------------------------------------------
// Byte sources and the cursor

/** Random access to the bytes of a file of known size. `get` returns a view that is valid until the next call. */
interface ByteSource {
  readonly size: number;
  get(pos: number, len: number): Uint8Array;
}

/** Thrown (as a RangeError with `bytesNeeded`) when parseGgufHeader is given too short a prefix of the file. */
function needMore(have: number, need: number, fileSize: number): RangeError {
  const e = rangeError(
    expected(
      'parseGgufHeader',
      `at least ${need} bytes of the ${fileSize}-byte file (the header continues past the bytes given: read more, ` +
        'or use GgufFile.open or parseGgufHeaderAt, which read incrementally)',
      'bytes.length',
      have,
    ),
  ) as RangeError & { bytesNeeded: number };
  e.bytesNeeded = need;
  return e;
}

class MemorySource implements ByteSource {
  constructor(
    private readonly bytes: Uint8Array,
    readonly size: number,
  ) {}
  get(pos: number, len: number): Uint8Array {
    if (pos + len > this.bytes.length) throw needMore(this.bytes.length, pos + len, this.size);
    return this.bytes.subarray(pos, pos + len);
  }
}

/** Reads through a window of at least `chunk` bytes, so that small fields cost one read per chunk. */
class WindowSource implements ByteSource {
  #buf: Uint8Array = new Uint8Array(0);
  #start = 0;
  #len = 0;
  constructor(
    private readonly readAt: (position: number, length: number) => Uint8Array,
    readonly size: number,
    private readonly source: string,
    private readonly chunk = 1 << 20,
  ) {}
  get(pos: number, len: number): Uint8Array {
    if (pos >= this.#start && pos + len <= this.#start + this.#len) return this.#buf.subarray(pos - this.#start, pos - this.#start + len);
    const want = Math.min(Math.max(len, this.chunk), this.size - pos);
    const got = this.readAt(pos, want);
    if (!(got instanceof Uint8Array))
      throw typeError(expected('parseGgufHeaderAt', 'a Uint8Array from readAt', 'readAt(position, length)', got));
    if (got.length < len)
      throw formatError(this.source, `${len} bytes at file offset ${pos}`, 'the header', `${got.length} (the file is truncated or shrank while reading)`, true);
    this.#buf = got.length > want ? got.subarray(0, want) : got;
    this.#start = pos;
    this.#len = this.#buf.length;
    return this.#buf.subarray(0, len);
  }
}

class Cursor {
  pos = 0;
  constructor(
    readonly src: ByteSource,
    readonly source: string,
  ) {}

  get left(): number {
    return this.src.size - this.pos;
  }

  take(n: number, field: string): Uint8Array {
    if (n > this.left)
      throw formatError(this.source, `${n} bytes at file offset ${this.pos}`, field, `${this.left} (the file is truncated)`, true);
    const b = this.src.get(this.pos, n);
    this.pos += n;
    return b;
  }

  u32(field: string): number {
    const b = this.take(4, field);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  u64(field: string): bigint {
    const b = this.take(8, field);
    const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A string: u64 length (at most `max`, and inside the file), then the bytes, decoded strictly or loosely. */
  str(field: string, max: number, strict: boolean): string {
    const len = this.u64(`the length of ${field}`);
    if (len > BigInt(max)) throw formatError(this.source, `a length of at most ${max} bytes`, `the length of ${field}`, `${len}`, true);
    const n = Number(len);
    if (n > this.left)
      throw formatError(this.source, `a length of at most the ${this.left} bytes left in the file`, `the length of ${field}`, `${n} (past the end of the file)`, true);
    const b = this.take(n, field);
    let ascii = true;
    for (let i = 0; i < b.length; i++)
      if (b[i]! >= 0x80) {
        ascii = false;
        break;
      }
    if (ascii) return b.length < 64 ? String.fromCharCode(...b) : looseUtf8.decode(b);
    if (!strict) return looseUtf8.decode(b);
    try {
      return strictUtf8.decode(b);
    } catch {
      throw formatError(this.source, 'valid UTF-8', field, 'invalid UTF-8 bytes', true);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata values

function typeName(t: number): string {
  return GGUF_VALUE_TYPES[t] ?? `${t}`;
}

function checkValueType(c: Cursor, t: number, field: string): void {
  if (t > T_F64)
    throw formatError(c.source, `a metadata value type (0-12: ${GGUF_VALUE_TYPES.join(', ')})`, field, `${t}`, true);
}

function readScalar(c: Cursor, t: number, field: string): number | bigint | boolean | string {
  switch (t) {
    case T_U8:
      return c.take(1, field)[0]!;
    case T_I8:
      return (c.take(1, field)[0]! << 24) >> 24;
    case T_U16: {
      const b = c.take(2, field);
      return b[0]! | (b[1]! << 8);
    }
    case T_I16: {
      const b = c.take(2, field);
      return ((b[0]! | (b[1]! << 8)) << 16) >> 16;
    }
    case T_U32:
      return c.u32(field);
    case T_I32:
      return c.u32(field) | 0;
    case T_F32: {
      scratchU8.set(c.take(4, field));
      if (!LITTLE_ENDIAN) scratchU8.subarray(0, 4).reverse();
      return scratchF32[0]!;
    }
    case T_BOOL: {
      const v = c.take(1, field)[0]!;
      if (v > 1) throw formatError(c.source, 'a bool of 0 or 1', field, v);
      return v === 1;
    }
    case T_STRING:
      return c.str(field, GGUF_MAX_STRING_BYTES, false);
    case T_U64: {
      const v = c.u64(field);
      return v <= MAX_SAFE_BIG ? Number(v) : v;
    }
    case T_I64: {
      const v = BigInt.asIntN(64, c.u64(field));
      return v <= MAX_SAFE_BIG && v >= -MAX_SAFE_BIG ? Number(v) : v;
    }
    case T_F64: {
      scratchU8.set(c.take(8, field));
      if (!LITTLE_ENDIAN) scratchU8.reverse();
      return scratchF64[0]!;
    }
  }
  throw formatError(c.source, 'a scalar value type', field, `${t}`, true);
}

/** Reads an array value (after its value type 9); returns the value and its type description. */
function readArray(c: Cursor, field: string, depth: number): [GgufArray, string] {
  const et = c.u32(`the element type of ${field}`);
  checkValueType(c, et, `the element type of ${field}`);
  if (et === T_ARRAY && depth >= GGUF_MAX_ARRAY_DEPTH)
    throw formatError(c.source, `arrays nested at most ${GGUF_MAX_ARRAY_DEPTH} deep`, `the element type of ${field}`, `an array at depth ${depth + 1}`, true);
  const count = c.u64(`the element count of ${field}`);
  if (count > BigInt(GGUF_MAX_ARRAY_ELEMENTS))
    throw formatError(c.source, `at most ${GGUF_MAX_ARRAY_ELEMENTS} elements`, `the element count of ${field}`, `${count}`, true);
  const minSize = et === T_STRING ? 8 : et === T_ARRAY ? 12 : VALUE_SIZE[et]!;
  if (count * BigInt(minSize) > BigInt(c.left))
    throw formatError(
      c.source,
      `an element count whose ${typeName(et)} elements (at least ${minSize} bytes each) fit in the ${c.left} bytes left in the file`,
      `the element count of ${field}`,
      `${count}`,
      true,
    );
  const n = Number(count);
  const desc = `array<${typeName(et)}>`;
  if (et === T_STRING) {
    const out: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = c.str(`${field}[${i}]`, GGUF_MAX_STRING_BYTES, false);
    return [out, desc];
  }
  if (et === T_ARRAY) {
    const out: GgufArray[] = new Array<GgufArray>(n);
    for (let i = 0; i < n; i++) out[i] = readArray(c, `${field}[${i}]`, depth + 1)[0];
    return [out, desc];
  }
  const size = VALUE_SIZE[et]!;
  const bytes = c.take(n * size, field).slice(); // a fresh, aligned buffer
  if (et === T_BOOL) {
    const out: boolean[] = new Array<boolean>(n);
    for (let i = 0; i < n; i++) {
      const v = bytes[i]!;
      if (v > 1) throw formatError(c.source, 'a bool of 0 or 1', `${field}[${i}]`, v);
      out[i] = v === 1;
    }
    return [out, desc];
  }
  if (!LITTLE_ENDIAN && size > 1) byteSwap(bytes, size);
  const buf = bytes.buffer;
  switch (et) {
    case T_U8:
      return [bytes, desc];
    case T_I8:
      return [new Int8Array(buf), desc];
    case T_U16:
      return [new Uint16Array(buf), desc];
    case T_I16:
      return [new Int16Array(buf), desc];
    case T_U32:
      return [new Uint32Array(buf), desc];
    case T_I32:
      return [new Int32Array(buf), desc];
    case T_F32:
      return [new Float32Array(buf), desc];
    case T_U64:
      return [new BigUint64Array(buf), desc];
    case T_I64:
      return [new BigInt64Array(buf), desc];
    default:
      return [new Float64Array(buf), desc];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The parser

interface RawTensor {
  name: string;
  type: GgmlTypeInfo;
  dims: number[];
  byteLength: number;
  rel: bigint;
}

/** The smallest tensor info (empty name, 1 dimension) and metadata entry (1-byte key, a u8 value), in bytes. */
const MIN_TENSOR_INFO = 8 + 4 + 8 + 4 + 8;
const MIN_KV = 8 + 1 + 4 + 1;
const FIXED_HEADER = 4 + 4 + 8 + 8;

function parse(c: Cursor): GgufHeader {
  const source = c.source;
  const size = c.src.size;
  if (size < 4) throw formatError(source, 'at least 4 bytes (the magic "GGUF")', 'the file size', `${size} bytes`, true);
  const magic = c.take(4, 'the magic (bytes 0-3)');
  if (magic[0] !== 0x47 || magic[1] !== 0x47 || magic[2] !== 0x55 || magic[3] !== 0x46)
    throw formatError(source, 'the magic "GGUF"', 'the magic (bytes 0-3)', `${printableMagic(magic)} (not a GGUF file)`, true);
  const version = c.u32('the version (bytes 4-7)');
  if (version !== 2 && version !== 3) {
    const why =
      version === 1
        ? ' (GGUF v1 is no longer supported: convert the model again)'
        : version !== 0 && (version & 0xffff) === 0
          ? ' (a big-endian file? only little-endian GGUF is supported)'
          : '';
    throw unsupported(source, 'GGUF version 2 or 3', 'the version (bytes 4-7)', `${version}${why}`);
  }
  const tensorCount = c.u64('the tensor count (bytes 8-15)');
  const kvCount = c.u64('the metadata count (bytes 16-23)');
  const room = BigInt(Math.max(0, size - FIXED_HEADER));
  if (tensorCount * BigInt(MIN_TENSOR_INFO) > room)
    throw formatError(
      source,
      `a tensor count whose infos (at least ${MIN_TENSOR_INFO} bytes each) fit in the file (${size} bytes)`,
      'the tensor count (bytes 8-15)',
      `${tensorCount}`,
      true,
    );
  if (tensorCount * BigInt(MIN_TENSOR_INFO) + kvCount * BigInt(MIN_KV) > room)
    throw formatError(
      source,
      `a metadata count whose entries (at least ${MIN_KV} bytes each) fit in the file (${size} bytes) with the tensor infos`,
      'the metadata count (bytes 16-23)',
      `${kvCount}`,
      true,
    );

  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, string>();
  const nKv = Number(kvCount);
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key #${i}`, GGUF_MAX_NAME_BYTES, true);
    if (key.length === 0) throw formatError(source, 'a non-empty key', `metadata key #${i}`, '""', true);
    if (metadata.has(key)) throw formatError(source, 'unique keys', `metadata key #${i}`, `a second ${q(key)}`, true);
    const field = `metadata ${q(key)}`;
    const t = c.u32(`the value type of ${field}`);
    checkValueType(c, t, `the value type of ${field}`);
    if (t === T_ARRAY) {
      const [v, desc] = readArray(c, field, 1);
      metadata.set(key, v);
      metadataTypes.set(key, desc);
    } else {
      metadata.set(key, readScalar(c, t, field));
      metadataTypes.set(key, typeName(t));
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const at = metadataTypes.get('general.alignment')!;
    const av = metadata.get('general.alignment')!;
    if (at !== 'u32') throw formatError(source, 'a value of type u32', 'metadata "general.alignment"', `type ${at}`, true);
    if (!isPowerOfTwo(av as number))
      throw formatError(source, 'a power of two', 'metadata "general.alignment"', av);
    alignment = av as number;
  }

  const raw: RawTensor[] = [];
  const names = new Set<string>();
  const nT = Number(tensorCount);
  for (let i = 0; i < nT; i++) {
    const name = c.str(`the name of tensor #${i}`, GGUF_MAX_NAME_BYTES, true);
    if (names.has(name)) throw formatError(source, 'unique tensor names', `the name of tensor #${i}`, `a second ${q(name)}`, true);
    names.add(name);
    const t = `tensor ${q(name)}`;
    const nDims = c.u32(`n_dims of ${t}`);
    if (nDims < 1 || nDims > 4) throw formatError(source, '1 to 4 dimensions', `n_dims of ${t}`, nDims);
    const dims: number[] = [];
    let numel = 1n;
    for (let j = 0; j < nDims; j++) {
      const ne = c.u64(`ne[${j}] of ${t}`);
      if (ne === 0n) throw formatError(source, 'a positive dimension', `ne[${j}] of ${t}`, '0', true);
      if (ne >= TWO_63)
        throw formatError(source, 'a positive dimension', `ne[${j}] of ${t}`, `${ne} (${BigInt.asIntN(64, ne)} as a signed 64-bit integer)`, true);
      numel *= ne;
      if (numel > MAX_SAFE_BIG)
        throw formatError(source, 'at most 2^53 - 1 elements', `the dimensions of ${t}`, `a product of ${numel} or more at ne[${j}]`, true);
      dims.push(Number(ne));
    }
    const typeId = c.u32(`the type of ${t}`);
    const info = GGML_TYPES[typeId];
    if (info === undefined)
      throw formatError(source, `a ggml type id (0-${GGML_TYPES.length - 1})`, `the type of ${t}`, `${typeId} (unknown)`, true);
    if (info.removed)
      throw formatError(source, 'a ggml type id in use', `the type of ${t}`, `${typeLabel(info)}, removed from ggml`, true);
    if (dims[0]! % info.blockSize !== 0)
      throw formatError(source, `a multiple of the block size of ${typeLabel(info)} (${info.blockSize})`, `ne[0] (the row length) of ${t}`, dims[0]);
    const bytes = (numel / BigInt(info.blockSize)) * BigInt(info.typeSize);
    if (bytes > MAX_SAFE_BIG) throw formatError(source, 'a size of at most 2^53 - 1 bytes', `the dimensions of ${t}`, `${bytes} bytes`, true);
    const rel = c.u64(`the offset of ${t}`);
    if (rel % BigInt(alignment) !== 0n)
      throw formatError(source, `a multiple of the alignment (${alignment})`, `the offset of ${t}`, `${rel}`, true);
    raw.push({ name, type: info, dims, byteLength: Number(bytes), rel });
  }

  const headerBytes = c.pos;
  const dataStart = nT > 0 ? alignUp(headerBytes, alignment) : headerBytes;
  if (nT > 0 && dataStart > size)
    throw formatError(
      source,
      `a data section starting at or before the end of the file (${size} bytes)`,
      'the data section',
      `a start at ${dataStart} (the file is truncated)`,
      true,
    );
  const dataSize = BigInt(size - dataStart);
  const tensors = new Map<string, GgufTensorInfo>();
  for (const r of raw) {
    if (r.rel + BigInt(r.byteLength) > dataSize)
      throw formatError(
        source,
        `offset + size (${r.byteLength} bytes) within the data section (${dataSize} bytes; the file is truncated or the offset is wrong)`,
        `the offset of tensor ${q(r.name)}`,
        `${r.rel}`,
        true,
      );
    tensors.set(
      r.name,
      Object.freeze({
        name: r.name,
        type: r.type.id,
        typeName: r.type.name,
        dims: Object.freeze(r.dims),
        shape: Object.freeze(r.dims.slice().reverse()),
        offset: dataStart + Number(r.rel),
        byteLength: r.byteLength,
        supported: SUPPORTED_IDS.has(r.type.id),
      }),
    );
  }

  checkNoOverlap(source, tensors.values(), dataStart, 'data that does not overlap another tensor', (n) => `the offset of tensor ${n}`);

  return Object.freeze({ source, version, alignment, metadata, metadataTypes, tensors, headerBytes, dataStart });
}

function checkFileSize(fn: string, fileSize: unknown): number {
  if (typeof fileSize !== 'number') throw typeError(expected(fn, 'an integer', 'fileSize', fileSize));
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) throw rangeError(expected(fn, 'a non-negative safe integer', 'fileSize', fileSize));
  return fileSize;
}

/**
 * Parses and validates a GGUF header held in memory (see the file header for every check).
 * @param bytes - the start of the file: at least the whole header (the tensor infos' end), or the whole file
 * @param fileSize - the size of the whole file (tensors must lie inside it)
 * @param source - names the file in error messages
 * @returns the version, alignment, metadata, tensors and data start
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` naming the file and the field for anything wrong in the file;
 *   `ERR_UNSUPPORTED` for a version other than 2 or 3
 * @throws {RangeError} fileSize is not a non-negative safe integer or is smaller than bytes.length; or the header
 *   continues past `bytes` (the error's `bytesNeeded` says how many bytes, at least, to pass next time)
 * @throws {TypeError} bytes is not a Uint8Array, source not a string
 * @example
 * const file = readFileSync('model.gguf');
 * const h = parseGgufHeader(file, file.length, 'model.gguf');
 * h.tensors.get('blk.0.attn_q.weight'); // { typeName: 'Q8_0', dims: [4096, 4096], shape: [4096, 4096], ... }
 */
export function parseGgufHeader(bytes: Uint8Array, fileSize: number, source = 'gguf'): GgufHeader {
  const fn = 'parseGgufHeader';
  if (!(bytes instanceof Uint8Array)) throw typeError(expected(fn, 'a Uint8Array', 'bytes', bytes));
  checkFileSize(fn, fileSize);
  if (fileSize < bytes.length) throw rangeError(expected(fn, `at least bytes.length (${bytes.length})`, 'fileSize', fileSize));
  if (typeof source !== 'string') throw typeError(expected(fn, 'a string', 'source', source));
  return parse(new Cursor(new MemorySource(bytes, fileSize), source));
}

/**
 * Parses and validates a GGUF header read incrementally: `readAt(position, length)` is called for windows of at
 * least 1 MiB (less at the end of the file) and must return that many bytes, or fewer only at the end of the file.
 * Nothing is read past `fileSize`. {@link GgufFile.open} uses this with `fs.readSync`.
 * @param readAt - returns the bytes of the file at [position, position + length)
 * @param fileSize - the size of the file
 * @param source - names the file in error messages
 * @throws {LlmKernelsError} as {@link parseGgufHeader}; `ERR_MODEL_FORMAT` if readAt returns fewer bytes than the
 *   file size promised
 * @throws {TypeError} readAt is not a function or returns something other than a Uint8Array
 * @example
 * const h = parseGgufHeaderAt((pos, len) => blob.subarray(pos, pos + len), blob.length, 'model.gguf');
 */
export function parseGgufHeaderAt(readAt: (position: number, length: number) => Uint8Array, fileSize: number, source = 'gguf'): GgufHeader {
  const fn = 'parseGgufHeaderAt';
  if (typeof readAt !== 'function') throw typeError(expected(fn, 'a function (position, length) => Uint8Array', 'readAt', readAt));
  checkFileSize(fn, fileSize);
  if (typeof source !== 'string') throw typeError(expected(fn, 'a string', 'source', source));
  return parse(new Cursor(new WindowSource(readAt, fileSize, source), source));
}

// ---------------------------------------------------------------------------------------------------------------
// Files

function unsupportedType(source: string, t: GgufTensorInfo): LlmKernelsError {
  return unsupported(source, `a supported tensor type (${GGUF_TENSOR_TYPES.join(', ')})`, `the type of tensor ${q(t.name)}`, `${t.typeName} (${t.type})`);
}

/**
 * One GGUF file, opened for reading: the header is read and validated at {@link GgufFile.open}, then
 * {@link GgufFile.read} reads one tensor's bytes at a time (`ERR_UNSUPPORTED` for a type this library does not load).
 * Close it (or `using f = GgufFile.open(p)`). `path`, `tensors` (file order), `fileSize`, `dataStart` and the methods
 * but `open` are {@link TensorFile}'s.
 * @example
 * using f = GgufFile.open('model-q8_0.gguf');
 * f.metadata.get('general.architecture'); // 'llama'
 * const w = f.read('blk.0.attn_q.weight'); // Q8_0 rows: QuantizedTensor.fromBytes('q8_0', f.info(...).shape, w)
 */
export class GgufFile extends TensorFile<GgufTensorInfo> {
  /** 2 or 3. */
  readonly version: number;
  /** The data alignment. */
  readonly alignment: number;
  /** The metadata, in file order. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** The type of each metadata value as written ('u32', 'array<string>', ...). */
  readonly metadataTypes: ReadonlyMap<string, string>;

  private constructor(path: string, fd: number, fileSize: number, h: GgufHeader) {
    super('GgufFile', path, fd, fileSize, h.dataStart, h.tensors);
    this.version = h.version;
    this.alignment = h.alignment;
    this.metadata = h.metadata;
    this.metadataTypes = h.metadataTypes;
  }

  /**
   * Opens a file and validates its header, reading it incrementally (1 MiB windows; tensor data is not read).
   * @param path - the file
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` if the file cannot be opened or read, is not a regular file, or its
   *   header is invalid (see {@link parseGgufHeader}); `ERR_UNSUPPORTED` for a GGUF version other than 2 or 3; the
   *   message starts with the path
   * @throws {TypeError} path is not a string
   * @example
   * const f = GgufFile.open('/models/llama-3.2-1b-q8_0.gguf');
   * try { console.log(f.version, f.tensors.size); } finally { f.close(); }
   */
  static open(path: string): GgufFile {
    return openTensorFile('GgufFile', 'GGUF', path, (fd, size) => {
      const readAt = (position: number, length: number): Uint8Array => {
        const buf = new Uint8Array(length);
        return buf.subarray(0, readFully(fd, buf, position));
      };
      return new GgufFile(path, fd, size, parseGgufHeaderAt(readAt, size, path));
    });
  }

  /** Refuses, before {@link TensorFile.read} reads it, a tensor of a type this library does not load. */
  protected override checkReadable(t: GgufTensorInfo): void {
    if (!t.supported) throw unsupportedType(this.path, t);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

/** A metadata value with its type given explicitly, e.g. `{ type: 'u64', value: 5 }` or
 * `{ type: 'array', itemType: 'f32', value: [0.5, 1] }`. */
export interface GgufTypedValue {
  type: GgufValueType;
  value: unknown;
  /** For `type: 'array'`: the element type (inferred from the elements when absent). */
  itemType?: GgufValueType;
}

/** A plain array to write (its element type inferred, see {@link encodeGguf}); may nest. */
export type GgufInputArray = readonly (string | number | bigint | boolean | GgufArray | GgufInputArray)[];

/** A metadata value to write: a plain value (its type inferred, see {@link encodeGguf}) or a {@link GgufTypedValue}. */
export type GgufMetadataInput = GgufValue | GgufInputArray | GgufTypedValue;

/** A tensor to write with {@link encodeGguf}. */
export interface GgufTensorData {
  /** Unique; valid UTF-8 (no lone surrogates); at most 65536 bytes. */
  name: string;
  /** The tensor type. */
  type: GgufTensorType;
  /** The row-major shape (1 to 4 positive integers; the last one a multiple of 32 for Q8_0 / Q4_0). The file
   * stores it reversed (ne). */
  shape: readonly number[];
  /** The raw bytes: numel x 4 (F32), x 2 (F16, BF16), or numel / 32 blocks of 34 (Q8_0) / 18 (Q4_0) bytes. */
  data: Uint8Array;
}

/** Input of {@link encodeGguf}. */
export interface EncodeGgufInput {
  /** Metadata, in order (a Map or an object). */
  metadata?: ReadonlyMap<string, GgufMetadataInput> | Readonly<Record<string, GgufMetadataInput>>;
  /** Tensors, in order. */
  tensors?: readonly GgufTensorData[];
  /** The data alignment (a power of two, u32); written as `general.alignment` when given. Default: the
   * `general.alignment` of the metadata, or 32. */
  alignment?: number;
}

/** A growable little-endian byte writer. */
class ByteWriter {
  buf = new Uint8Array(4096);
  len = 0;
  #dv = new DataView(this.buf.buffer);
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.#dv = new DataView(b.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.reserve(2);
    this.#dv.setUint16(this.len, v, true);
    this.len += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.#dv.setUint32(this.len, v, true);
    this.len += 4;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.#dv.setBigUint64(this.len, BigInt.asUintN(64, v), true);
    this.len += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.#dv.setFloat32(this.len, v, true);
    this.len += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.#dv.setFloat64(this.len, v, true);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  str(s: string): void {
    const b = utf8Encoder.encode(s);
    this.u64(BigInt(b.length));
    this.bytes(b);
  }
}

const INT_RANGE: Partial<Record<GgufValueType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

function isTypedValue(v: unknown): v is GgufTypedValue {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function typedArrayType(v: ArrayBufferView): GgufValueType | null {
  if (v instanceof Uint8Array) return 'u8';
  if (v instanceof Int8Array) return 'i8';
  if (v instanceof Uint16Array) return 'u16';
  if (v instanceof Int16Array) return 'i16';
  if (v instanceof Uint32Array) return 'u32';
  if (v instanceof Int32Array) return 'i32';
  if (v instanceof Float32Array) return 'f32';
  if (v instanceof Float64Array) return 'f64';
  if (v instanceof BigUint64Array) return 'u64';
  if (v instanceof BigInt64Array) return 'i64';
  return null;
}

/** The type a plain value is written as (see encodeGguf). */
function inferType(fn: string, field: string, v: unknown): GgufValueType {
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'number':
      if (Number.isInteger(v)) {
        if (v >= 0 && v <= 0xffffffff) return 'u32';
        if (v < 0 && v >= -0x80000000) return 'i32';
        if (Number.isSafeInteger(v)) return v < 0 ? 'i64' : 'u64';
        return 'f64';
      }
      return 'f32';
    case 'bigint':
      return v < 0n ? 'i64' : 'u64';
  }
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return 'array';
  throw typeError(expected(fn, 'a string, number, bigint, boolean, array, typed array or { type, value }', field, v));
}

/** The element type of a plain array (see encodeGguf). */
function inferItemType(fn: string, field: string, v: readonly unknown[] | ArrayBufferView): GgufValueType {
  if (ArrayBuffer.isView(v)) {
    const t = typedArrayType(v);
    if (t === null) throw typeError(expected(fn, 'an array or a typed array of a GGUF element type', field, v));
    return t;
  }
  if (v.length === 0) return 'i32';
  if (v.every((x) => typeof x === 'string')) return 'string';
  if (v.every((x) => typeof x === 'boolean')) return 'bool';
  if (v.every((x) => typeof x === 'number')) {
    const nums = v as number[];
    if (nums.every((x) => Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff)) return 'i32';
    if (nums.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) return 'u32';
    return 'f32';
  }
  if (v.every((x) => typeof x === 'bigint')) return (v as bigint[]).some((x) => x < 0n) ? 'i64' : 'u64';
  if (v.every((x) => Array.isArray(x) || ArrayBuffer.isView(x))) return 'array';
  throw typeError(expected(fn, 'an array whose elements are all strings, all numbers, all booleans, all bigints or all arrays', field, v));
}

function writeValue(w: ByteWriter, fn: string, field: string, t: GgufValueType, v: unknown, itemType: GgufValueType | undefined, depth: number): void {
  const range = INT_RANGE[t];
  if (range !== undefined) {
    if (typeof v !== 'number') throw typeError(expected(fn, `an integer (${t})`, field, v));
    if (!Number.isInteger(v) || v < range[0] || v > range[1]) throw rangeError(expected(fn, `an integer in [${range[0]}, ${range[1]}] (${t})`, field, v));
    if (t === 'u8' || t === 'i8') w.u8(v & 0xff);
    else if (t === 'u16' || t === 'i16') w.u16(v & 0xffff);
    else w.u32(v >>> 0);
    return;
  }
  switch (t) {
    case 'u64':
    case 'i64': {
      let b: bigint;
      if (typeof v === 'bigint') b = v;
      else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
      else if (typeof v === 'number') throw rangeError(expected(fn, `a safe integer or a bigint (${t})`, field, v));
      else throw typeError(expected(fn, `a bigint or an integer (${t})`, field, v));
      const [lo, hi] = t === 'u64' ? [0n, (1n << 64n) - 1n] : [-(1n << 63n), (1n << 63n) - 1n];
      if (b < lo || b > hi) throw rangeError(expected(fn, `an integer in [${lo}, ${hi}] (${t})`, field, v));
      w.u64(b);
      return;
    }
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') throw typeError(expected(fn, `a number (${t})`, field, v));
      if (t === 'f32') w.f32(v);
      else w.f64(v);
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw typeError(expected(fn, 'a boolean (bool)', field, v));
      w.u8(v ? 1 : 0);
      return;
    case 'string':
      if (typeof v !== 'string') throw typeError(expected(fn, 'a string', field, v));
      if (LONE_SURROGATE.test(v)) throw rangeError(expected(fn, 'a string without lone surrogates (valid UTF-8)', field, v));
      w.str(v);
      return;
    case 'array': {
      if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && typedArrayType(v) !== null))
        throw typeError(expected(fn, 'an array or a typed array', field, v));
      if (depth >= GGUF_MAX_ARRAY_DEPTH) throw rangeError(expected(fn, `arrays nested at most ${GGUF_MAX_ARRAY_DEPTH} deep`, field, 'a deeper array', true));
      const arr = v as ArrayLike<unknown>;
      const it = itemType ?? inferItemType(fn, field, v as unknown[]);
      if (!(GGUF_VALUE_TYPES as readonly string[]).includes(it)) throw rangeError(expected(fn, `a value type (${GGUF_VALUE_TYPES.join(', ')})`, `${field}.itemType`, it));
      w.u32(GGUF_VALUE_TYPES.indexOf(it));
      w.u64(BigInt(arr.length));
      for (let i = 0; i < arr.length; i++) writeValue(w, fn, `${field}[${i}]`, it, arr[i], undefined, depth + 1);
      return;
    }
  }
  throw rangeError(expected(fn, `a value type (${GGUF_VALUE_TYPES.join(', ')})`, `${field}.type`, t));
}

/** The bytes of a tensor of this type and row-major shape (after the shape was checked). */
function tensorBytes(type: GgmlTypeInfo, shape: readonly number[]): number {
  const numel = shape.reduce((a, d) => a * d, 1);
  return (numel / type.blockSize) * type.typeSize;
}

/**
 * Encodes a GGUF v3 file in memory, in llama.cpp's layout: the metadata in the order given, the tensor infos in the
 * order given, padding to the alignment, then each tensor's data at the next multiple of the alignment (zero padding,
 * after the last one too).
 *
 * Metadata types: a {@link GgufTypedValue} (`{ type: 'u64', value: 5 }`) says the type; otherwise it is inferred:
 * string -> string; boolean -> bool; an integer number -> u32 if in [0, 2^32), i32 if in [-2^31, 0), else i64 /
 * u64 (f64 beyond the safe integers); any other number -> f32 (GGUF's convention: `{ type: 'f64', value }` keeps a
 * double); bigint -> u64 (i64 if negative); a typed array -> an array of its element type (Float32Array -> f32,
 * BigInt64Array -> i64, ...); a plain array -> all strings: string, all booleans: bool, all numbers: i32 if they fit,
 * else u32 if they fit, else f32; all bigints: u64 / i64; all arrays: nested arrays (each inferred); empty: i32.
 * Names and keys may be up to 65536 bytes here; llama.cpp itself loads tensor names of at most 63 bytes.
 * @param input - `{ metadata, tensors, alignment }`
 * @returns the whole file
 * @throws {TypeError} | {RangeError} a bad argument, naming it (`metadata["general.name"]`, `tensors[2].data.length`)
 * @example
 * const file = encodeGguf({
 *   metadata: { 'general.architecture': 'llama', 'llama.block_count': 2, 'llama.rope.freq_base': 10000 },
 *   tensors: [{ name: 'output_norm.weight', type: 'F32', shape: [256], data: new Uint8Array(1024) }],
 * });
 */
export function encodeGguf(input: EncodeGgufInput): Uint8Array {
  const fn = 'encodeGguf';
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw typeError(expected(fn, 'an object { metadata, tensors, alignment }', 'input', input));
  const metaIn = input.metadata ?? {};
  let entries: [string, unknown][];
  if (metaIn instanceof Map) entries = [...(metaIn as Map<string, unknown>).entries()];
  else if (metaIn !== null && typeof metaIn === 'object' && !Array.isArray(metaIn)) entries = Object.entries(metaIn);
  else throw typeError(expected(fn, 'a Map or an object of metadata values', 'input.metadata', metaIn));
  const tensors = input.tensors ?? [];
  if (!Array.isArray(tensors)) throw typeError(expected(fn, 'an array of { name, type, shape, data }', 'input.tensors', tensors));

  // The alignment: the option, else general.alignment, else 32; both must agree.
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const metaAlign = entries.find(([k]) => k === 'general.alignment');
  if (metaAlign !== undefined) {
    const v = metaAlign[1];
    const av = isTypedValue(v) ? v.value : v;
    if (isTypedValue(v) && v.type !== 'u32') throw rangeError(expected(fn, "type 'u32'", 'metadata["general.alignment"].type', v.type));
    if (typeof av !== 'number' || !isPowerOfTwo(av) || av > 0x80000000)
      throw rangeError(expected(fn, 'a power of two (u32)', 'metadata["general.alignment"]', av));
    alignment = av;
  }
  if (input.alignment !== undefined) {
    const a = input.alignment;
    if (typeof a !== 'number') throw typeError(expected(fn, 'an integer', 'input.alignment', a));
    if (!isPowerOfTwo(a) || a > 0x80000000) throw rangeError(expected(fn, 'a power of two of at most 2^31', 'input.alignment', a));
    if (metaAlign !== undefined && a !== alignment)
      throw rangeError(expected(fn, `the same value as metadata["general.alignment"] (${alignment})`, 'input.alignment', a));
    if (metaAlign === undefined) entries.push(['general.alignment', { type: 'u32', value: a }]);
    alignment = a;
  }

  const w = new ByteWriter();
  w.bytes(utf8Encoder.encode(GGUF_MAGIC));
  w.u32(GGUF_VERSION);
  w.u64(BigInt(tensors.length));
  w.u64(BigInt(entries.length));
  for (const [key, v] of entries) {
    if (typeof key !== 'string') throw typeError(expected(fn, 'string keys', 'input.metadata', key));
    const field = `metadata[${q(key)}]`;
    if (key.length === 0) throw rangeError(expected(fn, 'a non-empty key', 'a metadata key', '""', true));
    if (LONE_SURROGATE.test(key)) throw rangeError(expected(fn, 'a key without lone surrogates (valid UTF-8)', field, key));
    if (utf8Encoder.encode(key).length > GGUF_MAX_NAME_BYTES) throw rangeError(expected(fn, `a key of at most ${GGUF_MAX_NAME_BYTES} bytes`, field, key));
    let t: GgufValueType;
    let value: unknown;
    let itemType: GgufValueType | undefined;
    if (isTypedValue(v)) {
      if (!(GGUF_VALUE_TYPES as readonly unknown[]).includes(v.type))
        throw rangeError(expected(fn, `a value type (${GGUF_VALUE_TYPES.join(', ')})`, `${field}.type`, v.type));
      t = v.type;
      value = v.value;
      itemType = v.itemType;
      if (itemType !== undefined && t !== 'array') throw rangeError(expected(fn, "no itemType unless type is 'array'", `${field}.itemType`, itemType));
    } else {
      t = inferType(fn, field, v);
      value = v;
    }
    w.str(key);
    w.u32(GGUF_VALUE_TYPES.indexOf(t));
    writeValue(w, fn, field, t, value, itemType, 1);
  }

  const seen = new Set<string>();
  let offset = 0;
  const placed: { data: Uint8Array; offset: number }[] = [];
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i] as unknown;
    const p = `tensors[${i}]`;
    if (t === null || typeof t !== 'object' || Array.isArray(t)) throw typeError(expected(fn, 'an object { name, type, shape, data }', p, t));
    const { name, type, shape, data } = t as Record<string, unknown>;
    if (typeof name !== 'string') throw typeError(expected(fn, 'a string', `${p}.name`, name));
    if (LONE_SURROGATE.test(name)) throw rangeError(expected(fn, 'a name without lone surrogates (valid UTF-8)', `${p}.name`, name));
    if (utf8Encoder.encode(name).length > GGUF_MAX_NAME_BYTES) throw rangeError(expected(fn, `a name of at most ${GGUF_MAX_NAME_BYTES} bytes`, `${p}.name`, name));
    if (seen.has(name)) throw rangeError(expected(fn, 'unique names', `${p}.name`, `a second ${q(name)}`, true));
    seen.add(name);
    if (typeof type !== 'string') throw typeError(expected(fn, `a tensor type (${GGUF_TENSOR_TYPES.join(', ')})`, `${p}.type`, type));
    if (!(GGUF_TENSOR_TYPES as readonly string[]).includes(type))
      throw rangeError(expected(fn, `a tensor type (${GGUF_TENSOR_TYPES.join(', ')})`, `${p}.type`, type));
    const info = GGML_TYPES[TYPE_ID[type as GgufTensorType]]!;
    if (!Array.isArray(shape)) throw typeError(expected(fn, 'an array of 1 to 4 positive integers', `${p}.shape`, shape));
    if (shape.length < 1 || shape.length > 4 || !shape.every((d) => Number.isSafeInteger(d) && d > 0))
      throw rangeError(expected(fn, 'an array of 1 to 4 positive integers', `${p}.shape`, shape));
    const numel = (shape as number[]).reduce((a, d) => a * BigInt(d), 1n);
    if (numel > MAX_SAFE_BIG) throw rangeError(expected(fn, 'at most 2^53 - 1 elements', `${p}.shape`, shape));
    const row = shape[shape.length - 1] as number;
    if (row % info.blockSize !== 0)
      throw rangeError(expected(fn, `a last dimension that is a multiple of ${info.blockSize} (the ${type} block)`, `${p}.shape`, shape));
    if (!(data instanceof Uint8Array)) throw typeError(expected(fn, 'a Uint8Array', `${p}.data`, data));
    const want = tensorBytes(info, shape as number[]);
    if (data.length !== want) throw rangeError(expected(fn, `${want} bytes (${type} [${(shape as number[]).join(', ')}])`, `${p}.data.length`, data.length));
    w.str(name);
    w.u32(shape.length);
    for (let j = shape.length - 1; j >= 0; j--) w.u64(BigInt(shape[j] as number));
    w.u32(info.id);
    w.u64(BigInt(offset));
    placed.push({ data, offset });
    offset = alignUp(offset + data.length, alignment);
  }
  const dataStart = tensors.length > 0 ? alignUp(w.len, alignment) : w.len;
  const out = new Uint8Array(dataStart + offset);
  out.set(w.buf.subarray(0, w.len));
  for (const t of placed) out.set(t.data, dataStart + t.offset);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Quantizers (llama.cpp's reference ones) and float conversions

function fp16Bits(fn: string, d: number, what: () => string): number {
  const h = f32ToF16(d);
  if ((h & 0x7c00) === 0x7c00) throw rangeError(expected(fn, 'a scale within the f16 range (|scale| <= 65504)', what(), d));
  return h;
}

/**
 * Quantizes rows of f32 values as llama.cpp's reference quantizers do (quantize_row_q8_0_ref /
 * quantize_row_q4_0_ref, every step in float32): Q8_0 blocks of 32: `d = amax / 127`, `q = roundf(x * (1/d))`;
 * Q4_0: `m` = the value of largest magnitude (the first one), `d = m / -8`, `q = min(15, trunc(x * (1/d) + 8.5))`,
 * elements j and j + 16 of a block in the low and high nibble of byte j; `d` stored as f16 (round to nearest
 * even). The output is the GGUF bytes (= the row form of QuantizedTensor.fromBytes).
 * @param type - 'Q8_0' or 'Q4_0'
 * @param x - rows x cols values, row-major
 * @param rows - the number of rows
 * @param cols - the row length, a multiple of 32
 * @throws {TypeError} | {RangeError} bad arguments; a NaN or infinite value or a scale beyond f16 (naming the row
 *   and column)
 * @example
 * const q = ggufQuantize('Q8_0', w, 4096, 4096); // 4096 * 128 blocks of 34 bytes
 */
export function ggufQuantize(type: 'Q8_0' | 'Q4_0', x: Float32Array, rows: number, cols: number): Uint8Array {
  const fn = 'ggufQuantize';
  if (type !== 'Q8_0' && type !== 'Q4_0') throw rangeError(expected(fn, "'Q8_0' or 'Q4_0'", 'type', type));
  if (!(x instanceof Float32Array)) throw typeError(expected(fn, 'a Float32Array', 'x', x));
  if (!Number.isSafeInteger(rows) || rows < 0) throw rangeError(expected(fn, 'a non-negative integer', 'rows', rows));
  if (!Number.isSafeInteger(cols) || cols <= 0 || cols % 32 !== 0) throw rangeError(expected(fn, 'a positive multiple of 32', 'cols', cols));
  if (x.length !== rows * cols) throw rangeError(expected(fn, `rows x cols = ${rows * cols} values`, 'x.length', x.length));
  const f = Math.fround;
  const bs = type === 'Q8_0' ? 34 : 18;
  const out = new Uint8Array((x.length / 32) * bs);
  let o = 0;
  for (let i = 0; i < x.length; i += 32) {
    const where = () => `x (row ${Math.floor(i / cols)}, columns ${i % cols}-${(i % cols) + 31})`;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[i + j]!;
      if (!Number.isFinite(v)) throw rangeError(expected(fn, 'finite values', `x (row ${Math.floor((i + j) / cols)}, column ${(i + j) % cols})`, v));
      const a = Math.abs(v);
      if (amax < a) {
        amax = a;
        max = v;
      }
    }
    if (type === 'Q8_0') {
      const d = f(amax / 127);
      const id = d !== 0 ? f(1 / d) : 0;
      const h = fp16Bits(fn, d, where);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
      for (let j = 0; j < 32; j++) {
        const v = f(x[i + j]! * id);
        const r = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5); // roundf: half away from zero
        out[o + 2 + j] = r & 0xff;
      }
      o += 34;
    } else {
      const d = f(max / -8);
      const id = d !== 0 ? f(1 / d) : 0;
      const h = fp16Bits(fn, d, where);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
      for (let j = 0; j < 16; j++) {
        const x0 = f(x[i + j]! * id);
        const x1 = f(x[i + 16 + j]! * id);
        const q0 = Math.min(15, Math.trunc(f(x0 + 8.5)));
        const q1 = Math.min(15, Math.trunc(f(x1 + 8.5)));
        out[o + 2 + j] = q0 | (q1 << 4);
      }
      o += 18;
    }
  }
  return out;
}

/** f32 values of raw F32 / F16 / BF16 bytes. */
function toF32(dtype: string, bytes: Uint8Array): Float32Array {
  if (dtype === 'F32') {
    const src = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    const v = new Float32Array(src.buffer, src.byteOffset, src.length / 4);
    if (LITTLE_ENDIAN) return v.slice();
    const dv = new DataView(src.buffer, src.byteOffset, src.length);
    return Float32Array.from({ length: src.length / 4 }, (_, i) => dv.getFloat32(4 * i, true));
  }
  if (dtype === 'BF16') return bf16ToF32(bytes);
  return f16ToF32(bytes);
}

function f32Bytes(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < x.length; i++) dv.setFloat32(4 * i, x[i]!, true);
  return out;
}

function halfBytes(x: Float32Array, conv: (f: number) => number): Uint8Array {
  const out = new Uint8Array(x.length * 2);
  for (let i = 0; i < x.length; i++) {
    const h = conv(x[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The q/k row permutation

/**
 * Reorders the rows of a q_proj / k_proj weight (or bias) between Hugging Face's layout and llama.cpp's (see the file
 * header): with D = rows / nHead and s in {0, 1}, GGUF row `h*D + 2j + s` is Hugging Face row `h*D + s*D/2 + j`.
 * Whole rows move, so this works on the raw bytes of any type (a row of a quantized tensor is whole blocks).
 * @param bytes - `rows` rows of equal byte length
 * @param rows - the row count (N of a weight [N, K]; the length of a bias)
 * @param nHead - heads: num_attention_heads for q, num_key_value_heads for k; rows / nHead must be even
 * @param toHf - false (default): Hugging Face -> GGUF (what convert_hf_to_gguf.py does); true: GGUF -> Hugging Face
 * @returns a new buffer
 * @throws {TypeError} | {RangeError} bytes not a Uint8Array; rows not a positive multiple of 2 x nHead; a byte
 *   length that is not a multiple of rows
 * @example
 * const hfRows = llamaQkPermute(file.read('blk.0.attn_q.weight'), 4096, 32, true);
 */
export function llamaQkPermute(bytes: Uint8Array, rows: number, nHead: number, toHf = false): Uint8Array {
  const fn = 'llamaQkPermute';
  if (!(bytes instanceof Uint8Array)) throw typeError(expected(fn, 'a Uint8Array', 'bytes', bytes));
  if (!Number.isSafeInteger(nHead) || nHead <= 0) throw rangeError(expected(fn, 'a positive integer', 'nHead', nHead));
  if (!Number.isSafeInteger(rows) || rows <= 0 || rows % (2 * nHead) !== 0)
    throw rangeError(expected(fn, `a positive multiple of 2 x nHead (${2 * nHead})`, 'rows', rows));
  if (bytes.length % rows !== 0) throw rangeError(expected(fn, `a multiple of rows (${rows})`, 'bytes.length', bytes.length));
  const rb = bytes.length / rows;
  const D = rows / nHead;
  const half = D / 2;
  const out = new Uint8Array(bytes.length);
  for (let h = 0; h < nHead; h++)
    for (let j = 0; j < half; j++)
      for (let s = 0; s < 2; s++) {
        const g = h * D + 2 * j + s;
        const hf = h * D + s * half + j;
        const [from, to] = toHf ? [g, hf] : [hf, g];
        out.set(bytes.subarray(from * rb, from * rb + rb), to * rb);
      }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Names

const LAYER_PARTS: ReadonlyArray<[hf: string, gguf: string]> = [
  ['input_layernorm', 'attn_norm'],
  ['self_attn.q_proj', 'attn_q'],
  ['self_attn.k_proj', 'attn_k'],
  ['self_attn.v_proj', 'attn_v'],
  ['self_attn.o_proj', 'attn_output'],
  ['post_attention_layernorm', 'ffn_norm'],
  ['mlp.gate_proj', 'ffn_gate'],
  ['mlp.up_proj', 'ffn_up'],
  ['mlp.down_proj', 'ffn_down'],
];
const HF_TO_GGUF_PART = new Map(LAYER_PARTS);
const GGUF_TO_HF_PART = new Map(LAYER_PARTS.map(([a, b]) => [b, a]));
const GLOBAL_NAMES: ReadonlyArray<[string, string]> = [
  ['model.embed_tokens.weight', 'token_embd.weight'],
  ['model.norm.weight', 'output_norm.weight'],
  ['lm_head.weight', 'output.weight'],
];
const HF_GLOBAL = new Map(GLOBAL_NAMES);
const GGUF_GLOBAL = new Map(GLOBAL_NAMES.map(([a, b]) => [b, a]));
const HF_LAYER = /^model\.layers\.(0|[1-9]\d{0,5})\.(.+)\.(weight|bias)$/;
const GGUF_LAYER = /^blk\.(0|[1-9]\d{0,5})\.([a-z_]+)\.(weight|bias)$/;

/**
 * The GGUF name of a Hugging Face Llama-family tensor name (`model.layers.3.self_attn.o_proj.weight` ->
 * `blk.3.attn_output.weight`), or null for a name outside the mapping.
 * @example hfToGgufTensorName('lm_head.weight'); // 'output.weight'
 */
export function hfToGgufTensorName(name: string): string | null {
  if (typeof name !== 'string') return null;
  const g = HF_GLOBAL.get(name);
  if (g !== undefined) return g;
  const m = HF_LAYER.exec(name);
  const part = m && HF_TO_GGUF_PART.get(m[2]!);
  return m && part ? `blk.${m[1]}.${part}.${m[3]}` : null;
}

/**
 * The Hugging Face name of a GGUF Llama-family tensor name (the inverse of {@link hfToGgufTensorName}), or null.
 * @example ggufToHfTensorName('blk.0.ffn_norm.weight'); // 'model.layers.0.post_attention_layernorm.weight'
 */
export function ggufToHfTensorName(name: string): string | null {
  if (typeof name !== 'string') return null;
  const g = GGUF_GLOBAL.get(name);
  if (g !== undefined) return g;
  const m = GGUF_LAYER.exec(name);
  const part = m && GGUF_TO_HF_PART.get(m[2]!);
  return m && part ? `model.layers.${m[1]}.${part}.${m[3]}` : null;
}

// ---------------------------------------------------------------------------------------------------------------
// The Llama bridge: config

/** The GGUF architectures {@link ggufLlamaConfig} maps. */
export const GGUF_LLAMA_ARCHITECTURES = ['llama', 'qwen2'] as const;

type HeaderLike = Pick<GgufHeader, 'metadata' | 'metadataTypes' | 'tensors'> & { readonly path?: string; readonly source?: string };

const INT_TYPES = new Set(['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64']);
const NUM_TYPES = new Set([...INT_TYPES, 'f32', 'f64']);

/** `5 (u32)` for a number, `a value of type string` otherwise. */
function gotValue(v: unknown, t: string): string {
  return typeof v === 'number' || typeof v === 'bigint' ? `${v} (${t})` : `a value of type ${t}`;
}

class MetaReader {
  constructor(
    readonly h: HeaderLike,
    readonly source: string,
  ) {}
  has(key: string): boolean {
    return this.h.metadata.has(key);
  }
  #field(key: string): string {
    return `metadata ${q(key)}`;
  }
  #type(key: string): string {
    return this.h.metadataTypes.get(key) ?? 'unknown';
  }
  /** A non-negative integer (any integer type), or `def` when absent. */
  int(key: string, def?: number, positive = true): number {
    if (!this.has(key)) {
      if (def !== undefined) return def;
      throw formatError(this.source, `${positive ? 'a positive' : 'a non-negative'} integer`, this.#field(key), 'no such key', true);
    }
    const t = this.#type(key);
    const v = this.h.metadata.get(key);
    if (t.startsWith('array'))
      throw unsupported(this.source, 'one integer (per-layer values are not supported)', this.#field(key), `a value of type ${t}`);
    if (!INT_TYPES.has(t) || typeof v !== 'number' || !Number.isSafeInteger(v) || v < (positive ? 1 : 0))
      throw formatError(this.source, `${positive ? 'a positive' : 'a non-negative'} integer`, this.#field(key), gotValue(v, t), true);
    return v;
  }
  /** A finite number > 0 (any numeric type), or `def` when absent. */
  num(key: string, def?: number): number {
    if (!this.has(key)) {
      if (def !== undefined) return def;
      throw formatError(this.source, 'a finite number > 0', this.#field(key), 'no such key', true);
    }
    const t = this.#type(key);
    const v = this.h.metadata.get(key);
    if (!NUM_TYPES.has(t) || typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw formatError(this.source, 'a finite number > 0', this.#field(key), gotValue(v, t), true);
    return v;
  }
  str(key: string): string | undefined {
    if (!this.has(key)) return undefined;
    const v = this.h.metadata.get(key);
    if (typeof v !== 'string') throw formatError(this.source, 'a string', this.#field(key), `a value of type ${this.#type(key)}`, true);
    return v;
  }
}

function headerSource(h: HeaderLike): string {
  return h.path ?? h.source ?? 'gguf';
}

function checkHeaderLike(fn: string, param: string, v: unknown): HeaderLike {
  if (v instanceof GgufFile) return v;
  const h = v as GgufHeader;
  if (v !== null && typeof v === 'object' && h.metadata instanceof Map && h.tensors instanceof Map && h.metadataTypes instanceof Map) return h;
  throw typeError(expected(fn, 'a GgufFile (or a GgufHeader)', param, v));
}

/**
 * The {@link LlamaConfig} of a GGUF file of architecture `llama` (Llama 2/3, and Mistral, which llama.cpp stores as
 * llama) or `qwen2`: the GGUF keys are mapped to a Hugging Face config.json object that goes through
 * {@link parseLlamaConfig}, so validation and defaults are shared. The mapping (`{a}` = the architecture):
 * - `{a}.embedding_length` -> hidden_size, `{a}.feed_forward_length` -> intermediate_size, `{a}.block_count` ->
 *   num_hidden_layers, `{a}.attention.head_count` -> num_attention_heads, `{a}.attention.head_count_kv` (default the
 *   head count) -> num_key_value_heads, `{a}.attention.key_length` (default embedding / heads) -> head_dim,
 *   `{a}.attention.layer_norm_rms_epsilon` -> rms_norm_eps, `{a}.rope.freq_base` (default 10000) -> rope_theta,
 *   `{a}.context_length` -> max_position_embeddings (all required unless a default is named; per-layer arrays are
 *   `ERR_UNSUPPORTED`);
 * - `{a}.rope.dimension_count` must equal the head dimension (partial RoPE is `ERR_UNSUPPORTED`);
 * - `{a}.rope.scaling.type` 'none' or absent, or 'linear' with `{a}.rope.scaling.factor` (or the older
 *   `{a}.rope.scale_linear`); other types (yarn, longrope) and a `rope_freqs.weight` tensor (llama3 RoPE scaling,
 *   stored as per-frequency factors that do not map back onto the config's parameters) are `ERR_UNSUPPORTED`;
 * - vocab_size: the rows of `token_embd.weight`, else the length of `tokenizer.ggml.tokens`, else `{a}.vocab_size`;
 * - tie_word_embeddings: no `output.weight` tensor;
 * - biases from the tensors present: attention_bias when `blk.0.attn_q.bias` exists, mlp_bias (llama) when
 *   `blk.0.ffn_gate.bias` does;
 * - `{a}.attention.sliding_window`: for llama it makes the config a mistral one (a llama with a sliding window on
 *   every layer; not with attention biases); for qwen2 a window on all layers. llama.cpp's own converter writes no
 *   window for Mistral (it runs it as plain llama), so such files come back as llama with full attention, as
 *   llama.cpp runs them;
 * - bos / eos: `tokenizer.ggml.bos_token_id`, `tokenizer.ggml.eos_token_id`; torch_dtype: null.
 * Numbers stored as f32 in GGUF (rms eps, rope base, rope factor) come back as their f32 values.
 * @param file - an open {@link GgufFile} (or a {@link GgufHeader})
 * @returns a frozen LlamaConfig
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` naming the file and the GGUF key for a missing or malformed value;
 *   `ERR_UNSUPPORTED` for another architecture, partial RoPE, a RoPE scaling other than linear, per-layer values
 * @throws {TypeError} file is not a GgufFile or GgufHeader
 * @example
 * using f = GgufFile.open('tiny.gguf');
 * const cfg = ggufLlamaConfig(f); // { modelType: 'llama', hiddenSize: 256, ... }
 */
export function ggufLlamaConfig(file: GgufFile | GgufHeader): LlamaConfig {
  const h = checkHeaderLike('ggufLlamaConfig', 'file', file);
  if (h instanceof GgufFile && h.closed) throw new LlmKernelsError('ERR_DISPOSED', `ggufLlamaConfig: expected an open file for file, got a closed file (${h.path})`);
  const source = headerSource(h);
  const m = new MetaReader(h, source);
  const arch = m.str('general.architecture');
  if (arch === undefined) throw formatError(source, 'an architecture string', 'metadata "general.architecture"', 'no such key', true);
  if (!(GGUF_LLAMA_ARCHITECTURES as readonly string[]).includes(arch))
    throw unsupported(source, `a supported architecture (${GGUF_LLAMA_ARCHITECTURES.join(', ')})`, 'metadata "general.architecture"', JSON.stringify(arch));
  const a = arch;
  const hidden = m.int(`${a}.embedding_length`);
  const ffn = m.int(`${a}.feed_forward_length`);
  const layers = m.int(`${a}.block_count`);
  const heads = m.int(`${a}.attention.head_count`);
  const kvHeads = m.int(`${a}.attention.head_count_kv`, heads);
  if (heads % kvHeads !== 0)
    throw formatError(source, `a divisor of ${a}.attention.head_count (${heads})`, `metadata ${q(`${a}.attention.head_count_kv`)}`, kvHeads);
  const defHead = hidden % heads === 0 ? hidden / heads : undefined;
  const headDim = m.int(`${a}.attention.key_length`, defHead);
  const valueLen = m.int(`${a}.attention.value_length`, headDim);
  if (valueLen !== headDim)
    throw unsupported(
      source,
      `the key length (${headDim})`,
      `metadata ${q(`${a}.attention.value_length`)}`,
      `${valueLen} (different key and value head sizes are not supported)`,
    );
  const ropeDim = m.int(`${a}.rope.dimension_count`, headDim);
  if (ropeDim !== headDim)
    throw unsupported(
      source,
      `the head dimension (${headDim}): RoPE on every dimension`,
      `metadata ${q(`${a}.rope.dimension_count`)}`,
      `${ropeDim} (partial RoPE is not supported)`,
    );

  let ropeScaling: Record<string, unknown> | null = null;
  const st = m.str(`${a}.rope.scaling.type`);
  if (st !== undefined && st !== 'none') {
    if (st !== 'linear') throw unsupported(source, "a supported RoPE scaling type ('none', 'linear')", `metadata ${q(`${a}.rope.scaling.type`)}`, JSON.stringify(st));
    ropeScaling = { type: 'linear', factor: m.num(`${a}.rope.scaling.factor`) };
  } else if (st === undefined && m.has(`${a}.rope.scale_linear`)) {
    const f = m.num(`${a}.rope.scale_linear`);
    if (f !== 1) ropeScaling = { type: 'linear', factor: f };
  }
  if (h.tensors.has('rope_freqs.weight'))
    throw unsupported(
      source,
      'no rope_freqs.weight tensor',
      'tensor "rope_freqs.weight"',
      'per-frequency RoPE factors (llama3 RoPE scaling; not supported from GGUF yet: load the Hugging Face checkpoint)',
    );

  let vocab: number;
  const embd = h.tensors.get('token_embd.weight');
  const tokens = h.metadata.get('tokenizer.ggml.tokens');
  if (embd !== undefined) {
    if (embd.dims.length !== 2) throw formatError(source, '2 dimensions [embedding_length, vocab]', 'tensor "token_embd.weight"', `ne [${embd.dims.join(', ')}]`, true);
    vocab = embd.dims[1]!;
  } else if (Array.isArray(tokens)) vocab = tokens.length;
  else vocab = m.int(`${a}.vocab_size`);

  const json: Record<string, unknown> = {
    model_type: arch,
    hidden_size: hidden,
    intermediate_size: ffn,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: m.num(`${a}.attention.layer_norm_rms_epsilon`),
    rope_theta: m.num(`${a}.rope.freq_base`, 10000),
    rope_scaling: ropeScaling,
    max_position_embeddings: m.int(`${a}.context_length`),
    vocab_size: vocab,
    tie_word_embeddings: !h.tensors.has('output.weight'),
    hidden_act: 'silu',
    torch_dtype: null,
  };
  const attnBias = h.tensors.has('blk.0.attn_q.bias');
  if (arch === 'llama') {
    json.attention_bias = attnBias;
    json.mlp_bias = h.tensors.has('blk.0.ffn_gate.bias');
  }
  if (m.has(`${a}.attention.sliding_window`)) {
    const win = m.int(`${a}.attention.sliding_window`);
    if (arch === 'llama') {
      if (attnBias)
        throw unsupported(
          source,
          'no attention biases with a sliding window (mistral)',
          `metadata ${q(`${a}.attention.sliding_window`)}`,
          `${win} with tensor "blk.0.attn_q.bias"`,
        );
      json.model_type = 'mistral';
      json.sliding_window = win;
    } else {
      json.use_sliding_window = true;
      json.sliding_window = win;
      json.max_window_layers = 0;
    }
  } else if (arch === 'qwen2') json.use_sliding_window = false;
  else json.sliding_window = null;
  if (m.has('tokenizer.ggml.bos_token_id')) json.bos_token_id = m.int('tokenizer.ggml.bos_token_id', undefined, false);
  if (m.has('tokenizer.ggml.eos_token_id')) json.eos_token_id = m.int('tokenizer.ggml.eos_token_id', undefined, false);
  return parseLlamaConfig(json, source);
}

// ---------------------------------------------------------------------------------------------------------------
// The Llama bridge: weights

/** A {@link WeightSource} over a GGUF file, serving Hugging Face names (see {@link ggufWeightSource}). */
export interface GgufWeightSource extends WeightSource {
  /** The Hugging Face names served (those of the file's tensors that map), in file order. */
  names(): string[];
  /** The dtype ('F32', 'F16', 'BF16', 'Q8_0', 'Q4_0') and row-major shape of a tensor. */
  info(name: string): { readonly dtype: GgufTensorType; readonly shape: readonly number[] };
  /** The bytes, in Hugging Face's layout (q/k rows un-permuted for architecture llama). */
  read(name: string): Uint8Array;
  /**
   * Rows [r0, r1) of a 2-D tensor, in Hugging Face's layout, reading only them from the file (a tensor-parallel
   * rank's heads). For a permuted q / k tensor the range must cover whole heads (the permutation is within a head).
   */
  readRows(name: string, rows: readonly [number, number]): Uint8Array;
  /** Where a tensor (F32 / F16 / BF16 / Q8_0 / Q4_0) that is stored as served lies in the file, for direct reads into
   * native memory; null for permuted q / k tensors (read those with `read` or `readRows`). */
  locate(name: string): { readonly path: string; readonly offset: number; readonly byteLength: number } | null;
}

/**
 * Serves a GGUF file's Llama-family tensors under Hugging Face names for {@link LlamaForCausalLM.fromWeights}:
 * `token_embd.weight` -> `model.embed_tokens.weight`, `output_norm.weight` -> `model.norm.weight`, `output.weight`
 * -> `lm_head.weight`, `blk.N.attn_norm` / `attn_q` / `attn_k` / `attn_v` / `attn_output` / `ffn_norm` / `ffn_gate`
 * / `ffn_up` / `ffn_down` -> `model.layers.N.input_layernorm` / `self_attn.{q,k,v,o}_proj` /
 * `post_attention_layernorm` / `mlp.{gate,up,down}_proj` (`.weight` and `.bias`). dtype is the GGUF type name; the
 * shape is row-major ([N, K] for a weight); Q8_0 / Q4_0 bytes are the row form of `QuantizedTensor.fromBytes`;
 * `locate` gives the file range of float, Q8_0 and Q4_0 tensors stored as served (the loader reads those straight
 * into native memory, and a tensor-parallel rank only its slice). For
 * architecture `llama` the q_proj / k_proj rows (weights and biases) are put back in Hugging Face's order (see the
 * file header; n_head = config.numHeads for q, config.numKvHeads for k). The file stays owned by the caller: close it
 * after loading.
 * @param file - an open GgufFile
 * @param config - its config ({@link ggufLlamaConfig})
 * @throws {TypeError} file is not a GgufFile, config not an object
 * @throws {LlmKernelsError} `ERR_UNSUPPORTED` for an architecture other than llama / qwen2; from info / read:
 *   `ERR_MODEL_FORMAT` for a name not in the file, or a q / k tensor whose rows are not heads x head_dim;
 *   `ERR_UNSUPPORTED` for a tensor type this library does not load (e.g. `Q4_K (12)`); `ERR_DISPOSED` once the file
 *   is closed
 * @example
 * using f = GgufFile.open('tiny-q8_0.gguf');
 * const cfg = ggufLlamaConfig(f);
 * const model = await LlamaForCausalLM.fromWeights(cfg, ggufWeightSource(f, cfg));
 */
export function ggufWeightSource(file: GgufFile, config: LlamaConfig): GgufWeightSource {
  const fn = 'ggufWeightSource';
  if (!(file instanceof GgufFile)) throw typeError(expected(fn, 'a GgufFile', 'file', file));
  if (config === null || typeof config !== 'object') throw typeError(expected(fn, 'a LlamaConfig (ggufLlamaConfig)', 'config', config));
  for (const k of ['numHeads', 'numKvHeads', 'headDim'] as const)
    if (!Number.isSafeInteger(config[k]) || config[k] <= 0) throw rangeError(expected(fn, 'a positive integer', `config.${k}`, config[k]));
  const arch = file.metadata.get('general.architecture');
  if (typeof arch !== 'string' || !(GGUF_LLAMA_ARCHITECTURES as readonly string[]).includes(arch))
    throw unsupported(
      file.path,
      `a supported architecture (${GGUF_LLAMA_ARCHITECTURES.join(', ')})`,
      'metadata "general.architecture"',
      arch === undefined ? 'no such key' : JSON.stringify(arch),
    );
  const permuted = arch === 'llama';
  const src = file.path;
  const ggufName = (name: string, method: string): string => {
    if (typeof name !== 'string') throw typeError(expected(`GgufWeightSource.${method}`, 'a tensor name string', 'name', name));
    const g = hfToGgufTensorName(name);
    if (g === null || !file.tensors.has(g)) throw formatError(src, 'a tensor of this name', 'the name', `no tensor ${q(name)}${g === null ? '' : ` (${g})`}`, true);
    return g;
  };
  const heads = (g: string): number | null => {
    if (!permuted) return null;
    if (/^blk\.\d+\.attn_q\./.test(g)) return config.numHeads;
    if (/^blk\.\d+\.attn_k\./.test(g)) return config.numKvHeads;
    return null;
  };
  const checked = (g: string): GgufTensorInfo => {
    const t = file.info(g);
    if (!t.supported) throw unsupportedType(src, t);
    return t;
  };
  return {
    names(): string[] {
      return file.names().flatMap((n) => {
        const hf = ggufToHfTensorName(n);
        return hf === null ? [] : [hf];
      });
    },
    has(name: string): boolean {
      const g = hfToGgufTensorName(name);
      return g !== null && file.has(g);
    },
    info(name: string) {
      const t = checked(ggufName(name, 'info'));
      return Object.freeze({ dtype: t.typeName as GgufTensorType, shape: t.shape });
    },
    locate(name: string) {
      const g = ggufName(name, 'locate');
      const t = checked(g);
      if (heads(g) !== null || !['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'].includes(t.typeName)) return null;
      return Object.freeze({ path: file.path, offset: t.offset, byteLength: t.byteLength });
    },
    read(name: string): Uint8Array {
      const g = ggufName(name, 'read');
      const t = checked(g);
      return unpermute(g, t, file.read(g), 0, t.shape[0] ?? 1);
    },
    readRows(name: string, rows: readonly [number, number]): Uint8Array {
      const g = ggufName(name, 'readRows');
      const t = checked(g);
      const n = t.shape[0]!;
      const [r0, r1] = Array.isArray(rows) ? rows : [NaN, NaN];
      if (t.shape.length !== 2 || !Number.isInteger(r0) || !Number.isInteger(r1) || r0! < 0 || r0! > r1! || r1! > n)
        throw rangeError(expected('GgufWeightSource.readRows', `rows [r0, r1) within the ${n} rows of 2-D tensor ${q(name)}`, 'rows', `[${String(rows)}]`, true));
      const rowBytes = t.byteLength / n;
      return unpermute(g, t, file.readRange(g, r0! * rowBytes, (r1! - r0!) * rowBytes), r0!, r1!);
    },
  };

  // Rows [r0, r1) of tensor g as stored -> Hugging Face's order (q / k of architecture llama; others as they are).
  function unpermute(g: string, t: GgufTensorInfo, bytes: Uint8Array, r0: number, r1: number): Uint8Array {
    const nHead = heads(g);
    if (nHead === null) return bytes;
    const rows = t.shape[0]!;
    if (rows !== nHead * config.headDim || config.headDim % 2 !== 0)
      throw formatError(
        src,
        `${nHead} heads x head_dim ${config.headDim} = ${nHead * config.headDim} rows`,
        `tensor ${q(g)}`,
        `${rows} rows (shape [${t.shape.join(', ')}])`,
        true,
      );
    if (t.dims.length === 1 && !(t.typeName === 'F32' || t.typeName === 'F16' || t.typeName === 'BF16'))
      throw unsupported(src, 'a float type for a 1-D q/k tensor (its rows are permuted element by element)', `tensor ${q(g)}`, t.typeName);
    const D = config.headDim;
    if (r0 % D !== 0 || r1 % D !== 0)
      throw rangeError(expected('GgufWeightSource.readRows', `whole heads of ${D} rows of ${q(g)} (its rows are permuted within each head)`, 'rows', `[${r0}, ${r1}]`, true));
    return llamaQkPermute(bytes, r1 - r0, (r1 - r0) / D, true);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Hugging Face -> GGUF

/** Options of {@link hfToGguf}. */
export interface HfToGgufOptions {
  /**
   * Tensor types (1-D tensors are always F32, as llama.cpp writes them): 'keep' (default: 2-D tensors as stored,
   * F32 / F16 / BF16), 'F32', 'F16' / 'BF16', 'Q8_0' / 'Q4_0' (every 2-D tensor whose rows are a multiple of 32, embedding and output
   * included; other 2-D tensors F16, 1-D ones F32).
   */
  outtype?: 'keep' | GgufTensorType;
  /** The data alignment (default 32), written as `general.alignment`. */
  alignment?: number;
  /** More metadata, written after the model's (must not repeat a key). */
  metadata?: Readonly<Record<string, GgufMetadataInput>>;
}

/** A converter input other than a folder: a config (a parsed config.json, or a LlamaConfig) and the weights under
 * Hugging Face names (dtypes 'F32', 'F16' or 'BF16'). */
export interface HfToGgufSource {
  config: LlamaConfig | Record<string, unknown>;
  weights: WeightSource;
}

const LLAMA_FILE_TYPE: Readonly<Record<string, number>> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, BF16: 32 };

/** llama.cpp's rope_freqs factors for llama3 RoPE scaling (float32 steps, as its converter's torch code). */
function llama3RopeFactors(c: LlamaConfig): Float32Array {
  const s = c.ropeScaling as Extract<LlamaConfig['ropeScaling'], { type: 'llama3' }>;
  const f = Math.fround;
  const dim = c.headDim;
  const out = new Float32Array(dim / 2);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < dim / 2; i++) {
    const freq = f(1 / f(Math.pow(f(c.ropeTheta), f((2 * i) / dim))));
    const wavelen = f((2 * Math.PI) / freq);
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = f(f(f(s.originalMaxPositionEmbeddings / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
      out[i] = f(1 / f(f(f(1 - smooth) / s.factor) + smooth));
    }
  }
  return out;
}

/**
 * Converts a Hugging Face Llama-family checkpoint (llama, mistral, qwen2) to GGUF bytes, as llama.cpp's
 * convert_hf_to_gguf.py lays them out: architecture `llama` (for llama and mistral) with the q_proj / k_proj rows
 * permuted (see the file header), or `qwen2` unpermuted; tensor names as {@link hfToGgufTensorName}; types per
 * `options.outtype` (Q8_0 / Q4_0 with llama.cpp's reference quantizers, {@link ggufQuantize}); metadata:
 * general.architecture / alignment / file_type / quantization_version, `{a}.context_length`, `.embedding_length`,
 * `.feed_forward_length`, `.block_count`, `.vocab_size`, `.attention.head_count`, `.head_count_kv`,
 * `.layer_norm_rms_epsilon` (f32), `.key_length` / `.value_length` (when head_dim is not hidden / heads),
 * `.rope.freq_base` (f32), `.rope.dimension_count`, `.rope.scaling.type` / `.factor` (linear), a `rope_freqs.weight`
 * tensor (llama3 scaling, as llama.cpp), `.attention.sliding_window` (mistral, or qwen2 with a window on every
 * layer), `tokenizer.ggml.bos_token_id` / `eos_token_id` (the first). No tokenizer vocabulary is written. Tied
 * checkpoints get no `output.weight`. The whole file is built in memory (meant for small models, tests and tools).
 * @param input - a model folder (config.json + safetensors), or `{ config, weights }`
 * @param options - {@link HfToGgufOptions}
 * @returns the GGUF file
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` for a missing tensor or a wrong shape (naming it); `ERR_UNSUPPORTED`
 *   for a quantized checkpoint (quantization_config) or a weight dtype other than F32 / F16 / BF16; those of
 *   loadLlamaConfig / SafetensorsModel.open for a folder
 * @throws {TypeError} | {RangeError} bad arguments; a NaN / infinite weight when quantizing
 * @example
 * writeFileSync('tiny-q8_0.gguf', hfToGguf('models/tiny-py', { outtype: 'Q8_0' }));
 */
export function hfToGguf(input: string | HfToGgufSource, options: HfToGgufOptions = {}): Uint8Array {
  const fn = 'hfToGguf';
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw typeError(expected(fn, 'an options object', 'options', options));
  const outtype = options.outtype ?? 'keep';
  if (outtype !== 'keep' && !(GGUF_TENSOR_TYPES as readonly string[]).includes(outtype))
    throw rangeError(expected(fn, `'keep' or a tensor type (${GGUF_TENSOR_TYPES.join(', ')})`, 'options.outtype', outtype));
  const al = options.alignment;
  if (al !== undefined && (typeof al !== 'number' || !isPowerOfTwo(al) || al > 0x80000000))
    throw (typeof al === 'number' ? rangeError : typeError)(expected(fn, 'a power of two of at most 2^31', 'options.alignment', al));
  if (typeof input === 'string') {
    const config = loadLlamaConfig(input);
    const model = SafetensorsModel.open(input);
    try {
      return convert(fn, input, config, model, outtype, options);
    } finally {
      model.close();
    }
  }
  if (input === null || typeof input !== 'object') throw typeError(expected(fn, 'a folder path or { config, weights }', 'input', input));
  const { config, weights } = input;
  if (config === null || typeof config !== 'object') throw typeError(expected(fn, 'a LlamaConfig or a parsed config.json', 'input.config', config));
  if (weights === null || typeof weights !== 'object' || typeof weights.read !== 'function' || typeof weights.info !== 'function' || typeof weights.has !== 'function')
    throw typeError(expected(fn, 'a weight source { has, info, read }', 'input.weights', weights));
  const cfg = typeof (config as LlamaConfig).modelType === 'string' ? (config as LlamaConfig) : parseLlamaConfig(config, `${fn} input.config`);
  return convert(fn, fn, cfg, weights, outtype, options);
}

function convert(fn: string, source: string, c: LlamaConfig, weights: WeightSource, outtype: 'keep' | GgufTensorType, options: HfToGgufOptions): Uint8Array {
  if (c.quantization !== null)
    throw unsupported(source, 'a float checkpoint (no quantization_config)', 'quantization_config', `${c.quantization.quant_method} (convert the float checkpoint)`);
  const arch = c.modelType === 'qwen2' ? 'qwen2' : 'llama';
  const permute = arch === 'llama';
  const E = c.hiddenSize, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, F = c.intermediateSize, V = c.vocabSize;

  const wanted: Array<[hf: string, shape: number[], optional: boolean]> = [['model.embed_tokens.weight', [V, E], false]];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const lin = (n: string, N: number, K: number) => {
      wanted.push([`${p}${n}.weight`, [N, K], false], [`${p}${n}.bias`, [N], true]);
    };
    wanted.push([`${p}input_layernorm.weight`, [E], false]);
    lin('self_attn.q_proj', H * D, E);
    lin('self_attn.k_proj', Hkv * D, E);
    lin('self_attn.v_proj', Hkv * D, E);
    lin('self_attn.o_proj', E, H * D);
    wanted.push([`${p}post_attention_layernorm.weight`, [E], false]);
    lin('mlp.gate_proj', F, E);
    lin('mlp.up_proj', F, E);
    lin('mlp.down_proj', E, F);
  }
  wanted.push(['model.norm.weight', [E], false]);
  if (!c.tieWordEmbeddings) wanted.push(['lm_head.weight', [V, E], false]);

  const tensors: GgufTensorData[] = [];
  let firstType: string | null = null;
  for (const [hf, shape, optional] of wanted) {
    if (!weights.has(hf)) {
      if (optional) continue;
      throw formatError(source, 'a tensor of this name in the checkpoint', 'the weights', `no tensor ${q(hf)}`, true);
    }
    const info = weights.info(hf);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
      throw formatError(source, `shape [${shape.join(', ')}] (from the config)`, `tensor ${q(hf)}`, `[${info.shape.join(', ')}]`, true);
    const dt = info.dtype;
    if (dt !== 'F32' && dt !== 'F16' && dt !== 'BF16')
      throw unsupported(source, 'a weight dtype of F32, F16 or BF16', `tensor ${q(hf)}`, JSON.stringify(dt));
    let bytes = weights.read(hf);
    const g = hfToGgufTensorName(hf)!;
    const isQ = /\.self_attn\.q_proj\./.test(hf);
    const isK = /\.self_attn\.k_proj\./.test(hf);
    if (permute && (isQ || isK)) bytes = llamaQkPermute(bytes, shape[0]!, isQ ? H : Hkv);
    const twoD = shape.length === 2;
    let type: GgufTensorType;
    // 1-D tensors (norms, biases) are always F32, as llama.cpp's converter writes them: its CPU backend cannot add or
    // multiply an f32 activation by a bf16 vector.
    if (outtype === 'F32' || !twoD) type = 'F32';
    else if (outtype === 'keep') type = dt;
    else if (outtype === 'Q8_0' || outtype === 'Q4_0') type = shape[1]! % 32 === 0 ? outtype : 'F16';
    else type = outtype;
    if (twoD && firstType === null) firstType = type;
    let data: Uint8Array;
    if (type === dt) data = bytes;
    else {
      const x = toF32(dt, bytes);
      if (type === 'F32') data = f32Bytes(x);
      else if (type === 'F16') data = halfBytes(x, f32ToF16);
      else if (type === 'BF16') data = halfBytes(x, f32ToBf16);
      else data = ggufQuantize(type, x, shape[0]!, shape[1]!);
    }
    tensors.push({ name: g, type, shape, data });
  }
  if (c.ropeScaling?.type === 'llama3') {
    const fac = llama3RopeFactors(c);
    tensors.unshift({ name: 'rope_freqs.weight', type: 'F32', shape: [fac.length], data: f32Bytes(fac) });
  }

  const meta = new Map<string, GgufMetadataInput>();
  const u32 = (v: number): GgufTypedValue => ({ type: 'u32', value: v });
  const f32 = (v: number): GgufTypedValue => ({ type: 'f32', value: v });
  const a = arch;
  meta.set('general.architecture', arch);
  meta.set('general.alignment', u32(options.alignment ?? GGUF_DEFAULT_ALIGNMENT));
  meta.set('general.file_type', u32(LLAMA_FILE_TYPE[outtype === 'keep' ? (firstType ?? 'F32') : outtype]!));
  meta.set('general.quantization_version', u32(2));
  meta.set(`${a}.context_length`, u32(c.maxPositionEmbeddings));
  meta.set(`${a}.embedding_length`, u32(E));
  meta.set(`${a}.feed_forward_length`, u32(F));
  meta.set(`${a}.block_count`, u32(c.numLayers));
  meta.set(`${a}.vocab_size`, u32(V));
  meta.set(`${a}.attention.head_count`, u32(H));
  meta.set(`${a}.attention.head_count_kv`, u32(Hkv));
  meta.set(`${a}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps));
  if (D * H !== E || E % H !== 0) {
    meta.set(`${a}.attention.key_length`, u32(D));
    meta.set(`${a}.attention.value_length`, u32(D));
  }
  meta.set(`${a}.rope.freq_base`, f32(c.ropeTheta));
  meta.set(`${a}.rope.dimension_count`, u32(D));
  if (c.ropeScaling?.type === 'linear') {
    meta.set(`${a}.rope.scaling.type`, 'linear');
    meta.set(`${a}.rope.scaling.factor`, f32(c.ropeScaling.factor));
  }
  if (c.slidingWindow !== null) meta.set(`${a}.attention.sliding_window`, u32(c.slidingWindow));
  if (c.bosTokenId !== null) meta.set('tokenizer.ggml.bos_token_id', u32(c.bosTokenId));
  if (c.eosTokenIds.length > 0) meta.set('tokenizer.ggml.eos_token_id', u32(c.eosTokenIds[0]!));
  if (options.metadata !== undefined) {
    if (options.metadata === null || typeof options.metadata !== 'object')
      throw typeError(expected(fn, 'an object of metadata values', 'options.metadata', options.metadata));
    for (const [k, v] of Object.entries(options.metadata)) {
      if (meta.has(k)) throw rangeError(expected(fn, 'a key the converter does not write', 'options.metadata', JSON.stringify(k), true));
      meta.set(k, v);
    }
  }
  return encodeGguf({ metadata: meta, tensors });
}
