// add: y = a + b, computed in f32 and rounded to y's dtype.   a: [..., N], b: [..., N] or [N], y: a's shape
#include "binary_ref.h"

namespace lk {

Status add_ref(const OpArgs& a) {
  return binary_ref(a, [](float x, float y) { return x + y; });
}

std::vector<OpCase> binary_cases(const char* op) {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (auto rc : {std::pair<int64_t, int64_t>{1, 1}, {1, 7}, {7, 33}, {33, 100}, {64, 4099}})
      for (bool bcast : {false, true}) {
        OpCase c;
        c.name = std::string(op) + "(rows=" + std::to_string(rc.first) + ",N=" + std::to_string(rc.second) + "," +
                 dtype_name(t) + (bcast ? ",row-broadcast" : "") + ")";
        c.in = {{t, {rc.first, rc.second}}, {t, bcast ? std::vector<int64_t>{rc.second} : std::vector<int64_t>{rc.first, rc.second}}};
        c.out = {{t, {rc.first, rc.second}}};
        cs.push_back(c);
      }
  return cs;
}

std::vector<OpCase> add_cases() { return binary_cases("add"); }

}  // namespace lk
