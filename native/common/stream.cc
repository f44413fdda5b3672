#include "stream.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <new>
#include <string>

#include "../cuda/cuda_backend.h"
#include "thread_pool.h"


namespace lk {

namespace {

// One queued unit of work: a kernel call (with its own copies of the views) or a host task.
struct Task {
  Kernel kernel;
  OpArgs args;
  std::array<TensorView, 8> in;
  std::array<TensorView, 2> out;
  std::array<std::shared_ptr<Storage>, Stream::kMaxKeep> keep;  // fixed: no allocation per op
  int n_keep = 0;
  Owner owner = 0;
  HostTask host;
};

// The sticky errors of a stream, one per owner (an environment's errors are its own).
class StickyErrors {
 public:
  void set(Owner o, Status s) {
    if (s.ok()) return;
    for (auto& e : errors_)
      if (e.first == o) {
        if (e.second.ok()) e.second = std::move(s);
        return;
      }
    errors_.emplace_back(o, std::move(s));
  }
  Status take(Owner o) {
    for (auto it = errors_.begin(); it != errors_.end(); ++it)
      if (it->first == o) {
        Status s = std::move(it->second);
        errors_.erase(it);
        return s;
      }
    return Status::OK();
  }

 private:
  std::vector<std::pair<Owner, Status>> errors_;
};

// A failed op's outputs hold garbage: mark them so that reads report the failure.
void poison_outputs(const Task& t, const Status& s) {
  const int n_out = std::min<int>(t.args.n_out, t.n_keep);
  for (int i = t.n_keep - n_out; i < t.n_keep; ++i)
    if (t.keep[i]) t.keep[i]->poison(s);
}

Status run_host(const HostTask& task, Status prior) {
  try {
    return task(std::move(prior));
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, "out of memory in a stream task");
  } catch (const std::exception& e) {
    return internal_error(std::string("stream task: ") + e.what());
  } catch (...) {
    return internal_error("stream task: unknown exception");
  }
}

Status copy_args(const OpArgs& args, Task* t) {
  if (args.n_in > static_cast<int>(t->in.size()) || args.n_out > static_cast<int>(t->out.size()))
    return internal_error("stream: too many tensors for one op");
  for (int i = 0; i < args.n_in; ++i) t->in[i] = args.in[i];
  for (int i = 0; i < args.n_out; ++i) t->out[i] = args.out[i];
  t->args = args;
  t->args.in = t->in.data();
  t->args.out = t->out.data();
  return Status::OK();
}

Status run_kernel(const Task& t) {
  // A kernel returns Status and should not throw; if one does (say std::bad_alloc from a container), the
  // executor must survive it.
  try {
    return t.kernel.run(t.args);
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, std::string(op_info(t.args.op).name) + ": out of memory");
  } catch (const std::exception& e) {
    return internal_error(std::string(op_info(t.args.op).name) + ": " + e.what());
  } catch (...) {
    return internal_error(std::string(op_info(t.args.op).name) + ": unknown exception");
  }
}

class CpuStream final : public Stream {
 public:
  CpuStream() : thread_([this] { loop(); }) {}
  ~CpuStream() override {
    if (!thread_.joinable()) return;  // retired: the thread deletes this object itself
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  // Runs what is queued, then the executor thread deletes this stream and exits. No call may follow.
  void retire() {
    thread_.detach();
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      retired_ = true;
    }
    cv_.notify_one();
  }

  Status submit(const Kernel& kernel, const OpArgs& args, const std::shared_ptr<Storage>* keep, int n_keep,
                Owner owner) override {
    if (n_keep > kMaxKeep) return internal_error("stream: too many storages for one op");
    bool wake;
    {
      // One lock per op: take a finished entry for reuse (new only when none), fill it, queue it.
      std::lock_guard<std::mutex> lock(mu_);
      std::unique_ptr<Task> t;
      if (!spare_.empty()) {
        t = std::move(spare_.back());
        spare_.pop_back();
      } else {
        t.reset(new (std::nothrow) Task());
        if (!t) return Status(Code::oom, "out of memory: op queue");
      }
      t->kernel = kernel;
      Status st = copy_args(args, t.get());
      if (!st.ok()) {
        spare_.push_back(std::move(t));
        return st;
      }
      for (int i = 0; i < n_keep; ++i) t->keep[i] = keep[i];
      t->n_keep = n_keep;
      t->owner = owner;
      wake = enqueue_locked(std::move(t));
    }
    if (wake) cv_.notify_one();
    return Status::OK();
  }

