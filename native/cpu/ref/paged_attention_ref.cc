// paged_attention_decode / paged_attention_prefill: attention of new queries over a sequence's paged KV cache.
//
// For sequence b with context length L = context_lens[b] and nq queries (decode: 1; prefill: query_start[b + 1] -
// query_start[b]), query i sits at position pos = L - nq + i (the new tokens are the last nq of the context, already
// written by cache_write). Query head h reads KV head g = h / (H / Hkv) (GQA; MQA when Hkv = 1). Over the positions
// t <= pos that the window keeps (sliding window W > 0: pos - t < W):
//   s_t = scale * q . k_t;  if cap > 0: s_t = cap * tanh(s_t / cap);  if alibi: s_t += slope[h] * (t - pos)
//   y = sum_t softmax(s)_t * v_t
// where k_t, v_t are the rows of position t: block block_tables[b][t / P], offset t % P; for i8/f8e4m3 caches the
// stored value times the row's scale (kv.h). No position kept (L = 0): y = 0.
// i8 caches take q . k and p . v in integers (common/kv.h has the whole spec): q' = f32(q) * f32(scale) is quantized
// per row of D (kv_quantize_query: s_q = amax / 127, round half to even) and s_t = s_q * s_k(t) * sum_j q8_j k8_tj
// (the sum exact: |sum| <= 1024 * 127 * 127 < 2^24, so f32 arithmetic on these integers is exact too); the softmax
// weights of each aligned chunk of 16 positions are rounded to u8 (kv_quantize_weights) and summed with the i8 V
// rows in integers. The rounding of q adds ~0.3% RMS to the scores, that of the weights ~0.1% to y.
// Only positions < L are ever read, so whatever unused slots, unused blocks and table entries past ceil(L / P) hold
// (NaN included) cannot matter.
// This reference walks the block table token by token and accumulates in double; y is rounded once to q's dtype.
//   q, y: [B, H, D] (decode) or [T, H, D] (prefill); kv: [numBlocks, Hkv, 2, P, D]; kv_scale: [numBlocks, Hkv, 2, P]
//   f32 or [0]; block_tables: [B, maxBlocks] i32; context_lens: [B] i32; query_start: [B + 1] i32; alibi: [H] or [0]
#include <cmath>
#include <string>
#include <vector>

#include "../../common/kv.h"
#include "ref.h"

