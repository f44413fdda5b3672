// Tensor handles: the per-environment handle table (addon.h says why numbers, not wrapped objects) and the
// functions on a handle: dispose, read, view, to.
//
// Lifetime: dispose(id) drops the table's reference at once; the memory is freed when the last holder (another
// view, or an op still queued on the stream) lets go. A Tensor collected without dispose() is disposed by the
// FinalizationRegistry of lib/tensor.ts: the safety net, never the plan.
#include <cmath>
#include <cstring>

#include "addon.h"
#include "settle.h"
#include "../cuda/cuda_backend.h"

namespace lk {

namespace {

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

Status HandleTable::add(std::shared_ptr<Storage> storage, size_t offset, const TensorView& meta, double* id) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    if (slots_.size() >= (size_t(1) << kIndexBits))
      return Status(Code::oom, "too many live tensors (2^24) in this environment: dispose() the ones no longer used");
    slots_.emplace_back();
    index = static_cast<uint32_t>(slots_.size() - 1);
  }
  TensorSlot& s = slots_[index];
  s.storage = std::move(storage);
  s.offset = offset;
  s.meta = meta;
  s.meta.data = nullptr;
  *id = static_cast<double>(s.generation) * double(1u << kIndexBits) + index;
  return Status::OK();
}

TensorSlot* HandleTable::find(double id) {
  if (!(id >= 0) || id > 9007199254740991.0 || std::trunc(id) != id) return nullptr;
  const uint64_t v = static_cast<uint64_t>(id);
  const uint64_t index = v & ((uint64_t(1) << kIndexBits) - 1);
  const uint64_t generation = v >> kIndexBits;
  if (index >= slots_.size()) return nullptr;
  TensorSlot& s = slots_[index];
  if (!s.storage || s.generation != generation) return nullptr;
  return &s;
}

bool HandleTable::remove(double id) {
  TensorSlot* s = find(id);
  if (!s) return false;
  s->storage.reset();
  s->generation = (s->generation + 1) & ((1u << 29) - 1);  // id stays below 2^53
  free_.push_back(static_cast<uint32_t>(s - slots_.data()));
  return true;
}

TensorSlot& tensor_arg(Napi::Env env, HandleTable& table, const Napi::Value& v, const char* fn, const char* param,
                       int index) {
  double id = 0;
  const bool is_number = napi_get_value_double(env, v, &id) == napi_ok;
  TensorSlot* s = is_number ? table.find(id) : nullptr;
  if (s) return *s;
  const std::string p = index < 0 ? std::string(param) : std::string(param) + "[" + std::to_string(index) + "]";
  if (!is_number)
    throw_status(env, type_error(std::string(fn) + ": expected a tensor for " + p + ", got " +
                                 (v.IsObject() ? "an object" : "another value")));
  throw_status(env, Status(Code::disposed, std::string(fn) + ": expected a live tensor for " + p +
                                               ", got a disposed tensor"));
}

Napi::Value new_handle(Napi::Env env, std::shared_ptr<Storage> storage, size_t offset, const TensorView& meta) {
  double id = 0;
  check(env, addon_data(env).handles->add(std::move(storage), offset, meta, &id));
  return Napi::Number::New(env, id);
}

namespace {

// dispose(id): idempotent; a stale id (already disposed, slot reused) does nothing.
Napi::Value dispose(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    double id = 0;
    if (napi_get_value_double(env, info[0], &id) == napi_ok) addon_data(env).handles->remove(id);
    flush_external_memory(env);
    return env.Undefined();
  });
}

Napi::Value is_live(const Napi::CallbackInfo& info) {
  double id = 0;
  const bool live = napi_get_value_double(info.Env(), info[0], &id) == napi_ok &&
                    addon_data(info.Env()).handles->find(id) != nullptr;
  return Napi::Boolean::New(info.Env(), live);
}

// read(): Promise<ArrayBuffer>. The bytes are copied on the stream's thread, once every op queued before has run,
// into native memory that the JS thread then wraps as an ArrayBuffer (settle.h says why not V8 memory). The JS
// thread never waits.
Napi::Value read(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorSlot& t = tensor_arg(env, info[0], "data", "tensor");
    Stream* stream = nullptr;
    check(env, stream_for(t.meta.device, &stream, owner_of(env)));
    std::shared_ptr<Settler> settler;
    Napi::Promise promise = Settler::create(env, &settler);
    std::shared_ptr<Storage> st = t.storage;
    const size_t off = t.offset, bytes = t.meta.nbytes();
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

Napi::Value read_sync(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorSlot& t = tensor_arg(env, info[0], "dataSync", "tensor");
    Stream* stream = nullptr;
    check(env, stream_for(t.meta.device, &stream, owner_of(env)));
    check(env, stream->synchronize(owner_of(env)));
    check(env, t.storage->poison_status());
    flush_external_memory(env);
    const size_t bytes = t.meta.nbytes();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
    check(env, copy_to_host(t.storage, t.offset, buf.Data(), bytes));
    return buf;
  });
}

// ready(): Promise<void>, settled like read() (every op queued before has run; rejects with the error of a failed
// op among them, or with this tensor's own failure) but without copying the bytes: for a quantized weight made by an
// op that validates its data (quantize), whose only interesting result is whether it worked.
Napi::Value ready(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorSlot& t = tensor_arg(env, info[0], "ready", "tensor");
    Stream* stream = nullptr;
    check(env, stream_for(t.meta.device, &stream, owner_of(env)));
    std::shared_ptr<Settler> settler;
    Napi::Promise promise = Settler::create(env, &settler);
    std::shared_ptr<Storage> st = t.storage;
    stream->submit_host(
        [settler, st](Status prior) -> Status {
          std::unique_ptr<Completion> c(new Completion());
          c->status = std::move(prior);
          if (c->status.ok()) c->status = st->poison_status();
          settler->settle(std::move(c));
          return Status::OK();
        },
        owner_of(env));
    return promise;
  });
}

