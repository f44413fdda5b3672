// rms_norm: y = x * w / sqrt(mean(x^2) + eps) per row; add_rms_norm: s = x + r (rounded to x's dtype), y =
// rms_norm(s, w).   x, r, s, y: [..., N] one float dtype, w: [N] float
//
// One pass for the sum of squares in 8 f32 lanes (so the compiler vectorizes it at any ISA), one for the scaling;
// add_rms_norm writes s in the first pass and reads it back from L1/L2 in the second (the fusion saves a full read
// and write of the residual stream against add then rms_norm). Rows in parallel. Run: lk_check --op rms_norm.
#include <cmath>

#include "elementwise.h"
#include "rows.h"

namespace lk {

namespace {

template <DType T, DType W>
void norm_rows(const void* x, const void* r, const void* w, void* s, void* y, int64_t r0, int64_t r1, int64_t N, float eps) {
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t off = row * N;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const void* src = x;
    if (r) {
      // s = x + r rounded to T; the sum of squares is over the rounded values (what the next layer reads).
      int64_t j = 0;
      for (; j + 8 <= N; j += 8)
        for (int k = 0; k < 8; ++k) {
          st<T>(s, off + j + k, ld<T>(x, off + j + k) + ld<T>(r, off + j + k));
          const float v = ld<T>(s, off + j + k);
          acc[k] += v * v;
        }
      for (; j < N; ++j) {
        st<T>(s, off + j, ld<T>(x, off + j) + ld<T>(r, off + j));
        const float v = ld<T>(s, off + j);
        acc[0] += v * v;
      }
      src = s;
    } else {
      int64_t j = 0;
      for (; j + 8 <= N; j += 8)
        for (int k = 0; k < 8; ++k) {
          const float v = ld<T>(x, off + j + k);
          acc[k] += v * v;
        }
      for (; j < N; ++j) {
        const float v = ld<T>(x, off + j);
        acc[0] += v * v;
      }
    }
    const float ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(N) + eps);
    for (int64_t j = 0; j < N; ++j) st<T>(y, off + j, ld<T>(src, off + j) * inv * ld<W>(w, j));
  }
}

Status run(const char* op, const TensorView& x, const TensorView* r, const TensorView& w, const TensorView* s,
           const TensorView& y, double eps) {
  const int64_t N = x.cols();
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    dispatch_float(w.dtype, [&](auto wi) {
      status = parallel_rows(op, x.rows(), N, [&](int64_t r0, int64_t r1) -> Status {
        norm_rows<decltype(ti)::value, decltype(wi)::value>(x.data, r ? r->data : nullptr, w.data, s ? s->data : nullptr, y.data, r0,
                                                            r1, N, static_cast<float>(eps));
        return Status::OK();
      });
    });
  });
  return status;
}

}  // namespace

Status rms_norm_cpu(const OpArgs& a) { return run("rms_norm", a.in[0], nullptr, a.in[1], nullptr, a.out[0], a.params.f[0]); }

Status add_rms_norm_cpu(const OpArgs& a) {
  return run("add_rms_norm", a.in[0], &a.in[1], a.in[2], &a.out[0], a.out[1], a.params.f[0]);
}

}  // namespace lk
