// paged_attention_decode on CUDA: one new query per sequence over its paged KV cache, split-K over the context
// (flash-decoding) with a merge kernel. Spec: cpu/ref/paged_attention_ref.cc; cache layout and quantization:
// common/kv.h; the CPU kernel with the same partitions: cpu/paged_attention.cc.
//
// Math. Sequence b, context length L, query position pos = L - 1, kept positions [lo, pos] with lo = 0 or, with a
// sliding window W > 0, max(0, pos - W + 1). Query head h reads KV head h / G (G = H / Hkv). For position t:
//   s_t = (scale q) . k_t  (k_t dequantized: f8e4m3 value times the row's scale), then cap tanh(s / cap) when
//   cap > 0, then + slope_h (t - pos) with ALiBi;   y = sum_t e^(s_t - M) v_t / sum_t e^(s_t - M).
// i8 caches follow kv.h's integer spec: q' = f32(q) scale quantized per row (s_q = amax / 127, round half to even,
// as quantize_act_block), s_t = kv_score_i8(exact integer dot, s_k, s_q, cap, slope), and per aligned chunk of 16
// positions: m_k = max s, e_t = kv_exp(s_t - m_k), w_t = e_t s_v(t), u_t = rint(w_t 255 / max w) (kv_quantize_weights),
// contribution (max w / 255) u_t v8_t. Those steps are computed here with the same f32 operations in the same order
// (fmaf where kv.h has std::fma, rintf for nearbyint, IEEE division), so the scores and the u_t are the reference's
// bits up to the order of the f32 sums that follow. The float dtypes use the same chunk structure with
// e_t = expf(s_t - m_k) and w_t = e_t (times s_v for f8e4m3): one code path for every cache type.
// Online softmax per query head across tiles (running max m, running sum l, unnormalized accumulator acc, all f32):
//   M = max_k m_k over the tile's chunks, m' = max(m, M), alpha = e^(m - m'), F_k = e^(m_k - m'),
//   l' = alpha l + sum_k F_k sum_{t in k} e_t,   acc' = alpha acc + sum_t F_k(t) w_t v_t.
// A partition ends with (m, l, acc); y = acc / l for a single partition, and the merge kernel combines P of them:
//   M = max_p m_p, l = sum_p l_p e^(m_p - M), acc = sum_p acc_p e^(m_p - M), y = acc / l.
// L = 0 gives l = 0 and y = 0 (the spec's zero row). A NaN in the cache at a kept position reaches l and acc (NaN
// never wins a max, but e^(NaN) is NaN and 0 * NaN is NaN), so y is NaN there, as in the reference.
//
// Work decomposition. One thread block of kThreads = 128 threads (4 warps) per (sequence b, KV head, head chunk,
// partition), 1-D grid in that order, partition fastest. The query heads that share a KV head are handled by one
// block, GB at a time (GB in {1, 2, 4, 8}: the smallest that holds G, else 8 with ceil(G / 8) head chunks), so each
// K/V row is read from memory once per head chunk (once for every G <= 8). Within a block the positions go by
// tiles of T positions (T a multiple of 16, at most 64, T * row stride <= kTileBytes), each tile:
//   1. rows: position -> block id through the table (checked), K and V row offsets and scales into shared memory;
//   2. copy: the tile's K and V rows, global -> shared, with cp.async (16-byte units when the cache pointer and row
//      bytes allow, else 8/4/2/1; a thread keeps one unit column of every rstep-th row), then one wait: 2 * T rows
//      in flight per block;
//   3. scores: (head, row) pairs over the threads, consecutive threads on consecutive rows; the rows' shared stride
//      is an odd number of 16-byte units, so the 16-byte reads of 8 consecutive threads hit 8 different bank
//      groups; q (pre-scaled, f32; integer values for i8) is read as a broadcast;
//   4. chunks: one thread per (head, chunk of 16): m_k, e_t, w_t (u_t for i8), sum e;
//   5. heads: one thread per head: the online-softmax update above (alpha, F_k, l);
//   6. p.v: each thread owns a slice of VE = 8 elements of the row (4 for f32) and a residue class of the tile's
//      rows (threads = slices x row groups), acc[GB][VE] in registers, rows read from shared memory.
// At the end the row groups' accumulators are summed through shared memory (reusing the tile buffers).
// Shared memory (static): K and V tiles 2 x kTileBytes (16640 B: 16 rows of D = 256 f32 with padding), q [8][256]
// f32, scores/weights [8][64], small per-row and per-chunk arrays: ~45 KB (GB = 8; ~35 KB for GB = 1), i.e. 4 resident blocks per
// SM on sm_90 (228 KB; 3 on sm_80), and __launch_bounds__(128, 4) keeps the registers at <= 128 for that.
// Head sizes up to kMaxD = 256 (backend.cu refuses larger D before anything is enqueued); any D <= 256 and any
// block size P work (odd ones take the narrow copy units and the scalar tails).
//
// Partitioning rule (i[1] = partition size in tokens; 0 = automatic). The host does not know the context lengths
// (they are in device memory, and reading them would wait for the stream), so it sizes the grid by the longest
// context the table allows: Lmax = maxBlocks * P, or W when a window is shorter. Automatic: target about two waves
// of resident blocks, 2 * 4 * SMs blocks; parts = ceil(target / (B * Hkv * head chunks)); psize =
// ceil(Lmax / parts) rounded up to a multiple of T, at least 256 (so each partition amortizes its q setup and the
// merge stays a small fraction of the traffic: (D + 2) * 4 bytes per head and partition against 2 * psize * D * es /
// G bytes of cache). A caller's size is rounded up to a multiple of 16 (the i8 chunks must not be cut). Sequence b
// then uses ceil(len_b / psize) partitions of its kept range [lo, pos] (inner boundaries aligned down to multiples
// of 16, as the CPU kernel's); the blocks of partitions past that exit after writing an empty state (m = -inf,
// l = 0). One partition in all: the block writes y itself, no scratch and no merge. Otherwise the states go to a
// cuda_malloc'ed scratch [B, H, parts, D + 2] f32 (m, l, acc), freed with cuda_free after the merge is enqueued
// (stream-ordered, so the free waits for the merge).
// Example: H200 (132 SMs), B = 8, Hkv = 8, G = 4, D = 128, f16, context 8192 (maxBlocks = 513): 64 (b, KV head)
// pairs, parts = 17, psize = ceil(8208 / 17) -> 528 (T = 48), 16 partitions, 1024 blocks ~ 1.94 waves of 528.
//
// Predicted bandwidth (not measured: never run on a GPU). Traffic at long context is the cache (2 * L * D * es per
// KV head); q, the scratch (16 x 32 x 8 x 130 x 4 B ~ 2.1 MB written and read against 268 MB of cache in the
// example) and the tables are < 2%. Each block keeps up to 2 * T rows (26 KB for f16 D = 128) in flight and 4
// blocks reside per SM, ~104 KB per SM, well above the ~35 KB per SM that 4.3 TB/s x ~1 us latency needs; the
// per-tile compute (T x G x D FMAs over 128 threads, ~200 cycles) does not overlap the block's own next copy but
// is covered by the other 3 blocks. Losses: the partly filled last wave, the partitions' q setup, per-tile barriers.
// Instructions, the other limit: per SM, 4.3 TB/s / 132 SMs ~ 18 bytes per cycle at ~1.8 GHz, i.e. a 26 KB f16
// tile (T = 48) every ~1450 cycles, while the block's 4 warps issue ~4 x 1100 instructions for it (scores: G x D
// FMAs per row plus the conversions and shared reads, ~480 per thread; p.v ~320; copies, masks and the chunk and
// head steps ~300), ~1100 issue cycles at 4 per cycle: below the memory time for G <= 4 but not by much; G = 8 in
// f32 FMAs (2 x 8 per cache element) is near the FMA limit, so there tensor-core (mma) scores and p.v would be the
// next step. Expected ~0.8-0.85 of copy bandwidth for f16 / bf16 with G = 4 at B = 8, L = 8192 (the target); i8 /
// f8e4m3 move half the bytes for the same instructions, so they are instruction-bound: ~0.5-0.7 of it.
//
// Data-dependent errors (the reference returns a RangeError; here the data are on the device and the launch does
// not wait). A block id outside [0, numBlocks) at a position the query reads, a context length beyond the table
// (L > maxBlocks * P) or a negative length: nothing is read out of bounds (the bad rows are not loaded, and their
// positions are masked), and every head of that sequence gets a NaN output row (a partition that met the error
// writes l = NaN, which the merge propagates), so the error shows in whatever uses the rows, like layers.cu's bad
// ids. Ids outside the kept range (past the context, before the window) are never read, as in the reference.
// Versions: v1 (this), not yet run on a GPU. Run: build-gpu/tools/lk_check --backend cuda (correctness),
// native/cuda/emu/run.sh paged_attention_decode (the same source on the CPU, no GPU; also the bad-id check).
#include <cstring>
#include <type_traits>

