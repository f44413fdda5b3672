// The N-API surface. This directory is the only code that includes napi.h. lib/binding.ts declares the same
// interface once as a TypeScript type (NativeBinding, NativeTensor); keep the two in step.
//
// Every entry point runs inside guard(): a non-OK Status becomes a JS TypeError/RangeError/LlmKernelsError with
// a `code`, std::bad_alloc becomes ERR_OOM, any other C++ exception ERR_INTERNAL; nothing reaches std::terminate.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../common/registry.h"
#include "../common/storage.h"
#include "../common/stream.h"

namespace lk {

struct AddonData;
AddonData& addon_data(Napi::Env env);


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

// Reports to V8 the CPU memory `allocated` now, less what was freed on other threads since the last report, in one
// call (Napi::MemoryManagement must be called on the JS thread).
void flush_external_memory(Napi::Env env, int64_t allocated = 0);

// Tensor handles. A JS tensor holds a number, not a wrapped object: an index into its environment's handle table
// and a generation, id = generation * 2^24 + index. Creating a wrapped object per op output (napi_new_instance,
// napi_wrap and its finalizer reference) was most of the cost of enqueueing an op; a number costs nothing, and the
// generation makes a stale or forged id a clean ERR_DISPOSED instead of a use-after-free. The GC safety net is a
// FinalizationRegistry in lib/tensor.ts that disposes ids whose Tensor was collected (a stale id is a no-op).
struct TensorSlot {
  std::shared_ptr<Storage> storage;  // null: free
  size_t offset = 0;                 // bytes from storage->data()
  TensorView meta;                   // dtype, shape, strides, device; data unused
  uint32_t generation = 0;
  TensorView view() const {
    TensorView v = meta;
    v.data = static_cast<char*>(storage->data()) + offset;
    return v;
  }
};

class HandleTable {
 public:
  static constexpr uint32_t kIndexBits = 24;
  // A new id for (storage, offset, meta). Code::oom past 2^24 live tensors in one environment.
  Status add(std::shared_ptr<Storage> storage, size_t offset, const TensorView& meta, double* id);
  // The slot of a live id, or nullptr (stale, disposed, or never issued).
  TensorSlot* find(double id);
  // Frees the slot of a live id; returns false if it was not live (dispose is idempotent).
  bool remove(double id);

 private:
  std::vector<TensorSlot> slots_;
  std::vector<uint32_t> free_;
};

struct DistGroups;  // dist.cc: this environment's process groups

struct AddonData {
  std::unique_ptr<HandleTable> handles;
  std::shared_ptr<DistGroups> dist;    // created on first use
  Napi::FunctionReference error_ctor;  // LlmKernelsError(code, message), set by lib/binding.ts at load
  Owner owner = 0;                     // this environment's id: its CPU stream, its sticky errors (stream.h)
  // Environment teardown: fail its process groups first (a collective waiting on its stream returns), then let its
  // CPU stream finish what is queued on its own.
  ~AddonData() {
    dist.reset();
    release_cpu_stream(owner);
  }
};
inline Owner owner_of(Napi::Env env) { return addon_data(env).owner; }

// The live slot of a tensor argument `param` (or `param[index]` when index >= 0): TypeError for a non-number,
// ERR_DISPOSED for a dead id. The message is only built on failure (this runs for every input of every op).
TensorSlot& tensor_arg(Napi::Env env, HandleTable& table, const Napi::Value& v, const char* fn, const char* param,
                       int index = -1);
inline TensorSlot& tensor_arg(Napi::Env env, const Napi::Value& v, const char* fn, const char* param) {
  return tensor_arg(env, *addon_data(env).handles, v, fn, param);
}
// A new tensor of `meta` (fresh, uninitialized storage) registered in the handle table; its id as a JS number.
Napi::Value new_tensor(Napi::Env env, const TensorView& meta, std::shared_ptr<Storage>* out_storage);
// Registers a new tensor in the environment's table and returns its id as a JS number.
Napi::Value new_handle(Napi::Env env, std::shared_ptr<Storage> storage, size_t offset, const TensorView& meta);

// Argument parsing shared by the entry points (all throw TypeError/RangeError with the house message form).
Device parse_device(Napi::Env env, const Napi::Value& kind, const Napi::Value& index, const char* fn);
DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* fn, const char* param);
void parse_shape(Napi::Env env, const Napi::Value& v, const char* fn, const char* param, TensorView* out);
int64_t parse_int(Napi::Env env, const Napi::Value& v, const char* fn, const char* param, int64_t lo, int64_t hi);

void init_ops(Napi::Env env, Napi::Object exports);
void init_tensors(Napi::Env env, Napi::Object exports);
void init_info(Napi::Env env, Napi::Object exports);
void init_dist(Napi::Env env, Napi::Object exports);

}  // namespace lk
