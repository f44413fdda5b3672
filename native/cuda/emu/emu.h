// A host emulation of the few CUDA features our kernels use, so that their own source runs on a CPU: for
// machines without a GPU (most of ours). Force-included (g++ -include emu.h) before each kernel file, whose
// `kernel<<<grid, block, smem, stream>>>(args)` launches run.sh has rewritten to `::emu::launch(grid, block, smem,
// stream).run(kernel, args)`.
// Model: blocks run one after another (grids of 1 to 3 dimensions, x fastest; blocks are 1-D); each CUDA thread of
// a block is a cooperative fiber (ucontext) on the calling OS thread, run round-robin: a thread runs until it
// waits at a barrier or returns. __syncthreads is a barrier of the block; __shfl_xor_sync swaps through a
// per-warp slot array between two warp barriers (a warp that returns early returns whole, as in our kernels; the
// value is any trivially copyable type of at most 8 bytes: float, int, unsigned, double, long long); __dp4a is the
// signed 4-way byte dot product with a 32-bit wrapping add (the hardware's dp4a.s32.s32); the __f*_rn intrinsics
// are single IEEE operations in round-to-nearest (volatile, so the host compiler cannot contract them either), and
// the device's roundf / rintf are the host's (both exact functions, same rounding rules); __shared__ becomes
// `static`, which is one copy per block because blocks do not overlap. Fibers instead of std::threads because
// creating and scheduling thousands of OS threads per launch made the check take tens of minutes on a loaded
// machine; the interleaving is now deterministic (a kernel whose result depends on a race shows no race here).
// A barrier that can never complete (a thread that returned while others wait) is reported and aborts the check.
// Exact enough to test indexing, guards and reductions. Not a model of the memory system, of timing, of the
// hardware's conversions or of concurrent execution.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <array>
#include <functional>
#include <cmath>
#include <cstring>
#include <memory>
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

// ---- fibers: the threads of the running block ----
struct Fiber {
  ucontext_t ctx;
  bool done = false;
};
inline ucontext_t sched_ctx;
inline std::vector<Fiber> fibers;
inline std::vector<std::unique_ptr<char[]>> stacks;
constexpr size_t kStackBytes = 256 * 1024;
inline int cur = -1;
inline uint64_t progress = 0;  // barrier completions and returns: a round-robin pass without any is a deadlock
inline std::function<void()> body;
// Switches: a fiber starts through swapcontext (once); after that, yields and resumes are __builtin_setjmp /
// __builtin_longjmp, which save and restore only the stack and frame pointers and the resume address (no signal
// mask system calls, unlike swapcontext; the callee-saved registers are spilled by the compiler around the
// builtin setjmp). The fiber's last act is to jump back to the scheduler.
inline void* sched_jb[5];
inline std::vector<std::array<void*, 5>> fiber_jb;
inline std::vector<char> started;
// (GCC: a function may not call both __builtin_setjmp and __builtin_longjmp, hence the small noinline helpers.)
__attribute__((noinline)) inline void to_scheduler() { __builtin_longjmp(sched_jb, 1); }
__attribute__((noinline)) inline void yield() {
  if (__builtin_setjmp(fiber_jb[cur].data()) == 0) to_scheduler();
}
inline void fiber_main() {
  body();
  fibers[cur].done = true;
  ++progress;
  to_scheduler();
}

