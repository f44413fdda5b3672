// lk_native_tests: unit tests of the native core that lk_check's op-by-op comparison does not cover: the scalar
// dtype conversions (the spec every vectorised conversion is held to), the CPU cast kernel bit for bit at every SIMD
// level, validate_op's messages, the thread pool, and the completeness of the kernel tables and case lists.
// No framework and no assert(): each test returns a failure message or "", the run prints one line per test and
// `N passed, N failed`, and exits 1 if any failed.   Run: build/tools/lk_native_tests [filter-substring]
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../common/cases.h"
#include "../common/registry.h"
#include "../common/thread_pool.h"
#include "../cpu/cpu.h"
#include "../cpu/ref/ref.h"

namespace lk {
namespace {

std::string hex(uint32_t v, int digits) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%0*x", digits, v);
  return b;
}

// "<what> = <got>, want <want>", the message of every conversion mismatch.
std::string differs(const std::string& what, const std::string& got, const std::string& want) {
  return what + " = " + got + ", want " + want;
}

// ---- f16 ----

// The value of a half computed independently of dtype.h: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals m * 2^-24.
double f16_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

std::string test_f16_all_halves() {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t x = static_cast<uint16_t>(h);
    const float f = f16_to_f32(x);
    const double want = f16_value(x);
    const bool nan = (x & 0x7fff) > 0x7c00;
    if (nan) {
      // NaN: sign and payload move to the top of the f32 mantissa unchanged (no quieting on widening).
      const uint32_t bits = f32_bits(f);
      const uint32_t expect =
          (static_cast<uint32_t>(x & 0x8000) << 16) | 0x7f800000u | (static_cast<uint32_t>(x & 0x3ff) << 13);
      if (bits != expect) return differs("f16_to_f32(" + hex(x, 4) + ")", hex(bits, 8), hex(expect, 8));
      // Narrowing sets the quiet bit and keeps the rest.
      const uint16_t back = f32_to_f16(f);
      if (back != (x | 0x0200))
        return differs("f32_to_f16(f16_to_f32(" + hex(x, 4) + "))", hex(back, 4), hex(x | 0x0200, 4));
      continue;
    }
    if (static_cast<double>(f) != want || std::signbit(f) != static_cast<bool>(x & 0x8000))
      return "f16_to_f32(" + hex(x, 4) + ") = " + std::to_string(f) + ", want " + std::to_string(want);
    if (f32_to_f16(f) != x) return "f16 round trip of " + hex(x, 4) + " gave " + hex(f32_to_f16(f), 4);
  }
  return "";
}

// Round to nearest even, checked at every boundary: for each pair of adjacent finite halves, the f32 exactly
// between them rounds to the one with the even mantissa, and the f32s just below and above it round down and up.
std::string test_f16_rne_midpoints() {
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // positive finite halves; the sign is symmetric, tested below
    const double lo = f16_value(static_cast<uint16_t>(h));
    const double hi = h + 1 == 0x7c00 ? 65536.0 : f16_value(static_cast<uint16_t>(h + 1));  // 65536: the next step, Inf
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in f32: halves have 11 significant bits
    if (static_cast<double>(mid) != (lo + hi) / 2) return "midpoint not exact at " + hex(h, 4);
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    const uint16_t got = f32_to_f16(mid);
    if (got != even) return differs("f32_to_f16(" + hex(f32_bits(mid), 8) + ", a tie)", hex(got, 4), hex(even, 4));
    const float below = std::nextafter(mid, 0.0f), above = std::nextafter(mid, INFINITY);
    if (f32_to_f16(below) != h)
      return differs("f32_to_f16(" + hex(f32_bits(below), 8) + ", just below a tie)", hex(f32_to_f16(below), 4),
                     hex(h, 4));
    if (f32_to_f16(above) != h + 1)
      return differs("f32_to_f16(" + hex(f32_bits(above), 8) + ", just above a tie)", hex(f32_to_f16(above), 4),
                     hex(h + 1, 4));
    if (f32_to_f16(-mid) != (even | 0x8000)) return "negative tie at " + hex(h, 4);
  }
  return "";
}

