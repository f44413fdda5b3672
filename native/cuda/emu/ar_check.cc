// ar_check: the custom CUDA collectives' own kernels (native/dist/cuda_ar_kernels.cuh) run on the CPU under emu.h,
// R ranks at once, each rank's launch on its own OS thread, against reduce.h's CPU reduction (all_reduce,
// reduce_scatter) and plain byte moves (all_gather, broadcast).
//
// The host surface is the smallest that reaches the kernels: per rank a data area [2][capacity], a zeroed signal
// area and the [abort, error] words, all plain host memory that every "rank" addresses directly (what CUDA IPC and
// cudaHostAllocMapped give the real host code). A rank's message goes through ar::enqueue_chunks, the function
// CudaAllReduce::enqueue calls: chunks of the capacity, each a launch numbered by the rank's launch counter k
// (data half k % 2, epochs 1 + 2k and 2 + 2k, the tag, the one-shot fallback, io_vec), run to completion on the
// rank's thread. A pool of kArMaxRanks OS threads plays the ranks.
//
// Checks, for R in {2, 3, 4, 8} (one long-lived group per R, so calls of every size, dtype, collective and
// algorithm follow each other on the same buffers, halves and flags, as they would in a process):
//   - all_reduce: f32, f16, bf16 x sum, max x one-shot, two-shot x counts: 1, 7, 8, 33, 1000, 4096, 4099; R - 1,
//     R, R + 1 and 3R - 1 elements and packs (two-shot with slices of one pack, empty last slices, a shorter last
//     slice, and the fall-back to one-shot below R packs); and messages large enough for G = 32 blocks with 2-3
//     grid-stride passes in both pack paths (bytes % 16 == 0: 16-byte packs, else one element per pack).
//   - all_gather (along the first dimension, and along inner blocks of 1 and 3 packs and of 5 and 7 elements),
//     reduce_scatter (sum, max) and broadcast (root 0 and R - 1, in place and not): the same odd counts, both pack
//     paths, G = 32 with 2-3 passes; outputs bit for bit (gather and broadcast move bytes: exact, NaN payloads too).
//   - sequences that change the collective at every call (all_reduce two-shot, all_gather, reduce_scatter,
//     broadcast in place, all_reduce max, all_gather of inner blocks, broadcast).
//   - in/out aligned (io_vec = 1), both one element off (io_vec = 0), odd ranks' input one element off (ranks that
//     disagree on io_vec, which must not matter), and in place (in == out); the large messages aligned and off.
//   - messages of 2-5 chunks of a 4 KiB half (the last chunk shorter, down to one element), for every collective
//     (all_gather with chunks that start and end inside an inner block; reduce_scatter's chunks are a half / R).
//   - six calls per case, which each rank runs back to back on its own thread (as its stream would), sleeping a
//     random 0-2 ms (or not at all) before each: a fast rank copies call k + 1 into its buffer while a slow one may
//     still read call k, the race the two halves exist for (with one half, this check fails at once). Fresh random
//     data every call (never zero; odd calls mix in NaN, +-Inf, huge values and, for f16/bf16, raw 16-bit patterns
//     with NaN payloads).
//   - every rank's output equal to the reference bit for bit (for reductions two NaNs count as equal: the
//     conversion's NaN pattern is not dtype.h's), every rank's output identical to rank 0's bit for bit (but
//     reduce_scatter's, which differ by design), guard bytes around outputs untouched, inputs untouched (not in
//     place), error words 0, equal launch counters.
//   - failures, each on a fresh group, for the all-reduce's two algorithms and each other collective: (a) a rank
//     never launches: the others' error word says timeout (50 ms device-side timeout) and the call returns; (b)
//     the host sets the abort words while ranks spin: error abort, well before the (20 s) timeout; (c) tags differ
//     at one epoch (another op, another count, another algorithm or another collective on one rank): every rank
//     fails, at least one with mismatch, nothing hangs; (d) after each of those, a later call on a failed rank (and
//     any call after an abort) exits at once: no flag stored for its epoch, output untouched, error word
//     unchanged.
//   ar_check              everything (5-8 min on a loaded 2-core machine; R = 8's large messages take most of it)
//   ar_check quick        R = 2 and 4, no large messages (~45 s)
// Prints "ar_check: N runs, M failures" (a run: one call of one case, or one failure scenario); each failure prints
// its case. Build and run: native/cuda/emu/run.sh --allreduce [quick].
// What it cannot show: the GPU's memory ordering (x86 is TSO and the emulated release/acquire are C++ atomics, so
// a missing st.release / ld.acquire / fence or a stale L1 line would not fail here), CUDA IPC and P2P mappings,
// timing and co-residency of a rank's blocks (they run one after another), the hardware's NaN patterns.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dist/cuda_ar_kernels.cuh"  // the launch-rewritten copy (run.sh puts it first on the include path)
#include "dist/reduce.h"

extern "C" cudaError_t cudaGetLastError(void) { return cudaSuccess; }

using namespace lk;
using namespace lk::dist;
using Clock = std::chrono::steady_clock;

