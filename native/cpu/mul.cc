// mul on the CPU. Placeholder: calls the reference until the fast path lands.
#include "cpu.h"
#include "ref/ref.h"

namespace lk {

Status mul_cpu(const OpArgs& a) { return mul_ref(a); }

}  // namespace lk
