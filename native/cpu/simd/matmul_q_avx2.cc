// matmul_q, AVX2 + FMA + F16C: y[M,N] = x[M,K] . w[N,K]^T with w in a quantized panel form (common/quant.h).
//
// Division of labour: as simd/matmul_avx2.cc. matmul_q.cc owns threads, buffers, x conversion and y rounding; this
// file exports the functions of matmul_q_avx2.h; its helpers (matmul_q_simd.h) have internal linkage.
//
// Integer path (the default). x is quantized per block of 32 to int8 (quant.h's quantize_act_block, reproduced
// here bit for bit: the same f32 operations, vroundps in round-to-nearest-even). A 32-byte load of the panel form
// holds 4 consecutive k of 8 rows of w ("a step"); broadcasting the matching 4 bytes of one row of x and one
// vpmaddubsw gives, per 16-bit lane, a 2-term dot of one row of w: 8 rows of w advance together and the sums stay
// in lanes (no horizontal reduction until the end of the row, and then none either: lane r is row r).
//   q4 formats: the nibbles q (0..15) are the unsigned operand and x (-127..127) the signed one, so q*x needs no
//     sign tricks. A block's 8 vpmaddubsw results are summed in 16 bits (|sum| <= 16 * 15 * 127 = 30480 < 32767),
//     then one vpmaddwd against ones widens to 32 bits. The zero point is applied once per block in f32,
//     dot - z * sum(qx), exact because both are integers below 2^24.
//   q8_0 / i8_pc: w is signed, so the unsigned operand is |w| (vpabsb, 128 for -128 still fits u8) and the signed
//     one x with w's sign (vpsignb; x is never -128, so -x fits). Pairs reach 2 * 128 * 127 = 32512, so each step
//     is widened to 32 bits at once (vpmaddwd). i8_pc keeps 32-bit sums over 4096 blocks at a time: |sum| <= 131072 * 128 *
//     127 < 2^31 (the overflow case, all -127 against -128), then adds them to the f32 accumulator.
//   Per block: y += (s_w * d_x) * dot in f32 (scales of 8 rows in one vector: vcvtph2ps of d[8]).
//   Tiles of up to 4 rows of x share each decoded step (register budget: 4 x (i16/i32 partial + f32 accumulator)
//   + weights + constants = 13 of 16 ymm). GEMV (M <= 4) and GEMM use the same tiles; the driver splits panels
//   over threads, and each panel (18-35 KB at K = 4096) stays in L1/L2 while all tiles of x pass over it.
// Dequantize path. GEMV (M <= 4): dq_row streams each panel once per row of x (see there). Larger M: the f32 GEMM
// driver of matmul (cpu/gemm.h) with matmul_q_avx2_pack_w, which decodes blocks into f32 [k][8 rows] (a byte
// shuffle + vpermd turns the [row][4 k] chunks into [k][8 rows], then vpmovsxbd, vcvtdq2ps, (q - z) * s: the exact
// f32 value of quant_value) straight into the driver's panels, once per panel and K slice.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matmul_q_avx2.h"
#include "matmul_q_simd.h"

