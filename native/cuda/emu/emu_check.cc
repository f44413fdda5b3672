// emu_check: runs the CUDA kernels' own source on the CPU, under emu.h, against the references: every case of
// op_cases() plus extra add/mul/matmul shapes that reach the grid-stride wrap-around and the unrolled GEMV loop,
// three ways each: aligned pointers and 1 "SM" (long grid-stride loops), aligned and 132 SMs, and every pointer
// one element off (the scalar paths). Exact ops are compared bit for bit (two NaNs equal), the others (matmul, the
// layer ops) with tolerance(), exactly as lk_check; guard bytes around every output must stay untouched. A case's
// init_inputs / init_outputs hooks run as in lk_check (valid ids, positions, frequencies). Quantized outputs
// (quantize, quant_import) are compared as the bytes of their panel form, padding rows and nibbles included;
// quant_export's third way reads a panel form of random bytes. quantize also runs edge data (ties of each rounding
// rule, zero and tiny blocks; check_quantize_edges) and its error cases (NaN / Inf / too-large values planted in
// several rows: the same Status and message as the reference). Ops whose CUDA kernel answers unsupported (refused
// by backend.cu's supports()) are reported as skipped.
//   emu_check                 all ops
//   emu_check OP              one op
//   emu_check --mma           the tensor-core wrappers of mma.cuh against plain matrix products (fragments built
//                             from the PTX ISA layouts), then matmul_q_mma_cuda (matmul_q_mma.cu) on every matmul_q
//                             case with M > 8 and some extra shapes, against matmul_q_ref with matmul_q's tolerance
//   emu_check --mma quick [S]  the same without the K = 4096 cases, only the cases whose name contains S
//                             (both then also run wgmma.cuh's wrappers against plain products, and
//                             matmul_q_wgmma_cuda, force-enabled, on the int8 i8_pc cases with M >= 64, bit for bit)
//   emu_check OP SUBSTRING    the cases of one op whose name contains SUBSTRING (e.g. matmul_q ",dequant)")
//   emu_check --matmul-q-exact [S]  matmul_q's int8 path (params.i[0] = 0) bit for bit against the exact integer
//                             products and matmul_q_ref, on data whose floating-point part is exact by construction:
//                             the GEMV (M <= 8), matmul_q_mma_cuda (M > 8) and matmul_q_wgmma_cuda (forced, i8_pc,
//                             M >= 64), every format, odd M / N / K, and the int32 extremes (K up to 17000017);
//                             see check_matmul_q_exact (~75 s; S: only the cases whose name contains S)
//   emu_check --conversions   from_f32<f16_t/bf16_t> of elementwise.cuh against dtype.h for all 2^32 f32 inputs,
//                             through cuda_fp16/cuda_bf16's host versions of the intrinsics (~20 s; the f8e4m3
//                             stores call dtype.h's f32_to_f8e4m3 itself)
// What it cannot show: anything about the hardware (the cvt instructions themselves, timing, memory ordering,
// launch limits, occupancy), nor the accuracy of the device's expf/erff/tanhf/sincosf (the emulation calls the
// host's libm; the layer ops' tolerances leave room for CUDA's documented 1-2 ulp). It does check indexing, guards,
// tails, vector and scalar paths, the block and warp reductions and the host launch logic.
// Build and run: native/cuda/emu/run.sh [args].
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <atomic>

#include "common/cases.h"
#include "common/quant.h"
#include "common/quant_rows.h"
#include "cpu/ref/ref.h"
#include "cuda/kernels.h"
#include "elementwise.cuh"  // the launch-rewritten copy (run.sh puts it first on the include path)
#include "matmul_q.cuh"
#include "mma.cuh"
#include "wgmma.cuh"

// The runtime calls the kernels' host code makes (cuda_enter, cuda_status): no device, all fine.
extern "C" {
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char* cudaGetErrorName(cudaError_t) { return "emu"; }
const char* cudaGetErrorString(cudaError_t) { return "emu"; }
}

namespace lk {
int g_sms = 1;
int cuda_sm_count(int) { return g_sms; }
int cuda_cc(int) { return 0; }  // no device: the wgmma path runs here only when forced (emu_check --mma)
Status cuda_last_error(const char*) { return Status::OK(); }  // wins over no_cuda.cc's (linked after us)
// Scratch memory of the kernels that need it (matmul_q's int8 activations, split-K partials): host memory here.
Status cuda_malloc(int, size_t bytes, void** ptr) {
  *ptr = bytes ? std::malloc(bytes) : nullptr;
  return bytes && !*ptr ? Status(Code::oom, "emu: malloc failed") : Status::OK();
}
void cuda_free(int, void* ptr) { std::free(ptr); }
// quantize's error word and the row it names come back through this (the device's waits for the stream).
Status cuda_copy_d2h(int, void* dst, const void* src, size_t bytes) {
  if (bytes) memcpy(dst, src, bytes);
  return Status::OK();
}
}  // namespace lk

using namespace lk;

namespace {

std::mt19937_64 rng(42);

// NaNs with payloads, infinities, signed zero, f32 and f16 subnormals, rounding boundaries of f16 and bf16.
float special_value() {
  static const uint32_t bits[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7fa5a5a5u, 0xff812345u, 0x7f800000u,
                                  0xff800000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x00400000u, 0x7f7fffffu,
                                  0x477ff000u, 0x477fefffu, 0x33000000u, 0x33000001u, 0x387fc000u, 0x38800000u,
                                  0xc7800000u, 0x3f808000u, 0x3f818000u};
  const uint32_t u = bits[rng() % (sizeof(bits) / sizeof(bits[0]))];
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void fill_random(void* p, DType t, int64_t n, bool special) {
  std::uniform_real_distribution<float> uniform(-2.f, 2.f);
  for (int64_t i = 0; i < n; ++i) {
    float v = uniform(rng);
    if (special && rng() % 3 == 0) v = special_value();
    const bool raw16 = special && rng() % 5 == 0;  // any 16-bit pattern, NaN payloads of f16/bf16 included
    switch (t) {
      case DType::f32: static_cast<float*>(p)[i] = v; break;
      case DType::f16: static_cast<uint16_t*>(p)[i] = raw16 ? static_cast<uint16_t>(rng()) : f32_to_f16(v); break;
      case DType::bf16: static_cast<uint16_t*>(p)[i] = raw16 ? static_cast<uint16_t>(rng()) : f32_to_bf16(v); break;
      case DType::i8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(rng()); break;
      case DType::u8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(rng()); break;
      case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(rng()); break;
    }
  }
}

// A quantized weight [N, K]: random floats through the reference quantizer, so that scales are finite, zero points
// in range and the padding past K and past N is what quant.h says (as lk_check's fill_random_spec does).
void fill_quant(void* p, DType t, int64_t N, int64_t K) {
  std::uniform_real_distribution<float> uniform(-2.f, 2.f);
  std::vector<float> src(static_cast<size_t>(N * K));
  for (float& v : src) v = uniform(rng);
  TensorView x, w;
  x.dtype = DType::f32;
  w.dtype = t;
  x.ndim = w.ndim = 2;
  x.shape[0] = w.shape[0] = N;
  x.shape[1] = w.shape[1] = K;
  set_contiguous_strides(x);
  set_contiguous_strides(w);
  x.data = src.data();
  w.data = p;
  (void)quantize_panels(x, w, 0, qceil(N, kQPanel));
}

constexpr uint8_t kGuard = 0xcd;
constexpr int kGuardBytes = 16;

struct Buffer {
  std::vector<uint8_t> mem;
  TensorView v;
};

// A tensor whose data starts `offset` elements after a 64-byte boundary, with guard bytes on both sides.
Buffer make_buffer(const TensorSpec& s, int offset) {
  Buffer b;
  b.v.dtype = s.dtype;
  b.v.ndim = static_cast<int>(s.shape.size());
  for (int i = 0; i < b.v.ndim; ++i) b.v.shape[i] = s.shape[i];
  set_contiguous_strides(b.v);
  const size_t es = dtype_size(s.dtype);
  b.mem.assign(b.v.nbytes() + 192 + offset * es, kGuard);
  const uintptr_t base = reinterpret_cast<uintptr_t>(b.mem.data());
  const uintptr_t aligned = (base + kGuardBytes + 63) & ~uintptr_t(63);
  b.v.data = reinterpret_cast<void*>(aligned + offset * es);
  b.v.device.kind = DeviceKind::cuda;
  return b;
}

bool is_nan(const uint8_t* p, DType t) {
  uint32_t u = 0;
  memcpy(&u, p, dtype_size(t));
  if (t == DType::f32) return (u & 0x7fffffffu) > 0x7f800000u;
  if (t == DType::f16) return (u & 0x7fffu) > 0x7c00u;
  if (t == DType::bf16) return (u & 0x7fffu) > 0x7f80u;
  return false;
}

// quantize's edge data, by row (n % 7): 0 half-integers in [lo, lo + 15] with lo and lo + 15 in every block, lo =
// -7.5, -6.5 or -4.5 (q4_gG: s = 1 exactly, so -lo / s and x / s hit rint's ties; q4_0 with -7.5 and 7.5: |x| ties,
// the first one must win, its sign kept); 1 half-integers
// up to 126.5 with a 127 in each block (q8_0: d = 1, roundf's ties away from zero); 2 zeros, -0 among them (q4_0's
// d = -0, f16 0x8000); 3 tiny values and subnormals (d below 2^-128: 1/d is Inf, quant_trunc_i8's case); 4 random
// values with the block's largest |x| repeated with both signs; 5 large values (up to 6e4: big f16 scales, none
// too large); 6 random, a few exact zeros. Every value is exact in x's dtype or rounded by dtype.h's conversions.
void fill_quantize_edges(const std::vector<TensorView>& in, uint64_t seed) {
  const TensorView& x = in[0];
  const int64_t N = x.shape[0], K = x.shape[1];
  CaseRng g(seed);
  const float los[3] = {-7.5f, -6.5f, -4.5f};  // z = rint(-lo / 1): 8 (a tie either way), 6 and 4 (ties to even)
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t j = k % 32;
      float v = 0.0f;
      switch (n % 7) {
        case 0: {  // lo and hi at positions 0 and 1 of each block, their order alternating block by block
          const float lo = los[(n / 7) % 3], hi = lo + 15.0f;
          const bool lo_first = (k / 32) % 2 == 0;
          v = j == 0 ? (lo_first ? lo : hi) : j == 1 ? (lo_first ? hi : lo)
                                                      : 0.5f * static_cast<float>(g.range(static_cast<int64_t>(2 * lo), static_cast<int64_t>(2 * hi)));
          break;
        }
        case 1: v = j == 5 ? 127.0f : 0.5f * static_cast<float>(g.range(-253, 253)); break;
        case 2: v = g.range(0, 1) ? -0.0f : 0.0f; break;
        case 3: {
          const float tiny[] = {1e-38f, -3e-39f, 1.4e-45f, -2.5e-40f, 0.0f, 7e-37f, -1e-37f};
          v = tiny[g.range(0, 6)];
          break;
        }
        case 4: v = g.uniform(-1.f, 1.f); break;
        case 5: v = g.uniform(-6e4f, 6e4f); break;
        default: v = g.range(0, 9) == 0 ? 0.0f : g.uniform(-2.f, 2.f); break;
      }
      row[static_cast<size_t>(k)] = v;
    }
    if (n % 7 == 4)  // the block's largest |x| again, with the other sign, at a later random position
      for (int64_t b0 = 0; b0 < K; b0 += 32) {
        const int64_t len = std::min<int64_t>(32, K - b0);
        int64_t im = b0;
        for (int64_t k = b0; k < b0 + len; ++k)
          if (std::fabs(row[static_cast<size_t>(k)]) > std::fabs(row[static_cast<size_t>(im)])) im = k;
        if (len > 1) {
          const int64_t k2 = b0 + g.range(0, len - 1);
          if (k2 != im) row[static_cast<size_t>(k2)] = -row[static_cast<size_t>(im)];
        }
      }
    for (int64_t k = 0; k < K; ++k) {
      const float v = row[static_cast<size_t>(k)];
      switch (x.dtype) {
        case DType::f32: static_cast<float*>(x.data)[n * K + k] = v; break;
        case DType::f16: static_cast<uint16_t*>(x.data)[n * K + k] = f32_to_f16(v); break;
        default: static_cast<uint16_t*>(x.data)[n * K + k] = f32_to_bf16(v); break;
      }
    }
  }
}

