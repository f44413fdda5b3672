// The tensor-core path of matmul_q (matmul_q.cuh), for M > 8: y[M, N] = x[M, K] * w[N, K]^T with w quantized in the
// panel form of common/quant.h, by mma.sync (mma.cuh). matmul_q_cpu / matmul_q_ref define the math; this computes
// the same integers and products and differs only in the order of the f32 summation.
//
// Two paths (params.i[0]), one kernel template:
//   path 1 (dequantize, W4A16 / W8A16), x f16 or bf16: mma.m16n8k16 with f32 accumulation. The weight enters the
//     mma as the exact small integers q - z (in [-128, 127]: exact in f16 and in bf16) and the activations as they
//     are, so every product x * (q - z) is exact in f32 (11 x 8 or 8 x 8 significant bits). Per block of 32 and per
//     output, a zeroed partial p = sum_{k in block} x * (q - z) (two k16 mmas) is folded in as acc += s * p, where s
//     is the block's scale (q8_0, q4_0) or its group's (q4_gG). i8_pc has one scale per row: the mma accumulates
//     straight into acc over all of K and y = s * acc at the end. f32 x declines (no f32 mma; the fallback runs).
//   path 0 (int8, W8A8 / W4A8), x f32, f16 or bf16: quantize_act_cuda writes qx [M, Kp] int8 and dx into scratch
//     (cuda_malloc, freed stream-ordered after the launch), then mma.m16n8k32 s8 with s32 accumulation: one mma is
//     exactly one block of 32 of K, so its int32 result is the reference's block dot product, bit for bit (|sum| <=
//     32 * 127 * 128). Block formats: acc += (dx[m, b] * dw[n, b]) * float(dot) in f32. i8_pc: dot products in
//     int32 over runs of at most 4096 blocks (131072 k: |sum| <= 127 * 128 * 131072 < 2^31) flushed into int64, so
//     the row's integer sum equals the reference's int64 sum for any K; then y = float(double(dx[m]) * s[n] *
//     double(sum)), the reference's expression, so that output is bit-exact.
//
// Tiling: a block computes a BM x BN tile of y with WM x WN warps (each a (BM / WM) x (BN / WN) warp tile of
// MT x NT mma tiles of 16 x 8), K in steps of BK = 64 (two blocks of 32) through a two-stage cp.async pipeline in
// shared memory (the next step's copies are in flight while the current one is multiplied):
//   BM 64, BN 128, 2 x 4 warps (warp tile 32 x 32), 256 threads  for M > 16 (path 1) and for path 0
//   BM 16, BN  64, 1 x 4 warps (warp tile 16 x 16), 128 threads  for path 1 with M <= 16 (decode-like batches)
// Shared memory per stage:
//   W: for each of the BN / 8 panels and each of the 2 blocks a slot of 32 + Qb bytes (Qb = 256 for q8_0 / i8_pc,
//      128 for the q4 formats): bytes 0..31 hold the block's scales (q8_0 / q4_0: the 16 bytes of d[8] at 16;
//      q4_gG: the 24-byte group header, s[8] at 8 and z[8] at 24), bytes 32.. the quants exactly as in the panel.
//      The panel bytes are copied verbatim: the panel is already in fragment order (matmul_q.cuh), so lane
//      (g, t) finds its B fragment at quants + 32t + 4g (qs[t][g]; + 128 for the second 16 k of q8), one 32-bit word
//      per lane, 32 distinct words of 128 consecutive bytes per warp: conflict-free.
//   A (path 1): BM rows x 64 halves, row stride 160 bytes (128 + 32 of padding); (path 0): BM rows x 64 bytes, row
//      stride 80 bytes. See the fragment notes below for why these strides are conflict-free.
//
// Fragment mapping (layouts as in mma.cuh, g = lane / 4, t = lane % 4):
//   path 0, s8 m16n8k32: B of block b for n8 tile j is the panel's qs[t][g] (b0: k = 4t..4t+3 of row g) and
//     qs[t + 4][g] (b1: k = 16 + 4t..), i.e. the weight's bytes as they are (q8_0, i8_pc); q4 formats hold
//     k = 4t + i in the low nibble and k = 16 + 4t + i in the high nibble of the same byte, which gives b0 and b1
//     after subtracting z per byte (below). A comes from ldmatrix.x4 over the row-major int8 tile: matrix 0 = rows
//     0..7 bytes 0..15, 1 = rows 8..15 bytes 0..15, 2 = rows 0..7 bytes 16..31, 3 = rows 8..15 bytes 16..31, so
//     register j of lane (g, t) = bytes 4t..4t+3 of the row = exactly a0..a3. Row stride 80: the 8 rows of one
//     8x16-byte matrix fall in 8 distinct 16-byte bank groups (80 * r mod 128 = 0, 80, 32, 112, 64, 16, 96, 48).
//   path 1, f16/bf16 m16n8k16: a lane's weight word holds k = 4t..4t+3 (and 16 + 4t..), but m16n8k16's B wants
//     k = 2t, 2t+1 (b0) and 2t+8, 2t+9 (b1). Any permutation of k applied to both A and B leaves the product
//     unchanged, so each block's two k16 mmas use the "logical" k' of the mma <-> actual k of the block:
//       mma h (h = 0, 1) covers actual k 16h .. 16h+15; lane t's logical {2t, 2t+1, 2t+8, 2t+9} <-> actual
//       16h + {4t, 4t+1, 4t+2, 4t+3}
//     so b0 = (v[4t], v[4t+1]), b1 = (v[4t+2], v[4t+3]) of the lane's own word, and A must follow: a0 = x[g][4t,
//     4t+1], a2 = x[g][4t+2, 4t+3], a1 / a3 the same for row g + 8: one 8-byte shared load per row (ldmatrix
//     cannot produce this pairing; LDS.64 does). Row stride 160: a half-warp (rows g = 0..3, t = 0..3) reads
//     8 bytes at 160 g + 8 t + const, i.e. 32 g + 8 t mod 128: 16 distinct 8-byte bank pairs, conflict-free.
//   C (both): c[i] is row g + 8 (i >= 2), column 2t + (i & 1): the per-column scale of a lane is that of panel
//     rows 2t and 2t + 1 (read from the slot), the per-row dx that of tile rows g and g + 8.
//   q4 (q - z) in s8 without unpacking: a byte lane u = q in 0..15, z in 0..16; (u | 0x80) - z is 128 + q - z in
//     [112, 143] (no borrow across bytes), and xor 0x80 gives q - z in two's complement.
//
// Edges: rows of x past M and blocks past ceil(K / 32) are zero-filled by cp.async's src-size (the compute skips
// blocks past the end); K inside the last block is covered by the panel form's zero values (q = z) and by x's
// zeros past K (path 1 zero-fills x past K, path 0's quantizer writes q = 0 there); panels past ceil(N / 8) are
// zero-filled; outputs with m >= M or n >= N are not stored. y has x's dtype (stores round once from f32).
// Alignment: cp.async needs 16-byte (q8_0, q4_0, i8_pc) or 8-byte (q4_gG, whose 24-byte headers leave blocks
// 8-aligned) aligned weight bytes; a weight pointer with less declines. x is copied with 16-byte cp.async when its
// pointer is 16-byte aligned and K % 8 == 0, else by plain loads into shared memory (kAVec = false).
//
// Error policy: nothing aborts. Declines (returns false, touching nothing) for M <= 8, N or K of 0, f32 x on path 1,
// other dtypes, a misaligned weight pointer. Shape mismatches and a grid past 2^31 - 1 blocks return a Status.
// Scratch allocation failures return cuda_malloc's Status (oom), nothing launched.
//
// Split-K (path 1 with M <= 16): when the tiles alone give fewer than ~2 blocks per SM (N = 4096 makes only 64
// tiles of 64 rows), K is cut into up to 16 splits of >= 2 k-steps; each split adds its f32 tile into a zeroed f32
// scratch [M, N] with atomicAdd and a last kernel rounds it into y. The f32 sum order then depends on the atomics'
// order (the result can differ in the last bits from run to run); path 0 never splits.
//
// Predicted performance on an H200 (not measured; 4.8 TB/s, ~990 dense f16 TFLOP/s, ~1980 int8 TOP/s):
//   W4A16, M <= 16: memory-bound; the weight is 4.5 bits per value (scales included) against torch f16's 16, so the
//     ceiling is ~3.5x. This version streams it through 2 stages of only ~2.3 KB per 128-thread block (~2 blocks
//     per SM by split-K): too few bytes in flight per SM to reach full bandwidth; expect ~1.5-2.5x torch f16. To
//     reach 3.5x: 3-4 stages and BK = 128 (more bytes in flight), and the f16 magic-number decode (0x6400 | (v + 128),
//     one HSUB2 per pair) instead of 8 I2F + 4 cvt.rn.f16x2 per lane and block.
//   int8 8192^3 (path 0, i8_pc): 64 x 128 tiles, 2 stages, ldmatrix A, 32-bit B words. On sm_90 mma.sync reaches
//     only about half of the wgmma rate, and cuBLASLt (torch._int_mm) uses wgmma with TMA and 128 x 256 tiles:
//     expect ~0.3-0.5x torch._int_mm, short of 0.9x. Block formats also pay 4 FMA per mma for the block scales.
//   wgmma (sm_90a): matmul_q_wgmma.cu (i8_pc on the int8 path, opt-in by LLMK_WGMMA=1 until it has run on a GPU)
//   is offered the call first; this kernel remains the path for every other format, small M, and K > 131072.
//
// Resources (ptxas -v, sm_80 / sm_90a, no spills, 0-byte stack frames): BM 64 tiles 117-131 registers (path 0
// i8_pc: 166-169, its int64 run accumulators), 20-38 KB static shared memory (38912 for q8_0 / i8_pc on path 1);
// BM 16 tiles 70-92 registers, 10-14 KB; the split-K zero / rounding kernels 12-22 registers.
//
// Versions: v1 (this): mma.sync m16n8k16 / m16n8k32, 2-stage cp.async; not yet run on a GPU (checked only under
// the CPU emulation: native/cuda/emu/run.sh --mma).
#include <type_traits>

