// The paged KV cache of one attention layer: layout, token quantization, and the checks every KV op shares.
//
// Memory: `kv` [numBlocks, Hkv, 2, P, D] of dtype f32, f16, bf16, i8 or f8e4m3, and for i8/f8e4m3 `kv_scale`
// [numBlocks, Hkv, 2, P] f32 (an empty [0] tensor for the float dtypes). Index 0 of the "2" is the K tile, 1 the V
// tile. A token's slot is block * P + offset; sequences map their positions to blocks through a block table.
//
// Why this order:
// - A (block, KV head) pair owns one contiguous region: its K tile [P, D] followed by its V tile [P, D]. Decode
//   for one KV head walks exactly these regions, so the CPU reads long sequential runs (2 * P * D elements, 8 KiB
//   for P = 16, D = 128, f16) that the hardware prefetcher follows, and a CUDA thread block reading one tile makes
//   fully coalesced loads (a token's D elements are contiguous; consecutive tokens are consecutive rows).
// - D innermost: a token's row is what a dot product with the query and the P.V update both consume.
// - A whole block (every head, K and V) is contiguous, so copy-on-write of a block is one memcpy of kv and one of
//   kv_scale.
// - Scales live beside the data in their own tensor instead of inside the rows, so that rows stay 16-byte aligned
//   for vector loads on both backends (a D + 4 byte row would not be).
//
// Quantized KV (done in cache_write, undone inside attention):
//   i8:     s = amax(row) / 127, q = round_half_even(x * (127 / amax)), clamped to +-127 (quantize_act_block)
//   f8e4m3: s = amax(row) / 448, q = f8e4m3(x * (448 / amax)), round to nearest even, saturating
//   a row is one token of one KV head (D values of K, or of V); value = s * q. An all-zero row has s = 0 and
//   q = 0; a row holding NaN or Inf gets s = NaN (attention over it then gives NaN, as it would in f32).
#pragma once
#include <cmath>
#include <cstdint>

#include "dtype.h"
#include "quant.h"
#include "status.h"
#include "tensor.h"

