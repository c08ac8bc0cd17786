// LoRA adapters: unmerged == merged for every target (GQA k/v included), scale 0 == base, PEFT and
// GGUF forms give the same logits, validation errors, the set API, exact unmerge, and concurrent
// hot-swap while other threads generate.
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "kandil/generate.h"
#include "kandil/gguf.h"
#include "kandil/lora.h"
#include "kandil/safetensors.h"
#include "kandil/synth.h"
#include "model/adapter_delta.h"
#include "ops/quant.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::temp_dir;

constexpr LoraTarget kTargets[] = {LoraTarget::q,    LoraTarget::k,  LoraTarget::v,   LoraTarget::o,
                                   LoraTarget::gate, LoraTarget::up, LoraTarget::down};

// A small GQA model: 4 query heads over 2 KV heads, so k/v deltas are narrower than q's.
std::shared_ptr<const Model> synth_model(const std::string& dir, TensorType type,
                                         const std::string& name = "base.gguf") {
  SynthSpec s;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 96;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.type = type;
  s.seed = 77;
  const std::string path = dir + "/" + name;
  auto w = write_synthetic_model(s, path);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : nullptr;
}

std::unique_ptr<Context> make_ctx(const std::shared_ptr<const Model>& m, int threads = 2) {
  ContextParams p;
  p.n_ctx = 64;
  p.n_threads = threads;
  p.cache_type = KvCacheType::f32;
  auto c = Context::create(m, p);
  EXPECT_TRUE(c.ok());
  return std::move(*c);
}

const std::vector<TokenId> kPrompt = {1, 300, 301, 280, 290, 310, 260, 270};

// Logits of every prompt token.
std::vector<float> logits_of(Context& ctx) {
  ctx.clear();
  auto r = ctx.decode(kPrompt, true);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  const int32_t V = ctx.model().config().n_vocab;
  return std::vector<float>(ctx.logits(0), ctx.logits(0) + int64_t{V} * ctx.n_logits());
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

float max_abs(const std::vector<float>& a) {
  float d = 0;
  for (float x : a) d = std::max(d, std::abs(x));
  return d;
}

std::shared_ptr<const LoraAdapter> load_adapter(const std::string& path, const Model& m) {
  auto a = LoraAdapter::load(path, m);
  EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
  return a.ok() ? *a : nullptr;
}

// Writes the GGUF form of a PEFT folder with this test's own reading of the two formats: A and B
// copied, B's q/k rows reordered from split-half to adjacent-pair heads, alpha kept.
void write_gguf_twin(const std::string& peft_dir, const ModelConfig& c, const std::string& out) {
  auto st = SafetensorsFile::open(peft_dir + "/adapter_model.safetensors");
  ASSERT_TRUE(st.ok());
  const auto cfg = nlohmann::json::parse(testing::read_file(peft_dir + "/adapter_config.json"));
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.type", "adapter");
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", cfg["lora_alpha"].get<float>());
  const char* peft_names[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                              "gate_proj", "up_proj", "down_proj"};
  const char* gguf_names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                              "ffn_gate", "ffn_up", "ffn_down"};
  for (const SafetensorsTensor& t : st->tensors()) {
    std::vector<float> v(static_cast<size_t>(t.n_elements()));
    std::memcpy(v.data(), t.data, t.nbytes);
    int layer = -1, which = -1;
    for (int l = 0; l < c.n_layer; ++l) {
      for (int k = 0; k < 7; ++k) {
        const std::string mid = ".layers." + std::to_string(l) + "." +
                                (k < 4 ? "self_attn." : "mlp.") + peft_names[k] + ".";
        if (t.name.find(mid) != std::string::npos) layer = l, which = k;
      }
    }
    ASSERT_GE(layer, 0) << t.name;
    const bool is_b = t.name.find("lora_B") != std::string::npos;
    const int64_t rows = t.shape[0], cols = t.shape[1];
    if (is_b && which <= 1) {
      std::vector<float> p(v.size());
      const int64_t hd = c.head_dim;
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t h = row / hd, i = row % hd;
        const int64_t src = h * hd + (i % 2) * (hd / 2) + i / 2;
        std::memcpy(&p[static_cast<size_t>(row * cols)], &v[static_cast<size_t>(src * cols)],
                    static_cast<size_t>(cols) * 4);
      }
      v = p;
    }
    const std::string name = "blk." + std::to_string(layer) + "." + gguf_names[which] +
                             ".weight.lora_" + (is_b ? "b" : "a");
    ASSERT_TRUE(w.add_tensor(name, TensorType::F32, {cols, rows}, v.data(), v.size() * 4).ok());
  }
  ASSERT_TRUE(w.write_file(out).ok());
}

