// Row-wise quantizers (llama.cpp's reference rules for q8_0/q4_0), dequantization and the row/panel conversions.
// See quant.h for the layouts and quant_rows.h for the rounding rules.
#include "quant_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace lk {

namespace {

// Addresses inside a panel (quant.h). r: row in the panel, b: block, kk: element in the block (0..31).
inline uint8_t* q8_at(const QuantLayout& L, uint8_t* panel, int64_t r, int64_t b, int64_t kk) {
  return panel + L.block_offset(b) + (kk / 4) * 32 + r * 4 + kk % 4;
}
// The byte holding element kk and kk + 16 of block b (kk < 16): low nibble kk, high nibble kk + 16.
inline uint8_t* q4_at(const QuantLayout& L, uint8_t* panel, int64_t r, int64_t b, int64_t kk) {
  return panel + L.block_offset(b) + (kk / 4) * 32 + r * 4 + kk % 4;
}
inline uint8_t* scale_at(const QuantLayout& L, uint8_t* panel, int64_t r, int64_t b) {
  switch (L.t) {
    case DType::q8_0:
    case DType::q4_0: return panel + L.block_offset(b) - 16 + 2 * r;
    case DType::i8_pc: return panel + 4 * r;
    default: return panel + L.group_offset(b / L.bpg) + 2 * r;
  }
}
inline uint8_t* zero_at(const QuantLayout& L, uint8_t* panel, int64_t r, int64_t g) {
  return panel + L.group_offset(g) + 16 + r;
}
inline void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline uint16_t get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

std::string row_col(int64_t n, int64_t k) { return "row " + std::to_string(n) + ", column " + std::to_string(k); }

Status too_large(DType t, int64_t n, int64_t k, float v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return range_error(std::string("quantize: expected values whose ") + dtype_name(t) +
                     " scale fits in f16 (|x| up to about 65504 times the format's range), got " + buf + " at " +
                     row_col(n, k));
}

// One row n (K floats in xr) into panel row r.
Status quantize_row(const QuantLayout& L, const float* xr, int64_t n, uint8_t* panel, int64_t r) {
  const int64_t K = L.K;
  for (int64_t k = 0; k < K; ++k)
    if (!std::isfinite(xr[k]))
      return range_error("quantize: expected finite values in x, got " +
                         std::string(std::isnan(xr[k]) ? "NaN" : (xr[k] > 0 ? "Infinity" : "-Infinity")) + " at " +
                         row_col(n, k));
  float blk[kQBlock];
  auto load_block = [&](int64_t b) {  // zero-padded past K
    for (int64_t j = 0; j < kQBlock; ++j) blk[j] = 32 * b + j < K ? xr[32 * b + j] : 0.0f;
  };
  switch (L.t) {
    case DType::q8_0:
      for (int64_t b = 0; b < L.nb; ++b) {
        load_block(b);
        float amax = 0.0f;
        for (float v : blk) amax = std::max(amax, std::fabs(v));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = f32_to_f16(d);
        if ((dh & 0x7fff) == 0x7c00) return too_large(L.t, n, 32 * b, amax);
        put16(scale_at(L, panel, r, b), dh);
        for (int64_t j = 0; j < kQBlock; ++j)
          *q8_at(L, panel, r, b, j) = static_cast<uint8_t>(quant_trunc_i8(std::roundf(blk[j] * id)));
      }
      return Status::OK();
    case DType::q4_0:
      for (int64_t b = 0; b < L.nb; ++b) {
        load_block(b);
        float amax = 0.0f, mx = 0.0f;
        for (float v : blk)
          if (amax < std::fabs(v)) {
            amax = std::fabs(v);
            mx = v;
          }
        const float d = mx / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = f32_to_f16(d);
        if ((dh & 0x7fff) == 0x7c00) return too_large(L.t, n, 32 * b, mx);
        put16(scale_at(L, panel, r, b), dh);
        for (int64_t j = 0; j < 16; ++j) {
          const uint8_t lo = static_cast<uint8_t>(std::min(15, static_cast<int>(quant_trunc_i8(blk[j] * id + 8.5f))));
          const uint8_t hi = static_cast<uint8_t>(std::min(15, static_cast<int>(quant_trunc_i8(blk[j + 16] * id + 8.5f))));
          *q4_at(L, panel, r, b, j) = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
      return Status::OK();
    case DType::i8_pc: {
      float amax = 0.0f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
      const float s = amax / 127.0f;
      const float id = s != 0.0f ? 1.0f / s : 0.0f;
      std::memcpy(scale_at(L, panel, r, 0), &s, 4);
      for (int64_t b = 0; b < L.nb; ++b) {
        load_block(b);
        for (int64_t j = 0; j < kQBlock; ++j)
          *q8_at(L, panel, r, b, j) = static_cast<uint8_t>(quant_trunc_i8(std::roundf(blk[j] * id)));
      }
      return Status::OK();
    }
    default: {  // q4_gG
      for (int64_t g = 0; g < L.ng; ++g) {
        const int64_t k0 = g * L.G, k1 = std::min(K, k0 + L.G);
        float lo = 0.0f, hi = 0.0f;
        for (int64_t k = k0; k < k1; ++k) {
          lo = std::min(lo, xr[k]);
          hi = std::max(hi, xr[k]);
        }
        const uint16_t sh = f32_to_f16((hi - lo) / 15.0f);
        if ((sh & 0x7fff) == 0x7c00) return too_large(L.t, n, k0, hi - lo);
        const float s = f16_to_f32(sh);
        int z = 8;
        if (s != 0.0f) z = static_cast<int>(std::min(15.0f, std::max(0.0f, std::nearbyint(-lo / s))));
        put16(scale_at(L, panel, r, g * L.bpg), sh);
        *zero_at(L, panel, r, g) = static_cast<uint8_t>(z);
        auto qv = [&](int64_t k) -> int {
          if (k >= k1 || s == 0.0f) return z;  // padding, or a zero group (scale 0: any q is 0)
          return static_cast<int>(std::min(15.0f, std::max(0.0f, std::nearbyint(xr[k] / s) + static_cast<float>(z))));
        };
        for (int64_t b = g * L.bpg; b < std::min(L.nb, (g + 1) * L.bpg); ++b)
          for (int64_t j = 0; j < 16; ++j)
            *q4_at(L, panel, r, b, j) = static_cast<uint8_t>(qv(32 * b + j) | (qv(32 * b + 16 + j) << 4));
      }
      return Status::OK();
    }
  }
}

// q of row r, element k, from a panel (any format).
inline int q_get(const QuantLayout& L, const uint8_t* panel, int64_t r, int64_t k) {
  const int64_t b = k / kQBlock, kk = k % kQBlock;
  uint8_t* p = const_cast<uint8_t*>(panel);
  if (!quant_is_q4(L.t)) return static_cast<int8_t>(*q8_at(L, p, r, b, kk));
  const uint8_t byte = *q4_at(L, p, r, b, kk % 16);
  return kk < 16 ? (byte & 15) : (byte >> 4);
}
inline void q4_set(const QuantLayout& L, uint8_t* panel, int64_t r, int64_t k, int q) {
  const int64_t b = k / kQBlock, kk = k % kQBlock;
  uint8_t* p = q4_at(L, panel, r, b, kk % 16);
  *p = kk < 16 ? static_cast<uint8_t>((*p & 0xf0) | q) : static_cast<uint8_t>((*p & 0x0f) | (q << 4));
}

}  // namespace

Status quantize_row_status(DType t, int64_t K, const float* xr, int64_t n) {
  const QuantLayout L = quant_layout(t, K);
  std::vector<uint8_t> panel(static_cast<size_t>(L.panel_bytes));
  return quantize_row(L, xr, n, panel.data(), 0);
}

Status quantize_panels(const TensorView& x, const TensorView& w, int64_t p0, int64_t p1) {
  const int64_t N = w.shape[0], K = w.shape[1];
  const QuantLayout L = quant_layout(w.dtype, K);
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* panel = static_cast<uint8_t*>(w.data) + p * L.panel_bytes;
    std::memset(panel, 0, static_cast<size_t>(L.panel_bytes));
    for (int64_t r = 0; r < kQPanel && p * kQPanel + r < N; ++r) {
      const int64_t n = p * kQPanel + r;
      for (int64_t k = 0; k < K; ++k) row[static_cast<size_t>(k)] = load_f32(x.data, x.dtype, n * K + k);
      LK_RETURN_IF_ERROR(quantize_row(L, row.data(), n, panel, r));
    }
  }
  return Status::OK();
}

void dequantize_panels(const TensorView& w, const TensorView& y, int64_t p0, int64_t p1) {
  const int64_t N = w.shape[0], K = w.shape[1];
  const QuantLayout L = quant_layout(w.dtype, K);
  for (int64_t n = p0 * kQPanel; n < std::min(N, p1 * kQPanel); ++n)
    for (int64_t k = 0; k < K; ++k) store_f32(y.data, y.dtype, n * K + k, quant_value(L, w.data, n, k));
}

void import_panels(DType t, int64_t N, int64_t K, const uint8_t* rows, uint8_t* panels, int64_t p0, int64_t p1) {
  const QuantLayout L = quant_layout(t, K);
  const int64_t rb = quant_row_bytes(t, K);
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* panel = panels + p * L.panel_bytes;
    std::memset(panel, 0, static_cast<size_t>(L.panel_bytes));
    for (int64_t r = 0; r < kQPanel && p * kQPanel + r < N; ++r) {
      const int64_t n = p * kQPanel + r;
      const uint8_t* src = rows + n * rb;
      switch (t) {
        case DType::q8_0:
          for (int64_t b = 0; b < L.nb; ++b, src += 34) {
            std::memcpy(scale_at(L, panel, r, b), src, 2);
            for (int64_t j = 0; j < 32; ++j) *q8_at(L, panel, r, b, j) = src[2 + j];
          }
          break;
        case DType::q4_0:
          for (int64_t b = 0; b < L.nb; ++b, src += 18) {
            std::memcpy(scale_at(L, panel, r, b), src, 2);
            for (int64_t j = 0; j < 16; ++j) *q4_at(L, panel, r, b, j) = src[2 + j];  // the same nibble split
          }
          break;
        case DType::i8_pc:
          for (int64_t k = 0; k < K; ++k) *q8_at(L, panel, r, k / 32, k % 32) = src[k];
          std::memcpy(scale_at(L, panel, r, 0), rows + N * rb + 4 * n, 4);
          break;
        default:
          for (int64_t g = 0; g < L.ng; ++g, src += 4 + L.G / 2) {
            std::memcpy(scale_at(L, panel, r, g * L.bpg), src, 2);
            *zero_at(L, panel, r, g) = src[2];
            const int64_t k0 = g * L.G;
            for (int64_t k = k0; k < k0 + std::min(L.nb * 32 - k0, L.G); ++k) {  // every element of the group's blocks
              const int64_t j = k - k0;
              q4_set(L, panel, r, k, (src[4 + j / 2] >> (4 * (j & 1))) & 15);
            }
          }
          break;
      }
    }
  }
}

