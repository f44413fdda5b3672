// The layer ops on CUDA (lib/nn): silu, gelu, silu_mul, embedding, rms_norm, add_rms_norm, layer_norm, rope.
// Math (ops.def, cpu/ref/<op>_ref.cc): f32 math whatever the storage dtype, each output rounded once to its dtype
// (from_f32 of elementwise.cuh: nearest even, dtype.h's NaN patterns). The references compute in double; these
// kernels in f32, judged by tolerance() (the matmul rows), except embedding, which only converts and is exact.
// Layout: every tensor contiguous (validate_op). Row ops view x as [rows, N] over its last dimension.
//
// Kernels:
//  - silu, gelu: unary_kernel of elementwise.cuh with SiluOp / GeluOp (16-byte packs, scalar tail).
//  - silu_mul: silu_mul_kernel, a grid-stride loop over y's elements (packs of V when F % V == 0 and aligned).
//  - embedding, rope: one block per token (grid-stride over tokens), the block's threads over the row.
//  - rms_norm, add_rms_norm, layer_norm: one block per row (grid-stride over rows), f32 sums through block_sum
//    (warp shuffles, then one partial per warp in shared memory); the row is read again for each pass (it is in
//    L1/L2 after the first), so any N works without shared-memory limits.
// Data-dependent errors: an id outside [0, V) (embedding) or a negative position (rope) is a range error in the
// references, but ids and positions live in device memory and the launch does not wait, so the kernel cannot
// return a Status. It never reads out of bounds: it writes the token's output row as NaN instead, so the error
// shows in whatever uses the row (lib/nn checks the ids it builds from JS before they reach the op).
// Versions: v1 (this), not yet measured on a GPU. Run: build-gpu/tools/lk_check --backend cuda (correctness),
// native/cuda/emu/run.sh <op> (the same source on the CPU, no GPU).
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

// ---- shared pieces ----

// The sum of v over the block, returned to every thread. Warp partials by __shfl_xor_sync, one slot per warp in
// shared memory, then every warp adds the slots in the same order (so every thread gets the same bits, without a
// second broadcast). blockDim.x must be a multiple of 32 (at most 1024). Ends with a barrier, so the slots may be
// reused by the next call.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float t = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0f;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) t += __shfl_xor_sync(0xffffffffu, t, off);
  __syncthreads();
  return t;
}

__device__ __forceinline__ float silu_f32(float x) { return x / (1.0f + expf(-x)); }

// A quiet NaN for the rows of a data-dependent error (see the file header).
__device__ __forceinline__ float nan_f32() { return __uint_as_float(0x7fc00000u); }

// Threads of a row kernel: about 4 elements each, a multiple of 32 (block_sum), 32 .. kRowThreads.
constexpr int kRowThreads = 512;
inline int row_threads(int64_t n) {
  const int64_t t = ((n + 3) / 4 + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : (t > kRowThreads ? kRowThreads : t));
}

// Blocks of a block-per-row kernel: one per row, at most one wave of resident threads (the kernels loop over rows
// with stride gridDim.x beyond that; 1-D grids stay far below 2^31 blocks).
inline unsigned row_grid(int64_t rows, int threads, int device) {
  const int sms = cuda_sm_count(device);
  const int64_t cap = static_cast<int64_t>(sms > 0 ? sms : 132) * (2048 / threads);
  const int64_t b = rows < cap ? rows : cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// ---- silu, gelu (unary_kernel) ----

struct SiluOp {
  __device__ __forceinline__ float operator()(float x) const { return silu_f32(x); }
};

// i[0] = 0: x/2 (1 + erf(x / sqrt 2)); 1: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct GeluOp {
  bool tanh_form;
  __device__ __forceinline__ float operator()(float x) const {
    if (tanh_form) {
      const float k = 0.7978845608028654f;  // sqrt(2 / pi)
      return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));  // 1 / sqrt 2
  }
};

template <class Op>
Status run_unary(const OpArgs& a, const char* name, Op op) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, name, &dev));
  const TensorView &x = a.in[0], &y = a.out[0];
  const bool ok = dispatch_float(x.dtype, [&](auto t) {
    using T = decltype(t);
    launch_unary<T, T>(x.data, y.data, x.numel(), op, dev, stream_of(a));
  });
  if (!ok) return internal_error(std::string(name) + ": cuda kernel got a non-float dtype " + dtype_name(x.dtype));
  return cuda_last_error(name);
}

// ---- silu_mul ----

