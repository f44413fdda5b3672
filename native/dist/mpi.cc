// mpi: the Communicator over Open MPI, loaded at run time. No MPI header or library is needed to build: libmpi is
// dlopen'ed when a process group is opened (`library`, else libmpi.so.40, then libmpi.so) with RTLD_NOW |
// RTLD_GLOBAL (Open MPI's plugins, mca_*.so, resolve libmpi's symbols through the global namespace).
//
// The ABI is Open MPI's (checked against mpi.h of Open MPI 4.1.4, Debian libopenmpi-dev 4.1.4-3): handles are
// pointers to opaque structs, and the predefined handles are the addresses of global objects (MPI_COMM_WORLD is
// &ompi_mpi_comm_world, MPI_BYTE &ompi_mpi_byte, MPI_ERRORS_RETURN &ompi_mpi_errors_return), which dlsym gives us;
// MPI_SUCCESS 0, MPI_THREAD_SERIALIZED 2, MPI_STATUS_IGNORE a null pointer, MPI_IN_PLACE (void*)1,
// MPI_MAX_ERROR_STRING 256, MPI_ERR_NO_MEM 39. MPICH and its derivatives (Intel MPI, MVAPICH, Cray) are NOT
// supported: their handles are integers (MPI_COMM_WORLD is 0x44000000) and their constants differ, so the same
// machine code cannot serve both ABIs; the loader recognises a non-Open-MPI library by the missing
// ompi_mpi_comm_world symbol and says so.
//
// What MPI does here: it only moves bytes (MPI_BYTE). Every reduction is lk::dist::reduce() on our side, over all
// ranks' contributions in rank order, so the results are bit-identical on every rank and equal to the shm backend's
// (comm.h). The algorithms, all nonblocking MPI collectives on our own duplicate of MPI_COMM_WORLD:
//   every call     Iallgather of each rank's CallDesc (56 bytes) first; any difference -> Code::mismatch, before
//                  any data moves (one small collective per call: the price of an error instead of a hang or an
//                  overrun when ranks disagree).
//   allReduce      <= 64 KiB per rank: Iallgather of every input into a scratch [R x n], then every rank reduces
//                  all R rows itself (same code, same order, same bits). Larger: in chunks of <= 16 MiB, a
//                  reduce-scatter by Ialltoallv (rank r receives block r of every rank; blocks as even as
//                  possible), a local reduce of the R rows of block r, and an in-place Iallgatherv of the reduced
//                  blocks.
//   reduceScatter  Ialltoallv (rank r receives block r of every rank) + local reduce, in chunks.
//   allGather      Iallgather, in chunks.    broadcast  Ibcast, in chunks.    barrier  Ibarrier.
// MPI counts and displacements are int: every message and displacement is kept <= max_message (INT_MAX, or
// LLMK_MPI_MAX_MESSAGE, a test knob to exercise the chunked paths with small data) by the chunking; reduceScatter
// packs its send blocks into scratch when their strided displacements would not fit.
//
// Deadlines: every operation is started nonblocking and completed by polling MPI_Test (spinning with sched_yield for
// about a millisecond, longer for large messages, then sleeping 50 us doubling to 1 ms) until the call's deadline.
// Past it -> Code::timeout. An error from MPI -> Code::peer_lost with MPI's text. A request that did not complete
// cannot be cancelled (MPI forbids cancelling a collective), so it is abandoned, and from then on this process
// makes no MPI call at all ("poisoned"): MPI would otherwise keep progressing the abandoned request and write into
// buffers it still owns. For the same reason MPI never writes into the caller's output directly: it receives into
// scratch buffers owned by the communicator (leaked, never freed, once a request on them is abandoned) and we copy
// to `out`; MPI does read the caller's inputs directly (a peer that reads them after an abandon, through CMA or
// RDMA, gets an error in its own process, never ours). In a poisoned process every communicator fails at once,
// the destructor neither frees the MPI communicator nor finalizes MPI (both could wait on the lost peer), and a
// new open fails with Code::unsupported: restart the process group.
//
// Threads: MPI is initialized with MPI_THREAD_SERIALIZED (the addon opens on a helper thread and runs collectives
// on the CPU stream's executor thread); every MPI call in this file holds one process-wide mutex, so two
// communicators used from two threads still never call MPI concurrently.
//
// Lifetime: MPI is finalized when the last communicator of this file closes, and only if open_mpi initialized it
// (an application that initialized MPI itself finalizes it; after that, calls fail instead of letting Open MPI
// abort the process). MPI cannot be initialized twice in one process, so an open after that finalize is
// Code::unsupported. The library is never dlclose'd (Open MPI does not support unloading). MPI_Init_thread blocks
// in the launcher's rendezvous until every rank has called it, with no timeout of its own: it runs on a detached
// thread that the open waits for until its deadline (a default-constructed deadline means 60 s); the communicator
// duplication after it is MPI_Comm_idup, polled. A poisoned process exits without MPI_Finalize, which mpirun
// reports as an abnormal termination: right, since a collective failed.
//
// Running: `mpirun --allow-run-as-root --oversubscribe -np 2 build/tools/lk_dist_check --backend mpi`
// (--allow-run-as-root only as root; --oversubscribe when there are more ranks than cores). Open MPI's
// shared-memory transport copies large messages with cross-memory attach (process_vm_readv, "CMA"); where the
// ptrace policy forbids it (Yama ptrace_scope >= 1 between non-root processes, Docker's default seccomp profile)
// set OMPI_MCA_btl_vader_single_copy_mechanism=none (copies through the shared segment). In the development
// container (Debian 12, Open MPI 4.1.4, root) CMA works and both settings pass with the same speed. With Open MPI's
// launcher a rank that dies makes mpirun kill the whole job, so the survivors mostly see Code::timeout or an MPI
// error (Code::peer_lost) only if they get to it first.
//
// Measured (lk_dist_check --bench, 2 ranks on a 2-core VM, f32, median): barrier 1.7 us (the CallDesc exchange
// included), allReduce 4 KiB 5.4 us, 64 KiB 20 us, 1 MiB 170 us (6.2 GB/s), 64 MiB 32 ms (2.1 GB/s; the shm
// backend 15 ms; one memcpy of 64 MiB takes 4.7 ms here). The copy from scratch to `out` (the price of never
// letting MPI write the caller's memory) is one of those memcpys per call.
#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "comm.h"
#include "reduce.h"

