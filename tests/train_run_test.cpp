// Training runs and the optimizer: AdamW against hand-computed values, schedules, clipping,
// gradient accumulation, loss curves (falls, deterministic, resumable from a checkpoint), and the
// training forward against the inference forward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "kandil/train.h"
#include "test_util.h"
#include "train/optim.h"
#include "train_test_util.h"

namespace kandil {
namespace {

using train_test::make_batch;
using train_test::synth_model;

TEST(TrainOptim, AdamWTwoStepsMatchHandComputedValues) {
  std::vector<float> w = {0.5f, -1.0f, 2.0f};
  train::AdamState s;
  train::AdamHyper h;
  h.lr = 0.1f;
  h.weight_decay = 0.01f;
  const std::vector<float> g1 = {0.1f, -0.2f, 0.3f}, g2 = {0.2f, 0.1f, -0.1f};
  train::adamw_update(w, g1, s, h, 1, true);
  EXPECT_NEAR(w[0], 0.399500010, 1e-6);
  EXPECT_NEAR(w[1], -0.899000005, 1e-6);
  EXPECT_NEAR(w[2], 1.898000003, 1e-6);
  train::adamw_update(w, g2, s, h, 2, true);
  EXPECT_NEAR(w[0], 0.302582314, 1e-6);
  EXPECT_NEAR(w[1], -0.871467303, 1e-6);
  EXPECT_NEAR(w[2], 1.856080148, 1e-6);
  // Without decay the weight term is absent: one step moves by lr * sign(g).
  std::vector<float> u = {0.5f};
  train::AdamState s2;
  const std::vector<float> gu = {-3.0f};
  train::adamw_update(u, gu, s2, h, 1, false);
  EXPECT_NEAR(u[0], 0.6, 1e-6);
}

TEST(TrainOptim, ScheduleValuesAtKnownSteps) {
  TrainOptions o;
  o.lr = 1.0f;
  o.warmup_steps = 10;
  o.total_steps = 110;
  for (LrSchedule sch : {LrSchedule::constant, LrSchedule::linear, LrSchedule::cosine}) {
    o.schedule = sch;
    EXPECT_FLOAT_EQ(scheduled_lr(o, 0), 0.0f);
    EXPECT_FLOAT_EQ(scheduled_lr(o, 5), 0.5f);
    EXPECT_FLOAT_EQ(scheduled_lr(o, 10), 1.0f);
  }
  o.schedule = LrSchedule::constant;
  EXPECT_FLOAT_EQ(scheduled_lr(o, 1000), 1.0f);
  o.schedule = LrSchedule::linear;
  EXPECT_FLOAT_EQ(scheduled_lr(o, 60), 0.5f);
  EXPECT_FLOAT_EQ(scheduled_lr(o, 110), 0.0f);
  o.schedule = LrSchedule::cosine;
  EXPECT_FLOAT_EQ(scheduled_lr(o, 60), 0.5f);
  EXPECT_NEAR(scheduled_lr(o, 35), 0.8535534f, 1e-6);
  EXPECT_FLOAT_EQ(scheduled_lr(o, 110), 0.0f);
  o.min_lr_ratio = 0.1f;
  EXPECT_FLOAT_EQ(scheduled_lr(o, 110), 0.1f);
  EXPECT_FLOAT_EQ(scheduled_lr(o, 500), 0.1f);
  EXPECT_NEAR(scheduled_lr(o, 60), 0.55f, 1e-6);
  o.warmup_steps = 0;
  o.schedule = LrSchedule::constant;
  EXPECT_FLOAT_EQ(scheduled_lr(o, 0), 1.0f);
}

TEST(TrainOptim, GlobalNormClipping) {
  std::vector<TrainParam> p(2);
  p[0].grad = {3.0f};
  p[1].grad = {0.0f, 4.0f};
  const double norm = train::global_grad_norm(p);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_EQ(train::clip_grad_norm(p, norm, 10.0f), 1.0f);
  EXPECT_EQ(p[0].grad[0], 3.0f);
  const float f = train::clip_grad_norm(p, norm, 1.0f);
  EXPECT_NEAR(f, 0.2f, 1e-6);
  EXPECT_NEAR(p[0].grad[0], 0.6f, 1e-6);
  EXPECT_NEAR(p[1].grad[1], 0.8f, 1e-6);
}

std::shared_ptr<const Model> run_model(const char* file) {
  if (kandil::testing::has_fixture("models/stories260K.gguf")) {
    auto m = Model::load(kandil::testing::fixture("models/stories260K.gguf"));
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : nullptr;
  }
  return synth_model(train_test::tiny_spec(), file);
}

TrainOptions lora_options() {
  TrainOptions o;
  o.lora_rank = 8;
  o.lora_alpha = 16.0f;
  o.lora_targets = {LoraTarget::q,    LoraTarget::k,  LoraTarget::v,   LoraTarget::o,
                    LoraTarget::gate, LoraTarget::up, LoraTarget::down};
  o.lr = 1e-2f;
  o.n_threads = 2;
  o.seed = 7;
  return o;
}

TEST(TrainRun, LoraLossFallsSteadily) {
  auto model = run_model("falls.gguf");
  ASSERT_TRUE(model);
  TrainOptions o = lora_options();
  o.schedule = LrSchedule::cosine;  // warm-up, then decay: no end-of-run oscillation
  o.warmup_steps = 3;
  o.total_steps = 50;
  auto tr = Trainer::create(model, o);
  ASSERT_TRUE(tr.ok()) << tr.error().message;
  const TrainBatch b = make_batch(2, 24, model->config().n_vocab, 11);
  std::vector<float> losses;
  for (int i = 0; i < 50; ++i) {
    auto st = (*tr)->step(b);
    ASSERT_TRUE(st.ok());
    EXPECT_TRUE(st->updated);
    EXPECT_EQ(st->step, i + 1);
    losses.push_back(st->loss);
  }
  for (size_t i = 0; i < losses.size(); i += 10) std::printf("step %zu loss %.4f\n", i, losses[i]);
  // Each block of 10 steps has a lower mean than the one before, and the end is far below the
  // start.
  double prev = 1e30;
  for (int blk = 0; blk < 5; ++blk) {
    double mean = 0.0;
    for (int i = 0; i < 10; ++i) mean += losses[static_cast<size_t>(blk * 10 + i)];
    mean /= 10.0;
    EXPECT_LT(mean, prev) << "block " << blk;
    prev = mean;
  }
  EXPECT_LT(losses.back(), 0.6f * losses.front());
}

std::vector<float> run_steps(Trainer& t, int n, int32_t n_vocab, uint32_t first) {
  std::vector<float> out;
  for (int i = 0; i < n; ++i) {
    auto st = t.step(make_batch(2, 8, n_vocab, first + static_cast<uint32_t>(i)));
    EXPECT_TRUE(st.ok());
    out.push_back(st.ok() ? st->loss : -1.0f);
  }
  return out;
}

TEST(TrainRun, SameSeedAndDataGiveTheSameCurve) {
  auto model = synth_model(train_test::tiny_spec(), "det.gguf");
  ASSERT_TRUE(model);
  const int32_t V = model->config().n_vocab;
  auto a = Trainer::create(model, lora_options());
  auto b = Trainer::create(model, lora_options());
  ASSERT_TRUE(a.ok() && b.ok());
  const auto la = run_steps(**a, 6, V, 1);
  const auto lb = run_steps(**b, 6, V, 1);
  EXPECT_EQ(la, lb);
  EXPECT_NE(la.front(), la.back());
  // Another seed gives other LoRA A matrices, so another curve.
  TrainOptions o = lora_options();
  o.seed = 8;
  auto c = Trainer::create(model, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(run_steps(**c, 6, V, 1), la);
}

void resume_case(TrainOptions o, int save_after, int total) {
  auto model = synth_model(train_test::tiny_spec(), "resume.gguf");
  ASSERT_TRUE(model);
  const int32_t V = model->config().n_vocab;
  const std::string ck = kandil::testing::temp_dir() + "/trainer.safetensors";
  auto a = Trainer::create(model, o);
  ASSERT_TRUE(a.ok());
  auto head = run_steps(**a, save_after, V, 100);
  ASSERT_TRUE((*a)->save_checkpoint(ck).ok());
  auto tail = run_steps(**a, total - save_after, V, 100 + static_cast<uint32_t>(save_after));

  auto b = Trainer::create(model, o);
  ASSERT_TRUE(b.ok());
  auto r = (*b)->load_checkpoint(ck);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*b)->optimizer_step(), save_after / o.grad_accum);
  auto resumed = run_steps(**b, total - save_after, V, 100 + static_cast<uint32_t>(save_after));
  EXPECT_EQ(tail, resumed);
  for (size_t i = 0; i < (*a)->params().size(); ++i) {
    EXPECT_EQ((*a)->params()[i].value, (*b)->params()[i].value) << (*a)->params()[i].name;
  }
}

TEST(TrainRun, ResumeFromCheckpointContinuesTheIdenticalCurve) {
  TrainOptions o = lora_options();
  o.schedule = LrSchedule::cosine;
  o.warmup_steps = 2;
  o.total_steps = 10;
  resume_case(o, 4, 9);
}

TEST(TrainRun, ResumeMidAccumulationFullFineTuning) {
  TrainOptions o;
  o.mode = TrainOptions::Mode::full;
  o.lr = 1e-3f;
  o.weight_decay = 0.1f;
  o.grad_accum = 2;
  o.n_threads = 2;
  resume_case(o, 3, 8);  // saved after 3 micro-batches: one gradient half-accumulated
}

TEST(TrainRun, CheckpointErrors) {
  auto model = synth_model(train_test::tiny_spec(), "ckerr.gguf");
  ASSERT_TRUE(model);
  const std::string dir = kandil::testing::temp_dir();
  auto lora = Trainer::create(model, lora_options());
  ASSERT_TRUE(lora.ok());
  ASSERT_TRUE((*lora)->save_checkpoint(dir + "/lora.safetensors").ok());
  TrainOptions full;
  full.mode = TrainOptions::Mode::full;
  full.n_threads = 1;
  auto f = Trainer::create(model, full);
  ASSERT_TRUE(f.ok());
  auto r = (*f)->load_checkpoint(dir + "/lora.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("lora"), std::string::npos);
  TrainOptions fewer = lora_options();
  fewer.lora_targets = {LoraTarget::q};
  auto l2 = Trainer::create(model, fewer);
  ASSERT_TRUE(l2.ok());
  EXPECT_FALSE((*l2)->load_checkpoint(dir + "/lora.safetensors").ok());
  EXPECT_FALSE((*l2)->load_checkpoint(dir + "/missing.safetensors").ok());
  TrainOptions rank = lora_options();
  rank.lora_rank = 4;
  auto l3 = Trainer::create(model, rank);
  ASSERT_TRUE(l3.ok());
  auto r3 = (*l3)->load_checkpoint(dir + "/lora.safetensors");
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message.find("shape"), std::string::npos);
}

// Two micro-batches of the same batch with grad_accum 2 = one step on it with grad_accum 1.
TEST(TrainRun, GradientAccumulationAveragesMicroBatches) {
  auto model = synth_model(train_test::tiny_spec(), "accum.gguf");
  ASSERT_TRUE(model);
  TrainOptions o = lora_options();
  auto one = Trainer::create(model, o);
  o.grad_accum = 2;
  auto two = Trainer::create(model, o);
  ASSERT_TRUE(one.ok() && two.ok());
  const TrainBatch b = make_batch(2, 8, model->config().n_vocab, 3);
  auto s1 = (*one)->step(b);
  auto s2a = (*two)->step(b);
  ASSERT_TRUE(s1.ok() && s2a.ok());
  EXPECT_FALSE(s2a->updated);
  EXPECT_EQ(s2a->step, 0);
  auto s2b = (*two)->step(b);
  ASSERT_TRUE(s2b.ok());
  EXPECT_TRUE(s2b->updated);
  // Same mean gradient (AdamW is nearly scale-invariant, so the norm is what shows a missing
  // 1/grad_accum); the summation order differs, so equal to rounding, not bit for bit.
  EXPECT_GT(s1->grad_norm, 0.0f);
  EXPECT_NEAR(s1->grad_norm, s2b->grad_norm, 1e-5f * s1->grad_norm);
  for (size_t i = 0; i < (*one)->params().size(); ++i) {
    const auto& a = (*one)->params()[i].value;
    const auto& b2 = (*two)->params()[i].value;
    for (size_t j = 0; j < a.size(); ++j) ASSERT_NEAR(a[j], b2[j], 1e-7f) << i << " " << j;
  }
}

// The training forward computes what inference computes: the mean next-token loss from
// Context logits equals Trainer::eval (LoRA B = 0 leaves the base model unchanged).
TEST(TrainRun, TrainingForwardMatchesInference) {
  auto model = synth_model(train_test::tiny_spec(), "infer.gguf");
  ASSERT_TRUE(model);
  auto tr = Trainer::create(model, lora_options());
  ASSERT_TRUE(tr.ok());
  const TrainBatch b = make_batch(1, 12, model->config().n_vocab, 4);
  ContextParams cp;
  cp.n_threads = 1;
  cp.cache_type = KvCacheType::f32;
  auto ctx = Context::create(model, cp);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE((*ctx)->decode(b.tokens, true).ok());
  double sum = 0.0;
  int n = 0;
  const int32_t V = model->config().n_vocab;
  for (int t = 0; t < b.T; ++t) {
    if (b.targets[static_cast<size_t>(t)] < 0) continue;
    const float* z = (*ctx)->logits(t);
    double mx = z[0], s = 0.0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(z[i]));
    for (int i = 0; i < V; ++i) s += std::exp(z[i] - mx);
    sum += std::log(s) + mx - z[b.targets[static_cast<size_t>(t)]];
    ++n;
  }
  auto loss = (*tr)->eval(b);
  ASSERT_TRUE(loss.ok());
  EXPECT_NEAR(*loss, sum / n, 1e-4 * sum / n);
}

}  // namespace
}  // namespace kandil
