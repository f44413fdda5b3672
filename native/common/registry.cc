#include "registry.h"

#include "kv.h"

#include <cmath>
#include <cstring>
#include <string>

namespace lk {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::ref: return "ref";
    case Backend::cpu: return "cpu";
    case Backend::cuda: return "cuda";
    default: return "?";
  }
}

static const OpInfo kOpInfo[] = {
#define LK_OP(name, nin, nout, math) {#name, nin, nout, math},
#include "ops.def"
#undef LK_OP
};
static_assert(sizeof(kOpInfo) / sizeof(kOpInfo[0]) == kNumOps, "one OpInfo per op");

const OpInfo& op_info(OpId op) { return kOpInfo[static_cast<int>(op)]; }

OpId op_from_name(const char* name) {
  for (int i = 0; i < kNumOps; ++i)
    if (std::strcmp(kOpInfo[i].name, name) == 0) return static_cast<OpId>(i);
  return OpId::count;
}

// Tables are defined by each backend (cpu/backend.cc, cuda/backend.cu); a build without CUDA defines
// cuda_kernel_table() to return nullptr (cpu/no_cuda.cc).
const Kernel* ref_kernel_table();
const Kernel* cpu_kernel_table();
const Kernel* cuda_kernel_table();

const Kernel* kernel_table(Backend b) {
  switch (b) {
    case Backend::ref: return ref_kernel_table();
    case Backend::cpu: return cpu_kernel_table();
    case Backend::cuda: return cuda_kernel_table();
    default: return nullptr;
  }
}

