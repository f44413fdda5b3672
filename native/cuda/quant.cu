// Quantized weights on CUDA (common/quant.h): dequantize has its kernel; quantize, quant_import and quant_export
// are still refused by backend.cu's supports() (quantize on the CPU and move the weight with .to()), so their
// bodies here only answer a direct call. matmul_q is in matmul_q.cu.
//
// dequantize: y[n, k] = f32(s * (q - z)) of w[n, k] (quant.h's quant_value), rounded to y's dtype by from_f32
// (bit for bit dtype.h's conversions; the op is exact in the tolerance table). The product is one IEEE multiply
// (__fmul_rn, so nvcc cannot fuse it with anything): the reference's f32 value bit for bit.
// Layout: w in the panel form, y [N, K] row-major. Grid-stride over the N * K/4 groups of 4 consecutive k of one
// row (the last group of a row may be shorter): those 4 k are one 32-bit word of the panel (quant.h's qs[s][r][j],
// j = 0..3, the low or high nibbles for q4), read once; their scale (and zero) once. Stores are scalar (y's rows
// have any length and alignment). Not a hot op (a weight is dequantized once, or for debugging): simple over fast.
// Error policy: nothing to refuse beyond validate_op's checks; a grid never exceeds grid_for's cap.
// Versions: v1 (this). Not yet run on a GPU (checked under the CPU emulation, native/cuda/emu).
#include "elementwise.cuh"
#include "kernels.h"
#include "../common/quant.h"

namespace lk {

namespace {

struct DequantArgs {
  const uint8_t* w;
  DType t;
  int64_t N, K, nb, bpg, panel_bytes;
};

__device__ __forceinline__ float half_at(const uint8_t* p) {
  return to_f32(f16_t{static_cast<uint16_t>(p[0] | (p[1] << 8))});
}

template <class T>
__global__ void __launch_bounds__(256) dequantize_kernel(const DequantArgs a, T* __restrict__ y) {
  const int64_t kq = (a.K + 3) / 4;  // groups of 4 k per row
  const int64_t total = a.N * kq, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t n = i / kq, k0 = (i % kq) * 4;
    const int64_t r = n % 8, b = k0 / 32, kk = k0 % 32;
    const uint8_t* panel = a.w + (n / 8) * a.panel_bytes;
    float s;
    int32_t z = 0;
    const uint8_t* blk;
    const bool q4 = a.t != DType::q8_0 && a.t != DType::i8_pc;
    switch (a.t) {
      case DType::q8_0: blk = panel + b * 272 + 16; s = half_at(blk - 16 + 2 * r); break;
      case DType::q4_0: blk = panel + b * 144 + 16; s = half_at(blk - 16 + 2 * r); z = 8; break;
      case DType::i8_pc: blk = panel + 32 + b * 256; s = reinterpret_cast<const float*>(panel)[r]; break;
      default: {
        const int64_t g = b / a.bpg;
        const uint8_t* h = panel + g * (24 + 128 * a.bpg);
        blk = panel + (g + 1) * 24 + b * 128;
        s = half_at(h + 2 * r);
        z = h[16 + r];
      }
    }
    // The word of 4 k: q8 step kk / 4; q4 step (kk % 16) / 4 with the high nibbles for kk >= 16.
    const uint32_t wd = *reinterpret_cast<const uint32_t*>(blk + ((q4 ? kk % 16 : kk) / 4) * 32 + r * 4);
    const int shift = q4 && kk >= 16 ? 4 : 0;
    T* yr = y + n * a.K;
    for (int j = 0; j < 4 && k0 + j < a.K; ++j) {
      const int32_t q = q4 ? static_cast<int32_t>((wd >> (8 * j + shift)) & 15u)
                           : static_cast<int32_t>(static_cast<int8_t>(wd >> (8 * j)));
      yr[k0 + j] = from_f32<T>(__fmul_rn(s, static_cast<float>(q - z)));
    }
  }
}

}  // namespace

Status dequantize_cuda(const OpArgs& a) {
  int device = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "dequantize", &device));
  const TensorView& w = a.in[0];
  const TensorView& y = a.out[0];
  const int64_t N = w.shape[0], K = w.shape[1];
  if (N <= 0 || K <= 0) return Status::OK();
  if (!aligned_to(w.data, 4))
    return Status(Code::range, "dequantize: the weight's data must be 4-byte aligned (a whole quantized tensor)");
  const QuantLayout L = quant_layout(w.dtype, K);
  DequantArgs d{static_cast<const uint8_t*>(w.data), w.dtype, N, K, L.nb, L.bpg > 0 ? L.bpg : 1, L.panel_bytes};
  const unsigned grid = grid_for(N * ((K + 3) / 4), 256, device);
  cudaStream_t s = stream_of(a);
  switch (y.dtype) {
    case DType::f32: dequantize_kernel<float><<<grid, 256, 0, s>>>(d, static_cast<float*>(y.data)); break;
    case DType::f16: dequantize_kernel<f16_t><<<grid, 256, 0, s>>>(d, static_cast<f16_t*>(y.data)); break;
    case DType::bf16: dequantize_kernel<bf16_t><<<grid, 256, 0, s>>>(d, static_cast<bf16_t*>(y.data)); break;
    default:
      return Status(Code::type, std::string("dequantize: y of dtype ") + dtype_name(y.dtype) + " (expected f32, f16 or bf16)");
  }
  return cuda_last_error("dequantize");
}

Status quantize_cuda(const OpArgs&) { return unsupported("quantize: no CUDA kernel yet"); }
Status quant_import_cuda(const OpArgs&) { return unsupported("quant_import: no CUDA kernel yet"); }
Status quant_export_cuda(const OpArgs&) { return unsupported("quant_export: no CUDA kernel yet"); }

}  // namespace lk