void export_panels(DType t, int64_t N, int64_t K, const uint8_t* panels, uint8_t* rows, int64_t p0, int64_t p1) {
  const QuantLayout L = quant_layout(t, K);
  const int64_t rb = quant_row_bytes(t, K);
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* panel = const_cast<uint8_t*>(panels) + p * L.panel_bytes;
    for (int64_t r = 0; r < kQPanel && p * kQPanel + r < N; ++r) {
      const int64_t n = p * kQPanel + r;
      uint8_t* dst = rows + n * rb;
      switch (t) {
        case DType::q8_0:
          for (int64_t b = 0; b < L.nb; ++b, dst += 34) {
            std::memcpy(dst, scale_at(L, panel, r, b), 2);
            for (int64_t j = 0; j < 32; ++j) dst[2 + j] = *q8_at(L, panel, r, b, j);
          }
          break;
        case DType::q4_0:
          for (int64_t b = 0; b < L.nb; ++b, dst += 18) {
            std::memcpy(dst, scale_at(L, panel, r, b), 2);
            for (int64_t j = 0; j < 16; ++j) dst[2 + j] = *q4_at(L, panel, r, b, j);
          }
          break;
        case DType::i8_pc:
          for (int64_t k = 0; k < K; ++k) dst[k] = *q8_at(L, panel, r, k / 32, k % 32);
          std::memcpy(rows + N * rb + 4 * n, scale_at(L, panel, r, 0), 4);
          break;
        default:
          for (int64_t g = 0; g < L.ng; ++g, dst += 4 + L.G / 2) {
            std::memcpy(dst, scale_at(L, panel, r, g * L.bpg), 2);
            const uint8_t z = *zero_at(L, panel, r, g);
            dst[2] = z;
            dst[3] = 0;
            const int64_t k0 = g * L.G;
            for (int64_t j = 0; j < L.G; j += 2) {
              // Elements past the last block (only when K % G leaves fewer than G/32 blocks) are padding: q = z.
              const int lo = k0 + j < L.nb * 32 ? q_get(L, panel, r, k0 + j) : std::min<int>(z, 15);
              const int hi = k0 + j + 1 < L.nb * 32 ? q_get(L, panel, r, k0 + j + 1) : std::min<int>(z, 15);
              dst[4 + j / 2] = static_cast<uint8_t>(lo | (hi << 4));
            }
          }
          break;
      }
    }
  }
}

}  // namespace lk
