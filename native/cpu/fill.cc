// fill: y[i] = value.   y: [...] any dtype; value = f[0], converted once as fill_ref converts it
//
// The element's bit pattern is computed once (f32 -> f16/bf16 by dtype.h, integers by a C cast of the validated
// value), then stored with std::fill_n, which the compiler turns into full-width vector stores (memset for bytes)
// even at the baseline ISA: a store-only loop is bound by memory, not by the width of the stores, so there is no
// AVX2 version. Large fills are split over the thread pool. Run: lk_check --op fill; lk_bench --op fill.
#include <algorithm>
#include <string>

#include "elementwise.h"

namespace lk {

namespace {

template <class U>
Status fill_as(const TensorView& y, U pattern) {
  U* p = static_cast<U*>(y.data);
  return parallel_elements("fill", y.numel(),
                           [&](int64_t begin, int64_t end) { std::fill_n(p + begin, end - begin, pattern); });
}

}  // namespace

Status fill_cpu(const OpArgs& a) {
  const TensorView& y = a.out[0];  // [...]
  const double v = a.params.f[0];
  // validate_op has checked integer values; checked again here because converting an out-of-range double to an
  // integer is undefined behaviour, and a kernel must not have any.
  auto in_range = [&](double lo, double hi) { return v >= lo && v <= hi; };
  switch (y.dtype) {
    case DType::f32: return fill_as<float>(y, static_cast<float>(v));
    case DType::f16: return fill_as<uint16_t>(y, f32_to_f16(static_cast<float>(v)));
    case DType::bf16: return fill_as<uint16_t>(y, f32_to_bf16(static_cast<float>(v)));
    case DType::i8:
      if (!in_range(-128, 127)) break;
      return fill_as<int8_t>(y, static_cast<int8_t>(v));
    case DType::u8:
      if (!in_range(0, 255)) break;
      return fill_as<uint8_t>(y, static_cast<uint8_t>(v));
    case DType::i32:
      if (!in_range(-2147483648.0, 2147483647.0)) break;
      return fill_as<int32_t>(y, static_cast<int32_t>(v));
    default: break;  // quantized formats: refused by validate_op
  }
  return range_error(std::string("fill: expected a value in range of ") + dtype_name(y.dtype) + " for value, got " +
                     std::to_string(v));
}

}  // namespace lk