namespace lk {

namespace {

// One query row over an i8 cache, positions [t0, pos] (kv.h: the integer q . k and p . v spec). Scores and the
// weights' rounding in f32 exactly as specified; the sums over chunks in double.
void attend_i8(const KvGeom& g, const TensorView& kv, const TensorView& kv_scale, const int32_t* table, int64_t kh,
               const int8_t* q8, float sq, float cap, float slope, int64_t t0, int64_t pos, double* out) {
  const int64_t D = g.d;
  const int8_t* data = static_cast<const int8_t*>(kv.data);
  const float* scales = static_cast<const float*>(kv_scale.data);
  struct Chunk {
    float m;
    double esum, c;
    std::vector<int64_t> isum;
  };
  std::vector<Chunk> chunks;
  for (int64_t c0 = t0; c0 <= pos;) {
    const int64_t c1 = std::min(pos + 1, (c0 / kKvChunk + 1) * kKvChunk);  // the aligned chunk's part in range
    const int n = static_cast<int>(c1 - c0);
    float s[kKvChunk], w[kKvChunk];
    uint8_t u[kKvChunk];
    float m = -INFINITY;
    for (int i = 0; i < n; ++i) {
      const int64_t t = c0 + i, blk = table[t / g.p], off = t % g.p;
      const int8_t* k = data + g.tile(blk, kh, 0) + off * D;
      int64_t dot = 0;
      for (int64_t j = 0; j < D; ++j) dot += static_cast<int64_t>(q8[j]) * k[j];
      s[i] = kv_score_i8(dot, scales[g.scale_tile(blk, kh, 0) + off], sq, cap, slope, t, pos);
      m = std::max(m, s[i]);
    }
    Chunk ch{m, 0.0, 0.0, std::vector<int64_t>(static_cast<size_t>(D), 0)};
    for (int i = 0; i < n; ++i) {
      const int64_t t = c0 + i, blk = table[t / g.p], off = t % g.p;
      const float e = kv_exp(s[i] - m);
      ch.esum += e;
      w[i] = e * scales[g.scale_tile(blk, kh, 1) + off];
    }
    ch.c = kv_quantize_weights(w, n, u);
    for (int i = 0; i < n; ++i) {
      const int64_t t = c0 + i, blk = table[t / g.p], off = t % g.p;
      const int8_t* v = data + g.tile(blk, kh, 1) + off * D;
      for (int64_t j = 0; j < D; ++j) ch.isum[static_cast<size_t>(j)] += static_cast<int64_t>(u[i]) * v[j];
    }
    chunks.push_back(std::move(ch));
    c0 = c1;
  }
  for (int64_t j = 0; j < D; ++j) out[j] = 0;
  if (chunks.empty()) return;
  double M = -INFINITY, l = 0;
  for (const Chunk& ch : chunks) M = std::max(M, static_cast<double>(ch.m));
  for (const Chunk& ch : chunks) {
    const double f = std::exp(static_cast<double>(ch.m) - M);
    l += f * ch.esum;
    for (int64_t j = 0; j < D; ++j) out[j] += f * ch.c * static_cast<double>(ch.isum[static_cast<size_t>(j)]);
  }
  for (int64_t j = 0; j < D; ++j) out[j] /= l;
}

Status attention_ref(const OpArgs& a, bool prefill) {
  const TensorView &q = a.in[0], &kv = a.in[1], &kv_scale = a.in[2], &bt = a.in[3], &lens = a.in[4];
  const TensorView* qs_view = prefill ? &a.in[5] : nullptr;
  const TensorView& alibi = a.in[prefill ? 6 : 5];
  const TensorView& y = a.out[0];
  const KvGeom g(kv);
  const int64_t B = lens.shape[0], H = q.shape[1], D = g.d, group = H / g.hkv, max_blocks = bt.shape[1];
  LK_RETURN_IF_ERROR(check_paged_args(a.op == OpId::paged_attention_prefill ? "paged_attention_prefill" : "paged_attention_decode",
                                      g, bt, lens, qs_view, q.shape[0]));
  const double scale = a.params.f[0], cap = a.params.f[1];
  const int64_t window = a.params.i[0];
  const int32_t* tables = static_cast<const int32_t*>(bt.data);
  const int32_t* ctx = static_cast<const int32_t*>(lens.data);
  const int32_t* qs = qs_view ? static_cast<const int32_t*>(qs_view->data) : nullptr;
  const float* slopes = alibi.numel() ? static_cast<const float*>(alibi.data) : nullptr;
  const size_t es = dtype_size(g.dtype);
  // The value of element j of the K (which = 0) or V row of position t of sequence b, KV head kh.
  auto elem = [&](int64_t b, int64_t kh, int which, int64_t t, int64_t j) -> double {
    const int64_t blk = tables[b * max_blocks + t / g.p], off = t % g.p;
    const char* row = static_cast<const char*>(kv.data) + (g.tile(blk, kh, which) + off * D) * es;
    double v = kv_load(row, g.dtype, j);
    if (g.quantized()) v *= static_cast<const float*>(kv_scale.data)[g.scale_tile(blk, kh, which) + off];
    return v;
  };
  std::vector<double> s, out(static_cast<size_t>(D));
  std::vector<float> qvals(static_cast<size_t>(D));
  std::vector<int8_t> q8(static_cast<size_t>(D));
  const bool int_qk = g.dtype == DType::i8;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = ctx[b];
    const int64_t q0 = qs ? qs[b] : b, nq = qs ? qs[b + 1] - qs[b] : 1;
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t pos = L - nq + i;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kh = h / group, qrow_base = ((q0 + i) * H + h) * D;
        const int64_t t0 = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        s.assign(static_cast<size_t>(std::max<int64_t>(pos + 1 - t0, 0)), 0.0);
        double m = -INFINITY;
        float sq = 0;
        if (int_qk) {
          for (int64_t j = 0; j < D; ++j) qvals[static_cast<size_t>(j)] = load_f32(q.data, q.dtype, qrow_base + j) * static_cast<float>(scale);
          sq = kv_quantize_query(qvals.data(), D, q8.data());
        }
        if (int_qk) {
          attend_i8(g, kv, kv_scale, tables + b * max_blocks, kh, q8.data(), sq, static_cast<float>(cap),
                    slopes ? slopes[h] : 0.0f, t0, pos, out.data());
          for (int64_t j = 0; j < D; ++j) store_f32(y.data, y.dtype, qrow_base + j, static_cast<float>(out[static_cast<size_t>(j)]));
          continue;
        }
        for (int64_t t = t0; t <= pos; ++t) {
          double st;
          {
            double dot = 0;
            for (int64_t j = 0; j < D; ++j) dot += static_cast<double>(load_f32(q.data, q.dtype, qrow_base + j)) * elem(b, kh, 0, t, j);
            st = scale * dot;
          }
          if (cap > 0) st = cap * std::tanh(st / cap);
          if (slopes) st += static_cast<double>(slopes[h]) * static_cast<double>(t - pos);
          s[static_cast<size_t>(t - t0)] = st;
          m = std::max(m, st);
        }
        double l = 0;
        for (double& st : s) l += (st = std::exp(st - m));
        std::fill(out.begin(), out.end(), 0.0);
        for (int64_t t = t0; t <= pos; ++t) {
          const double p = s[static_cast<size_t>(t - t0)] / l;
          for (int64_t j = 0; j < D; ++j) out[static_cast<size_t>(j)] += p * elem(b, kh, 1, t, j);
        }
        for (int64_t j = 0; j < D; ++j) store_f32(y.data, y.dtype, qrow_base + j, static_cast<float>(out[static_cast<size_t>(j)]));
      }
    }
  }
  return Status::OK();
}

