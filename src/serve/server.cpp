#include <csignal>
#include <ctime>
#include <filesystem>
#include <thread>

#include "kandil/log.h"
#include "serve/server_impl.h"
#include "serve/slot_engine.h"

namespace kandil {

using nlohmann::json;
using serve::ApiError;

namespace {

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Compares every byte of the longer string whatever the contents, so the time taken tells
  // nothing about where a guess first differs.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string endpoint_label(const std::string& path) {
  static const char* known[] = {
      "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize",
      "/detokenize",          "/lora-adapters"};
  for (const char* k : known) {
    if (path.rfind(k, 0) == 0) return k;
  }
  if (path == "/chat/completions") return "/v1/chat/completions";
  if (path == "/completions") return "/v1/completions";
  return "other";
}

}  // namespace

void Server::Impl::send_json(httplib::Response& res, const json& j, const std::string& endpoint,
                             int status) {
  res.status = status;
  res.set_content(serve::dump_json(j), "application/json");
  metrics.request(endpoint, status);
}

void Server::Impl::send_error(httplib::Response& res, const ApiError& e,
                              const std::string& endpoint) {
  send_json(res, serve::error_json(e), endpoint, e.status);
}

Result<std::vector<TokenId>> Server::Impl::chat_prompt(
    const std::vector<serve::ChatMessage>& messages) const {
  const Tokenizer& tok = model->tokenizer();
  if (tpl) {
    json msgs = json::array();
    for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    json vars = {{"messages", msgs},
                 {"add_generation_prompt", true},
                 {"bos_token", tpl_info.bos_token},
                 {"eos_token", tpl_info.eos_token}};
    auto text = tpl->render(vars);
    if (!text.ok()) return text.error().with_context("chat template");
    // Templates usually write the BOS text themselves; add it only when they do not.
    const bool has_bos = !tpl_info.bos_token.empty() && text->rfind(tpl_info.bos_token, 0) == 0;
    return tok.encode(*text, !has_bos, true);
  }
  // No template in the model: ChatML, as llama.cpp falls back to.
  std::string text;
  for (const auto& m : messages)
    text += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  text += "<|im_start|>assistant\n";
  return tok.encode(text, true, true);
}

