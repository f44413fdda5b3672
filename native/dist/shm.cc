// shm: the collectives of ranks on one host (processes or worker threads) over one shared-memory segment.
//
// Segment (a file in /dev/shm, mapped MAP_SHARED by every rank; unlinked as soon as all ranks have attached):
//   [Header 4 KiB][RankCtl x R, 64-byte lines][in slots: 2 sets x R x S bytes][res: 2 sets x S bytes]
// S ("slot") is 1 MiB for R <= 8 and shrinks to 128 KiB at R = 64 (8 MiB / R), so the segment stays near 6-20 MiB.
//
// Rounds. Every collective is a sequence of rounds; a round writes into buffer set (round & 1), passes a barrier,
// and reads from that set. Two sets make one barrier per round enough: a rank writes set s again only two rounds
// later, after passing the barrier of the round in between, which every rank reaches only once it has finished
// reading set s. The first round of each call also publishes the rank's CallDesc (per set, for the same reason)
// and every rank compares all of them after the barrier, before touching any data: a mismatch is an error on every
// rank, never a read past what a peer wrote.
//   all_reduce, small (R * bytes <= 1 MiB): one round; every rank reduces all R inputs itself (the same code in the
//     same order, so every rank gets the same bits). Latency: one barrier.
//   all_reduce, large: per chunk of S bytes, one round in which rank r reduces its 1/R of the chunk into res (two
//     barriers: inputs written, reductions written), then every rank copies res out. ~3 bytes moved per byte.
//   all_gather / reduce_scatter / broadcast: one round per chunk (reduce_scatter chunks of S / R per block).
//
// Barrier: a central counter and a generation word (futex). The last rank to arrive bumps the generation and
// wakes sleepers; waiters spin briefly (only when there are at least as many cores as ranks), yield, then sleep
// on the futex in slices of at most 5 ms, re-checking the deadline, the shared failure flag and the liveness of
// the ranks that have not arrived.
//
// Liveness without heartbeats: every rank holds an open-file-description lock (F_OFD_SETLK) on its own byte of the
// segment file at kLockBase + rank. The kernel drops it when the rank's file description closes, which includes
// the process dying by any signal; F_OFD_GETLK on that byte then finds it free. OFD locks belong to the open file,
// not the process, so ranks that are threads of one process see each other too.
//
// Failure: the first rank that sees a timeout, a lost peer or a mismatch publishes it in the header and wakes
// everyone; the others return the same code with "(reported by rank r)", so all ranks fail within the deadline
// plus one sleep slice. A rank publishes before its call returns, so before its process can learn of the failure
// (and exit, dropping its lock). A waiter therefore judges a peer by what the segment says after it found the
// peer's lock free, never before: a peer seen "not arrived", then dead, may have arrived, finished the barrier,
// found a mismatch, published it and exited in between (wait() says how it decides).
//
// Rendezvous: rank 0 builds the segment under a temporary name, locks its byte, and renames it into place; ranks
// 1..R-1 poll the name and accept a file only while rank 0's byte is locked (a leftover of a dead group never is).
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include "../common/thread_pool.h"
#include "comm.h"
#include "reduce.h"

