// lk_bench: how fast the kernels are, as fractions of this machine's measured roofline and next to a peer.
//
// What it measures:
//   1. The roofline probe (roofline.h): read bandwidth, f32 FMA peak, int8 multiply-add peak, on the threads of
//      the CPU pool.
//   2. For each op of the registry (ops.def) and each available backend (cpu; cuda when cuda_probe() finds a
//      device), a set of bench shapes: the ops' own cases (cases.h) are small test cases, so the ops that matter
//      have their shapes listed here (bench_specs); any other op runs its largest registered case, so a new op
//      shows up here without an edit. Per entry: median and best time of one call, GFLOP/s (2*M*N*K for matmul),
//      GB/s (bytes read + written, each tensor once), and the fraction of the roofline:
//        roof = max(flops / fma peak, bytes / read bandwidth) / time  (the attained share of the attainable time
//        bound; "bound" says which term is the larger). On cuda the ceiling is the device's measured copy
//        bandwidth (probe_cuda_copy_gbs; no GPU FLOP peak is probed, so GEMMs there are judged by their peer).
//   3. A peer in the same process: OpenBLAS cblas_sgemm via dlopen (cblas_sgemv too for M=1), on every f32 matmul
//      shape our cpu backend ran, with the ratio ours / peer (the faster peer call). It runs with our thread count
//      and without the OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides (see load_openblas); the line says so.
//
// Timing: a warm-up call first (an entry whose first call takes > 20 s is skipped; a pilot call on a shape cut
// along M or n predicts that before paying for it, so a slow path cannot stall the run), then repeated calls until
// ~0.5 s per entry (at least 3 samples; 1 when a call takes > 2 s). CPU calls are synchronous; CUDA calls only
// launch, so they are timed as a batch between two cuda_synchronize() (a sample is batch time / batch size).
//
// How to run:
//   cmake -S . -B build-bench -DLLMK_ADDON=OFF && cmake --build build-bench -j --target lk_bench
//   build-bench/tools/lk_bench                       # roofline + default entries + peer
//   build-bench/tools/lk_bench --filter matmul_f32 --json bench.json
//   build-bench/tools/lk_bench --quick               # CI smoke run: fewer iterations, no 4096^3, < 20 s
// Flags: --json FILE, --threads N, --backend cpu|cuda, --filter SUBSTRING, --full, --quick. Exit status 0 unless
// the arguments are wrong (a missing backend or peer is reported, not an error).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/cases.h"
#include "common/registry.h"
#include "common/thread_pool.h"
#include "cpu/cpu.h"
#include "cuda/cuda_backend.h"
#include "tools/roofline.h"
#include "tools/tool_common.h"

