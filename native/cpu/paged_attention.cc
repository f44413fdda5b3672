// paged_attention_decode / paged_attention_prefill on the CPU (the math: cpu/ref/paged_attention_ref.cc; the
// cache layout: common/kv.h). This file is the driver and the portable kernel; simd/paged_attention_kernel.inc has
// the AVX2 / AVX-512VL kernel.
//
// Work: a group is the query rows that read one KV head of one sequence: for decode the G = H / Hkv heads of that
// KV head (the K/V rows are read once for all of them, which is what makes GQA cheap); for prefill those heads
// times a tile of query tokens (up to 64 rows). A group's key positions [lo_min, hi_max] are split into partitions
// (flash-decoding) when there are too few groups to keep every thread busy: each partition runs the online
// softmax into its own (m, l, acc), and the partitions are merged (m = max m_p, l = sum l_p e^(m_p - m),
// acc = sum acc_p e^(m_p - m)) before y = acc / l. A sliding window skips the positions no row of a group sees.
// Threads take items (group partitions) from a shared counter, largest first, so that long and short contexts of
// one batch balance.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "../common/kv.h"
#include "../common/thread_pool.h"
#include "cpu.h"
#include "scratch.h"
#include "simd/paged_attention.h"

namespace lk {

namespace {

// ---------------------------------------------------------------------------------------------------------------
// The portable task: the SIMD kernel's steps in plain loops (same state, same masking).

void load_rows_scalar(const AttnTask& t, const KvGeom& g, int64_t kh, int which, int64_t c0, int n, float* dst, float* sc) {
  const size_t es = dtype_size(g.dtype);
  int64_t j = c0 / t.P, off = c0 % t.P;
  for (int i = 0; i < n; ++i) {
    const int64_t row = ((static_cast<int64_t>(t.table[j]) * t.hkv + kh) * 2 + which) * t.P + off;
    const char* src = static_cast<const char*>(t.kv) + row * t.D * es;
    for (int64_t k = 0; k < t.D; ++k) dst[i * t.Dp + k] = kv_load(src, g.dtype, k);
    for (int64_t k = t.D; k < t.Dp; ++k) dst[i * t.Dp + k] = 0.0f;
    sc[i] = t.kv_scale ? t.kv_scale[row] : 1.0f;
    if (++off == t.P) off = 0, ++j;
  }
}

void attend_scalar(const AttnTask& t, const KvGeom& g) {
  const int64_t Dp = t.Dp;
  float* Vf = t.scratch;
  float* Kf = Vf + kAttnChunk * Dp;
  float* s = Kf + kAttnChunk * Dp;
  float* ksc = s + kAttnStride;
  float* vsc = ksc + kAttnStride;
  for (int64_t c0 = t.t0, c1; c0 < t.t1; c0 = c1) {  // aligned chunks, like the SIMD kernel's
    c1 = std::min<int64_t>((c0 / kAttnChunk + 1) * kAttnChunk, t.t1);
    const int n = static_cast<int>(c1 - c0);
    for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
      load_rows_scalar(t, g, kh, 0, c0, n, Kf, ksc);
      load_rows_scalar(t, g, kh, 1, c0, n, Vf, vsc);
      for (int64_t r = (kh - t.kh0) * t.Rh; r < (kh - t.kh0 + 1) * t.Rh; ++r) {
        const int64_t a = std::max<int64_t>(t.lo[r], c0), b = std::min<int64_t>(t.hi[r], c0 + n - 1);
        if (a > b) continue;
        const float* q = t.q + r * Dp;
        if (t.qscale) {  // i8: the integer spec of common/kv.h, step by step
          float w[kAttnChunk];
          uint8_t u[kAttnChunk];
          float mk = -INFINITY;
          for (int64_t p = a; p <= b; ++p) {
            const int k = static_cast<int>(p - c0);
            float dot = 0;  // integers: exact
            for (int64_t d = 0; d < Dp; ++d) dot += q[d] * Kf[k * Dp + d];
            s[k] = kv_score_i8(static_cast<int64_t>(dot), ksc[k], t.qscale[r], t.cap, t.slope ? t.slope[r] : 0.0f, p, t.hi[r]);
            mk = std::max(mk, s[k]);
          }
          float esum = 0;
          for (int64_t p = a; p <= b; ++p) {
            const float e = kv_exp(s[p - c0] - mk);
            esum += e;
            w[p - a] = e * vsc[p - c0];
          }
          const float c = kv_quantize_weights(w, static_cast<int>(b - a + 1), u);
          const float m_new = std::max(mk, t.m[r]);
          const float alpha = t.m[r] == -INFINITY ? 0.0f : kv_exp(t.m[r] - m_new);
          const float beta = kv_exp(mk - m_new);
          float* acc = t.acc + r * Dp;
          for (int64_t d = 0; d < Dp; ++d) acc[d] *= alpha;
          for (int64_t p = a; p <= b; ++p) {
            const float wt = static_cast<float>(u[p - a]) * (c * beta);
            for (int64_t d = 0; d < Dp; ++d) acc[d] += wt * Vf[(p - c0) * Dp + d];
          }
          t.l[r] = t.l[r] * alpha + beta * esum;
          t.m[r] = m_new;
          continue;
        }
        float mc = -INFINITY;
        for (int64_t p = a; p <= b; ++p) {
          const int k = static_cast<int>(p - c0);
          float dot = 0;
          for (int64_t d = 0; d < Dp; ++d) dot += q[d] * Kf[k * Dp + d];
          float v = dot * ksc[k];
          if (t.qscale) v *= t.qscale[r];
          if (t.cap > 0) v = t.cap * std::tanh(v / t.cap);
          if (t.slope) v += t.slope[r] * (static_cast<float>(p) - static_cast<float>(t.hi[r]));
          s[k] = v;
          mc = std::max(mc, v);
        }
        const float m_new = std::max(mc, t.m[r]);
        const float alpha = t.m[r] == -INFINITY ? 0.0f : std::exp(t.m[r] - m_new);
        float* acc = t.acc + r * Dp;
        if (alpha != 1.0f)
          for (int64_t d = 0; d < Dp; ++d) acc[d] *= alpha;
        float sum = 0;
        for (int64_t p = a; p <= b; ++p) {
          const int k = static_cast<int>(p - c0);
          const float e = std::exp(s[k] - m_new);
          sum += e;
          const float w = e * vsc[k];
          for (int64_t d = 0; d < Dp; ++d) acc[d] += w * Vf[k * Dp + d];
        }
        t.l[r] = t.l[r] * alpha + sum;
        t.m[r] = m_new;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The driver.

struct Group {
  int64_t b, kh0, kh1;   // KV heads [kh0, kh1): all of them for decode (whole blocks stream), one for prefill
  int64_t q_first, nq;   // the group's query tokens: local indices [q_first, q_first + nq) of sequence b
  int64_t lo, hi;        // key positions seen by some row: [lo, hi]
  int64_t parts = 1;
  int64_t partial = -1;  // index of its first partition's state in the partial store, or -1 (written to y directly)
};

struct Item {
  int64_t group, part, t0, t1;
};

}  // namespace

static Status paged_attention_cpu(const OpArgs& a, bool prefill) {
  const char* op = prefill ? "paged_attention_prefill" : "paged_attention_decode";
  const TensorView &q = a.in[0], &kv = a.in[1], &kv_scale = a.in[2], &bt = a.in[3], &lens = a.in[4];
  const TensorView* qs_view = prefill ? &a.in[5] : nullptr;
  const TensorView& alibi = a.in[prefill ? 6 : 5];
  const TensorView& y = a.out[0];
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_paged_args(op, g, bt, lens, qs_view, q.shape[0]));
  const int64_t B = lens.shape[0], H = q.shape[1], D = g.d, G = H / g.hkv, Dp = (D + 7) / 8 * 8;
  const int64_t max_blocks = bt.shape[1];
  const float scale = static_cast<float>(a.params.f[0]), cap = static_cast<float>(a.params.f[1]);
  const int64_t window = a.params.i[0];
  const int32_t* ctx = static_cast<const int32_t*>(lens.data);
  const int32_t* qs = qs_view ? static_cast<const int32_t*>(qs_view->data) : nullptr;
  const float* slopes = alibi.numel() ? static_cast<const float*>(alibi.data) : nullptr;
  ThreadPool& pool = ThreadPool::global();
  const int threads = pool.threads();

  // Query token i of sequence b (local index) sits at pos = L - nq + i and sees [lo(pos), pos].
  auto nq_of = [&](int64_t b) -> int64_t { return qs ? qs[b + 1] - qs[b] : 1; };
  auto lo_of = [&](int64_t pos) -> int64_t { return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0; };
  const int64_t qtile = prefill ? std::max<int64_t>(1, 64 / G) : 1;
  const int64_t heads_per_group = prefill ? 1 : g.hkv;
  const bool int_qk = g.dtype == DType::i8;  // integer q . k (the reference's spec for i8 caches)
  const int64_t Dq8 = (D + 63) / 64 * 64;

  std::vector<Group> groups;
  std::vector<Item> items;
  bool small = false;  // too little work to wake the pool for (set below)
  std::vector<float> partial;
  try {
    int64_t total = 0;  // key positions x rows, for the partition size
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = ctx[b], nq = nq_of(b);
      for (int64_t i0 = 0; i0 < nq; i0 += qtile)
        for (int64_t kh = 0; kh < g.hkv; kh += heads_per_group) {
          Group gr;
          gr.b = b, gr.kh0 = kh, gr.kh1 = std::min(g.hkv, kh + heads_per_group), gr.q_first = i0, gr.nq = std::min(qtile, nq - i0);
          const int64_t pos0 = L - nq + i0, pos1 = pos0 + gr.nq - 1;
          gr.lo = lo_of(pos0), gr.hi = pos1;  // empty (hi < lo) for a decode over an empty context
          total += std::max<int64_t>(0, gr.hi - gr.lo + 1) * gr.nq * G * (gr.kh1 - gr.kh0);
          groups.push_back(gr);
        }
    }
    // Partition size: the caller's, or none when there are enough groups, else about 4 items per thread (at least
    // 256 positions each, so the merge stays negligible), in whole chunks. A call with little work in all (below
    // ~2^19 multiply-adds: a small model's decode step) runs on one thread, unsplit: waking the pool would cost more
    // than the second core gives (measured on tiny-py, bench/NOTES.md "Models").
    small = static_cast<double>(total) * static_cast<double>(D) * 2.0 < static_cast<double>(1 << 19);
    int64_t psize = a.params.i[1];
    const int64_t target = 4 * static_cast<int64_t>(threads);
    if (psize == 0) {
      psize = INT64_MAX;
      if (static_cast<int64_t>(groups.size()) < target && threads > 1 && !small) {
        const int64_t want = (total / (H * qtile) + target - 1) / target;  // positions per item
        psize = std::max<int64_t>(256, (want + kAttnChunk - 1) / kAttnChunk * kAttnChunk);
      }
    }
    int64_t partial_floats = 0;
    for (int64_t gi = 0; gi < static_cast<int64_t>(groups.size()); ++gi) {
      Group& gr = groups[static_cast<size_t>(gi)];
      const int64_t len = gr.hi - gr.lo + 1;
      if (len <= 0) {
        items.push_back({gi, 0, 0, 0});  // writes zeros
        continue;
      }
      gr.parts = len <= psize ? 1 : (len + psize - 1) / psize;
      const int64_t rows = gr.nq * G * (gr.kh1 - gr.kh0);
      if (gr.parts > 1) {
        gr.partial = partial_floats;
        partial_floats += gr.parts * rows * (Dp + 2);
      }
      // Equal parts, their inner boundaries on multiples of kAttnChunk (the i8 spec's aligned chunks must not be
      // cut; common/kv.h). psize may be INT64_MAX (one part): no lo + psize.
      auto bound = [&](int64_t p) -> int64_t {
        if (p == 0) return gr.lo;
        if (p == gr.parts) return gr.hi + 1;
        const int64_t b = (gr.lo + p * (len / gr.parts)) / kAttnChunk * kAttnChunk;
        return std::min(std::max(b, gr.lo), gr.hi + 1);
      };
      for (int64_t p = 0; p < gr.parts; ++p)
        if (bound(p + 1) > bound(p)) items.push_back({gi, p, bound(p), bound(p + 1)});
    }
    partial.resize(static_cast<size_t>(partial_floats));
    for (const Group& gr : groups)  // m = -inf: a part left empty by the aligned boundaries merges as nothing
      if (gr.partial >= 0)
        for (int64_t p = 0; p < gr.parts; ++p)
          std::fill_n(partial.begin() + gr.partial + p * gr.nq * G * (gr.kh1 - gr.kh0) * (Dp + 2), gr.nq * G * (gr.kh1 - gr.kh0), -INFINITY);
    std::sort(items.begin(), items.end(), [&](const Item& x, const Item& z) {
      const Group &gx = groups[static_cast<size_t>(x.group)], &gz = groups[static_cast<size_t>(z.group)];
      return (x.t1 - x.t0) * gx.nq * (gx.kh1 - gx.kh0) > (z.t1 - z.t0) * gz.nq * (gz.kh1 - gz.kh0);
    });
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, std::string(op) + ": out of memory for the work list");
  }

