// fill: y[i] = value, value = f[0] converted to y's dtype; bit-exact with fill_ref on all six dtypes.
//   y: [...] f32/f16/bf16/i8/u8/i32, contiguous; value an integer in range for the integer dtypes (validate_op).
// The element's bit pattern is computed once on the host with the reference's own conversions (dtype.h:
// static_cast<float>, then f32_to_f16 / f32_to_bf16; static_cast<int8_t/uint8_t/int32_t> for integers), so the
// kernel only stores bits and is exact by construction.
// Kernel: fill_kernel below, 16-byte stores of a replicated pattern where y is 16-byte aligned, scalar tail.
// Run: build-gpu/tools/lk_check --backend cuda (correctness), build-gpu/tools/lk_bench --backend cuda (speed).
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

// Grid: 1-D, grid_for(nvec + tail) blocks; block: 256 threads. T is the element's bit type (uint8/16/32_t).
// Thread t stores packs t, t + G, ... of [0, nvec) (16 bytes each), then elements nvec*V + t, + G, ... .
template <class T>
__global__ void __launch_bounds__(kEwThreads) fill_kernel(T* __restrict__ y, int64_t n, int64_t nvec, T value) {
  constexpr int V = 16 / sizeof(T);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  Pack<T, V> p;
#pragma unroll
  for (int j = 0; j < V; ++j) p.v[j] = value;
  Pack<T, V>* yv = reinterpret_cast<Pack<T, V>*>(y);
  for (int64_t i = tid; i < nvec; i += stride) yv[i] = p;
  for (int64_t i = nvec * V + tid; i < n; i += stride) y[i] = value;
}

template <class T>
void launch_fill(void* y, int64_t n, T value, int dev, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const int64_t nvec = aligned_to(y, 16) ? n / V : 0;
  const int64_t work = nvec + (n - nvec * V);
  fill_kernel<T><<<grid_for(work, kEwThreads, dev), kEwThreads, 0, s>>>(static_cast<T*>(y), n, nvec, value);
}

}  // namespace

Status fill_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "fill", &dev));
  const TensorView& y = a.out[0];
  const int64_t n = y.numel();
  if (n > 0) {
    const double v = a.params.f[0];
    const cudaStream_t s = stream_of(a);
    switch (y.dtype) {
      case DType::f32: launch_fill<uint32_t>(y.data, n, f32_bits(static_cast<float>(v)), dev, s); break;
      case DType::f16: launch_fill<uint16_t>(y.data, n, f32_to_f16(static_cast<float>(v)), dev, s); break;
      case DType::bf16: launch_fill<uint16_t>(y.data, n, f32_to_bf16(static_cast<float>(v)), dev, s); break;
      case DType::i8:
        launch_fill<uint8_t>(y.data, n, static_cast<uint8_t>(static_cast<int8_t>(v)), dev, s);
        break;
      case DType::u8: launch_fill<uint8_t>(y.data, n, static_cast<uint8_t>(v), dev, s); break;
      case DType::i32:
        launch_fill<uint32_t>(y.data, n, static_cast<uint32_t>(static_cast<int32_t>(v)), dev, s);
        break;
    }
  }
  return cuda_last_error("fill");
}

}  // namespace lk
