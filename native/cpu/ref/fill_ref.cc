// fill: y[i] = value.   y: [...] any dtype; value f[0] (an integer in range for integer dtypes, checked earlier)
#include "ref.h"

namespace lk {

Status fill_ref(const OpArgs& a) {
  const TensorView& y = a.out[0];
  const int64_t n = y.numel();
  const double v = a.params.f[0];
  for (int64_t i = 0; i < n; ++i) {
    switch (y.dtype) {
      case DType::i8: static_cast<int8_t*>(y.data)[i] = static_cast<int8_t>(v); break;
      case DType::u8: static_cast<uint8_t*>(y.data)[i] = static_cast<uint8_t>(v); break;
      case DType::i32: static_cast<int32_t*>(y.data)[i] = static_cast<int32_t>(v); break;
      default: store_f32(y.data, y.dtype, i, static_cast<float>(v)); break;
    }
  }
  return Status::OK();
}

std::vector<OpCase> fill_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32})
    for (int64_t n : {1, 7, 33, 5000}) {
      OpCase c;
      c.name = std::string("fill(n=") + std::to_string(n) + "," + dtype_name(t) + ")";
      c.out = {{t, {n}}};
      c.params.f[0] = dtype_is_float(t) ? -1.2345678 : 7;
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
