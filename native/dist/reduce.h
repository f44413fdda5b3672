// The one reduction every backend uses, so that every rank and every backend gets the same bits.
//
//   dst[i] = round_dtype( (((s0[i] op s1[i]) op s2[i]) ... op s[n-1][i]) )   computed in f32
//
// f16/bf16 widen exactly to f32, accumulate in rank order in f32, and round once (to nearest even) at the end;
// f32 accumulates in f32 in rank order. The order is fixed, so the result does not depend on which rank computes
// an element, on SIMD or scalar code, or on how the buffer was chunked. max: NaN wins (any NaN gives NaN).
#pragma once
#include <cstddef>

#include "comm.h"

namespace lk::dist {

// src: n_src pointers to [count] elements of dt; dst [count] (may alias src[0], not the others).
void reduce(const void* const* src, int n_src, void* dst, size_t count, DType dt, ReduceOp op);

// The reference: the same in plain scalar code (native tests compare the two bit for bit).
void reduce_ref(const void* const* src, int n_src, void* dst, size_t count, DType dt, ReduceOp op);

}  // namespace lk::dist
