// Tensor creation, op enqueueing and stream control.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "settle.h"
#include "../common/thread_pool.h"
#include "../cpu/cpu.h"
#include "../cuda/cuda_backend.h"

namespace lk {

namespace {

// empty(kind, index, dtype, shape): uninitialized memory (the TS layer fills it or hands it to an op).
Napi::Value empty(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorView m;
    m.device = parse_device(env, info[0], info[1], "empty");
    m.dtype = parse_dtype(env, info[2], "empty", "dtype");
    parse_shape(env, info[3], "empty", "shape", &m);
    Stream* s = nullptr;
    check(env, stream_for(m.device, &s, owner_of(env)));  // fails early for an unavailable device
    return new_tensor(env, m, nullptr);
  });
}

// fromBytes(kind, index, dtype, shape, bytes): a tensor holding a copy of `bytes` (an ArrayBuffer or a view of
// one), whose length must be exactly numel * dtype size.
Napi::Value from_bytes(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorView m;
    m.device = parse_device(env, info[0], info[1], "fromArray");
    m.dtype = parse_dtype(env, info[2], "fromArray", "dtype");
    parse_shape(env, info[3], "fromArray", "shape", &m);
    const void* src = nullptr;
    size_t len = 0;
    if (info[4].IsTypedArray()) {
      Napi::TypedArray ta = info[4].As<Napi::TypedArray>();
      src = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      len = ta.ByteLength();
    } else if (info[4].IsDataView()) {
      Napi::DataView dv = info[4].As<Napi::DataView>();
      src = static_cast<const char*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
      len = dv.ByteLength();
    } else if (info[4].IsArrayBuffer()) {
      Napi::ArrayBuffer ab = info[4].As<Napi::ArrayBuffer>();
      src = ab.Data();
      len = ab.ByteLength();
    } else {
      throw_status(env, type_error("fromArray: expected a typed array or ArrayBuffer for data, got another value"));
    }
    if (len != m.nbytes())
      throw_status(env, range_error("fromArray: expected " + std::to_string(m.nbytes()) + " bytes of data for shape " +
                                    m.shape_str() + ", got " + std::to_string(len)));
    Stream* s = nullptr;
    check(env, stream_for(m.device, &s, owner_of(env)));
    std::shared_ptr<Storage> st;
    Napi::Value t = new_tensor(env, m, &st);
    if (len > 0) {
      if (m.device.kind == DeviceKind::cpu)
        std::memcpy(st->data(), src, len);  // fresh memory no queued op can touch yet
      else if (Status c = cuda_copy_h2d(m.device.index, st->data(), src, len); !c.ok()) {
        addon_data(env).handles->remove(t.As<Napi::Number>().DoubleValue());  // never handed out: take it back
        throw_status(env, c);
      }
    }
    return t;
  });
}

