// matmul_q on CUDA: y[M, N] = x[M, K] . dequant(w[N, K])^T, w quantized in the panel form of common/quant.h
// (q8_0, q4_0, q4_g32/64/128, i8_pc), x and y of one float dtype (f32, f16, bf16). The spec and the cases are
// cpu/ref/matmul_q_ref.cc; params.i[0] picks the path:
//   path 0 (int8 activations): x is quantized by quantize_act_cuda (quant_act.cu; bit for bit quant.h's
//     quantize_act_block) per block of 32 (per row for i8_pc) into scratch qx [M, Kp] int8, dx; then
//       y[m,n] = sum_b dx[m,b] * s(n,b) * sum_{k in b} qx[m,k] * (q(n,k) - z(n,b))        (block formats)
//       y[m,n] = dx[m] * s(n) * sum_k qx[m,k] * q(n,k)                                    (i8_pc)
//   path 1 (dequantize): y[m,n] = sum_k x[m,k] * f32(s * (q - z)), x first widened to f32 into scratch xf [M, Kp]
//     (zeros past K, so the hot loop has no K guard and every x read is an aligned float4).
// First matmul_q_wgmma_cuda (Hopper wgmma, int8 path with i8_pc; opt-in by LLMK_WGMMA=1 until it has run on a GPU:
// matmul_q_wgmma.cu), then matmul_q_mma_cuda (the tensor-core path, matmul_q_mma.cu) is offered the call; when both decline, the GEMV
// kernel below runs, for every M (it is also the fallback for shapes and dtypes the mma path does not take).
//
// GEMV design (decode, M <= 8; memory-bound: the weight is read exactly once, so speed = bandwidth of streaming the
// panels). Grid: x = one block per panel of 8 rows of w (ceil(N / 8) blocks), y = chunks of MB rows of x
// (MB = 1, 4 or 8; a block loops over chunks blockIdx.y, + gridDim.y, ... so any M works). Block: W warps
// (W = min(8, units)), which split the panel's K: warp w takes units w, w + W, w + 2W, ... where a unit is the
// 512 bytes of quants that one warp reads with one 16-byte load per lane:
//   q8_0 / i8_pc: 2 blocks of 32 k (256 quant bytes each): lane = 16 * blk + c
//   q4_*:         4 blocks of 32 k (128 nibble bytes each): lane = 8 * blk + c
// Chunk c of a block is the 16 bytes at c * 16 of its quants, i.e. (quant.h's qs[s][r][j]) step s = c / 2 and rows
// 4 * (c % 2) .. + 3: four 32-bit words, word i = row 4 * (c % 2) + i at k = 32b + 4s + j (q8: byte j; q4: low
// nibble of byte j, and k + 16 in the high nibble). So a lane owns 4 rows and 4 (q8) or 8 (q4) k of each block it
// reads, and needs x only at those k: one or two float4 (path 1) or int32 (path 0) per row of x, shared by the 4
// rows (x reuse 4x in registers). U = 4 units are loaded before any is used: 4 independent 16-byte loads in flight
// per lane (plus the block's scales), 64 per warp, so that at 8 warps/block and ~2 blocks/SM an H200 SM has
// ~32 KB of weight reads outstanding, above the ~25 KB that Little's law asks for 4.3 TB/s / 132 SMs at ~800 ns.
// Scales: q8_0 / q4_0: the 4 f16 of the lane's rows, 8 bytes just before the block's quants; q4_gG: the group
// header (u16 s[8], u8 z[8]) in front of each group's blocks; i8_pc: f32 s[8] at the start of the panel.
// Alignment: w's base must be 16-byte aligned (allocations are 256-aligned; checked on the host). q8_0 blocks are
// 272 B, q4_0 144 B and i8_pc's 256 B after a 32-byte header: every chunk is then 16-byte aligned, one uint4 load.
// q4_gG groups are 24 + 128 * (G / 32) bytes, so chunks are only 8-byte aligned: two uint2 loads (same bytes,
// same transactions; sectors are 32 B). Reduction: each lane's 4 x MB sums are added over the lanes of the same
// row half (xor-shuffles 2, 4, 8, 16 keep bit 0 of the lane), lanes 0 and 1 put 8 rows x MB into shared memory,
// and the block sums the W warps in warp order (deterministic), converts and stores y.
//
// Math and exactness:
//  * Path 1 dequantizes each weight as the reference does, f32(s * (q - z)): q - z is an exact small integer,
//    its f32 is exact, and the product is one IEEE multiply (__fmul_rn: never contracted into the FMA that follows,
//    so the value fed to the FMA is the reference's f32 value bit for bit). For the f16-scaled formats the product
//    is even exact (11-bit significand times an integer of at most 8 bits fits in 24 bits); for i8_pc (f32 scale)
//    it is rounded once, as in the reference. Then acc = fma(x, w, acc) in f32; only the summation order and f32
//    accumulation differ from the reference's double sum (the tolerance rows of matmul).
//  * Path 0 sums integers exactly: __dp4a gives sum of 4 qx * q products in int32; q4 formats use
//    sum qx * (q - z) = dp4a(qx, q) - z * dp4a(qx, 1), |lane partial| <= 8 * 127 * 16. A lane's partial of a block
//    is exact; block formats then add (dx * s) * f32(partial) in f32 (the reference adds d * s * dot per block in
//    double: the per-lane split of a block's dot changes only f32 rounding, and on data whose products are exact in
//    f32 the results are equal). i8_pc: one scale per row, so the exact integer sum over the whole row is kept: each
//    lane adds at most U * 4 * 127 * 127 = 258064 per outer step to an int32, which is moved into a double every
//    8192 steps (8192 * 258064 < 2^31), so no int32 can overflow for any K; the doubles hold integers < 2^53 exactly
//    (K < 2^40), the lane/warp sums of them are exact, and y = f32(double(dx) * double(s) * sum) is the reference's
//    expression, bit for bit.
//  * NaN/Inf in x: path 1 propagates them like the reference (x * w in f32); path 0's quantizer gives q = 0,
//    d = NaN for the block (row, i8_pc), so y is NaN there as in the reference.
//  * Padding: elements past K are zero values in w (quant.h) and zero in qx / xf; rows past N are never stored.
//
// Predicted bandwidth (not measured: no GPU yet). Bytes per output row: q4_g128 K = 4096 is 2112 B per row. At M = 1
// path 1 spends per weight one extract, one I2F, one FMUL and one FFMA (~4 ALU ops); an H200 issues 132 * 128 lanes
// * 1.98 GHz = 33.5 T lane-ops/s, and 4.3 TB/s of W4 is 8.6 G weights/ms: ~34 T ops/s, so path 1 W4A16 is close to
// ALU-bound and we expect 0.7-0.8 of copy bandwidth, not the 0.85 goal; path 0 (dp4a: ~1 op per weight) and the 8-bit
// formats (half the weights per byte) should reach 0.85-0.9 once the grid has >= 2 blocks per SM (N >= 2112). The
// cheaper path 1 (lop3 into f16x2 with the 1024-magic, exact q - z, f32 accumulate) is the next version.
//
// Registers (ptxas -v, sm_80 / sm_90a, no spills in any instantiation): __launch_bounds__(256, 1), because with
// (256) alone ptxas chose 48-128 registers and spilled a few bytes in some instantiations. MB = 1 (decode): 64-117
// registers (path 1 q4: 95-117), so 2 blocks of 256 threads per SM; MB = 4: 96-157; MB = 8: 120-212 (path 1 q4
// ~200: 1 block per SM, fine for the M > 4 fallback, which is compute-heavier and reads w from L2 per chunk).
// Error policy: bad shapes are refused by validate_op before this runs; here: grid limits (panels <= 2^31 - 1),
// scratch sizes that overflow, a w pointer not 16-byte aligned -> Status; nothing aborts.
// Versions: v1 (this): SIMT GEMV, both paths, every format, any M. Not yet run on a GPU (checked under the CPU
// emulation, native/cuda/emu). Next: the f16x2 dequantization above, measured on an H200 with lk_bench.
#include <climits>
#include <type_traits>

