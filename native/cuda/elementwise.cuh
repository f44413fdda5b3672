// The elementwise machinery of the CUDA backend (copy, cast, fill, add, mul, scale): storage types, conversions
// that match native/common/dtype.h bit for bit, 16-byte packs, and two grid-stride kernels (unary, binary).
//
// Math: y[i] = op(to_f32(x[i])) or op(to_f32(a[i]), to_f32(b[i or i % cols])), computed in f32 and rounded once
// to y's dtype with round-to-nearest-even, like the references (native/cpu/ref/*_ref.cc).
// Layout: every tensor contiguous (validate_op checks it); b of a binary op is a's shape or its last dimension
// [cols] (row broadcast).
//
// Bit-exactness (lk_check compares copy/cast/fill/add/mul/scale bit for bit, two NaNs being equal):
//  - f32 -> f16/bf16: the hardware conversions cvt.rn.f16.f32 / cvt.rn.bf16.f32 (sm_80+) are IEEE round to
//    nearest even, keep Inf, overflow to Inf and produce f16 subnormals; we build without -ftz / --use_fast_math,
//    so f32 subnormal inputs are not flushed. PTX promises nothing about a NaN's payload (the hardware is expected
//    to return a canonical NaN) where dtype.h keeps the sign and the top payload bits, so a NaN input is patched to
//    dtype.h's pattern (one compare and a select: free in a memory-bound kernel). Then every input, NaN included,
//    gives dtype.h's bits. Checked without a GPU: cuda_fp16/cuda_bf16's host versions of the same intrinsics plus
//    this patch equal dtype.h for all 2^32 f32 inputs; on a GPU, lk_check's special-value cast cases check it.
//  - f16 -> f32 is exact (cvt.f32.f16); bf16 -> f32 is a shift, as in dtype.h; i8/u8 -> f32 are exact; i32 -> f32
//    rounds to nearest even (__int2float_rn), like static_cast<float> on the host.
//  - f32 arithmetic uses __fadd_rn / __fmul_rn, which nvcc never contracts into an FMA (the refs round after each
//    operation).
//
// Vectorization: each thread moves 16 bytes of the narrowest tensor per iteration (a Pack of V elements; the
// wider tensors take 2 or 4 16-byte accesses). The packed loop runs when every pointer is aligned to its pack (and,
// for a row broadcast, when cols is a multiple of V so a pack never straddles two rows of b); the rest, or all of
// it for unaligned views, goes through a scalar grid-stride loop in the same kernel.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "common.cuh"
#include "cuda_backend.h"

namespace lk {

// Storage types: f16 and bf16 are raw bit patterns (as in dtype.h), with distinct types so that overloads pick
// the right conversion.
struct f16_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

// ---- conversions (device) ----
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16_t v) { return __half2float(__ushort_as_half(v.bits)); }
__device__ __forceinline__ float to_f32(bf16_t v) { return __uint_as_float(static_cast<uint32_t>(v.bits) << 16); }
__device__ __forceinline__ float to_f32(int8_t v) { return static_cast<float>(v); }
__device__ __forceinline__ float to_f32(uint8_t v) { return static_cast<float>(v); }
__device__ __forceinline__ float to_f32(int32_t v) { return __int2float_rn(v); }

template <class T>
__device__ __forceinline__ T from_f32(float v);

template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ f16_t from_f32<f16_t>(float v) {
  const uint32_t x = __float_as_uint(v);
  uint16_t h = __half_as_ushort(__float2half_rn(v));
  // NaN: dtype.h's f32_to_f16 keeps the sign and the top 10 payload bits and sets the quiet bit.
  if ((x & 0x7fffffffu) > 0x7f800000u)
    h = static_cast<uint16_t>(((x >> 16) & 0x8000u) | 0x7e00u | ((x >> 13) & 0x3ffu));
  return f16_t{h};
}
template <>
__device__ __forceinline__ bf16_t from_f32<bf16_t>(float v) {
  const uint32_t x = __float_as_uint(v);
  uint16_t b = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  // NaN: dtype.h's f32_to_bf16 keeps the top 16 bits and sets the quiet bit.
  if ((x & 0x7fffffffu) > 0x7f800000u) b = static_cast<uint16_t>((x >> 16) | 0x0040u);
  return bf16_t{b};
}

