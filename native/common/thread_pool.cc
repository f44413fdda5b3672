#include "thread_pool.h"

#include <algorithm>


namespace lk {

int ThreadPool::hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool& ThreadPool::global() {
  // Leaked on purpose: worker threads must not be joined from a static destructor after the addon is unloaded.
  static ThreadPool* pool = new ThreadPool(hardware_threads());
  return *pool;
}

ThreadPool::ThreadPool(int threads) { start(std::max(1, threads)); }
ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int threads) {
  threads_ = threads;
  quit_ = false;
  // New workers must only react to jobs posted after they exist: start them at the current generation (starting
  // at 0 made a worker of a resized pool take an old generation for new work and run a stale job).
  const uint64_t seen = generation_.load(std::memory_order_acquire);
  try {
    workers_.reserve(threads - 1);
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i, seen] { worker(i, seen); });
  } catch (...) {
    // Thread creation failed part-way (e.g. out of memory): run with the workers that started, so that no chunk
    // is ever handed to a worker that does not exist, and let the caller report the failure.
    threads_ = static_cast<int>(workers_.size()) + 1;
    throw;
  }
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::resize(int threads) {
  threads = std::max(1, threads);
  if (threads == threads_) return;
  // Each Node environment has its own executor (stream.h), so another may be inside parallel_for: take the pool
  // (its parallel_for calls run serially meanwhile) before replacing the workers.
  bool expected = false;
  while (!busy_.compare_exchange_weak(expected, true, std::memory_order_acquire)) {
    expected = false;
    std::this_thread::yield();
  }
  struct Release {
    std::atomic<bool>& b;
    ~Release() { b.store(false, std::memory_order_release); }
  } release{busy_};
  stop();
  start(threads);
}

void ThreadPool::run_chunk(int c) {
  const int64_t n = job_n_;
  const int chunks = job_chunks_;
  const int64_t base = n / chunks, extra = n % chunks;
  const int64_t begin = c * base + std::min<int64_t>(c, extra);
  const int64_t end = begin + base + (c < extra ? 1 : 0);
  if (begin >= end) return;
  // A throwing chunk must not take the process down (a worker thread would call std::terminate): the first
  // exception is kept and rethrown by parallel_for on the calling thread, where the stream turns it into a Status.
  try {
    (*job_)(begin, end, c);
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker(int index, uint64_t seen) {
  for (;;) {
    // Spin a little (new work usually follows the last within microseconds), then sleep.
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < 4000; ++spin) {
      LK_CPU_RELAX();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (quit_.load(std::memory_order_acquire)) return;
    if (index < job_chunks_) run_chunk(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int max_chunks) {
  if (n <= 0) return;
  int chunks = threads_;
  if (max_chunks > 0) chunks = std::min(chunks, max_chunks);
  chunks = static_cast<int>(std::min<int64_t>(chunks, n));
  bool expected = false;
  if (chunks <= 1 || !busy_.compare_exchange_strong(expected, true)) {
    fn(0, n, 0);  // serial, or nested inside another parallel_for
    return;
  }
  // threads_ may have changed between the read above and taking the pool (a resize from another executor).
  chunks = std::min(chunks, static_cast<int>(workers_.size()) + 1);
  if (chunks <= 1) {
    busy_.store(false, std::memory_order_release);
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_chunks_ = chunks;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  run_chunk(0);
  while (pending_.load(std::memory_order_acquire) != 0) LK_CPU_RELAX();
  job_ = nullptr;
  std::exception_ptr err;
  std::swap(err, error_);
  busy_.store(false, std::memory_order_release);
  if (err) std::rethrow_exception(err);
}

}  // namespace lk
