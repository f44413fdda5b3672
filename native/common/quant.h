// Block-quantized weight formats: the dtypes q8_0, q4_0, q4_g32, q4_g64, q4_g128 and i8_pc (lib/quant/formats.ts
// mirrors this file).
//
// A quantized tensor is a weight w[N, K] (N output rows, K reduced). Every format splits K into blocks of 32; the
// last block of a row may be shorter (K need not be a multiple of 32 or of the group size G: an MLP with K = 688
// and G = 128 works). Element values:
//   q8_0     x = d * q,        q int8,  d f16 per block of 32              (GGUF Q8_0)
//   q4_0     x = d * (q - 8),  q 0..15, d f16 per block of 32              (GGUF Q4_0)
//   q4_gG    x = s * (q - z),  q 0..15, s f16 and z 0..16 per group of G   (GPTQ/AWQ semantics; z = 16 comes from
//                                                                          GPTQ v1 checkpoints' stored zero + 1)
//   i8_pc    x = s * q,        q int8,  s f32 per row                      (W8A8, SmoothQuant-style)
//
// Two byte forms:
// * The row form is portable: rows one after another, each row its blocks (groups) in K order, the structs below.
//   For q8_0 and q4_0 it is byte for byte GGUF's block_q8_0 / block_q4_0 (a row of a GGUF tensor) when K is a
//   multiple of 32; for other K the last block is padded (q = 0 / 8, i.e. value 0) where GGUF has no encoding.
//   q4_gG: per group {f16 s, u8 z, u8 0, G/2 bytes: element 2j in the low nibble of byte j, 2j+1 in the high},
//   padding q = z. i8_pc: the N*K int8 values row-major, then N f32 scales.
// * The panel form is what a quantized tensor holds in memory and what the kernels read: rows in panels of 8
//   (N rounded up to 8; padding rows have scale 0 and q = 0), each panel a contiguous run of bytes, and inside a
//   panel the 8 rows interleaved in 4-byte chunks so that one 32-byte load holds 4 consecutive k of 8 rows:
//     q8_0    per block: u16 d[8] (f16 scales of the 8 rows), then int8 qs[8 steps][8 rows][4]:
//             qs[s][r][j] = q of row r at k = 32b + 4s + j                                      272 bytes
//     q4_0    per block: u16 d[8], then u8 qs[4][8][4]: the low nibble of qs[s][r][j] is q at k = 32b + 4s + j,
//             the high nibble q at k = 32b + 16 + 4s + j (the GGUF nibble split, chunked by 4)     144 bytes
//     q4_gG   per group: u16 s[8], u8 z[8], then ceil(len/32) blocks of 128 bytes in the q4_0 nibble layout
//     i8_pc   f32 s[8], then per block of 32 the q8_0 layout without scales (int8 qs[8][8][4])
//   Elements past K in the last block are q = 0 (q8_0, i8_pc) or q = 8 / z (q4 formats): zero values. The
//   integer kernels also zero the activations there, so padding never reaches a result.
// Converting between the two forms is the quant_import / quant_export ops.
#pragma once
#include <cstddef>
#include <cmath>
#include <cstdint>

#include "dtype.h"

