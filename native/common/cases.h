// Test cases of an op, for lk_check and lk_bench (the Node tests have their own in test/ops/).
//
// Each op's reference file defines `std::vector<OpCase> <op>_cases()`: a list of calls with the shapes, dtypes and
// scalars to try, odd sizes and edge cases included. lk_check fills inputs with seeded random data (never zeros),
// runs the reference and every compiled backend, and compares with tolerance(). Adding an op to ops.def and its
// cases to its ref file is all it takes for lk_check to cover it on every backend.
#pragma once
#include <string>
#include <vector>

#include "registry.h"

namespace lk {

struct TensorSpec {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
};

struct OpCase {
  std::string name;  // e.g. "matmul(M=7,N=33,K=96,f16)": the op name first, so one grep finds it
  std::vector<TensorSpec> in;
  std::vector<TensorSpec> out;
  OpParams params;
  bool special_values = false;  // fill inputs with NaN, +-Inf, -0, subnormals and huge values mixed in
  double flops = 0;             // for lk_bench: floating-point operations of one call (0: memory-bound op)
};

std::vector<OpCase> op_cases(OpId op);

// The tolerance table: one row per (exactness class, output dtype). `exact` ops (copy, cast, fill, add, mul,
// scale) must match the reference bit for bit (two NaNs match). Reductions (matmul) are judged like ggml's
// test-backend-ops, by the normalized mean squared error against the double-precision reference, and element by
// element by |got - ref| <= rtol * (|ref| + rms(ref)). test/helpers/check.ts holds the same numbers.
struct Tolerance {
  bool exact;
  double nmse;
  double rtol;
};
Tolerance tolerance(OpId op, DType out);

}  // namespace lk
