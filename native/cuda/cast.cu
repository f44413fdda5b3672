// cast: y = convert(x), through f32, rounded once to y's dtype; bit-exact with cast_ref (NaN included: see the
// conversion notes in elementwise.cuh).
//   x: [...] f32/f16/bf16/i8/u8/i32, y: [...] f32/f16/bf16 with x's element count; contiguous.
// Kernel: unary_kernel of elementwise.cuh with the identity, one instantiation per (from, to) pair (18). A pack
// holds 16 bytes of the narrower side (u8 -> f32: 16 elements, one 16-byte load and four 16-byte stores).
// Same-dtype casts go through the same path (not a memcpy) so that f16 -> f16 canonicalizes NaN exactly like the
// reference (f16 -> f32 -> f16 sets the quiet bit).
// Run: build-gpu/tools/lk_check --backend cuda (correctness, incl. the special-value cases), lk_bench for speed.
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

template <class In>
bool cast_from(DType to, const void* x, void* y, int64_t n, int dev, cudaStream_t s) {
  return dispatch_float(to, [&](auto t) {
    using Out = decltype(t);
    launch_unary<In, Out>(x, y, n, IdentityOp{}, dev, s);
  });
}

}  // namespace

Status cast_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "cast", &dev));
  const TensorView& x = a.in[0];
  const TensorView& y = a.out[0];
  const int64_t n = x.numel();
  const cudaStream_t s = stream_of(a);
  bool ok = false;
  switch (x.dtype) {
    case DType::f32: ok = cast_from<float>(y.dtype, x.data, y.data, n, dev, s); break;
    case DType::f16: ok = cast_from<f16_t>(y.dtype, x.data, y.data, n, dev, s); break;
    case DType::bf16: ok = cast_from<bf16_t>(y.dtype, x.data, y.data, n, dev, s); break;
    case DType::i8: ok = cast_from<int8_t>(y.dtype, x.data, y.data, n, dev, s); break;
    case DType::u8: ok = cast_from<uint8_t>(y.dtype, x.data, y.data, n, dev, s); break;
    case DType::i32: ok = cast_from<int32_t>(y.dtype, x.data, y.data, n, dev, s); break;
  }
  if (!ok)
    return internal_error(std::string("cast: cuda kernel got ") + dtype_name(x.dtype) + " -> " + dtype_name(y.dtype));
  return cuda_last_error("cast");
}

}  // namespace lk
