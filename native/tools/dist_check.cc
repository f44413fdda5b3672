// lk_dist_check: checks one communicator backend's collectives (native/dist/comm.h) without Node.
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 build/tools/lk_dist_check --backend mpi
//   build/tools/lk_dist_check --backend shm --world 3        (forks the 3 ranks itself)
//   ... --bench [--json]                                      (also times allReduce, allGather, broadcast, barrier)
//   mpirun ... lk_dist_check --backend mpi --bench-raw --json (only Open MPI's own MPI_Allreduce, for bench:dist)
//   LLMK_MPI_MAX_MESSAGE=4096 mpirun ... --backend mpi        (mpi: exercises the chunked paths with small data)
//   build/tools/lk_dist_check --backend cuda-local --world 4  (the custom CUDA collectives on one GPU: see
//                                                             run_cuda_local)
//
// Every rank regenerates every rank's input from the seed (seeded per case and rank, normal, never zero), so each
// rank computes the expected output itself, with no communication, in two ways:
//  1. bit for bit: reduce_ref over the ranks' inputs in rank order, the scalar spec of the one reduction every
//     backend must use (reduce.h). Equal bits on every rank and across backends follow from this.
//  2. against a float64 reduction, within a bound derived from the arithmetic, not tuned:
//       sum, f32:       |got - exact| <= gamma(R-1) * sum_r |x_r|, gamma(k) = k u / (1 - k u), u = 2^-24: the
//                       classic bound of a recursive f32 sum of R terms (each partial sum rounded once; the inputs
//                       are exact in f32). R = 2 gives about 6e-8 of sum |x|, far inside the 1e-5 one could allow.
//       sum, f16/bf16:  the same f32 accumulation bound (inputs widen to f32 exactly) plus the one final rounding to
//                       the dtype, at most half an ulp of the result; we allow a whole ulp of the result (the ulp at
//                       the result's binade, the subnormal ulp below the normal range).
//       max:            exact (the result is one of the inputs).
//     This second check guards the spec itself: a reduce_ref that dropped a rank or rounded twice would pass (1)
//     on every backend alike.
// And with the backend itself: every rank all-gathers a 64-bit hash of its output, and all must be equal (for
// reduceScatter, whose outputs differ by design, (1) covers it). Outputs are framed by guard bytes; inputs must come
// back unchanged.
//
// Cases: {allReduce, reduceScatter} x {f32, f16, bf16} x {sum, max} and {allGather, broadcast} x {f32, f16, bf16},
// each for counts 1, 7, 33, 1000, 65539, 1000003 (both sides of the 64 KiB small-message path, and counts not
// divisible by R); allReduce and broadcast in place; allReduce with NaN, Inf, -0 and subnormal inputs (bit check
// only); count 0; barrier. Then the failure paths:
//   mismatch  rank 0 calls allReduce with count 10, rank 1 with 11 (others 10): Code::mismatch on every rank, and the
//             next call fails at once with the same status.
//   deadline  rank 1 sleeps 2 s, the others call with a 1 s deadline: Code::timeout on every other rank within the
//             deadline + 1 s; rank 1 then calls (1 s deadline) and must fail too (timeout or peer lost), in time.
// The deadline case runs last: with mpi, a timed-out request cannot be cancelled and MPI is unusable in the process
// afterwards (mpi.cc), so the tally is combined (an allReduce of the counts) before it, and each rank adds its own
// deadline result. With mpi, rank 0 prints the last line, which counts every rank's checks before the deadline
// case and rank 0's deadline check; the other ranks print their failures and set the exit status (mpirun returns
// non-zero when any rank does). With shm, the parent sums the children's tallies exactly.
// Last line: `N passed, N failed`. Exit status: 0 all passed, 1 a check failed, 2 bad usage or no communicator.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../cuda/cuda_backend.h"
#include "../dist/comm.h"
#include "../dist/cuda_ar.h"
#include "../dist/reduce.h"
#include "tool_common.h"

