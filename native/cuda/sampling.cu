// argmax and top_k on CUDA: the sampler's device-side helpers, so that a decode step downloads B ids or B x k
// candidates instead of [B, V] logits (lib/nn/sampler.ts).
// Math (ops.def, cpu/ref/sampling_ref.cc, exact): argmax ids[b] = the lowest index of the row's largest value;
// top_k values[b, :] / ids[b, :] = the k largest values (as f32) and their indices, descending, ties by lower index.
// Values compare as f32 (f16/bf16 convert exactly; +0 == -0; -Inf is an ordinary value). A row holding NaN or +Inf,
// or no finite value, gets argmax -1 / top_k ids -1 and values NaN (the rows the sampler turns into RangeErrors).
// Layout: logits [B, V] contiguous, V < 2^31 (validate_op); ids [B] or [B, k] i32; values [B, k] f32, k <= kTopKMax.
//
// Kernels (grid: one block per row, grid-stride over rows beyond one wave; block: a power of two of 32..512 threads):
//  - argmax_kernel: each thread scans its strided elements (coalesced), keeping the best (value, index) with a strict
//    > (its elements come in ascending order, so it keeps the lowest index of a tie) and two flags (NaN/+Inf seen,
//    finite seen); then a tree reduction in shared memory where the pair (larger value, else lower index) wins.
//  - top_k_kernel: a radix select of the k-th largest key, then compaction and a bitonic sort of exactly k entries.
//    key(v) is the f32 bit pattern made monotone as an unsigned integer (negative: all bits flipped, positive: the
//    sign bit set; -0 first made +0), so v > w <=> key(v) > key(w) for non-NaN values. Four passes of 8 bits, each
//    a 256-bin shared-memory histogram (atomicAdd) of the keys that match the digits chosen so far; scanning the bins
//    from the top finds the digit of the k-th largest key and how many of the k are still needed. After the four
//    passes, K = the k-th largest key, r = how many of the k are keys == K (the rest, k - r, are keys > K), eq = how
//    many keys == K the row holds. Compaction into shared memory: keys > K take slots by an atomic counter (their
//    order does not matter yet); keys == K too when r == eq (all of them are taken). When r < eq the r lowest
//    indices must win: each thread counts the ties in its own contiguous segment of the row, an exclusive scan of
//    the counts gives each thread its first rank, and ranks < r are kept. Then a bitonic sort (key descending,
//    index ascending) of the k entries padded to a power of two, and the values are read back from the logits.
//    Each row reads the logits 5 or 6 times; the row (608 KB for V = 152064 f32) stays in L2 after the first.
// Versions: v1 (this), not yet run on a GPU; checked under native/cuda/emu (run.sh argmax, run.sh top_k).
// ptxas (nvcc 13.0, -Xptxas -v): no spills, no stack; argmax 20-32 registers and 6 KB shared memory, top_k 32-42
// registers and 11 KB (sm_80 and sm_90a).
// Run: build-gpu/tools/lk_check --backend cuda --op argmax (and --op top_k).
#include <climits>

#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

constexpr int kMaxThreads = 512;

// A power of two of threads, 32 .. 512, about one element each for short rows (the reductions halve it).
inline int sampling_threads(int64_t V) {
  int t = 32;
  while (t < kMaxThreads && t < V) t <<= 1;
  return t;
}

__device__ __forceinline__ float pos_inf() { return __uint_as_float(0x7f800000u); }
__device__ __forceinline__ float neg_inf() { return __uint_as_float(0xff800000u); }

// Flags of a row: bit 0, a NaN or +Inf; bit 1, a finite value. The row is rejected unless the flags are exactly 2.
__device__ __forceinline__ unsigned value_flags(float v) {
  if (v != v || v == pos_inf()) return 1u;
  return v != neg_inf() ? 2u : 0u;
}