// y[r, j] = silu(x[r, j]) * x[r, F + j]; x [rows, 2F], y [rows, F].
// Grid: 1-D, grid_for(work) blocks; block: 256 threads. Thread t handles packs t, t + G, ... of y (a pack is V
// consecutive elements of one row: V divides F; V = 1 is the scalar path for unaligned pointers or F % 8 != 0).
// Pack p is row p / (F/V), column pack p % (F/V); its gate pack is x's pack r (2F/V) + c, its up pack F/V later.
template <class T, int V>
__global__ void __launch_bounds__(kEwThreads) silu_mul_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                              int64_t npacks, int64_t fpacks) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const Pack<T, V>* xv = reinterpret_cast<const Pack<T, V>*>(x);
  Pack<T, V>* yv = reinterpret_cast<Pack<T, V>*>(y);
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < npacks; p += stride) {
    const int64_t r = p / fpacks, c = p - r * fpacks;
    const Pack<T, V> g = xv[2 * r * fpacks + c];
    const Pack<T, V> u = xv[2 * r * fpacks + fpacks + c];
    Pack<T, V> q;
#pragma unroll
    for (int j = 0; j < V; ++j) q.v[j] = from_f32<T>(silu_f32(to_f32(g.v[j])) * to_f32(u.v[j]));
    yv[p] = q;
  }
}

template <class T>
void launch_silu_mul(const void* x, void* y, int64_t rows, int64_t F, int dev, cudaStream_t s) {
  constexpr int V = pack_width<T>();
  if (rows * F <= 0) return;
  const T* xp = static_cast<const T*>(x);
  T* yp = static_cast<T*>(y);
  if (F % V == 0 && aligned_to(x, pack_align<T, V>()) && aligned_to(y, pack_align<T, V>())) {
    const int64_t n = rows * (F / V);
    silu_mul_kernel<T, V><<<grid_for(n, kEwThreads, dev), kEwThreads, 0, s>>>(xp, yp, n, F / V);
  } else {
    const int64_t n = rows * F;
    silu_mul_kernel<T, 1><<<grid_for(n, kEwThreads, dev), kEwThreads, 0, s>>>(xp, yp, n, F);
  }
}

// ---- embedding ----

// y[t, :] = table[ids[t], :] converted to Out; table [V, E], ids [T], y [T, E].
// Grid: 1-D, row_grid(T) blocks, block b handles tokens b, b + gridDim.x, ...; block: row_threads(E) threads over
// the row's E elements (coalesced reads of the table row and writes of y's row). An id outside [0, V) writes a NaN
// row and reads nothing.
template <class In, class Out>
__global__ void __launch_bounds__(kRowThreads) embedding_kernel(const In* __restrict__ table,
                                                                const int32_t* __restrict__ ids,
                                                                Out* __restrict__ y, int64_t T, int64_t V, int64_t E) {
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const int64_t id = ids[t];
    Out* yr = y + t * E;
    if (id < 0 || id >= V) {
      for (int64_t e = threadIdx.x; e < E; e += blockDim.x) yr[e] = from_f32<Out>(nan_f32());
      continue;
    }
    const In* src = table + id * E;
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x) yr[e] = from_f32<Out>(to_f32(src[e]));
  }
}

// ---- rms_norm, add_rms_norm ----

// y = x * w / sqrt(mean(x^2) + eps) per row; with kAdd, first s = x + r rounded to T (stored), and y from s.
// Grid: 1-D, row_grid(rows) blocks, block b handles rows b, b + gridDim.x, ...; block: row_threads(N) threads,
// thread t owns elements t, t + blockDim.x, ... of the row in both passes (so pass 2 of add_rms_norm reads back
// the s values the same thread wrote in pass 1). Sum of squares in f32 through block_sum.
template <class T, class W, bool kAdd>
__global__ void __launch_bounds__(kRowThreads) rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ res,
                                                               const W* __restrict__ w, T* s, T* __restrict__ y,
                                                               int64_t rows, int64_t N, float eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * N;
    T* sr = kAdd ? s + r * N : nullptr;
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      float v;
      if (kAdd) {
        const T sv = from_f32<T>(to_f32(xr[j]) + to_f32(res[r * N + j]));
        sr[j] = sv;
        v = to_f32(sv);
      } else {
        v = to_f32(xr[j]);
      }
      ss += v * v;
    }
    ss = block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(N) + eps);
    const T* src = kAdd ? sr : xr;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
      y[r * N + j] = from_f32<T>(to_f32(src[j]) * inv * to_f32(w[j]));
  }
}

// ---- layer_norm ----

// y = (x - mean) / sqrt(var + eps) * w + b per row (biased variance); b == nullptr: no bias.
// Grid and block: as rms_norm_kernel. Three passes over the row: the mean, the sum of squared deviations (two-pass,
// no cancellation of E[x^2] - mean^2), the output.
template <class T, class W>
__global__ void __launch_bounds__(kRowThreads) layer_norm_kernel(const T* __restrict__ x, const W* __restrict__ w,
                                                                 const W* __restrict__ b, T* __restrict__ y,
                                                                 int64_t rows, int64_t N, float eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * N;
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) sum += to_f32(xr[j]);
    const float mean = block_sum(sum) / static_cast<float>(N);
    float sq = 0.0f;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const float d = to_f32(xr[j]) - mean;
      sq += d * d;
    }
    const float inv = 1.0f / sqrtf(block_sum(sq) / static_cast<float>(N) + eps);
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const float v = (to_f32(xr[j]) - mean) * inv * to_f32(w[j]);
      y[r * N + j] = from_f32<T>(b ? v + to_f32(b[j]) : v);
    }
  }
}

