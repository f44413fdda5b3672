// The quantized-weight conversions on CUDA (common/quant.h for the layouts, quant_rows.h for the rounding rules):
// quantize, dequantize, quant_import and quant_export, each producing the reference's bytes (values for dequantize)
// bit for bit on every format and shape. matmul_q is in matmul_q.cu. All four are load-time work (an 11008 x 4096
// weight once per model load, or a debugging read): simple and correct over fast, but with coalesced accesses and
// no per-element host work.
//
// dequantize: y[n, k] = f32(s * (q - z)) of w[n, k] (quant.h's quant_value), rounded to y's dtype by from_f32
// (bit for bit dtype.h's conversions; the op is exact in the tolerance table). The product is one IEEE multiply
// (__fmul_rn, so nvcc cannot fuse it with anything): the reference's f32 value bit for bit.
// Layout: w in the panel form, y [N, K] row-major. Grid-stride over the N * K/4 groups of 4 consecutive k of one
// row (the last group of a row may be shorter): those 4 k are one 32-bit word of the panel (quant.h's qs[s][r][j],
// j = 0..3, the low or high nibbles for q4), read once; their scale (and zero) once. Stores are scalar (y's rows
// have any length and alignment). Not a hot op (a weight is dequantized once, or for debugging): simple over fast.
// Error policy: nothing to refuse beyond validate_op's checks; a grid never exceeds grid_for's cap.
//
// quantize: x [N, K] (f32/f16/bf16, row-major) -> w (panel form): quant_rows.cc's quantize_row on every row, bit for
// bit. Per block of 32 (q8_0, q4_0), group of G (q4_gG) or row (i8_pc); trunc_i8 is quant.h's quant_trunc_i8 (the
// cast, made defined where the reference's static_cast<int8_t> would see an Inf), f16() dtype.h's f32_to_f16:
//   q8_0   d = amax / 127, id = 1 / d (0 if d = 0), q = trunc_i8(roundf(x * id)), f16(d) stored
//   q4_0   mx = the first x of largest |x| (+0 for a zero block), d = mx / -8, id = 1 / d (0 if d = 0),
//          q = min(15, trunc_i8(x * id + 8.5)), f16(d) stored (a zero block: d = -0, f16 0x8000, as the reference)
//   q4_gG  lo = min(0, x), hi = max(0, x) over the group, s = f16((hi - lo) / 15), z = clamp(rint(-lo / s), 0, 15)
//          (8 if s = 0), q = clamp(rint(x / s) + z, 0, 15), and q = z past K or when s = 0
//   i8_pc  s = amax / 127 over the row (f32 stored), q = trunc_i8(roundf(x * (1 / s)))
// Exactness: each operation the reference rounds on its own is an IEEE intrinsic (__fmul_rn, __fadd_rn, __fsub_rn,
// __fdiv_rn), so nvcc cannot contract x * id + 8.5 into an FMA nor turn a division into a reciprocal multiply (we
// build without --use_fast_math anyway); roundf (half away from zero) and rintf (half to even: the reference's
// nearbyint in the default rounding mode) are exact CUDA functions; f32_to_f16, f16_to_f32 and quant_trunc_i8 are
// the reference's own host-and-device code. The reductions give the sequential loop's bits in any order: amax is a
// max of nonnegative values; lo and hi are updated with the reference's strict comparisons from +0 partials (so a -0
// never replaces the +0 start, exactly as in the loop); q4_0's signed max is a max-reduction of the 64-bit key
// (bits of |x|) : (31 - lane) : sign, which picks the lowest index among equal |x| (the reference keeps the first
// strictly larger one) and yields +0 when every |x| is 0.
// Grid and block: 256 threads, grid-stride over items. q8_0, q4_0: an item is (panel p, block b); warp r quantizes
// row 8p + r, lane j element 32b + j (x reads: 128 contiguous bytes per warp); reductions by __shfl_xor_sync; the 8
// warps write the item's 272 / 144 contiguous bytes (q4: lane j < 16 packs its q with lane j + 16's). q4_gG: an item
// is (panel, group), lane j holds elements 32i + j of the group's blocks i (G / 32 registers). i8_pc: a block per row
// reduces amax and stores the f32 scale, then a second kernel has one thread per 4-byte word of the panels' quants
// (consecutive threads, consecutive words). Rows of the last panel past N are written as zeros (the reference
// memsets each panel); elements past K get the format's padding (q = 0, 8 or z), from x = 0 as in the reference.
// Errors (the reference's RangeErrors, same message, for the lowest row that has one): a NaN or Inf in x, or a
// block (group) whose scale overflows f16. A warp or block that meets one atomicMin's its row into a device word
// (8 bytes of cuda_malloc scratch, set to ~0 by a one-thread kernel first) and leaves the rest of that item. The
// host then copies the word back: cuda_copy_d2h waits for the stream, so quantize blocks the calling thread until
// the weight is done (acceptable for load-time work, and the only way to make a data-dependent error the op's
// Status). For a flagged row it copies that row of x back and runs quant_rows.cc's quantize_row_status on it: the
// Status comes from the reference's own code (a NaN/Inf anywhere in the row before a too-large block, the first bad
// column, the same %g). A flagged row that the reference finds clean is an internal error (a kernel bug), never
// silently accepted. Other errors: w's data must be 4-byte aligned (a whole tensor, as allocated); scratch
// allocation failures are cuda_malloc's Status (oom), nothing launched.
//
// quant_import: the row form (quant_row_form_bytes: GGUF blocks, GPTQ groups, i8_pc's int8 rows then f32 scales),
// any bytes, -> the panel form, byte for byte import_panels. One thread per 4-byte word of the panel form (coalesced
// word stores; every word written, so no memset): it decodes its position (block or group, scale / zero / quant
// bytes, panel row r, k) and gathers 4 bytes of the rows. Padding rows past N are zeros, i8_pc's bytes past K are
// 0; q8_0/q4_0 blocks and q4_gG nibbles past K are copied from the row form as they are (the reference copies the
// whole last block), q4_gG zero points too (any byte; GPTQ v1 gives 16).
// quant_export: the panel form -> the row form, byte for byte export_panels. One thread per byte of the row form
// (rows are 18, 34, K or 4 + G/2 bytes per block or group: not word-aligned), each gathering one panel byte (q4_gG:
// two nibbles; the u8 after the zero point is 0; nibbles past the last block, when K % G leaves a group fewer than
// G/32 blocks, are min(z, 15)); i8_pc's N f32 scales follow the rows.
// Error policy of import/export: nothing data-dependent to refuse (any bytes are taken as they are).
// Versions: v1 (this, all four). Not yet run on a GPU (checked under the CPU emulation, native/cuda/emu: every
// case of the four ops bit for bit, plus quantize's error cases).
#include <string>
#include <vector>