namespace lk {

inline bool kv_dtype_ok(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::i8 || t == DType::f8e4m3;
}
inline bool kv_dtype_quantized(DType t) { return t == DType::i8 || t == DType::f8e4m3; }

// The geometry of a cache, read from its kv tensor [numBlocks, Hkv, 2, P, D].
struct KvGeom {
  int64_t nblocks = 0, hkv = 0, p = 0, d = 0;
  DType dtype = DType::f32;
  explicit KvGeom(const TensorView& kv)
      : nblocks(kv.shape[0]), hkv(kv.shape[1]), p(kv.shape[3]), d(kv.shape[4]), dtype(kv.dtype) {}
  bool quantized() const { return kv_dtype_quantized(dtype); }
  int64_t slots() const { return nblocks * p; }
  // Element offset of the K (which = 0) or V (which = 1) tile of (block, head) in kv, and of its scales.
  int64_t tile(int64_t block, int64_t head, int which) const { return ((block * hkv + head) * 2 + which) * p * d; }
  int64_t scale_tile(int64_t block, int64_t head, int which) const { return ((block * hkv + head) * 2 + which) * p; }
  int64_t block_elems() const { return hkv * 2 * p * d; }
};

// Quantizes one row of D values for an i8 or f8e4m3 cache; returns the scale s (value = s * q).
inline float kv_quantize_row(const float* x, int64_t d, DType t, void* q) {
  if (t == DType::i8) {
    int32_t sum;
    return quantize_act_block(x, d, static_cast<int8_t*>(q), &sum);
  }
  float amax = 0.0f;
  bool finite = true;
  for (int64_t j = 0; j < d; ++j) {
    const float a = std::fabs(x[j]);
    finite = finite && a <= 3.40282347e+38f;
    amax = a > amax ? a : amax;
  }
  uint8_t* o = static_cast<uint8_t*>(q);
  if (!finite || amax == 0.0f) {
    for (int64_t j = 0; j < d; ++j) o[j] = 0;
    return finite ? 0.0f : std::nanf("");
  }
  const float inv = 448.0f / amax;
  for (int64_t j = 0; j < d; ++j) o[j] = f32_to_f8e4m3(x[j] * inv);
  return amax / 448.0f;
}

// The query of an i8 cache's integer q . k (paged_attention_ref.cc): a row of D values (already times the softmax
// scale) quantized like matmul_q's activations, s = amax / 127, round half to even (quantize_act_block). Returns s;
// NaN or Inf in the row gives s = NaN.
inline float kv_quantize_query(const float* x, int64_t d, int8_t* q) {
  int32_t sum;
  return quantize_act_block(x, d, q, &sum);
}

// exp(x) for x <= 0 as the CPU kernels compute it (simd/paged_attention_kernel.inc's exp8, lane by lane): 2^n e^r,
// n = round(x log2 e) (ties to even), r = x - n ln 2 in two fused steps, Cephes' degree-6 polynomial with fused
// multiply-adds; x clamped at -87.3. Relative error ~2e-7. Part of the i8 caches' spec (below), so every backend
// and the reference compute it bit for bit alike; the CUDA kernels call this same function (host and device).
LK_HOST_DEVICE inline float kv_exp(float x) {
  x = x > -87.3f ? x : -87.3f;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = std::fma(-n, 0.693359375f, x);
  r = std::fma(-n, -2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r + 1.0f);
  const float scale = f32_from_bits(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
#if defined(__CUDA_ARCH__)
  return __fmul_rn(p, scale);  // nvcc would otherwise fuse this product into the caller's next add
#else
  return p * scale;
#endif
}

// i8 caches take p . v in integers too. For one query row and one aligned chunk of kKvChunk positions (positions
// t with t / kKvChunk = k, inside the row's range), with s_t the scores in f32 (kv_score_i8) and m_k their max:
//   e_t = kv_exp(s_t - m_k),  w_t = e_t * sv_t (sv: V's row scale),  c_k = max_t w_t / 255,
//   u_t = round_half_even(w_t * (255 / max_t w_t)) in 0..255  (kv_quantize_weights)
//   y = sum_k e^(m_k - M) c_k sum_t u_t v8_t  /  sum_k e^(m_k - M) sum_t e_t,  M = max_k m_k.
// The weights' rounding (1/510 of the chunk's largest weight) adds ~0.1% RMS to y. Chunks are aligned to absolute
// positions, so the rounding does not depend on how a context is split into partitions or threads (the f32 sums'
// order does, as for every dtype).
constexpr int kKvChunk = 16;

// u from w[0..n) (w >= 0); returns c = max w / 255 (0 when every w is 0: u = 0; NaN when a w is NaN or Inf).
inline float kv_quantize_weights(const float* w, int n, uint8_t* u) {
  float wmax = 0.0f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    finite = finite && w[i] <= 3.40282347e+38f && w[i] >= 0.0f;  // false for NaN, Inf and negative scales
    wmax = w[i] > wmax ? w[i] : wmax;
  }
  if (!finite || wmax == 0.0f) {
    for (int i = 0; i < n; ++i) u[i] = 0;
    return finite ? 0.0f : std::nanf("");
  }
  const float inv = 255.0f / wmax;
  for (int i = 0; i < n; ++i) {
    const float v = std::nearbyint(w[i] * inv);
    u[i] = static_cast<uint8_t>(v > 255.0f ? 255.0f : v);
  }
  return wmax / 255.0f;
}

// The score of an i8 cache in f32, as every backend computes it: the exact integer dot times the key's scale, times
// the query's scale (kv_quantize_query), soft-capped (cap > 0), plus the ALiBi term slope * (t - pos), fused.
inline float kv_score_i8(int64_t dot, float k_scale, float q_scale, float cap, float slope, int64_t t, int64_t pos) {
  float v = static_cast<float>(dot) * k_scale;
  v *= q_scale;
  if (cap > 0) v = cap * std::tanh(v / cap);
  if (slope != 0.0f) v = std::fma(slope, static_cast<float>(t - pos), v);
  return v;
}

// The value of element j of a cache row (without its scale for the quantized dtypes).
inline float kv_load(const void* row, DType t, int64_t j) {
  switch (t) {
    case DType::i8: return static_cast<float>(static_cast<const int8_t*>(row)[j]);
    case DType::f8e4m3: return f8e4m3_to_f32(static_cast<const uint8_t*>(row)[j]);
    default: return load_f32(row, t, j);
  }
}

// The shape checks of kv and kv_scale, shared by every KV op (validate_op calls it).
Status check_kv(const char* op, const TensorView& kv, const TensorView& kv_scale);

// The run-time data checks the kernels make before touching memory (block tables and lengths are data, not
// shapes, so validate_op cannot see them). Each returns a RangeError naming the sequence and value.
//   block_tables [B, maxBlocks] i32, context_lens [B] i32; query_start [B + 1] i32 or null (decode: one query per
//   sequence). Every position < context_len must map to a block in [0, numBlocks); a sequence's query count must
//   not exceed its context length.
Status check_paged_args(const char* op, const KvGeom& g, const TensorView& block_tables,
                        const TensorView& context_lens, const TensorView* query_start, int64_t num_queries);

// cache_write: every slot_mapping entry is negative (skip) or below numBlocks * P. kv_copy_blocks: every id of pairs
// [n, 2] is in [0, numBlocks).
Status check_cache_write_slots(const KvGeom& g, const TensorView& slot_mapping);
Status check_copy_pairs(const KvGeom& g, const TensorView& pairs);

}  // namespace lk
