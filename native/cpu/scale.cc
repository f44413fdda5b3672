// scale on the CPU. Placeholder: calls the reference until the fast path lands.
#include "cpu.h"
#include "ref/ref.h"

namespace lk {

Status scale_cpu(const OpArgs& a) { return scale_ref(a); }

}  // namespace lk
