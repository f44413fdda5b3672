// The quantized-weight conversions: quantize, dequantize, quant_import, quant_export (quant.h, quant_rows.h).
//   quantize     x: [N, K] f32/f16/bf16 -> w: [N, K] quantized (panel form)
//   dequantize   w: [N, K] quantized    -> y: [N, K] f32/f16/bf16, y = f32(scale * (q - zero)) rounded to y's dtype
//   quant_import bytes: u8 [quant_row_form_bytes(N, K)] (row form) -> w: [N, K]
//   quant_export w: [N, K] -> bytes: u8 [quant_row_form_bytes(N, K)]
// The row-wise code of quant_rows.cc is the spec (llama.cpp's reference rules for q8_0/q4_0, checked against its
// bytes in test/quant); the reference runs it over every panel in order.
#include "../../common/quant_rows.h"
#include "ref.h"

namespace lk {

namespace {
int64_t panels(const TensorView& w) { return qceil(w.shape[0], kQPanel); }

const DType kFormats[] = {DType::q8_0, DType::q4_0, DType::q4_g32, DType::q4_g64, DType::q4_g128, DType::i8_pc};
struct NK { int64_t N, K; };
const NK kShapes[] = {{1, 32}, {1, 7}, {7, 96}, {17, 688}, {9, 33}, {33, 4096}, {8, 1000}};

std::string nk_name(const char* op, DType t, const NK& s, const char* extra = "") {
  return std::string(op) + "(" + dtype_name(t) + ",N=" + std::to_string(s.N) + ",K=" + std::to_string(s.K) + extra + ")";
}
}  // namespace

Status quantize_ref(const OpArgs& a) { return quantize_panels(a.in[0], a.out[0], 0, panels(a.out[0])); }

Status dequantize_ref(const OpArgs& a) {
  dequantize_panels(a.in[0], a.out[0], 0, panels(a.in[0]));
  return Status::OK();
}

Status quant_import_ref(const OpArgs& a) {
  const TensorView& w = a.out[0];
  import_panels(w.dtype, w.shape[0], w.shape[1], static_cast<const uint8_t*>(a.in[0].data), static_cast<uint8_t*>(w.data),
                0, panels(w));
  return Status::OK();
}

Status quant_export_ref(const OpArgs& a) {
  const TensorView& w = a.in[0];
  export_panels(w.dtype, w.shape[0], w.shape[1], static_cast<const uint8_t*>(w.data), static_cast<uint8_t*>(a.out[0].data),
                0, panels(w));
  return Status::OK();
}

std::vector<OpCase> quantize_cases() {
  std::vector<OpCase> cs;
  for (DType f : kFormats)
    for (DType t : {DType::f32, DType::f16, DType::bf16})
      for (const NK& s : kShapes) {
        if (t != DType::f32 && s.N * s.K > 10000) continue;
        OpCase c;
        c.name = nk_name("quantize", f, s, (std::string(",x=") + dtype_name(t)).c_str());
        c.in = {{t, {s.N, s.K}}};
        c.out = {{f, {s.N, s.K}}};
        cs.push_back(c);
      }
  return cs;
}

std::vector<OpCase> dequantize_cases() {
  std::vector<OpCase> cs;
  for (DType f : kFormats)
    for (DType t : {DType::f32, DType::f16, DType::bf16})
      for (const NK& s : kShapes) {
        OpCase c;
        c.name = nk_name("dequantize", f, s, (std::string(",y=") + dtype_name(t)).c_str());
        c.in = {{f, {s.N, s.K}}};
        c.out = {{t, {s.N, s.K}}};
        cs.push_back(c);
      }
  return cs;
}

std::vector<OpCase> quant_import_cases() {
  std::vector<OpCase> cs;
  for (DType f : kFormats)
    for (const NK& s : kShapes) {
      OpCase c;
      c.name = nk_name("quant_import", f, s);
      c.in = {{DType::u8, {static_cast<int64_t>(quant_row_form_bytes(f, s.N, s.K))}}};
      c.out = {{f, {s.N, s.K}}};
      cs.push_back(c);
    }
  return cs;
}

std::vector<OpCase> quant_export_cases() {
  std::vector<OpCase> cs;
  for (DType f : kFormats)
    for (const NK& s : kShapes) {
      OpCase c;
      c.name = nk_name("quant_export", f, s);
      c.in = {{f, {s.N, s.K}}};
      c.out = {{DType::u8, {static_cast<int64_t>(quant_row_form_bytes(f, s.N, s.K))}}};
      cs.push_back(c);
    }
  return cs;
}

}  // namespace lk