#include "elementwise.cuh"
#include "kernels.h"
#include "../common/quant.h"
#include "../common/quant_rows.h"

namespace lk {

namespace {

struct DequantArgs {
  const uint8_t* w;
  DType t;
  int64_t N, K, nb, bpg, panel_bytes;
};

__device__ __forceinline__ float half_at(const uint8_t* p) {
  return to_f32(f16_t{static_cast<uint16_t>(p[0] | (p[1] << 8))});
}

template <class T>
__global__ void __launch_bounds__(256) dequantize_kernel(const DequantArgs a, T* __restrict__ y) {
  const int64_t kq = (a.K + 3) / 4;  // groups of 4 k per row
  const int64_t total = a.N * kq, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t n = i / kq, k0 = (i % kq) * 4;
    const int64_t r = n % 8, b = k0 / 32, kk = k0 % 32;
    const uint8_t* panel = a.w + (n / 8) * a.panel_bytes;
    float s;
    int32_t z = 0;
    const uint8_t* blk;
    const bool q4 = a.t != DType::q8_0 && a.t != DType::i8_pc;
    switch (a.t) {
      case DType::q8_0: blk = panel + b * 272 + 16; s = half_at(blk - 16 + 2 * r); break;
      case DType::q4_0: blk = panel + b * 144 + 16; s = half_at(blk - 16 + 2 * r); z = 8; break;
      case DType::i8_pc: blk = panel + 32 + b * 256; s = reinterpret_cast<const float*>(panel)[r]; break;
      default: {
        const int64_t g = b / a.bpg;
        const uint8_t* h = panel + g * (24 + 128 * a.bpg);
        blk = panel + (g + 1) * 24 + b * 128;
        s = half_at(h + 2 * r);
        z = h[16 + r];
      }
    }
    // The word of 4 k: q8 step kk / 4; q4 step (kk % 16) / 4 with the high nibbles for kk >= 16.
    const uint32_t wd = *reinterpret_cast<const uint32_t*>(blk + ((q4 ? kk % 16 : kk) / 4) * 32 + r * 4);
    const int shift = q4 && kk >= 16 ? 4 : 0;
    T* yr = y + n * a.K;
    for (int j = 0; j < 4 && k0 + j < a.K; ++j) {
      const int32_t q = q4 ? static_cast<int32_t>((wd >> (8 * j + shift)) & 15u)
                           : static_cast<int32_t>(static_cast<int8_t>(wd >> (8 * j)));
      yr[k0 + j] = from_f32<T>(__fmul_rn(s, static_cast<float>(q - z)));
    }
  }
}

// ---- quantize ----

struct QuantizeArgs {
  uint8_t* w;                   // the panel form
  QuantLayout L;                // w's format and K
  int64_t N, panels;            // rows of x, panels of w (N rounded up to 8, over 8)
  unsigned long long* bad_row;  // the lowest row with a NaN/Inf or a too-large block; ~0 if none
};

__device__ __forceinline__ bool finite_f32(float v) { return fabsf(v) <= 3.40282347e+38f; }  // false for NaN, Inf

__device__ __forceinline__ int warp_or(int v) {
  for (int o = 16; o > 0; o >>= 1) v |= __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// Max of nonnegative non-NaN values: exact in any order.
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    const float u = __shfl_xor_sync(0xffffffffu, v, o);
    v = v < u ? u : v;
  }
  return v;
}
// static_cast<int>(std::min(15.0f, std::max(0.0f, t))) of the reference, for a non-NaN t.
__device__ __forceinline__ int clamp_q4(float t) {
  const float u = 0.0f < t ? t : 0.0f;
  return static_cast<int>(u < 15.0f ? u : 15.0f);
}
__device__ __forceinline__ void flag_row(const QuantizeArgs& a, int64_t n) {
  atomicMin(a.bad_row, static_cast<unsigned long long>(n));
}