#include "../common/kv.h"
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxD = 256;
constexpr int kMaxT = 64;            // tokens per tile (a multiple of kChunk)
constexpr int kChunk = 16;           // kv.h's kKvChunk: the i8 spec's aligned chunks
constexpr int kMaxChunks = kMaxT / kChunk;
constexpr int kTileBytes = 16640;    // one K (or V) tile: 16 rows of D = 256 f32 with the 16-byte pad
constexpr int kMaxGB = 8;            // query heads per block
constexpr int kMergeThreads = 64;
constexpr int kResidentBlocks = 4;   // per SM: ~45 KB of shared memory each (228 KB per SM on sm_90); <= 128 registers
static_assert(kThreads * kMaxGB * 8 * 4 <= 2 * kTileBytes, "the final reduction reuses the tile buffers");

// The f8e4m3 cache's storage type (a raw byte).
struct f8_kv {
  uint8_t bits;
};

struct DecodeArgs {
  const void* q;
  const void* kv;
  const float* kv_scale;  // null for the float dtypes
  const int32_t* tables;
  const int32_t* lens;
  const float* slopes;  // null without ALiBi
  void* y;
  float* part;  // scratch [B, H, parts, D + 2] or null (one partition: y directly)
  int64_t H, hkv, G, D, P, nblocks, max_blocks, window, psize, parts, head_chunks;
  int32_t q_dtype, y_dtype;
  float scale, cap;
  int32_t tile;    // T
  int32_t stride;  // shared bytes per row
  int32_t unit;    // global -> shared copy unit in bytes (16, 8, 4, 2 or 1)
};

