// The backend-independent part of a communicator: call numbering, argument and deadline checks, the failed state.
#include "comm.h"

#include <cstdlib>
#include <cstring>

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
  s += std::to_string(d.count) + " x " + dtype_name(d.dtype);
  if (d.kind == Collective::all_gather && d.inner != 0) s += ", inner " + std::to_string(d.inner);
  s += ")";
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

Communicator::~Communicator() { std::free(scratch_); }

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
  const bool inner = d.kind == Collective::all_gather && d.inner != 0 && d.inner != d.count && world_ > 1;
  if (d.kind == Collective::all_gather && d.inner != 0 && (d.inner > d.count || d.count % d.inner != 0))
    return range_error(std::string(name) + ": expected an inner size dividing " + std::to_string(d.count) + ", got " + std::to_string(d.inner));
  const size_t es = dtype_size(d.dtype);
  const size_t gathered = static_cast<size_t>(world_) * d.count * es;
  if (inner && scratch_bytes_ < gathered) {
    void* p = std::realloc(scratch_, gathered);
    if (p == nullptr) return Status(Code::oom, std::string(name) + ": out of memory for a " + std::to_string(gathered) + "-byte buffer");
    scratch_ = static_cast<char*>(p);
    scratch_bytes_ = gathered;
  }
  d.seq = ++seq_;
  Status s = run_impl(in, inner ? scratch_ : out, d, deadline);
  if (!s.ok()) return fail_.set(std::move(s));
  if (inner) {
    // scratch [R, outer, inner] -> out [outer, R, inner]
    const size_t outer = d.count / d.inner, row = d.inner * es;
    char* o = static_cast<char*>(out);
    for (size_t i = 0; i < outer; ++i)
      for (int r = 0; r < world_; ++r)
        std::memcpy(o + (i * world_ + r) * row, scratch_ + (static_cast<size_t>(r) * outer + i) * row, row);
  }
  return Status::OK();
}

}  // namespace lk::dist