namespace lk {
namespace tools {
namespace {

using dist::CallDesc;
using dist::Clock;
using dist::Collective;
using dist::Communicator;
using dist::ReduceOp;

struct Options {
  std::string backend, library;
  int64_t world = -1, seed = 1, deadline_ms = 60000, bench_iters = 0;
  int64_t cuda_device = 0;
  bool bench = false, bench_raw = false, json = false, verbose = false;
};

struct Tally {
  int passed = 0, failed = 0;
};

// Opens a fresh communicator of the backend (attempt 0, 1, ...: shm needs a new group name for each).
using Opener = std::function<Status(int attempt, std::unique_ptr<Communicator>*)>;

uint64_t fnv1a(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// One ulp of v in dtype t (the spacing at v's binade; the subnormal spacing below the normal range).
double ulp_of(double v, DType t) {
  const double a = std::fabs(v);
  if (t == DType::f32) return a < std::ldexp(1.0, -126) ? std::ldexp(1.0, -149) : std::ldexp(1.0, std::ilogb(a) - 23);
  if (t == DType::f16) return a < std::ldexp(1.0, -14) ? std::ldexp(1.0, -24) : std::ldexp(1.0, std::ilogb(a) - 10);
  return a < std::ldexp(1.0, -126) ? std::ldexp(1.0, -133) : std::ldexp(1.0, std::ilogb(a) - 7);  // bf16
}

struct Case {
  Collective kind = Collective::all_reduce;
  DType dt = DType::f32;
  ReduceOp op = ReduceOp::sum;
  size_t count = 0;
  int root = 0;
  size_t inner = 0;  // allGather along an inner dimension (comm.h)
  bool in_place = false;
  bool special = false;  // NaN/Inf/-0/subnormal inputs: bit check only
};

std::string case_name(const Case& c) {
  std::string s = dist::collective_name(c.kind);
  s += "(";
  if (c.kind == Collective::all_reduce || c.kind == Collective::reduce_scatter)
    s += std::string(dist::reduce_op_name(c.op)) + ", ";
  if (c.kind == Collective::broadcast) s += "root " + std::to_string(c.root) + ", ";
  s += std::string(dtype_name(c.dt)) + ", n=" + std::to_string(c.count);
  if (c.inner != 0) s += ", inner " + std::to_string(c.inner);
  if (c.in_place) s += ", in place";
  if (c.special) s += ", special values";
  return s + ")";
}

size_t case_in_elems(const Case& c, int R) { return c.kind == Collective::reduce_scatter ? static_cast<size_t>(R) * c.count : c.count; }
size_t case_out_elems(const Case& c, int R) { return c.kind == Collective::all_gather ? static_cast<size_t>(R) * c.count : c.count; }

// Every rank's input of case c (seeded per case and rank: each rank regenerates all of them).
void case_inputs(const Case& c, int R, uint64_t seed, std::vector<std::vector<uint8_t>>* inputs) {
  const size_t in_elems = case_in_elems(c, R), es = dtype_size(c.dt);
  const uint64_t case_seed = mix_seed(seed, hash_string(case_name(c)));
  RandomFill fill;
  fill.special_values = c.special;
  inputs->assign(static_cast<size_t>(R), std::vector<uint8_t>(std::max<size_t>(1, in_elems * es)));
  for (size_t r = 0; r < static_cast<size_t>(R); ++r)
    fill_random((*inputs)[r].data(), c.dt, static_cast<int64_t>(in_elems), mix_seed(case_seed, r + 1));
}

// Rank `rank`'s expected output bits: the spec reduction in rank order, or the bytes moved. Returns the byte offset
// of the rank's block in the inputs (reduce_scatter), for check_float64.
size_t case_expected(const Case& c, int R, int rank, const std::vector<std::vector<uint8_t>>& inputs,
                     std::vector<uint8_t>* expect) {
  const size_t uR = static_cast<size_t>(R), es = dtype_size(c.dt);
  expect->assign(std::max<size_t>(1, case_out_elems(c, R) * es), 0);
  std::vector<const void*> srcs(uR);
  const size_t block_off = c.kind == Collective::reduce_scatter ? static_cast<size_t>(rank) * c.count * es : 0;
  if (c.kind == Collective::all_reduce || c.kind == Collective::reduce_scatter) {
    for (size_t r = 0; r < uR; ++r) srcs[r] = inputs[r].data() + block_off;
    dist::reduce_ref(srcs.data(), R, expect->data(), c.count, c.dt, c.op);
  } else if (c.kind == Collective::all_gather && c.inner != 0) {
    // in [outer, inner] -> out [outer, R, inner]
    const size_t outer = c.count / c.inner, row = c.inner * es;
    for (size_t i = 0; i < outer; ++i)
      for (size_t r = 0; r < uR; ++r) std::memcpy(expect->data() + (i * uR + r) * row, inputs[r].data() + i * row, row);
  } else if (c.kind == Collective::all_gather) {
    for (size_t r = 0; r < uR; ++r) std::memcpy(expect->data() + r * c.count * es, inputs[r].data(), c.count * es);
  } else {
    std::memcpy(expect->data(), inputs[static_cast<size_t>(c.root)].data(), c.count * es);
  }
  return block_off;
}

// The float64 check of the file header; "" when within the bound.
std::string check_float64(const Case& c, int R, const std::vector<std::vector<uint8_t>>& inputs, size_t block_off,
                          const void* got) {
  const double u = std::ldexp(1.0, -24);
  const double gamma = (R - 1) * u / (1 - (R - 1) * u);
  const double gamma_double = R * std::ldexp(1.0, -53);  // the float64 reference's own rounding
  int64_t bad = 0, first = -1;
  double first_err = 0, first_bound = 0, first_want = 0;
  for (size_t i = 0; i < c.count; ++i) {
    double exact = 0, abs_sum = 0;
    for (int r = 0; r < R; ++r) {
      const double x = element_as_double(inputs[static_cast<size_t>(r)].data() + block_off, c.dt,
                                         static_cast<int64_t>(i));
      if (c.op == ReduceOp::sum) {
        exact += x;
      } else if (r == 0 || x > exact) {
        exact = x;
      }
      abs_sum += std::fabs(x);
    }
    const double g = element_as_double(got, c.dt, static_cast<int64_t>(i));
    double bound = 0;
    if (c.op == ReduceOp::sum) {
      bound = (gamma + gamma_double) * abs_sum;
      if (c.dt != DType::f32) bound += ulp_of(g, c.dt);
    }
    const double err = std::fabs(g - exact);
    if (!(err <= bound)) {
      if (bad++ == 0) {
        first = static_cast<int64_t>(i);
        first_err = err;
        first_bound = bound;
        first_want = exact;
      }
    }
  }
  if (bad == 0) return "";
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "%lld elements outside the float64 bound, first at %lld: got %s, float64 %.9g, error %.3g > "
                "bound %.3g; ",
                static_cast<long long>(bad), static_cast<long long>(first),
                format_element(got, c.dt, first).c_str(), first_want, first_err, first_bound);
  return buf;
}

// The cases of the file header, for R ranks.
std::vector<Case> check_cases(int world) {
  const std::vector<size_t> counts = {1, 7, 33, 1000, 65536 + 3, 1000003};
  const DType dts[] = {DType::f32, DType::f16, DType::bf16};
  std::vector<Case> cases;
  for (Collective k : {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather,
                       Collective::broadcast})
    for (DType dt : dts)
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        const bool reducing = k == Collective::all_reduce || k == Collective::reduce_scatter;
        if (!reducing && op == ReduceOp::max) continue;
        for (size_t n : counts) {
          Case c;
          c.kind = k;
          c.dt = dt;
          c.op = op;
          c.count = n;
          c.root = k == Collective::broadcast ? static_cast<int>(cases.size() % static_cast<size_t>(world)) : 0;
          cases.push_back(c);
        }
      }
  for (DType dt : dts)
    for (size_t n : {size_t(7), size_t(65536 + 3), size_t(1000003)}) {
      Case c;
      c.dt = dt;
      c.count = n;
      c.in_place = true;
      cases.push_back(c);  // allReduce sum in place
      c.kind = Collective::broadcast;
      c.root = world - 1;
      cases.push_back(c);  // broadcast in place
    }
  for (DType dt : dts)
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max})
      for (size_t n : {size_t(1000), size_t(70000)}) {
        Case c;
        c.dt = dt;
        c.op = op;
        c.count = n;
        c.special = true;
        cases.push_back(c);
      }
  for (DType dt : dts)
    for (size_t n : {size_t(1000), size_t(65540), size_t(12)}) {
      Case c;
      c.kind = Collective::all_gather;
      c.dt = dt;
      c.count = n;
      c.inner = n == 1000 ? 10 : n == 65540 ? 5 : 12;  // inner == count: the plain layout
      cases.push_back(c);
    }
  for (Collective k : {Collective::all_reduce, Collective::all_gather}) {
    Case c;
    c.kind = k;
    c.count = 0;
    cases.push_back(c);
  }
  return cases;
}

class Checker {
 public:
  Checker(const Options& opt, int rank, int world) : opt_(opt), rank_(rank), world_(world) {}

  Tally& tally() { return tally_; }