#include "elementwise.cuh"
#include "kernels.h"
#include "matmul_q.cuh"
#include "../common/quant.h"

namespace lk {

namespace {

enum QFmt : int { kFmtQ8 = 0, kFmtQ4 = 1, kFmtQ4G = 2, kFmtI8 = 3 };

constexpr int kMaxWarps = 8;  // warps per block
constexpr int kUnroll = 4;    // units in flight per lane
constexpr int kFlushSteps = 8192;  // i8_pc path 0: outer steps between int32 -> double moves (see the header)

struct QGemvArgs {
  const uint8_t* w;     // panel form
  int64_t panel_bytes;
  int64_t nb;           // blocks of 32 per row
  int bpg_shift;        // log2 of the blocks per group (q4_gG: G / 32 = 1, 2, 4; a shift, not a 64-bit division)
  const int8_t* qx;     // path 0: [M, Kp]
  const float* dx;      // path 0: [M, nb] (i8_pc: [M])
  const float* xf;      // path 1: [M, Kp]
  void* y;              // [M, N]
  int64_t M, N, Kp;
};

__device__ __forceinline__ float half_lo(uint32_t v) { return to_f32(f16_t{static_cast<uint16_t>(v & 0xffffu)}); }
__device__ __forceinline__ float half_hi(uint32_t v) { return to_f32(f16_t{static_cast<uint16_t>(v >> 16)}); }

// Byte offset of block b's quants inside a panel (quant.h's QuantLayout::block_offset).
template <int F>
__device__ __forceinline__ int64_t qblock_offset(int64_t b, int sh) {
  if (F == kFmtQ8) return b * 272 + 16;
  if (F == kFmtQ4) return b * 144 + 16;
  if (F == kFmtI8) return 32 + b * 256;
  return ((b >> sh) + 1) * 24 + b * 128;
}

// What one lane loads for one block: 16 quant bytes and the 4 scales (and zeros) of its rows.
struct QLoad {
  uint4 q;
  uint2 s;   // 4 f16 scales (q8_0, q4_0, q4_gG)
  uint32_t z;  // 4 u8 zero points (q4_gG)
};

template <int F>
__device__ __forceinline__ void qload(const uint8_t* __restrict__ panel, int64_t b, int sh, int c, QLoad& l) {
  const int rh = c & 1;
  const uint8_t* blk = panel + qblock_offset<F>(b, sh);
  if (F == kFmtQ4G) {
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(blk + 16 * c));
    const uint2 d = __ldg(reinterpret_cast<const uint2*>(blk + 16 * c + 8));
    l.q = make_uint4(a.x, a.y, d.x, d.y);
    const uint8_t* h = panel + (b >> sh) * (24 + (128 << sh));
    l.s = __ldg(reinterpret_cast<const uint2*>(h + 8 * rh));
    l.z = __ldg(reinterpret_cast<const uint32_t*>(h + 16 + 4 * rh));
  } else {
    l.q = __ldg(reinterpret_cast<const uint4*>(blk + 16 * c));
    if (F != kFmtI8) l.s = __ldg(reinterpret_cast<const uint2*>(blk - 16 + 8 * rh));
  }
}

__device__ __forceinline__ uint32_t word(const uint4& q, int i) { return i == 0 ? q.x : i == 1 ? q.y : i == 2 ? q.z : q.w; }

template <class A>
__device__ __forceinline__ A lane_sum_rows(A v) {  // sum over the 16 lanes with the same lane % 2
#pragma unroll
  for (int off = 2; off < 32; off <<= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Grid: (panels, min(chunks, 65535)); block: W * 32 threads (W <= kMaxWarps). See the header for the mapping.
template <int F, int PATH, int MB, class T>
__global__ void __launch_bounds__(kMaxWarps * 32, 1) qgemv_kernel(const QGemvArgs p) {
  constexpr bool kQ4 = F == kFmtQ4 || F == kFmtQ4G;
  constexpr int kLpb = kQ4 ? 8 : 16;       // lanes per block
  constexpr int kBpu = 32 / kLpb;          // blocks per unit
  constexpr bool kExactRow = PATH == 0 && F == kFmtI8;
  using Acc = typename std::conditional<kExactRow, double, float>::type;
  __shared__ Acc red[kMaxWarps][MB][8];

  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int W = static_cast<int>(blockDim.x / 32);
  const int c = lane % kLpb, rh = c & 1, step = c >> 1, sub = lane / kLpb;
  const int64_t panel_id = blockIdx.x;
  const uint8_t* panel = p.w + panel_id * p.panel_bytes;
  const int64_t nunits = (p.nb + kBpu - 1) / kBpu;

  float srow[4] = {0.f, 0.f, 0.f, 0.f};  // i8_pc: the f32 scales of the lane's rows
  if (F == kFmtI8) {
    const float4 s4 = __ldg(reinterpret_cast<const float4*>(panel + 16 * rh));
    srow[0] = s4.x; srow[1] = s4.y; srow[2] = s4.z; srow[3] = s4.w;
  }

  for (int64_t chunk = blockIdx.y; chunk * MB < p.M; chunk += gridDim.y) {
    const int64_t m0 = chunk * MB;
    int64_t mrow[MB];  // rows of x past M repeat the last one (computed, never stored)
#pragma unroll
    for (int m = 0; m < MB; ++m) mrow[m] = m0 + m < p.M ? m0 + m : p.M - 1;

    Acc acc[MB][4];
    int32_t iacc[kExactRow ? MB : 1][4];
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[m][i] = 0;
#pragma unroll
    for (int m = 0; m < (kExactRow ? MB : 1); ++m)
#pragma unroll
      for (int i = 0; i < 4; ++i) iacc[m][i] = 0;
    int steps = 0;

    for (int64_t u0 = warp; u0 < nunits; u0 += static_cast<int64_t>(W) * kUnroll) {
      QLoad ld[kUnroll];
      int64_t bs[kUnroll];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const int64_t u = u0 + static_cast<int64_t>(j) * W;
        bs[j] = u * kBpu + sub;
        if (u < nunits && bs[j] < p.nb) {
          qload<F>(panel, bs[j], p.bpg_shift, c, ld[j]);
        } else {
          bs[j] = -1;
        }
      }
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const int64_t b = bs[j];
        if (b < 0) continue;
        const QLoad& l = ld[j];
        float sc[4];
        int32_t zp[4];
        if (F == kFmtI8) {
#pragma unroll
          for (int i = 0; i < 4; ++i) sc[i] = srow[i];
        } else {
          sc[0] = half_lo(l.s.x); sc[1] = half_hi(l.s.x); sc[2] = half_lo(l.s.y); sc[3] = half_hi(l.s.y);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) zp[i] = F == kFmtQ4G ? static_cast<int32_t>((l.z >> (8 * i)) & 0xffu) : (F == kFmtQ4 ? 8 : 0);
        const int64_t k0 = 32 * b + 4 * step;  // the lane's first k in this block (and k0 + 16 for q4)

        if (PATH == 1) {
          // Dequantize the lane's 4 rows x (4 or 8) k once, then FMA with every row of x.
          float wv[4][kQ4 ? 8 : 4];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint32_t q = word(l.q, i);
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) {
              if (kQ4) {
                const int lo = static_cast<int>((q >> (8 * jj)) & 15u), hi = static_cast<int>((q >> (8 * jj + 4)) & 15u);
                wv[i][jj] = __fmul_rn(sc[i], static_cast<float>(lo - zp[i]));
                wv[i][jj + (kQ4 ? 4 : 0)] = __fmul_rn(sc[i], static_cast<float>(hi - zp[i]));
              } else {
                wv[i][jj] = __fmul_rn(sc[i], static_cast<float>(static_cast<int8_t>(q >> (8 * jj))));
              }
            }
          }
#pragma unroll
          for (int m = 0; m < MB; ++m) {
            const float* xr = p.xf + mrow[m] * p.Kp + k0;
            const float4 xa = __ldg(reinterpret_cast<const float4*>(xr));
            float xv[kQ4 ? 8 : 4];
            xv[0] = xa.x; xv[1] = xa.y; xv[2] = xa.z; xv[3] = xa.w;
            if (kQ4) {
              const float4 xb = __ldg(reinterpret_cast<const float4*>(xr + 16));
              xv[kQ4 ? 4 : 0] = xb.x; xv[kQ4 ? 5 : 1] = xb.y; xv[kQ4 ? 6 : 2] = xb.z; xv[kQ4 ? 7 : 3] = xb.w;
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
              for (int e = 0; e < (kQ4 ? 8 : 4); ++e) acc[m][i] = fmaf(xv[e], wv[i][e], acc[m][i]);
          }
        } else {
          uint32_t lo[4], hi[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint32_t q = word(l.q, i);
            lo[i] = kQ4 ? (q & 0x0f0f0f0fu) : q;
            hi[i] = (q >> 4) & 0x0f0f0f0fu;
          }
#pragma unroll
          for (int m = 0; m < MB; ++m) {
            const int8_t* qr = p.qx + mrow[m] * p.Kp + k0;
            const int qa = __ldg(reinterpret_cast<const int*>(qr));
            const int qb = kQ4 ? __ldg(reinterpret_cast<const int*>(qr + 16)) : 0;
            const int sumx = kQ4 ? __dp4a(qa, 0x01010101, __dp4a(qb, 0x01010101, 0)) : 0;
            if (kExactRow) {
#pragma unroll
              for (int i = 0; i < 4; ++i) iacc[kExactRow ? m : 0][i] = __dp4a(static_cast<int>(lo[i]), qa, iacc[kExactRow ? m : 0][i]);
            } else {
              const float d = __ldg(p.dx + mrow[m] * p.nb + b);
#pragma unroll
              for (int i = 0; i < 4; ++i) {
                int dot = __dp4a(static_cast<int>(lo[i]), qa, 0);
                if (kQ4) dot = __dp4a(static_cast<int>(hi[i]), qb, dot) - zp[i] * sumx;
                acc[m][i] = fmaf(d * sc[i], static_cast<float>(dot), static_cast<float>(acc[m][i]));
              }
            }
          }
        }
      }
      if (kExactRow && ++steps == kFlushSteps) {  // int32 partials -> exact doubles before they could overflow
        steps = 0;
#pragma unroll
        for (int m = 0; m < MB; ++m)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            acc[m][i] += static_cast<double>(iacc[kExactRow ? m : 0][i]);
            iacc[kExactRow ? m : 0][i] = 0;
          }
      }
    }
    if (kExactRow) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[m][i] += static_cast<double>(iacc[kExactRow ? m : 0][i]);
    }

    // Lanes of one row half hold partial sums of the same 4 rows: add them, then the warps in order.
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[m][i] = lane_sum_rows(acc[m][i]);
    if (lane < 2) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
