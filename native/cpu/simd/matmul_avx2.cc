// matmul, AVX2 + FMA + F16C: y[M,N] = x[M,K] . w[N,K]^T, x, w, y of one dtype (f32, f16, bf16), f32 accumulation.
//
// Division of labour. matmul.cc (baseline x86-64) owns the driver: thread grid, blocking loops, buffers, Status,
// dispatch on cpu_simd_level(). This file exports five functions on raw pointers and uses no library code: no
// std::function/vector/string and none of dtype.h's inline conversions (only its enum). An inline or template
// function instantiated here is emitted compiled with -mavx2 as a weak symbol, and the linker may keep that copy
// for the baseline callers too: SIGILL on a CPU without AVX2. `nm -C` of this object lists only the five T symbols.
//
// Layouts. x and w are both K-contiguous (an "NT" GEMM), so both are packed the same way: panels of R rows, element
// (r, k) of a panel at [k*R + r]; x in panels of MR = 6 rows (the broadcast operand), w in panels of NR = 16 rows
// (the vector operand); rows past the end are zeros, so the micro-kernel never branches on edges. Packing runs
// through 8x8 register transposes and converts on the way (f16: vcvtph2ps; bf16: << 16), so one f32 micro-kernel
// serves all dtypes and the conversion is paid once per packed element, not once per use. An f32 y is accumulated
// in place between K slices; f16/bf16 go through an f32 buffer (matmul.cc) rounded once at the end (vcvtps2ph, and
// a vector round-to-nearest-even for bf16, both bit-exact with dtype.h's store_f32).
//
// Micro-kernel 6x16: 12 accumulators + 2 vectors of w + 1 broadcast of x = 15 of the 16 ymm registers. Per k,
// 2 loads and 6 broadcasts feed 12 FMAs (6 cycles at 2 FMA/cycle), so the load ports never bound it, and 12
// independent chains cover the FMA latency (4 cycles x 2 pipes = 8 needed).
//
// Blocking, for this CPU (AMD EPYC Zen 4: 32 KB L1D and 1 MB L2 per core, 32 MB L3 shared), split evenly (K = 300
// runs as 2 x 152, not 256 + 44):
//   KC = 256   the 256x16 panel of w (16 KB) stays in L1 across the MC/6 micro-tiles that reuse it, beside the
//              streaming 6x256 panel of x (6 KB). (Any CPU with a 32 KB L1D is served the same way.)
//   MC = 144   the packed block of x (144 KB) stays in L2 across the NC/16 panels of w that reuse it.
//   NC = 2048  the packed panel of w (2 MB per thread) sits in L3.
//   Threads get a 2-D grid of independent tiles of y (tm x tn = threads, least padded work; ties split N so that a
//   thread reads only its share of w). Each packs its own panels: no barrier, nothing shared but the inputs.
//
// GEMV (M <= 8, decode): no packing; each row of w is read once, straight from memory, converted in registers, and
// dotted with the M rows of x, which the driver converts once to f32 interleaved by 8 columns ([k/8][m][8]). Tiles
// of <= 5 rows of x times groups of 2-4 rows of w keep up to 12 accumulators of 8 lanes; rows of w are taken 96 at
// a time and K in chunks with 16 KB of x, which stays in L1; software prefetch into L2 one group of rows and one
// chunk ahead once w is bigger than L2. Threads split N. Details and measurements above gemv_rows.
//
// Versions, f32, GFLOP/s (2 threads unless noted; OpenBLAS 0.3.21 sgemm measured in the same process, alternating
// call by call, best of 40 (1024^3) / 6 (4096^3); peak of one core measured at 117 (3.66 GHz x 32 flop/cycle)):
//   1. 6x16 intrinsics, packing and blocking as above.
//        1 thread (CPU time): 1024^3 104 vs OpenBLAS 95; 4096^3 107 vs 104: the kernel runs at 91% of peak.
//        2 threads: 1024^3 181 vs 177 (1.02); 4096^3 169 vs 200 (0.84). Only the large case lost: at 4096 y is
//        64 MB, not cache-resident, and each micro-tile waited at its end for its 12 lines of y from DRAM, once
//        per K slice (16 times).
//   2. + prefetch of the y tile when the micro-kernel starts (the 256-step loop hides the miss). The version here:
//        2 threads: 1024^3 215 vs 200 (1.08); 4096^3 217 vs 206 (1.05) (best of 4 quiet runs, medians within 3%).
//   Tried and dropped: KC 192 / 320 / 384 / 512 and MC 72 / 288 / 576 all within -4%..+2% of 256/144 (1 thread,
//   noise ~3%): with 1 MB of L2 the blocking is not critical here. KC 384 would overflow a 32 KB L1 with the x panel.
//   f16 / bf16 1024^3, 2 threads: 221 / 221 GFLOP/s (1 thread: 110 / 110); the conversion is in the packing.
// GEMV, GB/s of weights, M = 1, N = K = 4096 (OpenBLAS sgemv in the same process):
//   1. rows of w in groups of 4, x row-major: f32 23 GB/s on 1 core, like OpenBLAS (23).
//   2. + software prefetch (L2) of the next rows, + x interleaved, + M up to 8 (two tiles): 1 core 29-31 GB/s;
//      2 threads: f32 49 (OpenBLAS 42), f16 46-83, bf16 60-69 (32 MB of w, as big as L3: it varies with what of it
//      survives there between calls). A plain 2-thread read of 512 MB runs at 28-33 GB/s; at N = K = 8192 (256 MB)
//      f32 gives 35 GB/s, OpenBLAS 31.
//   M = 5 / 6 / 8 at N = K = 4096, f32, 2 threads: 80 / 91 / 92 GFLOP/s, where the GEMM gave 34 / 41 / 46.
//
// Measuring: build the core alone (cmake -S . -B /tmp/build-matmul -DLLMK_ADDON=OFF -DLLMK_CUDA=OFF && cmake
// --build /tmp/build-matmul --target llmk_core), link a small program against libllmk_core.a and -lopenblas
// (dev-only; the library never links it) that times matmul_cpu against cblas_sgemm(RowMajor, NoTrans, Trans, M, N,
// K, 1, x, K, w, K, 0, y, N) alternately in one process, and checks against matmul_ref with tolerance(). Run it with
// OPENBLAS_NUM_THREADS=2 and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (they slow OpenBLAS down), on a quiet
// machine: take the best of many runs, and count a run only if /proc/loadavg shows nobody else running.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matmul_avx2.h"  // declarations only, and dtype.h for the DType enum (see "Division of labour" above)

