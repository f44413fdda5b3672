#include "kv.h"

#include <string>

namespace lk {

namespace {
std::string expected(const char* op, const std::string& what, const std::string& param, const std::string& got) {
  return std::string(op) + ": expected " + what + " for " + param + ", got " + got;
}
}  // namespace

Status check_kv(const char* op, const TensorView& kv, const TensorView& kv_scale) {
  if (!kv_dtype_ok(kv.dtype))
    return type_error(expected(op, "a KV cache dtype (f32, f16, bf16, i8, f8e4m3)", "kv.dtype", dtype_name(kv.dtype)));
  if (kv.ndim != 5 || kv.shape[0] < 1 || kv.shape[1] < 1 || kv.shape[2] != 2 || kv.shape[3] < 1 || kv.shape[4] < 1)
    return range_error(expected(op, "a cache [numBlocks, Hkv, 2, P, D] with every size >= 1", "kv.shape", kv.shape_str()));
  if (kv.shape[4] > 1024) return range_error(expected(op, "a head dim D <= 1024", "kv.shape[4]", std::to_string(kv.shape[4])));
  if (kv_dtype_quantized(kv.dtype)) {
    const bool ok = kv_scale.dtype == DType::f32 && kv_scale.ndim == 4 && kv_scale.shape[0] == kv.shape[0] &&
                    kv_scale.shape[1] == kv.shape[1] && kv_scale.shape[2] == 2 && kv_scale.shape[3] == kv.shape[3];
    if (!ok)
      return range_error(expected(op, "f32 scales [" + std::to_string(kv.shape[0]) + "," + std::to_string(kv.shape[1]) +
                                          ",2," + std::to_string(kv.shape[3]) + "] for a " + dtype_name(kv.dtype) + " cache",
                                  "kv_scale", std::string(dtype_name(kv_scale.dtype)) + " " + kv_scale.shape_str()));
  } else if (kv_scale.numel() != 0) {
    return range_error(expected(op, std::string("an empty kv_scale for a ") + dtype_name(kv.dtype) + " cache", "kv_scale",
                                kv_scale.shape_str()));
  }
  return Status::OK();
}

Status check_paged_args(const char* op, const KvGeom& g, const TensorView& block_tables, const TensorView& context_lens,
                        const TensorView* query_start, int64_t num_queries) {
  const int64_t B = context_lens.shape[0], max_blocks = block_tables.shape[1];
  const int32_t* bt = static_cast<const int32_t*>(block_tables.data);
  const int32_t* lens = static_cast<const int32_t*>(context_lens.data);
  const int32_t* qs = query_start ? static_cast<const int32_t*>(query_start->data) : nullptr;
  if (qs && (qs[0] != 0 || qs[B] != num_queries))
    return range_error(expected(op, "query_start[0] = 0 and query_start[B] = " + std::to_string(num_queries) + " (the query count)",
                                "query_start", "[" + std::to_string(qs[0]) + ", ..., " + std::to_string(qs[B]) + "]"));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = lens[b];
    if (len < 0 || len > max_blocks * g.p)
      return range_error(expected(op, "a length in [0, " + std::to_string(max_blocks * g.p) + "] (maxBlocks * P)",
                                  "context_lens[" + std::to_string(b) + "]", std::to_string(len)));
    if (qs) {
      const int64_t nq = static_cast<int64_t>(qs[b + 1]) - qs[b];
      if (nq < 0 || nq > len)
        return range_error(expected(op, "a query count in [0, context_lens[" + std::to_string(b) + "] = " + std::to_string(len) + "]",
                                    "query_start[" + std::to_string(b + 1) + "] - query_start[" + std::to_string(b) + "]",
                                    std::to_string(nq)));
    }
    const int64_t used = (len + g.p - 1) / g.p;
    for (int64_t j = 0; j < used; ++j) {
      const int32_t blk = bt[b * max_blocks + j];
      if (blk < 0 || blk >= g.nblocks)
        return range_error(expected(op, "a block id in [0, " + std::to_string(g.nblocks) + ")",
                                    "block_tables[" + std::to_string(b) + "][" + std::to_string(j) + "]", std::to_string(blk)));
    }
  }
  return Status::OK();
}

Status check_cache_write_slots(const KvGeom& g, const TensorView& slot_mapping) {
  const int32_t* s = static_cast<const int32_t*>(slot_mapping.data);
  for (int64_t t = 0; t < slot_mapping.shape[0]; ++t)
    if (s[t] >= g.slots())
      return range_error(expected("cache_write", "a slot in [0, " + std::to_string(g.slots()) + ") (numBlocks * P) or negative to skip",
                                  "slot_mapping[" + std::to_string(t) + "]", std::to_string(s[t])));
  return Status::OK();
}

Status check_copy_pairs(const KvGeom& g, const TensorView& pairs) {
  const int32_t* p = static_cast<const int32_t*>(pairs.data);
  for (int64_t i = 0; i < 2 * pairs.shape[0]; ++i)
    if (p[i] < 0 || p[i] >= g.nblocks)
      return range_error(expected("kv_copy_blocks", "a block id in [0, " + std::to_string(g.nblocks) + ")",
                                  std::string("pairs[") + std::to_string(i / 2) + "][" + std::to_string(i % 2) + "]", std::to_string(p[i])));
  return Status::OK();
}

}  // namespace lk