namespace lk {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// How long to spend. --quick keeps the whole run (probe ~1.5 s included) under 20 s for CI.
struct Budget {
  double target_s = 0.5;        // per entry, after the warm-up
  double first_call_max_s = 20;  // an entry whose first call takes longer is skipped
  int min_samples = 3;
};

// ---- data ----

// Bench inputs: a block of up to 1M elements from the tools' seeded generator (tool_common.h: normal, never zero),
// repeated over the tensor. Generating every element would cost ~50 ns each (0.85 s for 16M floats, seconds per
// run); a 4 MiB period is invisible to the kernels timed here.
void fill_bench_data(const TensorSpec& spec, void* p, uint64_t seed) {
  if (dtype_is_quant(spec.dtype)) return tools::fill_random_spec(spec, p, seed);  // quantized: every row
  const DType t = spec.dtype;
  const int64_t n = tools::spec_numel(spec);
  const int64_t block = std::min<int64_t>(n, int64_t(1) << 20);
  tools::fill_random(p, t, block, seed);
  const size_t es = dtype_size(t);
  char* base = static_cast<char*>(p);
  for (int64_t i = block; i < n; i += block)
    std::memcpy(base + i * es, base, static_cast<size_t>(std::min(block, n - i)) * es);
}

// ---- the bench list ----

struct BenchSpec {
  std::string base;  // stable name without the backend suffix, e.g. "matmul_f32 M=1024 N=1024 K=1024"
  OpId op = OpId::count;
  std::vector<TensorSpec> in, out;
  OpParams params;
  double flops = 0;
  int64_t M = 0, N = 0, K = 0;  // matmul only (the peer runs these)
  bool from_cases = false;      // the op's largest registered case, not a bench shape
  bool cuda_only = false;       // a GPU-sized shape (e.g. an int8 GEMM at 4096^3): minutes on this CPU
  std::function<void(const std::vector<TensorView>&, uint64_t)> init_inputs, init_outputs;  // OpCase's hooks
};

double spec_bytes(const BenchSpec& s) {
  double b = 0;
  for (const TensorSpec& t : s.in) b += static_cast<double>(tools::spec_bytes(t));
  for (const TensorSpec& t : s.out) b += static_cast<double>(tools::spec_bytes(t));
  return b;
}

BenchSpec matmul_spec(DType t, int64_t M, int64_t N, int64_t K) {
  BenchSpec s;
  s.base = std::string("matmul_") + dtype_name(t) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
           " K=" + std::to_string(K);
  s.op = OpId::matmul;
  s.in = {{t, {M, K}}, {t, {N, K}}};
  s.out = {{t, {M, N}}};
  s.flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  s.M = M, s.N = N, s.K = K;
  return s;
}

// matmul_q: x [M, K] of dtype t times a quantized weight [N, K] of format f; path 1 = dequantize (W4A16/W8A16 for
// f16/bf16 x), path 0 = int8 activations (W8A8 with i8_pc). The weight is valid panel-form data (fill_bench_data
// quantizes random floats), and its bytes, not N*K*2, are what spec_bytes counts.
BenchSpec matmul_q_spec(DType f, DType t, int64_t M, int64_t N, int64_t K, int path) {
  BenchSpec s;
  s.base = std::string("matmul_q_") + dtype_name(f) + "_" + dtype_name(t) + " M=" + std::to_string(M) +
           " N=" + std::to_string(N) + " K=" + std::to_string(K) + (path ? " dequant" : " int8");
  s.op = OpId::matmul_q;
  s.in = {{t, {M, K}}, {f, {N, K}}};
  s.out = {{t, {M, N}}};
  s.params.i[0] = path;
  s.flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  s.M = M, s.N = N, s.K = K;
  return s;
}

// A memory-bound op on n elements: unary (copy, cast, scale), binary (add, mul) or fill.
BenchSpec memory_spec(OpId op, DType from, DType to, int64_t n) {
  BenchSpec s;
  const std::string name = op_info(op).name;
  s.base = name + "_" + dtype_name(from) + (op == OpId::cast ? std::string("_") + dtype_name(to) : "") +
           " n=" + std::to_string(n);
  s.op = op;
  const int nin = op_info(op).n_in;
  for (int i = 0; i < nin; ++i) s.in.push_back({from, {n}});
  s.out = {{to, {n}}};
  if (op == OpId::scale) s.params.f[0] = 0.5;
  if (op == OpId::fill) s.params.f[0] = 1.5;
  return s;
}

// add/mul with b broadcast along the rows of a: [rows, N] (op) [N].
BenchSpec broadcast_spec(OpId op, DType t, int64_t rows, int64_t N) {
  BenchSpec s;
  s.base = std::string(op_info(op).name) + "_" + dtype_name(t) + " rows=" + std::to_string(rows) +
           " N=" + std::to_string(N) + " broadcast";
  s.op = op;
  s.in = {{t, {rows, N}}, {t, {N}}};
  s.out = {{t, {rows, N}}};
  return s;
}

// The bench shapes of an op; empty for an op that has none (it then runs its largest registered case).
std::vector<BenchSpec> bench_specs(OpId op, bool full) {
  const int64_t n16m = int64_t(1) << 24;
  const DType f32 = DType::f32, f16 = DType::f16, bf16 = DType::bf16;
  std::vector<BenchSpec> v;
  switch (op) {
    case OpId::matmul:
      for (DType t : {f32, f16, bf16}) v.push_back(matmul_spec(t, 1024, 1024, 1024));
      v.push_back(matmul_spec(f32, 4096, 4096, 4096));
      for (DType t : {f32, f16, bf16}) v.push_back(matmul_spec(t, 1, 4096, 4096));  // GEMV: decode of one token
      if (full) {
        for (DType t : {f16, bf16}) v.push_back(matmul_spec(t, 4096, 4096, 4096));
        for (DType t : {f32, f16, bf16}) v.push_back(matmul_spec(t, 2048, 2048, 2048));
        for (DType t : {f32, f16, bf16}) v.push_back(matmul_spec(t, 16, 4096, 4096));  // small decode batch
        v.push_back(matmul_spec(f32, 512, 11008, 4096));  // a prefill chunk through an MLP up-projection
      }
      break;
    case OpId::matmul_q: {
      // Decode (GEMV, streams the weight: GB/s is the figure) for each format, a small decode batch (M = 16, where
      // the GPU path switches to tensor cores), and W8A8 GEMMs (GFLOP/s). The 8192^3 and 4096^3 int8 GEMMs are
      // GPU shapes (cuda_only).
      const DType q40 = DType::q4_0, q4g = DType::q4_g128, q80 = DType::q8_0, i8pc = DType::i8_pc;
      for (DType f : {q40, q4g, q80, i8pc}) v.push_back(matmul_q_spec(f, f16, 1, 4096, 4096, 1));
      v.push_back(matmul_q_spec(q40, f32, 1, 4096, 4096, 0));
      for (DType f : {q40, q4g}) v.push_back(matmul_q_spec(f, f16, 16, 4096, 4096, 1));
      v.push_back(matmul_q_spec(i8pc, f16, 16, 4096, 4096, 0));
      BenchSpec g = matmul_q_spec(i8pc, f16, 8192, 8192, 8192, 0);  // the W8A8 shape (peer: torch._int_mm)
      g.cuda_only = true;
      v.push_back(g);
      if (full) {
        v.push_back(matmul_q_spec(q4g, f16, 1, 14336, 4096, 1));  // an 8B model's MLP up-projection
        v.push_back(matmul_q_spec(q4g, bf16, 8, 4096, 4096, 1));
        v.push_back(matmul_q_spec(q40, f16, 128, 4096, 4096, 1));
        BenchSpec h = matmul_q_spec(i8pc, f16, 4096, 4096, 4096, 0);
        h.cuda_only = true;
        v.push_back(h);
      }
      break;
    }
    case OpId::copy:
      v.push_back(memory_spec(op, f32, f32, n16m));
      if (full) v.push_back(memory_spec(op, f16, f16, n16m));
      break;
    case OpId::cast:
      v.push_back(memory_spec(op, f32, f16, n16m));
      if (full) {
        v.push_back(memory_spec(op, f16, f32, n16m));
        v.push_back(memory_spec(op, f32, bf16, n16m));
        v.push_back(memory_spec(op, bf16, f32, n16m));
      }
      break;
    case OpId::add:
      v.push_back(memory_spec(op, f32, f32, n16m));
      if (full) {
        v.push_back(memory_spec(op, f16, f16, n16m));
        v.push_back(broadcast_spec(op, f32, 4096, 4096));
      }
      break;
    case OpId::scale:
      v.push_back(memory_spec(op, f32, f32, n16m));
      if (full) v.push_back(memory_spec(op, bf16, bf16, n16m));
      break;
    case OpId::mul:
      if (full) v.push_back(memory_spec(op, f32, f32, n16m));
      break;
    case OpId::fill:
      if (full) v.push_back(memory_spec(op, f32, f32, n16m));
      break;
    case OpId::paged_attention_decode:
    case OpId::paged_attention_prefill:
      for (const OpCase& c : paged_attention_bench_cases(full)) {
        if (c.name.rfind(op_info(op).name, 0) != 0) continue;
        BenchSpec s;
        s.base = c.name;
        s.op = op;
        s.in = c.in;
        s.out = c.out;
        s.params = c.params;
        s.flops = c.flops;
        s.init_inputs = c.init_inputs;
        v.push_back(s);
      }
      break;
    default:
      break;
  }
  return v;
}

// The largest ordinary (no special values) registered case of an op, as a bench entry.
std::vector<BenchSpec> specs_from_cases(OpId op) {
  const std::vector<OpCase> cases = op_cases(op);
  const OpCase* best = nullptr;
  double best_bytes = -1;
  for (const OpCase& c : cases) {
    if (c.special_values) continue;
    double b = 0;
    for (const TensorSpec& t : c.in) b += static_cast<double>(tools::spec_bytes(t));
    for (const TensorSpec& t : c.out) b += static_cast<double>(tools::spec_bytes(t));
    if (b > best_bytes) best = &c, best_bytes = b;
  }
  if (!best) return {};
  BenchSpec s;
  s.base = best->name;
  s.op = op;
  s.in = best->in;
  s.out = best->out;
  s.params = best->params;
  s.flops = best->flops;
  s.from_cases = true;
  s.init_inputs = best->init_inputs;
  s.init_outputs = best->init_outputs;
  return {s};
}

// The pilot of an entry: the same call on the first 1/factor of its rows (matmul: of M; elementwise: of n), whose
// time x factor predicts the first call of the full shape. Returns false when there is nothing to cut.
bool pilot_shapes(const BenchSpec& s, std::vector<TensorSpec>* in, std::vector<TensorSpec>* out, double* factor) {
  if (s.out.empty() || s.out[0].shape.empty()) return false;
  if (s.init_inputs || s.init_outputs) return false;  // structured inputs (block tables...) cannot be cut
  const int64_t lead = s.out[0].shape[0];
  const int64_t cut = std::max<int64_t>(1, lead / 64);
  if (lead < 16 || cut == lead) return false;
  *in = s.in;
  *out = s.out;
  *factor = static_cast<double>(lead) / static_cast<double>(cut);
  const size_t out_ndim = s.out[0].shape.size();
  for (size_t i = 0; i < in->size(); ++i) {
    TensorSpec& t = (*in)[i];
    if (s.op == OpId::matmul && i != 0) continue;  // w is not cut
    if (t.shape.size() == out_ndim && t.shape[0] == lead) t.shape[0] = cut;
  }
  for (TensorSpec& t : *out)
    if (t.shape.size() == out_ndim && t.shape[0] == lead) t.shape[0] = cut;
  return true;
}

// ---- timing ----

struct Timing {
  std::string skipped;  // non-empty: why there are no numbers
  double first_s = 0;
  double median_s = 0;
  double best_s = 0;
  int64_t calls = 0;  // timed calls, warm-up excluded
};

// call() runs the op once (CPU) or enqueues it (CUDA); sync() waits for everything enqueued. pilot, when set, is
// the cut-down call of pilot_shapes with its factor.
Timing time_calls(const std::function<Status()>& call, const std::function<Status()>& sync,
                  const std::function<Status()>& pilot, double pilot_factor, const Budget& budget,
                  double min_batch_s) {
  Timing r;
  auto timed = [&](const std::function<Status()>& f, int64_t n, double* sec) -> Status {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) LK_RETURN_IF_ERROR(f());
    LK_RETURN_IF_ERROR(sync());
    *sec = seconds_since(t0);
    return Status::OK();
  };
  char msg[256];
  double t = 0;
  if (pilot) {
    // The pilot's own first call warms caches and code too; its time x factor is an upper estimate (fixed costs
    // such as packing w are multiplied as well), which is the safe side for a skip rule.
    Status st = timed(pilot, 1, &t);
    if (!st.ok()) return r.skipped = "pilot call failed: " + st.message(), r;
    const double predicted = t * pilot_factor;
    if (predicted > budget.first_call_max_s) {
      std::snprintf(msg, sizeof msg, "first call predicted to take %.0f s (> %.0f s limit; a 1/%.0f pilot took %.3f s)",
                    predicted, budget.first_call_max_s, pilot_factor, t);
      return r.skipped = msg, r;
    }
  }
  Status st = timed(call, 1, &t);
  if (!st.ok()) return r.skipped = "call failed: " + st.message(), r;
  r.first_s = t;
  if (t > budget.first_call_max_s) {
    std::snprintf(msg, sizeof msg, "first call took %.1f s (> %.0f s limit)", t, budget.first_call_max_s);
    return r.skipped = msg, r;
  }
  // Estimate one call in steady state (the first one paid for page faults, lazy init, code loading).
  double one = t;
  if (t < 1.0) {
    st = timed(call, 1, &one);
    if (!st.ok()) return r.skipped = "call failed: " + st.message(), r;
  }
  one = std::max(one, 1e-7);
  const int64_t batch = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(min_batch_s / one)));
  const int min_samples = one > 2.0 ? 1 : budget.min_samples;
  const int64_t samples = std::min<int64_t>(
      10000, std::max<int64_t>(min_samples, static_cast<int64_t>(budget.target_s / (one * batch))));
  std::vector<double> per_call;
  per_call.reserve(samples);
  for (int64_t i = 0; i < samples; ++i) {
    st = timed(call, batch, &t);
    if (!st.ok()) return r.skipped = "call failed: " + st.message(), r;
    per_call.push_back(t / static_cast<double>(batch));
  }
  std::sort(per_call.begin(), per_call.end());
  const size_t n = per_call.size();
  r.median_s = n % 2 ? per_call[n / 2] : 0.5 * (per_call[n / 2 - 1] + per_call[n / 2]);
  r.best_s = per_call.front();
  r.calls = samples * batch;
  return r;
}

