// POST /v1/chat/completions and /v1/completions: validation, the context/limit checks, queueing,
// and the response as one JSON object or as Server-Sent Events.
#include <atomic>
#include <random>

#include "serve/server_impl.h"

namespace kandil {

using nlohmann::json;
using serve::ApiError;
using serve::Clock;

namespace {

std::string new_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  const uint64_t n = counter.fetch_add(1) * 0x9E3779B97F4A7C15ull ^ salt;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx", prefix, static_cast<unsigned long long>(n));
  return buf;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// What a streamed response needs after the handler returned.
struct StreamState {
  serve::Endpoint endpoint;
  serve::ResponseMeta meta;
  std::shared_ptr<serve::RequestStream> stream;
  bool include_usage = false;
  bool logprobs = false;
  Clock::time_point t0, hard_deadline;
  std::string label;
};

bool write_event(httplib::DataSink& sink, const json& j) {
  const std::string s = "data: " + serve::dump_json(j) + "\n\n";
  return sink.write(s.data(), s.size());
}

}  // namespace

void Server::Impl::generate(const httplib::Request& req, httplib::Response& res,
                            serve::Endpoint endpoint) {
  const auto t0 = Clock::now();
  const std::string label =
      endpoint == serve::Endpoint::chat ? "/v1/chat/completions" : "/v1/completions";
  serve::ParsedRequest pr;
  ApiError err;
  if (!serve::parse_request(req.body, endpoint, limits, pr, err))
    return send_error(res, err, label);
  if (draining) {
    return send_error(res, ApiError{503, "the server is shutting down", "server_error", "", ""},
                      label);
  }
  std::vector<TokenId> prompt;
  std::vector<std::string> stop = pr.stop;
  if (endpoint == serve::Endpoint::chat) {
    auto p = chat_prompt(pr.messages);
    if (!p.ok()) {
      return send_error(
          res, ApiError{400, p.error().message, "invalid_request_error", "messages", ""}, label);
    }
    prompt = std::move(*p);
    if (!tpl) stop.push_back("<|im_end|>");
  } else if (pr.prompt_is_tokens) {
    prompt = pr.prompt_tokens;
  } else {
    prompt = model->tokenizer().encode(pr.prompt, true, true);
  }
  if (prompt.empty()) {
    return send_error(res,
                      ApiError{400, "the prompt is empty", "invalid_request_error",
                               endpoint == serve::Endpoint::chat ? "messages" : "prompt", ""},
                      label);
  }
  const int64_t n_ctx = sched->n_ctx();
  const auto n_prompt = static_cast<int64_t>(prompt.size());
  if (n_prompt >= n_ctx || (pr.max_tokens > 0 && n_prompt + pr.max_tokens > n_ctx)) {
    ApiError e{400,
               "This model's maximum context length is " + std::to_string(n_ctx) +
                   " tokens. However, you requested " +
                   std::to_string(n_prompt + std::max(pr.max_tokens, 0)) + " tokens (" +
                   std::to_string(n_prompt) + " in the prompt, " +
                   std::to_string(std::max(pr.max_tokens, 0)) +
                   " for the completion). Please reduce the prompt or max_tokens.",
               "invalid_request_error", "messages", "context_length_exceeded"};
    if (endpoint == serve::Endpoint::completions) e.param = "prompt";
    return send_error(res, e, label);
  }
  auto set = lora->resolve(pr.lora);
  if (!set.ok()) {
    return send_error(res, ApiError{400, set.error().message, "invalid_request_error", "lora", ""},
                      label);
  }
  serve::GenRequest g;
  g.prompt = std::move(prompt);
  g.max_tokens = pr.max_tokens > 0 ? pr.max_tokens : static_cast<int32_t>(n_ctx - n_prompt);
  g.sampling = pr.sampling;
  if (!pr.seed_given) g.sampling.seed = std::random_device{}();
  g.stop = std::move(stop);
  g.logprobs = pr.logprobs;
  g.top_logprobs = pr.top_logprobs;
  g.ignore_eos = pr.ignore_eos;
  g.adapters = set->set;
  g.adapter_key = set->key;
  const auto timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(1.0, opt.request_timeout_s)));
  g.deadline = t0 + timeout;
  auto stream = std::make_shared<serve::RequestStream>();
  switch (sched->submit(std::move(g), stream)) {
    case serve::SubmitResult::ok:
      break;
    case serve::SubmitResult::queue_full:
      res.set_header("Retry-After", "1");
      return send_error(res,
                        ApiError{429,
                                 "the server is busy (every slot and the queue are full); "
                                 "retry later",
                                 "rate_limit_error", "", "rate_limit_exceeded"},
                        label);
    case serve::SubmitResult::stopping:
      return send_error(res, ApiError{503, "the server is shutting down", "server_error", "", ""},
                        label);
  }
  serve::ResponseMeta meta{new_id(endpoint == serve::Endpoint::chat ? "chatcmpl-" : "cmpl-"),
                           created, model_id};

  if (!pr.stream) {
    std::string text;
    std::vector<serve::TokenLogprob> lps;
    std::vector<serve::Piece> pieces;
    serve::Finish fin;
    bool first = true;
    const auto hard = t0 + timeout + std::chrono::seconds(5);
    while (true) {
      pieces.clear();
      const bool done = stream->wait(pieces, fin, std::chrono::milliseconds(500));
      for (auto& p : pieces) {
        if (first && !p.text.empty()) {
          metrics.ttft(seconds_since(t0));
          first = false;
        }
        text += p.text;
        for (auto& l : p.logprobs) lps.push_back(std::move(l));
      }
      if (done) break;
      if (Clock::now() > hard) stream->cancel();
    }
    if (fin.reason == "error" || fin.reason == "cancelled") {
      const bool shut = fin.reason == "cancelled" && draining;
      return send_error(res,
                        ApiError{fin.reason == "error" ? 500 : (shut ? 503 : 408),
                                 fin.reason == "error" ? "generation failed: " + fin.error
                                                       : (shut ? "the server is shutting down"
                                                               : "the request timed out"),
                                 "server_error", "", ""},
                        label);
    }
    metrics.latency(seconds_since(t0));
    const auto* lp = pr.logprobs ? &lps : nullptr;
    json j = endpoint == serve::Endpoint::chat
                 ? serve::chat_response(meta, text, fin.reason, lp, fin.prompt_tokens,
                                        fin.completion_tokens)
                 : serve::completion_response(meta, text, fin.reason, lp, fin.prompt_tokens,
                                              fin.completion_tokens);
    return send_json(res, j, label);
  }

  auto st = std::make_shared<StreamState>();
  st->endpoint = endpoint;
  st->meta = meta;
  st->stream = stream;
  st->include_usage = pr.include_usage;
  st->logprobs = pr.logprobs;
  st->t0 = t0;
  st->hard_deadline = t0 + timeout + std::chrono::seconds(5);
  st->label = label;
  metrics.request(label, 200);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, st](size_t, httplib::DataSink& sink) {
        const bool chat = st->endpoint == serve::Endpoint::chat;
        auto fail = [&] {
          st->stream->cancel();
          return false;
        };
        if (chat && !write_event(sink, serve::chat_chunk(st->meta, "assistant", "", "", nullptr))) {
          return fail();
        }
        std::vector<serve::Piece> pieces;
        serve::Finish fin;
        bool first = true;
        size_t offset = 0;
        auto last_write = Clock::now();
        while (true) {
          pieces.clear();
          const bool done = st->stream->wait(pieces, fin, std::chrono::milliseconds(250));
          for (auto& p : pieces) {
            if (first && !p.text.empty()) {
              metrics.ttft(seconds_since(st->t0));
              first = false;
            }
            const auto* lp = st->logprobs ? &p.logprobs : nullptr;
            json j = chat ? serve::chat_chunk(st->meta, "", p.text, "", lp)
                          : serve::completion_chunk(st->meta, p.text, "", lp, offset);
            offset += p.text.size();
            if (!write_event(sink, j)) return fail();
            last_write = Clock::now();
          }
          if (done) break;
          const auto now = Clock::now();
          if (now > st->hard_deadline) st->stream->cancel();
          if (now - last_write > std::chrono::seconds(2)) {
            // An SSE comment: ignored by clients, and a write to a closed connection fails,
            // which is how a disconnect is noticed while the request waits in the queue.
            static const char kPing[] = ": ping\n\n";
            if (!sink.write(kPing, sizeof kPing - 1)) return fail();
            last_write = now;
          }
        }
        if (fin.reason == "stop" || fin.reason == "length") {
          metrics.latency(seconds_since(st->t0));
          json last = chat ? serve::chat_chunk(st->meta, "", "", fin.reason, nullptr)
                           : serve::completion_chunk(st->meta, "", fin.reason, nullptr, offset);
          if (!write_event(sink, last)) return fail();
          if (st->include_usage) {
            json u = last;
            u["choices"] = json::array();
            u["usage"] = serve::usage_json(fin.prompt_tokens, fin.completion_tokens);
            if (!write_event(sink, u)) return fail();
          }
          static const char kDone[] = "data: [DONE]\n\n";
          if (!sink.write(kDone, sizeof kDone - 1)) return fail();
        } else {
          ApiError e{fin.reason == "error" ? 500 : 503,
                     fin.reason == "error" ? "generation failed: " + fin.error
                                           : "the request was cancelled (" +
                                                 (fin.error.empty() ? "timeout" : fin.error) + ")",
                     "server_error", "", ""};
          if (!write_event(sink, serve::error_json(e))) return fail();
        }
        sink.done();
        return true;
      },
      [st](bool success) {
        if (!success) st->stream->cancel();
      });
}

void Server::Impl::add_generate_routes() {
  auto chat = [this](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, serve::Endpoint::chat);
  };
  auto completions = [this](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, serve::Endpoint::completions);
  };
  http.Post("/v1/chat/completions", chat);
  http.Post("/chat/completions", chat);
  http.Post("/v1/completions", completions);
  http.Post("/completions", completions);
}

}  // namespace kandil
