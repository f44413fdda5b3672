// nccl: the collectives of CUDA tensors through NCCL, loaded at run time (dlopen of libnccl.so.2). No NCCL header or
// library is needed to build, and a machine without NCCL gets Code::unsupported with the fix, never a load failure.
//
// The ABI declared here (from the public nccl.h; its layout rules below were checked against nccl.h.in of NCCL's
// repository, whose ncclConfig_t is append-only and versioned):
//   ncclUniqueId         struct { char internal[128]; } (NCCL_UNIQUE_ID_BYTES), passed BY VALUE to
//                        ncclCommInitRankConfig.
//   ncclResult_t         int: ncclSuccess 0, ... ncclRemoteError 6, ncclInProgress 7 (nonblocking communicators).
//   ncclDataType_t       ncclFloat16 6, ncclFloat32 7, ncclBfloat16 9.   ncclRedOp_t  ncclSum 0, ncclMax 2.
//   ncclConfig_t         we declare the layout of NCCL 2.18 (ncclConfig_v21700): size_t size; unsigned magic;
//                        unsigned version; int blocking, cgaClusterSize, minCTAs, maxCTAs; const char* netName;
//                        int splitShare. NCCL_CONFIG_INITIALIZER's rules: size = sizeof(our struct),
//                        magic = 0xcafebeef, version = NCCL_VERSION(2,18,3) = 21803 (X*10000 + Y*100 + Z since
//                        2.9), every attribute NCCL_CONFIG_UNDEF_INT (INT_MIN) / NULL except blocking = 0.
//                        Newer libraries read a config by its size and version (fields are only appended), so a
//                        2.18-sized config is valid for 2.18 and later; older libraries (< 2.18, where the struct
//                        was shorter and nonblocking init was young) are refused by version (ncclGetVersion).
//   functions            ncclGetVersion, ncclGetUniqueId, ncclCommInitRankConfig, ncclAllReduce,
//                        ncclAllGather (sendcount), ncclReduceScatter (recvcount), ncclBroadcast (root after the
//                        datatype), ncclCommGetAsyncError, ncclCommFinalize, ncclCommDestroy, ncclCommAbort,
//                        ncclGetErrorString.
//
// Open: rank 0 makes the unique id, the CPU Communicator broadcasts it (128 bytes as 32 f32 "elements": it moves
// bytes), every rank calls ncclCommInitRankConfig with blocking = 0 and polls ncclCommGetAsyncError until it leaves
// ncclInProgress or the deadline passes (then ncclCommAbort, Code::timeout).
// A call: ncclAllReduce (or AllGather, ReduceScatter, Broadcast) on the tensor's stream (in a nonblocking
// communicator it may return ncclInProgress: polled the same way), then an event recorded after it. A watchdog thread per communicator queries the events in order;
// an event still pending at its call's deadline, or an asynchronous NCCL error, aborts the communicator
// (ncclCommAbort makes NCCL's kernels exit, so the stream drains) and fails it: Code::timeout or Code::peer_lost.
// Results: NCCL's summation order (ring/tree), the same bits on every rank but not reduce.h's rank order, so not
// bit-equal to the custom kernels or the CPU backends.
//
// Versions: not yet run on a GPU (no NCCL on the development machine: only the "not found" path was run).
#include <dlfcn.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "../cuda/cuda_backend.h"
#include "cuda_ar.h"

#if defined(LLMK_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace lk::dist {

