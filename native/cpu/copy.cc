// copy on the CPU. Placeholder: calls the reference until the fast path lands.
#include "cpu.h"
#include "ref/ref.h"

namespace lk {

Status copy_cpu(const OpArgs& a) { return copy_ref(a); }

}  // namespace lk