namespace lk {

namespace {

enum Fam { kQ8, kQ4, kQ4G, kI8 };

// One panel times MR rows of x. q, d, sx point at the tile's first row (strides Kp and nblk).
template <int MR, Fam F>
void tile(const QGeom& g, const uint8_t* panel, const int8_t* q, const float* d, const float* sx, int64_t Kp,
          int64_t nblk, float (*out)[8]) {
  __m256 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  if (F == kI8 || F == kQ8) {
    // Signed weights: |w| x sign(x, w). q8_0 scales each block's sum; i8_pc sums the row in int32, moved to the f32
    // accumulator every kI8FlushBlocks blocks.
    __m256i dot[MR];
    for (int i = 0; i < MR; ++i) dot[i] = _mm256_setzero_si256();
    for (int64_t b = 0; b < g.nb; ++b) {
      const uint8_t* qb = panel + blk_off(g, b);
      const int8_t* xb = q + 32 * b;
      for (int s = 0; s < 8; ++s) {
        const __m256i w = load32(qb + 32 * s);
        const __m256i aw = _mm256_abs_epi8(w);
        for (int i = 0; i < MR; ++i) {
          const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast4(xb + i * Kp + 4 * s), w));
          dot[i] = _mm256_add_epi32(dot[i], _mm256_madd_epi16(p, ones));
          LK_PIN(dot[i]);
        }
      }
      const bool flush = F == kQ8 || (b + 1) % kI8FlushBlocks == 0 || b + 1 == g.nb;
      if (!flush) continue;
      const __m256 sw = F == kQ8 ? scales_f16(qb - 16) : _mm256_loadu_ps(reinterpret_cast<const float*>(panel));
      for (int i = 0; i < MR; ++i) {
        const float dx = F == kQ8 ? d[i * nblk + b] : d[i * nblk];
        acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(sw, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(dot[i]), acc[i]);
        dot[i] = _mm256_setzero_si256();
      }
    }
  } else {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int64_t ngroups = F == kQ4 ? g.nb : g.ng;
    const int64_t bpg = F == kQ4 ? 1 : g.bpg;
    for (int64_t gi = 0; gi < ngroups; ++gi) {
      __m256 sw, zf;
      q4_scales(g, panel, gi * bpg, &sw, &zf);
      const int64_t b1 = imin(g.nb, (gi + 1) * bpg);
      for (int64_t b = gi * bpg; b < b1; ++b) {
        const uint8_t* qb = panel + blk_off(g, b);
        const int8_t* xb = q + 32 * b;
        __m256i p16[MR];
        for (int i = 0; i < MR; ++i) p16[i] = _mm256_setzero_si256();
        for (int s = 0; s < 4; ++s) {
          const __m256i w = load32(qb + 32 * s);
          const __m256i lo = _mm256_and_si256(w, m4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
          for (int i = 0; i < MR; ++i) {
            p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(lo, bcast4(xb + i * Kp + 4 * s)));
            p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(hi, bcast4(xb + i * Kp + 16 + 4 * s)));
            LK_PIN(p16[i]);
          }
        }
        for (int i = 0; i < MR; ++i) {
          __m256 dotf = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16[i], ones));
          dotf = _mm256_fnmadd_ps(zf, _mm256_set1_ps(sx[i * nblk + b]), dotf);
          acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(sw, _mm256_set1_ps(d[i * nblk + b])), dotf, acc[i]);
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i) _mm256_storeu_ps(out[i], acc[i]);
}

template <Fam F>
void tile_any(int mr, const QGeom& g, const uint8_t* panel, const int8_t* q, const float* d, const float* sx,
              int64_t Kp, int64_t nblk, float (*out)[8]) {
  switch (mr) {
    case 1: tile<1, F>(g, panel, q, d, sx, Kp, nblk, out); return;
    case 2: tile<2, F>(g, panel, q, d, sx, Kp, nblk, out); return;
    case 3: tile<3, F>(g, panel, q, d, sx, Kp, nblk, out); return;
    default: tile<4, F>(g, panel, q, d, sx, Kp, nblk, out); return;
  }
}

inline void store_cols(const float (*out)[8], int mr, float* y, int64_t ldy, int64_t ncols) {
  for (int i = 0; i < mr; ++i) {
    if (ncols == 8) {
      std::memcpy(y + i * ldy, out[i], 32);
    } else {
      for (int64_t c = 0; c < ncols; ++c) y[i * ldy + c] = out[i][c];
    }
  }
}

// [row][4 k] chunks of 8 rows -> 4 vectors of 8 rows at k = 0..3 of the chunk, as f32 (q - z) * s.
template <bool Unsigned, bool Zero>
inline void decode_chunk(__m256i v, __m256 sw, __m256 zf, float* dst) {
  const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,  //
                                        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  v = _mm256_shuffle_epi8(v, shuf);  // per 128-bit lane (4 rows): dword j = the 4 rows at k = j
  v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));  // qword j = the 8 rows at k = j
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int j = 0; j < 4; ++j) {
    const __m256i q32 = Unsigned ? _mm256_cvtepu8_epi32(part[j]) : _mm256_cvtepi8_epi32(part[j]);
    __m256 f = _mm256_cvtepi32_ps(q32);
    if (Zero) f = _mm256_sub_ps(f, zf);
    _mm256_store_ps(dst + 8 * j, _mm256_mul_ps(f, sw));
  }
}

// Decodes block b of a panel into dst[k * 8 + r] (k = 0..31 of the block, 8 rows), the f32 values of quant_value.
void decode_block(const QGeom& g, const uint8_t* panel, int64_t b, float* dst) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const uint8_t* qb = panel + blk_off(g, b);
  if (g.t == DType::q8_0 || g.t == DType::i8_pc) {
    const __m256 sw = g.t == DType::q8_0 ? scales_f16(qb - 16) : _mm256_loadu_ps(reinterpret_cast<const float*>(panel));
    for (int s = 0; s < 8; ++s) decode_chunk<false, false>(load32(qb + 32 * s), sw, sw, dst + 32 * s);
    return;
  }
  __m256 sw, zf;
  q4_scales(g, panel, b, &sw, &zf);
  for (int s = 0; s < 4; ++s) {
    const __m256i w = load32(qb + 32 * s);
    decode_chunk<true, true>(_mm256_and_si256(w, m4), sw, zf, dst + 32 * s);
    decode_chunk<true, true>(_mm256_and_si256(_mm256_srli_epi16(w, 4), m4), sw, zf, dst + 128 + 32 * s);
  }
}

