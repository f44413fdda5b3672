// silu: y = x / (1 + exp(-x)) elementwise (cpu/ref/silu_ref.cc), f32 math with libm's expf, elements in parallel
// blocks. The SwiGLU MLP uses the fused silu_mul instead. Run: lk_check --op silu.
#include <cmath>

#include "elementwise.h"

namespace lk {

Status silu_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    constexpr DType T = decltype(ti)::value;
    status = parallel_elements("silu", x.numel(), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const float v = ld<T>(x.data, i);
        st<T>(y.data, i, v / (1.0f + std::exp(-v)));
      }
    });
  });
  return status;
}

}  // namespace lk
