// paged_attention_prefill on CUDA (spec: cpu/ref/paged_attention_ref.cc; cache layout and quantization:
// common/kv.h). FlashAttention-2-style tiles that walk each sequence's block table; ragged batches (query_start)
// and chunked prefill (the nq new queries are the last nq positions of a longer cached context).
//
// Math. Query i of sequence b (nq = query_start[b + 1] - query_start[b], L = context_lens[b]) sits at position
// pos = L - nq + i and sees positions t in [t0, pos], t0 = max(0, pos - W + 1) with a sliding window W > 0, else 0.
// Query head h reads KV head h / (H / Hkv). Scores in f32:
//   float caches (f32/f16/bf16/f8e4m3): s_t = (f32(q) * scale) . k_t, where k_t is the stored value (f8e4m3: times
//     the row's scale); cap > 0: s = cap tanh(s / cap); ALiBi: s += slope[h] (t - pos).
//   i8 caches: kv.h's integer spec: q' = f32(q) * f32(scale) quantized per row (quantize_act_block: s_q = amax / 127,
//     round half to even), s_t = kv_score_i8(q8 . k8_t, s_k(t), s_q, cap, slope, t, pos); the dot of integers in f32
//     is exact (|sum| <= D 127^2 < 2^24 for D <= 1024).
// Softmax online over KV tiles (FA2): per row a running max m and sum l in f32, O in f32 registers:
//   m' = max(m, max_t s_t), c = e^(m - m'), p_t = e^(s_t - m'), l' = c l + sum p_t, O' = c O + sum_t p_t v_t,
//   y = O / l at the end (l = 0, nothing seen: y = 0), rounded once to q's dtype.
// i8 caches follow the chunk spec of kv.h exactly per aligned chunk of 16 positions (the KV tile is 16 or 32
// positions aligned to absolute multiples of the tile, so every chunk lies in one tile): m_k = max of the chunk's
// visible scores, e_t = kv_exp(s_t - m_k), w_t = e_t s_v(t), u_t = round(w_t 255 / max w) (kv_quantize_weights),
// c_k = max w / 255; the tile's chunks then enter the online softmax as p_t = e^(m_k - m') c_k u_t over the raw i8 V
// rows, and l gets e^(m_k - m') sum e_t. The chunk sums sum_t u_t v8_t are taken in f32 here (products of integers
// < 2^15, sums < 2^24 per chunk: exact) but multiplied by e^(m_k - m') c_k before the sum over chunks (the
// reference multiplies after): a few f32 roundings, judged by tolerance() like every backend's softmax order.
// Differences from the reference (double accumulation): f32 sums in another order, expf/tanhf (2 ulp); the
// tolerance table treats paged attention as approximate.
//
// Tiling. One thread block owns kRows "rows" of one KV head kh: a row is a pair (query r, head g of the KV head's
// group), flattened as r * group + g, so the rows of a block are the group's query heads of one or more consecutive
// queries (GQA: a K/V tile is loaded once for all of them). Tiles of consecutive rows may span sequence boundaries
// (the host does not know query_start: it lives in device memory), so the block walks its rows in segments of one
// sequence each (a binary search of query_start finds the sequence), and for each segment:
//   1. loads its rows' q into shared memory (f32; i8 caches: quantized to integers, per row),
//   2. walks the KV positions [lo, hi), lo = window start of the segment's first query rounded down to the tile,
//      hi = last query's pos + 1 (nothing past what a query can see is read), in tiles of kBc positions; each
//      position's block comes from block_tables (P = 1 .. any: a tile may span several blocks or part of one):
//      a. load the K and V rows of the tile into shared memory dequantized to f32 (f8e4m3 times its row scale; i8
//         raw integers, the scales kept per position for the score and the weights),
//      b. scores: thread (row, t) computes q . k_t from shared memory (K rows padded by one float: lanes read
//         different rows at the same column without bank conflicts; q is a broadcast),
//      c. softmax: one thread per row updates m, l, writes p_t and the rescale factor c (serial over the tile's
//         kBc positions: the simple form of v1),
//      d. O += p V: warp w owns rows w * RW .., lane l columns l, l + 32, .. of D (V reads conflict-free, p a
//         broadcast), O in registers (RW x NJ floats),
//   3. writes y once.
// Shared memory (static, < 48 KiB): K kBc x (32 NJ + 1), V kBc x 32 NJ, q kRows x 32 NJ, p kRows x kBc floats.
// NJ = ceil(D / 32) in {1, 2, 4, 8} (D <= 256; larger D is refused by paged_attention_prefill_cuda_limits);
// NJ <= 4: kRows = 16, kBc = 32 (43 KiB at NJ = 4); NJ = 8: kRows = 8, kBc = 16 (41 KiB).
// Grid: 1-D over (row tile, kh), block = 128 threads (4 warps); the host refuses T * H >= 2^31 rows, so the grid
// (<= T * H / 8 blocks) stays below 2^31 - 1 and row indices fit 32-bit arithmetic.
// ptxas (CUDA 13.0, 60 instantiations per arch: q f32/f16/bf16 x 5 KV dtypes x NJ 1/2/4/8): no spills, no stack;
// registers sm_80 54-71 (NJ 1), 73-80 (NJ 2), 93-103 (NJ 4), 82-85 (NJ 8); sm_90a 54-64, 56-64, 96, 91-93; static
// smem 13.1-13.4 KiB (NJ 1), 23.1-23.4 (2), 43.1-43.4 (4), 41.0-41.2 KiB (8). At <= 128 registers and 43 KiB,
// 4 blocks (16 warps) fit an SM at NJ = 4 (smem-bound on sm_80's 164 KiB).
//
// Expected performance (not measured): SIMT FMA, ~4 block barriers per KV tile. For the bench's 512-token prompt
// (H = 32, Hkv = 8, D = 128, f16 KV) each block (16 rows = 4 queries x 4 heads) reads each KV tile once per 4
// queries, so KV traffic is L2-resident and the kernel is bound by shared-memory bandwidth and FP32 issue: q . k and
// p . v each cost one shared load per FMA, so we expect ~10-20% of the FP32 peak (a few TFLOP/s on A100/H100),
// with the serial softmax (16 of 128 threads) another ~20% of the time. The next version: tensor cores (mma.sync
// m16n8k16 with f16/bf16 tiles, ldmatrix, the softmax in registers per warp as FA2) and cp.async double buffering
// of the K/V tiles; split-KV for long contexts with few queries.
//
// Data-dependent errors (the reference's range errors, which a kernel cannot return: the tables live in device
// memory and the launch does not wait). Nothing is read or written out of bounds:
//  - a block id outside [0, numBlocks), or a position past the table (t / P >= maxBlocks), loads its K and V rows
//    (and scales) as NaN: every row that sees such a position gets NaN (kv_cache.cu / layers.cu's NaN-row policy);
//    rows that do not see it are exact as usual;
//  - a query whose sequence cannot be found (query_start not increasing or not covering it) or whose position is
//    negative (nq > context_lens[b], or a negative length) gets a NaN row.
// Versions: v1 (this), SIMT, not yet run on a GPU. Run: build-gpu/tools/lk_check --backend cuda (correctness),
// native/cuda/emu/run.sh paged_attention_prefill (the same source on the CPU, no GPU).
#include <climits>

