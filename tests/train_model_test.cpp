// Whole-model training: gradients of every trainable tensor (full and LoRA) against finite
// differences of the loss on a tiny synthesized model, QLoRA gradients vs the dequantized base,
// activation checkpointing, and the batch / option errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kandil/gguf.h"
#include "kandil/synth.h"
#include "kandil/train.h"
#include "ops/quant.h"
#include "test_util.h"
#include "train_test_util.h"

namespace kandil {
namespace {

using train_test::make_batch;
using train_test::synth_model;

// Directional check of one tensor: (L(w + e d) - L(w - e d)) / 2e against g . d, for a random
// direction d and for d = g / |g| (which a wrong sign or a missing term cannot pass).
void check_param(Trainer& tr, const TrainBatch& b, size_t index, uint32_t seed) {
  TrainParam& p = tr.params()[index];
  const std::vector<float> g = p.grad;
  double gnorm = 0.0;
  for (float x : g) gnorm += static_cast<double>(x) * x;
  gnorm = std::sqrt(gnorm);
  ASSERT_GT(gnorm, 1e-7) << p.name << ": zero gradient";
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int dir = 0; dir < 2; ++dir) {
    std::vector<float> d(g.size());
    double dn = 0.0;
    for (size_t i = 0; i < d.size(); ++i) {
      d[i] = dir == 0 ? nd(rng) : static_cast<float>(g[i] / gnorm);
      dn += static_cast<double>(d[i]) * d[i];
    }
    dn = std::sqrt(dn);
    for (float& x : d) x = static_cast<float>(x / dn);  // unit direction
    double analytic = 0.0;
    for (size_t i = 0; i < d.size(); ++i) analytic += static_cast<double>(g[i]) * d[i];
    const float eps = 1e-2f;  // the loss is float: a smaller step drowns in its rounding
    const std::vector<float> keep = p.value;
    for (size_t i = 0; i < d.size(); ++i) p.value[i] = keep[i] + eps * d[i];
    const double up = *tr.eval(b);
    for (size_t i = 0; i < d.size(); ++i) p.value[i] = keep[i] - eps * d[i];
    const double down = *tr.eval(b);
    p.value = keep;
    const double numeric = (up - down) / (2.0 * eps);
    EXPECT_NEAR(analytic, numeric, 2e-4 + 2e-2 * std::fabs(numeric))
        << p.name << (dir == 0 ? " (random direction)" : " (gradient direction)");
  }
}

void full_grad_check(bool tied) {
  SynthSpec s = train_test::tiny_spec();
  s.tied_embeddings = tied;
  auto model = synth_model(s, tied ? "tied.gguf" : "untied.gguf");
  ASSERT_TRUE(model);
  TrainOptions o;
  o.mode = TrainOptions::Mode::full;
  o.n_threads = 2;
  auto tr = Trainer::create(model, o);
  ASSERT_TRUE(tr.ok()) << tr.error().message;
  const TrainBatch b = make_batch(2, 6, model->config().n_vocab, 5);
  auto loss = (*tr)->accumulate_gradients(b);
  ASSERT_TRUE(loss.ok());
  EXPECT_GT(*loss, 1.0);
  const auto params = (*tr)->params();
  EXPECT_EQ(params.size(), 2u + 9u * 2u + (tied ? 0u : 1u));
  for (size_t i = 0; i < params.size(); ++i)
    check_param(**tr, b, i, 100 + static_cast<uint32_t>(i));
}

TEST(TrainModel, FullGradientsMatchFiniteDifferences) { full_grad_check(false); }
TEST(TrainModel, FullGradientsMatchFiniteDifferencesTied) { full_grad_check(true); }

TEST(TrainModel, LoraGradientsMatchFiniteDifferences) {
  auto model = synth_model(train_test::tiny_spec(), "lora.gguf");
  ASSERT_TRUE(model);
  TrainOptions o;
  o.lora_rank = 4;
  o.lora_alpha = 8.0f;
  o.lora_targets = {LoraTarget::q,    LoraTarget::k,  LoraTarget::v,   LoraTarget::o,
                    LoraTarget::gate, LoraTarget::up, LoraTarget::down};
  o.n_threads = 2;
  auto tr = Trainer::create(model, o);
  ASSERT_TRUE(tr.ok()) << tr.error().message;
  ASSERT_EQ((*tr)->params().size(), 2u * 7u * 2u);
  // B starts at 0 (PEFT); give it values so dA is non-zero too.
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  for (TrainParam& p : (*tr)->params()) {
    if (p.name.find("lora_B") != std::string::npos) {
      for (float& x : p.value) x = nd(rng);
    }
  }
  const TrainBatch b = make_batch(2, 5, model->config().n_vocab, 6);
  ASSERT_TRUE((*tr)->accumulate_gradients(b).ok());
  for (size_t i = 0; i < (*tr)->params().size(); ++i) {
    check_param(**tr, b, i, 200 + static_cast<uint32_t>(i));
  }
}

// Writes a copy of a GGUF with every tensor dequantized to F32.
bool dequantize_gguf(const std::string& in, const std::string& out) {
  auto f = GgufFile::open(in);
  if (!f.ok()) return false;
  GgufWriter w;
  for (const GgufKV& kv : f->metadata()) {
    if (kv.key != "general.file_type") w.set_value(std::string(kv.key), kv.value);
  }
  for (const GgufTensorInfo& t : f->tensors()) {
    std::vector<float> v(static_cast<size_t>(t.n_elements()));
    const ops::TypeTraits* tt = ops::type_traits(t.type);
    if (!tt) return false;
    tt->to_float(t.data, v.data(), t.n_elements());
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    if (!w.add_tensor(std::string(t.name), TensorType::F32, shape, v.data(), v.size() * 4).ok()) {
      return false;
    }
  }
  return w.write_file(out).ok();
}

// Rewrites a synthesized LLaMA GGUF as a "qwen3" model that also has Q/K/V biases, per-head q/k
// RMSNorm, RoPE frequency factors and a sliding window: every optional path of the block.
bool qwen_variant(const std::string& in, const std::string& out, int32_t window) {
  auto f = GgufFile::open(in);
  if (!f.ok()) return false;
  GgufWriter w;
  for (const GgufKV& kv : f->metadata()) {
    std::string key(kv.key);
    if (key == "general.architecture") continue;
    if (key.rfind("llama.", 0) == 0) key = "qwen3." + key.substr(6);
    w.set_value(key, kv.value);
  }
  w.set_string("general.architecture", "qwen3");
  w.set_u32("qwen3.attention.sliding_window", static_cast<uint32_t>(window));
  for (const GgufTensorInfo& t : f->tensors()) {
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    if (!w.add_tensor(std::string(t.name), t.type, shape, t.data, t.nbytes).ok()) return false;
  }
  const SynthSpec s = train_test::tiny_spec();
  const int64_t D = s.n_embd / s.n_head, qd = s.n_embd, kvd = D * s.n_head_kv;
  uint32_t seed = 1;
  auto add = [&](const std::string& name, int64_t n, float base) {
    auto v = kandil::testing::random_row(n, seed++, 0.1f);
    for (float& x : v) x += base;
    return w.add_tensor(name, TensorType::F32, {n}, v.data(), v.size() * 4).ok();
  };
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    if (!add(p + "attn_q.bias", qd, 0.0f) || !add(p + "attn_k.bias", kvd, 0.0f) ||
        !add(p + "attn_v.bias", kvd, 0.0f) || !add(p + "attn_q_norm.weight", D, 1.0f) ||
        !add(p + "attn_k_norm.weight", D, 1.0f)) {
      return false;
    }
  }
  const std::vector<float> factors = {1.0f, 2.0f, 4.0f, 8.0f};  // n_rot / 2 = 4
  if (!w.add_tensor("rope_freqs.weight", TensorType::F32, {4}, factors.data(), 16).ok()) {
    return false;
  }
  return w.write_file(out).ok();
}

