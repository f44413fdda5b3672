// Wrappers around the warpgroup-level tensor-core PTX of sm_90a (wgmma) that matmul_q_wgmma.cu uses, with a CPU
// emulation (LK_CUDA_EMU) written from the PTX ISA (section "Asynchronous Warpgroup Level Matrix Multiply-Accumulate
// Instructions", 9.7.15 in ISA 8.x), not from the kernel.
//
// wgmma.mma_async.sync.aligned.m64nNk32.s32.s8.s8 d, a-desc, b-desc, scale-d: D[64 x N] = A[64 x 32] * B[32 x N]
// (+ D when scale-d is true), int32 accumulation, issued by a warpgroup (4 consecutive warps, the first a multiple
// of 4), A and B read from shared memory through 64-bit matrix descriptors. int8 requires both operands K-major: A
// row m is 32 consecutive k, B "row" n (a column of B, a row of our weight w[N, K]) is 32 consecutive k.
//
// Matrix descriptor (ISA "Matrix Descriptor Format"), bits: 0-13 start address >> 4 (shared-window address, 16-byte
// aligned), 16-29 leading dimension byte offset (LBO) >> 4, 32-45 stride dimension byte offset (SBO) >> 4, 49-51
// matrix base offset (0 for our layouts), 62-63 swizzle mode (0 none, 1 128B, 2 64B, 3 32B).
//
// Canonical layout without swizzle ("interleave"), K-major: the operand is made of core matrices of 8 rows x 16
// bytes, each 128 contiguous bytes (row r of a core matrix at byte 16 r). For K-major operands LBO is the distance
// between core matrices adjacent in K and SBO the distance between core matrices adjacent in M (A) or N (B), so
//   byte of (row r, k byte kk) = start + (r / 8) * SBO + (kk / 16) * LBO + (r % 8) * 16 + kk % 16.
// An m64nNk32 s8 instruction reads A as 8 x 2 core matrices and B as N/8 x 2.
//
// Accumulator D (ISA "Register Fragments", matrix D of .m64nNk*): thread (warp w = %warpid % 4 of the warpgroup,
// lane = 4 g + t) holds N/2 registers d[i]:
//   row(i) = 16 w + g + 8 * ((i / 2) % 2),   col(i) = 8 * (i / 4) + 2 t + (i % 2)
// i.e. the C layout of mma.m16n8 (mma.cuh) repeated over N/8 column groups, one 16-row slab per warp.
//
// Ordering (ISA "wgmma.fence", "wgmma.commit_group", "wgmma.wait_group" and the async proxy):
//   - wgmma.fence before the first mma_async of a group, and whenever the accumulator registers were written by
//     other instructions (the kernel fences at every k-step, which also covers the zero initialisation);
//   - commit_group closes the mma_asyncs issued so far into a group; wait_group N returns when at most N groups
//     are pending; only then may the accumulators be read, or the shared memory they read be overwritten;
//   - shared memory written through the generic proxy (ordinary stores, and cp.async, whose writes are not
//     async-proxy writes) must be followed by fence.proxy.async.shared::cta in the writing thread, then a barrier,
//     before an mma_async of another thread reads it.
//
// Compile guard: the wgmma and fence.proxy.async instructions exist only for sm_90a (wgmma) / sm_90 (the fence),
// so their asm is compiled only when __CUDA_ARCH__ >= 900 and __CUDA_ARCH_FEAT_SM90_ALL (the sm_90a pass). The
// sm_80 pass compiles empty bodies (no trap): the host launches the kernel only after checking that the device is
// compute capability 9.0 and that the kernel's binary was built from sm_90a PTX (matmul_q_wgmma.cu).
//
// Under the CPU emulation (emu.h) each wrapper is a host function (see the emulation section below for what it
// checks). Versions: v1, not yet run on a GPU (checked only under the emulation: emu_check --mma).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#if defined(LK_CUDA_EMU)
#include <cstdio>
#include <cstring>
#include <vector>
#endif

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LK_WGMMA_ARCH 1
#else
#define LK_WGMMA_ARCH 0
#endif

