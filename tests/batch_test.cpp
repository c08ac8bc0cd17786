// Multi-sequence batched decoding (Context::decode_batch): every sequence's logits equal the same
// sequence decoded alone, over float and quantized weights, with prompts split across passes,
// per-entry adapters, prefix reuse through truncate(), and errors that leave every sequence as it
// was.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <fmt/core.h>

#include "kandil/lora.h"
#include "kandil/synth.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::temp_dir;

std::shared_ptr<const Model> synth_model(const std::string& dir, TensorType type) {
  SynthSpec s;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 128;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.type = type;
  s.seed = 91;
  const std::string path = dir + "/m.gguf";
  auto w = write_synthetic_model(s, path);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : nullptr;
}

std::unique_ptr<Context> make_ctx(const std::shared_ptr<const Model>& m, int32_t n_seq,
                                  int32_t n_batch = 512) {
  ContextParams p;
  p.n_ctx = 96;
  p.n_batch = n_batch;
  p.n_threads = 2;
  p.n_seq = n_seq;
  auto c = Context::create(m, p);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? std::move(*c) : nullptr;
}

std::vector<TokenId> random_tokens(std::mt19937& rng, int32_t n, int32_t n_vocab) {
  std::uniform_int_distribution<TokenId> d(3, n_vocab - 1);
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (TokenId& x : t) x = d(rng);
  return t;
}

TokenId argmax(const float* logits, int32_t n) {
  return static_cast<TokenId>(std::max_element(logits, logits + n) - logits);
}

// Greedy continuation of `prompt` for `steps` tokens in a single-sequence context, recording the
// logits of every step.
std::vector<std::vector<float>> solo_run(const std::shared_ptr<const Model>& m,
                                         const std::vector<TokenId>& prompt, int steps,
                                         const AdapterSet* set = nullptr) {
  auto ctx = make_ctx(m, 1);
  const int32_t V = m->config().n_vocab;
  if (set != nullptr) {
    auto shared = AdapterSet::create(*m, set->adapters());
    EXPECT_TRUE(shared.ok());
    EXPECT_TRUE(set_adapters(*ctx, *shared).ok());
  }
  std::vector<std::vector<float>> out;
  EXPECT_TRUE(ctx->decode(prompt).ok());
  for (int s = 0; s < steps; ++s) {
    out.emplace_back(ctx->logits(), ctx->logits() + V);
    const TokenId next = argmax(ctx->logits(), V);
    EXPECT_TRUE(ctx->decode(&next, 1).ok());
  }
  return out;
}

void expect_close(const std::vector<float>& want, const float* got, float tol,
                  const std::string& what) {
  float worst = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(want[i] - got[i]) / (1.0f + std::fabs(want[i])));
  }
  EXPECT_LE(worst, tol) << what;
  EXPECT_EQ(argmax(want.data(), static_cast<int32_t>(want.size())),
            argmax(got, static_cast<int32_t>(want.size())))
      << what;
}

// Three sequences of different lengths decoded together (prompts split over passes of 16 tokens,
// then one token each per step) give each sequence's solo logits.
void check_batched_equals_solo(TensorType type, float tol) {
  const std::string dir = temp_dir();
  auto m = synth_model(dir, type);
  ASSERT_NE(m, nullptr);
  const int32_t V = m->config().n_vocab;
  std::mt19937 rng(5);
  const std::vector<std::vector<TokenId>> prompts = {
      random_tokens(rng, 23, V), random_tokens(rng, 5, V), random_tokens(rng, 40, V)};
  const int steps = 6;
  std::vector<std::vector<std::vector<float>>> solo;
  for (const auto& p : prompts) solo.push_back(solo_run(m, p, steps));

  auto ctx = make_ctx(m, 4, /*n_batch=*/16);
  std::vector<SeqBatch> batch;
  const int32_t seqs[] = {2, 0, 3};  // any slots, in any order
  for (size_t i = 0; i < prompts.size(); ++i) {
    batch.push_back({seqs[i], prompts[i].data(), static_cast<int32_t>(prompts[i].size()), true});
  }
  ASSERT_TRUE(ctx->decode_batch(batch).ok());
  std::vector<TokenId> next(prompts.size());
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      const float* got = ctx->batch_logits(i);
      ASSERT_NE(got, nullptr);
      expect_close(solo[i][static_cast<size_t>(s)], got, tol,
                   fmt::format("{} sequence {} step {}", tensor_type_name(type), i, s));
      next[i] = argmax(got, V);
      batch[i] = {seqs[i], &next[i], 1, true};
    }
    if (s + 1 < steps) {
      ASSERT_TRUE(ctx->decode_batch(batch).ok());
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(ctx->n_past(seqs[i]), static_cast<int32_t>(prompts[i].size()) + steps - 1);
  }
  EXPECT_EQ(ctx->n_past(1), 0);  // an unused slot stays empty
}

TEST(Batch, BatchedEqualsSoloF32) { check_batched_equals_solo(TensorType::F32, 1e-4f); }
TEST(Batch, BatchedEqualsSoloF16) { check_batched_equals_solo(TensorType::F16, 1e-4f); }
TEST(Batch, BatchedEqualsSoloQ8_0) { check_batched_equals_solo(TensorType::Q8_0, 1e-4f); }
TEST(Batch, BatchedEqualsSoloQ4_K) { check_batched_equals_solo(TensorType::Q4_K, 1e-4f); }

