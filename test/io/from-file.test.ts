// Tensor.fromFile / fromFileSegments: file ranges read straight into native memory, with the range checked
// against the file natively (a bad range is ERR_MODEL_FORMAT, never a short read).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../lib/index.js';
import { expectThrows } from '../helpers/check.js';
import { LlmKernelsError } from '../../lib/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lk-fromfile-'));
const file = join(dir, 'data.bin');
const floats = Float32Array.from({ length: 64 }, (_, i) => i * 0.5 - 3);
writeFileSync(file, Buffer.concat([Buffer.from('HEADER!!'), Buffer.from(floats.buffer)]));

describe('Tensor.fromFile', () => {
  it('reads a range into a tensor of the given dtype and shape', () => {
    using t = Tensor.fromFile(file, { dtype: 'f32', shape: [4, 8], offset: 8 + 4 * 16 });
    expect(Array.from(t.dataSync())).toEqual(Array.from(floats.subarray(16, 48)));
    using h = Tensor.fromFile(file, { dtype: 'bf16', shape: [2], offset: 8 });
    expect(h.dtype).toBe('bf16');
  });
  it('stacks segments, from one file or several', () => {
    using t = Tensor.fromFileSegments([{ path: file, offset: 8 + 4 * 60, byteLength: 16 }, { path: file, offset: 8, byteLength: 8 }], 'f32', [6]);
    expect(Array.from(t.dataSync())).toEqual([...floats.subarray(60, 64), ...floats.subarray(0, 2)]);
  });
  it('refuses ranges outside the file, missing files and non-files with ERR_MODEL_FORMAT', () => {
    expectThrows(() => Tensor.fromFile(file, { dtype: 'f32', shape: [65], offset: 8 }), LlmKernelsError, 'ERR_MODEL_FORMAT', /expected 260 bytes at offset 8 inside .* \(264 bytes\)/);
    expectThrows(() => Tensor.fromFile(file, { dtype: 'f32', shape: [1], offset: 1e9 }), LlmKernelsError, 'ERR_MODEL_FORMAT', /offset 1000000000/);
    expectThrows(() => Tensor.fromFile(join(dir, 'missing.bin'), { dtype: 'f32', shape: [1] }), LlmKernelsError, 'ERR_MODEL_FORMAT', /cannot open/);
    expectThrows(() => Tensor.fromFile(dir, { dtype: 'f32', shape: [1] }), LlmKernelsError, 'ERR_MODEL_FORMAT', /regular file/);
  });
  it('checks its arguments', () => {
    expectThrows(() => Tensor.fromFile('', { dtype: 'f32', shape: [1] }), TypeError, undefined, /file path/);
    expectThrows(() => Tensor.fromFile(file, { dtype: 'f32', shape: [1], offset: -1 }), RangeError, undefined, /offset/);
    expectThrows(() => Tensor.fromFile(file, { dtype: 'f64' as 'f32', shape: [1] }), RangeError, undefined, /options\.dtype/);
    expectThrows(() => Tensor.fromFileSegments([{ path: file, offset: 0, byteLength: 3 }], 'f32', [1]), RangeError, undefined, /segments of 4 bytes in all/);
  });
});
