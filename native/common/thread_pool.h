// A persistent thread pool with a low-overhead parallel_for.
//
// One pool per process (the kernels of every CPU stream share it). parallel_for(n, fn) splits [0, n) into at most
// `threads` contiguous chunks; the calling thread runs chunk 0 and the workers the rest, so a pool of size T has
// T - 1 worker threads. Workers spin briefly on a generation counter before sleeping on a condition variable, which
// keeps the dispatch cost of back-to-back small ops at a few microseconds without burning a core when idle.
// parallel_for is not re-entrant: a nested call runs serially on the calling thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

// A spin-wait hint for the busy loops of the pool and the streams.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LK_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define LK_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define LK_CPU_RELAX() ((void)0)
#endif

namespace lk {

class ThreadPool {
 public:
  static ThreadPool& global();

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_.load(std::memory_order_relaxed); }
  // Changes the pool size (>= 1). Safe while another thread is inside parallel_for (each Node environment's CPU
  // stream has its own executor): it waits for the pool to be free and holds it meanwhile. Throws
  // std::system_error if threads cannot be created (the pool keeps the ones that started).
  void resize(int threads);

  // fn(begin, end, chunk_index) over contiguous chunks of [0, n); chunks >= 1 element. Returns when all are done.
  // `max_chunks` caps the parallelism (e.g. to the number of rows); 0 means threads().
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int max_chunks = 0);

  static int hardware_threads();

 private:
  void start(int threads);
  void stop();
  void worker(int index, uint64_t seen);
  void run_chunk(int c);

  std::atomic<int> threads_{1};  // read from any thread (info()); written only by start()
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> quit_{false};
  std::atomic<bool> busy_{false};
  // the current job
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace lk