__device__ __forceinline__ float nan_f32() { return __uint_as_float(0x7fc00000u); }

// ---- element decoding (f8e4m3: dtype.h's f8e4m3_to_f32, a host-and-device function) ----
// Element i of a little-endian run of words w (Kv-typed).
template <class Kv>
__device__ __forceinline__ float decode(const uint32_t* w, int i);
template <>
__device__ __forceinline__ float decode<float>(const uint32_t* w, int i) {
  return __uint_as_float(w[i]);
}
template <>
__device__ __forceinline__ float decode<f16_t>(const uint32_t* w, int i) {
  return to_f32(f16_t{static_cast<uint16_t>(w[i >> 1] >> ((i & 1) * 16))});
}
template <>
__device__ __forceinline__ float decode<bf16_t>(const uint32_t* w, int i) {
  return to_f32(bf16_t{static_cast<uint16_t>(w[i >> 1] >> ((i & 1) * 16))});
}
template <>
__device__ __forceinline__ float decode<int8_t>(const uint32_t* w, int i) {
  return static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(w[i >> 2] >> ((i & 3) * 8))));
}
template <>
__device__ __forceinline__ float decode<f8_kv>(const uint32_t* w, int i) {
  return f8e4m3_to_f32((w[i >> 2] >> ((i & 3) * 8)) & 0xffu);
}

template <int Bytes>
struct RawVec;
template <>
struct RawVec<16> {
  using type = uint4;
};
template <>
struct RawVec<8> {
  using type = uint2;
};
template <>
struct RawVec<4> {
  using type = uint32_t;
};

// N elements from shared memory at p (aligned to N * sizeof(Kv) bytes) as one vector read.
template <class Kv, int N>
__device__ __forceinline__ void load_vals(const unsigned char* p, float* out) {
  constexpr int kBytes = N * static_cast<int>(sizeof(Kv));
  using V = typename RawVec<kBytes>::type;
  const V r = *reinterpret_cast<const V*>(p);
  uint32_t w[kBytes / 4];
  memcpy(w, &r, kBytes);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = decode<Kv>(w, i);
}

// Element j of a row (any alignment of j).
template <class Kv>
__device__ __forceinline__ float load_one(const unsigned char* row, int j) {
  uint32_t w = 0;
  memcpy(&w, row + static_cast<size_t>(j) * sizeof(Kv), sizeof(Kv));
  return decode<Kv>(&w, 0);
}

// q and y of a float dtype, by element.
__device__ __forceinline__ float load_q(const void* p, int32_t dt, int64_t i) {
  if (dt == static_cast<int32_t>(DType::f16)) return to_f32(static_cast<const f16_t*>(p)[i]);
  if (dt == static_cast<int32_t>(DType::bf16)) return to_f32(static_cast<const bf16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void store_y(void* p, int32_t dt, int64_t i, float v) {
  if (dt == static_cast<int32_t>(DType::f16))
    static_cast<f16_t*>(p)[i] = from_f32<f16_t>(v);
  else if (dt == static_cast<int32_t>(DType::bf16))
    static_cast<bf16_t*>(p)[i] = from_f32<bf16_t>(v);
  else
    static_cast<float*>(p)[i] = v;
}

// ---- kv.h's i8 spec on the device (same operations, same order; kv_exp is kv.h's own, host and device) ----
__device__ __forceinline__ float score_i8(float dot, float k_scale, float q_scale, float cap, float slope, int64_t t,
                                          int64_t pos) {
  float v = __fmul_rn(dot, k_scale);
  v = __fmul_rn(v, q_scale);
  if (cap > 0) v = __fmul_rn(cap, tanhf(v / cap));
  if (slope != 0.0f) v = fmaf(slope, static_cast<float>(t - pos), v);
  return v;
}

// ---- asynchronous global -> shared copies (plain copies under the emulation, which has no __CUDA_ARCH__) ----
__device__ __forceinline__ void copy_unit(unsigned char* dst, const unsigned char* src, int unit) {
#if defined(__CUDA_ARCH__)
  if (unit >= 4) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    if (unit == 16)
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src));
    else if (unit == 8)
      asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(s), "l"(src));
    else
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(src));
    return;
  }
  if (unit == 2)
    *reinterpret_cast<uint16_t*>(dst) = *reinterpret_cast<const uint16_t*>(src);
  else
    *dst = *src;