// Shapes beyond the registered cases: add/mul large enough for the packed loop to wrap around b's row several
// times per thread; matmul with K past the GEMV's 4x-unrolled loop for f16/bf16 and tiles with ragged edges.
void add_extra_cases(OpId op, std::vector<OpCase>& cs) {
  const DType floats[] = {DType::f32, DType::f16, DType::bf16};
  if (op == OpId::add || op == OpId::mul) {
    const std::pair<int64_t, int64_t> shapes[] = {{64, 4096}, {3000, 8}, {513, 24}, {1000, 40}, {700, 33}};
    for (DType t : floats)
      for (auto rc : shapes)
        for (bool bcast : {true, false}) {
          OpCase c;
          c.name = std::string(op_info(op).name) + "-extra(rows=" + std::to_string(rc.first) + ",N=" +
                   std::to_string(rc.second) + "," + dtype_name(t) + (bcast ? ",row-broadcast" : "") + ")";
          c.in = {{t, {rc.first, rc.second}},
                  {t, bcast ? std::vector<int64_t>{rc.second} : std::vector<int64_t>{rc.first, rc.second}}};
          c.out = {{t, {rc.first, rc.second}}};
          cs.push_back(c);
        }
  }
  if (op == OpId::matmul) {
    struct S { int64_t M, N, K; };
    const S shapes[] = {{1, 9, 1024}, {2, 9, 2056},  {3, 5, 4096},    {4, 17, 1032}, {1, 3, 1025},
                        {65, 65, 17}, {128, 128, 64}, {64, 1, 40},    {6, 200, 3}};
    for (DType t : floats)
      for (const S& s : shapes) {
        OpCase c;
        c.name = "matmul-extra(M=" + std::to_string(s.M) + ",N=" + std::to_string(s.N) + ",K=" + std::to_string(s.K) +
                 "," + dtype_name(t) + ")";
        c.in = {{t, {s.M, s.K}}, {t, {s.N, s.K}}};
        c.out = {{t, {s.M, s.N}}};
        cs.push_back(c);
      }
  }
}

Status run_emulated(const OpArgs& a) {
  switch (a.op) {
#define LK_OP(name, nin, nout, math) \
  case OpId::name:                   \
    return name##_cuda(a);
#include "common/ops.def"
#undef LK_OP
    default:
      return internal_error("no such op");
  }
}

// Number of mismatching elements (printing the first few), plus one for touched guard bytes.
int compare(const OpCase& c, int variant, OpId op, const TensorView& ref, const TensorView& got) {
  // A quantized output (quantize, quant_import) is compared as the bytes of its panel form, padding included.
  const bool quant = dtype_is_quant(ref.dtype);
  const size_t es = quant ? 1 : dtype_size(ref.dtype);
  const int64_t n = quant ? static_cast<int64_t>(ref.nbytes()) : ref.numel();
  const uint8_t* g = static_cast<const uint8_t*>(got.data);
  int bad = 0;
  for (int i = 1; i <= kGuardBytes; ++i)
    if (g[-i] != kGuard || g[n * es + i - 1] != kGuard) {
      printf("  %s v%d: guard bytes written\n", c.name.c_str(), variant);
      ++bad;
      break;
    }
  const Tolerance tol = tolerance(op, ref.dtype);
  if (tol.exact) {
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* r = static_cast<const uint8_t*>(ref.data) + i * es;
      if (memcmp(r, g + i * es, es) == 0 || (is_nan(r, ref.dtype) && is_nan(g + i * es, ref.dtype))) continue;
      if (bad++ < 3) {
        uint32_t ur = 0, ug = 0;
        memcpy(&ur, r, es);
        memcpy(&ug, g + i * es, es);
        printf("  %s v%d [%lld]: ref %08x, emulated %08x\n", c.name.c_str(), variant, (long long)i, ur, ug);
      }
    }
    return bad;
  }
  double err2 = 0, ref2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = load_f32(ref.data, ref.dtype, i), x = load_f32(got.data, got.dtype, i);
    err2 += (r - x) * (r - x);
    ref2 += r * r;
  }
  const double rms = std::sqrt(ref2 / (n ? n : 1));
  const double nmse = ref2 > 0 ? err2 / ref2 : err2;
  if (nmse > tol.nmse) {
    printf("  %s v%d: nmse %g > %g\n", c.name.c_str(), variant, nmse, tol.nmse);
    ++bad;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double r = load_f32(ref.data, ref.dtype, i), x = load_f32(got.data, got.dtype, i);
    if (std::fabs(r - x) <= tol.rtol * (std::fabs(r) + rms)) continue;
    if (bad++ < 3) printf("  %s v%d [%lld]: ref %g, emulated %g\n", c.name.c_str(), variant, (long long)i, r, x);
  }
  return bad;
}

int check_conversions() {
  uint64_t bad16 = 0, badbf = 0;
  for (uint64_t i = 0; i <= 0xffffffffull; ++i) {
    const uint32_t u = static_cast<uint32_t>(i);
    float f;
    memcpy(&f, &u, 4);
    const uint16_t h = from_f32<f16_t>(f).bits, b = from_f32<bf16_t>(f).bits;
    if (h != f32_to_f16(f) && bad16++ < 5) printf("f16 mismatch for %08x: %04x, dtype.h %04x\n", u, h, f32_to_f16(f));
    if (b != f32_to_bf16(f) && badbf++ < 5) printf("bf16 mismatch for %08x: %04x, dtype.h %04x\n", u, b, f32_to_bf16(f));
  }
  uint32_t bad_widen = 0;
  for (uint32_t v = 0; v < 65536; ++v) {
    const float a = to_f32(f16_t{static_cast<uint16_t>(v)}), r = f16_to_f32(static_cast<uint16_t>(v));
    const float c = to_f32(bf16_t{static_cast<uint16_t>(v)}), q = bf16_to_f32(static_cast<uint16_t>(v));
    if (memcmp(&a, &r, 4) != 0 && !(a != a && r != r)) ++bad_widen;
    if (memcmp(&c, &q, 4) != 0) ++bad_widen;
  }
  printf("conversions: f32->f16 %llu and f32->bf16 %llu mismatches of 2^32; f16/bf16->f32 %u of 2^16 each\n",
         (unsigned long long)bad16, (unsigned long long)badbf, bad_widen);
  return bad16 || badbf || bad_widen ? 1 : 0;
}

// Data-dependent errors that a kernel cannot report (layers.cu): an embedding id outside [0, V) and a negative rope
// position must read nothing out of bounds (ids far outside the table would fault the emulation) and write their
// rows as NaN; the other rows are as usual and guard bytes stay untouched. Returns the number of failures.
int check_bad_kv(OpId op);

int check_bad_paged(OpId op);
int check_bad_prefill();

int check_quantize_edges();
int check_quantize_errors();

