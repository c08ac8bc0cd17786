// Self-contained model tests: a model the suite synthesizes, checked against an independent,
// deliberately naive float64 forward pass (no KV cache, full recomputation per position).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "kandil/gguf.h"
#include "kandil/model.h"
#include "kandil/synth.h"
#include "ops/quant.h"
#include "test_util.h"

namespace kandil {
namespace {

using Mat = std::vector<double>;  // row-major [rows][cols]

struct RefModel {
  int E, L, F, H, KV, D, V;
  double eps = 1e-5, base = 10000.0;
  Mat embd, out_norm, out;
  struct Layer {
    Mat attn_norm, wq, wk, wv, wo, ffn_norm, wg, wu, wd;
  };
  std::vector<Layer> layers;
};

Mat load_matrix(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  const ops::TypeTraits* tr = ops::type_traits(t->type);
  std::vector<float> tmp(static_cast<size_t>(t->n_elements()));
  tr->to_float(t->data, tmp.data(), t->n_elements());
  return Mat(tmp.begin(), tmp.end());
}

RefModel load_reference(const GgufFile& f) {
  RefModel m;
  m.E = static_cast<int>(f.find("llama.embedding_length")->u);
  m.L = static_cast<int>(f.find("llama.block_count")->u);
  m.F = static_cast<int>(f.find("llama.feed_forward_length")->u);
  m.H = static_cast<int>(f.find("llama.attention.head_count")->u);
  m.KV = static_cast<int>(f.find("llama.attention.head_count_kv")->u);
  m.D = m.E / m.H;
  m.embd = load_matrix(f, "token_embd.weight");
  m.V = static_cast<int>(m.embd.size() / static_cast<size_t>(m.E));
  m.out_norm = load_matrix(f, "output_norm.weight");
  m.out = f.find_tensor("output.weight") ? load_matrix(f, "output.weight") : m.embd;
  for (int l = 0; l < m.L; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    m.layers.push_back({load_matrix(f, p + "attn_norm.weight"), load_matrix(f, p + "attn_q.weight"),
                        load_matrix(f, p + "attn_k.weight"), load_matrix(f, p + "attn_v.weight"),
                        load_matrix(f, p + "attn_output.weight"),
                        load_matrix(f, p + "ffn_norm.weight"),
                        load_matrix(f, p + "ffn_gate.weight"), load_matrix(f, p + "ffn_up.weight"),
                        load_matrix(f, p + "ffn_down.weight")});
  }
  return m;
}

std::vector<double> matvec(const Mat& w, const std::vector<double>& x, int n_out) {
  const size_t n_in = x.size();
  std::vector<double> y(static_cast<size_t>(n_out), 0.0);
  for (int r = 0; r < n_out; ++r) {
    for (size_t i = 0; i < n_in; ++i)
      y[static_cast<size_t>(r)] += w[static_cast<size_t>(r) * n_in + i] * x[i];
  }
  return y;
}

std::vector<double> rmsnorm(const std::vector<double>& x, const Mat& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
  return y;
}

void rope(std::vector<double>& v, int heads, int D, int pos, double base) {
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < D / 2; ++i) {
      const double theta = pos * std::pow(base, -2.0 * i / D);
      double& a = v[static_cast<size_t>(h * D + 2 * i)];
      double& b = v[static_cast<size_t>(h * D + 2 * i + 1)];
      const double x0 = a, x1 = b;
      a = x0 * std::cos(theta) - x1 * std::sin(theta);
      b = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
}

// Logits at every position of `tokens`, recomputing everything from scratch.
std::vector<std::vector<double>> reference_logits(const RefModel& m,
                                                  const std::vector<TokenId>& tokens) {
  const int T = static_cast<int>(tokens.size());
  std::vector<std::vector<double>> x(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    auto row = m.embd.begin() + static_cast<long>(tokens[static_cast<size_t>(t)]) * m.E;
    x[static_cast<size_t>(t)].assign(row, row + m.E);
  }
  for (const auto& l : m.layers) {
    std::vector<std::vector<double>> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)),
        v(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
      auto h = rmsnorm(x[static_cast<size_t>(t)], l.attn_norm, m.eps);
      q[static_cast<size_t>(t)] = matvec(l.wq, h, m.H * m.D);
      k[static_cast<size_t>(t)] = matvec(l.wk, h, m.KV * m.D);
      v[static_cast<size_t>(t)] = matvec(l.wv, h, m.KV * m.D);
      rope(q[static_cast<size_t>(t)], m.H, m.D, t, m.base);
      rope(k[static_cast<size_t>(t)], m.KV, m.D, t, m.base);
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(m.H * m.D), 0.0);
      for (int h = 0; h < m.H; ++h) {
        const int g = h / (m.H / m.KV);
        std::vector<double> s(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < m.D; ++i) {
            d += q[static_cast<size_t>(t)][static_cast<size_t>(h * m.D + i)] *
                 k[static_cast<size_t>(j)][static_cast<size_t>(g * m.D + i)];
          }
          s[static_cast<size_t>(j)] = d / std::sqrt(static_cast<double>(m.D));
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int j = 0; j <= t; ++j) {
          for (int i = 0; i < m.D; ++i) {
            att[static_cast<size_t>(h * m.D + i)] +=
                s[static_cast<size_t>(j)] / sum *
                v[static_cast<size_t>(j)][static_cast<size_t>(g * m.D + i)];
          }
        }
      }
      auto o = matvec(l.wo, att, m.E);
      for (int i = 0; i < m.E; ++i)
        x[static_cast<size_t>(t)][static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
    }
    for (int t = 0; t < T; ++t) {
      auto h = rmsnorm(x[static_cast<size_t>(t)], l.ffn_norm, m.eps);
      auto g = matvec(l.wg, h, m.F);
      auto u = matvec(l.wu, h, m.F);
      for (int i = 0; i < m.F; ++i) {
        const double a = g[static_cast<size_t>(i)];
        g[static_cast<size_t>(i)] = a / (1.0 + std::exp(-a)) * u[static_cast<size_t>(i)];
      }
      auto d = matvec(l.wd, g, m.E);
      for (int i = 0; i < m.E; ++i)
        x[static_cast<size_t>(t)][static_cast<size_t>(i)] += d[static_cast<size_t>(i)];
    }
  }
  std::vector<std::vector<double>> logits;
  for (int t = 0; t < T; ++t)
    logits.push_back(matvec(m.out, rmsnorm(x[static_cast<size_t>(t)], m.out_norm, m.eps), m.V));
  return logits;
}