// grid: min(B, one wave of blocks); block: a power of two <= kMaxThreads.
template <class T>
__global__ void __launch_bounds__(kMaxThreads) argmax_kernel(const T* __restrict__ x, int32_t* __restrict__ ids, int64_t B,
                                                              int64_t V) {
  __shared__ float s_val[kMaxThreads];
  __shared__ int32_t s_idx[kMaxThreads];
  __shared__ unsigned s_flags[kMaxThreads];
  const int t = static_cast<int>(threadIdx.x);
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const T* row = x + b * V;
    float bv = neg_inf();
    int32_t bi = INT32_MAX;  // none yet: a thread beyond V never wins
    unsigned flags = 0;
    for (int64_t j = t; j < V; j += blockDim.x) {
      const float v = to_f32(row[j]);
      flags |= value_flags(v);
      if (bi == INT32_MAX || v > bv) {
        bv = v;
        bi = static_cast<int32_t>(j);
      }
    }
    s_val[t] = bv;
    s_idx[t] = bi;
    s_flags[t] = flags;
    __syncthreads();
    // Tree: (value, index) of the larger value wins, the lower index on equal values. NaN only reaches here in a
    // rejected row, whose index is not used.
    for (int s = static_cast<int>(blockDim.x) >> 1; s > 0; s >>= 1) {
      if (t < s) {
        const float ov = s_val[t + s];
        const int32_t oi = s_idx[t + s];
        if (oi != INT32_MAX && (s_idx[t] == INT32_MAX || ov > s_val[t] || (ov == s_val[t] && oi < s_idx[t]))) {
          s_val[t] = ov;
          s_idx[t] = oi;
        }
        s_flags[t] |= s_flags[t + s];
      }
      __syncthreads();
    }
    if (t == 0) ids[b] = s_flags[0] == 2u ? s_idx[0] : -1;
    __syncthreads();  // slot 0 is read before the next row overwrites it
  }
}