int check_bad_indices(OpId op) {
  if (op == OpId::quantize) {
    // They draw from rng and put it back: the data of every later op stays what it was before these checks existed
    // (a changed stream once moved matmul_q's single-output f32 case onto a near-zero, heavily cancelling sum).
    const std::mt19937_64 saved = rng;
    const int f = check_quantize_edges() + check_quantize_errors();
    rng = saved;
    return f;
  }
  if (op == OpId::cache_write || op == OpId::kv_copy_blocks || op == OpId::rope_cache_write) return check_bad_kv(op);
  if (op == OpId::paged_attention_decode) return check_bad_paged(op);
  if (op == OpId::paged_attention_prefill) return check_bad_prefill();
  if (op != OpId::embedding && op != OpId::rope) return 0;
  const bool emb = op == OpId::embedding;
  const int64_t T = 6, E = 37, H = 2, D = 8;
  std::vector<TensorSpec> ins = emb ? std::vector<TensorSpec>{{DType::f32, {5, E}}, {DType::i32, {T}}}
                                    : std::vector<TensorSpec>{{DType::f32, {T, H, D}}, {DType::i32, {T}}, {DType::f32, {D / 2}}};
  const TensorSpec out = emb ? TensorSpec{DType::f32, {T, E}} : TensorSpec{DType::f32, {T, H, D}};
  std::vector<Buffer> in;
  for (const TensorSpec& s : ins) {
    in.push_back(make_buffer(s, 0));
    fill_random(in.back().v.data, s.dtype, in.back().v.numel(), false);
  }
  const int32_t bad_ids[T] = {0, -1, 5, 4, INT32_MAX, INT32_MIN};  // V = 5
  const int32_t bad_pos[T] = {0, -5, 7, INT32_MIN, 40000, -1};
  int32_t* ids = static_cast<int32_t*>(in[1].v.data);
  for (int64_t t = 0; t < T; ++t) ids[t] = emb ? bad_ids[t] : bad_pos[t];
  if (!emb)
    for (int64_t i = 0; i < D / 2; ++i) static_cast<float*>(in[2].v.data)[i] = std::pow(10000.f, -2.f * i / D);
  Buffer y = make_buffer(out, 0), want = make_buffer(out, 0);
  std::vector<TensorView> iv;
  for (auto& b : in) iv.push_back(b.v);
  OpArgs a;
  a.op = op;
  a.in = iv.data();
  a.n_in = static_cast<int32_t>(iv.size());
  a.n_out = 1;
  a.out = &y.v;
  const Status se = run_emulated(a);
  // The good rows from the reference, with every bad id / position replaced by a valid one.
  for (int64_t t = 0; t < T; ++t)
    if (emb ? (ids[t] < 0 || ids[t] >= 5) : ids[t] < 0) ids[t] = 0;
  a.out = &want.v;
  const Status sr = kernel_table(Backend::ref)[static_cast<int>(op)].run(a);
  int bad = 0;
  if (!se.ok() || !sr.ok()) {
    printf("FAIL %s bad-index check: emulated: %s; ref: %s\n", op_info(op).name, se.message().c_str(), sr.message().c_str());
    return 1;
  }
  const int64_t row = emb ? E : H * D;
  const float* g = static_cast<const float*>(y.v.data);
  const float* r = static_cast<const float*>(want.v.data);
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = emb ? bad_ids[t] : bad_pos[t];
    const bool bad_row = emb ? (id < 0 || id >= 5) : id < 0;
    for (int64_t e = 0; e < row; ++e) {
      const float x = g[t * row + e], w = r[t * row + e];
      const bool ok = bad_row ? std::isnan(x) : std::fabs(x - w) <= 1e-5f * (std::fabs(w) + 1.f);
      if (!ok && bad++ < 3)
        printf("  %s bad-index check: token %lld (index %d) [%lld]: got %g, want %s\n", op_info(op).name, (long long)t, id,
               (long long)e, x, bad_row ? "NaN" : std::to_string(w).c_str());
    }
  }
  const uint8_t* gb = static_cast<const uint8_t*>(y.v.data);
  for (int i = 1; i <= kGuardBytes; ++i)
    if (gb[-i] != kGuard || gb[y.v.nbytes() + i - 1] != kGuard) {
      printf("  %s bad-index check: guard bytes written\n", op_info(op).name);
      ++bad;
      break;
    }
  printf("%-7s bad-index check (ids/positions out of range -> NaN rows): %s\n", op_info(op).name, bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

// The KV writes' data-dependent errors (kv_cache.cu): a cache_write slot >= numBlocks * P and a kv_copy_blocks pair
// with an id outside [0, numBlocks) must touch nothing (ids far outside the cache would fault the emulation) and be
// skipped: the result equals the reference's with those slots set to -1 (skip) and those pairs made no-ops
// (0 -> 0), byte for byte, kv and kv_scale (an f8e4m3 cache), guard bytes untouched. The pairs also chain
// (0 -> 1, then 1 -> 3), which must give the in-order result. Returns the number of failures.
// rope_cache_write: the same slots (skipped), and negative positions on good slots, whose K rows must hold q = 0
// with scale NaN (a NaN row, kv_cache.cu) and whose V rows are written as usual.
int check_bad_kv(OpId op) {
  const bool rope = op == OpId::rope_cache_write;
  const bool cw = op == OpId::cache_write || rope;
  const int64_t nb = 4, hkv = 2, P = 4, D = 40, T = 8, npairs = 6;
  const std::vector<TensorSpec> outs = {{DType::f8e4m3, {nb, hkv, 2, P, D}}, {DType::f32, {nb, hkv, 2, P}}};
  std::vector<TensorSpec> ins = cw ? std::vector<TensorSpec>{{DType::f32, {T, hkv, D}}, {DType::f32, {T, hkv, D}},
                                                             {DType::i32, {T}}}
                                   : std::vector<TensorSpec>{{DType::i32, {npairs, 2}}};
  if (rope) {
    ins.push_back({DType::i32, {T}});      // positions
    ins.push_back({DType::f32, {D / 2}});  // inv_freq
  }
  std::vector<Buffer> in;
  for (const TensorSpec& s : ins) {
    in.push_back(make_buffer(s, 0));
    fill_random(in.back().v.data, s.dtype, in.back().v.numel(), false);
  }
  const int32_t bad_slots[T] = {0, 16, -1, INT32_MAX, 15, INT32_MIN, 3, 17};  // nb * P = 16
  const int32_t bad_pairs[2 * npairs] = {0, 1, 4, 2, 1, -1, INT32_MIN, 3, 1, 3, INT32_MAX, 0};
  const int32_t bad_pos[T] = {-1, 5, 9, 0, -7, 3, INT32_MIN, 2};  // tokens 0, 4 and 6: good slots, bad positions
  if (rope) {
    memcpy(in[3].v.data, bad_pos, sizeof(bad_pos));
    for (int64_t i = 0; i < D / 2; ++i) static_cast<float*>(in[4].v.data)[i] = std::pow(10000.f, -2.f * i / D);
  }
  int32_t* ids = static_cast<int32_t*>(in[cw ? 2 : 0].v.data);
  if (cw)
    memcpy(ids, bad_slots, sizeof(bad_slots));
  else
    memcpy(ids, bad_pairs, sizeof(bad_pairs));
  std::vector<Buffer> got, want;
  for (const TensorSpec& s : outs) {
    got.push_back(make_buffer(s, 0));
    want.push_back(make_buffer(s, 0));
    for (int64_t i = 0; i < got.back().v.numel(); ++i) {
      const uint32_t r = static_cast<uint32_t>(rng());
      if (s.dtype == DType::f32) {
        const float f = static_cast<float>(r % 1000) * 1e-4f;
        static_cast<float*>(got.back().v.data)[i] = f;
        static_cast<float*>(want.back().v.data)[i] = f;
      } else {
        static_cast<uint8_t*>(got.back().v.data)[i] = static_cast<uint8_t>(r);
        static_cast<uint8_t*>(want.back().v.data)[i] = static_cast<uint8_t>(r);
      }
    }
  }
  std::vector<TensorView> iv, gv, wv;
  for (auto& b : in) iv.push_back(b.v);
  for (auto& b : got) gv.push_back(b.v);
  for (auto& b : want) wv.push_back(b.v);
  OpArgs a;
  a.op = op;
  a.in = iv.data();
  a.n_in = static_cast<int32_t>(iv.size());
  a.n_out = 2;
  a.params.i[0] = 0;
  a.out = gv.data();
  const Status se = run_emulated(a);
  // The reference with every bad slot skipped / bad pair made a no-op.
  if (cw) {
    for (int64_t t = 0; t < T; ++t)
      if (ids[t] >= nb * P) ids[t] = -1;
  } else {
    for (int64_t p = 0; p < npairs; ++p)
      if (ids[2 * p] < 0 || ids[2 * p] >= nb || ids[2 * p + 1] < 0 || ids[2 * p + 1] >= nb) ids[2 * p] = ids[2 * p + 1] = 0;
  }
  if (rope)
    for (int64_t t = 0; t < T; ++t)
      if (bad_pos[t] < 0) static_cast<int32_t*>(in[3].v.data)[t] = 0;
  a.out = wv.data();
  const Status sr = kernel_table(Backend::ref)[static_cast<int>(op)].run(a);
  if (!se.ok() || !sr.ok()) {
    printf("FAIL %s bad-index check: emulated: %s; ref: %s\n", op_info(op).name, se.message().c_str(), sr.message().c_str());
    return 1;
  }
  if (rope)  // the K rows of good slots with bad positions: f8e4m3 q = 0, scale NaN
    for (int64_t t = 0; t < T; ++t) {
      if (bad_pos[t] >= 0 || ids[t] < 0) continue;
      const int64_t blk = ids[t] / P, off = ids[t] % P;
      for (int64_t h = 0; h < hkv; ++h) {
        memset(static_cast<uint8_t*>(wv[0].data) + (((blk * hkv + h) * 2 + 0) * P + off) * D, 0, D);
        static_cast<float*>(wv[1].data)[((blk * hkv + h) * 2 + 0) * P + off] = std::nanf("");
      }
    }
  int bad = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    const uint8_t* g = static_cast<const uint8_t*>(gv[k].data);
    const uint8_t* w = static_cast<const uint8_t*>(wv[k].data);
    const size_t nbytes = gv[k].nbytes();
    for (size_t i = 0; i < nbytes; ++i)
      if (g[i] != w[i] && bad++ < 3)
        printf("  %s bad-index check: output %zu byte %zu: got %02x, want %02x\n", op_info(op).name, k, i, g[i], w[i]);
    for (int i = 1; i <= kGuardBytes; ++i)
      if (g[-i] != kGuard || g[nbytes + i - 1] != kGuard) {
        printf("  %s bad-index check: guard bytes written\n", op_info(op).name);
        ++bad;
        break;
      }
  }
  printf("%-7s bad-index check (%s out of range -> skipped%s): %s\n", op_info(op).name, cw ? "slots" : "pairs",
         rope ? "; negative positions -> NaN K rows" : "",
         bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

// paged_attention_decode's data-dependent errors (paged_decode.cu): a block id outside [0, numBlocks) at a position
// the query reads, a context length beyond maxBlocks * P and a negative one must read nothing out of bounds (ids
// far outside the cache would fault the emulation) and give NaN in every head of that sequence; a bad id past the
// context is never read (a normal row); the other sequences equal the reference's (run with the bad sequences'
// lengths set to 0). Each way: one partition (1 SM) and a partition size of 4 (rounded to 16: two partitions and the
// merge), f16 cache with P = 4.
int check_bad_paged(OpId op) {
  const int64_t B = 6, H = 4, hkv = 2, P = 4, D = 40, nb = 8, mb = 8;
  const int32_t lens[B] = {29, 22, 33, -3, 6, 4};
  const bool bad_seq[B] = {false, true, true, true, false, true};
  const int32_t tables[B][mb] = {{0, 1, 2, 3, 4, 5, 6, 7},         {3, 4, 5, 6, INT32_MAX, 1, -1, -1},
                                 {5, 6, 7, 0, 1, 2, 3, 4},         {-1, -1, -1, -1, -1, -1, -1, -1},
                                 {1, 2, -5, INT32_MIN, -1, -1, -1, -1}, {INT32_MIN, 0, 0, 0, 0, 0, 0, 0}};
  const std::vector<TensorSpec> ins = {{DType::f32, {B, H, D}}, {DType::f16, {nb, hkv, 2, P, D}}, {DType::f32, {0}},
                                       {DType::i32, {B, mb}},   {DType::i32, {B}},                  {DType::f32, {0}}};
  int bad = 0;
  for (int way = 0; way < 2; ++way) {
    g_sms = 1;
    std::vector<Buffer> in;
    for (const TensorSpec& s : ins) {
      in.push_back(make_buffer(s, 0));
      fill_random(in.back().v.data, s.dtype, in.back().v.numel(), false);
    }
    memcpy(in[3].v.data, tables, sizeof(tables));
    memcpy(in[4].v.data, lens, sizeof(lens));
    const TensorSpec out = {DType::f32, {B, H, D}};
    Buffer y = make_buffer(out, 0), want = make_buffer(out, 0);
    std::vector<TensorView> iv;
    for (auto& b : in) iv.push_back(b.v);
    OpArgs a;
    a.op = op;
    a.in = iv.data();
    a.n_in = static_cast<int32_t>(iv.size());
    a.n_out = 1;
    a.params.f[0] = 1.0 / std::sqrt(static_cast<double>(D));
    a.params.i[1] = way ? 4 : 0;
    a.out = &y.v;
    const Status se = run_emulated(a);
    int32_t* l = static_cast<int32_t*>(in[4].v.data);
    for (int64_t b = 0; b < B; ++b)
      if (bad_seq[b]) l[b] = 0;
    a.out = &want.v;
    const Status sr = kernel_table(Backend::ref)[static_cast<int>(op)].run(a);
    if (!se.ok() || !sr.ok()) {
      printf("FAIL %s bad-index check: emulated: %s; ref: %s\n", op_info(op).name, se.message().c_str(), sr.message().c_str());
      return 1;
    }
    const float* g = static_cast<const float*>(y.v.data);
    const float* r = static_cast<const float*>(want.v.data);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t e = 0; e < H * D; ++e) {
        const float x = g[b * H * D + e], w = r[b * H * D + e];
        const bool ok = bad_seq[b] ? std::isnan(x) : std::fabs(x - w) <= 1e-4f * (std::fabs(w) + 1.f);
        if (!ok && bad++ < 3)
          printf("  %s bad-index check (%s): sequence %lld [%lld]: got %g, want %s\n", op_info(op).name,
                 way ? "partitions of 4" : "one partition", (long long)b, (long long)e, x,
                 bad_seq[b] ? "NaN" : std::to_string(w).c_str());
      }
    const uint8_t* gb = static_cast<const uint8_t*>(y.v.data);
    for (int i = 1; i <= kGuardBytes; ++i)
      if (gb[-i] != kGuard || gb[y.v.nbytes() + i - 1] != kGuard) {
        printf("  %s bad-index check: guard bytes written\n", op_info(op).name);
        ++bad;
        break;
      }
  }
  printf("%-7s bad-index check (bad block ids / lengths -> NaN rows of the sequence): %s\n", op_info(op).name,
         bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

// ---- --mma: the wrappers of mma.cuh, then matmul_q_mma_cuda ----

// One warp: fragments of A (16 x K), B (K x 8, given as Bt[n][k]) and C (16 x 8) built from plain row-major
// matrices by the PTX ISA's layout formulas (mma.cuh's header), one mma, D written back by the C layout.
// kind 0: f16, 1: bf16 (K = 16, 16-bit elements); 2: s8 (K = 32).
void mma_selftest_warp(const void* A, const void* Bt, const float* C, const int32_t* Ci, float* D, int32_t* Di, int kind) {
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  if (kind < 2) {
    const uint16_t* a16 = static_cast<const uint16_t*>(A);
    const uint16_t* b16 = static_cast<const uint16_t*>(Bt);
    for (int i = 0; i < 8; ++i) {
      const int row = g + 8 * ((i / 2) & 1), col = 2 * t + (i & 1) + 8 * (i >= 4);
      a[i / 2] |= static_cast<uint32_t>(a16[row * 16 + col]) << (16 * (i & 1));
    }
    for (int i = 0; i < 4; ++i) {
      const int k = 2 * t + (i & 1) + 8 * (i >= 2);
      b[i / 2] |= static_cast<uint32_t>(b16[g * 16 + k]) << (16 * (i & 1));
    }
  } else {
    const uint8_t* a8 = static_cast<const uint8_t*>(A);
    const uint8_t* b8 = static_cast<const uint8_t*>(Bt);
    for (int i = 0; i < 16; ++i) {
      const int row = g + 8 * ((i / 4) & 1), col = 4 * t + (i & 3) + 16 * (i >= 8);
      a[i / 4] |= static_cast<uint32_t>(a8[row * 32 + col]) << (8 * (i % 4));
    }
    for (int i = 0; i < 8; ++i) {
      const int k = 4 * t + (i & 3) + 16 * (i >= 4);
      b[i / 4] |= static_cast<uint32_t>(b8[g * 32 + k]) << (8 * (i % 4));
    }
  }
  float d[4];
  int32_t di[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >= 2), col = 2 * t + (i & 1);
    d[i] = C[row * 8 + col];
    di[i] = Ci[row * 8 + col];
  }
  if (kind == 0) lk::mma::mma_f16(d, a, b);
  if (kind == 1) lk::mma::mma_bf16(d, a, b);
  if (kind == 2) lk::mma::mma_s8(di, a, b);
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >= 2), col = 2 * t + (i & 1);
    D[row * 8 + col] = d[i];
    Di[row * 8 + col] = di[i];
  }
}

std::atomic<int> g_ld_bad{0};

