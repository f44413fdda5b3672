// Process groups (native/dist) for JS: open, collectives enqueued on the CPU stream, barrier, close.
//
// A collective is a host task on the CPU stream, so it runs after the ops that produce its input and before the
// ops queued after it, and the JS thread never waits: like an NCCL call on a CUDA stream. It blocks the stream's
// executor until every rank has arrived or its deadline passes. A failure poisons the output tensor and becomes
// the environment's sticky error, so the next `await t.data()` or `synchronize()` rejects with ERR_TIMEOUT,
// ERR_PEER_LOST or ERR_COLLECTIVE_MISMATCH; the group is failed from then on, and every later call throws at once.
//
// Opening a group (the rendezvous, MPI_Init) can take seconds: it runs on its own thread and settles a promise.
#include <chrono>
#include <thread>
#include <unordered_map>

#include "addon.h"
#include "settle.h"
#include "../dist/comm.h"

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
};

struct DistGroups {
  std::unordered_map<uint32_t, std::shared_ptr<DistGroup>> groups;
  uint32_t next = 1;
  ~DistGroups() {
    // The environment is going away (a worker terminated, the process exiting): fail its groups so that a
    // collective still waiting on the executor returns now, and tell the other ranks.
    for (auto& g : groups) {
      std::lock_guard<std::mutex> lock(g.second->mu);
      if (g.second->comm)
        g.second->comm->abort(Status(Code::peer_lost, "rank " + std::to_string(g.second->comm->rank()) +
                                                          " closed the process group (its environment exited)"));
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

// distOpen(backend, rank, world, name, library, timeoutMs): [id, Promise<void>]. The promise settles when the
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

    auto g = std::make_shared<DistGroup>();
    g->backend = backend;
    DistGroups& gs = groups_of(env);
    const uint32_t id = gs.next++;
    gs.groups[id] = g;
    std::shared_ptr<Settler> settler;
    Napi::Promise promise = Settler::create(env, &settler);
    std::thread([g, settler, o, name, library, backend]() {
      std::unique_ptr<Communicator> c;
      Status s;
      try {
        s = backend == "shm" ? dist::open_shm(o, name, &c) : dist::open_mpi(o, library, &c);
      } catch (const std::bad_alloc&) {
        s = Status(Code::oom, "initProcessGroup: out of memory");
      } catch (const std::exception& e) {
        s = internal_error(std::string("initProcessGroup: ") + e.what());
      }
      {
        std::lock_guard<std::mutex> lock(g->mu);
        g->opening = false;
        g->open_status = s;
        if (s.ok()) g->comm = std::move(c);
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
    if (in.meta.device.kind != DeviceKind::cpu || out.meta.device.kind != DeviceKind::cpu)
      throw_status(env, unsupported(std::string(fn) + ": expected CPU tensors, got " + in.meta.device.name() + " and " +
                                    out.meta.device.name() + " (CUDA collectives come with the CUDA backend)"));
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
    {
      std::lock_guard<std::mutex> lock(g->mu);
      if (!g->opening) comm = std::move(g->comm);  // still opening: its thread finishes, and g goes with it
    }
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
}

}  // namespace lk
