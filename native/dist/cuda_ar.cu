// The custom CUDA all-reduce: one-shot and two-shot kernels over buffers registered across ranks with CUDA IPC.
//   out[i] = round_dtype(in_0[i] + in_1[i] + ... + in_{R-1}[i])   (f32, rank order, as reduce.h; or max)
// The protocol, the memory-ordering argument, the buffer layout and the failure handling are in cuda_ar.h.
//
// Layouts (per rank): data area [2][capacity] bytes (call k uses half k % 2), cudaMalloc'd, 256-byte aligned;
// signal area u64 flags[kMaxBlocks][kArMaxRanks]: flags[b][s] = the latest (epoch << 24 | tag) that block b of rank
// s announced to this rank. Host-mapped (cudaHostAllocMapped) words: abort (host writes, kernels read) and error
// (kernels write the first failure: 1 timeout, 2 abort, 3 mismatch; host reads).
// Grid: G = min(kMaxBlocks, ceil(positions / kThreads)) blocks of kThreads threads, positions = P for one-shot and
// L (the slice length) for two-shot; a function of the message alone, so equal on every rank.
//
// Versions: not yet run on a GPU. v1 (this): 16-byte packs, ld.global.cg for peer memory, per-block flag barriers.
// ptxas (nvcc 13.0, -Xptxas -v): all 24 kernels (one/two-shot x f32/f16/bf16 x packed/scalar x sm_80/sm_90a) use
// 22-32 registers, 0 bytes stack, 0 spills (launch bound 512 threads).
// How to run: through ProcessGroup.allReduce on CUDA tensors (lib/dist/process-group.ts) with 2+ processes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <unistd.h>

#include <cstring>

#include "../cuda/common.cuh"
#include "cuda_ar.h"

