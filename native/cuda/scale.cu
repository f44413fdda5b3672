// scale: y = alpha * x with alpha = (float)f[0], in f32, rounded once to y's dtype; bit-exact with scale_ref.
//   x, y: [...] of one float dtype (f32/f16/bf16), contiguous.
// Kernel: unary_kernel of elementwise.cuh with ScaleOp (__fmul_rn); alpha is rounded to f32 on the host exactly as
// the reference does (static_cast<float> of the double).
// Run: build-gpu/tools/lk_check --backend cuda (correctness), build-gpu/tools/lk_bench --backend cuda (speed).
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

Status scale_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "scale", &dev));
  const TensorView& x = a.in[0];
  const TensorView& y = a.out[0];
  const ScaleOp op{static_cast<float>(a.params.f[0])};
  const bool ok = dispatch_float(x.dtype, [&](auto t) {
    using T = decltype(t);
    launch_unary<T, T>(x.data, y.data, x.numel(), op, dev, stream_of(a));
  });
  if (!ok) return internal_error(std::string("scale: cuda kernel got a non-float dtype ") + dtype_name(x.dtype));
  return cuda_last_error("scale");
}

}  // namespace lk
