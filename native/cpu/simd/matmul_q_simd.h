// Helpers shared by the SIMD files of matmul_q (simd/matmul_q_avx2.cc, simd/matmul_q_avx512.cc), and included only
// by them. Everything here has internal linkage (an anonymous namespace): each file gets its own copy compiled with
// its own flags, so the linker can never hand the AVX-512 copy to AVX2 code (the SIGILL matmul_avx2.cc explains).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matmul_q_avx2.h"  // QGeom

// Forced: GCC otherwise kept blk_off and q4_scales out of line in the big tile instantiations, a call (and the
// scales through memory) per block of 32 (NOTES step 13).
#define LK_SIMD_INLINE inline __attribute__((always_inline))

namespace lk {
namespace {

LK_SIMD_INLINE int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// GCC reassociates the integer sums of a block into a tree that computes every multiply of the block first and
// spills them to the stack (40% slower at M = 128). An empty asm that "modifies" the accumulator after each add
// pins the written order (and costs no instruction).
#define LK_PIN(v) asm("" : "+x"(v))

// i8_pc sums a whole row in int32; beyond 4096 blocks (K = 131072) |sum| could pass 2^31 (127 * 128 * K), so the
// kernels move the integer sum into the f32 accumulator every kI8FlushBlocks blocks.
constexpr int64_t kI8FlushBlocks = 4096;

// Offsets inside a panel, as QuantLayout computes them (common/quant.h), for block b and group gi.
LK_SIMD_INLINE int64_t blk_off(const QGeom& g, int64_t b) {
  switch (g.t) {
    case DType::q8_0: return b * 272 + 16;
    case DType::q4_0: return b * 144 + 16;
    case DType::i8_pc: return 32 + b * 256;
    default: return (b / g.bpg + 1) * 24 + b * 128;
  }
}
LK_SIMD_INLINE int64_t grp_off(const QGeom& g, int64_t gi) { return gi * 24 + gi * g.bpg * 128; }

// The 4 bytes at p in every 32-bit lane (vpbroadcastd from memory).
LK_SIMD_INLINE __m256i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
LK_SIMD_INLINE __m256 scales_f16(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
LK_SIMD_INLINE __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The scales and zero points of the 8 rows of a panel for block b of a q4 format: q4_0 the block's d (zero 8),
// q4_gG its group's s and z.
LK_SIMD_INLINE void q4_scales(const QGeom& g, const uint8_t* panel, int64_t b, __m256* sw, __m256* zf) {
  if (g.t == DType::q4_0) {
    *sw = scales_f16(panel + b * 144);
    *zf = _mm256_set1_ps(8.0f);
  } else {
    const uint8_t* h = panel + grp_off(g, b / g.bpg);
    *sw = scales_f16(h);
    *zf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(h + 16))));
  }
}

}  // namespace
}  // namespace lk