namespace {

struct NcclUniqueId {
  char internal[128];
};
static_assert(sizeof(NcclUniqueId) == 128, "ncclUniqueId is 128 bytes");
struct ncclComm;
using NcclCommT = ncclComm*;

struct NcclConfig {  // ncclConfig_v21700 (NCCL 2.18)
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cgaClusterSize;
  int minCTAs;
  int maxCTAs;
  const char* netName;
  int splitShare;
};

constexpr int kNcclSuccess = 0;
constexpr int kNcclRemoteError = 6;
constexpr int kNcclInProgress = 7;
constexpr int kNcclFloat16 = 6, kNcclFloat32 = 7, kNcclBfloat16 = 9;
constexpr int kNcclSum = 0, kNcclMax = 2;
constexpr unsigned kNcclConfigMagic = 0xcafebeef;
constexpr int kNcclConfigVersion = 21803;  // NCCL_VERSION(2, 18, 3)
constexpr int kNcclMinVersion = 21800;     // 2.18.0

struct NcclApi {
  int (*GetVersion)(int*) = nullptr;
  int (*GetUniqueId)(NcclUniqueId*) = nullptr;
  int (*CommInitRankConfig)(NcclCommT*, int, NcclUniqueId, int, NcclConfig*) = nullptr;
  int (*AllReduce)(const void*, void*, size_t, int, int, NcclCommT, void*) = nullptr;
  int (*AllGather)(const void*, void*, size_t, int, NcclCommT, void*) = nullptr;
  int (*ReduceScatter)(const void*, void*, size_t, int, int, NcclCommT, void*) = nullptr;
  int (*Broadcast)(const void*, void*, size_t, int, int, NcclCommT, void*) = nullptr;
  int (*CommGetAsyncError)(NcclCommT, int*) = nullptr;
  int (*CommFinalize)(NcclCommT) = nullptr;
  int (*CommDestroy)(NcclCommT) = nullptr;
  int (*CommAbort)(NcclCommT) = nullptr;
  const char* (*GetErrorString)(int) = nullptr;
};

struct Library {
  std::mutex mu;
  bool tried = false;
  Status status;
  int version = 0;
  NcclApi api;
};
Library& library() {
  static Library* l = new Library;  // never destroyed; the library is never dlclose'd
  return *l;
}

template <class F>
bool resolve(void* h, const char* name, F* fn, std::string* missing) {
  void* p = dlsym(h, name);
  if (p == nullptr) {
    *missing += (missing->empty() ? "" : ", ") + std::string(name);
    return false;
  }
  *fn = reinterpret_cast<F>(p);
  return true;
}

std::string version_text(int v) { return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100); }

std::string nccl_text(const NcclApi& api, int rc) {
  const char* s = api.GetErrorString != nullptr ? api.GetErrorString(rc) : nullptr;
  return std::string(s != nullptr ? s : "NCCL error") + " (ncclResult_t " + std::to_string(rc) + ")";
}

}  // namespace

Status nccl_load(int* version) {
  Library& l = library();
  std::lock_guard<std::mutex> lock(l.mu);
  if (!l.tried) {
    l.tried = true;
    void* h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      l.status = unsupported(std::string("unsupported: libnccl.so.2 not found (") + (e != nullptr ? e : "dlopen failed") +
                             "). Install NCCL 2.18 or newer (e.g. the libnccl2 package, or pip's nvidia-nccl-cu12 with its "
                             "lib directory on LD_LIBRARY_PATH) to all-reduce large CUDA tensors or GPUs without P2P");
    } else {
      std::string missing;
      NcclApi& a = l.api;
      resolve(h, "ncclGetVersion", &a.GetVersion, &missing);
      resolve(h, "ncclGetUniqueId", &a.GetUniqueId, &missing);
      resolve(h, "ncclCommInitRankConfig", &a.CommInitRankConfig, &missing);
      resolve(h, "ncclAllReduce", &a.AllReduce, &missing);
      resolve(h, "ncclAllGather", &a.AllGather, &missing);
      resolve(h, "ncclReduceScatter", &a.ReduceScatter, &missing);
      resolve(h, "ncclBroadcast", &a.Broadcast, &missing);
      resolve(h, "ncclCommGetAsyncError", &a.CommGetAsyncError, &missing);
      resolve(h, "ncclCommFinalize", &a.CommFinalize, &missing);
      resolve(h, "ncclCommDestroy", &a.CommDestroy, &missing);
      resolve(h, "ncclCommAbort", &a.CommAbort, &missing);
      resolve(h, "ncclGetErrorString", &a.GetErrorString, &missing);
      if (!missing.empty()) {
        l.status = unsupported("unsupported: libnccl.so.2 lacks " + missing + " (NCCL 2.18 or newer is needed)");
      } else if (a.GetVersion(&l.version) != kNcclSuccess || l.version < kNcclMinVersion) {
        l.status = unsupported("unsupported: libnccl.so.2 is NCCL " + version_text(l.version) + "; 2.18 or newer is needed");
      }
    }
  }
  if (version != nullptr) *version = l.version;
  return l.status;
}

struct NcclComm::Impl {
  std::mutex mu;  // guards comm/aborted and serializes our NCCL calls on this communicator
  NcclCommT comm = nullptr;
  bool aborted = false;
  int device = 0;
  int rank = 0;
  int world = 1;
  // The watchdog: events of enqueued calls with their deadlines, checked in order.
  struct Pending {
    void* event;
    Clock::time_point deadline;
  };
  std::deque<Pending> pending;
  std::condition_variable cv;
  bool stop = false;
  std::thread watchdog;
};