// The cases' structured inputs: a random assignment of distinct blocks to the sequences, table entries past each
// sequence's used blocks set to -1 (never read), and NaN in every slot no sequence uses (unused blocks, the tail of
// each last block; for i8 caches, whose bytes have no NaN, the scales), so that reading one shows up as a mismatch.
struct AttnShape {
  DType kv_dtype, q_dtype;
  int64_t P, H, Hkv, D;
  std::vector<int64_t> lens, nq;  // nq empty: decode
  double scale = 0, cap = 0;
  int64_t window = 0, partition = 0;
  bool alibi = false;
  int64_t max_blocks() const {
    int64_t m = 1;
    for (int64_t L : lens) m = std::max(m, (L + P - 1) / P);
    return m + 1;  // one spare entry: must never be read
  }
  int64_t nblocks() const {
    int64_t n = 3;  // spare blocks: never referenced
    for (int64_t L : lens) n += (L + P - 1) / P;
    return n;
  }
};

void init_attention_inputs(const AttnShape& sh, const std::vector<TensorView>& in, uint64_t seed) {
  CaseRng r(seed);
  const bool prefill = !sh.nq.empty();
  const TensorView &kv = in[1], &kv_scale = in[2], &bt = in[3], &lens = in[4];
  const KvGeom g(kv);
  const int64_t B = static_cast<int64_t>(sh.lens.size()), mb = bt.shape[1];
  std::vector<int32_t> perm(static_cast<size_t>(g.nblocks));
  for (size_t j = 0; j < perm.size(); ++j) perm[j] = static_cast<int32_t>(j);
  for (size_t j = perm.size() - 1; j > 0; --j) std::swap(perm[j], perm[static_cast<size_t>(r.next() % (j + 1))]);
  // Slots in use: marked, then every other slot poisoned.
  std::vector<char> used(static_cast<size_t>(g.slots()), 0);
  size_t next = 0;
  int32_t* tables = static_cast<int32_t*>(bt.data);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = sh.lens[static_cast<size_t>(b)];
    static_cast<int32_t*>(lens.data)[b] = static_cast<int32_t>(L);
    for (int64_t j = 0; j < mb; ++j) {
      const bool live = j < (L + g.p - 1) / g.p;
      tables[b * mb + j] = live ? perm[next++] : -1;
      if (live)
        for (int64_t o = 0; o < g.p && j * g.p + o < L; ++o) used[static_cast<size_t>(tables[b * mb + j] * g.p + o)] = 1;
    }
  }
  const size_t es = dtype_size(g.dtype);
  for (int64_t blk = 0; blk < g.nblocks; ++blk)
    for (int64_t h = 0; h < g.hkv; ++h)
      for (int which = 0; which < 2; ++which)
        for (int64_t o = 0; o < g.p; ++o) {
          char* row = static_cast<char*>(kv.data) + (g.tile(blk, h, which) + o * g.d) * es;
          float* sc = g.quantized() ? static_cast<float*>(kv_scale.data) + g.scale_tile(blk, h, which) + o : nullptr;
          if (used[static_cast<size_t>(blk * g.p + o)]) {
            if (sc) *sc = r.uniform(0.002f, 0.03f);  // realistic magnitudes: 127 * s ~ |x|max
            if (g.dtype == DType::f8e4m3)  // random bytes can be NaN patterns: redraw as real values
              for (int64_t j = 0; j < g.d; ++j) reinterpret_cast<uint8_t*>(row)[j] = f32_to_f8e4m3(r.uniform(-448, 448));
            continue;
          }
          if (sc) *sc = std::nanf("");
          for (int64_t j = 0; j < g.d; ++j) {
            if (g.dtype == DType::f8e4m3) reinterpret_cast<uint8_t*>(row)[j] = 0x7f;
            else if (g.dtype != DType::i8) store_f32(row, g.dtype, j, std::nanf(""));
          }
        }
  if (prefill) {
    int32_t* qs = static_cast<int32_t*>(in[5].data);
    qs[0] = 0;
    for (int64_t b = 0; b < B; ++b) qs[b + 1] = qs[b] + static_cast<int32_t>(sh.nq[static_cast<size_t>(b)]);
  }
  if (sh.alibi) {
    const TensorView& al = in[prefill ? 6 : 5];
    for (int64_t h = 0; h < al.shape[0]; ++h)  // the slopes of ALiBi: 2^(-8 (h + 1) / H)
      static_cast<float*>(al.data)[h] = std::exp2(-8.0f * static_cast<float>(h + 1) / static_cast<float>(al.shape[0]));
  }
}