// fromFile(kind, index, dtype, shape, segments): a CPU tensor filled from file ranges, read straight into the
// tensor's memory (pread; no JS buffer in between). segments: an array of [path, offset, length], read one after
// another; their lengths must add up to numel * dtype size (several segments stack tensors, e.g. a model's gate
// and up projections, into one). The model loaders validate offsets and sizes first (lib/io); this checks again
// against each file's real size, so a bad range or a file that changed since is ERR_MODEL_FORMAT, never a short
// or out-of-bounds read.
Napi::Value from_file(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* fn = "Tensor.fromFile";
    TensorView m;
    m.device = parse_device(env, info[0], info[1], fn);
    m.dtype = parse_dtype(env, info[2], fn, "dtype");
    parse_shape(env, info[3], fn, "shape", &m);
    if (m.device.kind != DeviceKind::cpu) throw_status(env, unsupported(std::string(fn) + ": reads into CPU tensors; move the tensor with .to() after"));
    if (!info[4].IsArray()) throw_status(env, type_error(std::string(fn) + ": expected an array of [path, offset, length] for segments"));
    struct Segment {
      std::string path;
      int64_t offset, length;
    };
    std::vector<Segment> segs;
    Napi::Array arr = info[4].As<Napi::Array>();
    size_t total = 0;
    const auto integer = [&](Napi::Value v, const char* what) -> int64_t {
      const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<int64_t>(d)))
        throw_status(env, range_error(std::string(fn) + ": expected an integer >= 0 for a segment's " + what));
      return static_cast<int64_t>(d);
    };
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value e = arr.Get(i);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 3 || !e.As<Napi::Array>().Get(0u).IsString())
        throw_status(env, type_error(std::string(fn) + ": expected [path, offset, length] for segments[" + std::to_string(i) + "]"));
      Napi::Array t = e.As<Napi::Array>();
      Segment sg{t.Get(0u).As<Napi::String>().Utf8Value(), integer(t.Get(1u), "offset"), integer(t.Get(2u), "length")};
      total += static_cast<size_t>(sg.length);
      segs.push_back(std::move(sg));
    }
    if (total != m.nbytes())
      throw_status(env, range_error(std::string(fn) + ": expected segments of " + std::to_string(m.nbytes()) + " bytes in all (shape " +
                                    m.shape_str() + "), got " + std::to_string(total)));
    std::shared_ptr<Storage> st;
    Napi::Value t = new_tensor(env, m, &st);
    const auto fail = [&](Status s) {
      addon_data(env).handles->remove(t.As<Napi::Number>().DoubleValue());  // never handed out: take it back
      throw_status(env, s);
    };
    char* dst = static_cast<char*>(st->data());
    for (const Segment& sg : segs) {
      const int fd = ::open(sg.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      if (fd < 0) fail(model_format_error(std::string(fn) + ": cannot open " + sg.path + ": " + std::strerror(errno)));
      struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
      } closer{fd};
      struct stat stt;
      if (::fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) fail(model_format_error(std::string(fn) + ": expected a regular file, got " + sg.path));
      const uint64_t size = static_cast<uint64_t>(stt.st_size);
      if (static_cast<uint64_t>(sg.offset) > size || static_cast<uint64_t>(sg.length) > size - static_cast<uint64_t>(sg.offset))
        fail(model_format_error(std::string(fn) + ": expected " + std::to_string(sg.length) + " bytes at offset " + std::to_string(sg.offset) +
                                " inside " + sg.path + " (" + std::to_string(size) + " bytes)"));
      for (int64_t done = 0; done < sg.length;) {
        const ssize_t r = ::pread(fd, dst + done, static_cast<size_t>(sg.length - done), static_cast<off_t>(sg.offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
          fail(model_format_error(std::string(fn) + ": read of " + sg.path + " failed at byte " + std::to_string(sg.offset + done) + ": " +
                                  (r < 0 ? std::strerror(errno) : "unexpected end of file")));
        done += r;
      }
      dst += sg.length;
    }
    return t;
  });
}

// The leading arguments of run and runInto: (op, backend, kind, index), with the backend matching the device.
struct OpHead {
  OpId op;
  const char* name;
  Backend backend;
  Device dev;
};
OpHead parse_op_head(Napi::Env env, const Napi::CallbackInfo& info, const char* fn) {
  OpHead h;
  h.op = static_cast<OpId>(parse_int(env, info[0], fn, "op", 0, kNumOps - 1));
  h.name = op_info(h.op).name;
  h.backend = static_cast<Backend>(parse_int(env, info[1], h.name, "backend", 0, kNumBackends - 1));
  h.dev = parse_device(env, info[2], info[3], h.name);
  if ((h.backend == Backend::cuda) != (h.dev.kind == DeviceKind::cuda))
    throw_status(env, range_error(std::string(h.name) + ": expected backend " + backend_name(h.backend) +
                                  " to match the device, got " + h.dev.name()));
  return h;
}

constexpr int kMaxInputs = 8;  // the most inputs an op of ops.def has (paged_attention_prefill: 7)
static_assert(kMaxInputs + 2 <= Stream::kMaxKeep, "the stream keeps every input and output of an op");

