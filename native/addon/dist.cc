// Process groups (native/dist) for JS: open, collectives enqueued on the CPU stream, barrier, close.
//
// A collective is a host task on the CPU stream, so it runs after the ops that produce its input and before the
// ops queued after it, and the JS thread never waits: like an NCCL call on a CUDA stream. It blocks the stream's
// executor until every rank has arrived or its deadline passes. A failure poisons the output tensor and becomes
// the environment's sticky error, so the next `await t.data()` or `synchronize()` rejects with ERR_TIMEOUT,
// ERR_PEER_LOST or ERR_COLLECTIVE_MISMATCH; the group is failed from then on, and every later call throws at once.
//
// Opening a group (the rendezvous, MPI_Init) can take seconds: it runs on its own thread and settles a promise.
//
// CUDA tensors: a group opened with a CUDA device (distOpen's cudaDevice >= 0) also registers the custom
// collectives (native/dist/cuda_ar.h) and, when libnccl.so.2 loads on every rank, an NCCL communicator, both
// through the group's CPU communicator while it opens. A collective of CUDA tensors picks one of them per call
// (select_collective: a pure function of the kind, size, R and what every rank registered) and launches it on the
// device's CUDA stream from the JS thread (launching never waits); a host task queued behind it on the same stream
// reads the device-side outcome, poisons the output on failure and fails the whole group (the CPU communicator is
// aborted with the same Status, so the other ranks learn it too on shm). Worker threads cannot be the ranks of a
// CUDA group: they share one CUDA stream per device, and CUDA IPC does not open handles of the own process.
#include <chrono>
#include <thread>
#include <unordered_map>

#include "addon.h"
#include "settle.h"
#include "../cuda/cuda_backend.h"
#include "../dist/comm.h"
#include "../dist/cuda_ar.h"

namespace lk {

using dist::Collective;
using dist::Communicator;
using dist::ReduceOp;

struct DistGroup {
  std::mutex mu;
  std::unique_ptr<Communicator> comm;  // set once the open succeeded
  Status open_status = Status(Code::internal, "process group: still opening");
  bool opening = true;
  std::string backend;
  // CUDA (set by the open thread before `opening` is cleared; then read-only, the objects themselves thread-safe
  // for enqueue on the JS thread + check on the completion thread).
  int cuda_device = -1;                          // -1: a CPU-only group
  std::unique_ptr<dist::CudaAllReduce> car;      // the custom all-reduce (usable() says whether registered)
  std::unique_ptr<dist::NcclComm> nccl;          // null when NCCL is not loaded on every rank
  std::string nccl_why;                          // why nccl is null
  ~DistGroup() {
    // The CUDA objects wait for their queued kernels (bounded by the device-side timeouts) before freeing.
    nccl.reset();
    car.reset();
  }
};

struct DistGroups {
  std::unordered_map<uint32_t, std::shared_ptr<DistGroup>> groups;
  uint32_t next = 1;
  ~DistGroups() {
    // The environment is going away (a worker terminated, the process exiting): fail its groups so that a
    // collective still waiting on the executor returns now, and tell the other ranks.
    for (auto& g : groups) {
      std::lock_guard<std::mutex> lock(g.second->mu);
      if (g.second->comm) {
        const Status why(Code::peer_lost, "rank " + std::to_string(g.second->comm->rank()) +
                                              " closed the process group (its environment exited)");
        if (g.second->car) g.second->car->abort(why);
        if (g.second->nccl) g.second->nccl->abort(why);
        g.second->comm->abort(why);
      }
    }
  }
};

namespace {

DistGroups& groups_of(Napi::Env env) {
  AddonData& d = addon_data(env);
  if (!d.dist) d.dist = std::make_shared<DistGroups>();
  return *d.dist;
}

std::shared_ptr<DistGroup> group_arg(Napi::Env env, const Napi::Value& v, const char* fn) {
  const auto id = static_cast<uint32_t>(parse_int(env, v, fn, "group", 1, UINT32_MAX));
  DistGroups& gs = groups_of(env);
  auto it = gs.groups.find(id);
  if (it == gs.groups.end()) throw_status(env, Status(Code::disposed, std::string(fn) + ": the process group was closed"));
  return it->second;
}

// The communicator of an open, healthy group (throws otherwise).
Communicator* live_comm(Napi::Env env, DistGroup& g, const char* fn) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.opening) throw_status(env, Status(Code::internal, std::string(fn) + ": the process group is still opening (await initProcessGroup)"));
  if (!g.comm) throw_status(env, g.open_status);
  Status f = g.comm->failure();
  if (!f.ok()) throw_status(env, Status(f.code(), std::string(fn) + ": the process group failed earlier: " + f.message()));
  return g.comm.get();
}