OpCase attention_case(const AttnShape& sh) {
  const bool prefill = !sh.nq.empty();
  OpCase c;
  int64_t T = 0;
  for (int64_t n : sh.nq) T += n;
  const int64_t B = static_cast<int64_t>(sh.lens.size());
  std::string lens;
  for (size_t i = 0; i < sh.lens.size(); ++i)
    lens += (i ? "/" : "") + std::to_string(sh.lens[i]) + (prefill ? ":" + std::to_string(sh.nq[i]) : "");
  c.name = std::string(prefill ? "paged_attention_prefill(" : "paged_attention_decode(") + dtype_name(sh.kv_dtype) +
           ",P=" + std::to_string(sh.P) + ",H=" + std::to_string(sh.H) + ",Hkv=" + std::to_string(sh.Hkv) +
           ",D=" + std::to_string(sh.D) + ",L=" + lens + (sh.q_dtype != DType::f32 ? std::string(",q=") + dtype_name(sh.q_dtype) : "") +
           (sh.cap > 0 ? ",cap=" + std::to_string(static_cast<int>(sh.cap)) : "") +
           (sh.window > 0 ? ",window=" + std::to_string(sh.window) : "") + (sh.alibi ? ",alibi" : "") +
           (sh.partition > 0 ? ",part=" + std::to_string(sh.partition) : "") + ")";
  const int64_t nb = sh.nblocks();
  const std::vector<int64_t> qshape = {prefill ? T : B, sh.H, sh.D};
  c.in = {{sh.q_dtype, qshape},
          {sh.kv_dtype, {nb, sh.Hkv, 2, sh.P, sh.D}},
          {DType::f32, kv_dtype_quantized(sh.kv_dtype) ? std::vector<int64_t>{nb, sh.Hkv, 2, sh.P} : std::vector<int64_t>{0}},
          {DType::i32, {B, sh.max_blocks()}},
          {DType::i32, {B}}};
  if (prefill) c.in.push_back({DType::i32, {B + 1}});
  c.in.push_back({DType::f32, {sh.alibi ? sh.H : 0}});
  c.out = {{sh.q_dtype, qshape}};
  c.params.f[0] = sh.scale != 0 ? sh.scale : 1.0 / std::sqrt(static_cast<double>(sh.D));
  c.params.f[1] = sh.cap;
  c.params.i[0] = sh.window;
  c.params.i[1] = sh.partition;
  double ctx = 0;
  for (size_t b = 0; b < sh.lens.size(); ++b) ctx += static_cast<double>(sh.lens[b]) * (prefill ? static_cast<double>(sh.nq[b]) : 1.0);
  c.flops = 4.0 * ctx * static_cast<double>(sh.H * sh.D);
  c.init_inputs = [sh](const std::vector<TensorView>& in, uint64_t seed) { init_attention_inputs(sh, in, seed); };
  return c;
}