#include "../common/kv.h"
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 16;  // kv.h's kKvChunk (i8 weight chunks), repeated as a device constant

// f8e4m3 as a raw bit pattern (a type of its own, for the templates' dispatch).
struct f8_t {
  uint8_t bits;
};

__device__ __forceinline__ float neg_inf() { return __uint_as_float(0xff800000u); }
__device__ __forceinline__ float qnan() { return __uint_as_float(0x7fc00000u); }

// f8e4m3 elements decode through dtype.h's f8e4m3_to_f32 and the i8 spec's exp is kv.h's kv_exp: both are
// host-and-device functions, the references' own code.

// Element j of a cache row as f32 without its scale (i8: the integer; f8e4m3: the decoded value).
__device__ __forceinline__ float kv_raw(const float* p, int64_t j) { return p[j]; }
__device__ __forceinline__ float kv_raw(const f16_t* p, int64_t j) { return to_f32(p[j]); }
__device__ __forceinline__ float kv_raw(const bf16_t* p, int64_t j) { return to_f32(p[j]); }
__device__ __forceinline__ float kv_raw(const int8_t* p, int64_t j) { return static_cast<float>(p[j]); }
__device__ __forceinline__ float kv_raw(const f8_t* p, int64_t j) { return f8e4m3_to_f32(p[j].bits); }

