// matmul: y[m, n] = sum_k x[m, k] * w[n, k], accumulated in f32, rounded once to y's dtype (nearest even).
//   x: [M, K] (or [..., K], leading dimensions flattened into M), w: [N, K] (a Linear layer's weight), y: [M, N];
//   x, w, y of one float dtype (f32, f16, bf16), all contiguous, so both operands are K-contiguous ("NT" GEMM).
//
// Two kernels, chosen by M:
//   M <= 4 (decode: one token, or a few sequences): matmul_gemv_kernel. Memory-bound: it reads w once, so its
//     speed is the bandwidth of streaming N*K elements. One warp per output column n, 16-byte loads of w's row,
//     4 loads in flight per lane, the x rows (tiny, shared by every warp) through the read-only cache, and a
//     warp-shuffle reduction.
//   M > 4: matmul_tiled_kernel, a shared-memory tiled SIMT GEMM: 64x64 output tile per block, K in steps of 16
//     (f32) or 32 (f16/bf16), so that each of the 256 threads loads one 16-byte vector of x and one of w per step;
//     each thread accumulates a 4x4 register tile. The next K-step is loaded into registers while the current one
//     is multiplied from shared memory.
// Every M, N, K works (1, 7, 33, 257, 4096, ...): loads and stores are guarded, and when K is not a multiple of
// the vector width or a pointer is not 16-byte aligned, the same kernels run with scalar loads (kVec = false).
// Accumulation is f32 FMA (nvcc contracts; that is wanted here); lk_check judges matmul by the tolerance table.
//
// Versions: v1 (this): SIMT f32-accumulate tiles + GEMV. Not yet measured on a GPU. Next: tensor cores (mma.sync
// on sm_80, wgmma on sm_90a) for the f16/bf16 tiled path, where cuBLAS through torch.matmul is the peer.
// Run: build-gpu/tools/lk_check --backend cuda (correctness), build-gpu/tools/lk_bench --backend cuda (TFLOP/s).
#include <climits>

#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

// ---- tiled kernel ----
constexpr int kBM = 64;          // rows of x (M) per block tile
constexpr int kBN = 64;          // rows of w (N) per block tile
constexpr int kMmThreads = 256;  // 16 x 16 threads, each a 4 x 4 register tile
constexpr int kTM = 4, kTN = 4;
// Shared rows are padded by 4 floats: rows stay 16-byte aligned for the float4 reads of the inner loop. The
// transposing stores of a new K-step then have 2-way (f32) or 4-way (f16/bf16) bank conflicts, paid once per
// K-step against BK float4-read steps.
constexpr int kPad = 4;

template <class T>
struct MmShape {
  static constexpr int VEC = static_cast<int>(16 / sizeof(T));  // elements per 16-byte load
  static constexpr int BK = kMmThreads * VEC / kBM;              // K per step: f32 16, f16/bf16 32
};
static_assert(kBM == kBN, "the loader maps one thread to one row of each tile");
static_assert(kBM * kBN == kMmThreads * kTM * kTN, "the register tiles cover the block tile");

// Loads VEC consecutive elements p[row, k .. k + VEC) of a [rows, K] K-contiguous matrix as f32, zeros outside.
// kVec: K % VEC == 0 and p 16-byte aligned, so the whole vector is inside or outside and one 16-byte load does it.
template <class T, int VEC, bool kVec>
__device__ __forceinline__ void load_row_vec(const T* __restrict__ p, int64_t rows, int64_t K, int64_t row, int64_t k,
                                             float (&r)[VEC]) {
  if (kVec) {
    if (row < rows && k < K) {
      const Pack<T, VEC> v = *reinterpret_cast<const Pack<T, VEC>*>(p + row * K + k);
#pragma unroll
      for (int j = 0; j < VEC; ++j) r[j] = to_f32(v.v[j]);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) r[j] = 0.0f;
    }
  } else {
    const bool in_row = row < rows;
#pragma unroll
    for (int j = 0; j < VEC; ++j) r[j] = (in_row && k + j < K) ? to_f32(p[row * K + k + j]) : 0.0f;
  }
}