namespace lk::dist {

namespace {

constexpr uint64_t kMagic = 0x31306d68732d6b6cull;  // "lk-shm01"
constexpr uint32_t kVersion = 1;
constexpr int kMaxWorld = 1024;
constexpr off_t kLockBase = off_t(1) << 40;  // lock bytes live far past the end of the file
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kSmallAllReduce = size_t(1) << 20;  // R * bytes at or below: one-round all_reduce

static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free,
              "atomics in shared memory must be lock-free (address-free)");

struct FutexWord {
  std::atomic<uint32_t> value;
  std::atomic<uint32_t> waiters;
};

struct Header {
  uint64_t magic;  // written last by rank 0
  uint32_t version;
  uint32_t world;
  uint64_t slot_bytes;
  uint64_t total_bytes;
  alignas(64) FutexWord gen;     // barrier generation
  std::atomic<uint32_t> arrive;  // arrivals in the current generation
  alignas(64) FutexWord joined;  // ranks attached
  alignas(64) std::atomic<uint32_t> fail_state;  // 0 none, 1 being written, 2 published
  int32_t fail_code;
  int32_t fail_rank;
  char fail_msg[1024];
};
static_assert(sizeof(Header) <= kHeaderBytes, "header fits its page");

struct alignas(64) RankCtl {
  std::atomic<uint64_t> arrived;  // barriers this rank has arrived at (to name the missing ranks)
  std::atomic<int32_t> pid;       // set (release) once the rank holds its lock byte: "has joined"
  CallDesc desc[2];               // the call of the round using set s, written before its first barrier
};

struct Layout {
  size_t ctl, in, res, total, slot;
};

Layout layout_for(int world) {
  Layout l;
  size_t slot = (size_t(8) << 20) / static_cast<size_t>(world);
  slot = std::min<size_t>(std::max<size_t>(slot, size_t(128) << 10), size_t(1) << 20);
  slot &= ~size_t(4095);
  l.slot = slot;
  l.ctl = kHeaderBytes;
  l.in = l.ctl + ((sizeof(RankCtl) * static_cast<size_t>(world) + 4095) & ~size_t(4095));
  l.res = l.in + 2 * static_cast<size_t>(world) * slot;
  l.total = l.res + 2 * slot;
  return l;
}

long futex(std::atomic<uint32_t>* addr, int op, uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, ts, nullptr, 0);
}

void wake_all(FutexWord& w) {
  if (w.waiters.load(std::memory_order_seq_cst) > 0) futex(&w.value, FUTEX_WAKE, INT_MAX, nullptr);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// The lock byte of rank `index`: a one-byte write lock at kLockBase + index.
struct flock lock_byte(int index) {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = kLockBase + index;
  fl.l_len = 1;
  return fl;
}

// Whether some open file description holds rank `index`'s lock byte. Returns 1 held, 0 free, -1 error.
int lock_held(int fd, int index) {
  struct flock fl = lock_byte(index);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -1;
  return fl.l_type == F_UNLCK ? 0 : 1;
}

bool take_lock(int fd, int index) {
  struct flock fl = lock_byte(index);
  return fcntl(fd, F_OFD_SETLK, &fl) == 0;
}

void sleep_us(int us) {
  timespec ts{0, static_cast<long>(us) * 1000};
  nanosleep(&ts, nullptr);
}

int64_t ms_left(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

class ShmComm final : public Communicator {
 public:
  ShmComm(int rank, int world, std::string name) : Communicator(rank, world), name_(std::move(name)) {
    spin_ = world <= static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) ? 4000 : 0;
  }
  ~ShmComm() override {
    if (base_ != nullptr) munmap(base_, layout_.total);
    if (fd_ >= 0) close(fd_);
  }
  const char* backend() const override { return "shm"; }

  Status attach(const std::string& path, Clock::time_point deadline);

  Status failure() const override {
    if (fail_.failed() || hdr_ == nullptr) return Communicator::failure();
    return shared_failure();
  }

  Status lost_peers() const override {
    if (hdr_ == nullptr) return Status::OK();
    std::string ranks;
    for (int r = 0; r < world(); ++r)  // pid before lock, as in wait(): a free lock of a rank that had joined
      if (r != rank() && ctl_[r].pid.load(std::memory_order_acquire) != 0 && lock_held(fd_, r) == 0)
        ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (ranks.empty()) return Status::OK();
    return Status(Code::peer_lost, "rank " + ranks + " of group '" + name_ + "' exited (its process is gone)");
  }

  void abort(Status s) override {
    // Shared first, then local: once this process sees its group failed it may exit, and by then the other ranks
    // must find the cause in the segment, not only a dropped lock (which they would report as a lost peer).
    if (hdr_ != nullptr) publish(fail_.failed() ? fail_.status() : s);
    (void)fail_.set(std::move(s));
  }

 protected:
  Status run_impl(const void* in, void* out, const CallDesc& d, Clock::time_point deadline) override {
    if (world() == 1) return run_single(in, out, d);
    Status s = run_rounds(in, out, d, deadline);
    if (!s.ok()) publish(s);  // a no-op when s is another rank's published failure
    return s;
  }

 private:
  Status create(const std::string& path, Clock::time_point deadline);
  Status join(const std::string& path, Clock::time_point deadline);
  Status map(size_t bytes);

  Status run_single(const void* in, void* out, const CallDesc& d) {
    const size_t bytes = d.count * dtype_size(d.dtype);
    if (d.kind == Collective::barrier || in == out || bytes == 0) return Status::OK();
    if (d.kind == Collective::all_reduce || d.kind == Collective::reduce_scatter) {
      // Rounds like a real reduction would (a NaN payload comes out quiet either way).
      const void* src[1] = {in};
      reduce(src, 1, out, d.count, d.dtype, d.op);
    } else {
      std::memmove(out, in, bytes);
    }
    return Status::OK();
  }

  Status run_rounds(const void* in, void* out, const CallDesc& d, Clock::time_point deadline);

  char* in_slot(int r, int set) const {
    return base_ + layout_.in + (static_cast<size_t>(set) * world() + r) * layout_.slot;
  }
  char* res_slot(int set) const { return base_ + layout_.res + static_cast<size_t>(set) * layout_.slot; }

  // Opens a round: publishes desc (first round of a call) into this round's set. Returns the set.
  int begin_round(const CallDesc* d) {
    const int set = static_cast<int>(round_ & 1);
    if (d != nullptr) ctl_[rank()].desc[set] = *d;
    return set;
  }
  void end_round() { ++round_; }

  Status barrier(const CallDesc& d, Clock::time_point deadline);
  Status check_descs(const CallDesc& d, int set);
  Status wait(FutexWord& w, uint32_t old, const CallDesc* d, Clock::time_point deadline, const char* what);
  Status shared_failure() const;
  void publish(const Status& s);
  std::string missing_ranks(uint64_t target, std::vector<int>* dead) const;

  std::string name_;
  std::string path_;
  int fd_ = -1;
  char* base_ = nullptr;
  Header* hdr_ = nullptr;
  RankCtl* ctl_ = nullptr;
  Layout layout_{};
  uint64_t round_ = 0;
  uint64_t barriers_ = 0;
  int spin_ = 0;
};

Status ShmComm::map(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) return Status(errno == ENOMEM ? Code::oom : Code::device, errno_text("shm: mmap of the segment"));
  base_ = static_cast<char*>(p);
  hdr_ = reinterpret_cast<Header*>(base_);
  ctl_ = reinterpret_cast<RankCtl*>(base_ + layout_.ctl);
  return Status::OK();
}

