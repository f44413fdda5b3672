// rope: rotary position embedding of x [T, H, D] at positions [T] with inv_freq [R/2] (cpu/ref/rope_ref.cc has
// the math and both pairings). Per token the R/2 angles' cos and sin are computed once and shared by the H heads;
// the rotation in f32 through common/rope.h (shared with rope_cache_write, so the fused op writes the same K);
// tokens in parallel.
// Run: lk_check --op rope.
#include <cmath>
#include <vector>

#include "../common/rope.h"
#include "elementwise.h"
#include "rows.h"

namespace lk {

namespace {

template <DType T>
Status rope_rows(const TensorView& x, const int32_t* pos, const float* f, int64_t half, const TensorView& y, int64_t t0,
                 int64_t t1, bool interleaved) {
  const int64_t H = x.shape[1], D = x.shape[2];
  std::vector<float> buf(static_cast<size_t>(2 * half + D));
  float* c = buf.data();
  float* s = c + half;
  float* row = s + half;
  for (int64_t t = t0; t < t1; ++t) {
    if (pos[t] < 0) return range_error("rope: expected positions >= 0 for positions[" + std::to_string(t) + "], got " + std::to_string(pos[t]));
    rope_angles(pos[t], f, half, c, s);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t off = (t * H + h) * D;
      for (int64_t d = 0; d < D; ++d) row[d] = ld<T>(x.data, off + d);
      rope_rotate_row(row, half, c, s, interleaved);
      for (int64_t d = 0; d < D; ++d) st<T>(y.data, off + d, row[d]);
    }
  }
  return Status::OK();
}

}  // namespace

Status rope_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &y = a.out[0];
  const int32_t* pos = static_cast<const int32_t*>(a.in[1].data);
  const float* f = static_cast<const float*>(a.in[2].data);
  const int64_t half = a.in[2].numel();
  const bool interleaved = a.params.i[0] == 1;
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    status = parallel_rows("rope", x.shape[0], x.shape[1] * x.shape[2], [&](int64_t t0, int64_t t1) {
      return rope_rows<decltype(ti)::value>(x, pos, f, half, y, t0, t1, interleaved);
    });
  });
  return status;
}

}  // namespace lk