std::string synth_peft(const std::string& dir, const ModelConfig& c, std::vector<LoraTarget> t,
                       uint64_t seed, int rank = 8, bool rslora = false, float b = 0.2f) {
  LoraSynthSpec s;
  s.rank = rank;
  s.alpha = 16;
  s.targets = std::move(t);
  s.seed = seed;
  s.rslora = rslora;
  s.b_stddev = b;
  auto r = write_synthetic_peft_adapter(c, s, dir);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return dir;
}

TEST(Lora, UnmergedEqualsMergedForEveryTarget) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  auto ctx = make_ctx(base);
  const std::vector<float> base_logits = logits_of(*ctx);
  std::vector<std::vector<LoraTarget>> cases;
  for (LoraTarget t : kTargets) cases.push_back({t});
  cases.push_back(std::vector<LoraTarget>(std::begin(kTargets), std::end(kTargets)));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    const std::string peft = synth_peft(dir + "/peft" + std::to_string(i), base->config(), cases[i],
                                        100 + i, 8, i % 2 == 1);
    auto adapter = load_adapter(peft, *base);
    ASSERT_TRUE(adapter);
    const float scale = 0.75f;
    auto set = AdapterSet::create(*base, {{adapter, scale}});
    ASSERT_TRUE(set.ok());
    ASSERT_TRUE(set_adapters(*ctx, *set).ok());
    const std::vector<float> unmerged = logits_of(*ctx);
    ASSERT_TRUE(set_adapters(*ctx, nullptr).ok());

    const std::string merged_path = dir + "/merged" + std::to_string(i) + ".gguf";
    auto merged = merge_adapters_to_gguf(*base, {{adapter, scale}}, merged_path, 2);
    ASSERT_TRUE(merged.ok()) << merged.error().message;
    auto mm = Model::load(merged_path);
    ASSERT_TRUE(mm.ok());
    auto mctx = make_ctx(*mm);
    const std::vector<float> merged_logits = logits_of(*mctx);

    // The adapter matters, and both paths agree far more closely than they differ from the base.
    const float effect = max_abs_diff(unmerged, base_logits);
    EXPECT_GT(effect, 1e-2f);
    EXPECT_LT(max_abs_diff(unmerged, merged_logits), 2e-4f * std::max(1.0f, max_abs(unmerged)))
        << "effect " << effect;
  }
}

TEST(Lora, StackedAdaptersEqualMergedStack) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  auto a1 = load_adapter(
      synth_peft(dir + "/a1", base->config(), {LoraTarget::q, LoraTarget::v, LoraTarget::down}, 1),
      *base);
  auto a2 = load_adapter(
      synth_peft(dir + "/a2", base->config(), {LoraTarget::k, LoraTarget::up, LoraTarget::o}, 2, 4),
      *base);
  auto ctx = make_ctx(base);
  ASSERT_TRUE(apply_adapter(*ctx, a1, 0.5f).ok());
  ASSERT_TRUE(apply_adapter(*ctx, a2, -1.25f).ok());
  const auto unmerged = logits_of(*ctx);
  ASSERT_TRUE(merge_adapters_to_gguf(*base, {{a1, 0.5f}, {a2, -1.25f}}, dir + "/m.gguf").ok());
  auto mm = Model::load(dir + "/m.gguf");
  ASSERT_TRUE(mm.ok());
  auto mctx = make_ctx(*mm);
  EXPECT_LT(max_abs_diff(unmerged, logits_of(*mctx)), 2e-4f * std::max(1.0f, max_abs(unmerged)));
}

TEST(Lora, ScaleZeroEqualsBaseExactlyOnFloatAndQuantizedBases) {
  for (TensorType type : {TensorType::F32, TensorType::Q8_0, TensorType::Q4_K}) {
    SCOPED_TRACE(std::string(tensor_type_name(type)));
    const std::string dir = temp_dir() + "/" + std::string(tensor_type_name(type));
    std::filesystem::create_directories(dir);
    SynthSpec s;
    s.n_layer = 2;
    s.n_embd = 256;  // a whole K-quant super-block per row
    s.n_ff = 256;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.type = type;
    ASSERT_TRUE(write_synthetic_model(s, dir + "/m.gguf").ok());
    auto base = Model::load(dir + "/m.gguf");
    ASSERT_TRUE(base.ok());
    auto adapter = load_adapter(
        synth_peft(dir + "/a", (*base)->config(),
                   std::vector<LoraTarget>(std::begin(kTargets), std::end(kTargets)), 5),
        **base);
    auto ctx = make_ctx(*base);
    const auto plain = logits_of(*ctx);
    ASSERT_TRUE(apply_adapter(*ctx, adapter, 0.0f).ok());
    EXPECT_TRUE(has_adapter(*ctx, *adapter));
    const auto zero = logits_of(*ctx);
    ASSERT_EQ(plain.size(), zero.size());
    EXPECT_EQ(0, std::memcmp(plain.data(), zero.data(), plain.size() * sizeof(float)));
    // The unmerged path works on quantized weights: a non-zero scale changes the output.
    ASSERT_TRUE(apply_adapter(*ctx, adapter, 1.0f).ok());
    EXPECT_GT(max_abs_diff(plain, logits_of(*ctx)), 1e-3f);
  }
}