std::string test_f16_known_values() {
  struct K { uint32_t f; uint16_t h; const char* what; };
  const K ks[] = {
      {0x3f800000u, 0x3c00, "1"},
      {0xbf800000u, 0xbc00, "-1"},
      {0x00000000u, 0x0000, "0"},
      {0x80000000u, 0x8000, "-0"},
      {0x477fe000u, 0x7bff, "65504, the largest half"},
      {0x477fefffu, 0x7bff, "65519.996 rounds down to 65504"},
      {0x477ff000u, 0x7c00, "65520 ties to even: Inf"},
      {0x7149f2cau, 0x7c00, "1e30 overflows to Inf"},
      {0xf149f2cau, 0xfc00, "-1e30 overflows to -Inf"},
      {0x7f7fffffu, 0x7c00, "FLT_MAX to Inf"},
      {0x7f800000u, 0x7c00, "Inf"},
      {0xff800000u, 0xfc00, "-Inf"},
      {0x33800000u, 0x0001, "2^-24, the smallest subnormal"},
      {0x33000000u, 0x0000, "2^-25 ties to even: 0"},
      {0x33000001u, 0x0001, "just above 2^-25 rounds up"},
      {0x33c00000u, 0x0002, "1.5 * 2^-24 ties to even: 2 * 2^-24"},
      {0x34200000u, 0x0002, "2.5 * 2^-24 ties to even: 2 * 2^-24"},
      {0x387fc000u, 0x03ff, "the largest subnormal"},
      {0x387fe000u, 0x0400, "between the largest subnormal and 2^-14: ties up to the even 0x400"},
      {0x38800000u, 0x0400, "2^-14, the smallest normal"},
      {0x3f801000u, 0x3c00, "1 + 2^-11 ties to even: 1"},
      {0x3f803000u, 0x3c02, "1 + 3 * 2^-11 ties to even: 1 + 2^-9"},
      {0x00000001u, 0x0000, "an f32 subnormal underflows to 0"},
      {0x80000001u, 0x8000, "a negative f32 subnormal underflows to -0"},
      {0x7fc00000u, 0x7e00, "quiet NaN"},
      {0xffc00000u, 0xfe00, "negative quiet NaN"},
      {0x7f800001u, 0x7e00, "signalling NaN, payload in the low bits: quiet bit set, low bits dropped"},
      {0x7fa00000u, 0x7f00, "signalling NaN with a high payload: payload kept, quiet bit set"},
      {0xff802000u, 0xfe01, "negative signalling NaN"},
  };
  for (const K& k : ks) {
    const uint16_t got = f32_to_f16(f32_from_bits(k.f));
    if (got != k.h) return differs("f32_to_f16(" + hex(k.f, 8) + ": " + k.what + ")", hex(got, 4), hex(k.h, 4));
  }
  return "";
}

// ---- bf16 ----

std::string test_bf16_all_halves() {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t x = static_cast<uint16_t>(h);
    const uint32_t bits = f32_bits(bf16_to_f32(x));
    if (bits != h << 16) return "bf16_to_f32(" + hex(x, 4) + ") = " + hex(bits, 8);
    const bool nan = (x & 0x7fff) > 0x7f80;
    const uint16_t back = f32_to_bf16(bf16_to_f32(x));
    const uint16_t want = nan ? static_cast<uint16_t>(x | 0x40) : x;
    if (back != want) return "bf16 round trip of " + hex(x, 4) + " gave " + hex(back, 4) + ", want " + hex(want, 4);
  }
  return "";
}