// ---- rope ----

// x, y [T, H, D]; per token t and pair i < half: angle = f32(f32(pos[t]) * inv_freq[i]) (__fmul_rn: never fused),
// (c, s) = sincosf(angle) (the reference: cos/sin in double of the same f32 angle, rounded to f32; sincosf is within
// 2 ulp, with full range reduction for large angles), then (a, b) -> (a c - b s, b c + a s) in f32 with every
// product rounded (no FMA, as common/rope.h). Pairs: (i, i + half) rotate-half, (2i, 2i + 1) interleaved; dims
// 2 half .. D - 1 copied.
// Grid: 1-D, row_grid(T) blocks, block b handles tokens b, b + gridDim.x, ...; block: row_threads(H * D / 2)
// threads over the token's H * half pairs (pair p: head p / half, i = p % half; each thread computes its own angle,
// cheaper than sharing through shared memory at these sizes), then over the H * (D - R) copied dims. A negative
// position writes the token's rows as NaN.
template <class T>
__global__ void __launch_bounds__(kRowThreads) rope_kernel(const T* __restrict__ x, const int32_t* __restrict__ pos,
                                                           const float* __restrict__ inv_freq, T* __restrict__ y,
                                                           int64_t T_, int64_t H, int64_t D, int64_t half,
                                                           bool interleaved) {
  const int64_t R = 2 * half, pass = D - R;
  for (int64_t t = blockIdx.x; t < T_; t += gridDim.x) {
    const int32_t p = pos[t];
    const T* xt = x + t * H * D;
    T* yt = y + t * H * D;
    if (p < 0) {
      for (int64_t e = threadIdx.x; e < H * D; e += blockDim.x) yt[e] = from_f32<T>(nan_f32());
      continue;
    }
    const float fp = static_cast<float>(p);
    for (int64_t q = threadIdx.x; q < H * half; q += blockDim.x) {
      const int64_t h = q / half, i = q - h * half;
      const int64_t ia = h * D + (interleaved ? 2 * i : i), ib = h * D + (interleaved ? 2 * i + 1 : i + half);
      float s, c;
      sincosf(__fmul_rn(fp, inv_freq[i]), &s, &c);
      const float va = to_f32(xt[ia]), vb = to_f32(xt[ib]);
      yt[ia] = from_f32<T>(__fadd_rn(__fmul_rn(va, c), -__fmul_rn(vb, s)));
      yt[ib] = from_f32<T>(__fadd_rn(__fmul_rn(vb, c), __fmul_rn(va, s)));
    }
    for (int64_t q = threadIdx.x; q < H * pass; q += blockDim.x) {
      const int64_t h = q / pass, d = h * D + R + (q - h * pass);
      yt[d] = xt[d];
    }
  }
}

// Calls f(A{}, B{}) with the storage types of two float dtypes (a norm's weight or embedding's output may differ
// from the activations' dtype); false if either is not a float dtype.
template <class F>
bool dispatch_two_float(DType a, DType b, F&& f) {
  bool ok = true;
  const bool outer = dispatch_float(a, [&](auto ta) {
    ok = dispatch_float(b, [&](auto tb) { f(ta, tb); });
  });
  return outer && ok;
}

}  // namespace

Status silu_cuda(const OpArgs& a) { return run_unary(a, "silu", SiluOp{}); }

Status gelu_cuda(const OpArgs& a) { return run_unary(a, "gelu", GeluOp{a.params.i[0] == 1}); }

Status silu_mul_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "silu_mul", &dev));
  const TensorView &x = a.in[0], &y = a.out[0];  // [rows, 2F], [rows, F]
  const bool ok = dispatch_float(x.dtype, [&](auto t) {
    using T = decltype(t);
    launch_silu_mul<T>(x.data, y.data, y.rows(), y.cols(), dev, stream_of(a));
  });
  if (!ok) return internal_error(std::string("silu_mul: cuda kernel got a non-float dtype ") + dtype_name(x.dtype));
  return cuda_last_error("silu_mul");
}