namespace lk {


namespace {

constexpr int kMR = 6;
constexpr int kNR = 16;

// ---- element loads: 8 lanes, or one ----
// Exact conversions, except that vcvtph2ps quietens a signalling NaN where f16_to_f32 keeps it: irrelevant to a
// matmul, whose sums are NaN either way. (The stores to f16/bf16 are bit-exact on all 2^32 inputs.)
template <DType T>
inline __m256 load8(const void* p, int64_t i) {
  if constexpr (T == DType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else if constexpr (T == DType::f16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <DType T>
inline float load1(const void* p, int64_t i) {
  if constexpr (T == DType::f32) {
    return static_cast<const float*>(p)[i];
  } else if constexpr (T == DType::f16) {
    return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
  } else {
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
}

// f32 -> bf16 of 8 lanes, bit-exact with f32_to_bf16 (dtype.h): round to nearest even, NaN -> quiet NaN.
inline __m128i bf16_from8(__m256 v) {
  const __m256i x = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  const __m256i is_nan =
      _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, is_nan);
  // packus works within 128-bit lanes; the values are <= 0xffff so its saturation never triggers
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
  return _mm256_castsi256_si128(packed);
}

inline uint16_t bf16_from1(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline void store1(void* p, DType t, int64_t i, float v) {
  if (t == DType::f32) {
    static_cast<float*>(p)[i] = v;
  } else if (t == DType::f16) {
    static_cast<uint16_t*>(p)[i] = _cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else {
    static_cast<uint16_t*>(p)[i] = bf16_from1(v);
  }
}

inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Packs `rows` rows (row stride ld elements) x kc columns of a K-contiguous matrix into panels of R rows,
// panel p at dst + p*R*kc, element (r, k) of the panel at [k*R + r]; missing rows of the last panel are zeros.
// Rows go through 8x8 register transposes. When R is not a multiple of 8 (R = 6) a transposed row is stored with
// 8 lanes at k*R, and the 2 extra lanes are overwritten by the next store: stores run in increasing k, and the
// caller leaves 8 floats of slack after the buffer.
template <int R, DType T>
void pack_panels(const void* src, int64_t ld, int64_t rows, int64_t kc, float* dst) {
  const int64_t kc8 = kc & ~int64_t(7);
  for (int64_t r0 = 0; r0 < rows; r0 += R, dst += R * kc) {
    const int nr = rows - r0 < R ? static_cast<int>(rows - r0) : R;
    for (int g = 0; g < R; g += 8) {
      const int valid = nr - g;  // rows of this 8-row group that exist (may be <= 0)
      for (int64_t k = 0; k < kc8; k += 8) {
        __m256 v[8];
        for (int i = 0; i < 8; ++i)
          v[i] = i < valid ? load8<T>(src, (r0 + g + i) * ld + k) : _mm256_setzero_ps();
        transpose8(v);
        if constexpr (R % 8 == 0) {
          for (int j = 0; j < 8; ++j) _mm256_store_ps(dst + (k + j) * R + g, v[j]);
        } else {
          for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (k + j) * R + g, v[j]);
        }
      }
    }
    for (int64_t k = kc8; k < kc; ++k)
      for (int r = 0; r < R; ++r) dst[k * R + r] = r < nr ? load1<T>(src, (r0 + r) * ld + k) : 0.0f;
  }
}

template <int R>
void pack_dispatch(const void* src, DType t, int64_t ld, int64_t rows, int64_t kc, float* dst) {
  switch (t) {
    case DType::f16: pack_panels<R, DType::f16>(src, ld, rows, kc, dst); return;
    case DType::bf16: pack_panels<R, DType::bf16>(src, ld, rows, kc, dst); return;
    default: pack_panels<R, DType::f32>(src, ld, rows, kc, dst); return;
  }
}

// ---- the 6x16 micro-kernel: c[6,16] (+)= a_panel[kc,6] . b_panel[kc,16] ----
inline void kernel_6x16(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                        bool accumulate) {
  // The tile of c is read (and written) once per kc-slice of K; for large y that is a miss to DRAM, 12 lines of
  // which would otherwise be waited for at the end. Prefetched now, they arrive while the FMAs run.
  for (int r = 0; r < 6; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av;
    av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += 6;
    b += 16;
  }
  const __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  for (int r = 0; r < 6; ++r) {
    float* cr = c + r * ldc;
    __m256 v0 = acc[2 * r], v1 = acc[2 * r + 1];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, v0);
    _mm256_storeu_ps(cr + 8, v1);
  }
}

// ---- GEMV (M <= 8): each row of w is read once, x (packed by matmul_avx2_gemv_pack_x) stays in L1 ----
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Rows of w per group for a tile of MS rows of x: MS*R accumulators + MS vectors of x + 1 of w fit the 16 ymm
// registers. Each accumulator gets one FMA per 8 columns, so a tile needs ~max(4 cycles of FMA latency, MS*R/2
// cycles of FMA issue) per 8 columns of R rows: M = 5 runs as one 5x2 tile, 6 as 3x3 + 3x3, 7 as 4x2 + 3x2, 8 as
// 4x2 + 4x2 (the best splits by that count).
constexpr int gemv_group_rows(int MS) { return MS <= 2 ? 4 : MS == 3 ? 3 : 2; }

// acc(MS x R) over k in [kb, ke) for rows m0..m0+MS of x (interleaved by 8, M rows in all) and the R rows of w from
// n (nr of them real), accumulated into part[r][m] (8 lanes each). PF: also prefetch, at the columns being read,
// from the rows pf and pf2 (pointers to column 0 of the area wanted next; see gemv_rows).
template <int MS, int R, DType T, bool PF>
inline void gemv_tile(const float* x, int M, int m0, const void* w, int64_t K, int64_t n, int nr, int64_t kb,
                      int64_t ke, const char* const* pf, const char* const* pf2, float* part) {
  constexpr int64_t kElemBytes = T == DType::f32 ? 4 : 2;
  constexpr int64_t kLineElems = 64 / kElemBytes;
  __m256 acc[MS][R];
  for (int m = 0; m < MS; ++m)
    for (int r = 0; r < R; ++r)
      acc[m][r] = kb == 0 ? _mm256_setzero_ps() : _mm256_load_ps(part + (r * M + m0 + m) * 8);
  for (int64_t k = kb; k < ke; k += 8) {
    __m256 xv[MS];
    for (int m = 0; m < MS; ++m) {
      xv[m] = _mm256_load_ps(x + ((k >> 3) * M + m0 + m) * 8);
      __asm__("" : "+x"(xv[m]));  // one load per x vector, not one per FMA as a memory operand
    }
    if (PF && (k & (kLineElems - 1)) == 0)
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(pf[r] + k * kElemBytes, _MM_HINT_T1);
        _mm_prefetch(pf2[r] + k * kElemBytes, _MM_HINT_T1);
      }
    for (int r = 0; r < R; ++r) {
      // a short last group repeats its first row instead of branching in the loop; its sums are dropped
      const __m256 wv = load8<T>(w, (n + (r < nr ? r : 0)) * K + k);
      for (int m = 0; m < MS; ++m) acc[m][r] = _mm256_fmadd_ps(xv[m], wv, acc[m][r]);
    }
  }
  for (int m = 0; m < MS; ++m)
    for (int r = 0; r < R; ++r) _mm256_store_ps(part + (r * M + m0 + m) * 8, acc[m][r]);
}

// Rows of w are taken kNB at a time, and K in chunks of KB with M*KB floats of x = 16 KB: the chunk of x stays in
// L1 while the rows of the block stream past it; partial sums (8 lanes) wait in `part` between chunks. x is
// interleaved by 8 ([k/8][m][8]) because its rows, K floats apart, would share L1 sets when K*4 is a multiple of
// 4 KB (M = 8, K = 4096: 8 GB/s -> 11 GB/s on one core). M > 5 runs as two tiles of x rows over the same group of w
// rows, the second reading w from L1: one tile of 6-8 rows would need more than the 16 registers (GCC spilled
// accumulators to the stack for a 6x2 tile: 16 GB/s from L2, now 22).
// Each group prefetches (into L2, one prefetch per line) the same columns of the rows one group ahead (>= 4 rows,
// >= 150 ns of FMAs, a DRAM latency): the hardware prefetcher alone kept too few lines in flight while the core was
// busy with FMAs, so load latency and compute added up instead of overlapping (M = 4 from DRAM, one core: 11 -> 21
// GB/s; M = 1: 23 -> 31 GB/s).
template <int M, DType T>
void gemv_rows(const float* x, const void* w, int64_t K, int64_t n0, int64_t n1, void* y, int64_t N) {
  constexpr int MA = M <= 5 ? M : M == 6 ? 3 : 4, MB = M - MA;  // see gemv_group_rows
  constexpr int R = gemv_group_rows(MA);
  constexpr int64_t kNB = 96;
  static_assert(kNB % R == 0 && MB <= 4, "row block must hold whole row groups; M <= 8");
  constexpr int64_t kPfRows = R * ((4 + R - 1) / R);  // whole groups, >= 4 rows (distance hardly matters: 1..4 rows)
  constexpr int64_t kElemBytes = T == DType::f32 ? 4 : 2;
  const int64_t K8 = K & ~int64_t(7);
  const int64_t KB = (16384 / (4 * M)) & ~int64_t(7);
  // Prefetching pays only when this thread's rows of w come from L3 or DRAM; from L2 it costs issue slots
  // (M = 1, 360 x 360: 88 -> 62 GB/s with it).
  const bool prefetch = (n1 - n0) * K * kElemBytes > (int64_t(1) << 20);
  // ... and, when a pass over a chunk of the block's rows fits in half of L2, also the next chunk of the same rows
  // (a chunk of a row is a short stream, 1-4 KB, that the hardware prefetcher meets cold; M = 4 / 8 from DRAM, one
  // core, K = 8192: 19 -> 24 / 11 -> 14 GB/s f32, 12.5 -> 16.5 / 6 -> 8 GB/s f16).
  const bool ahead = kNB * KB * kElemBytes <= (int64_t(512) << 10);
  alignas(32) float part[kNB * M * 8];
  for (int64_t nb = n0; nb < n1; nb += kNB) {
    const int64_t nbe = nb + kNB < n1 ? nb + kNB : n1;
    for (int64_t kb = 0; kb < K8 || kb == 0; kb += KB) {
      const int64_t ke = kb + KB < K8 ? kb + KB : K8;
      for (int64_t n = nb; n < nbe; n += R) {
        const int nr = nbe - n < R ? static_cast<int>(nbe - n) : R;
        const char* pf[R];
        const char* pf2[R];
        for (int r = 0; r < R; ++r) {
          const int64_t row = n + kPfRows + r < n1 ? n + kPfRows + r : n1 - 1;
          pf[r] = static_cast<const char*>(w) + row * K * kElemBytes;
          const int64_t row2 = n + r < n1 ? n + r : n1 - 1;
          pf2[r] = static_cast<const char*>(w) + (row2 * K + (ke < K8 && ahead ? KB : 0)) * kElemBytes;
        }
        float* p = part + (n - nb) * M * 8;
        if (prefetch)
          gemv_tile<MA, R, T, true>(x, M, 0, w, K, n, nr, kb, ke, pf, pf2, p);
        else
          gemv_tile<MA, R, T, false>(x, M, 0, w, K, n, nr, kb, ke, pf, pf2, p);
        if constexpr (MB > 0) gemv_tile<MB, R, T, false>(x, M, MA, w, K, n, nr, kb, ke, pf, pf2, p);
      }
      if (ke >= K8) break;
    }
    for (int64_t n = nb; n < nbe; ++n)
      for (int m = 0; m < M; ++m) {
        float s = hsum(_mm256_load_ps(part + ((n - nb) * M + m) * 8));
        for (int64_t k = K8; k < K; ++k) s += x[((K8 >> 3) * M + m) * 8 + (k - K8)] * load1<T>(w, n * K + k);
        store1(y, T, m * N + n, s);
      }
  }
}

template <DType T>
void gemv_dispatch(const float* x, int64_t M, const void* w, int64_t K, int64_t n0, int64_t n1, void* y, int64_t N) {
  switch (M) {
    case 1: gemv_rows<1, T>(x, w, K, n0, n1, y, N); return;
    case 2: gemv_rows<2, T>(x, w, K, n0, n1, y, N); return;
    case 3: gemv_rows<3, T>(x, w, K, n0, n1, y, N); return;
    case 4: gemv_rows<4, T>(x, w, K, n0, n1, y, N); return;
    case 5: gemv_rows<5, T>(x, w, K, n0, n1, y, N); return;
    case 6: gemv_rows<6, T>(x, w, K, n0, n1, y, N); return;
    case 7: gemv_rows<7, T>(x, w, K, n0, n1, y, N); return;
    default: gemv_rows<8, T>(x, w, K, n0, n1, y, N); return;
  }
}

}  // namespace

void matmul_avx2_pack(const void* src, DType t, int64_t ld, int64_t rows, int64_t kc, int32_t R, float* dst) {
  if (R == kMR)
    pack_dispatch<kMR>(src, t, ld, rows, kc, dst);
  else
    pack_dispatch<kNR>(src, t, ld, rows, kc, dst);
}

void matmul_avx2_macro(const float* ap, const float* bp, int64_t mc, int64_t nc, int64_t kc, float* c, int64_t ldc,
                       bool accumulate) {
  alignas(64) float tile[kMR * kNR];
  for (int64_t j = 0; j < nc; j += kNR) {
    const float* b = bp + j * kc;
    const int nr = nc - j < kNR ? static_cast<int>(nc - j) : kNR;
    for (int64_t i = 0; i < mc; i += kMR) {
      const float* a = ap + i * kc;
      float* ct = c + i * ldc + j;
      const int mr = mc - i < kMR ? static_cast<int>(mc - i) : kMR;
      if (mr == kMR && nr == kNR) {
        kernel_6x16(kc, a, b, ct, ldc, accumulate);
      } else {
        kernel_6x16(kc, a, b, tile, kNR, false);
        for (int r = 0; r < mr; ++r)
          for (int q = 0; q < nr; ++q) {
            const float v = tile[r * kNR + q];
            ct[r * ldc + q] = accumulate ? ct[r * ldc + q] + v : v;
          }
      }
    }
  }
}

void matmul_avx2_gemv_pack_x(const void* x, DType t, int64_t M, int64_t K, float* xp) {
  const int64_t K8 = K & ~int64_t(7);
  for (int64_t m = 0; m < M; ++m) {
    int64_t k = 0;
    switch (t) {
      case DType::f16:
        for (; k < K8; k += 8) _mm256_store_ps(xp + ((k >> 3) * M + m) * 8, load8<DType::f16>(x, m * K + k));
        break;
      case DType::bf16:
        for (; k < K8; k += 8) _mm256_store_ps(xp + ((k >> 3) * M + m) * 8, load8<DType::bf16>(x, m * K + k));
        break;
      default:
        for (; k < K8; k += 8) _mm256_store_ps(xp + ((k >> 3) * M + m) * 8, load8<DType::f32>(x, m * K + k));
        break;
    }
    if (K8 < K) {
      float* tail = xp + ((K8 >> 3) * M + m) * 8;
      for (int q = 0; q < 8; ++q) {
        const int64_t i = m * K + K8 + q;
        tail[q] = K8 + q >= K ? 0.0f
                  : t == DType::f16 ? load1<DType::f16>(x, i)
                  : t == DType::bf16 ? load1<DType::bf16>(x, i) : load1<DType::f32>(x, i);
      }
    }
  }
}

void matmul_avx2_from_f32(const float* src, int64_t n, void* dst, DType t) {
  int64_t i = 0;
  uint16_t* d = static_cast<uint16_t*>(dst);
  switch (t) {
    case DType::f16:
      for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    case DType::bf16:
      for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), bf16_from8(_mm256_loadu_ps(src + i)));
      break;
    default:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
  }
  for (; i < n; ++i) store1(dst, t, i, src[i]);
}

void matmul_avx2_gemv(const float* x, int64_t M, const void* w, DType t, int64_t K, int64_t n0, int64_t n1, void* y,
                      int64_t N) {
  switch (t) {
    case DType::f16: gemv_dispatch<DType::f16>(x, M, w, K, n0, n1, y, N); return;
    case DType::bf16: gemv_dispatch<DType::bf16>(x, M, w, K, n0, n1, y, N); return;
    default: gemv_dispatch<DType::f32>(x, M, w, K, n0, n1, y, N); return;
  }
}

}  // namespace lk
