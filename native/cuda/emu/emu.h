// A host emulation of the few CUDA features our kernels use, so that their own source runs on a CPU: for
// machines without a GPU (most of ours). Force-included (g++ -include emu.h) before each kernel file, whose
// `kernel<<<grid, block, smem, stream>>>(args)` launches run.sh has rewritten to `::emu::launch(grid, block, smem,
// stream).run(kernel, args)`.
// Model: blocks run one after another (grids of 1 to 3 dimensions, x fastest; blocks are 1-D); each CUDA thread of
// a block is a cooperative fiber (ucontext) on the calling OS thread, run round-robin: a thread runs until it
// waits at a barrier, spins (spin_yield, below) or returns. __syncthreads is a barrier of the block;
// __shfl_xor_sync swaps through a per-warp slot array between two warp barriers (a warp that returns early returns
// whole, as in our kernels; the value is any trivially copyable type of at most 8 bytes: float, int, unsigned,
// double, long long); __dp4a is the signed 4-way byte dot product with a 32-bit wrapping add (the hardware's
// dp4a.s32.s32); the __f*_rn intrinsics are single IEEE operations in round-to-nearest (volatile, so the host
// compiler cannot contract them either), and the device's roundf / rintf are the host's (both exact functions, same
// rounding rules); __shared__ becomes `static thread_local`, which is one copy per block because a launching OS
// thread runs its blocks one after another. Fibers instead of std::threads because creating and scheduling
// thousands of OS threads per launch made the check take tens of minutes on a loaded machine; the interleaving of
// one block's threads is deterministic (a kernel whose result depends on a race among them shows no race here).
// Concurrent launches: every piece of scheduler state is per OS thread (thread_local), so R OS threads may each run
// a launch at once: the custom all-reduce's check (ar_check.cc) runs one "rank" per OS thread, and their blocks
// meet through flags in ordinary memory. What that models: blocks of different launches that run at the same time
// and wait for each other, in an order the OS picks (different every run), with a kernel's own timeouts and
// aborts. A spin on memory another OS thread writes (cuda_ar's ld.acquire.sys loop) calls spin_yield(), which lets
// the block's other fibers run; a round-robin pass in which nothing but spinning happened yields the OS thread
// (then sleeps) instead of being called a deadlock, and only spinning without any progress for spin_allowance_s of
// wall-clock time (longer than any kernel timeout we use) is reported as one.
// A barrier that can never complete (a thread that returned while others wait) is reported and aborts the check.
// Exact enough to test indexing, guards, reductions and a cross-launch protocol's logic (epochs, tags, timeouts,
// buffer halves). Not a model of the memory system: x86 is TSO and the emulation's release/acquire are C++
// atomics, so a missing release or acquire (or fence, or .cg on a non-coherent L1) cannot show here; nor of
// timing, of co-residency (a rank's blocks never run side by side), of the hardware's conversions, or of the
// scheduling of one block's warps.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>
#include <cstdint>
#include <thread>

// mma.cuh (and any kernel that must tell the emulation apart) tests this.
#define LK_CUDA_EMU 1

#undef __shared__
#define __shared__ static thread_local
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

