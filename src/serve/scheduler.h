// Continuous batching: one thread owns the engine's N slots. Each step it moves queued requests
// into free slots (the idle slot sharing the longest cached prefix with the prompt; only the
// rest of the prompt is evaluated), then runs ONE forward pass holding one token for every
// decoding slot plus prefill chunks of prompting slots within the n_batch token budget (chunked
// prefill: a long prompt never stalls the others), and samples every slot that produced logits.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kandil/lora.h"
#include "kandil/model.h"
#include "kandil/sampling.h"
#include "serve/slot_engine.h"
#include "serve/stream.h"

namespace kandil::serve {

using Clock = std::chrono::steady_clock;

struct GenRequest {
  std::vector<TokenId> prompt;  // not empty
  int32_t max_tokens = 1;       // >= 1; prompt + max_tokens <= n_ctx
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool ignore_eos = false;
  std::shared_ptr<const AdapterSet> adapters;  // null: the base model
  std::string adapter_key;  // identifies the adapter set: KV computed under another is not reused
  Clock::time_point deadline = Clock::time_point::max();
};

struct SchedulerOptions {
  int32_t n_batch = 512;   // tokens per forward pass (decode tokens + prefill chunks)
  int32_t max_queue = 32;  // requests waiting beyond the slots; more -> queue_full
};

struct SchedulerStats {
  int32_t queue_depth = 0, slots_busy = 0, n_slots = 0;
  double kv_used_ratio = 0.0;
  int64_t steps = 0;          // forward passes
  int64_t reused_tokens = 0;  // prompt tokens served from a slot's cache
  int64_t prompt_tokens = 0, generated_tokens = 0, cancelled = 0;  // finished requests' totals
};

enum class SubmitResult { ok, queue_full, stopping };

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const Model> model, std::unique_ptr<SlotEngine> engine,
            SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  SubmitResult submit(GenRequest request, std::shared_ptr<RequestStream> out);
  // Stops accepting requests, lets running and queued ones finish until `deadline`, then cancels
  // the rest; returns when every request has its Finish and the thread has ended.
  void drain(Clock::time_point deadline);
  SchedulerStats stats() const;
  int32_t n_ctx() const { return n_ctx_; }
  int32_t n_slots() const { return n_slots_; }

 private:
  struct Job {
    GenRequest req;
    std::shared_ptr<RequestStream> out;
  };
  struct Slot;

  void loop();
  void assign(std::vector<std::shared_ptr<Job>>& incoming);
  void step();
  void finish(Slot& s, const std::string& reason, const std::string& error = "");
  void emit_token(Slot& s, size_t entry);
  void compute_logprobs(const float* logits, TokenId chosen, int32_t top, TokenLogprob& out);

  std::shared_ptr<const Model> model_;
  std::unique_ptr<SlotEngine> engine_;
  SchedulerOptions options_;
  int32_t n_ctx_ = 0, n_slots_ = 0, n_vocab_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  Clock::time_point drain_deadline_ = Clock::time_point::max();
  std::atomic<int32_t> busy_{0};
  std::atomic<int64_t> kv_used_{0}, steps_{0}, reused_{0};
  std::atomic<int64_t> prompt_total_{0}, generated_total_{0}, cancelled_total_{0};
  std::thread thread_;
  std::vector<std::pair<float, TokenId>> lp_scratch_;
};

}  // namespace kandil::serve
