// silu_mul: y[..., j] = silu(x[..., j]) * x[..., F + j] for x [..., 2F] (cpu/ref/silu_mul_ref.cc). f32 math with
// the libm exp; rows in parallel. Memory-bound next to the matmuls around it. Run: lk_check --op silu_mul.
#include <cmath>

#include "elementwise.h"
#include "rows.h"

namespace lk {

Status silu_mul_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  const int64_t F = y.cols();
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    constexpr DType T = decltype(ti)::value;
    status = parallel_rows("silu_mul", y.rows(), 2 * F, [&](int64_t r0, int64_t r1) -> Status {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < F; ++j) {
          const float g = ld<T>(x.data, r * 2 * F + j), u = ld<T>(x.data, r * 2 * F + F + j);
          st<T>(y.data, r * F + j, g / (1.0f + std::exp(-g)) * u);
        }
      return Status::OK();
    });
  });
  return status;
}

}  // namespace lk