void Server::Impl::setup_routes() {
  http.set_payload_max_length(opt.max_body_bytes + 1);
  const auto io = static_cast<time_t>(std::max(1.0, opt.io_timeout_s));
  http.set_read_timeout(io);
  http.set_write_timeout(io);
  http.set_keep_alive_timeout(3);
  const size_t threads = opt.http_threads > 0
                             ? static_cast<size_t>(opt.http_threads)
                             : static_cast<size_t>(opt.parallel + opt.max_queue + 4);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!opt.api_key.empty() && req.path != "/health") {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const bool ok = auth.size() > prefix.size() && auth.compare(0, prefix.size(), prefix) == 0 &&
                      constant_time_equal(auth.substr(prefix.size()), opt.api_key);
      if (!ok) {
        ApiError e{401, "Invalid or missing API key (send Authorization: Bearer KEY)",
                   "authentication_error", "", "invalid_api_key"};
        send_error(res, e, endpoint_label(req.path));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.has_header("Content-Length")) {
      const std::string len = req.get_header_value("Content-Length");
      const bool digits = !len.empty() && len.size() < 19 &&
                          len.find_first_not_of("0123456789") == std::string::npos;
      if (!digits || std::stoull(len) > opt.max_body_bytes) {
        ApiError e{
            413, "the request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes",
            "invalid_request_error", "", "request_too_large"};
        send_error(res, e, endpoint_label(req.path));
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.status = res.status;
    if (res.status == 404) {
      e.message = "no such endpoint: " + req.method + " " + req.path;
      e.type = "not_found_error";
    } else if (res.status == 413) {
      e.message =
          "the request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes";
      e.code = "request_too_large";
    } else {
      e.message = "HTTP error " + std::to_string(res.status);
    }
    res.set_content(serve::dump_json(serve::error_json(e)), "application/json");
    metrics.request(endpoint_label(req.path), res.status);
  });
  http.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what += std::string(": ") + e.what();
        } catch (...) {
        }
        send_error(res, ApiError{500, what, "server_error", "", ""}, endpoint_label(req.path));
      });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const auto st = sched->stats();
    json j = {{"status", draining ? "shutting down" : "ok"},
              {"slots_idle", st.n_slots - st.slots_busy},
              {"slots_processing", st.slots_busy},
              {"queue_depth", st.queue_depth}};
    send_json(res, j, "/health", draining ? 503 : 200);
  });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    const ModelConfig& c = model->config();
    json m = {{"id", model_id},
              {"object", "model"},
              {"created", created},
              {"owned_by", "kandil"},
              {"meta",
               {{"n_vocab", c.n_vocab},
                {"n_ctx_train", c.n_ctx_train},
                {"n_ctx", sched->n_ctx()},
                {"n_embd", c.n_embd},
                {"n_params", model->n_params()},
                {"slots", sched->n_slots()}}}};
    send_json(res, {{"object", "list"}, {"data", json::array({m})}}, "/v1/models");
  };
  http.Get("/v1/models", models);
  http.Get("/models", models);
  http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!opt.metrics) {
      send_error(res,
                 ApiError{404, "metrics are off (start the server with --metrics)",
                          "not_found_error", "", ""},
                 "/metrics");
      (void)req;
      return;
    }
    const auto st = sched->stats();
    serve::Gauges g{st.queue_depth, st.slots_busy,    st.n_slots,       st.kv_used_ratio,
                    st.steps,       st.reused_tokens, st.prompt_tokens, st.generated_tokens,
                    st.cancelled};
    metrics.request("/metrics", 200);
    res.set_content(metrics.render(g), "text/plain; version=0.0.4");
  });
  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    ApiError err;
    auto j = serve::parse_json_body(req.body, limits.max_depth, err);
    if (!j) return send_error(res, err, "/tokenize");
    if (!j->is_object() || !j->contains("content") || !(*j)["content"].is_string()) {
      return send_error(
          res, ApiError{400, "'content' must be a string", "invalid_request_error", "content", ""},
          "/tokenize");
    }
    bool add_special = false, with_pieces = false;
    for (auto [key, dst] :
         {std::pair{"add_special", &add_special}, std::pair{"with_pieces", &with_pieces}}) {
      if (!j->contains(key)) continue;
      if (!(*j)[key].is_boolean()) {
        return send_error(res,
                          ApiError{400, std::string("'") + key + "' must be a boolean",
                                   "invalid_request_error", key, ""},
                          "/tokenize");
      }
      *dst = (*j)[key].get<bool>();
    }
    const Tokenizer& tok = model->tokenizer();
    auto ids = tok.encode((*j)["content"].get<std::string>(), add_special, true);
    json out = json::array();
    for (TokenId id : ids) {
      if (with_pieces) {
        out.push_back({{"id", id}, {"piece", tok.token_to_piece(id, true)}});
      } else {
        out.push_back(id);
      }
    }
    send_json(res, {{"tokens", out}}, "/tokenize");
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    ApiError err;
    auto j = serve::parse_json_body(req.body, limits.max_depth, err);
    if (!j) return send_error(res, err, "/detokenize");
    const Tokenizer& tok = model->tokenizer();
    std::vector<TokenId> ids;
    bool ok = j->is_object() && j->contains("tokens") && (*j)["tokens"].is_array();
    if (ok) {
      for (const auto& t : (*j)["tokens"]) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tok.n_vocab()) {
          ok = false;
          break;
        }
        ids.push_back(static_cast<TokenId>(t.get<int64_t>()));
      }
    }
    if (!ok) {
      return send_error(res,
                        ApiError{400,
                                 "'tokens' must be an array of token ids in 0.." +
                                     std::to_string(tok.n_vocab() - 1),
                                 "invalid_request_error", "tokens", ""},
                        "/detokenize");
    }
    send_json(res, {{"content", tok.decode(ids)}}, "/detokenize");
  });
  add_generate_routes();
  add_lora_routes();
}

Server::Server() = default;
Server::~Server() {
  if (impl_ && impl_->sched) impl_->sched->drain(serve::Clock::now());
}

