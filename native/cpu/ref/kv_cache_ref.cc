// cache_write and kv_copy_blocks: the writes of the paged KV cache (layout and quantization: common/kv.h).
//   cache_write: for each token t with slot_mapping[t] = s >= 0, block = s / P, offset = s % P, for each KV head h:
//     the K tile row (block, h, offset) = k[t, h, :] and the V tile row = v[t, h, :], converted to kv.dtype, or for
//     i8/f8e4m3 quantized with kv_quantize_row and its scale stored in kv_scale. Slots must be distinct (the kernels
//     write tokens in parallel; with a repeated slot, which token wins is not defined). Every slot is checked against
//     numBlocks * P before anything is written.
//   kv_copy_blocks: for each pair (src, dst), in order, block dst = block src (every head, K and V, and the scales).
//     Ids are checked before anything is copied.
//   k, v: [T, Hkv, D] float; slot_mapping: [T] i32; pairs: [n, 2] i32; kv, kv_scale: the cache, written in place.
#include <cmath>
#include <cstring>
#include <vector>

#include "../../common/kv.h"
#include "../../common/rope.h"
#include "ref.h"

namespace lk {

Status cache_write_ref(const OpArgs& a) {
  const TensorView &k = a.in[0], &v = a.in[1], &slots = a.in[2], &kv = a.out[0], &kv_scale = a.out[1];
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_cache_write_slots(g, slots));
  const int64_t T = k.shape[0];
  const size_t es = dtype_size(g.dtype);
  std::vector<float> row(static_cast<size_t>(g.d));
  for (int64_t t = 0; t < T; ++t) {
    const int32_t s = static_cast<const int32_t*>(slots.data)[t];
    if (s < 0) continue;
    const int64_t blk = s / g.p, off = s % g.p;
    for (int64_t h = 0; h < g.hkv; ++h)
      for (int which = 0; which < 2; ++which) {
        const TensorView& src = which ? v : k;
        for (int64_t j = 0; j < g.d; ++j) row[j] = load_f32(src.data, src.dtype, (t * g.hkv + h) * g.d + j);
        const int64_t dst = g.tile(blk, h, which) + off * g.d;
        if (g.quantized()) {
          static_cast<float*>(kv_scale.data)[g.scale_tile(blk, h, which) + off] =
              kv_quantize_row(row.data(), g.d, g.dtype, static_cast<char*>(kv.data) + dst * es);
        } else {
          for (int64_t j = 0; j < g.d; ++j) store_f32(kv.data, g.dtype, dst + j, row[j]);
        }
      }
  }
  return Status::OK();
}

// rope_cache_write: cache_write(rope(k), v) where rope(k) is common/rope.h's f32 rotation (the same code as the rope
// kernels: rope's own reference checks its math in double) rounded to k's dtype. Positions of written tokens must
// be >= 0 (checked before anything is written).
Status rope_cache_write_ref(const OpArgs& a) {
  const TensorView &k = a.in[0], &v = a.in[1], &slots = a.in[2], &pos = a.in[3], &freq = a.in[4], &kv = a.out[0], &kv_scale = a.out[1];
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_cache_write_slots(g, slots));
  const int64_t T = k.shape[0], half = freq.numel();
  const int32_t* sm = static_cast<const int32_t*>(slots.data);
  const int32_t* p = static_cast<const int32_t*>(pos.data);
  for (int64_t t = 0; t < T; ++t)
    if (sm[t] >= 0 && p[t] < 0)
      return range_error("rope_cache_write: expected positions >= 0 for positions[" + std::to_string(t) + "], got " + std::to_string(p[t]));
  const size_t es = dtype_size(g.dtype);
  std::vector<float> row(static_cast<size_t>(g.d)), c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  for (int64_t t = 0; t < T; ++t) {
    if (sm[t] < 0) continue;
    rope_angles(p[t], static_cast<const float*>(freq.data), half, c.data(), s.data());
    const int64_t blk = sm[t] / g.p, off = sm[t] % g.p;
    for (int64_t h = 0; h < g.hkv; ++h)
      for (int which = 0; which < 2; ++which) {
        const TensorView& src = which ? v : k;
        for (int64_t j = 0; j < g.d; ++j) row[static_cast<size_t>(j)] = load_f32(src.data, src.dtype, (t * g.hkv + h) * g.d + j);
        if (which == 0) {
          rope_rotate_row(row.data(), half, c.data(), s.data(), a.params.i[0] == 1);
          for (int64_t j = 0; j < g.d; ++j) {  // rounded to k's dtype, as rope's output would be
            uint32_t tmp = 0;
            store_f32(&tmp, src.dtype, 0, row[static_cast<size_t>(j)]);
            row[static_cast<size_t>(j)] = load_f32(&tmp, src.dtype, 0);
          }
        }
        const int64_t dst = g.tile(blk, h, which) + off * g.d;
        if (g.quantized())
          static_cast<float*>(kv_scale.data)[g.scale_tile(blk, h, which) + off] =
              kv_quantize_row(row.data(), g.d, g.dtype, static_cast<char*>(kv.data) + dst * es);
        else
          for (int64_t j = 0; j < g.d; ++j) store_f32(kv.data, g.dtype, dst + j, row[static_cast<size_t>(j)]);
      }
  }
  return Status::OK();
}

