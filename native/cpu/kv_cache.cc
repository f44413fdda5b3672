// cache_write, rope_cache_write and kv_copy_blocks on the CPU (the spec: cpu/ref/kv_cache_ref.cc; the layout:
// common/kv.h). rope_cache_write is cache_write with K rotated on the way (one pass over K instead of rope's write
// and cache_write's read).
// cache_write runs tokens in parallel (slots are distinct) with the reference's per-row code: quantization must
// give the same bytes, and a decode step writes one token per sequence, so the write costs little next to the
// attention that reads the whole context. kv_copy_blocks is a memcpy of each block's region (kv, then scales).
#include <cstring>
#include <vector>

#include "../common/kv.h"
#include "../common/rope.h"
#include "../common/thread_pool.h"
#include "cpu.h"
#include "scratch.h"

namespace lk {

namespace {

// The rope of rope_cache_write (absent for cache_write): K rows are rotated (common/rope.h) and rounded to k's
// dtype before they are converted or quantized, exactly what rope then cache_write would store.
struct KRope {
  const int32_t* pos;
  const float* inv_freq;
  int64_t half;
  bool interleaved;
};

float round_to(DType t, float v) {
  uint32_t tmp = 0;
  store_f32(&tmp, t, 0, v);
  return load_f32(&tmp, t, 0);
}

Status write_tokens(const char* op, const TensorView& k, const TensorView& v, const TensorView& slots, const TensorView& kv,
                    const TensorView& kv_scale, const KRope* rope) {
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_cache_write_slots(g, slots));
  const int64_t T = k.shape[0];
  const size_t es = dtype_size(g.dtype);
  const int32_t* sm = static_cast<const int32_t*>(slots.data);
  if (rope)
    for (int64_t t = 0; t < T; ++t)
      if (sm[t] >= 0 && rope->pos[t] < 0)
        return range_error(std::string(op) + ": expected positions >= 0 for positions[" + std::to_string(t) + "], got " + std::to_string(rope->pos[t]));
  ThreadPool& pool = ThreadPool::global();
  const int threads = T * g.hkv * g.d < (1 << 14) ? 1 : pool.threads();
  bool oom = false;
  pool.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    thread_local ScratchBuf buf;
    const int64_t half = rope ? rope->half : 0;
    float* row = buf.get<float>(static_cast<size_t>(g.d + 2 * half));
    if (!row) {
      oom = true;
      return;
    }
    float* c = row + g.d;
    float* sn = c + half;
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t s = sm[t];
      if (s < 0) continue;
      if (rope) rope_angles(rope->pos[t], rope->inv_freq, half, c, sn);
      const int64_t blk = s / g.p, off = s % g.p;
      for (int64_t h = 0; h < g.hkv; ++h)
        for (int which = 0; which < 2; ++which) {
          const TensorView& src = which ? v : k;
          const int64_t x0 = (t * g.hkv + h) * g.d;
          const int64_t dst = g.tile(blk, h, which) + off * g.d;
          const bool rotate = rope && which == 0;
          if (!rotate && !g.quantized() && src.dtype == g.dtype) {
            std::memcpy(static_cast<char*>(kv.data) + dst * es, static_cast<const char*>(src.data) + x0 * es,
                        static_cast<size_t>(g.d) * es);
            continue;
          }
          for (int64_t j = 0; j < g.d; ++j) row[j] = load_f32(src.data, src.dtype, x0 + j);
          if (rotate) {
            rope_rotate_row(row, half, c, sn, rope->interleaved);
            if (src.dtype != DType::f32)
              for (int64_t j = 0; j < g.d; ++j) row[j] = round_to(src.dtype, row[j]);
          }
          if (g.quantized())
            static_cast<float*>(kv_scale.data)[g.scale_tile(blk, h, which) + off] =
                kv_quantize_row(row, g.d, g.dtype, static_cast<char*>(kv.data) + dst * es);
          else
            for (int64_t j = 0; j < g.d; ++j) store_f32(kv.data, g.dtype, dst + j, row[j]);
        }
    }
  }, threads);
  if (oom) return Status(Code::oom, std::string(op) + ": could not allocate a row buffer");
  return Status::OK();
}

}  // namespace

Status cache_write_cpu(const OpArgs& a) {
  return write_tokens("cache_write", a.in[0], a.in[1], a.in[2], a.out[0], a.out[1], nullptr);
}

Status rope_cache_write_cpu(const OpArgs& a) {
  const KRope r{static_cast<const int32_t*>(a.in[3].data), static_cast<const float*>(a.in[4].data), a.in[4].numel(), a.params.i[0] == 1};
  return write_tokens("rope_cache_write", a.in[0], a.in[1], a.in[2], a.out[0], a.out[1], &r);
}

Status kv_copy_blocks_cpu(const OpArgs& a) {
  const TensorView &pairs = a.in[0], &kv = a.out[0], &kv_scale = a.out[1];
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_copy_pairs(g, pairs));
  const int32_t* p = static_cast<const int32_t*>(pairs.data);
  const size_t bytes = static_cast<size_t>(g.block_elems()) * dtype_size(g.dtype);
  const size_t sbytes = static_cast<size_t>(g.hkv * 2 * g.p) * sizeof(float);
  for (int64_t i = 0; i < pairs.shape[0]; ++i) {  // in order, like the reference (a later pair may read an earlier dst)
    const int64_t src = p[2 * i], dst = p[2 * i + 1];
    if (src == dst) continue;
    std::memcpy(static_cast<char*>(kv.data) + dst * bytes, static_cast<const char*>(kv.data) + src * bytes, bytes);
    if (g.quantized())
      std::memcpy(static_cast<char*>(kv_scale.data) + dst * sbytes, static_cast<const char*>(kv_scale.data) + src * sbytes, sbytes);
  }
  return Status::OK();
}

}  // namespace lk
