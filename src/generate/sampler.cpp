// Sampler chain (llama.cpp order): logit bias -> penalties -> top-k -> top-p -> min-p ->
// temperature
// -> softmax -> seeded draw. All work happens in buffers sized at construction: sample() does not
// allocate.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "kandil/sampling.h"

namespace kandil {
namespace {

// 64-bit seed folded into the 32-bit state seed of mt19937 (same seed -> same sequence).
uint32_t fold_seed(uint64_t seed) { return static_cast<uint32_t>(seed ^ (seed >> 32)); }

// Uniform double in [0, 1) with 53 random bits, independent of the standard library's
// distribution implementations (so sequences are the same with every toolchain).
double uniform01(std::mt19937& rng) {
  const uint32_t a = rng() >> 5;  // 27 bits
  const uint32_t b = rng() >> 6;  // 26 bits
  return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) *
         (1.0 / 9007199254740992.0);
}

}  // namespace

Sampler::Sampler(SamplingParams params, int32_t n_vocab)
    : params_(std::move(params)),
      n_vocab_(n_vocab < 0 ? 0 : n_vocab),
      rng_(fold_seed(params_.seed)) {
  cands_.resize(static_cast<size_t>(n_vocab_));
  counts_.assign(static_cast<size_t>(n_vocab_), 0);
}

void Sampler::reset() {
  history_.clear();
  std::fill(counts_.begin(), counts_.end(), 0);
  rng_.seed(fold_seed(params_.seed));
}

template <class LogitRef>
void Sampler::bias_and_penalize(LogitRef&& logit) {
  // 1. Logit bias on the raw logits.
  for (const auto& [id, bias] : params_.logit_bias) {
    if (id >= 0 && id < n_vocab_) logit(id) += bias;
  }

  // 2. Penalties over the recent window (llama.cpp: repeat penalty first, then OpenAI's frequency
  // and presence). Each distinct token is penalised once: its counts_ entry is negated while
  // visited and restored afterwards, so no scratch set is needed.
  const bool penalties = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                         params_.presence_penalty != 0.0f;
  if (!penalties || history_.empty()) return;
  for (TokenId t : history_) {
    int32_t& c = counts_[static_cast<size_t>(t)];
    if (c <= 0) continue;  // already applied
    float& l = logit(t);
    if (params_.repeat_penalty != 1.0f) {
      l = l > 0.0f ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    }
    l -= static_cast<float>(c) * params_.frequency_penalty + params_.presence_penalty;
    c = -c;
  }
  for (TokenId t : history_) {
    int32_t& c = counts_[static_cast<size_t>(t)];
    if (c < 0) c = -c;
  }
}

void Sampler::apply_bias_and_penalties(float* logits) {
  bias_and_penalize([logits](TokenId t) -> float& { return logits[t]; });
}

void Sampler::accept(TokenId token) {
  if (token < 0 || token >= n_vocab_) return;
  const int32_t window = params_.repeat_last_n;
  if (window == 0) return;  // penalties look at no history
  history_.push_back(token);
  ++counts_[static_cast<size_t>(token)];
  if (window > 0) {
    while (history_.size() > static_cast<size_t>(window)) {
      --counts_[static_cast<size_t>(history_.front())];
      history_.pop_front();
    }
  }
}

