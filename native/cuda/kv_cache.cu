// The paged KV cache on CUDA: cache_write, rope_cache_write and kv_copy_blocks (spec: cpu/ref/kv_cache_ref.cc;
// layout and quantization: common/kv.h). Paged attention is in paged_decode.cu (decode) and paged_prefill.cu (prefill).
//
// Math, exact (tolerance() compares these ops bit for bit):
//  - cache_write, f32/f16/bf16 cache: each element to_f32 then from_f32 of elementwise.cuh (dtype.h's rounding and
//    NaN patterns, checked for all 2^32 inputs by emu_check --conversions).
//  - i8 / f8e4m3 cache, one row = one token of one KV head (D values): amax = max |x| over the row (max is exact,
//    so the order of the warp reduction does not matter); a row with NaN or Inf gets s = NaN and q = 0, an all-zero
//    row s = 0 and q = 0; otherwise
//      i8:     q = clamp(rint(x * (127 / amax)), +-127), s = amax / 127    (quant.h's quantize_act_block)
//      f8e4m3: q = f8e4m3(x * (448 / amax)),             s = amax / 448    (kv.h's kv_quantize_row)
//    Each product and quotient is one IEEE round-to-nearest operation (__fmul_rn; '/' is IEEE division, we build
//    without --use_fast_math / -prec-div=false), rintf is round half to even like nearbyint, and f8e4m3 goes
//    through dtype.h's f32_to_f8e4m3 itself (a host-and-device function; sm_80 has no f8 cvt instruction), so q
//    and s are the reference's bits.
//  - rope_cache_write: cache_write of rope(k) (see rope_cache_write_kernel for the rotation's bits and the one
//    residual risk, the device's double cos/sin).
//  - kv_copy_blocks: raw bytes.
//
// Data-dependent errors: a slot >= numBlocks * P (cache_write) or a block id outside [0, numBlocks)
// (kv_copy_blocks) is a range error in the references, which check everything before writing. Here the slots and
// pairs live in device memory and the launch does not wait, so the kernel cannot return a Status. Like layers.cu's
// bad embedding ids it never touches memory out of bounds; unlike them there is no row of ours to mark with NaN (the
// bad slot names no row of the cache), so the token (cache_write) or the pair (kv_copy_blocks) is skipped and the
// cache keeps its old contents there. Callers that need the error check slots on the host (lib/nn builds them
// from JS) or run the op on the CPU.
// Versions: v1 (this), not yet measured on a GPU. Run: build-gpu/tools/lk_check --backend cuda (correctness),
// native/cuda/emu/run.sh <op> (the same source on the CPU, no GPU).
#include "../common/kv.h"
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