std::string string_arg(Napi::Env env, const Napi::Value& v, const char* fn, const char* param) {
  if (!v.IsString()) throw_status(env, type_error(std::string(fn) + ": expected a string for " + param));
  return v.As<Napi::String>().Utf8Value();
}

dist::Clock::time_point deadline_in(int64_t ms) { return dist::Clock::now() + std::chrono::milliseconds(ms); }

// The CUDA part of an open (a collective over `c`, on the open thread): the custom all-reduce, then NCCL if every
// rank loads it. Only a failure of the CPU communicator (or OOM) fails the open; a path that cannot be used is
// recorded with its reason (distInfo) and the selection avoids it.
Status open_cuda(DistGroup& g, Communicator* c, int device, dist::Clock::time_point deadline) {
  g.cuda_device = device;
  LK_RETURN_IF_ERROR(dist::CudaAllReduce::open(c, device, dist::kArDefaultCapacity, deadline, &g.car));
  // NCCL: every rank must load it, or none uses it (a rank on NCCL and one on the custom kernels would wait forever).
  const Status loaded = dist::nccl_load();
  float mine = loaded.ok() ? 1.0f : 0.0f;
  std::vector<float> all(static_cast<size_t>(c->world()));
  dist::CallDesc d;
  d.kind = Collective::all_gather;
  d.dtype = DType::f32;
  d.count = 1;
  LK_RETURN_IF_ERROR(c->call(&mine, all.data(), d, deadline));
  int missing = -1;
  for (int r = 0; r < c->world(); ++r)
    if (all[r] == 0.0f && missing < 0) missing = r;
  if (missing >= 0) {
    g.nccl_why = missing == c->rank() ? loaded.message() : "rank " + std::to_string(missing) + " could not load libnccl.so.2";
    return Status::OK();
  }
  Status s = dist::NcclComm::open(c, device, deadline, &g.nccl);
  if (!s.ok() && (s.code() == Code::timeout || s.code() == Code::peer_lost)) return s;  // the CPU group failed too
  // Agree that every rank has a communicator.
  mine = s.ok() ? 1.0f : 0.0f;
  LK_RETURN_IF_ERROR(c->call(&mine, all.data(), d, deadline));
  for (int r = 0; r < c->world(); ++r)
    if (all[r] == 0.0f) {
      g.nccl_why = s.ok() ? "NCCL could not open on rank " + std::to_string(r) : s.message();
      g.nccl.reset();
      break;
    }
  return Status::OK();
}