namespace lk::dist {

namespace {

// ---- The Open MPI ABI (mpi.h of Open MPI 4.1; see the file header) ----
struct ompi_communicator_t;
struct ompi_datatype_t;
struct ompi_errhandler_t;
struct ompi_request_t;
struct ompi_status_public_t;
using MPI_Comm = ompi_communicator_t*;
using MPI_Datatype = ompi_datatype_t*;
using MPI_Errhandler = ompi_errhandler_t*;
using MPI_Request = ompi_request_t*;
using MPI_Status = ompi_status_public_t;

constexpr int kMpiSuccess = 0;            // MPI_SUCCESS
constexpr int kMpiThreadSerialized = 2;   // MPI_THREAD_SERIALIZED (SINGLE 0, FUNNELED 1, SERIALIZED 2, MULTIPLE 3)
constexpr int kMpiMaxErrorString = 256;   // MPI_MAX_ERROR_STRING (OPAL_MAX_ERROR_STRING)
constexpr int kMpiErrNoMem = 39;          // MPI_ERR_NO_MEM (an error class)
MPI_Status* const kMpiStatusIgnore = nullptr;       // MPI_STATUS_IGNORE
void* const kMpiInPlace = reinterpret_cast<void*>(1);  // MPI_IN_PLACE

// The functions and predefined handles this file uses, resolved once per process.
struct MpiApi {
  MPI_Comm comm_world = nullptr;        // &ompi_mpi_comm_world
  MPI_Datatype byte = nullptr;          // &ompi_mpi_byte
  MPI_Errhandler errors_return = nullptr;  // &ompi_mpi_errors_return
  int (*Initialized)(int*) = nullptr;
  int (*Finalized)(int*) = nullptr;
  int (*Init_thread)(int*, char***, int, int*) = nullptr;
  int (*Query_thread)(int*) = nullptr;
  int (*Finalize)() = nullptr;
  int (*Comm_rank)(MPI_Comm, int*) = nullptr;
  int (*Comm_size)(MPI_Comm, int*) = nullptr;
  int (*Comm_idup)(MPI_Comm, MPI_Comm*, MPI_Request*) = nullptr;
  int (*Comm_free)(MPI_Comm*) = nullptr;
  int (*Comm_set_errhandler)(MPI_Comm, MPI_Errhandler) = nullptr;
  int (*Error_string)(int, char*, int*) = nullptr;
  int (*Error_class)(int, int*) = nullptr;
  int (*Get_library_version)(char*, int*) = nullptr;
  int (*Iallgather)(const void*, int, MPI_Datatype, void*, int, MPI_Datatype, MPI_Comm, MPI_Request*) = nullptr;
  int (*Iallgatherv)(const void*, int, MPI_Datatype, void*, const int*, const int*, MPI_Datatype, MPI_Comm,
                     MPI_Request*) = nullptr;
  int (*Ialltoallv)(const void*, const int*, const int*, MPI_Datatype, void*, const int*, const int*, MPI_Datatype,
                    MPI_Comm, MPI_Request*) = nullptr;
  int (*Ibcast)(void*, int, MPI_Datatype, int, MPI_Comm, MPI_Request*) = nullptr;
  int (*Ibarrier)(MPI_Comm, MPI_Request*) = nullptr;
  int (*Test)(MPI_Request*, int*, MPI_Status*) = nullptr;
};

// Process-wide state. Never destroyed: the library stays loaded for the process, and a communicator destroyed
// during static destruction must still find it.
struct Process {
  std::mutex mu;       // guards this struct and serializes every MPI call (MPI_THREAD_SERIALIZED)
  std::mutex open_mu;  // serializes open_mpi (taken before mu, never while holding it)
  bool loaded = false;
  void* handle = nullptr;
  std::string library;  // the name that loaded
  std::string version;  // MPI_Get_library_version, first line
  MpiApi api;
  bool we_initialized = false;  // open_mpi called MPI_Init_thread
  bool we_finalized = false;    // ... and MPI_Finalize
  bool poisoned = false;        // a request was abandoned: no MPI call any more (file header)
  std::string poison_reason;
  int live = 0;                 // open communicators of this file
};

Process& process() {
  static Process* p = new Process;
  return *p;
}

constexpr size_t kSmallAllReduce = 64 << 10;  // bytes per rank up to which allReduce is gather + local reduce
constexpr size_t kChunkBytes = 16 << 20;      // data per sub-collective of the chunked paths (bounds the scratch)
constexpr int kMaxRanksListed = 8;            // per distinct call in a mismatch message

std::string mpi_error_text(const MpiApi& api, int rc) {
  // Called with process().mu held.
  char buf[kMpiMaxErrorString + 1] = {0};
  int len = 0;
  std::string s;
  if (api.Error_string != nullptr && api.Error_string(rc, buf, &len) == kMpiSuccess && len > 0)
    s.assign(buf, static_cast<size_t>(std::min(len, kMpiMaxErrorString)));
  else
    s = "MPI error";
  return s + " (code " + std::to_string(rc) + ")";
}

template <class F>
bool resolve(void* h, const char* name, F* fn, std::string* missing) {
  void* p = dlsym(h, name);
  if (p == nullptr) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  *fn = reinterpret_cast<F>(p);
  return true;
}

// Loads libmpi and resolves the API (process().mu held).
Status load_library(Process& p, const std::string& library) {
  if (p.loaded) {
    if (!library.empty() && library != p.library)
      return unsupported("initProcessGroup(mpi): MPI is already loaded from " + p.library +
                         " in this process; cannot load " + library + " as well (one MPI library per process)");
    return Status::OK();
  }
  std::vector<std::string> names;
  if (!library.empty())
    names.push_back(library);
  else
    names = {"libmpi.so.40", "libmpi.so"};
  std::string tried;
  void* h = nullptr;
  std::string loaded_name;
  for (const std::string& n : names) {
    h = dlopen(n.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (h != nullptr) {
      loaded_name = n;
      break;
    }
    const char* e = dlerror();
    tried += "\n  " + n + ": " + (e != nullptr ? e : "not found");
  }
  if (h == nullptr)
    return unsupported("initProcessGroup(mpi): cannot load the MPI library; tried:" + tried +
                       "\nInstall Open MPI (Debian/Ubuntu: apt-get install openmpi-bin) or pass the path of Open MPI's "
                       "libmpi.so.40 as the library option");
  MpiApi a;
  std::string missing;
  void* world = dlsym(h, "ompi_mpi_comm_world");
  if (world == nullptr) {
    // Keep h loaded: unloading an MPI library is not supported by any implementation.
    return unsupported("initProcessGroup(mpi): " + loaded_name +
                       " is not Open MPI (no symbol ompi_mpi_comm_world): only the Open MPI ABI is supported (MPICH, "
                       "Intel MPI and MVAPICH use integer handles); install Open MPI (apt-get install openmpi-bin) "
                       "or pass the path of Open MPI's libmpi.so.40");
  }
  a.comm_world = static_cast<MPI_Comm>(world);
  a.byte = static_cast<MPI_Datatype>(dlsym(h, "ompi_mpi_byte"));
  a.errors_return = static_cast<MPI_Errhandler>(dlsym(h, "ompi_mpi_errors_return"));
  if (a.byte == nullptr) missing += "ompi_mpi_byte";
  if (a.errors_return == nullptr) missing += std::string(missing.empty() ? "" : ", ") + "ompi_mpi_errors_return";
  resolve(h, "MPI_Initialized", &a.Initialized, &missing);
  resolve(h, "MPI_Finalized", &a.Finalized, &missing);
  resolve(h, "MPI_Init_thread", &a.Init_thread, &missing);
  resolve(h, "MPI_Query_thread", &a.Query_thread, &missing);
  resolve(h, "MPI_Finalize", &a.Finalize, &missing);
  resolve(h, "MPI_Comm_rank", &a.Comm_rank, &missing);
  resolve(h, "MPI_Comm_size", &a.Comm_size, &missing);
  resolve(h, "MPI_Comm_idup", &a.Comm_idup, &missing);
  resolve(h, "MPI_Comm_free", &a.Comm_free, &missing);
  resolve(h, "MPI_Comm_set_errhandler", &a.Comm_set_errhandler, &missing);
  resolve(h, "MPI_Error_string", &a.Error_string, &missing);
  resolve(h, "MPI_Error_class", &a.Error_class, &missing);
  resolve(h, "MPI_Get_library_version", &a.Get_library_version, &missing);
  resolve(h, "MPI_Iallgather", &a.Iallgather, &missing);
  resolve(h, "MPI_Iallgatherv", &a.Iallgatherv, &missing);
  resolve(h, "MPI_Ialltoallv", &a.Ialltoallv, &missing);
  resolve(h, "MPI_Ibcast", &a.Ibcast, &missing);
  resolve(h, "MPI_Ibarrier", &a.Ibarrier, &missing);
  resolve(h, "MPI_Test", &a.Test, &missing);
  if (!missing.empty())
    return unsupported("initProcessGroup(mpi): " + loaded_name + " lacks " + missing +
                       " (an Open MPI older than 3.0, or not Open MPI); install Open MPI >= 3 (apt-get install "
                       "openmpi-bin)");
  p.handle = h;
  p.library = loaded_name;
  p.api = a;
  p.loaded = true;
  char ver[3000] = {0};  // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI; generous for others
  int len = 0;
  if (a.Get_library_version(ver, &len) == kMpiSuccess) {
    std::string v(ver, static_cast<size_t>(std::max(0, std::min(len, static_cast<int>(sizeof(ver)) - 1))));
    const size_t nl = v.find_first_of("\r\n,");
    p.version = v.substr(0, nl);
  }
  return Status::OK();
}

// A 64-byte aligned byte buffer owned by a communicator; leak() keeps it allocated forever (an abandoned MPI
// request may still write into it).
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (!leaked_) std::free(p_);
  }
  Status reserve(size_t bytes, const char* what) {
    if (bytes <= cap_) return Status::OK();
    const size_t want = std::max(bytes, cap_ + cap_ / 2);
    const size_t rounded = (want + 63) / 64 * 64;
    void* q = std::aligned_alloc(64, rounded);
    if (q == nullptr)
      return Status(Code::oom, std::string("mpi: cannot allocate ") + std::to_string(rounded) + " bytes of " + what +
                                   " scratch");
    std::free(p_);
    p_ = static_cast<uint8_t*>(q);
    cap_ = rounded;
    return Status::OK();
  }
  uint8_t* data() { return p_; }
  void leak() { leaked_ = true; }