// GEMV of the dequantize path: one row of x against a panel with no decoded copy. A 32-byte chunk (8 rows x 4 k) is
// widened 8 bytes (2 rows x 4 k) at a time and multiplied by x[k..k+3] repeated in both halves, so lanes keep
// (row, k) partial sums; per block, sum(x * q) is scaled by s (and s * z * sum(x) subtracted), which also keeps the
// f32 sums short. The 4 row-pair accumulators are reduced once per panel.
template <Fam F>
void dq_row(const QGeom& g, const uint8_t* panel, const float* x, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc[4], corr = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) acc[j] = _mm256_setzero_ps();
  const __m256i pair[4] = {_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
                           _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
  auto chunk = [&](__m256i v, const float* xk, __m256* blk) {
    const __m256 xv = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(xk));
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    blk[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), xv, blk[0]);
    blk[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), xv, blk[1]);
    blk[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), xv, blk[2]);
    blk[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), xv, blk[3]);
  };
  const __m256 isw = F == kI8 ? _mm256_loadu_ps(reinterpret_cast<const float*>(panel)) : _mm256_setzero_ps();
  for (int64_t b = 0; b < g.nb; ++b) {
    const uint8_t* qb = panel + blk_off(g, b);
    const float* xb = x + 32 * b;
    __m256 blk[4];
    for (int j = 0; j < 4; ++j) blk[j] = _mm256_setzero_ps();
    __m256 sw;
    if (F == kQ8 || F == kI8) {
      sw = F == kQ8 ? scales_f16(qb - 16) : isw;
      for (int st = 0; st < 8; ++st) chunk(load32(qb + 32 * st), xb + 4 * st, blk);
    } else {
      __m256 zf;
      q4_scales(g, panel, b, &sw, &zf);
      for (int st = 0; st < 4; ++st) {
        const __m256i v = load32(qb + 32 * st);
        chunk(_mm256_and_si256(v, m4), xb + 4 * st, blk);
        chunk(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), xb + 16 + 4 * st, blk);
      }
      // sum(x) over the block (x is zero past K)
      __m256 xs = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8)),
                                _mm256_add_ps(_mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24)));
      __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(xs), _mm256_extractf128_ps(xs, 1));
      h4 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
      h4 = _mm_add_ss(h4, _mm_shuffle_ps(h4, h4, 1));
      corr = _mm256_fmadd_ps(_mm256_mul_ps(sw, zf), _mm256_broadcastss_ps(h4), corr);
    }
    for (int j = 0; j < 4; ++j) acc[j] = _mm256_fmadd_ps(blk[j], _mm256_permutevar8x32_ps(sw, pair[j]), acc[j]);
  }
  // acc[j]: lanes 0-3 row 2j, lanes 4-7 row 2j+1 -> out[0..7]
  const __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 h = _mm256_hadd_ps(h01, h23);  // low lane rows 0,2,4,6; high lane rows 1,3,5,7
  const __m256 rows = _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_ps(out, _mm256_sub_ps(rows, corr));
}

}  // namespace

void matmul_q_avx2_quantize_acts(const float* xf, int64_t m0, int64_t m1, int64_t Kp, bool per_row, int8_t* q,
                                 float* d, float* sx) {
  const int64_t nblk = per_row ? 1 : Kp / 32;
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 fltmax = _mm256_set1_ps(3.40282347e+38f);
  const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t m = m0; m < m1; ++m) {
    const float* xr = xf + m * Kp;
    int8_t* qr = q + m * Kp;
    // amax and finiteness over each quantization block (the whole row for i8_pc)
    const int64_t span = per_row ? Kp : 32;
    for (int64_t b0 = 0; b0 < Kp; b0 += span) {
      __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
      for (int64_t k = b0; k < b0 + span; k += 8) {
        const __m256 a = _mm256_and_ps(_mm256_loadu_ps(xr + k), absmask);
        mx = _mm256_max_ps(mx, a);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, fltmax, _CMP_NLE_UQ));  // NaN or Inf
      }
      __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
      h = _mm_max_ps(h, _mm_movehl_ps(h, h));
      h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
      const float amax = _mm_cvtss_f32(h);
      const int64_t bi = per_row ? m * nblk : m * nblk + b0 / 32;
      if (_mm256_movemask_ps(bad) != 0) {
        std::memset(qr + b0, 0, static_cast<size_t>(span));
        d[bi] = __builtin_nanf("");
        sx[bi] = 0.0f;
        continue;
      }
      const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      __m256i sum = _mm256_setzero_si256();
      for (int64_t k = b0; k < b0 + span; k += 32) {
        __m256i r[4];
        for (int j = 0; j < 4; ++j) {
          __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + k + 8 * j), id),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          v = _mm256_min_ps(_mm256_max_ps(v, nlim), lim);
          r[j] = _mm256_cvttps_epi32(v);
          sum = _mm256_add_epi32(sum, r[j]);
        }
        const __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qr + k), _mm256_permutevar8x32_epi32(p16, order));
      }
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
      d[bi] = amax / 127.0f;
      sx[bi] = static_cast<float>(_mm_cvtsi128_si32(s4));
    }
  }
}