// ---- the CUDA ceiling ----

// The device's measured copy bandwidth, which the CUDA entries' roof column divides by (the goals are
// stated against it: "~4.3 TB/s device copy" on an H200; the theoretical figure from clocks and bus width is ~10%
// higher and unreachable). A 1 GiB device-to-device copy on the device's stream, 8 back to back between two
// synchronizations, best of 5 batches after a warm-up; counted as read + write (2 bytes moved per byte copied), the
// same way the entries count their bytes. 0 when the buffers cannot be had (the theoretical figure is used then).
double probe_cuda_copy_gbs(int device) {
  const size_t bytes = size_t(1) << 30;
  void* a = nullptr;
  void* b = nullptr;
  double best = 0;
  if (cuda_malloc(device, bytes, &a).ok() && cuda_malloc(device, bytes, &b).ok() &&
      cuda_copy_d2d(device, b, a, bytes).ok() && cuda_synchronize(device).ok()) {
    for (int rep = 0; rep < 5; ++rep) {
      const Clock::time_point t0 = Clock::now();
      bool ok = true;
      for (int i = 0; i < 8 && ok; ++i) ok = cuda_copy_d2d(device, i % 2 ? a : b, i % 2 ? b : a, bytes).ok();
      if (!ok || !cuda_synchronize(device).ok()) break;
      best = std::max(best, 2.0 * static_cast<double>(bytes) * 8 / seconds_since(t0) * 1e-9);
    }
  }
  cuda_free(device, a);
  cuda_free(device, b);
  (void)cuda_synchronize(device);
  return best;
}

