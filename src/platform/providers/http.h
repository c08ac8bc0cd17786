// HTTP POST with streamed responses (libcurl), Server-Sent Events parsing, retries with
// exponential backoff on 429 / 5xx, timeouts, and error messages that say what went wrong.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/result.h"

namespace kandil::platform {

// Splits an SSE byte stream into events; feed() may be given arbitrary chunks.
class SseParser {
 public:
  struct Event {
    std::string event;  // "" when the server sent no event: line
    std::string data;   // data: lines joined with '\n'
  };
  // Appends bytes; calls on_event for every complete event. Stops early (returning false) when
  // on_event returns false.
  bool feed(std::string_view bytes, const std::function<bool(const Event&)>& on_event);

 private:
  std::string buf_;
  Event cur_;
  bool has_data_ = false;
};

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  int64_t timeout_s = 120, connect_timeout_s = 10;
  int64_t retries = 3, backoff_ms = 500;
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResult {
  long status = 0;
  std::string error_body;  // the body of a non-2xx answer
  int attempts = 0;
  bool cancelled = false;
};

// POSTs and streams a 2xx body to on_body (return false to stop). Non-2xx answers are collected
// into error_body; 429 and 5xx are retried (up to `retries` times, backoff doubling, honouring
// Retry-After seconds) as long as nothing was streamed yet. Transport errors (unreachable host,
// timeout) become errors naming the URL.
Result<HttpResult> http_post_stream(const HttpRequest& req,
                                    const std::function<bool(std::string_view)>& on_body);

// "401 Unauthorized: <message from the body>" style text for a failed answer.
std::string describe_http_error(const std::string& provider, const std::string& url,
                                const HttpResult& r, const std::string& model);

}  // namespace kandil::platform

namespace kandil::platform {
// GETs `url` (headers as in HttpRequest) and returns the HTTP status, or an error saying why
// the host could not be reached. Used by `kandil doctor`.
Result<long> http_get_status(const std::string& url, const std::vector<std::string>& headers,
                             int64_t timeout_s);
}  // namespace kandil::platform
