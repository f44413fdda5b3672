// cache_write and kv_copy_blocks on the CPU (the spec: cpu/ref/kv_cache_ref.cc; the layout: common/kv.h).
// cache_write runs tokens in parallel (slots are distinct) with the reference's per-row code: quantization must
// give the same bytes, and a decode step writes one token per sequence, so the write costs little next to the
// attention that reads the whole context. kv_copy_blocks is a memcpy of each block's region (kv, then scales).
#include <cstring>
#include <vector>

#include "../common/kv.h"
#include "../common/thread_pool.h"
#include "cpu.h"
#include "scratch.h"

namespace lk {

Status cache_write_cpu(const OpArgs& a) {
  const TensorView &k = a.in[0], &v = a.in[1], &slots = a.in[2], &kv = a.out[0], &kv_scale = a.out[1];
  const KvGeom g(kv);
  LK_RETURN_IF_ERROR(check_cache_write_slots(g, slots));
  const int64_t T = k.shape[0];
  const size_t es = dtype_size(g.dtype);
  const int32_t* sm = static_cast<const int32_t*>(slots.data);
  ThreadPool& pool = ThreadPool::global();
  const int threads = T * g.hkv * g.d < (1 << 14) ? 1 : pool.threads();
  bool oom = false;
  pool.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    thread_local ScratchBuf buf;
    float* row = buf.get<float>(static_cast<size_t>(g.d));
    if (!row) {
      oom = true;
      return;
    }
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t s = sm[t];
      if (s < 0) continue;
      const int64_t blk = s / g.p, off = s % g.p;
      for (int64_t h = 0; h < g.hkv; ++h)
        for (int which = 0; which < 2; ++which) {
          const TensorView& src = which ? v : k;
          const int64_t x0 = (t * g.hkv + h) * g.d;
          const int64_t dst = g.tile(blk, h, which) + off * g.d;
          if (!g.quantized() && src.dtype == g.dtype) {
            std::memcpy(static_cast<char*>(kv.data) + dst * es, static_cast<const char*>(src.data) + x0 * es,
                        static_cast<size_t>(g.d) * es);
            continue;
          }
          for (int64_t j = 0; j < g.d; ++j) row[j] = load_f32(src.data, src.dtype, x0 + j);
          if (g.quantized())
            static_cast<float*>(kv_scale.data)[g.scale_tile(blk, h, which) + off] =
                kv_quantize_row(row, g.d, g.dtype, static_cast<char*>(kv.data) + dst * es);
          else
            for (int64_t j = 0; j < g.d; ++j) store_f32(kv.data, g.dtype, dst + j, row[j]);
        }
    }
  }, threads);
  if (oom) return Status(Code::oom, "cache_write: could not allocate a row buffer");
  return Status::OK();
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
