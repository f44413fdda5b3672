// The custom CUDA collectives: the one-shot and two-shot all-reduce and the all-gather, reduce-scatter and
// broadcast kernels over buffers registered across ranks with CUDA IPC.
//   all_reduce: out[i] = round_dtype(in_0[i] + in_1[i] + ... + in_{R-1}[i])   (f32, rank order, as reduce.h; or max)
// The protocol, the memory-ordering argument, the buffer layout and the failure handling are in cuda_ar.h; the
// kernels, their layouts and the planning of launches (chunks, halves, epochs, tags: enqueue_chunks) in
// cuda_ar_kernels.cuh, which the CPU emulation (native/cuda/emu/ar_check.cc) also runs. This file is the host side
// that needs a driver: registration with CUDA IPC, the host-mapped words, enqueue's argument checks, check() and
// abort().
//
// Versions: not yet run on a GPU. v1: the all-reduce, 16-byte packs, ld.global.cg for peer memory, per-block flag
// barriers. v2 (this): the all-gather, reduce-scatter and broadcast kernels on the same registration, so that a
// tensor-parallel model runs on CUDA (its LM head gathers the vocabulary slices).
// ptxas (nvcc 13.0, -Xptxas -v): all 60 kernels (one/two-shot all-reduce, all-gather, reduce-scatter, broadcast x
// f32/f16/bf16 x packed/scalar x sm_80/sm_90a) use 21-32 registers, 0 bytes stack, 0 spills (launch bound 512
// threads). The protocol has run under the emulation (native/cuda/emu/run.sh --allreduce: R = 2..8 ranks as OS
// threads, every collective, dtype, op, pack path and failure path).
// How to run: through ProcessGroup's collectives on CUDA tensors (lib/dist/process-group.ts) with 2+ processes.
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "../cuda/common.cuh"
#include "cuda_ar.h"
#include "cuda_ar_kernels.cuh"

