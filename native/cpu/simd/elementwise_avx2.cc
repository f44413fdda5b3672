// AVX2 + F16C versions of the elementwise kernels (cast, add, mul, scale), 8 lanes of f32 at a time.
//
// Every load widens 8 elements of the input dtype to one __m256 of f32, every store rounds one __m256 to the output
// dtype; the ops are one f32 vaddps/vmulps in between, the same single rounding as the reference's scalar f32 math,
// so results are bit-exact with cpu/ref/ (see ../elementwise.h for the conversion details).
//   f16 -> f32:  vcvtph2ps (exact; only the cast to f32 patches signalling NaNs, which vcvtph2ps quiets)
//   f32 -> f16:  vcvtps2ph, imm 0 = round to nearest even, = f32_to_f16 over all 2^32 inputs
//   bf16 -> f32: zero-extend and shift left 16
//   f32 -> bf16: (x + 0x7fff + ((x >> 16) & 1)) >> 16, NaN lanes -> (x >> 16) | 0x40, packed with vpackusdw
//   i8/u8/i32 -> f32: sign/zero-extend, vcvtdq2ps (round to nearest even under the default MXCSR, like a C cast)
// The last n % 8 elements go through a zero-padded stack buffer, so there are no masked loads and no scalar copy
// of the conversions here.
//
// This file is compiled with -mavx2 -mfma -mf16c. It must not call an inline function shared with the baseline
// files (dtype.h's converters, std:: templates): the linker keeps one copy of such a function, and if it kept the
// one compiled here, baseline code would run AVX instructions on a CPU without them. Hence everything below is in
// an anonymous namespace and uses only intrinsics and memcpy.
//
// Measured and run by lk_check (every case at this level and at --simd scalar) and lk_bench.
#include <immintrin.h>

#include <cstring>

#include "../elementwise.h"