// Grid: 1-D, tiles_m * tiles_n blocks (tiles of 64 x 64 outputs; block b is tile (b / tiles_n, b % tiles_n), so
// consecutive blocks share a band of x). Block: 256 threads.
// Loader: thread t loads row t / 4 of the x tile and of the w tile, elements (t % 4) * VEC .. + VEC of the K-step,
// and stores them transposed into xs[k][m] / ws[k][n] (f32), so that the inner loop reads a float4 of 4 rows of x
// and a float4 of 4 rows of w per k.
// Compute: thread (ty, tx) = (t / 16, t % 16) owns y[m0 + 4*ty + i, n0 + 4*tx + j], i, j in 0..3.
template <class T, bool kVec>
__global__ void __launch_bounds__(kMmThreads) matmul_tiled_kernel(const T* __restrict__ x,  // [M, K]
                                                                   const T* __restrict__ w,  // [N, K]
                                                                   T* __restrict__ y,        // [M, N]
                                                                   int64_t M, int64_t N, int64_t K, int64_t tiles_n) {
  constexpr int VEC = MmShape<T>::VEC;
  constexpr int BK = MmShape<T>::BK;
  __shared__ __align__(16) float xs[BK][kBM + kPad];
  __shared__ __align__(16) float ws[BK][kBN + kPad];

  const int tid = static_cast<int>(threadIdx.x);
  const int64_t m0 = (static_cast<int64_t>(blockIdx.x) / tiles_n) * kBM;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) % tiles_n) * kBN;

  const int lrow = tid / (BK / VEC);        // 0..63
  const int lk = (tid % (BK / VEC)) * VEC;  // 0, VEC, 2 VEC, 3 VEC
  float xr[VEC], wr[VEC];
  load_row_vec<T, VEC, kVec>(x, M, K, m0 + lrow, lk, xr);
  load_row_vec<T, VEC, kVec>(w, N, K, n0 + lrow, lk, wr);

  const int tx = tid % (kBN / kTN);
  const int ty = tid / (kBN / kTN);
  float acc[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < kTN; ++j) acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      xs[lk + j][lrow] = xr[j];
      ws[lk + j][lrow] = wr[j];
    }
    __syncthreads();
    if (k0 + BK < K) {  // the next step's global loads overlap this step's arithmetic
      load_row_vec<T, VEC, kVec>(x, M, K, m0 + lrow, k0 + BK + lk, xr);
      load_row_vec<T, VEC, kVec>(w, N, K, n0 + lrow, k0 + BK + lk, wr);
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&xs[kk][ty * kTM]);
      const float4 bv = *reinterpret_cast<const float4*>(&ws[kk][tx * kTN]);
      const float a4[kTM] = {av.x, av.y, av.z, av.w};
      const float b4[kTN] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(a4[i], b4[j], acc[i][j]);
    }
    __syncthreads();  // before the next step overwrites xs/ws
  }

#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int64_t m = m0 + ty * kTM + i;
    if (m >= M) break;
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int64_t n = n0 + tx * kTN + j;
      if (n < N) y[m * N + n] = from_f32<T>(acc[i][j]);
    }
  }
}

// ---- GEMV kernel (M <= 4) ----
constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;  // output columns per block
constexpr int kGemvUnroll = 4;                  // 16-byte loads of w in flight per lane

template <class T, int VEC>
__device__ __forceinline__ Pack<T, VEC> ldg16(const T* p) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  Pack<T, VEC> r;
  static_assert(sizeof(r) == sizeof(u), "a pack is 16 bytes here");
  memcpy(&r, &u, sizeof(u));
  return r;
}

// Grid: 1-D, ceil(N / 8) blocks; block: 256 threads = 8 warps; warp j of block b computes output column
// n = 8 b + j for all MR (= M <= 4) rows of x: lane l reads w[n, k .. k + VEC) for k = l*VEC, + 32 VEC, ...
// (each warp-wide access is 512 contiguous bytes of w), multiplies with the same slice of each x row, and the
// 32 partial sums of each row are added with __shfl_xor_sync. kVec = false: one element per lane per step.
template <class T, int MR, bool kVec>
__global__ void __launch_bounds__(kGemvThreads) matmul_gemv_kernel(const T* __restrict__ x,  // [MR, K]
                                                                    const T* __restrict__ w,  // [N, K]
                                                                    T* __restrict__ y,        // [MR, N]
                                                                    int64_t N, int64_t K) {
  constexpr int VEC = 16 / sizeof(T);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // the whole warp leaves together, so the full-mask shuffles below stay valid
  const T* __restrict__ wr = w + n * K;
  float acc[MR];
#pragma unroll
  for (int m = 0; m < MR; ++m) acc[m] = 0.0f;

  if (kVec) {
    constexpr int64_t step = 32 * VEC;
    int64_t k = static_cast<int64_t>(lane) * VEC;
    for (; k + (kGemvUnroll - 1) * step < K; k += kGemvUnroll * step) {
      Pack<T, VEC> pw[kGemvUnroll];
#pragma unroll
      for (int u = 0; u < kGemvUnroll; ++u) pw[u] = ldg16<T, VEC>(wr + k + u * step);
#pragma unroll
      for (int u = 0; u < kGemvUnroll; ++u)
#pragma unroll
        for (int m = 0; m < MR; ++m) {
          const Pack<T, VEC> px = ldg16<T, VEC>(x + m * K + k + u * step);
#pragma unroll
          for (int j = 0; j < VEC; ++j) acc[m] = fmaf(to_f32(pw[u].v[j]), to_f32(px.v[j]), acc[m]);
        }
    }
    for (; k < K; k += step) {  // K % VEC == 0: a vector that starts inside K ends inside it
      const Pack<T, VEC> pw = ldg16<T, VEC>(wr + k);
#pragma unroll
      for (int m = 0; m < MR; ++m) {
        const Pack<T, VEC> px = ldg16<T, VEC>(x + m * K + k);
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[m] = fmaf(to_f32(pw.v[j]), to_f32(px.v[j]), acc[m]);
      }
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) {
      const float wv = to_f32(wr[k]);
#pragma unroll
      for (int m = 0; m < MR; ++m) acc[m] = fmaf(wv, to_f32(x[m * K + k]), acc[m]);
    }
  }

#pragma unroll
  for (int m = 0; m < MR; ++m)
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  if (lane == 0) {
#pragma unroll
    for (int m = 0; m < MR; ++m) y[m * N + n] = from_f32<T>(acc[m]);
  }
}

