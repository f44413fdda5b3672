// matmul on the CPU: y[M,N] = x[M,K] . w[N,K]^T, f32 accumulation. The driver (threads, blocking, buffers, errors)
// lives here and is shared by the scalar kernels below and the AVX2 kernels of simd/matmul_avx2.cc; see that file's
// header for the packing format, the blocking parameters and the measurements.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "../common/thread_pool.h"
#include "cpu.h"
#include "gemm.h"
#include "scratch.h"
#include "elementwise.h"  // ld<T>: the portable, branch-free element loads shared with the elementwise ops
#if defined(LLMK_HAVE_AVX2_TU)
#include "simd/matmul_avx2.h"  // simd/matmul_avx2.cc, called only when cpu_simd_level() says AVX2
#endif

namespace lk {

namespace {

// One SIMD level's kernels and its blocking. pack(): R rows x kc columns of a K-contiguous matrix into panels of R
// rows, element (r, k) of a panel at [k*R + r] (x with R = mr, w with R = nr). macro(): c[mc,nc] (+)= the packed
// block of x times the packed panel of w. gemv_pack_x(): x as f32 in the layout the level's gemv() reads, at most
// M * round_up(K, 8) floats. gemv(): rows [n0, n1) of y for M <= kGemvMaxM.
struct GemmKernels {
  int mr, nr;
  int64_t kc, mc, nc;
  void (*pack)(const void* src, DType t, int64_t ld, int64_t rows, int64_t kc, int32_t R, float* dst);
  void (*macro)(const float* ap, const float* bp, int64_t mc, int64_t nc, int64_t kc, float* c, int64_t ldc,
                bool accumulate);
  void (*gemv_pack_x)(const void* x, DType t, int64_t M, int64_t K, float* xp);
  void (*from_f32)(const float* src, int64_t n, void* dst, DType t);
  void (*gemv)(const float* x, int64_t M, const void* w, DType t, int64_t K, int64_t n0, int64_t n1, void* y,
               int64_t N);
};

// ---------------------------------------------------------------------------------------------------------------
// Scalar kernels: portable C++ for CPUs without AVX2 (and LLMK_SIMD=scalar). The same packed layout with a 4x8 tile
// written as fixed-size loops, which GCC turns into SSE2 code on baseline x86-64 (8 accumulator registers of 4 lanes).
// Measured (2 threads, this machine): 512^3 f32 / f16 / bf16 64 / 56 / 64 GFLOP/s; GEMV M = 1, N = K = 4096: 29 / 8 /
// 16 GB/s (the f16 one is bound by the conversion, the branch-free ld<f16> of elementwise.h: the dtype.h one made it 1 GB/s).
constexpr int kScalarMR = 4, kScalarNR = 8;
// Up to this many rows of x, matmul streams w once (GEMV-shaped) instead of packing it (GEMM): packing reads w,
// writes it and reads it again, which for few rows costs more than the FMAs. Measured at N = K = 4096, f32, 2
// threads: M = 5, 6, 8 went from 34, 41, 46 GFLOP/s (GEMM) to 85, 83, 79 (GEMV); the GEMM gives 70 at M = 12.
// Scalar: 14, 17, 22 -> 31, 33, 33.
constexpr int64_t kGemvMaxM = 8;

template <DType T>
void pack_scalar_t(const void* src, int64_t ld, int64_t rows, int64_t kc, int R, float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += R, dst += R * kc)
    for (int r = 0; r < R; ++r) {
      if (r0 + r < rows) {
        const int64_t base = (r0 + r) * ld;
        for (int64_t k = 0; k < kc; ++k) dst[k * R + r] = lk::ld<T>(src, base + k);
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * R + r] = 0.0f;
      }
    }
}

void pack_scalar(const void* src, DType t, int64_t ld, int64_t rows, int64_t kc, int32_t R, float* dst) {
  switch (t) {
    case DType::f16: pack_scalar_t<DType::f16>(src, ld, rows, kc, R, dst); return;
    case DType::bf16: pack_scalar_t<DType::bf16>(src, ld, rows, kc, R, dst); return;
    default: pack_scalar_t<DType::f32>(src, ld, rows, kc, R, dst); return;
  }
}

inline void kernel_scalar(int64_t kc, const float* a, const float* b, float acc[kScalarMR][kScalarNR]) {
  float s[kScalarMR][kScalarNR] = {};
  for (int64_t k = 0; k < kc; ++k, a += kScalarMR, b += kScalarNR)
    for (int r = 0; r < kScalarMR; ++r)
      for (int q = 0; q < kScalarNR; ++q) s[r][q] += a[r] * b[q];
  std::memcpy(acc, s, sizeof(s));
}