  void report(bool ok, const std::string& name, const std::string& detail, double ms = -1) {
    if (ok) {
      ++tally_.passed;
      if (opt_.verbose && rank_ == 0) {
        if (ms >= 0)
          std::printf("ok    %-52s %8.2f ms\n", name.c_str(), ms);
        else
          std::printf("ok    %s%s%s\n", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
      }
    } else {
      ++tally_.failed;
      std::printf("[rank %d] FAIL %s: %s\n", rank_, name.c_str(), detail.c_str());
    }
    std::fflush(stdout);
  }

  Clock::time_point deadline() const { return Clock::now() + std::chrono::milliseconds(opt_.deadline_ms); }

  // Runs one case on comm; false when the communicator failed (the later cases would only repeat the status).
  bool run_case(Communicator* comm, const Case& c) {
    const std::string name = case_name(c);
    const int R = world_;
    const size_t es = dtype_size(c.dt);
    const size_t in_elems = case_in_elems(c, R), out_elems = case_out_elems(c, R);
    std::vector<std::vector<uint8_t>> inputs;
    case_inputs(c, R, static_cast<uint64_t>(opt_.seed), &inputs);
    std::vector<uint8_t> expect;
    const size_t block_off = case_expected(c, R, rank_, inputs, &expect);

    // The rank's buffers: an input of exactly its size; an output framed by guards and pre-filled with NaN. In place:
    // the input lives in the guarded buffer.
    std::vector<uint8_t> in(inputs[static_cast<size_t>(rank_)]);
    GuardedBuffer out(out_elems * es);
    fill_poison(out.data(), c.dt, static_cast<int64_t>(out_elems));
    if (c.in_place) std::memcpy(out.data(), in.data(), in_elems * es);
    const void* inp = c.in_place ? static_cast<const void*>(out.data()) : in.data();

    CallDesc d;
    d.kind = c.kind;
    d.dtype = c.dt;
    d.op = c.op;
    d.count = c.count;
    d.root = c.root;
    d.inner = c.inner;
    const Clock::time_point t0 = Clock::now();
    Status s = comm->call(inp, out.data(), d, deadline());
    const double ms = ms_since(t0);
    if (!s.ok()) {
      report(false, name, std::string(code_name(s.code())) + ": " + s.message());
      return false;
    }
    std::string problem;
    if (!out.guards_intact()) problem += "output guards overwritten (" + out.guard_damage() + "); ";
    if (!c.in_place && std::memcmp(in.data(), inputs[static_cast<size_t>(rank_)].data(), in_elems * es) != 0)
      problem += "the input was modified; ";
    if (std::memcmp(out.data(), expect.data(), out_elems * es) != 0) {
      size_t first = 0, bad = 0;
      for (size_t i = 0; i < out_elems; ++i)
        if (std::memcmp(out.data() + i * es, expect.data() + i * es, es) != 0) {
          if (bad++ == 0) first = i;
        }
      problem += std::to_string(bad) + " of " + std::to_string(out_elems) +
                 " elements differ from the rank-order spec reduction (reduce_ref), first at " + std::to_string(first) +
                 ": got " + format_element(out.data(), c.dt, static_cast<int64_t>(first)) + ", want " +
                 format_element(expect.data(), c.dt, static_cast<int64_t>(first)) + "; ";
    }
    if (!c.special && (c.kind == Collective::all_reduce || c.kind == Collective::reduce_scatter))
      problem += check_float64(c, R, inputs, block_off, out.data());
    // Identical bytes on every rank, checked through the backend itself.
    if (c.kind != Collective::reduce_scatter) {
      std::string hash_problem;
      if (!same_on_all_ranks(comm, fnv1a(out.data(), out_elems * es), &hash_problem)) {
        report(false, name, problem + hash_problem);
        return false;
      }
      problem += hash_problem;
    }
    report(problem.empty(), name, problem, ms);
    return true;
  }

  // All-gathers an 8-byte hash (as 2 f32 "elements": the backend only moves the bytes).
  bool same_on_all_ranks(Communicator* comm, uint64_t h, std::string* problem) {
    std::vector<uint64_t> all(static_cast<size_t>(world_), 0);
    CallDesc d;
    d.kind = Collective::all_gather;
    d.dtype = DType::f32;
    d.count = 2;
    Status s = comm->call(&h, all.data(), d, deadline());
    if (!s.ok()) {
      *problem += "the hash allGather failed: " + std::string(code_name(s.code())) + ": " + s.message() + "; ";
      return false;
    }
    for (int r = 0; r < world_; ++r)
      if (all[static_cast<size_t>(r)] != h) {
        char buf[160];
        std::snprintf(buf, sizeof(buf), "output bytes differ between ranks (hash of rank %d %016llx, ours %016llx); ",
                      r, static_cast<unsigned long long>(all[static_cast<size_t>(r)]),
                      static_cast<unsigned long long>(h));
        *problem += buf;
        break;
      }
    return true;
  }

  bool run_all_cases(Communicator* comm) {
    const std::vector<Case> cases = check_cases(world_);
    for (const Case& c : cases)
      if (!run_case(comm, c)) return false;
    // Barrier.
    CallDesc d;
    d.kind = Collective::barrier;
    const Clock::time_point t0 = Clock::now();
    Status s = comm->call(nullptr, nullptr, d, deadline());
    report(s.ok(), "barrier", s.ok() ? "" : std::string(code_name(s.code())) + ": " + s.message(), ms_since(t0));
    return s.ok();
  }

  // Rank 0 calls allReduce with 10 elements, rank 1 with 11: Code::mismatch on every rank.
  void check_mismatch(Communicator* comm) {
    std::vector<float> in(11, 1.0f), out(11, 0.0f);
    CallDesc d;
    d.kind = Collective::all_reduce;
    d.count = rank_ == 1 ? 11 : 10;
    Status s = comm->call(in.data(), out.data(), d, deadline());
    if (opt_.verbose && rank_ == 0) std::printf("      mismatch message: %s\n", s.message().c_str());
    report(s.code() == Code::mismatch, "mismatch (rank 0 count 10, rank 1 count 11)",
           "expected ERR_COLLECTIVE_MISMATCH, got " + std::string(code_name(s.code())) + ": " + s.message());
    const Clock::time_point t0 = Clock::now();
    Status again = comm->call(in.data(), out.data(), d, deadline());
    const double ms = ms_since(t0);
    report(again.code() == s.code() && again.message() == s.message() && ms < 100,
           "mismatch: the next call fails at once with the same status",
           "got " + std::string(code_name(again.code())) + " after " + std::to_string(ms) + " ms: " + again.message());
  }

  // Rank 1 sleeps past the others' deadline.
  void check_deadline(Communicator* comm) {
    const int deadline_ms = 1000, sleep_ms = 2000;
    std::vector<float> in(1000, 1.0f), out(1000, 0.0f);
    CallDesc d;
    d.kind = Collective::all_reduce;
    d.count = in.size();
    if (rank_ == 1) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    const Clock::time_point t0 = Clock::now();
    Status s = comm->call(in.data(), out.data(), d, t0 + std::chrono::milliseconds(deadline_ms));
    const double ms = ms_since(t0);
    char buf[64];
    std::snprintf(buf, sizeof(buf), " after %.0f ms: ", ms);
    if (rank_ != 1) {
      if (opt_.verbose && rank_ == 0) std::printf("      timeout message: %s\n", s.message().c_str());
      report(s.code() == Code::timeout && ms >= deadline_ms - 5 && ms <= deadline_ms + 1000,
             "deadline: a rank 1 s late gives ERR_TIMEOUT within the deadline (1000 ms) + 1 s",
             "got " + std::string(code_name(s.code())) + buf + s.message());
    } else {
      report((s.code() == Code::timeout || s.code() == Code::peer_lost) && ms <= deadline_ms + 1000,
             "deadline: the late rank fails too (ERR_TIMEOUT or ERR_PEER_LOST) within its deadline + 1 s",
             "got " + std::string(code_name(s.code())) + buf + s.message());
    }
    const Clock::time_point t1 = Clock::now();
    Status again = comm->call(in.data(), out.data(), d, deadline());
    report(again.code() == s.code() && ms_since(t1) < 100, "deadline: the next call fails at once",
           "got " + std::string(code_name(again.code())) + ": " + again.message());
  }

  // --bench: median times on rank 0.
  void bench(Communicator* comm) {
    struct Item {
      Collective kind;
      size_t bytes;
      int iters;
    };
    const std::vector<Item> items = {
        {Collective::barrier, 0, 1000},          {Collective::all_reduce, 4 << 10, 1000},
        {Collective::all_reduce, 64 << 10, 300}, {Collective::all_reduce, 1 << 20, 100},
        {Collective::all_reduce, 64 << 20, 10},  {Collective::all_gather, 64 << 20, 10},
        {Collective::broadcast, 64 << 20, 10},   {Collective::reduce_scatter, 64 << 20, 10}};
    const size_t uR = static_cast<size_t>(world_);
    JsonWriter j(false);
    j.begin_object().kv("backend", comm->backend()).kv("ranks", world_).key("results").begin_array();
    if (rank_ == 0)
      std::printf("bench (%s, %d ranks, f32; median of N; busbw = algbw x 2(R-1)/R for allReduce, x (R-1)/R for "
                  "allGather/reduceScatter, x 1 for broadcast, as nccl-tests):\n",
                  comm->backend(), world_);
    for (const Item& it : items) {
      const size_t count = it.bytes / 4;
      const size_t in_elems = it.kind == Collective::reduce_scatter ? uR * count : count;
      const size_t out_elems = it.kind == Collective::all_gather ? uR * count : count;
      std::vector<float> in(std::max<size_t>(1, in_elems), 1.0f + static_cast<float>(rank_));
      std::vector<float> out(std::max<size_t>(1, out_elems), 0.0f);
      CallDesc d;
      d.kind = it.kind;
      d.count = it.kind == Collective::barrier ? 0 : count;
      const int iters = opt_.bench_iters > 0 ? static_cast<int>(opt_.bench_iters) : it.iters;
      std::vector<double> t;
      for (int i = -2; i < iters; ++i) {
        const Clock::time_point t0 = Clock::now();
        Status s = comm->call(it.kind == Collective::barrier ? nullptr : in.data(),
                              it.kind == Collective::barrier ? nullptr : out.data(), d, deadline());
        if (!s.ok()) {
          report(false, "bench", std::string(code_name(s.code())) + ": " + s.message());
          return;
        }
        if (i >= 0) t.push_back(ms_since(t0));
      }
      std::sort(t.begin(), t.end());
      const double med = t[t.size() / 2];
      const double p90 = t[std::min(t.size() - 1, t.size() * 9 / 10)];
      j.begin_object().kv("collective", dist::collective_name(it.kind)).kv("bytes", static_cast<uint64_t>(it.bytes));
      j.kv("us", med * 1e3).kv("p90Us", p90 * 1e3).end_object();
      // Bytes per rank of the collective's data (the reduced vector, or the gathered output).
      const double data = it.kind == Collective::all_gather || it.kind == Collective::reduce_scatter
                              ? static_cast<double>(it.bytes) * world_
                              : static_cast<double>(it.bytes);
      double factor = 1;
      if (it.kind == Collective::all_reduce) factor = 2.0 * (world_ - 1) / world_;
      if (it.kind == Collective::all_gather || it.kind == Collective::reduce_scatter)
        factor = static_cast<double>(world_ - 1) / world_;
      if (rank_ == 0) {
        if (it.kind == Collective::barrier) {
          std::printf("  %-14s %10s  median %9.1f us  p90 %9.1f us  (N=%d)\n", "barrier", "", med * 1e3, p90 * 1e3,
                      iters);
        } else {
          const double algbw = data / (med * 1e-3) / 1e9;
          std::printf("  %-14s %7.0f KiB  median %9.1f us  p90 %9.1f us  algbw %6.2f GB/s  busbw %6.2f GB/s  (N=%d)\n",
                      dist::collective_name(it.kind), it.bytes / 1024.0, med * 1e3, p90 * 1e3, algbw, algbw * factor,
                      iters);
        }
        std::fflush(stdout);
      }
    }
    j.end_array().end_object();
    if (rank_ == 0 && opt_.json) std::printf("%s\n", j.str().c_str());
  }

 private:
  const Options& opt_;
  int rank_, world_;
  Tally tally_;
};

// Everything one rank does. *own: this rank's checks; *combined: the tally of every rank before the deadline case
// (when the backend could still sum it) plus this rank's deadline checks.
int run_rank(const Options& opt, int rank, int world, const Opener& open, Tally* own, Tally* combined) {
  Checker ck(opt, rank, world);
  std::unique_ptr<Communicator> a, b;
  Status s = open(0, &a);
  if (!s.ok()) {
    std::printf("[rank %d] cannot open the %s communicator: %s: %s\n", rank, opt.backend.c_str(),
                code_name(s.code()), s.message().c_str());
    std::fflush(stdout);
    return 2;
  }
  if (rank == 0)
    std::printf("lk_dist_check: backend %s, %d ranks, seed %lld\n", a->backend(), a->world(),
                static_cast<long long>(opt.seed));
  ck.report(a->rank() == rank && a->world() == world, "open: rank and world",
            "got rank " + std::to_string(a->rank()) + " of " + std::to_string(a->world()));
  const Clock::time_point t0 = Clock::now();
  if (ck.run_all_cases(a.get()) && opt.bench) ck.bench(a.get());
  if (rank == 0 && opt.verbose) std::printf("      cases took %.1f s\n", ms_since(t0) / 1e3);
  if (!a->failed()) ck.check_mismatch(a.get());
  // A fresh communicator for the tally and the deadline case (a stays open: closing the last mpi communicator
  // finalizes MPI, which cannot be initialized again).
  s = open(1, &b);
  ck.report(s.ok(), "open a second communicator", std::string(code_name(s.code())) + ": " + s.message());
  *combined = ck.tally();
  if (s.ok()) {
    float counts[2] = {static_cast<float>(ck.tally().passed), static_cast<float>(ck.tally().failed)}, sum[2] = {0, 0};
    CallDesc d;
    d.kind = Collective::all_reduce;
    d.count = 2;
    Status t = b->call(counts, sum, d, ck.deadline());
    if (t.ok()) {
      combined->passed = static_cast<int>(sum[0]);
      combined->failed = static_cast<int>(sum[1]);
    } else {
      ck.report(false, "combining the tallies", std::string(code_name(t.code())) + ": " + t.message());
      combined->failed += 1;
    }
    const Tally before = ck.tally();
    ck.check_deadline(b.get());
    combined->passed += ck.tally().passed - before.passed;
    combined->failed += ck.tally().failed - before.failed;
  }
  *own = ck.tally();
  return ck.tally().failed == 0 ? 0 : 1;
}

int run_mpi(const Options& opt) {
  // Argument checks of open_mpi first: a world size that differs from MPI's is a RangeError.
  dist::OpenOptions bad;
  bad.rank = -1;
  bad.world = 100000;
  std::unique_ptr<Communicator> none;
  Status sb = dist::open_mpi(bad, opt.library, &none);
  if (sb.code() == Code::unsupported) {
    std::printf("cannot open the mpi communicator: %s: %s\n", code_name(sb.code()), sb.message().c_str());
    return 2;
  }
  Opener open = [&](int, std::unique_ptr<Communicator>* out) {
    dist::OpenOptions o;
    o.rank = -1;
    o.world = static_cast<int>(opt.world);
    o.deadline = Clock::now() + std::chrono::milliseconds(opt.deadline_ms);
    return dist::open_mpi(o, opt.library, out);
  };
  std::unique_ptr<Communicator> probe;
  Status s = open(0, &probe);
  if (!s.ok()) {
    std::printf("cannot open the mpi communicator: %s: %s\n", code_name(s.code()), s.message().c_str());
    return 2;
  }
  const int rank = probe->rank(), world = probe->world();
  Tally own, t;
  const bool world_ok = sb.code() == Code::range;
  if (!world_ok)
    std::printf("[rank %d] FAIL open with world 100000: expected ERR_OUT_OF_RANGE, got %s: %s\n", rank,
                code_name(sb.code()), sb.message().c_str());
  if (world < 2) {
    std::printf("lk_dist_check: MPI has %d rank; run under mpirun -np 2 (or more)\n", world);
    return 2;
  }
  // probe stays open to the end (see run_rank on closing the last communicator).
  const int rc = run_rank(opt, rank, world, open, &own, &t);
  if (!world_ok) {
    ++t.failed;
  } else {
    ++t.passed;
  }
  // The library does not finalize MPI once a request was abandoned (the deadline case did that): a peer that never
  // arrives would make MPI_Finalize wait forever. Here every rank is alive and gets here, so the tool finalizes
  // itself, and mpirun sees a clean exit (it reports a rank that exits without MPI_Finalize as a failure). This also
  // makes rank 0, which waits in MPI_Finalize for the late rank, print the last line.
  std::fflush(stdout);
  auto finalized = reinterpret_cast<int (*)(int*)>(dlsym(RTLD_DEFAULT, "MPI_Finalized"));
  auto finalize = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "MPI_Finalize"));
  int done = 1;
  if (finalized != nullptr && finalize != nullptr && finalized(&done) == 0 && !done) finalize();
  if (rank == 0) std::printf("%d passed, %d failed\n", t.passed, t.failed);
  std::fflush(stdout);
  return rc != 0 ? rc : (world_ok ? 0 : 1);  // probe's destructor sees MPI finalized and leaves it alone
}