#include "common.cuh"
#include "cuda_backend.h"
#include "elementwise.cuh"
#include "matmul_q.cuh"
#include "mma.cuh"
#include "../common/quant.h"

namespace lk {

namespace {

constexpr int kBK = 64;  // k per pipeline stage: two blocks of 32
enum Fmt { kQ8 = 0, kQ4 = 1, kQ4G = 2, kI8 = 3 };

template <int F> struct FmtTraits;
// Qb: quant bytes per (panel, block); hdr: bytes of scale header copied per slot; soff: offset of s[8] / d[8] in the
// slot; vw: the cp.async width the format's alignment allows.
template <> struct FmtTraits<kQ8> { static constexpr int Qb = 256, hdr = 16, soff = 16, vw = 16; };
template <> struct FmtTraits<kQ4> { static constexpr int Qb = 128, hdr = 16, soff = 16, vw = 16; };
template <> struct FmtTraits<kQ4G> { static constexpr int Qb = 128, hdr = 24, soff = 8, vw = 8; };
template <> struct FmtTraits<kI8> { static constexpr int Qb = 256, hdr = 0, vw = 16; };  // no per-block scales

struct QmmArgs {
  const void* x;      // path 1: x [M, K] f16/bf16; path 0: qx [M, lda] int8
  const float* dx;    // path 0: [M, nb] (block formats) or [M] (i8_pc)
  const uint8_t* w;   // panel form
  void* y;            // [M, N], dtype yt
  int yt;             // 0 f32, 1 f16, 2 bf16
  int64_t M, N, K, lda;
  int64_t nb, bpg, G, panel_bytes;
  int64_t ntm, ntn;   // tiles along M and N (block index = split * ntm * ntn + tn * ntm + tm)
  int64_t kt_per;     // k-steps per split (split-K); the whole K when not split
  float* acc32;       // split-K: f32 [M, N] partial sums, added atomically (null: y stored directly)
};

__device__ __forceinline__ void store_y(const QmmArgs& p, int64_t i, float v) {
  if (p.yt == 0)
    static_cast<float*>(p.y)[i] = v;
  else if (p.yt == 1)
    static_cast<f16_t*>(p.y)[i] = from_f32<f16_t>(v);
  else
    static_cast<bf16_t*>(p.y)[i] = from_f32<bf16_t>(v);
}

// Two small integers (|v| <= 128) as a packed f16x2 / bf16x2 register, low half first. Exact: f32 holds them, and
// so do f16 (11 bits) and bf16 (8 bits, and 128 = 2^7); bf16 is then the top half of the f32 bits.
template <class TX>
__device__ __forceinline__ uint32_t pack2(int lo, int hi) {
  if constexpr (std::is_same<TX, bf16_t>::value) {
    return (__float_as_uint(static_cast<float>(lo)) >> 16) | (__float_as_uint(static_cast<float>(hi)) & 0xffff0000u);
  } else {
    const __half2 h = __floats2half2_rn(static_cast<float>(lo), static_cast<float>(hi));  // one cvt.rn.f16x2.f32
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
  }
}

__device__ __forceinline__ float f16_scale(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(p)));
}

