// scale: y = alpha * x with alpha = (float)f[0], in f32, rounded to y's dtype.   x, y: [...]
#include "ref.h"

namespace lk {

Status scale_ref(const OpArgs& a) {
  const TensorView& x = a.in[0];
  const TensorView& y = a.out[0];
  const float alpha = static_cast<float>(a.params.f[0]);
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) store_f32(y.data, y.dtype, i, alpha * load_f32(x.data, x.dtype, i));
  return Status::OK();
}

std::vector<OpCase> scale_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (int64_t n : {1, 7, 33, 4099}) {
      OpCase c;
      c.name = std::string("scale(n=") + std::to_string(n) + "," + dtype_name(t) + ")";
      c.in = {{t, {n}}};
      c.out = {{t, {n}}};
      c.params.f[0] = -0.3183098861837907;
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