#else
  memcpy(dst, src, static_cast<size_t>(unit));
#endif
}
__device__ __forceinline__ void copy_wait_all() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// One partition of one (sequence, KV head, head chunk); see the file header for the steps and the layouts.
template <class Kv, int GB>
__global__ void __launch_bounds__(kThreads, kResidentBlocks) paged_decode_kernel(const DecodeArgs a) {
  constexpr bool kI8 = std::is_same<Kv, int8_t>::value;
  constexpr bool kScaled = kI8 || std::is_same<Kv, f8_kv>::value;
  constexpr int kEs = static_cast<int>(sizeof(Kv));
  // Elements per shared read in the scores: 16 bytes, but 8 for f8e4m3, whose 16 decoded values at once cost the
  // registers that __launch_bounds__(128, 4) does not have (ptxas spilled at GB = 8).
  constexpr int kN = std::is_same<Kv, f8_kv>::value ? 8 : 16 / kEs;
  constexpr int kVE = std::is_same<Kv, float>::value ? 4 : 8;  // elements per p.v slice

  __shared__ __align__(16) unsigned char sK[kTileBytes];
  __shared__ __align__(16) unsigned char sV[kTileBytes];
  __shared__ __align__(16) float sQ[GB][kMaxD];
  __shared__ float sS[GB][kMaxT];  // scores, then weights w_t (u_t c_k for i8)
  __shared__ float sCM[GB][kMaxChunks], sCE[GB][kMaxChunks], sF[GB][kMaxChunks];
  __shared__ float sM[GB], sL[GB], sAlpha[GB], sQs[GB];
  __shared__ int64_t sOffK[kMaxT];  // byte offsets of the tile's rows in kv, -1: not loaded
  __shared__ float sKs[kMaxT], sVs[kMaxT];
  __shared__ int sBad;

  const int tid = static_cast<int>(threadIdx.x);
  int64_t bi = blockIdx.x;
  const int64_t part = bi % a.parts;
  bi /= a.parts;
  const int64_t hc = bi % a.head_chunks;
  bi /= a.head_chunks;
  const int64_t kh = bi % a.hkv;
  const int64_t b = bi / a.hkv;
  const int64_t D = a.D;
  const int64_t h0 = kh * a.G + hc * GB;              // first query head of the block
  const int nh = static_cast<int>(a.G - hc * GB < GB ? a.G - hc * GB : GB);  // heads of the block in use

  const int64_t L = a.lens[b];
  const bool bad_seq = L < 0 || L > a.max_blocks * a.P;
  const int64_t pos = L - 1;
  const int64_t lo = a.window > 0 && pos - a.window + 1 > 0 ? pos - a.window + 1 : 0;
  const int64_t len = bad_seq ? 0 : pos + 1 - lo;  // kept positions (0 for L = 0)
  const int64_t nparts = (len + a.psize - 1) / a.psize;
  // The block's output: y rows (one partition in all) or its partial state.
  auto write_state = [&](int g, int64_t j, float m, float l, float accv) {
    const int64_t h = h0 + g;
    if (!a.part) {
      if (j >= 0) store_y(a.y, a.y_dtype, (b * a.H + h) * D + j, l == 0.0f ? 0.0f : accv / l);
      return;
    }
    float* st = a.part + ((b * a.H + h) * a.parts + part) * (D + 2);
    if (j < 0) {
      st[0] = m;
      st[1] = l;
    } else {
      st[2 + j] = accv;
    }
  };
  if (bad_seq || part >= nparts) {  // block-uniform: before any barrier
    const float l = bad_seq ? nan_f32() : 0.0f;
    const float m = bad_seq ? 0.0f : -INFINITY;
    for (int64_t o = tid; o < static_cast<int64_t>(nh) * (D + 1); o += kThreads) {
      const int g = static_cast<int>(o / (D + 1));
      const int64_t j = o % (D + 1) - 1;  // -1: the (m, l) pair
      if (a.part || part == 0) write_state(g, j, m, l, bad_seq ? nan_f32() : 0.0f);
    }
    return;
  }
  const int64_t ps = part == 0 ? lo : (lo + part * a.psize) / kChunk * kChunk;
  const int64_t pe = part + 1 == nparts ? pos + 1 : (lo + (part + 1) * a.psize) / kChunk * kChunk;

  // q of the block's heads, times scale, f32 (heads past nh: zeros); i8: quantized, as integers in f32.
  for (int64_t o = tid; o < static_cast<int64_t>(GB) * D; o += kThreads) {
    const int g = static_cast<int>(o / D);
    const int64_t j = o % D;
    sQ[g][j] = g < nh ? __fmul_rn(load_q(a.q, a.q_dtype, (b * a.H + h0 + g) * D + j), a.scale) : 0.0f;
  }
  if (tid == 0) sBad = 0;
  __syncthreads();
  if (tid < GB) {
    sM[tid] = -INFINITY;
    sL[tid] = 0.0f;
    if (kI8) {  // quantize_act_block: amax (NaN/Inf: scale NaN, q = 0), rint(x * (127 / amax)), clamp
      float amax = 0.0f;
      bool finite = true;
      for (int64_t j = 0; j < D; ++j) {
        const float v = fabsf(sQ[tid][j]);
        finite = finite && v <= 3.40282347e+38f;
        amax = v > amax ? v : amax;
      }
      const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t j = 0; j < D; ++j) {
        float v = finite ? rintf(__fmul_rn(sQ[tid][j], id)) : 0.0f;
        sQ[tid][j] = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
      }
      sQs[tid] = finite ? amax / 127.0f : nan_f32();
    }
  }
  __syncthreads();

  const int T = a.tile;
  const int64_t P = a.P, D64 = D;
  const int32_t* table = a.tables + b * a.max_blocks;
  const unsigned char* kvb = static_cast<const unsigned char*>(a.kv);
  const int64_t row_bytes = D * kEs;
  const int upr = static_cast<int>(row_bytes / a.unit);  // copy units per row
  const int u0 = tid % upr, r0 = tid / upr, rstep = upr <= kThreads ? kThreads / upr : 1;
  const int ns = static_cast<int>((D + kVE - 1) / kVE);   // p.v slices
  const int ng = kThreads / ns;                           // p.v row groups (ns <= 64)
  const int slice = tid % ns, grp = tid / ns;
  const bool pv_thread = grp < ng;
  float acc[GB][kVE];