namespace {

// ---- the rank threads ----
// kArMaxRanks persistent OS threads (each keeps emu.h's per-thread fiber stacks between launches); start() runs
// job(r) on threads 0..R-1 at once, wait() returns when all have.
class RankThreads {
 public:
  RankThreads() {
    for (int r = 0; r < kArMaxRanks; ++r) threads_.emplace_back([this, r] { loop(r); });
  }
  ~RankThreads() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      ++gen_;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void start(int R, std::function<void(int)> job) {
    {
      std::lock_guard<std::mutex> l(mu_);
      job_ = std::move(job);
      active_ = R;
      pending_ = R;
      ++gen_;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> l(mu_);
    done_.wait(l, [&] { return pending_ == 0; });
  }

 private:
  void loop(int r) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return gen_ != seen; });
      seen = gen_;
      if (stop_) return;
      if (r >= active_) continue;
      std::function<void(int)> job = job_;
      l.unlock();
      job(r);
      l.lock();
      if (--pending_ == 0) done_.notify_all();
    }
  }
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  std::function<void(int)> job_;
  uint64_t gen_ = 0;
  int active_ = 0, pending_ = 0;
  bool stop_ = false;
};

RankThreads* g_threads = nullptr;

// ---- a group: what CudaAllReduce owns on each rank, in host memory ----
struct RankMem {
  std::unique_ptr<char[]> store;  // the data area, 256-byte aligned inside
  char* data = nullptr;           // [2][capacity]
  std::vector<uint64_t> signal;   // [kMaxBlocks][kArMaxRanks], zero
  alignas(64) int words[2] = {0, 0};  // abort, error
};
struct Group {
  int R = 0;
  size_t capacity = 0;
  uint64_t calls = 0;  // the launch counter k, equal on every rank (every rank launches every call here)
  std::vector<std::unique_ptr<RankMem>> mem;
  char* data[kArMaxRanks] = {};
  uint64_t* signal[kArMaxRanks] = {};
  Group(int world, size_t cap) : R(world), capacity((cap + 255) & ~size_t(255)) {
    for (int r = 0; r < R; ++r) {
      auto m = std::make_unique<RankMem>();
      m->store.reset(new char[2 * capacity + 256]);
      m->data = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(m->store.get()) + 255) & ~uintptr_t(255));
      std::memset(m->data, 0x5a, 2 * capacity);  // stale bytes, not zeros: a read of a half never written shows
      m->signal.assign(static_cast<size_t>(ar::kMaxBlocks) * kArMaxRanks, 0);
      data[r] = m->data;
      signal[r] = m->signal.data();
      mem.push_back(std::move(m));
    }
  }
  int error(int r) const { return __atomic_load_n(&mem[r]->words[1], __ATOMIC_ACQUIRE); }
  void set_abort(int r) { __atomic_store_n(&mem[r]->words[0], 1, __ATOMIC_RELEASE); }
};

// ---- data ----
constexpr int kGuard = 64;        // guard bytes on both sides of every output (and input)
constexpr uint8_t kGuardByte = 0xcd;

float special_value(std::mt19937_64& rng) {
  static const uint32_t bits[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7fa5a5a5u, 0x7f800000u, 0xff800000u,
                                  0x7f7fffffu, 0xff7fffffu, 0x477ff000u, 0x00000001u, 0x807fffffu, 0x3f808000u};
  float f;
  std::memcpy(&f, &bits[rng() % (sizeof bits / sizeof bits[0])], 4);
  return f;
}

// Random non-zero values in (-2, 2) (a 32-bit integer scaled by 2^-30: one generator call per element, which
// matters at 8 ranks x 2 M elements x 6 calls); `special`: about 1 in 40 is NaN/Inf/huge/subnormal, and for
// f16/bf16 about 1 in 60 any 16-bit pattern that is not zero.
void fill(void* p, DType dt, size_t n, bool special, std::mt19937_64& rng) {
  for (size_t i = 0; i < n; ++i) {
    const uint64_t x = rng();
    float v = static_cast<float>(static_cast<int32_t>(x >> 32)) * 0x1p-30f;
    if (v == 0) v = 0.75f;
    if (special && (x & 1023) < 26) v = special_value(rng);
    if (dt == DType::f32) {
      static_cast<float*>(p)[i] = v;
      continue;
    }
    uint16_t h = dt == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v);
    if (special && ((x >> 10) & 1023) < 17) h = static_cast<uint16_t>(rng());
    if ((h & 0x7fffu) == 0) h |= 1;  // a value that rounded to zero, or a raw zero
    static_cast<uint16_t*>(p)[i] = h;
  }
}

// A 64-bit hash of bytes (inputs must come back unchanged; cheaper than keeping a copy of every input).
uint64_t hash_bytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