// run(op, backend, kind, index, inputs, outDtype, outShape, f0, f1, i0, i1): enqueue one op with one output and
// return the output at once. Validated here again (validate_op) whatever lib/ops checked.
Napi::Value run(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    AddonData& data = addon_data(env);
    OpArgs a;
    const OpHead head = parse_op_head(env, info, "run");
    a.op = head.op;
    const char* name = head.name;
    const Backend b = head.backend;
    const Device dev = head.dev;
    if (!info[4].IsArray())
      throw_status(env, type_error(std::string(name) + ": expected an array of tensors for inputs, got another value"));
    Napi::Array ins = info[4].As<Napi::Array>();
    const uint32_t n_in = ins.Length();
    if (op_info(a.op).n_out != 1)
      throw_status(env, range_error(std::string(name) + ": expected runInto for an op that writes its outputs in place"));
    if (n_in != static_cast<uint32_t>(op_info(a.op).n_in))
      throw_status(env, range_error(std::string(name) + ": expected " + std::to_string(op_info(a.op).n_in) +
                                    " tensors for inputs, got " + std::to_string(n_in)));
    TensorView in[kMaxInputs];
    std::shared_ptr<Storage> keep[Stream::kMaxKeep];
    int n_keep = 0;
    for (uint32_t i = 0; i < n_in; ++i) {
      TensorSlot& t = tensor_arg(env, *data.handles, ins.Get(i), name, "inputs", static_cast<int>(i));
      if (t.meta.device != dev)
        throw_status(env, Status(Code::device, std::string(name) + ": expected every input on " + dev.name() +
                                                   ", got inputs[" + std::to_string(i) + "] on " + t.meta.device.name()));
      in[i] = t.view();
      keep[n_keep++] = t.storage;
    }
    TensorView out;
    out.device = dev;
    out.dtype = parse_dtype(env, info[5], name, "output dtype");
    parse_shape(env, info[6], name, "output shape", &out);
    // Scalars: f0/f1 (a number, or absent = 0), i0/i1 (integers, or absent = 0); one N-API call each.
    for (int k = 0; k < 2; ++k) {
      if (info.Length() > static_cast<size_t>(7 + k) &&
          napi_get_value_double(env, info[7 + k], &a.params.f[k]) != napi_ok && !info[7 + k].IsUndefined())
        throw_status(env, type_error(std::string(name) + ": expected a number for " + (k ? "f1" : "f0")));
      if (info.Length() > static_cast<size_t>(9 + k) && !info[9 + k].IsUndefined())
        a.params.i[k] = parse_int(env, info[9 + k], name, k ? "i1" : "i0", -(int64_t(1) << 53), int64_t(1) << 53);
    }
    a.in = in;
    a.n_in = static_cast<int32_t>(n_in);
    a.out = &out;
    a.n_out = 1;
    // Validate before allocating: a bad call must not cost an allocation. data pointers are checked later.
    out.data = reinterpret_cast<void*>(uintptr_t(64));
    check(env, validate_op(a));
    if (const char* why = backend_unsupported_reason(b, a))
      throw_status(env, unsupported(std::string(name) + ": not supported on " + backend_name(b) + ": " + why));
    Stream* stream = nullptr;
    check(env, stream_for(dev, &stream, owner_of(env)));
    std::shared_ptr<Storage> st;
    out.data = nullptr;
    Napi::Value result = new_tensor(env, out, &st);
    out.data = st->data();
    keep[n_keep++] = st;
    check(env, stream->submit(kernel_table(b)[static_cast<int>(a.op)], a, keep, n_keep, data.owner));
    return result;
  });
}

