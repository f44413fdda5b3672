// rope: rotary position embedding.   x, y: [T, H, D] one float dtype, positions: [T] i32, inv_freq: [R/2] f32
//
// For token t and pair i < R/2: angle = f32(f32(pos[t]) * inv_freq[i]) (Hugging Face computes its angles as this
// f32 product, so the f32 rounding of large angles is part of the spec), c = cos(angle), s = sin(angle), and the
// pair (a, b) becomes (a c - b s, b c + a s). Pairing i[0] = 0 (rotate-half, Hugging Face Llama/Qwen2/Mistral):
// a = x[i], b = x[i + R/2]; i[0] = 1 (interleaved, GPT-J and llama.cpp's GGUF q/k layout): a = x[2i], b = x[2i + 1].
// Dimensions R..D-1 are copied (partial rotary). Frequency scaling (linear, llama3) is in inv_freq, computed in
// lib/nn from the model config.
#include "ref.h"

#include <cmath>

namespace lk {

Status rope_ref(const OpArgs& a) {
  const TensorView &x = a.in[0], &pos = a.in[1], &freq = a.in[2], &y = a.out[0];
  const int64_t T = x.shape[0], H = x.shape[1], D = x.shape[2], half = freq.numel(), R = 2 * half;
  const int32_t* p = static_cast<const int32_t*>(pos.data);
  const float* f = static_cast<const float*>(freq.data);
  const bool interleaved = a.params.i[0] == 1;
  for (int64_t t = 0; t < T; ++t) {
    if (p[t] < 0) return range_error("rope: expected positions >= 0 for positions[" + std::to_string(t) + "], got " + std::to_string(p[t]));
    for (int64_t h = 0; h < H; ++h) {
      const int64_t row = (t * H + h) * D;
      for (int64_t i = 0; i < half; ++i) {
        const float ang = static_cast<float>(p[t]) * f[i];
        const double c = std::cos(static_cast<double>(ang)), s = std::sin(static_cast<double>(ang));
        const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
        const double va = load_f32(x.data, x.dtype, row + ia), vb = load_f32(x.data, x.dtype, row + ib);
        store_f32(y.data, y.dtype, row + ia, static_cast<float>(va * c - vb * s));
        store_f32(y.data, y.dtype, row + ib, static_cast<float>(vb * c + va * s));
      }
      for (int64_t d = R; d < D; ++d) store_f32(y.data, y.dtype, row + d, load_f32(x.data, x.dtype, row + d));
    }
  }
  return Status::OK();
}

std::vector<OpCase> rope_cases() {
  struct S { int64_t T, H, D, R; };
  std::vector<OpCase> cs;
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (S s : {S{1, 1, 2, 2}, S{7, 3, 64, 64}, S{33, 4, 128, 128}, S{5, 2, 80, 40}, S{9, 8, 96, 96}, S{3, 2, 256, 256}})
      for (int mode : {0, 1}) {
        OpCase c;
        c.name = "rope(T=" + std::to_string(s.T) + ",H=" + std::to_string(s.H) + ",D=" + std::to_string(s.D) + ",R=" +
                 std::to_string(s.R) + (mode ? ",interleaved," : ",rotate-half,") + dtype_name(t) + ")";
        c.in = {{t, {s.T, s.H, s.D}}, {DType::i32, {s.T}}, {DType::f32, {s.R / 2}}};
        c.out = {{t, {s.T, s.H, s.D}}};
        c.params.i[0] = mode;
        const int64_t R = s.R;
        c.init_inputs = [R](const std::vector<TensorView>& in, uint64_t seed) {
          CaseRng rng(seed);
          int32_t* p = static_cast<int32_t*>(in[1].data);
          for (int64_t t = 0; t < in[1].numel(); ++t) p[t] = static_cast<int32_t>(t == 0 ? 0 : rng.range(0, 40000));
          float* f = static_cast<float*>(in[2].data);
          for (int64_t i = 0; i < R / 2; ++i) f[i] = static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(R)));
        };
        cs.push_back(c);
      }
  return cs;
}

}  // namespace lk