#if !defined(LLMK_HAVE_CUDA)

Status NcclComm::open(Communicator*, int, Clock::time_point, std::unique_ptr<NcclComm>*) {
  return unsupported("allReduce(cuda): this build of llm-kernels has no CUDA backend");
}
NcclComm::~NcclComm() = default;
Status NcclComm::collective(const CollectiveArgs& a, void*, int64_t) {
  return unsupported(std::string(collective_name(a.kind)) + "(cuda): this build of llm-kernels has no CUDA backend");
}
Status NcclComm::check() { return fail_.failed() ? fail_.status() : Status::OK(); }
void NcclComm::abort(Status why) { (void)fail_.set(std::move(why)); }

#else

namespace {

// Polls a nonblocking communicator until it leaves ncclInProgress or the deadline passes (mu held by the caller).
int wait_ready(const NcclApi& api, NcclCommT comm, Clock::time_point deadline, bool* timed_out) {
  int state = kNcclInProgress;
  auto sleep = std::chrono::microseconds(20);
  for (;;) {
    const int rc = api.CommGetAsyncError(comm, &state);
    if (rc != kNcclSuccess) return rc;
    if (state != kNcclInProgress) return state;
    if (Clock::now() >= deadline) {
      *timed_out = true;
      return kNcclInProgress;
    }
    std::this_thread::sleep_for(sleep);
    if (sleep < std::chrono::milliseconds(1)) sleep *= 2;
  }
}

}  // namespace

Status NcclComm::open(Communicator* cpu, int device, Clock::time_point deadline, std::unique_ptr<NcclComm>* out) {
  LK_RETURN_IF_ERROR(nccl_load());
  const NcclApi& api = library().api;
  NcclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (cpu->rank() == 0) {
    const int rc = api.GetUniqueId(&id);
    if (rc != kNcclSuccess) return Status(Code::device, "initProcessGroup(nccl): ncclGetUniqueId: " + nccl_text(api, rc));
  }
  CallDesc d;
  d.kind = Collective::broadcast;
  d.dtype = DType::f32;
  d.count = sizeof(NcclUniqueId) / 4;
  d.root = 0;
  LK_RETURN_IF_ERROR(cpu->call(&id, &id, d, deadline));

  if (cudaSetDevice(device) != cudaSuccess) {
    const cudaError_t e = cudaGetLastError();
    return Status(Code::device, "initProcessGroup(nccl): cudaSetDevice(" + std::to_string(device) + "): " + cudaGetErrorString(e));
  }
  std::unique_ptr<NcclComm> c(new NcclComm());
  c->impl_.reset(new Impl());
  Impl& im = *c->impl_;
  im.device = device;
  im.rank = cpu->rank();
  im.world = cpu->world();
  NcclConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.size = sizeof(NcclConfig);
  cfg.magic = kNcclConfigMagic;
  cfg.version = kNcclConfigVersion;
  cfg.blocking = 0;  // nonblocking: init and calls return ncclInProgress instead of waiting without a deadline
  cfg.cgaClusterSize = cfg.minCTAs = cfg.maxCTAs = cfg.splitShare = INT_MIN;
  cfg.netName = nullptr;
  int rc = api.CommInitRankConfig(&im.comm, cpu->world(), id, cpu->rank(), &cfg);
  bool timed_out = false;
  if (rc == kNcclSuccess || rc == kNcclInProgress) rc = wait_ready(api, im.comm, deadline, &timed_out);
  if (rc != kNcclSuccess || timed_out) {
    if (im.comm != nullptr) (void)api.CommAbort(im.comm);
    im.comm = nullptr;
    if (timed_out) return Status(Code::timeout, "initProcessGroup(nccl): ncclCommInitRankConfig did not finish before the deadline");
    return Status(rc == kNcclRemoteError ? Code::peer_lost : Code::device, "initProcessGroup(nccl): ncclCommInitRankConfig: " + nccl_text(api, rc));
  }
  NcclComm* self = c.get();
  im.watchdog = std::thread([self]() {
    Impl& w = *self->impl_;
    const NcclApi& a = library().api;
    (void)cudaSetDevice(w.device);
    std::unique_lock<std::mutex> lock(w.mu);
    while (!w.stop) {
      if (w.pending.empty() || w.aborted) {
        w.cv.wait_for(lock, std::chrono::milliseconds(100));
        continue;
      }
      const Impl::Pending p = w.pending.front();
      const cudaError_t q = cudaEventQuery(static_cast<cudaEvent_t>(p.event));
      int async = kNcclSuccess;
      (void)a.CommGetAsyncError(w.comm, &async);
      if (q == cudaSuccess) {
        (void)cudaEventDestroy(static_cast<cudaEvent_t>(p.event));
        w.pending.pop_front();
        continue;
      }
      Status s;
      if (async != kNcclSuccess && async != kNcclInProgress)
        s = Status(async == kNcclRemoteError ? Code::peer_lost : Code::device, "collective(nccl): rank " + std::to_string(w.rank) + ": " + nccl_text(a, async));
      else if (q != cudaErrorNotReady)
        s = Status(Code::device, std::string("collective(nccl): cudaEventQuery: ") + cudaGetErrorString(q));
      else if (Clock::now() >= p.deadline)
        s = Status(Code::timeout, "collective(nccl): rank " + std::to_string(w.rank) + ": the collective did not finish before its deadline (communicator aborted)");
      if (!s.ok()) {
        (void)self->fail_.set(s);
        (void)a.CommAbort(w.comm);  // NCCL's kernels exit; the stream drains
        w.comm = nullptr;
        w.aborted = true;
        continue;
      }
      w.cv.wait_for(lock, std::chrono::microseconds(200));
    }
  });
  *out = std::move(c);
  return Status::OK();
}

