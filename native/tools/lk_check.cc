// lk_check: every op of ops.def, every case of its reference file, on every backend this build has and this machine
// can run, compared with the reference (Backend::ref). The C++ counterpart of the Node tests, in the manner of
// llama.cpp's tests/test-backend-ops: driven by the registry, so a new op is covered by adding its line to ops.def
// and its cases to its ref file, with no code here.
//
// For each case: inputs are seeded random data (cases.h: normal floats, never zero; with special_values NaN, Inf,
// -0, subnormals, huge values mixed in; each input an allocation of exactly its size, so that AddressSanitizer sees
// over-reads). The reference runs into outputs pre-filled with 0xCD bytes, each backend into outputs pre-filled with
// NaN, all outputs framed by guard bytes (GuardedBuffer). A case passes when the kernel returns OK, the guards and
// the inputs are untouched, and every output matches the reference within tolerance(op, dtype): bit for bit for
// exact ops (two NaNs match), else NMSE and per-element error bounds. Skips (backend_unsupported_reason) are
// printed with their reason and are not failures.
// The CPU backend runs twice by default: at the detected SIMD level ("cpu") and with the portable scalar paths
// ("cpu-scalar"), so both are checked on an AVX2 machine.
//
//   lk_check                       all ops, cpu (+ cpu-scalar) and cuda when available
//   lk_check --op add --backend cpu --simd scalar --threads 1 -v
//   lk_check --json out.json --seed 7
// Exit status: 0 all passed, 1 a case failed, 2 bad usage or nothing could be checked.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "../common/thread_pool.h"
#include "../cpu/cpu.h"
#include "../cuda/cuda_backend.h"
#include "tool_common.h"

namespace lk {
namespace tools {
namespace {

struct Target {
  std::string name;  // "cpu", "cpu-scalar", "cuda"
  Backend backend = Backend::cpu;
  SimdLevel simd = SimdLevel::scalar;  // cpu only
};

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
};

struct CaseRecord {
  std::string op, target, name, status, detail;
  double nmse = 0, max_abs_err = 0, ms = 0;
};

struct Options {
  std::string op, backend, simd, json;
  int64_t threads = 0, seed = 1;
  bool verbose = false, list = false;
};

class Checker {
 public:
  Checker(const Options& opt, std::vector<Target> targets) : opt_(opt), targets_(std::move(targets)) {}

  void check_op(OpId op) {
    for (const OpCase& c : op_cases(op)) check_case(op, c);
  }
  const std::vector<CaseRecord>& records() const { return records_; }
  bool printed() const { return printed_; }  // a line per case was printed (so the table wants a blank line)

 private:
  void record(OpId op, const std::string& target, const OpCase& c, const std::string& status, std::string detail,
              double nmse = 0, double max_err = 0, double ms = 0) {
    CaseRecord r{op_info(op).name, target, c.name, status, std::move(detail), nmse, max_err, ms};
    if (status == "fail") {
      std::printf("FAIL %s [%s]: %s\n", c.name.c_str(), target.c_str(), r.detail.c_str());
    } else if (status == "skip") {
      std::printf("SKIP %s [%s]: %s\n", c.name.c_str(), target.c_str(), r.detail.c_str());
    } else if (opt_.verbose) {
      std::printf("ok   %s [%s]: %s, %.3f ms\n", c.name.c_str(), target.c_str(), r.detail.c_str(), ms);
    }
    printed_ = printed_ || status != "pass" || opt_.verbose;
    std::fflush(stdout);
    records_.push_back(std::move(r));
  }