TEST(Lora, PeftAndGgufFormsGiveTheSameLogits) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  const std::string peft =
      synth_peft(dir + "/peft", base->config(),
                 std::vector<LoraTarget>(std::begin(kTargets), std::end(kTargets)), 9);
  write_gguf_twin(peft, base->config(), dir + "/twin.gguf");
  auto from_peft = load_adapter(peft, *base);
  auto from_gguf = load_adapter(dir + "/twin.gguf", *base);
  ASSERT_TRUE(from_peft && from_gguf);
  EXPECT_EQ(from_peft->info().format, "peft");
  EXPECT_EQ(from_gguf->info().format, "gguf");
  EXPECT_EQ(from_gguf->info().n_params, from_peft->info().n_params);
  auto ctx = make_ctx(base);
  ASSERT_TRUE(apply_adapter(*ctx, from_peft).ok());
  const auto lp = logits_of(*ctx);
  ASSERT_TRUE(remove_adapter(*ctx, *from_peft));
  ASSERT_TRUE(apply_adapter(*ctx, from_gguf).ok());
  const auto lg = logits_of(*ctx);
  EXPECT_EQ(lp, lg);

  // kandil's own converter writes the same GGUF adapter.
  ASSERT_TRUE(convert_peft_to_gguf(peft, base.get(), dir + "/conv.gguf").ok());
  auto conv = load_adapter(dir + "/conv.gguf", *base);
  ASSERT_TRUE(conv);
  ASSERT_TRUE(set_adapters(*ctx, *AdapterSet::create(*base, {{conv, 1.0f}})).ok());
  EXPECT_EQ(lp, logits_of(*ctx));
  // Without a base it refuses q/k (their row order depends on the base).
  auto no_base = convert_peft_to_gguf(peft, nullptr, dir + "/nb.gguf");
  ASSERT_FALSE(no_base.ok());
  EXPECT_NE(no_base.error().message.find("-m BASE"), std::string::npos);
}

TEST(Lora, F16AndQ8StorageStayCloseToF32) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  const std::string peft =
      synth_peft(dir + "/p", base->config(),
                 std::vector<LoraTarget>(std::begin(kTargets), std::end(kTargets)), 21, 32);
  auto ctx = make_ctx(base);
  const auto plain = logits_of(*ctx);
  std::vector<float> ref;
  uint64_t ref_bytes = 0;
  for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::Q8_0}) {
    SCOPED_TRACE(std::string(tensor_type_name(t)));
    auto a = LoraAdapter::load(peft, *base, {t});
    ASSERT_TRUE(a.ok()) << a.error().message;
    ASSERT_TRUE(set_adapters(*ctx, *AdapterSet::create(*base, {{*a, 1.0f}})).ok());
    const auto l = logits_of(*ctx);
    if (t == TensorType::F32) {
      ref = l;
      ref_bytes = (*a)->bytes();
      continue;
    }
    EXPECT_LT((*a)->bytes(), ref_bytes);
    const float effect = max_abs_diff(ref, plain);
    EXPECT_LT(max_abs_diff(l, ref), 0.05f * effect) << "effect " << effect;
  }
  EXPECT_FALSE(LoraAdapter::load(peft, *base, {TensorType::Q4_0}).ok());
}