// ---- results ----

struct Result {
  std::string name;  // stable: "<base> threads=N" (cpu), "<base> device=cuda:0", "openblas_sgemm M=.. threads=N"
  std::string op;
  std::string backend;  // cpu | cuda | openblas
  bool from_cases = false;
  double flops = 0, bytes = 0;
  Timing t;
  // rates at the median time; fractions of the roofline (NaN when there is no ceiling to compare with)
  double gflops = 0, gbs = 0;
  double compute_frac = NAN, memory_frac = NAN, roof_frac = NAN;
  const char* bound = "";
  double peer_ratio = NAN;  // ours / the faster peer call's GFLOP/s (matmul f32 on cpu)
  std::string peer_best;    // the name of that peer entry
  std::string peer_of;      // peer entries: the name of our entry they compare with
};

void finish(Result& r, double fma_peak_gflops, double read_gbs) {
  if (!r.t.skipped.empty() || r.t.median_s <= 0) return;
  r.gflops = r.flops / r.t.median_s * 1e-9;
  r.gbs = r.bytes / r.t.median_s * 1e-9;
  // A registered test case is small enough to stay in cache: a DRAM roofline says nothing about it.
  if (r.from_cases) return;
  if (fma_peak_gflops > 0 && r.flops > 0) r.compute_frac = r.gflops / fma_peak_gflops;
  if (read_gbs > 0) r.memory_frac = r.gbs / read_gbs;
  const double c = std::isnan(r.compute_frac) ? -1 : r.compute_frac;
  const double m = std::isnan(r.memory_frac) ? -1 : r.memory_frac;
  if (c >= 0 || m >= 0) {
    r.roof_frac = std::max(c, m);
    r.bound = c >= m ? "compute" : "memory";
  }
}

std::string fmt_time(double s) {
  char b[32];
  if (s >= 1) std::snprintf(b, sizeof b, "%.3f s", s);
  else if (s >= 1e-3) std::snprintf(b, sizeof b, "%.3f ms", s * 1e3);
  else std::snprintf(b, sizeof b, "%.2f us", s * 1e6);
  return b;
}

void print_header() {
  std::printf("%-46s %12s %12s %9s %8s %6s %s\n", "entry", "median", "best", "GFLOP/s", "GB/s", "roof", "bound");
}

