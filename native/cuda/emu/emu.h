// A host emulation of the few CUDA features our kernels use, so that their own source runs on a CPU: for
// machines without a GPU (most of ours). Force-included (g++ -include emu.h) before each kernel file, whose
// `kernel<<<grid, block, smem, stream>>>(args)` launches run.sh has rewritten to `::emu::launch(grid, block, smem,
// stream).run(kernel, args)`.
// Model: blocks run one after another (1-D grids only); each CUDA thread of a block is a std::thread;
// __syncthreads is a barrier of the block; __shfl_xor_sync swaps through a per-warp slot array between two warp
// barriers (a warp that returns early returns whole, as in our kernels); __shared__ becomes `static`, which is one
// copy per block because blocks do not overlap. Slow (thousands of threads per launch) but exact enough to test
// indexing, guards and reductions. Not a model of the memory system, of timing or of the hardware's conversions.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#include <cstdint>

// mma.cuh (and any kernel that must tell the emulation apart) tests this.
#define LK_CUDA_EMU 1

#undef __shared__
#define __shared__ static
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

namespace emu {
inline thread_local uint3 tIdx, bIdx;
inline thread_local dim3 bDim, gDim;
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline float warp_slots[64][32];
// The tensor-core wrappers of mma.cuh: each lane's A / B fragments (mma) or row address (ldmatrix), exchanged
// between two warp barriers like warp_slots.
inline uint32_t mma_a[64][32][4];
inline uint32_t mma_b[64][32][2];
inline const void* ld_addr[64][32];
}
#define threadIdx ::emu::tIdx
#define blockIdx ::emu::bIdx
#define blockDim ::emu::bDim
#define gridDim ::emu::gDim

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int off) {
  const int t = threadIdx.x, w = t / 32, l = t % 32;
  emu::warp_slots[w][l] = v;
  emu::warp_barriers[w]->arrive_and_wait();
  const float r = emu::warp_slots[w][l ^ off];
  emu::warp_barriers[w]->arrive_and_wait();
  return r;
}
namespace emu {
inline void warp_sync() { warp_barriers[threadIdx.x / 32]->arrive_and_wait(); }
}
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int2float_rn(int v) { return static_cast<float>(v); }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fdividef(float a, float b) { return a / b; }  // the device form is within 2 ulp of this
template <class T> inline T __ldg(const T* p) { return *p; }
// Shared-memory atomics (top_k's histograms and slot counters): the threads are real std::threads, so real atomics.
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
// f32 atomic add (matmul_q's split-K partial sums): a compare-and-swap loop on the bits, a real atomic like the
// ones above, so the emulation stays right even if two threads of a block ever add to one element.
inline float atomicAdd(float* p, float v) {
  uint32_t* u = reinterpret_cast<uint32_t*>(p);
  uint32_t old = __atomic_load_n(u, __ATOMIC_SEQ_CST);
  for (;;) {
    float o;
    memcpy(&o, &old, 4);
    const float n = o + v;
    uint32_t nb;
    memcpy(&nb, &n, 4);
    if (__atomic_compare_exchange_n(u, &old, nb, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return o;
  }
}

namespace emu {
inline long long launches = 0, threads_run = 0;
struct Launch {
  dim3 g, b;
  Launch(dim3 g_, dim3 b_, size_t = 0, cudaStream_t = nullptr) : g(g_), b(b_) {}
  template <class... P, class... A>
  void run(void (*k)(P...), A... args) {
    ++launches;
    const unsigned nt = b.x;
    for (unsigned blk = 0; blk < g.x; ++blk) {
      std::barrier<> bb(nt);
      block_barrier = &bb;
      warp_barriers.clear();
      for (unsigned w = 0; w < (nt + 31) / 32; ++w) warp_barriers.emplace_back(new std::barrier<>(32));
      std::vector<std::thread> ts;
      ts.reserve(nt);
      for (unsigned t = 0; t < nt; ++t)
        ts.emplace_back([&, t] {
          tIdx = uint3{t, 0, 0}; bIdx = uint3{blk, 0, 0}; bDim = b; gDim = g;
          k(static_cast<P>(args)...);
        });
      for (auto& th : ts) th.join();
      threads_run += nt;
    }
  }
};
inline Launch launch(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) { return Launch(g, b, s, st); }
}  // namespace emu
