// Paged attention's per-task kernel for AVX2/FMA/F16C: the body is simd/paged_attention_kernel.inc.
#include "paged_attention.h"

#define LK_PA_ENTRY paged_attention_avx2_task
#include "paged_attention_kernel.inc"
