// Without the CUDA backend (LLMK_CUDA=OFF or no nvcc): the custom CUDA all-reduce says so. cuda_ar.cu is the real
// one; this file compiles to nothing in a CUDA build.
#if !defined(LLMK_HAVE_CUDA)
#include "cuda_ar.h"

namespace lk::dist {

struct CudaAllReduce::Impl {};

namespace {
Status no_cuda() { return unsupported("allReduce(cuda): this build of llm-kernels has no CUDA backend"); }
}  // namespace

Status CudaAllReduce::open(Communicator*, int, size_t, Clock::time_point, std::unique_ptr<CudaAllReduce>*) { return no_cuda(); }
Status CudaAllReduce::open_local(int, int, size_t, std::vector<std::unique_ptr<CudaAllReduce>>*) { return no_cuda(); }
Status CudaAllReduce::run_local(std::vector<std::unique_ptr<CudaAllReduce>>&, const std::vector<CollectiveArgs>&, int64_t,
                                double*) {
  return no_cuda();
}
CudaAllReduce::~CudaAllReduce() = default;
Status CudaAllReduce::enqueue(const CollectiveArgs&, void*, int64_t) { return no_cuda(); }
Status CudaAllReduce::check() { return Status::OK(); }
void CudaAllReduce::abort(Status why) { (void)fail_.set(std::move(why)); }

}  // namespace lk::dist
#endif