  const SimdLevel simd = cpu_simd_level();
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  // y index of row r of a group: rows are head-major, then token-major ([kv head][token][G]), so the G heads of a
  // token are adjacent (the SIMD kernel tiles rows that share a range).
  auto y_index = [&](const Group& gr, int64_t r) -> int64_t {
    const int64_t Rh = gr.nq * G, k = r / Rh, rr = r % Rh;
    const int64_t i = gr.q_first + rr / G, h = (gr.kh0 + k) * G + rr % G;
    const int64_t token = qs ? qs[gr.b] + i : gr.b;
    return (token * H + h) * D;
  };
  auto finalize = [&](const Group& gr, int64_t r, float l, const float* acc) {
    const int64_t yi = y_index(gr, r);
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t d = 0; d < D; ++d) store_f32(y.data, y.dtype, yi + d, l > 0 ? acc[d] * inv : 0.0f);
  };
  auto worker = [&](int64_t, int64_t, int) {
    thread_local ScratchBuf buf;
    // The group whose rows (q, its i8 form, ranges, slopes) the scratch holds: a thread often takes several
    // partitions of one group in a row (they sort together), and preparing q once per group, not per partition,
    // saved ~5% at B = 1 (bench/NOTES.md step 23).
    int64_t prepared = -1;
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < static_cast<int64_t>(items.size());) {
      const Item& it = items[static_cast<size_t>(k)];
      const Group& gr = groups[static_cast<size_t>(it.group)];
      const int64_t Rh = gr.nq * G, R = Rh * (gr.kh1 - gr.kh0);
      const int64_t own = (R * Dp + 2 * R) + R * Dp + 3 * R + attn_scratch_floats(Rh, Dp) + 64 +
                          (int_qk ? R * Dq8 / 4 + 2 * R + 16 : 0);
      float* const before = buf.get<float>(0);
      float* mem = buf.get<float>(static_cast<size_t>(own));
      if (!mem) {
        failed = true;
        return;
      }
      if (mem != before) prepared = -1;  // the buffer moved: nothing in it is kept
      float* scratch = mem;  // 64-byte aligned first
      float* qf = scratch + (attn_scratch_floats(Rh, Dp) + 15) / 16 * 16;
      float* st = qf + R * Dp;  // m, l, acc of this item (unless it writes into the partial store)
      int32_t* lo = reinterpret_cast<int32_t*>(st + R * (Dp + 2));
      int32_t* hi = lo + R;
      float* sl = reinterpret_cast<float*>(hi + R);
      float* qsc = sl + R;                                   // i8 caches: [R] scales,
      int32_t* qsm = reinterpret_cast<int32_t*>(qsc + R);     // [R] sums,
      int8_t* q8 = reinterpret_cast<int8_t*>(qsm + R + 16 - (R % 16));  // [R][Dq8] bytes (64-byte aligned rows)
      const int64_t L = ctx[gr.b], nq = nq_of(gr.b);
      float* m = gr.partial >= 0 ? partial.data() + gr.partial + it.part * R * (Dp + 2) : st;
      float* l = m + R;
      float* acc = l + R;
      for (int64_t r = 0; r < R; ++r) m[r] = -INFINITY, l[r] = 0;
      for (int64_t r = 0; r < R && it.group != prepared; ++r) {
        const int64_t pos = L - nq + gr.q_first + (r % Rh) / G;
        hi[r] = static_cast<int32_t>(pos);
        lo[r] = static_cast<int32_t>(lo_of(pos));
        if (slopes) sl[r] = slopes[(gr.kh0 + r / Rh) * G + r % G];
        const int64_t qi = y_index(gr, r);
        for (int64_t d = 0; d < D; ++d) qf[r * Dp + d] = load_f32(q.data, q.dtype, qi + d) * scale;
        for (int64_t d = D; d < Dp; ++d) qf[r * Dp + d] = 0.0f;
        if (int_qk) {  // the reference's kv_quantize_query, then the integers as exact f32 for the f32 kernels
          int8_t* qr = q8 + r * Dq8;
          qsc[r] = kv_quantize_query(qf + r * Dp, D, qr);
          int32_t sum = 0;
          for (int64_t d = 0; d < D; ++d) sum += qr[d], qf[r * Dp + d] = static_cast<float>(qr[d]);
          for (int64_t d = D; d < Dq8; ++d) qr[d] = 0;
          qsm[r] = sum;
        }
      }
      prepared = it.group;
      std::memset(acc, 0, static_cast<size_t>(R * Dp) * sizeof(float));
      if (it.t1 > it.t0) {
        AttnTask t;
        t.q = qf, t.lo = lo, t.hi = hi, t.slope = slopes ? sl : nullptr;
        t.q8 = int_qk ? q8 : nullptr, t.qsum = int_qk ? qsm : nullptr, t.qscale = int_qk ? qsc : nullptr;
        t.Dq8 = static_cast<int32_t>(Dq8);
        t.R = static_cast<int32_t>(R), t.Rh = static_cast<int32_t>(Rh), t.D = static_cast<int32_t>(D), t.Dp = static_cast<int32_t>(Dp), t.cap = cap;
        t.t0 = it.t0, t.t1 = it.t1;
        t.table = static_cast<const int32_t*>(bt.data) + gr.b * max_blocks;
        t.P = g.p, t.hkv = g.hkv, t.kh0 = gr.kh0, t.kh1 = gr.kh1;
        t.kv = kv.data, t.kv_scale = g.quantized() ? static_cast<const float*>(kv_scale.data) : nullptr;
        t.kv_dtype = static_cast<int32_t>(g.dtype);
        t.m = m, t.l = l, t.acc = acc, t.scratch = scratch;
#if defined(LLMK_HAVE_AVX512_TU)
        if (simd >= SimdLevel::avx512 && D == Dp) paged_attention_avx512_task(t);
        else
#endif
#if defined(LLMK_HAVE_AVX2_TU)
        if (simd >= SimdLevel::avx2 && D == Dp) paged_attention_avx2_task(t);
        else
#endif
          attend_scalar(t, g);
      }
      if (gr.partial < 0)
        for (int64_t r = 0; r < R; ++r) finalize(gr, r, l[r], acc + r * Dp);
    }
  };
  const int nt = small && a.params.i[1] == 0 ? 1 : static_cast<int>(std::min<int64_t>(threads, static_cast<int64_t>(items.size())));
  if (nt > 0) pool.parallel_for(nt, worker, nt);
  if (failed) return Status(Code::oom, std::string(op) + ": out of memory for the scratch buffers");

  // Merge the partitions of split groups.
  std::vector<int64_t> split;
  for (int64_t gi = 0; gi < static_cast<int64_t>(groups.size()); ++gi)
    if (groups[static_cast<size_t>(gi)].partial >= 0) split.push_back(gi);
  if (!split.empty()) {
    pool.parallel_for(static_cast<int64_t>(split.size()), [&](int64_t s0, int64_t s1, int) {
      std::vector<float> acc(static_cast<size_t>(Dp));
      for (int64_t s = s0; s < s1; ++s) {
        const Group& gr = groups[static_cast<size_t>(split[static_cast<size_t>(s)])];
        const int64_t R = gr.nq * G * (gr.kh1 - gr.kh0);
        for (int64_t r = 0; r < R; ++r) {
          float M = -INFINITY;
          for (int64_t p = 0; p < gr.parts; ++p) M = std::max(M, partial[static_cast<size_t>(gr.partial + p * R * (Dp + 2) + r)]);
          float l = 0;
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int64_t p = 0; p < gr.parts; ++p) {
            const float* base = partial.data() + gr.partial + p * R * (Dp + 2);
            if (base[r] == -INFINITY) continue;  // a partition no position of this row falls in
            const float w = std::exp(base[r] - M);
            l += base[R + r] * w;
            const float* pa = base + 2 * R + r * Dp;
            for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += pa[d] * w;
          }
          finalize(gr, r, l, acc.data());
        }
      }
    });
  }
  return Status::OK();
}

Status paged_attention_decode_cpu(const OpArgs& a) { return paged_attention_cpu(a, false); }
Status paged_attention_prefill_cpu(const OpArgs& a) { return paged_attention_cpu(a, true); }

}  // namespace lk
