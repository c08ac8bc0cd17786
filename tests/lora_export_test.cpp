// Adapter export: PEFT and GGUF forms written by kandil load back with the same logits, the PEFT
// form equals the reference PEFT folder it was read from (Hugging Face row order restored),
// rsLoRA folds into the GGUF alpha, full-model export replaces weights, errors name the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "kandil/lora.h"
#include "kandil/lora_export.h"
#include "kandil/safetensors.h"
#include "kandil/synth.h"
#include "lora/adapter_impl.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::temp_dir;

constexpr LoraTarget kAll[] = {LoraTarget::q,    LoraTarget::k,  LoraTarget::v,   LoraTarget::o,
                               LoraTarget::gate, LoraTarget::up, LoraTarget::down};

std::shared_ptr<const Model> base_model(const std::string& dir) {
  SynthSpec s;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 96;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.seed = 5;
  EXPECT_TRUE(write_synthetic_model(s, dir + "/base.gguf").ok());
  auto m = Model::load(dir + "/base.gguf");
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : nullptr;
}

std::vector<float> logits_with(const std::shared_ptr<const Model>& m,
                               std::shared_ptr<const LoraAdapter> a) {
  ContextParams p;
  p.n_ctx = 32;
  p.n_threads = 1;
  p.cache_type = KvCacheType::f32;
  auto ctx = Context::create(m, p);
  EXPECT_TRUE(ctx.ok());
  if (a) {
    EXPECT_TRUE(apply_adapter(**ctx, a).ok());
  }
  const std::vector<TokenId> prompt = {1, 300, 301, 280, 290, 310};
  EXPECT_TRUE((*ctx)->decode(prompt, true).ok());
  const int32_t V = m->config().n_vocab;
  return std::vector<float>((*ctx)->logits(0), (*ctx)->logits(0) + int64_t{V} * 6);
}

std::shared_ptr<const LoraAdapter> load(const std::string& path, const Model& m) {
  auto a = LoraAdapter::load(path, m);
  EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
  return a.ok() ? *a : nullptr;
}

// Random trained-looking matrices in GGUF row order.
LoraExportSpec random_spec(const ModelConfig& c, int32_t rank, uint64_t seed) {
  LoraExportSpec spec;
  spec.alpha = 8.0f;
  spec.base_model_name_or_path = "synth";
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.1f);
  for (int32_t l = 0; l < c.n_layer; ++l) {
    for (LoraTarget t : kAll) {
      const auto [n_in, n_out] = lora::target_dims(c, t);
      LoraMatrices p;
      p.layer = l;
      p.target = t;
      p.rank = rank;
      p.a.resize(static_cast<size_t>(rank * n_in));
      p.b.resize(static_cast<size_t>(n_out * rank));
      for (float& v : p.a) v = n(rng);
      for (float& v : p.b) v = n(rng);
      spec.pairs.push_back(std::move(p));
    }
  }
  return spec;
}

TEST(LoraExport, PeftAndGgufExportsGiveIdenticalLogits) {
  const std::string dir = temp_dir();
  auto base = base_model(dir);
  ASSERT_TRUE(base);
  const LoraExportSpec spec = random_spec(base->config(), 4, 1);
  ASSERT_TRUE(export_lora_peft(base->config(), spec, dir + "/peft").ok());
  ASSERT_TRUE(export_lora_gguf(base->config(), spec, dir + "/a.gguf").ok());
  auto peft = load(dir + "/peft", *base);
  auto gguf = load(dir + "/a.gguf", *base);
  ASSERT_TRUE(peft && gguf);
  // Loaded back, the matrices are exactly the ones exported (q/k rows restored by the loader).
  ASSERT_EQ(peft->impl().pairs.size(), spec.pairs.size());
  for (size_t i = 0; i < spec.pairs.size(); ++i) {
    const lora::RawPair& p = peft->impl().pairs[i];
    const LoraMatrices* want = nullptr;
    for (const LoraMatrices& m : spec.pairs) {
      if (m.layer == p.layer && m.target == p.target) want = &m;
    }
    ASSERT_TRUE(want);
    EXPECT_EQ(p.a, want->a);
    EXPECT_EQ(p.b, want->b) << "layer " << p.layer << " " << lora_target_peft_name(p.target);
  }
  const auto lp = logits_with(base, peft), lg = logits_with(base, gguf),
             l0 = logits_with(base, nullptr);
  EXPECT_EQ(lp, lg);
  EXPECT_NE(lp, l0);
  // The config PEFT reads.
  const auto cfg = nlohmann::json::parse(testing::read_file(dir + "/peft/adapter_config.json"));
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["use_rslora"], false);
  EXPECT_EQ(cfg["base_model_name_or_path"], "synth");
  EXPECT_EQ(cfg["target_modules"].size(), 7u);
  EXPECT_EQ(cfg["target_modules"][0], "q_proj");
  // No temporary files left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir + "/peft")) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  auto info = LoraAdapter::inspect(dir + "/a.gguf");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->alpha, 8.0f);
  EXPECT_EQ(info->rank_max, 4);
}

