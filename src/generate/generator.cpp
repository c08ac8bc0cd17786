#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kandil/generate.h"
#include "model/adapter_delta.h"

namespace kandil {
namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::length:
      return "length";
    case StopReason::eog:
      return "eog";
    case StopReason::stop_string:
      return "stop";
    case StopReason::context_full:
      return "context_full";
    case StopReason::cancelled:
      return "cancelled";
  }
  return "?";
}

std::vector<TokenProb> top_probs(const float* logits, int32_t n_vocab, int32_t n) {
  n = std::min(n, n_vocab);
  float mx = -INFINITY;
  for (int32_t i = 0; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  float sum = 0.0f;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - mx);
  std::vector<TokenId> ids(static_cast<size_t>(n_vocab));
  for (int32_t i = 0; i < n_vocab; ++i) ids[static_cast<size_t>(i)] = i;
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](TokenId a, TokenId b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<TokenProb> out;
  out.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    TokenId id = ids[static_cast<size_t>(i)];
    out.push_back({id, std::exp(logits[id] - mx) / sum});
  }
  return out;
}

Result<GenerateResult> generate(Context& ctx, Sampler& sampler, const std::vector<TokenId>& prompt,
                                const GenerateOptions& options, const TextCallback& on_text) {
  const Tokenizer& tok = ctx.model().tokenizer();
  const int32_t n_vocab = ctx.model().config().n_vocab;
  GenerateResult r;
  r.prompt_tokens = prompt;
  if (prompt.empty()) return Error{"the prompt has no tokens"};
  if (static_cast<int64_t>(prompt.size()) + ctx.n_past() > ctx.n_ctx()) {
    return Error{fmt::format("the prompt has {} tokens but only {} fit in the context of {}",
                             prompt.size(), ctx.n_ctx() - ctx.n_past(), ctx.n_ctx())};
  }

  // The sequence keeps the adapter set published when it starts, to its end (docs/lora.md): a
  // swap published meanwhile applies to the next generate() call.
  context_pin_deltas(ctx);
  struct Unpin {
    Context& ctx;
    ~Unpin() { context_unpin_deltas(ctx); }
  } unpin{ctx};

  auto t0 = std::chrono::steady_clock::now();
  KANDIL_CHECK_OK(ctx.decode(prompt));
  r.prompt_ms = ms_since(t0);
  for (TokenId id : prompt) sampler.accept(id);

  StreamDecoder decoder(tok);
  StopMatcher stops(options.stop);
  auto emit = [&](const std::string& text) {
    r.text += text;
    return !on_text || text.empty() || on_text(text);
  };

  t0 = std::chrono::steady_clock::now();
  bool stopped = false;
  for (int32_t step = 0; options.n_predict < 0 || step < options.n_predict; ++step) {
    const float* logits = ctx.logits();
    if (options.n_probs > 0) r.probs.push_back(top_probs(logits, n_vocab, options.n_probs));
    const TokenId id = sampler.sample(logits);
    sampler.accept(id);
    r.tokens.push_back(id);
    if (!options.ignore_eog && tok.is_eog(id)) {
      r.stop_reason = StopReason::eog;
      stopped = true;
      break;
    }
    bool hit = false;
    std::string text = stops.feed(decoder.push(id), hit);
    if (!emit(text)) {
      r.stop_reason = StopReason::cancelled;
      stopped = true;
      break;
    }
    if (hit) {
      r.stop_reason = StopReason::stop_string;
      stopped = true;
      break;
    }
    const bool last = options.n_predict >= 0 && step + 1 >= options.n_predict;
    if (last) break;
    if (ctx.n_past() >= ctx.n_ctx()) {
      r.stop_reason = StopReason::context_full;
      break;
    }
    KANDIL_CHECK_OK(ctx.decode(&id, 1));
  }
  if (!stopped || r.stop_reason == StopReason::eog) {
    bool hit = false;
    std::string tail = stops.feed(decoder.flush(), hit);
    if (!hit) tail += stops.flush();
    emit(tail);
  }
  r.generation_ms = ms_since(t0);
  return r;
}

Result<PerplexityResult> perplexity(Context& ctx, const std::vector<TokenId>& tokens, int32_t n_ctx,
                                    const std::function<void(int32_t, int32_t)>& progress) {
  const Tokenizer& tok = ctx.model().tokenizer();
  const int32_t n_vocab = ctx.model().config().n_vocab;
  PerplexityResult r;
  r.n_tokens = static_cast<int32_t>(tokens.size());
  r.n_ctx = n_ctx;
  if (n_ctx < 4) return Error{fmt::format("perplexity context must be at least 4, got {}", n_ctx)};
  if (n_ctx > ctx.n_ctx()) {
    return Error{
        fmt::format("perplexity context {} exceeds the context size {}", n_ctx, ctx.n_ctx())};
  }
  r.n_chunks = r.n_tokens / n_ctx;
  if (r.n_chunks == 0) {
    return Error{fmt::format("the text has {} tokens; at least {} (one chunk of -c) are needed",
                             r.n_tokens, n_ctx)};
  }
  const int32_t first = n_ctx / 2;
  auto t0 = std::chrono::steady_clock::now();
  double nll = 0.0, nll2 = 0.0;
  std::vector<TokenId> chunk(static_cast<size_t>(n_ctx));
  for (int32_t k = 0; k < r.n_chunks; ++k) {
    std::copy_n(tokens.begin() + int64_t{k} * n_ctx, n_ctx, chunk.begin());
    if (tok.add_bos() && tok.bos() >= 0) chunk[0] = tok.bos();
    ctx.clear();
    KANDIL_CHECK_OK(ctx.decode(chunk, /*all_logits=*/true));
    double chunk_nll = 0.0;
    for (int32_t j = first; j < n_ctx - 1; ++j) {
      const float* l = ctx.logits(j);
      float mx = l[0];
      for (int32_t i = 1; i < n_vocab; ++i) mx = std::max(mx, l[i]);
      double sum = 0.0;
      for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(l[i] - mx);
      const double v =
          -(static_cast<double>(l[chunk[static_cast<size_t>(j + 1)]] - mx) - std::log(sum));
      chunk_nll += v;
      nll += v;
      nll2 += v * v;
    }
    const int32_t scored = n_ctx - 1 - first;
    r.n_scored += scored;
    r.chunk_ppl.push_back(std::exp(chunk_nll / scored));
    r.running_ppl.push_back(std::exp(nll / static_cast<double>(r.n_scored)));
    if (progress) progress(k + 1, r.n_chunks);
  }
  const double n = static_cast<double>(r.n_scored);
  const double mean = nll / n, mean2 = nll2 / n;
  r.ppl = std::exp(mean);
  r.ppl_stderr = n > 1 ? r.ppl * std::sqrt((mean2 - mean * mean) / (n - 1)) : 0.0;
  r.seconds = ms_since(t0) / 1000.0;
  ctx.clear();
  return r;
}

}  // namespace kandil
