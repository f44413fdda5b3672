// cast: y = convert(x).   x: [...] f32/f16/bf16/i8/u8/i32, y: [...] f32/f16/bf16, same element count
//
// Bit-exact with cast_ref: widen to f32 exactly, round once to the output (round to nearest even, NaN kept with its
// quiet bit set; see elementwise.h). f32 -> f32 is a plain copy; f16 -> f16 and bf16 -> bf16 are not (a signalling
// NaN comes out quiet), so they take the general path. AVX2: simd/elementwise_avx2.cc, 8 elements per step.
// Run: lk_check --op cast; lk_bench --op cast.
#include <cstring>

#include "elementwise.h"

namespace lk {

namespace {

template <DType TX, DType TY>
void cast_scalar(const void* x, void* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) st<TY>(y, i, ld<TX>(x, i));
}

void cast_span(const void* x, DType xt, void* y, DType yt, int64_t n, bool simd) {
#if defined(LLMK_HAVE_AVX2_TU)
  if (simd) return avx2::cast(x, xt, y, yt, n);
#endif
  (void)simd;
  dispatch_any(xt, [&](auto tx) {
    dispatch_float(yt, [&](auto ty) { cast_scalar<decltype(tx)::value, decltype(ty)::value>(x, y, n); });
  });
}

}  // namespace

Status cast_cpu(const OpArgs& a) {
  const TensorView& x = a.in[0];  // [...]
  const TensorView& y = a.out[0];  // [...], x's element count
  const DType xt = x.dtype, yt = y.dtype;
  if (!dtype_is_float(yt))
    return type_error(std::string("cast: expected a float dtype (f32, f16, bf16) for y.dtype, got ") + dtype_name(yt));
  if (xt == DType::f32 && yt == DType::f32) {
    if (x.data == y.data) return Status::OK();
    return parallel_elements("cast", x.numel(), [&](int64_t begin, int64_t end) {
      std::memcpy(elem_at(y.data, yt, begin), elem_at(x.data, xt, begin), static_cast<size_t>(end - begin) * 4);
    });
  }
  const bool simd = cpu_simd_level() >= SimdLevel::avx2;
  return parallel_elements("cast", x.numel(), [&](int64_t begin, int64_t end) {
    cast_span(elem_at(x.data, xt, begin), xt, elem_at(y.data, yt, begin), yt, end - begin, simd);
  });
}

}  // namespace lk
