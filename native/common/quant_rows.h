// Row-wise quantization, dequantization and the row form <-> panel form conversions of quant.h. One implementation:
// the reference backend calls these on all rows, the CPU backend on ranges of panels from its thread pool (they are
// load-time work, far from any hot loop). Ranges are in panels of 8 rows so that threads never share a panel.
#pragma once
#include <cstdint>

#include "status.h"
#include "tensor.h"

namespace lk {

// Quantizes rows of x [N, K] (f32/f16/bf16) in panels [p0, p1) into w (panel form, w.dtype's format). Rounding:
//   q8_0   llama.cpp's quantize_row_q8_0_ref: d = amax/127, q = roundf(x * (1/d)), d stored as f16
//   q4_0   llama.cpp's quantize_row_q4_0_ref: m = the value of largest |x| (first one), d = m/-8,
//          q = min(15, (int8_t)(x * (1/d) + 8.5f)), d stored as f16
//   q4_gG  round-to-nearest asymmetric (GPTQ's RTN): lo = min(0, min x), hi = max(0, max x), s = f16((hi-lo)/15),
//          z = clamp(nearbyint(-lo/s), 0, 15), q = clamp(nearbyint(x/s) + z, 0, 15); s is the f16-rounded scale
//   i8_pc  s = amax/127 per row (f32), q = roundf(x * (1/s))
// An all-zero block, group or row gets scale 0 (and q = 0, 8 or z = 8): it dequantizes to exact zeros. A NaN or
// Inf in x is a RangeError naming the row and column; so is a scale beyond f16's range (|x| > 8.3e6 for q8_0).
// Padding rows of the last panel and elements past K are written as quant.h describes.
Status quantize_panels(const TensorView& x, const TensorView& w, int64_t p0, int64_t p1);

// What quantize_panels reports for row n of x alone (its K values, already f32): OK, or the error of the row's first
// bad value (any NaN or Inf first, then the first block or group whose scale overflows f16), with its message. The
// CUDA quantizer finds the lowest bad row on the device, then calls this on a copy of that row: the same Status,
// words and numbers as the CPU's, from the same code.
Status quantize_row_status(DType t, int64_t K, const float* xr, int64_t n);

// y [N, K] (float dtype) = the values of w, panels [p0, p1).
void dequantize_panels(const TensorView& w, const TensorView& y, int64_t p0, int64_t p1);

// Row form (bytes) -> panel form, and back, for panels [p0, p1). Import accepts any bytes: scales are taken as
// they are and q4_g zero points as bytes (the quantizer and the GPTQ importer give 0..16).
void import_panels(DType t, int64_t N, int64_t K, const uint8_t* rows, uint8_t* panels, int64_t p0, int64_t p1);
void export_panels(DType t, int64_t N, int64_t K, const uint8_t* panels, uint8_t* rows, int64_t p0, int64_t p1);

}  // namespace lk