// Offset of element kk (q8: 0..31; q4: 0..15, whose byte holds kk + 16 in the high nibble) of panel row r, from a
// block's quants: qs[kk / 4][r][kk % 4] (quant.h).
__device__ __forceinline__ int64_t quant_byte(int kk, int r) { return (kk >> 2) * 32 + r * 4 + (kk & 3); }

__global__ void set_u64_kernel(unsigned long long* p, unsigned long long v) { *p = v; }

// q8_0 (Q4 = false) and q4_0 (Q4 = true). Grid: any; block: 256 = 8 warps, warp r = row r of the item's panel.
template <class T, bool Q4>
__global__ void __launch_bounds__(256) quantize_block32_kernel(const QuantizeArgs a, const T* __restrict__ x) {
  const int lane = threadIdx.x & 31, r = threadIdx.x >> 5;
  const int64_t K = a.L.K, nb = a.L.nb, items = a.panels * nb;
  for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {
    const int64_t p = it / nb, b = it % nb, n = p * kQPanel + r, k = b * kQBlock + lane;
    uint8_t* blk = a.w + p * a.L.panel_bytes + a.L.block_offset(b);  // the quants; d[8] are the 16 bytes before
    uint16_t* d_out = reinterpret_cast<uint16_t*>(blk - 16) + r;
    uint8_t* q_out = blk + quant_byte(lane, r);  // q4: only lanes < 16 store (a byte holds kk and kk + 16)
    if (n >= a.N) {  // a padding row (warp-uniform): zeros
      if (!Q4 || lane < 16) *q_out = 0;
      if (lane == 0) *d_out = 0;
      continue;
    }
    const float v = k < K ? to_f32(x[n * K + k]) : 0.0f;  // zero-padded past K, like the reference's blk
    if (warp_or(!finite_f32(v))) {
      if (lane == 0) flag_row(a, n);
      continue;
    }
    float d;
    if (!Q4) {
      d = __fdiv_rn(warp_max(fabsf(v)), 127.0f);
    } else {
      unsigned long long key = static_cast<unsigned long long>(__float_as_uint(fabsf(v))) << 32 |
                               (31u - static_cast<unsigned>(lane)) << 1 | (__float_as_uint(v) >> 31);
      for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long u = __shfl_xor_sync(0xffffffffu, key, o);
        key = key < u ? u : key;
      }
      const float amax = __uint_as_float(static_cast<uint32_t>(key >> 32));
      const float mx = amax == 0.0f ? 0.0f : ((key & 1u) ? -amax : amax);
      d = __fdiv_rn(mx, -8.0f);
    }
    const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    const uint16_t dh = f32_to_f16(d);
    if ((dh & 0x7fff) == 0x7c00) {  // warp-uniform (d is)
      if (lane == 0) flag_row(a, n);
      continue;
    }
    if (lane == 0) *d_out = dh;
    if (!Q4) {
      *q_out = static_cast<uint8_t>(quant_trunc_i8(roundf(__fmul_rn(v, id))));
    } else {
      const int t = quant_trunc_i8(__fadd_rn(__fmul_rn(v, id), 8.5f));
      const int q = static_cast<uint8_t>(t < 15 ? t : 15);  // static_cast<uint8_t>(std::min(15, t)), as the reference
      const int q_hi = __shfl_xor_sync(0xffffffffu, q, 16);  // element kk + 16 of lane kk
      if (lane < 16) *q_out = static_cast<uint8_t>(q | (q_hi << 4));
    }
  }
}