namespace lk {

constexpr int64_t kQBlock = 32;  // elements of K per block in every format
constexpr int64_t kQPanel = 8;   // rows of w per panel

// The row-form blocks of GGUF (ggml-common.h's block_q8_0 and block_q4_0, byte for byte).
struct BlockQ8_0 {
  uint16_t d;      // f16
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;      // f16
  uint8_t qs[16];  // element j in the low nibble of qs[j], element j + 16 in the high nibble
};
static_assert(sizeof(BlockQ8_0) == 34, "GGUF block_q8_0 is 34 bytes");
static_assert(sizeof(BlockQ4_0) == 18, "GGUF block_q4_0 is 18 bytes");

// Panel-form pieces.
struct PanelQ8 {  // one block of 8 rows: q8_0 (and i8_pc without d)
  uint16_t d[8];
  int8_t qs[8][8][4];
};
struct PanelQ4 {  // one block of 8 rows: q4_0
  uint16_t d[8];
  uint8_t qs[4][8][4];
};
struct PanelQ4GHeader {  // the start of a group of 8 rows: q4_gG
  uint16_t s[8];
  uint8_t z[8];
};
static_assert(sizeof(PanelQ8) == 16 + 256, "q8_0 panel block");
static_assert(sizeof(PanelQ4) == 16 + 128, "q4_0 panel block");
static_assert(sizeof(PanelQ4GHeader) == 24, "q4_g panel group header");
constexpr int64_t kPanelQ4Quants = 128;  // nibble bytes of one q4 panel block
constexpr int64_t kPanelQ8Quants = 256;  // int8 bytes of one q8 panel block

inline constexpr int64_t qceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The quantizers' float -> int8 step (quant_rows.cc; llama.cpp writes it static_cast<int8_t>(float)): truncation
// toward zero, then the low 8 bits of the int32. For a normal block the values lie in [-128, 17) and this is just
// the cast. But when a block's (i8_pc: a row's) largest |x| is below about 127 * 2^-128 (q8_0, i8_pc) or 2^-125
// (q4_0), the scale d is below 2^-128 and 1/d overflows to Inf, so x * (1/d) is +-Inf, or NaN for x = 0, where the
// plain cast is undefined behaviour: x86's cvttss2si answers 0x80000000 (low byte 0), aarch64's fcvtzs and CUDA's
// cvt.rzi saturate (a byte of -1, 127 or -128). Spelled out here, every backend writes the bytes the quantizers
// always wrote on x86: q = 0 (q8_0/q4_0 store d as an f16 0 there anyway; i8_pc keeps its subnormal f32 scale
// with q = 0, a row of zeros).
LK_HOST_DEVICE inline int8_t quant_trunc_i8(float v) {
  if (!(v > -2147483648.0f && v < 2147483648.0f)) return 0;  // NaN, +-Inf, out of int32's range
  return static_cast<int8_t>(static_cast<int32_t>(v));       // int32 -> int8 keeps the low byte (C++20; gcc, nvcc)
}

// The group size of a format: 32 for the GGUF formats, G for q4_gG, K (one group per row) for i8_pc.
inline int64_t quant_group(DType t, int64_t K) {
  switch (t) {
    case DType::q4_g64: return 64;
    case DType::q4_g128: return 128;
    case DType::i8_pc: return K > 0 ? K : 1;
    default: return 32;
  }
}
inline bool quant_is_q4(DType t) { return t == DType::q4_0 || t == DType::q4_g32 || t == DType::q4_g64 || t == DType::q4_g128; }
inline bool quant_has_zero(DType t) { return t == DType::q4_g32 || t == DType::q4_g64 || t == DType::q4_g128; }

// Geometry of the panel form for K columns. The offsets are host-and-device code: quant.cu's kernels take the
// layout by value.
struct QuantLayout {
  DType t;
  int64_t K;
  int64_t nb;           // blocks of 32 per row: ceil(K / 32)
  int64_t G;            // group size (q4_g; 32 for q8_0/q4_0)
  int64_t ng;           // groups per row: ceil(K / G)
  int64_t bpg;          // blocks per full group: G / 32
  int64_t panel_bytes;  // bytes of one panel of 8 rows
  // Byte offset, inside a panel, of block b's quants (and of its scales for q8_0/q4_0: d[8] sit just before).
  LK_HOST_DEVICE int64_t block_offset(int64_t b) const {
    switch (t) {
      case DType::q8_0: return b * static_cast<int64_t>(sizeof(PanelQ8)) + 16;
      case DType::q4_0: return b * static_cast<int64_t>(sizeof(PanelQ4)) + 16;
      case DType::i8_pc: return 32 + b * kPanelQ8Quants;
      default: {  // q4_g: group headers in front of each group's blocks
        const int64_t g = b / bpg;
        return (g + 1) * static_cast<int64_t>(sizeof(PanelQ4GHeader)) + b * kPanelQ4Quants;
      }
    }
  }
  // Byte offset of group g's header (q4_g only).
  LK_HOST_DEVICE int64_t group_offset(int64_t g) const {
    return g * static_cast<int64_t>(sizeof(PanelQ4GHeader)) + g * bpg * kPanelQ4Quants;
  }
};

inline QuantLayout quant_layout(DType t, int64_t K) {
  QuantLayout L{};
  L.t = t;
  L.K = K;
  L.nb = qceil(K, kQBlock);
  L.G = t == DType::i8_pc ? L.nb * kQBlock : quant_group(t, K);
  L.ng = t == DType::i8_pc ? 1 : qceil(K, L.G);
  L.bpg = L.G / kQBlock;
  switch (t) {
    case DType::q8_0: L.panel_bytes = L.nb * static_cast<int64_t>(sizeof(PanelQ8)); break;
    case DType::q4_0: L.panel_bytes = L.nb * static_cast<int64_t>(sizeof(PanelQ4)); break;
    case DType::i8_pc: L.panel_bytes = 32 + L.nb * kPanelQ8Quants; break;
    default: L.panel_bytes = L.ng * static_cast<int64_t>(sizeof(PanelQ4GHeader)) + L.nb * kPanelQ4Quants; break;
  }
  return L;
}

// Bytes of the panel form of w[N, K]. Callers keep N and K within the limits checked by the tensor factories
// (N, K < 2^40), so this cannot overflow.
inline size_t quant_nbytes(DType t, int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) return 0;
  return static_cast<size_t>(qceil(N, kQPanel)) * static_cast<size_t>(quant_layout(t, K).panel_bytes);
}

