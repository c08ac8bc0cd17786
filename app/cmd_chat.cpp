// kandil chat [-m MODEL | --provider NAME] [--system TEXT] [-p PROMPT] [--json] [--resume ID]
#include <fmt/core.h>
#include <unistd.h>

#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "app/chat_flags.h"
#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "platform/audit/audit.h"
#include "platform/chat/repl.h"
#include "platform/chat/session.h"
#include "platform/common/paths.h"
#include "platform/config/config.h"
#include "platform/sessions/store.h"

namespace kandil::app {

using namespace kandil::platform;

namespace {

Result<Config> chat_config(const ChatFlags& f) {
  std::map<std::string, std::string> flags;
  if (!f.provider.empty()) flags["provider"] = f.provider;
  if (!f.max_tokens.empty()) flags["max_tokens"] = f.max_tokens;
  if (!f.temperature.empty()) flags["temperature"] = f.temperature;
  if (!f.seed.empty()) flags["seed"] = f.seed;
  if (!f.ctx.empty()) flags["ctx"] = f.ctx;
  if (!f.threads.empty()) flags["threads"] = f.threads;
  auto first = Config::load(default_config_paths(), flags);
  if (!first.ok() || f.model.empty()) return first;
  // -m names the model of whichever provider is active.
  const std::string provider = first->str("provider");
  flags[provider == "builtin" ? "model" : provider + ".model"] = f.model;
  return Config::load(default_config_paths(), flags);
}

}  // namespace

int run_chat(const ChatFlags& f) {
  auto config = chat_config(f);
  if (!config.ok()) return fail(config.error());
  auto settings = provider_settings(*config);
  if (!settings.ok()) return fail(settings.error());
  if (settings->provider == "builtin" && settings->model.empty()) {
    if (auto bundled = bundled_model_path()) settings->model = *bundled;  // kandil's own model
  }
  auto provider = make_provider(*settings);
  if (!provider.ok()) return fail(provider.error());
  auto store = SessionStore::open(database_path());
  if (!store.ok()) return fail(store.error());
  AuditLog audit(audit_dir());
  ChatOptions opts;
  opts.max_tokens = static_cast<int32_t>(config->integer("max_tokens"));
  opts.temperature = config->number("temperature");
  opts.seed = config->integer("seed");
  ChatSession session(std::move(*provider), store->get(), &audit, opts);
  const std::string system = f.system.empty() ? config->str("system") : f.system;
  session.reset(system);
  if (!f.resume.empty()) {
    auto r = session.load(f.resume);
    if (!r.ok()) return fail(r.error());
    if (!f.system.empty()) session.set_system(f.system);
  }

  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (!f.prompt.empty() || !tty) {
    std::string text = f.prompt;
    if (text.empty()) {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    }
    if (text.empty()) return fail(Error{"nothing to send: give -p TEXT or pipe text to stdin"});
    auto r = session.turn(text, [&f](std::string_view piece) {
      if (!f.json) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
      return true;
    });
    if (!r.ok()) return fail(r.error());
    if (r->dropped > 0) {
      fmt::print(stderr,
                 "note: {} oldest messages were dropped to fit the context window ({} tokens)\n",
                 r->dropped, session.provider().context_window());
    }
    if (f.json) {
      nlohmann::json j;
      j["session"] = session.id();
      j["provider"] = session.provider().name();
      j["model"] = session.provider().model();
      j["text"] = safe_utf8(r->answer);
      j["stop_reason"] = r->usage.stop_reason;
      j["usage"] = {{"prompt_tokens", r->usage.prompt_tokens},
                    {"completion_tokens", r->usage.completion_tokens},
                    {"estimated", r->usage.estimated}};
      j["ttft_ms"] = r->usage.ttft_ms;
      j["total_ms"] = r->usage.total_ms;
      j["dropped_messages"] = r->dropped;
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("\n");
    }
    return 0;
  }

  ReplOptions ro;
  ro.history_file = history_path();
  ro.store = store->get();
  ro.switch_model = [&config](const std::string& name) -> Result<std::unique_ptr<Provider>> {
    auto s = provider_settings(*config);
    if (!s.ok()) return s.error();
    s->model = name;
    return make_provider(*s);
  };
  return run_repl(session, ro);
}

void register_chat(CLI::App& app, CommandFn& selected) {
  auto f = std::make_shared<ChatFlags>();
  CLI::App* cmd =
      app.add_subcommand("chat", "Chat with a model: a REPL, or one answer with -p / piped stdin");
  cmd->add_option("-m,--model", f->model, "Model: GGUF file (builtin) or remote model id");
  cmd->add_option("--provider", f->provider, "builtin | openai | anthropic");
  cmd->add_option("--system", f->system, "System prompt");
  cmd->add_option("-p,--prompt", f->prompt, "Send one message, print the answer, exit");
  cmd->add_option("-r,--resume", f->resume, "Continue a saved session (id or name)");
  cmd->add_option("-n,--max-tokens", f->max_tokens, "Most tokens per answer");
  cmd->add_option("--temp", f->temperature, "Sampling temperature");
  cmd->add_option("-s,--seed", f->seed, "Sampling seed (builtin)");
  cmd->add_option("-c,--ctx-size", f->ctx, "Context size (builtin)");
  cmd->add_option("-t,--threads", f->threads, "Threads (builtin)");
  cmd->add_flag("--json", f->json, "One-shot: print one JSON object (answer, usage, ttft_ms)");
  cmd->callback([f, &selected] { selected = [f] { return run_chat(*f); }; });
}

}  // namespace kandil::app
