// Communicators: the collectives of a process group (all_reduce, all_gather, reduce_scatter, broadcast, barrier)
// over plain host buffers, one implementation per backend:
//   shm.cc  ranks on one host (processes or worker threads) over a shared-memory segment
//   mpi.cc  OpenMPI loaded at run time (dlopen of libmpi.so.40); no build-time dependency on MPI
//
// Contract every backend keeps:
// - Results are bit-identical on every rank, and across backends: every reduction is computed by reduce.h in a
//   fixed order (rank 0 + rank 1 + ... + rank R-1, accumulated in f32 and rounded once to the dtype); the
//   backends only move bytes.
// - Calls are blocking and collective: every rank makes the same calls in the same order. Each call carries a
//   CallDesc; the backends compare them across ranks before touching data, so mismatched sizes, dtypes, ops or
//   order fail with Code::mismatch instead of reading past a buffer or hanging (debug mode adds the caller's
//   call site to the comparison).
// - Every call has a deadline. A peer that exits is Code::peer_lost, a deadline that passes Code::timeout; both
//   are reported by every rank within the deadline plus ~1 s (the backends poll, never wait unboundedly). After
//   any failure the communicator is failed: every later call returns the same Status at once.
// - Nothing here aborts, asserts or exits; OOM and system-call failures are Status values.
//
// Shapes: count is in elements of dtype. all_gather: in [count] -> out [R * count] (rank r's block at r * count).
// reduce_scatter: in [R * count] -> out [count] (rank r gets the reduction of block r). all_reduce and broadcast
// may run in place (in == out). all_gather with 0 < inner < count and count % inner == 0 gathers along an inner
// dimension instead: in [count / inner, inner] -> out [count / inner, R, inner] (a tensor-parallel LM head's
// logits [T, V / R] -> [T, V]); the backends gather into a scratch buffer and Communicator::call reorders it.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "../common/dtype.h"
#include "../common/status.h"

namespace lk::dist {

enum class Collective : uint8_t { all_reduce = 1, all_gather, reduce_scatter, broadcast, barrier };
enum class ReduceOp : uint8_t { sum = 0, max = 1 };

const char* collective_name(Collective c);  // the public names: allReduce, allGather, ...
const char* reduce_op_name(ReduceOp op);

using Clock = std::chrono::steady_clock;

// What a rank asked for. Every field must match across ranks (site only in debug mode; 0 = not checked).
struct CallDesc {
  uint64_t seq = 0;    // this communicator's call number, from 1 (set by Communicator::call)
  uint64_t count = 0;  // elements, as the shapes above define it
  uint64_t site = 0;   // a hash of the caller's call site (debug mode), else 0
  uint64_t inner = 0;  // all_gather only: gather along an inner dimension (below)
  Collective kind = Collective::barrier;
  ReduceOp op = ReduceOp::sum;
  DType dtype = DType::f32;
  int32_t root = 0;    // broadcast only
};
std::string describe(const CallDesc& d);  // "allReduce #17 (sum, 4096 x f16)"

// The failure shared by every later call. Set once (first failure wins).
class FailState {
 public:
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  Status status() const;
  // Records s if nothing was recorded yet; returns the recorded status (s or the earlier one).
  Status set(Status s);

 private:
  mutable std::mutex mu_;
  std::atomic<bool> failed_{false};
  Status status_;
};

class Communicator {
 public:
  virtual ~Communicator();
  int rank() const { return rank_; }
  int world() const { return world_; }
  virtual const char* backend() const = 0;

  // One collective. `in`/`out` as the shapes above; for barrier both are null and count 0. Checks the arguments,
  // the failed state and the deadline, numbers the call, then runs it (run_impl). A failure fails the
  // communicator.
  Status call(const void* in, void* out, CallDesc d, Clock::time_point deadline);

  // The recorded failure (OK if none). shm also reports a failure another rank published since.
  virtual Status failure() const { return fail_.failed() ? fail_.status() : Status::OK(); }
  bool failed() const { return fail_.failed(); }
  // Marks the communicator failed from outside (the owner's environment is closing): pending and later calls
  // return s. Backends that can (shm) tell the other ranks at once.
  virtual void abort(Status s) { (void)fail_.set(std::move(s)); }
  // Code::peer_lost naming the ranks whose process is gone, where the backend can tell (shm: their lock is free);
  // OK otherwise. A GPU collective that timed out on the device asks this to report a dead peer as lost.
  virtual Status lost_peers() const { return Status::OK(); }

 protected:
  Communicator(int rank, int world) : rank_(rank), world_(world) {}
  virtual Status run_impl(const void* in, void* out, const CallDesc& d, Clock::time_point deadline) = 0;
  FailState fail_;

 private:
  int rank_, world_;
  uint64_t seq_ = 0;
  char* scratch_ = nullptr;  // all_gather along an inner dimension
  size_t scratch_bytes_ = 0;
};

// Options shared by the backends' constructors.
struct OpenOptions {
  int rank = 0;
  int world = 1;
  Clock::time_point deadline;  // for the rendezvous
};

// shm: `name` identifies the group on this host (every rank passes the same; [A-Za-z0-9._-], at most 100 bytes).
// The segment lives in /dev/shm only while the ranks rendezvous.
Status open_shm(const OpenOptions& o, const std::string& name, std::unique_ptr<Communicator>* out);

// mpi: loads `library` (empty: libmpi.so.40, then libmpi.so), initializes MPI if the process has not (requesting
// MPI_THREAD_SERIALIZED), and uses a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN. o.rank and o.world are
// checked against MPI's own (-1: take MPI's).
Status open_mpi(const OpenOptions& o, const std::string& library, std::unique_ptr<Communicator>* out);

}  // namespace lk::dist