namespace {

constexpr int kKvThreads = 256;  // 8 warps: 8 rows of cache_write in flight per block

// ---- stores of one converted element into the cache (float dtypes; the quantized ones use quant_store) ----
template <class Kv>
__device__ __forceinline__ void kv_store(Kv* p, float x) {
  *p = from_f32<Kv>(x);
}

// The max of v over the warp, returned to every lane (all 32 lanes must call it: the row loop is warp-uniform).
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// f8e4m3 as a raw bit pattern (a type of its own, so that the templates below pick its store).
struct f8e4m3_t {
  uint8_t bits;
};

template <class Kv>
struct KvTraits {
  static constexpr bool kQuantized = false;
};
template <>
struct KvTraits<int8_t> {
  static constexpr bool kQuantized = true;
  static constexpr float kMax = 127.0f;
};
template <>
struct KvTraits<f8e4m3_t> {
  static constexpr bool kQuantized = true;
  static constexpr float kMax = 448.0f;
};

// q of one element: x already times kMax / amax.
__device__ __forceinline__ int8_t quant_q(int8_t*, float y) {
  float v = rintf(y);
  v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
  return static_cast<int8_t>(static_cast<int>(v));
}
__device__ __forceinline__ f8e4m3_t quant_q(f8e4m3_t*, float y) { return f8e4m3_t{f32_to_f8e4m3(y)}; }

// ---- cache_write ----

// Stores one row of D values into the cache row dst (and, for the quantized dtypes, its scale into *scale_dst),
// called by all 32 lanes of a warp: lane j handles elements j, j + 32, ... (coalesced). load(j) gives element j as
// f32; quantized caches call it twice per element (amax, then q), so it must return the same bits both times.
// Shared by cache_write and rope_cache_write, so that both write the same bytes for the same row.
template <class Kv, class Load>
__device__ __forceinline__ void store_row(Kv* dst, float* scale_dst, int lane, int64_t D, const Load& load) {
  if constexpr (!KvTraits<Kv>::kQuantized) {
    for (int64_t j = lane; j < D; j += 32) kv_store(dst + j, load(j));
  } else {
    // amax with non-finite values folded in as +Inf (a NaN compares false with everything, so it is caught by
    // !(a <= max finite) before the reduction, and fmaxf never sees it).
    float amax = 0.0f;
    for (int64_t j = lane; j < D; j += 32) {
      const float a = fabsf(load(j));
      amax = a <= 3.40282347e+38f ? fmaxf(amax, a) : __uint_as_float(0x7f800000u);
    }
    amax = warp_max(amax);
    const bool finite = amax <= 3.40282347e+38f;
    float scale;
    if (!finite || amax == 0.0f) {
      for (int64_t j = lane; j < D; j += 32) dst[j] = quant_q(dst, 0.0f);
      scale = finite ? 0.0f : __uint_as_float(0x7fc00000u);
    } else {
      const float inv = KvTraits<Kv>::kMax / amax;
      for (int64_t j = lane; j < D; j += 32) dst[j] = quant_q(dst, __fmul_rn(load(j), inv));
      scale = amax / KvTraits<Kv>::kMax;
    }
    if (lane == 0) *scale_dst = scale;
  }
}

// k, v [T, Hkv, D] (In), slot_mapping [T] i32; kv [numBlocks, Hkv, 2, P, D] (Kv), kv_scale [numBlocks, Hkv, 2, P]
// f32 (quantized Kv only). Row r = (t * Hkv + h) * 2 + which is the K (which = 0) or V (1) row of token t, head h;
// its destination is row `offset` of tile (block, h, which), block = slot / P, offset = slot % P.
// Grid: 1-D, grid_for(rows * 32) blocks; block: kKvThreads threads = 8 warps. Each warp owns one row at a time
// (warps w, w + W, ... of the grid; W = warps in the grid), its lanes over the row's D elements (lane j handles
// j, j + 32, ...: coalesced reads of the source row and writes of the cache row). Quantized caches read the row
// twice (amax, then q; the second read hits L1), so a row of any D needs no shared memory. A negative slot skips
// the token (the spec); a slot >= nslots too (see the file header). Both tests are warp-uniform, so every lane
// reaches warp_max together.
template <class In, class Kv>
__global__ void __launch_bounds__(kKvThreads) cache_write_kernel(const In* __restrict__ k, const In* __restrict__ v,
                                                                 const int32_t* __restrict__ slots,
                                                                 Kv* __restrict__ kv, float* __restrict__ kv_scale,
                                                                 int64_t rows, int64_t hkv, int64_t P, int64_t D,
                                                                 int64_t nslots) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const int64_t th = r >> 1;  // t * hkv + h
    const int which = static_cast<int>(r & 1);
    const int64_t t = th / hkv, h = th - t * hkv;
    const int64_t s = slots[t];
    if (s < 0 || s >= nslots) continue;
    const int64_t blk = s / P, off = s - blk * P;
    const int64_t tile = (blk * hkv + h) * 2 + which;
    const In* src = (which ? v : k) + th * D;
    store_row(kv + (tile * P + off) * D, kv_scale + tile * P + off, lane, D,
              [src](int64_t j) { return to_f32(src[j]); });
  }
}

template <class In, class Kv>
void launch_cache_write(const OpArgs& a, const KvGeom& g, int dev) {
  const TensorView &k = a.in[0], &v = a.in[1], &slots = a.in[2], &kv = a.out[0], &kv_scale = a.out[1];
  const int64_t rows = k.shape[0] * g.hkv * 2;
  cache_write_kernel<In, Kv><<<grid_for(rows * 32, kKvThreads, dev), kKvThreads, 0, stream_of(a)>>>(
      static_cast<const In*>(k.data), static_cast<const In*>(v.data), static_cast<const int32_t*>(slots.data),
      static_cast<Kv*>(kv.data), static_cast<float*>(kv_scale.data), rows, g.hkv, g.p, g.d, g.slots());
}

// ---- rope_cache_write ----

