// Module init, error translation and argument parsing.
#include "addon.h"

#include <atomic>
#include <cmath>

namespace lk {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Value status_to_error(Napi::Env env, const Status& s) {
  Napi::Object err;
  const char* code = code_name(s.code());
  if (s.code() == Code::type) {
    err = Napi::TypeError::New(env, s.message()).Value();
  } else if (s.code() == Code::range) {
    err = Napi::RangeError::New(env, s.message()).Value();
  } else {
    AddonData& d = addon_data(env);
    if (!d.error_ctor.IsEmpty()) {
      return d.error_ctor.New({Napi::String::New(env, code), Napi::String::New(env, s.message())});
    }
    err = Napi::Error::New(env, s.message()).Value();
  }
  err.Set("code", Napi::String::New(env, code));
  return err;
}

void throw_status(Napi::Env env, const Status& s) { throw Napi::Error(env, status_to_error(env, s)); }

void flush_external_memory(Napi::Env env, int64_t allocated) {
  const int64_t delta = allocated - Storage::take_released_cpu_bytes();
  if (delta != 0) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

Napi::Value new_tensor(Napi::Env env, const TensorView& meta, std::shared_ptr<Storage>* out_storage) {
  std::shared_ptr<Storage> st;
  check(env, Storage::create(meta.device, meta.nbytes(), &st));
  // One adjustment per new tensor: its CPU bytes, less what other threads freed since the last report.
  flush_external_memory(env, st->device().kind == DeviceKind::cpu ? static_cast<int64_t>(st->bytes()) : 0);
  if (out_storage) *out_storage = st;
  return new_handle(env, std::move(st), 0, meta);
}

static std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: {
      const double d = v.As<Napi::Number>().DoubleValue();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
      char buf[64];
      snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
    case napi_string: return "a string";
    case napi_object: return v.IsArray() ? "an array" : "an object";
    case napi_function: return "a function";
    default: return "a value of another type";
  }
}

int64_t parse_int(Napi::Env env, const Napi::Value& v, const char* fn, const char* param, int64_t lo, int64_t hi) {
  // One N-API call on the hot path: napi_get_value_double fails (without throwing) for a non-number.
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok)
    throw_status(env, type_error(std::string(fn) + ": expected an integer for " + param + ", got " + describe(v)));
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || std::trunc(d) != d)
    throw_status(env, range_error(std::string(fn) + ": expected an integer in [" + std::to_string(lo) + ", " +
                                  std::to_string(hi) + "] for " + param + ", got " + describe(v)));
  return static_cast<int64_t>(d);
}

Device parse_device(Napi::Env env, const Napi::Value& kind, const Napi::Value& index, const char* fn) {
  Device d;
  d.kind = static_cast<DeviceKind>(parse_int(env, kind, fn, "device kind", 0, 1));
  d.index = static_cast<int32_t>(parse_int(env, index, fn, "device index", 0, 1023));
  if (d.kind == DeviceKind::cpu && d.index != 0)
    throw_status(env, range_error(std::string(fn) + ": expected device index 0 for cpu, got " + std::to_string(d.index)));
  return d;
}

DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* fn, const char* param) {
  const int64_t id = parse_int(env, v, fn, param, 0, kFirstQuantDType + kNumQuantDTypes - 1);
  if (!dtype_valid(static_cast<int32_t>(id)))
    throw_status(env, range_error(std::string(fn) + ": expected a dtype id for " + param + ", got " + std::to_string(id)));
  return static_cast<DType>(id);
}

void parse_shape(Napi::Env env, const Napi::Value& v, const char* fn, const char* param, TensorView* out) {
  if (!v.IsArray())
    throw_status(env, type_error(std::string(fn) + ": expected an array of integers for " + param + ", got " + describe(v)));
  Napi::Array a = v.As<Napi::Array>();
  const uint32_t n = a.Length();
  if (n > static_cast<uint32_t>(kMaxDims))
    throw_status(env, range_error(std::string(fn) + ": expected at most " + std::to_string(kMaxDims) +
                                  " dimensions for " + param + ", got " + std::to_string(n)));
  out->ndim = static_cast<int32_t>(n);
  // Element count and byte size must stay far from int64 overflow: cap both at 2^53 (the largest safe JS integer).
  // The product of the non-zero dimensions is bounded too: kernels compute partial products (rows(), strides) of
  // any subset of dimensions, and [2^52, 2^52, 0] has 0 elements but rows() = 2^104 (UBSan found it).
  const int64_t kMax = int64_t(1) << 53;
  int64_t nonzero = 1;
  bool empty = false;
  for (uint32_t i = 0; i < n; ++i) {
    const int64_t s = parse_int(env, a.Get(i), fn, param, 0, kMax);
    out->shape[i] = s;
    if (s == 0) {
      empty = true;
      continue;
    }
    if (nonzero > kMax / s)
      throw_status(env, range_error(std::string(fn) + ": expected at most 2^53 elements (counting non-zero "
                                    "dimensions) for " + param + ", got more"));
    nonzero *= s;
  }
  const int64_t numel = empty ? 0 : nonzero;
  if (dtype_is_quant(out->dtype)) {
    // A quantized weight is [N, K]; both below 2^40 keeps quant_nbytes() far from overflow, and the numel bound
    // above keeps its bytes (about 1.1 * numel at most, plus padding to 8 rows) below 2^54.
    if (n != 2)
      throw_status(env, range_error(std::string(fn) + ": expected a 2-D shape [N, K] for a " + dtype_name(out->dtype) +
                                    " weight (" + param + "), got " + std::to_string(n) + " dimensions"));
    if (out->shape[0] >= (int64_t(1) << 40) || out->shape[1] >= (int64_t(1) << 40))
      throw_status(env, range_error(std::string(fn) + ": expected N and K below 2^40 for " + param + ", got more"));
  } else if (numel > kMax / static_cast<int64_t>(dtype_size(out->dtype)))
    throw_status(env, range_error(std::string(fn) + ": expected at most 2^53 bytes for " + param + ", got more"));
  set_contiguous_strides(*out);
}

static Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    if (!info[0].IsFunction())
      throw_status(info.Env(), type_error("setErrorClass: expected a function for ctor, got " + describe(info[0])));
    addon_data(info.Env()).error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  });
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  static std::atomic<Owner> next_owner{1};
  auto* data = new AddonData();
  data->owner = next_owner.fetch_add(1);
  env.SetInstanceData<AddonData>(data);
  data->handles.reset(new HandleTable());
  exports.Set("setErrorClass", Napi::Function::New(env, set_error_class, "setErrorClass"));
  init_tensors(env, exports);
  init_ops(env, exports);
  init_info(env, exports);
  init_dist(env, exports);
  return exports;
}

}  // namespace lk

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return lk::init(env, exports); }
NODE_API_MODULE(llm_kernels, InitModule)
