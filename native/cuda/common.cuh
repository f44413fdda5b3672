// Shared by the CUDA backend's translation units: cudaError_t -> lk::Status, the per-call device switch, and the
// grid size of the grid-stride kernels.
//
// Error policy (status.h): nothing here aborts, asserts or exits. A failed CUDA call becomes
//   Status(Code::device, "<what>: <cudaErrorName>: <cudaGetErrorString>")
// and an allocation failure (cudaErrorMemoryAllocation) becomes Code::oom so that the caller may free and retry.
// Every conversion also reads cudaGetLastError(), because the runtime remembers the last error of any call and
// would otherwise report it again after the next kernel launch (cuda_last_error) under the wrong op's name.
// Sticky errors (an illegal address inside a kernel, ...) poison the CUDA context of the process: the message says
// so, since no retry can succeed after one.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../common/registry.h"
#include "../common/status.h"

namespace lk {

// Errors after which the context is unusable until the process exits (CUDA runtime API docs, "sticky" errors).
inline bool cuda_error_is_sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorIllegalInstruction:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

// "cudaErrorNoDevice: no CUDA-capable device is detected"
inline std::string cuda_error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

// The Status of a failed CUDA call; `what` says what was being done ("cuda_malloc(4096 bytes) on cuda:0").
inline Status cuda_status(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::OK();
  (void)cudaGetLastError();  // clear the non-sticky "last error" so the next launch check does not repeat it
  std::string m = what + ": " + cuda_error_text(e);
  if (cuda_error_is_sticky(e)) m += " (the CUDA context of this process is lost; restart the process)";
  return Status(e == cudaErrorMemoryAllocation ? Code::oom : Code::device, std::move(m));
}

// Returns from the enclosing Status function when `expr` is not cudaSuccess.
#define LK_CUDA_CHECK(expr, what)                                     \
  do {                                                                \
    const cudaError_t lk_cuda_e_ = (expr);                            \
    if (lk_cuda_e_ != cudaSuccess) return ::lk::cuda_status(lk_cuda_e_, (what)); \
  } while (0)

// The SM count of a device, from the cached probe (0 if unknown). Defined in runtime.cu.
int cuda_sm_count(int device);
// The compute capability of a device as 10 * major + minor (90 for Hopper), from the cached probe (0 if unknown).
int cuda_cc(int device);

// Makes the device of the call's output current (the calling thread may differ from the one that made the stream,
// and a launch on another device's stream fails). Tensors that are not marked as CUDA tensors keep the current
// device; backend.cu's supports() rejects calls whose tensors are not all on one CUDA device before we get here.
inline Status cuda_enter(const OpArgs& a, const char* op, int* device) {
  int dev = 0;
  if (a.n_out > 0 && a.out[0].device.kind == DeviceKind::cuda) {
    dev = a.out[0].device.index;
    LK_CUDA_CHECK(cudaSetDevice(dev), std::string(op) + ": cudaSetDevice(" + std::to_string(dev) + ")");
  } else {
    LK_CUDA_CHECK(cudaGetDevice(&dev), std::string(op) + ": cudaGetDevice");
  }
  *device = dev;
  return Status::OK();
}

inline cudaStream_t stream_of(const OpArgs& a) { return static_cast<cudaStream_t>(a.stream); }

// Blocks of a grid-stride kernel over `work` items with `threads` per block: enough to cover the work, at most
// `waves` full waves of 2048 resident threads per SM (more blocks only add scheduling; the loop covers the rest).
inline unsigned grid_for(int64_t work, int threads, int device, int waves = 1) {
  const int sms = cuda_sm_count(device);
  const int64_t cap = static_cast<int64_t>(sms > 0 ? sms : 132) * (2048 / threads) * waves;
  int64_t blocks = (work + threads - 1) / threads;
  if (blocks > cap) blocks = cap;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace lk
