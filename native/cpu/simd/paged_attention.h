// The per-task kernel of paged attention on the CPU (cpu/paged_attention.cc drives it): plain data and plain
// functions, so that the SIMD translation units instantiate nothing inline from shared headers.
//
// A task is the query rows of one sequence that read the KV heads [kh0, kh1), over the key positions [t0, t1).
// Rows are head-major: the Rh rows of KV head kh0 + k are [k * Rh, (k + 1) * Rh) (for decode the G = H / Hkv query
// heads of that KV head; for prefill those heads times a tile of query tokens, token-major). The kernel walks the
// positions in chunks of kAttnChunk and, within a chunk, the KV heads in order: a block's heads are adjacent in
// memory (common/kv.h), so a decode task that takes every head streams whole blocks. It runs the online softmax
// and updates the state of every row:
//   m[r] (max score so far), l[r] (sum of exp(s - m)), acc[r][:] (sum of exp(s - m) v, unnormalized).
// Row r sees the positions [lo[r], hi[r]]; a chunk position it does not see takes no part in its sums (not even
// as 0 * v, so a non-finite value there cannot leak in).
#pragma once
#include <cstdint>

namespace lk {

constexpr int kAttnChunk = 16;  // positions per chunk: K and V of a chunk in f32 stay in L1 (2 x 8 KiB at D = 128)
constexpr int kAttnStride = 2 * kAttnChunk;  // row stride of the score scratch: 64-byte rows, room for partners past 15

struct AttnTask {
  // Rows: q [R][Dp] f32, already times the softmax scale, zero past D; Dp = D rounded up to 8.
  const float* q;
  const int32_t* lo;
  const int32_t* hi;
  const float* slope;  // [R] ALiBi slopes, or nullptr
  // i8 caches (integer q . k): q holds each row quantized to int8 (as exact f32 integers), q8 the same as bytes
  // [R][Dq8] (zero past D; Dq8 = D rounded up to 64), qsum their sums, qscale the rows' scales (the score is
  // qscale * kscale * dot). nullptr for the other caches.
  const int8_t* q8;
  const int32_t* qsum;
  const float* qscale;
  int32_t Dq8;
  int32_t R, Rh, D, Dp;  // R = (kh1 - kh0) * Rh rows
  float cap;  // logit soft-cap, 0 for none
  // Keys: positions [t0, t1) of the sequence whose block table row is `table`.
  int64_t t0, t1;
  const int32_t* table;
  int64_t P, hkv, kh0, kh1;
  const void* kv;        // [numBlocks, Hkv, 2, P, D]
  const float* kv_scale;  // [numBlocks, Hkv, 2, P], or nullptr for float caches
  int32_t kv_dtype;       // a DType id: f32, f16, bf16, i8, f8e4m3
  // State (read and written): m [R], l [R], acc [R][Dp].
  float *m, *l, *acc;
  // Scratch: at least attn_scratch_floats(R, Dp) floats, 64-byte aligned.
  float* scratch;
};

// Kf and Vf [kAttnChunk][Dp] (the portable kernel's f32 rows), S and P [Rh][kAttnStride], ksc and vsc [kAttnStride].
inline int64_t attn_scratch_floats(int64_t Rh, int64_t Dp) { return 2 * kAttnChunk * Dp + 2 * Rh * kAttnStride + 2 * kAttnStride; }

// AVX2/FMA/F16C (simd/paged_attention_avx2.cc) and the same code compiled for AVX-512VL, which has 32 vector
// registers (simd/paged_attention_avx512.cc). Call only at the matching cpu_simd_level().
void paged_attention_avx2_task(const AttnTask& t);
void paged_attention_avx512_task(const AttnTask& t);

}  // namespace lk