void print_result(const Result& r) {
  if (!r.t.skipped.empty()) {
    std::printf("%-46s skipped: %s\n", r.name.c_str(), r.t.skipped.c_str());
    std::fflush(stdout);
    return;
  }
  char gf[16] = "-", roof[16] = "-";
  if (r.flops > 0) std::snprintf(gf, sizeof gf, "%.1f", r.gflops);
  if (!std::isnan(r.roof_frac)) std::snprintf(roof, sizeof roof, "%.2f", r.roof_frac);
  std::printf("%-46s %12s %12s %9s %8.2f %6s %s", r.name.c_str(), fmt_time(r.t.median_s).c_str(),
              fmt_time(r.t.best_s).c_str(), gf, r.gbs, roof, r.from_cases ? "(a test case: in cache)" : r.bound);
  std::printf("\n");
  std::fflush(stdout);
}

// ---- one entry on one backend ----

// Runs a spec on the cpu backend (host memory, synchronous calls) or on cuda device 0 (device memory; calls only
// launch, so they are timed in batches between synchronizations: this interface has no CUDA events).
Result run_entry(Backend b, const BenchSpec& s, const std::string& suffix, const Budget& budget, uint64_t seed) {
  Result r;
  r.name = s.base + suffix;
  r.op = op_info(s.op).name;
  r.backend = backend_name(b);
  r.from_cases = s.from_cases;
  r.flops = s.flops;
  r.bytes = spec_bytes(s);
  const Device dev = tools::backend_device(b);
  std::vector<tools::BackendBuffer> bufs(s.in.size() + s.out.size());
  std::vector<TensorView> in, out;
  // Inputs and outputs are made on the host (filled, then the case's init hooks), then placed on the backend.
  auto place = [&](const TensorSpec& t, tools::BackendBuffer& buf, std::vector<char>& host) -> Status {
    LK_RETURN_IF_ERROR(buf.allocate(b, host.size()));
    if (b == Backend::cpu) return std::memcpy(buf.get(), host.data(), host.size()), Status::OK();
    (void)t;
    return tools::backend_upload(b, buf.get(), host.data(), host.size());
  };
  std::vector<std::vector<char>> host_in, host_out;
  std::vector<TensorView> host_in_views, host_out_views;
  for (size_t i = 0; i < s.in.size(); ++i) {
    host_in.emplace_back(tools::spec_bytes(s.in[i]));
    fill_bench_data(s.in[i], host_in.back().data(), seed + i);
    host_in_views.push_back(tools::make_view(s.in[i], host_in.back().data()));
  }
  for (size_t i = 0; i < s.out.size(); ++i) {
    host_out.emplace_back(tools::spec_bytes(s.out[i]));
    host_out_views.push_back(tools::make_view(s.out[i], host_out.back().data()));
  }
  if (s.init_inputs) s.init_inputs(host_in_views, seed);
  if (s.init_outputs) s.init_outputs(host_out_views, seed);
  for (size_t i = 0; i < s.in.size(); ++i) {
    const Status st = place(s.in[i], bufs[i], host_in[i]);
    if (!st.ok()) return r.t.skipped = st.message(), r;
    in.push_back(tools::make_view(s.in[i], bufs[i].get(), dev));
  }
  host_in.clear();
  for (size_t i = 0; i < s.out.size(); ++i) {
    const Status st = place(s.out[i], bufs[s.in.size() + i], host_out[i]);
    if (!st.ok()) return r.t.skipped = st.message(), r;
    out.push_back(tools::make_view(s.out[i], bufs[s.in.size() + i].get(), dev));
  }
  host_out.clear();
  OpArgs a;
  a.op = s.op;
  a.in = in.data();
  a.n_in = static_cast<int32_t>(in.size());
  a.out = out.data();
  a.n_out = static_cast<int32_t>(out.size());
  a.params = s.params;
  Status st = tools::backend_stream(b, &a.stream);
  if (!st.ok()) return r.t.skipped = st.message(), r;
  st = validate_op(a);
  if (!st.ok()) return r.t.skipped = "invalid bench shape: " + st.message(), r;
  if (const char* why = backend_unsupported_reason(b, a)) return r.t.skipped = why, r;
  const KernelFn run = kernel_table(b)[static_cast<int>(s.op)].run;
  auto call = [&] { return run(a); };
  auto sync = [&] { return tools::backend_sync(b); };

  // The CPU pilot runs on the first rows of the same buffers. CUDA has none: its first call pays for lazy
  // initialisation, which the factor would multiply into a false skip; GPU calls of these shapes take milliseconds.
  std::vector<TensorSpec> pin, pout;
  std::vector<TensorView> pvin, pvout;
  double factor = 1;
  OpArgs pa = a;
  std::function<Status()> pilot;
  if (b == Backend::cpu && pilot_shapes(s, &pin, &pout, &factor)) {
    for (size_t i = 0; i < pin.size(); ++i) pvin.push_back(tools::make_view(pin[i], in[i].data, dev));
    for (size_t i = 0; i < pout.size(); ++i) pvout.push_back(tools::make_view(pout[i], out[i].data, dev));
    pa.in = pvin.data();
    pa.out = pvout.data();
    pilot = [&] { return run(pa); };
  }
  r.t = time_calls(call, sync, pilot, factor, budget, b == Backend::cpu ? 2e-4 : 0.02);
  (void)tools::backend_sync(b);  // before the buffers go: nothing may still be queued on them
  return r;
}

// ---- the peer: OpenBLAS through dlopen ----

// cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) and
// cblas_sgemv(order, trans, M, N, alpha, A, lda, x, incx, beta, y, incy); blasint is int (the LP64 build).
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                            int);
using CblasSgemv = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

