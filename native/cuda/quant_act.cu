// quantize_act_cuda (matmul_q.cuh): matmul_q's int8 activations, bit for bit those of quant.h's
// quantize_act_block (the spec the references and the CPU kernels use):
//   amax = max |x| over the block (or row); id = 127 / amax (0 when amax = 0); q = clamp(rint(x * id), +-127);
//   d = amax / 127. A block with NaN or Inf: q = 0, d = NaN.
// Each operation is one IEEE round-to-nearest step as on the host: __fmul_rn cannot be contracted, '/' is IEEE
// division (no --use_fast_math, no -prec-div=false), rintf is round half to even like nearbyint, and max is exact
// in any order, so the warp's reduction order does not matter.
// Layout: one warp per block of 32 (lane j holds k = 32b + j; lanes past K quantize a zero, as the reference pads
// its rows with zeros to Kp); one 256-thread block per row for i8_pc.
#include <cfloat>

#include "elementwise.cuh"
#include "matmul_q.cuh"

namespace lk {

namespace {

constexpr int kActThreads = 256;

__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// |v| with NaN turned into +Inf, so that fmaxf (which drops NaN) still sees that the block is not finite.
__device__ __forceinline__ float abs_or_inf(float v) {
  const float a = fabsf(v);
  return a <= FLT_MAX ? a : __uint_as_float(0x7f800000u);
}

__device__ __forceinline__ int8_t quant_one(float v, float id) {
  float r = rintf(__fmul_rn(v, id));
  r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
  return static_cast<int8_t>(r);
}

template <class T>
__global__ void __launch_bounds__(kActThreads)
    act_blocks_kernel(const T* __restrict__ x, int64_t M, int64_t K, int64_t nb, int8_t* __restrict__ qx,
                      float* __restrict__ dx) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (warp >= M * nb) return;  // the whole warp returns together
  const int64_t m = warp / nb, b = warp % nb, k = 32 * b + lane;
  const float v = k < K ? to_f32(x[m * K + k]) : 0.0f;
  const float amax = warp_max(abs_or_inf(v));
  int8_t q = 0;
  float d = __uint_as_float(0x7fc00000u);
  if (amax <= FLT_MAX) {
    q = quant_one(v, amax > 0.0f ? 127.0f / amax : 0.0f);
    d = amax / 127.0f;
  }
  qx[m * nb * 32 + k] = q;
  if (lane == 0) dx[warp] = d;
}

template <class T>
__global__ void __launch_bounds__(kActThreads)
    act_rows_kernel(const T* __restrict__ x, int64_t K, int64_t Kp, int8_t* __restrict__ qx, float* __restrict__ dx) {
  __shared__ float part[kActThreads / 32];
  const int64_t m = blockIdx.x;
  const T* xr = x + m * K;
  float a = 0.0f;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) a = fmaxf(a, abs_or_inf(to_f32(xr[k])));
  a = warp_max(a);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = a;
  __syncthreads();
  float amax = 0.0f;
  for (int w = 0; w < kActThreads / 32; ++w) amax = fmaxf(amax, part[w]);
  const bool finite = amax <= FLT_MAX;
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  int8_t* qr = qx + m * Kp;
  for (int64_t k = threadIdx.x; k < Kp; k += blockDim.x)
    qr[k] = finite && k < K ? quant_one(to_f32(xr[k]), id) : static_cast<int8_t>(0);
  if (threadIdx.x == 0) dx[m] = finite ? amax / 127.0f : __uint_as_float(0x7fc00000u);
}

template <class T>
void launch_act(const void* x, int64_t M, int64_t K, bool per_row, int8_t* qx, float* dx, cudaStream_t s) {
  const int64_t nb = (K + 31) / 32;
  const T* xt = static_cast<const T*>(x);
  if (per_row) {
    act_rows_kernel<T><<<static_cast<unsigned>(M), kActThreads, 0, s>>>(xt, K, nb * 32, qx, dx);
  } else {
    const int64_t blocks = (M * nb + kActThreads / 32 - 1) / (kActThreads / 32);
    act_blocks_kernel<T><<<static_cast<unsigned>(blocks), kActThreads, 0, s>>>(xt, M, K, nb, qx, dx);
  }
}

}  // namespace

Status quantize_act_cuda(const void* x, DType xt, int64_t M, int64_t K, bool per_row, int8_t* qx, float* dx,
                         cudaStream_t stream) {
  if (M <= 0 || K <= 0) return Status::OK();
  // Grid limits: M rows (i8_pc) or M * ceil(K / 32) / 8 blocks must fit in gridDim.x (2^31 - 1).
  if (M > 0x7fffffff || M * ((K + 31) / 32) / (kActThreads / 32) > 0x7ffffffe)
    return Status(Code::range, "matmul_q: activations of " + std::to_string(M) + " x " +
                                              std::to_string(K) + " exceed the CUDA grid of the int8 quantizer");
  switch (xt) {
    case DType::f32: launch_act<float>(x, M, K, per_row, qx, dx, stream); break;
    case DType::f16: launch_act<f16_t>(x, M, K, per_row, qx, dx, stream); break;
    case DType::bf16: launch_act<bf16_t>(x, M, K, per_row, qx, dx, stream); break;
    default: return Status(Code::type, std::string("matmul_q: activations of dtype ") + dtype_name(xt) +
                                                       " (expected f32, f16 or bf16)");
  }
  return cuda_last_error("matmul_q: int8 activation quantizer");
}

}  // namespace lk
