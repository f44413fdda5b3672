// The backend-independent part of a communicator: call numbering, argument and deadline checks, the failed state.
#include "comm.h"

namespace lk::dist {

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::all_reduce: return "allReduce";
    case Collective::all_gather: return "allGather";
    case Collective::reduce_scatter: return "reduceScatter";
    case Collective::broadcast: return "broadcast";
    case Collective::barrier: return "barrier";
  }
  return "collective";
}

const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::max ? "max" : "sum"; }

std::string describe(const CallDesc& d) {
  std::string s = std::string(collective_name(d.kind)) + " #" + std::to_string(d.seq);
  if (d.kind == Collective::barrier) return s;
  s += " (";
  if (d.kind == Collective::all_reduce || d.kind == Collective::reduce_scatter) s += std::string(reduce_op_name(d.op)) + ", ";
  if (d.kind == Collective::broadcast) s += "root " + std::to_string(d.root) + ", ";
  s += std::to_string(d.count) + " x " + dtype_name(d.dtype) + ")";
  return s;
}

Status FailState::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

Status FailState::set(Status s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_.load(std::memory_order_relaxed)) {
    status_ = std::move(s);
    failed_.store(true, std::memory_order_release);
  }
  return status_;
}

Status Communicator::call(const void* in, void* out, CallDesc d, Clock::time_point deadline) {
  if (fail_.failed()) return fail_.status();
  const char* name = collective_name(d.kind);
  if (!dtype_is_float(d.dtype))
    return type_error(std::string(name) + ": expected a float dtype (f32, f16, bf16), got " + dtype_name(d.dtype));
  if (d.kind != Collective::barrier && d.count > 0 && (in == nullptr || out == nullptr))
    return internal_error(std::string(name) + ": null buffer");
  if (d.kind == Collective::broadcast && (d.root < 0 || d.root >= world_))
    return range_error(std::string(name) + ": expected a root rank in [0, " + std::to_string(world_) + "), got " + std::to_string(d.root));
  if (d.kind == Collective::reduce_scatter && in == out && world_ > 1)
    return range_error(std::string(name) + ": expected an output that does not overlap the input");
  d.seq = ++seq_;
  Status s = run_impl(in, out, d, deadline);
  if (!s.ok()) return fail_.set(std::move(s));
  return Status::OK();
}

}  // namespace lk::dist
