// The int8 roofline probe with AVX-512 VNNI (compiled with the AVX-512 flags; used when cpu_simd_level() is
// avx512): kInt8Chains independent chains acc = vpdpbusd(acc, a, b_i) on 256-bit vectors, 32 MACs each, the
// instruction the VNNI matmul_q kernels are built on. Its rate is the compute roof those kernels are judged by.
#include <immintrin.h>

#include <cstdint>

namespace lk {

namespace {
constexpr int kChains = 8;
}

double roofline_int8_avx512(int64_t iters, int32_t* sink) {
  __m256i a = _mm256_set1_epi8(3);
  const __m256i b0 = _mm256_set1_epi8(-5), b1 = _mm256_set1_epi8(7), b2 = _mm256_set1_epi8(-9);
  const __m256i b3 = _mm256_set1_epi8(11);
  __m256i c[kChains];
  for (int i = 0; i < kChains; ++i) c[i] = _mm256_setzero_si256();
  for (int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+x"(a));  // as in roofline_avx2.cc: the products must not be hoisted
    c[0] = _mm256_dpbusd_epi32(c[0], a, b0);
    c[1] = _mm256_dpbusd_epi32(c[1], a, b1);
    c[2] = _mm256_dpbusd_epi32(c[2], a, b2);
    c[3] = _mm256_dpbusd_epi32(c[3], a, b3);
    c[4] = _mm256_dpbusd_epi32(c[4], a, b0);
    c[5] = _mm256_dpbusd_epi32(c[5], a, b1);
    c[6] = _mm256_dpbusd_epi32(c[6], a, b2);
    c[7] = _mm256_dpbusd_epi32(c[7], a, b3);
  }
  __m256i s = c[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_epi32(s, c[i]);
  *sink = _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
  return static_cast<double>(iters) * kChains * 32 * 2;
}

}  // namespace lk
