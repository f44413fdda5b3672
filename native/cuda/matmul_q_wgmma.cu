// The Hopper (sm_90a) tensor-core path of matmul_q's int8 path for i8_pc weights (W8A8): y[M, N] = dx[m] * s[n] *
// sum_k qx[m, k] * q[n, k], by wgmma.mma_async m64nNk32 s8 (wgmma.cuh) with int32 accumulation. matmul_q_ref
// defines the math; the output is bit-exact with it (below). Opt-in while it has never run on a GPU:
// LLMK_WGMMA=1 in the environment (read once), and then only on a device of compute capability 9.0 whose kernel
// binary was built from sm_90a PTX; otherwise, and for every call it declines, matmul_q_mma.cu's mma.sync path
// (and after it matmul_q.cu's kernels) run as before.
//
// What it takes: path 0 (params.i[0] == 0), w i8_pc with a 16-byte aligned pointer, x f32/f16/bf16 [M, K] with
// M >= 64 (one warpgroup's 64 rows; smaller M leaves most of a 128-row tile idle and goes to mma.sync), and
// K <= 131072 (nb <= 4096 blocks: see exactness). Everything else declines, touching nothing. Shape errors are
// left to the mma.sync path, which reports them.
// Not taken: q8_0 and the q4 formats. Their per-block scales need each block's dot product separately: with wgmma
// that is an m64nNk32 with scale-d = 0 per block of 32 and then, per thread and block, N/2 int32 -> f32 conversions
// and FMAs (64 / 128 of each per 32 k) against the 64 clocks one m64n128k32 takes per SM sub-partition: I2F runs
// at 16 per clock per sub-partition, so the conversions alone would take twice as long as the tensor core.
// They stay on mma.sync, which already pays that per m16n8k32.
//
// Exactness: qx and q are int8 (|qx| <= 127 from the quantizer, |q| <= 128), so a row's integer sum over K <= 131072
// is at most 127 * 128 * 131072 = 2130706432 < 2^31: the int32 accumulator never wraps and equals the reference's
// int64 sum. (K > 131072 declines: the mma.sync path flushes int32 runs into int64 there; doing that here would
// need 128 more registers per thread.) Then y = float(double(dx[m]) * double(s[n]) * double(sum)), the reference's
// expression. Blocks past nb (the last k-step) and panels past ceil(N / 8) are zero-filled (cp.async src-size 0),
// rows of x past M likewise; K inside the last block is covered by zeros in both qx and the panel.
//
// Tiling: a block (256 threads = 2 warpgroups, one block per SM) computes a 128 x BN tile of y, BN = 256 when
// N > 128 else 128; warpgroup j the rows 64 j .. 64 j + 63 with one m64nBNk32 accumulator (BN / 2 int32 registers
// per thread). K in steps of BK = 128 (4 blocks of 32: 4 wgmmas per step), S stages in shared memory (S = 4 for
// BN 256: 4 x 48 KB = 192 KB; S = 6 for BN 128: 6 x 32 KB), dynamic shared memory. Tiles are rastered in groups of
// 8 row tiles (block id -> 8 row tiles x all column tiles, row tile fastest) so that one wave of 132 blocks reads
// ~8 row tiles of qx and ~16 column tiles of w instead of all of qx per column tile.
//
// Shared-memory layout of a stage: [A: 128 rows x 128 k][B: BN rows x 128 k], both K-major in the unswizzled
// canonical layout of wgmma.cuh: core matrices of 8 rows x 16 bytes (128 contiguous bytes), LBO = 128 (the next 16
// k of the same 8 rows), SBO = 8 * BK = 1024 (the next 8 rows), i.e. byte (r, kk) of an operand at
//   (r / 8) * 1024 + (kk / 16) * 128 + (r % 8) * 16 + kk % 16.
// The wgmma of k32 step ks (0..3) of warpgroup j reads A at + j * 8 * 1024 + ks * 256 and B at + ks * 256 with the
// same LBO / SBO; the instruction walks 8 (A) or BN / 8 (B) row groups by SBO and 2 k groups by LBO.
// Loads (cp.async; the pipeline is the same as with mma.sync, the copies of a stage are one commit group):
//   A (qx, row-major int8 [M, Kp], Kp = nb * 32): 16-byte copies, chunk c of the stage -> row (c / 64) * 8 + c % 8,
//     k 16 * ((c / 8) % 8): the 8 lanes of a quarter warp write the 8 rows of one core matrix (8 distinct 16-byte
//     bank groups of a 128-byte line: conflict-free), and a warp reads 64 contiguous bytes of each of 8 rows.
//   B (the panel form, common/quant.h / matmul_q.cuh): a panel's block of 32 k is 4-byte chunks, byte
//     (kk / 4) * 32 + r * 4 + kk % 4, so a 16-byte run of the panel holds 4 rows x 4 k, not the 16 k of one row a
//     core-matrix row needs (no permutation of k or n fixes that: a core-matrix row must be one n). So B is re-laid
//     on its way in by 4-byte cp.async: word i of a (panel q, block b) (rows r = i % 8, k 4 * (i / 8) .. + 3 of the
//     block) goes to row group q, k group 2 b + i / 32, row r, bytes 4 * ((i / 8) % 4) .. + 3. A warp copies 32
//     consecutive words (128 contiguous global bytes) into 32 distinct words of one core matrix: conflict-free.
//     (4-byte cp.async rather than 16-byte loads into registers and 32-bit shared stores: the same number of shared
//     writes, no registers, and the copies stay asynchronous.)
//
// Pipeline, iteration kt (each thread):
//   cp.async.wait_group S-3 (stage kt's copies are done) -> fence.proxy.async.shared::cta (cp.async writes are
//   generic-proxy writes; wgmma reads through the async proxy) -> __syncthreads (every thread's copies of stage kt
//   visible; and every thread has passed iteration kt-1's wgmma wait, so both warpgroups' wgmmas of step kt-2 are
//   done) -> issue the copies of step kt + S - 2 into slot (kt - 2) % S, commit -> wgmma.fence, 4 wgmmas on slot
//   kt % S, commit_group -> wgmma.wait_group 1 (this warpgroup's step kt-1 is done; step kt stays in flight).
//   So S - 2 steps of copies are in flight while the tensor cores work on step kt (and finish kt - 1); a slot is
//   rewritten only after both warpgroups waited for the wgmmas that read it (the barrier), which is why the copies
//   run S - 2 and not S - 1 steps ahead.
//
// Accumulator layout (wgmma.cuh, from the ISA): register i of thread (warp w of the warpgroup, lane 4 g + t) is row
// 16 w + g + 8 ((i / 2) % 2), column 8 (i / 4) + 2 t + (i % 2) of the warpgroup's 64 x BN tile; the epilogue stores
// each register straight to y (x's dtype), with s[n] from the panel header and dx[m].
//
// Predicted performance on an H200 (not measured), int8 8192^3 against torch._int_mm (cuBLASLt: wgmma fed by TMA,
// warp-specialised, 2-SM clusters with multicast; likely ~1,100-1,400 of the 1,979 dense int8 TOP/s):
//   - tensor cores: one 128 x 256 x 128 step is 8.4 MOP, 1,024 clocks at the SM's 8,192 int8 op/clock;
//   - L2 -> SM traffic: 48 KB per step, 384 bytes per 65,536 ops (170 op/byte): at the full rate ~11.6 TB/s over
//     132 SMs, more than L2 delivers (~6-8 TB/s measured on H100-class parts): this caps v1 near 1,000-1,300 TOP/s;
//     cuBLAS halves one operand's L2 reads with multicast;
//   - issue: per step a thread issues 4 16-byte and 32 4-byte cp.async plus their addresses (~150 instructions; 2
//     warps per sub-partition: ~300 of 1,024 issue slots), and one block-wide barrier per step stalls both
//     warpgroups on the slower one; with one block per SM nothing else hides that.
//   Expect ~0.5-0.7x torch._int_mm (about 1.5x the mma.sync path's 0.3-0.5x): short of the 0.9x goal. Next: a
//   producer warp(group) with setmaxnreg doing the re-layout while two consumer warpgroups only issue wgmmas
//   (mbarrier handshakes instead of __syncthreads), 2 blocks per cluster sharing A, and a 128B-swizzled layout.
//
// Resources (ptxas -v, nvcc 13.0): sm_90a BN 256 / S 4: 218 registers, BN 128 / S 6: 164 registers, 0-byte stack
// frames, no spills, 196,608 / 196,608 bytes of dynamic shared memory (4 x 48 KB, 6 x 32 KB) -> one block per SM;
// no "wgmma serialized" warning from ptxas. sm_80 compiles the empty fallback (4 registers). The PTX holds the
// m64n128k32 / m64n256k32 s8 wgmma.mma_async instructions; the GMMA count in the SASS is not checked here (no
// cuobjdump on this machine): bench/gpu-check.sh prints it on a GPU host.
//
// Versions: v1 (this). Not yet run on a GPU (checked only under the CPU emulation: native/cuda/emu/run.sh --mma,
// which runs the wgmma wrappers' self-test and this kernel, force-enabled, on matmul_q's int8 i8_pc cases).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "cuda_backend.h"
#include "elementwise.cuh"
#include "matmul_q.cuh"
#include "mma.cuh"
#include "wgmma.cuh"
#include "../common/quant.h"

