// Paged attention's per-task kernel built with AVX-512VL as well: the same source as the AVX2 file
// (simd/paged_attention_kernel.inc), which the compiler can give 32 vector registers and EVEX forms (embedded
// broadcasts) here.
#include "paged_attention.h"

// GCC 12's own avx512fintrin.h self-initializes a temporary in _mm512_extract*x4 (`__Y = __Y`), which
// -Wmaybe-uninitialized / -Wuninitialized report at its uses (the _mm512 reductions among them): a header false
// positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define LK_PA_ENTRY paged_attention_avx512_task
#define LK_PA_ZMM 1
#define LK_PA_MAX_RR 8  // 32 vector registers: 8 rows x 2 accumulators + operands (all G = 8 heads of a GQA group at once)
#include "paged_attention_kernel.inc"
