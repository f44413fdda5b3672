// The entry points of simd/matmul_avx2.cc (compiled with -mavx2 -mfma -mf16c), called by matmul.cc only when
// cpu_simd_level() says AVX2. Plain functions on raw pointers: see "Division of labour" in matmul_avx2.cc.
#pragma once
#include <cstdint>

#include "../../common/dtype.h"

namespace lk {

void matmul_avx2_pack(const void* src, DType t, int64_t ld, int64_t rows, int64_t kc, int32_t R, float* dst);
void matmul_avx2_macro(const float* ap, const float* bp, int64_t mc, int64_t nc, int64_t kc, float* c, int64_t ldc,
                       bool accumulate);
void matmul_avx2_gemv_pack_x(const void* x, DType t, int64_t M, int64_t K, float* xp);
void matmul_avx2_from_f32(const float* src, int64_t n, void* dst, DType t);
void matmul_avx2_gemv(const float* x, int64_t M, const void* w, DType t, int64_t K, int64_t n0, int64_t n1, void* y,
                      int64_t N);

}  // namespace lk
