// The layer ops on CUDA: not implemented yet (the CUDA kernels issue). The entries exist so that the kernel table
// names every op; backend.cu's supports() refuses these ops before anything is enqueued, so these bodies only
// answer a direct call (lk_check honours supports() too).
#include "kernels.h"

namespace lk {

Status embedding_cuda(const OpArgs&) { return unsupported("embedding: no CUDA kernel yet"); }
Status rms_norm_cuda(const OpArgs&) { return unsupported("rms_norm: no CUDA kernel yet"); }
Status add_rms_norm_cuda(const OpArgs&) { return unsupported("add_rms_norm: no CUDA kernel yet"); }
Status rope_cuda(const OpArgs&) { return unsupported("rope: no CUDA kernel yet"); }
Status silu_mul_cuda(const OpArgs&) { return unsupported("silu_mul: no CUDA kernel yet"); }
Status layer_norm_cuda(const OpArgs&) { return unsupported("layer_norm: no CUDA kernel yet"); }
Status gelu_cuda(const OpArgs&) { return unsupported("gelu: no CUDA kernel yet"); }
Status silu_cuda(const OpArgs&) { return unsupported("silu: no CUDA kernel yet"); }

}  // namespace lk
