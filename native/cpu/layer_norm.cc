// layer_norm: y = (x - mean) / sqrt(var + eps) * w + b per row (cpu/ref/layer_norm_ref.cc). Two passes in f32 (8
// lanes for the sums, so the compiler vectorizes them): mean, then the variance of the differences (not E[x^2] -
// mean^2, which cancels badly for rows far from zero), then the scaling. Rows in parallel.
// Run: lk_check --op layer_norm.
#include <cmath>

#include "elementwise.h"
#include "rows.h"

namespace lk {

namespace {

template <DType T, DType W>
void ln_rows(const TensorView& x, const TensorView& w, const TensorView& b, const TensorView& y, int64_t r0, int64_t r1, float eps) {
  const int64_t N = x.cols();
  const bool bias = b.numel() != 0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t off = r * N;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= N; j += 8)
      for (int k = 0; k < 8; ++k) acc[k] += ld<T>(x.data, off + j + k);
    for (; j < N; ++j) acc[0] += ld<T>(x.data, off + j);
    const float mean = (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) / static_cast<float>(N);
    float sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (j = 0; j + 8 <= N; j += 8)
      for (int k = 0; k < 8; ++k) {
        const float d = ld<T>(x.data, off + j + k) - mean;
        sq[k] += d * d;
      }
    for (; j < N; ++j) {
      const float d = ld<T>(x.data, off + j) - mean;
      sq[0] += d * d;
    }
    const float var = (((sq[0] + sq[4]) + (sq[1] + sq[5])) + ((sq[2] + sq[6]) + (sq[3] + sq[7]))) / static_cast<float>(N);
    const float inv = 1.0f / std::sqrt(var + eps);
    for (j = 0; j < N; ++j)
      st<T>(y.data, off + j, (ld<T>(x.data, off + j) - mean) * inv * ld<W>(w.data, j) + (bias ? ld<W>(b.data, j) : 0.0f));
  }
}

}  // namespace

Status layer_norm_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &w = a.in[1], &b = a.in[2], &y = a.out[0];
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    dispatch_float(w.dtype, [&](auto wi) {
      status = parallel_rows("layer_norm", x.rows(), x.cols(), [&](int64_t r0, int64_t r1) -> Status {
        ln_rows<decltype(ti)::value, decltype(wi)::value>(x, w, b, y, r0, r1, static_cast<float>(a.params.f[0]));
        return Status::OK();
      });
    });
  });
  return status;
}

}  // namespace lk
