// Shared pieces of the CPU elementwise kernels: copy, cast, fill, add, mul, scale (native/cpu/<op>.cc).
//
// Every one of these ops is exact: the result must equal the reference (cpu/ref/) bit for bit, so the fast paths
// compute exactly what the reference computes, only more of it at a time:
//   - float math is f32 (f16/bf16 are widened exactly, combined with one f32 add/mul, rounded once to the output);
//     there is no a*b+c in these ops, so FMA contraction cannot change a result;
//   - f32 -> f16 rounds to nearest even like f32_to_f16 (dtype.h); F16C's vcvtps2ph with imm rounding 0 does the
//     same, NaN included (quiet bit set, top 10 mantissa bits kept), checked over all 2^32 inputs;
//   - f16 -> f32 is exact; vcvtph2ps quiets a signalling NaN while f16_to_f32 keeps it, so the AVX2 cast to f32
//     patches NaN lanes with integer ops (in arithmetic the NaN is quieted by the add/mul anyway);
//   - f32 -> bf16 is the integer rounding of f32_to_bf16 done 8 lanes at a time.
// One thing is not pinned down: when both operands of an add or mul are NaN, which payload the (quiet) NaN result
// carries. x86 returns the first source operand's, and compilers commute the operands of a float add freely, so even
// two instantiations of the reference disagree; lk_check counts any NaN equal to any NaN for this reason.
//
// Threading: above kElementwiseParallelMin elements the range is split over ThreadPool::global() in whole blocks of
// kElementwiseBlock elements (chunk boundaries at multiples of 4096 elements, so two threads rarely share a cache
// line of the output); below it the op runs on the calling thread, because waking the pool costs a few
// microseconds, about what a 32K-element op takes on one core.
//
// SIMD: the AVX2/FMA/F16C versions live in simd/elementwise_avx2.cc (the only file compiled with those flags) and
// are chosen per call by cpu_simd_level(); the portable paths are plain loops over ld<>/st<> below, which the
// compiler vectorizes for the baseline ISA.
#pragma once
#include <cstdint>
#include <exception>
#include <new>
#include <string>

#include "../common/thread_pool.h"
#include "cpu.h"
#include "guard.h"

namespace lk {

constexpr int64_t kElementwiseParallelMin = 32768;
constexpr int64_t kElementwiseBlock = 4096;

enum class BinaryOp : int { add, mul };

// The element at index i of a contiguous buffer of dtype t.
inline const void* elem_at(const void* p, DType t, int64_t i) {
  return static_cast<const unsigned char*>(p) + static_cast<size_t>(i) * dtype_size(t);
}
inline void* elem_at(void* p, DType t, int64_t i) {
  return static_cast<unsigned char*>(p) + static_cast<size_t>(i) * dtype_size(t);
}

// Runs fn(begin, end) over [0, n): on the calling thread when n is small, else on the pool in whole blocks.
// Never throws: an exception escaping fn (there should be none) or a failed allocation becomes a Status.
template <class F>
Status parallel_elements(const char* op, int64_t n, const F& fn) {
  return catch_to_status(op, [&]() -> Status {
    if (n < kElementwiseParallelMin) {
      if (n > 0) fn(int64_t{0}, n);
      return Status::OK();
    }
    const int64_t blocks = (n + kElementwiseBlock - 1) / kElementwiseBlock;
    ThreadPool::global().parallel_for(blocks, [&](int64_t b0, int64_t b1, int) {
      const int64_t end = b1 * kElementwiseBlock;
      fn(b0 * kElementwiseBlock, end < n ? end : n);
    });
    return Status::OK();
  });
}

// Branch-free forms of dtype.h's f16/bf16 conversions for the scalar loops. Same results for every input (checked
// against dtype.h over all 2^32 floats and all 2^16 halves when written; lk_native_tests samples them through the
// cast kernel at every SIMD level), but without branches, so that the compiler vectorizes the loops at the baseline
// ISA (SSE2, NEON): about 3x faster than the branchy forms (f32 -> f16 1.0 vs 3.3 ns per element, f16 add 2.0 vs
// 4.9 ns, one core of the 2-core dev VM under load). The selects are
// masks, not ?: -- with a ?: GCC moves the float addition of the subnormal path into a branch, and then (under the
// default -ftrapping-math) refuses to if-convert the loop because the addition might trap.
inline uint32_t select_u32(bool c, uint32_t if_true, uint32_t if_false) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (if_true & m) | (if_false & ~m);
}

