// Row-parallel helper of the layer ops (embedding, rms_norm, add_rms_norm, rope, silu_mul): fn(r0, r1) over
// [0, rows), split over ThreadPool::global() when the work (rows x row_elems) is big enough to pay for the wake-up.
// Never throws; an error Status from fn (the first one) is returned.
#pragma once
#include <atomic>
#include <mutex>

#include "../common/thread_pool.h"
#include "cpu.h"
#include "guard.h"

namespace lk {

template <class F>
Status parallel_rows(const char* op, int64_t rows, int64_t row_elems, const F& fn) {
  return catch_to_status(op, [&]() -> Status {
    if (rows <= 0) return Status::OK();
    if (rows == 1 || rows * row_elems < 32768) return fn(int64_t{0}, rows);
    // About 16384 elements a chunk, whole rows.
    const int64_t per = row_elems >= 16384 ? 1 : 16384 / row_elems;
    const int64_t chunks = (rows + per - 1) / per;
    std::mutex mu;
    Status first = Status::OK();
    std::atomic<bool> failed{false};
    ThreadPool::global().parallel_for(chunks, [&](int64_t c0, int64_t c1, int) {
      if (failed.load(std::memory_order_relaxed)) return;
      const int64_t r1 = c1 * per < rows ? c1 * per : rows;
      Status s = fn(c0 * per, r1);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) first = std::move(s);
      }
    });
    return first;
  });
}

}  // namespace lk
