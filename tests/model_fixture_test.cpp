// The engine against llama.cpp's reference outputs in ../shared/fixtures (README sections 2, 3, 6).
// Teacher forcing: the reference's own greedy tokens are fed, and every step's top-10
// log-probabilities are compared; greedy choices must agree wherever the reference's top-1 leads
// its top-2 clearly.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kandil/generate.h"
#include "kandil/model.h"
#include "test_util.h"

namespace kandil {
namespace {

using nlohmann::json;

struct FixtureCase {
  std::string model;
  double tol;  // max |Δ log-prob| over the reference's top-10
  // Against llama.cpp's default F16 KV cache, where it differs from `tol`. Only stories260K needs
  // this: its peaked distributions magnify F16 rounding flips that depend on summation order
  // (llama.cpp's own F16 vs F32 cache runs differ by up to 6e-3 in probability; exact math is
  // 0.03 away from its F16-cache reference, see fixtures README section 6). Its F32-cache run
  // must still match within `tol`, and its greedy text exactly (FixtureGeneration below).
  double tol_f16_cache = 0;
};

std::vector<float> log_softmax(const float* logits, int n) {
  float mx = logits[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  std::vector<float> out(static_cast<size_t>(n));
  const double lse = std::log(sum);
  for (int i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<float>(logits[i] - mx - lse);
  return out;
}

// Compares one reference case (one prompt) step by step. Returns the largest difference seen.
struct CaseResult {
  double worst = 0;  // max |Δ log-prob| over all steps' top-10
  int greedy_agree = 0;
  int steps = 0;
};

CaseResult check_case(const std::shared_ptr<const Model>& model, KvCacheType cache, const json& c,
                      double tol, const std::string& label) {
  ContextParams p;
  p.n_ctx = 512;
  p.n_threads = 2;
  p.cache_type = cache;
  auto ctx = Context::create(model, p);
  EXPECT_TRUE(ctx.ok());
  const int n_vocab = model->config().n_vocab;

  // Our tokenizer must produce the reference prompt ids.
  const auto prompt = c["prompt_tokens"].get<std::vector<TokenId>>();
  EXPECT_EQ(model->tokenizer().encode(c["prompt"].get<std::string>(), true, false), prompt)
      << label;

  EXPECT_TRUE((*ctx)->decode(prompt).ok());
  CaseResult r;
  const auto& steps = c["steps"];
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& st = steps[i];
    auto lp = log_softmax((*ctx)->logits(), n_vocab);
    const auto ids = st["top_ids"].get<std::vector<int>>();
    const auto ref_lp = st["top_logprobs"].get<std::vector<double>>();
    for (size_t k = 0; k < ids.size(); ++k) {
      const double d = std::abs(lp[static_cast<size_t>(ids[k])] - ref_lp[k]);
      r.worst = std::max(r.worst, d);
      EXPECT_LE(d, tol) << label << " step " << i << " token " << ids[k];
    }
    // Greedy agreement where the reference is not near a tie.
    const int ours = static_cast<int>(std::max_element(lp.begin(), lp.end()) - lp.begin());
    r.steps++;
    r.greedy_agree += ours == st["token"].get<int>();
    if (ref_lp[0] - ref_lp[1] > 2 * tol) {
      EXPECT_EQ(ours, st["token"].get<int>()) << label << " step " << i;
    }
    const TokenId next = st["token"].get<TokenId>();
    if (i + 1 < steps.size()) {
      EXPECT_TRUE((*ctx)->decode(&next, 1).ok());
    }
  }
  return r;
}

class FixtureModels : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(FixtureModels, TeacherForcedTop10MatchesLlamaCpp) {
  const FixtureCase& fc = GetParam();
  KANDIL_REQUIRE_FIXTURE("models/" + fc.model + ".gguf");
  KANDIL_REQUIRE_FIXTURE("refs/" + fc.model + ".json");
  auto model = Model::load(kandil::testing::fixture("models/" + fc.model + ".gguf"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  const json ref = json::parse(
      kandil::testing::read_file(kandil::testing::fixture("refs/" + fc.model + ".json")));
  // Our F16 cache mirrors llama.cpp's default ("cases"); the F32 cache its -ctk f32 -ctv f32 run.
  for (auto [cache, key] :
       {std::pair{KvCacheType::f16, "cases"}, std::pair{KvCacheType::f32, "cases_kv_f32"}}) {
    for (const auto& c : ref[key]) {
      const std::string label = fc.model + " " + key + " '" + c["prompt"].get<std::string>() + "'";
      const double tol =
          cache == KvCacheType::f16 && fc.tol_f16_cache > 0 ? fc.tol_f16_cache : fc.tol;
      const CaseResult r = check_case(*model, cache, c, tol, label);
      std::printf("  %-60s max |dlogprob| = %.2e (tolerance %.3g), greedy %d/%d\n", label.c_str(),
                  r.worst, tol, r.greedy_agree, r.steps);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FixtureModels,
    ::testing::Values(FixtureCase{"stories260K", 2e-3, 1e-2}, FixtureCase{"tiny-f32", 2e-3},
                      FixtureCase{"tiny-f16", 5e-3}, FixtureCase{"small-f16", 5e-3},
                      FixtureCase{"small-Q8_0", 0.15}, FixtureCase{"small-Q4_0", 0.15},
                      FixtureCase{"small-Q4_K_M", 0.15}, FixtureCase{"small-Q6_K", 0.15}),
    [](const auto& info) {
      std::string n = info.param.model;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(FixtureGeneration, Stories260KGreedyEqualsReferenceExactly) {
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  KANDIL_REQUIRE_FIXTURE("refs/stories260K.json");
  auto model = Model::load(kandil::testing::fixture("models/stories260K.gguf"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  const json ref =
      json::parse(kandil::testing::read_file(kandil::testing::fixture("refs/stories260K.json")));
  for (auto [cache, key] :
       {std::pair{KvCacheType::f16, "cases"}, std::pair{KvCacheType::f32, "cases_kv_f32"}}) {
    for (const auto& c : ref[key]) {
      ContextParams p;
      p.n_ctx = 512;
      p.n_threads = 2;
      p.cache_type = cache;
      auto ctx = Context::create(*model, p);
      ASSERT_TRUE(ctx.ok());
      SamplingParams sp;
      sp.temperature = 0;
      Sampler sampler(sp, (*model)->config().n_vocab);
      GenerateOptions g;
      g.n_predict = 32;
      auto prompt = (*model)->tokenizer().encode(c["prompt"].get<std::string>(), true, false);
      auto r = generate(**ctx, sampler, prompt, g);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->tokens, c["greedy_tokens"].get<std::vector<TokenId>>()) << key;
      EXPECT_EQ(r->text, c["content"].get<std::string>()) << key;
    }
  }
}

class FixturePerplexity : public ::testing::TestWithParam<std::string> {};

TEST_P(FixturePerplexity, WithinHalfPercentOfLlamaCpp) {
  const std::string name = GetParam();
  KANDIL_REQUIRE_FIXTURE("models/" + name + ".gguf");
  KANDIL_REQUIRE_FIXTURE("refs/" + name + ".ppl.json");
  KANDIL_REQUIRE_FIXTURE("text/ppl.txt");
  auto model = Model::load(kandil::testing::fixture("models/" + name + ".gguf"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  const json ref = json::parse(
      kandil::testing::read_file(kandil::testing::fixture("refs/" + name + ".ppl.json")));
  std::string text = kandil::testing::read_file(kandil::testing::fixture("text/ppl.txt"));
  text.pop_back();  // one trailing newline removed, as llama-perplexity does
  auto tokens = (*model)->tokenizer().encode(text, true, false);
  EXPECT_EQ(tokens, ref["tokens"].get<std::vector<TokenId>>());
  ContextParams p;
  p.n_ctx = 128;
  p.n_batch = 128;
  p.n_threads = 2;
  auto ctx = Context::create(*model, p);
  ASSERT_TRUE(ctx.ok());
  auto r = perplexity(**ctx, tokens, 128);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double expected = ref["final_ppl"].get<double>();
  std::printf("  %s: PPL %.4f (llama.cpp %.4f, %d chunks)\n", name.c_str(), r->ppl, expected,
              r->n_chunks);
  EXPECT_EQ(r->n_chunks, static_cast<int>(ref["chunks"].size()));
  EXPECT_NEAR(r->ppl, expected, expected * 0.005);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixturePerplexity, ::testing::Values("stories260K", "small-f16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace kandil
