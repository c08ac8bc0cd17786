// An in-process `kandil serve` on an ephemeral loopback port over a synthesized model, and
// helpers to talk to it with httplib's client.
#pragma once

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kandil/lora.h"
#include "kandil/serve.h"
#include "kandil/synth.h"
#include "test_util.h"

namespace kandil::testing {

// One synthesized model (and one LoRA adapter for it) per test process.
struct ServeAssets {
  std::string dir, model_path, adapter_dir;
  std::shared_ptr<const Model> model;
  static const ServeAssets& get() {
    static ServeAssets a = [] {
      ServeAssets s;
      s.dir = (std::filesystem::temp_directory_path() /
               ("kandil-serve-test-" + std::to_string(::getpid())))
                  .string();
      std::filesystem::create_directories(s.dir);
      s.model_path = s.dir + "/model.gguf";
      SynthSpec spec;
      spec.n_ctx = 512;
      if (!write_synthetic_model(spec, s.model_path).ok()) return s;
      auto m = Model::load(s.model_path);
      if (!m.ok()) return s;
      s.model = *m;
      s.adapter_dir = s.dir + "/adapter";
      LoraSynthSpec ls;
      ls.rank = 8;
      ls.b_stddev = 0.5f;  // large enough to change greedy choices
      ls.seed = 7;
      if (!write_synthetic_peft_adapter(s.model->config(), ls, s.adapter_dir).ok()) {
        s.adapter_dir.clear();
      }
      return s;
    }();
    return a;
  }
};

class TestServer {
 public:
  explicit TestServer(ServerOptions o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    if (o.n_ctx == 0) o.n_ctx = 256;
    if (o.n_threads == 0) o.n_threads = 1;
    const auto& a = ServeAssets::get();
    auto s = Server::create(a.model, o, a.model_path);
    if (!s.ok()) {
      error_ = s.error().message;
      return;
    }
    server_ = std::move(*s);
    thread_ = std::thread([this] { run_ok_ = server_->run().ok(); });
  }
  ~TestServer() { stop(); }
  bool ok() const { return server_ != nullptr; }
  const std::string& error() const { return error_; }
  int port() const { return server_->port(); }
  // Shuts down and waits; true when run() returned without an error.
  bool stop() {
    if (thread_.joinable()) {
      server_->shutdown();
      thread_.join();
    }
    return run_ok_;
  }
  Server& server() { return *server_; }
  std::unique_ptr<httplib::Client> client(int timeout_s = 60) const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_read_timeout(timeout_s);
    c->set_write_timeout(timeout_s);
    c->set_connection_timeout(5);
    return c;
  }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  bool run_ok_ = false;
  std::string error_;
};

inline nlohmann::json parse_or_null(const std::string& s) {
  return nlohmann::json::parse(s, nullptr, false);
}

// The JSON objects of an SSE body ("data: {...}" events), and whether it ended with [DONE].
inline std::vector<nlohmann::json> sse_events(const std::string& body, bool* done = nullptr) {
  std::vector<nlohmann::json> out;
  if (done) *done = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    if (ev.rfind("data: ", 0) != 0) continue;
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    out.push_back(parse_or_null(data));
  }
  return out;
}

}  // namespace kandil::testing

// Skips when the suite could not synthesize its model, else requires the server to have started.
#define REQUIRE_SERVER(s)                             \
  if (!::kandil::testing::ServeAssets::get().model) { \
    GTEST_SKIP() << "no synthesized model";           \
  }                                                   \
  ASSERT_TRUE((s).ok()) << (s).error()
