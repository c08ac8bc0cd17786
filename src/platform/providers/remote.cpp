// OpenAI-compatible chat completions and the Anthropic Messages API, both streamed over SSE.
#include <chrono>
#include <nlohmann/json.hpp>

#include "platform/providers/http.h"
#include "platform/providers/provider.h"

namespace kandil::platform {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

HttpRequest base_request(const ProviderSettings& s, const ChatOptions& o) {
  HttpRequest r;
  r.timeout_s = s.timeout_s;
  r.connect_timeout_s = s.connect_timeout_s;
  r.retries = s.retries;
  r.backoff_ms = s.backoff_ms;
  r.cancel = o.cancel;
  r.headers.push_back("Content-Type: application/json");
  r.headers.push_back("Accept: text/event-stream");
  return r;
}

// Shared streaming state: forwards text, records time to first token.
struct Stream {
  explicit Stream(const TokenFn& f) : on_token(f) {}
  const TokenFn& on_token;
  Clock::time_point t0 = Clock::now();
  Usage usage;
  std::string error;  // an error event inside the stream
  bool any_text = false, consumer_stopped = false;
  std::string text;

  bool emit(const std::string& piece) {
    if (piece.empty()) return true;
    if (!any_text) usage.ttft_ms = ms_since(t0);
    any_text = true;
    text += piece;
    if (on_token && !on_token(piece)) {
      consumer_stopped = true;
      return false;
    }
    return true;
  }
};

Result<Usage> finish(Stream& st, const Result<HttpResult>& r, const std::string& provider,
                     const std::string& url, const std::string& model,
                     const std::vector<Message>& messages) {
  if (!r.ok()) return r.error();
  if (!r->cancelled && (r->status < 200 || r->status >= 300)) {
    return Error{describe_http_error(provider, url, *r, model)};
  }
  if (!st.error.empty()) return Error{provider + " at " + url + ": " + st.error};
  if (r->cancelled || st.consumer_stopped) st.usage.stop_reason = "cancelled";
  st.usage.total_ms = ms_since(st.t0);
  if (st.usage.prompt_tokens == 0 && st.usage.completion_tokens == 0) {
    st.usage.estimated = true;
    st.usage.prompt_tokens = estimate_tokens(messages);
    st.usage.completion_tokens = estimate_tokens({{"assistant", st.text}});
  }
  return st.usage;
}

class OpenAiProvider : public Provider {
 public:
  explicit OpenAiProvider(ProviderSettings s) : s_(std::move(s)) {}
  std::string name() const override { return "openai"; }
  std::string model() const override { return s_.model; }
  int64_t context_window() const override { return s_.context_window; }
  int64_t count_tokens(const std::vector<Message>& m) const override { return estimate_tokens(m); }

  Result<Usage> chat(const std::vector<Message>& messages, const ChatOptions& o,
                     const TokenFn& on_token) override {
    const std::string url = trim_slash(s_.base_url) + "/chat/completions";
    HttpRequest req = base_request(s_, o);
    req.url = url;
    if (!s_.api_key.empty()) req.headers.push_back("Authorization: Bearer " + s_.api_key);
    nlohmann::json body;
    body["model"] = s_.model;
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    body["max_tokens"] = o.max_tokens;
    body["temperature"] = o.temperature;
    body["messages"] = nlohmann::json::array();
    for (const auto& m : messages)
      body["messages"].push_back({{"role", m.role}, {"content", m.content}});
    req.body = body.dump();
    Stream st(on_token);
    SseParser sse;
    auto on_event = [&st](const SseParser::Event& ev) {
      if (ev.data == "[DONE]") return true;
      nlohmann::json j = nlohmann::json::parse(ev.data, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        st.error = "malformed stream event: " + ev.data.substr(0, 120);
        return false;
      }
      if (j.contains("error")) {
        const auto& e = j["error"];
        st.error = e.is_object() ? e.value("message", e.dump()) : e.dump();
        return false;
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        st.usage.prompt_tokens = j["usage"].value("prompt_tokens", int64_t{0});
        st.usage.completion_tokens = j["usage"].value("completion_tokens", int64_t{0});
      }
      if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
        const auto& c = j["choices"][0];
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) {
          st.usage.stop_reason = c["finish_reason"].get<std::string>();
        }
        if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
            c["delta"]["content"].is_string()) {
          return st.emit(c["delta"]["content"].get<std::string>());
        }
      }
      return true;
    };
    auto r =
        http_post_stream(req, [&](std::string_view bytes) { return sse.feed(bytes, on_event); });
    if (r.ok() && !st.error.empty()) return Error{"openai at " + url + ": " + st.error};
    return finish(st, r, "openai", url, s_.model, messages);
  }

 private:
  ProviderSettings s_;
};

