// kandil serve -m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [-c CTX]
// [--lora FILE[:SCALE]]... [--api-key KEY | --api-key-file F] [--metrics]
#include <fmt/core.h>

#include <cstdio>

#include "app/commands.h"
#include "app/common.h"
#include "app/lora_options.h"
#include "app/util.h"
#include "kandil/serve.h"

namespace kandil::app {
namespace {

struct ServeCmdOptions {
  ModelOptions model;
  ServerOptions server;
  std::vector<std::string> lora;
  std::string api_key_file;
  std::string alias;
};

int run_serve(ServeCmdOptions& opt) {
  ServerOptions s = opt.server;
  auto kv = parse_cache_type(opt.model.cache_type);
  if (!kv.ok()) return fail(kv.error());
  s.cache_type = *kv;
  s.n_ctx = opt.model.ctx;
  s.n_batch = opt.model.batch;
  s.n_threads = opt.model.threads;
  s.model_name = opt.alias;
  if (!opt.api_key_file.empty()) {
    auto key = read_text_file(opt.api_key_file);
    if (!key.ok()) return fail(key.error());
    std::string k = *key;
    while (!k.empty() && (k.back() == '\n' || k.back() == '\r' || k.back() == ' ')) k.pop_back();
    if (k.empty()) return fail(Error{opt.api_key_file + ": the API key file is empty"});
    s.api_key = k;
  }
  for (const auto& a : opt.lora) {
    auto p = parse_lora_arg(a, false);
    if (!p.ok()) return fail(p.error().with_context("--lora"));
    s.lora.push_back(ServeLora{p->first, p->second});
  }
  auto path = resolve_model_path(opt.model.model);
  if (!path.ok()) return fail(path.error());
  // Before any thread starts, so that only serve_until_signal's waiter receives them.
  block_shutdown_signals();
  auto model = Model::load(*path);
  if (!model.ok()) return fail(model.error());
  auto server = Server::create(*model, s, *path);
  if (!server.ok()) return fail(server.error());
  auto r = serve_until_signal(**server, [&](int port) {
    fmt::print(stderr, "kandil serve: {} on http://{}:{} ({} slot{}, API key {})\n", *path, s.host,
               port, s.parallel, s.parallel == 1 ? "" : "s",
               s.api_key.empty() ? "off" : "required");
    std::fflush(stderr);
  });
  if (!r.ok()) return fail(r.error());
  fmt::print(stderr, "kandil serve: stopped\n");
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<ServeCmdOptions>();
  CLI::App* cmd =
      app.add_subcommand("serve", "OpenAI-compatible HTTP server (continuous batching, LoRA)");
  add_model_options(cmd, opt->model);
  ServerOptions& s = opt->server;
  cmd->add_option("--host", s.host, "Address to listen on (loopback by default)")
      ->capture_default_str();
  cmd->add_option("--port", s.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--parallel", s.parallel, "Slots: requests decoded together")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--lora", opt->lora, "LoRA adapter FILE[:SCALE] (repeatable; ids 0, 1, ...)");
  auto* key = cmd->add_option("--api-key", s.api_key, "Require Authorization: Bearer KEY");
  auto* key_file = cmd->add_option("--api-key-file", opt->api_key_file, "Read the API key from F");
  key->excludes(key_file);
  cmd->add_flag("--metrics", s.metrics, "Serve Prometheus metrics at GET /metrics");
  cmd->add_option("--alias", opt->alias, "Model id in /v1/models (default: the file name)");
  cmd->add_option("--max-queue", s.max_queue, "Waiting requests before 429")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--max-body", s.max_body_bytes, "Largest request body in bytes (larger: 413)")
      ->capture_default_str();
  cmd->add_option("--timeout", s.request_timeout_s, "Seconds a request may run")
      ->capture_default_str();
  cmd->add_option("--grace", s.shutdown_grace_s,
                  "Seconds in-flight requests get to finish on SIGTERM")
      ->capture_default_str();
  cmd->callback([opt, &selected] { selected = [opt] { return run_serve(*opt); }; });
}

}  // namespace kandil::app