// (q - z) per byte for 4 nibbles in the low 4 bits of each byte (see the header: no borrow, xor 0x80).
__device__ __forceinline__ uint32_t nib_minus_z(uint32_t u, uint32_t z) {
  return ((u | 0x80808080u) - z * 0x01010101u) ^ 0x80808080u;
}

// F: format; kPath: 0 int8, 1 dequantize; TX: f16_t / bf16_t (path 1; unused on path 0); tile shape; kAVec: x by
// 16-byte cp.async (path 1).
template <int F, int kPath, class TX, int BM, int BN, int WM, int WN, bool kAVec>
__global__ void __launch_bounds__(WM * WN * 32) qmm_kernel(QmmArgs p) {
  using Tr = FmtTraits<F>;
  constexpr int kThreads = WM * WN * 32;
  constexpr int kSlot = 32 + Tr::Qb;
  constexpr int kPanels = BN / 8;
  constexpr int kWStage = kPanels * 2 * kSlot;
  constexpr int kAStride = kPath == 1 ? 160 : 80;  // bytes per A row in shared memory
  constexpr int kAStage = BM * kAStride;
  constexpr int MT = BM / WM / 16, NT = BN / WN / 8;
  static_assert(MT >= 1 && NT >= 1 && BN % 8 == 0, "tile shape");
  __shared__ __align__(16) uint8_t ws[2][kWStage];
  __shared__ __align__(16) uint8_t as[2][kAStage];

  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t = lane % 4;
  const int wq = 32 * t + 4 * g;  // the lane's B word in a block's quants: qs[t][g] (k = 4t.., row g)
  const int wm = warp / WN, wn = warp % WN;
  const int64_t tiles = p.ntm * p.ntn, tile = static_cast<int64_t>(blockIdx.x) % tiles;
  const int64_t tm = tile % p.ntm, tn = tile / p.ntm;
  const int64_t m0 = tm * BM, n0 = tn * BN;
  const int64_t np = (p.N + 7) / 8, panel0 = n0 / 8;
  const int64_t kt0 = static_cast<int64_t>(blockIdx.x) / tiles * p.kt_per;
  const int64_t nkt = (p.nb + 1) / 2, kt1 = kt0 + p.kt_per < nkt ? kt0 + p.kt_per : nkt;  // host: kt0 < kt1

  // ---- stage loader: weight slots and the A tile of k-step kt into stage s ----
  auto load_stage = [&](int s, int64_t kt) {
    constexpr int kHdrChunks = Tr::hdr / Tr::vw, kQChunks = Tr::Qb / Tr::vw, kCh = kHdrChunks + kQChunks;
    for (int c = tid; c < kPanels * 2 * kCh; c += kThreads) {
      const int slot = c / kCh, ci = c % kCh;
      const int64_t P = panel0 + slot / 2, b = 2 * kt + slot % 2;
      const bool ok = P < np && b < p.nb;
      const uint8_t* panel = p.w + (ok ? P * p.panel_bytes : 0);
      int64_t qoff = 0;
      if constexpr (F == kQ8) qoff = b * 272 + 16;
      if constexpr (F == kQ4) qoff = b * 144 + 16;
      if constexpr (F == kI8) qoff = 32 + b * 256;
      if constexpr (F == kQ4G) qoff = (b / p.bpg + 1) * 24 + b * 128;
      uint8_t* dst = ws[s] + slot * kSlot;
      const uint8_t* src;
      if (ci < kHdrChunks) {  // the scales (and zeros): 32 - hdr .. 31 of the slot
        dst += 32 - Tr::hdr + ci * Tr::vw;
        src = F == kQ4G ? panel + (b / p.bpg) * (24 + p.bpg * 128) + ci * Tr::vw : panel + qoff - 16 + ci * Tr::vw;
      } else {
        dst += 32 + (ci - kHdrChunks) * Tr::vw;
        src = panel + qoff + (ci - kHdrChunks) * Tr::vw;
      }
      mma::cp_async<Tr::vw>(dst, ok ? src : p.w, ok ? Tr::vw : 0);
    }
    // Rows of A in 16-byte chunks of `per` elements each (chunks past M or kmax read nothing: zeros).
    auto rows_16b = [&](const auto* a, int per, int64_t kmax) {
      const int chunks = kBK / per;
      for (int c = tid; c < BM * chunks; c += kThreads) {
        const int r = c / chunks, cc = c % chunks;
        const int64_t m = m0 + r, k = kt * kBK + per * cc;
        const bool ok = m < p.M && k < kmax;
        mma::cp_async<16>(as[s] + r * kAStride + 16 * cc, ok ? a + m * p.lda + k : a, ok ? 16 : 0);
      }
    };
    if constexpr (kPath == 0) {  // qx rows: 64 bytes = 4 chunks; lda = Kp is a multiple of 32
      rows_16b(static_cast<const int8_t*>(p.x), 16, p.lda);
    } else if constexpr (kAVec) {  // x rows: 64 halves = 8 chunks of 16 bytes; K % 8 == 0
      rows_16b(static_cast<const TX*>(p.x), 8, p.K);
    } else {  // any K or alignment: element by element, zeros outside
      const uint16_t* x = static_cast<const uint16_t*>(p.x);
      for (int c = tid; c < BM * kBK; c += kThreads) {
        const int r = c / kBK, kk = c % kBK;
        const int64_t m = m0 + r, k = kt * kBK + kk;
        const uint16_t v = m < p.M && k < p.K ? x[m * p.lda + k] : static_cast<uint16_t>(0);
        memcpy(as[s] + r * kAStride + 2 * kk, &v, 2);
      }
    }
  };

  float acc[MT][NT][4];
  int32_t iacc[MT][NT][4];   // path 0 i8_pc: the current run of <= 4096 blocks
  long long wide[MT][NT][4]; // path 0 i8_pc: the flushed runs
  #pragma unroll
  for (int i = 0; i < MT; ++i)
    #pragma unroll
    for (int j = 0; j < NT; ++j)
      #pragma unroll
      for (int r = 0; r < 4; ++r) {
        acc[i][j][r] = 0.0f;
        iacc[i][j][r] = 0;
        wide[i][j][r] = 0;
      }
  int run = 0;

  load_stage(0, kt0);
  mma::cp_async_commit();
  for (int64_t kt = kt0; kt < kt1; ++kt) {
    const int s = static_cast<int>((kt - kt0) & 1);
    if (kt + 1 < kt1) load_stage(s ^ 1, kt + 1);
    mma::cp_async_commit();  // possibly empty: keeps "wait for all but the newest group" right on the last step
    mma::cp_async_wait<1>();
    __syncthreads();
    #pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t b = 2 * kt + j;
      if (b >= p.nb) break;  // the same for the whole block
      const uint8_t* slots = ws[s] + j * kSlot;  // slot of panel q: slots + 2 * q * kSlot
      const uint8_t* arow = as[s] + (wm * (BM / WM)) * kAStride;
      if constexpr (kPath == 1) {
        // A fragments of both k16 halves for every m16 tile (layout and pairing: header).
        uint32_t a[MT][2][4];
        #pragma unroll
        for (int i = 0; i < MT; ++i)
          #pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint8_t* r0 = arow + (i * 16 + g) * kAStride + 2 * (32 * j + 16 * h + 4 * t);
            const uint2 lo = *reinterpret_cast<const uint2*>(r0);
            const uint2 hi = *reinterpret_cast<const uint2*>(r0 + 8 * kAStride);
            a[i][h][0] = lo.x;
            a[i][h][1] = hi.x;
            a[i][h][2] = lo.y;
            a[i][h][3] = hi.y;
          }
        #pragma unroll
        for (int jn = 0; jn < NT; ++jn) {
          const uint8_t* slot = slots + 2 * ((wn * (BN / WN)) / 8 + jn) * kSlot;
          int v[8];  // q - z at actual k = 4t + i (i < 4) and 16 + 4t + (i - 4)
          if constexpr (F == kQ8 || F == kI8) {
            const uint32_t w0 = *reinterpret_cast<const uint32_t*>(slot + 32 + wq);
            const uint32_t w1 = *reinterpret_cast<const uint32_t*>(slot + 32 + 128 + wq);
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
              v[i] = static_cast<int8_t>(w0 >> (8 * i));
              v[4 + i] = static_cast<int8_t>(w1 >> (8 * i));
            }
          } else {
            const uint32_t u = *reinterpret_cast<const uint32_t*>(slot + 32 + wq);
            const int z = F == kQ4 ? 8 : slot[24 + g];
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
              v[i] = static_cast<int>((u >> (8 * i)) & 15u) - z;
              v[4 + i] = static_cast<int>((u >> (8 * i + 4)) & 15u) - z;
            }
          }
          uint32_t bf[2][2];
          #pragma unroll
          for (int h = 0; h < 2; ++h) {
            bf[h][0] = pack2<TX>(v[4 * h], v[4 * h + 1]);
            bf[h][1] = pack2<TX>(v[4 * h + 2], v[4 * h + 3]);
          }
          if constexpr (F == kI8) {
            #pragma unroll
            for (int i = 0; i < MT; ++i)
              #pragma unroll
              for (int h = 0; h < 2; ++h) {
                if constexpr (std::is_same<TX, bf16_t>::value)
                  mma::mma_bf16(acc[i][jn], a[i][h], bf[h]);
                else
                  mma::mma_f16(acc[i][jn], a[i][h], bf[h]);
              }
          } else {
            const float s0 = f16_scale(slot + Tr::soff + 4 * t), s1 = f16_scale(slot + Tr::soff + 4 * t + 2);
            #pragma unroll
            for (int i = 0; i < MT; ++i) {
              float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
              #pragma unroll
              for (int h = 0; h < 2; ++h) {
                if constexpr (std::is_same<TX, bf16_t>::value)
                  mma::mma_bf16(part, a[i][h], bf[h]);
                else
                  mma::mma_f16(part, a[i][h], bf[h]);
              }
              acc[i][jn][0] += s0 * part[0];
              acc[i][jn][1] += s1 * part[1];
              acc[i][jn][2] += s0 * part[2];
              acc[i][jn][3] += s1 * part[3];
            }
          }
        }
      } else {
        // A by ldmatrix.x4: lane l gives row (l % 8) + 8 * ((l / 8) & 1), bytes 16 * (l / 16) of the block.
        uint32_t a[MT][4];
        #pragma unroll
        for (int i = 0; i < MT; ++i)
          mma::ldmatrix_x4(a[i], arow + (i * 16 + lane % 8 + 8 * ((lane / 8) & 1)) * kAStride + 32 * j + 16 * (lane / 16));
        float dxr[MT][2];
        if constexpr (F != kI8) {
          #pragma unroll
          for (int i = 0; i < MT; ++i)
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int64_t m = m0 + wm * (BM / WM) + i * 16 + g + 8 * h;
              dxr[i][h] = m < p.M ? p.dx[m * p.nb + b] : 0.0f;
            }
        }