namespace {

std::string expected(const char* op, const std::string& what, const char* param, const std::string& got) {
  return std::string(op) + ": expected " + what + " for " + param + ", got " + got;
}

bool same_shape(const TensorView& a, const TensorView& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

Status check_float(const char* op, const char* param, const TensorView& t) {
  if (!dtype_is_float(t.dtype))
    return type_error(expected(op, "a float dtype (f32, f16, bf16)", param, dtype_name(t.dtype)));
  return Status::OK();
}

Status check_dtype(const char* op, const char* param, const TensorView& t, DType want) {
  if (t.dtype != want) return type_error(expected(op, std::string("dtype ") + dtype_name(want), param, dtype_name(t.dtype)));
  return Status::OK();
}

Status check_shape(const char* op, const char* param, const TensorView& t, const TensorView& like) {
  if (!same_shape(t, like)) return range_error(expected(op, "shape " + like.shape_str(), param, t.shape_str()));
  return Status::OK();
}

// A quantized weight: a quantized dtype and 2 dimensions [N, K].
Status check_quant(const char* op, const char* param, const TensorView& t) {
  if (!dtype_is_quant(t.dtype))
    return type_error(expected(op, "a quantized weight (q8_0, q4_0, q4_g32, q4_g64, q4_g128, i8_pc)",
                               (std::string(param) + ".dtype").c_str(), dtype_name(t.dtype)));
  if (t.ndim != 2) return range_error(expected(op, "a 2-D weight [N, K]", (std::string(param) + ".shape").c_str(), t.shape_str()));
  return Status::OK();
}

// b has a's shape, or b is [N] with N = a's last dimension (row broadcast).
Status check_broadcast(const char* op, const TensorView& a, const TensorView& b) {
  if (same_shape(a, b)) return Status::OK();
  if (b.ndim == 1 && a.ndim >= 1 && b.shape[0] == a.cols()) return Status::OK();
  return range_error(expected(op, "b of a's shape " + a.shape_str() + " or of its last dimension [" +
                                      std::to_string(a.cols()) + "]", "b.shape", b.shape_str()));
}

}  // namespace

Status validate_op(const OpArgs& a) {
  if (static_cast<int>(a.op) < 0 || a.op >= OpId::count) return internal_error("validate_op: unknown op id");
  const OpInfo& info = op_info(a.op);
  const char* op = info.name;
  if (a.n_in != info.n_in || a.n_out != info.n_out)
    return internal_error(std::string(op) + ": expected " + std::to_string(info.n_in) + " inputs and " +
                          std::to_string(info.n_out) + " outputs, got " + std::to_string(a.n_in) + " and " +
                          std::to_string(a.n_out));
  for (int i = 0; i < a.n_in; ++i) {
    if (!a.in[i].contiguous()) return unsupported(std::string(op) + ": expected contiguous inputs, got strides");
    if (a.in[i].numel() > 0 && !a.in[i].data) return internal_error(std::string(op) + ": input without data");
  }
  for (int i = 0; i < a.n_out; ++i) {
    if (!a.out[i].contiguous()) return unsupported(std::string(op) + ": expected contiguous outputs, got strides");
    if (a.out[i].numel() > 0 && !a.out[i].data) return internal_error(std::string(op) + ": output without data");
  }
  const TensorView* in = a.in;
  const TensorView& y = a.out[0];
  // Quantized dtypes only where an op says so: everywhere else a dense dtype is expected.
  const bool quant_op = a.op == OpId::dequantize || a.op == OpId::quant_export || a.op == OpId::matmul_q ||
                        a.op == OpId::quantize || a.op == OpId::quant_import;
  if (!quant_op) {
    for (int i = 0; i < a.n_in; ++i)
      if (dtype_is_quant(in[i].dtype))
        return type_error(expected(op, "a dense dtype", ("inputs[" + std::to_string(i) + "].dtype").c_str(), dtype_name(in[i].dtype)));
    if (dtype_is_quant(y.dtype)) return type_error(expected(op, "a dense dtype", "y.dtype", dtype_name(y.dtype)));
  }
  switch (a.op) {
    case OpId::copy:
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, in[0].dtype));
      if (y.numel() != in[0].numel())
        return range_error(expected(op, std::to_string(in[0].numel()) + " elements", "y", std::to_string(y.numel())));
      return Status::OK();
    case OpId::cast:
      LK_RETURN_IF_ERROR(check_float(op, "y.dtype", y));
      if (in[0].dtype == DType::f8e4m3)
        return type_error(expected(op, "x of f32, f16, bf16, i8, u8 or i32 (f8e4m3 is a KV cache storage type)", "x.dtype", "f8e4m3"));
      if (y.numel() != in[0].numel())
        return range_error(expected(op, std::to_string(in[0].numel()) + " elements", "y", std::to_string(y.numel())));
      return Status::OK();
    case OpId::fill: {
      const double v = a.params.f[0];
      if (y.dtype == DType::f8e4m3)
        return type_error(expected(op, "y of f32, f16, bf16, i8, u8 or i32 (f8e4m3 is a KV cache storage type)", "y.dtype", "f8e4m3"));
      if (std::isnan(v) && !dtype_is_float(y.dtype))
        return range_error(expected(op, "a number", "value", "NaN for an integer dtype"));
      if (!dtype_is_float(y.dtype)) {
        double lo = y.dtype == DType::i8 ? -128 : y.dtype == DType::u8 ? 0 : -2147483648.0;
        double hi = y.dtype == DType::i8 ? 127 : y.dtype == DType::u8 ? 255 : 2147483647.0;
        if (!(v >= lo && v <= hi) || std::trunc(v) != v)
          return range_error(expected(op, std::string("an integer in [") + std::to_string(static_cast<long long>(lo)) +
                                              ", " + std::to_string(static_cast<long long>(hi)) + "]",
                                      "value", std::to_string(v)));
      }
      return Status::OK();
    }
    case OpId::add:
    case OpId::mul:
      LK_RETURN_IF_ERROR(check_float(op, "a.dtype", in[0]));
      LK_RETURN_IF_ERROR(check_dtype(op, "b.dtype", in[1], in[0].dtype));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, in[0].dtype));
      LK_RETURN_IF_ERROR(check_broadcast(op, in[0], in[1]));
      return check_shape(op, "y.shape", y, in[0]);
    case OpId::scale:
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", in[0]));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, in[0].dtype));
      if (!std::isfinite(a.params.f[0]))
        return range_error(expected(op, "a finite number", "alpha", std::to_string(a.params.f[0])));
      return check_shape(op, "y.shape", y, in[0]);
    case OpId::matmul: {
      const TensorView& x = in[0];
      const TensorView& w = in[1];
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", x));
      LK_RETURN_IF_ERROR(check_dtype(op, "w.dtype", w, x.dtype));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, x.dtype));
      if (x.ndim < 1) return range_error(expected(op, "x with at least 1 dimension [..., K]", "x.shape", x.shape_str()));
      if (w.ndim != 2) return range_error(expected(op, "w of 2 dimensions [N, K]", "w.shape", w.shape_str()));
      if (w.shape[1] != x.cols())
        return range_error(expected(op, "w.shape[1] to equal x's last dimension (K=" + std::to_string(x.cols()) + ")",
                                    "w.shape[1]", std::to_string(w.shape[1])));
      if (y.ndim != x.ndim || y.cols() != w.shape[0] || y.rows() != x.rows())
        return range_error(expected(op, "y of shape [..., N] with N=" + std::to_string(w.shape[0]), "y.shape", y.shape_str()));
      return Status::OK();
    }
    case OpId::quantize:
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", in[0]));
      if (!dtype_is_quant(y.dtype)) return type_error(expected(op, "a quantized format", "y.dtype", dtype_name(y.dtype)));
      if (in[0].ndim != 2) return range_error(expected(op, "x of 2 dimensions [N, K]", "x.shape", in[0].shape_str()));
      return check_shape(op, "y.shape", y, in[0]);
    case OpId::dequantize:
      LK_RETURN_IF_ERROR(check_quant(op, "w", in[0]));
      LK_RETURN_IF_ERROR(check_float(op, "y.dtype", y));
      return check_shape(op, "y.shape", y, in[0]);
    case OpId::quant_import: {
      LK_RETURN_IF_ERROR(check_dtype(op, "bytes.dtype", in[0], DType::u8));
      LK_RETURN_IF_ERROR(check_quant(op, "w", y));
      const size_t want = quant_row_form_bytes(y.dtype, y.shape[0], y.shape[1]);
      if (in[0].nbytes() != want)
        return range_error(expected(op, std::to_string(want) + " bytes (the " + dtype_name(y.dtype) + " row form of " +
                                            y.shape_str() + ")", "bytes", std::to_string(in[0].nbytes())));
      return Status::OK();
    }
    case OpId::quant_export: {
      LK_RETURN_IF_ERROR(check_quant(op, "w", in[0]));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, DType::u8));
      const size_t want = quant_row_form_bytes(in[0].dtype, in[0].shape[0], in[0].shape[1]);
      if (y.nbytes() != want)
        return range_error(expected(op, std::to_string(want) + " bytes", "y", std::to_string(y.nbytes())));
      return Status::OK();
    }
    case OpId::matmul_q: {
      const TensorView& x = in[0];
      const TensorView& w = in[1];
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", x));
      LK_RETURN_IF_ERROR(check_quant(op, "w", w));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, x.dtype));
      if (x.ndim < 1) return range_error(expected(op, "x with at least 1 dimension [..., K]", "x.shape", x.shape_str()));
      if (w.shape[1] != x.cols())
        return range_error(expected(op, "w.shape[1] to equal x's last dimension (K=" + std::to_string(x.cols()) + ")",
                                    "w.shape[1]", std::to_string(w.shape[1])));
      if (y.ndim != x.ndim || y.cols() != w.shape[0] || y.rows() != x.rows())
        return range_error(expected(op, "y of shape [..., N] with N=" + std::to_string(w.shape[0]), "y.shape", y.shape_str()));
      if (a.params.i[0] != 0 && a.params.i[0] != 1)
        return range_error(expected(op, "path 0 (int8) or 1 (dequant)", "path", std::to_string(a.params.i[0])));
      return Status::OK();
    }
    case OpId::cache_write:
    case OpId::rope_cache_write: {
      const TensorView &k = in[0], &v = in[1], &slots = in[2], &kv = a.out[0], &kv_scale = a.out[1];
      if (a.op == OpId::rope_cache_write) {
        const TensorView &pos = in[3], &freq = in[4];
        LK_RETURN_IF_ERROR(check_dtype(op, "positions.dtype", pos, DType::i32));
        if (pos.ndim != 1 || pos.shape[0] != k.shape[0])
          return range_error(expected(op, "positions of shape [T=" + std::to_string(k.ndim ? k.shape[0] : 0) + "]", "positions.shape", pos.shape_str()));
        LK_RETURN_IF_ERROR(check_dtype(op, "invFreq.dtype", freq, DType::f32));
        if (freq.ndim != 1 || freq.shape[0] < 1 || (k.ndim == 3 && 2 * freq.shape[0] > k.shape[2]))
          return range_error(expected(op, "invFreq of shape [R/2] with 1 <= R/2 <= D/2", "invFreq.shape", freq.shape_str()));
        if (a.params.i[0] != 0 && a.params.i[0] != 1)
          return range_error(expected(op, "pairing 0 (rotate-half) or 1 (interleaved)", "pairing", std::to_string(a.params.i[0])));
      }
      LK_RETURN_IF_ERROR(check_kv(op, kv, kv_scale));
      LK_RETURN_IF_ERROR(check_float(op, "k.dtype", k));
      LK_RETURN_IF_ERROR(check_dtype(op, "v.dtype", v, k.dtype));
      if (k.ndim != 3 || k.shape[1] != kv.shape[1] || k.shape[2] != kv.shape[4])
        return range_error(expected(op, "k of shape [T, Hkv=" + std::to_string(kv.shape[1]) + ", D=" + std::to_string(kv.shape[4]) + "]",
                                    "k.shape", k.shape_str()));
      LK_RETURN_IF_ERROR(check_shape(op, "v.shape", v, k));
      LK_RETURN_IF_ERROR(check_dtype(op, "slot_mapping.dtype", slots, DType::i32));
      if (slots.ndim != 1 || slots.shape[0] != k.shape[0])
        return range_error(expected(op, "slot_mapping of shape [T=" + std::to_string(k.shape[0]) + "]", "slot_mapping.shape", slots.shape_str()));
      return Status::OK();
    }
    case OpId::kv_copy_blocks: {
      LK_RETURN_IF_ERROR(check_kv(op, a.out[0], a.out[1]));
      LK_RETURN_IF_ERROR(check_dtype(op, "pairs.dtype", in[0], DType::i32));
      if (in[0].ndim != 2 || in[0].shape[1] != 2)
        return range_error(expected(op, "pairs of shape [n, 2] (src, dst)", "pairs.shape", in[0].shape_str()));
      return Status::OK();
    }
    case OpId::paged_attention_decode:
    case OpId::paged_attention_prefill: {
      const bool prefill = a.op == OpId::paged_attention_prefill;
      const TensorView &q = in[0], &kv = in[1], &kv_scale = in[2], &bt = in[3], &lens = in[4];
      const TensorView& alibi = in[prefill ? 6 : 5];
      LK_RETURN_IF_ERROR(check_kv(op, kv, kv_scale));
      LK_RETURN_IF_ERROR(check_float(op, "q.dtype", q));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, q.dtype));
      const int64_t hkv = kv.shape[1], d = kv.shape[4];
      if (q.ndim != 3 || q.shape[2] != d || q.shape[1] < 1 || q.shape[1] % hkv != 0)
        return range_error(expected(op, std::string("q of shape [") + (prefill ? "T" : "B") + ", H, D=" + std::to_string(d) +
                                            "] with H a multiple of Hkv=" + std::to_string(hkv),
                                    "q.shape", q.shape_str()));
      LK_RETURN_IF_ERROR(check_shape(op, "y.shape", y, q));
      LK_RETURN_IF_ERROR(check_dtype(op, "block_tables.dtype", bt, DType::i32));
      LK_RETURN_IF_ERROR(check_dtype(op, "context_lens.dtype", lens, DType::i32));
      if (lens.ndim != 1 || (!prefill && lens.shape[0] != q.shape[0]))
        return range_error(expected(op, prefill ? std::string("context_lens of shape [B]") : "context_lens of shape [B=" + std::to_string(q.shape[0]) + "]",
                                    "context_lens.shape", lens.shape_str()));
      const int64_t B = lens.shape[0];
      if (bt.ndim != 2 || bt.shape[0] != B)
        return range_error(expected(op, "block_tables of shape [B=" + std::to_string(B) + ", maxBlocks]", "block_tables.shape", bt.shape_str()));
      if (prefill) {
        LK_RETURN_IF_ERROR(check_dtype(op, "query_start.dtype", in[5], DType::i32));
        if (in[5].ndim != 1 || in[5].shape[0] != B + 1)
          return range_error(expected(op, "query_start of shape [B+1=" + std::to_string(B + 1) + "]", "query_start.shape", in[5].shape_str()));
      }
      if (alibi.numel() != 0 && (alibi.dtype != DType::f32 || alibi.ndim != 1 || alibi.shape[0] != q.shape[1]))
        return range_error(expected(op, "f32 alibi slopes [H=" + std::to_string(q.shape[1]) + "] or an empty tensor", "alibi",
                                    std::string(dtype_name(alibi.dtype)) + " " + alibi.shape_str()));
      const double scale = a.params.f[0], cap = a.params.f[1];
      if (!std::isfinite(scale)) return range_error(expected(op, "a finite number", "scale", std::to_string(scale)));
      if (!std::isfinite(cap) || cap < 0) return range_error(expected(op, "a finite number >= 0 (0: none)", "softCap", std::to_string(cap)));
      if (a.params.i[0] < 0 || a.params.i[0] > INT32_MAX)
        return range_error(expected(op, "a window in [0, 2^31) tokens (0: none)", "slidingWindow", std::to_string(a.params.i[0])));
      if (a.params.i[1] < 0 || a.params.i[1] > INT32_MAX)
        return range_error(expected(op, "a partition size in [0, 2^31) tokens (0: automatic)", "partitionSize", std::to_string(a.params.i[1])));
      return Status::OK();
    }
    case OpId::embedding: {
      const TensorView &table = in[0], &ids = in[1];
      LK_RETURN_IF_ERROR(check_float(op, "table.dtype", table));
      LK_RETURN_IF_ERROR(check_float(op, "y.dtype", y));
      if (table.ndim != 2) return range_error(expected(op, "table of 2 dimensions [V, E]", "table.shape", table.shape_str()));
      LK_RETURN_IF_ERROR(check_dtype(op, "ids.dtype", ids, DType::i32));
      if (ids.ndim != 1) return range_error(expected(op, "ids of 1 dimension [T]", "ids.shape", ids.shape_str()));
      if (y.ndim != 2 || y.shape[0] != ids.shape[0] || y.shape[1] != table.shape[1])
        return range_error(expected(op, "y of shape [T=" + std::to_string(ids.shape[0]) + ", E=" + std::to_string(table.shape[1]) + "]",
                                    "y.shape", y.shape_str()));
      return Status::OK();
    }
    case OpId::rms_norm:
    case OpId::add_rms_norm: {
      const bool add = a.op == OpId::add_rms_norm;
      const TensorView &x = in[0], &w = in[add ? 2 : 1];
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", x));
      if (x.ndim < 1 || x.cols() < 1) return range_error(expected(op, "x of shape [..., N] with N >= 1", "x.shape", x.shape_str()));
      if (add) {
        LK_RETURN_IF_ERROR(check_dtype(op, "r.dtype", in[1], x.dtype));
        LK_RETURN_IF_ERROR(check_shape(op, "r.shape", in[1], x));
      }
      LK_RETURN_IF_ERROR(check_float(op, "w.dtype", w));
      if (w.ndim != 1 || w.shape[0] != x.cols())
        return range_error(expected(op, "w of shape [N=" + std::to_string(x.cols()) + "]", "w.shape", w.shape_str()));
      for (int o = 0; o < a.n_out; ++o) {
        LK_RETURN_IF_ERROR(check_dtype(op, o == a.n_out - 1 ? "y.dtype" : "s.dtype", a.out[o], x.dtype));
        LK_RETURN_IF_ERROR(check_shape(op, o == a.n_out - 1 ? "y.shape" : "s.shape", a.out[o], x));
      }
      const double eps = a.params.f[0];
      if (!(eps > 0) || !std::isfinite(eps)) return range_error(expected(op, "a finite number > 0", "eps", std::to_string(eps)));
      return Status::OK();
    }
    case OpId::rope: {
      const TensorView &x = in[0], &pos = in[1], &freq = in[2];
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", x));
      if (x.ndim != 3) return range_error(expected(op, "x of shape [T, H, D]", "x.shape", x.shape_str()));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, x.dtype));
      LK_RETURN_IF_ERROR(check_shape(op, "y.shape", y, x));
      LK_RETURN_IF_ERROR(check_dtype(op, "positions.dtype", pos, DType::i32));
      if (pos.ndim != 1 || pos.shape[0] != x.shape[0])
        return range_error(expected(op, "positions of shape [T=" + std::to_string(x.shape[0]) + "]", "positions.shape", pos.shape_str()));
      LK_RETURN_IF_ERROR(check_dtype(op, "invFreq.dtype", freq, DType::f32));
      if (freq.ndim != 1 || freq.shape[0] < 1 || 2 * freq.shape[0] > x.shape[2])
        return range_error(expected(op, "invFreq of shape [R/2] with 1 <= R/2 <= D/2=" + std::to_string(x.shape[2] / 2), "invFreq.shape",
                                    freq.shape_str()));
      if (a.params.i[0] != 0 && a.params.i[0] != 1)
        return range_error(expected(op, "pairing 0 (rotate-half) or 1 (interleaved)", "pairing", std::to_string(a.params.i[0])));
      return Status::OK();
    }
    case OpId::silu_mul: {
      const TensorView& x = in[0];
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", x));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, x.dtype));
      if (x.ndim < 1 || x.cols() < 2 || x.cols() % 2 != 0)
        return range_error(expected(op, "x of shape [..., 2F] (an even last dimension >= 2)", "x.shape", x.shape_str()));
      if (y.ndim != x.ndim || y.rows() != x.rows() || y.cols() * 2 != x.cols())
        return range_error(expected(op, "y of shape [..., F=" + std::to_string(x.cols() / 2) + "]", "y.shape", y.shape_str()));
      return Status::OK();
    }
    case OpId::layer_norm: {
      const TensorView &x = in[0], &w = in[1], &b = in[2];
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", x));
      if (x.ndim < 1 || x.cols() < 1) return range_error(expected(op, "x of shape [..., N] with N >= 1", "x.shape", x.shape_str()));
      LK_RETURN_IF_ERROR(check_float(op, "w.dtype", w));
      if (w.ndim != 1 || w.shape[0] != x.cols())
        return range_error(expected(op, "w of shape [N=" + std::to_string(x.cols()) + "]", "w.shape", w.shape_str()));
      if (b.numel() != 0) {
        LK_RETURN_IF_ERROR(check_dtype(op, "b.dtype", b, w.dtype));
        if (b.ndim != 1 || b.shape[0] != x.cols())
          return range_error(expected(op, "b of shape [N=" + std::to_string(x.cols()) + "] or an empty tensor", "b.shape", b.shape_str()));
      }
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, x.dtype));
      LK_RETURN_IF_ERROR(check_shape(op, "y.shape", y, x));
      const double eps = a.params.f[0];
      if (!(eps > 0) || !std::isfinite(eps)) return range_error(expected(op, "a finite number > 0", "eps", std::to_string(eps)));
      return Status::OK();
    }
    case OpId::silu:
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", in[0]));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, in[0].dtype));
      return check_shape(op, "y.shape", y, in[0]);
    case OpId::gelu:
      LK_RETURN_IF_ERROR(check_float(op, "x.dtype", in[0]));
      LK_RETURN_IF_ERROR(check_dtype(op, "y.dtype", y, in[0].dtype));
      LK_RETURN_IF_ERROR(check_shape(op, "y.shape", y, in[0]));
      if (a.params.i[0] != 0 && a.params.i[0] != 1)
        return range_error(expected(op, "0 (erf) or 1 (tanh)", "approximate", std::to_string(a.params.i[0])));
      return Status::OK();
    case OpId::argmax:
    case OpId::top_k: {
      const TensorView& x = in[0];
      LK_RETURN_IF_ERROR(check_float(op, "logits.dtype", x));
      if (x.ndim != 2 || x.shape[1] < 1 || x.shape[1] > INT32_MAX)
        return range_error(expected(op, "logits of shape [B, V] with 1 <= V < 2^31", "logits.shape", x.shape_str()));
      const int64_t B = x.shape[0], V = x.shape[1];
      if (a.op == OpId::argmax) {
        LK_RETURN_IF_ERROR(check_dtype(op, "ids.dtype", y, DType::i32));
        if (y.ndim != 1 || y.shape[0] != B)
          return range_error(expected(op, "ids of shape [B=" + std::to_string(B) + "]", "ids.shape", y.shape_str()));
        return Status::OK();
      }
      const TensorView& ids = a.out[1];
      LK_RETURN_IF_ERROR(check_dtype(op, "values.dtype", y, DType::f32));
      LK_RETURN_IF_ERROR(check_dtype(op, "ids.dtype", ids, DType::i32));
      if (y.ndim != 2 || y.shape[0] != B)
        return range_error(expected(op, "values of shape [B=" + std::to_string(B) + ", k]", "values.shape", y.shape_str()));
      const int64_t k = y.shape[1], kmax = V < kTopKMax ? V : kTopKMax;
      if (k < 1 || k > kmax)
        return range_error(expected(op, "k in [1, min(V, " + std::to_string(kTopKMax) + ")=" + std::to_string(kmax) + "]", "k", std::to_string(k)));
      LK_RETURN_IF_ERROR(check_shape(op, "ids.shape", ids, y));
      return Status::OK();
    }
    default:
      return internal_error(std::string(op) + ": no validation rule");
  }
}

const char* backend_unsupported_reason(Backend b, const OpArgs& a) {
  const Kernel* table = kernel_table(b);
  if (!table) return b == Backend::cuda ? "this build has no CUDA backend" : "backend not compiled";
  const Kernel& k = table[static_cast<int>(a.op)];
  if (!k.run) return "no kernel for this op on this backend";
  if (k.supports) return k.supports(a);
  return nullptr;
}

}  // namespace lk
