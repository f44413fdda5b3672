// The roofline probes (roofline.h): this machine's read bandwidth, f32 FMA peak and int8 multiply-add peak,
// measured on the threads of ThreadPool::global() in the same process as the kernels they judge.
//
// Method: each probe runs its inner loop on `threads` pool threads at once (one chunk per thread), times the whole
// parallel_for with steady_clock, and keeps the best of several runs (a peak is a ceiling: the best run is the
// one least disturbed by the OS). The AVX2 loops live in native/cpu/simd/roofline_avx2.cc (compiled with
// -mavx2 -mfma); the scalar fallbacks below are what a baseline x86-64 / aarch64 build of a kernel could reach,
// used when cpu_simd_level() is scalar (no AVX2, or LLMK_SIMD=scalar).
//
// Measured on the 2-vCPU AMD EPYC (Zen 4, KVM) dev box, one thread, quiet: read ~30 GB/s, FMA ~117 GFLOP/s
// (32 flops/cycle at ~3.65 GHz), int8 ~117 GMAC/s (one vpmaddubsw + one vpmaddwd per cycle); scalar fallback:
// FMA ~20 GFLOP/s, int8 ~15 GMAC/s. Two threads give 1x to 2x that: the host often runs both vCPUs on one physical
// core (two pinned single-thread FMA loops got ~58 GFLOP/s each), and other work on the box halves it again. Earlier
// readings on a calmer box were read 17.5 GB/s, FMA 157 GFLOP/s, int8 179 GMAC/s at 2 threads. The probe measures
// whatever the machine gives at the time, so a kernel timed later can come out above 1.0 of it on a noisy host.
//
// This file is also compiled into the Node addon: no main(), no printing. How to run: `lk_bench` prints it first.
#include "roofline.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/thread_pool.h"
#include "cpu/cpu.h"

namespace lk {

#if defined(LLMK_HAVE_AVX2_TU)
// native/cpu/simd/roofline_avx2.cc
uint64_t roofline_read_avx2(const void* data, size_t bytes);
double roofline_fma_avx2(int64_t iters, float* sink);
double roofline_int8_avx2(int64_t iters, int32_t* sink);
#endif
#if defined(LLMK_HAVE_AVX512_TU)
double roofline_int8_avx512(int64_t iters, int32_t* sink);  // native/cpu/simd/roofline_avx512.cc
#endif

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Results land here so that no probe loop is dead code.
std::atomic<uint64_t> g_sink{0};

bool use_avx2() {
#if defined(LLMK_HAVE_AVX2_TU)
  return cpu_simd_level() >= SimdLevel::avx2;
#else
  return false;
#endif
}

int clamp_threads(int threads) { return std::max(1, std::min(threads, ThreadPool::global().threads())); }

// ---- scalar fallbacks ----
// Written so that the compiler's baseline auto-vectorisation (SSE2 / NEON) applies, as it would to a plain kernel.

uint64_t read_scalar(const void* data, size_t bytes) {
  const uint64_t* p = static_cast<const uint64_t*>(data);
  const size_t n = bytes / sizeof(uint64_t);
  uint64_t a[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] |= p[i + j];
  for (; i < n; ++i) a[0] |= p[i];
  uint64_t s = 0;
  for (int j = 0; j < 8; ++j) s |= a[j];
  return s;
}

constexpr int kScalarLanes = 32;  // independent chains: covers mul + add latency with 4-lane SSE vectors

double fma_scalar(int64_t iters, float* sink) {
  float acc[kScalarLanes];
  for (int j = 0; j < kScalarLanes; ++j) acc[j] = 1.0f + 0.01f * static_cast<float>(j);
  for (int64_t it = 0; it < iters; ++it)
    for (int j = 0; j < kScalarLanes; ++j) acc[j] = acc[j] * 0.999999f + 0.000001f;  // fixed point 1: stays normal
  float s = 0;
  for (int j = 0; j < kScalarLanes; ++j) s += acc[j];
  *sink = s;
  return static_cast<double>(iters) * kScalarLanes * 2;
}

double int8_scalar(int64_t iters, int32_t* sink) {
  uint8_t a[kScalarLanes];
  int8_t b[kScalarLanes];
  int32_t acc[kScalarLanes] = {};
  for (int j = 0; j < kScalarLanes; ++j) {
    a[j] = static_cast<uint8_t>(j * 7 + 1);
    b[j] = static_cast<int8_t>(j * 5 - 60);
  }
  const uint8_t* ap = a;
  for (int64_t it = 0; it < iters; ++it) {
    // ap becomes an unknown pointer every step, so a[] is reloaded and the products cannot be hoisted out of the
    // loop (a memory clobber would do it too, but would also spill acc[] on every step).
    __asm__ volatile("" : "+r"(ap));
    for (int j = 0; j < kScalarLanes; ++j) acc[j] += static_cast<int32_t>(ap[j]) * b[j];
  }
  int32_t s = 0;
  for (int j = 0; j < kScalarLanes; ++j) s += acc[j];
  *sink = s;
  return static_cast<double>(iters) * kScalarLanes * 2;
}

// Runs work(iters) on `threads` threads at once, returning the best rate (work units per second) of several runs.
// Calibrates iters on one thread first so that a run lasts ~60 ms; 5 runs keep a probe within ~0.35 s.
template <typename Work>
double best_rate(int threads, Work work) {
  int64_t iters = 1 << 14;
  for (;;) {  // calibrate: grow until one call takes >= 5 ms
    const auto t0 = Clock::now();
    work(iters);
    const double t = seconds_since(t0);
    if (t >= 0.005 || iters >= (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(iters) * 0.06 / std::max(t, 1e-9)));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    std::vector<double> done(threads, 0.0);
    const auto t0 = Clock::now();
    ThreadPool::global().parallel_for(
        threads, [&](int64_t b, int64_t e, int) {
          for (int64_t c = b; c < e; ++c) done[c] = work(iters);
        },
        threads);
    const double t = seconds_since(t0);
    double total = 0;
    for (double d : done) total += d;
    best = std::max(best, total / t);
  }
  return best;
}

}  // namespace

