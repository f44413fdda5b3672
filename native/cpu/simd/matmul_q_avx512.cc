// matmul_q, integer path, with AVX-512 VNNI on 256-bit vectors (AVX512VL: vpdpbusd ymm). Compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni (and the AVX2 set); called by matmul_q.cc only when
// cpu_simd_level() is avx512. Same division of labour, panel form and tiles as simd/matmul_q_avx2.cc, whose header
// explains them; only the inner products change.
//
// vpdpbusd adds, per 32-bit lane, the four products of unsigned bytes of one operand and signed bytes of the other
// to an int32 accumulator, wrapping: one instruction for what AVX2 does with vpmaddubsw + vpmaddwd + vpaddd, and no
// 16-bit intermediate to saturate.
//   q4 formats: the nibbles (0..15) are the unsigned operand, x (int8) the signed one: 8 vpdpbusd per block and row
//     of x (AVX2: 8 vpmaddubsw + 8 vpaddw + 1 vpmaddwd).
//   q8_0 / i8_pc: w is the signed operand and x + 128 (1..255, made once per call by the driver) the unsigned one;
//     sum (x + 128) * w - 128 * sum(w) = sum x * w, where sum(w) is one more vpdpbusd against bytes of 1, shared by
//     every row of x. The arithmetic is modulo 2^32 and the true sum is within int32 (quant.h), so the wrapped
//     terms cancel exactly, even when (x + 128) * w alone would overflow (i8_pc at K = 131072). Per step and row of
//     x: 1 instruction (AVX2: vpsignb + vpmaddubsw + vpmaddwd + vpaddd).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matmul_q_avx2.h"
#include "matmul_q_simd.h"

