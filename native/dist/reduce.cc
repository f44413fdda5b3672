// reduce: see reduce.h. Works in blocks of kBlock elements: widen source 0 into an f32 accumulator, combine each
// further source into it in rank order, round the block to the dtype. The widening and rounding use the CPU
// backend's cast (AVX2 + F16C when the CPU has it, bit-exact with the scalar path), so the sum of two f16
// vectors runs at memory speed instead of at the speed of scalar f16 conversions.
#include "reduce.h"

#include <cstring>

#include "../cpu/cpu.h"
#include "../cpu/elementwise.h"

namespace lk::dist {

namespace {

constexpr size_t kBlock = 1024;  // 4 KiB of f32: the accumulator and one widened source stay in L1

void widen(const void* src, DType dt, size_t i, float* out, size_t n, bool simd) {
  const char* p = static_cast<const char*>(src) + i * dtype_size(dt);
  if (dt == DType::f32) {
    std::memcpy(out, p, n * 4);
    return;
  }
#if defined(LLMK_HAVE_AVX2_TU)
  if (simd) return avx2::cast(p, dt, out, DType::f32, static_cast<int64_t>(n));
#endif
  (void)simd;
  for (size_t k = 0; k < n; ++k) out[k] = load_f32(p, dt, static_cast<int64_t>(k));
}

void narrow(const float* acc, void* dst, DType dt, size_t i, size_t n, bool simd) {
  char* p = static_cast<char*>(dst) + i * dtype_size(dt);
  if (dt == DType::f32) {
    std::memcpy(p, acc, n * 4);
    return;
  }
#if defined(LLMK_HAVE_AVX2_TU)
  if (simd) return avx2::cast(acc, DType::f32, p, dt, static_cast<int64_t>(n));
#endif
  (void)simd;
  for (size_t k = 0; k < n; ++k) store_f32(p, dt, static_cast<int64_t>(k), acc[k]);
}

// Plain loops the compiler vectorizes (SSE2 baseline); IEEE add, no contraction (no FMA in an add).
void combine(float* acc, const float* x, size_t n, ReduceOp op) {
  if (op == ReduceOp::sum) {
    for (size_t k = 0; k < n; ++k) acc[k] += x[k];
  } else {
    for (size_t k = 0; k < n; ++k) acc[k] = (x[k] > acc[k] || x[k] != x[k]) ? x[k] : acc[k];
  }
}

}  // namespace

void reduce(const void* const* src, int n_src, void* dst, size_t count, DType dt, ReduceOp op) {
  if (n_src <= 0 || count == 0) return;
  const bool simd = cpu_simd_level() >= SimdLevel::avx2;
  alignas(64) float acc[kBlock];
  alignas(64) float tmp[kBlock];
  for (size_t i = 0; i < count; i += kBlock) {
    const size_t n = count - i < kBlock ? count - i : kBlock;
    if (dt == DType::f32) {
      // f32 needs no widening: combine straight from the sources.
      const float* s0 = static_cast<const float*>(src[0]) + i;
      std::memcpy(acc, s0, n * 4);
      for (int r = 1; r < n_src; ++r) combine(acc, static_cast<const float*>(src[r]) + i, n, op);
    } else {
      widen(src[0], dt, i, acc, n, simd);
      for (int r = 1; r < n_src; ++r) {
        widen(src[r], dt, i, tmp, n, simd);
        combine(acc, tmp, n, op);
      }
    }
    narrow(acc, dst, dt, i, n, simd);
  }
}

void reduce_ref(const void* const* src, int n_src, void* dst, size_t count, DType dt, ReduceOp op) {
  for (size_t i = 0; i < count; ++i) {
    float a = load_f32(src[0], dt, static_cast<int64_t>(i));
    for (int r = 1; r < n_src; ++r) {
      const float x = load_f32(src[r], dt, static_cast<int64_t>(i));
      if (op == ReduceOp::sum)
        a = a + x;
      else if (x > a || x != x)
        a = x;
    }
    store_f32(dst, dt, static_cast<int64_t>(i), a);
  }
}

}  // namespace lk::dist