// distOpen(backend, rank, world, name, library, timeoutMs, cudaDevice?): [id, Promise<void>]. The promise settles when the
// rendezvous is done (or failed); until then the group refuses collectives.
Napi::Value dist_open(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* fn = "initProcessGroup";
    const std::string backend = string_arg(env, info[0], fn, "backend");
    if (backend != "shm" && backend != "mpi")
      throw_status(env, range_error(std::string(fn) + ": expected backend 'shm' or 'mpi', got '" + backend + "'"));
    dist::OpenOptions o;
    o.rank = static_cast<int>(parse_int(env, info[1], fn, "rank", -1, 1 << 20));
    o.world = static_cast<int>(parse_int(env, info[2], fn, "worldSize", -1, 1 << 20));
    const std::string name = string_arg(env, info[3], fn, "name");
    const std::string library = string_arg(env, info[4], fn, "library");
    const int64_t timeout_ms = parse_int(env, info[5], fn, "timeoutMs", 1, int64_t(1) << 40);
    o.deadline = deadline_in(timeout_ms);
    const int cuda_device = info[6].IsUndefined() ? -1 : static_cast<int>(parse_int(env, info[6], fn, "cudaDevice", -1, 1 << 20));
    if (cuda_device >= 0) {
      const CudaProbe probe = cuda_probe();
      if (!probe.available)
        throw_status(env, Status(probe.compiled ? Code::device : Code::unsupported,
                                 std::string(fn) + ": expected an available CUDA device for options.device 'cuda:" +
                                     std::to_string(cuda_device) + "', got none: " + probe.reason +
                                     ". Omit options.device for a group of CPU tensors"));
      if (cuda_device >= static_cast<int>(probe.devices.size()))
        throw_status(env, range_error(std::string(fn) + ": expected a CUDA device index in [0, " + std::to_string(probe.devices.size()) +
                                      ") for options.device, got " + std::to_string(cuda_device)));
    }

    auto g = std::make_shared<DistGroup>();
    g->backend = backend;
    DistGroups& gs = groups_of(env);
    const uint32_t id = gs.next++;
    gs.groups[id] = g;
    std::shared_ptr<Settler> settler;
    Napi::Promise promise = Settler::create(env, &settler);
    std::thread([g, settler, o, name, library, backend, cuda_device]() {
      std::unique_ptr<Communicator> c;
      Status s;
      try {
        s = backend == "shm" ? dist::open_shm(o, name, &c) : dist::open_mpi(o, library, &c);
        if (s.ok() && cuda_device >= 0) s = open_cuda(*g, c.get(), cuda_device, o.deadline);
      } catch (const std::bad_alloc&) {
        s = Status(Code::oom, "initProcessGroup: out of memory");
      } catch (const std::exception& e) {
        s = internal_error(std::string("initProcessGroup: ") + e.what());
      }
      {
        std::lock_guard<std::mutex> lock(g->mu);
        g->opening = false;
        g->open_status = s;
        if (s.ok()) {
          g->comm = std::move(c);
        } else {
          g->nccl.reset();
          g->car.reset();
        }
      }
      std::unique_ptr<Completion> done(new Completion());
      done->status = s;
      settler->settle(std::move(done));
    }).detach();
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::Number::New(env, id));
    r.Set(1u, promise);
    return r;
  });
}

// distInfo(id): { rank, worldSize, backend }.
Napi::Value dist_info(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto g = group_arg(env, info[0], "ProcessGroup");
    std::lock_guard<std::mutex> lock(g->mu);
    if (!g->comm) throw_status(env, g->opening ? internal_error("ProcessGroup: still opening") : g->open_status);
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", g->comm->rank());
    o.Set("worldSize", g->comm->world());
    o.Set("backend", g->comm->backend());
    if (g->cuda_device >= 0) {
      Napi::Object cu = Napi::Object::New(env);
      cu.Set("device", g->cuda_device);
      cu.Set("custom", g->car != nullptr && g->car->usable());
      cu.Set("customReason", g->car != nullptr ? g->car->why_not() : std::string("not registered"));
      cu.Set("nccl", g->nccl != nullptr);
      cu.Set("ncclReason", g->nccl_why);
      o.Set("cuda", cu);
    }
    return o;
  });
}

// distFailure(id): the group's failure as an error object, or undefined while it is healthy.
Napi::Value dist_failure(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto g = group_arg(env, info[0], "ProcessGroup");
    std::lock_guard<std::mutex> lock(g->mu);
    if (!g->comm) return g->opening ? env.Undefined() : status_to_error(env, g->open_status);
    Status f = g->comm->failure();
    return f.ok() ? env.Undefined() : status_to_error(env, f);
  });
}