#pragma unroll
        for (int i = 0; i < 4; ++i) red[warp][m][4 * lane + i] = acc[m][i];
    }
    __syncthreads();
    for (int t = static_cast<int>(threadIdx.x); t < MB * 8; t += static_cast<int>(blockDim.x)) {  // W may be 1
      const int m = t / 8, r = t % 8;
      const int64_t n = panel_id * 8 + r;
      if (m0 + m < p.M && n < p.N) {
        Acc v = red[0][m][r];
        for (int w2 = 1; w2 < W; ++w2) v += red[w2][m][r];
        float out;
        if (kExactRow) {
          const float s = __ldg(reinterpret_cast<const float*>(panel) + r);
          out = static_cast<float>(static_cast<double>(__ldg(p.dx + m0 + m)) * static_cast<double>(s) *
                                   static_cast<double>(v));
        } else {
          out = static_cast<float>(v);
        }
        static_cast<T*>(p.y)[(m0 + m) * p.N + n] = from_f32<T>(out);
      }
    }
    __syncthreads();  // red is rewritten by the next chunk
  }
}

// x [M, K] of T -> xf [M, Kp] f32, zeros at k >= K. Grid-stride over M * Kp.
template <class T>
__global__ void __launch_bounds__(256) widen_x_kernel(const T* __restrict__ x, float* __restrict__ xf, int64_t M,
                                                      int64_t K, int64_t Kp) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < M * Kp; i += stride) {
    const int64_t m = i / Kp, k = i % Kp;
    xf[i] = k < K ? to_f32(x[m * K + k]) : 0.0f;
  }
}