#pragma unroll
  for (int g = 0; g < GB; ++g)
#pragma unroll
    for (int e = 0; e < kVE; ++e) acc[g][e] = 0.0f;

  for (int64_t tb = ps / kChunk * kChunk; tb < pe; tb += T) {
    // 1. rows of the tile: positions [tb, tb + T) restricted to [ps, pe)
    if (tid < T) {
      const int64_t t = tb + tid;
      int64_t off = -1;
      if (t >= ps && t < pe) {
        const int64_t j = t / P;
        const int64_t blk = j < a.max_blocks ? table[j] : -1;
        if (blk < 0 || blk >= a.nblocks) {
          sBad = 1;
        } else {
          const int64_t tile0 = (blk * a.hkv + kh) * 2;  // K tile of (blk, kh); V is the next one
          off = (tile0 * P + t % P) * row_bytes;
          if (kScaled) {
            sKs[tid] = a.kv_scale[tile0 * P + t % P];
            sVs[tid] = a.kv_scale[(tile0 + 1) * P + t % P];
          }
        }
      }
      sOffK[tid] = off;
    }
    __syncthreads();
    // 2. copy K and V rows into shared memory (V row = K row + P rows). A thread keeps one unit column u0 and takes
    // every rstep-th row, so the loop has no divisions (they would cost more instructions than the copy itself).
    if (upr <= kThreads) {
      if (r0 < rstep)
        for (int r = r0; r < T; r += rstep) {
          const int64_t off = sOffK[r];
          if (off < 0) continue;
          const unsigned char* src = kvb + off + u0 * a.unit;
          copy_unit(sK + r * a.stride + u0 * a.unit, src, a.unit);
          copy_unit(sV + r * a.stride + u0 * a.unit, src + P * row_bytes, a.unit);
        }
    } else {  // long rows in narrow units (a misaligned cache)
      for (int i = tid; i < T * upr; i += kThreads) {
        const int r = i / upr, u = i % upr;
        const int64_t off = sOffK[r];
        if (off < 0) continue;
        const unsigned char* src = kvb + off + static_cast<int64_t>(u) * a.unit;
        copy_unit(sK + r * a.stride + u * a.unit, src, a.unit);
        copy_unit(sV + r * a.stride + u * a.unit, src + P * row_bytes, a.unit);
      }
    }
    copy_wait_all();
    __syncthreads();
    // 3. scores (masked rows: -inf)
    for (int p = tid; p < GB * T; p += kThreads) {
      const int g = p / T, r = p % T;
      float s = -INFINITY;
      if (sOffK[r] >= 0) {
        const unsigned char* krow = sK + r * a.stride;
        const float* qg = sQ[g];
        float dot = 0.0f;
        int j = 0;
        for (; j + kN <= D; j += kN) {
          float kv[kN];
          load_vals<Kv, kN>(krow + j * kEs, kv);
#pragma unroll
          for (int e = 0; e < kN; ++e) dot = fmaf(qg[j + e], kv[e], dot);
        }
        for (; j < D; ++j) dot = fmaf(qg[j], load_one<Kv>(krow, j), dot);
        const int64_t t = tb + r;
        const float slope = a.slopes && g < nh ? a.slopes[h0 + g] : 0.0f;
        if (kI8) {
          s = score_i8(dot, sKs[r], sQs[g], a.cap, slope, t, pos);
        } else {
          s = kScaled ? dot * sKs[r] : dot;
          if (a.cap > 0) s = a.cap * tanhf(s / a.cap);
          if (a.slopes) s = fmaf(slope, static_cast<float>(t - pos), s);
        }
      }
      sS[g][r] = s;
    }
    __syncthreads();
    // 4. chunks of 16 positions: max, e_t, weights, sum e
    const int nck = T / kChunk;
    if (tid < GB * nck) {
      const int g = tid / nck, k = tid % nck;
      float m = -INFINITY;
      int n = 0;
      for (int r = k * kChunk; r < (k + 1) * kChunk; ++r)
        if (sOffK[r] >= 0) {
          m = sS[g][r] > m ? sS[g][r] : m;
          ++n;
        }
      float esum = 0.0f, wmax = 0.0f;
      bool finite = true;
      for (int r = k * kChunk; r < (k + 1) * kChunk; ++r) {
        if (sOffK[r] < 0) {
          sS[g][r] = 0.0f;
          continue;
        }
        const float e = kI8 ? kv_exp(sS[g][r] - m) : expf(sS[g][r] - m);
        esum += e;
        const float w = kScaled ? __fmul_rn(e, sVs[r]) : e;
        finite = finite && w <= 3.40282347e+38f && w >= 0.0f;
        wmax = w > wmax ? w : wmax;
        sS[g][r] = w;
      }
      if (kI8 && n > 0) {  // kv_quantize_weights: u = rint(w * (255 / wmax)), weight u * (wmax / 255)
        const float inv = finite && wmax > 0.0f ? 255.0f / wmax : 0.0f;
        const float c = !finite ? nan_f32() : (wmax > 0.0f ? wmax / 255.0f : 0.0f);
        for (int r = k * kChunk; r < (k + 1) * kChunk; ++r) {
          if (sOffK[r] < 0) continue;
          float u = rintf(__fmul_rn(sS[g][r], inv));
          u = u > 255.0f ? 255.0f : u;
          sS[g][r] = finite ? __fmul_rn(u, c) : nan_f32();
        }
      }
      sCM[g][k] = m;
      sCE[g][k] = n > 0 ? esum : 0.0f;
    }
    __syncthreads();
    // 5. the online-softmax update of each head
    if (tid < GB) {
      const int g = tid;
      float M = -INFINITY;
      for (int k = 0; k < nck; ++k) M = fmaxf(M, sCM[g][k]);
      const float m_old = sM[g], m_new = fmaxf(m_old, M);
      const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
      float l = sL[g] * alpha;
      for (int k = 0; k < nck; ++k) {
        const float f = sCM[g][k] == -INFINITY ? 0.0f : expf(sCM[g][k] - m_new);
        sF[g][k] = f;
        l += f * sCE[g][k];
      }
      sL[g] = l;
      sM[g] = m_new;
      sAlpha[g] = alpha;
    }
    __syncthreads();
    // 6. p.v: acc = alpha acc + sum_rows F w v
    if (pv_thread) {
#pragma unroll
      for (int g = 0; g < GB; ++g)
#pragma unroll
        for (int e = 0; e < kVE; ++e) acc[g][e] *= sAlpha[g];
      const int64_t j0 = static_cast<int64_t>(slice) * kVE;
      const bool full = j0 + kVE <= D64;
      for (int r = grp; r < T; r += ng) {
        if (sOffK[r] < 0) continue;
        const unsigned char* vrow = sV + r * a.stride;
        float v[kVE];
        if (full) {
          load_vals<Kv, kVE>(vrow + j0 * kEs, v);
        } else {
#pragma unroll
          for (int e = 0; e < kVE; ++e) v[e] = j0 + e < D64 ? load_one<Kv>(vrow, static_cast<int>(j0 + e)) : 0.0f;
        }
#pragma unroll
        for (int g = 0; g < GB; ++g) {
          const float w = sS[g][r] * sF[g][r / kChunk];
#pragma unroll
          for (int e = 0; e < kVE; ++e) acc[g][e] = fmaf(w, v[e], acc[g][e]);
        }
      }
    }
    __syncthreads();  // the next tile overwrites the rows, scores and weights
  }

  // Sum the row groups' accumulators (the tile buffers are free now).
  float* red = reinterpret_cast<float*>(sK);  // [thread][GB][kVE], sK and sV contiguous or not: 2 regions
  float* red2 = reinterpret_cast<float*>(sV);
  constexpr int kPer = GB * kVE;
  const int half = kTileBytes / 4 / kPer;  // threads whose slots fit in sK
  if (pv_thread) {
    float* dst = tid < half ? red + tid * kPer : red2 + (tid - half) * kPer;
#pragma unroll
    for (int g = 0; g < GB; ++g)
#pragma unroll
      for (int e = 0; e < kVE; ++e) dst[g * kVE + e] = acc[g][e];
  }
  __syncthreads();
  const bool bad = sBad != 0;
  for (int64_t o = tid; o < static_cast<int64_t>(nh) * (D + 1); o += kThreads) {
    const int g = static_cast<int>(o / (D + 1));
    const int64_t j = o % (D + 1) - 1;
    if (j < 0) {
      if (a.part) write_state(g, -1, bad ? 0.0f : sM[g], bad ? nan_f32() : sL[g], 0.0f);
      continue;
    }
    const int sl = static_cast<int>(j / kVE), e = static_cast<int>(j % kVE);
    float s = 0.0f;
    for (int q = 0; q < ng; ++q) {
      const int th = q * ns + sl;
      const float* src = th < half ? red + th * kPer : red2 + (th - half) * kPer;
      s += src[g * kVE + e];
    }
    write_state(g, j, sM[g], bad ? nan_f32() : sL[g], bad ? nan_f32() : s);
  }
}