// q4_gG, BPG = G / 32 blocks per group. Grid: any; block: 256, warp r = row r of the item's (panel, group).
template <class T, int BPG>
__global__ void __launch_bounds__(256) quantize_q4g_kernel(const QuantizeArgs a, const T* __restrict__ x) {
  const int lane = threadIdx.x & 31, r = threadIdx.x >> 5;
  const int64_t K = a.L.K, ng = a.L.ng, items = a.panels * ng;
  for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {
    const int64_t p = it / ng, g = it % ng, n = p * kQPanel + r, k0 = g * BPG * kQBlock;
    uint8_t* panel = a.w + p * a.L.panel_bytes;
    uint8_t* head = panel + a.L.group_offset(g);  // u16 s[8], u8 z[8]
    const int64_t left = a.L.nb - g * BPG;
    const int nblk = left < BPG ? static_cast<int>(left) : BPG;  // the last group may have fewer blocks
    if (n >= a.N) {  // a padding row: zeros
      if (lane == 0) {
        reinterpret_cast<uint16_t*>(head)[r] = 0;
        head[16 + r] = 0;
      }
      for (int i = 0; i < nblk; ++i)
        if (lane < 16) panel[a.L.block_offset(g * BPG + i) + quant_byte(lane, r)] = 0;
      continue;
    }
    float v[BPG];
    float lo = 0.0f, hi = 0.0f;
    int bad = 0;
#pragma unroll
    for (int i = 0; i < BPG; ++i) {
      const int64_t k = k0 + i * kQBlock + lane;
      v[i] = k < K ? to_f32(x[n * K + k]) : 0.0f;  // a +0 past K (or past the last block) changes neither lo nor hi
      bad |= !finite_f32(v[i]);
      lo = v[i] < lo ? v[i] : lo;  // std::min(lo, v) and std::max(hi, v), argument order kept
      hi = hi < v[i] ? v[i] : hi;
    }
    if (warp_or(bad)) {
      if (lane == 0) flag_row(a, n);
      continue;
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float l = __shfl_xor_sync(0xffffffffu, lo, o), h = __shfl_xor_sync(0xffffffffu, hi, o);
      lo = l < lo ? l : lo;
      hi = hi < h ? h : hi;
    }
    const uint16_t sh = f32_to_f16(__fdiv_rn(__fsub_rn(hi, lo), 15.0f));
    if ((sh & 0x7fff) == 0x7c00) {
      if (lane == 0) flag_row(a, n);
      continue;
    }
    const float s = f16_to_f32(sh);
    const int z = s != 0.0f ? clamp_q4(rintf(__fdiv_rn(-lo, s))) : 8;
    if (lane == 0) {
      reinterpret_cast<uint16_t*>(head)[r] = sh;
      head[16 + r] = static_cast<uint8_t>(z);
    }
#pragma unroll
    for (int i = 0; i < BPG; ++i) {
      if (i >= nblk) break;  // warp-uniform
      const int64_t k = k0 + i * kQBlock + lane;
      const int q = k < K && s != 0.0f ? clamp_q4(__fadd_rn(rintf(__fdiv_rn(v[i], s)), static_cast<float>(z))) : z;
      const int q_hi = __shfl_xor_sync(0xffffffffu, q, 16);
      if (lane < 16) panel[a.L.block_offset(g * BPG + i) + quant_byte(lane, r)] = static_cast<uint8_t>(q | (q_hi << 4));
    }
  }
}

