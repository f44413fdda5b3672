// Thin wrappers around the warp-level tensor-core and async-copy PTX that the GEMM kernels use (sm_80 and later;
// sm_90a runs them unchanged). Each is one instruction; the fragment layouts below are those of the PTX ISA,
// section "Warp-level Matrix Fragments for mma.m16n8k16 with floating point type" and "... for mma.m16n8k32"
// (9.7.14.5.8 / 9.7.14.5.9 in ISA 8.x), with g = lane / 4 (groupID) and t = lane % 4 (threadID_in_group):
//
//   m16n8k16 f16/bf16, A 16x16 row-major, 4 .b32 registers = 8 halves a[i], i = 0..7 (register i / 2, low half
//     first):   row(i) = g + 8 * ((i / 2) & 1),        col(i) = 2t + (i & 1) + 8 * (i >= 4)
//   m16n8k16 B 16x8 "col" (k-major per column), 2 registers = 4 halves b[i]:
//               k(i)   = 2t + (i & 1) + 8 * (i >= 2),  n = g
//   m16n8k32 s8, A 16x32, 4 registers = 16 bytes a[i] (register i / 4, byte i % 4):
//               row(i) = g + 8 * ((i / 4) & 1),        col(i) = 4t + (i & 3) + 16 * (i >= 8)
//   m16n8k32 B 32x8, 2 registers = 8 bytes b[i]:
//               k(i)   = 4t + (i & 3) + 16 * (i >= 4), n = g
//   C / D (both shapes, f32 or s32), 4 registers c[i]:
//               row(i) = g + 8 * (i >= 2),             col(i) = 2t + (i & 1)
//
//   ldmatrix.x4 (.b16): lanes 8j .. 8j+7 give the addresses of the 8 rows (16 bytes each) of matrix j; register j of
//     lane (g, t) receives bytes 4t .. 4t+3 of row g of matrix j. .x2: matrices 0 and 1 (lanes 0..15 give the
//     addresses). .trans: register j receives the b16 elements (row 2t, col g) and (row 2t+1, col g).
//   cp.async.{ca,cg}.shared.global [dst], [src], cp-size, src-size: copies src-size bytes and zero-fills the rest of
//     cp-size (src-size 0 reads nothing: the way to zero a tile's out-of-range chunks). .cg (L2 only) exists only for
//     16 bytes; 4 and 8 bytes use .ca. commit_group closes the copies issued so far into a group; wait_group<N>
//     waits until at most N groups are pending (then a __syncthreads makes the data visible to the block).
//
// Under the CPU emulation (emu.h defines LK_CUDA_EMU) each wrapper is a host function with the same semantics: the
// 32 lanes of a warp publish their fragments in per-warp slots, meet at a warp barrier, and each lane computes its
// own D elements from the A and B elements owned by other lanes according to the layouts above. A kernel that puts
// a value into the wrong register or reads the wrong lane's result therefore gets wrong numbers under the emulation,
// as it would on the GPU. The f32 accumulation there sums the 16 exact products in k order (the hardware's
// internal order and rounding differ; the kernels' tolerances allow for that). cp.async becomes a plain copy and
// the group operations no-ops (the data is there at once, so the emulation cannot show a missing wait; the
// kernels' __syncthreads placement is what orders the stages).
//
// Versions: v1: not yet run on a GPU (compiled for sm_80 and sm_90a; checked under the emulation by
// emu_check --mma's self-test of each wrapper against a plain matrix product).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lk {
namespace mma {

#if defined(LK_CUDA_EMU)

namespace detail {
inline int lane_id() { return static_cast<int>(threadIdx.x % 32); }
inline int warp_id() { return static_cast<int>(threadIdx.x / 32); }
inline float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
inline float bf16_bits_to_f32(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }
inline uint16_t half_of(uint32_t r, int hi) { return static_cast<uint16_t>(hi ? r >> 16 : r & 0xffffu); }

// m16n8k16: the lane and half that own A(row, k) and B(k, n) (the inverse of the layouts in the header).
inline uint16_t a16(int w, int row, int k) {
  const int lane = (row % 8) * 4 + (k % 8) / 2;
  const int i = (k >= 8 ? 4 : 0) + (row >= 8 ? 2 : 0) + (k & 1);
  return half_of(emu::mma_a[w][lane][i / 2], i & 1);
}
inline uint16_t b16(int w, int k, int n) {
  const int lane = n * 4 + (k % 8) / 2;
  const int i = (k >= 8 ? 2 : 0) + (k & 1);
  return half_of(emu::mma_b[w][lane][i / 2], i & 1);
}
// m16n8k32: the byte that holds A(row, k) and B(k, n).
inline int8_t a8(int w, int row, int k) {
  const int lane = (row % 8) * 4 + (k % 16) / 4;
  const int i = (k >= 16 ? 8 : 0) + (row >= 8 ? 4 : 0) + (k & 3);
  return static_cast<int8_t>(emu::mma_a[w][lane][i / 4] >> (8 * (i % 4)));
}
inline int8_t b8(int w, int k, int n) {
  const int lane = n * 4 + (k % 16) / 4;
  const int i = (k >= 16 ? 4 : 0) + (k & 3);
  return static_cast<int8_t>(emu::mma_b[w][lane][i / 4] >> (8 * (i % 4)));
}

inline void publish(const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const int w = warp_id(), l = lane_id();
  for (int i = 0; i < 4; ++i) emu::mma_a[w][l][i] = a[i];
  for (int i = 0; i < 2; ++i) emu::mma_b[w][l][i] = b[i];
  emu::warp_sync();
}

template <bool kBf16>
inline void mma_k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  publish(a, b);
  const int w = warp_id(), l = lane_id(), g = l / 4, t = l % 4;
  float r[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >= 2), col = 2 * t + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; ++k) {
      const uint16_t x = a16(w, row, k), y = b16(w, k, col);
      const float p = kBf16 ? bf16_bits_to_f32(x) * bf16_bits_to_f32(y) : f16_bits_to_f32(x) * f16_bits_to_f32(y);
      acc += p;
    }
    r[i] = acc;
  }
  emu::warp_sync();  // every lane has read the slots before any lane's next mma overwrites them
  for (int i = 0; i < 4; ++i) d[i] = r[i];
}
}  // namespace detail

