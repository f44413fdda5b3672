// gelu: the exact (erf) or tanh form (cpu/ref/gelu_ref.cc), f32 math with libm's erff/tanhf; elements in parallel
// blocks. Run: lk_check --op gelu.
#include <cmath>

#include "elementwise.h"

namespace lk {

Status gelu_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  const bool tanh_form = a.params.i[0] == 1;
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    constexpr DType T = decltype(ti)::value;
    status = parallel_elements("gelu", x.numel(), [&](int64_t i0, int64_t i1) {
      if (tanh_form)
        for (int64_t i = i0; i < i1; ++i) {
          const float v = ld<T>(x.data, i);
          st<T>(y.data, i, 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))));
        }
      else
        for (int64_t i = i0; i < i1; ++i) {
          const float v = ld<T>(x.data, i);
          st<T>(y.data, i, 0.5f * v * (1.0f + std::erf(v * 0.7071067811865476f)));
        }
    });
  });
  return status;
}

}  // namespace lk