template <int F, int PATH, class T>
void launch_gemv(const QGemvArgs& p, int64_t panels, int W, int device, cudaStream_t s) {
  const int sms = cuda_sm_count(device) > 0 ? cuda_sm_count(device) : 132;
  const int MB = p.M == 1 ? 1 : (p.M <= 4 ? 4 : 8);
  const int64_t chunks = (p.M + MB - 1) / MB;
  // Chunks beyond what fills the machine (4 blocks per SM) loop inside the blocks: the weight then comes from L2.
  int64_t gy = (4 * static_cast<int64_t>(sms) + panels - 1) / panels;
  gy = gy < chunks ? gy : chunks;
  gy = gy > 65535 ? 65535 : (gy < 1 ? 1 : gy);
  const dim3 grid(static_cast<unsigned>(panels), static_cast<unsigned>(gy)), block(static_cast<unsigned>(32 * W));
  if (MB == 1)
    qgemv_kernel<F, PATH, 1, T><<<grid, block, 0, s>>>(p);
  else if (MB == 4)
    qgemv_kernel<F, PATH, 4, T><<<grid, block, 0, s>>>(p);
  else
    qgemv_kernel<F, PATH, 8, T><<<grid, block, 0, s>>>(p);
}

template <int F, class T>
void launch_gemv_path(int path, const QGemvArgs& p, int64_t panels, int W, int device, cudaStream_t s) {
  if (path == 0)
    launch_gemv<F, 0, T>(p, panels, W, device, s);
  else
    launch_gemv<F, 1, T>(p, panels, W, device, s);
}