  void check_case(OpId op, const OpCase& c) {
    const uint64_t case_seed = mix_seed(static_cast<uint64_t>(opt_.seed), hash_string(c.name));
    // Inputs, each an allocation of exactly its size (so AddressSanitizer sees a read past the end), and a copy of
    // them to prove that no kernel writes to its inputs.
    std::vector<std::vector<uint8_t>> in, pristine;
    std::vector<TensorView> in_views;
    RandomFill fill;
    fill.special_values = c.special_values;
    for (size_t i = 0; i < c.in.size(); ++i) {
      const TensorSpec& s = c.in[i];
      in.emplace_back(spec_bytes(s));
      fill_random_spec(s, in.back().data(), mix_seed(case_seed, i), fill);
      in_views.push_back(make_view(s, in.back().data()));
    }
    if (c.init_inputs) c.init_inputs(in_views, mix_seed(case_seed, 101));
    for (const std::vector<uint8_t>& b : in) pristine.push_back(b);
    // The reference, into outputs pre-filled with 0xCD bytes: different from the NaN the backends start from, so an
    // element neither writes still differs.
    std::vector<GuardedBuffer> want;
    std::vector<TensorView> want_views;
    for (const TensorSpec& s : c.out) {
      want.emplace_back(spec_bytes(s));
      std::memset(want.back().data(), kGuardByte, want.back().bytes());
      want_views.push_back(make_view(s, want.back().data()));
    }
    if (c.init_outputs) c.init_outputs(want_views, mix_seed(case_seed, 102));
    OpArgs args;
    args.op = op;
    args.in = in_views.data();
    args.n_in = static_cast<int32_t>(in_views.size());
    args.out = want_views.data();
    args.n_out = static_cast<int32_t>(want_views.size());
    args.params = c.params;
    const Status valid = validate_op(args);
    if (!valid.ok()) {
      for (const Target& t : targets_) record(op, t.name, c, "fail", "the case itself is invalid: " + valid.message());
      return;
    }
    std::string ref_problem;
    try {
      const Status ref_st = kernel_table(Backend::ref)[static_cast<int>(op)].run(args);
      if (!ref_st.ok()) ref_problem = "the reference failed: " + ref_st.message();
    } catch (const std::exception& e) {
      ref_problem = std::string("the reference threw: ") + e.what();
    }
    for (size_t i = 0; i < want.size() && ref_problem.empty(); ++i)
      if (!want[i].guards_intact())
        ref_problem = "the reference wrote outside output " + std::to_string(i) + ": " + want[i].guard_damage();
    for (size_t i = 0; i < in.size() && ref_problem.empty(); ++i)
      if (in[i] != pristine[i]) ref_problem = "the reference wrote to input " + std::to_string(i);
    if (!ref_problem.empty()) {
      for (const Target& t : targets_) record(op, t.name, c, "fail", ref_problem);
      return;
    }
    for (const Target& t : targets_) {
      try {
        run_target(op, c, t, args, in, pristine, want);
      } catch (const std::exception& e) {
        record(op, t.name, c, "fail", std::string("exception: ") + e.what());
      } catch (...) {
        record(op, t.name, c, "fail", "unknown exception");
      }
    }
  }

  void run_target(OpId op, const OpCase& c, const Target& t, const OpArgs& host_args,
                  std::vector<std::vector<uint8_t>>& in, const std::vector<std::vector<uint8_t>>& pristine,
                  const std::vector<GuardedBuffer>& want) {
    auto fail = [&](const std::string& what, size_t i, const Status& st) {
      record(op, t.name, c, "fail", what + " " + std::to_string(i) + ": " + st.message());
    };
    if (t.backend == Backend::cpu) set_cpu_simd_level(t.simd);
    const Backend b = t.backend;
    const bool host = b != Backend::cuda;
    const Device dev = backend_device(b);

    // Outputs: host images [guard | NaN... | guard]; on a device, the same image is uploaded and read back.
    std::vector<GuardedBuffer> got;
    for (const TensorSpec& s : c.out) {
      got.emplace_back(spec_bytes(s));
      fill_poison_spec(s, got.back().data());
    }
    if (c.init_outputs) {
      std::vector<TensorView> host_out;
      for (size_t i = 0; i < got.size(); ++i) host_out.push_back(make_view(c.out[i], got[i].data()));
      c.init_outputs(host_out, mix_seed(mix_seed(static_cast<uint64_t>(opt_.seed), hash_string(c.name)), 102));
    }
    std::vector<BackendBuffer> dev_in(in.size()), dev_out(got.size());
    std::vector<TensorView> in_views, out_views;
    for (size_t i = 0; i < in.size(); ++i) {
      void* p = in[i].data();
      if (!host) {
        const Status st = dev_in[i].allocate(b, std::max<size_t>(in[i].size(), 1));
        if (!st.ok()) return fail("allocating input", i, st);
        const Status up = backend_upload(b, dev_in[i].get(), in[i].data(), in[i].size());
        if (!up.ok()) return fail("uploading input", i, up);
        p = dev_in[i].get();
      }
      in_views.push_back(make_view(c.in[i], p, dev));
    }
    for (size_t i = 0; i < got.size(); ++i) {
      uint8_t* p = got[i].data();
      if (!host) {
        const Status st = dev_out[i].allocate(b, got[i].image_bytes());
        if (!st.ok()) return fail("allocating output", i, st);
        const Status up = backend_upload(b, dev_out[i].get(), got[i].image(), got[i].image_bytes());
        if (!up.ok()) return fail("uploading output", i, up);
        p = static_cast<uint8_t*>(dev_out[i].get()) + kGuardBytes;
      }
      out_views.push_back(make_view(c.out[i], p, dev));
    }
    OpArgs args = host_args;
    args.in = in_views.data();
    args.out = out_views.data();
    const Status stream = backend_stream(b, &args.stream);
    if (!stream.ok()) return record(op, t.name, c, "fail", "no stream: " + stream.message());

    if (const char* why = backend_unsupported_reason(b, args)) return record(op, t.name, c, "skip", why);

    const auto t0 = std::chrono::steady_clock::now();
    const Status st = kernel_table(b)[static_cast<int>(op)].run(args);
    const Status synced = st.ok() ? backend_sync(b) : Status::OK();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!st.ok()) {
      return record(op, t.name, c, "fail",
                    std::string("kernel returned ") + code_name(st.code()) + ": " + st.message());
    }
    if (!synced.ok()) return record(op, t.name, c, "fail", "after the kernel: " + synced.message());

