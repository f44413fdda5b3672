// The custom collectives' device side and the planning of their launches: the one-shot / two-shot all-reduce, the
// all-gather, reduce-scatter and broadcast kernels, their per-block barrier, and enqueue_chunks / plan_call /
// launch_call, which cut a message into chunks and turn "launch number k of a communicator" into the launch
// parameters and the kernel. The protocol, the memory-ordering argument and the failure handling are in cuda_ar.h.
// Two includers: cuda_ar.cu (the real build: CudaAllReduce::enqueue plans and launches through these) and
// native/cuda/emu/ar_check.cc (the CPU emulation: R ranks as R OS threads over host memory, each launching through
// the same enqueue_chunks). Keeping the kernels and the planning here, apart from the CUDA IPC and stream
// code of cuda_ar.cu that needs a driver, is what lets the emulation run exactly the code a GPU would.
//
// Layouts (per rank): data area [2][capacity] bytes (call k uses half k % 2), cudaMalloc'd, 256-byte aligned;
// signal area u64 flags[kMaxBlocks][kArMaxRanks]: flags[b][s] = the latest (epoch << 24 | tag) that block b of rank
// s announced to this rank. Host-mapped (cudaHostAllocMapped) words: abort (host writes, kernels read) and error
// (kernels write the first failure: 1 timeout, 2 abort, 3 mismatch; host reads).
// Grid: G = min(kMaxBlocks, ceil(positions / kThreads)) blocks of kThreads threads, positions = P for one-shot and
// the other kinds (the chunk's packs; reduce-scatter: per slice) and L (the slice length) for two-shot; a function
// of the message alone, so equal on every rank.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#if defined(LK_CUDA_EMU)
#include <atomic>
#include <chrono>
#endif

#include "cuda_ar.h"

namespace lk::dist::ar {

constexpr int kThreads = 512;
constexpr int kMaxBlocks = 32;
constexpr size_t kSignalBytes = sizeof(uint64_t) * kMaxBlocks * kArMaxRanks;
constexpr int kErrTimeout = 1, kErrAbort = 2, kErrMismatch = 3;

struct ArParams {
  const void* in;                // all_gather: the chunk; reduce_scatter: the whole x; else the chunk
  void* out;                     // all_gather: the whole out; else the chunk
  char* bufs[kArMaxRanks];       // every rank's data half of this call (bufs[rank] is ours)
  uint64_t* flags[kArMaxRanks];  // every rank's signal area
  uint64_t npack;                // packs in the chunk (reduce_scatter: per slice)
  uint64_t base;                 // all_gather, reduce_scatter: the chunk's first pack within the message (slice)
  uint64_t span;                 // all_gather: packs per gathered block (inner); reduce_scatter: packs per slice
  uint64_t epoch;                // the first barrier's epoch
  uint64_t timeout_ns;
  const volatile int* abort;     // host-mapped
  volatile int* error;           // host-mapped
  uint32_t tag;                  // 24-bit hash of the call
  int rank, world;
  int root;                      // broadcast
  int is_max;                    // op: 0 sum, 1 max
  int io_vec;                    // in/out are 16-byte aligned on this rank (packs may be loaded whole)
};

// ---- dtype conversions: exact widening, one RNE rounding (as dtype.h) ----
// A NaN result has the device's NaN pattern (the GPU's add and cvt give the canonical NaN; the CPU backends keep
// payload bits): equal to the CPU backends' as "both NaN" (as lk_check compares), bit-identical across ranks.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// A pack: N elements, 16 bytes when vectorized, one element otherwise.
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Loads of peer (and own registered) memory bypass L1 (.cg): L1 is not coherent with other GPUs' writes.
template <class T, int N>
__device__ __forceinline__ Pack<T, N> load_cg(const Pack<T, N>* p) {
  Pack<T, N> r;
  if constexpr (sizeof(Pack<T, N>) == 16) {
    const uint4 u = __ldcg(reinterpret_cast<const uint4*>(p));
    memcpy(&r, &u, 16);
  } else if constexpr (sizeof(Pack<T, N>) == 4) {
    const unsigned u = __ldcg(reinterpret_cast<const unsigned*>(p));
    memcpy(&r, &u, 4);
  } else {
    const unsigned short u = __ldcg(reinterpret_cast<const unsigned short*>(p));
    memcpy(&r, &u, 2);
  }
  return r;
}

// The caller's input/output: whole packs when 16-byte aligned on this rank, else element by element (the pack
// boundaries, and so the grid, stay those of the message, equal on every rank).
template <class T, int N>
__device__ __forceinline__ Pack<T, N> load_io(const ArParams& p, uint64_t i) {
  const T* src = static_cast<const T*>(p.in) + i * N;
  Pack<T, N> r;
  if (N == 1 || p.io_vec) {
    r = *reinterpret_cast<const Pack<T, N>*>(src);
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) r.v[k] = src[k];
  }
  return r;
}
template <class T, int N>
__device__ __forceinline__ void store_io(const ArParams& p, uint64_t i, const Pack<T, N>& x) {
  T* dst = static_cast<T*>(p.out) + i * N;
  if (N == 1 || p.io_vec) {
    *reinterpret_cast<Pack<T, N>*>(dst) = x;
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) dst[k] = x.v[k];
  }
}