int run_shm(const Options& opt) {
  const int world = opt.world > 0 ? static_cast<int>(opt.world) : 2;
  const std::string base = "lkcheck-" + std::to_string(getpid());
  std::vector<pid_t> pids;
  std::vector<int> fds;
  for (int r = 0; r < world; ++r) {
    int p[2];
    if (pipe(p) != 0) {
      std::perror("pipe");
      return 2;
    }
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) {
      close(p[0]);
      Opener open = [&](int attempt, std::unique_ptr<Communicator>* out) {
        dist::OpenOptions o;
        o.rank = r;
        o.world = world;
        o.deadline = Clock::now() + std::chrono::milliseconds(opt.deadline_ms);
        return dist::open_shm(o, base + "-" + std::to_string(attempt), out);
      };
      Tally own, combined;
      const int rc = run_rank(opt, r, world, open, &own, &combined);
      // Each child reports its own tally; the parent sums them exactly (the combined tally is for mpi).
      char buf[64];
      const int n = std::snprintf(buf, sizeof(buf), "%d %d %d\n", rc, own.passed, own.failed);
      (void)!write(p[1], buf, static_cast<size_t>(n));
      close(p[1]);
      std::fflush(stdout);
      std::_Exit(rc);
    }
    close(p[1]);
    pids.push_back(pid);
    fds.push_back(p[0]);
  }
  // Wait for every child, with a limit, so that a hang is a failure, not a stuck check.
  const Clock::time_point limit = Clock::now() + std::chrono::minutes(20);
  std::vector<int> status(static_cast<size_t>(world), -1);
  int left = world;
  bool killed = false;
  while (left > 0) {
    int st = 0;
    const pid_t w = waitpid(-1, &st, WNOHANG);
    if (w > 0) {
      for (int r = 0; r < world; ++r)
        if (pids[static_cast<size_t>(r)] == w) status[static_cast<size_t>(r)] = st;
      --left;
      continue;
    }
    if (!killed && Clock::now() > limit) {
      killed = true;
      for (int r = 0; r < world; ++r)
        if (status[static_cast<size_t>(r)] < 0) kill(pids[static_cast<size_t>(r)], SIGKILL);
      std::printf("lk_dist_check: ranks still running after 20 minutes; killed\n");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Tally total;
  bool ok = true;
  for (int r = 0; r < world; ++r) {
    char buf[64] = {0};
    const ssize_t n = read(fds[static_cast<size_t>(r)], buf, sizeof(buf) - 1);
    close(fds[static_cast<size_t>(r)]);
    int rc = -1, passed = 0, failed = 0;
    if (n <= 0 || std::sscanf(buf, "%d %d %d", &rc, &passed, &failed) != 3) {
      const int st = status[static_cast<size_t>(r)];
      std::printf("[rank %d] FAIL exited without a tally (%s %d)\n", r, WIFSIGNALED(st) ? "signal" : "status",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
      ++total.failed;
      ok = false;
      continue;
    }
    total.passed += passed;
    total.failed += failed;
    if (rc != 0) ok = false;
  }
  std::printf("%d passed, %d failed\n", total.passed, total.failed);
  return ok && total.failed == 0 ? 0 : 1;
}

// --backend cuda-local: the custom CUDA collectives (native/dist/cuda_ar.h) with R ranks as R buffers on one GPU
// (CudaAllReduce::open_local), each rank's kernel on a stream of its own, so that a GPU host checks them without
// Node or a second process. Every case of check_cases (all_reduce one-shot and two-shot), on aligned buffers and
// (up to 65539 elements, not in place) on buffers one element off 16 bytes, then the cases of 65539 elements and
// more again on a group of 64 KiB halves (several chunks per call). Outputs bit for bit against the spec
// (reduce_ref / the bytes moved) and within the float64 bound, guards around every output, inputs unchanged. Then
// the failure paths on fresh groups: a rank that never launches (the others time out: ERR_TIMEOUT within the
// timeout + 2 s) and a rank with another count (ERR_COLLECTIVE_MISMATCH or a timeout, on some rank; never a hang).
// What it cannot show: CUDA IPC between processes and P2P between GPUs (the multi-process path is the Node test's).
int run_cuda_local(const Options& opt) {
  const int R = opt.world > 0 ? static_cast<int>(opt.world) : 2;
  const int dev = static_cast<int>(opt.cuda_device);
  const CudaProbe probe = cuda_probe();
  if (!probe.available) {
    std::printf("lk_dist_check: cuda-local: CUDA unavailable: %s\n", probe.reason.c_str());
    return 2;
  }
  using dist::CollectiveArgs;
  using dist::CudaAllReduce;
  using Group = std::vector<std::unique_ptr<CudaAllReduce>>;
  auto open = [&](size_t capacity, Group* g) {
    Status s = CudaAllReduce::open_local(dev, R, capacity, g);
    if (!s.ok()) std::printf("lk_dist_check: cuda-local: open_local(%d ranks): %s: %s\n", R, code_name(s.code()), s.message().c_str());
    return s.ok();
  };
  Group big, small;
  if (!open(dist::kArDefaultCapacity, &big) || !open(size_t(64) << 10, &small)) return 2;
  std::printf("lk_dist_check: backend cuda-local, %d ranks on cuda:%d (%s), seed %lld\n", R, dev,
              dev < static_cast<int>(probe.devices.size()) ? probe.devices[static_cast<size_t>(dev)].name.c_str() : "?",
              static_cast<long long>(opt.seed));
  Tally t;
  auto report = [&](bool ok, const std::string& name, const std::string& detail, double ms) {
    if (ok) {
      ++t.passed;
      if (opt.verbose) std::printf("ok    %-60s %8.2f ms\n", name.c_str(), ms);
    } else {
      ++t.failed;
      std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
    }
    std::fflush(stdout);
  };
  constexpr size_t G = 256;  // guard bytes on both sides of every device buffer
  constexpr uint8_t kGuard = 0xa5;
  // One device buffer [G | payload | G] per rank and direction; the payload starts `off` bytes past G.
  struct DevBuf {
    int dev = 0;
    void* p = nullptr;
    ~DevBuf() {
      if (p) cuda_free(dev, p);
    }
  };
  // Runs case c on group g (algo for all_reduce; off: elements past 16-byte alignment); false when the group failed.
  auto run_one = [&](Group& g, const Case& c, dist::ArAlgo algo, int off, const std::string& name) -> bool {
    const size_t es = dtype_size(c.dt), in_b = case_in_elems(c, R) * es, out_b = case_out_elems(c, R) * es;
    const size_t ob = static_cast<size_t>(off) * es;
    std::vector<std::vector<uint8_t>> inputs;
    case_inputs(c, R, static_cast<uint64_t>(opt.seed), &inputs);
    std::vector<DevBuf> din(static_cast<size_t>(R)), dout(static_cast<size_t>(R));
    for (int r = 0; r < R; ++r) din[static_cast<size_t>(r)].dev = dout[static_cast<size_t>(r)].dev = dev;
    std::vector<CollectiveArgs> calls(static_cast<size_t>(R));
    std::vector<std::vector<uint8_t>> in_img(static_cast<size_t>(R)), out_img(static_cast<size_t>(R));
    for (int r = 0; r < R; ++r) {
      const size_t ri = static_cast<size_t>(r);
      std::vector<uint8_t>& oi = out_img[ri];
      oi.assign(2 * G + ob + out_b, kGuard);
      fill_poison(oi.data() + G + ob, c.dt, static_cast<int64_t>(case_out_elems(c, R)));
      if (c.in_place) std::memcpy(oi.data() + G + ob, inputs[ri].data(), in_b);
      Status s = cuda_malloc(dev, oi.size(), &dout[ri].p);
      if (s.ok()) s = cuda_copy_h2d(dev, dout[ri].p, oi.data(), oi.size());
      if (!c.in_place) {
        std::vector<uint8_t>& ii = in_img[ri];
        ii.assign(2 * G + ob + in_b, kGuard);
        std::memcpy(ii.data() + G + ob, inputs[ri].data(), in_b);
        if (s.ok()) s = cuda_malloc(dev, ii.size(), &din[ri].p);
        if (s.ok()) s = cuda_copy_h2d(dev, din[ri].p, ii.data(), ii.size());
      }
      if (!s.ok()) {
        report(false, name, std::string("device buffers: ") + code_name(s.code()) + ": " + s.message(), 0);
        return false;
      }
      CollectiveArgs& a = calls[ri];
      a.kind = c.kind;
      a.out = static_cast<char*>(dout[ri].p) + G + ob;
      a.in = c.in_place ? a.out : static_cast<const void*>(static_cast<char*>(din[ri].p) + G + ob);
      a.count = c.count;
      a.inner = c.inner;
      a.root = c.root;
      a.dt = c.dt;
      a.op = c.op;
      a.algo = algo;
    }
    double ms = 0;
    const Status s = CudaAllReduce::run_local(g, calls, 20000, &ms);
    if (!s.ok()) {
      report(false, name, std::string(code_name(s.code())) + ": " + s.message(), ms);
      return false;
    }
    std::string problem;
    std::vector<uint8_t> expect, got;
    for (int r = 0; r < R && problem.empty(); ++r) {
      const size_t ri = static_cast<size_t>(r);
      const std::string who = "rank " + std::to_string(r) + ": ";
      got.resize(out_img[ri].size());
      Status d = cuda_copy_d2h(dev, got.data(), dout[ri].p, got.size());
      if (!d.ok()) {
        problem = who + "reading the output: " + d.message();
        break;
      }
      for (size_t i = 0; i < G + ob; ++i)
        if (got[i] != kGuard || got[got.size() - 1 - (i < G ? i : 0)] != kGuard) {
          problem += who + "wrote outside its output; ";
          break;
        }
      const size_t block_off = case_expected(c, R, r, inputs, &expect);
      const uint8_t* o = got.data() + G + ob;
      const bool reducing = c.kind == Collective::all_reduce || c.kind == Collective::reduce_scatter;
      if (std::memcmp(o, expect.data(), out_b) != 0) {
        // A reduction's NaN is the GPU's canonical NaN, where the CPU's spec keeps a payload: "both NaN" is equal.
        size_t first = 0, bad = 0;
        for (size_t i = 0; i < out_b / es; ++i) {
          if (std::memcmp(o + i * es, expect.data() + i * es, es) == 0) continue;
          const int64_t ii = static_cast<int64_t>(i);
          if (reducing && std::isnan(element_as_double(o, c.dt, ii)) && std::isnan(element_as_double(expect.data(), c.dt, ii)))
            continue;
          if (bad++ == 0) first = i;
        }
        if (bad)
          problem += who + std::to_string(bad) + " of " + std::to_string(out_b / es) +
                     " elements differ from the spec, first at " + std::to_string(first) + ": got " +
                     format_element(o, c.dt, static_cast<int64_t>(first)) + ", want " +
                     format_element(expect.data(), c.dt, static_cast<int64_t>(first)) + "; ";
      }
      if (reducing && !c.special)
        if (const std::string f = check_float64(c, R, inputs, block_off, o); !f.empty()) problem += who + f;
      if (!c.in_place) {
        got.resize(in_img[ri].size());
        d = cuda_copy_d2h(dev, got.data(), din[ri].p, got.size());
        if (!d.ok() || got != in_img[ri]) problem += who + "its input (or the guards around it) changed; ";
      }
    }
    report(problem.empty(), name, problem, ms);
    return true;
  };
  const std::vector<Case> cases = check_cases(R);
  for (const Case& c : cases) {
    if (c.count == 0) continue;  // no launch at all (enqueue returns at once)
    std::vector<dist::ArAlgo> algos = {dist::ArAlgo::one_shot};
    if (c.kind == Collective::all_reduce) algos.push_back(dist::ArAlgo::two_shot);
    for (dist::ArAlgo algo : algos) {
      const std::string base = case_name(c) + (c.kind == Collective::all_reduce ? std::string(" ") + dist::ar_algo_name(algo) : "");
      if (!run_one(big, c, algo, 0, base)) return 1;
      if (!c.in_place && c.count <= 65539 && !run_one(big, c, algo, 1, base + " misaligned")) return 1;
      if (c.count >= 65539 && !run_one(small, c, algo, 0, base + " in 64 KiB chunks")) return 1;
    }
  }
  // Failure paths, each on a fresh group.
  {
    Group g;
    if (!open(size_t(1) << 20, &g)) return 2;
    const size_t n = 4096;
    std::vector<DevBuf> bufs(static_cast<size_t>(2 * R));
    for (DevBuf& b : bufs) b.dev = dev;
    std::vector<CollectiveArgs> calls(static_cast<size_t>(R));
    for (int r = 0; r < R; ++r) {
      for (int k = 0; k < 2; ++k) {
        const Status s = cuda_malloc(dev, (n + 1) * 4, &bufs[static_cast<size_t>(2 * r + k)].p);
        if (!s.ok()) {
          report(false, "failure paths: device buffers", s.message(), 0);
          return 1;
        }
      }
      calls[static_cast<size_t>(r)].in = bufs[static_cast<size_t>(2 * r)].p;
      calls[static_cast<size_t>(r)].out = bufs[static_cast<size_t>(2 * r + 1)].p;
      calls[static_cast<size_t>(r)].count = n;
    }
    calls[static_cast<size_t>(R - 1)].count = 0;  // rank R - 1 never launches
    double ms = 0;
    Status s = CudaAllReduce::run_local(g, calls, 200, &ms);
    report(s.code() == Code::timeout && ms < 2200, "absent rank: the others time out (200 ms device-side timeout)",
           std::string("got ") + code_name(s.code()) + " after " + std::to_string(ms) + " ms: " + s.message(), ms);
    Group m;
    if (!open(size_t(1) << 20, &m)) return 2;
    for (auto& c : calls) c.count = n;
    calls[0].count = n + 1;
    s = CudaAllReduce::run_local(m, calls, 2000, &ms);
    report((s.code() == Code::mismatch || s.code() == Code::timeout) && ms < 4000,
           "mismatch: rank 0 with another count fails the call on the device (2 s timeout)",
           std::string("got ") + code_name(s.code()) + " after " + std::to_string(ms) + " ms: " + s.message(), ms);
  }
  std::printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed == 0 ? 0 : 1;
}

// --bench-raw: Open MPI's own MPI_Allreduce (f32, MPI_SUM, in place) on MPI_COMM_WORLD, the peer of the mpi
// backend's allReduce (which moves bytes with MPI and reduces in rank order itself). open_mpi initializes MPI and
// loads libmpi with RTLD_GLOBAL, so its symbols resolve here without any build-time dependency; the handles are
// Open MPI's (mpi.h: MPI_FLOAT is &ompi_mpi_float, MPI_SUM &ompi_mpi_op_sum, MPI_IN_PLACE (void*)1). Sizes and
// timing follow bench/dist-rank.mjs: 4 KiB to 64 MiB by 4x; up to 1 MiB a sample is 32 calls back to back (us per
// call), above one call; the median of the samples, after 2 warm-up samples; every rank runs the same number.
int bench_raw_mpi(const Options& opt) {
  dist::OpenOptions o;
  o.rank = -1;
  o.world = static_cast<int>(opt.world);
  o.deadline = Clock::now() + std::chrono::milliseconds(opt.deadline_ms);
  std::unique_ptr<Communicator> comm;  // closing it finalizes MPI
  Status s = dist::open_mpi(o, opt.library, &comm);
  if (!s.ok()) {
    std::printf("cannot open the mpi communicator: %s: %s\n", code_name(s.code()), s.message().c_str());
    return 2;
  }
  using AllreduceFn = int (*)(const void*, void*, int, void*, void*, void*);
  auto allreduce = reinterpret_cast<AllreduceFn>(dlsym(RTLD_DEFAULT, "MPI_Allreduce"));
  void* mpi_float = dlsym(RTLD_DEFAULT, "ompi_mpi_float");
  void* mpi_sum = dlsym(RTLD_DEFAULT, "ompi_mpi_op_sum");
  void* world = dlsym(RTLD_DEFAULT, "ompi_mpi_comm_world");
  void* const in_place = reinterpret_cast<void*>(1);
  if (allreduce == nullptr || mpi_float == nullptr || mpi_sum == nullptr || world == nullptr) {
    std::printf("--bench-raw: MPI_Allreduce or Open MPI's predefined handles not found\n");
    return 2;
  }
  const int rank = comm->rank(), R = comm->world();
  if (rank == 0)
    std::printf("MPI_Allreduce (Open MPI's own; f32, sum, in place), %d ranks: median us per call; busbw = "
                "2(R-1)/R x bytes / time\n",
                R);
  JsonWriter j(false);
  j.begin_object().kv("backend", "MPI_Allreduce").kv("ranks", R).key("sizes").begin_array();
  for (size_t bytes = 4096; bytes <= (size_t(64) << 20); bytes *= 4) {
    std::vector<float> x(bytes / 4, 1e-3f * static_cast<float>(rank + 1));
    const int k = bytes <= (size_t(1) << 20) ? 32 : 1;
    const int samples = opt.bench_iters > 0 ? static_cast<int>(opt.bench_iters) : (bytes <= (size_t(1) << 20) ? 30 : 8);
    std::vector<double> t;
    for (int i = -2; i < samples; ++i) {
      const Clock::time_point t0 = Clock::now();
      for (int c = 0; c < k; ++c) {
        const int rc = allreduce(in_place, x.data(), static_cast<int>(x.size()), mpi_float, mpi_sum, world);
        if (rc != 0) {
          std::printf("[rank %d] MPI_Allreduce failed with code %d\n", rank, rc);
          return 1;
        }
      }
      if (i >= 0) t.push_back(ms_since(t0) * 1e3 / k);
    }
    std::sort(t.begin(), t.end());
    const double us = t[t.size() / 2];
    j.begin_object().kv("bytes", static_cast<uint64_t>(bytes)).kv("us", us).end_object();
    if (rank == 0)
      std::printf("  %8.0f KiB  %10.1f us  busbw %6.2f GB/s\n", bytes / 1024.0, us,
                  2.0 * (R - 1) / R * static_cast<double>(bytes) / (us * 1e-6) / 1e9);
  }
  j.end_array().end_object();
  if (rank == 0 && opt.json) std::printf("%s\n", j.str().c_str());
  std::fflush(stdout);
  return 0;
}

int run(int argc, char** argv) {
  Options opt;
  ArgParser p("lk_dist_check", "checks a communicator backend's collectives (see the file header)");
  p.add_string("--backend", "NAME",
               "mpi (run under mpirun), shm (forks --world ranks) or cuda-local (the custom CUDA collectives, --world "
               "ranks as buffers on one GPU)",
               &opt.backend, {"mpi", "shm", "cuda-local"});
  p.add_int("--cuda-device", "N", "cuda-local: the GPU (default 0)", &opt.cuda_device, 0, 63);
  p.add_int("--world", "N", "ranks: shm forks N (default 2); mpi checks MPI's size against N", &opt.world, 1, 64);
  p.add_int("--seed", "N", "random seed", &opt.seed, 0, INT64_MAX);
  p.add_int("--deadline-ms", "MS", "deadline of every call and of the rendezvous (default 60000)", &opt.deadline_ms,
            100, 3600000);
  p.add_string("--library", "PATH", "mpi: the Open MPI library to load (default libmpi.so.40)", &opt.library);
  p.add_flag("--bench", "also time barrier, allReduce (4 KiB .. 64 MiB), allGather, broadcast", &opt.bench);
  p.add_int("--bench-iters", "N", "iterations per bench size (default: per size)", &opt.bench_iters, 1, 100000);
  p.add_flag("--bench-raw", "mpi: only time Open MPI's own MPI_Allreduce (f32, in place, 4 KiB .. 64 MiB), the peer "
             "of the mpi backend's allReduce", &opt.bench_raw);
  p.add_flag("--json", "with --bench / --bench-raw: rank 0 also prints the results as one JSON line", &opt.json);
  p.add_flag("-v", "print every check (rank 0) and the failure messages", &opt.verbose);
  std::string err;
  if (!p.parse(argc, argv, &err)) {
    std::fprintf(stderr, "%s\n%s", err.c_str(), p.usage().c_str());
    return 2;
  }
  if (p.help_requested()) {
    std::printf("%s", p.usage().c_str());
    return 0;
  }
  if (opt.backend.empty()) {
    std::fprintf(stderr, "lk_dist_check: --backend is required\n%s", p.usage().c_str());
    return 2;
  }
  if (opt.bench_raw && opt.backend != "mpi") {
    std::fprintf(stderr, "lk_dist_check: --bench-raw needs --backend mpi\n");
    return 2;
  }
  if (opt.bench_raw) return bench_raw_mpi(opt);
  if (opt.backend == "cuda-local") {
    if (opt.world == 1 || opt.world > 8) {
      std::fprintf(stderr, "lk_dist_check: cuda-local runs 2 to 8 ranks, got --world %lld\n", static_cast<long long>(opt.world));
      return 2;
    }
    return run_cuda_local(opt);
  }
  return opt.backend == "mpi" ? run_mpi(opt) : run_shm(opt);
}

}  // namespace
}  // namespace tools
}  // namespace lk

int main(int argc, char** argv) {
  try {
    return lk::tools::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lk_dist_check: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "lk_dist_check: unknown exception\n");
  }
  return 2;
}