Status kv_copy_blocks_ref(const OpArgs& a) {
  const TensorView &pairs = a.in[0], &kv = a.out[0], &kv_scale = a.out[1];
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_copy_pairs(g, pairs));
  const int32_t* pr = static_cast<const int32_t*>(pairs.data);
  const size_t es = dtype_size(g.dtype);
  for (int64_t i = 0; i < pairs.shape[0]; ++i) {
    const int64_t src = pr[2 * i], dst = pr[2 * i + 1];
    // Element by element (the spec), not memcpy.
    for (int64_t e = 0; e < g.block_elems() * static_cast<int64_t>(es); ++e)
      static_cast<char*>(kv.data)[dst * g.block_elems() * es + e] = static_cast<char*>(kv.data)[src * g.block_elems() * es + e];
    if (g.quantized())
      for (int64_t e = 0; e < g.hkv * 2 * g.p; ++e)
        static_cast<float*>(kv_scale.data)[dst * g.hkv * 2 * g.p + e] = static_cast<float*>(kv_scale.data)[src * g.hkv * 2 * g.p + e];
  }
  return Status::OK();
}

namespace {

// Fills a cache with values a cache_write could have produced (scales > 0) and NaN scattered in (the ops must
// leave what they do not write bit for bit, NaN included).
void init_cache(const TensorView& kv, const TensorView& kv_scale, uint64_t seed) {
  CaseRng r(seed);
  const int64_t n = kv.numel();
  for (int64_t i = 0; i < n; ++i) {
    const bool nan = r.next() % 17 == 0;
    switch (kv.dtype) {
      case DType::i8: static_cast<int8_t*>(kv.data)[i] = static_cast<int8_t>(r.range(-127, 127)); break;
      case DType::f8e4m3: static_cast<uint8_t*>(kv.data)[i] = nan ? 0x7f : f32_to_f8e4m3(r.uniform(-448, 448)); break;
      default: store_f32(kv.data, kv.dtype, i, nan ? std::nanf("") : r.uniform(-2, 2)); break;
    }
  }
  for (int64_t i = 0; i < kv_scale.numel(); ++i)
    static_cast<float*>(kv_scale.data)[i] = r.next() % 17 == 0 ? std::nanf("") : r.uniform(0.001f, 0.05f);
}

}  // namespace

std::vector<OpCase> cache_write_cases() {
  std::vector<OpCase> cs;
  const DType kv_types[] = {DType::f32, DType::f16, DType::bf16, DType::i8, DType::f8e4m3};
  int i = 0;
  for (DType kt : kv_types)
    for (int64_t P : {1, 8, 16, 32})
      for (int64_t T : {1, 7, 33}) {
        const int64_t hkv = (i % 3 == 0) ? 1 : 4, D = (i % 4 == 0) ? 80 : (i % 4 == 1 ? 64 : (i % 4 == 2 ? 128 : 7));
        const DType xt = i % 5 == 3 ? DType::f16 : (i % 5 == 4 ? DType::bf16 : DType::f32);
        ++i;
        const int64_t nblocks = (2 * T + P - 1) / P + 2;
        OpCase c;
        c.name = std::string("cache_write(") + dtype_name(kt) + ",P=" + std::to_string(P) + ",T=" + std::to_string(T) +
                 ",Hkv=" + std::to_string(hkv) + ",D=" + std::to_string(D) + "," + dtype_name(xt) + ")";
        c.in = {{xt, {T, hkv, D}}, {xt, {T, hkv, D}}, {DType::i32, {T}}};
        c.out = {{kt, {nblocks, hkv, 2, P, D}}, {DType::f32, kv_dtype_quantized(kt) ? std::vector<int64_t>{nblocks, hkv, 2, P}
                                                                                      : std::vector<int64_t>{0}}};
        // Distinct slots in random order, one token in five skipped (-1), plus an all-zero token row (scale 0).
        c.init_inputs = [](const std::vector<TensorView>& in, uint64_t seed) {
          CaseRng r(seed);
          const int64_t T = in[2].shape[0];
          std::vector<int32_t> perm(static_cast<size_t>(T * 2));  // slots 0 .. 2T-1 fit in nblocks * P
          for (size_t j = 0; j < perm.size(); ++j) perm[j] = static_cast<int32_t>(j);
          for (size_t j = perm.size() - 1; j > 0; --j) std::swap(perm[j], perm[static_cast<size_t>(r.next() % (j + 1))]);
          int32_t* s = static_cast<int32_t*>(in[2].data);
          for (int64_t t = 0; t < T; ++t) s[t] = (T > 1 && r.next() % 5 == 0) ? -1 : perm[static_cast<size_t>(t)];
          const int64_t row = in[0].shape[2];
          for (int64_t j = 0; j < row; ++j) store_f32(in[0].data, in[0].dtype, j, 0.0f);
        };
        c.init_outputs = [](const std::vector<TensorView>& out, uint64_t seed) { init_cache(out[0], out[1], seed); };
        cs.push_back(c);
      }
  return cs;
}

