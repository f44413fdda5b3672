// embedding: y[t, :] = table[ids[t], :] converted to y's dtype.   table: [V, E] float, ids: [T] i32, y: [T, E]
//
// A row copy (memcpy when the dtypes match) or a converting loop; parallel over tokens. Bit-exact with
// embedding_ref. Run: lk_check --op embedding.
#include <cstring>

#include "elementwise.h"
#include "rows.h"

namespace lk {

Status embedding_cpu(const OpArgs& a) {
  const TensorView& table = a.in[0];  // [V, E]
  const TensorView& ids = a.in[1];    // [T] i32
  const TensorView& y = a.out[0];     // [T, E]
  const int64_t V = table.shape[0], E = table.shape[1];
  const int32_t* id = static_cast<const int32_t*>(ids.data);
  return parallel_rows("embedding", ids.numel(), E, [&](int64_t t0, int64_t t1) -> Status {
    for (int64_t t = t0; t < t1; ++t) {
      if (id[t] < 0 || id[t] >= V)
        return range_error("embedding: expected ids in [0, " + std::to_string(V) + ") for ids[" + std::to_string(t) + "], got " +
                           std::to_string(id[t]));
      const void* src = elem_at(table.data, table.dtype, static_cast<int64_t>(id[t]) * E);
      void* dst = elem_at(y.data, y.dtype, t * E);
      if (table.dtype == y.dtype) {
        std::memcpy(dst, src, static_cast<size_t>(E) * dtype_size(y.dtype));
        continue;
      }
      dispatch_float(table.dtype, [&](auto ti) {
        dispatch_float(y.dtype, [&](auto yi) {
          for (int64_t e = 0; e < E; ++e) st<decltype(yi)::value>(dst, e, ld<decltype(ti)::value>(src, e));
        });
      });
    }
    return Status::OK();
  });
}

}  // namespace lk
