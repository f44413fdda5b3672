// argmax: ids[b] = the lowest index of the largest logits[b, :].   logits: [B, V] float, ids: [B] i32
// top_k: values[b, :], ids[b, :] = the k largest logits[b, :] (as f32) with their indices, in descending order, ties
// broken by the lower index.   values: [B, k] f32, ids: [B, k] i32, 1 <= k <= min(V, kTopKMax)
//
// The device-side helpers of lib/nn/sampler.ts, which then downloads B ids (greedy) or B x k candidates (top-k
// sampling) instead of the [B, V] logits. Comparisons are of the values as f32 (f16 and bf16 convert exactly), so
// +0 and -0 are one value (a tie, lower index first); -Inf is an ordinary value (a masked token ranks last).
// A row holding a NaN or +Inf, or no finite value, has no answer (the sampler's contract: it throws a RangeError for
// such a row, and a kernel cannot throw): argmax writes -1, top_k writes ids -1 and values NaN for the whole row.
//
// The spec: a scan for the rule above, then a plain scan (argmax) or a stable sort of the indices by value,
// descending (top_k: stability keeps equal values in index order). Exact: every backend must match bit for bit.
#include "ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace lk {

namespace {

// The sampler's rejection rule: a NaN or +Inf anywhere, or no finite value at all.
bool row_invalid(const TensorView& x, int64_t off, int64_t V) {
  bool finite = false;
  for (int64_t j = 0; j < V; ++j) {
    const float v = load_f32(x.data, x.dtype, off + j);
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity()) return true;
    if (std::isfinite(v)) finite = true;
  }
  return !finite;
}

}  // namespace

Status argmax_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &ids = a.out[0];  // [B, V], [B]
  const int64_t B = x.shape[0], V = x.shape[1];
  int32_t* out = static_cast<int32_t*>(ids.data);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t off = b * V;
    if (row_invalid(x, off, V)) {
      out[b] = -1;
      continue;
    }
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (load_f32(x.data, x.dtype, off + j) > load_f32(x.data, x.dtype, off + best)) best = j;  // strict: lowest wins ties
    out[b] = static_cast<int32_t>(best);
  }
  return Status::OK();
}

Status top_k_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &values = a.out[0], &ids = a.out[1];  // [B, V], [B, k], [B, k]
  const int64_t B = x.shape[0], V = x.shape[1], k = values.shape[1];
  float* vals = static_cast<float*>(values.data);
  int32_t* out = static_cast<int32_t*>(ids.data);
  std::vector<int64_t> order(static_cast<size_t>(V));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t off = b * V;
    if (row_invalid(x, off, V)) {
      for (int64_t i = 0; i < k; ++i) {
        vals[b * k + i] = std::numeric_limits<float>::quiet_NaN();
        out[b * k + i] = -1;
      }
      continue;
    }
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
      return load_f32(x.data, x.dtype, off + p) > load_f32(x.data, x.dtype, off + q);
    });
    for (int64_t i = 0; i < k; ++i) {
      vals[b * k + i] = load_f32(x.data, x.dtype, off + order[static_cast<size_t>(i)]);
      out[b * k + i] = static_cast<int32_t>(order[static_cast<size_t>(i)]);
    }
  }
  return Status::OK();
}

namespace {

std::string shape_name(const char* op, int64_t B, int64_t V, int64_t k, DType t, bool special) {
  std::string s = std::string(op) + "(B=" + std::to_string(B) + ",V=" + std::to_string(V);
  if (k > 0) s += ",k=" + std::to_string(k);
  return s + "," + dtype_name(t) + (special ? ",special" : "") + ")";
}

}  // namespace

// Random data in [-2, 2): in f16 and bf16 (and for V = 152064 even in f32) many values repeat, so ties at the top and
// at the k-th place occur; `special` mixes in NaN, +-Inf, -0 and subnormals, so that some rows are rejected and
// some hold -Inf.
std::vector<OpCase> argmax_cases() {
  std::vector<OpCase> cs;
  struct S { int64_t B, V; bool special; };
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (S s : {S{1, 1, false}, S{3, 7, false}, S{5, 33, false}, S{2, 1000, false}, S{3, 4099, false}, S{1, 152064, false},
                S{9, 7, true}, S{6, 33, true}}) {
      OpCase c;
      c.name = shape_name("argmax", s.B, s.V, 0, t, s.special);
      c.in = {{t, {s.B, s.V}}};
      c.out = {{DType::i32, {s.B}}};
      c.special_values = s.special;
      cs.push_back(c);
    }
  return cs;
}

std::vector<OpCase> top_k_cases() {
  std::vector<OpCase> cs;
  struct S { int64_t B, V, k; bool special; };
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (S s : {S{1, 1, 1, false}, S{3, 7, 1, false}, S{3, 7, 7, false}, S{5, 33, 7, false}, S{2, 33, 33, false},
                S{2, 1000, 50, false}, S{3, 4099, 1024, false}, S{2, 2048, 1000, false}, S{1, 152064, 1, false},
                S{1, 152064, 50, false}, S{9, 7, 3, true}, S{6, 33, 7, true}}) {
      OpCase c;
      c.name = shape_name("top_k", s.B, s.V, s.k, t, s.special);
      c.in = {{t, {s.B, s.V}}};
      c.out = {{DType::f32, {s.B, s.k}}, {DType::i32, {s.B, s.k}}};
      c.special_values = s.special;
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
