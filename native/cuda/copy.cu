// copy: y = x, byte for byte (any dtype; x and y of one dtype and element count, contiguous).
//   x: [...] nbytes, y: [...] nbytes.
// Kernel: copy_kernel below, a grid-stride loop over words W: 16-byte words (uint4) when both pointers are
// 16-byte aligned (always for whole tensors: the pool returns 256-byte aligned blocks), 4-byte words when both are
// 4-byte aligned, single bytes otherwise; the bytes after the last whole word go through a byte loop.
// Versions: only this one so far. cudaMemcpyAsync(DeviceToDevice) is the peer to time it against in lk_bench.
// Run: build-gpu/tools/lk_check --backend cuda (correctness), build-gpu/tools/lk_bench --backend cuda (speed).
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

// Grid: 1-D, grid_for(nw + ntail) blocks; block: 256 threads. Thread t copies words t, t + G, ... of [0, nw), then
// bytes nw*sizeof(W) + t, + G, ... of the tail.
template <class W>
__global__ void __launch_bounds__(kEwThreads) copy_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t nw,
                                                          int64_t nbytes) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nw; i += stride) y[i] = x[i];
  const uint8_t* xb = reinterpret_cast<const uint8_t*>(x);
  uint8_t* yb = reinterpret_cast<uint8_t*>(y);
  for (int64_t i = nw * static_cast<int64_t>(sizeof(W)) + tid; i < nbytes; i += stride) yb[i] = xb[i];
}

template <class W>
void launch_copy(const void* x, void* y, int64_t nbytes, int dev, cudaStream_t s) {
  const int64_t nw = nbytes / static_cast<int64_t>(sizeof(W));
  const int64_t tail = nbytes - nw * static_cast<int64_t>(sizeof(W));
  copy_kernel<W><<<grid_for(nw + tail, kEwThreads, dev), kEwThreads, 0, s>>>(static_cast<const W*>(x),
                                                                              static_cast<W*>(y), nw, nbytes);
}

}  // namespace

Status copy_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "copy", &dev));
  const TensorView& x = a.in[0];
  const TensorView& y = a.out[0];
  const int64_t nbytes = static_cast<int64_t>(x.nbytes());
  if (nbytes > 0) {
    const cudaStream_t s = stream_of(a);
    if (aligned_to(x.data, 16) && aligned_to(y.data, 16))
      launch_copy<uint4>(x.data, y.data, nbytes, dev, s);
    else if (aligned_to(x.data, 4) && aligned_to(y.data, 4))
      launch_copy<uint32_t>(x.data, y.data, nbytes, dev, s);
    else
      launch_copy<uint8_t>(x.data, y.data, nbytes, dev, s);
  }
  return cuda_last_error("copy");
}

}  // namespace lk