Status ShmComm::create(const std::string& path, Clock::time_point deadline) {
  // A file left at the name: refuse it if its rank 0 still lives (another group is using the name), else remove it.
  {
    const int old = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (old >= 0) {
      const int held = lock_held(old, 0);
      close(old);
      if (held == 1)
        return range_error("initProcessGroup: expected a group name no live group uses, got '" + name_ +
                           "' (a running rank 0 holds " + path + "); pick another name or stop that group");
      unlink(path.c_str());
    }
  }
  std::random_device rd;
  const std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(rd());
  fd_ = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) return Status(Code::device, errno_text(("shm: cannot create " + tmp).c_str()));
  // Reserve the pages now: a full /dev/shm must be an error here, not a SIGBUS on first touch later.
  const int fa = posix_fallocate(fd_, 0, static_cast<off_t>(layout_.total));
  if (fa != 0) {
    unlink(tmp.c_str());
    return Status(fa == ENOSPC ? Code::oom : Code::device,
                  "shm: cannot reserve " + std::to_string(layout_.total >> 10) + " KiB in /dev/shm: " + std::strerror(fa));
  }
  Status s = map(layout_.total);
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  Header* h = new (hdr_) Header();
  h->version = kVersion;
  h->world = static_cast<uint32_t>(world());
  h->slot_bytes = layout_.slot;
  h->total_bytes = layout_.total;
  for (int r = 0; r < world(); ++r) new (&ctl_[r]) RankCtl();
  ctl_[0].pid.store(getpid(), std::memory_order_relaxed);  // published with the magic below
  if (!take_lock(fd_, 0)) {
    unlink(tmp.c_str());
    return Status(Code::device, errno_text("shm: cannot lock the segment"));
  }
  std::atomic_thread_fence(std::memory_order_release);
  reinterpret_cast<std::atomic<uint64_t>*>(&h->magic)->store(kMagic, std::memory_order_release);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status(Code::device, errno_text(("shm: cannot publish " + path).c_str()));
  }
  h->joined.value.fetch_add(1, std::memory_order_seq_cst);
  for (;;) {
    const uint32_t j = h->joined.value.load(std::memory_order_acquire);
    if (j >= static_cast<uint32_t>(world())) break;
    Status w = wait(h->joined, j, nullptr, deadline, "the other ranks to join");
    if (!w.ok()) {
      unlink(path.c_str());
      return w;
    }
  }
  // Everyone has it mapped: the name is no longer needed, and nothing is left behind if the group dies.
  unlink(path.c_str());
  return Status::OK();
}