 private:
  uint8_t* p_ = nullptr;
  size_t cap_ = 0;
  bool leaked_ = false;
};

// What every rank sends before the data: its CallDesc, normalized (fields a collective does not use are 0), plus
// the chunk size, which decides the sequence of sub-collectives and so must agree too. No padding: compared as
// fields, sent as bytes.
struct WireDesc {
  uint64_t seq, count, site, inner, chunk;
  uint32_t kind, op, dtype;
  int32_t root;
};
static_assert(sizeof(WireDesc) == 56, "WireDesc must have no padding");

WireDesc to_wire(const CallDesc& d, size_t chunk) {
  WireDesc w{};
  w.seq = d.seq;
  w.kind = static_cast<uint32_t>(d.kind);
  w.site = d.site;
  w.chunk = chunk;
  if (d.kind != Collective::barrier) {
    w.count = d.count;
    w.dtype = static_cast<uint32_t>(d.dtype);
  }
  if (d.kind == Collective::all_gather) w.inner = d.inner;
  if (d.kind == Collective::all_reduce || d.kind == Collective::reduce_scatter) w.op = static_cast<uint32_t>(d.op);
  if (d.kind == Collective::broadcast) w.root = d.root;
  return w;
}

bool same(const WireDesc& a, const WireDesc& b) {
  // site 0 = not checked (comm.h): compare only when both ranks recorded one.
  const bool site_ok = a.site == 0 || b.site == 0 || a.site == b.site;
  return a.seq == b.seq && a.count == b.count && a.inner == b.inner && a.chunk == b.chunk && a.kind == b.kind &&
         a.op == b.op && a.dtype == b.dtype && a.root == b.root && site_ok;
}

std::string describe_wire(const WireDesc& w, const WireDesc& mine) {
  CallDesc d;
  d.seq = w.seq;
  d.count = w.count;
  d.inner = w.inner;
  d.kind = static_cast<Collective>(w.kind);
  d.op = static_cast<ReduceOp>(w.op);
  d.dtype = static_cast<DType>(w.dtype);
  d.root = w.root;
  std::string s = describe(d);
  if (w.site != mine.site && w.site != 0 && mine.site != 0) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), " [site %016llx]", static_cast<unsigned long long>(w.site));
    s += buf;
  }
  if (w.chunk != mine.chunk) s += " [chunk " + std::to_string(w.chunk) + " bytes: LLMK_MPI_MAX_MESSAGE differs]";
  return s;
}

