// The roofline probes: this machine's own ceilings, measured in the same process as the kernels they judge.
// Benchmarks report every figure as a fraction of these (bench/ and lk_bench), never as a bare time.
#pragma once
#include <cstddef>

namespace lk {

struct Roofline {
  int threads = 1;
  double read_gbs = 0;      // memory read bandwidth, 256-bit loads, one stream per thread, buffer >> LLC
  double fma_gflops = 0;    // f32 FMA peak (2 flops per lane per FMA)
  double int8_gops = 0;     // int8 multiply-add with int32 accumulation (vpdpbusd with AVX-512 VNNI, else vpmaddubsw +
                            // vpmaddwd), 2 ops per MAC
  const char* simd = "";    // the SIMD level the probes used
};

// Each probe takes about 0.2-0.5 s and uses `threads` threads of ThreadPool::global(), best of several runs.
double probe_read_bandwidth(int threads, size_t bytes = size_t(256) << 20);
double probe_fma_peak(int threads);
double probe_int8_peak(int threads);
Roofline probe_roofline(int threads);

}  // namespace lk