Status ShmComm::join(const std::string& path, Clock::time_point deadline) {
  int delay_us = 200;
  for (;;) {
    if (Clock::now() >= deadline)
      return Status(Code::timeout, "initProcessGroup: rank 0 of group '" + name_ + "' did not create " + path +
                                       " in time (is rank 0 running, with the same group name?)");
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) return Status(Code::device, errno_text(("shm: cannot open " + path).c_str()));
      sleep_us(delay_us);
      delay_us = std::min(delay_us * 2, 5000);
      continue;
    }
    struct stat st;
    if (lock_held(fd, 0) != 1 || fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != layout_.total) {
      // A leftover of a dead group, or one of another size: if the size is wrong while rank 0 lives, the world
      // sizes differ; say so once the header confirms it.
      if (lock_held(fd, 0) == 1 && static_cast<size_t>(st.st_size) >= kHeaderBytes) {
        void* p = mmap(nullptr, kHeaderBytes, PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
          const Header* h = static_cast<const Header*>(p);
          const uint64_t magic = reinterpret_cast<const std::atomic<uint64_t>*>(&h->magic)->load(std::memory_order_acquire);
          const uint32_t w = h->world;
          munmap(p, kHeaderBytes);
          if (magic == kMagic && w != static_cast<uint32_t>(world())) {
            close(fd);
            return range_error("initProcessGroup: expected the world size of rank 0 (" + std::to_string(w) +
                               ") for worldSize, got " + std::to_string(world()));
          }
        }
      }
      close(fd);
      sleep_us(delay_us);
      delay_us = std::min(delay_us * 2, 5000);
      continue;
    }
    fd_ = fd;
    break;
  }
  LK_RETURN_IF_ERROR(map(layout_.total));
  if (reinterpret_cast<std::atomic<uint64_t>*>(&hdr_->magic)->load(std::memory_order_acquire) != kMagic ||
      hdr_->version != kVersion || hdr_->slot_bytes != layout_.slot)
    return Status(Code::device, "shm: " + path + " is not a segment of this version of llm-kernels");
  if (!take_lock(fd_, rank()))
    return range_error("initProcessGroup: expected a rank no other process of group '" + name_ + "' has, got rank " +
                       std::to_string(rank()) + " (already taken)");
  ctl_[rank()].pid.store(getpid(), std::memory_order_release);
  hdr_->joined.value.fetch_add(1, std::memory_order_seq_cst);
  wake_all(hdr_->joined);
  for (;;) {
    const uint32_t j = hdr_->joined.value.load(std::memory_order_acquire);
    if (j >= static_cast<uint32_t>(world())) return Status::OK();
    LK_RETURN_IF_ERROR(wait(hdr_->joined, j, nullptr, deadline, "the other ranks to join"));
  }
}

Status ShmComm::attach(const std::string& path, Clock::time_point deadline) {
  path_ = path;
  layout_ = layout_for(world());
  return rank() == 0 ? create(path, deadline) : join(path, deadline);
}

Status ShmComm::shared_failure() const {
  if (hdr_->fail_state.load(std::memory_order_acquire) != 2) return Status::OK();
  std::string msg(hdr_->fail_msg, strnlen(hdr_->fail_msg, sizeof hdr_->fail_msg));
  if (hdr_->fail_rank != rank()) msg += " (reported by rank " + std::to_string(hdr_->fail_rank) + ")";
  return Status(static_cast<Code>(hdr_->fail_code), msg);
}