namespace lk {

namespace {

constexpr int kWgBM = 128;      // rows of y per block: 2 warpgroups x 64
constexpr int kWgBK = 128;      // k per stage: 4 blocks of 32, 4 wgmma k32 steps
constexpr int kWgThreads = 256;
[[maybe_unused]] constexpr int kWgGroupM = 8;    // row tiles per raster group
[[maybe_unused]] constexpr uint32_t kLbo = 128;  // next 16 k of the same 8 rows
[[maybe_unused]] constexpr uint32_t kSbo = 8 * kWgBK;  // next 8 rows: 8 core matrices of 128 bytes along K

struct WgArgs {
  const int8_t* qx;  // [M, lda] int8, lda = Kp
  const float* dx;   // [M]
  const uint8_t* w;  // i8_pc panel form
  void* y;           // [M, N], dtype yt
  int yt;            // 0 f32, 1 f16, 2 bf16
  int64_t M, N, lda, nb, panel_bytes;
  int64_t ntm, ntn;  // row and column tiles
};

template <int BN, int S>
constexpr int wg_smem_bytes() {
  return S * (kWgBM + BN) * kWgBK;
}

[[maybe_unused]] __device__ __forceinline__ void wg_store(const WgArgs& p, int64_t i, float v) {
  if (p.yt == 0)
    static_cast<float*>(p.y)[i] = v;
  else if (p.yt == 1)
    static_cast<f16_t*>(p.y)[i] = from_f32<f16_t>(v);
  else
    static_cast<bf16_t*>(p.y)[i] = from_f32<bf16_t>(v);
}

// 1 in the code compiled for sm_90a (where wgmma.cuh's asm is real), 0 in any other pass (sm_80, or a plain sm_90
// / compute_90 build, whose kernel has empty wgmma bodies and would leave y unwritten): the host reads the value the
// device's loaded module holds before it enables the path.
__device__ int g_wgmma_compiled = LK_WGMMA_ARCH;

// Grid: ntm * ntn blocks (raster in groups of kWgGroupM row tiles); block: 256 threads = 2 warpgroups; dynamic
// shared memory wg_smem_bytes<BN, S>(). Layouts and pipeline: the header.
template <int BN, int S>
__global__ void __launch_bounds__(kWgThreads, 1) wgmma_i8_kernel(WgArgs p) {
  static_assert(BN == 128 || BN == 256, "m64n128k32 or m64n256k32");
  static_assert(S >= 3, "the copies run S - 2 steps ahead");
#if LK_WGMMA_ARCH || defined(LK_CUDA_EMU)
  constexpr int kA = kWgBM * kWgBK, kB = BN * kWgBK, kStage = kA + kB;
  LK_WGMMA_SHARED(smem, S * kStage);

  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t id = blockIdx.x, per_group = kWgGroupM * p.ntn;
  const int64_t first = id / per_group * kWgGroupM;
  const int64_t gm = p.ntm - first < kWgGroupM ? p.ntm - first : kWgGroupM;
  const int64_t tm = first + (id % per_group) % gm, tn = (id % per_group) / gm;
  const int64_t m0 = tm * kWgBM, n0 = tn * BN, panel0 = n0 / 8, np = (p.N + 7) / 8;
  const int64_t nkt = (p.nb + 3) / 4;

  // The copies of k-step kt into slot `slot` (layouts: header).
  auto load = [&](int slot, int64_t kt) {
    uint8_t* a = smem + slot * kStage;
    uint8_t* b = a + kA;
    #pragma unroll
    for (int j = 0; j < kA / 16 / kWgThreads; ++j) {
      const int c = tid + kWgThreads * j;
      const int r8 = c % 8, kc = (c / 8) % 8, rg = c / 64;
      const int64_t m = m0 + rg * 8 + r8, k = kt * kWgBK + kc * 16;
      const bool ok = m < p.M && k < p.lda;
      mma::cp_async<16>(a + rg * kSbo + kc * kLbo + r8 * 16, ok ? p.qx + m * p.lda + k : p.qx, ok ? 16 : 0);
    }
    #pragma unroll 8
    for (int j = 0; j < kB / 4 / kWgThreads; ++j) {
      const int i = tid + kWgThreads * j;
      const int wi = i % 64, r = wi % 8, c = wi / 8, blk = (i / 64) % 4, q = i / 256;
      const int64_t P = panel0 + q, bb = kt * 4 + blk;
      const bool ok = P < np && bb < p.nb;
      const uint8_t* src = ok ? p.w + P * p.panel_bytes + 32 + bb * 256 + wi * 4 : p.w;
      mma::cp_async<4>(b + q * kSbo + (blk * 2 + c / 4) * kLbo + r * 16 + (c % 4) * 4, src, ok ? 4 : 0);
    }
  };

  int32_t acc[BN / 2];
  #pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0;

  #pragma unroll
  for (int s = 0; s < S - 2; ++s) {
    if (s < nkt) load(s, s);
    mma::cp_async_commit();  // possibly empty: one group per step keeps the wait count right
  }
  for (int64_t kt = 0; kt < nkt; ++kt) {
    mma::cp_async_wait<S - 3>();
    wgmma::fence_proxy_async();
    __syncthreads();
    if (kt + S - 2 < nkt) load(static_cast<int>((kt + S - 2) % S), kt + S - 2);
    mma::cp_async_commit();
    const uint8_t* a = smem + (kt % S) * kStage + wg * 8 * kSbo;  // this warpgroup's 64 rows
    const uint8_t* b = smem + (kt % S) * kStage + kA;
    wgmma::fence();
    #pragma unroll
    for (int ks = 0; ks < kWgBK / 32; ++ks)
      wgmma::mma_s8<BN>(acc, wgmma::smem_desc(a + ks * 2 * kLbo, kLbo, kSbo),
                        wgmma::smem_desc(b + ks * 2 * kLbo, kLbo, kSbo), true);
    wgmma::commit_group();
    wgmma::wait_group<1>();
    wgmma::fence_operands<BN>(acc);
  }
  wgmma::wait_group<0>();
  wgmma::fence_operands<BN>(acc);

  #pragma unroll
  for (int i = 0; i < BN / 2; ++i) {
    const int64_t m = m0 + 64 * wg + 16 * warp + g + 8 * ((i / 2) % 2);
    const int64_t n = n0 + 8 * (i / 4) + 2 * t + (i % 2);
    if (m >= p.M || n >= p.N) continue;
    const float sw = __ldg(reinterpret_cast<const float*>(p.w + (n / 8) * p.panel_bytes) + n % 8);
    wg_store(p, m * p.N + n,
             static_cast<float>(static_cast<double>(p.dx[m]) * static_cast<double>(sw) * static_cast<double>(acc[i])));
  }
#else
  // Any pass but sm_90a (and the host pass): no wgmma here. Never launched (wgmma_usable); no trap either.
  (void)p;
#endif
}

template <int BN, int S>
Status launch_wgmma(const WgArgs& p0, cudaStream_t stream) {
  WgArgs p = p0;
  p.ntm = (p.M + kWgBM - 1) / kWgBM;
  p.ntn = (p.N + BN - 1) / BN;
  if (p.ntm > 0x7fffffff / p.ntn)
    return Status(Code::range, "matmul_q: " + std::to_string(p.ntm) + " x " + std::to_string(p.ntn) +
                                   " tiles of the wgmma path exceed the CUDA grid (2^31 - 1 blocks)");
  constexpr int smem = wg_smem_bytes<BN, S>();
#if !defined(LK_CUDA_EMU)
  LK_CUDA_CHECK(cudaFuncSetAttribute(wgmma_i8_kernel<BN, S>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
                "matmul_q (wgmma): raising the kernel's dynamic shared memory to " + std::to_string(smem) + " bytes");
#endif
  wgmma_i8_kernel<BN, S><<<static_cast<unsigned>(p.ntm * p.ntn), kWgThreads, smem, stream>>>(p);
  return cuda_last_error("matmul_q (wgmma)");
}

// LLMK_WGMMA=1 (exactly), read once.
bool wgmma_opted_in() {
  static const bool on = [] {
    const char* e = std::getenv("LLMK_WGMMA");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  return on;
}

// The device is compute capability 9.0 and the code it runs was compiled for sm_90a (g_wgmma_compiled; a
// compute_80 PTX JIT-compiled for the device, or an sm_90 build without the "a", has the empty fallback). Cached
// per device.
bool wgmma_usable(int device) {
#if defined(LK_CUDA_EMU)
  (void)device;
  return false;
#else
  constexpr int kMaxDev = 64;
  static std::atomic<int> cache[kMaxDev];  // 0 unknown, 1 yes, 2 no
  if (device < 0 || device >= kMaxDev) return false;
  const int c = cache[device].load(std::memory_order_relaxed);
  if (c) return c == 1;
  const int cc = cuda_cc(device);
  cudaFuncAttributes fa{};
  bool ok = cc == 90;
  int compiled = 0;
  if (ok) {
    ok = cudaFuncGetAttributes(&fa, wgmma_i8_kernel<256, 4>) == cudaSuccess && fa.binaryVersion == 90 &&
         cudaMemcpyFromSymbol(&compiled, g_wgmma_compiled, sizeof(int)) == cudaSuccess && compiled == 1;
    (void)cudaGetLastError();
  }
  // Only reached with LLMK_WGMMA=1: say once per device whether it took effect (the first GPU runs must know which
  // kernel they measured; gpu-check.sh shows this line).
  std::fprintf(stderr, "llm-kernels: LLMK_WGMMA=1: matmul_q's wgmma path is %s on cuda:%d (compute capability %d.%d, "
               "kernel binary sm_%d from PTX %d, sm_90a code %s)\n", ok ? "ON" : "OFF (needs 9.0 and an sm_90a build)",
               device, cc / 10, cc % 10, fa.binaryVersion, fa.ptxVersion, compiled ? "yes" : "no");
  cache[device].store(ok ? 1 : 2, std::memory_order_relaxed);
  return ok;
#endif
}

}  // namespace

bool matmul_q_wgmma_enabled(int device) { return wgmma_opted_in() && wgmma_usable(device); }

bool matmul_q_wgmma_cuda(const OpArgs& a, int device, Status* st, bool force) {
  if (a.n_in < 2 || a.n_out < 1 || a.params.i[0] != 0) return false;
  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  if (w.dtype != DType::i8_pc || w.ndim != 2) return false;
  if (x.dtype != DType::f32 && x.dtype != DType::f16 && x.dtype != DType::bf16) return false;
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  if (M < 64 || K <= 0 || N <= 0 || w.shape[1] != K || y.dtype != x.dtype || y.rows() != M || y.cols() != N)
    return false;  // small M, or a shape error the mma.sync path reports
  if (!aligned_to(w.data, 16)) return false;
  const QuantLayout L = quant_layout(w.dtype, K);
  if (L.nb > 4096) return false;  // K > 131072: an int32 row sum could wrap (header)
  if (!force && !matmul_q_wgmma_enabled(device)) return false;

  const cudaStream_t stream = stream_of(a);
  const int64_t Kp = L.nb * kQBlock;
  const size_t qbytes = static_cast<size_t>(M) * static_cast<size_t>(Kp);
  const size_t qpad = (qbytes + 255) / 256 * 256;  // dx after qx, 256-byte aligned
  void* scratch = nullptr;
  Status sa = cuda_malloc(device, qpad + static_cast<size_t>(M) * sizeof(float), &scratch);
  if (!sa.ok()) {
    (void)(*st = std::move(sa));
    return true;
  }
  int8_t* qx = static_cast<int8_t*>(scratch);
  float* dx = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + qpad);
  WgArgs p{};
  p.qx = qx;
  p.dx = dx;
  p.w = static_cast<const uint8_t*>(w.data);
  p.y = y.data;
  p.yt = x.dtype == DType::f32 ? 0 : (x.dtype == DType::f16 ? 1 : 2);
  p.M = M;
  p.N = N;
  p.lda = Kp;
  p.nb = L.nb;
  p.panel_bytes = L.panel_bytes;
  Status sq = quantize_act_cuda(x.data, x.dtype, M, K, true, qx, dx, stream);
  Status s = !sq.ok() ? std::move(sq) : (N > 128 ? launch_wgmma<256, 4>(p, stream) : launch_wgmma<128, 6>(p, stream));
  cuda_free(device, scratch);  // stream-ordered: after the kernel
  (void)(*st = std::move(s));
  return true;
}

}  // namespace lk