template <class T, int MR>
void launch_gemv(bool vec, const void* x, const void* w, void* y, int64_t N, int64_t K, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((N + kGemvWarps - 1) / kGemvWarps);
  const T* xp = static_cast<const T*>(x);
  const T* wp = static_cast<const T*>(w);
  T* yp = static_cast<T*>(y);
  if (vec)
    matmul_gemv_kernel<T, MR, true><<<blocks, kGemvThreads, 0, s>>>(xp, wp, yp, N, K);
  else
    matmul_gemv_kernel<T, MR, false><<<blocks, kGemvThreads, 0, s>>>(xp, wp, yp, N, K);
}

template <class T>
void launch_matmul(const void* x, const void* w, void* y, int64_t M, int64_t N, int64_t K, cudaStream_t s) {
  constexpr int VEC = 16 / sizeof(T);
  const bool vec = K % VEC == 0 && aligned_to(x, 16) && aligned_to(w, 16);
  switch (M) {
    case 1: return launch_gemv<T, 1>(vec, x, w, y, N, K, s);
    case 2: return launch_gemv<T, 2>(vec, x, w, y, N, K, s);
    case 3: return launch_gemv<T, 3>(vec, x, w, y, N, K, s);
    case 4: return launch_gemv<T, 4>(vec, x, w, y, N, K, s);
    default: break;
  }
  const int64_t tiles_n = (N + kBN - 1) / kBN;
  const int64_t tiles = ((M + kBM - 1) / kBM) * tiles_n;  // < 2^31: matmul_cuda_supports checks it
  const T* xp = static_cast<const T*>(x);
  const T* wp = static_cast<const T*>(w);
  T* yp = static_cast<T*>(y);
  if (vec)
    matmul_tiled_kernel<T, true><<<static_cast<unsigned>(tiles), kMmThreads, 0, s>>>(xp, wp, yp, M, N, K, tiles_n);
  else
    matmul_tiled_kernel<T, false><<<static_cast<unsigned>(tiles), kMmThreads, 0, s>>>(xp, wp, yp, M, N, K, tiles_n);
}

}  // namespace

// The reason this kernel cannot run a (validated) call, or nullptr. Only absurd sizes are refused: the 1-D grid of
// the tiled kernel has at most 2^31 - 1 blocks.
const char* matmul_cuda_limits(const OpArgs& a) {
  // supports() may be asked before validate_op() ran: read the shapes only when they are there.
  if (a.n_in < 2 || a.n_out < 1 || a.in[1].ndim < 1) return nullptr;
  const int64_t M = a.out[0].rows(), N = a.in[1].shape[0];
  const int64_t tiles = ((M + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
  if (M > 4 && tiles > INT_MAX) return "matmul: cuda kernel needs ceil(M/64) * ceil(N/64) < 2^31 output tiles";
  return nullptr;
}

Status matmul_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "matmul", &dev));
  const TensorView& x = a.in[0];  // [M, K]
  const TensorView& w = a.in[1];  // [N, K]
  const TensorView& y = a.out[0];  // [M, N]
  // M from y: TensorView::rows() of x is 0 when K == 0, but y still has M rows (of zeros, the empty sum).
  const int64_t M = y.rows(), N = w.shape[0], K = x.cols();
  if (M == 0 || N == 0) return cuda_last_error("matmul");
  if (const char* why = matmul_cuda_limits(a)) return unsupported(why);
  const bool ok = dispatch_float(x.dtype, [&](auto t) {
    using T = decltype(t);
    launch_matmul<T>(x.data, w.data, y.data, M, N, K, stream_of(a));
  });
  if (!ok) return internal_error(std::string("matmul: cuda kernel got a non-float dtype ") + dtype_name(x.dtype));
  return cuda_last_error("matmul");
}

}  // namespace lk