NcclComm::~NcclComm() {
  if (!impl_) return;
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lock(im.mu);
    im.stop = true;
  }
  im.cv.notify_all();
  if (im.watchdog.joinable()) im.watchdog.join();
  const NcclApi& api = library().api;
  (void)cudaSetDevice(im.device);
  for (const auto& p : im.pending) (void)cudaEventDestroy(static_cast<cudaEvent_t>(p.event));
  if (im.comm != nullptr && !im.aborted) {
    // Finalize flushes queued work; bounded, then abort.
    bool timed_out = false;
    int rc = fail_.failed() ? kNcclRemoteError : api.CommFinalize(im.comm);
    if (rc == kNcclSuccess || rc == kNcclInProgress) rc = wait_ready(api, im.comm, Clock::now() + std::chrono::seconds(10), &timed_out);
    if (rc == kNcclSuccess && !timed_out)
      (void)api.CommDestroy(im.comm);
    else
      (void)api.CommAbort(im.comm);
  }
  (void)cudaGetLastError();
}

Status NcclComm::collective(const CollectiveArgs& a, void* stream, int64_t timeout_ms) {
  const std::string fn = std::string(collective_name(a.kind)) + "(nccl)";
  if (fail_.failed()) return fail_.status();
  const int type = a.dt == DType::f32 ? kNcclFloat32 : a.dt == DType::f16 ? kNcclFloat16 : a.dt == DType::bf16 ? kNcclBfloat16 : -1;
  if (type < 0) return type_error(fn + ": expected dtype f32, f16 or bf16, got " + dtype_name(a.dt));
  if (a.kind != Collective::all_reduce && a.kind != Collective::all_gather && a.kind != Collective::reduce_scatter &&
      a.kind != Collective::broadcast)
    return internal_error(fn + ": not a collective of NCCL's");
  Impl& im = *impl_;
  if (a.kind == Collective::all_gather && a.inner != 0 && (a.inner > a.count || a.count % a.inner != 0))
    return range_error(fn + ": expected an inner size dividing " + std::to_string(a.count) + ", got " + std::to_string(a.inner));
  if (a.kind == Collective::broadcast && (a.root < 0 || a.root >= im.world))
    return range_error(fn + ": expected a root in [0, " + std::to_string(im.world) + "), got " + std::to_string(a.root));
  const cudaStream_t cs = static_cast<cudaStream_t>(stream);
  const size_t es = dtype_size(a.dt);
  // all_gather along an inner dimension: NCCL gathers [R][count]; a scratch buffer takes it, and R strided copies
  // put rank r's rows of `inner` at column block r of out [count / inner][R][inner]. The scratch comes from the
  // device's stream-ordered pool, whose stream must be the one the gather runs on (it is: the addon passes the
  // device's stream), or the free could overtake the gather.
  const bool reorder = a.kind == Collective::all_gather && a.inner != 0 && a.inner < a.count && im.world > 1;
  void* scratch = nullptr;
  if (reorder) {
    void* ds = nullptr;
    LK_RETURN_IF_ERROR(cuda_stream(im.device, &ds));
    if (ds != stream) return internal_error(fn + ": an inner-dimension gather must run on the device's own stream");
    LK_RETURN_IF_ERROR(cuda_malloc(im.device, a.count * es * static_cast<size_t>(im.world), &scratch));
  }
  Status s = enqueue_locked(a, type, scratch, cs, timeout_ms);
  // Freed after the lock is dropped: without a memory pool cuda_free is a cudaFree, which waits for the device, and
  // the watchdog needs the lock to abort a gather that waits for a dead peer. Stream-ordered otherwise: after the
  // copies.
  if (scratch != nullptr) cuda_free(im.device, scratch);
  return s;
}

