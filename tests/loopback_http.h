// A tiny HTTP/1.1 server on 127.0.0.1 for provider tests: each connection is read up to the end
// of its body and handed to a handler that writes the raw response itself (so it can stream
// Server-Sent Events with pauses, fail with any status, or stay silent).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kandil::testing {

struct HttpRequestSeen {
  std::string method, path;
  std::vector<std::string> headers;  // raw "Name: value" lines
  std::string body;
  std::string header(const std::string& name) const {
    for (const auto& h : headers) {
      if (h.size() > name.size() && strncasecmp(h.c_str(), name.c_str(), name.size()) == 0 &&
          h[name.size()] == ':') {
        size_t v = h.find_first_not_of(' ', name.size() + 1);
        return v == std::string::npos ? "" : h.substr(v);
      }
    }
    return "";
  }
};

class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  bool send(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  // Status line + headers for a streamed (connection-close delimited) body.
  bool start(int status, const std::string& content_type) {
    return send("HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + content_type +
                "\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n");
  }
  bool respond(int status, const std::string& content_type, const std::string& body,
               const std::string& extra_headers = "") {
    return send("HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + content_type +
                "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
                "Connection: close\r\n\r\n" + body);
  }
  // SSE: "event: NAME\ndata: DATA\n\n" (no event line when name is empty).
  bool sse(const std::string& event, const std::string& data) {
    return send((event.empty() ? "" : "event: " + event + "\n") + "data: " + data + "\n\n");
  }

 private:
  int fd_;
};

class LoopbackServer {
 public:
  using Handler = std::function<void(const HttpRequestSeen&, Conn&)>;

  explicit LoopbackServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackServer() {
    stop_.store(true);
    thread_.join();
    for (auto& t : workers_) t.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }
  std::vector<HttpRequestSeen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void loop() {
    while (!stop_.load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }
  void serve(int fd) {
    std::string buf;
    char tmp[4096];
    size_t header_end = std::string::npos;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    HttpRequestSeen req;
    size_t content_length = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) break;
      buf.append(tmp, static_cast<size_t>(n));
      if (header_end == std::string::npos &&
          (header_end = buf.find("\r\n\r\n")) != std::string::npos) {
        size_t line_end = buf.find("\r\n");
        std::string first = buf.substr(0, line_end);
        size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
        req.method = first.substr(0, sp1);
        req.path = first.substr(sp1 + 1, sp2 - sp1 - 1);
        size_t pos = line_end + 2;
        while (pos < header_end) {
          size_t e = buf.find("\r\n", pos);
          req.headers.push_back(buf.substr(pos, e - pos));
          pos = e + 2;
        }
        std::string cl = req.header("Content-Length");
        content_length = cl.empty() ? 0 : std::stoul(cl);
      }
      if (header_end != std::string::npos && buf.size() >= header_end + 4 + content_length) break;
    }
    if (header_end != std::string::npos) {
      req.body = buf.substr(header_end + 4, content_length);
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back(req);
      }
      ++requests_;
      Conn c(fd);
      handler_(req, c);
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::vector<HttpRequestSeen> seen_;
};

}  // namespace kandil::testing