TEST(TrainModel, FullGradientsQwenBiasQkNormWindowFreqFactors) {
  auto base = synth_model(train_test::tiny_spec(), "llama.gguf");
  ASSERT_TRUE(base);
  const std::string dir = kandil::testing::temp_dir();
  ASSERT_TRUE(qwen_variant(dir + "/llama.gguf", dir + "/qwen.gguf", 3));
  auto model = Model::load(dir + "/qwen.gguf");
  ASSERT_TRUE(model.ok()) << model.error().message;
  const ModelConfig& c = (*model)->config();
  ASSERT_TRUE(c.qkv_bias && c.qk_norm);
  ASSERT_EQ(c.sliding_window, 3);
  ASSERT_EQ(c.rope_layout, RopeLayout::split_half);
  ASSERT_EQ(c.rope_freq_factors.size(), 4u);
  TrainOptions o;
  o.mode = TrainOptions::Mode::full;
  o.n_threads = 2;
  o.checkpoint_activations = true;
  auto tr = Trainer::create(*model, o);
  ASSERT_TRUE(tr.ok()) << tr.error().message;
  const TrainBatch b = make_batch(2, 7, c.n_vocab, 12);
  ASSERT_TRUE((*tr)->accumulate_gradients(b).ok());
  EXPECT_EQ((*tr)->params().size(), 3u + 14u * 2u);
  for (size_t i = 0; i < (*tr)->params().size(); ++i) {
    check_param(**tr, b, i, 300 + static_cast<uint32_t>(i));
  }
  // The training forward agrees with inference on this architecture too.
  ContextParams cp;
  cp.n_threads = 1;
  cp.cache_type = KvCacheType::f32;
  auto ctx = Context::create(*model, cp);
  ASSERT_TRUE(ctx.ok());
  TrainBatch one = make_batch(1, 7, c.n_vocab, 13);
  ASSERT_TRUE((*ctx)->decode(one.tokens, true).ok());
  double sum = 0.0;
  int n = 0;
  for (int t = 0; t < one.T; ++t) {
    const int32_t target = one.targets[static_cast<size_t>(t)];
    if (target < 0) continue;
    const float* z = (*ctx)->logits(t);
    double mx = z[0], s = 0.0;
    for (int i = 0; i < c.n_vocab; ++i) mx = std::max(mx, static_cast<double>(z[i]));
    for (int i = 0; i < c.n_vocab; ++i) s += std::exp(z[i] - mx);
    sum += std::log(s) + mx - z[target];
    ++n;
  }
  auto loss = (*tr)->eval(one);
  ASSERT_TRUE(loss.ok());
  EXPECT_NEAR(*loss, sum / n, 1e-4 * sum / n);
}

