// Server::Impl, shared by the route files (server.cpp: set-up, auth, limits, small endpoints;
// generate_routes.cpp: completions with SSE; lora_routes.cpp: /lora-adapters).
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "kandil/chat_template.h"
#include "kandil/serve.h"
#include "serve/lora_manager.h"
#include "serve/metrics.h"
#include "serve/openai_schema.h"
#include "serve/scheduler.h"

namespace kandil {

struct Server::Impl {
  ServerOptions opt;
  std::shared_ptr<const Model> model;
  std::string model_id;
  int64_t created = 0;
  std::unique_ptr<serve::Scheduler> sched;
  std::unique_ptr<serve::LoraManager> lora;
  serve::Metrics metrics;
  serve::ParseLimits limits;
  std::optional<ChatTemplate> tpl;
  ChatTemplateInfo tpl_info;
  httplib::Server http;
  int port = 0;

  std::mutex mutex;
  std::condition_variable cv;
  bool shutdown_requested = false;
  std::atomic<bool> draining{false};

  void setup_routes();
  void add_generate_routes();
  void add_lora_routes();
  void send_error(httplib::Response& res, const serve::ApiError& e, const std::string& endpoint);
  void send_json(httplib::Response& res, const nlohmann::json& j, const std::string& endpoint,
                 int status = 200);
  // Renders a chat through the model's template (or a ChatML fallback) and tokenizes it.
  Result<std::vector<TokenId>> chat_prompt(const std::vector<serve::ChatMessage>& messages) const;
  void generate(const httplib::Request& req, httplib::Response& res, serve::Endpoint endpoint);
};

}  // namespace kandil