// A collective of CUDA tensors (see the file header; d: the call, dtypes and sizes already checked): validate the
// devices, select, launch on the device's stream, and queue the host task that reports the outcome.
void cuda_collective(Napi::Env env, const std::shared_ptr<DistGroup>& g, Communicator* comm, const dist::CallDesc& d,
                     TensorSlot& in, TensorSlot& out, int64_t timeout_ms) {
  const char* fn = dist::collective_name(d.kind);
  if (in.meta.device != out.meta.device)
    throw_status(env, range_error(std::string(fn) + ": expected x and out on one device, got " + in.meta.device.name() + " and " +
                                  out.meta.device.name()));
  if (g->cuda_device < 0)
    throw_status(env, unsupported(std::string(fn) + ": expected a process group opened with { device: '" + in.meta.device.name() +
                                  "' } for CUDA tensors, got a CPU-only group"));
  if (in.meta.device.index != g->cuda_device)
    throw_status(env, range_error(std::string(fn) + ": expected tensors on the group's device cuda:" + std::to_string(g->cuda_device) +
                                  ", got " + in.meta.device.name()));
  const DType dt = in.meta.dtype;
  dist::ArSelectInput sel;
  sel.bytes = static_cast<uint64_t>(in.meta.numel()) * dtype_size(dt);
  sel.world = comm->world();
  sel.custom = g->car != nullptr && g->car->usable();
  sel.nccl = g->nccl != nullptr;
  std::string why;
  const dist::ArAlgo algo = dist::select_collective(d.kind, sel, &why);
  if (algo == dist::ArAlgo::none)
    throw_status(env, unsupported(std::string(fn) + "(cuda): " + why + " (custom: " + (g->car ? g->car->why_not() : std::string("-")) +
                                  "; nccl: " + g->nccl_why + ")"));
  for (Status f : {comm->failure(), g->car ? g->car->check() : Status::OK(), g->nccl ? g->nccl->check() : Status::OK()})
    if (!f.ok()) throw_status(env, Status(f.code(), std::string(fn) + ": the process group failed earlier: " + f.message()));
  Stream* stream = nullptr;
  check(env, stream_for(in.meta.device, &stream, owner_of(env)));
  void* cs = nullptr;
  check(env, cuda_stream(g->cuda_device, &cs));
  std::shared_ptr<Storage> in_st = in.storage, out_st = out.storage;
  dist::CollectiveArgs a;
  a.kind = d.kind;
  a.in = static_cast<const char*>(in_st->data()) + in.offset;
  a.out = static_cast<char*>(out_st->data()) + out.offset;
  a.count = d.count;
  a.inner = d.inner;
  a.root = d.root;
  a.dt = dt;
  a.op = d.op;
  a.algo = algo;
  Status s = algo == dist::ArAlgo::nccl ? g->nccl->collective(a, cs, timeout_ms) : g->car->enqueue(a, cs, timeout_ms);
  if (!s.ok()) {
    out_st->poison(s);
    comm->abort(s);
    throw_status(env, s);
  }
  const bool use_nccl = algo == dist::ArAlgo::nccl;
  stream->submit_host(
      [g, in_st, out_st, use_nccl](Status prior) -> Status {
        Status r = use_nccl ? g->nccl->check() : g->car->check();
        if (!r.ok()) {
          std::lock_guard<std::mutex> lock(g->mu);
          // The device only sees a peer that never arrived (a timeout); the CPU communicator can tell whether its
          // process is gone, which is the cause to report.
          if (r.code() == Code::timeout && g->comm) {
            const Status lost = g->comm->lost_peers();
            if (!lost.ok()) r = Status(Code::peer_lost, r.message() + ": " + lost.message());
          }
          out_st->poison(r);
          if (g->comm) g->comm->abort(r);  // the whole group is failed, and shm tells the other ranks
          return r;
        }
        if (in_st != out_st && in_st->poisoned()) out_st->poison(in_st->poison_status());
        return prior;
      },
      owner_of(env));
}

// distSelectAllReduce(bytes, world, custom, nccl, kind?): { algo, why }: the selection rule (a pure function) of a
// collective (kind as distCollective's; default allReduce), for tests and for tools that print the plan.
Napi::Value dist_select_all_reduce(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* fn = "selectAllReduce";
    dist::ArSelectInput in;
    in.bytes = static_cast<uint64_t>(parse_int(env, info[0], fn, "bytes", 0, int64_t(1) << 53));
    in.world = static_cast<int>(parse_int(env, info[1], fn, "worldSize", 1, 1 << 20));
    if (!info[2].IsBoolean() || !info[3].IsBoolean())
      throw_status(env, type_error(std::string(fn) + ": expected booleans for custom and nccl"));
    in.custom = info[2].As<Napi::Boolean>().Value();
    in.nccl = info[3].As<Napi::Boolean>().Value();
    const auto kind = static_cast<Collective>(info[4].IsUndefined() ? 1 : parse_int(env, info[4], fn, "kind", 1, 4));
    std::string why;
    const dist::ArAlgo a = dist::select_collective(kind, in, &why);
    Napi::Object o = Napi::Object::New(env);
    o.Set("algo", dist::ar_algo_name(a));
    o.Set("why", why);
    return o;
  });
}

// distNcclProbe(): { loaded, version, reason }: whether libnccl.so.2 loads in this process (loads it once).
Napi::Value dist_nccl_probe(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    int version = 0;
    const Status s = dist::nccl_load(&version);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loaded", s.ok());
    o.Set("version", version);
    o.Set("reason", s.message());
    return o;
  });
}

