// cast on the CPU. Placeholder: calls the reference until the fast path lands.
#include "cpu.h"
#include "ref/ref.h"

namespace lk {

Status cast_cpu(const OpArgs& a) { return cast_ref(a); }

}  // namespace lk
