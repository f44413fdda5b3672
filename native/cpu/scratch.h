// A per-thread scratch buffer for CPU kernels: 64-byte aligned, grow-only, kept between calls (declare it
// thread_local) so that back-to-back ops do not pay for page faults; freed when the thread exits (ThreadPool::resize,
// process end). get<T>(n) returns room for n elements of T, or nullptr when the memory cannot be had (the kernel
// turns that into ERR_OOM). Baseline code only: not for the simd/ files.
#pragma once
#include <cstddef>
#include <cstdlib>

namespace lk {

class ScratchBuf {
 public:
  ScratchBuf() = default;
  ScratchBuf(const ScratchBuf&) = delete;
  ScratchBuf& operator=(const ScratchBuf&) = delete;
  ~ScratchBuf() { std::free(p_); }
  template <class T>
  T* get(size_t n) {
    return static_cast<T*>(bytes(n * sizeof(T)));
  }
  void* bytes(size_t b) {
    if (b <= cap_) return p_;
    std::free(p_);
    cap_ = 0;
    p_ = std::aligned_alloc(64, (b + 63) & ~size_t(63));
    if (p_) cap_ = b;
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;  // bytes
};

}  // namespace lk