namespace lk::dist {

namespace {

using ar::kSignalBytes;

// What each rank publishes at open (all_gather of bytes through the CPU communicator).
struct Published {
  cudaIpcMemHandle_t data;
  cudaIpcMemHandle_t signal;
  char bus_id[32];  // cudaDeviceGetPCIBusId
  int64_t pid;
  int32_t ok;       // this rank registered its buffers
  int32_t pad;
};

}  // namespace

struct CudaAllReduce::Impl {
  char* data = nullptr;        // own data area [2][capacity]
  uint64_t* signal = nullptr;  // own signal area
  char* peer_data[kArMaxRanks] = {};
  uint64_t* peer_signal[kArMaxRanks] = {};
  bool ipc_opened[kArMaxRanks] = {};  // peer pointers to cudaIpcCloseMemHandle at close
  int* host_words = nullptr;          // [0] abort, [1] error (cudaHostAlloc mapped)
  int* dev_words = nullptr;           // their device address
};

namespace {

Status alloc_local(int device, size_t capacity, CudaAllReduce::Impl* im) {
  const std::string at = " on cuda:" + std::to_string(device);
  LK_CUDA_CHECK(cudaSetDevice(device), "allReduce(cuda): cudaSetDevice" + at);
  LK_CUDA_CHECK(cudaMalloc(&im->data, 2 * capacity), "allReduce(cuda): cudaMalloc(" + std::to_string(2 * capacity) + " bytes)" + at);
  LK_CUDA_CHECK(cudaMalloc(&im->signal, kSignalBytes), "allReduce(cuda): cudaMalloc(signal area)" + at);
  LK_CUDA_CHECK(cudaMemset(im->signal, 0, kSignalBytes), "allReduce(cuda): cudaMemset(signal area)" + at);
  void* hw = nullptr;
  LK_CUDA_CHECK(cudaHostAlloc(&hw, 2 * sizeof(int), cudaHostAllocMapped), "allReduce(cuda): cudaHostAlloc(mapped)");
  im->host_words = static_cast<int*>(hw);
  im->host_words[0] = im->host_words[1] = 0;
  void* dw = nullptr;
  LK_CUDA_CHECK(cudaHostGetDevicePointer(&dw, hw, 0), "allReduce(cuda): cudaHostGetDevicePointer");
  im->dev_words = static_cast<int*>(dw);
  LK_CUDA_CHECK(cudaDeviceSynchronize(), "allReduce(cuda): cudaDeviceSynchronize" + at);  // memset done before peers see it
  return Status::OK();
}

// Allocates this rank's buffers and fills in what it publishes.
Status publish(int device, size_t capacity, CudaAllReduce::Impl* im, Published* mine) {
  LK_RETURN_IF_ERROR(alloc_local(device, capacity, im));
  LK_CUDA_CHECK(cudaIpcGetMemHandle(&mine->data, im->data), "allReduce(cuda): cudaIpcGetMemHandle(data)");
  LK_CUDA_CHECK(cudaIpcGetMemHandle(&mine->signal, im->signal), "allReduce(cuda): cudaIpcGetMemHandle(signal)");
  LK_CUDA_CHECK(cudaDeviceGetPCIBusId(mine->bus_id, sizeof mine->bus_id - 1, device), "allReduce(cuda): cudaDeviceGetPCIBusId");
  return Status::OK();
}

}  // namespace

Status CudaAllReduce::open(Communicator* cpu, int device, size_t capacity, Clock::time_point deadline,
                           std::unique_ptr<CudaAllReduce>* out) {
  const int R = cpu->world(), me = cpu->rank();
  capacity = (capacity + 255) & ~size_t(255);
  std::unique_ptr<CudaAllReduce> c(new CudaAllReduce());
  c->impl_.reset(new Impl());
  c->rank_ = me;
  c->world_ = R;
  c->device_ = device;
  c->capacity_ = capacity;
  Impl& im = *c->impl_;

  Published mine;
  std::memset(&mine, 0, sizeof mine);
  mine.pid = static_cast<int64_t>(getpid());
  std::string local_why;
  const Status s = R > kArMaxRanks ? unsupported("more than " + std::to_string(kArMaxRanks) + " ranks") : publish(device, capacity, &im, &mine);
  // A failure to register (OOM included) is not the group's failure: the group can still use NCCL. Say why and
  // agree below; never return before the exchange, or the other ranks would wait in it until the deadline.
  if (!s.ok()) local_why = "rank " + std::to_string(me) + ": " + s.message();
  mine.ok = s.ok() ? 1 : 0;

  // Exchange (all_gather of bytes; the communicator moves f32 "elements", so the record is padded to 4 bytes).
  static_assert(sizeof(Published) % 4 == 0, "Published is exchanged as f32 words");
  std::vector<Published> all(static_cast<size_t>(R));
  CallDesc d;
  d.kind = Collective::all_gather;
  d.dtype = DType::f32;
  d.count = sizeof(Published) / 4;
  LK_RETURN_IF_ERROR(cpu->call(&mine, all.data(), d, deadline));

  bool ok = mine.ok != 0;
  for (int r = 0; r < R && ok; ++r) {
    if (!all[r].ok) {
      ok = false;
      local_why = "rank " + std::to_string(r) + " could not register its buffers";
      break;
    }
    if (r == me) {
      im.peer_data[r] = im.data;
      im.peer_signal[r] = im.signal;
      continue;
    }
    if (all[r].pid == mine.pid) {
      ok = false;
      local_why = "ranks " + std::to_string(me) + " and " + std::to_string(r) +
                  " are in one process (worker threads): CUDA IPC handles cannot be opened in the process that made them; "
                  "run one process per rank";
      break;
    }
    int peer_dev = -1;
    all[r].bus_id[sizeof all[r].bus_id - 1] = 0;
    if (cudaDeviceGetByPCIBusId(&peer_dev, all[r].bus_id) != cudaSuccess) {
      (void)cudaGetLastError();
      ok = false;
      local_why = "rank " + std::to_string(r) + "'s GPU (" + all[r].bus_id + ") is not visible to rank " + std::to_string(me) +
                  " (CUDA_VISIBLE_DEVICES), so P2P cannot be checked";
      break;
    }
    if (peer_dev != device) {
      int can = 0;
      if (cudaDeviceCanAccessPeer(&can, device, peer_dev) != cudaSuccess || !can) {
        (void)cudaGetLastError();
        ok = false;
        local_why = "no P2P access from cuda:" + std::to_string(device) + " to cuda:" + std::to_string(peer_dev) + " (rank " +
                    std::to_string(r) + ")";
        break;
      }
    }
    void* pd = nullptr;
    void* ps = nullptr;
    cudaError_t e = cudaIpcOpenMemHandle(&pd, all[r].data, cudaIpcMemLazyEnablePeerAccess);
    if (e == cudaSuccess) {
      e = cudaIpcOpenMemHandle(&ps, all[r].signal, cudaIpcMemLazyEnablePeerAccess);
      if (e != cudaSuccess) (void)cudaIpcCloseMemHandle(pd);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      ok = false;
      local_why = "cudaIpcOpenMemHandle of rank " + std::to_string(r) + "'s buffers: " + cuda_error_text(e);
      break;
    }
    im.peer_data[r] = static_cast<char*>(pd);
    im.peer_signal[r] = static_cast<uint64_t*>(ps);
    im.ipc_opened[r] = true;
  }

  // Agree: usable only if usable on every rank.
  float okf = ok ? 1.0f : 0.0f;
  std::vector<float> oks(static_cast<size_t>(R));
  d.count = 1;
  LK_RETURN_IF_ERROR(cpu->call(&okf, oks.data(), d, deadline));
  c->usable_ = true;
  for (int r = 0; r < R; ++r)
    if (oks[r] == 0.0f) {
      c->usable_ = false;
      if (local_why.empty()) local_why = "rank " + std::to_string(r) + " could not open its peers' buffers (see that rank)";
    }
  c->why_ = c->usable_ ? std::string() : local_why;
  *out = std::move(c);
  return Status::OK();
}

Status CudaAllReduce::open_local(int device, int world, size_t capacity, std::vector<std::unique_ptr<CudaAllReduce>>* out) {
  if (world < 1 || world > kArMaxRanks)
    return range_error("allReduce(cuda): expected 1 to " + std::to_string(kArMaxRanks) + " local ranks, got " + std::to_string(world));
  capacity = (capacity + 255) & ~size_t(255);
  std::vector<std::unique_ptr<CudaAllReduce>> v;
  for (int r = 0; r < world; ++r) {
    std::unique_ptr<CudaAllReduce> c(new CudaAllReduce());
    c->impl_.reset(new Impl());
    c->rank_ = r;
    c->world_ = world;
    c->device_ = device;
    c->capacity_ = capacity;
    c->usable_ = true;
    LK_RETURN_IF_ERROR(alloc_local(device, capacity, c->impl_.get()));
    v.push_back(std::move(c));
  }
  for (int r = 0; r < world; ++r)
    for (int q = 0; q < world; ++q) {
      v[r]->impl_->peer_data[q] = v[q]->impl_->data;
      v[r]->impl_->peer_signal[q] = v[q]->impl_->signal;
    }
  *out = std::move(v);
  return Status::OK();
}

Status CudaAllReduce::run_local(std::vector<std::unique_ptr<CudaAllReduce>>& ranks, const std::vector<CollectiveArgs>& calls,
                                int64_t timeout_ms, double* ms) {
  if (ranks.empty() || calls.size() != ranks.size())
    return internal_error("run_local: expected one call per rank, got " + std::to_string(calls.size()) + " for " +
                          std::to_string(ranks.size()) + " ranks");
  const int device = ranks[0]->device_;
  LK_CUDA_CHECK(cudaSetDevice(device), "run_local: cudaSetDevice(" + std::to_string(device) + ")");
  // Inputs were written by copies on the device's own stream (cuda_copy_h2d waits for them), so these streams need
  // no ordering with it.
  std::vector<cudaStream_t> streams(ranks.size(), nullptr);
  Status first;
  auto keep = [&first](Status s) {
    if (first.ok()) (void)(first = std::move(s));  // (void): nvcc flags the assignment of a [[nodiscard]] type
  };
  for (cudaStream_t& st : streams) {
    const cudaError_t e = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    if (e != cudaSuccess) keep(cuda_status(e, "run_local: cudaStreamCreate"));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t r = 0; r < ranks.size() && first.ok(); ++r) {
    // A rank that fails to launch leaves its peers to time out (bounded by timeout_ms), as a dead process would.
    keep(ranks[r]->enqueue(calls[r], streams[r], timeout_ms));
  }
  for (cudaStream_t st : streams) {
    if (st == nullptr) continue;
    const cudaError_t e = cudaStreamSynchronize(st);
    if (e != cudaSuccess) keep(cuda_status(e, "run_local: a rank's stream failed"));
  }
  if (ms != nullptr) *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (cudaStream_t st : streams)
    if (st != nullptr) (void)cudaStreamDestroy(st);
  for (auto& rk : ranks) keep(rk->check());
  return first;
}

CudaAllReduce::~CudaAllReduce() {
  if (!impl_) return;
  Impl& im = *impl_;
  if (cudaSetDevice(device_) != cudaSuccess) {
    (void)cudaGetLastError();
    return;  // no context to free in: leak rather than crash
  }
  // The kernels of this rank may still be queued: wait (bounded by their device-side timeouts), after telling
  // them to stop.
  if (im.host_words != nullptr) im.host_words[0] = 1;
  (void)cudaDeviceSynchronize();
  for (int r = 0; r < kArMaxRanks; ++r)
    if (im.ipc_opened[r]) {
      (void)cudaIpcCloseMemHandle(im.peer_data[r]);
      (void)cudaIpcCloseMemHandle(im.peer_signal[r]);
    }
  if (im.data != nullptr) (void)cudaFree(im.data);
  if (im.signal != nullptr) (void)cudaFree(im.signal);
  if (im.host_words != nullptr) (void)cudaFreeHost(im.host_words);
  (void)cudaGetLastError();
}

Status CudaAllReduce::enqueue(const CollectiveArgs& a, void* stream, int64_t timeout_ms) {
  const std::string fn = std::string(collective_name(a.kind)) + "(cuda)";
  if (fail_.failed()) return fail_.status();
  if (!usable_) return unsupported(fn + ": the custom collectives are not registered: " + why_);
  if (a.dt != DType::f32 && a.dt != DType::f16 && a.dt != DType::bf16)
    return type_error(fn + ": expected dtype f32, f16 or bf16, got " + dtype_name(a.dt));
  if (a.kind != Collective::all_reduce && a.kind != Collective::all_gather && a.kind != Collective::reduce_scatter &&
      a.kind != Collective::broadcast)
    return internal_error(fn + ": not a collective the custom kernels run");
  if (a.algo != ArAlgo::one_shot && (a.algo != ArAlgo::two_shot || a.kind != Collective::all_reduce))
    return internal_error(fn + ": the custom kernels run one_shot (or two_shot for allReduce), got " + ar_algo_name(a.algo));
  if (a.kind == Collective::all_gather && a.inner != 0 && (a.inner > a.count || a.count % a.inner != 0))
    return range_error(fn + ": expected an inner size dividing " + std::to_string(a.count) + ", got " + std::to_string(a.inner));
  if (a.kind == Collective::broadcast && (a.root < 0 || a.root >= world_))
    return range_error(fn + ": expected a root in [0, " + std::to_string(world_) + "), got " + std::to_string(a.root));
  if (a.count == 0) return Status::OK();
  if (ar::chunk_elems_of(a, capacity_, world_) == 0)
    return internal_error(fn + ": a registered half of " + std::to_string(capacity_) + " bytes holds no 16-byte pack per rank");
  Impl& im = *impl_;
  LK_CUDA_CHECK(cudaSetDevice(device_), fn + ": cudaSetDevice(" + std::to_string(device_) + ")");
  const cudaError_t e = ar::enqueue_chunks(&calls_, a, rank_, world_, im.peer_data, im.peer_signal, capacity_,
                                           static_cast<uint64_t>(timeout_ms) * 1000000ull, im.dev_words,
                                           static_cast<cudaStream_t>(stream));
  if (e != cudaSuccess) return fail_.set(cuda_status(e, fn + ": kernel launch"));
  return Status::OK();
}

Status CudaAllReduce::check() {
  if (fail_.failed()) return fail_.status();
  const int code = impl_ ? static_cast<volatile int*>(impl_->host_words)[1] : 0;
  if (code == 0) return Status::OK();
  if (code == ar::kErrTimeout)
    return fail_.set(Status(Code::timeout, "collective(cuda): rank " + std::to_string(rank_) +
                                               ": a peer did not reach the device-side barrier before the timeout"));
  if (code == ar::kErrMismatch)
    return fail_.set(Status(Code::mismatch, "collective(cuda): rank " + std::to_string(rank_) +
                                                ": a peer called a different collective (kind, count, dtype, op, algorithm, inner or root) at the same step"));
  return fail_.set(Status(Code::peer_lost, "collective(cuda): rank " + std::to_string(rank_) + ": the collective was aborted"));
}

void CudaAllReduce::abort(Status why) {
  (void)fail_.set(std::move(why));  // first failure wins; check() reports it from now on
  if (!impl_) return;
  if (impl_->host_words != nullptr) static_cast<volatile int*>(impl_->host_words)[0] = 1;
}

}  // namespace lk::dist
