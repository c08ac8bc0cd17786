#include "platform/providers/http.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace kandil::platform {

bool SseParser::feed(std::string_view bytes, const std::function<bool(const Event&)>& on_event) {
  buf_.append(bytes);
  size_t start = 0;
  for (;;) {
    size_t nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buf_.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // blank line: dispatch
      if (has_data_) {
        Event ev = std::move(cur_);
        cur_ = Event{};
        has_data_ = false;
        if (!on_event(ev)) {
          buf_.erase(0, start);
          return false;
        }
      } else {
        cur_ = Event{};
      }
      continue;
    }
    if (line.front() == ':') continue;  // comment
    std::string_view field = line, value;
    if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      cur_.event = std::string(value);
    } else if (field == "data") {
      if (has_data_) cur_.data += '\n';
      cur_.data.append(value);
      has_data_ = true;
    }
  }
  buf_.erase(0, start);
  return true;
}

namespace {

struct Transfer {
  Transfer(const std::function<bool(std::string_view)>* b, CURL* c, const std::atomic<bool>* x)
      : on_body(b), curl(c), cancel(x) {}
  const std::function<bool(std::string_view)>* on_body;
  CURL* curl;
  const std::atomic<bool>* cancel;
  long status = 0;
  std::string error_body;
  bool streamed = false, stopped = false;
  long retry_after_s = -1;
};

size_t on_write(char* ptr, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->status == 0) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status < 200 || t->status >= 300) {
    if (t->error_body.size() < 65536) t->error_body.append(ptr, len);
    return len;
  }
  t->streamed = true;
  if (!(*t->on_body)(std::string_view(ptr, len))) {
    t->stopped = true;
    return 0;  // aborts the transfer
  }
  return len;
}

size_t on_header(char* ptr, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string h(ptr, size * n);
  if (h.size() > 12 && (h.rfind("Retry-After:", 0) == 0 || h.rfind("retry-after:", 0) == 0)) {
    t->retry_after_s = std::strtol(h.c_str() + 12, nullptr, 10);
  }
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancel && t->cancel->load() ? 1 : 0;
}

bool cancelled(const std::atomic<bool>* c) { return c && c->load(); }

}  // namespace

Result<HttpResult> http_post_stream(const HttpRequest& req,
                                    const std::function<bool(std::string_view)>& on_body) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResult out;
  int64_t delay_ms = req.backoff_ms;
  for (int attempt = 0;; ++attempt) {
    CURL* curl = curl_easy_init();
    if (!curl) return Error{"cannot initialise libcurl"};
    Transfer t{&on_body, curl, req.cancel};
    curl_slist* headers = nullptr;
    for (const auto& h : req.headers) headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(req.timeout_s));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(req.connect_timeout_s));
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    const CURLcode rc = curl_easy_perform(curl);
    if (t.status == 0) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    out.attempts = attempt + 1;
    out.status = t.status;
    out.error_body = t.error_body;
    if (t.stopped || rc == CURLE_ABORTED_BY_CALLBACK || cancelled(req.cancel)) {
      out.cancelled = true;
      return out;
    }
    const bool retryable_status = t.status == 429 || (t.status >= 500 && t.status <= 599);
    if (rc != CURLE_OK && !retryable_status) {
      std::string what;
      switch (rc) {
        case CURLE_COULDNT_CONNECT:
          what = "cannot connect (connection refused; is the server running?)";
          break;
        case CURLE_COULDNT_RESOLVE_HOST:
          what = "cannot resolve the host name";
          break;
        case CURLE_OPERATION_TIMEDOUT:
          what = "timed out (net.timeout_s = " + std::to_string(req.timeout_s) +
                 ", net.connect_timeout_s = " + std::to_string(req.connect_timeout_s) + ")";
          break;
        default:
          what = curl_easy_strerror(rc);
      }
      if (t.streamed) what += " after part of the answer arrived";
      return Error{req.url + ": " + what};
    }
    if (!retryable_status || t.streamed || attempt >= req.retries) return out;
    int64_t wait =
        t.retry_after_s >= 0 ? std::min<int64_t>(t.retry_after_s * 1000, 60000) : delay_ms;
    for (int64_t waited = 0; waited < wait && !cancelled(req.cancel); waited += 20) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(20, wait - waited)));
    }
    if (cancelled(req.cancel)) {
      out.cancelled = true;
      return out;
    }
    delay_ms *= 2;
  }
}

std::string describe_http_error(const std::string& provider, const std::string& url,
                                const HttpResult& r, const std::string& model) {
  std::string detail;
  nlohmann::json j = nlohmann::json::parse(r.error_body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      detail = e["message"].get<std::string>();
    } else if (e.is_string()) {
      detail = e.get<std::string>();
    }
  }
  if (detail.empty()) detail = r.error_body.substr(0, 200);
  std::string what;
  switch (r.status) {
    case 401:
    case 403:
      what = "authentication failed (HTTP " + std::to_string(r.status) + "): check the " +
             provider + " API key";
      break;
    case 404:
      what = "HTTP 404: unknown model '" + model + "' or wrong base URL";
      break;
    case 429:
      what = "rate limited (HTTP 429) after " + std::to_string(r.attempts) + " attempts";
      break;
    default:
      what = "HTTP " + std::to_string(r.status);
      if (r.status >= 500) what += " after " + std::to_string(r.attempts) + " attempts";
  }
  return provider + " at " + url + ": " + what + (detail.empty() ? "" : ": " + detail);
}

}  // namespace kandil::platform

namespace kandil::platform {
namespace {
size_t discard(char*, size_t size, size_t n, void*) { return size * n; }
}  // namespace

Result<long> http_get_status(const std::string& url, const std::vector<std::string>& headers,
                             int64_t timeout_s) {
  CURL* curl = curl_easy_init();
  if (!curl) return Error{"cannot initialise libcurl"};
  curl_slist* h = nullptr;
  for (const auto& x : headers) h = curl_slist_append(h, x.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(timeout_s));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(timeout_s));
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return Error{url + ": " + curl_easy_strerror(rc)};
  return status;
}

}  // namespace kandil::platform