std::string ms_text(Clock::duration d) {
  const auto ms = std::chrono::round<std::chrono::milliseconds>(d).count();
  return std::to_string(ms < 0 ? 0 : ms) + " ms";
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int rank, int world, MPI_Comm comm, size_t max_message)
      : Communicator(rank, world), comm_(comm), max_message_(max_message),
        chunk_(std::min(kChunkBytes, max_message)) {}

  ~MpiCommunicator() override {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mu);
    if (abandoned_) {
      // An abandoned request may still write into these (file header).
      descs_.leak();
      recv_.leak();
      gather_.leak();
      pack_.leak();
      send_desc_.leak();
    }
    --p.live;
    if (p.poisoned) return;  // no MPI call any more: Comm_free and Finalize could wait on the lost peer
    // After MPI_Finalize (the application's own) Open MPI aborts the process on any call, Comm_free included.
    int finalized = 0;
    p.api.Finalized(&finalized);
    if (finalized) return;
    p.api.Comm_free(&comm_);  // local; an error here has no one to report to
    if (p.live == 0 && p.we_initialized && !p.we_finalized) {
      p.api.Finalize();
      p.we_finalized = true;
    }
  }

  const char* backend() const override { return "mpi"; }

 protected:
  Status run_impl(const void* in, void* out, const CallDesc& d, Clock::time_point deadline) override;

 private:
  // One call in progress: what the messages need.
  struct Ctx {
    const CallDesc* d;
    Clock::time_point start, deadline;
    const char* phase;
    size_t chunk_index, chunks;
  };

  Status check_int(size_t v, int* out) const {
    if (v > max_message_ || v > static_cast<size_t>(INT_MAX))
      return internal_error("mpi: message of " + std::to_string(v) + " bytes exceeds the limit " +
                            std::to_string(max_message_) + " (chunking bug)");
    *out = static_cast<int>(v);
    return Status::OK();
  }
  Status started(int rc, const Ctx& c, const char* fn);
  Status wait(MPI_Request* req, const Ctx& c, size_t bytes);
  Status exchange_descs(const CallDesc& d, Ctx* c);
  Status all_reduce(const void* in, void* out, const CallDesc& d, Ctx* c);
  Status reduce_scatter(const void* in, void* out, const CallDesc& d, Ctx* c);
  Status all_gather(const void* in, void* out, const CallDesc& d, Ctx* c);
  Status broadcast(const void* in, void* out, const CallDesc& d, Ctx* c);
  Status barrier(Ctx* c);
  // Starts and completes one MPI_Ialltoallv of bytes (counts and displacements in bytes, already int-checked).
  Status alltoallv(const void* sendbuf, const std::vector<int>& scounts, const std::vector<int>& sdispls,
                   void* recvbuf, const std::vector<int>& rcounts, const std::vector<int>& rdispls, Ctx* c,
                   size_t bytes);

  MPI_Comm comm_;
  size_t max_message_;  // largest count or displacement given to MPI, in bytes
  size_t chunk_;        // data per sub-collective
  bool abandoned_ = false;
  Scratch send_desc_, descs_, recv_, gather_, pack_;
  std::vector<int> scounts_, sdispls_, rcounts_, rdispls_;
  std::vector<const void*> srcs_;
};

Status MpiCommunicator::started(int rc, const Ctx& c, const char* fn) {
  if (rc == kMpiSuccess) return Status::OK();
  Process& p = process();
  std::string text;
  int cls = rc;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    text = mpi_error_text(p.api, rc);
    p.api.Error_class(rc, &cls);
  }
  return Status(cls == kMpiErrNoMem ? Code::oom : Code::peer_lost,
                describe(*c.d) + ": " + fn + " failed (" + c.phase + "): " + text);
}

Status MpiCommunicator::wait(MPI_Request* req, const Ctx& c, size_t bytes) {
  Process& p = process();
  const Clock::time_point wait_start = Clock::now();
  // Spin (with yields, so ranks oversubscribing the cores still run) while a message of this size could plausibly
  // be in flight at >= 1 GB/s: MPI's shared-memory transport only progresses inside MPI calls, so sleeping during
  // a large transfer would stall it. Then back off to sleeps, for a peer that is merely late.
  const auto spin = std::chrono::microseconds(1000) + std::chrono::nanoseconds(bytes);
  auto sleep = std::chrono::microseconds(50);
  for (;;) {
    int flag = 0, rc = kMpiSuccess;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      if (p.poisoned) {
        abandoned_ = true;
        return Status(Code::peer_lost, describe(*c.d) + ": MPI is unusable in this process: " + p.poison_reason);
      }
      rc = p.api.Test(req, &flag, kMpiStatusIgnore);
      if (rc != kMpiSuccess) {
        abandoned_ = true;
        p.poisoned = true;
        std::string text = mpi_error_text(p.api, rc);
        p.poison_reason = "a collective failed with " + text;
        return Status(Code::peer_lost, describe(*c.d) + ": MPI reported an error (" + c.phase + "): " + text +
                                           "; a rank exited or its link broke (or, a bug, the ranks' messages "
                                           "disagree). The communicator is failed; restart the process group");
      }
    }
    if (flag) return Status::OK();
    if (fail_.failed()) {
      // abort() from another thread: the request is abandoned like a timeout's.
      std::lock_guard<std::mutex> lock(p.mu);
      abandoned_ = true;
      p.poisoned = true;
      p.poison_reason = "a collective was aborted while in flight (" + describe(*c.d) + ")";
      return fail_.status();
    }
    const Clock::time_point now = Clock::now();
    if (now >= c.deadline) {
      std::lock_guard<std::mutex> lock(p.mu);
      abandoned_ = true;
      p.poisoned = true;
      p.poison_reason = describe(*c.d) + " timed out with a request in flight, which MPI cannot cancel";
      std::string where = c.phase;
      if (c.chunks > 1) where += ", chunk " + std::to_string(c.chunk_index + 1) + " of " + std::to_string(c.chunks);
      return Status(Code::timeout,
                    describe(*c.d) + ": no completion within " + ms_text(c.deadline - c.start) + " (" + where +
                        "; rank " + std::to_string(rank()) + " of " + std::to_string(world()) +
                        "): a rank is slow, stuck or gone, or did not make this call. The communicator is failed and "
                        "MPI cannot be used again in this process; restart the process group");
    }
    if (now - wait_start < spin) {
      sched_yield();
      continue;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(sleep, c.deadline - now));
    sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
  }
}