// cache_write(rope(k), v), bit for bit with rope_cache_write_ref: the same rows, grid and store path as
// cache_write_kernel (store_row), with the K row's element j computed on the fly as rope's f32 rotation rounded to
// k's dtype (In). Per pair i < half: angle = f32(f32(pos) * inv_freq[i]) (__fmul_rn: never fused into anything),
// c = f32(cos(double(angle))), s = f32(sin(double(angle))) as common/rope.cc (double cos/sin of the same f32 angle,
// each rounded once to f32), then a' = a c - b s, b' = b c + a s with each product and sum rounded on its own
// (__fmul_rn / __fadd_rn; -x is exact, so a c + (-(b s)) is a c - b s), the order of rope_rotate_row. Dims
// >= 2 half pass unchanged. Each lane computes the rotated value of its own element (the pair's two elements come
// from two lanes, each reading both inputs), and a quantized cache evaluates every element twice (amax, then q):
// four double sin/cos per pair instead of one, cheap next to the row's memory traffic on sm_80/sm_90 (full-rate
// FP64 units), and it keeps the row in registers with no shared memory for any D.
// Residual risk of "bit for bit": CUDA's double sin/cos are within 1-2 ulp of double (CUDA C Programming Guide,
// double-precision functions), glibc's within 1 ulp; they round to the same f32 unless the exact value lies within
// ~2 double ulps of an f32 rounding boundary (a tie point between two floats), about 2^-28 of angles. When that
// happens c or s differs by 1 f32 ulp, the rotated k by ~1 ulp, and an i8/f8e4m3 row can round one element (or
// its amax, hence every element) differently. The emulation cannot show it (it calls the host's libm).
// Bad data: a bad slot skips the token (as cache_write). A negative position with a good slot is a range error in
// the reference; here the token's K rows are written as NaN (a float cache holds NaN, a quantized one q = 0 with
// scale NaN, what cache_write stores for a NaN row), the policy of rope on CUDA (NaN rows: attention over the
// token gives NaN, so the error shows), and its V rows as usual.
template <class In, class Kv>
__global__ void __launch_bounds__(kKvThreads) rope_cache_write_kernel(
    const In* __restrict__ k, const In* __restrict__ v, const int32_t* __restrict__ slots,
    const int32_t* __restrict__ positions, const float* __restrict__ inv_freq, Kv* __restrict__ kv,
    float* __restrict__ kv_scale, int64_t rows, int64_t hkv, int64_t P, int64_t D, int64_t half, bool interleaved,
    int64_t nslots) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const int64_t th = r >> 1;  // t * hkv + h
    const int which = static_cast<int>(r & 1);
    const int64_t t = th / hkv, h = th - t * hkv;
    const int64_t s = slots[t];
    if (s < 0 || s >= nslots) continue;
    const int64_t blk = s / P, off = s - blk * P;
    const int64_t tile = (blk * hkv + h) * 2 + which;
    Kv* dst = kv + (tile * P + off) * D;
    float* sdst = kv_scale + tile * P + off;
    if (which) {
      const In* src = v + th * D;
      store_row(dst, sdst, lane, D, [src](int64_t j) { return to_f32(src[j]); });
      continue;
    }
    const In* src = k + th * D;
    const int32_t p = positions[t];
    if (p < 0) {
      store_row(dst, sdst, lane, D, [](int64_t) { return __uint_as_float(0x7fc00000u); });
      continue;
    }
    const float fp = static_cast<float>(p);
    store_row(dst, sdst, lane, D, [=](int64_t j) {
      if (j >= 2 * half) return to_f32(src[j]);
      const int64_t i = interleaved ? (j >> 1) : (j < half ? j : j - half);
      const bool first = interleaved ? (j & 1) == 0 : j < half;
      const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
      const double ang = static_cast<double>(__fmul_rn(fp, inv_freq[i]));
      const float c = static_cast<float>(cos(ang)), sn = static_cast<float>(sin(ang));
      const float a = to_f32(src[ia]), b = to_f32(src[ib]);
      const float x = first ? __fadd_rn(__fmul_rn(a, c), -__fmul_rn(b, sn)) : __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
      return to_f32(from_f32<In>(x));  // rope's output is rounded to k's dtype before the cache sees it
    });
  }
}

template <class In, class Kv>
void launch_rope_cache_write(const OpArgs& a, const KvGeom& g, int dev) {
  const TensorView &k = a.in[0], &v = a.in[1], &slots = a.in[2], &pos = a.in[3], &freq = a.in[4];
  const TensorView &kv = a.out[0], &kv_scale = a.out[1];
  const int64_t rows = k.shape[0] * g.hkv * 2;
  rope_cache_write_kernel<In, Kv><<<grid_for(rows * 32, kKvThreads, dev), kKvThreads, 0, stream_of(a)>>>(
      static_cast<const In*>(k.data), static_cast<const In*>(v.data), static_cast<const int32_t*>(slots.data),
      static_cast<const int32_t*>(pos.data), static_cast<const float*>(freq.data), static_cast<Kv*>(kv.data),
      static_cast<float*>(kv_scale.data), rows, g.hkv, g.p, g.d, freq.numel(), a.params.i[0] == 1, g.slots());
}

// ---- kv_copy_blocks ----

