// Helpers shared by the native tools (lk_check, lk_bench): seeded random tensors, the comparison against the
// reference, buffers with guard bytes, backend memory (host for ref/cpu, device for cuda), a JSON writer, a table
// printer and a command-line parser. Plain C++17, no dependency beyond the core library, so a bare GPU host builds
// the tools with cmake and nvcc alone.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../common/cases.h"
#include "../common/registry.h"

namespace lk {
namespace tools {

// ---------------------------------------------------------------------------------------------------------------
// Random data

// xoshiro256** seeded through splitmix64: fast, good enough for test data, and identical on every platform (unlike
// the std:: distributions, whose output is implementation-defined), so a seed names the same data everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();               // in [0, 1)
  double normal();                // standard normal (Box-Muller)
  int64_t range(int64_t lo, int64_t hi);  // uniform integer in [lo, hi]

 private:
  uint64_t s_[4];
};

// A seed for one independent stream, derived from the run's seed and any labels (case name hash, input index), so
// that adding a case does not change the data of the others.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);
uint64_t hash_string(const std::string& s);  // FNV-1a, 64 bit

struct RandomFill {
  double scale = 1.0;           // float data ~ N(0, scale^2)
  bool special_values = false;  // mix in (about 1 element in 4) the values of special_values_f32() and the
                                // dtype's own bit patterns: NaNs (quiet, signalling, negative, with payloads), +-Inf,
                                // -0, f16 and bf16 subnormals, f16 rounding ties, 65504/65520, 1e30; for integer
                                // dtypes the range limits
};

// Fills n elements of dtype t at p with seeded random data. Floats are normal and never zero (a zero hides
// missing writes and sign bugs); integers are uniform over the dtype's range without zero (i32: mostly within
// +-2^24, some beyond, so conversions to float have to round). Same seed, same bytes.
void fill_random(void* p, DType t, int64_t n, uint64_t seed, const RandomFill& opt = RandomFill());

// The special f32 values of RandomFill::special_values, also useful on their own in tests.
const std::vector<float>& special_values_f32();

// ---------------------------------------------------------------------------------------------------------------
// Elements and comparison

double element_as_double(const void* p, DType t, int64_t i);  // NaN/Inf kept
bool element_is_nan(const void* p, DType t, int64_t i);
// "1.25 (0x3d00)" for floats (value and bits), "-7" for integers.
std::string format_element(const void* p, DType t, int64_t i);

struct Mismatch {
  int64_t index;
  std::string got, want;
};

struct CompareResult {
  bool ok = true;
  bool exact = false;        // compared bit for bit
  int64_t n = 0;             // elements compared
  int64_t bad = 0;           // elements out of tolerance
  double nmse_limit = 0;
  double nmse = 0;           // sum (got - ref)^2 / sum ref^2 over finite reference elements
  double max_abs_err = 0;    // over finite reference elements
  std::vector<Mismatch> first;  // the first max_report bad elements
  std::string summary() const;  // "3 of 4099 elements differ (exact op)", "ok, 4099 elements: nmse 1e-12, ..."
};

// Compares n elements of dtype t against the reference `want` with a Tolerance (cases.h):
//  exact: bit for bit, except that two NaNs are equal whatever their payloads;
//  else:  NaN where the reference is NaN, the same infinity where it is infinite, and for finite reference values
//         |got - want| <= rtol * (|want| + rms(want)) per element and nmse <= tol.nmse overall.
// Integer dtypes are always compared exactly.
CompareResult compare_outputs(const void* got, const void* want, DType t, int64_t n, const Tolerance& tol,
                              int max_report = 8);

// ---------------------------------------------------------------------------------------------------------------
// Guarded buffers (canaries)

constexpr size_t kGuardBytes = 64;
constexpr uint8_t kGuardByte = 0xCD;

// Host memory laid out as [guard | data | guard], guards filled with kGuardByte, data 64-byte aligned, data zeroed.
// A kernel that writes one byte outside its output shows up in guards_intact(). Use it for outputs only: an input
// should be an allocation of exactly its size, so that AddressSanitizer sees a kernel reading past its end (and a
// copy of an input's guard onto an output's guard would go unnoticed). For a device backend the whole image
// (image(), image_bytes()) is uploaded to a device allocation of the same size, the kernel gets device + kGuardBytes,
// and the image is downloaded back before checking.
class GuardedBuffer {
 public:
  GuardedBuffer() = default;
  explicit GuardedBuffer(size_t bytes);
  uint8_t* data() { return image_.get() + kGuardBytes; }
  const uint8_t* data() const { return image_.get() + kGuardBytes; }
  size_t bytes() const { return bytes_; }
  uint8_t* image() { return image_.get(); }
  size_t image_bytes() const { return bytes_ + 2 * kGuardBytes; }
  // Where the guards were overwritten, e.g. "3 bytes after the end" ("" when intact).
  std::string guard_damage() const;
  bool guards_intact() const { return guard_damage().empty(); }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> image_;
  size_t bytes_ = 0;
};

// Pre-fills an output before a backend run: a NaN for float dtypes (an element the kernel forgets to write then
// fails the comparison even where the reference is 0), 0xCD bytes for integers.
void fill_poison(void* p, DType t, int64_t n);

// ---------------------------------------------------------------------------------------------------------------
// Backend memory: host memory for ref and cpu, device memory on device 0 for cuda (through cuda_backend.h; in a
// build without CUDA these return Code::unsupported). Pointers from backend_alloc are 64-byte aligned on the host.

Device backend_device(Backend b);
Status backend_alloc(Backend b, size_t bytes, void** ptr);
void backend_free(Backend b, void* ptr);
Status backend_upload(Backend b, void* dst, const void* src, size_t bytes);    // host -> backend, blocking
Status backend_download(Backend b, void* dst, const void* src, size_t bytes);  // backend -> host, blocking
Status backend_sync(Backend b);                                                // waits for queued kernels
Status backend_stream(Backend b, void** stream);                               // OpArgs::stream (null on host)

// An owning backend allocation.
class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
  BackendBuffer(BackendBuffer&& o) noexcept;
  BackendBuffer& operator=(BackendBuffer&& o) noexcept;
  ~BackendBuffer() { reset(); }
  Status allocate(Backend b, size_t bytes);
  void reset();
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  Backend backend_ = Backend::cpu;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A contiguous TensorView of a case's TensorSpec over `data`.
TensorView make_view(const TensorSpec& spec, void* data, Device device = Device());
int64_t spec_numel(const TensorSpec& spec);
size_t spec_bytes(const TensorSpec& spec);  // quantized dtypes: the bytes of the panel form
// fill_random / fill_poison / compare_outputs for a whole TensorSpec, quantized dtypes included: a quantized input is
// random normal data through the reference quantizer, a quantized output is compared byte for byte.
void fill_random_spec(const TensorSpec& spec, void* p, uint64_t seed, const RandomFill& opt = RandomFill());
void fill_poison_spec(const TensorSpec& spec, void* p);
CompareResult compare_spec(const TensorSpec& spec, const void* got, const void* want, const Tolerance& tol);

// ---------------------------------------------------------------------------------------------------------------
// JSON

// A streaming JSON writer that places commas and indentation itself:
//   JsonWriter j;  j.begin_object().kv("op", "add").key("cases").begin_array().value(3).end_array().end_object();
//   write_text_file(path, j.str(), &err);
// Non-finite doubles are written as null (JSON has no NaN). Misuse (a value where a key is due) is not checked.
class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = true) : pretty_(pretty) {}
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(const std::string& k);
  JsonWriter& value(const std::string& v);
  JsonWriter& value(const char* v);
  JsonWriter& value(double v);  // the shortest text that reads back as v
  JsonWriter& value(float v);   // the shortest text that reads back as v in f32 (0.1f is 0.1, not 0.100000001)
  JsonWriter& value(bool v);
  template <class T, std::enable_if_t<std::is_integral<T>::value && !std::is_same<T, bool>::value, int> = 0>
  JsonWriter& value(T v) {  // every integer type, exactly
    return raw(std::to_string(v));
  }
  JsonWriter& null();
  template <class T>
  JsonWriter& kv(const std::string& k, const T& v) {
    key(k);
    return value(v);
  }
  const std::string& str() const { return out_; }
  static std::string escape(const std::string& s);  // with the quotes

 private:
  JsonWriter& raw(const std::string& text);  // a value already in JSON form
  void before_value();
  void newline();
  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written yet
  bool after_key_ = false;
  bool pretty_;
};