#pragma unroll
        for (int jn = 0; jn < NT; ++jn) {
          const uint8_t* slot = slots + 2 * ((wn * (BN / WN)) / 8 + jn) * kSlot;
          uint32_t bf[2];
          if constexpr (F == kQ8 || F == kI8) {
            bf[0] = *reinterpret_cast<const uint32_t*>(slot + 32 + wq);
            bf[1] = *reinterpret_cast<const uint32_t*>(slot + 32 + 128 + wq);
          } else {
            const uint32_t u = *reinterpret_cast<const uint32_t*>(slot + 32 + wq);
            const uint32_t z = F == kQ4 ? 8u : slot[24 + g];
            bf[0] = nib_minus_z(u & 0x0f0f0f0fu, z);
            bf[1] = nib_minus_z((u >> 4) & 0x0f0f0f0fu, z);
          }
          if constexpr (F == kI8) {
            #pragma unroll
            for (int i = 0; i < MT; ++i) mma::mma_s8(iacc[i][jn], a[i], bf);
          } else {
            const float s0 = f16_scale(slot + Tr::soff + 4 * t), s1 = f16_scale(slot + Tr::soff + 4 * t + 2);
            #pragma unroll
            for (int i = 0; i < MT; ++i) {
              int32_t dot[4] = {0, 0, 0, 0};
              mma::mma_s8(dot, a[i], bf);
              acc[i][jn][0] += (dxr[i][0] * s0) * static_cast<float>(dot[0]);
              acc[i][jn][1] += (dxr[i][0] * s1) * static_cast<float>(dot[1]);
              acc[i][jn][2] += (dxr[i][1] * s0) * static_cast<float>(dot[2]);
              acc[i][jn][3] += (dxr[i][1] * s1) * static_cast<float>(dot[3]);
            }
          }
        }
        if constexpr (F == kI8) {
          if (++run == 4096) {  // 4096 blocks = 131072 k: the most an int32 run can hold (header)
            run = 0;
            #pragma unroll
            for (int i = 0; i < MT; ++i)
              #pragma unroll
              for (int jn = 0; jn < NT; ++jn)
                #pragma unroll
                for (int r = 0; r < 4; ++r) {
                  wide[i][jn][r] += iacc[i][jn][r];
                  iacc[i][jn][r] = 0;
                }
          }
        }
      }
    }
    __syncthreads();  // every warp is done with stage s before the next iteration's loads overwrite it
  }

  // ---- epilogue: C fragment element r of tile (i, jn) is row g + 8 (r >= 2), column 2t + (r & 1) ----
  #pragma unroll
  for (int i = 0; i < MT; ++i)
    #pragma unroll
    for (int jn = 0; jn < NT; ++jn)
      #pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + wm * (BM / WM) + i * 16 + g + 8 * (r >> 1);
        const int64_t n = n0 + wn * (BN / WN) + jn * 8 + 2 * t + (r & 1);
        if (m >= p.M || n >= p.N) continue;
        float v = acc[i][jn][r];
        if constexpr (F == kI8) {
          const float sw = __ldg(reinterpret_cast<const float*>(p.w + (n / 8) * p.panel_bytes) + n % 8);
          if constexpr (kPath == 1) {
            v = sw * v;
          } else {
            const long long dot = wide[i][jn][r] + iacc[i][jn][r];
            v = static_cast<float>(static_cast<double>(p.dx[m]) * static_cast<double>(sw) * static_cast<double>(dot));
          }
        }
        if (p.acc32)
          atomicAdd(p.acc32 + m * p.N + n, v);  // every term is linear in acc: the splits just add
        else
          store_y(p, m * p.N + n, v);
      }
}