TEST(LoraExport, RoundTripsAReferencePeftFolderByteForByte) {
  // write_synthetic_peft_adapter writes Hugging Face row order; loading permutes q/k rows of B
  // for the base, exporting must undo it exactly.
  const std::string dir = temp_dir();
  auto base = base_model(dir);
  ASSERT_TRUE(base);
  LoraSynthSpec s;
  s.rank = 3;
  s.alpha = 6.0f;
  s.seed = 21;
  ASSERT_TRUE(write_synthetic_peft_adapter(base->config(), s, dir + "/ref").ok());
  auto ref = load(dir + "/ref", *base);
  ASSERT_TRUE(ref);
  LoraExportSpec spec;
  spec.alpha = s.alpha;
  for (const lora::RawPair& p : ref->impl().pairs) {
    spec.pairs.push_back({p.layer, p.target, static_cast<int32_t>(p.rank), p.a, p.b});
  }
  ASSERT_TRUE(export_lora_peft(base->config(), spec, dir + "/out").ok());
  auto a = SafetensorsFile::open(dir + "/ref/adapter_model.safetensors");
  auto b = SafetensorsFile::open(dir + "/out/adapter_model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (const SafetensorsTensor& t : a->tensors()) {
    const SafetensorsTensor* u = nullptr;
    for (const SafetensorsTensor& x : b->tensors()) {
      if (x.name == t.name) u = &x;
    }
    ASSERT_TRUE(u) << t.name;
    EXPECT_EQ(u->shape, t.shape);
    ASSERT_EQ(u->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(u->data, t.data, t.nbytes), 0) << t.name;
  }
  EXPECT_EQ(logits_with(base, ref), logits_with(base, load(dir + "/out", *base)));
}

