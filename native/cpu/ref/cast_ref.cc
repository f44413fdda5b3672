// cast: y = convert(x).   x: [...] any dtype, y: [...] f32/f16/bf16
// Float to float goes through f32 (exact for f16/bf16 -> f32) and rounds to nearest even (dtype.h); NaN stays NaN
// with the quiet bit set, Inf stays Inf. Integers convert to the nearest float.
#include "ref.h"

namespace lk {

Status cast_ref(const OpArgs& a) {
  const TensorView& x = a.in[0];
  const TensorView& y = a.out[0];
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) store_f32(y.data, y.dtype, i, load_f32(x.data, x.dtype, i));
  return Status::OK();
}

std::vector<OpCase> cast_cases() {
  std::vector<OpCase> cs;
  const DType fl[] = {DType::f32, DType::f16, DType::bf16};
  for (DType from : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32})
    for (DType to : fl)
      for (int64_t n : {1, 7, 33, 4099}) {
        for (bool special : {false, true}) {
          if (special && !dtype_is_float(from)) continue;
          OpCase c;
          c.name = std::string("cast(n=") + std::to_string(n) + "," + dtype_name(from) + "->" + dtype_name(to) +
                   (special ? ",special" : "") + ")";
          c.in = {{from, {n}}};
          c.out = {{to, {n}}};
          c.special_values = special;
          cs.push_back(c);
        }
      }
  return cs;
}

}  // namespace lk