// ldmatrix x4 / x2, plain and .trans, on a 32 x 8 matrix of b16 (row r at src + 16 r): lane l gives the address of
// row l (x4; x2 uses lanes 0..15, the others give row l % 16). cp.async: a partial copy zero-fills the rest.
void ldmatrix_selftest_warp(const uint16_t* src) {
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  uint32_t r4[4], r2[2], r4t[4], r2t[2];
  lk::mma::ldmatrix_x4(r4, src + 8 * lane);
  lk::mma::ldmatrix_x2(r2, src + 8 * (lane % 16));
  lk::mma::ldmatrix_x4_trans(r4t, src + 8 * lane);
  lk::mma::ldmatrix_x2_trans(r2t, src + 8 * (lane % 16));
  auto el = [&](int row, int col) { return static_cast<uint32_t>(src[row * 8 + col]); };
  for (int j = 0; j < 4; ++j) {
    const uint32_t plain = el(8 * j + g, 2 * t) | el(8 * j + g, 2 * t + 1) << 16;
    const uint32_t trans = el(8 * j + 2 * t, g) | el(8 * j + 2 * t + 1, g) << 16;
    if (r4[j] != plain || r4t[j] != trans) ++g_ld_bad;
    if (j < 2 && (r2[j] != plain || r2t[j] != trans)) ++g_ld_bad;
  }
  alignas(16) uint8_t dst[16];
  memset(dst, 0xff, 16);
  lk::mma::cp_async<16>(dst, src, 5);
  lk::mma::cp_async_commit();
  lk::mma::cp_async_wait<0>();
  for (int i = 0; i < 16; ++i)
    if (dst[i] != (i < 5 ? reinterpret_cast<const uint8_t*>(src)[i] : 0)) ++g_ld_bad;
}

