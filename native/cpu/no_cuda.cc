// Compiled only when the build has no CUDA backend (LLMK_CUDA=OFF or no nvcc): the CUDA entry points say so.
// cuda_probe().available is false, so nothing reaches the other functions; they answer Code::unsupported anyway.
#include "../cuda/cuda_backend.h"

namespace lk {

namespace {
Status no_cuda() { return unsupported("this build of llm-kernels has no CUDA backend"); }
}  // namespace

const Kernel* cuda_kernel_table() { return nullptr; }

CudaProbe cuda_probe() {
  CudaProbe p;
  p.compiled = false;
  p.reason = "this build of llm-kernels has no CUDA backend (built without nvcc, or with LLMK_CUDA=OFF)";
  return p;
}

Status cuda_stream(int, void**) { return no_cuda(); }
Status cuda_malloc(int, size_t, void**) { return no_cuda(); }
void cuda_free(int, void*) {}
Status cuda_copy_h2d(int, void*, const void*, size_t) { return no_cuda(); }
Status cuda_copy_d2h(int, void*, const void*, size_t) { return no_cuda(); }
Status cuda_copy_d2d(int, void*, const void*, size_t) { return no_cuda(); }
Status cuda_synchronize(int) { return no_cuda(); }
Status cuda_event_record(int, void**) { return no_cuda(); }
Status cuda_event_wait(int, void*) { return no_cuda(); }
Status cuda_last_error(const char*) { return no_cuda(); }

}  // namespace lk