// runInto(op, backend, kind, index, inputs, outputs, params): enqueue an op that writes into existing tensors (the
// paged KV cache ops). params: an optional array [f0, f1, f2, f3, i0, i1, i2, i3]. An output may not share memory
// with an input or another output (the kernels read and write them concurrently). On a run-time failure the outputs
// are poisoned like any op's: reading them reports the failure.
Napi::Value run_into(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    AddonData& data = addon_data(env);
    OpArgs a;
    const OpHead head = parse_op_head(env, info, "runInto");
    a.op = head.op;
    const char* name = head.name;
    const Backend b = head.backend;
    const Device dev = head.dev;
    if (!info[4].IsArray() || !info[5].IsArray())
      throw_status(env, type_error(std::string(name) + ": expected arrays of tensors for inputs and outputs, got another value"));
    Napi::Array ins = info[4].As<Napi::Array>(), outs = info[5].As<Napi::Array>();
    const uint32_t n_in = ins.Length(), n_out = outs.Length();
    if (n_in != static_cast<uint32_t>(op_info(a.op).n_in) || n_out != static_cast<uint32_t>(op_info(a.op).n_out))
      throw_status(env, range_error(std::string(name) + ": expected " + std::to_string(op_info(a.op).n_in) + " inputs and " +
                                    std::to_string(op_info(a.op).n_out) + " outputs, got " + std::to_string(n_in) + " and " +
                                    std::to_string(n_out)));
    TensorView views[Stream::kMaxKeep];
    std::shared_ptr<Storage> keep[Stream::kMaxKeep];
    const uint32_t n = n_in + n_out;
    if (n > static_cast<uint32_t>(Stream::kMaxKeep)) throw_status(env, internal_error(std::string(name) + ": too many tensors"));
    for (uint32_t i = 0; i < n; ++i) {
      const bool is_out = i >= n_in;
      const uint32_t k = is_out ? i - n_in : i;
      TensorSlot& t = tensor_arg(env, *data.handles, (is_out ? outs : ins).Get(k), name, is_out ? "outputs" : "inputs",
                                 static_cast<int>(k));
      if (t.meta.device != dev)
        throw_status(env, Status(Code::device, std::string(name) + ": expected every tensor on " + dev.name() + ", got " +
                                                   (is_out ? "outputs[" : "inputs[") + std::to_string(k) + "] on " +
                                                   t.meta.device.name()));
      views[i] = t.view();
      keep[i] = t.storage;
    }
    // Outputs must not overlap an input or each other: the byte ranges of the views, on the same storage.
    for (uint32_t o = n_in; o < n; ++o)
      for (uint32_t i = 0; i < n; ++i) {
        if (i == o || keep[i] != keep[o] || views[i].nbytes() == 0 || views[o].nbytes() == 0) continue;
        const char* a0 = static_cast<const char*>(views[i].data);
        const char* b0 = static_cast<const char*>(views[o].data);
        if (a0 < b0 + views[o].nbytes() && b0 < a0 + views[i].nbytes())
          throw_status(env, range_error(std::string(name) + ": expected outputs[" + std::to_string(o - n_in) +
                                        "] not to share memory with " + (i < n_in ? "inputs[" + std::to_string(i) + "]"
                                                                                   : "outputs[" + std::to_string(i - n_in) + "]") +
                                        ", got overlapping tensors"));
      }
    if (info.Length() > 6 && !info[6].IsUndefined()) {
      if (!info[6].IsArray()) throw_status(env, type_error(std::string(name) + ": expected an array of numbers for params"));
      Napi::Array p = info[6].As<Napi::Array>();
      if (p.Length() > 8) throw_status(env, range_error(std::string(name) + ": expected at most 8 params"));
      for (uint32_t k = 0; k < p.Length(); ++k) {
        if (k < 4) {
          Napi::Value v = p.Get(k);
          if (!v.IsNumber()) throw_status(env, type_error(std::string(name) + ": expected a number for params[" + std::to_string(k) + "]"));
          a.params.f[k] = v.As<Napi::Number>().DoubleValue();
        } else {
          a.params.i[k - 4] = parse_int(env, p.Get(k), name, "params", -(int64_t(1) << 53), int64_t(1) << 53);
        }
      }
    }
    a.in = views;
    a.n_in = static_cast<int32_t>(n_in);
    a.out = views + n_in;
    a.n_out = static_cast<int32_t>(n_out);
    check(env, validate_op(a));
    if (const char* why = backend_unsupported_reason(b, a))
      throw_status(env, unsupported(std::string(name) + ": not supported on " + backend_name(b) + ": " + why));
    Stream* stream = nullptr;
    check(env, stream_for(dev, &stream, owner_of(env)));
    check(env, stream->submit(kernel_table(b)[static_cast<int>(a.op)], a, keep, static_cast<int>(n), data.owner));
    return env.Undefined();
  });
}