TEST(LoraExport, RsLoraFoldsIntoTheGgufAlpha) {
  const std::string dir = temp_dir();
  auto base = base_model(dir);
  ASSERT_TRUE(base);
  LoraExportSpec spec = random_spec(base->config(), 4, 2);
  spec.rslora = true;
  ASSERT_TRUE(export_lora_peft(base->config(), spec, dir + "/p").ok());
  ASSERT_TRUE(export_lora_gguf(base->config(), spec, dir + "/g.gguf").ok());
  auto p = load(dir + "/p", *base);
  auto g = load(dir + "/g.gguf", *base);
  ASSERT_TRUE(p && g);
  EXPECT_TRUE(p->info().rslora);
  const auto lp = logits_with(base, p), lg = logits_with(base, g);
  ASSERT_EQ(lp.size(), lg.size());
  for (size_t i = 0; i < lp.size(); ++i) ASSERT_NEAR(lp[i], lg[i], 1e-4f) << i;
  // Mixed ranks cannot be one GGUF alpha under rsLoRA.
  LoraExportSpec mixed = random_spec(base->config(), 2, 3);
  mixed.rslora = true;
  mixed.pairs.resize(2);                 // layer 0 q, k at rank 2
  mixed.pairs.push_back(spec.pairs[6]);  // layer 0 down at rank 4
  auto r = export_lora_gguf(base->config(), mixed, dir + "/m.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("per-module ranks"), std::string::npos);
  // PEFT records the odd rank in rank_pattern and loads back.
  ASSERT_TRUE(export_lora_peft(base->config(), mixed, dir + "/mixed").ok());
  auto mp = load(dir + "/mixed", *base);
  ASSERT_TRUE(mp);
  EXPECT_EQ(mp->info().rank_min, 2);
  EXPECT_EQ(mp->info().rank_max, 4);
}

TEST(LoraExport, ValidationErrors) {
  const std::string dir = temp_dir();
  auto base = base_model(dir);
  ASSERT_TRUE(base);
  const ModelConfig& c = base->config();
  LoraExportSpec spec = random_spec(c, 2, 4);
  LoraExportSpec s1 = spec;
  s1.pairs[0].layer = 9;
  auto r1 = export_lora_peft(c, s1, dir + "/x");
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().message.find("layer outside"), std::string::npos);
  LoraExportSpec s2 = spec;
  s2.pairs[1].b.pop_back();
  auto r2 = export_lora_gguf(c, s2, dir + "/x.gguf");
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("expected A [2][64]"), std::string::npos) << r2.error().message;
  LoraExportSpec s3 = spec;
  s3.pairs.push_back(s3.pairs[0]);
  EXPECT_NE(export_lora_gguf(c, s3, dir + "/x.gguf").error().message.find("twice"),
            std::string::npos);
  LoraExportSpec s4 = spec;
  s4.alpha = 0;
  EXPECT_FALSE(export_lora_gguf(c, s4, dir + "/x.gguf").ok());
  EXPECT_FALSE(export_lora_peft(c, LoraExportSpec{}, dir + "/x").ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

TEST(LoraExport, FullModelExportReplacesWeights) {
  const std::string dir = temp_dir();
  auto base = base_model(dir);
  ASSERT_TRUE(base);
  // Re-exporting every F32 tensor unchanged gives the same model.
  NamedWeights same;
  const GgufTensorInfo* q = nullptr;
  for (const GgufTensorInfo& t : base->gguf().tensors()) {
    if (t.type != TensorType::F32) continue;
    std::vector<float> v(t.nbytes / sizeof(float));
    std::memcpy(v.data(), t.data, t.nbytes);
    same.emplace_back(std::string(t.name), std::move(v));
    if (t.name == "blk.0.attn_q.weight") q = &t;
  }
  ASSERT_TRUE(q);
  ASSERT_TRUE(export_full_gguf(base->gguf(), same, dir + "/same.gguf").ok());
  auto m1 = Model::load(dir + "/same.gguf");
  ASSERT_TRUE(m1.ok());
  EXPECT_EQ(logits_with(*m1, nullptr), logits_with(base, nullptr));
  // Merging an adapter by hand (W + s·B·A) equals the adapter applied unmerged.
  LoraExportSpec spec;
  spec.alpha = 2.0f;
  LoraExportSpec all = random_spec(base->config(), 2, 6);
  spec.pairs.push_back(all.pairs[0]);  // layer 0, q
  ASSERT_TRUE(export_lora_gguf(base->config(), spec, dir + "/q.gguf").ok());
  const auto [n_in, n_out] = lora::target_dims(base->config(), LoraTarget::q);
  std::vector<float> w(q->nbytes / sizeof(float));
  std::memcpy(w.data(), q->data, q->nbytes);
  const LoraMatrices& p = spec.pairs[0];
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t i = 0; i < n_in; ++i) {
      float d = 0;
      for (int32_t r = 0; r < p.rank; ++r) {
        d += p.b[static_cast<size_t>(o * p.rank + r)] * p.a[static_cast<size_t>(r * n_in + i)];
      }
      w[static_cast<size_t>(o * n_in + i)] += spec.alpha / static_cast<float>(p.rank) * d;
    }
  }
  ASSERT_TRUE(export_full_gguf(base->gguf(), {{"blk.0.attn_q.weight", w}}, dir + "/m.gguf").ok());
  auto merged = Model::load(dir + "/m.gguf");
  ASSERT_TRUE(merged.ok());
  const auto lm = logits_with(*merged, nullptr),
             la = logits_with(base, load(dir + "/q.gguf", *base));
  ASSERT_EQ(lm.size(), la.size());
  for (size_t i = 0; i < lm.size(); ++i) ASSERT_NEAR(lm[i], la[i], 2e-3f) << i;
  EXPECT_NE(lm, logits_with(base, nullptr));
  // Errors: unknown tensor, wrong size, duplicate.
  auto e1 = export_full_gguf(base->gguf(), {{"blk.9.nope", {1.0f}}}, dir + "/e.gguf");
  ASSERT_FALSE(e1.ok());
  EXPECT_NE(e1.error().message.find("not in the base model"), std::string::npos);
  auto e2 = export_full_gguf(base->gguf(), {{"blk.0.attn_q.weight", {1.0f}}}, dir + "/e.gguf");
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.error().message.find("elements in the base"), std::string::npos);
  auto e3 = export_full_gguf(base->gguf(), {{"blk.0.attn_q.weight", w}, {"blk.0.attn_q.weight", w}},
                             dir + "/e.gguf");
  ASSERT_FALSE(e3.ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/e.gguf"));
}

}  // namespace
}  // namespace kandil
