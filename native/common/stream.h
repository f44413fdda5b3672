// Streams: in-order queues of work. On the CPU, one per Node environment (the main thread and each worker has its
// own executor thread; all share the thread pool): a collective that blocks one environment's stream while its
// ranks meet (native/dist: worker threads can be the ranks of a group) must not hold up the others. On CUDA, one
// per device, shared by the environments.
//
// The JS thread only enqueues. On the CPU, a native executor thread pops ops in order and runs each kernel on the
// thread pool; on CUDA, kernels are launched straight onto the device's cudaStream_t (launching is asynchronous)
// and a completion thread runs host tasks once the stream has reached them.
//
// Errors: a kernel that fails at run time does not stop the stream. Its output storages are poisoned (reading
// them reports the failure, never garbage), and the failure is kept as the sticky error of the op's owner (one
// owner per Node environment, so a worker never sees the main thread's errors). The owner's next host task or
// synchronize() receives it and clears it: in JS, the next `await t.data()` or `await device.synchronize()`
// rejects with that error and its code.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "registry.h"
#include "storage.h"

namespace lk {

// Who enqueued: one id per Node environment (native/addon), 0 for the native tools.
using Owner = uint64_t;

// A host task receives its owner's sticky error (OK if none), which is then cleared. What it returns becomes the
// sticky error if it is not OK: a task that reports `prior` to the user returns OK; a task that does not (a copy,
// a setting) returns `prior` when its own work succeeded, so the error reaches the next sync. A task that throws is
// caught and its exception becomes the sticky error.
using HostTask = std::function<Status(Status prior)>;

class Stream {
 public:
  static constexpr int kMaxKeep = 10;  // up to 8 inputs and 2 outputs
  virtual ~Stream() = default;
  // Runs `kernel` on `args` after everything submitted before. `args.in`/`args.out` are copied; the n_keep
  // storages of `keep` (at most kMaxKeep: the op's inputs, then its args.n_out outputs last) are held until it has
  // run, and the outputs are poisoned if it fails. Returns an error only if the op could not be queued or launched.
  virtual Status submit(const Kernel& kernel, const OpArgs& args, const std::shared_ptr<Storage>* keep, int n_keep,
                        Owner owner) = 0;
  // Runs `task` on a background thread once everything submitted before has finished. Must be quick or blocking
  // only on this stream's own completion (it delays the tasks after it).
  virtual void submit_host(HostTask task, Owner owner) = 0;
  // Blocks the caller until everything submitted has finished; returns (and clears) the owner's sticky error.
  virtual Status synchronize(Owner owner) = 0;
  // Blocks until everything submitted has finished, leaving the sticky errors for the next synchronize.
  virtual void drain() = 0;
};

// The stream of a device (for the CPU: of `owner`'s environment), created on first use. Code::device if the device
// is missing. CUDA streams live for the process; a CPU stream until release_cpu_stream.
Status stream_for(Device device, Stream** out, Owner owner = 0);

// The environment `owner` is going away: its CPU stream runs what is queued, then its thread exits and frees it
// (never joined: a process exiting with work queued does not wait for it). Later stream_for calls make a new one.
void release_cpu_stream(Owner owner);

}  // namespace lk
