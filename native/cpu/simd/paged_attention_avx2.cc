// Paged attention's per-task kernel for AVX2/FMA/F16C: the body is simd/paged_attention_kernel.inc.
#include "paged_attention.h"

#define LK_PA_ENTRY paged_attention_avx2_task
#define LK_PA_MAX_RR 4  // 16 vector registers: 4 rows x 2 accumulators + operands
#include "paged_attention_kernel.inc"