// ---- packs: V elements moved as one (or, above 16 bytes, a few) aligned vector accesses ----
// Aligned to its size up to 16 bytes (the widest load of sm_80/sm_90): a 64-byte pack of 16 floats is four 16-byte
// accesses and needs only 16-byte alignment.
template <class T, int V>
constexpr size_t pack_align() {
  return sizeof(T) * V < 16 ? sizeof(T) * V : 16;
}
template <class T, int V>
struct alignas(pack_align<T, V>()) Pack {
  T v[V];
};

// Elements per pack so that the narrowest of the tensors moves 16 bytes.
template <class A, class B = A, class C = A>
constexpr int pack_width() {
  constexpr size_t s = sizeof(A) < sizeof(B) ? (sizeof(A) < sizeof(C) ? sizeof(A) : sizeof(C))
                                             : (sizeof(B) < sizeof(C) ? sizeof(B) : sizeof(C));
  return static_cast<int>(16 / s);
}

// ---- functors (f32 math) ----
struct IdentityOp {
  __device__ __forceinline__ float operator()(float x) const { return x; }
};
struct ScaleOp {
  float alpha;
  __device__ __forceinline__ float operator()(float x) const { return __fmul_rn(alpha, x); }
};
struct AddOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return __fadd_rn(a, b); }
};
struct MulOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return __fmul_rn(a, b); }
};

constexpr int kEwThreads = 256;

// y[i] = from_f32<Out>(op(to_f32(x[i]))), i in [0, n).
// Grid: 1-D, grid_for(work) blocks (at most one wave of resident threads); block: 256 threads. Thread t of the
// grid handles packs t, t + G, t + 2G, ... of [0, nvec) (G = grid threads), then elements nvec*V + t, + G, ... of
// the tail. nvec = 0 runs everything through the scalar loop (unaligned pointers).
template <class In, class Out, class Op, int V>
__global__ void __launch_bounds__(kEwThreads) unary_kernel(const In* __restrict__ x, Out* __restrict__ y, int64_t n,
                                                           int64_t nvec, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const Pack<In, V>* xv = reinterpret_cast<const Pack<In, V>*>(x);
  Pack<Out, V>* yv = reinterpret_cast<Pack<Out, V>*>(y);
  for (int64_t i = tid; i < nvec; i += stride) {
    const Pack<In, V> p = xv[i];
    Pack<Out, V> q;
#pragma unroll
    for (int j = 0; j < V; ++j) q.v[j] = from_f32<Out>(op(to_f32(p.v[j])));
    yv[i] = q;
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) y[i] = from_f32<Out>(op(to_f32(x[i])));
}

