// The AVX2 inner loops of the roofline probes (native/tools/roofline.h; the timing and threading are in
// native/tools/roofline.cc). Compiled with -mavx2 -mfma -mf16c and called only when cpu_simd_level() is avx2.
//
//   read: 256-bit loads over one contiguous stream, 4 loads per step OR-ed into 4 accumulators (a load-port
//         bound loop even from L1, so memory is the only limit for a buffer >> LLC).
//   fma:  kFmaChains independent ymm chains acc = acc * m + c. A chain issues one FMA per FMA latency, so peak
//         needs latency x throughput chains in flight: 4 cycles x 2 pipes = 8 on Zen 3/4, Skylake and Ice Lake;
//         12 leaves slack (e.g. 5-cycle FMA on some Intel parts) and still fits 16 ymm registers with m and c.
//   int8: kInt8Chains chains acc += vpmaddwd(vpmaddubsw(a, b_i), 1): the u8 x i8 pairs of the dot-product
//         kernels (32 MACs per vpmaddubsw; the vpmaddwd by ones only widens and sums pairs, not counted).
//         The chains through acc are only vpaddd (1 cycle), so the two multiplies per step decide the rate.
//         Tried on Zen 4, one thread: 4 and 6 chains 115 GMAC/s (= 32 MACs/cycle at ~3.6 GHz), 8 chains 79 and
//         10 chains 100 (the b operands no longer fit in registers and spill); vpmaddubsw alone reaches ~190, so
//         the vpmaddwd, not the u8 x i8 multiply, is what a kernel pays for the int32 accumulation.
//
// How to run: `lk_bench` prints the probe first (or `lk_bench --filter none` for the probe alone).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace lk {

// The values the loops compute are meaningless; they are returned so that the compiler cannot drop the loops.

uint64_t roofline_read_avx2(const void* data, size_t bytes) {
  const __m256i* p = static_cast<const __m256i*>(data);
  const size_t n = bytes / sizeof(__m256i);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 = _mm256_or_si256(a0, _mm256_load_si256(p + i + 0));
    a1 = _mm256_or_si256(a1, _mm256_load_si256(p + i + 1));
    a2 = _mm256_or_si256(a2, _mm256_load_si256(p + i + 2));
    a3 = _mm256_or_si256(a3, _mm256_load_si256(p + i + 3));
  }
  for (; i < n; ++i) a0 = _mm256_or_si256(a0, _mm256_load_si256(p + i));
  const __m256i a = _mm256_or_si256(_mm256_or_si256(a0, a1), _mm256_or_si256(a2, a3));
  const __m128i h = _mm_or_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(h)) | static_cast<uint64_t>(_mm_extract_epi64(h, 1));
}

constexpr int kFmaChains = 12;

// Runs `iters` steps of kFmaChains FMAs of 8 lanes; returns the flops done (2 per lane per FMA).
double roofline_fma_avx2(int64_t iters, float* sink) {
  // acc -> acc * m + c has the fixed point c / (1 - m) = 1: the values stay normal (no denormal slow path) and
  // finite however long it runs.
  const __m256 m = _mm256_set1_ps(0.999999f);
  const __m256 c = _mm256_set1_ps(0.000001f);
  __m256 acc[kFmaChains];
  for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm256_set1_ps(1.0f + 0.01f * static_cast<float>(j));
  for (int64_t it = 0; it < iters; ++it) {
    // Written out rather than looped over acc[] so that every chain surely lives in its own register.
    acc[0] = _mm256_fmadd_ps(acc[0], m, c);
    acc[1] = _mm256_fmadd_ps(acc[1], m, c);
    acc[2] = _mm256_fmadd_ps(acc[2], m, c);
    acc[3] = _mm256_fmadd_ps(acc[3], m, c);
    acc[4] = _mm256_fmadd_ps(acc[4], m, c);
    acc[5] = _mm256_fmadd_ps(acc[5], m, c);
    acc[6] = _mm256_fmadd_ps(acc[6], m, c);
    acc[7] = _mm256_fmadd_ps(acc[7], m, c);
    acc[8] = _mm256_fmadd_ps(acc[8], m, c);
    acc[9] = _mm256_fmadd_ps(acc[9], m, c);
    acc[10] = _mm256_fmadd_ps(acc[10], m, c);
    acc[11] = _mm256_fmadd_ps(acc[11], m, c);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kFmaChains; ++j) s = _mm256_add_ps(s, acc[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  *sink = out[0] + out[7];
  return static_cast<double>(iters) * kFmaChains * 8 * 2;
}

constexpr int kInt8Chains = 6;

// Runs `iters` steps of kInt8Chains (vpmaddubsw + vpmaddwd + vpaddd); returns the ops done (2 per u8 x i8 MAC,
// 32 MACs per vpmaddubsw).
double roofline_int8_avx2(int64_t iters, int32_t* sink) {
  __m256i a = _mm256_set1_epi8(3);  // the u8 operand (activations in the q8 kernels)
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i b0 = _mm256_set1_epi8(-5), b1 = _mm256_set1_epi8(7), b2 = _mm256_set1_epi8(-9);
  const __m256i b3 = _mm256_set1_epi8(11), b4 = _mm256_set1_epi8(-13), b5 = _mm256_set1_epi8(17);
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  for (int64_t it = 0; it < iters; ++it) {
    // The products of a loop-invariant a would be hoisted out of the loop; an empty asm that "changes" a each step
    // forbids that without adding an instruction. (6 chains: 6 acc + 6 b + a + ones = 14 of 16 ymm, no spills.)
    __asm__ volatile("" : "+x"(a));
    c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b0), ones));
    c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b1), ones));
    c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b2), ones));
    c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b3), ones));
    c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b4), ones));
    c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b5), ones));
  }
  __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                               _mm256_add_epi32(c4, c5));
  *sink = _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
  return static_cast<double>(iters) * kInt8Chains * 32 * 2;
}

}  // namespace lk