// Bytes of one row in the row form, and of the whole row form.
inline int64_t quant_row_bytes(DType t, int64_t K) {
  switch (t) {
    case DType::q8_0: return qceil(K, 32) * 34;
    case DType::q4_0: return qceil(K, 32) * 18;
    case DType::i8_pc: return K;  // plus the N scales at the end
    default: {
      const int64_t G = quant_group(t, K);
      return qceil(K, G) * (4 + G / 2);
    }
  }
}
inline size_t quant_row_form_bytes(DType t, int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) return 0;
  return static_cast<size_t>(N) * static_cast<size_t>(quant_row_bytes(t, K)) + (t == DType::i8_pc ? 4 * static_cast<size_t>(N) : 0);
}

// One element of the panel form: its integer q, its scale (f32) and zero point, for w[n, k]. The spec every kernel
// is checked against (the references read weights only through this).
struct QElem {
  int32_t q;
  float scale;
  int32_t zero;
};
inline QElem quant_get(const QuantLayout& L, const void* data, int64_t n, int64_t k) {
  const uint8_t* panel = static_cast<const uint8_t*>(data) + (n / kQPanel) * L.panel_bytes;
  const int64_t r = n % kQPanel, b = k / kQBlock, kk = k % kQBlock;
  const uint8_t* blk = panel + L.block_offset(b);
  QElem e{0, 0.0f, 0};
  if (L.t == DType::q8_0 || L.t == DType::i8_pc) {
    e.q = reinterpret_cast<const int8_t*>(blk)[(kk / 4) * 32 + r * 4 + kk % 4];
    if (L.t == DType::q8_0) {
      uint16_t d;
      std::memcpy(&d, blk - 16 + 2 * r, 2);
      e.scale = f16_to_f32(d);
    } else {
      float s;
      std::memcpy(&s, panel + 4 * r, 4);
      e.scale = s;
    }
    return e;
  }
  const int64_t half = kk / 16, kh = kk % 16;
  const uint8_t byte = blk[(kh / 4) * 32 + r * 4 + kh % 4];
  e.q = half ? byte >> 4 : byte & 15;
  if (L.t == DType::q4_0) {
    uint16_t d;
    std::memcpy(&d, blk - 16 + 2 * r, 2);
    e.scale = f16_to_f32(d);
    e.zero = 8;
  } else {
    const uint8_t* h = panel + L.group_offset(b / L.bpg);
    uint16_t s;
    std::memcpy(&s, h + 2 * r, 2);
    e.scale = f16_to_f32(s);
    e.zero = h[16 + r];
  }
  return e;
}

// The dequantized value of w[n, k], in f32 exactly as every backend computes it: scale * (q - zero) in f32.
inline float quant_value(const QuantLayout& L, const void* data, int64_t n, int64_t k) {
  const QElem e = quant_get(L, data, n, k);
  return e.scale * static_cast<float>(e.q - e.zero);
}

// The activation quantizer of matmul_q's integer path (path 0), applied to a row of x (f32 values) one block of 32
// at a time (one block spanning the whole row, K rounded up to 32, for i8_pc): amax = max |x| over the block (past
// K: zeros), d = amax / 127, q = clamp(nearbyint(x * (127 / amax)), -127, 127) (round half to even; 0 when amax is
// 0). q never reaches -128, which is what lets the kernels use the |w| * sign(x, w) form of u8 x i8 products. A
// block with a NaN or Inf gets d = NaN and q = 0, so that its rows of y come out NaN rather than garbage. Every
// backend must produce exactly these q and d (the integer accumulation is checked bit for bit against them).
// Returns d; q gets `len` values (callers zero-pad), *sum their sum.
inline float quantize_act_block(const float* x, int64_t len, int8_t* q, int32_t* sum) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t j = 0; j < len; ++j) {
    const float a = std::fabs(x[j]);
    finite = finite && a <= 3.40282347e+38f;  // false for NaN and Inf
    amax = a > amax ? a : amax;
  }
  int32_t s = 0;
  if (!finite) {
    for (int64_t j = 0; j < len; ++j) q[j] = 0;
    *sum = 0;
    return std::nanf("");
  }
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t j = 0; j < len; ++j) {
    float v = std::nearbyint(x[j] * id);
    v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
    q[j] = static_cast<int8_t>(v);
    s += q[j];
  }
  *sum = s;
  return amax / 127.0f;
}

}  // namespace lk