struct Peer {
  bool found = false;
  std::string library;  // the file that was opened
  std::string config;   // openblas_get_config(), when the library is OpenBLAS
  std::string corename;
  int num_threads = 0;  // openblas_get_num_threads()
  std::string env;      // what lk_bench changed in the environment, for the report
  std::string note;
  CblasSgemm sgemm = nullptr;
  CblasSgemv sgemv = nullptr;
};

// Must run while this is the only thread (setenv races with getenv in other threads) and before the dlopen:
// OpenBLAS reads its environment once, in the library constructor.
Peer load_openblas(int threads) {
  Peer p;
  // Some machines (this dev box included) export OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for another tool's benefit.
  // Both override OpenBLAS's own CPU detection: a forced core type selects the kernels and block sizes of another
  // microarchitecture, and a wrong L2 size mis-sizes the GEMM blocking, so sgemm runs below what the library does
  // by itself and the ratio would flatter us. We unset both, and pin OPENBLAS_NUM_THREADS to our thread count so
  // that both sides use the same number of cores.
  for (const char* var : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}) {
    if (const char* v = std::getenv(var)) {
      p.env += std::string(p.env.empty() ? "" : ", ") + "unset " + var + "=" + v;
      unsetenv(var);
    }
  }
  const std::string nt = std::to_string(threads);
  setenv("OPENBLAS_NUM_THREADS", nt.c_str(), 1);
  p.env += std::string(p.env.empty() ? "" : ", ") + "OPENBLAS_NUM_THREADS=" + nt;
  void* h = nullptr;
  for (const char* lib : {"libopenblas.so.0", "libopenblas.so", "libblas.so.3"}) {
    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    p.sgemm = reinterpret_cast<CblasSgemm>(dlsym(h, "cblas_sgemm"));
    if (p.sgemm) {
      p.library = lib;
      break;
    }
    dlclose(h);
    h = nullptr;
  }
  if (!h) return p;
  p.found = true;
  p.sgemv = reinterpret_cast<CblasSgemv>(dlsym(h, "cblas_sgemv"));
  // OpenBLAS extras, absent from a reference libblas.so.3: what it detected and how many threads it uses.
  if (auto cfg = reinterpret_cast<char* (*)()>(dlsym(h, "openblas_get_config"))) p.config = cfg();
  if (auto core = reinterpret_cast<char* (*)()>(dlsym(h, "openblas_get_corename"))) p.corename = core();
  if (auto nth = reinterpret_cast<int (*)()>(dlsym(h, "openblas_get_num_threads"))) p.num_threads = nth();
  if (p.config.empty()) p.note = "not OpenBLAS (no openblas_get_config): a generic BLAS, the ratios are not to OpenBLAS";
  // The handle is never closed: OpenBLAS's worker threads live until exit.
  return p;
}

