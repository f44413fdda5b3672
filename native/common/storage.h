// Storage: a reference-counted block of device memory. Tensors (views) hold a shared_ptr to it, and so does every
// queued op that reads or writes it, which is what makes dispose() safe while work is pending: the memory goes back
// when the last holder lets go, on whatever thread that is.
//
// CPU memory is 64-byte aligned (one cache line, two ymm registers); freed blocks of >= 1 MiB are cached for reuse
// (storage.cc explains why and how much). CUDA memory comes from the device's
// stream-ordered pool (cuda_backend.h), so its release is ordered after the kernels queued before it.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "status.h"
#include "tensor.h"

namespace lk {

class Storage {
 public:
  // Allocates `bytes` (0 is allowed) on `device`. Failure: Code::oom (the caller may free and retry), or
  // Code::device for a CUDA error other than out-of-memory.
  static Status create(Device device, size_t bytes, std::shared_ptr<Storage>* out);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }

  // Marks the contents invalid: the op that was to write them failed (first failure kept). Reading a poisoned
  // tensor reports that failure instead of returning garbage. Thread-safe; cheap to check.
  void poison(const Status& why);
  bool poisoned() const { return poison_state_.load(std::memory_order_acquire) == 2; }
  Status poison_status() const;
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // Bytes of CPU memory freed since the last call (the N-API layer reports them to V8 as external memory, on
  // the JS thread, since a Storage may be destroyed on any thread).
  static int64_t take_released_cpu_bytes();
  static int64_t live_bytes(DeviceKind kind);
  // The CPU block cache (storage.cc): bytes held for reuse, and releasing them to the system (returns the bytes).
  static size_t cached_cpu_bytes();
  static size_t release_cached_cpu_memory();

 private:
  struct Key {};  // lets create() use make_shared (one allocation for the header and its count) and no one else

 public:
  Storage(Key, Device d, void* p, size_t n) : device_(d), data_(p), bytes_(n) {}

 private:
  Device device_;
  void* data_;
  size_t bytes_;
  std::atomic<int> poison_state_{0};  // 0 clean, 1 being written, 2 poisoned (poison_ valid)
  Status poison_;
};

}  // namespace lk
