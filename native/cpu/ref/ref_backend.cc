// The kernel table of the reference backend. lk_check and the Node tests compare every backend with it.
#include "ref.h"

namespace lk {

const Kernel* ref_kernel_table() {
  static const Kernel table[] = {
#define LK_OP(name, nin, nout, math) {name##_ref, nullptr},
#include "../../common/ops.def"
#undef LK_OP
  };
  static_assert(sizeof(table) / sizeof(table[0]) == kNumOps, "one reference per op");
  return table;
}

}  // namespace lk