  void submit_host(HostTask task, Owner owner) override {
    std::unique_ptr<Task> t(new Task());
    t->host = std::move(task);
    t->owner = owner;
    push(std::move(t));
  }

  Status synchronize(Owner owner) override {
    uint64_t target;
    {
      std::lock_guard<std::mutex> lock(mu_);
      target = submitted_;
    }
    // Spin briefly: a script calling dataSync() right after a small op usually finds it done within microseconds.
    for (int i = 0; i < 4000 && completed_.load(std::memory_order_acquire) < target; ++i) LK_CPU_RELAX();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return completed_.load(std::memory_order_acquire) >= target; });
    return sticky_.take(owner);
  }

  void drain() override {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t target = submitted_;
    done_cv_.wait(lock, [&] { return completed_.load(std::memory_order_acquire) >= target; });
  }

 private:
  // Queues t; returns whether the executor sleeps and must be woken (after the lock is released). Holds mu_.
  bool enqueue_locked(std::unique_ptr<Task> t) {
    queue_.push_back(std::move(t));
    queue_nonempty_hint_.store(true, std::memory_order_relaxed);
    ++submitted_;
    return sleeping_;
  }

  void push(std::unique_ptr<Task> t) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      wake = enqueue_locked(std::move(t));
    }
    if (wake) cv_.notify_one();
  }

  void loop() {
    for (;;) {
      std::unique_ptr<Task> t;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (queue_.empty()) {
          // Spin a little before sleeping: ops arrive in bursts, and a futex wake costs ~10 us.
          lock.unlock();
          for (int i = 0; i < 2000; ++i) {
            LK_CPU_RELAX();
            if (queue_nonempty_hint_.load(std::memory_order_relaxed)) break;
          }
          lock.lock();
          sleeping_ = true;
          cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
          sleeping_ = false;
        }
        if (queue_.empty() && quit_) {
          if (retired_) {
            lock.unlock();
            delete this;
          }
          return;
        }
        t = std::move(queue_.front());
        queue_.pop_front();
        queue_nonempty_hint_.store(!queue_.empty(), std::memory_order_relaxed);
      }
      if (t->host) {
        Status prior;
        {
          std::lock_guard<std::mutex> lock(mu_);
          prior = sticky_.take(t->owner);
        }
        Status s = run_host(t->host, std::move(prior));
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu_);
          sticky_.set(t->owner, std::move(s));
        }
      } else {
        Status s = run_kernel(*t);
        if (!s.ok()) {
          poison_outputs(*t, s);
          std::lock_guard<std::mutex> lock(mu_);
          sticky_.set(t->owner, std::move(s));
        }
      }
      // Drop the storages before reporting completion (memory is back when a sync returns), and keep the task
      // for reuse: a new and a delete per op on two threads made malloc's arena lock a point of contention.
      for (int i = 0; i < t->n_keep; ++i) t->keep[i].reset();
      t->n_keep = 0;
      t->host = nullptr;
      {
        std::lock_guard<std::mutex> lock(mu_);
        completed_.fetch_add(1, std::memory_order_release);
        if (spare_.size() < kMaxSpare) spare_.push_back(std::move(t));
      }
      t.reset();
      done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<std::unique_ptr<Task>> queue_;
  static constexpr size_t kMaxSpare = 1024;
  std::vector<std::unique_ptr<Task>> spare_;  // finished tasks, reused by submit()
  std::atomic<bool> queue_nonempty_hint_{false};
  uint64_t submitted_ = 0;
  std::atomic<uint64_t> completed_{0};
  bool sleeping_ = false;
  bool quit_ = false;
  bool retired_ = false;
  StickyErrors sticky_;
  std::thread thread_;  // last: starts after the members above exist
};

// CUDA: kernels launch straight onto the device stream from the calling thread; host tasks go to a completion
// thread that first waits for an event recorded when they were submitted.
class CudaStream final : public Stream {
 public:
  explicit CudaStream(int index) : index_(index), thread_([this] { loop(); }) {}
  ~CudaStream() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  Status submit(const Kernel& kernel, const OpArgs& args, const std::shared_ptr<Storage>* keep, int n_keep,
                Owner) override {
    // No need to keep storages: their memory is released with cudaFreeAsync on this same stream, which is
    // ordered after this launch.
    void* stream = nullptr;
    LK_RETURN_IF_ERROR(cuda_stream(index_, &stream));
    Task t;
    LK_RETURN_IF_ERROR(copy_args(args, &t));
    t.kernel = kernel;
    t.args.stream = stream;
    Status s = run_kernel(t);
    if (!s.ok()) {
      // A launch that fails leaves its outputs unwritten.
      for (int i = 0; i < n_keep; ++i) t.keep[i] = keep[i];
      t.n_keep = n_keep;
      poison_outputs(t, s);
    }
    return s;
  }