template <class Kv>
struct KvKind {
  static constexpr bool kScaled = false;  // has a kv_scale tensor
  static constexpr bool kInt = false;     // kv.h's integer i8 path
};
template <>
struct KvKind<int8_t> {
  static constexpr bool kScaled = true;
  static constexpr bool kInt = true;
};
template <>
struct KvKind<f8_t> {
  static constexpr bool kScaled = true;
  static constexpr bool kInt = false;
};

struct PrefillArgs {
  const void* q;
  const void* kv;
  const float* kv_scale;
  const int32_t* tables;
  const int32_t* lens;
  const int32_t* qs;
  const float* alibi;  // null: none
  void* y;
  int64_t T, H, hkv, group, D, P, nblocks, max_blocks, B, window;
  int64_t row_tiles, work;  // row tiles per KV head, row_tiles * hkv
  float scale, cap, inv_cap;  // inv_cap = 1 / cap rounded once (float caches; i8 divides, as kv_score_i8)
};

// The sequence b with query_start[b] <= r < query_start[b + 1], or -1 (query_start bad around r). A binary search
// for the last b with query_start[b] <= r (right for any increasing query_start, empty sequences included), then a
// check of the answer, so an unsorted query_start only ever yields -1 or a b whose range holds r.
__device__ __forceinline__ int64_t find_sequence(const int32_t* qs, int64_t B, int64_t r) {
  int64_t lo = 0, hi = B;  // answer in [lo, hi): the last b < B with qs[b] <= r
  if (B <= 0 || qs[0] > r) return -1;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) >> 1;
    if (qs[mid] <= r)
      lo = mid;
    else
      hi = mid;
  }
  return (qs[lo] <= r && r < qs[lo + 1]) ? lo : -1;
}

template <int NJ>
struct Tile {
  static constexpr int kRows = NJ <= 4 ? 16 : 8;  // rows (query, head) per block
  static constexpr int kBc = NJ <= 4 ? 32 : 16;   // KV positions per tile: a multiple of kChunk
  static constexpr int kRW = kRows / kWarps;      // rows per warp in O += p V
  static constexpr int kDP = 32 * NJ;             // D padded to the lanes' columns
  static constexpr int kSPT = kRows * kBc / kThreads;  // scores per thread
  static constexpr int kRowStep = kThreads / kBc;      // row stride between a thread's scores
};

