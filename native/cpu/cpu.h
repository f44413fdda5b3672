// The CPU backend: fast kernels (<op>_cpu), threaded on ThreadPool::global(), with AVX2/FMA/F16C variants in
// simd/*_avx2.cc and AVX-512 (VNNI on 256-bit vectors) variants in simd/*_avx512.cc, chosen at run time by
// cpu_simd_level(). Everything outside simd/ builds for baseline x86-64 or aarch64 (never -march=native).
#pragma once
#include "../common/registry.h"

namespace lk {

// Ordered: each level includes the ones below it. avx512 = AVX2/FMA/F16C + AVX512F/BW/VL/VNNI (kernels use it for
// vpdpbusd on 256-bit vectors; only matmul_q has such a variant, every other op runs its AVX2 code there).
enum class SimdLevel : int { scalar = 0, avx2 = 1, avx512 = 2 };

// The SIMD level the kernels use: the best the CPU supports, unless lowered with set_cpu_simd_level (tests use it
// to run the AVX2 and scalar paths on an AVX-512 machine) or LLMK_SIMD=avx2|scalar in the environment.
SimdLevel cpu_simd_level();
SimdLevel cpu_simd_detected();
void set_cpu_simd_level(SimdLevel level);  // clamped to what the CPU supports
const char* simd_level_name(SimdLevel level);

#define LK_OP(name, nin, nout, math) Status name##_cpu(const OpArgs& a);
#include "../common/ops.def"
#undef LK_OP

}  // namespace lk
