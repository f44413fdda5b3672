// silu_mul: y[..., j] = silu(x[..., j]) * x[..., F + j], silu(a) = a / (1 + exp(-a)).   x: [..., 2F], y: [..., F]
//
// The SwiGLU MLP's activation over one fused gate|up projection (lib/nn concatenates gate_proj and up_proj, so one
// matmul produces both halves). The reference in double; the kernels in f32 (tolerance: the matmul rows).
#include "ref.h"

#include <cmath>

namespace lk {

Status silu_mul_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  const int64_t F = y.cols(), rows = y.rows();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < F; ++j) {
      const double g = load_f32(x.data, x.dtype, r * 2 * F + j), u = load_f32(x.data, x.dtype, r * 2 * F + F + j);
      store_f32(y.data, y.dtype, r * F + j, static_cast<float>(g / (1.0 + std::exp(-g)) * u));
    }
  return Status::OK();
}

std::vector<OpCase> silu_mul_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (auto rf : {std::pair<int64_t, int64_t>{1, 1}, {1, 7}, {7, 33}, {5, 688}, {33, 768}, {2, 4099}}) {
      OpCase c;
      c.name = "silu_mul(rows=" + std::to_string(rf.first) + ",F=" + std::to_string(rf.second) + "," + dtype_name(t) + ")";
      c.in = {{t, {rf.first, 2 * rf.second}}};
      c.out = {{t, {rf.first, rf.second}}};
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
