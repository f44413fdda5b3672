// matmul_q on the CPU: y[M,N] = x[M,K] . w[N,K]^T with w quantized (common/quant.h), by the integer path (x
// quantized per block of 32, integer dots; the default) or the dequantize path (f32 FMA). The driver (threads,
// buffers, x conversion, y rounding) lives here with the portable scalar kernels; simd/matmul_q_avx2.cc has the
// AVX2 kernels and the layout/arithmetic notes, simd/matmul_q_avx512.cc the VNNI integer tiles; the dequantize
// path with more than 4 rows of x runs on matmul's f32 GEMM driver (cpu/gemm.h). bench/NOTES.md has the
// measurements.
//
// Threads split the panels of w (8 rows each): every thread streams its own share of the weights, the larger
// operand, once, and keeps each panel in L1/L2 while all rows of x pass over it (x, up to M = 2048 measured, stays
// in L2/L3, so no M blocking). x is converted/quantized once per call, in parallel over rows, before that.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../common/quant.h"
#include "../common/thread_pool.h"
#include "cpu.h"
#include "elementwise.h"
#include "gemm.h"
#include "scratch.h"
#if defined(LLMK_HAVE_AVX2_TU)
#include "simd/matmul_q_avx2.h"
#endif

namespace lk {

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Portable kernels: the same loops as the AVX2 file over the panel form, in plain C++.

void quantize_acts_scalar(const float* xf, int64_t m0, int64_t m1, int64_t Kp, bool per_row, int8_t* q, float* d,
                          float* sx) {
  const int64_t nblk = per_row ? 1 : Kp / 32;
  for (int64_t m = m0; m < m1; ++m) {
    int32_t s;
    if (per_row) {
      d[m] = quantize_act_block(xf + m * Kp, Kp, q + m * Kp, &s);
      sx[m] = static_cast<float>(s);
    } else {
      for (int64_t b = 0; b < nblk; ++b) {
        d[m * nblk + b] = quantize_act_block(xf + m * Kp + 32 * b, 32, q + m * Kp + 32 * b, &s);
        sx[m * nblk + b] = static_cast<float>(s);
      }
    }
  }
}

// The 32 q of row r of a panel block into qv (q8: int8; q4: nibbles 0..15).
inline void block_q(const QuantLayout& L, const uint8_t* blk, int r, int32_t* qv) {
  if (quant_is_q4(L.t)) {
    for (int s = 0; s < 4; ++s)
      for (int j = 0; j < 4; ++j) {
        const uint8_t v = blk[s * 32 + r * 4 + j];
        qv[4 * s + j] = v & 15;
        qv[16 + 4 * s + j] = v >> 4;
      }
  } else {
    for (int s = 0; s < 8; ++s)
      for (int j = 0; j < 4; ++j) qv[4 * s + j] = static_cast<int8_t>(blk[s * 32 + r * 4 + j]);
  }
}

// Scale and zero of row r for block b.
inline void block_sz(const QuantLayout& L, const uint8_t* panel, int64_t b, int r, float* s, int32_t* z) {
  uint16_t h;
  switch (L.t) {
    case DType::q8_0:
    case DType::q4_0:
      std::memcpy(&h, panel + L.block_offset(b) - 16 + 2 * r, 2);
      *s = f16_to_f32(h);
      *z = L.t == DType::q4_0 ? 8 : 0;
      return;
    case DType::i8_pc:
      std::memcpy(s, panel + 4 * r, 4);
      *z = 0;
      return;
    default: {
      const uint8_t* hd = panel + L.group_offset(b / L.bpg);
      std::memcpy(&h, hd + 2 * r, 2);
      *s = f16_to_f32(h);
      *z = hd[16 + r];
      return;
    }
  }
}

void int_scalar(const QuantLayout& L, const uint8_t* w, int64_t p0, int64_t p1, const int8_t* q, const float* d,
                const float* sx, int64_t M, float* y, int64_t ldy, int64_t N) {
  const int64_t Kp = L.nb * 32;
  const bool pc = L.t == DType::i8_pc;
  const int64_t nblk = pc ? 1 : L.nb;
  int32_t qv[32];
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = w + p * L.panel_bytes;
    for (int r = 0; r < kQPanel && 8 * p + r < N; ++r) {
      for (int64_t m = 0; m < M; ++m) {
        const int8_t* xq = q + m * Kp;
        float acc = 0.0f;
        int64_t total = 0;  // i8_pc: the whole row's dot (int64: K may exceed what int32 holds at the extremes)
        for (int64_t b = 0; b < L.nb; ++b) {
          block_q(L, panel + L.block_offset(b), r, qv);
          int32_t dot = 0;
          for (int j = 0; j < 32; ++j) dot += qv[j] * xq[32 * b + j];
          if (pc) {
            total += dot;
            continue;
          }
          float s;
          int32_t z;
          block_sz(L, panel, b, r, &s, &z);
          const float dotf = static_cast<float>(dot) - static_cast<float>(z) * sx[m * nblk + b];
          acc += s * d[m * nblk + b] * dotf;
        }
        if (pc) {
          float s;
          int32_t z;
          block_sz(L, panel, 0, r, &s, &z);
          acc = s * d[m] * static_cast<float>(total);
        }
        y[m * ldy + 8 * p + r] = acc;
      }
    }
  }
}