void macro_scalar(const float* ap, const float* bp, int64_t mc, int64_t nc, int64_t kc, float* c, int64_t ldc,
                  bool accumulate) {
  float acc[kScalarMR][kScalarNR];
  for (int64_t j = 0; j < nc; j += kScalarNR) {
    const int nr = static_cast<int>(std::min<int64_t>(kScalarNR, nc - j));
    for (int64_t i = 0; i < mc; i += kScalarMR) {
      const int mr = static_cast<int>(std::min<int64_t>(kScalarMR, mc - i));
      kernel_scalar(kc, ap + i * kc, bp + j * kc, acc);
      float* ct = c + i * ldc + j;
      for (int r = 0; r < mr; ++r)
        for (int q = 0; q < nr; ++q) ct[r * ldc + q] = accumulate ? ct[r * ldc + q] + acc[r][q] : acc[r][q];
    }
  }
}

void gemv_pack_x_scalar(const void* x, DType t, int64_t M, int64_t K, float* xp) {  // row-major, as it came
  for (int64_t i = 0; i < M * K; ++i) xp[i] = load_f32(x, t, i);
}

void from_f32_scalar(const float* src, int64_t n, void* dst, DType t) {
  for (int64_t i = 0; i < n; ++i) store_f32(dst, t, i, src[i]);
}

template <DType T>
void gemv_scalar_t(const float* x, int64_t M, const void* w, int64_t K, int64_t n0, int64_t n1, void* y, int64_t N) {
  // A row of w is converted to f32 in chunks by a loop the compiler vectorizes, then dotted with each row of x
  // using 8 independent partial sums (vectorizable without reassociating anything).
  constexpr int64_t kChunk = 512;
  float wbuf[kChunk];
  for (int64_t n = n0; n < n1; ++n) {
    float s[kGemvMaxM][8] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
      const int64_t len = std::min(kChunk, K - k0), len8 = len & ~int64_t(7);
      const float* wr;
      if constexpr (T == DType::f32) {
        wr = static_cast<const float*>(w) + n * K + k0;
      } else {
        const uint16_t* src = static_cast<const uint16_t*>(w) + n * K + k0;
        for (int64_t i = 0; i < len; ++i) wbuf[i] = lk::ld<T>(src, i);
        wr = wbuf;
      }
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = x + m * K + k0;
        float* sm = s[m];
        for (int64_t i = 0; i < len8; i += 8)
          for (int l = 0; l < 8; ++l) sm[l] += xr[i + l] * wr[i + l];
        for (int64_t i = len8; i < len; ++i) sm[i - len8] += xr[i] * wr[i];
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      const float* sm = s[m];
      store_f32(y, T, m * N + n, ((sm[0] + sm[1]) + (sm[2] + sm[3])) + ((sm[4] + sm[5]) + (sm[6] + sm[7])));
    }
  }
}

void gemv_scalar(const float* x, int64_t M, const void* w, DType t, int64_t K, int64_t n0, int64_t n1, void* y,
                 int64_t N) {
  switch (t) {
    case DType::f16: gemv_scalar_t<DType::f16>(x, M, w, K, n0, n1, y, N); return;
    case DType::bf16: gemv_scalar_t<DType::bf16>(x, M, w, K, n0, n1, y, N); return;
    default: gemv_scalar_t<DType::f32>(x, M, w, K, n0, n1, y, N); return;
  }
}

// KC 256: the 4x256 panel of x (4 KB) and 256x8 panel of w (8 KB) stay in L1 while MC/NC follow the AVX2 choice.
const GemmKernels kScalarKernels = {kScalarMR, kScalarNR, 256, 128, 2048,
                                    pack_scalar, macro_scalar, gemv_pack_x_scalar, from_f32_scalar, gemv_scalar};

#if defined(LLMK_HAVE_AVX2_TU)
// The blocking is explained (and was measured) in simd/matmul_avx2.cc.
const GemmKernels kAvx2Kernels = {6, 16, 256, 144, 2048,
                                  matmul_avx2_pack, matmul_avx2_macro, matmul_avx2_gemv_pack_x, matmul_avx2_from_f32,
                                  matmul_avx2_gemv};
#endif

// ---------------------------------------------------------------------------------------------------------------
// Per-thread packing buffers (cpu/scratch.h).
thread_local ScratchBuf tl_pack_x, tl_pack_w, tl_acc;

// Half-precision outputs accumulate in an f32 buffer between K slices: [ms rows, nc columns] of at most this many
// floats. Wide panels first (nc >= 256 when there are that many columns); then rows of the thread's tile are taken
// ms at a time, each pass packing w again (one conversion per element of w per ms >= 512 rows: noise).
constexpr int64_t kAccBudgetFloats = (4 << 20) / 4;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
// An even split of n into blocks of at most `max`, each a multiple of `align` (the last may be shorter).
inline int64_t even_block(int64_t n, int64_t max, int64_t align) {
  return round_up(ceil_div(n, ceil_div(n, max)), align);
}
// Part i of `parts` of [0, n), boundaries on multiples of `align`.
inline void split_range(int64_t n, int parts, int64_t align, int i, int64_t* b, int64_t* e) {
  const int64_t units = ceil_div(n, align), base = units / parts, extra = units % parts;
  const int64_t ub = i * base + std::min<int64_t>(i, extra), ue = ub + base + (i < extra ? 1 : 0);
  *b = std::min(n, ub * align);
  *e = std::min(n, ue * align);
}