namespace lk {
namespace {

using u8p = unsigned char;

template <DType T> struct Size;
template <> struct Size<DType::f32> { static constexpr int value = 4; };
template <> struct Size<DType::f16> { static constexpr int value = 2; };
template <> struct Size<DType::bf16> { static constexpr int value = 2; };
template <> struct Size<DType::i8> { static constexpr int value = 1; };
template <> struct Size<DType::u8> { static constexpr int value = 1; };
template <> struct Size<DType::i32> { static constexpr int value = 4; };

// ---- 8 elements -> 8 f32 ----
template <DType T> inline __m256 load8(const u8p* p);
template <> inline __m256 load8<DType::f32>(const u8p* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
template <> inline __m256 load8<DType::f16>(const u8p* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <> inline __m256 load8<DType::bf16>(const u8p* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
template <> inline __m256 load8<DType::i8>(const u8p* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
template <> inline __m256 load8<DType::u8>(const u8p* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
template <> inline __m256 load8<DType::i32>(const u8p* p) {
  return _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// f16 -> f32 keeping signalling NaNs signalling, as f16_to_f32 does: for an exponent of all ones the f32 bits are
// sign << 16 | 0x7f800000 | mantissa << 13, i.e. ((h & 0x7fff) << 13) | 0x70000000 plus the sign. Only the cast to
// f32 needs it; every other use feeds the value to an add/mul or a narrowing store, which quiets it regardless.
inline __m256 load8_f16_exact(const u8p* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256 fast = _mm256_cvtph_ps(h);
  const __m256i w = _mm256_cvtepu16_epi32(h);
  const __m256i mag = _mm256_and_si256(w, _mm256_set1_epi32(0x7fff));
  const __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c00));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16);
  const __m256i bits =
      _mm256_or_si256(_mm256_or_si256(sign, _mm256_slli_epi32(mag, 13)), _mm256_set1_epi32(0x70000000));
  return _mm256_blendv_ps(fast, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(nan));
}

// ---- 8 f32 -> 8 elements ----
template <DType T> inline void store8(u8p* p, __m256 v);
template <> inline void store8<DType::f32>(u8p* p, __m256 v) { _mm256_storeu_ps(reinterpret_cast<float*>(p), v); }
template <> inline void store8<DType::f16>(u8p* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
template <> inline void store8<DType::bf16>(u8p* p, __m256 v) {
  const __m256i x = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  // |x| > Inf as integers is NaN; both sides are non-negative int32, so the signed compare is right.
  const __m256i mag = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  const __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7f800000));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
  // Every lane is < 0x10000, so the unsigned-saturating pack is a plain narrowing.
  const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}

// Loops over n elements in steps of 8; `body(xs, ys)` handles 8 elements at the given byte pointers. The tail is
// staged through zero-filled 32-byte buffers (8 elements of the widest dtype).
template <int SX, int SY, class Body>
inline void loop8(const u8p* x, u8p* y, int64_t n, const Body& body) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    body(x + i * SX, y + i * SY);
    body(x + (i + 8) * SX, y + (i + 8) * SY);
  }
  for (; i + 8 <= n; i += 8) body(x + i * SX, y + i * SY);
  if (i < n) {
    alignas(32) u8p bx[32] = {};
    alignas(32) u8p by[32];
    const size_t rest = static_cast<size_t>(n - i);
    std::memcpy(bx, x + i * SX, rest * SX);
    body(bx, by);
    std::memcpy(y + i * SY, by, rest * SY);
  }
}

template <DType TX, DType TY>
void cast_t(const void* x, void* y, int64_t n) {
  constexpr int SX = Size<TX>::value, SY = Size<TY>::value;
  const u8p* xp = static_cast<const u8p*>(x);
  u8p* yp = static_cast<u8p*>(y);
  if constexpr (TX == DType::f16 && TY == DType::f32) {
    loop8<SX, SY>(xp, yp, n, [](const u8p* s, u8p* d) { store8<TY>(d, load8_f16_exact(s)); });
  } else {
    loop8<SX, SY>(xp, yp, n, [](const u8p* s, u8p* d) { store8<TY>(d, load8<TX>(s)); });
  }
}

template <DType TX>
void cast_from(const void* x, DType yt, void* y, int64_t n) {
  switch (yt) {
    case DType::f32: return cast_t<TX, DType::f32>(x, y, n);
    case DType::f16: return cast_t<TX, DType::f16>(x, y, n);
    case DType::bf16: return cast_t<TX, DType::bf16>(x, y, n);
    default: return;
  }
}

// a and b advance together (b of a's shape, or one row of a broadcast b: the caller splits at row ends).
template <DType T, BinaryOp OP>
void binary_t(const void* a, const void* b, void* y, int64_t n) {
  constexpr int S = Size<T>::value;
  const u8p* ap = static_cast<const u8p*>(a);
  const u8p* bp = static_cast<const u8p*>(b);
  u8p* yp = static_cast<u8p*>(y);
  auto op = [](__m256 u, __m256 v) { return OP == BinaryOp::add ? _mm256_add_ps(u, v) : _mm256_mul_ps(u, v); };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 r0 = op(load8<T>(ap + i * S), load8<T>(bp + i * S));
    const __m256 r1 = op(load8<T>(ap + (i + 8) * S), load8<T>(bp + (i + 8) * S));
    store8<T>(yp + i * S, r0);
    store8<T>(yp + (i + 8) * S, r1);
  }
  for (; i + 8 <= n; i += 8) store8<T>(yp + i * S, op(load8<T>(ap + i * S), load8<T>(bp + i * S)));
  if (i < n) {
    alignas(32) u8p ba[32] = {}, bb[32] = {};
    alignas(32) u8p by[32];
    const size_t rest = static_cast<size_t>(n - i) * S;
    std::memcpy(ba, ap + i * S, rest);
    std::memcpy(bb, bp + i * S, rest);
    store8<T>(by, op(load8<T>(ba), load8<T>(bb)));
    std::memcpy(yp + i * S, by, rest);
  }
}

template <DType T>
void scale_t(const void* x, float alpha, void* y, int64_t n) {
  constexpr int S = Size<T>::value;
  const __m256 va = _mm256_set1_ps(alpha);
  loop8<S, S>(static_cast<const u8p*>(x), static_cast<u8p*>(y), n,
              [va](const u8p* s, u8p* d) { store8<T>(d, _mm256_mul_ps(va, load8<T>(s))); });
}

template <BinaryOp OP>
void binary_op(DType t, const void* a, const void* b, void* y, int64_t n) {
  switch (t) {
    case DType::f32: return binary_t<DType::f32, OP>(a, b, y, n);
    case DType::f16: return binary_t<DType::f16, OP>(a, b, y, n);
    case DType::bf16: return binary_t<DType::bf16, OP>(a, b, y, n);
    default: return;
  }
}

}  // namespace

namespace avx2 {

void cast(const void* x, DType xt, void* y, DType yt, int64_t n) {
  switch (xt) {
    case DType::f32: return cast_from<DType::f32>(x, yt, y, n);
    case DType::f16: return cast_from<DType::f16>(x, yt, y, n);
    case DType::bf16: return cast_from<DType::bf16>(x, yt, y, n);
    case DType::i8: return cast_from<DType::i8>(x, yt, y, n);
    case DType::u8: return cast_from<DType::u8>(x, yt, y, n);
    case DType::i32: return cast_from<DType::i32>(x, yt, y, n);
    default: return;  // quantized formats: refused by validate_op
  }
}

void binary(BinaryOp op, DType t, const void* a, const void* b, void* y, int64_t n) {
  if (op == BinaryOp::add)
    binary_op<BinaryOp::add>(t, a, b, y, n);
  else
    binary_op<BinaryOp::mul>(t, a, b, y, n);
}

void scale(DType t, const void* x, float alpha, void* y, int64_t n) {
  switch (t) {
    case DType::f32: return scale_t<DType::f32>(x, alpha, y, n);
    case DType::f16: return scale_t<DType::f16>(x, alpha, y, n);
    case DType::bf16: return scale_t<DType::bf16>(x, alpha, y, n);
    default: return;
  }
}

}  // namespace avx2
}  // namespace lk
