// copy: y = x, byte for byte.   x, y: [...] contiguous, same dtype and element count
//
// memcpy is already the fastest single-thread copy (glibc picks its AVX/ERMS variant at load time), so the fast path
// only splits large copies over the thread pool: one core cannot saturate the memory bandwidth of a many-core
// socket. Run: lk_check --op copy; lk_bench --op copy.
#include <cstring>

#include "elementwise.h"

namespace lk {

Status copy_cpu(const OpArgs& a) {
  const TensorView& x = a.in[0];  // [...]
  const TensorView& y = a.out[0];  // [...], x's element count and dtype
  if (x.data == y.data) return Status::OK();
  const DType t = x.dtype;
  return parallel_elements("copy", x.numel(), [&](int64_t begin, int64_t end) {
    std::memcpy(elem_at(y.data, t, begin), elem_at(x.data, t, begin), static_cast<size_t>(end - begin) * dtype_size(t));
  });
}

}  // namespace lk
