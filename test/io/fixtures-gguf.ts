// Writers of valid and invalid GGUF files for the io tests. The raw writer is independent of the code under test: it
// lays out every field itself (magic, version, counts, key/value entries, tensor infos, padding, data), so a bad file
// is exactly the bytes a case describes.

/** Metadata value type ids. */
export const VT = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
/** ggml type ids used by the fixtures. */
export const GT = { F32: 0, F16: 1, Q4_0: 2, Q4_2: 4, Q8_0: 8, Q4_K: 12, F64: 28, BF16: 30 } as const;

export function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);

export const u8 = (v: number) => Uint8Array.of(v & 255);
export function u16(v: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, v & 0xffff, true);
  return b;
}
export function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}
export function u64(v: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return b;
}
export function f32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return b;
}
export function f64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, true);
  return b;
}
/** A GGUF string: u64 length (the real one unless `declared`) + bytes. */
export function str(s: string | Uint8Array, declared?: number | bigint): Uint8Array {
  const b = typeof s === 'string' ? enc(s) : s;
  return cat(u64(declared ?? b.length), b);
}
/** One metadata entry: key, u32 value type, the encoded value. */
export function kv(key: string | Uint8Array, type: number, value: Uint8Array): Uint8Array {
  return cat(str(key), u32(type), value);
}
/** An array value (after its type 9): element type, count (the real one unless given), the encoded elements. */
export function arr(elemType: number, elems: Uint8Array[], count?: number | bigint): Uint8Array {
  return cat(u32(elemType), u64(count ?? elems.length), ...elems);
}
/** A tensor info: name, n_dims (ne.length unless given), ne, ggml type, offset. */
export function tinfo(name: string | Uint8Array, ne: Array<number | bigint>, type: number, offset: number | bigint, nDims?: number): Uint8Array {
  return cat(str(name), u32(nDims ?? ne.length), ...ne.map((d) => u64(d)), u32(type), u64(offset));
}

export interface RawSpec {
  magic?: Uint8Array;
  version?: number;
  tensorCount?: number | bigint;
  kvCount?: number | bigint;
  kvs?: Uint8Array[];
  tensors?: Uint8Array[];
  /** Padding to this alignment before the data (default 32; only when there are tensors). */
  alignment?: number;
  /** Bytes, or a count of bytes 0, 1, 2, ... mod 251. */
  data?: Uint8Array | number;
}

/** A file from raw parts. */
export function rawGguf(spec: RawSpec): Uint8Array {
  const kvs = spec.kvs ?? [];
  const tensors = spec.tensors ?? [];
  let head = cat(
    spec.magic ?? enc('GGUF'),
    u32(spec.version ?? 3),
    u64(spec.tensorCount ?? tensors.length),
    u64(spec.kvCount ?? kvs.length),
    ...kvs,
    ...tensors,
  );
  const al = spec.alignment ?? 32;
  if (tensors.length > 0 && head.length % al !== 0) head = cat(head, new Uint8Array(al - (head.length % al)));
  const d = spec.data ?? 0;
  return cat(head, typeof d === 'number' ? Uint8Array.from({ length: d }, (_, i) => i % 251) : d);
}

/** The metadata entries of the valid fixture: one of every value type, arrays (typed, strings, nested). */
export function validKvs(): Uint8Array[] {
  return [
    kv('general.architecture', VT.string, str('llama')),
    kv('general.alignment', VT.u32, u32(32)),
    kv('t.u8', VT.u8, u8(200)),
    kv('t.i8', VT.i8, u8(-5)),
    kv('t.u16', VT.u16, u16(60000)),
    kv('t.i16', VT.i16, u16(-300)),
    kv('t.u32', VT.u32, u32(4_000_000_000)),
    kv('t.i32', VT.i32, u32(-2_000_000_000)),
    kv('t.f32', VT.f32, f32(1.5)),
    kv('t.bool', VT.bool, u8(1)),
    kv('t.string', VT.string, str('héllo ✓')),
    kv('t.u64', VT.u64, u64(2n ** 60n)),
    kv('t.u64small', VT.u64, u64(7)),
    kv('t.i64', VT.i64, u64(-(2n ** 60n))),
    kv('t.i64small', VT.i64, u64(-7)),
    kv('t.f64', VT.f64, f64(Math.PI)),
    kv('t.strs', VT.array, arr(VT.string, [str('a'), str('ü'), str('')])),
    kv('t.f32s', VT.array, arr(VT.f32, [f32(0.5), f32(-2)])),
    kv('t.i32s', VT.array, arr(VT.i32, [u32(-1), u32(2)])),
    kv('t.bools', VT.array, arr(VT.bool, [u8(0), u8(1)])),
    kv('t.u64s', VT.array, arr(VT.u64, [u64(1), u64(2n ** 64n - 1n)])),
    kv('t.nested', VT.array, arr(VT.array, [arr(VT.i32, [u32(1), u32(2)]), arr(VT.string, [str('x')])])),
    kv('t.empty', VT.array, arr(VT.u8, [])),
  ];
}

/** The tensor infos of the valid fixture: F32 [2, 4] at 0 (32 bytes), F16 [8] at 32 (16), Q8_0 [2, 32] at 64 (68
 * bytes), Q4_K [256] at 160 (144 bytes): a 304-byte data section. */
export function validTensors(): Uint8Array[] {
  return [tinfo('a', [4, 2], GT.F32, 0), tinfo('b', [8], GT.F16, 32), tinfo('q', [32, 2], GT.Q8_0, 64), tinfo('k', [256], GT.Q4_K, 160)];
}

export const VALID_DATA_BYTES = 304;

/** The valid fixture file. */
export function validFile(): Uint8Array {
  return rawGguf({ kvs: validKvs(), tensors: validTensors(), data: VALID_DATA_BYTES });
}

/** The valid fixture with one metadata entry replaced (by index) or added. */
export function withKv(entry: Uint8Array, replace?: number): Uint8Array {
  const kvs = validKvs();
  if (replace === undefined) kvs.push(entry);
  else kvs[replace] = entry;
  return rawGguf({ kvs, tensors: validTensors(), data: VALID_DATA_BYTES });
}

/** The valid fixture with one tensor info replaced (by index) or added. */
export function withTensor(entry: Uint8Array, replace?: number, data = VALID_DATA_BYTES): Uint8Array {
  const tensors = validTensors();
  if (replace === undefined) tensors.push(entry);
  else tensors[replace] = entry;
  return rawGguf({ kvs: validKvs(), tensors, data });
}

/** Only the given metadata entries, no tensors. */
export function onlyKvs(...kvs: Uint8Array[]): Uint8Array {
  return rawGguf({ kvs });
}