bool is_nan(const uint8_t* p, DType dt) {
  if (dt == DType::f32) {
    uint32_t u;
    std::memcpy(&u, p, 4);
    return (u & 0x7fffffffu) > 0x7f800000u;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dt == DType::f16 ? (h & 0x7fffu) > 0x7c00u : (h & 0x7fffu) > 0x7f80u;
}

// A buffer of n elements starting `off` elements past a 256-byte boundary, guard bytes around it.
struct Buf {
  std::vector<uint8_t> mem;
  uint8_t* p = nullptr;
  size_t bytes = 0;
  void make(size_t n, DType dt, int off) {
    const size_t es = dtype_size(dt);
    bytes = n * es;
    mem.assign(bytes + 2 * kGuard + 512, kGuardByte);
    const uintptr_t base = reinterpret_cast<uintptr_t>(mem.data()) + kGuard;
    p = reinterpret_cast<uint8_t*>(((base + 255) & ~uintptr_t(255)) + static_cast<size_t>(off) * es);
  }
  bool guards_ok() const {
    for (int i = 1; i <= kGuard; ++i)
      if (p[-i] != kGuardByte || p[bytes + i - 1] != kGuardByte) return false;
    return true;
  }
};

const char* err_name(int e) {
  switch (e) {
    case 0: return "none";
    case ar::kErrTimeout: return "timeout";
    case ar::kErrAbort: return "abort";
    case ar::kErrMismatch: return "mismatch";
    default: return "?";
  }
}

int runs = 0, failures = 0;

void fail(const std::string& what) {
  ++failures;
  if (failures <= 60) std::printf("FAIL %s\n", what.c_str());
  if (failures == 60) std::printf("(further failures not printed)\n");
}

// What one rank does for one message: sleep a random 0-2 ms (a third of the time not at all), then what
// CudaAllReduce::enqueue does: ar::enqueue_chunks from launch number c.k (one launch per chunk of the capacity),
// each kernel running to completion on this thread. Returns the launch counter after the message.
struct RankCall {
  CollectiveArgs a;
  bool launch = true;
  uint64_t k = 0;  // this rank's launch counter before the message
};
uint64_t rank_launch(Group& g, int r, const RankCall& c, uint64_t timeout_ns, uint64_t seed,
                     double* elapsed_s = nullptr) {
  if (!c.launch) return c.k;
  std::mt19937_64 rng(seed);
  const unsigned d = static_cast<unsigned>(rng() % 3000);
  if (d < 2000) std::this_thread::sleep_for(std::chrono::microseconds(d));
  const auto t0 = Clock::now();
  uint64_t k = c.k;
  (void)ar::enqueue_chunks(&k, c.a, r, g.R, g.data, g.signal, g.capacity, timeout_ns, g.mem[r]->words, nullptr);
  if (elapsed_s) *elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return k;
}

// ---- the correct path ----
// One call of a sequence: the collective and its shape (count as comm.h's), the op, the algorithm (all_reduce),
// the inner size (all_gather), the root (broadcast) and how in/out sit in memory.
struct Case {
  Collective kind;
  DType dt;
  ReduceOp op;
  ArAlgo algo;
  size_t n;
  int io;  // 0 aligned, 1 in and out one element off, 2 odd ranks' input one element off, 3 in place
  size_t inner = 0;
  int root = 0;
};
Case all_reduce_case(DType dt, ReduceOp op, ArAlgo algo, size_t n, int io) {
  return Case{Collective::all_reduce, dt, op, algo, n, io};
}
size_t in_elems(const Case& c, int R) { return c.kind == Collective::reduce_scatter ? c.n * R : c.n; }
size_t out_elems(const Case& c, int R) { return c.kind == Collective::all_gather ? c.n * R : c.n; }
bool reduces(const Case& c) { return c.kind == Collective::all_reduce || c.kind == Collective::reduce_scatter; }

std::string case_name(const Group& g, const Case& c, uint64_t k) {
  static const char* io_names[] = {"aligned", "misaligned", "odd-ranks-misaligned", "in-place"};
  const size_t bytes = c.n * dtype_size(c.dt);
  std::string s = std::string(collective_name(c.kind)) + "(R=" + std::to_string(g.R) + "," + dtype_name(c.dt);
  if (reduces(c)) s += std::string(",") + reduce_op_name(c.op);
  if (c.kind == Collective::all_reduce) s += std::string(",") + ar_algo_name(c.algo);
  s += ",n=" + std::to_string(c.n);
  if (c.kind == Collective::all_gather && c.inner) s += ",inner=" + std::to_string(c.inner);
  if (c.kind == Collective::broadcast) s += ",root=" + std::to_string(c.root);
  if (c.kind == Collective::all_reduce || c.kind == Collective::broadcast) s += bytes % 16 == 0 ? ",packs16" : ",packs1";
  return s + "," + io_names[c.io] + (g.capacity <= 4096 ? ",capacity=" + std::to_string(g.capacity) : std::string()) +
         ",from launch " + std::to_string(k) + ")";
}

// What rank r must hold after the call, from every rank's input: all_reduce and reduce_scatter by reduce_ref (rank
// order, f32, one rounding), all_gather and broadcast by moving the bytes.
void expected_out(const Case& c, int R, int r, const std::vector<const uint8_t*>& in, std::vector<uint8_t>* want) {
  const size_t es = dtype_size(c.dt);
  want->assign(out_elems(c, R) * es, 0);
  std::vector<const void*> srcs(R);
  switch (c.kind) {
    case Collective::all_reduce:
      for (int s = 0; s < R; ++s) srcs[s] = in[s];
      reduce_ref(srcs.data(), R, want->data(), c.n, c.dt, c.op);
      break;
    case Collective::reduce_scatter:
      for (int s = 0; s < R; ++s) srcs[s] = in[s] + static_cast<size_t>(r) * c.n * es;
      reduce_ref(srcs.data(), R, want->data(), c.n, c.dt, c.op);
      break;
    case Collective::broadcast:
      std::memcpy(want->data(), in[c.root], c.n * es);
      break;
    default: {  // all_gather: [n / inner][R][inner]
      const size_t inner = c.inner ? c.inner : c.n;
      for (int s = 0; s < R; ++s)
        for (size_t i = 0; i < c.n; i += inner)
          std::memcpy(want->data() + ((i / inner) * R * inner + static_cast<size_t>(s) * inner) * es, in[s] + i * es,
                      inner * es);
    }
  }
}

// A correct call never times out, however loaded the machine.
constexpr uint64_t kLongTimeoutNs = 60ull * 1000000000ull;

// A sequence of calls (launches from g.calls on). Each rank runs them back to back on its own thread, as its
// stream would, with a random 0-2 ms pause before each: a fast rank starts call k + 1 (copying into its buffer)
// while a slow one may still be in call k, which is what the double-buffered halves must make safe. Fresh random
// data every call (odd calls with specials).
void run_seq(Group& g, const std::vector<Case>& calls, uint64_t seed) {
  const int R = g.R;
  const int C = static_cast<int>(calls.size());
  const uint64_t k0 = g.calls;
  auto input_seed = [&](int call, int r) { return seed * 1000003 + static_cast<uint64_t>(call) * 101 + r; };
  std::vector<std::vector<Buf>> in(C, std::vector<Buf>(R)), out(C, std::vector<Buf>(R));
  std::vector<std::vector<uint64_t>> in_hash(C, std::vector<uint64_t>(R));
  for (int call = 0; call < C; ++call) {
    const Case& c = calls[call];
    for (int r = 0; r < R; ++r) {
      std::mt19937_64 rng(input_seed(call, r));
      in[call][r].make(in_elems(c, R), c.dt, c.io == 1 ? 1 : (c.io == 2 && r % 2 == 1 ? 1 : 0));
      fill(in[call][r].p, c.dt, in_elems(c, R), call % 2 == 1, rng);
      in_hash[call][r] = hash_bytes(in[call][r].p, in[call][r].bytes);
      if (c.io != 3) out[call][r].make(out_elems(c, R), c.dt, c.io == 1 ? 1 : 0);
    }
  }
  std::vector<uint64_t> k_start(static_cast<size_t>(C) * R), k_end(R);
  g_threads->start(R, [&](int r) {
    uint64_t k = k0;
    for (int call = 0; call < C; ++call) {
      const Case& c = calls[call];
      RankCall x;
      x.a.kind = c.kind;
      x.a.in = in[call][r].p;
      x.a.out = c.io == 3 ? in[call][r].p : out[call][r].p;
      x.a.count = c.n;
      x.a.inner = c.inner;
      x.a.root = c.root;
      x.a.dt = c.dt;
      x.a.op = c.op;
      x.a.algo = c.algo;
      x.k = k_start[static_cast<size_t>(call) * R + r] = k;
      k = rank_launch(g, r, x, kLongTimeoutNs, seed * 31 + static_cast<uint64_t>(r) * 1000003 + call);
    }
    k_end[r] = k;
  });
  g_threads->wait();
  g.calls = k_end[0];
  runs += C;
  const std::string first = case_name(g, calls[0], k0);
  for (int r = 0; r < R; ++r) {
    if (k_end[r] != k_end[0]) {
      fail(first + ": rank " + std::to_string(r) + " counted " + std::to_string(k_end[r] - k0) + " launches, rank 0 " +
           std::to_string(k_end[0] - k0));
      return;
    }
    if (g.error(r) != 0) {
      fail(first + " and the " + std::to_string(C - 1) + " calls after it: rank " + std::to_string(r) + " error word " +
           err_name(g.error(r)));
      return;  // the group is failed from here on, as on a GPU
    }
  }
  for (int call = 0; call < C; ++call) {
    const Case& c = calls[call];
    const size_t es = dtype_size(c.dt);
    const std::string name = case_name(g, c, k_start[static_cast<size_t>(call) * R]);
    std::vector<const uint8_t*> ins(R);
    for (int r = 0; r < R; ++r) ins[r] = in[call][r].p;
    // In place, the inputs are gone by now: regenerate them from their seeds.
    std::vector<std::vector<uint8_t>> regen;
    if (c.io == 3) {
      regen.assign(R, {});
      for (int s = 0; s < R; ++s) {
        std::mt19937_64 rng(input_seed(call, s));
        regen[s].resize(in_elems(c, R) * es);
        fill(regen[s].data(), c.dt, in_elems(c, R), call % 2 == 1, rng);
        ins[s] = regen[s].data();
      }
    }
    std::vector<uint8_t> want;
    int bad = 0;
    for (int r = 0; r < R; ++r) {
      const Buf& o = c.io == 3 ? in[call][r] : out[call][r];
      if (!o.guards_ok() || !in[call][r].guards_ok()) {
        fail(name + ": rank " + std::to_string(r) + " wrote outside its output");
        ++bad;
      }
      if (c.io != 3 && hash_bytes(in[call][r].p, in[call][r].bytes) != in_hash[call][r]) {
        fail(name + ": rank " + std::to_string(r) + " changed its input");
        ++bad;
      }
      expected_out(c, R, r, ins, &want);
      const size_t n = out_elems(c, R);
      size_t wrong = 0, first_bad = 0;
      for (size_t i = 0; i < n; ++i) {
        const uint8_t* a = o.p + i * es;
        const uint8_t* b = want.data() + i * es;
        if (std::memcmp(a, b, es) == 0 || (reduces(c) && is_nan(a, c.dt) && is_nan(b, c.dt))) continue;
        if (wrong++ == 0) first_bad = i;
      }
      if (wrong) {
        const float got = load_f32(o.p, c.dt, static_cast<int64_t>(first_bad));
        const float exp = load_f32(want.data(), c.dt, static_cast<int64_t>(first_bad));
        char m[200];
        std::snprintf(m, sizeof m, ": rank %d: %zu elements differ from the reference, first [%zu] %.9g, expected %.9g",
                      r, wrong, first_bad, got, exp);
        fail(name + m);
        ++bad;
      }
      if (r > 0 && c.kind != Collective::reduce_scatter) {
        const Buf& o0 = c.io == 3 ? in[call][0] : out[call][0];
        if (std::memcmp(o.p, o0.p, n * es) != 0) {
          fail(name + ": rank " + std::to_string(r) + "'s output is not bit-identical to rank 0's");
          ++bad;
        }
      }
    }
    if (bad) return;
  }
}

// Six calls of one case.
constexpr int kCalls = 6;
void run_case(Group& g, const Case& c, uint64_t seed) { run_seq(g, std::vector<Case>(kCalls, c), seed); }

// Message sizes for R ranks and a dtype (elements): both pack paths, the odd sizes, the two-shot slice edges and
// G = 32 with several grid-stride passes.
std::vector<size_t> counts_for(int R, DType dt, ArAlgo algo, bool large) {
  const size_t V = 16 / dtype_size(dt);  // elements per 16-byte pack
  const size_t r = static_cast<size_t>(R);
  std::vector<size_t> v = {1, 7, 8, 33, 1000, 4096, 4099, r - 1, r, r + 1, 3 * r - 1, (r - 1) * V, r * V,
                           (r + 1) * V, (3 * r - 1) * V};
  if (large) {
    // positions per block pass: 32 blocks x 512 threads; one-shot positions = packs, two-shot = packs / R
    const size_t pass = static_cast<size_t>(ar::kMaxBlocks) * ar::kThreads;
    const size_t pos = 2 * pass + 123;                                  // 3 passes for the first blocks
    const size_t packs = algo == ArAlgo::two_shot ? pos * r - 3 : pos;  // two-shot: a last slice 3 packs short
    v.push_back(packs * V);                                             // 16-byte packs
    v.push_back(packs | 1);                                             // odd: one element per pack
  }
  std::vector<size_t> u;
  for (size_t x : v)
    if (x >= 1 && std::find(u.begin(), u.end(), x) == u.end()) u.push_back(x);
  return u;
}

// all_gather / reduce_scatter / broadcast cases for R ranks and a dtype: the odd sizes and both pack paths; for
// all_gather, inner blocks of one pack, several packs, and sizes that are no multiple of a pack (element packs);
// for broadcast, the first and the last rank as root, in place and not; `large`: G = 32 with 2-3 passes.
std::vector<Case> other_cases(int R, DType dt, bool large) {
  const size_t V = 16 / dtype_size(dt);
  std::vector<size_t> ns = {1, 7, 8, 33, 1000, 4096, 4099, V, 3 * V};
  if (large) {
    const size_t packs = 2 * static_cast<size_t>(ar::kMaxBlocks) * ar::kThreads + 123;
    ns.push_back(packs * V);
    ns.push_back(packs | 1);
  }
  std::vector<Case> v;
  for (size_t n : ns) {
    const bool big = n > 100000;
    for (int io = 0; io < 3; ++io) {
      if (io == 2 && big) continue;
      v.push_back(Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot, n, io});
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max})
        v.push_back(Case{Collective::reduce_scatter, dt, op, ArAlgo::one_shot, n, io});
    }
    for (int root : {0, R - 1})
      for (int io : {0, 1, 2, 3}) v.push_back(Case{Collective::broadcast, dt, ReduceOp::sum, ArAlgo::one_shot, n, io, 0, root});
  }
  // all_gather along an inner dimension: (rows x inner) with inner of 1 pack, 3 packs, 5 elements, 7 elements.
  for (size_t inner : {V, 3 * V, size_t(5), size_t(7)})
    for (size_t rows : {size_t(1), size_t(3), size_t(33)})
      for (int io = 0; io < 2; ++io)
        v.push_back(Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot, rows * inner, io, inner});
  if (large)
    for (size_t inner : {5 * V, size_t(7)})
      v.push_back(Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot,
                       (2 * static_cast<size_t>(ar::kMaxBlocks) * ar::kThreads * V / inner + 3) * inner, 0, inner});
  return v;
}

