// add: y = a + b in f32, rounded to y's dtype.   a: [rows, N] (any leading shape), b: a's shape or [N], y: a's shape
//
// Also holds binary_cpu, the loop shared with mul. Bit-exact with binary_ref: each element is one f32 add (or mul)
// of the exactly widened inputs, rounded once. A row-broadcast b is walked row segment by row segment, so the inner
// loops (scalar or simd/elementwise_avx2.cc) always see two contiguous inputs of equal length; a chunk of the thread
// pool may start or end mid-row. Run: lk_check --op add; lk_bench --op add.
#include <algorithm>

#include "elementwise.h"

namespace lk {

namespace {

template <DType T, BinaryOp OP>
void binary_scalar(const void* a, const void* b, void* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float u = ld<T>(a, i), v = ld<T>(b, i);
    st<T>(y, i, OP == BinaryOp::add ? u + v : u * v);
  }
}

// Contiguous a[0..n), b[0..n) -> y[0..n).
void binary_span(BinaryOp op, DType t, const void* a, const void* b, void* y, int64_t n, bool simd) {
#if defined(LLMK_HAVE_AVX2_TU)
  if (simd) return avx2::binary(op, t, a, b, y, n);
#endif
  (void)simd;
  dispatch_float(t, [&](auto tag) {
    constexpr DType T = decltype(tag)::value;
    if (op == BinaryOp::add)
      binary_scalar<T, BinaryOp::add>(a, b, y, n);
    else
      binary_scalar<T, BinaryOp::mul>(a, b, y, n);
  });
}

}  // namespace

Status binary_cpu(const OpArgs& args, BinaryOp op) {
  const char* name = op == BinaryOp::add ? "add" : "mul";
  const TensorView& a = args.in[0];   // [rows, N]
  const TensorView& b = args.in[1];   // [rows, N] or [N]
  const TensorView& y = args.out[0];  // [rows, N]
  const DType t = a.dtype;
  if (!dtype_is_float(t) || b.dtype != t || y.dtype != t)
    return type_error(std::string(name) + ": expected one float dtype for a, b and y, got " + dtype_name(t) + ", " +
                      dtype_name(b.dtype) + ", " + dtype_name(y.dtype));
  const int64_t n = a.numel();
  const int64_t cols = a.cols();
  const bool bcast = b.numel() != n;
  if (bcast && b.numel() != cols)
    return range_error(std::string(name) + ": expected b of a's shape " + a.shape_str() +
                       " or of its last dimension [" + std::to_string(cols) + "] for b.shape, got " + b.shape_str());
  const bool simd = cpu_simd_level() >= SimdLevel::avx2;
  return parallel_elements(name, n, [&](int64_t begin, int64_t end) {
    if (!bcast) {
      binary_span(op, t, elem_at(a.data, t, begin), elem_at(b.data, t, begin), elem_at(y.data, t, begin),
                  end - begin, simd);
      return;
    }
    for (int64_t i = begin; i < end;) {
      const int64_t col = i % cols;
      const int64_t len = std::min(cols - col, end - i);
      binary_span(op, t, elem_at(a.data, t, i), elem_at(b.data, t, col), elem_at(y.data, t, i), len, simd);
      i += len;
    }
  });
}

Status add_cpu(const OpArgs& a) { return binary_cpu(a, BinaryOp::add); }

}  // namespace lk