__global__ void zero_f32_kernel(float* __restrict__ a, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    a[i] = 0.0f;
}
__global__ void store_y_kernel(QmmArgs p, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_y(p, i, p.acc32[i]);
}

// Split-K (path 1, the BM 16 tiles only): when the tiles alone would leave SMs idle, K is cut into splits so that
// about two blocks per SM stream the weight; each split adds its f32 partial tile atomically into scratch, which a
// second kernel rounds into y. (Path 0 never splits: its i8_pc result is bit-exact only as one int64 sum.)
template <int F, int kPath, class TX, int BM, int BN, int WM, int WN, bool kAVec>
Status launch(const QmmArgs& p0, int device, cudaStream_t stream) {
  QmmArgs p = p0;
  p.ntm = (p.M + BM - 1) / BM;
  p.ntn = (p.N + BN - 1) / BN;
  const int64_t nkt = (p.nb + 1) / 2, tiles = p.ntm * p.ntn;
  if (p.ntm > 0x7fffffff / p.ntn)
    return Status(Code::range, "matmul_q: " + std::to_string(p.ntm) + " x " + std::to_string(p.ntn) +
                                   " tiles of the tensor-core path exceed the CUDA grid (2^31 - 1 blocks)");
  int64_t splits = 1;
  p.kt_per = nkt;
  p.acc32 = nullptr;
  if (kPath == 1 && BM == 16) {
    const int sms = cuda_sm_count(device) > 0 ? cuda_sm_count(device) : 132;
    const int64_t want = (2 * sms + tiles - 1) / tiles;  // splits for ~2 blocks per SM
    if (want > 1 && nkt >= 4) {
      p.kt_per = (nkt + (want < 16 ? want : 16) - 1) / (want < 16 ? want : 16);
      if (p.kt_per < 2) p.kt_per = 2;  // at least 128 k per split: the pipeline has something to overlap
      splits = (nkt + p.kt_per - 1) / p.kt_per;
    }
  }
  if (splits > 1 && tiles * splits > 0x7fffffff) splits = 1, p.kt_per = nkt;
  if (splits == 1) {
    qmm_kernel<F, kPath, TX, BM, BN, WM, WN, kAVec><<<static_cast<unsigned>(tiles), WM * WN * 32, 0, stream>>>(p);
    return cuda_last_error("matmul_q (tensor cores)");
  }
  const int64_t n = p.M * p.N;
  void* scratch = nullptr;
  LK_RETURN_IF_ERROR(cuda_malloc(device, static_cast<size_t>(n) * sizeof(float), &scratch));
  p.acc32 = static_cast<float*>(scratch);
  const unsigned eg = grid_for(n, 256, device);
  zero_f32_kernel<<<eg, 256, 0, stream>>>(p.acc32, n);
  qmm_kernel<F, kPath, TX, BM, BN, WM, WN, kAVec><<<static_cast<unsigned>(tiles * splits), WM * WN * 32, 0, stream>>>(p);
  store_y_kernel<<<eg, 256, 0, stream>>>(p, n);
  Status st = cuda_last_error("matmul_q (tensor cores, split-K)");
  cuda_free(device, scratch);
  return st;
}