namespace lk {

namespace {

enum Fam { kQ8, kQ4, kQ4G, kI8 };

// NP panels (1 or 2: 8 or 16 rows of w) times MR rows of x; out[i][8 * j + c] is row i of x against row c of panel
// j. xq: int8 x (q4 formats) or x + 128 as u8 (q8_0, i8_pc), stride Kp. Two panels share each broadcast of x and
// the 32 registers of AVX-512 hold 2 x 4 integer and 2 x 4 f32 accumulators.
template <int MR, int NP, Fam F>
void tile(const QGeom& g, const uint8_t* panel, const uint8_t* xq, const float* d, const float* sx, int64_t Kp,
          int64_t nblk, float (*out)[16]) {
  __m256 acc[NP][MR];
  for (int j = 0; j < NP; ++j)
    for (int i = 0; i < MR; ++i) acc[j][i] = _mm256_setzero_ps();
  const int64_t pb = g.panel_bytes;
  const __m256i ones8 = _mm256_set1_epi8(1);
  // With 1 or 2 rows of x the vpdpbusd chains (latency ~5 cycles, 8 per block) bound the loop, not the memory: the
  // steps then go round-robin into C independent accumulators, summed per block (GEMV, 1 thread: NOTES steps 11-12;
  // q8 formats fold 2 chains of integer sums and sum(w) per block, q4 ones 4).
  constexpr int C = MR > 2 ? 1 : (F == kQ8 || F == kI8) ? 2 : 4;
  if (F == kI8 || F == kQ8) {
    __m256i dot[C][NP][MR], wsum[C][NP];
    for (int c = 0; c < C; ++c)
      for (int j = 0; j < NP; ++j) {
        wsum[c][j] = _mm256_setzero_si256();
        for (int i = 0; i < MR; ++i) dot[c][j][i] = _mm256_setzero_si256();
      }
    // Folds the chains into chain 0.
    auto fold = [&]() {
      for (int c = 1; c < C; ++c)
        for (int j = 0; j < NP; ++j) {
          wsum[0][j] = _mm256_add_epi32(wsum[0][j], wsum[c][j]);
          wsum[c][j] = _mm256_setzero_si256();
          for (int i = 0; i < MR; ++i) {
            dot[0][j][i] = _mm256_add_epi32(dot[0][j][i], dot[c][j][i]);
            dot[c][j][i] = _mm256_setzero_si256();
          }
        }
    };
    for (int64_t b = 0; b < g.nb; ++b) {
      const uint8_t* qb = panel + blk_off(g, b);
      const uint8_t* xb = xq + 32 * b;
      for (int s = 0; s < 8; ++s) {
        const int c = s % C;
        __m256i w[NP];
        for (int j = 0; j < NP; ++j) {
          w[j] = load32(qb + j * pb + 32 * s);
          wsum[c][j] = _mm256_dpbusd_epi32(wsum[c][j], ones8, w[j]);
        }
        for (int i = 0; i < MR; ++i) {
          const __m256i xv = bcast4(xb + i * Kp + 4 * s);
          for (int j = 0; j < NP; ++j) {
            dot[c][j][i] = _mm256_dpbusd_epi32(dot[c][j][i], xv, w[j]);
            LK_PIN(dot[c][j][i]);
          }
        }
      }
      if (F == kI8 && ((b + 1) % kI8FlushBlocks == 0 || b + 1 == g.nb)) {  // per row (in flushes): see kI8FlushBlocks
        fold();
        for (int j = 0; j < NP; ++j) {
          const __m256i corr = _mm256_slli_epi32(wsum[0][j], 7);
          const __m256 sw = _mm256_loadu_ps(reinterpret_cast<const float*>(panel + j * pb));
          for (int i = 0; i < MR; ++i) {
            acc[j][i] = _mm256_fmadd_ps(_mm256_mul_ps(sw, _mm256_set1_ps(d[i * nblk])),
                                        _mm256_cvtepi32_ps(_mm256_sub_epi32(dot[0][j][i], corr)), acc[j][i]);
            dot[0][j][i] = _mm256_setzero_si256();
          }
          wsum[0][j] = _mm256_setzero_si256();
        }
      }
      if (F == kQ8) {  // per block: dot - 128 * sum(w), scaled by d_w * d_x
        fold();
        for (int j = 0; j < NP; ++j) {
          const __m256i corr = _mm256_slli_epi32(wsum[0][j], 7);
          const __m256 sw = scales_f16(qb + j * pb - 16);
          for (int i = 0; i < MR; ++i) {
            const __m256 dotf = _mm256_cvtepi32_ps(_mm256_sub_epi32(dot[0][j][i], corr));
            acc[j][i] = _mm256_fmadd_ps(_mm256_mul_ps(sw, _mm256_set1_ps(d[i * nblk + b])), dotf, acc[j][i]);
            dot[0][j][i] = _mm256_setzero_si256();
          }
          wsum[0][j] = _mm256_setzero_si256();
        }
      }
    }
  } else {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int64_t ngroups = F == kQ4 ? g.nb : g.ng;
    const int64_t bpg = F == kQ4 ? 1 : g.bpg;
    for (int64_t gi = 0; gi < ngroups; ++gi) {
      __m256 sw[NP], zf[NP];
      for (int j = 0; j < NP; ++j) q4_scales(g, panel + j * pb, gi * bpg, &sw[j], &zf[j]);
      const int64_t b1 = imin(g.nb, (gi + 1) * bpg);
      for (int64_t b = gi * bpg; b < b1; ++b) {
        const uint8_t* qb = panel + blk_off(g, b);
        const uint8_t* xb = xq + 32 * b;
        __m256i dot[C][NP][MR];
        for (int c = 0; c < C; ++c)
          for (int j = 0; j < NP; ++j)
            for (int i = 0; i < MR; ++i) dot[c][j][i] = _mm256_setzero_si256();
        for (int s = 0; s < 4; ++s) {
          __m256i lo[NP], hi[NP];
          for (int j = 0; j < NP; ++j) {
            const __m256i w = load32(qb + j * pb + 32 * s);
            lo[j] = _mm256_and_si256(w, m4);
            hi[j] = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
          }
          const int cl = (2 * s) % C, ch = (2 * s + 1) % C;
          for (int i = 0; i < MR; ++i) {
            const __m256i xl = bcast4(xb + i * Kp + 4 * s), xh = bcast4(xb + i * Kp + 16 + 4 * s);
            for (int j = 0; j < NP; ++j) {
              dot[cl][j][i] = _mm256_dpbusd_epi32(dot[cl][j][i], lo[j], xl);
              LK_PIN(dot[cl][j][i]);
              dot[ch][j][i] = _mm256_dpbusd_epi32(dot[ch][j][i], hi[j], xh);
              LK_PIN(dot[ch][j][i]);
            }
          }
        }
        for (int c = 1; c < C; ++c)
          for (int j = 0; j < NP; ++j)
            for (int i = 0; i < MR; ++i) dot[0][j][i] = _mm256_add_epi32(dot[0][j][i], dot[c][j][i]);
        for (int i = 0; i < MR; ++i) {
          const __m256 dx = _mm256_set1_ps(d[i * nblk + b]), sxi = _mm256_set1_ps(sx[i * nblk + b]);
          for (int j = 0; j < NP; ++j) {
            const __m256 dotf = _mm256_fnmadd_ps(zf[j], sxi, _mm256_cvtepi32_ps(dot[0][j][i]));
            acc[j][i] = _mm256_fmadd_ps(_mm256_mul_ps(sw[j], dx), dotf, acc[j][i]);
          }
        }
      }
    }
  }
  for (int j = 0; j < NP; ++j)
    for (int i = 0; i < MR; ++i) _mm256_storeu_ps(out[i] + 8 * j, acc[j][i]);
}

template <int NP, Fam F>
void tile_any(int mr, const QGeom& g, const uint8_t* panel, const uint8_t* q, const float* d, const float* sx,
              int64_t Kp, int64_t nblk, float (*out)[16]) {
  switch (mr) {
    case 1: tile<1, NP, F>(g, panel, q, d, sx, Kp, nblk, out); return;
    case 2: tile<2, NP, F>(g, panel, q, d, sx, Kp, nblk, out); return;
    case 3: tile<3, NP, F>(g, panel, q, d, sx, Kp, nblk, out); return;
    default: tile<4, NP, F>(g, panel, q, d, sx, Kp, nblk, out); return;
  }
}

template <Fam F>
void tile_np(int np, int mr, const QGeom& g, const uint8_t* panel, const uint8_t* q, const float* d, const float* sx,
             int64_t Kp, int64_t nblk, float (*out)[16]) {
  if (np == 2) tile_any<2, F>(mr, g, panel, q, d, sx, Kp, nblk, out);
  else tile_any<1, F>(mr, g, panel, q, d, sx, Kp, nblk, out);
}

}  // namespace

void matmul_q_avx512_int(const QGeom& g, const uint8_t* w, int64_t p0, int64_t p1, const int8_t* q,
                         const uint8_t* qu, const float* d, const float* sx, int64_t M, float* y, int64_t ldy,
                         int64_t N) {
  const int64_t Kp = g.nb * 32;
  const int64_t nblk = g.t == DType::i8_pc ? 1 : g.nb;
  const bool signed_w = g.t == DType::q8_0 || g.t == DType::i8_pc;
  const uint8_t* xs = signed_w ? qu : reinterpret_cast<const uint8_t*>(q);
  float out[4][16];
  const int64_t np_max = M <= 2 ? 1 : 2;  // GEMV (1-2 rows of x): one stream of w per thread is faster (NOTES)
  for (int64_t p = p0; p < p1; p += np_max) {
    const int np = static_cast<int>(imin(np_max, p1 - p));
    const uint8_t* panel = w + p * g.panel_bytes;
    const int64_t ncols = imin(8 * np, N - 8 * p);
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int mr = static_cast<int>(imin(4, M - m0));
      const uint8_t* qt = xs + m0 * Kp;
      const float* dt = d + m0 * nblk;
      const float* st = sx + m0 * nblk;
      switch (g.t) {
        case DType::q8_0: tile_np<kQ8>(np, mr, g, panel, qt, dt, st, Kp, nblk, out); break;
        case DType::q4_0: tile_np<kQ4>(np, mr, g, panel, qt, dt, st, Kp, nblk, out); break;
        case DType::i8_pc: tile_np<kI8>(np, mr, g, panel, qt, dt, st, Kp, nblk, out); break;
        default: tile_np<kQ4G>(np, mr, g, panel, qt, dt, st, Kp, nblk, out); break;
      }
      for (int i = 0; i < mr; ++i) {
        float* yr = y + (m0 + i) * ldy + 8 * p;
        if (ncols == 16) std::memcpy(yr, out[i], 64);
        else for (int64_t c = 0; c < ncols; ++c) yr[c] = out[i][c];
      }
    }
  }
}

}  // namespace lk