void dq_scalar(const QuantLayout& L, const uint8_t* w, int64_t p0, int64_t p1, const float* xf, int64_t M, float* y,
               int64_t ldy, int64_t N, float* buf) {
  const int64_t Kp = L.nb * 32;
  int32_t qv[32];
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = w + p * L.panel_bytes;
    for (int r = 0; r < kQPanel; ++r)
      for (int64_t b = 0; b < L.nb; ++b) {
        block_q(L, panel + L.block_offset(b), r, qv);
        float s;
        int32_t z;
        block_sz(L, panel, b, r, &s, &z);
        for (int j = 0; j < 32; ++j) {
          const int64_t k = 32 * b + j;
          buf[k * 8 + r] = k < L.K ? s * static_cast<float>(qv[j] - z) : 0.0f;
        }
      }
    for (int64_t m = 0; m < M; ++m) {
      float acc[8] = {};
      const float* xr = xf + m * Kp;
      for (int64_t k0 = 0; k0 < L.K; k0 += 256) {  // chunked sums, as the AVX2 dq_tile explains
        float part[8] = {};
        for (int64_t k = k0; k < std::min(L.K, k0 + 256); ++k)
          for (int r = 0; r < 8; ++r) part[r] += xr[k] * buf[k * 8 + r];
        for (int r = 0; r < 8; ++r) acc[r] += part[r];
      }
      for (int r = 0; r < kQPanel && 8 * p + r < N; ++r) y[m * ldy + 8 * p + r] = acc[r];
    }
  }
}

// Per-thread buffers (cpu/scratch.h): the executor's for x and y, each worker's for the dequantize scratch.
thread_local ScratchBuf tl_xf, tl_xq, tl_xu, tl_xd, tl_xs, tl_yf, tl_scratch;

// The dequantize path streams w once per row of x up to this many rows (GEMV); above, the GEMM driver packs it.
constexpr int64_t kDqGemvMaxM = 4;

// Below this many multiply-adds one thread does it all: waking the pool, and a worker spinning after the call next
// to the JS and executor threads on a 2-core machine, cost more than the second core gives. 2^16 made a small model's
// decode step slower on 2 threads than on 1; 2^19 (~5-10 us of int8 work) fixed it (bench/NOTES.md "Models").
constexpr double kSerialMacs = 1 << 19;

}  // namespace

