// The CUDA kernels of every op of ops.def, <op>_cuda, as plain C++ declarations (no CUDA headers): backend.cu builds
// the kernel table from them. Each takes device pointers in its TensorViews and a.stream = the device's
// cudaStream_t, launches on that stream without waiting, and returns cuda_last_error("<op>").
#pragma once
#include "../common/registry.h"

namespace lk {

#define LK_OP(name, nin, nout, math) Status name##_cuda(const OpArgs& a);
#include "../common/ops.def"
#undef LK_OP

}  // namespace lk
