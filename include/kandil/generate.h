// The generation loop: prompt -> tokens -> streamed text, and llama.cpp-compatible perplexity.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/model.h"
#include "kandil/result.h"
#include "kandil/sampling.h"

namespace kandil {

struct TokenProb {
  TokenId id;
  float prob;
};

struct GenerateOptions {
  int32_t n_predict = 128;        // < 0: until end-of-generation or the context is full
  std::vector<std::string> stop;  // stop strings (not included in the text)
  int32_t n_probs = 0;            // record the top-n softmax of the raw logits per step
  bool ignore_eog = false;        // keep going past end-of-generation tokens
};

enum class StopReason { length, eog, stop_string, context_full, cancelled };
std::string_view stop_reason_name(StopReason r);

struct GenerateResult {
  std::vector<TokenId> prompt_tokens;
  std::vector<TokenId> tokens;                // generated ids (the EOG token is included)
  std::vector<std::vector<TokenProb>> probs;  // per generated step, when n_probs > 0
  std::string text;                           // generated text, cut at a stop string
  StopReason stop_reason = StopReason::length;
  double prompt_ms = 0.0;      // evaluating the prompt
  double generation_ms = 0.0;  // all decode steps after the prompt
};

// Receives text as soon as it forms whole UTF-8 characters and cannot be part of a stop string.
// Return false to cancel generation.
using TextCallback = std::function<bool(std::string_view)>;

// Evaluates `prompt` from the context's current position, then samples until a limit.
Result<GenerateResult> generate(Context& ctx, Sampler& sampler, const std::vector<TokenId>& prompt,
                                const GenerateOptions& options, const TextCallback& on_text = {});

// Top-n softmax (temperature 1) of raw logits, most probable first.
std::vector<TokenProb> top_probs(const float* logits, int32_t n_vocab, int32_t n);

struct PerplexityResult {
  int32_t n_tokens = 0;
  int32_t n_ctx = 0;
  int32_t n_chunks = 0;
  int64_t n_scored = 0;
  double ppl = 0.0;
  double ppl_stderr = 0.0;
  std::vector<double> chunk_ppl;    // each chunk alone
  std::vector<double> running_ppl;  // after chunk k
  double seconds = 0.0;
};

// llama.cpp's method: non-overlapping chunks of n_ctx tokens, BOS as each chunk's first token,
// KV cache cleared per chunk, the second half of each chunk scored (positions n_ctx/2 .. n_ctx-2
// predicting the next token). `progress(done, total)` is called after each chunk.
Result<PerplexityResult> perplexity(Context& ctx, const std::vector<TokenId>& tokens, int32_t n_ctx,
                                    const std::function<void(int32_t, int32_t)>& progress = {});

}  // namespace kandil