double max_abs_diff(const float* a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < b.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

struct Synth {
  std::string path;
  std::shared_ptr<const Model> model;
  RefModel ref;
};

Synth make_model(const std::string& dir, SynthSpec spec) {
  Synth s;
  s.path = dir + "/model.gguf";
  auto w = write_synthetic_model(spec, s.path);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  auto m = Model::load(s.path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (m.ok()) s.model = *m;
  auto f = GgufFile::open(s.path);
  s.ref = load_reference(*f);
  return s;
}

std::unique_ptr<Context> make_context(const Synth& s, KvCacheType cache, int threads = 2,
                                      int batch = 512) {
  ContextParams p;
  p.n_ctx = 64;
  p.n_threads = threads;
  p.cache_type = cache;
  p.n_batch = batch;
  auto c = Context::create(s.model, p);
  EXPECT_TRUE(c.ok());
  return std::move(*c);
}

const std::vector<TokenId> kTokens = {1, 300, 17, 259, 288, 42, 311, 5, 270, 301, 99, 3};

// Prompt of 7 tokens in one batch, then 5 single-token steps: each position's logits vs the
// naive reference.
void check_against_reference(const Synth& s, KvCacheType cache, double tol) {
  auto ctx = make_context(s, cache);
  auto ref = reference_logits(s.ref, kTokens);
  std::vector<TokenId> prompt(kTokens.begin(), kTokens.begin() + 7);
  ASSERT_TRUE(ctx->decode(prompt, true).ok());
  for (int t = 0; t < 7; ++t)
    EXPECT_LT(max_abs_diff(ctx->logits(t), ref[static_cast<size_t>(t)]), tol) << "pos " << t;
  for (size_t t = 7; t < kTokens.size(); ++t) {
    ASSERT_TRUE(ctx->decode(&kTokens[t], 1).ok());
    EXPECT_LT(max_abs_diff(ctx->logits(), ref[t]), tol) << "pos " << t;
  }
}

TEST(Model, SynthF32MatchesNaiveReference) {
  SynthSpec spec;
  spec.n_embd = 48;
  spec.n_head = 6;
  spec.n_head_kv = 2;
  spec.n_ff = 100;
  auto s = make_model(kandil::testing::temp_dir(), spec);
  ASSERT_TRUE(s.model);
  check_against_reference(s, KvCacheType::f32, 1e-4);
  check_against_reference(s, KvCacheType::f16, 2e-2);
}

// --init train with another file's tokenizer: the vocab is copied (n_vocab follows it) and the
// weights have the from-scratch scales.
TEST(Model, SynthTrainInitWithAnotherTokenizer) {
  const std::string dir = kandil::testing::temp_dir();
  SynthSpec donor;
  donor.n_vocab = 300;
  ASSERT_TRUE(write_synthetic_model(donor, dir + "/donor.gguf").ok());
  SynthSpec spec;
  spec.n_vocab = 999;  // replaced by the tokenizer's 300
  spec.n_layer = 3;
  spec.init = SynthInit::train;
  spec.tokenizer_gguf = dir + "/donor.gguf";
  spec.tied_embeddings = true;
  ASSERT_TRUE(write_synthetic_model(spec, dir + "/init.gguf").ok());
  auto m = Model::load(dir + "/init.gguf");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ((*m)->config().n_vocab, 300);
  auto d = Model::load(dir + "/donor.gguf");
  ASSERT_TRUE(d.ok());
  for (TokenId id = 0; id < 300; ++id) {
    ASSERT_EQ((*m)->tokenizer().token_to_piece(id, true),
              (*d)->tokenizer().token_to_piece(id, true));
  }
  auto f = GgufFile::open(dir + "/init.gguf");
  ASSERT_TRUE(f.ok());
  auto stddev = [&](std::string_view name) {
    const GgufTensorInfo* t = f->find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    const auto* v = reinterpret_cast<const float*>(t->data);
    double ss = 0.0;
    for (int64_t i = 0; i < t->n_elements(); ++i) ss += double{v[i]} * v[i];
    return std::sqrt(ss / static_cast<double>(t->n_elements()));
  };
  EXPECT_NEAR(stddev("token_embd.weight"), 0.02, 0.002);
  EXPECT_NEAR(stddev("blk.0.attn_q.weight"), 0.02, 0.002);
  EXPECT_NEAR(stddev("blk.2.ffn_down.weight"), 0.02 / std::sqrt(6.0), 0.001);
  EXPECT_DOUBLE_EQ(stddev("blk.1.ffn_norm.weight"), 1.0);  // exactly ones
  spec.tokenizer_gguf = dir + "/missing.gguf";
  auto bad = write_synthetic_model(spec, dir + "/bad.gguf");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("missing.gguf"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Model, TiedEmbeddingsAndFullMultiHeadAttention) {
  SynthSpec spec;
  spec.n_head = 4;
  spec.n_head_kv = 4;
  spec.tied_embeddings = true;
  auto s = make_model(kandil::testing::temp_dir(), spec);
  ASSERT_TRUE(s.model);
  EXPECT_TRUE(s.model->config().tied_embeddings);
  check_against_reference(s, KvCacheType::f32, 1e-4);
}

TEST(Model, QuantizedWeightsMatchDequantizedReference) {
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
    SynthSpec spec;
    spec.n_embd = 256;
    spec.n_ff = 512;
    spec.n_head = 8;
    spec.n_head_kv = 2;
    spec.type = type;
    auto s = make_model(kandil::testing::temp_dir(), spec);
    ASSERT_TRUE(s.model);
    // Activations are quantized too (Q8_0 / Q8_K, as llama.cpp does), hence the looser bound.
    SCOPED_TRACE(std::string(tensor_type_name(type)));
    check_against_reference(s, KvCacheType::f32, 0.15);
  }
}

TEST(Model, BatchedEqualsIncrementalAndThreadCountInvariant) {
  auto s = make_model(kandil::testing::temp_dir(), SynthSpec{});
  ASSERT_TRUE(s.model);
  auto batched = make_context(s, KvCacheType::f32, 2);
  ASSERT_TRUE(batched->decode(kTokens).ok());
  std::vector<float> a(batched->logits(), batched->logits() + s.model->config().n_vocab);
  // One token per pass, 1 thread, and a batch size that splits the prompt.
  for (auto [threads, batch] : {std::pair{1, 1}, std::pair{2, 5}}) {
    auto ctx = make_context(s, KvCacheType::f32, threads, batch);
    ASSERT_TRUE(ctx->decode(kTokens).ok());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(ctx->logits()[i], a[i], 1e-4) << i;
  }
}

TEST(Model, DecodeRejectsOverflowAndInvalidTokens) {
  auto s = make_model(kandil::testing::temp_dir(), SynthSpec{});
  ASSERT_TRUE(s.model);
  ContextParams p;
  p.n_ctx = 8;
  p.n_threads = 1;
  auto ctx = Context::create(s.model, p);
  ASSERT_TRUE(ctx.ok());
  std::vector<TokenId> nine(9, 5);
  auto r = (*ctx)->decode(nine);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("context overflow"), std::string::npos);
  std::vector<TokenId> bad = {1, 100000};
  r = (*ctx)->decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("outside the vocabulary"), std::string::npos);
  EXPECT_EQ((*ctx)->n_past(), 0);
}

