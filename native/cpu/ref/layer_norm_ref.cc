// layer_norm: y = (x - mean) / sqrt(var + eps) * w + b per row (biased variance, as torch.nn.LayerNorm).
//   x, y: [..., N] one float dtype, w: [N] float, b: [N] float or [0] (no bias), f[0] = eps
// The reference in double; the kernels in f32 (tolerance: the matmul rows).
#include "ref.h"

#include <cmath>

namespace lk {

Status layer_norm_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &w = a.in[1], &b = a.in[2], &y = a.out[0];
  const int64_t N = x.cols(), rows = x.rows();
  const bool bias = b.numel() != 0;
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < N; ++j) mean += load_f32(x.data, x.dtype, r * N + j);
    mean /= static_cast<double>(N);
    for (int64_t j = 0; j < N; ++j) {
      const double d = load_f32(x.data, x.dtype, r * N + j) - mean;
      var += d * d;
    }
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(N) + a.params.f[0]);
    for (int64_t j = 0; j < N; ++j) {
      const double v = (load_f32(x.data, x.dtype, r * N + j) - mean) * inv * load_f32(w.data, w.dtype, j) +
                       (bias ? load_f32(b.data, b.dtype, j) : 0.0);
      store_f32(y.data, y.dtype, r * N + j, static_cast<float>(v));
    }
  }
  return Status::OK();
}

std::vector<OpCase> layer_norm_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (DType wt : {DType::f32, t})
      for (bool bias : {true, false})
        for (auto rn : {std::pair<int64_t, int64_t>{1, 1}, {1, 7}, {7, 33}, {33, 688}, {3, 4099}}) {
          OpCase c;
          c.name = "layer_norm(rows=" + std::to_string(rn.first) + ",N=" + std::to_string(rn.second) + "," + dtype_name(t) +
                   ",w=" + dtype_name(wt) + (bias ? ",bias" : "") + ")";
          c.in = {{t, {rn.first, rn.second}}, {wt, {rn.second}}, {wt, {bias ? rn.second : 0}}};
          c.out = {{t, {rn.first, rn.second}}};
          c.params.f[0] = rn.second == 7 ? 0.5 : 1e-5;
          cs.push_back(c);
        }
  return cs;
}

}  // namespace lk