template <int F>
Status dispatch(const QmmArgs& p, int path, DType xt, bool avec, int device, cudaStream_t stream) {
  if (path == 0) return launch<F, 0, f16_t, 64, 128, 2, 4, true>(p, device, stream);
  const bool small = p.M <= 16;
  if (xt == DType::f16) {
    if (small) return avec ? launch<F, 1, f16_t, 16, 64, 1, 4, true>(p, device, stream) : launch<F, 1, f16_t, 16, 64, 1, 4, false>(p, device, stream);
    return avec ? launch<F, 1, f16_t, 64, 128, 2, 4, true>(p, device, stream) : launch<F, 1, f16_t, 64, 128, 2, 4, false>(p, device, stream);
  }
  if (small) return avec ? launch<F, 1, bf16_t, 16, 64, 1, 4, true>(p, device, stream) : launch<F, 1, bf16_t, 16, 64, 1, 4, false>(p, device, stream);
  return avec ? launch<F, 1, bf16_t, 64, 128, 2, 4, true>(p, device, stream) : launch<F, 1, bf16_t, 64, 128, 2, 4, false>(p, device, stream);
}

}  // namespace

namespace {

// The body of matmul_q_mma_cuda: *taken = false when it declines (then the Status is meaningless).
Status run_mma(const OpArgs& a, int device, bool* taken) {
  *taken = false;
  if (a.n_in < 2 || a.n_out < 1) return Status::OK();
  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  const int path = a.params.i[0] == 0 ? 0 : 1;
  const int64_t M = x.rows(), K = x.cols();
  if (M <= 8 || K <= 0 || w.ndim != 2 || w.shape[0] <= 0) return Status::OK();
  if (x.dtype != DType::f32 && x.dtype != DType::f16 && x.dtype != DType::bf16) return Status::OK();
  if (path == 1 && x.dtype == DType::f32) return Status::OK();
  int fmt;
  switch (w.dtype) {
    case DType::q8_0: fmt = kQ8; break;
    case DType::q4_0: fmt = kQ4; break;
    case DType::q4_g32: case DType::q4_g64: case DType::q4_g128: fmt = kQ4G; break;
    case DType::i8_pc: fmt = kI8; break;
    default: return Status::OK();
  }
  if (!aligned_to(w.data, fmt == kQ4G ? 8 : 16)) return Status::OK();
  const int64_t N = w.shape[0];
  if (w.shape[1] != K || y.dtype != x.dtype || y.rows() != M || y.cols() != N) {
    *taken = true;
    return Status(Code::range, "matmul_q: expected w [N, " + std::to_string(K) + "] and y [" + std::to_string(M) +
                                  ", N] of x's dtype " + dtype_name(x.dtype) + "; got w [" +
                                  std::to_string(w.shape[0]) + ", " + std::to_string(w.shape[1]) + "], y [" +
                                  std::to_string(y.rows()) + ", " + std::to_string(y.cols()) + "] " +
                                  dtype_name(y.dtype));
  }
  *taken = true;
  const QuantLayout L = quant_layout(w.dtype, K);
  QmmArgs p{};
  p.w = static_cast<const uint8_t*>(w.data);
  p.y = y.data;
  p.yt = x.dtype == DType::f32 ? 0 : (x.dtype == DType::f16 ? 1 : 2);
  p.M = M;
  p.N = N;
  p.K = K;
  p.nb = L.nb;
  p.bpg = L.bpg;
  p.G = L.G;
  p.panel_bytes = L.panel_bytes;
  const cudaStream_t stream = stream_of(a);
  if (path == 1) {
    p.x = x.data;
    p.lda = K;
    const bool avec = K % 8 == 0 && aligned_to(x.data, 16);
    switch (fmt) {
      case kQ8: return dispatch<kQ8>(p, 1, x.dtype, avec, device, stream);
      case kQ4: return dispatch<kQ4>(p, 1, x.dtype, avec, device, stream);
      case kQ4G: return dispatch<kQ4G>(p, 1, x.dtype, avec, device, stream);
      default: return dispatch<kI8>(p, 1, x.dtype, avec, device, stream);
    }
  }
  // Path 0: int8 activations in scratch, freed stream-ordered once the GEMM is enqueued.
  const bool per_row = fmt == kI8;
  const int64_t Kp = L.nb * kQBlock;
  const size_t qbytes = static_cast<size_t>(M) * static_cast<size_t>(Kp);
  const size_t dbytes = static_cast<size_t>(M) * static_cast<size_t>(per_row ? 1 : L.nb) * sizeof(float);
  void* scratch = nullptr;
  const size_t qpad = (qbytes + 255) / 256 * 256;  // dx after qx, 256-byte aligned
  LK_RETURN_IF_ERROR(cuda_malloc(device, qpad + dbytes, &scratch));
  int8_t* qx = static_cast<int8_t*>(scratch);
  float* dx = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + qpad);
  p.x = qx;
  p.dx = dx;
  p.lda = Kp;
  auto gemm = [&]() -> Status {
    switch (fmt) {
      case kQ8: return dispatch<kQ8>(p, 0, x.dtype, true, device, stream);
      case kQ4: return dispatch<kQ4>(p, 0, x.dtype, true, device, stream);
      case kQ4G: return dispatch<kQ4G>(p, 0, x.dtype, true, device, stream);
      default: return dispatch<kI8>(p, 0, x.dtype, true, device, stream);
    }
  };
  Status sq = quantize_act_cuda(x.data, x.dtype, M, K, per_row, qx, dx, stream);
  Status s = sq.ok() ? gemm() : std::move(sq);
  cuda_free(device, scratch);
  return s;
}

}  // namespace

bool matmul_q_mma_cuda(const OpArgs& a, int device, Status* st) {
  bool taken = false;
  Status s = run_mma(a, device, &taken);
  if (taken) (void)(*st = std::move(s));
  return taken;
}

}  // namespace lk
