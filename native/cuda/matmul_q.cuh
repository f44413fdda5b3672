// Shared by the CUDA matmul_q kernels: matmul_q.cu (the op's entry, the GEMV path for small M and the fallback for
// every shape) and matmul_q_mma.cu (the tensor-core path for larger M), and quant_act.cu (the activations of the
// integer path).
//
// The weight is the panel form of common/quant.h, the same bytes as on the CPU (a quantized tensor moves between
// devices with .to() unchanged). Its 8-row panels interleaved in 4-byte chunks of k are already in mma fragment
// order: lane (g = lane / 4, t = lane % 4) of a warp reading the 4 bytes at qs[t][g] of a block holds k = 4t..4t+3
// of row g, which is the B fragment of mma.m16n8k32 (s8) as it is, and that of mma.m16n8k16 (f16/bf16) under one
// permutation of k applied to both operands. So no separate "pre-shuffled" copy of the weight is needed.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/registry.h"
#include "../common/status.h"

namespace lk {

// The activations of matmul_q's integer path (params.i[0] == 0): x [M, K] (f32, f16 or bf16, row-major, K
// contiguous) quantized by the rules of quant.h's quantize_act_block, bit for bit:
//   per_row == false (q8_0, q4_*): each block of 32 of a row; qx [M, Kp] int8 with Kp = ceil(K / 32) * 32 (zeros
//     past K), dx [M, Kp / 32] f32.
//   per_row == true (i8_pc): the whole row as one block; qx [M, Kp] as above, dx [M] f32.
// A block or row holding NaN or Inf gets q = 0 and d = NaN (the result is NaN, like the reference's).
// Enqueued on `stream`; qx and dx are device memory the caller owns (cuda_malloc on the same stream).
Status quantize_act_cuda(const void* x, DType xt, int64_t M, int64_t K, bool per_row, int8_t* qx, float* dx,
                         cudaStream_t stream);

// The tensor-core path (matmul_q_mma.cu). Returns false, touching nothing, when it does not take the call (M too
// small, a dtype it does not cover); then matmul_q.cu runs its own kernels. Otherwise enqueues the whole op on
// a's stream and returns true with *st set.
bool matmul_q_mma_cuda(const OpArgs& a, int device, Status* st);

// The Hopper wgmma path of the int8 path for i8_pc weights (matmul_q_wgmma.cu), offered the call before
// matmul_q_mma_cuda. Declines (false, touching nothing) unless LLMK_WGMMA=1 and the device is compute capability
// 9.0 running the sm_90a kernel (matmul_q_wgmma_enabled), or `force` (the CPU emulation's check), and the call
// fits (path 0, i8_pc, M >= 64, K <= 131072, a 16-byte aligned weight). Otherwise enqueues the op and sets *st.
bool matmul_q_wgmma_cuda(const OpArgs& a, int device, Status* st, bool force = false);
bool matmul_q_wgmma_enabled(int device);

}  // namespace lk
