// mul: y = a * b in f32, rounded once to y's dtype (round to nearest even), bit-exact with mul_ref.
//   a: [..., N] f32/f16/bf16, b: a's shape or [N] (row broadcast), y: a's shape and dtype; all contiguous.
// Kernel: binary_kernel of elementwise.cuh (16-byte packs where aligned and, for a broadcast, N % V == 0; scalar
// grid-stride loop otherwise). __fmul_rn keeps nvcc from fusing anything into an FMA.
// Run: build-gpu/tools/lk_check --backend cuda (correctness), build-gpu/tools/lk_bench --backend cuda (speed).
#include "elementwise.cuh"
#include "kernels.h"

namespace lk {

Status mul_cuda(const OpArgs& a) { return run_binary(a, "mul", MulOp{}); }

}  // namespace lk