class AnthropicProvider : public Provider {
 public:
  explicit AnthropicProvider(ProviderSettings s) : s_(std::move(s)) {}
  std::string name() const override { return "anthropic"; }
  std::string model() const override { return s_.model; }
  int64_t context_window() const override { return s_.context_window; }
  int64_t count_tokens(const std::vector<Message>& m) const override { return estimate_tokens(m); }

  Result<Usage> chat(const std::vector<Message>& messages, const ChatOptions& o,
                     const TokenFn& on_token) override {
    const std::string url = trim_slash(s_.base_url) + "/v1/messages";
    HttpRequest req = base_request(s_, o);
    req.url = url;
    if (!s_.api_key.empty()) req.headers.push_back("x-api-key: " + s_.api_key);
    req.headers.push_back("anthropic-version: 2023-06-01");
    nlohmann::json body;
    body["model"] = s_.model;
    body["stream"] = true;
    body["max_tokens"] = o.max_tokens;
    body["temperature"] = o.temperature;
    body["messages"] = nlohmann::json::array();
    std::string system;
    for (const auto& m : messages) {
      if (m.role == "system") {
        system += (system.empty() ? "" : "\n\n") + m.content;
      } else {
        body["messages"].push_back({{"role", m.role}, {"content", m.content}});
      }
    }
    if (!system.empty()) body["system"] = system;
    req.body = body.dump();
    Stream st(on_token);
    SseParser sse;
    auto on_event = [&st](const SseParser::Event& ev) {
      nlohmann::json j = nlohmann::json::parse(ev.data, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        st.error = "malformed stream event: " + ev.data.substr(0, 120);
        return false;
      }
      const std::string type = j.value("type", ev.event);
      if (type == "error") {
        const auto& e = j.contains("error") ? j["error"] : j;
        st.error = e.value("type", std::string("error")) + ": " + e.value("message", std::string());
        return false;
      }
      if (type == "message_start" && j.contains("message") && j["message"].contains("usage")) {
        const auto& u = j["message"]["usage"];
        st.usage.prompt_tokens = u.value("input_tokens", int64_t{0});
        st.usage.completion_tokens = u.value("output_tokens", int64_t{0});
      } else if (type == "content_block_delta" && j.contains("delta")) {
        const auto& d = j["delta"];
        if (d.value("type", "") == "text_delta") return st.emit(d.value("text", std::string()));
      } else if (type == "message_delta") {
        if (j.contains("delta") && j["delta"].contains("stop_reason") &&
            j["delta"]["stop_reason"].is_string()) {
          st.usage.stop_reason = j["delta"]["stop_reason"].get<std::string>();
        }
        if (j.contains("usage") && j["usage"].is_object()) {
          st.usage.completion_tokens =
              j["usage"].value("output_tokens", st.usage.completion_tokens);
        }
      }
      return true;
    };
    auto r =
        http_post_stream(req, [&](std::string_view bytes) { return sse.feed(bytes, on_event); });
    if (r.ok() && !st.error.empty()) return Error{"anthropic at " + url + ": " + st.error};
    return finish(st, r, "anthropic", url, s_.model, messages);
  }

 private:
  ProviderSettings s_;
};

}  // namespace

std::unique_ptr<Provider> make_openai_provider(const ProviderSettings& s) {
  return std::make_unique<OpenAiProvider>(s);
}
std::unique_ptr<Provider> make_anthropic_provider(const ProviderSettings& s) {
  return std::make_unique<AnthropicProvider>(s);
}

}  // namespace kandil::platform
