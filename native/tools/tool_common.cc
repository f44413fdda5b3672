#include "tool_common.h"

#include <sys/mman.h>

#include "../common/quant_rows.h"

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(LLMK_HAVE_CUDA)
#include "../cuda/cuda_backend.h"
#endif

namespace lk {
namespace tools {

// ---------------------------------------------------------------------------------------------------------------
// Random data

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Special f32 values as bit patterns, so that NaN payloads and the signalling bit survive as written.
const uint32_t kSpecialF32Bits[] = {
    0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fa5a5a5u, 0xffc0beefu,  // NaNs: quiet, -quiet, signalling, payloads
    0x7f800000u, 0xff800000u,                                        // +-Inf
    0x80000000u,                                                     // -0
    0x00000001u, 0x80400000u, 0x00800000u,                           // f32 subnormals, smallest normal
    0x7149f2cau, 0xf149f2cau,                                        // +-1e30 (overflow f16; fine in bf16)
    0x7f7fffffu,                                                     // FLT_MAX (rounds to Inf in bf16)
    0x477fe000u, 0xc77fe000u,                                        // +-65504, the largest f16
    0x477fefffu,                                                     // just below 65520: rounds to 65504 in f16
    0x477ff000u,                                                     // 65520: the tie that rounds to Inf in f16
    0x33800000u, 0xb3800000u,                                        // +-2^-24, the smallest f16 subnormal
    0x33000000u,                                                     // 2^-25: ties to 0 in f16
    0x33c00000u,                                                     // 1.5 * 2^-24: ties up to 2^-23
    0x387fc000u,                                                     // 1023 * 2^-24, the largest f16 subnormal
    0x38800000u,                                                     // 2^-14, the smallest f16 normal
    0x36490000u, 0xb6490000u,                                        // ~3e-6: f16 subnormals
    0x3f801000u, 0x3f803000u,                                        // 1 + 2^-11, 1 + 3 * 2^-11: f16 ties
    0x3f808000u, 0x3f818000u,                                        // 1 + 2^-8, 1 + 3 * 2^-8: bf16 ties
    0x00010000u, 0x000b5000u, 0x80010000u,                           // bf16 subnormals
};
const uint16_t kSpecialF16[] = {0x7e00, 0xfe00, 0x7c01, 0x7d5a, 0x7e5a, 0x7c00, 0xfc00, 0x8000,
                                0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x3c01};
const uint16_t kSpecialBF16[] = {0x7fc0, 0xffc0, 0x7f81, 0x7fa5, 0x7f80, 0xff80, 0x8000,
                                 0x0001, 0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f, 0x3f81};

template <class T, size_t N>
T pick(Rng& r, const T (&arr)[N]) {
  return arr[r.next() % N];
}

float random_nonzero(Rng& r, double scale) {
  for (;;) {
    const float v = static_cast<float>(r.normal() * scale);
    if (v != 0.0f) return v;
  }
}

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

int64_t Rng::range(int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;  // 0 means the full 2^64
  const uint64_t r = span == 0 ? next() : next() % span;
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + r);
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t x = seed;
  uint64_t h = splitmix64(x);
  x = h ^ a;
  h = splitmix64(x);
  x = h ^ b;
  return splitmix64(x);
}

uint64_t hash_string(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

const std::vector<float>& special_values_f32() {
  static const std::vector<float> v = [] {
    std::vector<float> out;
    for (uint32_t b : kSpecialF32Bits) out.push_back(f32_from_bits(b));
    return out;
  }();
  return v;
}

void fill_random(void* p, DType t, int64_t n, uint64_t seed, const RandomFill& opt) {
  Rng r(seed);
  for (int64_t i = 0; i < n; ++i) {
    const bool special = opt.special_values && (r.next() & 3) == 0;
    switch (t) {
      case DType::f32: {
        const uint32_t bits = special ? pick(r, kSpecialF32Bits) : f32_bits(random_nonzero(r, opt.scale));
        std::memcpy(static_cast<uint8_t*>(p) + 4 * i, &bits, 4);
        break;
      }
      case DType::f16:
      case DType::bf16: {
        const bool h = t == DType::f16;
        uint16_t bits;
        if (special && (r.next() & 1)) {
          bits = h ? pick(r, kSpecialF16) : pick(r, kSpecialBF16);
        } else if (special) {
          const float f = f32_from_bits(pick(r, kSpecialF32Bits));
          bits = h ? f32_to_f16(f) : f32_to_bf16(f);
        } else {
          do {
            const float f = random_nonzero(r, opt.scale);
            bits = h ? f32_to_f16(f) : f32_to_bf16(f);
          } while ((bits & 0x7fff) == 0);  // tiny values round to +-0
        }
        static_cast<uint16_t*>(p)[i] = bits;
        break;
      }
      case DType::i8: {
        static const int8_t kSpecial[] = {-128, 127, -1, 1};
        int8_t v = special ? pick(r, kSpecial) : 0;
        while (v == 0) v = static_cast<int8_t>(r.range(-128, 127));
        static_cast<int8_t*>(p)[i] = v;
        break;
      }
      case DType::f8e4m3: {  // any finite non-zero pattern; specials: NaN, -0, the largest and smallest
        static const uint8_t kSpecial[] = {0x7f, 0x80, 0x7e, 0x01};
        uint8_t v = special ? pick(r, kSpecial) : 0;
        while ((v & 0x7f) == 0 || (v & 0x7f) == 0x7f) v = static_cast<uint8_t>(r.range(0, 255));
        static_cast<uint8_t*>(p)[i] = v;
        break;
      }
      case DType::u8: {
        static const uint8_t kSpecial[] = {0, 255, 1, 128};
        static_cast<uint8_t*>(p)[i] = special ? pick(r, kSpecial) : static_cast<uint8_t>(r.range(1, 255));
        break;
      }
      case DType::i32: {
        // 2^24 + 1 and friends are the first integers f32 cannot hold: a conversion must round them to even.
        static const int32_t kSpecial[] = {INT32_MIN, INT32_MAX, 16777217, -16777217, 16777219, 2147483520, 0};
        int32_t v = 0;
        if (special) {
          v = pick(r, kSpecial);
        } else {
          while (v == 0)
            v = static_cast<int32_t>((r.next() & 7) == 0 ? r.range(INT32_MIN, INT32_MAX)
                                                         : r.range(-(1 << 24), 1 << 24));
        }
        std::memcpy(static_cast<uint8_t*>(p) + 4 * i, &v, 4);
        break;
      }
      default:  // quantized formats: fill_random_spec quantizes random floats
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Elements and comparison

double element_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::i32: return static_cast<const int32_t*>(p)[i];  // exact in double, unlike load_f32
    default: return load_f32(p, t, i);
  }
}

bool element_is_nan(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: {
      uint32_t b;
      std::memcpy(&b, static_cast<const uint8_t*>(p) + 4 * i, 4);
      return (b & 0x7fffffffu) > 0x7f800000u;
    }
    case DType::f16: return (static_cast<const uint16_t*>(p)[i] & 0x7fff) > 0x7c00;
    case DType::bf16: return (static_cast<const uint16_t*>(p)[i] & 0x7fff) > 0x7f80;
    case DType::f8e4m3: return (static_cast<const uint8_t*>(p)[i] & 0x7f) == 0x7f;
    default: return false;
  }
}

std::string format_element(const void* p, DType t, int64_t i) {
  char buf[64];
  switch (t) {
    case DType::f32: {
      uint32_t b;
      std::memcpy(&b, static_cast<const uint8_t*>(p) + 4 * i, 4);
      std::snprintf(buf, sizeof buf, "%.9g (0x%08" PRIx32 ")", static_cast<double>(f32_from_bits(b)), b);
      break;
    }
    case DType::f16:
    case DType::bf16: {
      const uint16_t b = static_cast<const uint16_t*>(p)[i];
      std::snprintf(buf, sizeof buf, "%.9g (0x%04x)", static_cast<double>(load_f32(p, t, i)), static_cast<unsigned>(b));
      break;
    }
    case DType::f8e4m3:
      std::snprintf(buf, sizeof buf, "%.9g (0x%02x)", static_cast<double>(load_f32(p, t, i)),
                    static_cast<unsigned>(static_cast<const uint8_t*>(p)[i]));
      break;
    default:
      std::snprintf(buf, sizeof buf, "%.0f", element_as_double(p, t, i));
      break;
  }
  return buf;
}

std::string CompareResult::summary() const {
  char buf[200];
  if (exact) {
    if (ok) std::snprintf(buf, sizeof buf, "bit-exact, %" PRId64 " elements", n);
    else std::snprintf(buf, sizeof buf, "%" PRId64 " of %" PRId64 " elements differ (exact op)", bad, n);
  } else if (ok) {
    std::snprintf(buf, sizeof buf, "ok, %" PRId64 " elements: nmse %.3g, max |err| %.3g", n, nmse, max_abs_err);
  } else {
    std::snprintf(buf, sizeof buf,
                  "%" PRId64 " of %" PRId64 " elements out of tolerance; nmse %.3g (limit %.3g), max |err| %.3g", bad,
                  n, nmse, nmse_limit, max_abs_err);
  }
  return buf;
}

CompareResult compare_outputs(const void* got, const void* want, DType t, int64_t n, const Tolerance& tol,
                              int max_report) {
  CompareResult res;
  auto report = [&](int64_t i) {
    ++res.bad;
    if (static_cast<int>(res.first.size()) < max_report)
      res.first.push_back({i, format_element(got, t, i), format_element(want, t, i)});
  };
  const size_t es = dtype_size(t);
  const bool exact = tol.exact || !dtype_is_float(t);
  res.exact = exact;
  res.n = n;
  res.nmse_limit = tol.nmse;
  double sum_ref2 = 0, sum_err2 = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double w = element_as_double(want, t, i);
    if (std::isfinite(w)) {
      sum_ref2 += w * w;
      ++finite;
    }
  }
  const double rms = finite ? std::sqrt(sum_ref2 / static_cast<double>(finite)) : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const bool got_nan = element_is_nan(got, t, i), want_nan = element_is_nan(want, t, i);
    const double g = element_as_double(got, t, i), w = element_as_double(want, t, i);
    if (std::isfinite(w)) {
      const double err = std::isfinite(g) ? std::fabs(g - w) : INFINITY;
      sum_err2 += err * err;
      res.max_abs_err = std::max(res.max_abs_err, err);
    }
    if (exact) {
      const uint8_t* g8 = static_cast<const uint8_t*>(got) + i * es;
      const uint8_t* w8 = static_cast<const uint8_t*>(want) + i * es;
      const bool same = (got_nan && want_nan) || std::memcmp(g8, w8, es) == 0;
      if (!same) report(i);
      continue;
    }
    if (want_nan) {
      if (!got_nan) report(i);
    } else if (std::isinf(w)) {
      if (g != w) report(i);
    } else if (!std::isfinite(g) || std::fabs(g - w) > tol.rtol * (std::fabs(w) + rms)) {
      report(i);
    }
  }
  res.nmse = sum_ref2 > 0 ? sum_err2 / sum_ref2 : (sum_err2 > 0 ? INFINITY : 0.0);
  res.ok = res.bad == 0 && (exact || res.nmse <= tol.nmse);
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// Guarded buffers

void GuardedBuffer::Free::operator()(uint8_t* p) const { ::operator delete(p, std::align_val_t(64)); }

GuardedBuffer::GuardedBuffer(size_t bytes) : bytes_(bytes) {
  // Exactly the image, not rounded up: under AddressSanitizer a write past the back guard is caught too.
  uint8_t* p = static_cast<uint8_t*>(::operator new(bytes + 2 * kGuardBytes, std::align_val_t(64)));
  image_.reset(p);
  std::memset(p, kGuardByte, kGuardBytes);
  std::memset(p + kGuardBytes, 0, bytes);
  std::memset(p + kGuardBytes + bytes, kGuardByte, kGuardBytes);
}

std::string GuardedBuffer::guard_damage() const {
  if (!image_) return "";
  const uint8_t* p = image_.get();
  int64_t before = 0, after = 0, nearest_before = 0, farthest_after = 0;
  for (size_t i = 0; i < kGuardBytes; ++i) {
    if (p[i] != kGuardByte) {
      if (!before) nearest_before = static_cast<int64_t>(kGuardBytes - i);  // first damaged byte from the front
      ++before;
    }
    if (p[kGuardBytes + bytes_ + i] != kGuardByte) {
      ++after;
      farthest_after = static_cast<int64_t>(i) + 1;
    }
  }
  std::string s;
  if (before)
    s += std::to_string(before) + " guard bytes before the start written (up to " + std::to_string(nearest_before) +
         " bytes before)";
  if (after)
    s += std::string(s.empty() ? "" : "; ") + std::to_string(after) + " guard bytes after the end written (up to " +
         std::to_string(farthest_after) + " bytes after)";
  return s;
}

void fill_poison(void* p, DType t, int64_t n) {
  switch (t) {
    case DType::f32: {
      const uint32_t nan = 0x7fcdcdcdu;
      for (int64_t i = 0; i < n; ++i) std::memcpy(static_cast<uint8_t*>(p) + 4 * i, &nan, 4);
      break;
    }
    case DType::f16: std::fill_n(static_cast<uint16_t*>(p), n, static_cast<uint16_t>(0x7ecd)); break;
    case DType::bf16: std::fill_n(static_cast<uint16_t*>(p), n, static_cast<uint16_t>(0x7fcd)); break;
    default: std::memset(p, kGuardByte, static_cast<size_t>(n) * dtype_size(t)); break;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backend memory

Device backend_device(Backend b) {
  Device d;
  if (b == Backend::cuda) d.kind = DeviceKind::cuda;
  return d;
}

Status backend_alloc(Backend b, size_t bytes, void** ptr) {
  *ptr = nullptr;
  if (b == Backend::cuda) {
#if defined(LLMK_HAVE_CUDA)
    return cuda_malloc(0, bytes, ptr);
#else
    return unsupported("this build has no CUDA backend");
#endif
  }
  // Like the addon's CPU storage (common/storage.cc): 2 MiB alignment and huge pages for large buffers, so that the
  // tools measure what a Node user gets (4 KiB pages cost kernels that stream scattered KV blocks up to 2x).
  const size_t huge = size_t(2) << 20;
  const size_t padded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  *ptr = std::aligned_alloc(padded >= huge ? huge : 64, padded >= huge ? (padded + huge - 1) / huge * huge : padded);
  if (!*ptr) return Status(Code::oom, "host allocation of " + std::to_string(bytes) + " bytes failed");
#ifdef MADV_HUGEPAGE
  if (padded >= huge) madvise(*ptr, (padded + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
  return Status::OK();
}

void backend_free(Backend b, void* ptr) {
  if (!ptr) return;
  if (b == Backend::cuda) {
#if defined(LLMK_HAVE_CUDA)
    cuda_free(0, ptr);
#endif
    return;
  }
  std::free(ptr);
}

Status backend_upload(Backend b, void* dst, const void* src, size_t bytes) {
  if (b == Backend::cuda) {
#if defined(LLMK_HAVE_CUDA)
    return cuda_copy_h2d(0, dst, src, bytes);
#else
    return unsupported("this build has no CUDA backend");
#endif
  }
  if (bytes) std::memcpy(dst, src, bytes);
  return Status::OK();
}

Status backend_download(Backend b, void* dst, const void* src, size_t bytes) {
  if (b == Backend::cuda) {
#if defined(LLMK_HAVE_CUDA)
    return cuda_copy_d2h(0, dst, src, bytes);
#else
    return unsupported("this build has no CUDA backend");
#endif
  }
  if (bytes) std::memcpy(dst, src, bytes);
  return Status::OK();
}

Status backend_sync(Backend b) {
  if (b == Backend::cuda) {
#if defined(LLMK_HAVE_CUDA)
    return cuda_synchronize(0);
#else
    return unsupported("this build has no CUDA backend");
#endif
  }
  return Status::OK();
}

Status backend_stream(Backend b, void** stream) {
  *stream = nullptr;
  if (b == Backend::cuda) {
#if defined(LLMK_HAVE_CUDA)
    return cuda_stream(0, stream);
#else
    return unsupported("this build has no CUDA backend");
#endif
  }
  return Status::OK();
}

BackendBuffer::BackendBuffer(BackendBuffer&& o) noexcept : backend_(o.backend_), ptr_(o.ptr_), bytes_(o.bytes_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}

BackendBuffer& BackendBuffer::operator=(BackendBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    backend_ = o.backend_;
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

Status BackendBuffer::allocate(Backend b, size_t bytes) {
  reset();
  backend_ = b;
  LK_RETURN_IF_ERROR(backend_alloc(b, bytes, &ptr_));
  bytes_ = bytes;
  return Status::OK();
}

void BackendBuffer::reset() {
  backend_free(backend_, ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

int64_t spec_numel(const TensorSpec& spec) {
  int64_t n = 1;
  for (int64_t d : spec.shape) n *= d;
  return n;
}

size_t spec_bytes(const TensorSpec& spec) {
  if (dtype_is_quant(spec.dtype)) return make_view(spec, nullptr).nbytes();
  return static_cast<size_t>(spec_numel(spec)) * dtype_size(spec.dtype);
}

void fill_random_spec(const TensorSpec& spec, void* p, uint64_t seed, const RandomFill& opt) {
  if (!dtype_is_quant(spec.dtype)) return fill_random(p, spec.dtype, spec_numel(spec), seed, opt);
  // A quantized weight: random normal floats through the reference quantizer (valid scales; no specials).
  TensorSpec f{DType::f32, spec.shape};
  std::vector<float> src(static_cast<size_t>(spec_numel(spec)));
  RandomFill plain = opt;
  plain.special_values = false;
  fill_random(src.data(), DType::f32, spec_numel(spec), seed, plain);
  const TensorView x = make_view(f, src.data());
  const TensorView w = make_view(spec, p);
  // Random normal floats are finite and far below f16's limits: quantizing them cannot fail.
  (void)quantize_panels(x, w, 0, qceil(spec.shape[0], kQPanel));
}

void fill_poison_spec(const TensorSpec& spec, void* p) {
  if (dtype_is_quant(spec.dtype)) return std::memset(p, kGuardByte, spec_bytes(spec)), void();
  fill_poison(p, spec.dtype, spec_numel(spec));
}

CompareResult compare_spec(const TensorSpec& spec, const void* got, const void* want, const Tolerance& tol) {
  if (dtype_is_quant(spec.dtype))  // the panel-form bytes, exactly
    return compare_outputs(got, want, DType::u8, static_cast<int64_t>(spec_bytes(spec)), {true, 0, 0});
  return compare_outputs(got, want, spec.dtype, spec_numel(spec), tol);
}

TensorView make_view(const TensorSpec& spec, void* data, Device device) {
  TensorView v;
  v.data = data;
  v.dtype = spec.dtype;
  v.ndim = static_cast<int32_t>(std::min<size_t>(spec.shape.size(), kMaxDims));
  for (int i = 0; i < v.ndim; ++i) v.shape[i] = spec.shape[i];
  set_contiguous_strides(v);
  v.device = device;
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON

std::string JsonWriter::escape(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

void JsonWriter::newline() {
  if (!pretty_) return;
  out_ += '\n';
  out_.append(2 * first_.size(), ' ');
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (first_.empty()) return;
  if (!first_.back()) out_ += ',';
  first_.back() = false;
  newline();
}

JsonWriter& JsonWriter::begin_object() {
  before_value();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  const bool empty = first_.empty() || first_.back();
  if (!first_.empty()) first_.pop_back();
  if (!empty) newline();
  out_ += '}';
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  before_value();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  const bool empty = first_.empty() || first_.back();
  if (!first_.empty()) first_.pop_back();
  if (!empty) newline();
  out_ += ']';
  return *this;
}

JsonWriter& JsonWriter::key(const std::string& k) {
  before_value();
  out_ += escape(k);
  out_ += pretty_ ? ": " : ":";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::value(const std::string& v) {
  before_value();
  out_ += escape(v);
  return *this;
}

JsonWriter& JsonWriter::value(const char* v) { return v ? value(std::string(v)) : null(); }

JsonWriter& JsonWriter::value(double v) {
  before_value();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  out_.append(buf, r.ptr);
  return *this;
}

JsonWriter& JsonWriter::value(float v) {
  before_value();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, r.ptr);
  return *this;
}

JsonWriter& JsonWriter::raw(const std::string& text) {
  before_value();
  out_ += text;
  return *this;
}

JsonWriter& JsonWriter::value(bool v) {
  before_value();
  out_ += v ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::null() {
  before_value();
  out_ += "null";
  return *this;
}

bool write_text_file(const std::string& path, const std::string& text, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    if (error) *error = "cannot open " + path + " for writing: " + std::strerror(errno);
    return false;
  }
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!(ok && closed)) {
    if (error) *error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Tables and command lines

void print_table(FILE* out, const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  const size_t cols = rows[0].size();
  std::vector<size_t> width(cols, 0);
  std::vector<bool> right(cols, false);
  std::vector<std::string> header(cols);
  for (size_t c = 0; c < cols; ++c) {
    header[c] = rows[0][c];
    if (!header[c].empty() && header[c][0] == '>') {
      right[c] = true;
      header[c].erase(0, 1);
    }
    width[c] = header[c].size();
  }
  for (size_t r = 1; r < rows.size(); ++r)
    for (size_t c = 0; c < cols && c < rows[r].size(); ++c) width[c] = std::max(width[c], rows[r][c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cols; ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      const std::string pad(width[c] - std::min(width[c], cell.size()), ' ');
      if (c) s += "  ";
      s += right[c] ? pad + cell : (c + 1 == cols ? cell : cell + pad);
    }
    std::fprintf(out, "%s\n", s.c_str());
  };
  line(header);
  size_t total = 0;
  for (size_t c = 0; c < cols; ++c) total += width[c] + (c ? 2 : 0);
  std::fprintf(out, "%s\n", std::string(total, '-').c_str());
  for (size_t r = 1; r < rows.size(); ++r) line(rows[r]);
}

ArgParser::ArgParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void ArgParser::add_string(const std::string& name, const std::string& metavar, const std::string& help,
                           std::string* out, std::vector<std::string> choices) {
  Opt o;
  o.name = name;
  o.metavar = metavar;
  o.help = help;
  o.kind = Opt::str;
  o.s = out;
  o.choices = std::move(choices);
  opts_.push_back(std::move(o));
}

void ArgParser::add_int(const std::string& name, const std::string& metavar, const std::string& help, int64_t* out,
                        int64_t min, int64_t max) {
  Opt o;
  o.name = name;
  o.metavar = metavar;
  o.help = help;
  o.kind = Opt::integer;
  o.i = out;
  o.min = min;
  o.max = max;
  opts_.push_back(std::move(o));
}

void ArgParser::add_flag(const std::string& name, const std::string& help, bool* out) {
  Opt o;
  o.name = name;
  o.help = help;
  o.kind = Opt::flag;
  o.b = out;
  opts_.push_back(std::move(o));
}

bool ArgParser::given(const std::string& name) const {
  for (const Opt& o : opts_)
    if (o.name == name) return o.seen;
  return false;
}

bool ArgParser::parse(int argc, char** argv, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    std::string inline_value;
    bool has_inline = false;
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    Opt* opt = nullptr;
    for (Opt& o : opts_)
      if (o.name == arg) opt = &o;
    if (!opt) {
      *error = program_ + ": unknown option " + arg;
      return false;
    }
    opt->seen = true;
    if (opt->kind == Opt::flag) {
      if (has_inline) {
        *error = program_ + ": option " + arg + " takes no value";
        return false;
      }
      *opt->b = true;
      continue;
    }
    std::string v;
    if (has_inline) {
      v = inline_value;
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      *error = program_ + ": expected a value (" + opt->metavar + ") for " + arg;
      return false;
    }
    if (opt->kind == Opt::str) {
      if (!opt->choices.empty() && std::find(opt->choices.begin(), opt->choices.end(), v) == opt->choices.end()) {
        std::string list;
        for (const auto& c : opt->choices) list += (list.empty() ? "" : ", ") + c;
        *error = program_ + ": expected one of " + list + " for " + arg + ", got '" + v + "'";
        return false;
      }
      *opt->s = v;
      continue;
    }
    int64_t n = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size() || n < opt->min || n > opt->max) {
      *error = program_ + ": expected an integer in [" + std::to_string(opt->min) + ", " + std::to_string(opt->max) +
               "] for " + arg + ", got '" + v + "'";
      return false;
    }
    *opt->i = n;
  }
  return true;
}

std::string ArgParser::usage() const {
  std::string s = "usage: " + program_ + " [options]\n" + summary_ + "\n\noptions:\n";
  std::vector<std::string> left;
  size_t w = 0;
  for (const Opt& o : opts_) {
    left.push_back(o.name + (o.kind == Opt::flag ? "" : " " + o.metavar));
    w = std::max(w, left.back().size());
  }
  for (size_t i = 0; i < opts_.size(); ++i) {
    std::string help = opts_[i].help;
    if (!opts_[i].choices.empty()) {
      std::string list;
      for (const auto& c : opts_[i].choices) list += (list.empty() ? "" : "|") + c;
      help += " (" + list + ")";
    }
    s += "  " + left[i] + std::string(w - left[i].size() + 2, ' ') + help + "\n";
  }
  s += "  -h, --help" + std::string(w > 8 ? w - 8 : 2, ' ') + "this text\n";
  return s;
}

}  // namespace tools
}  // namespace lk