    for (size_t i = 0; i < got.size() && !host; ++i) {
      const Status down = backend_download(b, got[i].image(), dev_out[i].get(), got[i].image_bytes());
      if (!down.ok()) return fail("downloading output", i, down);
    }
    for (size_t i = 0; i < in.size(); ++i) {
      if (host) {
        if (in[i] != pristine[i]) {
          in[i] = pristine[i];  // for the next backend
          return record(op, t.name, c, "fail", "the kernel wrote to input " + std::to_string(i));
        }
        continue;
      }
      std::vector<uint8_t> now(pristine[i].size());
      const Status down = backend_download(b, now.data(), dev_in[i].get(), now.size());
      if (!down.ok()) return fail("downloading input", i, down);
      if (now != pristine[i]) return record(op, t.name, c, "fail", "the kernel wrote to input " + std::to_string(i));
    }

    std::string detail;
    bool ok = true;
    double nmse = 0, max_err = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const std::string damage = got[i].guard_damage();
      if (!damage.empty()) {
        ok = false;
        detail += "output " + std::to_string(i) + ": " + damage + "; ";
      }
      const TensorSpec& s = c.out[i];
      const CompareResult cr = compare_spec(s, got[i].data(), want[i].data(), tolerance(op, s.dtype));
      nmse = std::max(nmse, cr.nmse);
      max_err = std::max(max_err, cr.max_abs_err);
      if (got.size() > 1) detail += "output " + std::to_string(i) + ": ";
      detail += cr.summary();
      if (!cr.ok) {
        ok = false;
        for (const Mismatch& m : cr.first)
          detail += "\n    [" + std::to_string(m.index) + "] got " + m.got + ", want " + m.want;
      }
    }
    record(op, t.name, c, ok ? "pass" : "fail", detail, nmse, max_err, ms);
  }

  const Options& opt_;
  std::vector<Target> targets_;
  std::vector<CaseRecord> records_;
  bool printed_ = false;
};