std::string test_bf16_rne_midpoints() {
  // Adjacent bf16 values h, h+1 (as positive bit patterns) have f32 patterns h<<16 and (h+1)<<16; the tie is
  // h<<16 | 0x8000. This also walks the subnormals and the step from the largest finite value to Inf.
  for (uint32_t h = 0; h < 0x7f80; ++h) {
    const uint32_t tie = (h << 16) | 0x8000u;
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    if (f32_to_bf16(f32_from_bits(tie)) != even) return "bf16 tie at " + hex(tie, 8);
    if (f32_to_bf16(f32_from_bits(tie - 1)) != h) return "bf16 just below a tie at " + hex(tie - 1, 8);
    if (f32_to_bf16(f32_from_bits(tie + 1)) != h + 1) return "bf16 just above a tie at " + hex(tie + 1, 8);
    if (f32_to_bf16(f32_from_bits(tie | 0x80000000u)) != (even | 0x8000)) return "negative bf16 tie at " + hex(tie, 8);
  }
  struct K { uint32_t f; uint16_t b; const char* what; };
  const K ks[] = {
      {0x3f800000u, 0x3f80, "1"},
      {0x3f808000u, 0x3f80, "1 + 2^-8 ties to even: 1"},
      {0x3f818000u, 0x3f82, "1 + 3 * 2^-8 ties to even"},
      {0x7f7fffffu, 0x7f80, "FLT_MAX rounds to Inf"},
      {0x7f7f7fffu, 0x7f7f, "just below the last tie stays finite"},
      {0x00018000u, 0x0002, "subnormal tie to even"},
      {0x7f800000u, 0x7f80, "Inf"},
      {0x7fc00000u, 0x7fc0, "quiet NaN"},
      {0x7f800001u, 0x7fc0, "signalling NaN, low payload: quiet bit set (not rounded into Inf)"},
      {0x7fffffffu, 0x7fff, "NaN with all mantissa bits (not rounded into the sign)"},
      {0xff810000u, 0xffc1, "negative signalling NaN: payload kept, quiet bit set"},
  };
  for (const K& k : ks) {
    const uint16_t got = f32_to_bf16(f32_from_bits(k.f));
    if (got != k.b) return differs("f32_to_bf16(" + hex(k.f, 8) + ": " + k.what + ")", hex(got, 4), hex(k.b, 4));
  }
  return "";
}

// ---- the CPU cast kernel, bit for bit, at every SIMD level ----

TensorView view1d(void* data, DType t, int64_t n) {
  TensorView v;
  v.data = data;
  v.dtype = t;
  v.ndim = 1;
  v.shape[0] = n;
  set_contiguous_strides(v);
  return v;
}

Status run_cast(Backend b, const void* x, DType xt, void* y, DType yt, int64_t n) {
  TensorView in = view1d(const_cast<void*>(x), xt, n), out = view1d(y, yt, n);
  OpArgs a;
  a.op = OpId::cast;
  a.in = &in;
  a.n_in = 1;
  a.out = &out;
  a.n_out = 1;
  return kernel_table(b)[static_cast<int>(OpId::cast)].run(a);
}

std::vector<SimdLevel> simd_levels() {
  std::vector<SimdLevel> l = {SimdLevel::scalar};
  if (cpu_simd_detected() >= SimdLevel::avx2) l.push_back(SimdLevel::avx2);
  if (cpu_simd_detected() >= SimdLevel::avx512) l.push_back(SimdLevel::avx512);
  return l;
}

// Every f16 and bf16 bit pattern to f32 (exact, NaN payloads and signalling bits kept), and f32 bit patterns to f16
// and bf16: a stride through all 2^32 (every exponent, both signs, NaNs included) plus every f16 and bf16 tie and
// its neighbours. Neither count is a multiple of 8, so the SIMD kernels' tails run too. (Exhaustive 2^32 sweeps of
// the AVX2 conversions and of the scalar branch-free ones in cpu/elementwise.h against dtype.h were run once when
// they were written, ~10 s each: no difference.)
std::string test_cast_kernel_bit_exact() {
  std::vector<uint16_t> halves(65536 + 3);
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i * 40503u);  // a permutation mod 2^16
  std::vector<uint32_t> f32s;
  for (uint64_t b = 0; b < (1ull << 32); b += 4093) f32s.push_back(static_cast<uint32_t>(b));
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float mid = static_cast<float>((f16_value(static_cast<uint16_t>(h)) +
                                          (h + 1 == 0x7c00 ? 65536.0 : f16_value(static_cast<uint16_t>(h + 1)))) / 2);
    for (uint32_t d : {f32_bits(mid) - 1, f32_bits(mid), f32_bits(mid) + 1}) {
      f32s.push_back(d);
      f32s.push_back(d | 0x80000000u);
    }
  }
  for (uint32_t h = 0; h < 0x8000; ++h) f32s.push_back((h << 16) | 0x8000u);
  f32s.push_back(0x7f800001u);
  while (f32s.size() % 8 != 5) f32s.push_back(0xffa5a5a5u);  // a negative signalling NaN, into the tail
  const SimdLevel saved = cpu_simd_level();
  std::string err;
  for (SimdLevel level : simd_levels()) {
    set_cpu_simd_level(level);
    const std::string at = std::string(" at simd level ") + simd_level_name(level);
    for (DType from : {DType::f16, DType::bf16}) {
      std::vector<uint32_t> got(halves.size()), want(halves.size());
      const int64_t n = static_cast<int64_t>(halves.size());
      Status s1 = run_cast(Backend::cpu, halves.data(), from, got.data(), DType::f32, n);
      Status s2 = run_cast(Backend::ref, halves.data(), from, want.data(), DType::f32, n);
      if (!s1.ok() || !s2.ok()) { err = "cast failed: " + s1.message() + s2.message(); break; }
      for (size_t i = 0; i < got.size() && err.empty(); ++i)
        if (got[i] != want[i])
          err = differs(std::string("cast ") + dtype_name(from) + "->f32 of " + hex(halves[i], 4), hex(got[i], 8),
                        hex(want[i], 8) + at);
    }
    for (DType to : {DType::f16, DType::bf16}) {
      std::vector<uint16_t> got(f32s.size()), want(f32s.size());
      Status s1 = run_cast(Backend::cpu, f32s.data(), DType::f32, got.data(), to, static_cast<int64_t>(f32s.size()));
      Status s2 = run_cast(Backend::ref, f32s.data(), DType::f32, want.data(), to, static_cast<int64_t>(f32s.size()));
      if (!s1.ok() || !s2.ok()) { err = "cast failed: " + s1.message() + s2.message(); break; }
      for (size_t i = 0; i < got.size() && err.empty(); ++i)
        if (got[i] != want[i])
          err = differs(std::string("cast f32->") + dtype_name(to) + " of " + hex(f32s[i], 8), hex(got[i], 4),
                        hex(want[i], 4) + at);
    }
    if (!err.empty()) break;
  }
  set_cpu_simd_level(saved);
  return err;
}