Status MpiCommunicator::exchange_descs(const CallDesc& d, Ctx* c) {
  c->phase = "comparing the ranks' calls";
  const int R = world();
  const WireDesc mine = to_wire(d, chunk_);
  LK_RETURN_IF_ERROR(send_desc_.reserve(sizeof(WireDesc), "call description"));
  LK_RETURN_IF_ERROR(descs_.reserve(sizeof(WireDesc) * static_cast<size_t>(R), "call description"));
  std::memcpy(send_desc_.data(), &mine, sizeof(mine));
  Process& p = process();
  MPI_Request req = nullptr;
  int rc;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    rc = p.api.Iallgather(send_desc_.data(), sizeof(WireDesc), p.api.byte, descs_.data(), sizeof(WireDesc),
                          p.api.byte, comm_, &req);
  }
  LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Iallgather"));
  LK_RETURN_IF_ERROR(wait(&req, *c, sizeof(WireDesc) * static_cast<size_t>(R)));
  std::vector<WireDesc> all(static_cast<size_t>(R));
  std::memcpy(all.data(), descs_.data(), sizeof(WireDesc) * all.size());
  bool ok = true;
  for (const WireDesc& w : all) ok = ok && same(w, mine);
  if (ok) return Status::OK();
  // Group the ranks by what they called: "rank 0: allReduce #3 (sum, 10 x f32); rank 1: allReduce #3 (sum, 11 x
  // f32)".
  std::string msg = describe(d) + ": the ranks made different calls (every rank must make the same calls in the "
                                  "same order):";
  std::vector<bool> done(all.size(), false);
  for (size_t i = 0; i < all.size(); ++i) {
    if (done[i]) continue;
    std::vector<size_t> group;
    for (size_t j = i; j < all.size(); ++j)
      if (!done[j] && std::memcmp(&all[j], &all[i], sizeof(WireDesc)) == 0) {
        done[j] = true;
        group.push_back(j);
      }
    msg += group.size() == 1 ? " rank " : " ranks ";
    for (size_t k = 0; k < group.size() && k < static_cast<size_t>(kMaxRanksListed); ++k)
      msg += (k ? "," : "") + std::to_string(group[k]);
    if (group.size() > static_cast<size_t>(kMaxRanksListed))
      msg += ",... (" + std::to_string(group.size()) + " ranks)";
    msg += ": " + describe_wire(all[i], mine) + ";";
  }
  msg.back() = '.';
  return Status(Code::mismatch, msg);
}

Status MpiCommunicator::alltoallv(const void* sendbuf, const std::vector<int>& scounts,
                                  const std::vector<int>& sdispls, void* recvbuf, const std::vector<int>& rcounts,
                                  const std::vector<int>& rdispls, Ctx* c, size_t bytes) {
  Process& p = process();
  MPI_Request req = nullptr;
  int rc;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    rc = p.api.Ialltoallv(sendbuf, scounts.data(), sdispls.data(), p.api.byte, recvbuf, rcounts.data(),
                          rdispls.data(), p.api.byte, comm_, &req);
  }
  LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Ialltoallv"));
  return wait(&req, *c, bytes);
}

// Blocks as even as possible: the first m % R blocks get one element more.
inline size_t block_len(size_t m, int R, int j) {
  const size_t base = m / static_cast<size_t>(R), extra = m % static_cast<size_t>(R);
  return base + (static_cast<size_t>(j) < extra ? 1 : 0);
}
inline size_t block_start(size_t m, int R, int j) {
  const size_t base = m / static_cast<size_t>(R), extra = m % static_cast<size_t>(R);
  const size_t uj = static_cast<size_t>(j);
  return uj * base + std::min(uj, extra);
}

Status MpiCommunicator::all_reduce(const void* in, void* out, const CallDesc& d, Ctx* c) {
  const int R = world(), me = rank();
  const size_t es = dtype_size(d.dtype), count = d.count, n = count * es;
  Process& p = process();
  srcs_.resize(static_cast<size_t>(R));
  c->phase = "moving data";
  if (n <= std::min(kSmallAllReduce, max_message_)) {
    // Small: gather everything, reduce everything, on every rank.
    LK_RETURN_IF_ERROR(recv_.reserve(n * static_cast<size_t>(R), "allReduce"));
    int ni = 0;
    LK_RETURN_IF_ERROR(check_int(n, &ni));
    MPI_Request req = nullptr;
    int rc;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      rc = p.api.Iallgather(in, ni, p.api.byte, recv_.data(), ni, p.api.byte, comm_, &req);
    }
    LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Iallgather"));
    LK_RETURN_IF_ERROR(wait(&req, *c, n * static_cast<size_t>(R)));
    for (int r = 0; r < R; ++r) srcs_[static_cast<size_t>(r)] = recv_.data() + static_cast<size_t>(r) * n;
    reduce(srcs_.data(), R, out, count, d.dtype, d.op);
    return Status::OK();
  }
  // Large: per chunk of m elements, reduce-scatter (alltoallv + local reduce) then allgatherv, in scratch.
  const size_t m_max = std::max<size_t>(1, chunk_ / es);
  c->chunks = (count + m_max - 1) / m_max;
  LK_RETURN_IF_ERROR(gather_.reserve(std::min(count, m_max) * es, "allReduce"));
  LK_RETURN_IF_ERROR(recv_.reserve((std::min(count, m_max) / static_cast<size_t>(R) + 1) * es * static_cast<size_t>(R),
                                   "allReduce"));
  scounts_.assign(static_cast<size_t>(R), 0);
  sdispls_.assign(static_cast<size_t>(R), 0);
  rcounts_.assign(static_cast<size_t>(R), 0);
  rdispls_.assign(static_cast<size_t>(R), 0);
  for (size_t i = 0, k = 0; i < count; i += m_max, ++k) {
    c->chunk_index = k;
    const size_t m = std::min(m_max, count - i);
    const size_t my_len = block_len(m, R, me), my_start = block_start(m, R, me);
    for (int j = 0; j < R; ++j) {
      const size_t uj = static_cast<size_t>(j);
      LK_RETURN_IF_ERROR(check_int(block_len(m, R, j) * es, &scounts_[uj]));
      LK_RETURN_IF_ERROR(check_int(block_start(m, R, j) * es, &sdispls_[uj]));
      LK_RETURN_IF_ERROR(check_int(my_len * es, &rcounts_[uj]));
      LK_RETURN_IF_ERROR(check_int(uj * my_len * es, &rdispls_[uj]));
    }
    c->phase = "reduce-scatter";
    LK_RETURN_IF_ERROR(alltoallv(static_cast<const uint8_t*>(in) + i * es, scounts_, sdispls_, recv_.data(),
                                 rcounts_, rdispls_, c, m * es));
    for (int r = 0; r < R; ++r)
      srcs_[static_cast<size_t>(r)] = recv_.data() + static_cast<size_t>(r) * my_len * es;
    reduce(srcs_.data(), R, gather_.data() + my_start * es, my_len, d.dtype, d.op);
    // The reduced blocks to everyone: block j of gather_ comes from rank j (ours is already in place).
    c->phase = "all-gather";
    MPI_Request req = nullptr;
    int rc;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      rc = p.api.Iallgatherv(kMpiInPlace, 0, p.api.byte, gather_.data(), scounts_.data(), sdispls_.data(),
                             p.api.byte, comm_, &req);
    }
    LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Iallgatherv"));
    LK_RETURN_IF_ERROR(wait(&req, *c, m * es));
    std::memcpy(static_cast<uint8_t*>(out) + i * es, gather_.data(), m * es);
  }
  return Status::OK();
}

