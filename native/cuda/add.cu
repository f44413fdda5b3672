// add: y = a + b in f32, rounded once to y's dtype (round to nearest even), bit-exact with add_ref.
//   a: [..., N] f32/f16/bf16, b: a's shape or [N] (row broadcast), y: a's shape and dtype; all contiguous.
// Kernel: binary_kernel of elementwise.cuh (16-byte packs where aligned and, for a broadcast, N % V == 0; scalar
// grid-stride loop otherwise). Versions: this one only so far; lk_bench reports its GB/s against the copy roofline.
// Run: build-gpu/tools/lk_check --backend cuda (correctness), build-gpu/tools/lk_bench --backend cuda (speed).
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

Status add_cuda(const OpArgs& a) { return run_binary(a, "add", AddOp{}); }

}  // namespace lk