struct GemmJob {
  const GemmKernels* ks;
  const char* x;  // [M, K]
  const char* w;  // [N, K]
  char* y;        // [M, N]
  DType t;
  int64_t es;  // element size in bytes
  int64_t M, N, K;
  int tm, tn;  // thread grid: tm parts of M times tn parts of N
  const WPacker* wp = nullptr;  // w packed by a callback (a quantized w) instead of ks.pack
  std::atomic<bool> oom{false};
};

// One thread's tile of y, computed like GotoBLAS: for each nc-wide panel of w and kc-deep slice of K, pack the w
// panel (L3-resident), then for each mc rows of x pack them (L2-resident) and run the macro-kernel over the two.
void gemm_tile(GemmJob& j, int t) {
  const GemmKernels& ks = *j.ks;
  int64_t m0, m1, n0, n1;
  split_range(j.M, j.tm, ks.mr, t / j.tn, &m0, &m1);
  split_range(j.N, j.tn, ks.nr, t % j.tn, &n0, &n1);
  if (m0 >= m1 || n0 >= n1) return;
  const int64_t Mt = m1 - m0, Nt = n1 - n0, K = j.K, N = j.N;
  const bool f32_out = j.t == DType::f32;
  int64_t nc_max = ks.nc, ms_max = Mt;
  if (!f32_out) {
    nc_max = std::min(nc_max, std::max<int64_t>(256, kAccBudgetFloats / Mt / ks.nr * ks.nr));
    ms_max = std::max<int64_t>(ks.mr, kAccBudgetFloats / std::min(nc_max, round_up(Nt, ks.nr)) / ks.mr * ks.mr);
  }
  const int64_t kc_blk = even_block(K, ks.kc, j.wp ? j.wp->k_align : 8);
  const int64_t nc_blk = even_block(Nt, nc_max, ks.nr);
  const int64_t ms_blk = even_block(Mt, ms_max, ks.mr);
  const int64_t mc_blk = even_block(std::min(Mt, ms_blk), ks.mc, ks.mr);
  // +16 floats: the 6-row packer of simd/matmul_avx2.cc stores 2 lanes past the end of a panel
  float* ap = tl_pack_x.get<float>(static_cast<size_t>(mc_blk * kc_blk + 16));
  float* bp = tl_pack_w.get<float>(static_cast<size_t>(nc_blk * kc_blk + 16));
  float* acc = f32_out ? nullptr : tl_acc.get<float>(static_cast<size_t>(std::min(Mt, ms_blk) * nc_blk));
  if (!ap || !bp || (!f32_out && !acc)) {
    j.oom.store(true);
    return;
  }
  for (int64_t ms0 = m0; ms0 < m1; ms0 += ms_blk) {
    const int64_t ms1 = std::min(m1, ms0 + ms_blk);
    for (int64_t jc = n0; jc < n1; jc += nc_blk) {
      const int64_t nc = std::min(nc_blk, n1 - jc);
      for (int64_t pc = 0; pc < K; pc += kc_blk) {
        const int64_t kc = std::min(kc_blk, K - pc);
        if (j.wp)
          j.wp->pack(j.wp->ctx, jc, nc, pc, kc, ks.nr, bp);
        else
          ks.pack(j.w + (jc * K + pc) * j.es, j.t, K, nc, kc, ks.nr, bp);
        for (int64_t ic = ms0; ic < ms1; ic += mc_blk) {
          const int64_t mc = std::min(mc_blk, ms1 - ic);
          ks.pack(j.x + (ic * K + pc) * j.es, j.t, K, mc, kc, ks.mr, ap);
          if (f32_out)
            ks.macro(ap, bp, mc, nc, kc, reinterpret_cast<float*>(j.y) + ic * N + jc, N, pc > 0);
          else
            ks.macro(ap, bp, mc, nc, kc, acc + (ic - ms0) * nc, nc, pc > 0);
        }
      }
      if (!f32_out)
        for (int64_t m = ms0; m < ms1; ++m) ks.from_f32(acc + (m - ms0) * nc, nc, j.y + (m * N + jc) * j.es, j.t);
    }
  }
}

// Below this many multiply-adds a second thread costs more (wake-up, a second packing of x, a worker spinning next
// to the JS thread) than it saves: 2^19 since a small model's decode step measured it (bench/NOTES.md "Models").
constexpr int64_t kSerialMacs = 1 << 19;