// pairs [n, 2] i32; kv viewed as numBlocks regions of `words` W-sized words (one region = one block: every head,
// K and V), kv_scale as numBlocks regions of `swords` f32 (0 for the float dtypes).
// In order, exactly as the reference: thread i owns word i of every region (and, after the kv words, scale word
// i - words) and walks the pairs in order, copying its word from src to dst. A later pair that reads an earlier
// pair's dst reads a word this same thread wrote before (program order), so no barrier is needed and the result is
// the sequential one even when pairs chain (a -> b, b -> c). A pair with an id outside [0, numBlocks) is skipped.
// Grid: 1-D, grid_for(words + swords) blocks, grid-stride over the word index; block: kKvThreads threads
// (consecutive threads, consecutive words: coalesced). W is 16 bytes when the pointer and region allow it.
template <class W>
__global__ void __launch_bounds__(kKvThreads) kv_copy_blocks_kernel(const int32_t* __restrict__ pairs, int64_t n,
                                                                    W* kv, uint32_t* kv_scale, int64_t words,
                                                                    int64_t swords, int64_t nblocks) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words + swords; i += stride) {
    const bool data = i < words;
    for (int64_t p = 0; p < n; ++p) {
      const int64_t src = pairs[2 * p], dst = pairs[2 * p + 1];
      if (src < 0 || src >= nblocks || dst < 0 || dst >= nblocks) continue;
      if (data)
        kv[dst * words + i] = kv[src * words + i];
      else
        kv_scale[dst * swords + (i - words)] = kv_scale[src * swords + (i - words)];
    }
  }
}

template <class W>
void launch_copy_blocks(const OpArgs& a, const KvGeom& g, int64_t region_bytes, int dev) {
  const TensorView &pairs = a.in[0], &kv = a.out[0], &kv_scale = a.out[1];
  const int64_t words = region_bytes / static_cast<int64_t>(sizeof(W));
  const int64_t swords = g.quantized() ? g.hkv * 2 * g.p : 0;
  kv_copy_blocks_kernel<W><<<grid_for(words + swords, kKvThreads, dev), kKvThreads, 0, stream_of(a)>>>(
      static_cast<const int32_t*>(pairs.data), pairs.shape[0], static_cast<W*>(kv.data),
      static_cast<uint32_t*>(kv_scale.data), words, swords, g.nblocks);
}

// Runs launch(In{}, Kv{}) for the write's input dtype (a.in[0]) and the cache's dtype: the one dispatch of
// cache_write and rope_cache_write. validate_op admits no other pair, so a miss is an internal error.
template <class F>
Status with_write_dtypes(const OpArgs& a, const KvGeom& g, const char* name, F&& launch) {
  bool kv_ok = true;
  const bool ok = dispatch_float(a.in[0].dtype, [&](auto ti) {
    switch (g.dtype) {
      case DType::f32: launch(ti, float{}); break;
      case DType::f16: launch(ti, f16_t{}); break;
      case DType::bf16: launch(ti, bf16_t{}); break;
      case DType::i8: launch(ti, int8_t{}); break;
      case DType::f8e4m3: launch(ti, f8e4m3_t{}); break;
      default: kv_ok = false; break;
    }
  });
  if (!ok || !kv_ok)
    return internal_error(std::string(name) + ": cuda kernel got dtypes " + dtype_name(a.in[0].dtype) + " / " +
                          dtype_name(g.dtype));
  return cuda_last_error(name);
}

}  // namespace

Status cache_write_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "cache_write", &dev));
  const KvGeom g(a.out[0]);
  if (a.in[0].shape[0] == 0 || g.hkv == 0 || g.d == 0) return cuda_last_error("cache_write");
  return with_write_dtypes(a, g, "cache_write", [&](auto ti, auto ki) {
    launch_cache_write<decltype(ti), decltype(ki)>(a, g, dev);
  });
}

Status kv_copy_blocks_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "kv_copy_blocks", &dev));
  const KvGeom g(a.out[0]);
  const int64_t region = g.block_elems() * static_cast<int64_t>(dtype_size(g.dtype));
  if (a.in[0].shape[0] == 0 || (region == 0 && !g.quantized())) return cuda_last_error("kv_copy_blocks");
  const void* p = a.out[0].data;
  if (region % 16 == 0 && aligned_to(p, 16))
    launch_copy_blocks<uint4>(a, g, region, dev);
  else if (region % 4 == 0 && aligned_to(p, 4))
    launch_copy_blocks<uint32_t>(a, g, region, dev);
  else
    launch_copy_blocks<uint8_t>(a, g, region, dev);
  return cuda_last_error("kv_copy_blocks");
}

Status rope_cache_write_cuda(const OpArgs& a) {
  int dev = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "rope_cache_write", &dev));
  const KvGeom g(a.out[0]);
  if (a.in[0].shape[0] == 0 || g.hkv == 0 || g.d == 0) return cuda_last_error("rope_cache_write");
  return with_write_dtypes(a, g, "rope_cache_write", [&](auto ti, auto ki) {
    launch_rope_cache_write<decltype(ti), decltype(ki)>(a, g, dev);
  });
}

}  // namespace lk