  void submit_host(HostTask task, Owner owner) override {
    void* event = nullptr;
    Status s = cuda_event_record(index_, &event);
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Pending{event, std::move(task), std::move(s), owner});
    ++submitted_;
    cv_.notify_one();
  }

  Status synchronize(Owner owner) override {
    // Host tasks queued before run first, so that their results are part of what synchronize() reports. Waits
    // for those only (a counter, not an empty queue: other environments may keep submitting), and not under the
    // lock while the device synchronizes.
    {
      std::unique_lock<std::mutex> lock(mu_);
      const uint64_t target = submitted_;
      idle_cv_.wait(lock, [&] { return completed_ >= target; });
    }
    Status s = cuda_synchronize(index_);
    std::lock_guard<std::mutex> lock(mu_);
    Status mine = sticky_.take(owner);
    return mine.ok() ? s : mine;
  }

  void drain() override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      const uint64_t target = submitted_;
      idle_cv_.wait(lock, [&] { return completed_ >= target; });
    }
    (void)cuda_synchronize(index_);  // a device error stays for the next synchronize (the driver keeps it)
  }

 private:
  struct Pending {
    void* event;
    HostTask task;
    Status record_error;
    Owner owner;
  };
  void loop() {
    for (;;) {
      Pending p;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
        if (queue_.empty()) return;
        p = std::move(queue_.front());
        queue_.pop_front();
      }
      Status s = p.record_error.ok() ? cuda_event_wait(index_, p.event) : p.record_error;
      Status prior;
      {
        std::lock_guard<std::mutex> lock(mu_);
        prior = sticky_.take(p.owner);
        if (prior.ok()) prior = std::move(s);
      }
      Status r = run_host(p.task, std::move(prior));
      {
        std::lock_guard<std::mutex> lock(mu_);
        sticky_.set(p.owner, std::move(r));
        ++completed_;
      }
      idle_cv_.notify_all();
    }
  }
  int index_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Pending> queue_;
  uint64_t submitted_ = 0, completed_ = 0;
  StickyErrors sticky_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace

namespace {
// CPU streams by owner (leaked on purpose: their threads must not be joined from static destructors).
std::mutex& cpu_streams_mu() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}
std::vector<std::pair<Owner, CpuStream*>>& cpu_streams() {
  static auto* v = new std::vector<std::pair<Owner, CpuStream*>>();
  return *v;
}
}  // namespace

void release_cpu_stream(Owner owner) {
  CpuStream* s = nullptr;
  {
    std::lock_guard<std::mutex> lock(cpu_streams_mu());
    auto& v = cpu_streams();
    for (auto it = v.begin(); it != v.end(); ++it)
      if (it->first == owner) {
        s = it->second;
        v.erase(it);
        break;
      }
  }
  if (s) s->retire();
}

Status stream_for(Device device, Stream** out, Owner owner) {
  if (device.kind == DeviceKind::cpu) {
    std::lock_guard<std::mutex> lock(cpu_streams_mu());
    auto& v = cpu_streams();
    for (auto& e : v)
      if (e.first == owner) {
        *out = e.second;
        return Status::OK();
      }
    CpuStream* s = new (std::nothrow) CpuStream();
    if (!s) return Status(Code::oom, "out of memory: CPU stream");
    v.emplace_back(owner, s);
    *out = s;
    return Status::OK();
  }
  static std::mutex mu;
  static std::vector<Stream*> cuda;
  std::lock_guard<std::mutex> lock(mu);
  if (device.index >= 0 && device.index < static_cast<int>(cuda.size()) && cuda[device.index]) {
    *out = cuda[device.index];
    return Status::OK();
  }
  const CudaProbe probe = cuda_probe();
  if (!probe.available) return Status(Code::device, "CUDA unavailable: " + probe.reason);
  if (device.index < 0 || device.index >= static_cast<int>(probe.devices.size()))
    return Status(Code::device, "no CUDA device " + std::to_string(device.index) + " (this machine has " +
                                    std::to_string(probe.devices.size()) + ")");
  if (cuda.size() < probe.devices.size()) cuda.resize(probe.devices.size(), nullptr);
  if (!cuda[device.index]) cuda[device.index] = new CudaStream(device.index);
  *out = cuda[device.index];
  return Status::OK();
}

}  // namespace lk