int check_mma_wrappers() {
  int bad = 0;
  std::uniform_real_distribution<float> uni(-4.f, 4.f);
  for (int kind = 0; kind < 3; ++kind)
    for (int rep = 0; rep < 20; ++rep) {
      const int K = kind == 2 ? 32 : 16;
      std::vector<uint16_t> A16(16 * 16), B16(8 * 16);
      std::vector<int8_t> A8(16 * 32), B8(8 * 32);
      std::vector<float> Af(16 * K), Bf(8 * K), C(16 * 8), D(16 * 8);
      std::vector<int32_t> Ci(16 * 8), Di(16 * 8);
      for (int i = 0; i < 16 * K; ++i) {
        if (kind == 2) {
          A8[i] = static_cast<int8_t>(rng());
          Af[i] = A8[i];
        } else {
          A16[i] = kind == 0 ? f32_to_f16(uni(rng)) : f32_to_bf16(uni(rng));
          Af[i] = kind == 0 ? f16_to_f32(A16[i]) : bf16_to_f32(A16[i]);
        }
      }
      for (int i = 0; i < 8 * K; ++i) {
        if (kind == 2) {
          B8[i] = static_cast<int8_t>(rng());
          Bf[i] = B8[i];
        } else {
          B16[i] = kind == 0 ? f32_to_f16(uni(rng)) : f32_to_bf16(uni(rng));
          Bf[i] = kind == 0 ? f16_to_f32(B16[i]) : bf16_to_f32(B16[i]);
        }
      }
      for (int i = 0; i < 16 * 8; ++i) {
        C[i] = uni(rng);
        Ci[i] = static_cast<int32_t>(rng() % 2000001) - 1000000;
      }
      const void* A = kind == 2 ? static_cast<const void*>(A8.data()) : A16.data();
      const void* B = kind == 2 ? static_cast<const void*>(B8.data()) : B16.data();
      ::emu::launch(dim3(1), dim3(32)).run(mma_selftest_warp, A, B, static_cast<const float*>(C.data()),
                                           static_cast<const int32_t*>(Ci.data()), D.data(), Di.data(), kind);
      for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 8; ++n) {
          double want = kind == 2 ? Ci[m * 8 + n] : C[m * 8 + n], mag = std::fabs(want);
          for (int k = 0; k < K; ++k) {
            want += static_cast<double>(Af[m * K + k]) * Bf[n * K + k];
            mag += std::fabs(static_cast<double>(Af[m * K + k]) * Bf[n * K + k]);
          }
          const double got = kind == 2 ? Di[m * 8 + n] : D[m * 8 + n];
          // Products are exact in f32; only the f32 sum order differs: 17 roundings of at most 2^-24 * mag each.
          const bool ok = kind == 2 ? got == want : std::fabs(got - want) <= 17 * 0x1p-24 * mag;
          if (!ok && bad++ < 5)
            printf("  mma %s rep %d [%d][%d]: got %.9g, want %.9g\n", kind == 0 ? "f16" : kind == 1 ? "bf16" : "s8", rep,
                   m, n, got, want);
        }
    }
  alignas(16) uint16_t mat[32 * 8];
  for (auto& v : mat) v = static_cast<uint16_t>(rng());
  ::emu::launch(dim3(1), dim3(32)).run(ldmatrix_selftest_warp, static_cast<const uint16_t*>(mat));
  bad += g_ld_bad.load();
  printf("mma wrappers (m16n8k16 f16/bf16, m16n8k32 s8, ldmatrix x4/x2/.trans, cp.async zero-fill): %s\n",
         bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

// quantize of x into wr by the reference and into we by the emulated CUDA kernel: their two Statuses.
std::pair<Status, Status> quantize_both(Buffer& x, Buffer& wr, Buffer& we) {
  OpArgs a;
  a.op = OpId::quantize;
  a.in = &x.v;
  a.n_in = 1;
  a.n_out = 1;
  a.out = &wr.v;
  Status sr = quantize_ref(a);
  a.out = &we.v;
  return {std::move(sr), quantize_cuda(a)};
}

// quantize on fill_quantize_edges' data: every format and x dtype, panels with padding rows, K with a partial last
// block and group; the three ways of the main loop (1 SM, 132 SMs, x one element off). Bytes compared exactly.
int check_quantize_edges() {
  const DType formats[] = {DType::q8_0, DType::q4_0, DType::q4_g32, DType::q4_g64, DType::q4_g128, DType::i8_pc};
  const std::pair<int64_t, int64_t> shapes[] = {{21, 100}, {15, 300}};
  int runs = 0, bad = 0;
  for (DType f : formats)
    for (DType t : {DType::f32, DType::f16, DType::bf16})
      for (auto nk : shapes)
        for (int variant = 0; variant < 3; ++variant) {
          OpCase c;
          c.name = std::string("quantize-edges(") + dtype_name(f) + ",N=" + std::to_string(nk.first) + ",K=" +
                   std::to_string(nk.second) + ",x=" + dtype_name(t) + ")";
          g_sms = variant == 1 ? 132 : 1;
          Buffer x = make_buffer({t, {nk.first, nk.second}}, variant == 2 ? 1 : 0);
          Buffer wr = make_buffer({f, {nk.first, nk.second}}, 0), we = make_buffer({f, {nk.first, nk.second}}, 0);
          fill_quantize_edges({x.v}, 1000u * static_cast<uint64_t>(runs) + 17);
          const auto [sr, se] = quantize_both(x, wr, we);
          ++runs;
          if (!sr.ok() || !se.ok()) {
            printf("FAIL %s v%d: ref: %s; emulated: %s\n", c.name.c_str(), variant, sr.message().c_str(), se.message().c_str());
            ++bad;
            continue;
          }
          if (compare(c, variant, OpId::quantize, wr.v, we.v)) {
            printf("FAIL %s v%d\n", c.name.c_str(), variant);
            ++bad;
          }
        }
  printf("%-7s edge-data check (rounding ties, |x| ties, zero and tiny blocks): %d runs, %d failures\n", "quantize",
         runs, bad);
  return bad;
}

// quantize's data-dependent errors: NaN, +-Inf and values whose block or group scale overflows f16 (1e7: q8_0's
// limit is about 8.3e6, q4_0's 5.2e5, q4_gG's range 9.8e5; i8_pc has none, and in f16 x 1e7 is already Inf),
// planted at chosen (row, column) positions of random data in several rows. The emulated call's Status, code and
// message, must equal the reference's: the lowest row with a bad value wins, and inside it a NaN/Inf anywhere wins
// over a too-large block before it, then the first column (block). When both succeed, the bytes must match too.
int check_quantize_errors() {
  struct Plant { int64_t n, k; float v; };
  const float nan = std::nanf(""), inf = INFINITY, big = 1e7f;
  const std::vector<std::vector<Plant>> scenarios = {
      {{12, 40, nan}, {9, 99, -inf}, {9, 10, big}},  // row 9: the -Inf at column 99, not the earlier big block
      {{3, 50, big}, {7, 2, nan}},                   // row 3: too large (i8_pc: row 7's NaN)
      {{17, 0, inf}},                                // in the last, partial panel
      {{5, 70, big}, {5, 20, -big}},                 // two too-large blocks of one row: the first (i8_pc: fine)
      {{0, 99, nan}, {18, 3, nan}},                  // row 0, its last column
      {{2, 64, nan}, {2, 31, inf}, {11, 0, big}},    // the first bad column of the row
  };
  const DType formats[] = {DType::q8_0, DType::q4_0, DType::q4_g32, DType::q4_g64, DType::q4_g128, DType::i8_pc};
  const int64_t N = 19, K = 100;
  int runs = 0, bad = 0, errors = 0;
  for (DType f : formats)
    for (DType t : {DType::f32, DType::f16, DType::bf16})
      for (size_t si = 0; si < scenarios.size(); ++si) {
        g_sms = si % 2 ? 132 : 1;
        Buffer x = make_buffer({t, {N, K}}, 0), wr = make_buffer({f, {N, K}}, 0), we = make_buffer({f, {N, K}}, 0);
        fill_random(x.v.data, t, N * K, false);
        for (const Plant& pl : scenarios[si]) {
          const int64_t i = pl.n * K + pl.k;
          if (t == DType::f32) static_cast<float*>(x.v.data)[i] = pl.v;
          else if (t == DType::f16) static_cast<uint16_t*>(x.v.data)[i] = f32_to_f16(pl.v);
          else static_cast<uint16_t*>(x.v.data)[i] = f32_to_bf16(pl.v);
        }
        const auto [sr, se] = quantize_both(x, wr, we);
        ++runs;
        errors += !sr.ok();
        const std::string name = std::string("quantize-errors(") + dtype_name(f) + ",x=" + dtype_name(t) +
                                 ",scenario " + std::to_string(si) + ")";
        if (sr.code() != se.code() || sr.message() != se.message()) {
          printf("FAIL %s: ref: [%d] %s; emulated: [%d] %s\n", name.c_str(), static_cast<int>(sr.code()),
                 sr.message().c_str(), static_cast<int>(se.code()), se.message().c_str());
          ++bad;
          continue;
        }
        if (sr.ok()) {
          OpCase c;
          c.name = name;
          if (compare(c, 0, OpId::quantize, wr.v, we.v)) {
            printf("FAIL %s: bytes differ\n", name.c_str());
            ++bad;
          }
        }
      }
  printf("%-7s error check (NaN / Inf / too-large values planted in several rows; Status and message): %d runs "
         "(%d errors expected by the reference), %d failures\n", "quantize", runs, errors, bad);
  return bad;
}

// matmul_q's arguments over iv = {x, w}; the caller sets params and out.
OpArgs matmul_q_args(TensorView* iv) {
  OpArgs a;
  a.op = OpId::matmul_q;
  a.in = iv;
  a.n_in = 2;
  a.n_out = 1;
  return a;
}

// matmul_q_mma_cuda on the matmul_q cases with M > 8 and extra shapes (several N tiles and warps, K % 8 != 0, M
// past a 64-row tile), two ways: aligned buffers and x / y one element off (x by plain loads on path 1). Weights are
// random normal floats through the reference quantizer (valid scales). The second way also claims 132 SMs, so that
// small-M calls split K (split-K). Returns the number of failures.
int check_mma_matmul_q(bool quick, const char* filter) {
  std::vector<OpCase> cs;
  for (const OpCase& c : op_cases(OpId::matmul_q))
    if (c.in[0].shape[0] > 8) cs.push_back(c);
  const DType formats[] = {DType::q8_0, DType::q4_0, DType::q4_g32, DType::q4_g64, DType::q4_g128, DType::i8_pc};
  struct S { int64_t M, N, K; DType t; };
  const S extra[] = {{20, 200, 160, DType::f16}, {70, 136, 100, DType::bf16}, {12, 130, 200, DType::bf16},
                     {65, 72, 264, DType::f16}, {9, 300, 33, DType::f32}};
  for (DType f : formats)
    for (const S& e : extra)
      for (int path : {0, 1}) {
        OpCase c;
        c.name = std::string("matmul_q-mma(") + dtype_name(f) + ",M=" + std::to_string(e.M) + ",N=" +
                 std::to_string(e.N) + ",K=" + std::to_string(e.K) + "," + dtype_name(e.t) + (path ? ",dequant" : ",int8") + ")";
        c.in = {{e.t, {e.M, e.K}}, {f, {e.N, e.K}}};
        c.out = {{e.t, {e.M, e.N}}};
        c.params.i[0] = path;
        cs.push_back(c);
      }
  int failures = 0, runs = 0, declined = 0;
  for (const OpCase& c : cs) {
    const int64_t K = c.in[0].shape[1];
    if (quick && K > 1000) continue;
    if (filter && c.name.find(filter) == std::string::npos) continue;
    for (int variant = 0; variant < 2; ++variant) {
      if (variant == 1 && K > 1000) continue;  // the long-K cases once
      g_sms = variant == 1 ? 132 : 1;  // 132 "SMs": small-M calls split K as far as they can
      Buffer x = make_buffer(c.in[0], variant), w = make_buffer(c.in[1], 0);
      Buffer yr = make_buffer(c.out[0], variant), ye = make_buffer(c.out[0], variant);
      fill_random(x.v.data, c.in[0].dtype, x.v.numel(), false);
      {
        std::vector<float> src(static_cast<size_t>(c.in[1].shape[0] * K));
        std::normal_distribution<float> normal(0.f, 1.f);
        for (auto& v : src) v = normal(rng);
        TensorView sv;
        sv.dtype = DType::f32;
        sv.ndim = 2;
        sv.shape[0] = c.in[1].shape[0];
        sv.shape[1] = K;
        set_contiguous_strides(sv);
        sv.data = src.data();
        const Status sq = quantize_panels(sv, w.v, 0, qceil(c.in[1].shape[0], kQPanel));
        if (!sq.ok()) {
          printf("FAIL %s: quantize_panels: %s\n", c.name.c_str(), sq.message().c_str());
          ++failures;
          continue;
        }
      }
      TensorView iv[2] = {x.v, w.v};
      OpArgs a = matmul_q_args(iv);
      a.params = c.params;
      a.out = &yr.v;
      const Status sr = matmul_q_ref(a);
      a.out = &ye.v;
      Status se = Status::OK();
      const bool taken = matmul_q_mma_cuda(a, 0, &se);
      const bool expect = !(c.params.i[0] == 1 && c.in[0].dtype == DType::f32);
      if (taken != expect) {
        printf("FAIL %s v%d: matmul_q_mma_cuda %s the call\n", c.name.c_str(), variant, taken ? "took" : "declined");
        ++failures;
        continue;
      }
      if (!taken) {
        ++declined;
        continue;
      }
      ++runs;
      if (!sr.ok() || !se.ok()) {
        printf("FAIL %s v%d: ref: %s; emulated: %s\n", c.name.c_str(), variant, sr.message().c_str(), se.message().c_str());
        ++failures;
        continue;
      }
      const int bad = compare(c, variant, OpId::matmul_q, yr.v, ye.v);
      if (bad) {
        ++failures;
        printf("FAIL %s v%d (%d bad)\n", c.name.c_str(), variant, bad);
      }
    }
  }
  printf("matmul_q tensor-core path: %d runs, %d declined as expected (f32 x on path 1), %d failures\n", runs, declined,
         failures);
  return failures;
}

// ---- --mma: the wgmma wrappers of wgmma.cuh, then matmul_q_wgmma_cuda ----

// One warpgroup test of mma_s8<N>: A [64 x 64] and B [N x 64] (int8, K-major) are written into shared memory in
// the unswizzled canonical layout with the given LBO / SBO (wgmma.cuh's header: byte (r, kk) at (r / 8) * SBO +
// (kk / 16) * LBO + (r % 8) * 16 + kk % 16; every other byte holds 0x5a, so a wrong address reads garbage), and
// multiplied as two chained k32 mma_asyncs in one group: D = C + A[:, 0:32] B[:, 0:32]^T + A[:, 32:64] B[:, 32:64]^T
// (accumulate) or without C (the first with scale-d = 0). C and D go through the ISA's accumulator layout, which
// the caller checks to be a bijection onto the 64 x N tile. mode 1: shared memory is overwritten between the
// commit and the wait (the emulation must report it); mode 2: no wgmma.fence before the mma_async (likewise).
struct WgTest {
  const int8_t* A;   // [64][64]
  const int8_t* B;   // [N][64]
  const int32_t* C;  // [64][N]
  int32_t* D;        // [64][N]
  uint32_t lbo, sbo;
  bool accumulate;
  int mode;
};
constexpr int kWgTestSmem = 96 * 1024;

template <int N>
void wgmma_selftest_block(WgTest tc) {
  LK_WGMMA_SHARED(sm, kWgTestSmem);
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32 % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
  // Operand h (k32 half) of A at h * 8192, of B at 16384 + h * 32768 (the spans, (rows / 8 - 1) * SBO + LBO + 128,
  // are at most 7424 and 32000 bytes for the layouts tested).
  auto place = [&](uint8_t* base, const int8_t* src, int rows, int h) {
    for (int r = 0; r < rows; ++r)
      for (int kk = 0; kk < 32; ++kk)
        base[(r / 8) * tc.sbo + (kk / 16) * tc.lbo + (r % 8) * 16 + kk % 16] = static_cast<uint8_t>(src[r * 64 + 32 * h + kk]);
  };
  if (tid == 0) {
    memset(sm, 0x5a, kWgTestSmem);
    for (int h = 0; h < 2; ++h) {
      place(sm + h * 8192, tc.A, 64, h);
      place(sm + 16384 + h * 32768, tc.B, N, h);
    }
  }
  wgmma::fence_proxy_async();
  __syncthreads();
  int32_t d[N / 2];
  for (int i = 0; i < N / 2; ++i) {
    const int row = 16 * warp + g + 8 * ((i / 2) % 2), col = 8 * (i / 4) + 2 * t + (i % 2);
    d[i] = tc.C[row * N + col];
  }
  if (tc.mode != 2) wgmma::fence();
  for (int h = 0; h < 2; ++h)
    wgmma::mma_s8<N>(d, wgmma::smem_desc(sm + h * 8192, tc.lbo, tc.sbo),
                     wgmma::smem_desc(sm + 16384 + h * 32768, tc.lbo, tc.sbo), h == 1 || tc.accumulate);
  wgmma::commit_group();
  if (tc.mode == 1 && tid == 0) sm[16384] ^= 1;  // B(0, 0) changes while the group is pending
  wgmma::wait_group<0>();
  for (int i = 0; i < N / 2; ++i) {
    const int row = 16 * warp + g + 8 * ((i / 2) % 2), col = 8 * (i / 4) + 2 * t + (i % 2);
    tc.D[row * N + col] = d[i];
  }
}

int check_wgmma_wrappers() {
  int bad = 0, runs = 0;
  // The accumulator layout is a bijection: every (row, col) of 64 x 256 exactly once over threads x registers.
  {
    std::vector<int> seen(64 * 256, 0);
    for (int tid = 0; tid < 128; ++tid)
      for (int i = 0; i < 128; ++i) {
        const int warp = tid / 32, g = tid % 32 / 4, t = tid % 4;
        ++seen[(16 * warp + g + 8 * ((i / 2) % 2)) * 256 + 8 * (i / 4) + 2 * t + (i % 2)];
      }
    for (int v : seen) bad += v != 1;
  }
  struct L { uint32_t lbo, sbo; };
  // k groups adjacent, row groups adjacent (LBO past B's 32 row groups), padded, the kernel's.
  const L layouts[] = {{128, 256}, {4096, 128}, {176, 400}, {128, 1024}};
  for (int n : {128, 256})
    for (const L& l : layouts)
      for (int acc = 0; acc < 2; ++acc)
        for (int mode = 0; mode < 3; ++mode) {
          if (mode && (acc == 0 || l.lbo != 128 || l.sbo != 256)) continue;  // the negative tests once per N
          std::vector<int8_t> A(64 * 64), B(static_cast<size_t>(n) * 64);
          std::vector<int32_t> C(64 * static_cast<size_t>(n)), D(C.size(), 0);
          for (auto& v : A) v = static_cast<int8_t>(rng());
          for (auto& v : B) v = static_cast<int8_t>(rng());
          for (auto& v : C) v = static_cast<int32_t>(rng() % 2000001) - 1000000;
          WgTest tc{A.data(), B.data(), C.data(), D.data(), l.lbo, l.sbo, acc == 1, mode};
          const long long before = wgmma::emu_detail::errors;
          wgmma::emu_detail::quiet = mode != 0;  // the negative tests' expected reports are not printed
          if (n == 128)
            ::emu::launch(dim3(1), dim3(128)).run(wgmma_selftest_block<128>, tc);
          else
            ::emu::launch(dim3(1), dim3(128)).run(wgmma_selftest_block<256>, tc);
          wgmma::emu_detail::quiet = false;
          ++runs;
          const long long reported = wgmma::emu_detail::errors - before;
          if (mode) {  // the emulation must have complained (then its complaints are not failures)
            wgmma::emu_detail::errors = before;
            if (!reported) {
              printf("  wgmma n%d: the emulation did not report %s\n", n,
                     mode == 1 ? "shared memory overwritten while pending" : "a missing wgmma.fence");
              ++bad;
            }
            continue;
          }
          int wrong = 0;
          for (int m = 0; m < 64; ++m)
            for (int c = 0; c < n; ++c) {
              int64_t want = acc ? C[m * n + c] : 0;
              for (int k = 0; k < 64; ++k) want += static_cast<int32_t>(A[m * 64 + k]) * B[c * 64 + k];
              if (D[m * n + c] != want && wrong++ < 3)
                printf("  wgmma n%d lbo %u sbo %u acc %d [%d][%d]: got %d, want %lld\n", n, l.lbo, l.sbo, acc, m, c,
                       D[m * n + c], static_cast<long long>(want));
            }
          bad += wrong + static_cast<int>(reported);
        }
  printf("wgmma wrappers (m64n128k32 / m64n256k32 s8, 4 descriptor layouts, chained, scale-d 0 and 1; reports of "
         "an overwrite while pending and of a missing fence): %d runs, %s\n", runs, bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

// matmul_q_wgmma_cuda, force-enabled, on the int8 i8_pc cases of matmul_q with M >= 64 and extra shapes (both
// tile widths, ragged M, N and K, several tiles and raster groups), aligned and with x / y one element off; the
// output must equal matmul_q_ref's bit for bit (and the guards stay untouched). Also: what it must decline.
int check_wgmma_matmul_q(bool quick, const char* filter) {
  std::vector<OpCase> cs;
  for (const OpCase& c : op_cases(OpId::matmul_q))
    if (c.in[0].shape[0] >= 64 && c.in[1].dtype == DType::i8_pc && c.params.i[0] == 0) cs.push_back(c);
  struct S { int64_t M, N, K; DType t; };
  const S extra[] = {{64, 128, 32, DType::bf16}, {130, 136, 264, DType::f32}, {200, 520, 1000, DType::f16},
                     {256, 257, 520, DType::bf16}, {1100, 24, 96, DType::f16}, {65, 300, 4000, DType::bf16}};
  for (const S& e : extra) {
    OpCase c;
    c.name = "matmul_q-wgmma(i8_pc,M=" + std::to_string(e.M) + ",N=" + std::to_string(e.N) + ",K=" +
             std::to_string(e.K) + "," + dtype_name(e.t) + ",int8)";
    c.in = {{e.t, {e.M, e.K}}, {DType::i8_pc, {e.N, e.K}}};
    c.out = {{e.t, {e.M, e.N}}};
    c.params.i[0] = 0;
    cs.push_back(c);
  }
  int failures = 0, runs = 0;
  for (const OpCase& c : cs) {
    const int64_t K = c.in[0].shape[1];
    if (quick && K > 1000) continue;
    if (filter && c.name.find(filter) == std::string::npos) continue;
    for (int variant = 0; variant < 2; ++variant) {
      if (variant == 1 && K > 1000) continue;
      Buffer x = make_buffer(c.in[0], variant), w = make_buffer(c.in[1], 0);
      Buffer yr = make_buffer(c.out[0], variant), ye = make_buffer(c.out[0], variant);
      fill_random(x.v.data, c.in[0].dtype, x.v.numel(), false);
      fill_quant(w.v.data, DType::i8_pc, c.in[1].shape[0], K);
      TensorView iv[2] = {x.v, w.v};
      OpArgs a = matmul_q_args(iv);
      a.params = c.params;
      a.out = &yr.v;
      const Status sr = matmul_q_ref(a);
      a.out = &ye.v;
      Status se = Status::OK();
      const long long before = wgmma::emu_detail::errors;
      const bool taken = matmul_q_wgmma_cuda(a, 0, &se, true);
      ++runs;
      if (!taken || !sr.ok() || !se.ok()) {
        printf("FAIL %s v%d: %s; ref: %s; emulated: %s\n", c.name.c_str(), variant, taken ? "taken" : "declined",
               sr.message().c_str(), se.message().c_str());
        ++failures;
        continue;
      }
      const size_t es = dtype_size(c.out[0].dtype);
      const uint8_t* r = static_cast<const uint8_t*>(yr.v.data);
      const uint8_t* e = static_cast<const uint8_t*>(ye.v.data);
      int bad = 0;
      for (int64_t i = 0; i < yr.v.numel(); ++i)
        if (memcmp(r + i * es, e + i * es, es) != 0 && !(is_nan(r + i * es, c.out[0].dtype) && is_nan(e + i * es, c.out[0].dtype)))
          if (bad++ < 3) {
            float fr = 0, fe = 0;
            memcpy(&fr, r + i * es, es == 4 ? 4 : 0);
            memcpy(&fe, e + i * es, es == 4 ? 4 : 0);
            printf("  %s v%d [%lld]: bytes differ (f32: got %.9g, want %.9g)\n", c.name.c_str(), variant,
                   static_cast<long long>(i), fe, fr);
          }
      for (int i = 1; i <= kGuardBytes; ++i)
        if (e[-i] != kGuard || e[ye.v.nbytes() + i - 1] != kGuard) {
          printf("  %s v%d: guard bytes written\n", c.name.c_str(), variant);
          ++bad;
          break;
        }
      bad += static_cast<int>(wgmma::emu_detail::errors - before);  // the emulation's own reports
      if (bad) {
        ++failures;
        printf("FAIL %s v%d (%d bad)\n", c.name.c_str(), variant, bad);
      }
    }
  }
  // Declines: M < 64, a block format, the dequantize path, and (not forced) LLMK_WGMMA unset / no Hopper here.
  {
    int declines_wrong = 0;
    struct D { int64_t M; DType f; int path; bool force; };
    const D ds[] = {{63, DType::i8_pc, 0, true}, {128, DType::q8_0, 0, true}, {128, DType::i8_pc, 1, true},
                    {128, DType::i8_pc, 0, false}};
    for (const D& d : ds) {
      OpCase c;
      c.in = {{DType::f16, {d.M, 64}}, {d.f, {16, 64}}};
      c.out = {{DType::f16, {d.M, 16}}};
      Buffer x = make_buffer(c.in[0], 0), w = make_buffer(c.in[1], 0), y = make_buffer(c.out[0], 0);
      TensorView iv[2] = {x.v, w.v};
      OpArgs a = matmul_q_args(iv);
      a.params.i[0] = d.path;
      a.out = &y.v;
      Status se = Status::OK();
      if (matmul_q_wgmma_cuda(a, 0, &se, d.force)) {
        printf("FAIL matmul_q_wgmma_cuda took M=%lld %s path %d force %d\n", static_cast<long long>(d.M),
               dtype_name(d.f), d.path, d.force ? 1 : 0);
        ++declines_wrong;
      }
    }
    failures += declines_wrong;
  }
  printf("matmul_q wgmma path (forced): %d runs (bit for bit), 4 decline checks, %d failures, %lld mma_async emulated\n",
         runs, failures, wgmma::emu_detail::issued);
  return failures;
}

// ---- --matmul-q-exact: matmul_q's integer path (params.i[0] = 0) bit for bit ----
//
// The spec (matmul_q_ref.cc, quant.h) makes the integer part exact: qx = quantize_act_block(x) per block of 32 (per
// row for i8_pc), and the dot of a block (row) sum qx * (q - z) is an exact integer in every backend. What follows is
// floating point: block formats add dx[m, b] * s(n, b) * dot_b over the blocks (double in the reference, f32 in a
// lane / warp / tile order of the kernels' own), i8_pc computes float(double(dx[m]) * double(s[n]) * double(dot)).
// So the check is exact by construction:
//  * i8_pc: for any x and any f32 scale the output is the reference's expression of the exact int64 row sum; the
//    emulated y must equal the reference's byte for byte on random data (kind "any").
//  * block formats (q8_0, q4_0, q4_g32/64/128): x is built per block as integers times 2^e with a +-127 in the block,
//    so that the quantizer returns those integers and dx = 2^e exactly (127 / amax and amax / 127 are powers of two);
//    the weights' f16 scales are 1 (kind "unit": x and q over their whole ranges) or 2^f (kind "pow2": e, f in
//    -1..1, integers in about +-31 so that the wrong block's or group's scale changes y). Every term dx * s * dot,
//    and every partial sum of terms any kernel can form (a lane's share of a block's dot included), is then an
//    integer multiple of 2^(lo + tz) (lo: the smallest exponent of dx * s in that output; tz: the largest power of
//    two dividing every product qx * w) below 2^(24 + lo + tz) in magnitude, so f32 and double hold all of them
//    exactly and the summation order cannot matter. That bound is verified for every output before the run (a case
//    that misses it is reported as a setup failure, not compared).
// Each case compares three values bit for bit: the exact value computed here from the integers (int64 sums, then
// one rounding to y's dtype), matmul_q_ref's y (the spec's own code must agree with it), and the emulated kernels' y
// (guard bytes untouched; NaN equals NaN). Routes: M <= 8 the op's entry (matmul_q_cuda: the GEMV, after
// matmul_q_mma_cuda declined, which is checked), M > 8 matmul_q_mma_cuda (must take it), and for i8_pc with M >= 64
// also matmul_q_wgmma_cuda forced (as --mma does; the emulation has no sm_90a device to enable it). Two ways each: x
// and y aligned with 1 "SM", and x and y one element off with 132 SMs (the GEMV's grid over chunks of rows).
// Data: odd M (1, 3, 7, 8 on the GEMV: its chunks of 1, 4 and 8 rows with clamped rows; 9, 33, 65, 130 on the
// tensor cores: partial 64-row tiles), N of 1, 7, 33 (partial 8-row panels), K from 1 to 1000 with partial blocks and
// groups (no format needs K to be a multiple of anything); with "unit" x row 1 holds an all-zero block (dx = 0;
// M >= 3) and the last row a NaN (that row's y is NaN; M >= 2); zero points 0..16 (the quantizer writes at most 15,
// so the case-matrix check never sees 16, which GPTQ v1 imports give; it also leaves a nonzero padding nibble past K
// in a partial group, which only qx's zeros there cancel).
// The integer extremes (x all -127 or all +127: the quantizer never gives -128, so 127 is the largest |qx|; weights
// at their most negative value, q8_0 / i8_pc -128, q4_0 -8, q4_gG q = 0 with z = 16: -16), whose sums sit at the
// int32 limits the kernels' headers argue about:
//  * every format, K = 131072: one row's dot is 127 * 128 * 131072 = 2^31 - 2^24 for i8_pc (every block's at
//    32 * 127 * 128 for q8_0); GEMV (M = 1, sum > 0) and tensor cores (M = 9, sum < 0);
//  * i8_pc on the tensor cores, K = 262244: runs of 4096 blocks flushed into int64 (a run holds 2^31 - 2^24), a row
//    sum of 4.26e9;
//  * i8_pc on wgmma (forced), M = 64, K = 131072: its int32 accumulator at 2^31 - 2^24; and K = 131104 must decline;
//  * i8_pc on the GEMV, K = 17000017: each lane's int32 gains up to 4 * 4 * 127 * 128 per outer step and overflows
//    after 8257 steps; this K gives 8301 steps, so only the flush into double every 8192 steps keeps it exact.
// Returns the number of failures. `filter`: only the cases whose name contains it.
namespace qexact {

// A matmul_q problem in integers: x as floats (exact in xt), the weight's raw integers q [N, K] (q8_0 / i8_pc: int8;
// q4: 0..15), zero points z [N, ng] (q4_gG) and scales sc [N, ng] (ng: blocks for q8_0 / q4_0, groups for q4_gG,
// 1 for i8_pc).
struct Problem {
  std::string name;
  DType f = DType::q8_0, xt = DType::f32;
  int64_t M = 0, N = 0, K = 0;
  std::vector<float> x;
  std::vector<int32_t> q, z;
  std::vector<float> sc;
};

int64_t scales_per_row(DType f, int64_t K) {
  return f == DType::i8_pc ? 1 : qceil(K, quant_group(f, K));
}

// The row form of quant.h (GGUF's blocks for q8_0 / q4_0; padding past K: the zero value, q4_gG min(z, 15)).
std::vector<uint8_t> row_form(const Problem& p) {
  const int64_t N = p.N, K = p.K, rb = quant_row_bytes(p.f, K), ns = scales_per_row(p.f, K);
  std::vector<uint8_t> rows(quant_row_form_bytes(p.f, N, K), 0);
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* r = rows.data() + n * rb;
    const int32_t* q = p.q.data() + n * K;
    if (p.f == DType::i8_pc) {
      for (int64_t k = 0; k < K; ++k) r[k] = static_cast<uint8_t>(q[k]);
      memcpy(rows.data() + N * rb + 4 * n, &p.sc[n], 4);
    } else if (p.f == DType::q8_0 || p.f == DType::q4_0) {
      const bool q8 = p.f == DType::q8_0;
      const int64_t bs = q8 ? 34 : 18;
      for (int64_t b = 0; b < ns; ++b) {
        uint8_t* o = r + b * bs;
        const uint16_t h = f32_to_f16(p.sc[n * ns + b]);
        memcpy(o, &h, 2);
        for (int64_t j = 0; j < 32; ++j) {
          const int64_t k = 32 * b + j;
          const int32_t v = k < K ? q[k] : (q8 ? 0 : 8);
          if (q8)
            o[2 + j] = static_cast<uint8_t>(v);
          else
            o[2 + j % 16] |= static_cast<uint8_t>(v << (j < 16 ? 0 : 4));
        }
      }
    } else {
      const int64_t G = quant_group(p.f, K), gb = 4 + G / 2;
      for (int64_t g = 0; g < ns; ++g) {
        uint8_t* o = r + g * gb;
        const uint16_t h = f32_to_f16(p.sc[n * ns + g]);
        memcpy(o, &h, 2);
        const int32_t z = p.z[n * ns + g];
        o[2] = static_cast<uint8_t>(z);
        for (int64_t j = 0; j < G; ++j) {
          const int64_t k = g * G + j;
          const int32_t v = k < K ? q[k] : std::min(z, 15);
          o[4 + j / 2] |= static_cast<uint8_t>(v << (4 * (j & 1)));
        }
      }
    }
  }
  return rows;
}

// q - z of w[n, k] as the spec reads it.
int32_t wval(const Problem& p, int64_t n, int64_t k) {
  const int32_t q = p.q[n * p.K + k];
  if (p.f == DType::q4_0) return q - 8;
  if (quant_has_zero(p.f)) return q - p.z[n * scales_per_row(p.f, p.K) + k / quant_group(p.f, p.K)];
  return q;
}
float wscale(const Problem& p, int64_t n, int64_t k) {
  if (p.f == DType::i8_pc) return p.sc[n];
  return p.sc[n * scales_per_row(p.f, p.K) + k / quant_group(p.f, p.K)];
}

// The exact y (as y's dtype bytes, into `want`) from x as stored: quantize_act_block, the exact int64 dots, then
// the spec's expressions; for block formats also the exactness bound of the header. Returns "" or what breaks it.
std::string exact_y(const Problem& p, const TensorView& x, std::vector<uint8_t>* want) {
  const int64_t M = p.M, N = p.N, K = p.K, nb = qceil(K, kQBlock), Kp = nb * kQBlock;
  const bool pc = p.f == DType::i8_pc;
  std::vector<float> xr(static_cast<size_t>(Kp));
  std::vector<int8_t> qx(static_cast<size_t>(M * Kp));
  std::vector<float> dx(static_cast<size_t>(M * nb));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < Kp; ++k) xr[k] = k < K ? load_f32(x.data, x.dtype, m * K + k) : 0.0f;
    int32_t sum;
    if (pc)
      dx[m * nb] = quantize_act_block(xr.data(), Kp, qx.data() + m * Kp, &sum);
    else
      for (int64_t b = 0; b < nb; ++b) dx[m * nb + b] = quantize_act_block(xr.data() + 32 * b, 32, qx.data() + m * Kp + 32 * b, &sum);
  }
  want->assign(static_cast<size_t>(M * N) * dtype_size(p.xt), 0);
  std::vector<int32_t> wv(static_cast<size_t>(K));
  std::vector<float> ws(static_cast<size_t>(nb));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) wv[k] = wval(p, n, k);
    for (int64_t b = 0; b < nb; ++b) ws[b] = wscale(p, n, 32 * b);
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* q = qx.data() + m * Kp;
      float y;
      if (pc) {
        int64_t dot = 0;
        for (int64_t k = 0; k < K; ++k) dot += static_cast<int64_t>(q[k]) * wv[k];
        y = static_cast<float>(static_cast<double>(dx[m * nb]) * static_cast<double>(ws[0]) * static_cast<double>(dot));
      } else {
        // Terms t_b = dx * s * dot_b with dx * s = 2^e_b (or 0), and every product qx * w a multiple of 2^tz: any
        // partial sum is a multiple of 2^(lo + tz), so all are exact in f32 when sum_b 2^(e_b - lo) * sum_k |qx * w|
        // < 2^(24 + tz). (tz > 0 only at the extremes, whose products are all 127 * 2^7, 127 * 2^3 or 127 * 2^4.)
        double sum = 0, mag = 0;
        int lo = INT_MAX, tz = 63;
        bool nan = false;
        for (int64_t b = 0; b < nb; ++b) {
          const double sf = static_cast<double>(dx[m * nb + b]) * ws[b];
          if (std::isnan(sf)) nan = true;
          if (sf == 0 || std::isnan(sf)) continue;
          int e;
          if (std::frexp(std::fabs(sf), &e) != 0.5) return "a block's dx * s is not a power of two";
          lo = std::min(lo, e - 1);
        }
        for (int64_t b = 0; b < nb && !nan; ++b) {
          const double sf = static_cast<double>(dx[m * nb + b]) * ws[b];
          int64_t dot = 0, dmag = 0;
          for (int64_t k = 32 * b; k < std::min(K, 32 * b + 32); ++k) {
            dot += static_cast<int64_t>(q[k]) * wv[k];
            const int64_t pr = std::llabs(static_cast<int64_t>(q[k]) * wv[k]);
            dmag += pr;
            if (pr && sf != 0) tz = std::min(tz, __builtin_ctzll(static_cast<unsigned long long>(pr)));
          }
          sum += sf * static_cast<double>(dot);
          if (sf != 0) mag += std::ldexp(std::fabs(sf), -lo) * static_cast<double>(dmag);
        }
        if (mag >= std::ldexp(1.0, 24 + std::min(tz, 40))) return "y[" + std::to_string(m) + ", " + std::to_string(n) + "] has partial sums beyond 2^24 ulps";
        y = nan ? std::nanf("") : static_cast<float>(sum);
      }
      store_f32(want->data(), p.xt, m * N + n, y);
    }
  }
  return "";
}

