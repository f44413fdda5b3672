// The references: the spec of every op. Plain loops, obviously correct; reductions accumulate in double.
#pragma once
#include "../../common/cases.h"
#include "../../common/registry.h"

namespace lk {
#define LK_OP(name, nin, nout, math) Status name##_ref(const OpArgs& a);
#include "../../common/ops.def"
#undef LK_OP
}  // namespace lk
