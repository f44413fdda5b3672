#include "cases.h"

namespace lk {

#define LK_OP(name, nin, nout, math) std::vector<OpCase> name##_cases();
#include "ops.def"
#undef LK_OP

std::vector<OpCase> op_cases(OpId op) {
  switch (op) {
#define LK_OP(name, nin, nout, math) \
  case OpId::name:                   \
    return name##_cases();
#include "ops.def"
#undef LK_OP
    default:
      return {};
  }
}

Tolerance tolerance(OpId op, DType out) {
  // matmul_q is judged against its own reference (the same quantized activations, exact integer sums), so the
  // only differences are f32 accumulation order and output rounding: the rows of matmul.
  // Paged attention too: f32 online softmax and dot products against a double reference over the same cache values.
  // The layer ops' reductions (rms_norm) and transcendental functions (rope's sin and cos, silu's exp) in f32
  // against double: the same rows. embedding only converts: exact.
  const bool approx = op == OpId::matmul || op == OpId::matmul_q || op == OpId::paged_attention_decode ||
                      op == OpId::paged_attention_prefill || op == OpId::rms_norm || op == OpId::add_rms_norm ||
                      op == OpId::rope || op == OpId::silu_mul || op == OpId::layer_norm || op == OpId::gelu || op == OpId::silu;
  if (!approx) return {true, 0, 0};
  // matmul_q uses the rows of matmul: its integer path is checked bit for bit separately, on data whose f32 part is
  // exact (test/ops/matmul_q.test.ts, lk_native_tests), since one output with heavy cancellation defeats any nmse.
  switch (out) {
    case DType::f32: return {false, 1e-8, 1e-4};  // nmse: a single output with heavy cancellation reaches ~2e-9
    case DType::f16: return {false, 1e-6, 4e-3};
    case DType::bf16: return {false, 3e-5, 2e-2};
    default: return {true, 0, 0};
  }
}

}  // namespace lk