Status MpiCommunicator::reduce_scatter(const void* in, void* out, const CallDesc& d, Ctx* c) {
  const int R = world();
  const size_t uR = static_cast<size_t>(R);
  const size_t es = dtype_size(d.dtype), count = d.count;
  srcs_.resize(uR);
  // m elements of every block per chunk: the R blocks' chunks arrive as rows of recv_ [R x m].
  const size_t m_max = std::max<size_t>(1, chunk_ / (es * uR));
  c->chunks = (count + m_max - 1) / m_max;
  const size_t m_first = std::min(count, m_max);
  LK_RETURN_IF_ERROR(recv_.reserve(m_first * es * uR, "reduceScatter"));
  // Block j of the input is at in + j * count * es: sent in place when that displacement fits an int, else the
  // chunk's R pieces are packed into pack_ [R x m] first.
  const bool pack = (uR - 1) * count * es + m_first * es > max_message_;
  if (pack) LK_RETURN_IF_ERROR(pack_.reserve(m_first * es * uR, "reduceScatter"));
  scounts_.assign(uR, 0);
  sdispls_.assign(uR, 0);
  rcounts_.assign(uR, 0);
  rdispls_.assign(uR, 0);
  for (size_t i = 0, k = 0; i < count; i += m_max, ++k) {
    c->chunk_index = k;
    const size_t m = std::min(m_max, count - i);
    const uint8_t* sendbuf = static_cast<const uint8_t*>(in) + i * es;
    if (pack) {
      for (size_t j = 0; j < uR; ++j)
        std::memcpy(pack_.data() + j * m * es, static_cast<const uint8_t*>(in) + (j * count + i) * es, m * es);
      sendbuf = pack_.data();
    }
    for (size_t j = 0; j < uR; ++j) {
      LK_RETURN_IF_ERROR(check_int(m * es, &scounts_[j]));
      LK_RETURN_IF_ERROR(check_int((pack ? j * m : j * count) * es, &sdispls_[j]));
      rcounts_[j] = scounts_[j];
      LK_RETURN_IF_ERROR(check_int(j * m * es, &rdispls_[j]));
    }
    c->phase = "reduce-scatter";
    LK_RETURN_IF_ERROR(alltoallv(sendbuf, scounts_, sdispls_, recv_.data(), rcounts_, rdispls_, c, m * es * uR));
    for (size_t r = 0; r < uR; ++r) srcs_[r] = recv_.data() + r * m * es;
    reduce(srcs_.data(), R, static_cast<uint8_t*>(out) + i * es, m, d.dtype, d.op);
  }
  return Status::OK();
}

Status MpiCommunicator::all_gather(const void* in, void* out, const CallDesc& d, Ctx* c) {
  const size_t uR = static_cast<size_t>(world());
  const size_t es = dtype_size(d.dtype), n = d.count * es;
  Process& p = process();
  // Per round, len bytes of every rank arrive as rows of recv_ [R x len] and are copied to their places in out.
  const size_t len_max = std::max<size_t>(1, chunk_ / (es * uR)) * es;
  c->chunks = (n + len_max - 1) / len_max;
  LK_RETURN_IF_ERROR(recv_.reserve(std::min(n, len_max) * uR, "allGather"));
  c->phase = "all-gather";
  for (size_t off = 0, k = 0; off < n; off += len_max, ++k) {
    c->chunk_index = k;
    const size_t len = std::min(len_max, n - off);
    int li = 0;
    LK_RETURN_IF_ERROR(check_int(len, &li));
    MPI_Request req = nullptr;
    int rc;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      rc = p.api.Iallgather(static_cast<const uint8_t*>(in) + off, li, p.api.byte, recv_.data(), li, p.api.byte,
                            comm_, &req);
    }
    LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Iallgather"));
    LK_RETURN_IF_ERROR(wait(&req, *c, len * uR));
    for (size_t r = 0; r < uR; ++r) std::memcpy(static_cast<uint8_t*>(out) + r * n + off, recv_.data() + r * len, len);
  }
  return Status::OK();
}

