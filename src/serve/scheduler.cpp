#include "serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <optional>

namespace kandil::serve {

struct Scheduler::Slot {
  int32_t id = 0;
  std::vector<TokenId> cached;  // the tokens whose KV entries the slot holds (= n_past)
  std::string cached_key;       // the adapter set they were computed with
  std::shared_ptr<Job> job;     // null: idle
  size_t next_prompt = 0;       // next prompt token to evaluate
  TokenId pending = -1;         // sampled token, evaluated in the next pass
  int32_t generated = 0;
  int64_t reused = 0;
  std::unique_ptr<Sampler> sampler;
  std::optional<StopMatcher> stop;
  std::optional<StreamDecoder> dec;
};

Scheduler::Scheduler(std::shared_ptr<const Model> model, std::unique_ptr<SlotEngine> engine,
                     SchedulerOptions options)
    : model_(std::move(model)), engine_(std::move(engine)), options_(options) {
  n_ctx_ = engine_->n_ctx();
  n_slots_ = engine_->n_slots();
  n_vocab_ = model_->config().n_vocab;
  options_.n_batch = std::max<int32_t>(options_.n_batch, n_slots_ + 1);
  for (int32_t i = 0; i < n_slots_; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { drain(Clock::now()); }

SubmitResult Scheduler::submit(GenRequest request, std::shared_ptr<RequestStream> out) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return SubmitResult::stopping;
    // Room: every slot plus max_queue waiting requests.
    if (static_cast<int64_t>(queue_.size()) + busy_.load() >=
        static_cast<int64_t>(n_slots_) + options_.max_queue) {
      return SubmitResult::queue_full;
    }
    queue_.push_back(std::make_shared<Job>(Job{std::move(request), std::move(out)}));
  }
  cv_.notify_all();
  return SubmitResult::ok;
}

void Scheduler::drain(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    drain_deadline_ = std::min(drain_deadline_, deadline);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s.queue_depth = static_cast<int32_t>(queue_.size());
  }
  s.slots_busy = busy_.load();
  s.n_slots = n_slots_;
  s.kv_used_ratio = static_cast<double>(kv_used_.load()) /
                    (static_cast<double>(n_slots_) * static_cast<double>(std::max(1, n_ctx_)));
  s.steps = steps_.load();
  s.reused_tokens = reused_.load();
  s.prompt_tokens = prompt_total_.load();
  s.generated_tokens = generated_total_.load();
  s.cancelled = cancelled_total_.load();
  return s;
}

void Scheduler::loop() {
  std::vector<std::shared_ptr<Job>> incoming;
  while (true) {
    incoming.clear();
    std::vector<std::shared_ptr<Job>> dropped;
    bool past_deadline = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (busy_.load() == 0) cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      past_deadline = stopping_ && Clock::now() >= drain_deadline_;
      if (past_deadline) {
        dropped.assign(queue_.begin(), queue_.end());
        queue_.clear();
      }
      if (stopping_ && busy_.load() == 0 && queue_.empty() && dropped.empty()) break;
      int32_t free = n_slots_ - busy_.load();
      while (free-- > 0 && !queue_.empty()) {
        incoming.push_back(std::move(queue_.front()));
        queue_.pop_front();
        ++busy_;  // counted from here, so submit() never sees a request in neither place
      }
    }
    for (auto& j : dropped)
      j->out->finish(Finish{"cancelled", "the server is shutting down",
                            static_cast<int64_t>(j->req.prompt.size()), 0, 0});
    if (past_deadline) {
      for (auto& s : slots_) {
        if (s->job) finish(*s, "cancelled", "the server is shutting down");
      }
    }
    assign(incoming);
    if (busy_.load() > 0) step();
  }
}

void Scheduler::assign(std::vector<std::shared_ptr<Job>>& incoming) {
  const Tokenizer& tok = model_->tokenizer();
  for (auto& job : incoming) {
    const auto& prompt = job->req.prompt;
    if (job->out->cancelled() || Clock::now() >= job->req.deadline) {
      job->out->finish(Finish{"cancelled", "", static_cast<int64_t>(prompt.size()), 0, 0});
      --busy_;
      continue;
    }
    // The idle slot whose cache shares the longest prefix with the prompt (ties: the shortest
    // cache, keeping longer ones for prompts that may continue them).
    Slot* best = nullptr;
    size_t best_common = 0;
    for (auto& s : slots_) {
      if (s->job) continue;
      size_t common = 0;
      if (s->cached_key == job->req.adapter_key) {
        const size_t lim = std::min(s->cached.size(), prompt.size());
        while (common < lim && s->cached[common] == prompt[common]) ++common;
      }
      if (!best || common > best_common ||
          (common == best_common && s->cached.size() < best->cached.size())) {
        best = s.get();
        best_common = common;
      }
    }
    if (!best) {  // cannot happen: the loop takes at most as many jobs as there are free slots
      job->out->finish(Finish{"error", "no free slot", static_cast<int64_t>(prompt.size()), 0, 0});
      --busy_;
      continue;
    }
    Slot& s = *best;
    // Never reuse the whole prompt: its last token must be evaluated for the first logits.
    const size_t keep = std::min(best_common, prompt.size() - 1);
    engine_->truncate(s.id, static_cast<int32_t>(keep));
    s.cached.resize(static_cast<size_t>(engine_->n_past(s.id)));
    s.cached_key = job->req.adapter_key;
    s.next_prompt = s.cached.size();
    s.reused = static_cast<int64_t>(s.cached.size());
    reused_ += s.reused;
    s.pending = -1;
    s.generated = 0;
    s.sampler = std::make_unique<Sampler>(job->req.sampling, n_vocab_);
    for (TokenId t : prompt) s.sampler->accept(t);
    s.stop.emplace(job->req.stop);
    s.dec.emplace(tok);
    s.job = std::move(job);
  }
}