inline uint16_t f32_to_f16_fast(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  // Normal results: rebias the exponent 127 -> 15, round the 13 dropped bits to nearest even. A carry into the
  // exponent is the right result, up to and including the overflow to Inf (0x7c00).
  const uint32_t rb = ax - 0x38000000u;  // wraps for small ax, which take the subnormal result
  const uint32_t normal = (rb + 0x0fffu + ((rb >> 13) & 1u)) >> 13;
  // Subnormal results (|f| < 2^-14): in |f| + 0.5 the last mantissa bit is worth 2^-24, the f16 subnormal step, so
  // the float addition itself rounds to nearest even at the right place; 1024 steps is 0x400, the smallest normal.
  const uint32_t sub = f32_bits(f32_from_bits(ax) + 0.5f) - 0x3f000000u;
  const uint32_t nan = 0x7e00u | ((ax >> 13) & 0x3ffu);
  uint32_t r = select_u32(ax < 0x38800000u, sub, normal);
  r = select_u32(ax >= 0x477ff000u, 0x7c00u, r);
  r = select_u32(ax > 0x7f800000u, nan, r);
  return static_cast<uint16_t>(sign | r);
}

inline float f16_to_f32_fast(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = static_cast<uint32_t>(h & 0x7fffu) << 13;  // exponent and mantissa at their f32 places
  const uint32_t normal = em + 0x38000000u;                       // rebias 15 -> 127
  const uint32_t infnan = em | 0x7f800000u;                       // payload kept, signalling or not
  // Subnormal m * 2^-24 = (2^-14 + m * 2^-24) - 2^-14, both steps exact in f32.
  const uint32_t sub = f32_bits(f32_from_bits(em + 0x38800000u) - 6.103515625e-05f);
  const uint32_t e = h & 0x7c00u;
  uint32_t r = select_u32(e == 0x7c00u, infnan, normal);
  r = select_u32(e == 0, sub, r);
  return f32_from_bits(sign | r);
}

inline uint16_t f32_to_bf16_fast(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  const uint32_t nan = (x >> 16) | 0x40u;
  return static_cast<uint16_t>(select_u32((x & 0x7fffffffu) > 0x7f800000u, nan, rounded));
}

// Portable per-dtype element access for the scalar loops: a template parameter instead of load_f32's switch, so the
// switch is taken once per call rather than once per element. Same results as dtype.h, hence as the reference.
template <DType T> inline float ld(const void* p, int64_t i);
template <> inline float ld<DType::f32>(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
template <> inline float ld<DType::f16>(const void* p, int64_t i) {
  return f16_to_f32_fast(static_cast<const uint16_t*>(p)[i]);
}
template <> inline float ld<DType::bf16>(const void* p, int64_t i) {
  return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}
template <> inline float ld<DType::i8>(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const int8_t*>(p)[i]);
}
template <> inline float ld<DType::u8>(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
}
template <> inline float ld<DType::i32>(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const int32_t*>(p)[i]);
}

template <DType T> inline void st(void* p, int64_t i, float v);
template <> inline void st<DType::f32>(void* p, int64_t i, float v) { static_cast<float*>(p)[i] = v; }
template <> inline void st<DType::f16>(void* p, int64_t i, float v) {
  static_cast<uint16_t*>(p)[i] = f32_to_f16_fast(v);
}
template <> inline void st<DType::bf16>(void* p, int64_t i, float v) {
  static_cast<uint16_t*>(p)[i] = f32_to_bf16_fast(v);
}

// Calls f(std::integral_constant-like tag) with the float dtype t as a compile-time value.
template <DType T> struct DTypeTag { static constexpr DType value = T; };
template <class F>
inline void dispatch_float(DType t, const F& f) {
  switch (t) {
    case DType::f32: f(DTypeTag<DType::f32>{}); return;
    case DType::f16: f(DTypeTag<DType::f16>{}); return;
    case DType::bf16: f(DTypeTag<DType::bf16>{}); return;
    default: return;
  }
}
template <class F>
inline void dispatch_any(DType t, const F& f) {
  switch (t) {
    case DType::f32: f(DTypeTag<DType::f32>{}); return;
    case DType::f16: f(DTypeTag<DType::f16>{}); return;
    case DType::bf16: f(DTypeTag<DType::bf16>{}); return;
    case DType::i8: f(DTypeTag<DType::i8>{}); return;
    case DType::u8: f(DTypeTag<DType::u8>{}); return;
    case DType::i32: f(DTypeTag<DType::i32>{}); return;
    default: return;  // quantized formats never reach the elementwise ops (validate_op)
  }
}

// add and mul: y = a (op) b in f32, b of a's shape or row-broadcast. Defined in add.cc, used by mul.cc too.
Status binary_cpu(const OpArgs& args, BinaryOp op);

#if defined(LLMK_HAVE_AVX2_TU)
// simd/elementwise_avx2.cc. Call only when cpu_simd_level() >= SimdLevel::avx2. Pointers are at the first element;
// n elements, any n >= 0, no alignment needed. Same dtype rules as the ops (validated before).
namespace avx2 {
void cast(const void* x, DType xt, void* y, DType yt, int64_t n);            // xt any, yt float
void binary(BinaryOp op, DType t, const void* a, const void* b, void* y, int64_t n);  // t float
void scale(DType t, const void* x, float alpha, void* y, int64_t n);         // t float
}  // namespace avx2
#endif

}  // namespace lk
