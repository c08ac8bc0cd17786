// kandil serve: an OpenAI-compatible HTTP server over one model with continuous batching,
// Server-Sent-Events streaming and LoRA adapters loaded, swapped and mixed per request at runtime.
//
//   auto server = Server::create(model, opts);   // binds (port 0: any free port)
//   std::thread t([&] { server->run(); });       // serves until shutdown()
//   ... server->port() ...
//   server->shutdown(); t.join();
//
// Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
// GET /metrics (with `metrics`), POST /tokenize, POST /detokenize, GET/POST /lora-adapters,
// POST /lora-adapters/load, DELETE /lora-adapters/{id}. See docs/serve.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kandil/model.h"
#include "kandil/result.h"

namespace kandil {

struct ServeLora {
  std::string path;
  float scale = 1.0f;  // the global default scale (POST /lora-adapters changes it)
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;       // 0: any free port (Server::port() tells which)
  int32_t parallel = 1;  // slots: sequences decoded together
  int32_t n_ctx = 0;     // positions per slot; 0: the model's training context capped at 4096
  int32_t n_batch = 512;
  int32_t n_threads = 0;
  KvCacheType cache_type = KvCacheType::f16;
  std::vector<ServeLora> lora;       // ids 0 .. k-1, in order
  std::string api_key;               // non-empty: every endpoint but /health needs Bearer KEY
  bool metrics = false;              // GET /metrics
  std::string model_name;            // the id in /v1/models and responses ("" : the file's name)
  size_t max_body_bytes = 8u << 20;  // larger request bodies -> 413
  int32_t max_queue = 32;            // waiting requests; more -> 429 with Retry-After
  double request_timeout_s = 600;    // a request still running after this is cancelled
  double io_timeout_s = 30;          // socket read / write timeouts
  double shutdown_grace_s = 10;      // in-flight requests get this long to finish on shutdown
  int32_t http_threads = 0;          // 0: parallel + max_queue + 4
};

class Server {
 public:
  // Creates the context (n_seq = parallel), loads the adapters and binds the socket.
  static Result<std::unique_ptr<Server>> create(std::shared_ptr<const Model> model,
                                                ServerOptions options,
                                                const std::string& model_path = "");
  ~Server();
  int port() const;
  // Serves until shutdown(); returns after in-flight requests finished or were cancelled.
  Result<void> run();
  // Thread-safe, returns at once: stop accepting, let requests finish within the grace period,
  // then cancel the rest. run() returns when that is done.
  void shutdown();

  struct Impl;

 private:
  Server();
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGTERM and SIGINT in the calling thread; threads started later inherit the mask. Call
// before Server::create when using serve_until_signal.
void block_shutdown_signals();
// Runs a created server until SIGTERM or SIGINT arrives (then shuts it down gracefully and
// returns). `on_ready` is called once serving (with the port).
Result<void> serve_until_signal(Server& server, const std::function<void(int)>& on_ready = {});

}  // namespace kandil