// ---- validate_op ----

struct Call {
  std::vector<TensorView> in, out;
  OpArgs args;
  Call(OpId op, std::vector<TensorView> i, std::vector<TensorView> o, double f0 = 0)
      : in(std::move(i)), out(std::move(o)) {
    args.op = op;
    args.in = in.data();
    args.n_in = static_cast<int32_t>(in.size());
    args.out = out.data();
    args.n_out = static_cast<int32_t>(out.size());
    args.params.f[0] = f0;
  }
};

TensorView tv(DType t, std::vector<int64_t> shape) {
  static char dummy[1];  // validate_op only checks that data is there; it never reads it
  TensorView v;
  v.data = dummy;
  v.dtype = t;
  v.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) v.shape[i] = shape[i];
  set_contiguous_strides(v);
  return v;
}

std::string test_validate_messages() {
  struct E { Call call; Code code; const char* message; };
  const DType f32 = DType::f32, f16 = DType::f16;
  std::vector<E> es;
  es.push_back({Call(OpId::add, {tv(f32, {3, 4}), tv(f32, {5})}, {tv(f32, {3, 4})}), Code::range,
                "add: expected b of a's shape [3,4] or of its last dimension [4] for b.shape, got [5]"});
  es.push_back({Call(OpId::mul, {tv(f32, {3, 4}), tv(f16, {3, 4})}, {tv(f32, {3, 4})}), Code::type,
                "mul: expected dtype f32 for b.dtype, got f16"});
  es.push_back({Call(OpId::add, {tv(DType::i32, {3}), tv(DType::i32, {3})}, {tv(DType::i32, {3})}), Code::type,
                "add: expected a float dtype (f32, f16, bf16) for a.dtype, got i32"});
  es.push_back({Call(OpId::add, {tv(f32, {3, 4}), tv(f32, {4})}, {tv(f32, {4, 3})}), Code::range,
                "add: expected shape [3,4] for y.shape, got [4,3]"});
  es.push_back({Call(OpId::matmul, {tv(f32, {7, 4096}), tv(f32, {64, 4000})}, {tv(f32, {7, 64})}), Code::range,
                "matmul: expected w.shape[1] to equal x's last dimension (K=4096) for w.shape[1], got 4000"});
  es.push_back({Call(OpId::matmul, {tv(f32, {7, 16}), tv(f32, {64, 16})}, {tv(f32, {7, 63})}), Code::range,
                "matmul: expected y of shape [..., N] with N=64 for y.shape, got [7,63]"});
  es.push_back({Call(OpId::cast, {tv(f32, {8})}, {tv(DType::i8, {8})}), Code::type,
                "cast: expected a float dtype (f32, f16, bf16) for y.dtype, got i8"});
  es.push_back({Call(OpId::copy, {tv(f32, {8})}, {tv(f32, {9})}), Code::range,
                "copy: expected 8 elements for y, got 9"});
  es.push_back({Call(OpId::fill, {}, {tv(DType::i8, {8})}, 300), Code::range,
                "fill: expected an integer in [-128, 127] for value, got 300.000000"});
  es.push_back({Call(OpId::fill, {}, {tv(DType::u8, {8})}, NAN), Code::range,
                "fill: expected a number for value, got NaN for an integer dtype"});
  es.push_back({Call(OpId::scale, {tv(f32, {8})}, {tv(f32, {8})}, INFINITY), Code::range,
                "scale: expected a finite number for alpha, got inf"});
  es.push_back({Call(OpId::add, {tv(f32, {8})}, {tv(f32, {8})}), Code::internal,
                "add: expected 2 inputs and 1 outputs, got 1 and 1"});
  for (const E& e : es) {
    const Status s = validate_op(e.call.args);
    if (s.code() != e.code || s.message() != e.message)
      return differs("validate_op", std::string(code_name(s.code())) + " \"" + s.message() + "\"",
                     std::string(code_name(e.code)) + " \"" + e.message + "\"");
  }
  // A valid call passes, row broadcast included.
  Call ok(OpId::add, {tv(f32, {3, 4}), tv(f32, {4})}, {tv(f32, {3, 4})});
  const Status s = validate_op(ok.args);
  if (!s.ok()) return "validate_op rejected a row-broadcast add: " + s.message();
  return "";
}

