// Collectives on CUDA tensors: the custom one-shot / two-shot all-reduce and the single-barrier all-gather,
// reduce-scatter and broadcast over buffers registered across ranks with CUDA IPC (cuda_ar.cu; the kernels in
// cuda_ar_kernels.cuh), NCCL loaded at run time (nccl.cc), and the rule that picks one of them per call
// (cuda_ar_select.cc). Plain C++ (no CUDA headers): the addon includes it in every build; without the CUDA backend
// cuda_ar_none.cc answers Code::unsupported. CudaAllReduce keeps its name from when all-reduce was its only
// collective: it is the registration (buffers, flags, words) that all four custom kernels share.
//
// Versions: not yet run on a GPU. Everything below compiles for sm_80 and sm_90a (ptxas: no spills). The kernels'
// own source has run on the CPU, R = 2..8 ranks as OS threads (native/cuda/emu/run.sh --allreduce): results bit
// for bit against reduce.h, buffer reuse across calls, timeouts, aborts and mismatches; not the GPU's memory
// ordering. The selection thresholds and the speed are unmeasured.
//
// ---- The custom all-reduce ------------------------------------------------------------------------------------
// Registration (CudaAllReduce::open): each rank cudaMalloc's (IPC handles need cudaMalloc memory, not the
// stream-ordered pool) one data area of 2 x capacity bytes (two halves, below) and a signal area of
// kMaxBlocks x kMaxRanks u64 flags (zeroed), gets a cudaIpcMemHandle_t for each, and exchanges them through the
// group's CPU Communicator (all_gather of bytes, with the PCI bus id and the pid). Each rank opens its peers'
// handles (cudaIpcOpenMemHandle, lazy peer access) after checking cudaDeviceCanAccessPeer; peers on the same device
// need no peer access. Whether the custom path is usable is then agreed by a second all_gather (every rank must pick
// the same algorithm, or one would wait for the other forever). Ranks in one process (worker threads) cannot open
// each other's IPC handles (CUDA refuses a handle of the own process) and share one CUDA stream per device in the
// addon, so they are refused with a message; open_local() is the one-process test mode instead: R "ranks" as R
// buffers on one device, the peers' pointers known directly, the same kernels launched on R streams.
//
// One call (enqueue) for a message of B bytes <= capacity (larger ones are cut into chunks of <= capacity, each a
// call of its own). The message is seen as P packs of 16 bytes (4 f32 or 8 f16/bf16) when B % 16 == 0, else of one
// element; the grid (G blocks of kThreads threads) is a function of P alone, so it is the same on every rank, and
// "position j" always belongs to the same block b on every rank. That is what lets the barriers below be per
// block instead of grid-wide.
//   one-shot  block b: copy its positions of the input into its own buffer; barrier(e); for each of its positions
//             read all R ranks' buffers and reduce in rank order (f32, rounded once); write out.
//   two-shot  the packs are cut into R slices of L = ceil(P / R) packs (the last one shorter); within each slice,
//             position j goes to block (j / kThreads) % G. Block b: copy its positions of every slice into its own
//             buffer; barrier(e); reduce slice `rank` over all R buffers (reduce-scatter), write the result to out
//             and into its own buffer's slice `rank`; barrier(e + 1); copy every other slice s from rank s's
//             buffer to out (all-gather). Each rank reads R x B / R and writes B: bandwidth ~ 2 B per rank
//             instead of R x B for one-shot, at the price of a second barrier.
// The other collectives are one kernel each, with one barrier (shapes as comm.h's; the message is the rank's
// input, cut into chunks of the capacity like the all-reduce's, each chunk a launch numbered like any other):
//   all_gather      copy the chunk of x into our buffer; barrier(e); for every rank s, copy s's buffer to out at
//                   the positions of rank s: along the first dimension out[s * count + i], along an inner
//                   dimension of `inner` elements out[(i / inner) * R * inner + s * inner + i % inner].
//   reduce_scatter  x is [R][count]; a chunk takes elements [a, a + n) of every slice: copy slice s's part into our
//                   buffer at s * n; barrier(e); reduce part `rank` over all R buffers (reduce.h's order) into
//                   out[a .. a + n). A chunk is capacity / R bytes of every slice.
//   broadcast       the root copies its chunk into its buffer (and to out unless in place); barrier(e); every
//                   other rank copies the root's buffer to out.
// All-gather and broadcast only move bytes, so their results are bit-identical to the CPU backends' by
// construction; reduce-scatter reduces like the all-reduce. The packs are 16 bytes when every position the kernel
// addresses falls on a 16-byte boundary (all_gather: inner x element size % 16 == 0; reduce_scatter:
// count x element size % 16 == 0), else one element.
// The reduction is the one of reduce.h: acc = x_0; acc = acc + x_r for r = 1..R-1 in f32 (or max with NaN
// winning), one rounding to the dtype (round to nearest even). Every rank computes every element from the same
// operands in the same order (two-shot: one rank computes a slice and the others copy its bits), so the results
// are bit-identical on every rank and equal to the CPU backends'.
//
// Barrier(e), per block b: after __syncthreads (the block's copies/reads are done), thread t < R stores
// (e << 24 | tag) with st.release.sys into rank t's flag slot [b][rank], then spins with ld.acquire.sys on its own
// slot [b][t] until the epoch there is >= e; a second __syncthreads releases the block. The release store is
// cumulative over what the block did before the first __syncthreads (bar.sync orders it within the CTA), so a peer
// that acquires the flag sees our copied input; the acquire + bar.sync make every thread's following loads of
// peer memory see the peer's data (they also use ld.global.cg, no L1, since L1 is not coherent across GPUs).
// Epochs: the host numbers barriers 1, 2, 3, ... (two per call, so one- and two-shot calls keep every rank's count
// in step); values only grow, so a slot never needs resetting and a fast peer that already arrived at a later
// barrier still satisfies ">= e". The low 24 bits carry a hash of (collective, count, dtype, op, algorithm, inner
// or root): a peer at the same epoch with another tag called something else, and the call fails with
// Code::mismatch instead of summing unrelated buffers.
//
// Reuse of a buffer (the race vLLM's custom all-reduce once had: a fast rank copies the next input into its
// buffer while a slow peer still reads the previous one): the data area has two halves and call k uses half
// k % 2. A rank writes half h again at call k + 2 only after its kernel of call k + 1 finished, so after its
// block 0 passed barrier(k + 1) of that call, which needs block 0 of every peer to have arrived there; a peer's
// kernel k + 1 starts only after its kernel k finished (one stream), so every read of call k by every peer is
// done. So the "second barrier" that protects the buffer is the next call's first barrier, on the other half: one
// barrier per call suffices whatever the collective and whatever the sizes of consecutive calls (every kernel has
// at least one block, and every block passes every barrier). Flags are never reused that way at all (monotonic
// epochs).
//
// Never hang: every spin polls, every 256 iterations, a host-mapped abort word (set by abort(): the group is being
// closed or a peer was declared lost) and the error word, and compares %globaltimer with its start + the call's
// timeout (measured from when the block starts waiting, so a kernel queued behind long work is not timed out
// early). On timeout/abort/mismatch it writes the error word (host-mapped) and the block exits; later blocks and
// calls see the error word and exit at once. The host reads the word once the stream has passed the call
// (check()) and turns it into Code::timeout / peer_lost / mismatch (a timeout becomes peer_lost when the CPU
// communicator finds the peer's process gone: Communicator::lost_peers); the communicator is failed from then on.
// Co-residency: a spinning block waits for blocks of other ranks; on separate GPUs that always progresses. With
// several ranks on one GPU (open_local, or processes sharing a GPU under time-slicing) all ranks' blocks must fit
// at once, so G <= kMaxBlocks is kept small (32 blocks of 512 threads); a device too small times out, never hangs.
//
// Limits: the IPC buffers are freed at close; a peer that is still inside a kernel reading them then (it timed
// out on us) reads freed memory of another process, which CUDA keeps mapped until that peer closes its handle.
// Mismatched calls between ranks are caught by the tag only when they meet at one epoch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm.h"