TEST(Lora, RsLoraScalesByAlphaOverSqrtRank) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  // Same tensors, rsLoRA or not: rsLoRA's alpha/√r = 16/2 equals plain alpha/r with scale 4 here.
  const std::vector<LoraTarget> t = {LoraTarget::v, LoraTarget::up};
  auto plain = load_adapter(synth_peft(dir + "/p", base->config(), t, 3, 4, false), *base);
  auto rs = load_adapter(synth_peft(dir + "/r", base->config(), t, 3, 4, true), *base);
  EXPECT_TRUE(rs->info().rslora);
  auto ctx = make_ctx(base);
  ASSERT_TRUE(apply_adapter(*ctx, plain, 2.0f).ok());
  const auto a = logits_of(*ctx);
  ASSERT_TRUE(set_adapters(*ctx, nullptr).ok());
  ASSERT_TRUE(apply_adapter(*ctx, rs, 1.0f).ok());
  EXPECT_LT(max_abs_diff(a, logits_of(*ctx)), 1e-5f);
  // Converted to GGUF, rsLoRA is folded into alpha.
  ASSERT_TRUE(convert_peft_to_gguf(dir + "/r", nullptr, dir + "/r.gguf").ok());
  auto g = load_adapter(dir + "/r.gguf", *base);
  ASSERT_TRUE(set_adapters(*ctx, *AdapterSet::create(*base, {{g, 1.0f}})).ok());
  EXPECT_LT(max_abs_diff(a, logits_of(*ctx)), 1e-5f);
}

TEST(Lora, ApplyDeltasMatchesNaiveReference) {
  ThreadPool pool(2);
  const int64_t n_in = 48, n_tokens = 5;
  const int64_t outs[] = {40, 24};
  const int64_t ranks[] = {3, 7};
  std::vector<std::vector<float>> as, bs;
  std::vector<std::vector<LowRankDelta>> deltas(2);
  for (int t = 0; t < 2; ++t) {
    for (int k = 0; k < 2; ++k) {
      as.push_back(testing::random_row(ranks[k] * n_in, 10 + t * 2 + k));
      bs.push_back(testing::random_row(outs[t] * ranks[k], 20 + t * 2 + k));
      LowRankDelta d;
      d.a = {TensorType::F32, n_in, ranks[k], reinterpret_cast<const uint8_t*>(as.back().data()),
             static_cast<size_t>(n_in) * 4};
      d.b = {TensorType::F32, ranks[k], outs[t], reinterpret_cast<const uint8_t*>(bs.back().data()),
             static_cast<size_t>(ranks[k]) * 4};
      d.scale = 0.5f + static_cast<float>(k);
      deltas[static_cast<size_t>(t)].push_back(d);
    }
  }
  // A reserve() sized for these deltas (one layer holding both targets as q and k).
  AdapterDeltas set;
  set.layers.resize(1);
  set.layers[0][0] = deltas[0];
  set.layers[0][1] = deltas[1];
  DeltaScratch scratch;
  scratch.reserve(set, n_tokens);
  const auto x = testing::random_row(n_tokens * n_in, 3);
  std::vector<float> y0 = testing::random_row(n_tokens * outs[0], 4);
  std::vector<float> y1 = testing::random_row(n_tokens * outs[1], 5);
  std::vector<std::vector<double>> want = {{y0.begin(), y0.end()}, {y1.begin(), y1.end()}};
  for (int t = 0; t < 2; ++t) {
    for (const LowRankDelta& d : deltas[static_cast<size_t>(t)]) {
      const float* a = reinterpret_cast<const float*>(d.a.data);
      const float* b = reinterpret_cast<const float*>(d.b.data);
      for (int64_t i = 0; i < n_tokens; ++i) {
        for (int64_t o = 0; o < outs[t]; ++o) {
          double acc = 0;
          for (int64_t r = 0; r < d.a.n_out; ++r) {
            double ax = 0;
            for (int64_t j = 0; j < n_in; ++j) ax += double{a[r * n_in + j]} * x[i * n_in + j];
            acc += double{b[o * d.a.n_out + r]} * ax;
          }
          want[static_cast<size_t>(t)][static_cast<size_t>(i * outs[t] + o)] += d.scale * acc;
        }
      }
    }
  }
  const DeltaTarget targets[] = {{&deltas[0], y0.data()}, {&deltas[1], y1.data()}};
  apply_deltas(pool, targets, x.data(), n_tokens, scratch);
  for (size_t i = 0; i < y0.size(); ++i) EXPECT_NEAR(y0[i], want[0][i], 1e-3);
  for (size_t i = 0; i < y1.size(); ++i) EXPECT_NEAR(y1[i], want[1][i], 1e-3);
}