// i8_pc, step 1: the f32 scale amax / 127 of each row (0 for padding rows). Grid: any; block: 256 threads per row.
template <class T>
__global__ void __launch_bounds__(256) quantize_i8pc_scale_kernel(const QuantizeArgs a, const T* __restrict__ x) {
  __shared__ float part_max[8];
  __shared__ int part_bad[8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t K = a.L.K, rows = a.panels * kQPanel;
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    float amax = 0.0f;
    int bad = 0;
    if (n < a.N)
      for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
        const float v = to_f32(x[n * K + k]);
        bad |= !finite_f32(v);
        const float av = fabsf(v);
        amax = amax < av ? av : amax;
      }
    amax = warp_max(amax);
    bad = warp_or(bad);
    if (lane == 0) {
      part_max[warp] = amax;
      part_bad[warp] = bad;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int i = 1; i < static_cast<int>(blockDim.x / 32); ++i) {
        amax = amax < part_max[i] ? part_max[i] : amax;
        bad |= part_bad[i];
      }
      if (bad) flag_row(a, n);
      reinterpret_cast<float*>(a.w + (n / kQPanel) * a.L.panel_bytes)[n % kQPanel] = n < a.N ? __fdiv_rn(amax, 127.0f) : 0.0f;
    }
    __syncthreads();  // part_* are reused by the next row
  }
}

// i8_pc, step 2: q of 4 consecutive k of one row = one 4-byte word of the panel (after the 32 bytes of scales).
// Words in panel order: word o of a panel is block o / 64, step (o / 8) % 8, row o % 8, so k0 = (o / 8) * 4.
template <class T>
__global__ void __launch_bounds__(256) quantize_i8pc_kernel(const QuantizeArgs a, const T* __restrict__ x) {
  const int64_t K = a.L.K, wpp = a.L.nb * 64, total = a.panels * wpp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t p = i / wpp, o = i % wpp, n = p * kQPanel + o % 8, k0 = (o / 8) * 4;
    uint8_t* panel = a.w + p * a.L.panel_bytes;
    uint32_t word = 0;
    if (n < a.N) {
      const float s = reinterpret_cast<const float*>(panel)[o % 8];
      const float id = s != 0.0f ? __fdiv_rn(1.0f, s) : 0.0f;
      for (int j = 0; j < 4; ++j) {
        const float v = k0 + j < K ? to_f32(x[n * K + k0 + j]) : 0.0f;
        word |= static_cast<uint32_t>(static_cast<uint8_t>(quant_trunc_i8(roundf(__fmul_rn(v, id))))) << (8 * j);
      }
    }
    reinterpret_cast<uint32_t*>(panel + 32)[o] = word;
  }
}

template <class T>
void launch_quantize(const QuantizeArgs& q, const void* xv, int device, cudaStream_t s) {
  const T* x = static_cast<const T*>(xv);
  const QuantLayout& L = q.L;
  const unsigned g_blk = grid_for(q.panels * L.nb * 256, 256, device);  // one block per item
  const unsigned g_grp = grid_for(q.panels * L.ng * 256, 256, device);
  switch (L.t) {
    case DType::q8_0: quantize_block32_kernel<T, false><<<g_blk, 256, 0, s>>>(q, x); break;
    case DType::q4_0: quantize_block32_kernel<T, true><<<g_blk, 256, 0, s>>>(q, x); break;
    case DType::i8_pc:
      quantize_i8pc_scale_kernel<T><<<grid_for(q.panels * kQPanel * 256, 256, device), 256, 0, s>>>(q, x);
      quantize_i8pc_kernel<T><<<grid_for(q.panels * L.nb * 64, 256, device), 256, 0, s>>>(q, x);
      break;
    case DType::q4_g32: quantize_q4g_kernel<T, 1><<<g_grp, 256, 0, s>>>(q, x); break;
    case DType::q4_g64: quantize_q4g_kernel<T, 2><<<g_grp, 256, 0, s>>>(q, x); break;
    default: quantize_q4g_kernel<T, 4><<<g_grp, 256, 0, s>>>(q, x); break;  // q4_g128
  }
}

