// Writers of valid and invalid safetensors files for the io tests. The raw writer is independent of the code under
// test (it lays out the length, header and data bytes itself), so a bad file is exactly the bytes a case describes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A file from raw parts: the 8-byte little-endian header length (the real one unless `declared` is given), the
 * header (a string, encoded as UTF-8, an object, JSON-encoded, or raw bytes), then `data` (bytes, or a count of
 * bytes 0, 1, 2, ... mod 256). */
export function rawSafetensors(header: string | object | Uint8Array, data: Uint8Array | number = 0, declared?: bigint | number): Uint8Array {
  const h =
    header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? Uint8Array.from({ length: data }, (_, i) => i & 255) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declared ?? h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** One entry of a header. */
export function entry(dtype: string, shape: number[], begin: number, end: number): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  return { dtype, shape, data_offsets: [begin, end] };
}

/** A small valid header (F16 [3, 20] = 120 bytes at 0, BF16 [4] at 120, F32 [2, 2] at 128, an empty I64 [0, 5] and a
 * U8 scalar at 144) with metadata; its data region is 145 bytes. */
export function validHeader(): Record<string, unknown> {
  return {
    __metadata__: { format: 'pt', note: 'fixture' },
    'x.weight': entry('F16', [3, 20], 0, 120),
    'y.bias': entry('BF16', [4], 120, 128),
    z: entry('F32', [2, 2], 128, 144),
    empty: entry('I64', [0, 5], 144, 144),
    scalar: entry('U8', [], 144, 145),
  };
}

export const VALID_DATA_BYTES = 145;

/** The valid file of {@link validHeader}. */
export function validFile(): Uint8Array {
  return rawSafetensors(validHeader(), VALID_DATA_BYTES);
}

/** A fresh temporary folder under os.tmpdir(); `cleanup()` removes it. */
export function tempDir(prefix = 'lk-io-'): { dir: string; write(name: string, bytes: Uint8Array | string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name: string, bytes: Uint8Array | string): string {
      const p = join(dir, name);
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, bytes);
      return p;
    },
    cleanup(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A shard holding the given tensors (F32 [n] each, contiguous), as raw bytes. */
export function f32Shard(tensors: Array<[name: string, n: number]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, n] of tensors) {
    header[name] = entry('F32', [n], at, at + 4 * n);
    at += 4 * n;
  }
  return rawSafetensors(header, at);
}
