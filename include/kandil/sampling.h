// Token sampling with llama.cpp / OpenAI semantics. The chain, in order:
//   logit bias -> repetition/presence/frequency penalties -> top-k -> top-p -> min-p
//   -> temperature -> draw (seeded). temperature <= 0 means greedy (argmax after bias and
//   penalties).
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kandil/tokenizer.h"

namespace kandil {

struct SamplingParams {
  float temperature = 0.8f;
  int32_t top_k = 40;   // <= 0: disabled
  float top_p = 0.95f;  // >= 1: disabled
  float min_p = 0.05f;  // <= 0: disabled
  float repeat_penalty =
      1.0f;                    // 1: disabled (llama.cpp: divide positive logits, multiply negative)
  int32_t repeat_last_n = 64;  // window of recent tokens the penalties look at (-1: whole history)
  float presence_penalty = 0.0f;                      // OpenAI: subtract once if the token occurred
  float frequency_penalty = 0.0f;                     // OpenAI: subtract count * penalty
  std::vector<std::pair<TokenId, float>> logit_bias;  // added to the raw logits
  uint64_t seed = 0xC0FFEE;
};

class Sampler {
 public:
  Sampler(SamplingParams params, int32_t n_vocab);

  // Picks the next token from raw logits (n_vocab floats; not modified).
  TokenId sample(const float* logits);
  // Records a token in the penalty history (prompt tokens too, as llama.cpp does).
  void accept(TokenId token);
  // Applies the first two stages of the chain (logit bias, then penalties over the recent
  // history) in place to n_vocab logits: what sample() works on. Exposed for tests and tools.
  void apply_bias_and_penalties(float* logits);
  void reset();
  const SamplingParams& params() const { return params_; }

 private:
  template <class LogitRef>
  void bias_and_penalize(LogitRef&& logit);

  SamplingParams params_;
  int32_t n_vocab_;
  std::mt19937 rng_;
  std::deque<TokenId> history_;
  struct Candidate {
    TokenId id;
    float logit;
    float p;
  };
  std::vector<Candidate> cands_;  // reused between calls: no allocation per token
  std::vector<int32_t> counts_;
};

// Finds stop strings in streamed text. feed() returns the text that is safe to emit now
// (held back while it could still be the start of a stop string) and sets `stopped` when a stop
// string occurred; the text from the stop string on is never emitted.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  std::string feed(std::string_view text, bool& stopped);
  std::string flush();  // held-back text at the end (no stop string occurred)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;  // once a stop string occurred, feed() emits nothing more
};

}  // namespace kandil