// The reference's Status for row n of x (on the device), which a kernel flagged: that row copied back and run
// through quantize_row_status (quant_rows.cc).
Status quantize_row_error(const TensorView& x, DType t, int64_t K, int64_t n, int device) {
  const size_t es = dtype_size(x.dtype);
  std::vector<uint8_t> raw(static_cast<size_t>(K) * es);
  LK_RETURN_IF_ERROR(cuda_copy_d2h(device, raw.data(), static_cast<const uint8_t*>(x.data) + static_cast<size_t>(n * K) * es,
                                   raw.size()));
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) row[static_cast<size_t>(k)] = load_f32(raw.data(), x.dtype, k);
  Status st = quantize_row_status(t, K, row.data(), n);
  if (st.ok())
    return internal_error("quantize: the CUDA kernel flagged row " + std::to_string(n) +
                          " of x as not quantizable, but the reference quantizes it (a kernel bug)");
  return st;
}

// ---- quant_import / quant_export ----

struct ConvertArgs {
  const uint8_t* src;  // import: the row form; export: the panel form
  uint8_t* dst;        // import: the panel form; export: the row form
  QuantLayout L;
  int64_t N, rb;  // rows; bytes of one row in the row form (quant_row_bytes)
};

// Byte o of panel p of the panel form, from the row form (import_panels, byte for byte).
__device__ __forceinline__ uint8_t import_byte(const ConvertArgs& a, int64_t p, int64_t o) {
  const QuantLayout& L = a.L;
  int64_t r, n;
  switch (L.t) {
    case DType::q8_0:
    case DType::q4_0: {
      const bool q4 = L.t == DType::q4_0;
      const int64_t bb = q4 ? 144 : 272, rbb = q4 ? 18 : 34;  // panel block bytes, row-form block bytes
      const int64_t b = o / bb, e = o % bb;
      if (e < 16) {  // d[8]: byte e % 2 of row e / 2's f16
        n = p * kQPanel + e / 2;
        return n < a.N ? a.src[n * a.rb + b * rbb + e % 2] : 0;
      }
      const int64_t c = e - 16;  // qs[c / 32][r][c % 4]: q8 k = 4 (c / 32) + c % 4; q4 the byte of that kk
      n = p * kQPanel + (c % 32) / 4;
      return n < a.N ? a.src[n * a.rb + b * rbb + 2 + (c / 32) * 4 + c % 4] : 0;
    }
    case DType::i8_pc: {
      if (o < 32) {  // f32 s[8]: after the N * K quants of the row form
        n = p * kQPanel + o / 4;
        return n < a.N ? a.src[a.N * a.rb + 4 * n + o % 4] : 0;
      }
      const int64_t c = o - 32, e = c % 256, k = (c / 256) * 32 + (e / 32) * 4 + e % 4;
      n = p * kQPanel + (e % 32) / 4;
      return n < a.N && k < L.K ? a.src[n * a.rb + k] : 0;
    }
    default: {  // q4_gG: per group a header {u16 s[8], u8 z[8]}, then its blocks; row form {f16 s, u8 z, u8 0, G/2}
      const int64_t gstride = 24 + 128 * L.bpg, g = o / gstride, e = o % gstride;
      if (e < 16) r = e / 2;
      else if (e < 24) r = e - 16;
      else r = ((e - 24) % 32) / 4;
      n = p * kQPanel + r;
      if (n >= a.N) return 0;
      const uint8_t* src = a.src + n * a.rb + g * (4 + L.G / 2);
      if (e < 16) return src[e % 2];
      if (e < 24) return src[2];
      const int64_t c = e - 24, jl = (c / 128) * 32 + ((c % 128) / 32) * 4 + c % 4, jh = jl + 16;  // in the group
      return static_cast<uint8_t>(((src[4 + jl / 2] >> (4 * (jl & 1))) & 15) | (((src[4 + jh / 2] >> (4 * (jh & 1))) & 15) << 4));
    }
  }
}

