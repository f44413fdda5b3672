// The kernel table of the CUDA backend: one Kernel per op of ops.def, in op order (like cpu/backend.cc).
//
// supports() answers before anything is enqueued. The kernels handle every dtype and shape validate_op() accepts,
// so what is refused here is a call the kernels must not see: a tensor that is not on one CUDA device (a host
// pointer handed to a kernel is an illegal address, and that error is sticky: it would end the process's CUDA
// context), and sizes beyond a kernel's grid (matmul_cuda_limits).
#include "kernels.h"

namespace lk {

const char* matmul_cuda_limits(const OpArgs& a);  // matmul.cu
const char* paged_attention_prefill_cuda_limits(const OpArgs& a);  // paged_prefill.cu

namespace {

bool on_one_cuda_device(const OpArgs& a) {
  const TensorView* first = a.n_out > 0 ? &a.out[0] : (a.n_in > 0 ? &a.in[0] : nullptr);
  if (!first || first->device.kind != DeviceKind::cuda) return false;
  for (int i = 0; i < a.n_in; ++i)
    if (a.in[i].device != first->device) return false;
  for (int i = 0; i < a.n_out; ++i)
    if (a.out[i].device != first->device) return false;
  return true;
}

const char* op_limits(const OpArgs& a) {
  switch (a.op) {
    case OpId::matmul: return matmul_cuda_limits(a);
    // Paged attention: head sizes up to 256 (the kernels' shared-memory tiles); larger ones stay on the CPU.
    case OpId::paged_attention_decode:
      return a.in[1].shape[4] > 256 ? "paged_attention_decode: the cuda kernel takes head sizes D up to 256; use device 'cpu'" : nullptr;
    case OpId::paged_attention_prefill: return paged_attention_prefill_cuda_limits(a);
    default: return nullptr;
  }
}

#define LK_OP(name, nin, nout, math)                                                        \
  const char* name##_cuda_supports(const OpArgs& a) {                                       \
    if (!on_one_cuda_device(a)) return #name ": cuda kernel needs every tensor on one CUDA device"; \
    return op_limits(a);                                                                    \
  }
#include "../common/ops.def"
#undef LK_OP

}  // namespace

const Kernel* cuda_kernel_table() {
  static const Kernel table[] = {
#define LK_OP(name, nin, nout, math) {name##_cuda, name##_cuda_supports},
#include "../common/ops.def"
#undef LK_OP
  };
  static_assert(sizeof(table) / sizeof(table[0]) == kNumOps, "one CUDA kernel per op");
  return table;
}

}  // namespace lk