namespace lk::dist {

// ---- Selection ----------------------------------------------------------------------------------------------
enum class ArAlgo : uint8_t { one_shot = 0, two_shot = 1, nccl = 2, none = 3 };
const char* ar_algo_name(ArAlgo a);  // "one_shot", "two_shot", "nccl", "none"

// Thresholds: UNTUNED GUESSES until measured on a GPU (vLLM and TensorRT-LLM publish switch points of a few
// hundred KiB to a few MiB on NVLink machines; ours are of that order and nothing more).
//  - one-shot while every rank's reads (R x bytes) stay small: its single barrier makes it the latency winner, and
//    for small messages the R-fold read traffic costs less than a second barrier.
//  - two-shot up to kTwoShotMaxBytes: ~2 x bytes of traffic per rank, two barriers.
//  - NCCL above that (its ring/tree pipelines, NVLS on Hopper, beat one block-synchronized pass), and always when
//    a pair of ranks has no P2P access (our kernels load peer memory directly and cannot run without it).
//  - Without NCCL, large messages still take two-shot, in chunks of the registered capacity.
constexpr size_t kOneShotMaxReadBytes = size_t(2) << 20;  // one-shot while R * bytes <= 2 MiB
constexpr size_t kTwoShotMaxBytes = size_t(16) << 20;     // two-shot up to 16 MiB per rank, then NCCL
constexpr int kArMaxRanks = 8;                            // the custom kernels' limit (flag slots, peer pointers)
// Two-shot only when every slice has at least this many bytes (a slice of a few packs is all barrier, no work).
constexpr size_t kTwoShotMinSlice = 4096;

struct ArSelectInput {
  uint64_t bytes = 0;      // the message per rank
  int world = 1;           // R
  bool custom = false;     // the custom path is registered on every rank (P2P between every pair of ranks)
  bool nccl = false;       // NCCL loaded and a communicator open on every rank
};
// Pure: the same inputs give the same algorithm on every rank. `why` (optional) says why in words.
ArAlgo select_all_reduce(const ArSelectInput& in, std::string* why = nullptr);
// all_gather, reduce_scatter and broadcast (bytes: x's bytes on a rank): the custom single-barrier kernel (named
// one_shot) while the bytes a rank reads from the registered buffers (all_gather R x bytes, the others bytes) are
// <= kTwoShotMaxBytes, or at any size without NCCL (in chunks); NCCL above, and without P2P. all_reduce: as
// select_all_reduce.
ArAlgo select_collective(Collective kind, const ArSelectInput& in, std::string* why = nullptr);

// One collective as a rank asks for it, shapes as comm.h's: count is x's elements (all_reduce, broadcast,
// all_gather) or out's (reduce_scatter: x is [R][count]); inner: all_gather along an inner dimension of that many
// elements (0: along the first); root: broadcast's.
struct CollectiveArgs {
  Collective kind = Collective::all_reduce;
  const void* in = nullptr;
  void* out = nullptr;
  size_t count = 0;
  size_t inner = 0;
  int root = 0;
  DType dt = DType::f32;
  ReduceOp op = ReduceOp::sum;
  ArAlgo algo = ArAlgo::one_shot;  // all_reduce: one_shot or two_shot; the other kinds run their one kernel
};

// ---- The custom all-reduce (cuda_ar.cu) ---------------------------------------------------------------------
constexpr size_t kArDefaultCapacity = size_t(8) << 20;  // bytes per half of the registered data area

class CudaAllReduce {
 public:
  // Multi-process: registers buffers on `device` and exchanges them through `cpu` (a collective over the group:
  // every rank calls it). A rank whose peers cannot be reached (no P2P, same process, > kArMaxRanks) gets OK with
  // usable() false on every rank (agreed), and `why` says why.
  static Status open(Communicator* cpu, int device, size_t capacity, Clock::time_point deadline,
                     std::unique_ptr<CudaAllReduce>* out);
  // One process, one device, `world` ranks as separate buffers (tests): out[r] is rank r.
  static Status open_local(int device, int world, size_t capacity, std::vector<std::unique_ptr<CudaAllReduce>>* out);
  // open_local's driver (lk_dist_check --backend cuda-local): launches calls[r] for every rank r, each on a stream
  // of its own (created and destroyed here, so the ranks' kernels run concurrently as separate GPUs' would), waits
  // for all, and returns the first launch error, stream error or check() failure. *ms (optional): host time from
  // the first launch to the last stream's end.
  static Status run_local(std::vector<std::unique_ptr<CudaAllReduce>>& ranks, const std::vector<CollectiveArgs>& calls,
                          int64_t timeout_ms, double* ms = nullptr);
  ~CudaAllReduce();