namespace emu {
inline thread_local uint3 tIdx, bIdx;
inline thread_local dim3 bDim, gDim;

// ---- fibers: the threads of the block this OS thread is running ----
// Everything below is per OS thread. The hot state (current fiber, progress, jump buffers, slot arrays) is plain
// thread_local data that needs no constructor, so an access is one %fs-relative address, as cheap as the plain
// globals it replaced; the containers live in a ThreadState reached through a thread_local pointer (a thread_local
// std::vector would go through a TLS init wrapper on every access).
struct Fiber {
  ucontext_t ctx;
  bool done = false;
};
struct Barrier;
struct ThreadState {
  ucontext_t sched_ctx;
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;
  // Switches: a fiber starts through swapcontext (once); after that, yields and resumes are __builtin_setjmp /
  // __builtin_longjmp, which save and restore only the stack and frame pointers and the resume address (no signal
  // mask system calls, unlike swapcontext; the callee-saved registers are spilled by the compiler around the
  // builtin setjmp). The fiber's last act is to jump back to the scheduler.
  std::vector<std::array<void*, 5>> fiber_jb;
  std::vector<char> started;
  std::vector<std::unique_ptr<Barrier>> warp_barriers;
  // One per warpgroup (4 consecutive warps: threads 128 j .. 128 j + 127): wgmma.cuh's collective mma_async.
  std::vector<std::unique_ptr<Barrier>> warpgroup_barriers;
  std::function<void()> body;
};
inline thread_local ThreadState* ts = nullptr;
constexpr size_t kStackBytes = 256 * 1024;
inline thread_local int cur = -1;
// Barrier completions and returns: a round-robin pass without any (and without a spin) is a deadlock.
inline thread_local uint64_t progress = 0;
inline thread_local bool spun = false;      // a fiber called spin_yield() in this round-robin pass
inline thread_local void* sched_jb[5];
// Spinning with no progress on this OS thread for this long (wall clock) is reported as a deadlock. Longer than
// any kernel-side timeout a check uses; set it before starting threads.
inline double spin_allowance_s = 120;
// (GCC: a function may not call both __builtin_setjmp and __builtin_longjmp, hence the small noinline helpers.)
__attribute__((noinline)) inline void to_scheduler() { __builtin_longjmp(sched_jb, 1); }
__attribute__((noinline)) inline void yield() {
  if (__builtin_setjmp(ts->fiber_jb[cur].data()) == 0) to_scheduler();
}
// A yield from a spin on memory that another OS thread (another launch) may write: lets the block's other fibers
// run, and tells the scheduler that a pass without progress is waiting for someone else, not deadlocked.
inline void spin_yield() {
  spun = true;
  yield();
}
inline void fiber_main() {
  ts->body();
  ts->fibers[cur].done = true;
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
inline thread_local Barrier* block_barrier = nullptr;
inline thread_local uint64_t warp_slots[64][32];
// The tensor-core wrappers of mma.cuh: each lane's A / B fragments (mma) or row address (ldmatrix), exchanged
// between two warp barriers like warp_slots.
inline thread_local uint32_t mma_a[64][32][4];
inline thread_local uint32_t mma_b[64][32][2];
inline thread_local const void* ld_addr[64][32];
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
  emu::ts->warp_barriers[w]->arrive_and_wait();
  u = emu::warp_slots[w][l ^ off];
  emu::ts->warp_barriers[w]->arrive_and_wait();
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
inline void warp_sync() { ts->warp_barriers[threadIdx.x / 32]->arrive_and_wait(); }
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
// ld.global.cg (L2 only, skips L1): on a CPU a plain load; its point on the GPU (L1 is not coherent with other
// GPUs' writes) cannot show here.
template <class T> inline T __ldcg(const T* p) { return *p; }
// membar.sys: a full fence (on x86 it also orders the plain stores before it with the loads after it).
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// Atomics (top_k's histograms and slot counters in shared memory; quantize's error word). The threads of a block are fibers of one OS thread
// (switching only at barriers, shuffles and spins), so these need not be atomic; they are anyway, at no cost that
// matters.
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
// Totals over every OS thread (emu_check prints them).
inline std::atomic<long long> launches{0}, threads_run{0};
__attribute__((noinline)) inline void enter(unsigned t) {
  if (!ts->started[t]) {
    ts->started[t] = 1;
    swapcontext(&ts->sched_ctx, &ts->fibers[t].ctx);  // never returns: the fiber leaves through to_scheduler()
  } else {
    __builtin_longjmp(ts->fiber_jb[t].data(), 1);
  }
}
__attribute__((noinline)) inline void resume(unsigned t) {
  if (__builtin_setjmp(sched_jb) == 0) enter(t);
}
// This OS thread's ThreadState, made on its first launch and freed when the thread exits.
inline ThreadState& thread_state() {
  static thread_local std::unique_ptr<ThreadState> owner;
  if (!owner) owner.reset(new ThreadState());
  ts = owner.get();
  return *owner;
}
struct Launch {
  dim3 g, b;
  Launch(dim3 g_, dim3 b_, size_t = 0, cudaStream_t = nullptr) : g(g_), b(b_) {}
  template <class... P, class... A>
  void run(void (*k)(P...), A... args) {
    ++launches;
    ThreadState& st = thread_state();
    const unsigned nt = b.x;
    const uint64_t nblocks = static_cast<uint64_t>(g.x) * g.y * g.z;
    while (st.stacks.size() < nt) st.stacks.emplace_back(new char[kStackBytes]);
    st.body = [&] { k(static_cast<P>(args)...); };
    for (uint64_t blk = 0; blk < nblocks; ++blk) {
      const uint3 bi{static_cast<unsigned>(blk % g.x), static_cast<unsigned>(blk / g.x % g.y),
                     static_cast<unsigned>(blk / g.x / g.y)};
      Barrier bb(static_cast<int>(nt));
      block_barrier = &bb;
      st.warp_barriers.clear();
      for (unsigned w = 0; w < (nt + 31) / 32; ++w) st.warp_barriers.emplace_back(new Barrier(32));
      st.fibers.assign(nt, Fiber{});
      st.fiber_jb.assign(nt, {});
      st.started.assign(nt, 0);
      st.warpgroup_barriers.clear();
      for (unsigned w = 0; w < (nt + 127) / 128; ++w)
        st.warpgroup_barriers.emplace_back(new Barrier(static_cast<int>(nt - 128 * w < 128 ? nt - 128 * w : 128)));
      for (unsigned t = 0; t < nt; ++t) {
        getcontext(&st.fibers[t].ctx);
        st.fibers[t].ctx.uc_stack.ss_sp = st.stacks[t].get();
        st.fibers[t].ctx.uc_stack.ss_size = kStackBytes;
        st.fibers[t].ctx.uc_link = &st.sched_ctx;
        makecontext(&st.fibers[t].ctx, fiber_main, 0);
      }
      bIdx = bi; bDim = b; gDim = g;
      // Passes in which only spinning happened (no barrier completed, no thread returned): the block waits for
      // another OS thread. The first few yield the CPU; after that each sleeps briefly, so that R spinning ranks
      // on a loaded machine leave the cores to the ranks that have work.
      unsigned idle_passes = 0;
      std::chrono::steady_clock::time_point idle_since{};
      for (unsigned left = nt; left > 0;) {
        const uint64_t before = progress;
        spun = false;
        for (unsigned t = 0; t < nt; ++t) {
          if (st.fibers[t].done) continue;
          cur = static_cast<int>(t);
          tIdx = uint3{t, 0, 0};
          resume(t);
          if (st.fibers[t].done) --left;
        }
        if (left == 0 || progress != before) {
          idle_passes = 0;
          continue;
        }
        if (!spun) {
          std::fprintf(stderr, "emu: deadlock: %u threads of block (%u,%u,%u) wait at a barrier that cannot complete\n",
                       left, bi.x, bi.y, bi.z);
          std::abort();
        }
        const auto now = std::chrono::steady_clock::now();
        if (idle_passes++ == 0) idle_since = now;
        if (std::chrono::duration<double>(now - idle_since).count() > spin_allowance_s) {
          std::fprintf(stderr, "emu: deadlock: %u threads of block (%u,%u,%u) spun for %.0f s without progress\n", left,
                       bi.x, bi.y, bi.z, spin_allowance_s);
          std::abort();
        }
        if (idle_passes < 64)
          std::this_thread::yield();
        else
          std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
      threads_run += nt;
    }
    st.body = nullptr;
  }
};
inline Launch launch(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) { return Launch(g, b, s, st); }
}  // namespace emu