void matmul_q_avx2_int(const QGeom& g, const uint8_t* w, int64_t p0, int64_t p1, const int8_t* q, const float* d,
                       const float* sx, int64_t M, float* y, int64_t ldy, int64_t N) {
  const int64_t Kp = g.nb * 32;
  const int64_t nblk = g.t == DType::i8_pc ? 1 : g.nb;
  float out[4][8];
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = w + p * g.panel_bytes;
    const int64_t ncols = imin(8, N - 8 * p);
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int mr = static_cast<int>(imin(4, M - m0));
      const int8_t* qt = q + m0 * Kp;
      const float* dt = d + m0 * nblk;
      const float* st = sx + m0 * nblk;
      switch (g.t) {
        case DType::q8_0: tile_any<kQ8>(mr, g, panel, qt, dt, st, Kp, nblk, out); break;
        case DType::q4_0: tile_any<kQ4>(mr, g, panel, qt, dt, st, Kp, nblk, out); break;
        case DType::i8_pc: tile_any<kI8>(mr, g, panel, qt, dt, st, Kp, nblk, out); break;
        default: tile_any<kQ4G>(mr, g, panel, qt, dt, st, Kp, nblk, out); break;
      }
      store_cols(out, mr, y + m0 * ldy + 8 * p, ldy, ncols);
    }
  }
}

void matmul_q_avx2_dq(const QGeom& g, const uint8_t* w, int64_t p0, int64_t p1, const float* xf, int64_t M,
                      float* y, int64_t ldy, int64_t N) {
  const int64_t Kp = g.nb * 32;
  float out[4][8];
  // GEMV (M <= 4; larger M goes through the GEMM driver with matmul_q_avx2_pack_w): each panel streamed once per
  // row of x, no decoded copy.
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = w + p * g.panel_bytes;
    const int64_t ncols = imin(8, N - 8 * p);
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = xf + m * Kp;
      switch (g.t) {
        case DType::q8_0: dq_row<kQ8>(g, panel, xr, out[m]); break;
        case DType::q4_0: dq_row<kQ4>(g, panel, xr, out[m]); break;
        case DType::i8_pc: dq_row<kI8>(g, panel, xr, out[m]); break;
        default: dq_row<kQ4G>(g, panel, xr, out[m]); break;
      }
    }
    store_cols(out, static_cast<int>(M), y + 8 * p, ldy, ncols);
  }
}

void matmul_q_avx2_pack_w(const QGeom& g, const uint8_t* w, int64_t N, int64_t n0, int64_t rows, int64_t k0,
                          int64_t kc, int32_t R, float* dst) {
  alignas(32) float blk[256];
  const int64_t panels_w = (N + 7) / 8;
  for (int64_t nn = n0; nn < n0 + rows; nn += R, dst += R * kc) {
    for (int64_t sub = 0; sub < R; sub += 8) {
      const int64_t p = (nn + sub) / 8;
      float* out = dst + sub;
      if (p >= panels_w || nn + sub >= n0 + rows) {  // rows past the end of w (or of this call): zeros
        for (int64_t k = 0; k < kc; ++k) _mm256_storeu_ps(out + k * R, _mm256_setzero_ps());
        continue;
      }
      const uint8_t* panel = w + p * g.panel_bytes;
      for (int64_t b = k0 / 32; b * 32 < k0 + kc; ++b) {
        decode_block(g, panel, b, blk);
        const int64_t kb = b * 32, ke = imin(kb + 32, k0 + kc);
        for (int64_t k = kb; k < ke; ++k) _mm256_storeu_ps(out + (k - k0) * R, _mm256_load_ps(blk + 8 * (k - kb)));
      }
    }
  }
}

}  // namespace lk
