// fill on the CPU. Placeholder: calls the reference until the fast path lands.
#include "cpu.h"
#include "ref/ref.h"

namespace lk {

Status fill_cpu(const OpArgs& a) { return fill_ref(a); }

}  // namespace lk