void Scheduler::finish(Slot& s, const std::string& reason, const std::string& error) {
  if (!s.job) return;
  Finish f;
  f.reason = reason;
  f.error = error;
  f.prompt_tokens = static_cast<int64_t>(s.job->req.prompt.size());
  f.completion_tokens = s.generated;
  f.cached_tokens = s.reused;
  prompt_total_ += f.prompt_tokens;
  generated_total_ += f.completion_tokens;
  if (reason == "cancelled") ++cancelled_total_;
  s.job->out->finish(std::move(f));
  s.job.reset();
  s.pending = -1;
  s.sampler.reset();
  --busy_;
}

void Scheduler::step() {
  const auto now = Clock::now();
  for (auto& s : slots_) {
    if (s->job && (s->job->out->cancelled() || now >= s->job->req.deadline)) {
      finish(*s, "cancelled");
    }
  }
  std::vector<SlotEntry> entries;
  std::vector<Slot*> owners;
  int32_t budget = options_.n_batch;
  for (auto& s : slots_) {  // one token for every decoding slot
    if (!s->job || s->pending < 0) continue;
    entries.push_back(SlotEntry{s->id, &s->pending, 1, true, s->job->req.adapters});
    owners.push_back(s.get());
    --budget;
  }
  // Prefill chunks within what is left of the budget, starting at a rotating slot so no
  // prompt waits behind the others for long.
  for (int32_t k = 0; k < n_slots_ && budget > 0; ++k) {
    Slot& s = *slots_[static_cast<size_t>((steps_.load() + k) % n_slots_)];
    if (!s.job || s.pending >= 0) continue;
    const auto& prompt = s.job->req.prompt;
    const int32_t left = static_cast<int32_t>(prompt.size() - s.next_prompt);
    const int32_t take = std::min(left, budget);
    entries.push_back(
        SlotEntry{s.id, prompt.data() + s.next_prompt, take, take == left, s.job->req.adapters});
    owners.push_back(&s);
    budget -= take;
  }
  if (entries.empty()) return;
  auto r = engine_->decode(entries);
  ++steps_;
  if (!r.ok()) {
    for (Slot* s : owners) {
      finish(*s, "error", r.error().message);
      engine_->clear(s->id);
      s->cached.clear();
    }
  } else {
    for (size_t i = 0; i < entries.size(); ++i) {
      Slot& s = *owners[i];
      s.cached.insert(s.cached.end(), entries[i].tokens, entries[i].tokens + entries[i].n);
      if (s.pending < 0) s.next_prompt += static_cast<size_t>(entries[i].n);
      if (entries[i].logits) emit_token(s, i);
    }
  }
  int64_t used = 0;
  for (int32_t i = 0; i < n_slots_; ++i) used += engine_->n_past(i);
  kv_used_ = used;
}

void Scheduler::compute_logprobs(const float* logits, TokenId chosen, int32_t top,
                                 TokenLogprob& out) {
  float mx = -INFINITY;
  for (int32_t i = 0; i < n_vocab_; ++i) mx = std::max(mx, logits[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab_; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  const Tokenizer& tok = model_->tokenizer();
  out.id = chosen;
  out.piece = tok.token_to_piece(chosen, true);
  out.logprob = logits[chosen] - lse;
  out.top.clear();
  if (top <= 0) return;
  lp_scratch_.resize(static_cast<size_t>(n_vocab_));
  for (int32_t i = 0; i < n_vocab_; ++i) lp_scratch_[static_cast<size_t>(i)] = {logits[i], i};
  const auto k = static_cast<size_t>(std::min(top, n_vocab_));
  std::partial_sort(lp_scratch_.begin(), lp_scratch_.begin() + static_cast<std::ptrdiff_t>(k),
                    lp_scratch_.end(), [](const auto& a, const auto& b) {
                      return a.first > b.first || (a.first == b.first && a.second < b.second);
                    });
  for (size_t i = 0; i < k; ++i) {
    out.top.emplace_back(tok.token_to_piece(lp_scratch_[i].second, true),
                         lp_scratch_[i].first - lse);
  }
}

void Scheduler::emit_token(Slot& s, size_t entry) {
  const float* logits = engine_->logits(entry);
  const GenRequest& req = s.job->req;
  const TokenId t = s.sampler->sample(logits);
  s.sampler->accept(t);
  ++s.generated;
  Piece piece;
  if (req.logprobs) {
    piece.logprobs.emplace_back();
    compute_logprobs(logits, t, req.top_logprobs, piece.logprobs.back());
  }
  const bool eog = model_->tokenizer().is_eog(t) && !req.ignore_eos;
  bool stopped = false;
  if (!eog) piece.text = s.stop->feed(s.dec->push(t), stopped);
  const bool at_limit =
      s.generated >= req.max_tokens || static_cast<int32_t>(s.cached.size()) + 1 >= n_ctx_;
  if (!stopped && (eog || at_limit)) {  // the end: whatever was held back is text now
    piece.text += s.stop->feed(s.dec->flush(), stopped);
    if (!stopped) piece.text += s.stop->flush();
  }
  if (eog) piece.logprobs.clear();
  if (!piece.text.empty() || !piece.logprobs.empty()) s.job->out->push(std::move(piece));
  if (stopped || eog) {
    finish(s, "stop");
  } else if (at_limit) {
    finish(s, "length");
  } else {
    s.pending = t;
  }
}

}  // namespace kandil::serve
