// The channel between the scheduler thread (producer) and an HTTP handler thread (consumer) of
// one request: text pieces with their token log-probabilities, then one Finish.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serve/openai_schema.h"

namespace kandil::serve {

struct Piece {
  std::string text;
  std::vector<TokenLogprob> logprobs;
};

struct Finish {
  std::string reason;  // "stop", "length", "cancelled", "error"
  std::string error;   // reason "error": what failed
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

class RequestStream {
 public:
  void push(Piece p) {
    std::lock_guard<std::mutex> lock(mutex_);
    pieces_.push_back(std::move(p));
    cv_.notify_all();
  }
  void finish(Finish f) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finish_) return;
    finish_ = std::move(f);
    cv_.notify_all();
  }
  // Waits up to `timeout` for pieces or the finish; moves the pieces out. Returns true when the
  // finish is there (and in `fin`), after every piece was taken.
  bool wait(std::vector<Piece>& out, Finish& fin, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !pieces_.empty() || finish_.has_value(); });
    for (auto& p : pieces_) out.push_back(std::move(p));
    pieces_.clear();
    if (finish_) {
      fin = *finish_;
      return true;
    }
    return false;
  }
  // The client went away (or the server gives up on it): the scheduler frees the slot.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Piece> pieces_;
  std::optional<Finish> finish_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace kandil::serve