std::vector<OpCase> rope_cache_write_cases() {
  std::vector<OpCase> cs;
  int i = 0;
  for (DType kt : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::f8e4m3})
    for (int64_t T : {1, 7, 33})
      for (int mode : {0, 1}) {
        const int64_t P = (i % 3 == 0) ? 16 : (i % 3 == 1 ? 1 : 8), hkv = (i % 2) ? 2 : 1, D = (i % 4 == 3) ? 80 : 64;
        const int64_t R = (i % 5 == 4) ? D / 2 : D;  // partial rotary now and then
        const DType xt = i % 3 == 2 ? DType::bf16 : (i % 3 == 1 ? DType::f16 : DType::f32);
        ++i;
        const int64_t nblocks = (2 * T + P - 1) / P + 2;
        OpCase c;
        c.name = std::string("rope_cache_write(") + dtype_name(kt) + ",P=" + std::to_string(P) + ",T=" + std::to_string(T) +
                 ",Hkv=" + std::to_string(hkv) + ",D=" + std::to_string(D) + ",R=" + std::to_string(R) + (mode ? ",interleaved," : ",rotate-half,") +
                 dtype_name(xt) + ")";
        c.in = {{xt, {T, hkv, D}}, {xt, {T, hkv, D}}, {DType::i32, {T}}, {DType::i32, {T}}, {DType::f32, {R / 2}}};
        c.out = {{kt, {nblocks, hkv, 2, P, D}}, {DType::f32, kv_dtype_quantized(kt) ? std::vector<int64_t>{nblocks, hkv, 2, P}
                                                                                      : std::vector<int64_t>{0}}};
        c.params.i[0] = mode;
        c.init_inputs = [R](const std::vector<TensorView>& in, uint64_t seed) {
          CaseRng r(seed);
          const int64_t T = in[2].shape[0];
          std::vector<int32_t> perm(static_cast<size_t>(T * 2));
          for (size_t j = 0; j < perm.size(); ++j) perm[j] = static_cast<int32_t>(j);
          for (size_t j = perm.size() - 1; j > 0; --j) std::swap(perm[j], perm[static_cast<size_t>(r.next() % (j + 1))]);
          int32_t* s = static_cast<int32_t*>(in[2].data);
          int32_t* p = static_cast<int32_t*>(in[3].data);
          for (int64_t t = 0; t < T; ++t) {
            s[t] = (T > 1 && r.next() % 5 == 0) ? -1 : perm[static_cast<size_t>(t)];
            p[t] = static_cast<int32_t>(t == 0 ? 0 : r.range(0, 40000));
          }
          float* f = static_cast<float*>(in[4].data);
          for (int64_t j = 0; j < R / 2; ++j) f[j] = static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(j) / static_cast<double>(R)));
        };
        c.init_outputs = [](const std::vector<TensorView>& out, uint64_t seed) { init_cache(out[0], out[1], seed); };
        cs.push_back(c);
      }
  return cs;
}

std::vector<OpCase> kv_copy_blocks_cases() {
  std::vector<OpCase> cs;
  for (DType kt : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::f8e4m3})
    for (int64_t n : {1, 5}) {
      const int64_t nblocks = 13, hkv = 2, P = kt == DType::f16 ? 1 : 16, D = 64;
      OpCase c;
      c.name = std::string("kv_copy_blocks(") + dtype_name(kt) + ",n=" + std::to_string(n) + ",P=" + std::to_string(P) + ")";
      c.in = {{DType::i32, {n, 2}}};
      c.out = {{kt, {nblocks, hkv, 2, P, D}},
               {DType::f32, kv_dtype_quantized(kt) ? std::vector<int64_t>{nblocks, hkv, 2, P} : std::vector<int64_t>{0}}};
      c.init_inputs = [nblocks](const std::vector<TensorView>& in, uint64_t seed) {
        // Sources from the first half, destinations from the second: no pair reads a block another one writes.
        CaseRng r(seed);
        int32_t* p = static_cast<int32_t*>(in[0].data);
        for (int64_t i = 0; i < in[0].shape[0]; ++i) {
          p[2 * i] = static_cast<int32_t>(r.range(0, nblocks / 2 - 1));
          p[2 * i + 1] = static_cast<int32_t>(nblocks / 2 + i);
        }
      };
      c.init_outputs = [](const std::vector<TensorView>& out, uint64_t seed) { init_cache(out[0], out[1], seed); };
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
