// The kernel table: for each backend, one Kernel per op of ops.def, in op order.
//
// A Kernel is a pair of plain functions. supports() answers before anything is enqueued, with nullptr for yes or a
// static string saying why not (e.g. "matmul: cuda kernel needs x and w of one dtype"); run() does the work and
// returns a Status. run() is called on the backend's stream: the CPU executor thread, or the JS thread for CUDA
// (which only launches). Shapes and dtypes were validated by lib/ops and again by validate_op() below before run().
#pragma once
#include <cstdint>

#include "status.h"
#include "tensor.h"

namespace lk {

enum class OpId : int32_t {
#define LK_OP(name, nin, nout, math) name,
#include "ops.def"
#undef LK_OP
  count
};
constexpr int kNumOps = static_cast<int>(OpId::count);

// ref: the scalar reference (the spec; slow, double accumulation where it matters). cpu: the fast CPU kernels.
enum class Backend : int32_t { ref = 0, cpu = 1, cuda = 2, count };
constexpr int kNumBackends = static_cast<int>(Backend::count);
const char* backend_name(Backend b);

// top_k's largest k: its CUDA kernel sorts the k candidates of a row in shared memory (2 x 4 bytes each).
constexpr int64_t kTopKMax = 1024;

struct OpParams {
  double f[4] = {0, 0, 0, 0};
  int64_t i[4] = {0, 0, 0, 0};
};

struct OpArgs {
  OpId op = OpId::count;
  const TensorView* in = nullptr;
  int32_t n_in = 0;
  const TensorView* out = nullptr;  // outputs: the views are const, the data they point at is written
  int32_t n_out = 0;
  OpParams params;
  void* stream = nullptr;  // cudaStream_t on cuda; unused on cpu
};

using KernelFn = Status (*)(const OpArgs&);
using SupportsFn = const char* (*)(const OpArgs&);

struct Kernel {
  KernelFn run = nullptr;
  SupportsFn supports = nullptr;  // may be null: supports everything validate_op() accepts
};

struct OpInfo {
  const char* name;
  int32_t n_in;
  int32_t n_out;
  const char* math;
};
const OpInfo& op_info(OpId op);
// Parses an op name; returns OpId::count if there is none.
OpId op_from_name(const char* name);

// The table of a backend: kNumOps entries, or nullptr if the backend was not compiled in.
const Kernel* kernel_table(Backend b);

// Checks arity, dtypes and shapes of a call against the op's contract (the C++ half of "validate twice"). Returns
// a TypeError/RangeError Status with the house message form, `<op>: expected <what> for <param>, got <actual>`.
Status validate_op(const OpArgs& a);

// The reason a backend cannot run this call, or nullptr. Combines "not compiled", validate_op and supports().
const char* backend_unsupported_reason(Backend b, const OpArgs& a);

}  // namespace lk
