// Compiled only when the build has no CUDA backend (LLMK_CUDA=OFF or no nvcc): the CUDA entry points say so.
#include "../cuda/cuda_backend.h"

namespace lk {

const Kernel* cuda_kernel_table() { return nullptr; }

CudaProbe cuda_probe() {
  CudaProbe p;
  p.compiled = false;
  p.reason = "this build of llm-kernels has no CUDA backend (built without nvcc, or with LLMK_CUDA=OFF)";
  return p;
}

}  // namespace lk