Result<std::unique_ptr<Server>> Server::create(std::shared_ptr<const Model> model,
                                               ServerOptions options,
                                               const std::string& model_path) {
  if (options.parallel < 1 || options.parallel > 256) {
    return Error{"--parallel must be between 1 and 256, got " + std::to_string(options.parallel)};
  }
  if (options.max_queue < 0) return Error{"the queue bound must be >= 0"};
  std::unique_ptr<Server> s(new Server());
  s->impl_ = std::make_unique<Impl>();
  Impl& im = *s->impl_;
  im.opt = options;
  im.model = model;
  im.created = static_cast<int64_t>(std::time(nullptr));
  im.model_id = options.model_name;
  if (im.model_id.empty()) {
    im.model_id = model_path.empty()
                      ? (model->config().name.empty() ? "kandil" : model->config().name)
                      : std::filesystem::path(model_path).filename().string();
  }
  im.limits.n_vocab = model->config().n_vocab;
  auto info = chat_template_info_from_gguf(model->gguf());
  if (info.ok()) {
    im.tpl_info = *info;
    if (info->chat_template) {
      auto t = ChatTemplate::parse(*info->chat_template, im.model_id);
      if (t.ok()) {
        im.tpl = std::move(*t);
      } else {
        log::warn("serve: the model's chat template does not parse ({}); using ChatML",
                  t.error().message);
      }
    }
  }
  im.lora = std::make_unique<serve::LoraManager>(model);
  for (const auto& l : options.lora) {
    auto id = im.lora->load(l.path, l.scale);
    if (!id.ok()) return id.error().with_context("--lora " + l.path);
  }
  ContextParams cp;
  cp.n_ctx = options.n_ctx;
  cp.n_batch = options.n_batch;
  cp.n_threads = options.n_threads;
  cp.cache_type = options.cache_type;
  cp.n_seq = options.parallel;
  auto engine = serve::SlotEngine::create(model, cp);
  if (!engine.ok()) return engine.error();
  serve::SchedulerOptions so;
  so.n_batch = options.n_batch;
  so.max_queue = options.max_queue;
  im.sched = std::make_unique<serve::Scheduler>(model, std::move(*engine), so);
  im.setup_routes();
  if (options.port == 0) {
    im.port = im.http.bind_to_any_port(options.host);
  } else {
    im.port = im.http.bind_to_port(options.host, options.port) ? options.port : -1;
  }
  if (im.port <= 0) {
    return Error{"cannot listen on " + options.host + ":" + std::to_string(options.port) +
                 " (address in use, or not an address of this machine?)"};
  }
  return s;
}

int Server::port() const { return impl_->port; }

Result<void> Server::run() {
  Impl& im = *impl_;
  bool listened = true;
  std::thread listener([&] {
    listened = im.http.listen_after_bind();
    if (!listened) shutdown();  // nothing to serve: let run() return the error
  });
  {
    std::unique_lock<std::mutex> lock(im.mutex);
    im.cv.wait(lock, [&] { return im.shutdown_requested; });
  }
  // New generation requests get 503 from now on; running ones have the grace period.
  im.draining = true;
  const auto grace = std::chrono::duration_cast<serve::Clock::duration>(
      std::chrono::duration<double>(std::max(0.0, im.opt.shutdown_grace_s)));
  im.sched->drain(serve::Clock::now() + grace);
  im.http.stop();
  listener.join();
  if (!listened) return Error{"the HTTP server stopped with an error"};
  return {};
}

void Server::shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->shutdown_requested = true;
  }
  impl_->cv.notify_all();
}

void block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Result<void> serve_until_signal(Server& server, const std::function<void(int)>& on_ready) {
  block_shutdown_signals();
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    while (!done) {
      timespec ts{0, 200'000'000};
      const int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGTERM || sig == SIGINT) {
        log::info("serve: signal {} received, shutting down", sig);
        server.shutdown();
        return;
      }
    }
  });
  if (on_ready) on_ready(server.port());
  auto r = server.run();
  done = true;
  waiter.join();
  return r;
}

}  // namespace kandil
