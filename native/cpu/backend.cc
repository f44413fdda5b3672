// The kernel table of the CPU backend.
#include "cpu.h"

namespace lk {

const Kernel* cpu_kernel_table() {
  static const Kernel table[] = {
#define LK_OP(name, nin, nout, math) {name##_cpu, nullptr},
#include "../common/ops.def"
#undef LK_OP
  };
  static_assert(sizeof(table) / sizeof(table[0]) == kNumOps, "one CPU kernel per op");
  return table;
}

}  // namespace lk
