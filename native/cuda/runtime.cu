// The CUDA backend's runtime: probe, per-device streams, stream-ordered memory, copies, events, launch errors
// (everything cuda_backend.h declares). Host code only; it is a .cu file so that nvcc defines __CUDA_ARCH_LIST__,
// the architectures this build carries, for CudaProbe::archs.
//
// Devices: each has one non-blocking stream, created on first use under a per-device mutex (double-checked, so the
// fast path is one atomic load). Every entry point calls cudaSetDevice(device) first: it is cheap, and the calling
// thread (the JS thread, a worker, lk_check) may have another device current, or none yet.
// Memory: cudaMallocAsync / cudaFreeAsync on the device's stream from the device's default pool, whose release
// threshold is set to "never", so freed blocks stay cached in the process instead of going back to the driver at
// every synchronization (the pool's default threshold is 0). An out-of-memory result waits for the stream, trims
// the pool (cached blocks may be too fragmented for the request) and retries once before returning Code::oom.
// Devices without memory-pool support (some virtualized GPUs) fall back to cudaMalloc / cudaFree, which
// synchronize and so are just as safe for a dispose() with kernels still queued.
// Probe: cached once, creating no CUDA context (a context costs hundreds of MiB of device memory; with a process
// per GPU, probing must not create one on every GPU). free_memory is therefore refreshed at each cuda_probe() call
// for the devices this process already uses, and 0 for the others.
//
// Nothing here aborts: failures are Status values (common.cuh) or, for cuda_free, remembered and reported by the
// next cuda_synchronize of that device.
#include <atomic>
#include <climits>
#include <cstdint>
#include <mutex>
#include <string>

#include "common.cuh"
#include "cuda_backend.h"

namespace lk {

namespace {

constexpr int kMaxDevices = 64;

struct DeviceState {
  std::mutex mu;
  std::atomic<cudaStream_t> stream{nullptr};
  bool use_pool = false;  // written before `stream` is published (release), read after it is loaded (acquire)
  std::string deferred;   // the first failed cuda_free since the last cuda_synchronize (guarded by mu)
};
DeviceState g_devices[kMaxDevices];

std::string version_text(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

// "sm_80, sm_90a". CMake may pass its list (LLMK_CUDA_ARCHS_STR="80,90a": the suffix "a" included); otherwise
// __CUDA_ARCH_LIST__ (nvcc 11.5+, e.g. 800,900) gives the architectures without the suffix.
std::string compiled_archs() {
  std::string out;
#if defined(LLMK_CUDA_ARCHS_STR)
  const std::string list = LLMK_CUDA_ARCHS_STR;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find_first_of(",;", pos);
    if (end == std::string::npos) end = list.size();
    std::string a = list.substr(pos, end - pos);
    const size_t dash = a.find('-');  // "90a-real" -> "90a"
    if (dash != std::string::npos) a.resize(dash);
    if (!a.empty()) out += (out.empty() ? "" : ", ") + (a[0] >= '0' && a[0] <= '9' ? "sm_" + a : a);
    pos = end + 1;
  }
#elif defined(__CUDA_ARCH_LIST__)
  const int list[] = {__CUDA_ARCH_LIST__};
  for (int a : list) out += (out.empty() ? "sm_" : ", sm_") + std::to_string(a / 10);
#else
  out = "unknown";
#endif
  return out;
}

// Why cudaGetDeviceCount failed, in words a user can act on.
std::string probe_failure(cudaError_t e, int runtime_version, int driver_version) {
  std::string r = cuda_error_text(e);
  if (e == cudaErrorInsufficientDriver) {
    r += driver_version == 0 ? " (no NVIDIA driver found"
                             : " (the driver supports CUDA " + version_text(driver_version);
    r += "; this build uses the CUDA " + version_text(runtime_version) + " runtime, which needs a driver for CUDA " +
         version_text(runtime_version) + " or newer)";
  }
  return r;
}

CudaProbe run_probe() {
  CudaProbe p;
  p.compiled = true;
  p.archs = compiled_archs();
  if (cudaRuntimeGetVersion(&p.runtime_version) != cudaSuccess) p.runtime_version = CUDART_VERSION;
  int drv = 0;
  if (cudaDriverGetVersion(&drv) == cudaSuccess) p.driver_version = drv;  // 0 when no driver is installed
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    p.reason = probe_failure(e, p.runtime_version, p.driver_version);
    return p;
  }
  if (count <= 0) {
    p.reason = "cudaGetDeviceCount: no CUDA device found";
    return p;
  }
  std::string first_error;
  int usable = 0;
  for (int i = 0; i < count && i < kMaxDevices; ++i) {
    CudaDeviceInfo d;
    d.index = i;
    cudaDeviceProp prop;
    const cudaError_t pe = cudaGetDeviceProperties(&prop, i);
    if (pe != cudaSuccess) {
      (void)cudaGetLastError();
      d.name = "(unusable: " + cuda_error_text(pe) + ")";
      if (first_error.empty()) first_error = "cuda:" + std::to_string(i) + ": " + cuda_error_text(pe);
      p.devices.push_back(d);
      continue;
    }
    d.name = prop.name;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    d.sm_count = prop.multiProcessorCount;
    d.total_memory = prop.totalGlobalMem;
    // Theoretical bandwidth: memory clock (kHz) x 2 (double data rate) x bus width in bytes. CUDA 13 dropped
    // cudaDeviceProp::memoryClockRate; the attribute remains, and may read 0 on some devices (then we leave 0).
    int clock_khz = 0, bus_bits = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, i) != cudaSuccess) clock_khz = 0;
    if (cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, i) != cudaSuccess) bus_bits = prop.memoryBusWidth;
    (void)cudaGetLastError();
    if (clock_khz > 0 && bus_bits > 0) d.memory_bandwidth_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    p.devices.push_back(d);
    ++usable;
  }
  p.available = usable > 0;
  if (!p.available) p.reason = first_error;
  return p;
}

