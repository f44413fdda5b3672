#include "storage.h"

#include <cstdlib>
#include <new>
#include <string>

#include "../cuda/cuda_backend.h"

namespace lk {

namespace {
std::atomic<int64_t> g_released_cpu{0};
std::atomic<int64_t> g_live[2] = {{0}, {0}};
constexpr size_t kAlign = 64;
}  // namespace

Status Storage::create(Device device, size_t bytes, std::shared_ptr<Storage>* out) {
  void* p = nullptr;
  if (device.kind == DeviceKind::cpu) {
    // Round up so that SIMD tails may read a whole vector past the last element without leaving the allocation.
    const size_t padded = (bytes + kAlign - 1) / kAlign * kAlign + kAlign;
    if (padded < bytes) return Status(Code::oom, "out of memory: cannot allocate " + std::to_string(bytes) + " bytes");
    if (posix_memalign(&p, kAlign, padded) != 0 || !p)
      return Status(Code::oom, "out of memory: cannot allocate " + std::to_string(bytes) + " bytes of CPU memory");
  } else {
    LK_RETURN_IF_ERROR(cuda_malloc(device.index, bytes == 0 ? 256 : bytes, &p));
  }
  Storage* s = new (std::nothrow) Storage(device, p, bytes);
  if (!s) {
    if (device.kind == DeviceKind::cpu) std::free(p); else cuda_free(device.index, p);
    return Status(Code::oom, "out of memory: tensor header");
  }
  g_live[static_cast<int>(device.kind)].fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  out->reset(s);
  return Status::OK();
}

Storage::~Storage() {
  g_live[static_cast<int>(device_.kind)].fetch_sub(static_cast<int64_t>(bytes_), std::memory_order_relaxed);
  if (device_.kind == DeviceKind::cpu) {
    std::free(data_);
    g_released_cpu.fetch_add(static_cast<int64_t>(bytes_), std::memory_order_relaxed);
  } else {
    cuda_free(device_.index, data_);
  }
}

int64_t Storage::take_released_cpu_bytes() { return g_released_cpu.exchange(0, std::memory_order_relaxed); }
int64_t Storage::live_bytes(DeviceKind kind) { return g_live[static_cast<int>(kind)].load(std::memory_order_relaxed); }

}  // namespace lk
