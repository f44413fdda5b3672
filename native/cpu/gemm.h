// The f32 GEMM driver of matmul.cc (packing, blocking, threads, the SIMD micro-kernels) offered to other ops whose
// w is not a dense tensor: the caller supplies how to pack w. matmul_q's dequantize path uses it for M > 4, so a
// quantized weight is decoded once per packed panel and multiplied at the dense kernels' speed.
#pragma once
#include <cstdint>

#include "../common/registry.h"

namespace lk {

struct WPacker {
  // Rows [n0, n0 + rows) and columns [k0, k0 + kc) of w as f32 panels of R rows: element (r, k) of a panel at
  // dst[k * R + r], rows past the end of w zero. n0 is a multiple of R, k0 of k_align.
  void (*pack)(const void* ctx, int64_t n0, int64_t rows, int64_t k0, int64_t kc, int32_t R, float* dst);
  const void* ctx;
  int64_t k_align;  // K slices start at multiples of this (32: whole quantization blocks)
};

// y[M, N] = x[M, K] . w^T with w packed by wp (x, y contiguous; y in x's float dtype).
Status matmul_gemm_packed_w(const TensorView& x, const WPacker& wp, const TensorView& y, int64_t M, int64_t N,
                            int64_t K);
// The panel height R the driver will ask wp.pack for at the current SIMD level (16 with AVX2, 8 scalar).
int32_t matmul_gemm_nr();

}  // namespace lk