// y[i] = from_f32<T>(op(to_f32(a[i]), to_f32(b[i % period]))), i in [0, n); period = cols for a row broadcast,
// n otherwise.
// Grid: 1-D, grid_for(work) blocks; block: 256 threads; same pack/tail split as unary_kernel. The index of b is
// kept incrementally (c += stride % period, minus period on wrap), so a thread divides once, not per element.
// vperiod is b's period in packs (cols / V for a broadcast, nvec otherwise); the packed loop runs only when
// period % V == 0 or b is not broadcast, so a pack of a maps onto one pack of b.
template <class T, class Op, int V>
__global__ void __launch_bounds__(kEwThreads) binary_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                                            T* __restrict__ y, int64_t n, int64_t period,
                                                            int64_t nvec, int64_t vperiod, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid < nvec) {
    const Pack<T, V>* av = reinterpret_cast<const Pack<T, V>*>(a);
    const Pack<T, V>* bv = reinterpret_cast<const Pack<T, V>*>(b);
    Pack<T, V>* yv = reinterpret_cast<Pack<T, V>*>(y);
    const int64_t step = stride % vperiod;
    int64_t c = tid % vperiod;
    for (int64_t i = tid; i < nvec; i += stride) {
      const Pack<T, V> pa = av[i];
      const Pack<T, V> pb = bv[c];
      Pack<T, V> q;
#pragma unroll
      for (int j = 0; j < V; ++j) q.v[j] = from_f32<T>(op(to_f32(pa.v[j]), to_f32(pb.v[j])));
      yv[i] = q;
      c += step;
      if (c >= vperiod) c -= vperiod;
    }
  }
  const int64_t start = nvec * V + tid;
  if (start < n) {
    const int64_t step = stride % period;
    int64_t c = start % period;
    for (int64_t i = start; i < n; i += stride) {
      y[i] = from_f32<T>(op(to_f32(a[i]), to_f32(b[c])));
      c += step;
      if (c >= period) c -= period;
    }
  }
}

// ---- host launchers ----

template <class In, class Out, class Op>
void launch_unary(const void* x, void* y, int64_t n, Op op, int device, cudaStream_t stream) {
  constexpr int V = pack_width<In, Out>();
  if (n <= 0) return;
  const bool vec = aligned_to(x, pack_align<In, V>()) && aligned_to(y, pack_align<Out, V>());
  const int64_t nvec = vec ? n / V : 0;
  const int64_t work = nvec + (n - nvec * V);
  unary_kernel<In, Out, Op, V><<<grid_for(work, kEwThreads, device), kEwThreads, 0, stream>>>(
      static_cast<const In*>(x), static_cast<Out*>(y), n, nvec, op);
}

template <class T, class Op>
void launch_binary(const void* a, const void* b, void* y, int64_t n, int64_t cols, bool broadcast, Op op, int device,
                   cudaStream_t stream) {
  constexpr int V = pack_width<T>();
  if (n <= 0) return;
  const int64_t period = broadcast ? cols : n;
  constexpr size_t al = pack_align<T, V>();
  const bool vec = aligned_to(a, al) && aligned_to(b, al) && aligned_to(y, al) && (!broadcast || cols % V == 0);
  const int64_t nvec = vec ? n / V : 0;
  const int64_t vperiod = vec ? (broadcast ? cols / V : nvec) : 1;
  const int64_t work = nvec + (n - nvec * V);
  binary_kernel<T, Op, V><<<grid_for(work, kEwThreads, device), kEwThreads, 0, stream>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), n, period, nvec, vperiod, op);
}

// Calls f(T{}) with the storage type of a float dtype; returns false for a non-float dtype.
template <class F>
bool dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return true;
    case DType::f16: f(f16_t{}); return true;
    case DType::bf16: f(bf16_t{}); return true;
    default: return false;
  }
}

// add and mul: y = op(a, b), b of a's shape or row-broadcast [cols]; a, b, y of one float dtype.
template <class Op>
Status run_binary(const OpArgs& args, const char* name, Op op) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(args, name, &dev));
  const TensorView& a = args.in[0];   // [rows, cols]
  const TensorView& b = args.in[1];   // [rows, cols] or [cols]
  const TensorView& y = args.out[0];  // [rows, cols]
  const int64_t n = a.numel();
  const bool broadcast = b.numel() != n;
  const bool ok = dispatch_float(a.dtype, [&](auto t) {
    using T = decltype(t);
    launch_binary<T>(a.data, b.data, y.data, n, a.cols(), broadcast, op, dev, stream_of(args));
  });
  if (!ok) return internal_error(std::string(name) + ": cuda kernel got a non-float dtype " + dtype_name(a.dtype));
  return cuda_last_error(name);
}

}  // namespace lk