const CudaProbe& probe_cached() {
  static const CudaProbe p = run_probe();  // thread-safe initialization (C++11 magic statics)
  return p;
}

std::string dev_name(int device) { return "cuda:" + std::to_string(device); }

Status check_device(int device, const char* what) {
  const CudaProbe& p = probe_cached();
  if (!p.available) return Status(Code::device, std::string(what) + ": CUDA unavailable: " + p.reason);
  const int n = static_cast<int>(p.devices.size());
  if (device < 0 || device >= n)
    return range_error(std::string(what) + ": expected a device index in [0, " + std::to_string(n) + ") for device, got " +
                       std::to_string(device));
  return Status::OK();
}

// Makes `device` current and returns its stream, creating it (and configuring the pool) on first use.
Status device_stream(int device, const char* what, cudaStream_t* out) {
  *out = nullptr;
  LK_RETURN_IF_ERROR(check_device(device, what));
  LK_CUDA_CHECK(cudaSetDevice(device), std::string(what) + ": cudaSetDevice(" + std::to_string(device) + ")");
  DeviceState& st = g_devices[device];
  cudaStream_t s = st.stream.load(std::memory_order_acquire);
  if (!s) {
    std::lock_guard<std::mutex> lock(st.mu);
    s = st.stream.load(std::memory_order_relaxed);
    if (!s) {
      LK_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
                    std::string(what) + ": creating the stream of " + dev_name(device));
      int pools = 0;
      if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess) pools = 0;
      if (pools) {
        cudaMemPool_t pool = nullptr;
        if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
          uint64_t threshold = UINT64_MAX;  // keep freed memory cached in the pool
          (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
        } else {
          pools = 0;
        }
      }
      (void)cudaGetLastError();  // a failed optional setting above must not be reported by the next launch
      st.use_pool = pools != 0;
      st.stream.store(s, std::memory_order_release);
      // The stream lives until the process exits: destroying it from a static destructor would race with the
      // runtime's own teardown.
    }
  }
  *out = s;
  return Status::OK();
}

void defer_error(int device, const std::string& message) {
  if (device < 0 || device >= kMaxDevices) return;
  DeviceState& st = g_devices[device];
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.deferred.empty()) st.deferred = message;
}

}  // namespace

int cuda_sm_count(int device) {
  const CudaProbe& p = probe_cached();
  if (device < 0 || device >= static_cast<int>(p.devices.size())) return 0;
  return p.devices[device].sm_count;
}

int cuda_cc(int device) {
  const CudaProbe& p = probe_cached();
  if (device < 0 || device >= static_cast<int>(p.devices.size())) return 0;
  return 10 * p.devices[device].cc_major + p.devices[device].cc_minor;
}

CudaProbe cuda_probe() {
  CudaProbe p = probe_cached();
  if (!p.available) return p;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) current = -1;
  bool switched = false;
  for (CudaDeviceInfo& d : p.devices) {
    if (d.index >= kMaxDevices || !g_devices[d.index].stream.load(std::memory_order_acquire)) continue;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(d.index) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) d.free_memory = free_b;
    switched = true;
  }
  if (switched && current >= 0) (void)cudaSetDevice(current);
  (void)cudaGetLastError();
  return p;
}

Status cuda_stream(int device, void** stream) {
  if (!stream) return internal_error("cuda_stream: null output pointer");
  cudaStream_t s = nullptr;
  const Status st = device_stream(device, "cuda_stream", &s);
  *stream = s;
  return st;
}