TEST(TrainModel, QloraGradientsEqualDequantizedBase) {
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    SynthSpec s = train_test::tiny_spec();
    s.type = type;
    const std::string name = std::string("q_") + std::string(tensor_type_name(type));
    auto qmodel = synth_model(s, name + ".gguf");
    ASSERT_TRUE(qmodel);
    const std::string dir = kandil::testing::temp_dir();
    ASSERT_TRUE(dequantize_gguf(dir + "/" + name + ".gguf", dir + "/" + name + "-f32.gguf"));
    auto fmodel = Model::load(dir + "/" + name + "-f32.gguf");
    ASSERT_TRUE(fmodel.ok()) << fmodel.error().message;
    TrainOptions o;
    o.lora_targets = {LoraTarget::q, LoraTarget::v, LoraTarget::down};
    o.n_threads = 2;
    auto tq = Trainer::create(qmodel, o);
    auto tf = Trainer::create(*fmodel, o);
    ASSERT_TRUE(tq.ok() && tf.ok());
    for (Trainer* t : {tq->get(), tf->get()}) {
      std::mt19937 rng(3);
      std::normal_distribution<float> nd(0.0f, 0.2f);
      for (TrainParam& p : t->params()) {
        if (p.name.find("lora_B") != std::string::npos) {
          for (float& x : p.value) x = nd(rng);
        }
      }
    }
    const TrainBatch b = make_batch(2, 6, s.n_vocab, 8);
    auto lq = (*tq)->accumulate_gradients(b);
    auto lf = (*tf)->accumulate_gradients(b);
    ASSERT_TRUE(lq.ok() && lf.ok());
    // The forward of a quantized matmul rounds activations to the dot type (Q8_0 / Q8_K), so
    // the two runs agree to that rounding, not bit for bit.
    EXPECT_NEAR(*lq, *lf, 2e-2 * std::fabs(*lf)) << tensor_type_name(type);
    for (size_t i = 0; i < (*tq)->params().size(); ++i) {
      const TrainParam& a = (*tq)->params()[i];
      const TrainParam& r = (*tf)->params()[i];
      double num = 0.0, den = 0.0;
      for (size_t j = 0; j < a.grad.size(); ++j) {
        num += (static_cast<double>(a.grad[j]) - r.grad[j]) * (a.grad[j] - r.grad[j]);
        den += static_cast<double>(r.grad[j]) * r.grad[j];
      }
      EXPECT_GT(den, 0.0) << a.name;
      EXPECT_LT(std::sqrt(num / den), 0.05) << tensor_type_name(type) << " " << a.name;
    }
  }
}