namespace lk {
namespace wgmma {

// The descriptor of a K-major, unswizzled operand at shared-window address `saddr` (see the header).
__host__ __device__ constexpr uint64_t desc_encode(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((saddr & 0x3ffffu) >> 4) | static_cast<uint64_t>((lbo & 0x3ffffu) >> 4) << 16 |
         static_cast<uint64_t>((sbo & 0x3ffffu) >> 4) << 32;
}

#if defined(LK_CUDA_EMU)

// ---- emulation ----
// Shared memory: the kernel declares its buffer with LK_WGMMA_SHARED, which here is a static array registered as
// the "shared window", so that a descriptor's 14-bit start address (an offset in that window) can be resolved.
// mma_async: the 128 threads of the warpgroup meet at a warpgroup barrier and must all pass the same descriptors,
// N and scale-d (the instruction is .sync.aligned; a mismatch is reported). Each thread then computes its own
// registers from shared memory, by the descriptor and fragment formulas of the header (int32, wrapping like the
// hardware's s32 accumulation without .satfinite), chaining on the pending result of an earlier mma_async into the
// same registers. The result is NOT written at issue: it is kept pending and written into the registers at the
// wait_group that completes its group, after computing it again from shared memory as it is then; a difference
// means shared memory was overwritten while the instruction could still be reading it (or the registers were
// touched), and is reported. Also reported: an mma_async without a wgmma.fence since the last commit_group,
// swizzle modes or base offsets (not emulated), reads outside the window, and mma_asyncs never waited for.
// Not shown: a missing fence.proxy.async (plain stores are visible at once here) or anything about timing.
namespace emu_detail {
inline const uint8_t* window = nullptr;
inline size_t window_bytes = 0;
inline long long errors = 0, issued = 0;
inline bool quiet = false;  // counted, not printed (emu_check's tests that expect a report)
inline void report(const char* what) {
  if (errors++ < 8 && !quiet) std::fprintf(stderr, "emu wgmma: %s (thread %u of block %u)\n", what, threadIdx.x, blockIdx.x);
}
struct Pending {
  uint64_t da, db;
  int n;
  bool acc;
  int32_t* d;
  int group;                    // commit_group sequence number; -1 while not yet committed
  std::vector<int32_t> result;  // computed at issue
};
struct ThreadState {
  std::vector<Pending> pending;
  int groups = 0;               // groups committed so far
  bool fenced = false;
  long long launch = -1;
  unsigned block = ~0u;
};
inline ThreadState state[1024];
struct Slot { uint64_t da, db; int n, acc; };
inline Slot slots[1024];

inline ThreadState& me() {
  ThreadState& s = state[threadIdx.x];
  const unsigned blk = blockIdx.x + 65536u * (blockIdx.y + 65536u * blockIdx.z);
  if (s.launch != ::emu::launches || s.block != blk) {
    if (!s.pending.empty()) report("mma_async issued but never waited for before the thread ended");
    s = ThreadState{};
    s.launch = ::emu::launches;
    s.block = blk;
  }
  return s;
}

// Byte (row, kk) of a K-major operand described by `desc`.
inline int8_t operand(uint64_t desc, int row, int kk) {
  const uint32_t start = static_cast<uint32_t>(desc & 0x3fff) << 4;
  const uint32_t lbo = static_cast<uint32_t>((desc >> 16) & 0x3fff) << 4;
  const uint32_t sbo = static_cast<uint32_t>((desc >> 32) & 0x3fff) << 4;
  const int base_offset = static_cast<int>((desc >> 49) & 7), swizzle = static_cast<int>(desc >> 62);
  if (swizzle != 0 || base_offset != 0) {
    report("descriptor with a swizzle mode or base offset: not emulated");
    return 0;
  }
  const size_t off = start + static_cast<size_t>(row / 8) * sbo + static_cast<size_t>(kk / 16) * lbo +
                     static_cast<size_t>(row % 8) * 16 + kk % 16;
  if (!window || off >= window_bytes) {
    report("descriptor addresses a byte outside the shared buffer");
    return 0;
  }
  return static_cast<int8_t>(window[off]);
}

// This thread's N/2 registers of A * B (+ base), by the fragment layout of the header.
inline void compute(const Pending& p, const int32_t* base, int32_t* out) {
  const int warp = static_cast<int>(threadIdx.x / 32) % 4, lane = static_cast<int>(threadIdx.x % 32);
  const int g = lane / 4, t = lane % 4;
  for (int i = 0; i < p.n / 2; ++i) {
    const int row = 16 * warp + g + 8 * ((i / 2) % 2), col = 8 * (i / 4) + 2 * t + (i % 2);
    uint32_t acc = p.acc ? static_cast<uint32_t>(base[i]) : 0u;
    for (int k = 0; k < 32; ++k)
      acc += static_cast<uint32_t>(static_cast<int32_t>(operand(p.da, row, k)) * operand(p.db, col, k));
    out[i] = static_cast<int32_t>(acc);
  }
}

inline void warpgroup_sync() { ::emu::ts->warpgroup_barriers[threadIdx.x / 128]->arrive_and_wait(); }

inline void mma(int32_t* d, int n, uint64_t da, uint64_t db, bool accumulate) {
  ThreadState& s = me();
  ++issued;
  if (!s.fenced) report("mma_async without a wgmma.fence since the last commit_group");
  slots[threadIdx.x] = Slot{da, db, n, accumulate ? 1 : 0};
  warpgroup_sync();
  const Slot& first = slots[threadIdx.x / 128 * 128];
  if (first.da != da || first.db != db || first.n != n || first.acc != (accumulate ? 1 : 0))
    report("the threads of a warpgroup passed different operands to one mma_async");
  warpgroup_sync();  // every thread has compared before any thread's next mma_async overwrites the slots
  Pending p{da, db, n, accumulate, d, -1, std::vector<int32_t>(n / 2)};
  const int32_t* base = d;  // the registers as they are, unless an earlier pending mma_async writes them
  for (auto it = s.pending.rbegin(); it != s.pending.rend(); ++it)
    if (it->d == d) {
      base = it->result.data();
      break;
    }
  compute(p, base, p.result.data());
  s.pending.push_back(std::move(p));
}
}  // namespace emu_detail

inline uint64_t smem_desc(const void* p, uint32_t lbo, uint32_t sbo) {
  const ptrdiff_t off = static_cast<const uint8_t*>(p) - emu_detail::window;
  if (!emu_detail::window || off < 0 || static_cast<size_t>(off) >= emu_detail::window_bytes || off % 16)
    emu_detail::report("descriptor of an address outside the shared buffer, or not 16-byte aligned");
  return desc_encode(static_cast<uint32_t>(off), lbo, sbo);
}
inline void emu_set_window(const uint8_t* p, size_t bytes) {
  emu_detail::window = p;
  emu_detail::window_bytes = bytes;
}
inline void fence() { emu_detail::me().fenced = true; }
inline void commit_group() {
  emu_detail::ThreadState& s = emu_detail::me();
  for (auto& p : s.pending)
    if (p.group < 0) p.group = s.groups;
  ++s.groups;
  s.fenced = false;
}
template <int kPending>
inline void wait_group() {
  emu_detail::ThreadState& s = emu_detail::me();
  const int done_below = s.groups - kPending;  // groups with a smaller number are complete after the wait
  std::vector<emu_detail::Pending> keep;
  for (auto& p : s.pending) {
    if (p.group < 0 || p.group >= done_below) {
      keep.push_back(std::move(p));
      continue;
    }
    std::vector<int32_t> now(p.n / 2);
    emu_detail::compute(p, p.d, now.data());  // earlier ones of the chain were written just before
    if (now != p.result) emu_detail::report("shared memory or accumulators changed while an mma_async was pending");
    std::memcpy(p.d, p.result.data(), sizeof(int32_t) * (p.n / 2));
  }
  s.pending = std::move(keep);
}
inline void fence_proxy_async() {}
template <int N>
inline void fence_operands(int32_t (&)[N / 2]) {}
template <int N>
inline void mma_s8(int32_t (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
  static_assert(N == 128 || N == 256, "m64n128k32 and m64n256k32 are wrapped");
  emu_detail::mma(d, N, desc_a, desc_b, accumulate);
}

#define LK_WGMMA_SHARED(name, bytes)          \
  alignas(1024) static uint8_t name[bytes]; \
  ::lk::wgmma::emu_set_window(name, bytes)

#else  // the device

#define LK_WGMMA_SHARED(name, bytes) extern __shared__ __align__(1024) uint8_t name[]

__device__ __forceinline__ uint64_t smem_desc(const void* p, uint32_t lbo, uint32_t sbo) {
  return desc_encode(static_cast<uint32_t>(__cvta_generic_to_shared(p)), lbo, sbo);
}
__device__ __forceinline__ void fence() {
#if LK_WGMMA_ARCH
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void commit_group() {
#if LK_WGMMA_ARCH
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int kPending>
__device__ __forceinline__ void wait_group() {
#if LK_WGMMA_ARCH
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}
// Generic-proxy shared-memory writes (st.shared, cp.async) made visible to the async proxy (wgmma's reads).
__device__ __forceinline__ void fence_proxy_async() {
#if LK_WGMMA_ARCH
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving reads or writes of the accumulators across a wait_group (the asm of mma_s8 says
// it writes them, but they change later, asynchronously).
template <int N>
__device__ __forceinline__ void fence_operands(int32_t (&d)[N / 2]) {
  #pragma unroll
  for (int i = 0; i < N / 2; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

template <int N>
__device__ __forceinline__ void mma_s8(int32_t (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, bool accumulate);

template <>
__device__ __forceinline__ void mma_s8<128>(int32_t (&d)[64], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
#if LK_WGMMA_ARCH
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<uint32_t>(accumulate))

      : "memory");
#endif
}

template <>
__device__ __forceinline__ void mma_s8<256>(int32_t (&d)[128], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
#if LK_WGMMA_ARCH
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95,"
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111,"
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, %128, %129, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63]),
        "+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]),
        "+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]),
        "+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]),
        "+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95]),
        "+r"(d[96]), "+r"(d[97]), "+r"(d[98]), "+r"(d[99]), "+r"(d[100]), "+r"(d[101]), "+r"(d[102]), "+r"(d[103]),
        "+r"(d[104]), "+r"(d[105]), "+r"(d[106]), "+r"(d[107]), "+r"(d[108]), "+r"(d[109]), "+r"(d[110]), "+r"(d[111]),
        "+r"(d[112]), "+r"(d[113]), "+r"(d[114]), "+r"(d[115]), "+r"(d[116]), "+r"(d[117]), "+r"(d[118]), "+r"(d[119]),
        "+r"(d[120]), "+r"(d[121]), "+r"(d[122]), "+r"(d[123]), "+r"(d[124]), "+r"(d[125]), "+r"(d[126]), "+r"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<uint32_t>(accumulate))

      : "memory");
#endif
}

#endif

}  // namespace wgmma
}  // namespace lk