// distCollective(id, kind, op, input, output, root, timeoutMs, site, inner): enqueue; output may be input (in
// place); inner: allGather along an inner dimension of that many elements (0: the first dimension).
Napi::Value dist_collective(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto g = group_arg(env, info[0], "collective");
    const auto kind = static_cast<Collective>(parse_int(env, info[1], "collective", "kind", 1, 4));
    const char* fn = dist::collective_name(kind);
    Communicator* comm = live_comm(env, *g, fn);
    const auto op = static_cast<ReduceOp>(parse_int(env, info[2], fn, "op", 0, 1));
    TensorSlot& in = tensor_arg(env, info[3], fn, "x");
    TensorSlot& out = tensor_arg(env, info[4], fn, "out");
    const int root = static_cast<int>(parse_int(env, info[5], fn, "root", 0, comm->world() - 1));
    const int64_t timeout_ms = parse_int(env, info[6], fn, "timeoutMs", 1, int64_t(1) << 40);
    const auto site = static_cast<uint64_t>(parse_int(env, info[7], fn, "site", 0, (int64_t(1) << 53)));
    const auto inner = static_cast<uint64_t>(info[8].IsUndefined() ? 0 : parse_int(env, info[8], fn, "inner", 0, (int64_t(1) << 53)));
    if (!dtype_is_float(in.meta.dtype) || out.meta.dtype != in.meta.dtype)
      throw_status(env, type_error(std::string(fn) + ": expected x and out of one float dtype, got " + dtype_name(in.meta.dtype) +
                                   " and " + dtype_name(out.meta.dtype)));
    const uint64_t R = static_cast<uint64_t>(comm->world());
    const uint64_t n_in = static_cast<uint64_t>(in.meta.numel()), n_out = static_cast<uint64_t>(out.meta.numel());
    uint64_t count = n_in;
    bool sizes_ok = n_in == n_out;
    if (kind == Collective::all_gather) sizes_ok = n_out == R * n_in;
    if (kind == Collective::reduce_scatter) {
      sizes_ok = n_in == R * n_out;
      count = n_out;
    }
    if (!sizes_ok)
      throw_status(env, range_error(std::string(fn) + ": expected out of " +
                                    std::to_string(kind == Collective::all_gather ? R * n_in : kind == Collective::reduce_scatter ? n_in / R : n_in) +
                                    " elements for " + std::to_string(n_in) + " in x (world size " + std::to_string(R) +
                                    "), got " + std::to_string(n_out)));
    dist::CallDesc d;
    d.kind = kind;
    d.op = op;
    d.dtype = in.meta.dtype;
    d.count = count;
    d.root = root;
    d.site = site;
    if (kind == Collective::all_gather && inner != 0) {
      if (inner > count || count % inner != 0)
        throw_status(env, range_error(std::string(fn) + ": expected an inner size dividing " + std::to_string(count) + ", got " + std::to_string(inner)));
      d.inner = inner;
    }
    if (in.meta.device.kind == DeviceKind::cuda || out.meta.device.kind == DeviceKind::cuda) {
      cuda_collective(env, g, comm, d, in, out, timeout_ms);
      return env.Undefined();
    }
    Stream* stream = nullptr;
    check(env, stream_for(Device{}, &stream, owner_of(env)));
    std::shared_ptr<Storage> in_st = in.storage, out_st = out.storage;
    const size_t in_off = in.offset, out_off = out.offset;
    stream->submit_host(
        [g, in_st, out_st, in_off, out_off, d, timeout_ms](Status prior) -> Status {
          Communicator* c;
          {
            std::lock_guard<std::mutex> lock(g->mu);
            c = g->comm.get();
          }
          const auto deadline = deadline_in(timeout_ms);
          const void* src = static_cast<const char*>(in_st->data()) + in_off;
          void* dst = static_cast<char*>(out_st->data()) + out_off;
          Status s = c->call(src, dst, d, deadline);
          if (!s.ok()) {
            out_st->poison(s);
            return s;
          }
          // Garbage in, garbage out: a poisoned input (its op failed) poisons the result, though the collective
          // itself ran (the other ranks needed this rank to take part).
          if (in_st != out_st && in_st->poisoned()) out_st->poison(in_st->poison_status());
          return prior;
        },
        owner_of(env));
    return env.Undefined();
  });
}

