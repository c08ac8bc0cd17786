// Helpers of the training tests: a tiny synthesized model and random batches.
#pragma once

#include <memory>
#include <random>
#include <string>

#include "kandil/model.h"
#include "kandil/synth.h"
#include "kandil/train.h"
#include "test_util.h"

namespace kandil::train_test {

// 2 layers, n_embd 32, GQA 4/2 heads (head_dim 8), n_ff 64, the smallest vocabulary synth allows.
inline SynthSpec tiny_spec() {
  SynthSpec s;
  s.n_layer = 2;
  s.n_embd = 32;
  s.n_ff = 64;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 288;
  s.n_ctx = 64;
  s.seed = 321;
  return s;
}

inline std::shared_ptr<const Model> synth_model(const SynthSpec& s, const std::string& file) {
  const std::string path = kandil::testing::temp_dir() + "/" + file;
  auto w = write_synthetic_model(s, path);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  if (!w.ok()) return nullptr;
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : nullptr;
}

// Random tokens; targets are the next token of the sequence, the last one and a few others
// ignored (-100).
inline TrainBatch make_batch(int32_t B, int32_t T, int32_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(3, n_vocab - 1);
  TrainBatch b;
  b.B = B;
  b.T = T;
  const size_t n = static_cast<size_t>(B) * static_cast<size_t>(T);
  b.tokens.resize(n);
  b.targets.resize(n);
  for (size_t i = 0; i < n; ++i) b.tokens[i] = tok(rng);
  for (int32_t s = 0; s < B; ++s) {
    for (int32_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>(s) * static_cast<size_t>(T) + static_cast<size_t>(t);
      b.targets[i] = t + 1 < T && (i % 5 != 3) ? b.tokens[i + 1] : TrainBatch::kIgnoreTarget;
    }
  }
  return b;
}

}  // namespace kandil::train_test