// y[b, h] from the partitions' states (empty partitions, m = -inf and l = 0, add nothing).
__global__ void __launch_bounds__(kMergeThreads) paged_decode_merge_kernel(const float* __restrict__ part, void* y,
                                                                           int32_t y_dtype, int64_t parts, int64_t D) {
  const int64_t row = blockIdx.x;  // b * H + h
  const float* st = part + row * parts * (D + 2);
  float M = -INFINITY;
  for (int64_t p = 0; p < parts; ++p) M = fmaxf(M, st[p * (D + 2)]);
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    float l = 0.0f, acc = 0.0f;
    for (int64_t p = 0; p < parts; ++p) {
      const float* s = st + p * (D + 2);
      if (s[0] == -INFINITY && s[1] == 0.0f) continue;
      const float f = expf(s[0] - M);
      l += s[1] * f;
      acc += s[2 + j] * f;
    }
    store_y(y, y_dtype, row * D + j, l == 0.0f ? 0.0f : acc / l);
  }
}

template <class Kv, int GB>
void launch_decode(const DecodeArgs& d, int64_t blocks, cudaStream_t s) {
  paged_decode_kernel<Kv, GB><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(d);
}

template <class Kv>
void launch_decode_gb(const DecodeArgs& d, int gb, int64_t blocks, cudaStream_t s) {
  switch (gb) {
    case 1: launch_decode<Kv, 1>(d, blocks, s); break;
    case 2: launch_decode<Kv, 2>(d, blocks, s); break;
    case 4: launch_decode<Kv, 4>(d, blocks, s); break;
    default: launch_decode<Kv, 8>(d, blocks, s); break;
  }
}

}  // namespace