TEST(Batch, PerEntryAdaptersMatchSoloContextsWithThatSet) {
  const std::string dir = temp_dir();
  auto m = synth_model(dir, TensorType::Q8_0);
  ASSERT_NE(m, nullptr);
  const int32_t V = m->config().n_vocab;
  auto make_adapter = [&](const std::string& sub, uint64_t seed) {
    LoraSynthSpec spec;
    spec.rank = 4;
    spec.seed = seed;
    spec.b_stddev = 0.3f;
    EXPECT_TRUE(write_synthetic_peft_adapter(m->config(), spec, dir + sub).ok());
    auto a = LoraAdapter::load(dir + sub, *m);
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
    return *a;
  };
  auto a1 = make_adapter("/a1", 1), a2 = make_adapter("/a2", 2);
  auto set1 = AdapterSet::create(*m, {{a1, 1.0f}});
  auto set12 = AdapterSet::create(*m, {{a1, 0.5f}, {a2, 1.5f}});
  ASSERT_TRUE(set1.ok() && set12.ok());

  std::mt19937 rng(9);
  const auto p0 = random_tokens(rng, 12, V), p1 = random_tokens(rng, 7, V),
             p2 = random_tokens(rng, 9, V), p3 = random_tokens(rng, 4, V);
  const auto s0 = solo_run(m, p0, 3, set1->get());
  const auto s1 = solo_run(m, p1, 3);
  const auto s2 = solo_run(m, p2, 3, set12->get());
  const auto s3 = solo_run(m, p3, 3, set1->get());
  // Adapters change the output (the test would be vacuous otherwise).
  const auto s0_base = solo_run(m, p0, 1);
  EXPECT_GT(std::fabs(s0_base[0][0] - s0[0][0]) + std::fabs(s0_base[0][5] - s0[0][5]), 1e-3f);

  auto ctx = make_ctx(m, 4);
  // Entries 0 and 3 share a set but are not neighbours; 1 has none; 2 stacks two adapters.
  std::vector<SeqBatch> batch = {{0, p0.data(), 12, true, set1->get()},
                                 {1, p1.data(), 7, true, nullptr},
                                 {2, p2.data(), 9, true, set12->get()},
                                 {3, p3.data(), 4, true, set1->get()}};
  const std::vector<const std::vector<std::vector<float>>*> solo = {&s0, &s1, &s2, &s3};
  std::vector<TokenId> next(4);
  for (int s = 0; s < 3; ++s) {
    ASSERT_TRUE(ctx->decode_batch(batch).ok());
    for (size_t i = 0; i < 4; ++i) {
      expect_close((*solo[i])[static_cast<size_t>(s)], ctx->batch_logits(i), 1e-4f,
                   fmt::format("adapter entry {} step {}", i, s));
      next[i] = argmax(ctx->batch_logits(i), V);
      batch[i].tokens = &next[i];
      batch[i].n = 1;
    }
  }
}

TEST(Batch, TruncateReusesAPrefix) {
  const std::string dir = temp_dir();
  auto m = synth_model(dir, TensorType::F16);
  ASSERT_NE(m, nullptr);
  const int32_t V = m->config().n_vocab;
  std::mt19937 rng(3);
  auto first = random_tokens(rng, 30, V);
  auto second = first;
  second.resize(18);
  const auto tail = random_tokens(rng, 10, V);
  second.insert(second.end(), tail.begin(), tail.end());
  const auto want = solo_run(m, second, 1);

  auto ctx = make_ctx(m, 2);
  SeqBatch b{1, first.data(), 30, false};
  ASSERT_TRUE(ctx->decode_batch(std::span(&b, 1)).ok());
  EXPECT_EQ(ctx->batch_logits(0), nullptr);  // no logits asked for
  ctx->truncate(1, 18);
  EXPECT_EQ(ctx->n_past(1), 18);
  b = {1, second.data() + 18, 10, true};
  ASSERT_TRUE(ctx->decode_batch(std::span(&b, 1)).ok());
  expect_close(want[0], ctx->batch_logits(0), 1e-5f, "prefix reuse");
  ctx->truncate(1, 99);  // cannot grow a sequence
  EXPECT_EQ(ctx->n_past(1), 28);
  ctx->clear(1);
  EXPECT_EQ(ctx->n_past(1), 0);
}

TEST(Batch, ErrorsLeaveEverySequenceUntouched) {
  const std::string dir = temp_dir();
  auto m = synth_model(dir, TensorType::F32);
  ASSERT_NE(m, nullptr);
  auto ctx = make_ctx(m, 2);
  const std::vector<TokenId> ok(10, 7);
  SeqBatch first{0, ok.data(), 10, true};
  ASSERT_TRUE(ctx->decode_batch(std::span(&first, 1)).ok());
  const std::vector<TokenId> bad = {5, -1};
  const std::vector<TokenId> too_long(90, 4);
  const std::vector<std::vector<SeqBatch>> cases = {
      {{0, ok.data(), 1, true}, {0, ok.data(), 1, true}},         // the same sequence twice
      {{0, ok.data(), 1, true}, {2, ok.data(), 1, true}},         // no such sequence
      {{1, ok.data(), 1, true}, {0, bad.data(), 2, true}},        // token outside the vocabulary
      {{1, ok.data(), 1, true}, {0, too_long.data(), 90, true}},  // context overflow (10 + 90 > 96)
      {{1, ok.data(), 0, true}},                                  // no tokens
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto r = ctx->decode_batch(cases[i]);
    EXPECT_FALSE(r.ok()) << "case " << i;
    EXPECT_EQ(ctx->n_past(0), 10) << "case " << i;
    EXPECT_EQ(ctx->n_past(1), 0) << "case " << i;
  }
  ContextParams p;
  p.n_seq = 0;
  EXPECT_FALSE(Context::create(m, p).ok());
}

}  // namespace
}  // namespace kandil