double probe_read_bandwidth(int threads, size_t bytes) {
  threads = clamp_threads(threads);
  // Memory like a large tensor's (native/common/storage.cc): 2 MiB aligned and advised as huge pages. With 4 KiB
  // pages the probe read ~33 GB/s while elementwise ops on tensors streamed ~60-70 GB/s, so fractions came out
  // far above 1.0: the ceiling must be measured on the memory the kernels get.
  const size_t align = size_t(2) << 20;
  const size_t chunk = std::max<size_t>(align, (bytes / threads) / align * align);  // per-thread stream
  const size_t total = chunk * threads;
  std::unique_ptr<void, void (*)(void*)> buf(std::aligned_alloc(align, total), std::free);
  if (!buf) return 0;
#ifdef MADV_HUGEPAGE
  madvise(buf.get(), total, MADV_HUGEPAGE);
#endif
  char* base = static_cast<char*>(buf.get());
  ThreadPool& pool = ThreadPool::global();
  // Touch first, each chunk by the thread that will read it: page faults stay out of the timing, and on a NUMA
  // machine the pages land next to their reader. Non-zero bytes, so no page can be the shared zero page.
  pool.parallel_for(threads, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; ++c) std::memset(base + c * chunk, 0x5a, chunk);
  }, threads);
  const bool avx2 = use_avx2();
  double best = 0;
  const auto start = Clock::now();
  // One pass of 256 MiB takes ~15 ms at 17 GB/s: at least 5 passes, then more until ~0.3 s, best one kept.
  for (int run = 0; run < 5 || (run < 50 && seconds_since(start) < 0.3); ++run) {
    std::vector<uint64_t> out(threads, 0);
    const auto t0 = Clock::now();
    pool.parallel_for(threads, [&](int64_t b, int64_t e, int) {
      for (int64_t c = b; c < e; ++c) {
#if defined(LLMK_HAVE_AVX2_TU)
        out[c] = avx2 ? roofline_read_avx2(base + c * chunk, chunk) : read_scalar(base + c * chunk, chunk);
#else
        (void)avx2;
        out[c] = read_scalar(base + c * chunk, chunk);
#endif
      }
    }, threads);
    const double t = seconds_since(t0);
    for (uint64_t v : out) g_sink.fetch_xor(v, std::memory_order_relaxed);
    best = std::max(best, static_cast<double>(total) / t);
  }
  return best * 1e-9;
}

double probe_fma_peak(int threads) {
  threads = clamp_threads(threads);
  const bool avx2 = use_avx2();
  return best_rate(threads, [avx2](int64_t iters) {
    float sink = 0;
#if defined(LLMK_HAVE_AVX2_TU)
    const double flops = avx2 ? roofline_fma_avx2(iters, &sink) : fma_scalar(iters, &sink);
#else
    (void)avx2;
    const double flops = fma_scalar(iters, &sink);
#endif
    uint32_t bits;
    std::memcpy(&bits, &sink, 4);
    g_sink.fetch_xor(bits, std::memory_order_relaxed);
    return flops;
  }) * 1e-9;
}

double probe_int8_peak(int threads) {
  threads = clamp_threads(threads);
  const bool avx2 = use_avx2();
  const bool vnni = cpu_simd_level() >= SimdLevel::avx512;
  return best_rate(threads, [avx2, vnni](int64_t iters) {
    int32_t sink = 0;
#if defined(LLMK_HAVE_AVX512_TU)
    if (vnni) {
      const double ops = roofline_int8_avx512(iters, &sink);
      g_sink.fetch_xor(static_cast<uint32_t>(sink), std::memory_order_relaxed);
      return ops;
    }
#else
    (void)vnni;
#endif
#if defined(LLMK_HAVE_AVX2_TU)
    const double ops = avx2 ? roofline_int8_avx2(iters, &sink) : int8_scalar(iters, &sink);
#else
    (void)avx2;
    const double ops = int8_scalar(iters, &sink);
#endif
    g_sink.fetch_xor(static_cast<uint32_t>(sink), std::memory_order_relaxed);
    return ops;
  }) * 1e-9;
}

Roofline probe_roofline(int threads) {
  Roofline r;
  r.threads = clamp_threads(threads);
  r.simd = simd_level_name(cpu_simd_level());
  r.read_gbs = probe_read_bandwidth(r.threads);
  r.fma_gflops = probe_fma_peak(r.threads);
  r.int8_gops = probe_int8_peak(r.threads);
  return r;
}

}  // namespace lk