// ---- thread pool ----

std::string test_pool_covers_each_index_once() {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 1000}) {
      for (int max_chunks : {0, 1, 2, 5}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (auto& h : hits) h = 0;
        std::atomic<int> bad_chunk{0};
        pool.parallel_for(n, [&](int64_t b, int64_t e, int chunk) {
          if (b >= e || chunk < 0 || chunk >= threads) bad_chunk = 1;
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        }, max_chunks);
        if (bad_chunk)
          return "an empty or misnumbered chunk (threads=" + std::to_string(threads) + ", n=" + std::to_string(n) + ")";
        for (int64_t i = 0; i < n; ++i) {
          const int h = hits[static_cast<size_t>(i)];
          if (h != 1)
            return "index " + std::to_string(i) + " of n=" + std::to_string(n) + " ran " + std::to_string(h) +
                   " times (threads=" + std::to_string(threads) + ", max_chunks=" + std::to_string(max_chunks) + ")";
        }
      }
    }
  }
  return "";
}

std::string test_pool_nested_runs_serially() {
  ThreadPool pool(4);
  std::atomic<int> outer_chunks{0}, bad{0};
  pool.parallel_for(4, [&](int64_t, int64_t, int) {
    ++outer_chunks;
    const std::thread::id me = std::this_thread::get_id();
    int calls = 0;
    pool.parallel_for(100, [&](int64_t b, int64_t e, int chunk) {
      ++calls;
      if (b != 0 || e != 100 || chunk != 0 || std::this_thread::get_id() != me) bad = 1;
    });
    if (calls != 1) bad = 1;
  });
  if (outer_chunks != 4) return "outer parallel_for ran " + std::to_string(outer_chunks.load()) + " chunks, want 4";
  if (bad) return "a nested parallel_for did not run as one serial call on the calling thread";
  return "";
}