// Monotone key of a non-NaN f32 (see the file header); -0 is keyed as +0 so that the two tie. Every non-NaN key is
// >= key(-Inf) = 0x007fffff, so 0 is below them all (the sort's padding).
__device__ __forceinline__ uint32_t order_key(float v) {
  uint32_t u = __float_as_uint(v);
  if ((u << 1) == 0u) u = 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// (ka, ia) ranks before (kb, ib): a larger key, or the same key and a lower index.
__device__ __forceinline__ bool ranks_before(uint32_t ka, int32_t ia, uint32_t kb, int32_t ib) {
  return ka > kb || (ka == kb && ia < ib);
}

// grid: min(B, one wave of blocks); block: a power of two <= kMaxThreads; 1 <= k <= kTopKMax (checked by the host).
// __launch_bounds__(512, 2): with the first argument alone ptxas aimed at 4 resident blocks (32 registers) and spilled
// 20 bytes on sm_80; 2 blocks of 512 (11 KB of shared memory each) leave it 64 and it uses 32-42, no spills.
template <class T>
__global__ void __launch_bounds__(kMaxThreads, 2) top_k_kernel(const T* __restrict__ x, float* __restrict__ vals,
                                                             int32_t* __restrict__ ids, int64_t B, int64_t V, int k) {
  __shared__ unsigned hist[256];
  __shared__ uint32_t c_key[kTopKMax];
  __shared__ int32_t c_idx[kTopKMax];
  __shared__ unsigned scan[kMaxThreads];
  __shared__ unsigned s_flags, s_prefix, s_need, s_eq, s_ngt, s_neq;
  const int t = static_cast<int>(threadIdx.x);
  const int nt = static_cast<int>(blockDim.x);
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const T* row = x + b * V;
    float* vo = vals + b * k;
    int32_t* io = ids + b * k;
    for (int i = t; i < 256; i += nt) hist[i] = 0u;
    if (t == 0) {
      s_flags = 0u;
      s_prefix = 0u;
      s_need = static_cast<unsigned>(k);
    }
    __syncthreads();
    // Pass 0: the flags, and the histogram of the top 8 bits of every key.
    unsigned flags = 0;
    for (int64_t j = t; j < V; j += nt) {
      const float v = to_f32(row[j]);
      flags |= value_flags(v);
      if (v == v) atomicAdd(&hist[order_key(v) >> 24], 1u);
    }
    atomicOr(&s_flags, flags);
    __syncthreads();
    if (s_flags != 2u) {  // a rejected row: the same branch for every thread (shared, read after the barrier)
      for (int i = t; i < k; i += nt) {
        vo[i] = __uint_as_float(0x7fc00000u);
        io[i] = -1;
      }
      __syncthreads();  // s_flags is read before the next row resets it
      continue;
    }
    // Passes 0..3: choose the digit of the k-th largest key, 8 bits at a time, from the top.
    for (int pass = 0; pass < 4; ++pass) {
      const int shift = 24 - 8 * pass;
      if (pass > 0) {
        const uint32_t mask = 0xffffffffu << (shift + 8);  // the digits chosen so far (shift + 8 <= 24)
        const uint32_t prefix = s_prefix;
        for (int i = t; i < 256; i += nt) hist[i] = 0u;
        __syncthreads();
        for (int64_t j = t; j < V; j += nt) {
          const uint32_t key = order_key(to_f32(row[j]));
          if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
      }
      if (t == 0) {
        // From the top bin down: the bin where the count above reaches `need` holds the k-th largest key.
        unsigned above = 0, need = s_need;
        for (int bin = 255; bin >= 0; --bin) {
          const unsigned h = hist[bin];
          if (above + h >= need) {
            s_prefix |= static_cast<uint32_t>(bin) << shift;
            s_need = need - above;
            s_eq = h;
            break;
          }
          above += h;
        }
        s_ngt = 0u;
        s_neq = 0u;
      }
      __syncthreads();
    }
    const uint32_t K = s_prefix;
    const unsigned r = s_need, eq = s_eq, gt = static_cast<unsigned>(k) - r;  // 1 <= r <= eq
    const bool all_ties = r == eq;
    // Keys > K (exactly gt of them) in slots [0, gt); ties in [gt, k) when all of them are taken.
    for (int64_t j = t; j < V; j += nt) {
      const uint32_t key = order_key(to_f32(row[j]));
      if (key > K) {
        const unsigned slot = atomicAdd(&s_ngt, 1u);
        if (slot < gt) {  // always true: the histograms counted exactly gt keys above K
          c_key[slot] = key;
          c_idx[slot] = static_cast<int32_t>(j);
        }
      } else if (all_ties && key == K) {
        const unsigned slot = gt + atomicAdd(&s_neq, 1u);
        if (slot < static_cast<unsigned>(k)) {
          c_key[slot] = key;
          c_idx[slot] = static_cast<int32_t>(j);
        }
      }
    }
    if (!all_ties) {
      // The r lowest indices among the eq keys == K: ranks in index order from contiguous segments.
      const int64_t seg = (V + nt - 1) / nt;
      const int64_t j0 = t * seg < V ? t * seg : V, j1 = j0 + seg < V ? j0 + seg : V;
      unsigned mine = 0;
      for (int64_t j = j0; j < j1; ++j) mine += order_key(to_f32(row[j])) == K ? 1u : 0u;
      scan[t] = mine;
      __syncthreads();
      for (int off = 1; off < nt; off <<= 1) {  // Hillis-Steele inclusive scan
        const unsigned add = t >= off ? scan[t - off] : 0u;
        __syncthreads();
        scan[t] += add;
        __syncthreads();
      }
      unsigned rank = scan[t] - mine;  // ties in the segments before this thread's
      for (int64_t j = j0; j < j1 && rank < r; ++j) {
        if (order_key(to_f32(row[j])) == K) {
          c_key[gt + rank] = K;
          c_idx[gt + rank] = static_cast<int32_t>(j);
          ++rank;
        }
      }
    }
    // Bitonic sort of the k entries, padded to a power of two P with keys below every real one.
    int P = 1;
    while (P < k) P <<= 1;
    for (int i = k + t; i < P; i += nt) {
      c_key[i] = 0u;
      c_idx[i] = INT32_MAX;
    }
    __syncthreads();
    for (int size = 2; size <= P; size <<= 1) {
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        for (int i = t; i < P; i += nt) {
          const int p = i ^ stride;
          if (p > i) {
            // In a block whose bit `size` is 0, position i must rank before p; in the others, after (so that the
            // next merge sees bitonic sequences). With size == P every block is the first: descending order.
            const bool first = (i & size) == 0;
            const bool swap = first ? ranks_before(c_key[p], c_idx[p], c_key[i], c_idx[i])
                                    : ranks_before(c_key[i], c_idx[i], c_key[p], c_idx[p]);
            if (swap) {
              const uint32_t tk = c_key[i];
              const int32_t ti = c_idx[i];
              c_key[i] = c_key[p];
              c_idx[i] = c_idx[p];
              c_key[p] = tk;
              c_idx[p] = ti;
            }
          }
        }
        __syncthreads();
      }
    }
    for (int i = t; i < k; i += nt) {
      const int32_t j = c_idx[i];
      // j is always a real index (the counts above fill exactly k slots); the check only keeps a broken invariant
      // from reading outside the row.
      const bool in_row = j >= 0 && j < V;
      vo[i] = in_row ? to_f32(row[j]) : __uint_as_float(0x7fc00000u);  // the logit itself: -0 stays -0
      io[i] = in_row ? j : -1;
    }
    __syncthreads();  // the candidates and counters are read before the next row overwrites them
  }
}

