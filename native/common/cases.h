// Test cases of an op, for lk_check and lk_bench (the Node tests have their own in test/ops/).
//
// Each op's reference file defines `std::vector<OpCase> <op>_cases()`: a list of calls with the shapes, dtypes and
// scalars to try, odd sizes and edge cases included. lk_check fills inputs with seeded random data (never zeros),
// runs the reference and every compiled backend, and compares with tolerance(). Adding an op to ops.def and its
// cases to its ref file is all it takes for lk_check to cover it on every backend.
#pragma once
#include <functional>
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
  // Structured data (optional; views on host memory). init_inputs runs after the random fill and overwrites the
  // inputs that must hold valid data (block tables, lengths, slot mappings). init_outputs fills the outputs before
  // the op runs, for ops that write in place (cache_write keeps what it does not write); without it outputs start
  // as poison, so an element a kernel forgets to write differs from the reference.
  std::function<void(const std::vector<TensorView>& in, uint64_t seed)> init_inputs;
  std::function<void(const std::vector<TensorView>& out, uint64_t seed)> init_outputs;
};

std::vector<OpCase> op_cases(OpId op);
// lk_bench's paged-attention entries (large; structured inputs through init_inputs): cpu/ref/paged_attention_ref.cc.
std::vector<OpCase> paged_attention_bench_cases(bool full);

// A small seeded generator for the init hooks (splitmix64; the tools have their own richer one).
struct CaseRng {
  uint64_t s;
  explicit CaseRng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
};

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
