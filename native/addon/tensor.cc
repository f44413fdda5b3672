// NativeTensor: the JS handle of a tensor (a view of a shared Storage).
//
// Lifetime: dispose() drops this handle's reference at once; the memory is freed when the last holder (another
// view, or an op still queued on the stream) lets go. If a handle is garbage-collected without dispose(), its
// finalizer (the ObjectWrap destructor) drops the reference: the safety net, never the plan.
#include <cstring>

#include "addon.h"
#include "settle.h"
#include "../cuda/cuda_backend.h"

namespace lk {

namespace {
// Only create() may construct handles; `new NativeTensor()` from JS throws. A flag set around the construction
// (the JS thread is the only one that constructs) is cheaper than passing a token: no External, no extra reference.
thread_local bool g_constructing = false;  // per thread: worker_threads construct handles concurrently
const napi_type_tag kTensorTag = {0x6c6c6d6b2d74656eULL, 0x736f722d68616e64ULL};  // "llmk-tensor-hand"

Status copy_to_host(const std::shared_ptr<Storage>& st, size_t offset, void* dst, size_t bytes) {
  if (bytes == 0) return Status::OK();
  const char* src = static_cast<const char*>(st->data()) + offset;
  if (st->device().kind == DeviceKind::cpu) {
    std::memcpy(dst, src, bytes);
    return Status::OK();
  }
  return cuda_copy_d2h(st->device().index, dst, src, bytes);
}

}  // namespace

Napi::Function NativeTensor::define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {InstanceMethod<&NativeTensor::dispose>("dispose"),
                      InstanceMethod<&NativeTensor::is_disposed>("isDisposed"),
                      InstanceMethod<&NativeTensor::read>("read"),
                      InstanceMethod<&NativeTensor::read_sync>("readSync"),
                      InstanceMethod<&NativeTensor::make_view>("view"),
                      InstanceMethod<&NativeTensor::to>("to")});
}

NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  if (!g_constructing)
    throw_status(info.Env(), type_error("NativeTensor: not constructible; use the Tensor factories (Tensor.fromArray, "
                                        "Tensor.empty, ...)"));
  napi_type_tag_object(info.Env(), info.This(), &kTensorTag);
}

Napi::Object NativeTensor::create(Napi::Env env, std::shared_ptr<Storage> storage, size_t offset,
                                  const TensorView& meta) {
  g_constructing = true;
  Napi::Object obj;
  try {
    obj = addon_data(env).tensor_ctor.New({});
  } catch (...) {
    g_constructing = false;
    throw;
  }
  g_constructing = false;
  NativeTensor* t = NativeTensor::Unwrap(obj);
  t->storage_ = std::move(storage);
  t->offset_ = offset;
  t->meta_ = meta;
  t->meta_.data = nullptr;
  return obj;
}

NativeTensor* NativeTensor::unwrap_arg(Napi::Env env, const Napi::Value& v, const char* fn, const std::string& param) {
  // napi_unwrap instead of ObjectWrap::Unwrap: an object made with Object.create(NativeTensor.prototype) passes
  // InstanceOf but wraps nothing, and must be a TypeError, not an untyped "Invalid argument".
  // The type tag (N-API 8) proves the object is one of our handles, and is cheaper than napi_instanceof.
  void* p = nullptr;
  bool tagged = false;
  if (!v.IsObject() || napi_check_object_type_tag(env, v, &kTensorTag, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, v, &p) != napi_ok || p == nullptr)
    throw_status(env, type_error(std::string(fn) + ": expected a tensor for " + param + ", got " +
                                 (v.IsObject() ? "another object" : "a non-object")));
  NativeTensor* t = static_cast<NativeTensor*>(p);
  if (t->disposed())
    throw_status(env, Status(Code::disposed, std::string(fn) + ": expected a live tensor for " + param +
                                                 ", got a disposed tensor"));
  return t;
}

TensorView NativeTensor::view() const {
  TensorView v = meta_;
  v.data = static_cast<char*>(storage_->data()) + offset_;
  return v;
}

void NativeTensor::require_live(Napi::Env env, const char* what) const {
  if (disposed())
    throw_status(env, Status(Code::disposed, std::string(what) + ": expected a live tensor for tensor, got a disposed tensor"));
}

Napi::Value NativeTensor::dispose(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    storage_.reset();
    flush_external_memory(info.Env());
    return info.Env().Undefined();
  });
}

Napi::Value NativeTensor::is_disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

// read(): Promise<ArrayBuffer>. The bytes are copied on the stream's thread, once every op queued before has run,
// into native memory that the JS thread then wraps as an ArrayBuffer (settle.h says why not V8 memory). The JS
// thread never waits.
Napi::Value NativeTensor::read(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    require_live(env, "data");
    Stream* stream = nullptr;
    check(env, stream_for(meta_.device, &stream));
    std::shared_ptr<Settler> settler;
    Napi::Promise promise = Settler::create(env, &settler);
    std::shared_ptr<Storage> st = storage_;
    const size_t off = offset_, bytes = meta_.nbytes();
    stream->submit_host(
        [settler, st, off, bytes](Status prior) -> Status {
          std::unique_ptr<Completion> c(new Completion());
          c->with_buffer = true;
          c->status = std::move(prior);
          if (c->status.ok()) c->status = st->poison_status();
          if (c->status.ok() && bytes > 0) {
            c->bytes = std::malloc(bytes);
            if (!c->bytes) c->status = Status(Code::oom, "data: out of memory for " + std::to_string(bytes) + " bytes");
            else c->status = copy_to_host(st, off, c->bytes, bytes);
          }
          c->nbytes = bytes;
          settler->settle(std::move(c));
          return Status::OK();  // the error, if any, went to this promise
        },
        owner_of(env));
    return promise;
  });
}