struct Barrier {
  int expected = 0, arrived = 0;
  uint64_t gen = 0;
  explicit Barrier(int n) : expected(n) {}
  void arrive_and_wait() {
    const uint64_t g = gen;
    if (++arrived == expected) {
      arrived = 0;
      ++gen;
      ++progress;
      return;
    }
    while (gen == g) yield();
  }
};
inline Barrier* block_barrier = nullptr;
inline std::vector<std::unique_ptr<Barrier>> warp_barriers;
// One per warpgroup (4 consecutive warps: threads 128 j .. 128 j + 127): wgmma.cuh's collective mma_async.
inline std::vector<std::unique_ptr<Barrier>> warpgroup_barriers;
inline uint64_t warp_slots[64][32];
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
template <class V>
inline V __shfl_xor_sync(unsigned, V v, int off) {
  static_assert(sizeof(V) <= 8, "emu: shuffles of at most 8 bytes");
  const int t = threadIdx.x, w = t / 32, l = t % 32;
  uint64_t u = 0;
  memcpy(&u, &v, sizeof(V));
  emu::warp_slots[w][l] = u;
  emu::warp_barriers[w]->arrive_and_wait();
  u = emu::warp_slots[w][l ^ off];
  emu::warp_barriers[w]->arrive_and_wait();
  V r;
  memcpy(&r, &u, sizeof(V));
  return r;
}
// sum_j a.byte[j] * b.byte[j] (signed bytes) + c, wrapping like the 32-bit hardware add.
inline int __dp4a(int a, int b, int c) {
  uint32_t acc = static_cast<uint32_t>(c);
  for (int j = 0; j < 4; ++j)
    acc += static_cast<uint32_t>(static_cast<int>(static_cast<int8_t>(a >> (8 * j))) *
                                 static_cast<int>(static_cast<int8_t>(b >> (8 * j))));
  return static_cast<int>(acc);
}
namespace emu {
inline void warp_sync() { warp_barriers[threadIdx.x / 32]->arrive_and_wait(); }
}
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int2float_rn(int v) { return static_cast<float>(v); }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }  // IEEE division, like the device's
inline float __fdividef(float a, float b) { return a / b; }  // the device form is within 2 ulp of this
template <class T> inline T __ldg(const T* p) { return *p; }
// Atomics (top_k's histograms and slot counters in shared memory; quantize's error word). The threads of a block
// are fibers of one OS thread (switching only at barriers and shuffles), so these need not be atomic; they are
// anyway, at no cost that matters.
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
// Global-memory 64-bit minimum (quantize's lowest bad row): returns the old value, like the device's.
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  unsigned long long old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
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
__attribute__((noinline)) inline void enter(unsigned t) {
  if (!started[t]) {
    started[t] = 1;
    swapcontext(&sched_ctx, &fibers[t].ctx);  // never returns: the fiber leaves through to_scheduler()
  } else {
    __builtin_longjmp(fiber_jb[t].data(), 1);
  }
}
__attribute__((noinline)) inline void resume(unsigned t) {
  if (__builtin_setjmp(sched_jb) == 0) enter(t);
}
struct Launch {
  dim3 g, b;
  Launch(dim3 g_, dim3 b_, size_t = 0, cudaStream_t = nullptr) : g(g_), b(b_) {}
  template <class... P, class... A>
  void run(void (*k)(P...), A... args) {
    ++launches;
    const unsigned nt = b.x;
    const uint64_t nblocks = static_cast<uint64_t>(g.x) * g.y * g.z;
    while (stacks.size() < nt) stacks.emplace_back(new char[kStackBytes]);
    body = [&] { k(static_cast<P>(args)...); };
    for (uint64_t blk = 0; blk < nblocks; ++blk) {
      const uint3 bi{static_cast<unsigned>(blk % g.x), static_cast<unsigned>(blk / g.x % g.y),
                     static_cast<unsigned>(blk / g.x / g.y)};
      Barrier bb(static_cast<int>(nt));
      block_barrier = &bb;
      warp_barriers.clear();
      for (unsigned w = 0; w < (nt + 31) / 32; ++w) warp_barriers.emplace_back(new Barrier(32));
      warpgroup_barriers.clear();
      for (unsigned w = 0; w < (nt + 127) / 128; ++w)
        warpgroup_barriers.emplace_back(new Barrier(static_cast<int>(nt - 128 * w < 128 ? nt - 128 * w : 128)));
      fibers.assign(nt, Fiber{});
      fiber_jb.assign(nt, {});
      started.assign(nt, 0);
      for (unsigned t = 0; t < nt; ++t) {
        getcontext(&fibers[t].ctx);
        fibers[t].ctx.uc_stack.ss_sp = stacks[t].get();
        fibers[t].ctx.uc_stack.ss_size = kStackBytes;
        fibers[t].ctx.uc_link = &sched_ctx;
        makecontext(&fibers[t].ctx, fiber_main, 0);
      }
      bIdx = bi; bDim = b; gDim = g;
      for (unsigned left = nt; left > 0;) {
        const uint64_t before = progress;
        for (unsigned t = 0; t < nt; ++t) {
          if (fibers[t].done) continue;
          cur = static_cast<int>(t);
          tIdx = uint3{t, 0, 0};
          resume(t);
          if (fibers[t].done) --left;
        }
        if (left > 0 && progress == before) {
          std::fprintf(stderr, "emu: deadlock: %u threads of block (%u,%u,%u) wait at a barrier that cannot complete\n",
                       left, bi.x, bi.y, bi.z);
          std::abort();
        }
      }
      threads_run += nt;
    }
    body = nullptr;
  }
};
inline Launch launch(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) { return Launch(g, b, s, st); }
}  // namespace emu