void check_correct(int R, bool quick, uint64_t* seed) {
  size_t cap = 0;
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    for (ArAlgo a : {ArAlgo::one_shot, ArAlgo::two_shot})
      for (size_t n : counts_for(R, dt, a, !quick)) cap = std::max(cap, n * dtype_size(dt));
    for (const Case& c : other_cases(R, dt, !quick))
      cap = std::max(cap, in_elems(c, R) * dtype_size(dt) + static_cast<size_t>(R) * 16);
  }
  Group g(R, (cap + 15) / 16 * 16);
  const int runs0 = runs, fail0 = failures;
  const auto t0 = Clock::now();
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max})
      for (ArAlgo a : {ArAlgo::one_shot, ArAlgo::two_shot})
        for (size_t n : counts_for(R, dt, a, !quick))
          for (int io = 0; io < 4; ++io) {
            if (failures != fail0) return;  // a failed group stays failed; the first failure says why
            // The G = 32 messages (they take most of the time): aligned and misaligned; the other io modes only
            // change how a thread loads its packs, which the small messages cover.
            if (io >= 2 && n > 100000) continue;
            run_case(g, all_reduce_case(dt, op, a, n, io), ++*seed);
          }
  // The other collectives, on the same group (so after all-reduces on the same halves and flags).
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (const Case& c : other_cases(R, dt, !quick)) {
      if (failures != fail0) return;
      run_case(g, c, ++*seed);
    }
  // Sequences that change the collective at every call (a fast rank's next kernel is another kind than the one a
  // slow peer still runs on the other half).
  for (DType dt : {DType::f32, DType::bf16})
    for (size_t n : {size_t(33), size_t(4096), size_t(1000)}) {
      if (failures != fail0) return;
      run_seq(g,
              {all_reduce_case(dt, ReduceOp::sum, ArAlgo::two_shot, n, 0),
               Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot, n, 0},
               Case{Collective::reduce_scatter, dt, ReduceOp::sum, ArAlgo::one_shot, n, 1},
               Case{Collective::broadcast, dt, ReduceOp::sum, ArAlgo::one_shot, n, 3, 0, R - 1},
               all_reduce_case(dt, ReduceOp::max, ArAlgo::one_shot, n, 0),
               Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot, n, 0, n % 11 == 0 ? 11 : 8},
               Case{Collective::broadcast, dt, ReduceOp::sum, ArAlgo::one_shot, n, 0, 0, 0}},
              ++*seed);
    }
  // Messages larger than a 4 KiB half: enqueue_chunks cuts them into launches of their own (the last chunk
  // shorter, down to one element: a one-shot fallback with one-element packs).
  Group small(R, 4096);
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    const size_t chunk = ar::chunk_elems(small.capacity, dt);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max})
      for (ArAlgo a : {ArAlgo::one_shot, ArAlgo::two_shot})
        for (size_t n : {3 * chunk, 2 * chunk + 1, 5 * chunk - 7})
          for (int io = 0; io < 2; ++io) {
            if (failures != fail0) return;
            run_case(small, all_reduce_case(dt, op, a, n, io), ++*seed);
          }
    const size_t V = 16 / dtype_size(dt);
    const size_t rs_chunk = ar::chunk_elems(small.capacity / static_cast<size_t>(R), dt);
    for (int io = 0; io < 2; ++io) {
      for (size_t n : {3 * chunk, 2 * chunk + 1, 5 * chunk - 7}) {
        if (failures != fail0) return;
        run_case(small, Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot, n, io}, ++*seed);
        run_case(small, Case{Collective::broadcast, dt, ReduceOp::sum, ArAlgo::one_shot, n, io, 0, R - 1}, ++*seed);
      }
      // Chunks that start and end inside an inner block.
      for (size_t inner : {3 * V, size_t(7)})
        run_case(small, Case{Collective::all_gather, dt, ReduceOp::sum, ArAlgo::one_shot, (3 * chunk / inner + 2) * inner,
                             io, inner},
                 ++*seed);
      for (size_t n : {3 * rs_chunk, 2 * rs_chunk + 1, 5 * rs_chunk - 7}) {
        if (failures != fail0) return;
        run_case(small, Case{Collective::reduce_scatter, dt, ReduceOp::sum, ArAlgo::one_shot, n, io}, ++*seed);
      }
    }
  }
  std::printf("R=%d: %d runs, %d failures (%.1f s)\n", R, runs - runs0, failures - fail0,
              std::chrono::duration<double>(Clock::now() - t0).count());
  std::fflush(stdout);
}

