// The entry points of simd/matmul_q_avx2.cc (compiled with -mavx2 -mfma -mf16c), called by matmul_q.cc only when
// cpu_simd_level() says AVX2. Plain functions on raw pointers and a plain struct: like matmul_avx2.h, nothing
// inline from shared headers may be instantiated in that file.
#pragma once
#include <cstdint>

#include "../../common/dtype.h"

namespace lk {

// The panel-form geometry of quant.h's QuantLayout, as plain data (the AVX2 file computes offsets itself).
struct QGeom {
  DType t;
  int64_t K, nb, G, ng, bpg, panel_bytes;
};

// Activations of matmul_q's integer path: rows of xf (M x Kp f32, zero past K) -> q (M x Kp int8), d (M x nblk)
// and sx (M x nblk, the sum of each block's q as f32). nblk = Kp / 32, or 1 with one block per row (i8_pc).
// Produces exactly quant.h's quantize_act_block.
void matmul_q_avx2_quantize_acts(const float* xf, int64_t m0, int64_t m1, int64_t Kp, bool per_row, int8_t* q,
                                 float* d, float* sx);
// Integer path: y[m, n] (f32, row stride ldy) for m in [0, M) and the rows n < N of panels [p0, p1).
void matmul_q_avx2_int(const QGeom& g, const uint8_t* w, int64_t p0, int64_t p1, const int8_t* q, const float* d,
                       const float* sx, int64_t M, float* y, int64_t ldy, int64_t N);
// Dequantize path, GEMV (M <= 4): the same with x as f32 rows (M x Kp, zero past K).
void matmul_q_avx2_dq(const QGeom& g, const uint8_t* w, int64_t p0, int64_t p1, const float* xf, int64_t M,
                      float* y, int64_t ldy, int64_t N);

// The dequantize path's w packer for the f32 GEMM driver (cpu/gemm.h): rows [n0, n0 + rows) and columns
// [k0, k0 + kc) (k0 a multiple of 32, k0 + kc <= K) as panels of R rows (R a multiple of 8), element (r, k) at
// dst[k * R + r]; rows past the end zero.
void matmul_q_avx2_pack_w(const QGeom& g, const uint8_t* w, int64_t N, int64_t n0, int64_t rows, int64_t k0,
                          int64_t kc, int32_t R, float* dst);

// Integer path with AVX-512 VNNI (simd/matmul_q_avx512.cc; call only when cpu_simd_level() is avx512): as
// matmul_q_avx2_int, plus qu = the bytes of q + 128 (x as unsigned), read for q8_0 and i8_pc.
void matmul_q_avx512_int(const QGeom& g, const uint8_t* w, int64_t p0, int64_t p1, const int8_t* q,
                         const uint8_t* qu, const float* d, const float* sx, int64_t M, float* y, int64_t ldy,
                         int64_t N);

}  // namespace lk