// distBarrier(id, timeoutMs, site): Promise<void>, settled when every rank has reached it (after the ops queued
// before it on this environment's stream).
Napi::Value dist_barrier(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto g = group_arg(env, info[0], "barrier");
    live_comm(env, *g, "barrier");
    const int64_t timeout_ms = parse_int(env, info[1], "barrier", "timeoutMs", 1, int64_t(1) << 40);
    const auto site = static_cast<uint64_t>(parse_int(env, info[2], "barrier", "site", 0, (int64_t(1) << 53)));
    Stream* stream = nullptr;
    check(env, stream_for(Device{}, &stream, owner_of(env)));
    std::shared_ptr<Settler> settler;
    Napi::Promise promise = Settler::create(env, &settler);
    stream->submit_host(
        [g, settler, timeout_ms, site](Status prior) -> Status {
          Communicator* c;
          {
            std::lock_guard<std::mutex> lock(g->mu);
            c = g->comm.get();
          }
          dist::CallDesc d;
          d.kind = Collective::barrier;
          d.site = site;
          std::unique_ptr<Completion> done(new Completion());
          done->status = c->call(nullptr, nullptr, d, deadline_in(timeout_ms));
          settler->settle(std::move(done));
          return prior;  // an earlier op's failure still reaches the next sync
        },
        owner_of(env));
    return promise;
  });
}

// distClose(id): waits for the work queued on this environment's CPU stream (its collectives included; each is
// bounded by its deadline), then closes the communicator here, on the JS thread. Closing inside the last queued
// task instead raced with the process's exit: a script that ended right after close() could exit while another
// thread was inside MPI_Finalize, which mpirun reports as an abnormal termination. Idempotent.
Napi::Value dist_close(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const auto id = static_cast<uint32_t>(parse_int(env, info[0], "close", "group", 1, UINT32_MAX));
    DistGroups& gs = groups_of(env);
    auto it = gs.groups.find(id);
    if (it == gs.groups.end()) return env.Undefined();
    std::shared_ptr<DistGroup> g = std::move(it->second);
    gs.groups.erase(it);
    Stream* stream = nullptr;
    check(env, stream_for(Device{}, &stream, owner_of(env)));
    stream->drain();  // the queued tasks drop their references to g as they finish
    std::unique_ptr<Communicator> comm;
    std::unique_ptr<dist::CudaAllReduce> car;
    std::unique_ptr<dist::NcclComm> nccl;
    int cuda_device = -1;
    {
      std::lock_guard<std::mutex> lock(g->mu);
      if (!g->opening) cuda_device = g->cuda_device;
    }
    if (cuda_device >= 0) {
      // The CUDA collectives' host tasks hold g until the device has run them: wait for them here, so that the
      // CUDA objects are freed on this thread and not on the stream's completion thread.
      Stream* cs = nullptr;
      if (stream_for(Device{DeviceKind::cuda, cuda_device}, &cs, owner_of(env)).ok()) cs->drain();
    }
    {
      std::lock_guard<std::mutex> lock(g->mu);
      if (!g->opening) {  // still opening: its thread finishes, and g goes with it
        comm = std::move(g->comm);
        car = std::move(g->car);
        nccl = std::move(g->nccl);
      }
    }
    nccl.reset();
    car.reset();
    comm.reset();
    return env.Undefined();
  });
}

}  // namespace

void init_dist(Napi::Env env, Napi::Object exports) {
  exports.Set("distOpen", Napi::Function::New(env, dist_open, "distOpen"));
  exports.Set("distInfo", Napi::Function::New(env, dist_info, "distInfo"));
  exports.Set("distFailure", Napi::Function::New(env, dist_failure, "distFailure"));
  exports.Set("distCollective", Napi::Function::New(env, dist_collective, "distCollective"));
  exports.Set("distBarrier", Napi::Function::New(env, dist_barrier, "distBarrier"));
  exports.Set("distClose", Napi::Function::New(env, dist_close, "distClose"));
  exports.Set("distSelectAllReduce", Napi::Function::New(env, dist_select_all_reduce, "distSelectAllReduce"));
  exports.Set("distNcclProbe", Napi::Function::New(env, dist_nccl_probe, "distNcclProbe"));
}

}  // namespace lk