template <class T>
void launch_fmt(DType f, int path, const QGemvArgs& p, int64_t panels, int W, int device, cudaStream_t s) {
  switch (f) {
    case DType::q8_0: launch_gemv_path<kFmtQ8, T>(path, p, panels, W, device, s); break;
    case DType::q4_0: launch_gemv_path<kFmtQ4, T>(path, p, panels, W, device, s); break;
    case DType::i8_pc: launch_gemv_path<kFmtI8, T>(path, p, panels, W, device, s); break;
    default: launch_gemv_path<kFmtQ4G, T>(path, p, panels, W, device, s); break;
  }
}

template <class T>
void launch_widen(const void* x, float* xf, int64_t M, int64_t K, int64_t Kp, int device, cudaStream_t s) {
  // At least 16 elements per thread: x is small, and fewer threads start faster.
  const unsigned grid = grid_for((M * Kp + 15) / 16, 256, device);
  widen_x_kernel<T><<<grid, 256, 0, s>>>(static_cast<const T*>(x), xf, M, K, Kp);
}

}  // namespace

Status matmul_q_cuda(const OpArgs& a) {
  int device = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "matmul_q", &device));
  Status mma_st;
  if (matmul_q_wgmma_cuda(a, device, &mma_st)) return mma_st;  // opt-in (LLMK_WGMMA=1), Hopper only
  if (matmul_q_mma_cuda(a, device, &mma_st)) return mma_st;

  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  if (M <= 0 || N <= 0) return Status::OK();
  const int path = a.params.i[0];
  if (path != 0 && path != 1)
    return Status(Code::range, "matmul_q: params.i[0] (path) must be 0 (int8 activations) or 1 (dequantize), got " +
                                     std::to_string(path));
  switch (w.dtype) {
    case DType::q8_0: case DType::q4_0: case DType::q4_g32: case DType::q4_g64: case DType::q4_g128: case DType::i8_pc: break;
    default: return Status(Code::type, std::string("matmul_q: w of dtype ") + dtype_name(w.dtype) + " (expected a quantized format)");
  }
  if (x.dtype != DType::f32 && x.dtype != DType::f16 && x.dtype != DType::bf16)
    return Status(Code::type, std::string("matmul_q: x of dtype ") + dtype_name(x.dtype) + " (expected f32, f16 or bf16)");
  if (!aligned_to(w.data, 16))
    return Status(Code::range, "matmul_q: the weight's data must be 16-byte aligned (a whole quantized tensor); got "
                                 "an address at offset " + std::to_string(reinterpret_cast<uintptr_t>(w.data) % 16));
  const QuantLayout L = quant_layout(w.dtype, K);
  const int64_t panels = qceil(N, kQPanel);
  if (panels > INT_MAX)
    return Status(Code::range, "matmul_q: " + std::to_string(N) + " rows of w are " + std::to_string(panels) +
                                   " panels, more than the CUDA grid's 2^31 - 1 blocks");
  const int64_t Kp = L.nb * kQBlock;
  // Scratch: path 0 qx [M, Kp] int8 then dx [M, nb] f32 (256-aligned); path 1 xf [M, Kp] f32.
  const int64_t dx_elems = w.dtype == DType::i8_pc ? M : M * L.nb;
  if (M > (INT64_MAX / 8) / Kp)
    return Status(Code::range, "matmul_q: scratch for " + std::to_string(M) + " x " + std::to_string(Kp) +
                                   " activations overflows 64-bit sizes");
  const int64_t qx_bytes = (M * Kp + 255) / 256 * 256;
  const size_t scratch = path == 0 ? static_cast<size_t>(qx_bytes + 4 * dx_elems) : static_cast<size_t>(4 * M * Kp);
  void* buf = nullptr;
  LK_RETURN_IF_ERROR(cuda_malloc(device, scratch, &buf));
  cudaStream_t s = stream_of(a);

  QGemvArgs p{};
  p.w = static_cast<const uint8_t*>(w.data);
  p.panel_bytes = L.panel_bytes;
  p.nb = L.nb;
  p.bpg_shift = L.bpg >= 4 ? 2 : (L.bpg == 2 ? 1 : 0);
  p.y = y.data;
  p.M = M;
  p.N = N;
  p.Kp = Kp;
  // x first (int8 blocks for path 0, f32 rows padded to Kp for path 1), then the GEMV; each a Status of its own
  // (Status is [[nodiscard]], so no assignments to a shared one).
  auto prepare = [&]() -> Status {
    if (path == 0) {
      p.qx = static_cast<const int8_t*>(buf);
      p.dx = reinterpret_cast<const float*>(static_cast<uint8_t*>(buf) + qx_bytes);
      return quantize_act_cuda(x.data, x.dtype, M, K, w.dtype == DType::i8_pc, static_cast<int8_t*>(buf),
                               reinterpret_cast<float*>(static_cast<uint8_t*>(buf) + qx_bytes), s);
    }
    p.xf = static_cast<const float*>(buf);
    switch (x.dtype) {
      case DType::f32: launch_widen<float>(x.data, static_cast<float*>(buf), M, K, Kp, device, s); break;
      case DType::f16: launch_widen<f16_t>(x.data, static_cast<float*>(buf), M, K, Kp, device, s); break;
      default: launch_widen<bf16_t>(x.data, static_cast<float*>(buf), M, K, Kp, device, s); break;
    }
    return cuda_last_error("matmul_q: widening x to f32");
  };
  auto gemv = [&]() -> Status {
    const int bpu = quant_is_q4(w.dtype) ? 4 : 2;
    const int64_t units = qceil(L.nb, bpu);
    const int W = static_cast<int>(units < kMaxWarps ? units : kMaxWarps);
    switch (x.dtype) {
      case DType::f32: launch_fmt<float>(w.dtype, path, p, panels, W, device, s); break;
      case DType::f16: launch_fmt<f16_t>(w.dtype, path, p, panels, W, device, s); break;
      default: launch_fmt<bf16_t>(w.dtype, path, p, panels, W, device, s); break;
    }
    return cuda_last_error("matmul_q: GEMV kernel");
  };
  const Status prep = prepare();
  const Status st = prep.ok() ? gemv() : prep;
  cuda_free(device, buf);  // stream-ordered: after the kernels that read it
  return st;
}

}  // namespace lk
