// mul: y = a * b, computed in f32 and rounded to y's dtype.   a: [..., N], b: [..., N] or [N], y: a's shape
#include "binary_ref.h"

namespace lk {

Status mul_ref(const OpArgs& a) {
  return binary_ref(a, [](float x, float y) { return x * y; });
}

std::vector<OpCase> mul_cases() { return binary_cases("mul"); }

}  // namespace lk