TEST(Lora, SetApiRegistryAndSwap) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  AdapterRegistry reg(base);
  auto a = reg.load("a", synth_peft(dir + "/a", base->config(), {LoraTarget::q}, 1));
  auto b = reg.load("b", synth_peft(dir + "/b", base->config(), {LoraTarget::down}, 2));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(reg.load("a", dir + "/b").ok());
  auto list = reg.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].first, "a");
  EXPECT_EQ(list[0].second.targets, std::vector<std::string>{"q_proj"});

  auto ctx = make_ctx(base);
  EXPECT_EQ(active_adapters(*ctx), nullptr);
  ASSERT_TRUE(apply_adapter(*ctx, *a, 1.0f).ok());
  ASSERT_TRUE(apply_adapter(*ctx, *b, 0.5f).ok());
  ASSERT_TRUE(apply_adapter(*ctx, *a, 2.0f).ok());  // rescale, not a second entry
  auto active = active_adapters(*ctx);
  ASSERT_TRUE(active);
  ASSERT_EQ(active->adapters().size(), 2u);
  EXPECT_EQ(active->adapters()[0].scale, 2.0f);
  EXPECT_TRUE(has_adapter(*ctx, **b));
  EXPECT_TRUE(remove_adapter(*ctx, **b));
  EXPECT_FALSE(remove_adapter(*ctx, **b));
  EXPECT_FALSE(has_adapter(*ctx, **b));

  // Unloading from the registry leaves active sets working (they hold their adapters).
  EXPECT_TRUE(reg.unload("a"));
  EXPECT_FALSE(reg.unload("a"));
  EXPECT_EQ(reg.get("a"), nullptr);
  EXPECT_TRUE(has_adapter(*ctx, **a));
  const auto with_a = logits_of(*ctx);
  ASSERT_TRUE(set_adapters(*ctx, nullptr).ok());
  EXPECT_NE(with_a, logits_of(*ctx));

  // Duplicates, non-finite scales and foreign shapes are refused.
  EXPECT_FALSE(AdapterSet::create(*base, {{*b, 1.0f}, {*b, 1.0f}}).ok());
  EXPECT_FALSE(AdapterSet::create(*base, {{*b, NAN}}).ok());
  SynthSpec other;
  other.n_layer = 3;
  ASSERT_TRUE(write_synthetic_model(other, dir + "/other.gguf").ok());
  auto om = Model::load(dir + "/other.gguf");
  ASSERT_TRUE(om.ok());
  auto octx = make_ctx(*om);
  auto set_b = AdapterSet::create(*base, {{*b, 1.0f}});
  ASSERT_TRUE(set_b.ok());
  EXPECT_FALSE(set_adapters(*octx, *set_b).ok());
  EXPECT_FALSE(AdapterSet::create(**om, {{*b, 1.0f}}).ok());
}

TEST(Lora, MergedWeightsUnmergeRestoresF32BitExactly) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  auto a = load_adapter(
      synth_peft(dir + "/a", base->config(), {LoraTarget::q, LoraTarget::down}, 4), *base);
  const ModelConfig& c = base->config();
  std::vector<std::vector<float>> store;
  MergedWeights::Matrices mats(static_cast<size_t>(c.n_layer));
  for (int32_t l = 0; l < c.n_layer; ++l) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const std::string name = "blk." + std::to_string(l) + "." +
                               std::string(lora_target_gguf_name(static_cast<LoraTarget>(t))) +
                               ".weight";
      const GgufTensorInfo* info = base->gguf().find_tensor(name);
      ASSERT_NE(info, nullptr);
      store.emplace_back(static_cast<size_t>(info->n_elements()));
      std::memcpy(store.back().data(), info->data, info->nbytes);
    }
  }
  for (int32_t l = 0; l < c.n_layer; ++l) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      mats[static_cast<size_t>(l)][static_cast<size_t>(t)] =
          store[static_cast<size_t>(l * kNumLoraTargets + t)].data();
    }
  }
  const auto original = store;
  auto m = MergedWeights::merge(mats, {{a, 1.5f}});
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_NE(store, original);
  EXPECT_GT(m->saved_bytes(), 0u);
  m->unmerge();
  for (size_t i = 0; i < store.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(store[i].data(), original[i].data(), store[i].size() * 4)) << i;
  }
  mats[0][0] = nullptr;
  EXPECT_FALSE(MergedWeights::merge(mats, {{a, 1.0f}}).ok());
}

// --- validation -------------------------------------------------------------------------------

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump();
}

