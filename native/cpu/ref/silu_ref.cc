// silu: y = x / (1 + exp(-x)) (x * sigmoid(x)), elementwise.   x, y: [...] one float dtype
// The reference in double; the kernels in f32 (tolerance: the matmul rows).
#include "ref.h"

#include <cmath>

namespace lk {

Status silu_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = load_f32(x.data, x.dtype, i);
    store_f32(y.data, y.dtype, i, static_cast<float>(v / (1.0 + std::exp(-v))));
  }
  return Status::OK();
}

std::vector<OpCase> silu_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (int64_t n : {1, 7, 33, 4099, 70001}) {
      OpCase c;
      c.name = "silu(n=" + std::to_string(n) + "," + dtype_name(t) + ")";
      c.in = {{t, {n}}};
      c.out = {{t, {n}}};
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