inline void mma_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) { detail::mma_k16<false>(d, a, b); }
inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) { detail::mma_k16<true>(d, a, b); }

inline void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  detail::publish(a, b);
  const int w = detail::warp_id(), l = detail::lane_id(), g = l / 4, t = l % 4;
  int32_t r[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >= 2), col = 2 * t + (i & 1);
    int32_t acc = d[i];
    for (int k = 0; k < 32; ++k) acc += static_cast<int32_t>(detail::a8(w, row, k)) * detail::b8(w, k, col);
    r[i] = acc;
  }
  emu::warp_sync();
  for (int i = 0; i < 4; ++i) d[i] = r[i];
}

namespace detail {
template <int kMats, bool kTrans>
inline void ldmatrix(uint32_t* r, const void* row_addr) {
  const int w = warp_id(), l = lane_id(), g = l / 4, t = l % 4;
  emu::ld_addr[w][l] = row_addr;
  emu::warp_sync();
  for (int j = 0; j < kMats; ++j) {
    if (!kTrans) {
      memcpy(&r[j], static_cast<const uint8_t*>(emu::ld_addr[w][8 * j + g]) + 4 * t, 4);
    } else {
      uint16_t lo, hi;
      memcpy(&lo, static_cast<const uint8_t*>(emu::ld_addr[w][8 * j + 2 * t]) + 2 * g, 2);
      memcpy(&hi, static_cast<const uint8_t*>(emu::ld_addr[w][8 * j + 2 * t + 1]) + 2 * g, 2);
      r[j] = lo | static_cast<uint32_t>(hi) << 16;
    }
  }
  emu::warp_sync();
}
}  // namespace detail

inline void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr) { detail::ldmatrix<4, false>(r, row_addr); }
inline void ldmatrix_x2(uint32_t (&r)[2], const void* row_addr) { detail::ldmatrix<2, false>(r, row_addr); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_addr) { detail::ldmatrix<4, true>(r, row_addr); }
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row_addr) { detail::ldmatrix<2, true>(r, row_addr); }

template <int kBytes>
inline void cp_async(void* smem, const void* gmem, int src_bytes) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const int n = src_bytes < 0 ? 0 : (src_bytes > kBytes ? kBytes : src_bytes);
  if (n) memcpy(smem, gmem, n);
  memset(static_cast<uint8_t*>(smem) + n, 0, kBytes - n);
}
inline void cp_async_commit() {}
template <int kPending>
inline void cp_async_wait() {}

#else  // the device

__device__ __forceinline__ void mma_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(row_addr)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_u32(row_addr)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(row_addr)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(row_addr)));
}

// src_bytes in [0, kBytes]: the rest of the kBytes is zero-filled.
template <int kBytes>
__device__ __forceinline__ void cp_async(void* smem, const void* gmem, int src_bytes) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
  if constexpr (kBytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(src_bytes)
                 : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(smem_u32(smem)), "l"(gmem), "n"(kBytes),
                 "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

#endif

}  // namespace mma
}  // namespace lk