Status MpiCommunicator::broadcast(const void* in, void* out, const CallDesc& d, Ctx* c) {
  const bool root = d.root == rank();
  const size_t n = d.count * dtype_size(d.dtype);
  Process& p = process();
  const size_t len_max = chunk_;
  c->chunks = (n + len_max - 1) / len_max;
  if (!root) LK_RETURN_IF_ERROR(recv_.reserve(std::min(n, len_max), "broadcast"));
  c->phase = "broadcast";
  for (size_t off = 0, k = 0; off < n; off += len_max, ++k) {
    c->chunk_index = k;
    const size_t len = std::min(len_max, n - off);
    int li = 0;
    LK_RETURN_IF_ERROR(check_int(len, &li));
    // The root's buffer is only read by MPI (Ibcast takes a non-const pointer for every rank).
    void* buf = root ? const_cast<uint8_t*>(static_cast<const uint8_t*>(in) + off) : recv_.data();
    MPI_Request req = nullptr;
    int rc;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      rc = p.api.Ibcast(buf, li, p.api.byte, d.root, comm_, &req);
    }
    LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Ibcast"));
    LK_RETURN_IF_ERROR(wait(&req, *c, len));
    uint8_t* dst = static_cast<uint8_t*>(out) + off;
    if (dst != buf) std::memmove(dst, buf, len);
  }
  return Status::OK();
}

Status MpiCommunicator::barrier(Ctx* c) {
  Process& p = process();
  c->phase = "barrier";
  MPI_Request req = nullptr;
  int rc;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    rc = p.api.Ibarrier(comm_, &req);
  }
  LK_RETURN_IF_ERROR(started(rc, *c, "MPI_Ibarrier"));
  return wait(&req, *c, 0);
}

Status MpiCommunicator::run_impl(const void* in, void* out, const CallDesc& d, Clock::time_point deadline) {
  Ctx c{&d, Clock::now(), deadline, "starting", 0, 1};
  {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.poisoned)
      return Status(Code::peer_lost, describe(d) + ": MPI is unusable in this process: " + p.poison_reason +
                                         "; restart the process group");
    // Open MPI aborts the process on any call after MPI_Finalize: an application that finalized MPI itself must
    // get an error here instead.
    int finalized = 0;
    p.api.Finalized(&finalized);
    if (finalized)
      return unsupported(describe(d) + ": MPI was finalized in this process; the mpi process group cannot be used "
                                       "after MPI_Finalize");
  }
  if (c.start >= deadline)
    return Status(Code::timeout, describe(d) + ": the deadline had passed before the call started");
  const size_t es = dtype_size(d.dtype);
  const size_t R = static_cast<size_t>(world());
  // Sizes whose byte counts overflow size_t cannot be buffers the caller has.
  if (d.count > SIZE_MAX / es / (R + 1))
    return range_error(describe(d) + ": expected a count whose size in bytes fits in memory");
  if (world() == 1) {
    // Nothing to exchange; the same reduce as R > 1 keeps the rounding identical (f16 through f32 and back is
    // exact, so this is a copy).
    const size_t n = d.count * es;
    if (d.kind == Collective::all_reduce || d.kind == Collective::reduce_scatter) {
      const void* src[1] = {in};
      reduce(src, 1, out, d.count, d.dtype, d.op);
    } else if (d.kind != Collective::barrier && in != out) {
      std::memmove(out, in, n);
    }
    return Status::OK();
  }
  LK_RETURN_IF_ERROR(exchange_descs(d, &c));
  if (d.kind != Collective::barrier && d.count == 0) return Status::OK();
  switch (d.kind) {
    case Collective::all_reduce: return all_reduce(in, out, d, &c);
    case Collective::reduce_scatter: return reduce_scatter(in, out, d, &c);
    case Collective::all_gather: return all_gather(in, out, d, &c);
    case Collective::broadcast: return broadcast(in, out, d, &c);
    case Collective::barrier: return barrier(&c);
  }
  return internal_error(describe(d) + ": unknown collective");
}

// Polls a request until the open's deadline (process().mu not held).
Status wait_open(Process& p, MPI_Request* req, Clock::time_point deadline, const char* what) {
  auto sleep = std::chrono::microseconds(50);
  for (;;) {
    int flag = 0, rc;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      rc = p.api.Test(req, &flag, kMpiStatusIgnore);
      if (rc != kMpiSuccess) {
        p.poisoned = true;
        p.poison_reason = std::string(what) + " failed with " + mpi_error_text(p.api, rc);
        return Status(Code::peer_lost,
                      std::string("initProcessGroup(mpi): ") + what + " failed: " + mpi_error_text(p.api, rc));
      }
    }
    if (flag) return Status::OK();
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      std::lock_guard<std::mutex> lock(p.mu);
      p.poisoned = true;
      p.poison_reason = std::string(what) + " timed out with a request in flight";
      return Status(Code::timeout, std::string("initProcessGroup(mpi): ") + what +
                                       " did not complete before the deadline: not every rank of MPI_COMM_WORLD "
                                       "opened the process group in time");
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(sleep, deadline - now));
    sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
  }
}

Status read_max_message(size_t* out) {
  *out = static_cast<size_t>(INT_MAX);
  const char* v = std::getenv("LLMK_MPI_MAX_MESSAGE");
  if (v == nullptr || *v == '\0') return Status::OK();
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || x < 64 || x > INT_MAX)
    return range_error(std::string("initProcessGroup(mpi): expected LLMK_MPI_MAX_MESSAGE (a test setting: the "
                                   "largest MPI message in bytes) to be an integer in [64, 2147483647], got '") +
                       v + "'");
  *out = static_cast<size_t>(x);
  return Status::OK();
}

// MPI_Init_thread blocks until every rank of the launch has called it (Open MPI's runtime rendezvous), with no
// timeout of its own. To keep the open's deadline it runs on a detached thread; if the deadline passes first, that
// thread is left blocked (it may finish later, unused), the process is poisoned, and the open is Code::timeout.
// The thread that initializes MPI becomes MPI's "main thread"; with MPI_THREAD_SERIALIZED any thread may call MPI.
Status init_mpi(Process& p, Clock::time_point deadline) {
  struct Job {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    int rc = 0, provided = 0;
  };
  auto job = std::make_shared<Job>();
  auto init_thread = p.api.Init_thread;
  try {
    std::thread([job, init_thread] {
      int provided = 0;
      const int rc = init_thread(nullptr, nullptr, kMpiThreadSerialized, &provided);
      std::lock_guard<std::mutex> lock(job->mu);
      job->rc = rc;
      job->provided = provided;
      job->done = true;
      job->cv.notify_all();
    }).detach();
  } catch (const std::exception& e) {
    return unsupported(std::string("initProcessGroup(mpi): cannot start a thread for MPI_Init_thread: ") + e.what());
  }
  std::unique_lock<std::mutex> lock(job->mu);
  if (!job->cv.wait_until(lock, deadline, [&] { return job->done; })) {
    std::lock_guard<std::mutex> plock(p.mu);
    p.poisoned = true;
    p.poison_reason = "MPI_Init_thread did not return before the open's deadline";
    return Status(Code::timeout,
                  "initProcessGroup(mpi): MPI_Init_thread did not return before the deadline: it waits for every "
                  "rank of the mpirun job to start MPI, and some did not in time (or this process was not started "
                  "by mpirun and Open MPI cannot reach its runtime). MPI cannot be used in this process any more");
  }
  std::lock_guard<std::mutex> plock(p.mu);
  if (job->rc != kMpiSuccess)
    return unsupported("initProcessGroup(mpi): MPI_Init_thread failed: " + mpi_error_text(p.api, job->rc) +
                       " (run under mpirun; as root add --allow-run-as-root)");
  p.we_initialized = true;
  if (job->provided < kMpiThreadSerialized)
    return unsupported("initProcessGroup(mpi): " + p.version + " provides thread level " +
                       std::to_string(job->provided) +
                       ", and MPI_THREAD_SERIALIZED (2) is required (collectives run on another thread than the "
                       "initialization); use an Open MPI built with thread support");
  return Status::OK();
}

}  // namespace