Status embedding_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "embedding", &dev));
  const TensorView& table = a.in[0];  // [V, E]
  const TensorView& ids = a.in[1];    // [T] i32
  const TensorView& y = a.out[0];     // [T, E]
  const int64_t V = table.shape[0], E = table.shape[1], T = ids.numel();
  if (T == 0 || E == 0) return cuda_last_error("embedding");
  const int threads = row_threads(E);
  const unsigned blocks = row_grid(T, threads, dev);
  const bool ok = dispatch_two_float(table.dtype, y.dtype, [&](auto ti, auto to) {
    using In = decltype(ti);
    using Out = decltype(to);
    embedding_kernel<In, Out><<<blocks, threads, 0, stream_of(a)>>>(
        static_cast<const In*>(table.data), static_cast<const int32_t*>(ids.data), static_cast<Out*>(y.data), T, V, E);
  });
  if (!ok) return internal_error("embedding: cuda kernel got a non-float dtype");
  return cuda_last_error("embedding");
}

namespace {

Status run_rms_norm(const OpArgs& a, bool add) {
  const char* name = add ? "add_rms_norm" : "rms_norm";
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, name, &dev));
  const TensorView& x = a.in[0];            // [rows, N]
  const TensorView& w = a.in[add ? 2 : 1];  // [N]
  const TensorView& y = a.out[add ? 1 : 0];  // [rows, N]
  const int64_t N = x.cols(), rows = x.rows();
  if (rows == 0) return cuda_last_error(name);
  const int threads = row_threads(N);
  const unsigned blocks = row_grid(rows, threads, dev);
  const float eps = static_cast<float>(a.params.f[0]);
  const bool ok = dispatch_two_float(x.dtype, w.dtype, [&](auto tx, auto tw) {
    using T = decltype(tx);
    using W = decltype(tw);
    const T* xp = static_cast<const T*>(x.data);
    const W* wp = static_cast<const W*>(w.data);
    T* yp = static_cast<T*>(y.data);
    if (add)
      rms_norm_kernel<T, W, true><<<blocks, threads, 0, stream_of(a)>>>(
          xp, static_cast<const T*>(a.in[1].data), wp, static_cast<T*>(a.out[0].data), yp, rows, N, eps);
    else
      rms_norm_kernel<T, W, false><<<blocks, threads, 0, stream_of(a)>>>(xp, nullptr, wp, nullptr, yp, rows, N, eps);
  });
  if (!ok) return internal_error(std::string(name) + ": cuda kernel got a non-float dtype");
  return cuda_last_error(name);
}

}  // namespace

Status rms_norm_cuda(const OpArgs& a) { return run_rms_norm(a, false); }
Status add_rms_norm_cuda(const OpArgs& a) { return run_rms_norm(a, true); }

Status layer_norm_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "layer_norm", &dev));
  const TensorView &x = a.in[0], &w = a.in[1], &b = a.in[2], &y = a.out[0];  // [rows, N], [N], [N] or [0], [rows, N]
  const int64_t N = x.cols(), rows = x.rows();
  if (rows == 0) return cuda_last_error("layer_norm");
  const int threads = row_threads(N);
  const unsigned blocks = row_grid(rows, threads, dev);
  const float eps = static_cast<float>(a.params.f[0]);
  const bool bias = b.numel() != 0;
  const bool ok = dispatch_two_float(x.dtype, w.dtype, [&](auto tx, auto tw) {
    using T = decltype(tx);
    using W = decltype(tw);
    layer_norm_kernel<T, W><<<blocks, threads, 0, stream_of(a)>>>(
        static_cast<const T*>(x.data), static_cast<const W*>(w.data), bias ? static_cast<const W*>(b.data) : nullptr,
        static_cast<T*>(y.data), rows, N, eps);
  });
  if (!ok) return internal_error("layer_norm: cuda kernel got a non-float dtype");
  return cuda_last_error("layer_norm");
}

Status rope_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "rope", &dev));
  const TensorView &x = a.in[0], &pos = a.in[1], &freq = a.in[2], &y = a.out[0];  // [T, H, D], [T], [R/2], [T, H, D]
  const int64_t T = x.shape[0], H = x.shape[1], D = x.shape[2], half = freq.numel();
  if (T == 0 || H == 0) return cuda_last_error("rope");
  const int threads = row_threads(H * D / 2 * 4);  // about one pair (or two copied dims) per thread
  const unsigned blocks = row_grid(T, threads, dev);
  const bool interleaved = a.params.i[0] == 1;
  const bool ok = dispatch_float(x.dtype, [&](auto t) {
    using E = decltype(t);
    rope_kernel<E><<<blocks, threads, 0, stream_of(a)>>>(static_cast<const E*>(x.data),
                                                         static_cast<const int32_t*>(pos.data),
                                                         static_cast<const float*>(freq.data), static_cast<E*>(y.data),
                                                         T, H, D, half, interleaved);
  });
  if (!ok) return internal_error(std::string("rope: cuda kernel got a non-float dtype ") + dtype_name(x.dtype));
  return cuda_last_error("rope");
}

}  // namespace lk