template <class Tq, class Kv, int NJ>
__global__ void __launch_bounds__(kThreads) prefill_kernel(const PrefillArgs a) {
  using TL = Tile<NJ>;
  constexpr int kRows = TL::kRows, kBc = TL::kBc, kRW = TL::kRW, kDP = TL::kDP;
  __shared__ float Ks[kBc][kDP + 1];  // +1: the score phase reads column d of kBc rows at once
  __shared__ float Vs[kBc][kDP];
  __shared__ float Qs[kRows][kDP];
  __shared__ float Ps[kRows][kBc];  // scores, then p
  __shared__ float ksc[kBc], vsc[kBc];        // row scales (quantized caches); NaN for a bad block
  __shared__ int64_t kvoff[kBc];              // element offset of the position's K row; -1 none, -2 bad
  __shared__ float m_run[kRows], l_run[kRows], corr[kRows], sq[kRows], slope[kRows];
  __shared__ int64_t rpos[kRows], rt0[kRows], rout[kRows];  // position, first visible position, y row offset
  __shared__ int rstate[kRows];  // 0 inactive (not in this segment), 1 valid, 2 NaN row

  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int64_t D = a.D, group = a.group, rows_total = a.T * group;
  const Tq* q = static_cast<const Tq*>(a.q);
  const Kv* kv = static_cast<const Kv*>(a.kv);
  Tq* y = static_cast<Tq*>(a.y);

  // Row indices, positions, D and P fit in 32 bits (the host refuses T * H >= 2^31; lengths are i32), so the
  // divisions are 32-bit (a 64-bit one is a subroutine call, whose saved registers ptxas reports as spills);
  // memory offsets are 64-bit products.
  const int hkv = static_cast<int>(a.hkv), group32 = static_cast<int>(group), D32 = static_cast<int>(D);
  const int P32 = static_cast<int>(a.P);
  for (int w = blockIdx.x; w < static_cast<int>(a.work); w += gridDim.x) {
    const int kh = w % hkv, i0 = (w / hkv) * kRows;
    const int iend = i0 + kRows < rows_total ? i0 + kRows : static_cast<int>(rows_total);
    int cur = i0;
    while (cur < iend) {  // one segment (rows of one sequence) per pass; every thread takes the same path
      const int r = cur / group32;
      const int64_t b = find_sequence(a.qs, a.B, r);
      int64_t seg_end = static_cast<int64_t>(r + 1) * group;  // a bad query: its own rows only
      int64_t L = 0, nq = 0, qbase = 0;
      if (b >= 0) {
        L = a.lens[b];
        qbase = a.qs[b];
        nq = static_cast<int64_t>(a.qs[b + 1]) - qbase;
        seg_end = static_cast<int64_t>(a.qs[b + 1]) * group;
      }
      if (seg_end > iend) seg_end = iend;
      // Row setup (one thread per row).
      if (tid < kRows) {
        const int idx = i0 + tid;
        int st = 0;
        if (idx >= cur && idx < seg_end) {
          const int rr = idx / group32, g = idx - rr * group32;
          const int64_t h = static_cast<int64_t>(kh) * group + g;
          const int64_t pos = L - nq + (rr - qbase);
          st = (b >= 0 && pos >= 0) ? 1 : 2;
          rpos[tid] = pos;
          rt0[tid] = a.window > 0 ? (pos - a.window + 1 > 0 ? pos - a.window + 1 : 0) : 0;
          rout[tid] = (static_cast<int64_t>(rr) * a.H + h) * D;
          slope[tid] = a.alibi ? a.alibi[h] : 0.0f;
        }
        rstate[tid] = st;
        m_run[tid] = neg_inf();
        l_run[tid] = 0.0f;
        corr[tid] = 1.0f;
      }
      __syncthreads();
      // The segment's KV range: from the first valid row's window start to the last valid row's position.
      int64_t lo = LLONG_MAX, hi = 0;
      for (int k = 0; k < kRows; ++k)
        if (rstate[k] == 1) {
          lo = rt0[k] < lo ? rt0[k] : lo;
          hi = rpos[k] + 1 > hi ? rpos[k] + 1 : hi;
        }
      // q of the segment's valid rows, times the softmax scale (f32, as the reference's i8 path).
      for (int e = tid; e < kRows * D32; e += kThreads) {
        const int k = e / D32, d = e - k * D32;
        Qs[k][d] = rstate[k] == 1 ? __fmul_rn(to_f32(q[rout[k] + d]), a.scale) : 0.0f;
      }
      __syncthreads();
      if constexpr (KvKind<Kv>::kInt) {
        // quantize_act_block of each row: s_q = amax / 127, q8 = clamp(rint(x (127 / amax)), +-127); a row with
        // NaN/Inf: q8 = 0, s_q = NaN.
        if (tid < kRows && rstate[tid] == 1) {
          float amax = 0.0f;
          bool finite = true;
          for (int64_t d = 0; d < D; ++d) {
            const float x = fabsf(Qs[tid][d]);
            finite = finite && x <= 3.40282347e+38f;
            amax = x > amax ? x : amax;
          }
          const float id = finite && amax > 0.0f ? 127.0f / amax : 0.0f;
          for (int64_t d = 0; d < D; ++d) {
            float v = rintf(__fmul_rn(Qs[tid][d], id));
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            Qs[tid][d] = v;
          }
          sq[tid] = finite ? amax / 127.0f : qnan();
        }
        __syncthreads();
      }
      float o[kRW][NJ];
#pragma unroll
      for (int k = 0; k < kRW; ++k)
#pragma unroll
        for (int j = 0; j < NJ; ++j) o[k][j] = 0.0f;

      const int64_t tstart = hi > lo ? lo / kBc * kBc : hi;
      for (int64_t tb = tstart; tb < hi; tb += kBc) {
        // a. the tile's positions: block lookups (one thread per position), then the rows.
        if (tid < kBc) {
          const int64_t t = tb + tid;
          int64_t off = -1;
          float ks = 0.0f, vs = 0.0f;
          if (t >= lo && t < hi) {
            const int ti = static_cast<int>(t) / P32;  // t < 2^31: lengths are i32
            const int64_t blk = ti < a.max_blocks ? a.tables[b * a.max_blocks + ti] : -1;
            if (blk < 0 || blk >= a.nblocks) {
              off = -2;
              ks = vs = qnan();
            } else {
              const int64_t o_in = t - ti * a.P;
              off = (blk * a.hkv + kh) * 2 * a.P * D + o_in * D;  // K row; V row at + P * D
              if constexpr (KvKind<Kv>::kScaled) {
                const int64_t s0 = (blk * a.hkv + kh) * 2 * a.P + o_in;
                ks = a.kv_scale[s0];
                vs = a.kv_scale[s0 + a.P];
              }
            }
          }
          kvoff[tid] = off;
          ksc[tid] = ks;
          vsc[tid] = vs;
        }
        __syncthreads();
        for (int e = tid; e < kBc * D32; e += kThreads) {
          const int t = e / D32, d = e - t * D32;
          const int64_t off = kvoff[t];
          float kx = 0.0f, vx = 0.0f;
          if (off >= 0) {
            kx = kv_raw(kv + off, d);
            vx = kv_raw(kv + off + a.P * D, d);
            if constexpr (KvKind<Kv>::kScaled && !KvKind<Kv>::kInt) {  // f8e4m3: value = stored x row scale
              kx = __fmul_rn(kx, ksc[t]);
              vx = __fmul_rn(vx, vsc[t]);
            }
          } else if (off == -2) {
            kx = vx = qnan();
          }
          Ks[t][d] = kx;
          Vs[t][d] = vx;
        }
        __syncthreads();
        // b. scores of (row, position) pairs: position tid % kBc, rows tid / kBc + k kRowStep.
        {
          const int t = tid % kBc;
          const int64_t pt = tb + t;
#pragma unroll
          for (int k = 0; k < TL::kSPT; ++k) {
            const int row = tid / kBc + k * TL::kRowStep;
            float s = neg_inf();
            if (rstate[row] == 1 && pt >= rt0[row] && pt <= rpos[row]) {
              float dot = 0.0f;
              for (int64_t d = 0; d < D; ++d) dot = fmaf(Qs[row][d], Ks[t][d], dot);
              const float sl = slope[row];
              if constexpr (KvKind<Kv>::kInt) {  // kv_score_i8
                s = __fmul_rn(__fmul_rn(dot, ksc[t]), sq[row]);
                if (a.cap > 0.0f) s = __fmul_rn(a.cap, tanhf(s / a.cap));
                if (sl != 0.0f) s = fmaf(sl, static_cast<float>(pt - rpos[row]), s);
              } else {
                s = dot;
                if (a.cap > 0.0f) s = a.cap * tanhf(s * a.inv_cap);
                if (a.alibi) s += sl * static_cast<float>(pt - rpos[row]);
              }
            }
            Ps[row][t] = s;
          }
        }
        __syncthreads();
        // c. online softmax, one thread per row. Invisible positions hold -inf; a NaN score (a bad block)
        // propagates into m (NaN-aware max), hence into every p and l of the row.
        if (tid < kRows) {
          const int row = tid;
          if (rstate[row] != 1) {
            for (int t = 0; t < kBc; ++t) Ps[row][t] = 0.0f;
            corr[row] = 1.0f;
          } else if constexpr (!KvKind<Kv>::kInt) {
            float mt = neg_inf();
#pragma unroll 1  // the serial loops stay loops: unrolled, they made ptxas spill a few registers at NJ = 1
            for (int t = 0; t < kBc; ++t) {
              const float s = Ps[row][t];
              mt = (s != s || mt != mt) ? qnan() : fmaxf(mt, s);
            }
            const float m0 = m_run[row];
            const float m1 = (mt != mt) ? mt : fmaxf(m0, mt);
            if (m1 == neg_inf()) {  // nothing visible yet
              for (int t = 0; t < kBc; ++t) Ps[row][t] = 0.0f;
              corr[row] = 1.0f;
            } else {
              const float c = expf(m0 - m1);  // m0 = -inf: 0
              float sum = 0.0f;
#pragma unroll 1
              for (int t = 0; t < kBc; ++t) {
                const float s = Ps[row][t];
                const float p = s == neg_inf() ? 0.0f : expf(s - m1);
                Ps[row][t] = p;
                sum += p;
              }
              corr[row] = c;
              l_run[row] = l_run[row] * c + sum;
              m_run[row] = m1;
            }
          } else {
            // kv.h's chunks: per chunk its own max m_k, e_t, the weights' u8 rounding and c_k; then one rescale
            // of the row to M = max(m, m_k of every non-empty chunk).
            constexpr int kNC = kBc / kChunk;
            float mk[kNC], ck[kNC], ek[kNC];
            float M = m_run[row];
            bool all_nan = false;  // a chunk whose visible scores are all NaN (a NaN q): the reference gives NaN
            for (int c = 0; c < kNC; ++c) {
              float m = neg_inf();  // std::max(m, s) of the reference: a NaN score does not enter m
              bool any = false;
              for (int t = c * kChunk; t < (c + 1) * kChunk; ++t) {
                m = m < Ps[row][t] ? Ps[row][t] : m;
                any = any || Ps[row][t] != neg_inf();
              }
              mk[c] = m;
              ck[c] = 0.0f;
              ek[c] = 0.0f;
              all_nan = all_nan || (any && m == neg_inf());
              if (m == neg_inf()) continue;  // no visible position in the chunk
              float wmax = 0.0f;
              bool finite = true;
              for (int t = c * kChunk; t < (c + 1) * kChunk; ++t) {
                const float s = Ps[row][t];
                float wv = 0.0f;
                if (s != neg_inf()) {  // visible (NaN included)
                  const float e = kv_exp(s - m);
                  ek[c] += e;
                  wv = __fmul_rn(e, vsc[t]);
                }
                finite = finite && wv <= 3.40282347e+38f && wv >= 0.0f;
                wmax = wv > wmax ? wv : wmax;
                Ps[row][t] = wv;  // w for now
              }
              const float inv = finite && wmax != 0.0f ? 255.0f / wmax : 0.0f;
              for (int t = c * kChunk; t < (c + 1) * kChunk; ++t) {
                float u = rintf(__fmul_rn(Ps[row][t], inv));
                Ps[row][t] = u > 255.0f ? 255.0f : u;  // u_t (0 for a non-finite chunk)
              }
              ck[c] = !finite ? qnan() : (wmax == 0.0f ? 0.0f : wmax / 255.0f);
              M = fmaxf(M, m);
            }
            if (M == neg_inf()) {
              for (int t = 0; t < kBc; ++t) Ps[row][t] = 0.0f;
              corr[row] = 1.0f;
              if (all_nan) l_run[row] = qnan();
            } else {
              const float cr = expf(m_run[row] - M);
              float l = l_run[row] * cr;
              for (int c = 0; c < kNC; ++c) {
                const float f = mk[c] == neg_inf() ? 0.0f : expf(mk[c] - M);
                const float fc = f * ck[c];
                l += f * ek[c];
                for (int t = c * kChunk; t < (c + 1) * kChunk; ++t)
                  Ps[row][t] = mk[c] == neg_inf() ? 0.0f : fc * Ps[row][t];  // NaN c_k: NaN p for the whole chunk
              }
              corr[row] = cr;
              l_run[row] = all_nan ? qnan() : l;
              m_run[row] = M;
            }
          }
        }
        __syncthreads();
        // d. O = corr O + p V over the warp's rows; a zero p is skipped (uniform over the warp), so a position that
        // only other rows see (a NaN row of a bad block there) cannot reach this row through 0 * NaN.
#pragma unroll
        for (int k = 0; k < kRW; ++k) {
          const int row = warp * kRW + k;
          const float c = corr[row];
#pragma unroll
          for (int j = 0; j < NJ; ++j) o[k][j] *= c;
          for (int t = 0; t < kBc; ++t) {
            const float p = Ps[row][t];
            if (p == 0.0f) continue;
#pragma unroll
            for (int j = 0; j < NJ; ++j) o[k][j] = fmaf(p, Vs[t][lane + 32 * j], o[k][j]);
          }
        }
        __syncthreads();
      }
      // 3. y = O / l (l = 0: nothing seen, zeros); NaN rows for the data errors.
#pragma unroll
      for (int k = 0; k < kRW; ++k) {
        const int row = warp * kRW + k;
        const int st = rstate[row];
        if (st == 0) continue;
        const float l = l_run[row];
        // __fdividef: 2 ulp, exact enough for 1 <= l < 2^126 (the row's max term is e^0 = 1); IEEE '/' would
        // bring its slow-path subroutine call, whose saved registers ptxas reports as spills.
        const float inv = st == 2 ? qnan() : (l > 0.0f || l != l ? __fdividef(1.0f, l) : 0.0f);
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          const int64_t d = lane + 32 * j;
          if (d < D) y[rout[row] + d] = from_f32<Tq>(st == 2 ? qnan() : (l == 0.0f ? 0.0f : o[k][j] * inv));
        }
      }
      __syncthreads();  // the row state and Qs are rewritten by the next segment
      cur = static_cast<int>(seg_end);
    }
  }
}