Status open_mpi(const OpenOptions& o, const std::string& library, std::unique_ptr<Communicator>* out) {
  if (out == nullptr) return internal_error("initProcessGroup(mpi): null output");
  out->reset();
  size_t max_message = 0;
  LK_RETURN_IF_ERROR(read_max_message(&max_message));
  // A default-constructed deadline (the clock's epoch) means none was given: the rendezvous then waits up to 60 s.
  const Clock::time_point deadline =
      o.deadline == Clock::time_point() ? Clock::now() + std::chrono::seconds(60) : o.deadline;
  Process& p = process();
  // One open at a time: two concurrent first opens must not both initialize MPI. Held across the (unlocked) wait
  // for MPI_Init_thread below; collectives of open communicators only take p.mu.
  std::lock_guard<std::mutex> open_lock(p.open_mu);
  int mpi_rank = 0, mpi_world = 0;
  MPI_Request req = nullptr;
  MPI_Comm dup = nullptr;
  int initialized = 0;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    LK_RETURN_IF_ERROR(load_library(p, library));
    const MpiApi& a = p.api;
    if (p.poisoned)
      return unsupported("initProcessGroup(mpi): MPI is unusable in this process: " + p.poison_reason +
                         "; restart the process group");
    int finalized = 0;
    a.Finalized(&finalized);
    if (p.we_finalized || finalized)
      return unsupported(std::string("initProcessGroup(mpi): MPI was finalized in this process") +
                         (p.we_finalized ? " when its last communicator closed" : "") +
                         ", and MPI cannot be initialized twice in one process; keep one communicator open for the "
                         "life of the process, or start a new process");
    const int rc = a.Initialized(&initialized);
    if (rc != kMpiSuccess)
      return unsupported("initProcessGroup(mpi): MPI_Initialized failed: " + mpi_error_text(a, rc));
  }
  if (!initialized) LK_RETURN_IF_ERROR(init_mpi(p, deadline));
  {
    std::lock_guard<std::mutex> lock(p.mu);
    const MpiApi& a = p.api;
    int rc;
    if (initialized) {
      int provided = 0;
      rc = a.Query_thread(&provided);
      if (rc != kMpiSuccess)
        return unsupported("initProcessGroup(mpi): MPI_Query_thread failed: " + mpi_error_text(a, rc));
      if (provided < kMpiThreadSerialized)
        return unsupported("initProcessGroup(mpi): the application initialized MPI with thread level " +
                           std::to_string(provided) +
                           "; MPI_THREAD_SERIALIZED (2) or higher is required (call MPI_Init_thread with it)");
    }
    // MPI_ERRORS_RETURN on the world too: the default MPI_ERRORS_ARE_FATAL would abort the process.
    rc = a.Comm_set_errhandler(a.comm_world, a.errors_return);
    if (rc != kMpiSuccess)
      return unsupported("initProcessGroup(mpi): MPI_Comm_set_errhandler failed: " + mpi_error_text(a, rc));
    rc = a.Comm_rank(a.comm_world, &mpi_rank);
    if (rc == kMpiSuccess) rc = a.Comm_size(a.comm_world, &mpi_world);
    if (rc != kMpiSuccess)
      return unsupported("initProcessGroup(mpi): MPI_Comm_rank/size failed: " + mpi_error_text(a, rc));
    if (o.rank >= 0 && o.rank != mpi_rank)
      return range_error("initProcessGroup(mpi): expected rank " + std::to_string(o.rank) +
                         " to be MPI's rank of this process, got MPI rank " + std::to_string(mpi_rank) + " of " +
                         std::to_string(mpi_world) + " (the launcher assigns ranks; pass -1 to take MPI's)");
    if (o.world > 0 && o.world != mpi_world)
      return range_error("initProcessGroup(mpi): expected world size " + std::to_string(o.world) +
                         " to be MPI's, got " + std::to_string(mpi_world) + " ranks in MPI_COMM_WORLD (mpirun -np " +
                         std::to_string(o.world) + "?; pass -1 to take MPI's)");
    rc = a.Comm_idup(a.comm_world, &dup, &req);
    if (rc != kMpiSuccess) return unsupported("initProcessGroup(mpi): MPI_Comm_idup failed: " + mpi_error_text(a, rc));
  }
  LK_RETURN_IF_ERROR(wait_open(p, &req, deadline, "MPI_Comm_idup (the rendezvous of every rank)"));
  std::lock_guard<std::mutex> lock(p.mu);
  int rc = p.api.Comm_set_errhandler(dup, p.api.errors_return);
  if (rc != kMpiSuccess) {
    std::string text = mpi_error_text(p.api, rc);
    p.api.Comm_free(&dup);
    return unsupported("initProcessGroup(mpi): MPI_Comm_set_errhandler failed: " + text);
  }
  std::unique_ptr<MpiCommunicator> c(new (std::nothrow) MpiCommunicator(mpi_rank, mpi_world, dup, max_message));
  if (!c) {
    p.api.Comm_free(&dup);
    return Status(Code::oom, "initProcessGroup(mpi): out of memory");
  }
  ++p.live;
  *out = std::move(c);
  return Status::OK();
}

}  // namespace lk::dist
