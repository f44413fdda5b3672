// scale: y = alpha * x in f32 with alpha = (float)f[0], rounded to y's dtype.   x, y: [...] of one float dtype
//
// Bit-exact with scale_ref: one f32 multiply of the exactly widened element, rounded once. AVX2 version in
// simd/elementwise_avx2.cc. Run: lk_check --op scale; lk_bench --op scale.
#include "elementwise.h"

namespace lk {

namespace {

template <DType T>
void scale_scalar(const void* x, float alpha, void* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) st<T>(y, i, alpha * ld<T>(x, i));
}

}  // namespace

Status scale_cpu(const OpArgs& a) {
  const TensorView& x = a.in[0];   // [...]
  const TensorView& y = a.out[0];  // [...], x's shape and dtype
  const DType t = x.dtype;
  if (!dtype_is_float(t) || y.dtype != t)
    return type_error(std::string("scale: expected one float dtype for x and y, got ") + dtype_name(t) + " and " +
                      dtype_name(y.dtype));
  const float alpha = static_cast<float>(a.params.f[0]);
  const bool simd = cpu_simd_level() >= SimdLevel::avx2;
  return parallel_elements("scale", x.numel(), [&](int64_t begin, int64_t end) {
    const void* xs = elem_at(x.data, t, begin);
    void* ys = elem_at(y.data, t, begin);
#if defined(LLMK_HAVE_AVX2_TU)
    if (simd) return avx2::scale(t, xs, alpha, ys, end - begin);
#endif
    (void)simd;
    dispatch_float(t, [&](auto tag) { scale_scalar<decltype(tag)::value>(xs, alpha, ys, end - begin); });
  });
}

}  // namespace lk
