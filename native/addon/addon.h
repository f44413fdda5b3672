// The N-API surface. This directory is the only code that includes napi.h. lib/binding.ts declares the same
// interface once as a TypeScript type (NativeBinding, NativeTensor); keep the two in step.
//
// Every entry point runs inside guard(): a non-OK Status becomes a JS TypeError/RangeError/LlmKernelsError with
// a `code`, std::bad_alloc becomes ERR_OOM, any other C++ exception ERR_INTERNAL; nothing reaches std::terminate.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "../common/registry.h"
#include "../common/storage.h"
#include "../common/stream.h"

namespace lk {

struct AddonData;
AddonData& addon_data(Napi::Env env);

struct AddonData {
  Napi::FunctionReference tensor_ctor;
  Napi::FunctionReference error_ctor;  // LlmKernelsError(code, message), set by lib/binding.ts at load
  Owner owner = 0;                     // this environment's id on the shared streams (stream.h)
};
inline Owner owner_of(Napi::Env env) { return addon_data(env).owner; }


// Turns a Status into the JS error object it stands for (see status.h for the mapping).
Napi::Value status_to_error(Napi::Env env, const Status& s);
[[noreturn]] void throw_status(Napi::Env env, const Status& s);
inline void check(Napi::Env env, const Status& s) {
  if (!s.ok()) throw_status(env, s);
}

// Runs body(), translating C++ failures into JS exceptions.
template <class F>
Napi::Value guard(const Napi::CallbackInfo& info, F body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw_status(env, Status(Code::oom, "out of memory"));
  } catch (const std::exception& e) {
    throw_status(env, internal_error(std::string("internal error: ") + e.what()));
  }
}

// Reports CPU memory freed on other threads to V8 (Napi::MemoryManagement must be called on the JS thread).
void flush_external_memory(Napi::Env env);
void account_external_memory(Napi::Env env, const Storage& s);

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env);
  // Wraps a storage (shared) and a view of it as a new JS handle.
  static Napi::Object create(Napi::Env env, std::shared_ptr<Storage> storage, size_t offset, const TensorView& meta);
  static NativeTensor* unwrap_arg(Napi::Env env, const Napi::Value& v, const char* fn, const std::string& param);

  explicit NativeTensor(const Napi::CallbackInfo& info);

  bool disposed() const { return !storage_; }
  // The view with its data pointer filled in. Only valid while not disposed.
  TensorView view() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  const TensorView& meta() const { return meta_; }

 private:
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value is_disposed(const Napi::CallbackInfo& info);
  Napi::Value read(const Napi::CallbackInfo& info);
  Napi::Value read_sync(const Napi::CallbackInfo& info);
  Napi::Value make_view(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  void require_live(Napi::Env env, const char* what) const;

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes from storage_->data()
  TensorView meta_;    // dtype, shape, strides, device; data unused
};

// Argument parsing shared by the entry points (all throw TypeError/RangeError with the house message form).
Device parse_device(Napi::Env env, const Napi::Value& kind, const Napi::Value& index, const char* fn);
DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* fn, const char* param);
void parse_shape(Napi::Env env, const Napi::Value& v, const char* fn, const char* param, TensorView* out);
int64_t parse_int(Napi::Env env, const Napi::Value& v, const char* fn, const char* param, int64_t lo, int64_t hi);

void init_ops(Napi::Env env, Napi::Object exports);
void init_info(Napi::Env env, Napi::Object exports);

}  // namespace lk