Status paged_attention_decode_cuda(const OpArgs& a) {
  const char* op = "paged_attention_decode";
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, op, &dev));
  const TensorView &q = a.in[0], &kv = a.in[1], &kv_scale = a.in[2], &bt = a.in[3], &lens = a.in[4], &alibi = a.in[5];
  const TensorView& y = a.out[0];
  const KvGeom g(kv);
  const int64_t B = lens.shape[0], H = q.shape[1], D = g.d;
  if (B == 0 || H == 0 || D == 0) return cuda_last_error(op);
  if (D > kMaxD)
    return unsupported(std::string(op) + ": the cuda kernel takes head sizes up to " + std::to_string(kMaxD) +
                       ", got D = " + std::to_string(D));
  if (g.hkv <= 0 || H % g.hkv != 0)
    return internal_error(std::string(op) + ": expected H a multiple of Hkv, got H = " + std::to_string(H) +
                          ", Hkv = " + std::to_string(g.hkv));
  const int64_t G = H / g.hkv;
  const int gb = G <= 1 ? 1 : (G <= 2 ? 2 : (G <= 4 ? 4 : 8));
  const int64_t head_chunks = (G + gb - 1) / gb;
  const size_t es = dtype_size(g.dtype);
  const int64_t row_bytes = D * static_cast<int64_t>(es);
  int64_t units16 = (row_bytes + 15) / 16;
  if (units16 % 2 == 0) ++units16;  // odd: conflict-free 16-byte reads of consecutive rows
  const int64_t stride = units16 * 16;
  int64_t T = kTileBytes / stride / kChunk * kChunk;
  T = T < kChunk ? kChunk : (T > kMaxT ? kMaxT : T);
  int unit = 16;
  while (unit > 1 && (row_bytes % unit != 0 || !aligned_to(kv.data, static_cast<size_t>(unit)))) unit /= 2;

  // Partitions: see the file header.
  const int64_t window = a.params.i[0];
  int64_t lmax = bt.shape[1] * g.p;
  if (window > 0 && window < lmax) lmax = window;
  if (lmax < 1) lmax = 1;
  const int64_t units = B * g.hkv * head_chunks;
  int64_t psize = a.params.i[1];
  if (psize > 0) {
    psize = (psize + kChunk - 1) / kChunk * kChunk;
  } else {
    const int sms = cuda_sm_count(dev);
    const int64_t target = 2 * kResidentBlocks * static_cast<int64_t>(sms > 0 ? sms : 132);
    const int64_t want = (target + units - 1) / units;
    psize = (lmax + want - 1) / want;
    psize = (psize + T - 1) / T * T;
    if (psize < 256) psize = 256;
  }
  if (psize > lmax) psize = lmax;                   // one partition
  psize = (psize + kChunk - 1) / kChunk * kChunk;  // multiples of 16 (lmax may be odd)
  const int64_t parts = (lmax + psize - 1) / psize;
  const int64_t blocks = units * parts;
  if (blocks > 2147483647LL)
    return Status(Code::range, std::string(op) + ": expected at most 2^31 - 1 thread blocks, got " + std::to_string(blocks) +
                                   " (B * Hkv * head chunks * partitions); use a larger partition size");

  DecodeArgs d;
  d.q = q.data;
  d.kv = kv.data;
  d.kv_scale = g.quantized() ? static_cast<const float*>(kv_scale.data) : nullptr;
  d.tables = static_cast<const int32_t*>(bt.data);
  d.lens = static_cast<const int32_t*>(lens.data);
  d.slopes = alibi.numel() ? static_cast<const float*>(alibi.data) : nullptr;
  d.y = y.data;
  d.part = nullptr;
  d.H = H, d.hkv = g.hkv, d.G = G, d.D = D, d.P = g.p, d.nblocks = g.nblocks, d.max_blocks = bt.shape[1];
  d.window = window, d.psize = psize, d.parts = parts, d.head_chunks = head_chunks;
  d.q_dtype = static_cast<int32_t>(q.dtype), d.y_dtype = static_cast<int32_t>(y.dtype);
  d.scale = static_cast<float>(a.params.f[0]), d.cap = static_cast<float>(a.params.f[1]);
  d.tile = static_cast<int32_t>(T), d.stride = static_cast<int32_t>(stride), d.unit = unit;
  if (parts > 1 && B * H > 2147483647LL)
    return Status(Code::range, std::string(op) + ": expected B * H <= 2^31 - 1 (the merge grid), got " + std::to_string(B * H));
  void* scratch = nullptr;
  if (parts > 1) {
    const size_t bytes = static_cast<size_t>(B * H * parts * (D + 2)) * sizeof(float);
    LK_RETURN_IF_ERROR(cuda_malloc(dev, bytes, &scratch));
    d.part = static_cast<float*>(scratch);
  }
  const cudaStream_t s = stream_of(a);
  bool kv_ok = true;
  switch (g.dtype) {
    case DType::f32: launch_decode_gb<float>(d, gb, blocks, s); break;
    case DType::f16: launch_decode_gb<f16_t>(d, gb, blocks, s); break;
    case DType::bf16: launch_decode_gb<bf16_t>(d, gb, blocks, s); break;
    case DType::i8: launch_decode_gb<int8_t>(d, gb, blocks, s); break;
    case DType::f8e4m3: launch_decode_gb<f8_kv>(d, gb, blocks, s); break;
    default: kv_ok = false; break;
  }
  if (kv_ok && parts > 1)
    paged_decode_merge_kernel<<<static_cast<unsigned>(B * H), kMergeThreads, 0, s>>>(d.part, d.y, d.y_dtype, parts, D);
  Status st = kv_ok ? cuda_last_error(op)
                    : internal_error(std::string(op) + ": cuda kernel got a KV cache of dtype " + dtype_name(g.dtype));
  if (scratch) cuda_free(dev, scratch);  // stream-ordered: after the merge
  return st;
}

}  // namespace lk