Status cuda_malloc(int device, size_t bytes, void** ptr) {
  if (!ptr) return internal_error("cuda_malloc: null output pointer");
  *ptr = nullptr;
  if (bytes == 0) return Status::OK();
  cudaStream_t s = nullptr;
  LK_RETURN_IF_ERROR(device_stream(device, "cuda_malloc", &s));
  const bool pool = g_devices[device].use_pool;
  cudaError_t e = pool ? cudaMallocAsync(ptr, bytes, s) : cudaMalloc(ptr, bytes);
  if (e == cudaErrorMemoryAllocation && pool) {
    (void)cudaGetLastError();
    // Blocks freed on the stream but not yet passed by it, and cached blocks too small for this request, are not
    // usable now: wait for the stream, hand every unused cached block back to the driver, and try once more.
    (void)cudaStreamSynchronize(s);
    cudaMemPool_t mp = nullptr;
    if (cudaDeviceGetDefaultMemPool(&mp, device) == cudaSuccess) (void)cudaMemPoolTrimTo(mp, 0);
    (void)cudaGetLastError();
    e = cudaMallocAsync(ptr, bytes, s);
  }
  if (e == cudaSuccess) return Status::OK();
  *ptr = nullptr;
  const std::string what = "cuda_malloc: allocating " + std::to_string(bytes) + " bytes on " + dev_name(device);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      return cuda_status(e, what + " (" + std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) +
                                " MiB)");
  }
  return cuda_status(e, what);
}

void cuda_free(int device, void* ptr) {
  if (!ptr) return;
  cudaStream_t s = nullptr;
  const Status st = device_stream(device, "cuda_free", &s);
  if (!st.ok()) {
    defer_error(device, st.message());
    return;
  }
  const cudaError_t e = g_devices[device].use_pool ? cudaFreeAsync(ptr, s) : cudaFree(ptr);
  if (e != cudaSuccess) defer_error(device, cuda_status(e, "cuda_free on " + dev_name(device)).message());
}

// h2d and d2h wait for the copy: the host buffer belongs to the caller, who may reuse or free it on return. The
// wait covers everything queued before on the stream, so an earlier kernel's failure can surface here.
Status cuda_copy_h2d(int device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::OK();
  cudaStream_t s = nullptr;
  LK_RETURN_IF_ERROR(device_stream(device, "cuda_copy_h2d", &s));
  const std::string what = "cuda_copy_h2d: " + std::to_string(bytes) + " bytes to " + dev_name(device);
  LK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), what);
  LK_CUDA_CHECK(cudaStreamSynchronize(s), what + " (or an earlier operation on its stream)");
  return Status::OK();
}

Status cuda_copy_d2h(int device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::OK();
  cudaStream_t s = nullptr;
  LK_RETURN_IF_ERROR(device_stream(device, "cuda_copy_d2h", &s));
  const std::string what = "cuda_copy_d2h: " + std::to_string(bytes) + " bytes from " + dev_name(device);
  LK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), what);
  LK_CUDA_CHECK(cudaStreamSynchronize(s), what + " (or an earlier operation on its stream)");
  return Status::OK();
}

Status cuda_copy_d2d(int device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::OK();
  cudaStream_t s = nullptr;
  LK_RETURN_IF_ERROR(device_stream(device, "cuda_copy_d2d", &s));
  // cudaMemcpyDefault: with unified addressing the runtime finds each pointer's device, so a copy from another
  // GPU's tensor works too.
  LK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s),
                "cuda_copy_d2d: " + std::to_string(bytes) + " bytes on " + dev_name(device));
  return Status::OK();
}

Status cuda_synchronize(int device) {
  cudaStream_t s = nullptr;
  LK_RETURN_IF_ERROR(device_stream(device, "cuda_synchronize", &s));
  LK_CUDA_CHECK(cudaStreamSynchronize(s),
                "cuda_synchronize: an operation queued on " + dev_name(device) + " failed");
  DeviceState& st = g_devices[device];
  std::string deferred;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    deferred.swap(st.deferred);
  }
  if (!deferred.empty()) return Status(Code::device, deferred);
  return Status::OK();
}

Status cuda_event_record(int device, void** event) {
  if (!event) return internal_error("cuda_event_record: null output pointer");
  *event = nullptr;
  cudaStream_t s = nullptr;
  LK_RETURN_IF_ERROR(device_stream(device, "cuda_event_record", &s));
  cudaEvent_t ev = nullptr;
  // BlockingSync: the thread that waits (a worker completing a read) sleeps instead of spinning a core for as long
  // as the queued kernels run. DisableTiming: cheaper to record, and we never time with these.
  LK_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync),
                "cuda_event_record: creating an event on " + dev_name(device));
  const cudaError_t e = cudaEventRecord(ev, s);
  if (e != cudaSuccess) {
    (void)cudaEventDestroy(ev);
    return cuda_status(e, "cuda_event_record on " + dev_name(device));
  }
  *event = ev;
  return Status::OK();
}

Status cuda_event_wait(int device, void* event) {
  if (!event) return internal_error("cuda_event_wait: null event");
  cudaEvent_t ev = static_cast<cudaEvent_t>(event);
  (void)cudaSetDevice(device);  // the event belongs to its device whatever is current; this only keeps habits
  const cudaError_t e = cudaEventSynchronize(ev);
  (void)cudaEventDestroy(ev);  // always: the event is single-use
  if (e != cudaSuccess) return cuda_status(e, "cuda_event_wait: an operation queued on " + dev_name(device) + " failed");
  (void)cudaGetLastError();
  return Status::OK();
}

Status cuda_last_error(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return Status::OK();
  return cuda_status(e, std::string(what) + ": kernel launch failed");
}

}  // namespace lk