// Bytes of y against `want`, NaN equal to NaN; prints the first few differences. Returns their number.
int diff_y(const std::string& what, const Problem& p, const uint8_t* got, const uint8_t* want) {
  const size_t es = dtype_size(p.xt);
  int bad = 0;
  for (int64_t i = 0; i < p.M * p.N; ++i) {
    const uint8_t *g = got + i * es, *w = want + i * es;
    if (memcmp(g, w, es) == 0 || (is_nan(g, p.xt) && is_nan(w, p.xt))) continue;
    if (bad++ < 3)
      printf("  %s %s: y[%lld, %lld] = %.9g, want %.9g\n", p.name.c_str(), what.c_str(), (long long)(i / p.N),
             (long long)(i % p.N), load_f32(got, p.xt, i), load_f32(want, p.xt, i));
  }
  return bad;
}

struct Tally {
  int runs = 0, failures = 0, gemv = 0, mma = 0, wgmma = 0, refs = 0;
};

// Runs p: the exact value, the reference, then each route and way (`ways`: 1 aligned only, 2 also one element off).
void run(const Problem& p, int ways, Tally* t) {
  Buffer w = make_buffer({p.f, {p.N, p.K}}, 0);
  {
    const std::vector<uint8_t> rows = row_form(p);
    import_panels(p.f, p.N, p.K, rows.data(), static_cast<uint8_t*>(w.v.data), 0, qceil(p.N, kQPanel));
  }
  std::vector<uint8_t> want;
  for (int way = 0; way < ways; ++way) {
    g_sms = way ? 132 : 1;
    Buffer x = make_buffer({p.xt, {p.M, p.K}}, way);
    for (int64_t i = 0; i < p.M * p.K; ++i) store_f32(x.v.data, p.xt, i, p.x[i]);
    if (way == 0) {
      const std::string why = exact_y(p, x.v, &want);
      if (!why.empty()) {
        printf("FAIL %s: not exact by construction: %s\n", p.name.c_str(), why.c_str());
        ++t->failures;
        return;
      }
      Buffer yr = make_buffer({p.xt, {p.M, p.N}}, 0);
      TensorView iv[2] = {x.v, w.v};
      OpArgs a = matmul_q_args(iv);
      a.params.i[0] = 0;
      a.out = &yr.v;
      const Status sr = matmul_q_ref(a);
      ++t->refs;
      if (!sr.ok()) {
        printf("FAIL %s: matmul_q_ref: %s\n", p.name.c_str(), sr.message().c_str());
        ++t->failures;
      } else if (diff_y("matmul_q_ref", p, static_cast<const uint8_t*>(yr.v.data), want.data())) {
        printf("FAIL %s: matmul_q_ref is not the exact value\n", p.name.c_str());
        ++t->failures;
      }
    }
    const bool pc = p.f == DType::i8_pc;
    for (int route = 0; route < 3; ++route) {
      const char* rn = route == 0 ? "gemv" : route == 1 ? "mma" : "wgmma";
      if ((route == 0) != (p.M <= 8) || (route == 2 && !(pc && p.M >= 64 && p.K <= 131072))) continue;
      Buffer y = make_buffer({p.xt, {p.M, p.N}}, way);
      TensorView iv[2] = {x.v, w.v};
      OpArgs a = matmul_q_args(iv);
      a.params.i[0] = 0;
      a.out = &y.v;
      Status se = Status::OK();
      bool taken;
      if (route == 0) {
        taken = !matmul_q_mma_cuda(a, 0, &se);  // M <= 8: the tensor cores must decline, then the entry's GEMV runs
        if (taken) se = run_emulated(a);
      } else if (route == 1) {
        taken = matmul_q_mma_cuda(a, 0, &se);
      } else {
        taken = matmul_q_wgmma_cuda(a, 0, &se, true);
      }
      ++t->runs;
      (route == 0 ? t->gemv : route == 1 ? t->mma : t->wgmma)++;
      const std::string tag = std::string(rn) + " v" + std::to_string(way);
      if (!taken || !se.ok()) {
        printf("FAIL %s %s: %s\n", p.name.c_str(), tag.c_str(),
               !taken ? (route == 0 ? "matmul_q_mma_cuda took M <= 8" : "declined") : se.message().c_str());
        ++t->failures;
        continue;
      }
      const uint8_t* g = static_cast<const uint8_t*>(y.v.data);
      int bad = diff_y(tag, p, g, want.data());
      for (int i = 1; i <= kGuardBytes; ++i)
        if (g[-i] != kGuard || g[y.v.nbytes() + i - 1] != kGuard) {
          printf("  %s %s: guard bytes written\n", p.name.c_str(), tag.c_str());
          ++bad;
          break;
        }
      if (bad) {
        printf("FAIL %s %s (%d bad)\n", p.name.c_str(), tag.c_str(), bad);
        ++t->failures;
      }
    }
  }
}