Status matmul_q_cpu(const OpArgs& a) {
  const TensorView& x = a.in[0];
  const TensorView& w = a.in[1];
  const TensorView& y = a.out[0];
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  if (M == 0 || N == 0) return Status::OK();
  if (K == 0) {
    std::memset(y.data, 0, static_cast<size_t>(M * N) * dtype_size(y.dtype));
    return Status::OK();
  }
  const bool int_path = a.params.i[0] == 0;
  const QuantLayout L = quant_layout(w.dtype, K);
  const int64_t Kp = L.nb * kQBlock, P = qceil(N, kQPanel);
  const bool per_row = w.dtype == DType::i8_pc;
  const int64_t nblk = per_row ? 1 : L.nb;
#if defined(LLMK_HAVE_AVX2_TU)
  const bool avx2 = cpu_simd_level() >= SimdLevel::avx2;
  const bool avx512 = cpu_simd_level() >= SimdLevel::avx512;
  const QGeom g{L.t, L.K, L.nb, L.G, L.ng, L.bpg, L.panel_bytes};
#else
  const bool avx2 = false, avx512 = false;
#endif

#if defined(LLMK_HAVE_AVX2_TU)
  // Dequantize path, M > 4: the f32 GEMM driver of matmul, packing w by decoding its panels (once per packed
  // panel, amortized over up to MC rows of x), so the product runs at the dense kernels' speed.
  if (!int_path && avx2 && M > kDqGemvMaxM) {
    struct Ctx {
      QGeom g;
      const uint8_t* w;
      int64_t N;
    } ctx{g, static_cast<const uint8_t*>(w.data), N};
    WPacker wp;
    wp.ctx = &ctx;
    wp.k_align = kQBlock;
    wp.pack = [](const void* c, int64_t n0, int64_t rows, int64_t k0, int64_t kc, int32_t R, float* dst) {
      const Ctx& cx = *static_cast<const Ctx*>(c);
      matmul_q_avx2_pack_w(cx.g, cx.w, cx.N, n0, rows, k0, kc, R, dst);
    };
    return matmul_gemm_packed_w(x, wp, y, M, N, K);
  }
#endif

  // x as f32 rows of Kp (zero past K), then quantized for the integer path.
  float* xf = tl_xf.get<float>(static_cast<size_t>(M * Kp));
  int8_t* xq = int_path ? tl_xq.get<int8_t>(static_cast<size_t>(M * Kp)) : nullptr;
  float* xd = int_path ? tl_xd.get<float>(static_cast<size_t>(M * nblk)) : nullptr;
  float* xs = int_path ? tl_xs.get<float>(static_cast<size_t>(M * nblk)) : nullptr;
  const bool f32_out = y.dtype == DType::f32;
  float* yf = f32_out ? static_cast<float*>(y.data) : tl_yf.get<float>(static_cast<size_t>(M * N));
  // x + 128 as bytes, for the VNNI kernels of the signed-weight formats (see simd/matmul_q_avx512.cc)
  const bool need_xu = int_path && avx512 && (w.dtype == DType::q8_0 || w.dtype == DType::i8_pc);
  uint8_t* xu = need_xu ? tl_xu.get<uint8_t>(static_cast<size_t>(M * Kp)) : nullptr;
  if (!xf || (int_path && (!xq || !xd || !xs)) || !yf || (need_xu && !xu))
    return Status(Code::oom, "matmul_q: could not allocate the buffers for x and y");

  ThreadPool& pool = ThreadPool::global();
  const int T = static_cast<double>(M) * N * K < kSerialMacs ? 1 : pool.threads();
  const DType xt = x.dtype;
  pool.parallel_for(M, [&](int64_t m0, int64_t m1, int) {
    for (int64_t m = m0; m < m1; ++m) {
      float* dst = xf + m * Kp;
      switch (xt) {
        case DType::f16: for (int64_t k = 0; k < K; ++k) dst[k] = ld<DType::f16>(x.data, m * K + k); break;
        case DType::bf16: for (int64_t k = 0; k < K; ++k) dst[k] = ld<DType::bf16>(x.data, m * K + k); break;
        default: std::memcpy(dst, static_cast<const float*>(x.data) + m * K, static_cast<size_t>(K) * sizeof(float)); break;
      }
      std::memset(dst + K, 0, static_cast<size_t>(Kp - K) * sizeof(float));
    }
    if (!int_path) return;
#if defined(LLMK_HAVE_AVX2_TU)
    if (avx2)
      matmul_q_avx2_quantize_acts(xf, m0, m1, Kp, per_row, xq, xd, xs);
    else
#endif
      quantize_acts_scalar(xf, m0, m1, Kp, per_row, xq, xd, xs);
    if (xu)
      for (int64_t i = m0 * Kp; i < m1 * Kp; ++i) xu[i] = static_cast<uint8_t>(xq[i]) ^ 0x80u;
  }, M * K < 32768 ? 1 : T);

  std::atomic<bool> oom{false};
  const uint8_t* wd = static_cast<const uint8_t*>(w.data);
  pool.parallel_for(P, [&](int64_t p0, int64_t p1, int) {
    if (int_path) {
#if defined(LLMK_HAVE_AVX512_TU)
      if (avx512) return matmul_q_avx512_int(g, wd, p0, p1, xq, xu, xd, xs, M, yf, N, N);
#endif
#if defined(LLMK_HAVE_AVX2_TU)
      if (avx2) return matmul_q_avx2_int(g, wd, p0, p1, xq, xd, xs, M, yf, N, N);
#endif
      return int_scalar(L, wd, p0, p1, xq, xd, xs, M, yf, N, N);
    }
#if defined(LLMK_HAVE_AVX2_TU)
    if (avx2) return matmul_q_avx2_dq(g, wd, p0, p1, xf, M, yf, N, N);
#endif
    float* scratch = tl_scratch.get<float>(static_cast<size_t>(8 * Kp));
    if (!scratch) {
      oom.store(true);
      return;
    }
    dq_scalar(L, wd, p0, p1, xf, M, yf, N, N, scratch);
  }, T);
  if (oom.load()) return Status(Code::oom, "matmul_q: could not allocate the dequantize scratch");
  if (!f32_out) {
    const DType yt = y.dtype;
    pool.parallel_for(M, [&](int64_t m0, int64_t m1, int) {
      for (int64_t i = m0 * N; i < m1 * N; ++i) store_f32(y.data, yt, i, yf[i]);
    }, M * N < 32768 ? 1 : T);
  }
  return Status::OK();
}

}  // namespace lk