// NJ = ceil(D / 32) rounded up to {1, 2, 4, 8}; 0 for D > 256.
int nj_for(int64_t D) { return D <= 32 ? 1 : D <= 64 ? 2 : D <= 128 ? 4 : D <= 256 ? 8 : 0; }

int64_t rows_per_block(int nj) { return nj <= 4 ? Tile<4>::kRows : Tile<8>::kRows; }

template <class Tq, class Kv, int NJ>
void launch(const PrefillArgs& p, cudaStream_t st) {
  const int64_t blocks = p.work < INT_MAX ? p.work : INT_MAX;
  prefill_kernel<Tq, Kv, NJ><<<static_cast<unsigned>(blocks), kThreads, 0, st>>>(p);
}

template <class Tq, class Kv>
void launch_nj(int nj, const PrefillArgs& p, cudaStream_t st) {
  switch (nj) {
    case 1: launch<Tq, Kv, 1>(p, st); break;
    case 2: launch<Tq, Kv, 2>(p, st); break;
    case 4: launch<Tq, Kv, 4>(p, st); break;
    default: launch<Tq, Kv, 8>(p, st); break;
  }
}

}  // namespace

// What the kernel cannot take (backend.cu's supports()): head sizes past the shared-memory tiles.
const char* paged_attention_prefill_cuda_limits(const OpArgs& a) {
  if (a.n_in > 1 && a.in[1].ndim == 5 && nj_for(a.in[1].shape[4]) == 0)
    return "paged_attention_prefill: the cuda kernel takes head sizes D <= 256; use device 'cpu' for larger heads";
  if (a.n_in > 0 && a.in[0].ndim == 3 && a.in[0].shape[0] * a.in[0].shape[1] >= (int64_t{1} << 31) - 64)
    return "paged_attention_prefill: the cuda kernel takes fewer than 2^31 query rows (T * H); split the batch";
  return nullptr;
}

