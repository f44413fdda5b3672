#include "storage.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "../cuda/cuda_backend.h"

namespace lk {

namespace {
std::atomic<int64_t> g_released_cpu{0};
std::atomic<int64_t> g_live[2] = {{0}, {0}};
constexpr size_t kAlign = 64;

// CPU block cache. Fresh memory from the kernel costs a page fault per 4 KiB on first touch: for a 64 MiB tensor
// that is ~16k faults, which made a 16M-element `scale` three times slower than the memory it streams. Runtimes
// allocate the same activation sizes step after step, so freed blocks of >= 1 MiB are kept (by exact padded size)
// and handed out again, up to a cap (LLMK_CPU_CACHE_MB, default 1024; 0 disables). Blocks of >= 4 MiB are 2 MiB
// aligned and advised as huge pages (fewer faults and TLB misses when streaming). When an allocation fails, the
// cache is emptied and the allocation retried before reporting ERR_OOM.
constexpr size_t kCacheMin = size_t(1) << 20;
constexpr size_t kHuge = size_t(4) << 20;
constexpr size_t kHugeAlign = size_t(2) << 20;

class BlockCache {
 public:
  void* take(size_t padded) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(padded);
    if (it == blocks_.end()) return nullptr;
    void* p = it->second;
    blocks_.erase(it);
    cached_ -= padded;
    return p;
  }
  // Returns false when the block does not fit under the cap (the caller frees it).
  bool put(void* p, size_t padded) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + padded > cap()) return false;
    blocks_.emplace(padded, p);
    cached_ += padded;
    return true;
  }
  size_t release_all() {
    std::multimap<size_t, void*> old;
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old.swap(blocks_);
      n = cached_;
      cached_ = 0;
    }
    for (auto& b : old) std::free(b.second);
    return n;
  }
  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  static size_t cap() {
    static const size_t c = [] {
      const char* e = std::getenv("LLMK_CPU_CACHE_MB");
      const long long mb = e ? std::atoll(e) : 1024;
      return mb > 0 ? static_cast<size_t>(mb) << 20 : size_t(0);
    }();
    return c;
  }
  std::mutex mu_;
  std::multimap<size_t, void*> blocks_;
  size_t cached_ = 0;
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache();  // leaked: blocks may be freed from threads that outlive static dtors
  return *c;
}

// Bytes actually reserved for a CPU tensor of `bytes`: a whole number of cache lines plus one, so SIMD tails may
// read a vector past the last element without leaving the allocation; large blocks round to 64 KiB so that sizes
// that differ by a little share cache entries.
size_t padded_size(size_t bytes) {
  size_t p = (bytes + kAlign - 1) / kAlign * kAlign + kAlign;
  if (p >= kCacheMin) p = (p + (size_t(64) << 10) - 1) / (size_t(64) << 10) * (size_t(64) << 10);
  return p;
}

void* cpu_alloc(size_t padded) {
  if (padded >= kCacheMin)
    if (void* p = cache().take(padded)) return p;
  const size_t align = padded >= kHuge ? kHugeAlign : kAlign;
  void* p = nullptr;
  if (posix_memalign(&p, align, padded) != 0) p = nullptr;
  if (!p && cache().cached() > 0) {
    cache().release_all();
    if (posix_memalign(&p, align, padded) != 0) p = nullptr;
  }
#ifdef MADV_HUGEPAGE
  if (p && padded >= kHuge) madvise(p, padded, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  return p;
}

void cpu_free(void* p, size_t padded) {
  if (padded >= kCacheMin && cache().put(p, padded)) return;
  std::free(p);
}

}  // namespace

Status Storage::create(Device device, size_t bytes, std::shared_ptr<Storage>* out) {
  void* p = nullptr;
  if (device.kind == DeviceKind::cpu) {
    const size_t padded = padded_size(bytes);
    if (padded < bytes || !(p = cpu_alloc(padded)))
      return Status(Code::oom, "out of memory: cannot allocate " + std::to_string(bytes) + " bytes of CPU memory");
  } else {
    LK_RETURN_IF_ERROR(cuda_malloc(device.index, bytes == 0 ? 256 : bytes, &p));
  }
  try {
    *out = std::make_shared<Storage>(Key{}, device, p, bytes);
  } catch (const std::bad_alloc&) {
    if (device.kind == DeviceKind::cpu) cpu_free(p, padded_size(bytes)); else cuda_free(device.index, p);
    return Status(Code::oom, "out of memory: tensor header");
  }
  g_live[static_cast<int>(device.kind)].fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  return Status::OK();
}

Storage::~Storage() {
  g_live[static_cast<int>(device_.kind)].fetch_sub(static_cast<int64_t>(bytes_), std::memory_order_relaxed);
  if (device_.kind == DeviceKind::cpu) {
    cpu_free(data_, padded_size(bytes_));
    g_released_cpu.fetch_add(static_cast<int64_t>(bytes_), std::memory_order_relaxed);
  } else {
    cuda_free(device_.index, data_);
  }
}

void Storage::poison(const Status& why) {
  int expected = 0;
  if (!poison_state_.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
  poison_ = why;
  poison_state_.store(2, std::memory_order_release);
}

Status Storage::poison_status() const {
  if (!poisoned()) return Status::OK();
  return Status(poison_.code(), "the op that produced this tensor failed: " + poison_.message());
}

int64_t Storage::take_released_cpu_bytes() { return g_released_cpu.exchange(0, std::memory_order_relaxed); }
int64_t Storage::live_bytes(DeviceKind kind) { return g_live[static_cast<int>(kind)].load(std::memory_order_relaxed); }
size_t Storage::cached_cpu_bytes() { return cache().cached(); }
size_t Storage::release_cached_cpu_memory() { return cache().release_all(); }

}  // namespace lk
