#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu.h"

namespace lk {

SimdLevel cpu_simd_detected() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  static const SimdLevel detected = [] {
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    // __builtin_cpu_supports also checks that the OS saves the AVX-512 state (XCR0).
    const bool vnni = ok && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#if defined(LLMK_HAVE_AVX512_TU)
    if (vnni) return SimdLevel::avx512;
#else
    (void)vnni;
#endif
    return ok ? SimdLevel::avx2 : SimdLevel::scalar;
  }();
  return detected;
#else
  return SimdLevel::scalar;
#endif
}

static std::atomic<int> g_level{-1};

SimdLevel cpu_simd_level() {
  int l = g_level.load(std::memory_order_relaxed);
  if (l < 0) {
    SimdLevel d = cpu_simd_detected();
    const char* env = std::getenv("LLMK_SIMD");
    if (env && std::strcmp(env, "scalar") == 0) d = SimdLevel::scalar;
    if (env && std::strcmp(env, "avx2") == 0 && d > SimdLevel::avx2) d = SimdLevel::avx2;
    l = static_cast<int>(d);
    g_level.store(l, std::memory_order_relaxed);
  }
  return static_cast<SimdLevel>(l);
}

void set_cpu_simd_level(SimdLevel level) {
  const SimdLevel d = cpu_simd_detected();
  g_level.store(static_cast<int>(level) > static_cast<int>(d) ? static_cast<int>(d) : static_cast<int>(level));
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace lk