TEST(TrainModel, ActivationCheckpointingGivesTheSameGradients) {
  auto model = synth_model(train_test::tiny_spec(), "ckpt.gguf");
  ASSERT_TRUE(model);
  TrainOptions o;
  o.mode = TrainOptions::Mode::full;
  o.n_threads = 2;
  auto a = Trainer::create(model, o);
  o.checkpoint_activations = true;
  auto c = Trainer::create(model, o);
  ASSERT_TRUE(a.ok() && c.ok());
  const TrainBatch b = make_batch(3, 7, model->config().n_vocab, 9);
  auto la = (*a)->accumulate_gradients(b);
  auto lc = (*c)->accumulate_gradients(b);
  ASSERT_TRUE(la.ok() && lc.ok());
  EXPECT_EQ(*la, *lc);
  for (size_t i = 0; i < (*a)->params().size(); ++i) {
    EXPECT_EQ((*a)->params()[i].grad, (*c)->params()[i].grad) << (*a)->params()[i].name;
  }
}

TEST(TrainModel, RejectsBadBatchesAndOptions) {
  auto model = synth_model(train_test::tiny_spec(), "bad.gguf");
  ASSERT_TRUE(model);
  TrainOptions o;
  o.n_threads = 1;
  auto tr = Trainer::create(model, o);
  ASSERT_TRUE(tr.ok());
  TrainBatch b = make_batch(1, 4, model->config().n_vocab, 1);
  b.tokens[2] = model->config().n_vocab;
  auto r = (*tr)->step(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("outside the vocabulary"), std::string::npos);
  b = make_batch(1, 4, model->config().n_vocab, 1);
  b.targets.pop_back();
  EXPECT_FALSE((*tr)->step(b).ok());
  b = make_batch(1, 4, model->config().n_vocab, 1);
  b.targets[1] = 100000;
  EXPECT_FALSE((*tr)->eval(b).ok());
  TrainBatch empty;
  EXPECT_FALSE((*tr)->accumulate_gradients(empty).ok());
  // All targets ignored: loss 0, no update of the parameters' values beyond AdamW on zeros.
  b = make_batch(1, 4, model->config().n_vocab, 1);
  for (int32_t& t : b.targets) t = TrainBatch::kIgnoreTarget;
  auto st = (*tr)->step(b);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->loss, 0.0f);
  EXPECT_EQ(st->n_targets, 0);

  TrainOptions bad = o;
  bad.lora_rank = 0;
  EXPECT_FALSE(Trainer::create(model, bad).ok());
  bad = o;
  bad.grad_accum = 0;
  EXPECT_FALSE(Trainer::create(model, bad).ok());
  bad = o;
  bad.beta2 = 1.0f;
  EXPECT_FALSE(Trainer::create(model, bad).ok());
  bad = o;
  bad.lora_targets.clear();
  EXPECT_FALSE(Trainer::create(model, bad).ok());
  EXPECT_FALSE(Trainer::create(nullptr, o).ok());
}

}  // namespace
}  // namespace kandil