void ShmComm::publish(const Status& s) {
  if (hdr_ == nullptr || s.ok()) return;
  uint32_t expect = 0;
  if (hdr_->fail_state.compare_exchange_strong(expect, 1, std::memory_order_acq_rel)) {
    const std::string& m = s.message();
    const size_t n = std::min(m.size(), sizeof hdr_->fail_msg - 1);
    std::memcpy(hdr_->fail_msg, m.data(), n);
    hdr_->fail_msg[n] = '\0';
    hdr_->fail_code = static_cast<int32_t>(s.code());
    hdr_->fail_rank = rank();
    hdr_->fail_state.store(2, std::memory_order_seq_cst);
  }
  // Wake every sleeper; they re-check the failure flag.
  futex(&hdr_->gen.value, FUTEX_WAKE, INT_MAX, nullptr);
  futex(&hdr_->joined.value, FUTEX_WAKE, INT_MAX, nullptr);
}

// The ranks that have not arrived at barrier `target`, as "1, 3"; with `dead`, also those of them whose process is
// gone. Dead means: lock free, and still not arrived when read AFTER finding the lock free. A rank's arrival
// precedes its exit, and the kernel drops the lock only at the exit, so a rank read as not arrived after its lock
// was seen free never arrived. Reading in the other order (arrived, then lock) takes a rank that arrived, ended the
// barrier and exited while this thread was between the two reads for one that never came.
std::string ShmComm::missing_ranks(uint64_t target, std::vector<int>* dead) const {
  std::string s;
  for (int r = 0; r < world(); ++r) {
    if (r == rank() || ctl_[r].arrived.load(std::memory_order_acquire) >= target) continue;
    if (dead != nullptr && lock_held(fd_, r) == 0) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ctl_[r].arrived.load(std::memory_order_acquire) >= target) continue;
      dead->push_back(r);
    }
    if (!s.empty()) s += ", ";
    s += std::to_string(r);
  }
  return s;
}

