// Element types and their scalar conversions.
//
// f16 and bf16 are stored as raw uint16_t bit patterns. Conversions from f32 round to nearest, ties to even, and
// keep NaN a NaN (the quiet bit is set, the sign and the top mantissa bits are kept) and Inf an Inf. These scalar
// functions are the reference for every vectorised conversion (F16C on x86, CUDA intrinsics), which must match
// them bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lk {

// The numeric values are part of the N-API surface (lib/dtype.ts and lib/quant/formats.ts mirror them). Dense
// element types take 0..15; the block-quantized weight formats of quant.h take ids from 16 up. A quantized tensor
// is always a 2-D weight [N, K]; its bytes are quant_nbytes(), not numel * dtype_size (which is 0 for them).
// f8e4m3 (OCP FP8 E4M3, "e4m3fn": bias 7, no Inf, NaN = S.1111.111, largest finite 448) is a storage type of the
// paged KV cache (kv.h): only copy and the KV ops accept it.
enum class DType : int32_t {
  f32 = 0, f16 = 1, bf16 = 2, i8 = 3, u8 = 4, i32 = 5, f8e4m3 = 6,
  q8_0 = 16, q4_0 = 17, q4_g32 = 18, q4_g64 = 19, q4_g128 = 20, i8_pc = 21,
};
constexpr int kNumDTypes = 7;        // dense: ids 0 .. kNumDTypes - 1
constexpr int kFirstQuantDType = 16;
constexpr int kNumQuantDTypes = 6;   // quantized: ids kFirstQuantDType ..

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i8: return 1;
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::f8e4m3: return 1;
    default: return 0;  // quantized formats: no per-element size
  }
}
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::f8e4m3: return "f8e4m3";
    case DType::q8_0: return "q8_0";
    case DType::q4_0: return "q4_0";
    case DType::q4_g32: return "q4_g32";
    case DType::q4_g64: return "q4_g64";
    case DType::q4_g128: return "q4_g128";
    case DType::i8_pc: return "i8_pc";
  }
  return "?";
}
constexpr bool dtype_is_quant(DType t) {
  return static_cast<int32_t>(t) >= kFirstQuantDType && static_cast<int32_t>(t) < kFirstQuantDType + kNumQuantDTypes;
}
constexpr bool dtype_valid(int32_t v) {
  return (v >= 0 && v < kNumDTypes) || (v >= kFirstQuantDType && v < kFirstQuantDType + kNumQuantDTypes);
}
constexpr bool dtype_is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

static_assert(sizeof(float) == 4, "f32 must be 4 bytes");
static_assert(dtype_size(DType::f16) == sizeof(uint16_t) && dtype_size(DType::bf16) == sizeof(uint16_t), "half types are 2 bytes");
static_assert(dtype_size(DType::i32) == sizeof(int32_t), "i32 is 4 bytes");

// Functions marked LK_HOST_DEVICE are also the device code of the CUDA kernels (kv_cache.cu's f8e4m3 stores, the
// paged attention kernels' f8e4m3 loads; kv.h's kv_exp; quant.cu's f16 scales): one definition for every backend,
// instead of copies to keep in step.
#if defined(__CUDACC__)
#define LK_HOST_DEVICE __host__ __device__
#else
#define LK_HOST_DEVICE
#endif

LK_HOST_DEVICE inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
LK_HOST_DEVICE inline float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// f32 -> f16, round to nearest even. Handles subnormal results, overflow to Inf, and NaN (quiet bit forced, like
// the F16C instruction vcvtps2ph).
LK_HOST_DEVICE inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // Inf or NaN
    if (ax == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: Inf
  if (ax < 0x38800000u) {  // result is subnormal or zero: value = m * 2^-24
    if (ax < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0 (2^-25 ties to even 0)
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24 bits shifted out to reach units of 2^-24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  // normal: rebias exponent 127 -> 15 and round the 13 dropped mantissa bits
  uint32_t r = ax - 0x38000000u;
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry into the exponent is the right result
  return static_cast<uint16_t>(sign | r);
}

LK_HOST_DEVICE inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return f32_from_bits(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return f32_from_bits(sign);
    // subnormal: m * 2^-24, exact in f32
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

// f32 -> bf16, round to nearest even; NaN stays NaN with the quiet bit set.
inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  const uint32_t lsb = (x >> 16) & 1u;
  return static_cast<uint16_t>((x + 0x7fffu + lsb) >> 16);
}
inline float bf16_to_f32(uint16_t b) { return f32_from_bits(static_cast<uint32_t>(b) << 16); }

// f32 -> f8e4m3, round to nearest even, saturating: a finite value or Inf beyond 448 gives +-448 (CUDA's
// __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)); NaN gives the NaN pattern with x's sign.
LK_HOST_DEVICE inline uint8_t f32_to_f8e4m3(float f) {
  const uint32_t x = f32_bits(f);
  const uint8_t sign = static_cast<uint8_t>((x >> 24) & 0x80u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);
  if (ax >= 0x43e00000u) return static_cast<uint8_t>(sign | 0x7eu);  // >= 448 (Inf included)
  if (ax < 0x3c800000u) {  // below 2^-6: a subnormal m * 2^-9 (m = 8 is 2^-6, the smallest normal: also right)
    const float v = f32_from_bits(ax) * 512.0f;  // exact
    uint32_t r = static_cast<uint32_t>(v);
    const float frac = v - static_cast<float>(r);
    if (frac > 0.5f || (frac == 0.5f && (r & 1u))) ++r;
    return static_cast<uint8_t>(sign | r);
  }
  uint32_t r = ax - (120u << 23);  // rebias 127 -> 7
  const uint32_t rem = r & 0xfffffu;
  r >>= 20;
  if (rem > 0x80000u || (rem == 0x80000u && (r & 1u))) ++r;
  if (r > 0x7eu) r = 0x7eu;  // 1.111b * 2^8 would be the NaN pattern: saturate to 448
  return static_cast<uint8_t>(sign | r);
}

LK_HOST_DEVICE inline float f8e4m3_to_f32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  const uint32_t e = (b >> 3) & 0xfu;
  const uint32_t m = b & 7u;
  if (e == 0xf && m == 7) return f32_from_bits(sign | 0x7fc00000u);
  if (e == 0) {
    const float v = static_cast<float>(m) * 0.001953125f;  // m * 2^-9
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((e + 120u) << 23) | (m << 20));
}

// Load/store one element of a float dtype as f32 (used by references and scalar fallbacks).
inline float load_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::i8: return static_cast<float>(static_cast<const int8_t*>(p)[i]);
    case DType::u8: return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
    case DType::i32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
    case DType::f8e4m3: return f8e4m3_to_f32(static_cast<const uint8_t*>(p)[i]);
    default: return 0.0f;  // quantized formats are read through quant.h
  }
}
inline void store_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = v; return;
    case DType::f16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); return;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); return;
    default: return;  // integer outputs are never produced from floats by the dense ops
  }
}

}  // namespace lk
