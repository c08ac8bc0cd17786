// kandil sessions list|show|resume|rm [--json]
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "app/chat_flags.h"
#include "app/commands.h"
#include "app/util.h"
#include "platform/common/paths.h"
#include "platform/sessions/store.h"

namespace kandil::app {

using namespace kandil::platform;

namespace {

struct SessionsFlags {
  std::string id;
  bool json = false;
};

nlohmann::json info_json(const SessionInfo& s) {
  return {{"id", s.id},
          {"name", s.name},
          {"provider", s.provider},
          {"model", s.model},
          {"system", safe_utf8(s.system)},
          {"created_at", s.created_at},
          {"updated_at", s.updated_at},
          {"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"messages", s.n_messages}};
}

int sessions_main(const std::string& action, const SessionsFlags& f) {
  auto store = SessionStore::open(database_path());
  if (!store.ok()) return fail(store.error());
  SessionStore& db = **store;
  if (action == "list") {
    auto list = db.list();
    if (!list.ok()) return fail(list.error());
    if (f.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& s : *list) j.push_back(info_json(s));
      fmt::print("{}\n", j.dump());
      return 0;
    }
    if (list->empty()) fmt::print("no sessions\n");
    for (const auto& s : *list) {
      fmt::print("{}  {:<16} {:>4} messages  {:>7} tokens  {}  {} {}\n", s.id, s.name, s.n_messages,
                 s.prompt_tokens + s.completion_tokens, s.updated_at, s.provider, s.model);
    }
    return 0;
  }
  if (action == "show") {
    auto s = db.load(f.id);
    if (!s.ok()) return fail(s.error());
    if (f.json) {
      nlohmann::json j = info_json(s->info);
      j["messages"] = nlohmann::json::array();
      for (const auto& m : s->messages) {
        j["messages"].push_back({{"role", m.role}, {"content", safe_utf8(m.content)}});
      }
      fmt::print("{}\n", j.dump());
      return 0;
    }
    fmt::print("session {}{}  {} {}  {} prompt + {} completion tokens\n", s->info.id,
               s->info.name.empty() ? "" : " (" + s->info.name + ")", s->info.provider,
               s->info.model, s->info.prompt_tokens, s->info.completion_tokens);
    if (!s->info.system.empty()) fmt::print("system: {}\n", s->info.system);
    for (const auto& m : s->messages) fmt::print("{}: {}\n", m.role, m.content);
    return 0;
  }
  if (action == "rm") {
    auto r = db.remove(f.id);
    if (!r.ok()) return fail(r.error());
    if (f.json) {
      fmt::print("{}\n", nlohmann::json{{"removed", f.id}}.dump());
    } else {
      fmt::print("removed {}\n", f.id);
    }
    return 0;
  }
  // resume
  ChatFlags cf;
  cf.resume = f.id;
  return run_chat(cf);
}

}  // namespace

void register_sessions(CLI::App& app, CommandFn& selected) {
  CLI::App* cmd = app.add_subcommand("sessions", "List, show, resume or remove chat sessions");
  cmd->require_subcommand(1);
  for (const char* action : {"list", "show", "resume", "rm"}) {
    auto f = std::make_shared<SessionsFlags>();
    const std::string a = action;
    CLI::App* sub = cmd->add_subcommand(a, a == "list"   ? "List sessions, most recent first"
                                           : a == "show" ? "Print a session's messages"
                                           : a == "rm"   ? "Delete a session"
                                                         : "Continue a session in the REPL");
    if (a != "list") sub->add_option("session", f->id, "Session id, id prefix or name")->required();
    if (a != "resume") sub->add_flag("--json", f->json, "JSON output");
    sub->callback([a, f, &selected] { selected = [a, f] { return sessions_main(a, *f); }; });
  }
}

}  // namespace kandil::app
