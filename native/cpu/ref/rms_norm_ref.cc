// rms_norm: y = x * w / sqrt(mean(x^2) + eps) per row.   x, y: [..., N] one float dtype, w: [N] float, f[0] = eps
// add_rms_norm: s = x + r rounded to x's dtype (the new residual stream), then y = rms_norm(s, w).   r: x's shape
//
// Hugging Face's LlamaRMSNorm in f32 storage: the mean of squares and the scaling in float, weight times the
// normalized value. The reference sums in double; the kernels in f32 (tolerance: the matmul rows).
#include "ref.h"

#include <cmath>

namespace lk {

namespace {

void rms_row(const TensorView& src, int64_t off, const TensorView& w, double eps, const TensorView& y, int64_t N) {
  double ss = 0;
  for (int64_t j = 0; j < N; ++j) {
    const double v = load_f32(src.data, src.dtype, off + j);
    ss += v * v;
  }
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(N) + eps);
  for (int64_t j = 0; j < N; ++j)
    store_f32(y.data, y.dtype, off + j, static_cast<float>(load_f32(src.data, src.dtype, off + j) * inv * load_f32(w.data, w.dtype, j)));
}

}  // namespace

Status rms_norm_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &w = a.in[1], &y = a.out[0];
  const int64_t N = x.cols(), rows = x.rows();
  for (int64_t r = 0; r < rows; ++r) rms_row(x, r * N, w, a.params.f[0], y, N);
  return Status::OK();
}

Status add_rms_norm_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &res = a.in[1], &w = a.in[2], &s = a.out[0], &y = a.out[1];
  const int64_t N = x.cols(), rows = x.rows();
  for (int64_t i = 0; i < rows * N; ++i) store_f32(s.data, s.dtype, i, load_f32(x.data, x.dtype, i) + load_f32(res.data, res.dtype, i));
  for (int64_t r = 0; r < rows; ++r) rms_row(s, r * N, w, a.params.f[0], y, N);
  return Status::OK();
}

namespace {

std::vector<OpCase> norm_cases(bool add) {
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (DType wt : {DType::f32, t})
      for (auto rn : {std::pair<int64_t, int64_t>{1, 1}, {1, 7}, {7, 33}, {5, 256}, {33, 688}, {3, 4099}}) {
        OpCase c;
        c.name = std::string(add ? "add_rms_norm" : "rms_norm") + "(rows=" + std::to_string(rn.first) + ",N=" +
                 std::to_string(rn.second) + "," + dtype_name(t) + ",w=" + dtype_name(wt) + ")";
        c.in = {{t, {rn.first, rn.second}}};
        if (add) c.in.push_back({t, {rn.first, rn.second}});
        c.in.push_back({wt, {rn.second}});
        c.out = {{t, {rn.first, rn.second}}};
        if (add) c.out.push_back({t, {rn.first, rn.second}});
        c.params.f[0] = rn.second == 7 ? 0.5 : 1e-5;  // a large eps once, so that it matters
        cs.push_back(c);
      }
  return cs;
}

}  // namespace

std::vector<OpCase> rms_norm_cases() { return norm_cases(false); }
std::vector<OpCase> add_rms_norm_cases() { return norm_cases(true); }

}  // namespace lk