// synchronize(kind, index): Promise<void>, settled when every op queued so far on the device has run; rejects
// with the first error of this environment's ops among them.
Napi::Value synchronize(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Device dev = parse_device(env, info[0], info[1], "synchronize");
    Stream* stream = nullptr;
    check(env, stream_for(dev, &stream, owner_of(env)));
    std::shared_ptr<Settler> settler;
    Napi::Promise p = Settler::create(env, &settler);
    stream->submit_host(
        [settler](Status prior) -> Status {
          std::unique_ptr<Completion> c(new Completion());
          c->status = std::move(prior);
          settler->settle(std::move(c));
          return Status::OK();
        },
        owner_of(env));
    return p;
  });
}

Napi::Value synchronize_sync(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Device dev = parse_device(env, info[0], info[1], "synchronizeSync");
    Stream* stream = nullptr;
    check(env, stream_for(dev, &stream, owner_of(env)));
    check(env, stream->synchronize(owner_of(env)));
    flush_external_memory(env);
    return env.Undefined();
  });
}

// setThreads(n): resizes the pool between two ops of the CPU stream (queued in order, so ops already enqueued run
// with the old size).
// Process-wide, like the pool itself: every environment (main thread, workers) shares the CPU stream and pool.
std::atomic<int> g_threads_requested{0};

Napi::Value set_threads(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int n = static_cast<int>(parse_int(env, info[0], "setThreads", "threads", 1, 1024));
    Stream* stream = nullptr;
    check(env, stream_for(Device{}, &stream, owner_of(env)));
    g_threads_requested = n;
    stream->submit_host(
        [n](Status prior) -> Status {
          try {
            ThreadPool::global().resize(n);
          } catch (const std::exception& e) {
            g_threads_requested = ThreadPool::global().threads();
            return prior.ok() ? Status(Code::oom, std::string("setThreads: cannot start ") + std::to_string(n) +
                                                      " threads (" + e.what() + "); running with " +
                                                      std::to_string(ThreadPool::global().threads()))
                              : prior;
          }
          return prior;
        },
        owner_of(env));
    return env.Undefined();
  });
}

Napi::Value get_threads(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    const int n = g_threads_requested.load();
    return Napi::Number::New(info.Env(), n ? n : ThreadPool::global().threads());
  });
}

// setSimd('avx512' | 'avx2' | 'scalar'): the SIMD level of the CPU kernels, clamped to what the CPU has (tests use it to
// run the scalar paths). Queued in order like setThreads.
Napi::Value set_simd(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw_status(env, type_error("setSimd: expected 'avx512', 'avx2' or 'scalar' for level"));
    const std::string s = info[0].As<Napi::String>().Utf8Value();
    SimdLevel level;
    if (s == "avx512") level = SimdLevel::avx512;
    else if (s == "avx2") level = SimdLevel::avx2;
    else if (s == "scalar") level = SimdLevel::scalar;
    else throw_status(env, range_error("setSimd: expected 'avx512', 'avx2' or 'scalar' for level, got '" + s + "'"));
    Stream* stream = nullptr;
    check(env, stream_for(Device{}, &stream, owner_of(env)));
    stream->submit_host(
        [level](Status prior) -> Status {
          set_cpu_simd_level(level);
          return prior;
        },
        owner_of(env));
    return env.Undefined();
  });
}

Napi::Value op_names(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, kNumOps);
    for (int i = 0; i < kNumOps; ++i) a.Set(i, Napi::String::New(env, op_info(static_cast<OpId>(i)).name));
    return a;
  });
}

}  // namespace

void init_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("empty", Napi::Function::New(env, empty, "empty"));
  exports.Set("fromBytes", Napi::Function::New(env, from_bytes, "fromBytes"));
  exports.Set("fromFile", Napi::Function::New(env, from_file, "fromFile"));
  exports.Set("run", Napi::Function::New(env, run, "run"));
  exports.Set("runInto", Napi::Function::New(env, run_into, "runInto"));
  exports.Set("synchronize", Napi::Function::New(env, synchronize, "synchronize"));
  exports.Set("synchronizeSync", Napi::Function::New(env, synchronize_sync, "synchronizeSync"));
  exports.Set("setThreads", Napi::Function::New(env, set_threads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, get_threads, "getThreads"));
  exports.Set("setSimd", Napi::Function::New(env, set_simd, "setSimd"));
  exports.Set("opNames", Napi::Function::New(env, op_names, "opNames"));
}

}  // namespace lk
