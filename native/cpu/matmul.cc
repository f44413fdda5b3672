// matmul on the CPU. Placeholder: calls the reference until the fast path lands.
#include "cpu.h"
#include "ref/ref.h"

namespace lk {

Status matmul_cpu(const OpArgs& a) { return matmul_ref(a); }

}  // namespace lk
