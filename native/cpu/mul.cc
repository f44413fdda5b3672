// mul: y = a * b in f32, rounded to y's dtype.   a: [rows, N] (any leading shape), b: a's shape or [N], y: a's shape
//
// The loop is binary_cpu in add.cc (scalar and AVX2, threaded, row-broadcast by row segments); see there.
// Run: lk_check --op mul; lk_bench --op mul.
#include "elementwise.h"

namespace lk {

Status mul_cpu(const OpArgs& a) { return binary_cpu(a, BinaryOp::mul); }

}  // namespace lk