TEST(Lora, PeftValidationErrorsNameTheProblem) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  const std::string peft = synth_peft(dir + "/p", base->config(), {LoraTarget::k}, 1);
  const auto good = nlohmann::json::parse(testing::read_file(peft + "/adapter_config.json"));
  auto expect_error = [&](const nlohmann::json& cfg, const std::string& needle) {
    write_json(peft + "/adapter_config.json", cfg);
    auto r = LoraAdapter::load(peft, *base);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  auto with = [&](const std::string& key, const nlohmann::json& v) {
    auto j = good;
    j[key] = v;
    return j;
  };
  expect_error(with("use_dora", true), "DoRA");
  expect_error(with("modules_to_save", {"lm_head"}), "modules_to_save");
  expect_error(with("bias", "all"), "bias");
  expect_error(with("peft_type", "IA3"), "peft_type");
  expect_error(with("r", 0), "'r'");
  expect_error(with("lora_alpha", "x"), "lora_alpha");
  expect_error(with("alpha_pattern", {{"q_proj", 4}}), "alpha_pattern");
  expect_error(with("target_modules", {"q_proj", "v_proj"}), "not in target_modules");
  expect_error(with("target_modules", "(unclosed"), "regex");
  expect_error(with("target_modules", 5), "target_modules");
  // A regex that matches, and "all-linear", are accepted.
  write_json(peft + "/adapter_config.json", with("target_modules", ".*\\.(k_proj|v_proj)"));
  EXPECT_TRUE(LoraAdapter::load(peft, *base).ok());
  write_json(peft + "/adapter_config.json", with("target_modules", "all-linear"));
  EXPECT_TRUE(LoraAdapter::load(peft, *base).ok());
  write_json(peft + "/adapter_config.json", good);
  {
    std::ofstream(peft + "/adapter_config.json") << "{not json";
    auto r = LoraAdapter::load(peft, *base);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("invalid JSON"), std::string::npos);
  }
  write_json(peft + "/adapter_config.json", good);

  // k under GQA is [kv_dim, r]: a B the size of q's is refused with the KV-head explanation.
  auto write_tensors = [&](int64_t b_rows, const std::string& extra_name) {
    SafetensorsWriter w;
    std::vector<float> a(8 * 64, 0.1f), b(static_cast<size_t>(b_rows) * 8, 0.1f);
    const std::string p = "base_model.model.model.layers.0.self_attn.k_proj.";
    ASSERT_TRUE(
        w.add(p + "lora_A.weight", SafetensorsDType::F32, {8, 64}, a.data(), a.size() * 4).ok());
    ASSERT_TRUE(
        w.add(p + "lora_B.weight", SafetensorsDType::F32, {b_rows, 8}, b.data(), b.size() * 4)
            .ok());
    if (!extra_name.empty()) {
      ASSERT_TRUE(w.add(extra_name, SafetensorsDType::F32, {8, 64}, a.data(), a.size() * 4).ok());
    }
    ASSERT_TRUE(w.write_file(peft + "/adapter_model.safetensors").ok());
  };
  write_tensors(64, "");
  auto r = LoraAdapter::load(peft, *base);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("KV heads"), std::string::npos) << r.error().message;
  write_tensors(32, "base_model.model.lm_head.lora_A.weight");
  r = LoraAdapter::load(peft, *base);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("lm_head"), std::string::npos) << r.error().message;
  write_tensors(32, "base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight");
  r = LoraAdapter::load(peft, *base);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no matching lora_B"), std::string::npos) << r.error().message;
  write_tensors(32, "base_model.model.model.layers.0.self_attn.k_proj.lora_magnitude_vector");
  r = LoraAdapter::load(peft, *base);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("DoRA"), std::string::npos);
  write_tensors(32, "");
  EXPECT_TRUE(LoraAdapter::load(peft, *base).ok());
  std::filesystem::remove(peft + "/adapter_model.safetensors");
  r = LoraAdapter::load(peft, *base);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not found"), std::string::npos);
}

TEST(Lora, GgufValidationErrorsNameTheProblem) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  // A base model is not an adapter.
  auto r = LoraAdapter::load(dir + "/base.gguf", *base);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("general.type"), std::string::npos) << r.error().message;

  auto write = [&](const std::string& adapter_type, const std::string& tensor, int64_t n_in,
                   int64_t rank, int64_t n_out) {
    GgufWriter w;
    w.set_string("general.type", "adapter");
    w.set_string("adapter.type", adapter_type);
    w.set_f32("adapter.lora.alpha", 8.0f);
    std::vector<float> a(static_cast<size_t>(n_in * rank), 0.01f),
        b(static_cast<size_t>(rank * n_out), 0.01f);
    EXPECT_TRUE(
        w.add_tensor(tensor + ".lora_a", TensorType::F32, {n_in, rank}, a.data(), a.size() * 4)
            .ok());
    EXPECT_TRUE(
        w.add_tensor(tensor + ".lora_b", TensorType::F32, {rank, n_out}, b.data(), b.size() * 4)
            .ok());
    EXPECT_TRUE(w.write_file(dir + "/a.gguf").ok());
    return LoraAdapter::load(dir + "/a.gguf", *base);
  };
  auto expect = [](const Result<std::shared_ptr<const LoraAdapter>>& res, const std::string& s) {
    ASSERT_FALSE(res.ok()) << s;
    EXPECT_NE(res.error().message.find(s), std::string::npos) << res.error().message;
  };
  EXPECT_TRUE(write("lora", "blk.1.attn_v.weight", 64, 4, 32).ok());
  expect(write("control_vector", "blk.1.attn_v.weight", 64, 4, 32), "only 'lora'");
  expect(write("lora", "blk.1.attn_v.weight", 64, 4, 64), "KV heads");
  expect(write("lora", "blk.5.attn_v.weight", 64, 4, 32), "only 2 layers");
  expect(write("lora", "token_embd.weight", 64, 4, 320), "not supported");
  expect(write("lora", "blk.0.attn_norm.weight", 64, 4, 64), "attn_norm");
  auto ok = write("lora", "blk.0.ffn_down.weight", 96, 4, 64);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->info().targets, std::vector<std::string>{"down_proj"});
  EXPECT_EQ((*ok)->info().alpha, 8.0f);
  auto info = LoraAdapter::inspect(dir + "/a.gguf");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->rank_max, 4);
  EXPECT_EQ(info->n_pairs, 1);
}

