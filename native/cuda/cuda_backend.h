// The CUDA backend's host-side interface, in plain C++ (no CUDA headers), so that the addon, lk_check and lk_bench
// include it whether or not CUDA was compiled in. Without CUDA, cpu/no_cuda.cc defines cuda_probe() and
// cuda_kernel_table(), and the other functions are never called (cuda_probe().available is false).
//
// Streams and memory: each device has one in-order stream (a non-blocking cudaStream_t created on first use).
// Tensor memory comes from the device's stream-ordered pool (cudaMallocAsync/cudaFreeAsync on that stream), so a
// tensor freed while kernels that read it are still queued is only reused after they ran: dispose() is always safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../common/registry.h"

namespace lk {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_memory = 0;
  size_t free_memory = 0;
  double memory_bandwidth_gbs = 0;  // theoretical, from clock and bus width when the runtime reports them
};

struct CudaProbe {
  bool compiled = false;    // the CUDA backend is in this build
  bool available = false;   // compiled, and at least one device works
  std::string reason;       // why not available, e.g. "cudaErrorNoDevice: no CUDA-capable device is detected"
  std::string archs;        // the architectures compiled, e.g. "sm_80, sm_90a"
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver
  std::vector<CudaDeviceInfo> devices;
};

// Probes once (cached); never throws. Safe to call on machines without a driver.
CudaProbe cuda_probe();

// The device's stream (created on first use) as an opaque cudaStream_t.
Status cuda_stream(int device, void** stream);
// Stream-ordered allocation on the device's stream; an out-of-memory result is Code::oom.
Status cuda_malloc(int device, size_t bytes, void** ptr);
void cuda_free(int device, void* ptr);  // stream-ordered; never fails loudly (errors surface at the next sync)
// Copies ordered on the device's stream. h2d and d2h block the calling thread until the copy is done.
Status cuda_copy_h2d(int device, void* dst, const void* src, size_t bytes);
Status cuda_copy_d2h(int device, void* dst, const void* src, size_t bytes);
Status cuda_copy_d2d(int device, void* dst, const void* src, size_t bytes);
// Waits for everything queued on the device's stream; returns the first asynchronous error, if any.
Status cuda_synchronize(int device);
// An opaque event recorded now on the device's stream; cuda_event_wait blocks until the stream passes it (and
// destroys the event). Used to complete reads without blocking the JS thread.
Status cuda_event_record(int device, void** event);
Status cuda_event_wait(int device, void* event);
// After a kernel launch: the launch error, if any, as a Status (Code::device).
Status cuda_last_error(const char* what);

}  // namespace lk