TokenId Sampler::sample(const float* logits) {
  if (n_vocab_ == 0) return 0;
  const size_t n_vocab = static_cast<size_t>(n_vocab_);
  for (size_t i = 0; i < n_vocab; ++i) {
    cands_[i] = Candidate{static_cast<TokenId>(i), logits[i], 0.0f};
  }

  // 1. Logit bias, 2. penalties.
  bias_and_penalize([this](TokenId t) -> float& { return cands_[static_cast<size_t>(t)].logit; });

  // Greedy: argmax, ties to the lowest id.
  if (params_.temperature <= 0.0f) {
    size_t best = 0;
    float best_logit = cands_[0].logit;
    for (size_t i = 1; i < n_vocab; ++i) {
      if (cands_[i].logit > best_logit) {
        best = i;
        best_logit = cands_[i].logit;
      }
    }
    return cands_[best].id;
  }

  // Order used for sorting: higher logit first, then lower id (deterministic ties).
  auto before = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };

  auto at = [this](size_t i) { return cands_.begin() + static_cast<std::ptrdiff_t>(i); };
  size_t n = n_vocab;
  size_t sorted = 0;  // cands_[0, sorted) holds the best `sorted` candidates, in order

  // 3. Top-k.
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    const size_t k = static_cast<size_t>(params_.top_k);
    std::nth_element(at(0), at(k - 1), at(n), before);
    n = k;
    std::sort(at(0), at(n), before);
    sorted = n;
  }

  auto max_logit = [&]() {
    if (sorted > 0) return cands_[0].logit;
    float m = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) m = std::max(m, cands_[i].logit);
    return m;
  };

  float m = max_logit();
  if (!(m > -std::numeric_limits<float>::infinity())) {
    // Every candidate is banned (or NaN): nothing sensible to draw; fall back to the best id order.
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
      if (before(cands_[i], cands_[best])) best = i;
    }
    return cands_[best].id;
  }

  // 4. Top-p on the (untempered) softmax of the remaining candidates: keep the smallest prefix of
  // the sorted list whose cumulative probability reaches p (at least one token).
  if (params_.top_p < 1.0f && n > 1) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += std::exp(cands_[i].logit - m);
    const double target = static_cast<double>(params_.top_p) * sum;
    double cum = 0.0;
    size_t keep = 0;
    size_t chunk = 64;
    // Sort incrementally (partial sorts of growing chunks) instead of sorting the whole vocab.
    while (keep < n) {
      if (keep >= sorted) {
        const size_t end = std::min(n, sorted + chunk);
        if (end < n) std::nth_element(at(sorted), at(end - 1), at(n), before);
        std::sort(at(sorted), at(end), before);
        sorted = end;
        chunk *= 2;
      }
      cum += std::exp(cands_[keep].logit - m);
      ++keep;
      if (cum >= target) break;
    }
    n = std::max<size_t>(keep, 1);
  }

  // 5. Min-p: keep tokens whose probability is at least min_p times the largest
  // (p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p)).
  if (params_.min_p > 0.0f && n > 1) {
    const float threshold = m + std::log(params_.min_p);
    if (sorted >= n) {
      size_t keep = 1;
      while (keep < n && cands_[keep].logit >= threshold) ++keep;
      n = keep;
    } else {
      // Unsorted: compact in place, preserving order.
      size_t w = 0;
      for (size_t i = 0; i < n; ++i) {
        if (cands_[i].logit >= threshold) cands_[w++] = cands_[i];
      }
      n = std::max<size_t>(w, 1);  // the max itself always passes, so w >= 1
    }
  }

  // 6. Temperature, 7. softmax, 8. draw.
  const float inv_t = 1.0f / params_.temperature;
  const float mt = m * inv_t;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float p = std::exp(cands_[i].logit * inv_t - mt);
    cands_[i].p = p;
    sum += p;
  }
  const double target = uniform01(rng_) * sum;
  double cum = 0.0;
  size_t last_positive = 0;
  for (size_t i = 0; i < n; ++i) {
    if (cands_[i].p <= 0.0f) continue;
    last_positive = i;
    cum += cands_[i].p;
    if (target < cum) return cands_[i].id;
  }
  return cands_[last_positive].id;  // rounding at the very top of the range
}

// ---- StopMatcher ----------------------------------------------------------------------------

std::string StopMatcher::feed(std::string_view text, bool& stopped) {
  if (stopped_) {
    stopped = true;
    return {};
  }
  held_.append(text);

  // The stop string that completes first (earliest end; on a tie the one starting earliest), as
  // if the text had arrived byte by byte: the result never depends on how the text is chunked.
  size_t hit = std::string::npos;
  size_t hit_end = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    const size_t at = held_.find(s);
    if (at == std::string::npos) continue;
    const size_t end = at + s.size();
    if (end < hit_end || (end == hit_end && at < hit)) {
      hit = at;
      hit_end = end;
    }
  }
  if (hit != std::string::npos) {
    std::string out = held_.substr(0, hit);
    held_.clear();
    stopped_ = true;
    stopped = true;
    return out;
  }

  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    const size_t max_len = std::min(s.size() - (s.empty() ? 0 : 1), held_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  stopped = false;
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

}  // namespace kandil