Status paged_attention_prefill_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "paged_attention_prefill", &dev));
  const TensorView &q = a.in[0], &kv = a.in[1], &kv_scale = a.in[2], &bt = a.in[3], &lens = a.in[4],
                   &qs = a.in[5], &alibi = a.in[6], &y = a.out[0];
  const KvGeom g(kv);
  const int nj = nj_for(g.d);
  if (nj == 0)
    return unsupported("paged_attention_prefill: expected a head size D <= 256 for the cuda kernel, got " +
                       std::to_string(g.d));
  PrefillArgs p{};
  p.q = q.data;
  p.kv = kv.data;
  p.kv_scale = static_cast<const float*>(kv_scale.data);
  p.tables = static_cast<const int32_t*>(bt.data);
  p.lens = static_cast<const int32_t*>(lens.data);
  p.qs = static_cast<const int32_t*>(qs.data);
  p.alibi = alibi.numel() ? static_cast<const float*>(alibi.data) : nullptr;
  p.y = y.data;
  p.T = q.shape[0];
  p.H = q.shape[1];
  p.hkv = g.hkv;
  p.D = g.d;
  p.P = g.p;
  p.nblocks = g.nblocks;
  p.max_blocks = bt.shape[1];
  p.B = lens.shape[0];
  p.window = a.params.i[0];
  p.scale = static_cast<float>(a.params.f[0]);
  p.cap = static_cast<float>(a.params.f[1]);
  p.inv_cap = p.cap > 0.0f ? static_cast<float>(1.0 / a.params.f[1]) : 0.0f;
  if (p.T == 0 || p.H == 0 || p.D == 0 || p.hkv == 0) return cuda_last_error("paged_attention_prefill");
  if (p.T * p.H >= (int64_t{1} << 31) - 64)
    return unsupported("paged_attention_prefill: expected fewer than 2^31 query rows (T * H) for the cuda kernel, got " +
                       std::to_string(p.T) + " * " + std::to_string(p.H));
  p.group = p.H / p.hkv;
  const int64_t rows = rows_per_block(nj);
  p.row_tiles = (p.T * p.group + rows - 1) / rows;
  p.work = p.row_tiles * p.hkv;  // <= T * H < 2^31 (checked below): one block per work item
  bool kv_ok = true;
  const bool ok = dispatch_float(q.dtype, [&](auto tq) {
    using Tq = decltype(tq);
    switch (g.dtype) {
      case DType::f32: launch_nj<Tq, float>(nj, p, stream_of(a)); break;
      case DType::f16: launch_nj<Tq, f16_t>(nj, p, stream_of(a)); break;
      case DType::bf16: launch_nj<Tq, bf16_t>(nj, p, stream_of(a)); break;
      case DType::i8: launch_nj<Tq, int8_t>(nj, p, stream_of(a)); break;
      case DType::f8e4m3: launch_nj<Tq, f8_t>(nj, p, stream_of(a)); break;
      default: kv_ok = false; break;
    }
  });
  if (!ok || !kv_ok)
    return internal_error(std::string("paged_attention_prefill: cuda kernel got dtypes ") + dtype_name(q.dtype) +
                          " / " + dtype_name(g.dtype));
  return cuda_last_error("paged_attention_prefill");
}

}  // namespace lk