inline unsigned sampling_grid(int64_t rows, int threads, int device) {
  const int sms = cuda_sm_count(device);
  const int64_t cap = static_cast<int64_t>(sms > 0 ? sms : 132) * (2048 / threads);
  const int64_t b = rows < cap ? rows : cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

}  // namespace

Status argmax_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "argmax", &dev));
  const TensorView &x = a.in[0], &ids = a.out[0];  // [B, V], [B]
  const int64_t B = x.shape[0], V = x.shape[1];
  if (B == 0) return cuda_last_error("argmax");
  const int threads = sampling_threads(V);
  const unsigned blocks = sampling_grid(B, threads, dev);
  const bool ok = dispatch_float(x.dtype, [&](auto tx) {
    using T = decltype(tx);
    argmax_kernel<T><<<blocks, threads, 0, stream_of(a)>>>(static_cast<const T*>(x.data), static_cast<int32_t*>(ids.data), B, V);
  });
  if (!ok) return internal_error("argmax: cuda kernel got a non-float dtype");
  return cuda_last_error("argmax");
}

Status top_k_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "top_k", &dev));
  const TensorView &x = a.in[0], &vals = a.out[0], &ids = a.out[1];  // [B, V], [B, k], [B, k]
  const int64_t B = x.shape[0], V = x.shape[1], k = vals.shape[1];
  // validate_op has checked 1 <= k <= min(V, kTopKMax); the shared-memory candidate arrays rely on it, so again here.
  if (k < 1 || k > kTopKMax || k > V) return internal_error("top_k: cuda kernel got k outside [1, min(V, kTopKMax)]");
  if (B == 0) return cuda_last_error("top_k");
  const int threads = sampling_threads(V);
  const unsigned blocks = sampling_grid(B, threads, dev);
  const bool ok = dispatch_float(x.dtype, [&](auto tx) {
    using T = decltype(tx);
    top_k_kernel<T><<<blocks, threads, 0, stream_of(a)>>>(static_cast<const T*>(x.data), static_cast<float*>(vals.data),
                                                        static_cast<int32_t*>(ids.data), B, V, static_cast<int>(k));
  });
  if (!ok) return internal_error("top_k: cuda kernel got a non-float dtype");
  return cuda_last_error("top_k");
}

}  // namespace lk
