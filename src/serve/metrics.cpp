#include "serve/metrics.h"

#include <fmt/core.h>

namespace kandil::serve {

void Metrics::Histogram::observe(double v) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (v <= kBuckets[i]) ++counts[i];
  }
  ++count;
  sum += v;
}

void Metrics::Histogram::render(std::string& out, const std::string& name,
                                const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBuckets[i], counts[i]);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count, name,
                     sum, name, count);
}

void Metrics::request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::latency(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  latency_.observe(seconds);
}

void Metrics::ttft(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ttft_.observe(seconds);
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out +=
      "# HELP kandil_requests_total HTTP requests by endpoint and status.\n"
      "# TYPE kandil_requests_total counter\n";
  for (const auto& [k, n] : requests_) {
    out += fmt::format("kandil_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", k.first,
                       k.second, n);
  }
  out += fmt::format(
      "# HELP kandil_prompt_tokens_total Prompt tokens of finished generation requests.\n"
      "# TYPE kandil_prompt_tokens_total counter\nkandil_prompt_tokens_total {}\n"
      "# HELP kandil_generated_tokens_total Tokens generated.\n"
      "# TYPE kandil_generated_tokens_total counter\nkandil_generated_tokens_total {}\n"
      "# HELP kandil_requests_cancelled_total Requests cancelled (client gone, timeout, "
      "shutdown).\n# TYPE kandil_requests_cancelled_total counter\n"
      "kandil_requests_cancelled_total {}\n",
      g.prompt_tokens, g.generated_tokens, g.cancelled);
  latency_.render(out, "kandil_request_latency_seconds",
                  "Time from a generation request's arrival to its last token.");
  ttft_.render(out, "kandil_time_to_first_token_seconds",
               "Time from a generation request's arrival to its first text.");
  out += fmt::format(
      "# HELP kandil_queue_depth Requests waiting for a slot.\n# TYPE kandil_queue_depth gauge\n"
      "kandil_queue_depth {}\n"
      "# HELP kandil_slots_busy Slots generating.\n# TYPE kandil_slots_busy gauge\n"
      "kandil_slots_busy {}\n"
      "# HELP kandil_slots Slots (--parallel).\n# TYPE kandil_slots gauge\nkandil_slots {}\n"
      "# HELP kandil_kv_cache_used_ratio KV-cache positions in use over all slots.\n"
      "# TYPE kandil_kv_cache_used_ratio gauge\nkandil_kv_cache_used_ratio {}\n"
      "# HELP kandil_forward_passes_total Batched forward passes.\n"
      "# TYPE kandil_forward_passes_total counter\nkandil_forward_passes_total {}\n"
      "# HELP kandil_prompt_tokens_reused_total Prompt tokens served from a slot's cache.\n"
      "# TYPE kandil_prompt_tokens_reused_total counter\nkandil_prompt_tokens_reused_total {}\n",
      g.queue_depth, g.slots_busy, g.n_slots, g.kv_used_ratio, g.steps, g.reused_tokens);
  return out;
}

}  // namespace kandil::serve
