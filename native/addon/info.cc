// info(): what this build is and what it found on this machine; roofline(): the machine's measured ceilings.
#include <future>

#include "addon.h"
#include "../common/thread_pool.h"
#include "../cpu/cpu.h"
#include "../cuda/cuda_backend.h"
#include "../common/cases.h"
#include "../tools/roofline.h"

namespace lk {

namespace {

Napi::Value info(const Napi::CallbackInfo& cb) {
  return guard(cb, [&]() -> Napi::Value {
    Napi::Env env = cb.Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Object build = Napi::Object::New(env);
#if defined(__clang__)
    build.Set("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
    build.Set("compiler", "gcc " __VERSION__);
#else
    build.Set("compiler", "unknown");
#endif
    const CudaProbe probe = cuda_probe();
    build.Set("cuda", probe.compiled);
    build.Set("cudaArchs", probe.archs);
#if defined(__SANITIZE_ADDRESS__)
    build.Set("sanitizers", true);
#else
    build.Set("sanitizers", false);
#endif
    o.Set("build", build);
    Napi::Object cpu = Napi::Object::New(env);
    cpu.Set("simd", simd_level_name(cpu_simd_level()));
    cpu.Set("simdDetected", simd_level_name(cpu_simd_detected()));
    cpu.Set("threads", ThreadPool::global().threads());
    cpu.Set("hardwareThreads", ThreadPool::hardware_threads());
    cpu.Set("liveBytes", static_cast<double>(Storage::live_bytes(DeviceKind::cpu)));
    cpu.Set("cachedBytes", static_cast<double>(Storage::cached_cpu_bytes()));
    o.Set("cpu", cpu);
    Napi::Object cuda = Napi::Object::New(env);
    cuda.Set("compiled", probe.compiled);
    cuda.Set("available", probe.available);
    cuda.Set("reason", probe.reason);
    cuda.Set("runtimeVersion", probe.runtime_version);
    cuda.Set("driverVersion", probe.driver_version);
    cuda.Set("liveBytes", static_cast<double>(Storage::live_bytes(DeviceKind::cuda)));
    Napi::Array devs = Napi::Array::New(env, probe.devices.size());
    for (size_t i = 0; i < probe.devices.size(); ++i) {
      const CudaDeviceInfo& d = probe.devices[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("index", d.index);
      x.Set("name", d.name);
      x.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
      x.Set("smCount", d.sm_count);
      x.Set("totalMemory", static_cast<double>(d.total_memory));
      x.Set("freeMemory", static_cast<double>(d.free_memory));
      x.Set("memoryBandwidthGBs", d.memory_bandwidth_gbs);
      devs.Set(static_cast<uint32_t>(i), x);
    }
    cuda.Set("devices", devs);
    o.Set("cuda", cuda);
    return o;
  });
}

// roofline(threads): runs the probes on the CPU executor, in order with the ops, while the JS thread waits (about a
// second; for benchmarks, not servers).
Napi::Value roofline(const Napi::CallbackInfo& cb) {
  return guard(cb, [&]() -> Napi::Value {
    Napi::Env env = cb.Env();
    const int threads = static_cast<int>(parse_int(env, cb[0], "roofline", "threads", 1, 1024));
    // The probes use the thread pool, which only the CPU executor may drive (thread_pool.h): run them there, in
    // order with the ops, and wait (a benchmark tool's call, not a server's).
    Stream* cpu = nullptr;
    check(env, stream_for(Device{}, &cpu, owner_of(env)));
    auto done = std::make_shared<std::promise<Roofline>>();
    std::future<Roofline> result = done->get_future();
    cpu->submit_host(
        [done, threads](Status prior) -> Status {
          try {
            done->set_value(probe_roofline(threads));
          } catch (...) {
            done->set_exception(std::current_exception());
          }
          return prior;
        },
        owner_of(env));
    const Roofline r = result.get();
    Napi::Object o = Napi::Object::New(env);
    o.Set("threads", r.threads);
    o.Set("readGBs", r.read_gbs);
    o.Set("fmaGflops", r.fma_gflops);
    o.Set("int8Gops", r.int8_gops);
    o.Set("simd", r.simd);
    return o;
  });
}

// tolerance(op, dtype): the row of the one tolerance table (native/common/cases.cc) for an op's output dtype, so
// that the Node tests and lk_check judge with the same numbers.
Napi::Value tolerance_row(const Napi::CallbackInfo& cb) {
  return guard(cb, [&]() -> Napi::Value {
    Napi::Env env = cb.Env();
    const OpId op = static_cast<OpId>(parse_int(env, cb[0], "tolerance", "op", 0, kNumOps - 1));
    const DType dt = parse_dtype(env, cb[1], "tolerance", "dtype");
    const Tolerance t = lk::tolerance(op, dt);
    Napi::Object o = Napi::Object::New(env);
    o.Set("exact", t.exact);
    o.Set("nmse", t.nmse);
    o.Set("rtol", t.rtol);
    return o;
  });
}

// emptyCache(): returns the CPU block cache to the system; the number of bytes released.
Napi::Value empty_cache(const Napi::CallbackInfo& cb) {
  return guard(cb, [&]() -> Napi::Value {
    return Napi::Number::New(cb.Env(), static_cast<double>(Storage::release_cached_cpu_memory()));
  });
}

}  // namespace

void init_info(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, info, "info"));
  exports.Set("roofline", Napi::Function::New(env, roofline, "roofline"));
  exports.Set("tolerance", Napi::Function::New(env, tolerance_row, "tolerance"));
  exports.Set("emptyCache", Napi::Function::New(env, empty_cache, "emptyCache"));
}

}  // namespace lk
