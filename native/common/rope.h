// The f32 rotation of rope's kernels, in one place so that rope and the fused rope_cache_write (which must write
// exactly the K that rope followed by cache_write would) share it. The math (cpu/ref/rope_ref.cc): per pair i < R/2,
// angle = f32(f32(pos) * inv_freq[i]), c = f32(cos(angle)), s = f32(sin(angle)) (libm in double), then
// (a, b) -> (a c - b s, b c + a s) in f32. Compiled without FMA contraction in a baseline translation unit, so every
// caller gets the same bits.
#pragma once
#include <cstdint>

namespace lk {

// c[i], s[i] for i < half at position pos.
void rope_angles(int32_t pos, const float* inv_freq, int64_t half, float* c, float* s);

// One head row of D floats in place: pairs (i, i + half) (rotate-half) or (2i, 2i + 1) (interleaved); dims from 2 half
// on unchanged.
void rope_rotate_row(float* x, int64_t half, const float* c, const float* s, bool interleaved);

}  // namespace lk