namespace lk::dist {

namespace {

constexpr int kThreads = 512;
constexpr int kMaxBlocks = 32;
constexpr size_t kSignalBytes = sizeof(uint64_t) * kMaxBlocks * kArMaxRanks;
constexpr int kErrTimeout = 1, kErrAbort = 2, kErrMismatch = 3;

struct ArParams {
  const void* in;
  void* out;
  char* bufs[kArMaxRanks];       // every rank's data half of this call (bufs[rank] is ours)
  uint64_t* flags[kArMaxRanks];  // every rank's signal area
  uint64_t npack;                // packs in the message
  uint64_t epoch;                // the first barrier's epoch
  uint64_t timeout_ns;
  const volatile int* abort;     // host-mapped
  volatile int* error;           // host-mapped
  uint32_t tag;                  // 24-bit hash of the call
  int rank, world;
  int is_max;                    // op: 0 sum, 1 max
  int io_vec;                    // in/out are 16-byte aligned on this rank (packs may be loaded whole)
};

// ---- dtype conversions: exact widening, one RNE rounding (as dtype.h) ----
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

// Records the first failure in the host-mapped error word (any nonzero code stops everyone; which one wins a race
// does not matter, the host reports one).
__device__ __forceinline__ void set_error(const ArParams& p, int code) {
  if (*p.error == 0) *p.error = code;
  __threadfence_system();
}

// The per-block barrier of cuda_ar.h. Returns false (for every thread of the block) when the call failed.
__device__ bool block_barrier(const ArParams& p, uint64_t epoch, int* s_fail) {
  __syncthreads();  // the block's copies and reads before this barrier are done (CTA order; the release below is cumulative)
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
  if (threadIdx.x == 0) s_fail = (*p.error != 0 || *p.abort != 0) ? 1 : 0;  // an earlier failure: do nothing
  __syncthreads();
  if (s_fail) return;
  using V = Pack<T, N>;
  V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * kThreads;
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (uint64_t i = first; i < p.npack; i += stride) own[i] = load_io<T, N>(p, i);
  if (!block_barrier(p, p.epoch, &s_fail)) return;
  for (uint64_t i = first; i < p.npack; i += stride) store_io<T, N>(p, i, reduce_at<T, N>(p, i * sizeof(V)));
}

// Grid: G blocks x kThreads over the slice length L (see the file header). Two barriers.
template <class T, int N>
__global__ void __launch_bounds__(kThreads) all_reduce_two_shot(const ArParams p) {
  __shared__ int s_fail;
  if (threadIdx.x == 0) s_fail = (*p.error != 0 || *p.abort != 0) ? 1 : 0;
  __syncthreads();
  if (s_fail) return;
  using V = Pack<T, N>;
  V* own = reinterpret_cast<V*>(p.bufs[p.rank]);
  const uint64_t R = static_cast<uint64_t>(p.world);
  const uint64_t L = (p.npack + R - 1) / R;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * kThreads;
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
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

int grid_for(uint64_t positions) {
  const uint64_t g = (positions + kThreads - 1) / kThreads;
  return static_cast<int>(g < 1 ? 1 : (g > kMaxBlocks ? kMaxBlocks : g));
}

template <class T>
cudaError_t launch(ArParams p, ArAlgo algo, bool vec, cudaStream_t stream) {
  const uint64_t R = static_cast<uint64_t>(p.world);
  if (vec) {
    constexpr int N = 16 / sizeof(T);
    if (algo == ArAlgo::two_shot)
      all_reduce_two_shot<T, N><<<grid_for((p.npack + R - 1) / R), kThreads, 0, stream>>>(p);
    else
      all_reduce_one_shot<T, N><<<grid_for(p.npack), kThreads, 0, stream>>>(p);
  } else {
    if (algo == ArAlgo::two_shot)
      all_reduce_two_shot<T, 1><<<grid_for((p.npack + R - 1) / R), kThreads, 0, stream>>>(p);
    else
      all_reduce_one_shot<T, 1><<<grid_for(p.npack), kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

uint32_t call_tag(uint64_t count, DType dt, ReduceOp op, ArAlgo algo) {
  // FNV-1a over the fields every rank must agree on, folded to 24 bits.
  uint64_t h = 1469598103934665603ull;
  const uint64_t f[4] = {count, static_cast<uint64_t>(dt), static_cast<uint64_t>(op), static_cast<uint64_t>(algo)};
  for (uint64_t x : f)
    for (int b = 0; b < 8; ++b) {
      h ^= (x >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
  return static_cast<uint32_t>((h ^ (h >> 24) ^ (h >> 48)) & 0xffffff);
}

// What each rank publishes at open (all_gather of bytes through the CPU communicator).
struct Published {
  cudaIpcMemHandle_t data;
  cudaIpcMemHandle_t signal;
  char bus_id[32];  // cudaDeviceGetPCIBusId
  int64_t pid;
  int32_t ok;       // this rank registered its buffers
  int32_t pad;
};

}  // namespace

struct CudaAllReduce::Impl {
  char* data = nullptr;        // own data area [2][capacity]
  uint64_t* signal = nullptr;  // own signal area
  char* peer_data[kArMaxRanks] = {};
  uint64_t* peer_signal[kArMaxRanks] = {};
  bool ipc_opened[kArMaxRanks] = {};  // peer pointers to cudaIpcCloseMemHandle at close
  int* host_words = nullptr;          // [0] abort, [1] error (cudaHostAlloc mapped)
  int* dev_words = nullptr;           // their device address
};

namespace {

Status alloc_local(int device, size_t capacity, CudaAllReduce::Impl* im) {
  const std::string at = " on cuda:" + std::to_string(device);
  LK_CUDA_CHECK(cudaSetDevice(device), "allReduce(cuda): cudaSetDevice" + at);
  LK_CUDA_CHECK(cudaMalloc(&im->data, 2 * capacity), "allReduce(cuda): cudaMalloc(" + std::to_string(2 * capacity) + " bytes)" + at);
  LK_CUDA_CHECK(cudaMalloc(&im->signal, kSignalBytes), "allReduce(cuda): cudaMalloc(signal area)" + at);
  LK_CUDA_CHECK(cudaMemset(im->signal, 0, kSignalBytes), "allReduce(cuda): cudaMemset(signal area)" + at);
  void* hw = nullptr;
  LK_CUDA_CHECK(cudaHostAlloc(&hw, 2 * sizeof(int), cudaHostAllocMapped), "allReduce(cuda): cudaHostAlloc(mapped)");
  im->host_words = static_cast<int*>(hw);
  im->host_words[0] = im->host_words[1] = 0;
  void* dw = nullptr;
  LK_CUDA_CHECK(cudaHostGetDevicePointer(&dw, hw, 0), "allReduce(cuda): cudaHostGetDevicePointer");
  im->dev_words = static_cast<int*>(dw);
  LK_CUDA_CHECK(cudaDeviceSynchronize(), "allReduce(cuda): cudaDeviceSynchronize" + at);  // memset done before peers see it
  return Status::OK();
}

// Allocates this rank's buffers and fills in what it publishes.
Status publish(int device, size_t capacity, CudaAllReduce::Impl* im, Published* mine) {
  LK_RETURN_IF_ERROR(alloc_local(device, capacity, im));
  LK_CUDA_CHECK(cudaIpcGetMemHandle(&mine->data, im->data), "allReduce(cuda): cudaIpcGetMemHandle(data)");
  LK_CUDA_CHECK(cudaIpcGetMemHandle(&mine->signal, im->signal), "allReduce(cuda): cudaIpcGetMemHandle(signal)");
  LK_CUDA_CHECK(cudaDeviceGetPCIBusId(mine->bus_id, sizeof mine->bus_id - 1, device), "allReduce(cuda): cudaDeviceGetPCIBusId");
  return Status::OK();
}

}  // namespace

Status CudaAllReduce::open(Communicator* cpu, int device, size_t capacity, Clock::time_point deadline,
                           std::unique_ptr<CudaAllReduce>* out) {
  const int R = cpu->world(), me = cpu->rank();
  capacity = (capacity + 255) & ~size_t(255);
  std::unique_ptr<CudaAllReduce> c(new CudaAllReduce());
  c->impl_.reset(new Impl());
  c->rank_ = me;
  c->world_ = R;
  c->device_ = device;
  c->capacity_ = capacity;
  Impl& im = *c->impl_;

  Published mine;
  std::memset(&mine, 0, sizeof mine);
  mine.pid = static_cast<int64_t>(getpid());
  std::string local_why;
  const Status s = R > kArMaxRanks ? unsupported("more than " + std::to_string(kArMaxRanks) + " ranks") : publish(device, capacity, &im, &mine);
  // A failure to register (OOM included) is not the group's failure: the group can still use NCCL. Say why and
  // agree below; never return before the exchange, or the other ranks would wait in it until the deadline.
  if (!s.ok()) local_why = "rank " + std::to_string(me) + ": " + s.message();
  mine.ok = s.ok() ? 1 : 0;

  // Exchange (all_gather of bytes; the communicator moves f32 "elements", so the record is padded to 4 bytes).
  static_assert(sizeof(Published) % 4 == 0, "Published is exchanged as f32 words");
  std::vector<Published> all(static_cast<size_t>(R));
  CallDesc d;
  d.kind = Collective::all_gather;
  d.dtype = DType::f32;
  d.count = sizeof(Published) / 4;
  LK_RETURN_IF_ERROR(cpu->call(&mine, all.data(), d, deadline));

  bool ok = mine.ok != 0;
  for (int r = 0; r < R && ok; ++r) {
    if (!all[r].ok) {
      ok = false;
      local_why = "rank " + std::to_string(r) + " could not register its buffers";
      break;
    }
    if (r == me) {
      im.peer_data[r] = im.data;
      im.peer_signal[r] = im.signal;
      continue;
    }
    if (all[r].pid == mine.pid) {
      ok = false;
      local_why = "ranks " + std::to_string(me) + " and " + std::to_string(r) +
                  " are in one process (worker threads): CUDA IPC handles cannot be opened in the process that made them; "
                  "run one process per rank";
      break;
    }
    int peer_dev = -1;
    all[r].bus_id[sizeof all[r].bus_id - 1] = 0;
    if (cudaDeviceGetByPCIBusId(&peer_dev, all[r].bus_id) != cudaSuccess) {
      (void)cudaGetLastError();
      ok = false;
      local_why = "rank " + std::to_string(r) + "'s GPU (" + all[r].bus_id + ") is not visible to rank " + std::to_string(me) +
                  " (CUDA_VISIBLE_DEVICES), so P2P cannot be checked";
      break;
    }
    if (peer_dev != device) {
      int can = 0;
      if (cudaDeviceCanAccessPeer(&can, device, peer_dev) != cudaSuccess || !can) {
        (void)cudaGetLastError();
        ok = false;
        local_why = "no P2P access from cuda:" + std::to_string(device) + " to cuda:" + std::to_string(peer_dev) + " (rank " +
                    std::to_string(r) + ")";
        break;
      }
    }
    void* pd = nullptr;
    void* ps = nullptr;
    cudaError_t e = cudaIpcOpenMemHandle(&pd, all[r].data, cudaIpcMemLazyEnablePeerAccess);
    if (e == cudaSuccess) {
      e = cudaIpcOpenMemHandle(&ps, all[r].signal, cudaIpcMemLazyEnablePeerAccess);
      if (e != cudaSuccess) (void)cudaIpcCloseMemHandle(pd);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      ok = false;
      local_why = "cudaIpcOpenMemHandle of rank " + std::to_string(r) + "'s buffers: " + cuda_error_text(e);
      break;
    }
    im.peer_data[r] = static_cast<char*>(pd);
    im.peer_signal[r] = static_cast<uint64_t*>(ps);
    im.ipc_opened[r] = true;
  }

  // Agree: usable only if usable on every rank.
  float okf = ok ? 1.0f : 0.0f;
  std::vector<float> oks(static_cast<size_t>(R));
  d.count = 1;
  LK_RETURN_IF_ERROR(cpu->call(&okf, oks.data(), d, deadline));
  c->usable_ = true;
  for (int r = 0; r < R; ++r)
    if (oks[r] == 0.0f) {
      c->usable_ = false;
      if (local_why.empty()) local_why = "rank " + std::to_string(r) + " could not open its peers' buffers (see that rank)";
    }
  c->why_ = c->usable_ ? std::string() : local_why;
  *out = std::move(c);
  return Status::OK();
}

Status CudaAllReduce::open_local(int device, int world, size_t capacity, std::vector<std::unique_ptr<CudaAllReduce>>* out) {
  if (world < 1 || world > kArMaxRanks)
    return range_error("allReduce(cuda): expected 1 to " + std::to_string(kArMaxRanks) + " local ranks, got " + std::to_string(world));
  capacity = (capacity + 255) & ~size_t(255);
  std::vector<std::unique_ptr<CudaAllReduce>> v;
  for (int r = 0; r < world; ++r) {
    std::unique_ptr<CudaAllReduce> c(new CudaAllReduce());
    c->impl_.reset(new Impl());
    c->rank_ = r;
    c->world_ = world;
    c->device_ = device;
    c->capacity_ = capacity;
    c->usable_ = true;
    LK_RETURN_IF_ERROR(alloc_local(device, capacity, c->impl_.get()));
    v.push_back(std::move(c));
  }
  for (int r = 0; r < world; ++r)
    for (int q = 0; q < world; ++q) {
      v[r]->impl_->peer_data[q] = v[q]->impl_->data;
      v[r]->impl_->peer_signal[q] = v[q]->impl_->signal;
    }
  *out = std::move(v);
  return Status::OK();
}

CudaAllReduce::~CudaAllReduce() {
  if (!impl_) return;
  Impl& im = *impl_;
  if (cudaSetDevice(device_) != cudaSuccess) {
    (void)cudaGetLastError();
    return;  // no context to free in: leak rather than crash
  }
  // The kernels of this rank may still be queued: wait (bounded by their device-side timeouts), after telling
  // them to stop.
  if (im.host_words != nullptr) im.host_words[0] = 1;
  (void)cudaDeviceSynchronize();
  for (int r = 0; r < kArMaxRanks; ++r)
    if (im.ipc_opened[r]) {
      (void)cudaIpcCloseMemHandle(im.peer_data[r]);
      (void)cudaIpcCloseMemHandle(im.peer_signal[r]);
    }
  if (im.data != nullptr) (void)cudaFree(im.data);
  if (im.signal != nullptr) (void)cudaFree(im.signal);
  if (im.host_words != nullptr) (void)cudaFreeHost(im.host_words);
  (void)cudaGetLastError();
}

Status CudaAllReduce::enqueue(const void* in, void* out, size_t count, DType dt, ReduceOp op, ArAlgo algo, void* stream,
                              int64_t timeout_ms) {
  if (fail_.failed()) return fail_.status();
  if (!usable_) return unsupported("allReduce(cuda): the custom all-reduce is not registered: " + why_);
  if (dt != DType::f32 && dt != DType::f16 && dt != DType::bf16)
    return type_error(std::string("allReduce(cuda): expected dtype f32, f16 or bf16, got ") + dtype_name(dt));
  if (algo != ArAlgo::one_shot && algo != ArAlgo::two_shot)
    return internal_error(std::string("allReduce(cuda): the custom kernels run one_shot or two_shot, got ") + ar_algo_name(algo));
  if (count == 0) return Status::OK();
  Impl& im = *impl_;
  LK_CUDA_CHECK(cudaSetDevice(device_), "allReduce(cuda): cudaSetDevice(" + std::to_string(device_) + ")");
  const size_t es = dtype_size(dt);
  const size_t chunk_elems = (capacity_ / 16) * 16 / es;  // whole packs per chunk
  for (size_t done = 0; done < count; done += chunk_elems) {
    const size_t n = count - done < chunk_elems ? count - done : chunk_elems;
    const size_t bytes = n * es;
    const bool vec = bytes % 16 == 0;
    ArParams p;
    std::memset(&p, 0, sizeof p);
    p.in = static_cast<const char*>(in) + done * es;
    p.out = static_cast<char*>(out) + done * es;
    const size_t half = static_cast<size_t>(calls_ & 1) * capacity_;
    for (int r = 0; r < world_; ++r) {
      p.bufs[r] = im.peer_data[r] + half;
      p.flags[r] = im.peer_signal[r];
    }
    p.npack = vec ? bytes / 16 : n;
    p.epoch = epoch_;
    p.timeout_ns = static_cast<uint64_t>(timeout_ms) * 1000000ull;
    p.abort = im.dev_words;
    p.error = im.dev_words + 1;
    // A call too small to give every rank a slice runs one-shot on every rank (npack is equal on every rank).
    const ArAlgo a = (algo == ArAlgo::two_shot && p.npack >= static_cast<uint64_t>(world_)) ? ArAlgo::two_shot : ArAlgo::one_shot;
    p.tag = call_tag(n, dt, op, a);
    p.rank = rank_;
    p.world = world_;
    p.is_max = op == ReduceOp::max ? 1 : 0;
    p.io_vec = ((reinterpret_cast<uintptr_t>(p.in) | reinterpret_cast<uintptr_t>(p.out)) & 15) == 0 ? 1 : 0;
    cudaError_t e;
    auto st = static_cast<cudaStream_t>(stream);
    if (dt == DType::f32)
      e = launch<float>(p, a, vec, st);
    else if (dt == DType::f16)
      e = launch<__half>(p, a, vec, st);
    else
      e = launch<__nv_bfloat16>(p, a, vec, st);
    epoch_ += 2;
    ++calls_;
    if (e != cudaSuccess) return fail_.set(cuda_status(e, "allReduce(cuda): kernel launch"));
  }
  return Status::OK();
}

Status CudaAllReduce::check() {
  if (fail_.failed()) return fail_.status();
  const int code = impl_ ? static_cast<volatile int*>(impl_->host_words)[1] : 0;
  if (code == 0) return Status::OK();
  if (code == kErrTimeout)
    return fail_.set(Status(Code::timeout, "allReduce(cuda): rank " + std::to_string(rank_) +
                                               ": a peer did not reach the device-side barrier before the timeout"));
  if (code == kErrMismatch)
    return fail_.set(Status(Code::mismatch, "allReduce(cuda): rank " + std::to_string(rank_) +
                                                ": a peer called a different collective (count, dtype, op or algorithm) at the same step"));
  return fail_.set(Status(Code::peer_lost, "allReduce(cuda): rank " + std::to_string(rank_) + ": the collective was aborted"));
}

void CudaAllReduce::abort(Status why) {
  (void)fail_.set(std::move(why));  // first failure wins; check() reports it from now on
  if (!impl_) return;
  if (impl_->host_words != nullptr) static_cast<volatile int*>(impl_->host_words)[0] = 1;
}

}  // namespace lk::dist