// Builds a broken variant of a valid model file and checks the load error mentions `expect`.
void expect_load_error(const std::string& dir,
                       const std::function<void(GgufWriter&, const GgufFile&)>& edit,
                       const std::string& expect) {
  const std::string good = dir + "/good.gguf";
  ASSERT_TRUE(write_synthetic_model(SynthSpec{}, good).ok());
  auto src = GgufFile::open(good);
  ASSERT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& kv : src->metadata()) w.set_value(std::string(kv.key), kv.value);
  edit(w, *src);
  for (const auto& t : src->tensors()) {
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    if (!w.add_tensor(std::string(t.name), t.type, shape, t.data, t.nbytes).ok()) {
      // The edit already added a replacement tensor of this name.
    }
  }
  const std::string bad = dir + "/bad.gguf";
  ASSERT_TRUE(w.write_file(bad).ok());
  auto m = Model::load(bad);
  ASSERT_FALSE(m.ok()) << "expected an error containing: " << expect;
  EXPECT_NE(m.error().message.find(expect), std::string::npos) << m.error().message;
}

TEST(Model, LoadErrorsNameTheProblem) {
  const std::string dir = kandil::testing::temp_dir();
  expect_load_error(
      dir, [](GgufWriter& w, const GgufFile&) { w.set_string("general.architecture", "gpt-j"); },
      "unknown architecture 'gpt-j'");
  expect_load_error(
      dir, [](GgufWriter& w, const GgufFile&) { w.set_u32("llama.attention.head_count_kv", 3); },
      "cannot be grouped");
  expect_load_error(
      dir, [](GgufWriter& w, const GgufFile&) { w.set_u32("llama.feed_forward_length", 100); },
      "has shape");
  expect_load_error(
      dir, [](GgufWriter& w, const GgufFile&) { w.set_string("llama.block_count", "two"); },
      "expected an integer");
  expect_load_error(
      dir, [](GgufWriter& w, const GgufFile&) { w.set_u32("llama.block_count", 3); },
      "blk.2.attn_norm.weight' is missing");
  expect_load_error(
      dir,
      [](GgufWriter& w, const GgufFile&) {
        std::vector<uint8_t> zeros(64 * 64 * 4);
        ASSERT_TRUE(w.add_tensor("blk.0.attn_q.weight", TensorType::I32, {64, 64}, zeros.data(),
                                 zeros.size())
                        .ok());
      },
      "cannot compute with");
}

}  // namespace
}  // namespace kandil
