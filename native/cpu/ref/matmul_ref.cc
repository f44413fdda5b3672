// matmul: y[m,n] = sum_k x[m,k] * w[n,k], accumulated in double, rounded once to y's dtype.
//   x: [M, K] (or [..., K], leading dimensions flattened into M), w: [N, K] (a Linear layer's weight), y: [M, N]
#include "ref.h"

namespace lk {

Status matmul_ref(const OpArgs& a) {
  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += static_cast<double>(load_f32(x.data, x.dtype, m * K + k)) * load_f32(w.data, w.dtype, n * K + k);
      store_f32(y.data, y.dtype, m * N + n, static_cast<float>(acc));
    }
  return Status::OK();
}

std::vector<OpCase> matmul_cases() {
  struct S { int64_t M, N, K; };
  const S shapes[] = {{1, 1, 1},   {1, 7, 33},    {7, 33, 96},   {33, 17, 7},  {1, 256, 1000},
                      {4, 64, 512}, {1, 96, 4096}, {3, 40, 2048}, {16, 48, 64}, {67, 129, 257}, {128, 96, 300}, {5, 1, 4096}};
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (const S& s : shapes) {
      OpCase c;
      c.name = "matmul(M=" + std::to_string(s.M) + ",N=" + std::to_string(s.N) + ",K=" + std::to_string(s.K) + "," +
               dtype_name(t) + ")";
      c.in = {{t, {s.M, s.K}}, {t, {s.N, s.K}}};
      c.out = {{t, {s.M, s.N}}};
      c.flops = 2.0 * s.M * s.N * s.K;
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