const DType kKvTypes[] = {DType::f32, DType::f16, DType::bf16, DType::i8, DType::f8e4m3};

}  // namespace

Status paged_attention_decode_ref(const OpArgs& a) { return attention_ref(a, false); }
Status paged_attention_prefill_ref(const OpArgs& a) { return attention_ref(a, true); }

std::vector<OpCase> paged_attention_decode_cases() {
  std::vector<OpCase> cs;
  const int64_t dims[] = {64, 128, 80, 96, 256};
  const int64_t heads[][2] = {{4, 4}, {8, 2}, {16, 2}};  // GQA ratios 1, 4, 8
  int i = 0;
  for (DType kt : kKvTypes)
    for (int64_t P : {1, 8, 16, 32})
      for (const auto& hh : heads) {
        AttnShape sh{kt, i % 7 == 3 ? DType::f16 : (i % 7 == 5 ? DType::bf16 : DType::f32), P, hh[0], hh[1], dims[i % 5], {}, {}};
        sh.lens = {1, 15, 16, 17, 54, 97, 1029};
        if (i % 4 == 1) sh.lens.push_back(0);  // an empty context: zeros
        ++i;
        cs.push_back(attention_case(sh));
      }
  // Options, on a few cache types: soft-cap, sliding window (shorter and longer than some contexts), ALiBi, a small
  // partition size (flash-decoding splits every long context, and merges), all of them together, MQA, odd D.
  for (DType kt : {DType::f32, DType::f16, DType::i8, DType::f8e4m3}) {
    AttnShape base{kt, DType::f32, 16, 8, 2, 128, {1, 17, 97, 1029, 2100}, {}};
    AttnShape s1 = base; s1.cap = 5; s1.scale = 0.5; cs.push_back(attention_case(s1));
    AttnShape s2 = base; s2.window = 40; cs.push_back(attention_case(s2));
    AttnShape s3 = base; s3.alibi = true; cs.push_back(attention_case(s3));
    AttnShape s4 = base; s4.partition = 64; cs.push_back(attention_case(s4));
    AttnShape s5 = base; s5.partition = 48; s5.window = 300; s5.alibi = true; s5.cap = 30; cs.push_back(attention_case(s5));
    AttnShape s6 = base; s6.H = 6; s6.Hkv = 1; s6.D = 64; s6.P = 32; cs.push_back(attention_case(s6));
    AttnShape s7 = base; s7.D = 7; s7.P = 8; s7.q_dtype = DType::bf16; cs.push_back(attention_case(s7));
  }
  // More query heads per KV head than one CUDA block takes (G = 16: two head chunks), a group of 3 (a block of 4
  // with one head unused), odd block sizes, a bf16 cache with every option, an i8 cache with partitions that are
  // not multiples of 16 and an unaligned window start.
  AttnShape e1{DType::bf16, DType::f32, 5, 32, 2, 80, {1, 23, 300, 777, 0}, {}};
  e1.window = 100; e1.alibi = true; e1.cap = 20; cs.push_back(attention_case(e1));
  AttnShape e2{DType::i8, DType::f16, 3, 6, 2, 96, {2, 50, 611}, {}};
  e2.partition = 100; e2.window = 250; cs.push_back(attention_case(e2));
  return cs;
}

