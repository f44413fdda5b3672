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
//
// Threading: above kElementwiseParallelMin elements the range is split over ThreadPool::global() in whole blocks of
// kElementwiseBlock elements (so a chunk boundary never splits a cache line of the output); below it the op runs on
// the calling thread, because waking the pool costs a few microseconds, more than a 32K-element op takes.
//
// SIMD: the AVX2/FMA/F16C versions live in simd/elementwise_avx2.cc (the only file compiled with those flags) and
// are chosen per call by cpu_simd_level(); the portable paths here are plain scalar loops over dtype.h.
#pragma once
#include <cstdint>
#include <exception>
#include <new>
#include <string>

#include "../common/thread_pool.h"
#include "cpu.h"

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
  try {
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
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, std::string(op) + ": out of memory starting the thread pool");
  } catch (const std::exception& e) {
    return internal_error(std::string(op) + ": " + e.what());
  } catch (...) {
    return internal_error(std::string(op) + ": unknown exception");
  }
}

// Portable per-dtype element access for the scalar loops: a template parameter instead of load_f32's switch, so the
// switch is taken once per call rather than once per element. Same conversions as dtype.h, hence as the reference.
template <DType T> inline float ld(const void* p, int64_t i);
template <> inline float ld<DType::f32>(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
template <> inline float ld<DType::f16>(const void* p, int64_t i) { return f16_to_f32(static_cast<const uint16_t*>(p)[i]); }
template <> inline float ld<DType::bf16>(const void* p, int64_t i) { return bf16_to_f32(static_cast<const uint16_t*>(p)[i]); }
template <> inline float ld<DType::i8>(const void* p, int64_t i) { return static_cast<float>(static_cast<const int8_t*>(p)[i]); }
template <> inline float ld<DType::u8>(const void* p, int64_t i) { return static_cast<float>(static_cast<const uint8_t*>(p)[i]); }
template <> inline float ld<DType::i32>(const void* p, int64_t i) { return static_cast<float>(static_cast<const int32_t*>(p)[i]); }

template <DType T> inline void st(void* p, int64_t i, float v);
template <> inline void st<DType::f32>(void* p, int64_t i, float v) { static_cast<float*>(p)[i] = v; }
template <> inline void st<DType::f16>(void* p, int64_t i, float v) { static_cast<uint16_t*>(p)[i] = f32_to_f16(v); }
template <> inline void st<DType::bf16>(void* p, int64_t i, float v) { static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); }

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
  }
}

// add and mul: y = a (op) b in f32, b of a's shape or row-broadcast. Defined in add.cc, used by mul.cc too.
Status binary_cpu(const OpArgs& args, BinaryOp op);

#if defined(LLMK_HAVE_AVX2_TU)
// simd/elementwise_avx2.cc. Call only when cpu_simd_level() == SimdLevel::avx2. Pointers are at the first element;
// n elements, any n >= 0, no alignment needed. Same dtype rules as the ops (validated before).
namespace avx2 {
void cast(const void* x, DType xt, void* y, DType yt, int64_t n);            // xt any, yt float
void binary(BinaryOp op, DType t, const void* a, const void* b, void* y, int64_t n);  // t float
void scale(DType t, const void* x, float alpha, void* y, int64_t n);         // t float
}  // namespace avx2
#endif

}  // namespace lk