  bool usable() const { return usable_; }
  const std::string& why_not() const { return why_; }
  int rank() const { return rank_; }
  int world() const { return world_; }
  int device() const { return device_; }
  size_t capacity() const { return capacity_; }

  // Enqueues the collective `a` (f32, f16 or bf16; all_reduce and broadcast may run in place) on `stream` (a
  // cudaStream_t of `device`), chunked by capacity. timeout_ms bounds each barrier's wait on the device.
  // Returns a launch error, or the recorded failure; the device-side outcome comes from check().
  Status enqueue(const CollectiveArgs& a, void* stream, int64_t timeout_ms);
  // The device-side outcome so far (read the host-mapped error word): OK, or timeout / peer_lost / mismatch.
  // Call after the stream passed the calls of interest.
  Status check();
  // Makes spinning and later kernels exit (the host-mapped abort word); check() then reports `why`.
  void abort(Status why);

  struct Impl;

 private:
  CudaAllReduce() = default;
  std::unique_ptr<Impl> impl_;
  bool usable_ = false;
  std::string why_;
  int rank_ = 0, world_ = 1, device_ = 0;
  size_t capacity_ = 0;
  uint64_t calls_ = 0;  // launches so far: launch k uses data half k % 2 and epochs 1 + 2k, 2 + 2k (ar::plan_call)
  FailState fail_;
};

// ---- NCCL (nccl.cc), loaded at run time -------------------------------------------------------------------------
// Loads libnccl.so.2 once per process; OK, or Code::unsupported saying why ("libnccl.so.2 not found ...").
// version: NCCL's version code (e.g. 22105) when loaded.
Status nccl_load(int* version = nullptr);

class NcclComm {
 public:
  // Collective over the CPU group: rank 0 makes the unique id, broadcast through `cpu`; nonblocking init polled
  // until `deadline` (then ncclCommAbort and Code::timeout).
  static Status open(Communicator* cpu, int device, Clock::time_point deadline, std::unique_ptr<NcclComm>* out);
  ~NcclComm();
  // Enqueues ncclAllReduce / ncclAllGather / ncclReduceScatter / ncclBroadcast on `stream` (f32/f16/bf16, sum or
  // max; a.algo is ignored). NCCL's own order of summation: identical on every rank, not bit-equal to reduce.h's
  // rank order. all_gather along an inner dimension gathers into a stream-ordered scratch buffer [R][count] and
  // reorders it into out with R strided copies (cudaMemcpy2DAsync).
  Status collective(const CollectiveArgs& a, void* stream, int64_t timeout_ms);
  // NCCL's asynchronous error (ncclCommGetAsyncError) as a Status.
  Status check();
  void abort(Status why);

  struct Impl;

 private:
  NcclComm() = default;
  // collective()'s NCCL call (on scratch when not null: an inner-dimension gather), reorder copies and event.
  Status enqueue_locked(const CollectiveArgs& a, int type, void* scratch, void* stream, int64_t timeout_ms);
  std::unique_ptr<Impl> impl_;
  FailState fail_;
};

}  // namespace lk::dist
