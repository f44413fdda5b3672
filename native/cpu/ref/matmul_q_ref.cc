// matmul_q: y[m,n] = sum_k x[m,k] * w[n,k] with w quantized (quant.h), by one of two paths (params.i[0]):
//   path 0 (int8 activations): x is quantized per block of 32 by quantize_act_block (per row for i8_pc), and
//     y[m,n] = sum_b dx[m,b] * s(n,b) * sum_{k in b} qx[m,k] * (q(n,k) - z(n,b))      (block formats)
//     y[m,n] = dx[m] * s(n) * sum_k qx[m,k] * q(n,k)                                  (i8_pc)
//     The integer sums are exact (int64 here; int32 in the kernels, which cannot overflow: |qx| <= 127, |q - z| <=
//     128, so a block sums to at most 520192, and an i8_pc row, summed 131072 elements at a time, to 2130706432 < 2^31).
//   path 1 (dequantize): y[m,n] = sum_k x[m,k] * f32(s * (q - z)).
// Accumulation in double, rounded once to y's dtype (through f32, like matmul_ref).
//   x: [M, K] (leading dimensions flattened), w: [N, K] quantized, y: [M, N] in x's dtype
#include <algorithm>
#include <vector>

#include "../../common/quant.h"
#include "ref.h"

namespace lk {

Status matmul_q_ref(const OpArgs& a) {
  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  const bool int_path = a.params.i[0] == 0;
  const QuantLayout L = quant_layout(w.dtype, K);
  const int64_t Kp = L.nb * kQBlock;
  // x as f32 (path 1) or quantized (path 0), every row first; then each row of w is decoded once.
  std::vector<float> xf(static_cast<size_t>(M * Kp), 0.0f);
  std::vector<int8_t> qx(static_cast<size_t>(M * Kp));
  std::vector<float> dx(static_cast<size_t>(M * L.nb));
  for (int64_t m = 0; m < M; ++m) {
    float* xr = xf.data() + m * Kp;
    for (int64_t k = 0; k < K; ++k) xr[k] = load_f32(x.data, x.dtype, m * K + k);
    if (!int_path) continue;
    int32_t sum;
    if (w.dtype == DType::i8_pc)
      dx[m * L.nb] = quantize_act_block(xr, Kp, qx.data() + m * Kp, &sum);
    else
      for (int64_t b = 0; b < L.nb; ++b)
        dx[m * L.nb + b] = quantize_act_block(xr + 32 * b, 32, qx.data() + m * Kp + 32 * b, &sum);
  }
  std::vector<int32_t> wq(static_cast<size_t>(K));  // q - zero
  std::vector<float> wv(static_cast<size_t>(K)), ws(static_cast<size_t>(L.nb));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const QElem e = quant_get(L, w.data, n, k);
      wq[k] = e.q - e.zero;
      wv[k] = e.scale * static_cast<float>(e.q - e.zero);
      if (k % 32 == 0) ws[k / 32] = e.scale;
    }
    for (int64_t m = 0; m < M; ++m) {
      double acc = 0;
      if (!int_path) {
        const float* xr = xf.data() + m * Kp;
        for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(xr[k]) * wv[k];
      } else {
        const int8_t* q = qx.data() + m * Kp;
        const float* d = dx.data() + m * L.nb;
        if (w.dtype == DType::i8_pc) {
          int64_t dot = 0;
          for (int64_t k = 0; k < K; ++k) dot += static_cast<int64_t>(q[k]) * wq[k];
          acc = static_cast<double>(d[0]) * ws[0] * static_cast<double>(dot);
        } else {
          for (int64_t b = 0; b < L.nb; ++b) {
            int64_t dot = 0;
            for (int64_t k = 32 * b; k < std::min(K, 32 * b + 32); ++k) dot += static_cast<int64_t>(q[k]) * wq[k];
            acc += static_cast<double>(d[b]) * ws[b] * static_cast<double>(dot);
          }
        }
      }
      store_f32(y.data, y.dtype, m * N + n, static_cast<float>(acc));
    }
  }
  return Status::OK();
}

std::vector<OpCase> matmul_q_cases() {
  // The matrix for f32 x and both paths; f16/bf16 x on a smaller set (M > 8 reaches the CUDA tensor-core
  // path).
  const DType formats[] = {DType::q8_0, DType::q4_0, DType::q4_g32, DType::q4_g64, DType::q4_g128, DType::i8_pc};
  std::vector<OpCase> cs;
  auto add = [&](DType f, DType t, int64_t M, int64_t N, int64_t K, int path) {
    OpCase c;
    c.name = std::string("matmul_q(") + dtype_name(f) + ",M=" + std::to_string(M) + ",N=" + std::to_string(N) +
             ",K=" + std::to_string(K) + "," + dtype_name(t) + (path ? ",dequant" : ",int8") + ")";
    c.in = {{t, {M, K}}, {f, {N, K}}};
    c.out = {{t, {M, N}}};
    c.params.i[0] = path;
    c.flops = 2.0 * M * N * K;
    cs.push_back(c);
  };
  for (DType f : formats)
    for (int path : {0, 1}) {
      for (int64_t M : {1, 2, 7, 33, 128})
        for (int64_t N : {1, 17, 256})
          for (int64_t K : {32, 96, 688, 4096}) add(f, DType::f32, M, N, K, path);
      for (DType t : {DType::f16, DType::bf16}) {
        for (int64_t M : {1, 5, 9, 16, 33, 64})  // 9 .. 64: the tensor-core path's small and large tiles
          for (int64_t K : {96, 688}) add(f, t, M, 17, K, path);
        // Around the CUDA GEMV's chunks of 8 rows of x (7, 8; 9 is above).
        for (int64_t M : {7, 8}) add(f, t, M, 17, 688, path);
      }
      for (int64_t M : {8, 9}) add(f, DType::f32, M, 17, 688, path);
    }
  return cs;
}

}  // namespace lk
