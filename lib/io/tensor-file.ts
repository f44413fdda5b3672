/**
 * What the tensor-file readers ({@link SafetensorsFile}, {@link GgufFile}) share: opening a file safely
 * ({@link useFile}, {@link openTensorFile}: non-blocking, so a FIFO never waits for a writer; fstat; a regular-file
 * check; the descriptor closed on any error), the base class {@link TensorFile} (the descriptor, the validated
 * tensors, the `ERR_DISPOSED` guard, lookup with typed errors, and bounded synchronous reads into fresh buffers with
 * truncation detection), the last check of both header validators ({@link checkNoOverlap}: no two tensors share a
 * byte), and the small helpers of their messages ({@link formatError}, {@link unsupported}, {@link q}).
 *
 * Each format's module parses and validates its own header; the readers here only read bytes at offsets that header
 * has already checked. Errors name the file in the house form `<file>: expected <what> for <field>, got <actual>`.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { LlmKernelsError, rangeError, typeError } from '../errors.js';
import { expected } from '../validate.js';

import type { GgufFile } from './gguf.js';
import type { SafetensorsFile } from './safetensors.js';

/** Read-only, non-blocking: opening a FIFO must not wait for a writer (fstat then refuses it). */
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/**
 * An `ERR_MODEL_FORMAT` error in the house form `<source>: expected <what> for <field>, got <got>`.
 * @param source - names the file (a path or a file name)
 * @param gotIsText - whether `got` is already text for the message (else it is described, strings quoted)
 * @example
 * throw formatError(path, 'a regular file', 'the path', 'a directory', true);
 */
export function formatError(source: string, what: string, field: string, got: unknown, gotIsText = false): LlmKernelsError {
  return new LlmKernelsError('ERR_MODEL_FORMAT', expected(source, what, field, got, gotIsText));
}

/**
 * An `ERR_UNSUPPORTED` error (a valid file this library does not handle) in the house form, `got` taken as text.
 * @example
 * throw unsupported(path, 'a GGUF version of 2 or 3', 'the version', '1');
 */
export function unsupported(source: string, what: string, field: string, got: string): LlmKernelsError {
  return new LlmKernelsError('ERR_UNSUPPORTED', expected(source, what, field, got, true));
}

/**
 * A name for messages: quoted, and cut short if long (names come from the file and may be huge).
 * @example
 * q('model.norm.weight'); // '"model.norm.weight"'
 */
export function q(name: string): string {
  return JSON.stringify(name.length > 80 ? name.slice(0, 80) + '…' : name);
}

/**
 * A file-system error for a message: its errno code (`ENOENT`) when it has one, else its message.
 * @example
 * errnoText(e); // 'EACCES'
 */
function errnoText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ?? e.message;
  return String(e);
}

/**
 * Reads exactly `buf.length` bytes at `position`, or fewer at end of file (in chunks: readSync's length is limited
 * to 2^31 - 1).
 * @returns how many bytes were read
 * @throws whatever `fs.readSync` throws
 * @example
 * const got = readFully(fd, buf, offset); // got < buf.length: the file ended first
 */