// --- concurrency (also run under ThreadSanitizer: build/tsan/kandil_lora_tests, scripts/test.sh) ---

std::vector<TokenId> greedy(Context& ctx, int n) {
  SamplingParams sp;
  sp.temperature = 0;
  Sampler sampler(sp, ctx.model().config().n_vocab);
  GenerateOptions g;
  g.n_predict = n;
  g.ignore_eog = true;
  ctx.clear();
  auto r = generate(ctx, sampler, {1, 300, 310, 270}, g);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r->tokens : std::vector<TokenId>{};
}

TEST(LoraConcurrency, SwapWhileGeneratingSeesOneWholeSetPerSequence) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  const std::vector<LoraTarget> all(std::begin(kTargets), std::end(kTargets));
  auto a1 = load_adapter(synth_peft(dir + "/a1", base->config(), all, 11, 8, false, 0.6f), *base);
  auto a2 = load_adapter(synth_peft(dir + "/a2", base->config(), all, 12, 8, false, 0.6f), *base);
  ASSERT_TRUE(a1 && a2);
  std::vector<std::shared_ptr<const AdapterSet>> sets = {
      nullptr, *AdapterSet::create(*base, {{a1, 2.0f}}), *AdapterSet::create(*base, {{a2, 2.0f}})};
  constexpr int kTokens = 12;
  std::vector<std::vector<TokenId>> refs;
  for (const auto& s : sets) {
    auto ctx = make_ctx(base, 1);
    ASSERT_TRUE(set_adapters(*ctx, s).ok());
    refs.push_back(greedy(*ctx, kTokens));
  }
  ASSERT_NE(refs[0], refs[1]);
  ASSERT_NE(refs[0], refs[2]);
  ASSERT_NE(refs[1], refs[2]);

  // Workers generate until the swapper has published many sets and each worker has finished
  // enough sequences (bounded in time so the ThreadSanitizer build stays fast).
  constexpr int kThreads = 3, kMinSequences = 6, kMinSwaps = 2000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<std::unique_ptr<Context>> ctxs;
  for (int i = 0; i < kThreads; ++i) ctxs.push_back(make_ctx(base, 1));
  std::atomic<bool> done{false};
  std::atomic<int64_t> swaps{0};
  std::thread swapper([&] {
    for (int64_t k = 0; !done.load(); ++k) {
      for (auto& c : ctxs) EXPECT_TRUE(set_adapters(*c, sets[static_cast<size_t>(k % 3)]).ok());
      swaps.fetch_add(1);
    }
  });
  std::vector<std::vector<std::vector<TokenId>>> outputs(kThreads);
  std::vector<std::thread> workers;
  std::atomic<int> seen_mask{0};  // which references some sequence matched so far
  for (int i = 0; i < kThreads; ++i) {
    workers.emplace_back([&, i] {
      // Start once the swapper runs (a loaded machine may not schedule it at once), then keep
      // generating until enough sequences, swaps and distinct sets were seen, or the deadline.
      while (swaps.load() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
      auto& out = outputs[static_cast<size_t>(i)];
      auto distinct = [&] { return std::popcount(static_cast<unsigned>(seen_mask.load())); };
      while (static_cast<int>(out.size()) < kMinSequences ||
             ((swaps.load() < kMinSwaps || distinct() < 2) &&
              std::chrono::steady_clock::now() < deadline)) {
        out.push_back(greedy(*ctxs[static_cast<size_t>(i)], kTokens));
        for (int k = 0; k < 3; ++k) {
          if (out.back() == refs[static_cast<size_t>(k)]) seen_mask.fetch_or(1 << k);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  swapper.join();
  int matched[3] = {};
  for (const auto& per_thread : outputs) {
    for (const auto& seq : per_thread) {
      int which = -1;
      for (int k = 0; k < 3; ++k) {
        if (seq == refs[static_cast<size_t>(k)]) which = k;
      }
      EXPECT_GE(which, 0) << "a sequence matched no single-set reference (torn set?)";
      if (which >= 0) ++matched[which];
    }
  }
  std::printf("[ sets seen ] none %d, a1 %d, a2 %d over %lld swaps\n", matched[0], matched[1],
              matched[2], static_cast<long long>(swaps.load()));
  EXPECT_GE(swaps.load(), 1);
  // Swaps happened while the workers ran: more than one set was seen.
  EXPECT_GE((matched[0] > 0) + (matched[1] > 0) + (matched[2] > 0), 2);
}

TEST(LoraConcurrency, EveryDecodeStepSeesOneWholeSet) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  const std::vector<LoraTarget> all(std::begin(kTargets), std::end(kTargets));
  auto a1 = load_adapter(synth_peft(dir + "/a1", base->config(), all, 41), *base);
  auto a2 = load_adapter(synth_peft(dir + "/a2", base->config(), all, 42), *base);
  ASSERT_TRUE(a1 && a2);
  std::vector<std::shared_ptr<const AdapterSet>> sets = {
      *AdapterSet::create(*base, {{a1, 1.0f}}), *AdapterSet::create(*base, {{a2, 1.0f}}),
      *AdapterSet::create(*base, {{a1, 1.0f}, {a2, 1.0f}})};
  auto last_logits = [&](Context& ctx) {
    ctx.clear();
    EXPECT_TRUE(ctx.decode(kPrompt).ok());
    const int32_t V = base->config().n_vocab;
    return std::vector<float>(ctx.logits(), ctx.logits() + V);
  };
  std::vector<std::vector<float>> refs;
  for (const auto& s : sets) {
    auto ctx = make_ctx(base, 1);
    ASSERT_TRUE(set_adapters(*ctx, s).ok());
    refs.push_back(last_logits(*ctx));
  }
  auto ctx = make_ctx(base, 1);
  ASSERT_TRUE(set_adapters(*ctx, sets[0]).ok());
  std::atomic<bool> done{false};
  std::thread swapper([&] {
    for (int64_t k = 1; !done.load(); ++k) {
      EXPECT_TRUE(set_adapters(*ctx, sets[static_cast<size_t>(k % 3)]).ok());
    }
  });
  int seen[3] = {};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int step = 0; step < 60 || ((seen[0] == 0) + (seen[1] == 0) + (seen[2] == 0) > 1 &&
                                   std::chrono::steady_clock::now() < deadline);
       ++step) {
    const auto l = last_logits(*ctx);
    int which = -1;
    for (int k = 0; k < 3; ++k) {
      if (l == refs[static_cast<size_t>(k)]) which = k;
    }
    EXPECT_GE(which, 0) << "step " << step << " mixed two sets";
    if (which < 0) break;
    ++seen[which];
  }
  done = true;
  swapper.join();
  EXPECT_GE((seen[0] > 0) + (seen[1] > 0) + (seen[2] > 0), 2);
}

TEST(LoraConcurrency, ConcurrentApplyAndRemoveLoseNoUpdate) {
  const std::string dir = temp_dir();
  auto base = synth_model(dir, TensorType::F32);
  ASSERT_TRUE(base);
  std::vector<std::shared_ptr<const LoraAdapter>> adapters;
  for (int i = 0; i < 4; ++i) {
    adapters.push_back(load_adapter(
        synth_peft(dir + "/a" + std::to_string(i), base->config(), {LoraTarget::v}, 30 + i, 2),
        *base));
  }
  auto ctx = make_ctx(base, 1);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      for (int k = 0; k < 50; ++k) {
        EXPECT_TRUE(apply_adapter(*ctx, adapters[static_cast<size_t>(i)], 1.0f).ok());
        EXPECT_TRUE(remove_adapter(*ctx, *adapters[static_cast<size_t>(i)]));
      }
      EXPECT_TRUE(apply_adapter(*ctx, adapters[static_cast<size_t>(i)], 1.0f).ok());
    });
  }
  std::thread decoder([&] {
    for (int k = 0; k < 20; ++k) logits_of(*ctx);
  });
  for (auto& t : ts) t.join();
  decoder.join();
  auto active = active_adapters(*ctx);
  ASSERT_TRUE(active);
  EXPECT_EQ(active->adapters().size(), 4u);
}

}  // namespace
}  // namespace kandil