// The NCCL call, the reorder copies and the watchdog's event, under the communicator's lock.
Status NcclComm::enqueue_locked(const CollectiveArgs& a, int type, void* scratch, void* stream, int64_t timeout_ms) {
  const std::string fn = std::string(collective_name(a.kind)) + "(nccl)";
  Impl& im = *impl_;
  const NcclApi& api = library().api;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const cudaStream_t cs = static_cast<cudaStream_t>(stream);
  const size_t es = dtype_size(a.dt);
  std::lock_guard<std::mutex> lock(im.mu);
  if (im.aborted || im.comm == nullptr) return fail_.failed() ? fail_.status() : internal_error(fn + ": communicator aborted");
  if (cudaSetDevice(im.device) != cudaSuccess) return Status(Code::device, fn + ": cudaSetDevice");
  const int op = a.op == ReduceOp::max ? kNcclMax : kNcclSum;
  int rc = kNcclSuccess;
  switch (a.kind) {
    case Collective::all_gather:
      rc = api.AllGather(a.in, scratch != nullptr ? scratch : a.out, a.count, type, im.comm, stream);
      break;
    case Collective::reduce_scatter:
      rc = api.ReduceScatter(a.in, a.out, a.count, type, op, im.comm, stream);
      break;
    case Collective::broadcast:
      rc = api.Broadcast(a.in, a.out, a.count, type, a.root, im.comm, stream);
      break;
    default:  // all_reduce (collective() refused the rest)
      rc = api.AllReduce(a.in, a.out, a.count, type, op, im.comm, stream);
  }
  bool timed_out = false;
  if (rc == kNcclInProgress) rc = wait_ready(api, im.comm, deadline, &timed_out);
  if (rc != kNcclSuccess || timed_out) {
    Status s = timed_out ? Status(Code::timeout, fn + ": the NCCL call could not be enqueued before the deadline")
                         : Status(rc == kNcclRemoteError ? Code::peer_lost : Code::device, fn + ": " + nccl_text(api, rc));
    (void)api.CommAbort(im.comm);
    im.comm = nullptr;
    im.aborted = true;
    return fail_.set(s);
  }
  if (scratch != nullptr) {
    const size_t row = a.inner * es, rows = a.count / a.inner;
    cudaError_t e = cudaSuccess;
    for (int r = 0; r < im.world && e == cudaSuccess; ++r)
      e = cudaMemcpy2DAsync(static_cast<char*>(a.out) + static_cast<size_t>(r) * row, row * static_cast<size_t>(im.world),
                            static_cast<const char*>(scratch) + static_cast<size_t>(r) * a.count * es, row, row, rows,
                            cudaMemcpyDeviceToDevice, cs);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return fail_.set(Status(Code::device, fn + ": cudaMemcpy2DAsync (reordering the gathered blocks): " + cudaGetErrorString(e)));
    }
  }
  cudaEvent_t ev = nullptr;
  if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess || cudaEventRecord(ev, cs) != cudaSuccess) {
    const cudaError_t e = cudaGetLastError();
    if (ev != nullptr) (void)cudaEventDestroy(ev);
    return fail_.set(Status(Code::device, fn + ": cudaEventRecord: " + cudaGetErrorString(e)));
  }
  im.pending.push_back({ev, deadline});
  im.cv.notify_all();
  return Status::OK();
}

Status NcclComm::check() { return fail_.failed() ? fail_.status() : Status::OK(); }

void NcclComm::abort(Status why) {
  (void)fail_.set(std::move(why));
  if (!impl_) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->comm != nullptr && !impl_->aborted) {
    (void)library().api.CommAbort(impl_->comm);
    impl_->comm = nullptr;
    impl_->aborted = true;
  }
}

#endif

}  // namespace lk::dist
