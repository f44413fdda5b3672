// embedding: y[t, :] = table[ids[t], :] converted to y's dtype.   table: [V, E] float, ids: [T] i32, y: [T, E]
//
// Also the row gather of a model step (the hidden rows whose logits are wanted). An id outside [0, V) is an error
// of the call (range), found when the op runs: ids live in device memory, so they cannot be checked at enqueue
// time here; lib/nn checks ids it builds from JS arrays before they reach the op.
#include "ref.h"

namespace lk {

Status embedding_ref(const OpArgs& a) {
  const TensorView& table = a.in[0];  // [V, E]
  const TensorView& ids = a.in[1];    // [T] i32
  const TensorView& y = a.out[0];     // [T, E]
  const int64_t V = table.shape[0], E = table.shape[1], T = ids.numel();
  const int32_t* id = static_cast<const int32_t*>(ids.data);
  for (int64_t t = 0; t < T; ++t) {
    if (id[t] < 0 || id[t] >= V)
      return range_error("embedding: expected ids in [0, " + std::to_string(V) + ") for ids[" + std::to_string(t) + "], got " +
                         std::to_string(id[t]));
    for (int64_t e = 0; e < E; ++e) store_f32(y.data, y.dtype, t * E + e, load_f32(table.data, table.dtype, id[t] * E + e));
  }
  return Status::OK();
}

std::vector<OpCase> embedding_cases() {
  std::vector<OpCase> cs;
  for (DType tt : {DType::f32, DType::f16, DType::bf16})
    for (DType yt : {DType::f32, tt})
      for (auto ve : {std::pair<int64_t, int64_t>{1, 1}, {7, 33}, {320, 256}, {33, 4099}})
        for (int64_t T : {1, 7, 64}) {
          OpCase c;
          c.name = "embedding(V=" + std::to_string(ve.first) + ",E=" + std::to_string(ve.second) + ",T=" + std::to_string(T) +
                   "," + dtype_name(tt) + "->" + dtype_name(yt) + ")";
          c.in = {{tt, {ve.first, ve.second}}, {DType::i32, {T}}};
          c.out = {{yt, {T, ve.second}}};
          const int64_t V = ve.first;
          c.init_inputs = [V](const std::vector<TensorView>& in, uint64_t seed) {
            CaseRng rng(seed);
            int32_t* id = static_cast<int32_t*>(in[1].data);
            for (int64_t t = 0; t < in[1].numel(); ++t) id[t] = static_cast<int32_t>(t == 0 ? V - 1 : rng.range(0, V - 1));
          };
          cs.push_back(c);
        }
  return cs;
}

}  // namespace lk