// Grid: any; block: 256; a thread per 4-byte word of the panel form (consecutive threads, consecutive words).
__global__ void __launch_bounds__(256) quant_import_kernel(const ConvertArgs a) {
  const int64_t wpp = a.L.panel_bytes / 4, total = qceil(a.N, kQPanel) * wpp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t p = i / wpp, o = (i % wpp) * 4;
    uint32_t word = 0;
    for (int j = 0; j < 4; ++j) word |= static_cast<uint32_t>(import_byte(a, p, o + j)) << (8 * j);
    reinterpret_cast<uint32_t*>(a.dst)[i] = word;
  }
}

// q (0..15) of row r, element k < nb * 32 of a q4 panel.
__device__ __forceinline__ int q4_nibble(const QuantLayout& L, const uint8_t* panel, int64_t r, int64_t k) {
  const int64_t kk = k % kQBlock;
  const uint8_t byte = panel[L.block_offset(k / kQBlock) + quant_byte(static_cast<int>(kk % 16), static_cast<int>(r))];
  return kk < 16 ? (byte & 15) : (byte >> 4);
}

// Byte i of the row form, from the panel form (export_panels, byte for byte).
__device__ __forceinline__ uint8_t export_byte(const ConvertArgs& a, int64_t i) {
  const QuantLayout& L = a.L;
  if (L.t == DType::i8_pc && i >= a.N * a.rb) {  // the N f32 scales after the rows
    const int64_t n = (i - a.N * a.rb) / 4;
    return a.src[(n / kQPanel) * L.panel_bytes + 4 * (n % kQPanel) + (i - a.N * a.rb) % 4];
  }
  const int64_t n = i / a.rb, o = i % a.rb, r = n % kQPanel;
  const uint8_t* panel = a.src + (n / kQPanel) * L.panel_bytes;
  switch (L.t) {
    case DType::q8_0:
    case DType::q4_0: {
      const bool q4 = L.t == DType::q4_0;
      const int64_t bb = q4 ? 144 : 272, rbb = q4 ? 18 : 34;
      const int64_t b = o / rbb, e = o % rbb;
      if (e < 2) return panel[b * bb + 2 * r + e];
      return panel[b * bb + 16 + quant_byte(static_cast<int>(e - 2), static_cast<int>(r))];  // q4: e - 2 < 16
    }
    case DType::i8_pc:
      return panel[32 + (o / 32) * 256 + quant_byte(static_cast<int>(o % 32), static_cast<int>(r))];
    default: {  // q4_gG
      const int64_t gs = 4 + L.G / 2, g = o / gs, e = o % gs;
      const uint8_t* head = panel + L.group_offset(g);
      if (e < 2) return head[2 * r + e];
      if (e == 2) return head[16 + r];
      if (e == 3) return 0;
      const int64_t k = g * L.G + 2 * (e - 4), kend = L.nb * kQBlock;
      const int zp = head[16 + r] < 15 ? head[16 + r] : 15;  // padding past the last block: min(z, 15)
      const int lo = k < kend ? q4_nibble(L, panel, r, k) : zp;
      const int hi = k + 1 < kend ? q4_nibble(L, panel, r, k + 1) : zp;
      return static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// Grid: any; block: 256; a thread per byte of the row form.
__global__ void __launch_bounds__(256) quant_export_kernel(const ConvertArgs a, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    a.dst[i] = export_byte(a, i);
}

}  // namespace

Status dequantize_cuda(const OpArgs& a) {
  int device = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "dequantize", &device));
  const TensorView& w = a.in[0];
  const TensorView& y = a.out[0];
  const int64_t N = w.shape[0], K = w.shape[1];
  if (N <= 0 || K <= 0) return Status::OK();
  if (!aligned_to(w.data, 4))
    return Status(Code::range, "dequantize: the weight's data must be 4-byte aligned (a whole quantized tensor)");
  const QuantLayout L = quant_layout(w.dtype, K);
  DequantArgs d{static_cast<const uint8_t*>(w.data), w.dtype, N, K, L.nb, L.bpg > 0 ? L.bpg : 1, L.panel_bytes};
  const unsigned grid = grid_for(N * ((K + 3) / 4), 256, device);
  cudaStream_t s = stream_of(a);
  switch (y.dtype) {
    case DType::f32: dequantize_kernel<float><<<grid, 256, 0, s>>>(d, static_cast<float*>(y.data)); break;
    case DType::f16: dequantize_kernel<f16_t><<<grid, 256, 0, s>>>(d, static_cast<f16_t*>(y.data)); break;
    case DType::bf16: dequantize_kernel<bf16_t><<<grid, 256, 0, s>>>(d, static_cast<bf16_t*>(y.data)); break;
    default:
      return Status(Code::type, std::string("dequantize: y of dtype ") + dtype_name(y.dtype) + " (expected f32, f16 or bf16)");
  }
  return cuda_last_error("dequantize");
}


