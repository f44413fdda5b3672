// argmax: ids[b] = the lowest index of the row's largest logit; top_k: the k largest of each row with their
// indices, descending, ties by lower index (cpu/ref/sampling_ref.cc is the spec: exact, bit for bit).
//   logits [B, V] f32/f16/bf16 -> argmax ids [B] i32; top_k values [B, k] f32, ids [B, k] i32
// A row holding NaN or +Inf, or no finite value, gets -1 (argmax) or ids -1 and values NaN (top_k).
//
// Rows in parallel (parallel_rows). argmax: a branch-free pass for the maximum (8 lanes) and the rejection flags,
// then a scan for the first index holding the maximum (the lowest index of a tie). top_k: one pass for the flags, then a bounded heap of the k
// best seen so far whose root is the worst of them (worse = smaller value, or the same value and a higher index);
// since the scan goes in index order, a later equal value never displaces an earlier one. Most elements of a long
// row lose the one comparison with the root, so the pass costs about V compares plus O(k log k) for the survivors.
// A row is not split over threads for B = 1 (not measured as worth it: on this loaded 2-core VM the whole argmax of
// V = 152064 f32 through the Node API took ~0.25 ms with the first, branchy version, against ~20 ms for the JS
// sampler's download and scan). Run: lk_check --op argmax / --op top_k.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "elementwise.h"
#include "rows.h"

namespace lk {

namespace {

// The rejection rule of the spec, from the flags of one pass.
template <DType T>
bool row_invalid(const void* x, int64_t off, int64_t V) {
  bool finite = false;
  for (int64_t j = 0; j < V; ++j) {
    const float v = ld<T>(x, off + j);
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity()) return true;
    finite |= v != -std::numeric_limits<float>::infinity();
  }
  return !finite;
}

template <DType T>
void argmax_rows(const void* x, int32_t* ids, int64_t r0, int64_t r1, int64_t V) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t off = r * V;
    // Pass 1, branch-free so that it vectorizes: the maximum in 8 lanes (a NaN never replaces a lane's value) and
    // the flags. Pass 2: the first index holding the maximum (== also matches -0 against +0: the lowest index of
    // the tie, as in the spec). The second pass usually stops early and reads the row from cache.
    float m[8] = {-kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf};
    bool bad = false, finite = false;
    int64_t j = 0;
    for (; j + 8 <= V; j += 8)
      for (int l = 0; l < 8; ++l) {
        const float v = ld<T>(x, off + j + l);
        bad |= (v != v) | (v == kInf);
        finite |= v != -kInf;
        m[l] = v > m[l] ? v : m[l];
      }
    for (; j < V; ++j) {
      const float v = ld<T>(x, off + j);
      bad |= (v != v) | (v == kInf);
      finite |= v != -kInf;
      m[0] = v > m[0] ? v : m[0];
    }
    if (bad || !finite) {
      ids[r] = -1;
      continue;
    }
    float best = m[0];
    for (int l = 1; l < 8; ++l) best = m[l] > best ? m[l] : best;
    int64_t at = 0;
    while (ld<T>(x, off + at) != best) ++at;  // found: best is one of the row's values
    ids[r] = static_cast<int32_t>(at);
  }
}

struct Cand {
  float v;
  int32_t i;
};
// a ranks before b: larger value, or the same value and a lower index (+0 and -0 are one value).
inline bool before(const Cand& a, const Cand& b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }

template <DType T>
void top_k_rows(const void* x, float* vals, int32_t* ids, int64_t r0, int64_t r1, int64_t V, int64_t k) {
  std::vector<Cand> heap;
  heap.reserve(static_cast<size_t>(k));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t off = r * V;
    float* vo = vals + r * k;
    int32_t* io = ids + r * k;
    if (row_invalid<T>(x, off, V)) {
      for (int64_t i = 0; i < k; ++i) {
        vo[i] = std::numeric_limits<float>::quiet_NaN();
        io[i] = -1;
      }
      continue;
    }
    // With `before` as the heap's "less", the root is the candidate that ranks last.
    heap.clear();
    for (int64_t j = 0; j < k; ++j) heap.push_back({ld<T>(x, off + j), static_cast<int32_t>(j)});
    std::make_heap(heap.begin(), heap.end(), before);
    for (int64_t j = k; j < V; ++j) {
      const float v = ld<T>(x, off + j);
      if (!(v > heap.front().v)) continue;  // an equal value at a higher index ranks after the root too
      std::pop_heap(heap.begin(), heap.end(), before);
      heap.back() = {v, static_cast<int32_t>(j)};
      std::push_heap(heap.begin(), heap.end(), before);
    }
    std::sort_heap(heap.begin(), heap.end(), before);  // ascending under `before`: the best first
    for (int64_t i = 0; i < k; ++i) {
      vo[i] = heap[static_cast<size_t>(i)].v;
      io[i] = heap[static_cast<size_t>(i)].i;
    }
  }
}

}  // namespace

Status argmax_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &ids = a.out[0];  // [B, V], [B]
  const int64_t B = x.shape[0], V = x.shape[1];
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    status = parallel_rows("argmax", B, V, [&](int64_t r0, int64_t r1) -> Status {
      argmax_rows<decltype(ti)::value>(x.data, static_cast<int32_t*>(ids.data), r0, r1, V);
      return Status::OK();
    });
  });
  return status;
}

Status top_k_cpu(const OpArgs& a) {
  const TensorView &x = a.in[0], &vals = a.out[0], &ids = a.out[1];  // [B, V], [B, k], [B, k]
  const int64_t B = x.shape[0], V = x.shape[1], k = vals.shape[1];
  Status status = Status::OK();
  dispatch_float(x.dtype, [&](auto ti) {
    status = parallel_rows("top_k", B, V, [&](int64_t r0, int64_t r1) -> Status {
      top_k_rows<decltype(ti)::value>(x.data, static_cast<float*>(vals.data), static_cast<int32_t*>(ids.data), r0, r1, V, k);
      return Status::OK();
    });
  });
  return status;
}

}  // namespace lk
