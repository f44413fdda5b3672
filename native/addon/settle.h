// Settler: a JS promise settled from another thread (the CPU executor or a CUDA completion thread), safely even
// when its Node environment is torn down first (a worker terminated, process.exit() with reads pending).
//
// The rules it enforces, each learned from a crash:
// - The worker thread never writes into V8 memory: a read's bytes go to a malloc'd buffer, which the JS thread
//   then hands to an external ArrayBuffer (no second copy). An ArrayBuffer made up front could be freed with its
//   isolate while the executor still copies into it.
// - The thread-safe function may be finalized by the environment's teardown at any moment. Its finalizer clears
//   `alive_` under `mu_`; settle() calls it only under `mu_` and while alive, and never Release()s a closing one.
// - The settle callback may run during teardown, when JS cannot run: it swallows what Resolve/Reject throw then.
#pragma once
#include <cstdlib>
#include <memory>
#include <mutex>

#include "addon.h"

namespace lk {

struct Completion {
  Status status;
  void* bytes = nullptr;  // malloc'd; owned until handed to JS
  size_t nbytes = 0;
  bool with_buffer = false;  // resolve with an ArrayBuffer of the bytes (a read), else with undefined
  ~Completion() { std::free(bytes); }
};

class Settler {
 public:
  // A new pending promise and its settler.
  static Napi::Promise create(Napi::Env env, std::shared_ptr<Settler>* out);

  // Any thread, at most once.
  void settle(std::unique_ptr<Completion> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!alive_ || settled_) return;
    settled_ = true;
    const napi_status st = tsfn_.NonBlockingCall(c.get());
    if (st == napi_ok) c.release();
    if (st != napi_closing) tsfn_.Release();
  }

 private:
  explicit Settler(Napi::Env env) : deferred_(Napi::Promise::Deferred::New(env)) {}

  static void call_js(Napi::Env env, Napi::Function, Settler* self, Completion* raw) {
    std::unique_ptr<Completion> c(raw);
    if (env == nullptr || self == nullptr || c == nullptr) return;  // teardown: just free
    try {
      flush_external_memory(env);
      if (!c->status.ok()) {
        self->deferred_.Reject(status_to_error(env, c->status));
      } else if (!c->with_buffer) {
        self->deferred_.Resolve(env.Undefined());
      } else if (c->nbytes == 0) {
        self->deferred_.Resolve(Napi::ArrayBuffer::New(env, 0));
      } else {
        void* p = c->bytes;
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, p, c->nbytes, [](Napi::Env, void* d) { std::free(d); });
        c->bytes = nullptr;  // the ArrayBuffer owns it now
        self->deferred_.Resolve(ab);
      }
    } catch (const Napi::Error&) {
      // JS cannot run (environment shutting down): nobody is left to see this promise.
    } catch (const std::exception&) {
    }
  }

  using Tsfn = Napi::TypedThreadSafeFunction<Settler, Completion, &Settler::call_js>;

  static void finalize(Napi::Env, std::shared_ptr<Settler>* holder, Settler* self) {
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->alive_ = false;
    }
    delete holder;
  }

  std::mutex mu_;
  bool alive_ = true;
  bool settled_ = false;
  Napi::Promise::Deferred deferred_;
  Tsfn tsfn_;
};

inline Napi::Promise Settler::create(Napi::Env env, std::shared_ptr<Settler>* out) {
  auto s = std::shared_ptr<Settler>(new Settler(env));
  auto* holder = new std::shared_ptr<Settler>(s);
  try {
    s->tsfn_ = Tsfn::New(env, "llm-kernels.settle", 0, 1, s.get(), &Settler::finalize, holder);
  } catch (...) {
    delete holder;
    throw;
  }
  *out = s;
  return s->deferred_.Promise();
}

}  // namespace lk