std::vector<OpCase> paged_attention_bench_cases(bool full) {
  // The decode grid (H = 32, Hkv = 8, D = 128, P = 16): B x context, f16 and i8 caches; prefill of a
  // 512-token prompt and of a 512-token chunk over 3584 cached positions.
  std::vector<OpCase> cs;
  for (DType kt : {DType::f16, DType::i8, DType::f8e4m3, DType::bf16, DType::f32})
    for (int64_t B : {1, 8, 32})
      for (int64_t L : {512, 4096, 16384}) {
        const bool core = (kt == DType::f16 || kt == DType::i8) && L == 4096 && B <= 8;
        if (!full && !core) continue;
        if (full && kt != DType::f16 && kt != DType::i8 && !(B == 8 && L == 4096)) continue;
        AttnShape sh{kt, DType::f32, 16, 32, 8, 128, std::vector<int64_t>(static_cast<size_t>(B), L), {}};
        OpCase c = attention_case(sh);
        c.name = std::string("paged_attention_decode_") + dtype_name(kt) + " B=" + std::to_string(B) + " L=" + std::to_string(L);
        cs.push_back(c);
      }
  for (DType kt : {DType::f16, DType::i8}) {
    AttnShape p1{kt, DType::f32, 16, 32, 8, 128, {512}, {512}};
    AttnShape p2{kt, DType::f32, 16, 32, 8, 128, {4096}, {512}};
    for (AttnShape* sh : {&p1, &p2}) {
      OpCase c = attention_case(*sh);
      c.name = std::string("paged_attention_prefill_") + dtype_name(kt) + " L=" + std::to_string(sh->lens[0]) + " new=" + std::to_string(sh->nq[0]);
      cs.push_back(c);
    }
  }
  return cs;
}

std::vector<OpCase> paged_attention_prefill_cases() {
  std::vector<OpCase> cs;
  const int64_t dims[] = {64, 128, 80, 96, 256};
  const int64_t heads[][2] = {{4, 4}, {8, 2}, {16, 2}};
  int i = 0;
  for (DType kt : kKvTypes)
    for (int64_t P : {1, 8, 16, 32})
      for (const auto& hh : heads) {
        if ((i + static_cast<int>(P)) % 2 == 1 && hh[0] != 8) { ++i; continue; }  // half of the matrix, every axis covered
        AttnShape sh{kt, i % 7 == 3 ? DType::f16 : (i % 7 == 5 ? DType::bf16 : DType::f32), P, hh[0], hh[1], dims[i % 5], {}, {}};
        // Whole prompts, chunks of a prompt over cached history, a single new token, a long context.
        sh.lens = {1, 15, 16, 17, 54, 97, 300};
        sh.nq = {1, 15, 1, 5, 54, 33, 70};
        ++i;
        cs.push_back(attention_case(sh));
      }
  for (DType kt : {DType::f32, DType::f16, DType::i8, DType::f8e4m3}) {
    AttnShape base{kt, DType::f32, 16, 8, 2, 128, {17, 97, 1029}, {17, 40, 100}};
    AttnShape s1 = base; s1.cap = 5; s1.scale = 0.5; cs.push_back(attention_case(s1));
    AttnShape s2 = base; s2.window = 40; cs.push_back(attention_case(s2));
    AttnShape s3 = base; s3.alibi = true; cs.push_back(attention_case(s3));
    AttnShape s4 = base; s4.window = 7; s4.alibi = true; s4.cap = 30; cs.push_back(attention_case(s4));
    AttnShape s5 = base; s5.H = 6; s5.Hkv = 1; s5.D = 64; s5.P = 32; cs.push_back(attention_case(s5));
    AttnShape s6 = base; s6.D = 7; s6.P = 8; s6.q_dtype = DType::f16; cs.push_back(attention_case(s6));
    // Sequences without queries (an empty context, and a cached one with no new token) between ragged ones: they
    // own no rows of y, and the rows around them must find their own sequences.
    AttnShape s7 = base; s7.lens = {0, 17, 50, 97, 300}; s7.nq = {0, 17, 0, 40, 33}; s7.window = 33; cs.push_back(attention_case(s7));
  }
  return cs;
}

}  // namespace lk