std::string case_name(const Problem& p, const char* kind) {
  return std::string("matmul_q-exact(") + dtype_name(p.f) + ",M=" + std::to_string(p.M) + ",N=" + std::to_string(p.N) +
         ",K=" + std::to_string(p.K) + "," + dtype_name(p.xt) + "," + kind + (p.M <= 8 ? ",gemv)" : ",mma)");
}

// Random data of a kind (0 "unit", 1 "pow2"; i8_pc: 1 is "any", random floats and f32 scales).
Problem random_problem(DType f, DType xt, int64_t M, int64_t N, int64_t K, int kind) {
  Problem p;
  p.f = f;
  p.xt = xt;
  p.M = M;
  p.N = N;
  p.K = K;
  p.name = case_name(p, kind == 0 ? "unit" : f == DType::i8_pc ? "any" : "pow2");
  const bool pc = f == DType::i8_pc, q4 = quant_is_q4(f);
  const int64_t ns = scales_per_row(f, K);
  auto irange = [](int64_t lo, int64_t hi) { return static_cast<int32_t>(lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1))); };
  auto pow2 = [&](int lo, int hi) { return std::ldexp(1.0f, irange(lo, hi)); };
  p.x.assign(static_cast<size_t>(M * K), 0.0f);
  if (pc && kind == 1) {
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for (float& v : p.x) v = u(rng);
  } else {
    // An anchor of +-127 per block (per row for i8_pc) and integers of at most R around it, all times 2^e.
    const int32_t R = kind == 0 ? 127 : 31;
    const int64_t span = pc ? K : 32;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b0 = 0; b0 < K; b0 += span) {
        const int64_t len = std::min(span, K - b0);
        if (kind == 0 && M >= 3 && m == 1 && b0 == 0) continue;  // an all-zero block: dx = 0 (i8_pc: zeros)
        const float e = kind == 0 ? 1.0f : pow2(-1, 1);
        const int64_t anchor = b0 + irange(0, len - 1);
        for (int64_t k = b0; k < b0 + len; ++k)
          p.x[m * K + k] = e * static_cast<float>(k == anchor ? (rng() & 1 ? 127 : -127) : irange(-R, R));
      }
    if (kind == 0 && M >= 2) p.x[(M - 1) * K + K / 2] = std::nanf("");
  }
  p.q.resize(static_cast<size_t>(N * K));
  for (int32_t& v : p.q) {
    if (q4)
      v = irange(0, 15);
    else if (kind == 0 || pc)
      v = irange(-128, 127);
    else
      v = rng() % 32 == 0 ? (rng() & 1 ? 127 : -128) : irange(-32, 31);
  }
  p.z.assign(static_cast<size_t>(N * ns), 0);
  if (quant_has_zero(f))
    for (int32_t& v : p.z) v = irange(0, 16);
  p.sc.resize(static_cast<size_t>(N * ns));
  for (float& v : p.sc) v = kind == 0 ? 1.0f : pc ? std::uniform_real_distribution<float>(1e-3f, 1.0f)(rng) : pow2(-1, 1);
  return p;
}

// x all `xv`, every weight at the format's most negative value (scale 1).
Problem extreme_problem(DType f, int64_t M, int64_t N, int64_t K, float xv) {
  Problem p;
  p.f = f;
  p.xt = DType::f32;
  p.M = M;
  p.N = N;
  p.K = K;
  p.name = case_name(p, xv > 0 ? "extreme-" : "extreme+");
  const int64_t ns = scales_per_row(f, K);
  p.x.assign(static_cast<size_t>(M * K), xv);
  p.q.assign(static_cast<size_t>(N * K), quant_is_q4(f) ? 0 : -128);  // q4_0: 0 - 8; q4_gG: 0 - 16
  p.z.assign(static_cast<size_t>(N * ns), 16);
  p.sc.assign(static_cast<size_t>(N * ns), 1.0f);
  return p;
}

}  // namespace qexact