Napi::Value ready_sync(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorSlot& t = tensor_arg(env, info[0], "readySync", "tensor");
    Stream* stream = nullptr;
    check(env, stream_for(t.meta.device, &stream, owner_of(env)));
    check(env, stream->synchronize(owner_of(env)));
    check(env, t.storage->poison_status());
    flush_external_memory(env);
    return env.Undefined();
  });
}

// view(byteOffset, dtype, shape): a new handle on the same storage. Bounds are checked against this handle's own
// bytes, so a view can never reach memory its parent could not.
Napi::Value make_view(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorSlot& t = tensor_arg(env, info[0], "view", "tensor");
    const size_t parent_bytes = t.meta.nbytes();
    const int64_t off = parse_int(env, info[1], "view", "byteOffset", 0, static_cast<int64_t>(parent_bytes));
    TensorView m;
    m.device = t.meta.device;
    m.dtype = parse_dtype(env, info[2], "view", "dtype");
    parse_shape(env, info[3], "view", "shape", &m);
    if (dtype_is_quant(m.dtype) || dtype_is_quant(t.meta.dtype))
      throw_status(env, unsupported(std::string("view: expected a dense tensor and dtype, got ") +
                                    dtype_name(dtype_is_quant(t.meta.dtype) ? t.meta.dtype : m.dtype) +
                                    " (quantized weights have no views)"));
    if (off % static_cast<int64_t>(dtype_size(m.dtype)) != 0)
      throw_status(env, range_error("view: expected byteOffset aligned to " + std::to_string(dtype_size(m.dtype)) +
                                    " bytes, got " + std::to_string(off)));
    if (static_cast<size_t>(off) + m.nbytes() > parent_bytes)
      throw_status(env, range_error("view: expected a view within the tensor's " + std::to_string(parent_bytes) +
                                    " bytes, got bytes [" + std::to_string(off) + ", " +
                                    std::to_string(static_cast<size_t>(off) + m.nbytes()) + ")"));
    return new_handle(env, t.storage, t.offset + static_cast<size_t>(off), m);
  });
}

// to(kind, index): a copy on another device (or the same one). CPU -> CUDA waits for the CPU stream and the
// upload (a transfer, done at load time); CUDA -> CPU is queued on the CPU stream and does not block.
Napi::Value to(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    TensorSlot& t = tensor_arg(env, info[0], "to", "tensor");
    const Device dst = parse_device(env, info[1], info[2], "to");
    const Device src = t.meta.device;
    Stream* src_stream = nullptr;
    Stream* dst_stream = nullptr;
    check(env, stream_for(src, &src_stream, owner_of(env)));
    check(env, stream_for(dst, &dst_stream, owner_of(env)));
    std::shared_ptr<Storage> out;
    check(env, Storage::create(dst, t.meta.nbytes(), &out));
    TensorView m = t.meta;
    m.device = dst;
    set_contiguous_strides(m);
    const size_t bytes = t.meta.nbytes();
    if (src == dst) {
      const Backend b = src.kind == DeviceKind::cpu ? Backend::cpu : Backend::cuda;
      TensorView in = t.view();
      TensorView o = m;
      o.data = out->data();
      if (dtype_is_quant(in.dtype)) {  // the copy op moves elements; a quantized weight moves as its bytes
        for (TensorView* v : {&in, &o}) {
          v->dtype = DType::u8;
          v->ndim = 1;
          v->shape[0] = static_cast<int64_t>(bytes);
          set_contiguous_strides(*v);
        }
      }
      OpArgs a;
      a.op = OpId::copy;
      a.in = &in;
      a.n_in = 1;
      a.out = &o;
      a.n_out = 1;
      const std::shared_ptr<Storage> keep[2] = {t.storage, out};
      check(env, src_stream->submit(kernel_table(b)[static_cast<int>(OpId::copy)], a, keep, 2, owner_of(env)));
    } else if (src.kind == DeviceKind::cuda && dst.kind == DeviceKind::cpu) {
      std::shared_ptr<Storage> st = t.storage;
      const size_t off = t.offset;
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
      check(env, t.storage->poison_status());
      if (bytes > 0) {
        if (src.kind == DeviceKind::cpu) {
          check(env, cuda_copy_h2d(dst.index, out->data(), t.view().data, bytes));
        } else {
          std::unique_ptr<char[]> tmp(new char[bytes]);
          check(env, cuda_copy_d2h(src.index, tmp.get(), t.view().data, bytes));
          check(env, cuda_copy_h2d(dst.index, out->data(), tmp.get(), bytes));
        }
      }
    }
    flush_external_memory(env, dst.kind == DeviceKind::cpu ? static_cast<int64_t>(bytes) : 0);
    return new_handle(env, std::move(out), 0, m);
  });
}

}  // namespace

void init_tensors(Napi::Env env, Napi::Object exports) {
  exports.Set("dispose", Napi::Function::New(env, dispose, "dispose"));
  exports.Set("isLive", Napi::Function::New(env, is_live, "isLive"));
  exports.Set("read", Napi::Function::New(env, read, "read"));
  exports.Set("readSync", Napi::Function::New(env, read_sync, "readSync"));
  exports.Set("ready", Napi::Function::New(env, ready, "ready"));
  exports.Set("readySync", Napi::Function::New(env, ready_sync, "readySync"));
  exports.Set("view", Napi::Function::New(env, make_view, "view"));
  exports.Set("to", Napi::Function::New(env, to, "to"));
}

}  // namespace lk
