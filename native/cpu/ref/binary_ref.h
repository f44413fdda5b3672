// Shared loop of the binary elementwise references (add, mul): y = f(a, b) in f32, b of a's shape or row-broadcast.
#pragma once
#include "ref.h"

namespace lk {

template <class F>
Status binary_ref(const OpArgs& args, F f) {
  const TensorView& a = args.in[0];  // [rows, N]
  const TensorView& b = args.in[1];  // [rows, N] or [N]
  const TensorView& y = args.out[0];  // [rows, N]
  const int64_t n = a.numel();
  const int64_t cols = a.cols();
  const bool bcast = b.numel() != n;
  for (int64_t i = 0; i < n; ++i) {
    const float av = load_f32(a.data, a.dtype, i);
    const float bv = load_f32(b.data, b.dtype, bcast ? i % cols : i);
    store_f32(y.data, y.dtype, i, f(av, bv));
  }
  return Status::OK();
}

std::vector<OpCase> binary_cases(const char* op);

}  // namespace lk