int check_matmul_q_exact(const char* filter) {
  using namespace qexact;
  const auto t0 = std::chrono::steady_clock::now();
  const DType formats[] = {DType::q8_0, DType::q4_0, DType::q4_g32, DType::q4_g64, DType::q4_g128, DType::i8_pc};
  struct S { int64_t M, N, K; DType t; };
  const S shapes[] = {{1, 33, 1000, DType::f32}, {1, 1, 1, DType::bf16},   {3, 7, 130, DType::f16},
                      {7, 33, 200, DType::bf16}, {8, 1, 33, DType::f32},   {7, 7, 688, DType::f32},
                      {9, 33, 200, DType::f16},  {9, 1, 33, DType::bf16},  {33, 7, 1000, DType::f32},
                      {33, 33, 100, DType::bf16}, {65, 33, 264, DType::f32}, {130, 7, 96, DType::f16}};
  Tally t;
  auto want_case = [&](const Problem& p) { return !filter || p.name.find(filter) != std::string::npos; };
  for (DType f : formats)
    for (const S& s : shapes)
      for (int kind = 0; kind < 2; ++kind) {
        // Drawn whether filtered or not, so that a filtered run sees the same data as the whole one.
        const Problem p = random_problem(f, s.t, s.M, s.N, s.K, kind);
        if (want_case(p)) run(p, 2, &t);
      }
  const int random_runs = t.runs;
  std::vector<Problem> ex;
  for (DType f : formats) {
    ex.push_back(extreme_problem(f, 1, 1, 131072, -127.f));
    ex.push_back(extreme_problem(f, 9, 7, 131072, 127.f));
  }
  ex.push_back(extreme_problem(DType::i8_pc, 9, 1, 262244, -127.f));
  ex.push_back(extreme_problem(DType::i8_pc, 64, 7, 131072, -127.f));
  ex.push_back(extreme_problem(DType::i8_pc, 1, 1, 17000017, -127.f));
  for (const Problem& p : ex)
    if (want_case(p)) run(p, 1, &t);
  // wgmma must decline a K whose int32 row sum could wrap (K > 131072), even forced.
  if (!filter) {
    Buffer x = make_buffer({DType::f32, {64, 131104}}, 0), w = make_buffer({DType::i8_pc, {8, 131104}}, 0);
    Buffer y = make_buffer({DType::f32, {64, 8}}, 0);
    TensorView iv[2] = {x.v, w.v};
    OpArgs a = matmul_q_args(iv);
    a.params.i[0] = 0;
    a.out = &y.v;
    Status se = Status::OK();
    if (matmul_q_wgmma_cuda(a, 0, &se, true)) {
      printf("FAIL matmul_q_wgmma_cuda took K = 131104 (forced)\n");
      ++t.failures;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("matmul_q exact integer path: %d emulated runs (%d on random data, %d at the extremes; gemv %d, mma %d, "
         "wgmma %d)%s, matmul_q_ref against the exact value on %d problems: %d failures, %.0f s\n", t.runs, random_runs,
         t.runs - random_runs, t.gemv, t.mma, t.wgmma, filter ? "" : " and a wgmma decline", t.refs, t.failures, secs);
  return t.failures;
}

// paged_attention_prefill's data-dependent errors (paged_prefill.cu): block ids outside [0, numBlocks) in the
// block table (far outside: reading one would fault the emulation) must read nothing, turn exactly the rows that
// see those positions into NaN, and leave every other row as the reference computes it with valid ids there.
// The first registered case: f32 KV, P = 1 (one table entry per position), no window.
int check_bad_prefill() {
  const OpId op = OpId::paged_attention_prefill;
  const std::vector<OpCase> cs = op_cases(op);
  const OpCase& c = cs[0];
  std::vector<Buffer> in;
  for (const TensorSpec& s : c.in) {
    in.push_back(make_buffer(s, 0));
    fill_random(in.back().v.data, s.dtype, in.back().v.numel(), false);
  }
  Buffer got = make_buffer(c.out[0], 0), want = make_buffer(c.out[0], 0);
  std::vector<TensorView> iv;
  for (auto& b : in) iv.push_back(b.v);
  c.init_inputs(iv, 77);
  const int64_t mb = iv[3].shape[1], P = iv[1].shape[3], H = iv[0].shape[1], D = iv[0].shape[2];
  const int64_t B = iv[4].shape[0];
  int32_t* tables = static_cast<int32_t*>(iv[3].data);
  const int32_t* lens = static_cast<const int32_t*>(iv[4].data);
  const int32_t* qs = static_cast<const int32_t*>(iv[5].data);
  // (sequence, table entry, bad id): the last two sequences, entries inside their contexts.
  const int64_t bad_b[2] = {B - 2, B - 1};
  const int64_t bad_j[2] = {(lens[B - 2] - 20) / P, (lens[B - 1] - 60) / P};
  const int32_t bad_id[2] = {1 << 30, INT32_MIN};
  int32_t saved[2];
  for (int k = 0; k < 2; ++k) {
    saved[k] = tables[bad_b[k] * mb + bad_j[k]];
    tables[bad_b[k] * mb + bad_j[k]] = bad_id[k];
  }
  OpArgs a;
  a.op = op;
  a.in = iv.data();
  a.n_in = static_cast<int32_t>(iv.size());
  a.n_out = 1;
  a.params = c.params;
  a.out = &got.v;
  const Status se = run_emulated(a);
  for (int k = 0; k < 2; ++k) tables[bad_b[k] * mb + bad_j[k]] = saved[k];
  a.out = &want.v;
  const Status sr = kernel_table(Backend::ref)[static_cast<int>(op)].run(a);
  if (!se.ok() || !sr.ok()) {
    printf("FAIL %s bad-index check: emulated: %s; ref: %s\n", op_info(op).name, se.message().c_str(), sr.message().c_str());
    return 1;
  }
  int bad = 0, nan_rows = 0;
  const float* g = static_cast<const float*>(got.v.data);
  const float* w = static_cast<const float*>(want.v.data);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = qs[b]; r < qs[b + 1]; ++r) {
      const int64_t pos = lens[b] - (qs[b + 1] - qs[b]) + (r - qs[b]);
      bool sees_bad = false;
      for (int k = 0; k < 2; ++k) sees_bad = sees_bad || (b == bad_b[k] && pos >= bad_j[k] * P);
      nan_rows += sees_bad;
      for (int64_t e = 0; e < H * D; ++e) {
        const float x = g[r * H * D + e], wv = w[r * H * D + e];
        const bool ok = sees_bad ? std::isnan(x) : std::fabs(x - wv) <= 1e-4f * (std::fabs(wv) + 1.f);
        if (!ok && bad++ < 3)
          printf("  %s bad-index check: query %lld (sequence %lld, position %lld) [%lld]: got %g, want %s\n",
                 op_info(op).name, (long long)r, (long long)b, (long long)pos, (long long)e, x,
                 sees_bad ? "NaN" : std::to_string(wv).c_str());
      }
    }
  const uint8_t* gb = static_cast<const uint8_t*>(got.v.data);
  for (int i = 1; i <= kGuardBytes; ++i)
    if (gb[-i] != kGuard || gb[got.v.nbytes() + i - 1] != kGuard) {
      printf("  %s bad-index check: guard bytes written\n", op_info(op).name);
      ++bad;
      break;
    }
  printf("%-7s bad-index check (block ids out of range -> NaN rows for the %d queries that see them): %s\n",
         op_info(op).name, nan_rows, bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--conversions") return check_conversions();
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress visible when redirected to a file
  if (argc > 1 && std::string(argv[1]) == "--mma") {
    const bool quick = argc > 2 && std::string(argv[2]) == "quick";  // K <= 1000 only
    const char* filter = argc > 3 ? argv[3] : nullptr;  // name filter
    const int f = check_mma_wrappers() + check_wgmma_wrappers() + check_mma_matmul_q(quick, filter) +
                  check_wgmma_matmul_q(quick, filter);
    printf("emu_check --mma: %s\n", f ? "FAILED" : "OK");
    return f ? 1 : 0;
  }
  if (argc > 1 && std::string(argv[1]) == "--matmul-q-exact") {
    const int f = check_matmul_q_exact(argc > 2 ? argv[2] : nullptr);
    printf("emu_check --matmul-q-exact: %s\n", f ? "FAILED" : "OK");
    return f ? 1 : 0;
  }
  const char* only = argc > 1 ? argv[1] : nullptr;
  const char* filter = argc > 2 ? argv[2] : nullptr;  // only the cases whose name contains this
  int failures = 0, runs = 0;
  for (int oi = 0; oi < kNumOps; ++oi) {
    const OpId op = static_cast<OpId>(oi);
    if (only && std::string(only) != op_info(op).name) continue;
    std::vector<OpCase> cs = op_cases(op);
    add_extra_cases(op, cs);
    int skipped = 0;
    for (const OpCase& c : cs)
      for (int variant = 0; variant < 3; ++variant) {
        if (filter && c.name.find(filter) == std::string::npos) continue;
        g_sms = variant == 1 ? 132 : 1;
        const int offset = variant == 2 ? 1 : 0;
        std::vector<Buffer> in, out_ref, out_emu;
        for (const TensorSpec& s : c.in) {
          in.push_back(make_buffer(s, offset));
          if (dtype_is_quant(s.dtype)) {
            fill_quant(in.back().v.data, s.dtype, s.shape[0], s.shape[1]);
            if (op == OpId::quant_export && variant == 2) {  // any bytes: zero points up to 255 (min(z, 15) padding),
              std::mt19937_64 bytes_rng(static_cast<uint64_t>(runs));  // odd nibbles past K; rng's stream unchanged
              uint8_t* p = static_cast<uint8_t*>(in.back().v.data);
              for (size_t i = 0; i < in.back().v.nbytes(); ++i) p[i] = static_cast<uint8_t>(bytes_rng());
            }
          }
          else
            fill_random(in.back().v.data, s.dtype, in.back().v.numel(), c.special_values);
        }
        for (const TensorSpec& s : c.out) {
          out_ref.push_back(make_buffer(s, offset));
          out_emu.push_back(make_buffer(s, offset));
        }
        std::vector<TensorView> iv, rv, ev;
        for (auto& b : in) iv.push_back(b.v);
        for (auto& b : out_ref) rv.push_back(b.v);
        for (auto& b : out_emu) ev.push_back(b.v);
        // Structured inputs (embedding's ids, rope's positions and frequencies) and in-place outputs, as lk_check
        // sets them up; the emulated outputs start from the same bytes as the reference's.
        const uint64_t seed = 1000003ull * static_cast<uint64_t>(oi) + runs;
        if (c.init_inputs) c.init_inputs(iv, seed);
        if (c.init_outputs) {
          c.init_outputs(rv, seed + 1);
          c.init_outputs(ev, seed + 1);
        }
        OpArgs a;
        a.op = op;
        a.in = iv.data();
        a.n_in = static_cast<int32_t>(iv.size());
        a.n_out = static_cast<int32_t>(rv.size());
        a.params = c.params;
        a.out = rv.data();
        const Status sr = kernel_table(Backend::ref)[oi].run(a);
        a.out = ev.data();
        const Status se = run_emulated(a);
        ++runs;
        if (se.code() == Code::unsupported) {  // backend.cu's supports() refuses the op: no CUDA kernel yet
          if (!skipped++) printf("%-7s skipped: %s\n", op_info(op).name, se.message().c_str());
          --runs;
          continue;
        }
        if (!sr.ok() || !se.ok()) {
          printf("FAIL %s v%d: ref: %s; emulated: %s\n", c.name.c_str(), variant, sr.message().c_str(),
                 se.message().c_str());
          ++failures;
          continue;
        }
        int bad = 0;
        for (size_t k = 0; k < rv.size(); ++k) bad += compare(c, variant, op, rv[k], ev[k]);
        if (bad) {
          ++failures;
          printf("FAIL %s v%d (%d bad)\n", c.name.c_str(), variant, bad);
        }
      }
    if (!skipped) failures += check_bad_indices(op);
    printf("%-7s done: %d runs so far, %d failures\n", op_info(op).name, runs, failures);
    fflush(stdout);
  }
  printf("emu_check: %d runs, %d failures, %lld launches, %lld emulated threads: %s\n", runs, failures,
         emu::launches.load(), emu::threads_run.load(), failures ? "FAILED" : "OK");
  return failures ? 1 : 0;
}
