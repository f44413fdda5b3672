// Quantized weights on CUDA: not implemented yet (the CUDA kernels issue). The entries exist so that the kernel
// table names every op; backend.cu's supports() refuses these ops before anything is enqueued, so these bodies
// only answer a direct call (lk_check honours supports() too).
#include "kernels.h"

namespace lk {

Status quantize_cuda(const OpArgs&) { return unsupported("quantize: no CUDA kernel yet"); }
Status dequantize_cuda(const OpArgs&) { return unsupported("dequantize: no CUDA kernel yet"); }
Status quant_import_cuda(const OpArgs&) { return unsupported("quant_import: no CUDA kernel yet"); }
Status quant_export_cuda(const OpArgs&) { return unsupported("quant_export: no CUDA kernel yet"); }
Status matmul_q_cuda(const OpArgs&) { return unsupported("matmul_q: no CUDA kernel yet"); }

}  // namespace lk