// The peer on our f32 matmul shape: sgemm always; for M=1 also sgemv, which is what a caller of OpenBLAS would use
// for a matrix-vector product (sgemm packs all of w on every call, and 0.3.21 does not forward M=1 to gemv).
std::vector<Result> run_peer(const Peer& peer, const BenchSpec& s, const std::string& suffix, const Budget& budget,
                             uint64_t seed) {
  const int M = static_cast<int>(s.M), N = static_cast<int>(s.N), K = static_cast<int>(s.K);
  std::vector<float> x(static_cast<size_t>(s.M * s.K)), w(static_cast<size_t>(s.N * s.K)),
      y(static_cast<size_t>(s.M * s.N));
  fill_bench_data({DType::f32, {s.M, s.K}}, x.data(), seed);
  fill_bench_data({DType::f32, {s.N, s.K}}, w.data(), seed + 1);
  auto sync = [] { return Status::OK(); };
  std::vector<Result> out;
  for (bool gemv : {false, true}) {
    if (gemv && (M != 1 || !peer.sgemv)) continue;
    Result r;
    r.name = gemv ? "openblas_sgemv N=" + std::to_string(N) + " K=" + std::to_string(K) + suffix
                  : "openblas_sgemm M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                        suffix;
    r.op = "matmul";
    r.backend = "openblas";
    r.peer_of = s.base + suffix;
    r.flops = s.flops;
    r.bytes = spec_bytes(s);
    // y[M,N] = x[M,K] . w[N,K]^T; as a gemv: y[N] = w[N,K] . x[K].
    auto gemm = [&](int m) {
      if (gemv) peer.sgemv(kRowMajor, kNoTrans, N, K, 1.0f, w.data(), K, x.data(), 1, 0.0f, y.data(), 1);
      else peer.sgemm(kRowMajor, kNoTrans, kTrans, m, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
      return Status::OK();
    };
    auto call = [&] { return gemm(M); };
    std::function<Status()> pilot;
    double factor = 1;
    if (M >= 16) {
      const int cut = std::max(1, M / 64);
      factor = static_cast<double>(M) / cut;
      pilot = [&, cut] { return gemm(cut); };
    }
    r.t = time_calls(call, sync, pilot, factor, budget, 2e-4);
    out.push_back(r);
  }
  return out;
}

// ---- JSON ----

void json_result(tools::JsonWriter& j, const Result& r) {
  j.begin_object().kv("name", r.name).kv("op", r.op).kv("backend", r.backend);
  if (r.from_cases) j.kv("from_cases", true);
  if (!r.peer_of.empty()) j.kv("peer_of", r.peer_of);
  j.kv("flops", r.flops).kv("bytes", r.bytes);
  if (!r.t.skipped.empty()) {
    j.kv("skipped", r.t.skipped).end_object();
    return;
  }
  j.kv("calls", r.t.calls).kv("first_s", r.t.first_s).kv("median_s", r.t.median_s).kv("best_s", r.t.best_s);
  j.kv("gflops", r.flops > 0 ? r.gflops : NAN).kv("gflops_best", r.flops > 0 ? r.flops / r.t.best_s * 1e-9 : NAN);
  j.kv("gbs", r.gbs).kv("gbs_best", r.bytes / r.t.best_s * 1e-9);
  j.kv("compute_fraction", r.compute_frac).kv("memory_fraction", r.memory_frac).kv("roof_fraction", r.roof_frac);
  j.key("bound");
  if (*r.bound) j.value(r.bound);
  else j.null();
  if (!std::isnan(r.peer_ratio)) j.kv("peer_ratio", r.peer_ratio).kv("peer_best", r.peer_best);
  j.end_object();
}

// ---- main ----

int bench_main(int argc, char** argv) {
  tools::ArgParser args("lk_bench",
                        "times the kernels against this machine's roofline and a peer (OpenBLAS sgemm), see the "
                        "header of native/tools/lk_bench.cc");
  std::string json_path, backend, filter;
  int64_t threads_arg = 0;
  bool full = false, quick = false;
  args.add_string("--json", "FILE", "write every result (roofline, entries, peers) to FILE", &json_path);
  args.add_int("--threads", "N", "CPU threads (default: all hardware threads)", &threads_arg, 1, 1024);
  args.add_string("--backend", "B", "only this backend (default: cpu, and cuda when a device is found)", &backend,
                  {"cpu", "cuda"});
  args.add_string("--filter", "S", "only entries whose name contains S (e.g. matmul_f32, 'M=1 ', copy)", &filter);
  args.add_flag("--full", "more shapes: f16/bf16 4096^3, 2048^3, M=16 decode, more casts and dtypes", &full);
  args.add_flag("--quick", "CI smoke run: fewer iterations, nothing above 1e10 flops, whole run < 20 s", &quick);
  std::string err, usage = args.usage();
  if (usage.empty() || usage.back() != '\n') usage += '\n';
  if (!args.parse(argc, argv, &err)) {
    std::fprintf(stderr, "%s\n%s", err.c_str(), usage.c_str());
    return 2;
  }
  if (args.help_requested()) {
    std::printf("%s", usage.c_str());
    return 0;
  }
  Budget budget;
  if (quick) budget = Budget{0.05, 2.0, 1};
  const double quick_max_flops = 1e10;

  const bool want_cpu = backend.empty() || backend == "cpu";
  const bool want_cuda = backend.empty() || backend == "cuda";
  const int threads = threads_arg > 0 ? static_cast<int>(threads_arg) : ThreadPool::hardware_threads();

  // The peer is loaded first, while this is the only thread (see load_openblas).
  Peer peer;
  if (want_cpu) peer = load_openblas(threads);

  ThreadPool::global().resize(threads);
  const std::string cpu_suffix = " threads=" + std::to_string(threads);

  std::printf("lk_bench: %d thread%s, cpu simd %s%s%s\n", threads, threads == 1 ? "" : "s",
              simd_level_name(cpu_simd_level()), full ? ", --full" : "", quick ? ", --quick" : "");
  const Roofline roof = probe_roofline(threads);
  std::printf("roofline (threads=%d, %s): read %.1f GB/s, fma %.1f GFLOP/s, int8 %.1f GMAC/s (%.1f Gop/s)\n",
              roof.threads, roof.simd, roof.read_gbs, roof.fma_gflops, roof.int8_gops / 2, roof.int8_gops);

  const CudaProbe cp = cuda_probe();
  std::string cuda_note = "not requested (--backend cpu)";
  bool use_cuda = false;
  double cuda_bw = 0, cuda_copy_gbs = 0;
  if (want_cuda) {
    if (!cp.available) {
      cuda_note = cp.reason.empty() ? "no device" : cp.reason;
      std::printf("backend cuda: unavailable: %s\n", cuda_note.c_str());
    } else if (cp.devices.empty() || !kernel_table(Backend::cuda)) {
      cuda_note = "cuda_probe() reports a device, but there is no CUDA kernel table or device list";
      std::printf("backend cuda: unavailable: %s\n", cuda_note.c_str());
    } else {
      use_cuda = true;
      const CudaDeviceInfo& d = cp.devices[0];
      cuda_copy_gbs = probe_cuda_copy_gbs(d.index);
      cuda_bw = cuda_copy_gbs > 0 ? cuda_copy_gbs : d.memory_bandwidth_gbs;
      std::printf("backend cuda: device 0 %s (sm_%d%d, %d SMs, %.0f GB/s theoretical), archs %s\n", d.name.c_str(),
                  d.cc_major, d.cc_minor, d.sm_count, d.memory_bandwidth_gbs, cp.archs.c_str());
      std::printf("backend cuda: measured copy %.0f GB/s (read + write of a 1 GiB device copy): the roof of the cuda "
                  "entries%s\n", cuda_copy_gbs, cuda_copy_gbs > 0 ? "" : " (probe failed: theoretical used)");
    }
  }

  std::vector<Result> results;
  std::vector<std::pair<BenchSpec, size_t>> peer_todo;  // our f32 matmul shapes on cpu, index of our result
  print_header();
  uint64_t seed = 1;
  for (int o = 0; o < kNumOps; ++o) {
    const OpId op = static_cast<OpId>(o);
    std::vector<BenchSpec> specs = bench_specs(op, full);
    if (specs.empty()) specs = specs_from_cases(op);
    for (const BenchSpec& s : specs) {
      for (Backend b : {Backend::cpu, Backend::cuda}) {
        if ((b == Backend::cpu && !want_cpu) || (b == Backend::cuda && !use_cuda)) continue;
        const std::string suffix = b == Backend::cpu ? cpu_suffix : std::string(" device=cuda:0");
        if (!filter.empty() && (s.base + suffix).find(filter) == std::string::npos) continue;
        if (s.cuda_only && b == Backend::cpu) continue;
        Result r;
        seed += 16;
        if (quick && s.flops > quick_max_flops) {
          r.name = s.base + suffix;
          r.op = op_info(op).name;
          r.backend = backend_name(b);
          r.flops = s.flops;
          r.bytes = spec_bytes(s);
          r.t.skipped = "not in --quick";
        } else {
          r = run_entry(b, s, suffix, budget, seed);
          if (b == Backend::cpu) finish(r, roof.fma_gflops, roof.read_gbs);
          else finish(r, 0, cuda_bw);  // no GPU FMA peak is measured; bandwidth is the measured copy's
        }
        results.push_back(r);
        print_result(r);
        if (b == Backend::cpu && op == OpId::matmul && s.in[0].dtype == DType::f32 && r.t.skipped.empty())
          peer_todo.push_back({s, results.size() - 1});
      }
    }
  }

  // The peer runs after all of ours, so that its worker threads (which spin for a while after each call) never
  // share the cores with one of our measurements.
  std::vector<Result> peer_results;
  if (want_cpu) {
    if (!peer.found) {
      std::printf("peer openblas: not found (apt-get install libopenblas-dev)\n");
    } else {
      std::printf("peer openblas: %s%s, core %s, %d threads; env: %s\n", peer.library.c_str(),
                  peer.config.empty() ? "" : (" (" + peer.config + ")").c_str(),
                  peer.corename.empty() ? "?" : peer.corename.c_str(), peer.num_threads, peer.env.c_str());
      if (!peer.note.empty()) std::printf("peer openblas: %s\n", peer.note.c_str());
      if (!peer_todo.empty()) print_header();
      for (auto& todo : peer_todo) {
        Result& ours = results[todo.second];
        const Result* best = nullptr;
        for (Result& p : run_peer(peer, todo.first, cpu_suffix, budget, seed += 16)) {
          finish(p, roof.fma_gflops, roof.read_gbs);
          print_result(p);
          peer_results.push_back(p);
        }
        for (const Result& p : peer_results)
          if (p.peer_of == ours.name && p.t.skipped.empty() && p.gflops > 0 && (!best || p.gflops > best->gflops))
            best = &p;
        if (best) {
          ours.peer_ratio = ours.gflops / best->gflops;
          ours.peer_best = best->name;
          std::printf("  %s: ours / %s = %.2f\n", ours.name.c_str(), best->name.c_str(), ours.peer_ratio);
        }
      }
    }
  }

  if (!json_path.empty()) {
    tools::JsonWriter j;
    j.begin_object().kv("tool", "lk_bench").kv("threads", threads).kv("simd", simd_level_name(cpu_simd_level()));
    j.kv("quick", quick).kv("full", full).kv("filter", filter);
    j.key("roofline").begin_object().kv("threads", roof.threads).kv("simd", roof.simd).kv("read_gbs", roof.read_gbs);
    j.kv("fma_gflops", roof.fma_gflops).kv("int8_gops", roof.int8_gops).kv("int8_gmacs", roof.int8_gops / 2);
    j.end_object();
    j.key("backends").begin_array();
    j.begin_object().kv("name", "cpu").kv("used", want_cpu).kv("threads", threads).end_object();
    j.begin_object().kv("name", "cuda").kv("used", use_cuda);
    if (use_cuda)
      j.kv("device", cp.devices[0].name).kv("memory_bandwidth_gbs", cp.devices[0].memory_bandwidth_gbs)
          .kv("copy_gbs", cuda_copy_gbs).kv("roof_gbs", cuda_bw);
    else j.kv("reason", cuda_note);
    j.end_object().end_array();
    j.key("entries").begin_array();
    for (const Result& r : results) json_result(j, r);
    j.end_array();
    j.key("peers").begin_array();
    if (want_cpu) {
      j.begin_object().kv("name", "openblas").kv("found", peer.found);
      if (peer.found) {
        j.kv("library", peer.library).kv("config", peer.config).kv("corename", peer.corename);
        j.kv("num_threads", peer.num_threads);
        if (!peer.note.empty()) j.kv("note", peer.note);
      } else {
        j.kv("reason", "not found (apt-get install libopenblas-dev)");
      }
      j.kv("env", peer.env).key("entries").begin_array();
      for (const Result& r : peer_results) json_result(j, r);
      j.end_array().end_object();
    }
    j.end_array().end_object();
    if (!tools::write_text_file(json_path, j.str() + "\n", &err)) {
      std::fprintf(stderr, "lk_bench: cannot write %s: %s\n", json_path.c_str(), err.c_str());
      return 1;
    }
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace lk

int main(int argc, char** argv) { return lk::bench_main(argc, argv); }