Status quantize_cuda(const OpArgs& a) {
  int device = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "quantize", &device));
  const TensorView& x = a.in[0];
  const TensorView& w = a.out[0];
  const int64_t N = w.shape[0], K = w.shape[1];
  if (N <= 0 || K <= 0) return Status::OK();
  if (x.dtype != DType::f32 && x.dtype != DType::f16 && x.dtype != DType::bf16)
    return Status(Code::type, std::string("quantize: x of dtype ") + dtype_name(x.dtype) + " (expected f32, f16 or bf16)");
  if (!aligned_to(w.data, 4))
    return Status(Code::range, "quantize: the weight's data must be 4-byte aligned (a whole quantized tensor)");
  void* scratch = nullptr;
  LK_RETURN_IF_ERROR(cuda_malloc(device, sizeof(unsigned long long), &scratch));
  QuantizeArgs q{static_cast<uint8_t*>(w.data), quant_layout(w.dtype, K), N, qceil(N, kQPanel),
                 static_cast<unsigned long long*>(scratch)};
  cudaStream_t s = stream_of(a);
  set_u64_kernel<<<1, 1, 0, s>>>(q.bad_row, ~0ull);
  switch (x.dtype) {
    case DType::f32: launch_quantize<float>(q, x.data, device, s); break;
    case DType::f16: launch_quantize<f16_t>(q, x.data, device, s); break;
    default: launch_quantize<bf16_t>(q, x.data, device, s); break;
  }
  const Status launched = cuda_last_error("quantize");
  unsigned long long bad = ~0ull;
  const Status copied = launched.ok() ? cuda_copy_d2h(device, &bad, scratch, sizeof bad) : launched;
  cuda_free(device, scratch);  // stream-ordered: after the kernels (the copy has waited for them anyway)
  if (!copied.ok()) return copied;
  if (bad == ~0ull) return Status::OK();
  if (bad >= static_cast<unsigned long long>(N))
    return internal_error("quantize: the CUDA kernel flagged row " + std::to_string(bad) + " of " + std::to_string(N));
  return quantize_row_error(x, w.dtype, K, static_cast<int64_t>(bad), device);
}

Status quant_import_cuda(const OpArgs& a) {
  int device = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "quant_import", &device));
  const TensorView& w = a.out[0];
  const int64_t N = w.shape[0], K = w.shape[1];
  if (N <= 0 || K <= 0) return Status::OK();
  if (!aligned_to(w.data, 4))
    return Status(Code::range, "quant_import: the weight's data must be 4-byte aligned (a whole quantized tensor)");
  const ConvertArgs c{static_cast<const uint8_t*>(a.in[0].data), static_cast<uint8_t*>(w.data), quant_layout(w.dtype, K), N,
                      quant_row_bytes(w.dtype, K)};
  const int64_t words = qceil(N, kQPanel) * c.L.panel_bytes / 4;
  quant_import_kernel<<<grid_for(words, 256, device), 256, 0, stream_of(a)>>>(c);
  return cuda_last_error("quant_import");
}

Status quant_export_cuda(const OpArgs& a) {
  int device = 0;
  LK_RETURN_IF_ERROR(cuda_enter(a, "quant_export", &device));
  const TensorView& w = a.in[0];
  const int64_t N = w.shape[0], K = w.shape[1];
  if (N <= 0 || K <= 0) return Status::OK();
  const ConvertArgs c{static_cast<const uint8_t*>(w.data), static_cast<uint8_t*>(a.out[0].data), quant_layout(w.dtype, K), N,
                      quant_row_bytes(w.dtype, K)};
  const int64_t total = static_cast<int64_t>(quant_row_form_bytes(w.dtype, N, K));
  quant_export_kernel<<<grid_for(total, 256, device), 256, 0, stream_of(a)>>>(c, total);
  return cuda_last_error("quant_export");
}

}  // namespace lk
