// gelu: i[0] = 0: x/2 (1 + erf(x / sqrt 2)) (torch's default); 1: the tanh form x/2 (1 + tanh(sqrt(2/pi) (x +
// 0.044715 x^3))) (torch's approximate='tanh', GPT-2's gelu_new).   x, y: [...] one float dtype
// The reference in double; the kernels in f32 (tolerance: the matmul rows).
#include "ref.h"

#include <cmath>

namespace lk {

Status gelu_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  const bool tanh_form = a.params.i[0] == 1;
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = load_f32(x.data, x.dtype, i);
    const double g = tanh_form ? 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)))
                               : 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    store_f32(y.data, y.dtype, i, static_cast<float>(g));
  }
  return Status::OK();
}

std::vector<OpCase> gelu_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (int mode : {0, 1})
      for (int64_t n : {1, 7, 33, 4099, 70001}) {
        OpCase c;
        c.name = "gelu(n=" + std::to_string(n) + "," + dtype_name(t) + (mode ? ",tanh" : ",erf") + ")";
        c.in = {{t, {n}}};
        c.out = {{t, {n}}};
        c.params.i[0] = mode;
        cs.push_back(c);
      }
  return cs;
}

}  // namespace lk