bool write_text_file(const std::string& path, const std::string& text, std::string* error);

// ---------------------------------------------------------------------------------------------------------------
// Tables and command lines

// Prints rows as columns padded to their widest cell; the first row is the header, followed by a rule. Columns
// whose header starts with '>' are right-aligned (the '>' is not printed).
void print_table(FILE* out, const std::vector<std::vector<std::string>>& rows);

// A small parser for `--name value`, `--name=value` and boolean `--name` flags, with generated usage text.
//   ArgParser p("lk_check", "checks every op on every backend against the reference");
//   std::string op; int64_t seed = 1; bool verbose = false;
//   p.add_string("--op", "NAME", "only this op", &op);
//   p.add_int("--seed", "N", "random seed", &seed, 0, INT64_MAX);
//   p.add_flag("-v", "print every case", &verbose);
//   std::string err; if (!p.parse(argc, argv, &err)) { fprintf(stderr, "%s\n%s", err.c_str(), p.usage().c_str()); }
class ArgParser {
 public:
  ArgParser(std::string program, std::string summary);
  void add_string(const std::string& name, const std::string& metavar, const std::string& help, std::string* out,
                  std::vector<std::string> choices = {});
  void add_int(const std::string& name, const std::string& metavar, const std::string& help, int64_t* out,
               int64_t min, int64_t max);
  void add_flag(const std::string& name, const std::string& help, bool* out);
  // False with *error set for an unknown option, a missing value, a bad number or a value not among the choices.
  // --help / -h sets help_requested() and returns true.
  bool parse(int argc, char** argv, std::string* error);
  bool help_requested() const { return help_; }
  bool given(const std::string& name) const;  // the option appeared on the command line
  std::string usage() const;

 private:
  struct Opt {
    std::string name, metavar, help;
    enum Kind { str, integer, flag } kind;
    std::string* s = nullptr;
    int64_t* i = nullptr;
    bool* b = nullptr;
    int64_t min = 0, max = 0;
    std::vector<std::string> choices;
    bool seen = false;
  };
  std::string program_, summary_;
  std::vector<Opt> opts_;
  bool help_ = false;
};

}  // namespace tools
}  // namespace lk