// Waits until w.value != old. d (null during the rendezvous) names the call in errors.
Status ShmComm::wait(FutexWord& w, uint32_t old, const CallDesc* d, Clock::time_point deadline, const char* what) {
  for (int i = 0; i < spin_; ++i) {
    if (w.value.load(std::memory_order_acquire) != old) return Status::OK();
    LK_CPU_RELAX();
  }
  for (int i = 0; i < 16; ++i) {
    if (w.value.load(std::memory_order_acquire) != old) return Status::OK();
    sched_yield();
  }
  const std::string call = d != nullptr ? describe(*d) : std::string("initProcessGroup");
  auto last_probe = Clock::now();
  for (;;) {
    if (w.value.load(std::memory_order_acquire) != old) return Status::OK();
    Status f = shared_failure();
    if (!f.ok()) return f;
    const auto now = Clock::now();
    // The ranks this one waits for: those behind in barrier count (collectives) or not yet joined (rendezvous,
    // where only joined ranks hold their lock and can be probed).
    if (now - last_probe >= std::chrono::milliseconds(20) || now >= deadline) {
      last_probe = now;
      std::vector<int> dead;
      std::string missing;
      if (d != nullptr) {
        missing = missing_ranks(barriers_, &dead);
      } else {
        for (int r = 0; r < world(); ++r) {
          if (r == rank()) continue;
          // pid before the lock: a rank sets its pid after taking its lock, so a pid seen here means the lock was
          // taken before the probe, and a free lock then means the rank is gone. Read after the probe, a rank that
          // joined in between (lock free, then pid set) would look dead.
          const bool joined = ctl_[r].pid.load(std::memory_order_acquire) != 0;
          const int held = lock_held(fd_, r);
          if (held != 1) {
            if (!missing.empty()) missing += ", ";
            missing += std::to_string(r);
          }
          if (held == 0 && joined) dead.push_back(r);
        }
      }
      if (!dead.empty() || now >= deadline) {
        // The probe is a system call per rank and this thread may be preempted inside it, while the ranks go on.
        // Before failing, look again at what they published since: the barrier may have completed (every rank
        // arrived; one that died after arriving is found at the next barrier), or a rank may have published the
        // cause of the failure (a mismatch, found by a peer that then exited: that, not "peer lost", is what every
        // rank must report). Publishing precedes a rank's exit, and its exit precedes the probe seeing its lock
        // free, so these reads see everything a dead rank published.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (w.value.load(std::memory_order_acquire) != old) return Status::OK();
        Status published = shared_failure();
        if (!published.ok()) return published;
      }
      if (!dead.empty()) {
        std::string ranks;
        for (int r : dead) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
        return Status(Code::peer_lost, call + ": rank " + ranks + " of group '" + name_ +
                                           "' exited (its process is gone) while rank " + std::to_string(rank()) +
                                           " waited for " + what);
      }
      if (now >= deadline)
        return Status(Code::timeout, call + ": rank " + std::to_string(rank()) + " of group '" + name_ + "' waited for " +
                                         what + " until its deadline; still missing: rank " +
                                         (missing.empty() ? std::string("?") : missing));
    }
    const int64_t left_ms = std::max<int64_t>(1, std::min<int64_t>(5, ms_left(deadline)));
    timespec ts{0, static_cast<long>(left_ms) * 1000000L};
    w.waiters.fetch_add(1, std::memory_order_seq_cst);
    if (w.value.load(std::memory_order_seq_cst) == old) futex(&w.value, FUTEX_WAIT, old, &ts);
    w.waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
}

Status ShmComm::barrier(const CallDesc& d, Clock::time_point deadline) {
  Status f = shared_failure();
  if (!f.ok()) return f;
  const uint32_t g = hdr_->gen.value.load(std::memory_order_acquire);
  ctl_[rank()].arrived.store(++barriers_, std::memory_order_release);
  if (hdr_->arrive.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<uint32_t>(world())) {
    hdr_->arrive.store(0, std::memory_order_relaxed);
    hdr_->gen.value.store(g + 1, std::memory_order_seq_cst);
    wake_all(hdr_->gen);
    return Status::OK();
  }
  return wait(hdr_->gen, g, &d, deadline, "the others to reach the same collective");
}

Status ShmComm::check_descs(const CallDesc& d, int set) {
  bool same = true;
  for (int r = 0; r < world() && same; ++r) {
    const CallDesc& o = ctl_[r].desc[set];
    same = o.seq == d.seq && o.count == d.count && o.site == d.site && o.inner == d.inner && o.kind == d.kind && o.dtype == d.dtype &&
           (o.op == d.op || (d.kind != Collective::all_reduce && d.kind != Collective::reduce_scatter)) &&
           (o.root == d.root || d.kind != Collective::broadcast);
  }
  if (same) return Status::OK();
  std::string m = "collective mismatch in group '" + name_ + "' (every rank must make the same calls in the same order):";
  for (int r = 0; r < world(); ++r) {
    const CallDesc& o = ctl_[r].desc[set];
    m += (r == 0 ? " " : "; ") + std::string("rank ") + std::to_string(r) + ": " + describe(o);
    if (o.site != d.site) m += " at site " + std::to_string(o.site);
  }
  return Status(Code::mismatch, m);
}

Status ShmComm::run_rounds(const void* in_, void* out_, const CallDesc& d, Clock::time_point deadline) {
  const char* in = static_cast<const char*>(in_);
  char* out = static_cast<char*>(out_);
  const int R = world(), me = rank();
  const size_t es = dtype_size(d.dtype);
  const size_t S = layout_.slot;
  std::vector<const void*> src(R);
  // One round per chunk of `chunk` elements of [0, count), and at least one (a call of 0 elements still meets its
  // peers and compares the calls): write(set, off, n) fills this rank's slot, the barrier (the first round's also
  // compares every rank's call before any data is read), then read(set, off, n).
  const auto rounds = [&](size_t count, size_t chunk, auto&& write, auto&& read) -> Status {
    size_t off = 0;
    bool first = true;
    do {
      const size_t n = std::min(chunk, count - off);
      const int set = begin_round(first ? &d : nullptr);
      write(set, off, n);
      LK_RETURN_IF_ERROR(barrier(d, deadline));
      if (first) LK_RETURN_IF_ERROR(check_descs(d, set));
      first = false;
      LK_RETURN_IF_ERROR(read(set, off, n));
      end_round();
      off += n;
    } while (off < count);
    return Status::OK();
  };
  switch (d.kind) {
    case Collective::barrier:
      return rounds(0, 1, [](int, size_t, size_t) {}, [](int, size_t, size_t) { return Status::OK(); });
    case Collective::all_reduce: {
      const size_t bytes = d.count * es;
      const auto write = [&](int set, size_t off, size_t n) { std::memcpy(in_slot(me, set), in + off * es, n * es); };
      if (bytes <= S && bytes * static_cast<size_t>(R) <= kSmallAllReduce) {
        // One round for the whole vector: every rank reduces everything.
        return rounds(d.count, std::max<size_t>(1, d.count), write, [&](int set, size_t, size_t) {
          for (int r = 0; r < R; ++r) src[r] = in_slot(r, set);
          reduce(src.data(), R, out, d.count, d.dtype, d.op);
          return Status::OK();
        });
      }
      // Chunks of one slot; rank r reduces elements [lo_r, hi_r) of each chunk (64-byte aligned boundaries) into
      // res, and after a second barrier every rank copies res out.
      return rounds(d.count, S / es, write, [&](int set, size_t off, size_t n) -> Status {
        const size_t align = 64 / es;
        const auto bound = [&](int r) {
          const size_t b = n * static_cast<size_t>(r) / static_cast<size_t>(R);
          return r == R ? n : std::min(n, (b + align - 1) / align * align);
        };
        const size_t lo = bound(me), hi = bound(me + 1);
        if (hi > lo) {
          for (int r = 0; r < R; ++r) src[r] = in_slot(r, set) + lo * es;
          reduce(src.data(), R, res_slot(set) + lo * es, hi - lo, d.dtype, d.op);
        }
        LK_RETURN_IF_ERROR(barrier(d, deadline));
        std::memcpy(out + off * es, res_slot(set), n * es);
        return Status::OK();
      });
    }
    case Collective::all_gather:
      return rounds(
          d.count, S / es, [&](int set, size_t off, size_t n) { std::memcpy(in_slot(me, set), in + off * es, n * es); },
          [&](int set, size_t off, size_t n) {
            for (int r = 0; r < R; ++r) {
              char* dst = out + (static_cast<size_t>(r) * d.count + off) * es;
              if (dst != in_slot(r, set)) std::memcpy(dst, in_slot(r, set), n * es);
            }
            return Status::OK();
          });
    case Collective::reduce_scatter:
      // Each round moves a chunk of every block: rank r's slot holds [block 0 chunk, block 1 chunk, ...].
      return rounds(
          d.count, std::max<size_t>(1, S / (es * static_cast<size_t>(R))),
          [&](int set, size_t off, size_t n) {
            for (int b = 0; b < R; ++b)
              std::memcpy(in_slot(me, set) + static_cast<size_t>(b) * n * es, in + (static_cast<size_t>(b) * d.count + off) * es, n * es);
          },
          [&](int set, size_t off, size_t n) {
            for (int r = 0; r < R; ++r) src[r] = in_slot(r, set) + static_cast<size_t>(me) * n * es;
            reduce(src.data(), R, out + off * es, n, d.dtype, d.op);
            return Status::OK();
          });
    case Collective::broadcast:
      if (me == d.root && in != out) std::memmove(out, in, d.count * es);
      return rounds(
          d.count, S / es,
          [&](int set, size_t off, size_t n) {
            if (me == d.root) std::memcpy(in_slot(me, set), out + off * es, n * es);
          },
          [&](int set, size_t off, size_t n) {
            if (me != d.root) std::memcpy(out + off * es, in_slot(d.root, set), n * es);
            return Status::OK();
          });
  }
  return internal_error("shm: unknown collective");
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 100) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return n != "." && n != "..";
}

}  // namespace

Status open_shm(const OpenOptions& o, const std::string& name, std::unique_ptr<Communicator>* out) {
  if (o.world < 1 || o.world > kMaxWorld)
    return range_error("initProcessGroup: expected worldSize in [1, " + std::to_string(kMaxWorld) + "] for the shm backend, got " +
                       std::to_string(o.world));
  if (o.rank < 0 || o.rank >= o.world)
    return range_error("initProcessGroup: expected rank in [0, " + std::to_string(o.world) + "), got " + std::to_string(o.rank));
  if (!valid_name(name))
    return range_error("initProcessGroup: expected a group name of 1-100 characters [A-Za-z0-9._-], got '" + name + "'");
  std::unique_ptr<ShmComm> c(new (std::nothrow) ShmComm(o.rank, o.world, name));
  if (!c) return Status(Code::oom, "out of memory");
  if (o.world > 1) {
    const std::string path = "/dev/shm/llm-kernels-" + std::to_string(getuid()) + "-" + name;
    LK_RETURN_IF_ERROR(c->attach(path, o.deadline));
  }
  *out = std::move(c);
  return Status::OK();
}

}  // namespace lk::dist