#if defined(LK_CUDA_EMU)
// Under the CPU emulation (emu.h; ar_check.cc runs each rank's launch on its own OS thread): the flag store and
// load are C++ release / acquire atomics on the same u64 (on x86 plain moves: the hardware is TSO, so a missing
// .release / .acquire in the real PTX would not show here). The load first yields the fiber (emu::spin_yield):
// it is only called in the barrier's spin, and without the yield the block's other threads, and the peers' OS
// threads when nothing else is runnable, would never get to run. %globaltimer becomes steady_clock in ns.
__device__ __forceinline__ void st_release_sys(uint64_t* p, uint64_t v) {
  std::atomic_ref<uint64_t>(*p).store(v, std::memory_order_release);
}
__device__ __forceinline__ uint64_t ld_acquire_sys(const uint64_t* p) {
  ::emu::spin_yield();
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(p)).load(std::memory_order_acquire);
}
__device__ __forceinline__ uint64_t global_timer_ns() {
  const auto t = std::chrono::steady_clock::now().time_since_epoch();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t).count());
}
#else
__device__ __forceinline__ void st_release_sys(uint64_t* p, uint64_t v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ uint64_t ld_acquire_sys(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
#endif

// Records the first failure in the host-mapped error word (any nonzero code stops everyone; which one wins a race
// does not matter, the host reports one).
__device__ __forceinline__ void set_error(const ArParams& p, int code) {
  if (*p.error == 0) *p.error = code;
  __threadfence_system();
}

// The per-block barrier of cuda_ar.h. Returns false (for every thread of the block) when the call failed.
__device__ inline bool block_barrier(const ArParams& p, uint64_t epoch, int* s_fail) {
  // The block's copies and reads before this barrier are done (CTA order; the release below is cumulative).
  __syncthreads();
  const int t = threadIdx.x;
  if (t < p.world) {
    const size_t slot = static_cast<size_t>(blockIdx.x) * kArMaxRanks;
    st_release_sys(p.flags[t] + slot + p.rank, (epoch << 24) | p.tag);
    const uint64_t* mine = p.flags[p.rank] + slot + t;
    const uint64_t start = global_timer_ns();
    for (uint32_t it = 1;; ++it) {
      const uint64_t w = ld_acquire_sys(mine);
      if ((w >> 24) >= epoch) {
        if ((w >> 24) == epoch && (w & 0xffffffu) != p.tag) {
          set_error(p, kErrMismatch);
          *s_fail = 1;
        }
        break;
      }
      if ((it & 255u) == 0) {
        if (*p.abort != 0 || *p.error != 0) {
          set_error(p, kErrAbort);
          *s_fail = 1;
          break;
        }
        if (global_timer_ns() - start > p.timeout_ns) {
          set_error(p, kErrTimeout);
          *s_fail = 1;
          break;
        }
      }
    }
  }
  __syncthreads();
  return *s_fail == 0;
}

// Every kernel's entry: after an earlier failure (the error word) or an abort the whole block returns at once.
__device__ __forceinline__ bool entry_failed(const ArParams& p, int* s_fail) {
  if (threadIdx.x == 0) *s_fail = (*p.error != 0 || *p.abort != 0) ? 1 : 0;
  __syncthreads();
  return *s_fail != 0;
}
// Grid-stride loops over positions: a thread's first position and the stride.
__device__ __forceinline__ uint64_t grid_first() { return static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x; }
__device__ __forceinline__ uint64_t grid_stride() { return static_cast<uint64_t>(gridDim.x) * kThreads; }

template <class T, int N>
__device__ __forceinline__ Pack<T, N> reduce_at(const ArParams& p, size_t byte_off) {
  float acc[N];
  const Pack<T, N> x0 = load_cg(reinterpret_cast<const Pack<T, N>*>(p.bufs[0] + byte_off));
#pragma unroll
  for (int k = 0; k < N; ++k) acc[k] = to_f32(x0.v[k]);
  for (int r = 1; r < p.world; ++r) {
    const Pack<T, N> x = load_cg(reinterpret_cast<const Pack<T, N>*>(p.bufs[r] + byte_off));
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float v = to_f32(x.v[k]);
      if (p.is_max)
        acc[k] = (v > acc[k] || v != v) ? v : acc[k];
      else
        acc[k] = __fadd_rn(acc[k], v);  // IEEE add, never contracted
    }
  }
  Pack<T, N> o;
#pragma unroll
  for (int k = 0; k < N; ++k) o.v[k] = from_f32<T>(acc[k]);
  return o;
}

// Grid: G blocks x kThreads (see the file header). One barrier.
template <class T, int N>
__global__ void __launch_bounds__(kThreads) all_reduce_one_shot(const ArParams p) {
  __shared__ int s_fail;
  if (entry_failed(p, &s_fail)) return;
  using V = Pack<T, N>;
  V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
  const uint64_t stride = grid_stride(), first = grid_first();
  for (uint64_t i = first; i < p.npack; i += stride) own[i] = load_io<T, N>(p, i);
  if (!block_barrier(p, p.epoch, &s_fail)) return;
  for (uint64_t i = first; i < p.npack; i += stride) store_io<T, N>(p, i, reduce_at<T, N>(p, i * sizeof(V)));
}

// Grid: G blocks x kThreads over the slice length L (see the file header). Two barriers.
template <class T, int N>
__global__ void __launch_bounds__(kThreads) all_reduce_two_shot(const ArParams p) {
  __shared__ int s_fail;
  if (entry_failed(p, &s_fail)) return;
  using V = Pack<T, N>;
  V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
  const uint64_t R = static_cast<uint64_t>(p.world);
  const uint64_t L = (p.npack + R - 1) / R;
  const uint64_t stride = grid_stride(), first = grid_first();
  // Copy-in: position j of every slice s (pack s * L + j), the positions this block owns on every rank.
  for (uint64_t s = 0; s < R; ++s) {
    const uint64_t base = s * L, end = base + L < p.npack ? base + L : p.npack;
    for (uint64_t i = base + first; i < end; i += stride) own[i] = load_io<T, N>(p, i);
  }
  if (!block_barrier(p, p.epoch, &s_fail)) return;
  // Reduce-scatter: slice `rank` from every rank's buffer; the result to out and to our buffer (peers copy it).
  {
    const uint64_t base = static_cast<uint64_t>(p.rank) * L, end = base + L < p.npack ? base + L : p.npack;
    for (uint64_t i = base + first; i < end; i += stride) {
      const V o = reduce_at<T, N>(p, i * sizeof(V));
      own[i] = o;  // we read own[i] above in this thread only; peers read slice `rank` only after barrier 2
      store_io<T, N>(p, i, o);
    }
  }
  if (!block_barrier(p, p.epoch + 1, &s_fail)) return;
  // All-gather: slice s from rank s's buffer.
  for (uint64_t s = 0; s < R; ++s) {
    if (s == static_cast<uint64_t>(p.rank)) continue;
    const V* src = reinterpret_cast<const V*>(p.bufs[s]);
    const uint64_t base = s * L, end = base + L < p.npack ? base + L : p.npack;
    for (uint64_t i = base + first; i < end; i += stride) store_io<T, N>(p, i, load_cg(src + i));
  }
}

// Grid: G blocks x kThreads over the chunk's packs. One barrier. out[(g / span) R span + s span + g % span] for
// pack g = base + i of rank s (span = the whole input along the first dimension).
template <class T, int N>
__global__ void __launch_bounds__(kThreads) all_gather_kernel(const ArParams p) {
  __shared__ int s_fail;
  if (entry_failed(p, &s_fail)) return;
  using V = Pack<T, N>;
  V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
  const uint64_t stride = grid_stride(), first = grid_first();
  for (uint64_t i = first; i < p.npack; i += stride) own[i] = load_io<T, N>(p, i);
  if (!block_barrier(p, p.epoch, &s_fail)) return;
  const uint64_t R = static_cast<uint64_t>(p.world);
  for (uint64_t s = 0; s < R; ++s) {
    const V* src = reinterpret_cast<const V*>(p.bufs[s]);
    for (uint64_t i = first; i < p.npack; i += stride) {
      const uint64_t g = p.base + i;
      store_io<T, N>(p, (g / p.span) * R * p.span + s * p.span + g % p.span, load_cg(src + i));
    }
  }
}

// Grid: G blocks x kThreads over the chunk's packs per slice (npack). One barrier. x is [R][span] packs; the chunk
// is packs [base, base + npack) of every slice, at s * npack in the buffers.
template <class T, int N>
__global__ void __launch_bounds__(kThreads) reduce_scatter_kernel(const ArParams p) {
  __shared__ int s_fail;
  if (entry_failed(p, &s_fail)) return;
  using V = Pack<T, N>;
  V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
  const uint64_t R = static_cast<uint64_t>(p.world);
  const uint64_t stride = grid_stride(), first = grid_first();
  for (uint64_t s = 0; s < R; ++s)
    for (uint64_t i = first; i < p.npack; i += stride) own[s * p.npack + i] = load_io<T, N>(p, s * p.span + p.base + i);
  if (!block_barrier(p, p.epoch, &s_fail)) return;
  const uint64_t mine = static_cast<uint64_t>(p.rank) * p.npack;
  for (uint64_t i = first; i < p.npack; i += stride) {
    // The chunk's out: p.out already points at pack `base` of out, so store_io's index is i.
    store_io<T, N>(p, i, reduce_at<T, N>(p, (mine + i) * sizeof(V)));
  }
}

// Grid: G blocks x kThreads over the chunk's packs. One barrier: the root publishes, the others copy.
template <class T, int N>
__global__ void __launch_bounds__(kThreads) broadcast_kernel(const ArParams p) {
  __shared__ int s_fail;
  if (entry_failed(p, &s_fail)) return;
  using V = Pack<T, N>;
  const uint64_t stride = grid_stride(), first = grid_first();
  const bool root = p.rank == p.root;
  if (root) {
    V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
    for (uint64_t i = first; i < p.npack; i += stride) {
      const V v = load_io<T, N>(p, i);
      own[i] = v;
      if (p.in != p.out) store_io<T, N>(p, i, v);
    }
  }
  if (!block_barrier(p, p.epoch, &s_fail)) return;
  if (!root) {
    const V* src = reinterpret_cast<const V*>(p.bufs[p.root]);
    for (uint64_t i = first; i < p.npack; i += stride) store_io<T, N>(p, i, load_cg(src + i));
  }
}

inline int grid_for(uint64_t positions) {
  const uint64_t g = (positions + kThreads - 1) / kThreads;
  return static_cast<int>(g < 1 ? 1 : (g > kMaxBlocks ? kMaxBlocks : g));
}

// ---- One launch, as the host plans it ----
struct ArCall {
  ArParams p;
  Collective kind;
  ArAlgo algo;  // all_reduce: a two-shot request falls back to one-shot when the chunk has fewer packs than ranks
  bool vec;     // 16-byte packs, else packs of one element
  DType dt;
};

template <class T, int N>
cudaError_t launch_packs(const ArCall& c, cudaStream_t stream) {
  const ArParams& p = c.p;
  switch (c.kind) {
    case Collective::all_gather:
      all_gather_kernel<T, N><<<grid_for(p.npack), kThreads, 0, stream>>>(p);
      break;
    case Collective::reduce_scatter:
      reduce_scatter_kernel<T, N><<<grid_for(p.npack), kThreads, 0, stream>>>(p);
      break;
    case Collective::broadcast:
      broadcast_kernel<T, N><<<grid_for(p.npack), kThreads, 0, stream>>>(p);
      break;
    default:
      if (c.algo == ArAlgo::two_shot) {
        const uint64_t R = static_cast<uint64_t>(p.world);
        all_reduce_two_shot<T, N><<<grid_for((p.npack + R - 1) / R), kThreads, 0, stream>>>(p);
      } else {
        all_reduce_one_shot<T, N><<<grid_for(p.npack), kThreads, 0, stream>>>(p);
      }
  }
  return cudaGetLastError();
}

template <class T>
cudaError_t launch(const ArCall& c, cudaStream_t stream) {
  return c.vec ? launch_packs<T, 16 / sizeof(T)>(c, stream) : launch_packs<T, 1>(c, stream);
}

// FNV-1a over the fields every rank must agree on, folded to 24 bits.
inline uint32_t call_tag(Collective kind, uint64_t count, uint64_t total, DType dt, ReduceOp op, ArAlgo algo,
                         uint64_t extra) {
  uint64_t h = 1469598103934665603ull;
  const uint64_t f[7] = {count, static_cast<uint64_t>(dt), static_cast<uint64_t>(op), static_cast<uint64_t>(algo),
                         static_cast<uint64_t>(kind), total, extra};
  for (uint64_t x : f)
    for (int b = 0; b < 8; ++b) {
      h ^= (x >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
  return static_cast<uint32_t>((h ^ (h >> 24) ^ (h >> 48)) & 0xffffff);
}

// Whole 16-byte packs per chunk of a registered half (enqueue cuts larger messages into calls of this many).
inline size_t chunk_elems(size_t capacity, DType dt) { return (capacity / 16) * 16 / dtype_size(dt); }

// Elements of the message per launch: a half's worth, or for reduce_scatter a half's worth split in R slices.
inline size_t chunk_elems_of(const CollectiveArgs& a, size_t capacity, int world) {
  return chunk_elems(a.kind == Collective::reduce_scatter ? capacity / static_cast<size_t>(world) : capacity, a.dt);
}

// Launch number k of a communicator (counted from 0 on every rank alike; each chunk of a message is one) for
// elements [done, done + n) of the message `a` (1 <= n <= chunk_elems_of): data half k % 2, barrier epochs 1 + 2k
// (and 2 + 2k, two-shot's second), the tag. Two epochs per launch whatever the collective, so every rank's
// numbering stays in step. data[r] / signal[r]: rank r's data area ([2][capacity] bytes) and signal area as this
// rank addresses them; words: this rank's [abort, error] as the kernel addresses them.
inline ArCall plan_call(uint64_t k, const CollectiveArgs& a, size_t done, size_t n, int rank, int world,
                        char* const* data, uint64_t* const* signal, size_t capacity, uint64_t timeout_ns, int* words) {
  ArCall c;
  ArParams& p = c.p;
  std::memset(&p, 0, sizeof p);
  const size_t es = dtype_size(a.dt);
  const char* in = static_cast<const char*>(a.in);
  char* out = static_cast<char*>(a.out);
  c.kind = a.kind;
  c.dt = a.dt;
  c.algo = ArAlgo::one_shot;
  uint64_t extra = 0;
  switch (a.kind) {
    case Collective::all_gather: {
      const size_t span = a.inner != 0 ? a.inner : a.count;
      c.vec = span * es % 16 == 0;
      const size_t per = c.vec ? 16 / es : 1;
      p.in = in + done * es;
      p.out = out;
      p.npack = n / per;
      p.base = done / per;
      p.span = span / per;
      extra = a.inner;
      break;
    }
    case Collective::reduce_scatter: {
      c.vec = a.count * es % 16 == 0;
      const size_t per = c.vec ? 16 / es : 1;
      p.in = in;
      p.out = out + done * es;
      p.npack = n / per;
      p.base = done / per;
      p.span = a.count / per;
      break;
    }
    default:  // all_reduce, broadcast
      c.vec = n * es % 16 == 0;
      p.in = in + done * es;
      p.out = out + done * es;
      p.npack = c.vec ? n * es / 16 : n;
      if (a.kind == Collective::broadcast) {
        extra = static_cast<uint64_t>(a.root);
      } else if (a.algo == ArAlgo::two_shot && p.npack >= static_cast<uint64_t>(world)) {
        c.algo = ArAlgo::two_shot;  // a call too small to give every rank a slice runs one-shot on every rank
      }
  }
  const size_t half = static_cast<size_t>(k & 1) * capacity;
  for (int r = 0; r < world; ++r) {
    p.bufs[r] = data[r] + half;
    p.flags[r] = signal[r];
  }
  p.epoch = 1 + 2 * k;
  p.timeout_ns = timeout_ns;
  p.abort = words;
  p.error = words + 1;
  p.tag = call_tag(a.kind, n, a.count, a.dt, a.op, c.algo, extra);
  p.rank = rank;
  p.world = world;
  p.root = a.root;
  p.is_max = a.op == ReduceOp::max ? 1 : 0;
  // A broadcast's non-root never reads `in`: only `out` decides.
  const uintptr_t read = a.kind == Collective::broadcast && rank != a.root ? 0 : reinterpret_cast<uintptr_t>(p.in);
  p.io_vec = ((read | reinterpret_cast<uintptr_t>(p.out)) & 15) == 0 ? 1 : 0;
  return c;
}

// Launches c on `stream`; returns the launch error (cudaGetLastError), not the kernel's outcome.
inline cudaError_t launch_call(const ArCall& c, cudaStream_t stream) {
  if (c.dt == DType::f32) return launch<float>(c, stream);
  if (c.dt == DType::f16) return launch<__half>(c, stream);
  return launch<__nv_bfloat16>(c, stream);
}

// One message (a.count >= 1): cut into chunks of chunk_elems_of(a, capacity, world), each planned as launch *calls
// (then *calls + 1, ...) and launched on `stream`. *calls advances by one per chunk even when a launch fails (the
// kernels of the other ranks have been numbered alike). Returns the first launch error. The rest of the arguments
// as plan_call's.
inline cudaError_t enqueue_chunks(uint64_t* calls, const CollectiveArgs& a, int rank, int world, char* const* data,
                                  uint64_t* const* signal, size_t capacity, uint64_t timeout_ns, int* words,
                                  cudaStream_t stream) {
  const size_t chunk = chunk_elems_of(a, capacity, world);
  if (chunk == 0) return cudaErrorInvalidValue;  // a half smaller than one pack per rank: nothing would advance
  for (size_t done = 0; done < a.count; done += chunk) {
    const size_t n = a.count - done < chunk ? a.count - done : chunk;
    const ArCall c = plan_call(*calls, a, done, n, rank, world, data, signal, capacity, timeout_ns, words);
    const cudaError_t e = launch_call(c, stream);
    ++*calls;
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace lk::dist::ar
