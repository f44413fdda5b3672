// Device pieces of the paged KV cache's token quantization (common/kv.h): the f8e4m3 storage type and its
// conversion from f32, bit for bit dtype.h's f32_to_f8e4m3.
//
// Why a copy instead of the hardware cvt (__nv_cvt_float_to_fp8 / cvt.rn.satfinite.e4m3x2.f32, sm_89+): sm_80 has
// no such instruction, and dtype.h's function is the spec every backend matches. The copy is the same integer
// arithmetic (round to nearest even on the bits, saturating at 448, NaN -> S.1111.111); it is __host__ __device__
// so that emu_check --conversions compares it with dtype.h for all 2^32 f32 inputs.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace lk {

// f8e4m3 as a raw bit pattern (distinct type so that the kernels' templates pick the right store).
struct f8e4m3_t {
  uint8_t bits;
};

// f32 -> f8e4m3: dtype.h's f32_to_f8e4m3, statement for statement.
__host__ __device__ __forceinline__ uint8_t f8e4m3_from_f32(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 24) & 0x80u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);  // NaN
  if (ax >= 0x43e00000u) return static_cast<uint8_t>(sign | 0x7eu);  // >= 448 (Inf included): saturate
  if (ax < 0x3c800000u) {
    // Below 2^-6: a subnormal m * 2^-9. v = |f| * 512 < 8 is exact (a power-of-two scale of a normal f32 that
    // stays normal or is exactly representable), so r and frac are exact too.
    float af;
    memcpy(&af, &ax, 4);
    const float v = af * 512.0f;
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

}  // namespace lk