Status gemm(const GemmKernels& ks, const TensorView& x, const TensorView& w, const TensorView& y, int64_t M, int64_t N,
            int64_t K, const WPacker* wp = nullptr) {
  ThreadPool& pool = ThreadPool::global();
  int T = pool.threads();
  if (static_cast<double>(M) * N * K < kSerialMacs) T = 1;
  GemmJob j;
  j.ks = &ks;
  j.x = static_cast<const char*>(x.data);
  j.w = static_cast<const char*>(w.data);
  j.y = static_cast<char*>(y.data);
  j.t = x.dtype;
  j.es = static_cast<int64_t>(dtype_size(x.dtype));
  j.M = M;
  j.N = N;
  j.K = K;
  j.wp = wp;
  // The thread grid with the least padded work per thread; on a tie the one that splits N (each thread then
  // reads only its part of w, the larger operand in inference).
  j.tm = 1;
  j.tn = T;
  int64_t best = -1;
  for (int tm = 1; tm <= T; ++tm) {
    if (T % tm) continue;
    const int tn = T / tm;
    const int64_t mt = round_up(ceil_div(M, tm), ks.mr), nt = round_up(ceil_div(N, tn), ks.nr);
    const int64_t cost = mt * nt + (mt + nt) * ks.nr;
    if (best < 0 || cost < best) {
      best = cost;
      j.tm = tm;
      j.tn = tn;
    }
  }
  GemmJob* jp = &j;  // one pointer: the std::function keeps it inline, no allocation
  pool.parallel_for(T, [jp](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) gemm_tile(*jp, static_cast<int>(t));
  }, T);
  if (j.oom.load()) return Status(Code::oom, "matmul: could not allocate the packing buffers");
  return Status::OK();
}

struct GemvJob {
  const GemmKernels* ks;
  const float* x;
  const void* w;
  void* y;
  DType t;
  int64_t M, N, K;
};

constexpr int64_t kGemvRows = 12;  // rows of w per work unit: a multiple of every gemv kernel's row group

Status gemv(const GemmKernels& ks, const TensorView& x, const TensorView& w, const TensorView& y, int64_t M, int64_t N,
            int64_t K) {
  GemvJob j;
  j.ks = &ks;
  j.w = w.data;
  j.y = y.data;
  j.t = x.dtype;
  j.M = M;
  j.N = N;
  j.K = K;
  float* xp = tl_pack_x.get<float>(static_cast<size_t>(M * round_up(K, 8)));
  if (!xp) return Status(Code::oom, "matmul: could not allocate the f32 copy of x");
  ks.gemv_pack_x(x.data, x.dtype, M, K, xp);
  j.x = xp;
  ThreadPool& pool = ThreadPool::global();
  const int T = static_cast<double>(M) * N * K < kSerialMacs ? 1 : pool.threads();
  const GemvJob* jp = &j;
  pool.parallel_for(ceil_div(N, kGemvRows), [jp](int64_t b, int64_t e, int) {
    const GemvJob& g = *jp;
    g.ks->gemv(g.x, g.M, g.w, g.t, g.K, b * kGemvRows, std::min(g.N, e * kGemvRows), g.y, g.N);
  }, T);
  return Status::OK();
}

}  // namespace

Status matmul_gemm_packed_w(const TensorView& x, const WPacker& wp, const TensorView& y, int64_t M, int64_t N,
                            int64_t K) {
  const GemmKernels* ks = &kScalarKernels;
#if defined(LLMK_HAVE_AVX2_TU)
  if (cpu_simd_level() >= SimdLevel::avx2) ks = &kAvx2Kernels;
#endif
  TensorView none;
  return gemm(*ks, x, none, y, M, N, K, &wp);
}

int32_t matmul_gemm_nr() {
#if defined(LLMK_HAVE_AVX2_TU)
  if (cpu_simd_level() >= SimdLevel::avx2) return kAvx2Kernels.nr;
#endif
  return kScalarKernels.nr;
}

Status matmul_cpu(const OpArgs& a) {
  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  const int64_t K = x.cols(), N = w.shape[0], M = x.rows();
  if (M == 0 || N == 0) return Status::OK();
  if (K == 0) {  // an empty sum; all-zero bits are +0 in every float dtype
    std::memset(y.data, 0, static_cast<size_t>(M * N) * dtype_size(y.dtype));
    return Status::OK();
  }
  const GemmKernels* ks = &kScalarKernels;
#if defined(LLMK_HAVE_AVX2_TU)
  if (cpu_simd_level() >= SimdLevel::avx2) ks = &kAvx2Kernels;
#endif
  if (M <= kGemvMaxM) return gemv(*ks, x, w, y, M, N, K);
  return gemm(*ks, x, w, y, M, N, K);
}

}  // namespace lk