int run(int argc, char** argv) {
  Options opt;
  ArgParser p("lk_check",
              "Checks every op on every backend of this build against the reference (exit 1 on a failure).");
  p.add_string("--op", "NAME", "check only this op", &opt.op);
  p.add_string("--backend", "NAME", "check only this backend", &opt.backend, {"cpu", "cuda"});
  p.add_string("--simd", "LEVEL", "cpu: only this SIMD level; default: the detected level, then scalar", &opt.simd,
               {"scalar", "avx2", "avx512"});
  p.add_int("--threads", "N", "thread pool size (default: all hardware threads)", &opt.threads, 1, 4096);
  p.add_int("--seed", "N", "random seed", &opt.seed, 0, INT64_MAX);
  p.add_string("--json", "FILE", "also write the results as JSON", &opt.json);
  p.add_flag("--list", "list the ops and their cases, run nothing", &opt.list);
  p.add_flag("-v", "print every case, passed ones too", &opt.verbose);
  std::string err;
  if (!p.parse(argc, argv, &err)) {
    std::fprintf(stderr, "%s\n\n%s", err.c_str(), p.usage().c_str());
    return 2;
  }
  if (p.help_requested()) {
    std::printf("%s", p.usage().c_str());
    return 0;
  }

  std::vector<OpId> ops;
  if (!opt.op.empty()) {
    const OpId id = op_from_name(opt.op.c_str());
    if (id == OpId::count) {
      std::string names;
      for (int i = 0; i < kNumOps; ++i) names += std::string(i ? ", " : "") + op_info(static_cast<OpId>(i)).name;
      std::fprintf(stderr, "lk_check: expected an op name (%s) for --op, got '%s'\n", names.c_str(), opt.op.c_str());
      return 2;
    }
    ops.push_back(id);
  } else {
    for (int i = 0; i < kNumOps; ++i) ops.push_back(static_cast<OpId>(i));
  }
  if (opt.list) {
    for (OpId op : ops) {
      std::printf("%s: %s\n", op_info(op).name, op_info(op).math);
      for (const OpCase& c : op_cases(op)) std::printf("  %s\n", c.name.c_str());
    }
    return 0;
  }

  if (opt.threads > 0) ThreadPool::global().resize(static_cast<int>(opt.threads));
  const SimdLevel detected = cpu_simd_detected();

  // The targets: the CPU at each SIMD level asked for, and CUDA when this build has it and a device works.
  std::vector<Target> targets;
  struct Unavailable { std::string name, reason; };
  std::vector<Unavailable> unavailable;
  if (opt.backend.empty() || opt.backend == "cpu") {
    const SimdLevel want = opt.simd == "avx512" ? SimdLevel::avx512 : SimdLevel::avx2;
    if ((opt.simd == "avx2" || opt.simd == "avx512") && detected < want) {
      std::fprintf(stderr, "lk_check: --simd %s, but this CPU lacks it (detected: %s)\n", opt.simd.c_str(),
                   simd_level_name(detected));
      return 2;
    }
    // Default: every level this CPU has, the best as "cpu", then "cpu-avx2" (on an AVX-512 machine) and
    // "cpu-scalar", so that each kernel variant is checked.
    if (opt.simd.empty() || opt.simd == "avx512" || (opt.simd == "avx2" && detected == SimdLevel::avx2))
      targets.push_back({"cpu", Backend::cpu, opt.simd.empty() ? detected : want});
    if ((opt.simd.empty() && detected > SimdLevel::avx2) || (opt.simd == "avx2" && detected > SimdLevel::avx2))
      targets.push_back({"cpu-avx2", Backend::cpu, SimdLevel::avx2});
    if ((opt.simd.empty() && detected != SimdLevel::scalar) || opt.simd == "scalar")
      targets.push_back({"cpu-scalar", Backend::cpu, SimdLevel::scalar});
  }
  std::string cuda_line;
  if (opt.backend.empty() || opt.backend == "cuda") {
    const CudaProbe probe = cuda_probe();
    if (probe.available && kernel_table(Backend::cuda)) {
      targets.push_back({"cuda", Backend::cuda, SimdLevel::scalar});
      cuda_line = "cuda: available";
      for (const CudaDeviceInfo& d : probe.devices)
        cuda_line += "; device " + std::to_string(d.index) + ": " + d.name + " (sm_" + std::to_string(d.cc_major) +
                     std::to_string(d.cc_minor) + ", " + std::to_string(d.sm_count) + " SMs)";
      if (!probe.archs.empty()) cuda_line += "; compiled for " + probe.archs;
    } else {
      const std::string reason = probe.reason.empty() ? "no CUDA kernel table" : probe.reason;
      unavailable.push_back({"cuda", reason});
      cuda_line = std::string("cuda: ") + (probe.compiled ? "unavailable: " : "not in this build: ") + reason;
    }
  }

  std::printf("lk_check: %zu op(s), seed %lld, %d thread(s), cpu simd detected: %s\n", ops.size(),
              static_cast<long long>(opt.seed), ThreadPool::global().threads(), simd_level_name(detected));
  if (!cuda_line.empty()) std::printf("%s\n", cuda_line.c_str());
  std::printf("\n");
  if (targets.empty()) {
    std::fprintf(stderr, "lk_check: nothing to check: the requested backend is unavailable\n");
    return 2;
  }

  const auto t0 = std::chrono::steady_clock::now();
  Checker checker(opt, targets);
  for (OpId op : ops) checker.check_op(op);
  set_cpu_simd_level(detected);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The table, in op order then target order.
  std::vector<std::vector<std::string>> rows = {{"op", "backend", ">passed", ">failed", ">skipped"}};
  std::vector<std::pair<std::string, std::string>> keys;
  std::vector<Tally> tallies;
  Tally total;
  for (OpId op : ops)
    for (const Target& t : targets) {
      keys.push_back({op_info(op).name, t.name});
      tallies.emplace_back();
    }
  for (const CaseRecord& r : checker.records()) {
    for (size_t k = 0; k < keys.size(); ++k) {
      if (keys[k].first != r.op || keys[k].second != r.target) continue;
      Tally& tl = tallies[k];
      if (r.status == "pass") ++tl.passed, ++total.passed;
      else if (r.status == "fail") ++tl.failed, ++total.failed;
      else ++tl.skipped, ++total.skipped;
    }
  }
  for (size_t k = 0; k < keys.size(); ++k)
    rows.push_back({keys[k].first, keys[k].second, std::to_string(tallies[k].passed), std::to_string(tallies[k].failed),
                    std::to_string(tallies[k].skipped)});
  for (const Unavailable& u : unavailable) rows.push_back({"(all)", u.name, "-", "-", "-"});
  if (checker.printed()) std::printf("\n");
  print_table(stdout, rows);
  for (const Unavailable& u : unavailable) std::printf("%s: not checked: %s\n", u.name.c_str(), u.reason.c_str());
  std::printf("\nlk_check: %d passed, %d failed, %d skipped in %.1f s: %s\n", total.passed, total.failed,
              total.skipped, seconds, total.failed ? "FAILED" : "OK");

  if (!opt.json.empty()) {
    JsonWriter j;
    j.begin_object();
    j.kv("tool", "lk_check").kv("seed", opt.seed).kv("threads", ThreadPool::global().threads());
    j.kv("simd_detected", simd_level_name(detected)).kv("seconds", seconds);
    j.key("backends").begin_array();
    for (const Target& t : targets) {
      j.begin_object().kv("name", t.name).kv("backend", backend_name(t.backend)).kv("available", true);
      if (t.backend == Backend::cpu) j.kv("simd", simd_level_name(t.simd));
      j.end_object();
    }
    for (const Unavailable& u : unavailable)
      j.begin_object().kv("name", u.name).kv("available", false).kv("reason", u.reason).end_object();
    j.end_array();
    j.key("summary").begin_array();
    for (size_t k = 0; k < keys.size(); ++k)
      j.begin_object().kv("op", keys[k].first).kv("backend", keys[k].second).kv("passed", tallies[k].passed)
          .kv("failed", tallies[k].failed).kv("skipped", tallies[k].skipped).end_object();
    j.end_array();
    j.key("cases").begin_array();
    for (const CaseRecord& r : checker.records()) {
      j.begin_object().kv("op", r.op).kv("backend", r.target).kv("case", r.name).kv("status", r.status)
          .kv("detail", r.detail);
      if (r.status != "skip") j.kv("nmse", r.nmse).kv("max_abs_err", r.max_abs_err).kv("ms", r.ms);
      j.end_object();
    }
    j.end_array();
    j.kv("passed", total.passed).kv("failed", total.failed).kv("skipped", total.skipped).kv("ok", total.failed == 0);
    j.end_object();
    std::string werr;
    if (!write_text_file(opt.json, j.str() + "\n", &werr)) {
      std::fprintf(stderr, "lk_check: %s\n", werr.c_str());
      return 2;
    }
  }
  return total.failed ? 1 : 0;
}

}  // namespace
}  // namespace tools
}  // namespace lk

int main(int argc, char** argv) {
  try {
    return lk::tools::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lk_check: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "lk_check: unknown exception\n");
  }
  return 2;
}