// ---- failures ----
// Launch number k on every rank with the given per-rank calls; returns each rank's launch time.
std::vector<double> launch_all(Group& g, std::vector<RankCall>& rc, uint64_t timeout_ns, uint64_t seed,
                               const std::function<void()>& while_running = nullptr) {
  std::vector<double> el(g.R, 0.0);
  g_threads->start(g.R, [&](int r) { rank_launch(g, r, rc[r], timeout_ns, seed + r, &el[r]); });
  if (while_running) while_running();
  g_threads->wait();
  return el;
}

// launch_all of launch number g.calls, counted (the group's counter and the runs); returns its seconds.
double timed_launch(Group& g, std::vector<RankCall>& rc, uint64_t timeout_ns, uint64_t seed,
                    const std::function<void()>& while_running = nullptr) {
  const auto t = Clock::now();
  (void)launch_all(g, rc, timeout_ns, seed, while_running);
  ++g.calls;
  ++runs;
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Ranks 0 .. upto - 1 must hold error `code`; returns them, the failed ranks.
std::vector<int> expect_error(const Group& g, int upto, int code, const std::string& name) {
  std::vector<int> failed;
  for (int r = 0; r < upto; ++r) {
    if (g.error(r) != code)
      fail(name + ": rank " + std::to_string(r) + " error word " + err_name(g.error(r)) + ", expected " + err_name(code));
    failed.push_back(r);
  }
  return failed;
}

// The highest epoch any flag slot holds that rank r stored (flags[b][r] in every rank's signal area).
uint64_t max_epoch_from(const Group& g, int r) {
  uint64_t m = 0;
  for (int q = 0; q < g.R; ++q)
    for (int b = 0; b < ar::kMaxBlocks; ++b)
      m = std::max(m, __atomic_load_n(&g.mem[q]->signal[static_cast<size_t>(b) * kArMaxRanks + r],
                                      __ATOMIC_ACQUIRE) >> 24);
  return m;
}

// One call of `kind` (sum) on every rank: random inputs (from rng), guard-filled outputs, and RankCall r numbered
// k with count(r) elements (equal on every rank but in the mismatch scenario), launched when launch(r). Buffers are
// sized for any kind (R x count in and out), so a rank may be switched to another kind afterwards.
struct RankCalls {
  std::vector<Buf> in, out;
  std::vector<RankCall> rc;
  template <class Count, class Launch>
  RankCalls(int R, Collective kind, DType dt, ArAlgo algo, uint64_t k, std::mt19937_64& rng, Count count,
            Launch launch)
      : in(R), out(R), rc(R) {
    for (int r = 0; r < R; ++r) {
      const size_t n = count(r);
      in[r].make(n * R, dt, 0);
      fill(in[r].p, dt, n * R, false, rng);
      out[r].make(n * R, dt, 0);
      RankCall& c = rc[r];
      c.a.kind = kind;
      c.a.in = in[r].p;
      c.a.out = out[r].p;
      c.a.count = n;
      c.a.dt = dt;
      c.a.algo = kind == Collective::all_reduce ? algo : ArAlgo::one_shot;
      c.launch = launch(r);
      c.k = k;
    }
  }
};

// What a failure scenario runs: the all-reduce's two algorithms and the other three collectives.
struct Flavor {
  Collective kind;
  ArAlgo algo;
};
const Flavor kFlavors[] = {{Collective::all_reduce, ArAlgo::one_shot}, {Collective::all_reduce, ArAlgo::two_shot},
                           {Collective::all_gather, ArAlgo::one_shot}, {Collective::reduce_scatter, ArAlgo::one_shot},
                           {Collective::broadcast, ArAlgo::one_shot}};

// (d): launch k on the ranks in `failed` (whose error or abort word is set) and check that each did nothing.
void check_exits_at_once(Group& g, const std::vector<int>& failed, size_t n, DType dt, Flavor f,
                         const std::string& name) {
  const uint64_t k = g.calls;
  std::mt19937_64 rng(k);
  RankCalls c(g.R, f.kind, dt, f.algo, k, rng, [&](int) { return n; },
              [&](int r) { return std::find(failed.begin(), failed.end(), r) != failed.end(); });
  std::vector<RankCall>& rc = c.rc;
  std::vector<Buf>& out = c.out;
  std::vector<int> err_before(g.R);
  for (int r = 0; r < g.R; ++r) err_before[r] = g.error(r);
  // A 20 s timeout: a rank that waited instead of exiting would take that long.
  const std::vector<double> el = launch_all(g, rc, 20ull * 1000000000ull, k * 17);
  ++g.calls;
  ++runs;
  for (int r : failed) {
    const std::string who = name + " then launch k=" + std::to_string(k) + ": rank " + std::to_string(r);
    if (el[r] > 5) fail(who + " took " + std::to_string(el[r]) + " s (did not exit at once)");
    if (max_epoch_from(g, r) >= 1 + 2 * k) fail(who + " stored a flag (did not exit at once)");
    for (size_t i = 0; i < out[r].bytes; ++i)
      if (out[r].p[i] != kGuardByte) {
        fail(who + " wrote its output");
        break;
      }
    if (g.error(r) != err_before[r])
      fail(who + " changed its error word from " + err_name(err_before[r]) + " to " + err_name(g.error(r)));
  }
}

// A group that has run two good calls (so flags and halves have history), for a failure scenario.
std::unique_ptr<Group> warmed_group(int R, size_t n, DType dt, Flavor f, uint64_t seed) {
  // Room for one launch per call whatever the collective (reduce_scatter moves R x n): g->calls counts one per call.
  auto g = std::make_unique<Group>(R, std::max<size_t>(static_cast<size_t>(R) * (n * dtype_size(dt) + 16) + 64, 4096));
  for (int i = 0; i < 2; ++i) {
    std::mt19937_64 rng(seed + i);
    RankCalls c(R, f.kind, dt, f.algo, g->calls, rng, [&](int) { return n; }, [](int) { return true; });
    (void)launch_all(*g, c.rc, kLongTimeoutNs, seed * 13 + i);
    ++g->calls;
  }
  return g;
}

std::string fname(const char* what, int R, size_t n, DType dt, Flavor f) {
  return std::string(what) + "(R=" + std::to_string(R) + ",n=" + std::to_string(n) + "," + dtype_name(dt) + "," +
         collective_name(f.kind) + (f.kind == Collective::all_reduce ? std::string(",") + ar_algo_name(f.algo) : "") + ")";
}

void check_failures(bool quick, uint64_t* seed) {
  const int runs0 = runs, fail0 = failures;
  const auto t0 = Clock::now();
  const std::vector<int> Rs = quick ? std::vector<int>{2, 4} : std::vector<int>{2, 3, 4, 8};
  // Small (one block) and large (32 blocks: every block must time out or exit on its own).
  const std::vector<size_t> ns = quick ? std::vector<size_t>{33, 4096} : std::vector<size_t>{33, 4096, 200000, 200001};
  for (int R : Rs)
    for (size_t n : ns)
      for (Flavor f : kFlavors) {
        const DType dt = n % 2 ? DType::bf16 : DType::f32;
        // (a) rank R - 1 never launches: the others time out (50 ms) on their own.
        {
          const std::string name = fname("absent-rank", R, n, dt, f);
          auto g = warmed_group(R, n, dt, f, ++*seed);
          for (int r = 0; r < R; ++r)
            if (g->error(r) != 0) fail(name + ": the warm-up calls failed on rank " + std::to_string(r));
          std::mt19937_64 rng(*seed);
          RankCalls c(R, f.kind, dt, f.algo, g->calls, rng, [&](int) { return n; }, [&](int r) { return r != R - 1; });
          std::vector<RankCall>& rc = c.rc;
          const double s = timed_launch(*g, rc, 50ull * 1000000ull, *seed);
          const std::vector<int> failed = expect_error(*g, R - 1, ar::kErrTimeout, name);
          if (g->error(R - 1) != 0) fail(name + ": the absent rank's error word is set");
          if (s > 30) fail(name + ": took " + std::to_string(s) + " s");
          // (d) later calls on the failed ranks exit at once.
          check_exits_at_once(*g, failed, n, dt, f, name);
        }
        // (b) the host aborts while ranks spin (rank R - 1 absent, timeout 20 s): error abort, long before 20 s.
        {
          const std::string name = fname("abort", R, n, dt, f);
          auto g = warmed_group(R, n, dt, f, ++*seed);
          std::mt19937_64 rng(*seed);
          RankCalls c(R, f.kind, dt, f.algo, g->calls, rng, [&](int) { return n; }, [&](int r) { return r != R - 1; });
          std::vector<RankCall>& rc = c.rc;
          const double s = timed_launch(*g, rc, 20ull * 1000000000ull, *seed, [&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
            for (int r = 0; r < R - 1; ++r) g->set_abort(r);
          });
          std::vector<int> failed = expect_error(*g, R - 1, ar::kErrAbort, name);
          if (s > 10) fail(name + ": took " + std::to_string(s) + " s after an abort");
          // (d) every later call exits at once: the aborted ranks, and the absent rank once the host aborts it too
          // (an abort before the launch: the kernel does nothing and leaves the error word alone).
          g->set_abort(R - 1);
          failed.push_back(R - 1);
          check_exits_at_once(*g, failed, n, dt, f, name);
        }
        // (c) tags differ at one epoch: rank 0 calls max / another count / the other algorithm (all_reduce) or
        // another collective (broadcast, or all_gather when the others broadcast).
        for (int kind = 0; kind < 3; ++kind) {
          const bool is_ar = f.kind == Collective::all_reduce;
          static const char* kinds[] = {"mismatch-op", "mismatch-count", "mismatch-algo", "mismatch-kind"};
          const std::string name = fname(kinds[kind == 2 && !is_ar ? 3 : kind], R, n, dt, f);
          auto g = warmed_group(R, n + 1, dt, f, ++*seed);
          std::mt19937_64 rng(*seed);
          RankCalls c(R, f.kind, dt, f.algo, g->calls, rng, [&](int r) { return kind == 1 && r == 0 ? n + 1 : n; },
                      [](int) { return true; });
          std::vector<RankCall>& rc = c.rc;
          if (kind == 0) rc[0].a.op = ReduceOp::max;
          if (kind == 2 && is_ar) rc[0].a.algo = f.algo == ArAlgo::one_shot ? ArAlgo::two_shot : ArAlgo::one_shot;
          if (kind == 2 && !is_ar) rc[0].a.kind = f.kind == Collective::broadcast ? Collective::all_gather : Collective::broadcast;
          const double s = timed_launch(*g, rc, 50ull * 1000000ull, *seed);
          int mismatches = 0;
          std::vector<int> failed;
          for (int r = 0; r < R; ++r) {
            const int e = g->error(r);
            mismatches += e == ar::kErrMismatch;
            if (e != 0) failed.push_back(r);
          }
          // Tags that collide (the other algorithm when both run one-shot, below R packs) are not a mismatch.
          const ar::ArCall c0 = ar::plan_call(0, rc[0].a, 0, rc[0].a.count, 0, R, g->data, g->signal, g->capacity, 0,
                                              g->mem[0]->words);
          const ar::ArCall c1 = ar::plan_call(0, rc[1].a, 0, rc[1].a.count, 1, R, g->data, g->signal, g->capacity, 0,
                                              g->mem[1]->words);
          if (c0.p.tag == c1.p.tag) {
            if (!failed.empty()) fail(name + ": equal tags (" + ar_algo_name(c0.algo) + " on both), yet a rank failed");
          } else {
            if (mismatches == 0) fail(name + ": no rank reported a mismatch");
            for (int r = 0; r < R; ++r)
              if (g->error(r) == 0) fail(name + ": rank " + std::to_string(r) + " finished a mismatched call");
          }
          if (s > 30) fail(name + ": took " + std::to_string(s) + " s");
          if (!failed.empty()) check_exits_at_once(*g, failed, n, dt, f, name);
        }
      }
  std::printf("failure paths: %d runs, %d failures (%.1f s)\n", runs - runs0, failures - fail0,
              std::chrono::duration<double>(Clock::now() - t0).count());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool quick = argc > 1 && std::string(argv[1]) == "quick";
  emu::spin_allowance_s = 180;  // longer than every timeout above: a spin that outlives them is a hang
  RankThreads threads;
  g_threads = &threads;
  uint64_t seed = 1;
  for (int R : quick ? std::vector<int>{2, 4} : std::vector<int>{2, 3, 4, 8}) check_correct(R, quick, &seed);
  check_failures(quick, &seed);
  std::printf("ar_check: %d runs, %d failures, %lld launches: %s\n", runs, failures, emu::launches.load(),
              failures ? "FAILED" : "OK");
  return failures ? 1 : 0;
}
