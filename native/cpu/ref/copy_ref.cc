// copy: y = x, byte for byte.   x: [...], y: [...] (same dtype and element count, contiguous)
#include <cstring>

#include "ref.h"

namespace lk {

Status copy_ref(const OpArgs& a) {
  const TensorView& x = a.in[0];
  if (x.nbytes() > 0) std::memcpy(a.out[0].data, x.data, x.nbytes());
  return Status::OK();
}

std::vector<OpCase> copy_cases() {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32})
    for (int64_t n : {1, 7, 33, 1000, 65537}) {
      OpCase c;
      c.name = std::string("copy(n=") + std::to_string(n) + "," + dtype_name(t) + ")";
      c.in = {{t, {n}}};
      c.out = {{t, {n}}};
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