export function readFully(fd: number, buf: Uint8Array, position: number): number {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, Math.min(CHUNK, buf.length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Refuses two tensors that share a byte: sorted by offset, each non-empty tensor must start at or after the
 * furthest end seen so far (gaps are allowed). The last step of validating a header.
 * @param tensors - the validated tensors (absolute offsets)
 * @param dataStart - the data region's file offset: the message gives ranges relative to it
 * @param what - the expectation in the message, e.g. 'data_offsets that do not overlap another tensor'
 * @param field - the field in the message for a tensor, given its quoted name, e.g. (n) => `tensor ${n}`
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` naming the later tensor and the one it overlaps, with both ranges
 * @example
 * checkNoOverlap(path, h.tensors.values(), h.dataStart, 'data that does not overlap another tensor', (n) => `tensor ${n}`);
 */
export function checkNoOverlap(
  source: string,
  tensors: Iterable<TensorFileInfo>,
  dataStart: number,
  what: string,
  field: (quotedName: string) => string,
): void {
  const sorted = [...tensors].filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let last: TensorFileInfo | null = null;
  for (const t of sorted) {
    if (last !== null && t.offset < last.offset + last.byteLength) {
      const range = (x: TensorFileInfo) => `[${x.offset - dataStart}, ${x.offset - dataStart + x.byteLength})`;
      throw formatError(source, what, field(q(t.name)), `${range(t)}, overlapping tensor ${q(last.name)} ${range(last)}`, true);
    }
    if (last === null || t.offset + t.byteLength > last.offset + last.byteLength) last = t;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Opening

/**
 * Opens a file read-only and non-blocking, fstats it and hands both to `use`. The descriptor is closed when `use`
 * throws, and also when it returns unless `keep` (then it belongs to whatever `use` returned). An error that is not
 * an {@link LlmKernelsError} (opening, fstat, reading) becomes `ERR_MODEL_FORMAT`
 * `<path>: expected <readable> for the path, got <errno code>`, with the error as its cause.
 * @param readable - what the file should be, e.g. 'a readable GGUF file'
 * @param use - checks the stats (a regular file? see {@link openTensorFile}) and reads
 * @param keep - keep the descriptor open after `use` returns
 * @example
 * const bytes = useFile(p, 'a readable index file', (fd, st) => { ... });
 */
export function useFile<T>(path: string, readable: string, use: (fd: number, st: Stats) => T, keep = false): T {
  const fail = (e: unknown) => new LlmKernelsError('ERR_MODEL_FORMAT', expected(path, readable, 'the path', errnoText(e), true), { cause: e });
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw fail(e);
  }
  let close = true;
  try {
    const out = use(fd, fstatSync(fd));
    close = !keep;
    return out;
  } catch (e) {
    if (e instanceof LlmKernelsError) throw e;
    throw fail(e);
  } finally {
    if (close) closeSync(fd);
  }
}

/**
 * The start of a reader's `open`: checks that `path` is a string, opens the file ({@link useFile}, `a readable
 * <format> file`), refuses anything but a regular file (`expected a regular file for the path, got a directory` /
 * `not a regular file`), and hands the descriptor and the file size to `make`, which reads the header and returns
 * the reader that now owns the descriptor (closed if `make` throws).
 * @param cls - the class name, for the TypeError (`<cls>.open`)
 * @param format - the format's name in messages ('safetensors', 'GGUF')
 * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` as above, or what `make` throws
 * @throws {TypeError} path is not a string
 * @example
 * return openTensorFile('GgufFile', 'GGUF', path, (fd, size) => new GgufFile(path, fd, size, readHeader(fd, size)));
 */
export function openTensorFile<T>(cls: string, format: string, path: string, make: (fd: number, fileSize: number) => T): T {
  if (typeof path !== 'string') throw typeError(expected(`${cls}.open`, 'a path string', 'path', path));
  return useFile(
    path,
    `a readable ${format} file`,
    (fd, st) => {
      if (!st.isFile()) throw formatError(path, 'a regular file', 'the path', st.isDirectory() ? 'a directory' : 'not a regular file', true);
      return make(fd, st.size);
    },
    true,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The reader

/** What {@link TensorFile} needs of a tensor's validated description. */
export interface TensorFileInfo {
  /** The tensor's name. */
  readonly name: string;
  /** The absolute file offset of its first byte (checked to lie inside the file). */
  readonly offset: number;
  /** Its size in bytes. */
  readonly byteLength: number;
}

/**
 * A tensor file opened for reading, its header already validated: the base of {@link SafetensorsFile} and
 * {@link GgufFile}, which parse their formats in `open` and add their own header fields. It owns the file
 * descriptor until {@link TensorFile.close} (or `using`); after that every method throws `ERR_DISPOSED`
 * (`<Class>.<method>: expected an open file for this, got a closed file (<path>)`).
 * @typeParam Info - the format's tensor description
 * @example
 * using f = GgufFile.open('model-q8_0.gguf'); // or SafetensorsFile.open('model.safetensors')
 * for (const name of f.names()) console.log(name, f.info(name).byteLength);
 */
export abstract class TensorFile<Info extends TensorFileInfo> {
  /** The path the file was opened with. */
  readonly path: string;
  /** The validated tensors, in the order the file lists them. */
  readonly tensors: ReadonlyMap<string, Info>;
  /** The file size at open. */
  readonly fileSize: number;
  /** The file offset of the data region (safetensors: 8 + N; GGUF: after the tensor infos and the padding). */
  readonly dataStart: number;
  readonly #cls: string;
  #fd: number | null;

  /**
   * @param cls - the class name for messages (`SafetensorsFile.read: ...`)
   * @param fd - the open descriptor; the reader owns it from now on
   */
  protected constructor(cls: string, path: string, fd: number, fileSize: number, dataStart: number, tensors: ReadonlyMap<string, Info>) {
    this.#cls = cls;
    this.path = path;
    this.#fd = fd;
    this.fileSize = fileSize;
    this.dataStart = dataStart;
    this.tensors = tensors;
  }

  #live(fn: string): number {
    const fd = this.#fd;
    if (fd === null) throw new LlmKernelsError('ERR_DISPOSED', `${this.#cls}.${fn}: expected an open file for this, got a closed file (${this.path})`);
    return fd;
  }

  /**
   * Called by {@link TensorFile.read} before it reads a tensor: throws if this reader does not load it (GGUF: a
   * type this library does not read). Accepts every tensor unless overridden.
   */
  protected checkReadable(_info: Info): void {}

  /** True after {@link TensorFile.close}. */
  get closed(): boolean {
    return this.#fd === null;
  }

  /**
   * The tensor names, in the order the file lists them.
   * @throws {LlmKernelsError} `ERR_DISPOSED` after close
   * @example
   * f.names().filter((n) => n.endsWith('.weight'));
   */
  names(): string[] {
    this.#live('names');
    return [...this.tensors.keys()];
  }

  /**
   * Whether the file has a tensor of this name.
   * @throws {LlmKernelsError} `ERR_DISPOSED` after close
   * @example
   * const tied = !f.has('lm_head.weight');
   */
  has(name: string): boolean {
    this.#live('has');
    return this.tensors.has(name);
  }

  /**
   * The validated description of a tensor (for GGUF of any type, supported or not: see its `supported`).
   * @throws {LlmKernelsError} `ERR_MODEL_FORMAT` if there is no such tensor; `ERR_DISPOSED` after close
   * @throws {TypeError} name is not a string
   * @example
   * const { shape, byteLength } = f.info('model.embed_tokens.weight');
   */
  info(name: string): Info {
    this.#live('info');
    if (typeof name !== 'string') throw typeError(expected(`${this.#cls}.info`, 'a tensor name string', 'name', name));
    const t = this.tensors.get(name);
    if (t === undefined) throw formatError(this.path, 'a tensor of this name', 'the name', `no tensor ${q(name)}`, true);
    return t;
  }

  /**
   * Reads one tensor's bytes (raw, little-endian, as the file stores them: elements, or for GGUF Q8_0 / Q4_0 blocks
   * row after row, the row form of `QuantizedTensor.fromBytes`) into a fresh buffer of exactly its byte length (own
   * ArrayBuffer, byteOffset 0, so typed-array views of it are aligned).
   * @throws {LlmKernelsError} `ERR_UNSUPPORTED` for a tensor this reader does not load (GGUF: a type other than F32,
   *   F16, BF16, Q8_0, Q4_0, naming it, e.g. `Q4_K (12)`) or one larger than a Buffer can hold; `ERR_MODEL_FORMAT`
   *   if there is no such tensor or the file is now shorter than its header says (truncated after open) or
   *   unreadable; `ERR_DISPOSED` after close
   * @example
   * const w = bf16ToF32(f.read('model.norm.weight')); // Float32Array(256)
   */
  read(name: string): Uint8Array {
    this.#live('read');
    return this.readRange(name, 0, this.info(name).byteLength);
  }

  /**
   * `length` bytes of a tensor from byte `start` of its data (a tensor-parallel rank's rows), read from the file
   * alone: nothing else of the tensor is read.
   * @throws {RangeError} a range outside the tensor's bytes
   * @throws {LlmKernelsError} ERR_DISPOSED, ERR_MODEL_FORMAT (a read error or a truncated file)
   */
  readRange(name: string, start: number, length: number): Uint8Array {
    const fd = this.#live('read');
    const t = this.info(name);
    this.checkReadable(t);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > t.byteLength)
      throw rangeError(expected(`${this.constructor.name}.readRange`, `a range within the ${t.byteLength} bytes of tensor ${q(name)}`, 'start, length', `${start}, ${length}`, true));
    if (length > bufferConstants.MAX_LENGTH)
      throw unsupported(this.path, `a tensor of at most ${bufferConstants.MAX_LENGTH} bytes (the largest Buffer)`, `tensor ${q(name)}`, `${length} bytes`);
    // Unpooled and not zero-filled (every byte is read or the call throws); returned as a plain Uint8Array, whose
    // slice() copies, unlike a Buffer's.
    const slow = Buffer.allocUnsafeSlow(length);
    const buf = new Uint8Array(slow.buffer, slow.byteOffset, slow.length);
    let got: number;
    try {
      got = readFully(fd, buf, t.offset + start);
    } catch (e) {
      throw new LlmKernelsError('ERR_MODEL_FORMAT', expected(this.path, 'a readable file', `tensor ${q(name)}`, errnoText(e), true), { cause: e });
    }
    if (got !== length)
      throw formatError(this.path, `${length} bytes at file offset ${t.offset + start}`, `tensor ${q(name)}`, `${got} (the file is truncated)`, true);
    return buf;
  }

  /** Closes the file. Idempotent. Methods called afterwards throw `ERR_DISPOSED`. @example f.close(); */
  close(): void {
    const fd = this.#fd;
    if (fd !== null) {
      this.#fd = null;
      closeSync(fd);
    }
  }

  /** Same as {@link TensorFile.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