std::string test_pool_rethrows() {
  ThreadPool pool(3);
  for (int thrower : {0, 2}) {  // chunk 0 runs on the caller, chunk 2 on a worker
    bool caught = false;
    try {
      pool.parallel_for(3, [&](int64_t, int64_t, int chunk) {
        if (chunk == thrower) throw std::runtime_error("chunk " + std::to_string(chunk));
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "chunk " + std::to_string(thrower);
    }
    if (!caught) return "the exception of chunk " + std::to_string(thrower) + " was not rethrown on the caller";
    // The pool still works afterwards.
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    if (sum != 499500) return "the pool is broken after an exception";
  }
  return "";
}

// resize() after the pool has run a job: the new workers must not mistake the old generation count for new work.
std::string test_pool_resize() {
  ThreadPool pool(2);
  std::atomic<int64_t> warm{0};
  pool.parallel_for(10, [&](int64_t b, int64_t e, int) { warm += e - b; });
  for (int threads : {5, 1, 3}) {
    pool.resize(threads);
    if (pool.threads() != threads)
      return "resize(" + std::to_string(threads) + ") left " + std::to_string(pool.threads()) + " threads";
    std::atomic<int64_t> n{0};
    pool.parallel_for(777, [&](int64_t b, int64_t e, int) { n += e - b; });
    if (n != 777)
      return "after resize(" + std::to_string(threads) + ") parallel_for covered " + std::to_string(n.load());
  }
  return "";
}

// ---- registry ----

std::string test_tables_complete() {
  for (int b = 0; b < kNumBackends; ++b) {
    const Backend be = static_cast<Backend>(b);
    const Kernel* table = kernel_table(be);
    if (!table) {
      if (be == Backend::cuda) continue;  // a build without CUDA
      return std::string("backend ") + backend_name(be) + " has no table";
    }
    for (int op = 0; op < kNumOps; ++op)
      if (!table[op].run)
        return std::string(backend_name(be)) + " has no kernel for " + op_info(static_cast<OpId>(op)).name;
  }
  return "";
}

std::string test_ops_named_and_cases_valid() {
  static char dummy[1];
  for (int i = 0; i < kNumOps; ++i) {
    const OpId op = static_cast<OpId>(i);
    const std::string name = op_info(op).name;
    if (op_from_name(name.c_str()) != op) return "op_from_name(\"" + name + "\") does not round-trip";
    const std::vector<OpCase> cases = op_cases(op);
    if (cases.empty()) return name + " has no cases";
    for (const OpCase& c : cases) {
      if (c.name.rfind(name + "(", 0) != 0) return "case \"" + c.name + "\" does not start with \"" + name + "(\"";
      std::vector<TensorView> in, out;
      for (const TensorSpec& s : c.in) { TensorView v = tv(s.dtype, s.shape); v.data = dummy; in.push_back(v); }
      for (const TensorSpec& s : c.out) { TensorView v = tv(s.dtype, s.shape); v.data = dummy; out.push_back(v); }
      Call call(op, in, out);
      call.args.params = c.params;
      const Status st = validate_op(call.args);
      if (!st.ok()) return "case " + c.name + " fails validate_op: " + st.message();
    }
  }
  if (op_from_name("no_such_op") != OpId::count) return "op_from_name accepted an unknown name";
  return "";
}

struct Test {
  const char* name;
  std::function<std::string()> fn;
};

}  // namespace
}  // namespace lk

int main(int argc, char** argv) {
  using namespace lk;
  const Test tests[] = {
      {"f16: all 65536 halves widen exactly and round-trip", test_f16_all_halves},
      {"f16: round to nearest even at every tie", test_f16_rne_midpoints},
      {"f16: known values (overflow, subnormals, NaN)", test_f16_known_values},
      {"bf16: all 65536 patterns widen exactly and round-trip", test_bf16_all_halves},
      {"bf16: round to nearest even at every tie, known values", test_bf16_rne_midpoints},
      {"cast_cpu: bit-exact with cast_ref at every SIMD level", test_cast_kernel_bit_exact},
      {"validate_op: messages and codes", test_validate_messages},
      {"thread pool: every index exactly once", test_pool_covers_each_index_once},
      {"thread pool: nested calls run serially", test_pool_nested_runs_serially},
      {"thread pool: exceptions rethrown on the caller", test_pool_rethrows},
      {"registry: every backend has every op", test_tables_complete},
      {"registry: op names round-trip, every case validates", test_ops_named_and_cases_valid},
      {"thread pool: resize after use", test_pool_resize},  // last: a pool bug here crashes rather than fails
  };
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const Test& t : tests) {
    if (filter && !std::strstr(t.name, filter)) continue;
    std::string err;
    try {
      err = t.fn();
    } catch (const std::exception& e) {
      err = std::string("exception: ") + e.what();
    } catch (...) {
      err = "unknown exception";
    }
    if (err.empty()) {
      ++passed;
      std::printf("ok    %s\n", t.name);
    } else {
      ++failed;
      std::printf("FAIL  %s: %s\n", t.name, err.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