Napi::Value NativeTensor::read_sync(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    require_live(env, "dataSync");
    Stream* stream = nullptr;
    check(env, stream_for(meta_.device, &stream));
    check(env, stream->synchronize(owner_of(env)));
    check(env, storage_->poison_status());
    flush_external_memory(env);
    const size_t bytes = meta_.nbytes();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
    check(env, copy_to_host(storage_, offset_, buf.Data(), bytes));
    return buf;
  });
}

// view(byteOffset, dtype, shape): a new handle on the same storage. Bounds are checked against this handle's own
// bytes, so a view can never reach memory its parent could not.
Napi::Value NativeTensor::make_view(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    require_live(env, "view");
    const size_t parent_bytes = meta_.nbytes();
    const int64_t off = parse_int(env, info[0], "view", "byteOffset", 0, static_cast<int64_t>(parent_bytes));
    TensorView m;
    m.device = meta_.device;
    m.dtype = parse_dtype(env, info[1], "view", "dtype");
    parse_shape(env, info[2], "view", "shape", &m);
    if (off % static_cast<int64_t>(dtype_size(m.dtype)) != 0)
      throw_status(env, range_error("view: expected byteOffset aligned to " + std::to_string(dtype_size(m.dtype)) +
                                    " bytes, got " + std::to_string(off)));
    if (static_cast<size_t>(off) + m.nbytes() > parent_bytes)
      throw_status(env, range_error("view: expected a view within the tensor's " + std::to_string(parent_bytes) +
                                    " bytes, got bytes [" + std::to_string(off) + ", " +
                                    std::to_string(static_cast<size_t>(off) + m.nbytes()) + ")"));
    return create(env, storage_, offset_ + static_cast<size_t>(off), m);
  });
}

// to(kind, index): a copy on another device (or the same one). CPU -> CUDA waits for the CPU stream and the
// upload (a transfer, done at load time); CUDA -> CPU is queued on the CPU stream and does not block.
Napi::Value NativeTensor::to(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    require_live(env, "to");
    const Device dst = parse_device(env, info[0], info[1], "to");
    const Device src = meta_.device;
    Stream* src_stream = nullptr;
    Stream* dst_stream = nullptr;
    check(env, stream_for(src, &src_stream));
    check(env, stream_for(dst, &dst_stream));
    std::shared_ptr<Storage> out;
    check(env, Storage::create(dst, meta_.nbytes(), &out));
    account_external_memory(env, *out);
    TensorView m = meta_;
    m.device = dst;
    set_contiguous_strides(m);
    const size_t bytes = meta_.nbytes();
    if (src == dst) {
      const Backend b = src.kind == DeviceKind::cpu ? Backend::cpu : Backend::cuda;
      TensorView in = view();
      TensorView o = m;
      o.data = out->data();
      OpArgs a;
      a.op = OpId::copy;
      a.in = &in;
      a.n_in = 1;
      a.out = &o;
      a.n_out = 1;
      const std::shared_ptr<Storage> keep[2] = {storage_, out};
      check(env, src_stream->submit(kernel_table(b)[static_cast<int>(OpId::copy)], a, keep, 2, owner_of(env)));
    } else if (src.kind == DeviceKind::cuda && dst.kind == DeviceKind::cpu) {
      std::shared_ptr<Storage> st = storage_;
      const size_t off = offset_;
      dst_stream->submit_host(
          [st, off, out, bytes](Status prior) -> Status {
            Status s = st->poisoned() ? st->poison_status() : copy_to_host(st, off, out->data(), bytes);
            if (!s.ok()) out->poison(s);
            return prior.ok() ? s : prior;
          },
          owner_of(env));
    } else {
      // Into CUDA from the CPU or another GPU: the source must be complete, then a blocking upload through host
      // memory (the pageable copy blocks anyway). A pending error of the source stream is reported here.
      check(env, src_stream->synchronize(owner_of(env)));
      check(env, storage_->poison_status());
      if (bytes > 0) {
        if (src.kind == DeviceKind::cpu) {
          check(env, cuda_copy_h2d(dst.index, out->data(), view().data, bytes));
        } else {
          std::unique_ptr<char[]> tmp(new char[bytes]);
          check(env, cuda_copy_d2h(src.index, tmp.get(), view().data, bytes));
          check(env, cuda_copy_h2d(dst.index, out->data(), tmp.get(), bytes));
        }
      }
    }
    flush_external_memory(env);
    return create(env, std::move(out), 0, m);
  });
}

}  // namespace lk
