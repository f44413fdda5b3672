// The CPU backend: fast kernels (<op>_cpu), threaded on ThreadPool::global(), with AVX2/FMA/F16C variants in
// simd/*_avx2.cc chosen at run time by cpu_simd_level(). Everything outside simd/ builds for baseline x86-64 or
// aarch64 (never -march=native).
#pragma once
#include "../common/registry.h"

namespace lk {

enum class SimdLevel : int { scalar = 0, avx2 = 1 };

// The SIMD level the kernels use: the best the CPU supports (AVX2 + FMA + F16C, or scalar), unless lowered with
// set_cpu_simd_level (tests use it to run the scalar paths on an AVX2 machine) or LLMK_SIMD=scalar in the
// environment.
SimdLevel cpu_simd_level();
SimdLevel cpu_simd_detected();
void set_cpu_simd_level(SimdLevel level);  // clamped to what the CPU supports
const char* simd_level_name(SimdLevel level);

#define LK_OP(name, nin, nout, math) Status name##_cpu(const OpArgs& a);
#include "../common/ops.def"
#undef LK_OP

}  // namespace lk
