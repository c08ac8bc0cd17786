// kandil audit verify|show [--since DATE] [--json]
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/util.h"
#include "platform/audit/audit.h"
#include "platform/common/paths.h"

namespace kandil::app {

using namespace kandil::platform;

namespace {

struct AuditFlags {
  std::string since;
  bool json = false;
};

int audit_main(const std::string& action, const AuditFlags& f) {
  AuditLog log(audit_dir());
  if (action == "verify") {
    auto r = log.verify();
    if (!r.ok()) return fail(r.error());
    if (f.json) {
      nlohmann::json j = {{"ok", r->ok}, {"entries", r->entries}, {"files", r->files}};
      if (!r->ok) {
        j["first_bad"] = r->first_bad;
        j["problem"] = r->problem;
      }
      fmt::print("{}\n", j.dump());
    } else if (r->ok) {
      fmt::print("audit log intact: {} entries in {} files\n", r->entries, r->files);
    } else {
      fmt::print("audit log BROKEN at {}: {}\n", r->first_bad, r->problem);
    }
    return r->ok ? 0 : 2;
  }
  auto entries = log.read(f.since);
  if (!entries.ok()) return fail(entries.error());
  if (f.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : *entries) {
      j.push_back({{"seq", e.seq}, {"ts", e.ts}, {"event", e.event}, {"data", e.data}});
    }
    fmt::print("{}\n", j.dump());
    return 0;
  }
  for (const auto& e : *entries) {
    std::string summary;
    if (e.event == "chat_turn") {
      std::string u = e.data.value("user", "");
      if (u.size() > 60) u = u.substr(0, 57) + "...";
      summary = fmt::format(
          "session {} {} tokens: {}", e.data.value("session", ""),
          e.data.value("prompt_tokens", int64_t{0}) + e.data.value("completion_tokens", int64_t{0}),
          u);
    } else {
      summary = e.data.dump();
    }
    fmt::print("{:>5}  {}  {:<12} {}\n", e.seq, e.ts, e.event, summary);
  }
  return 0;
}

}  // namespace

void register_audit(CLI::App& app, CommandFn& selected) {
  CLI::App* cmd = app.add_subcommand("audit", "Check or print the audit log");
  cmd->require_subcommand(1);
  for (const char* action : {"verify", "show"}) {
    auto f = std::make_shared<AuditFlags>();
    const std::string a = action;
    CLI::App* sub =
        cmd->add_subcommand(a, a == "verify" ? "Check the hash chain; names the first bad entry"
                                             : "Print entries (oldest first)");
    if (a == "show")
      sub->add_option("--since", f->since, "Only entries at or after (YYYY-MM-DD[THH:MM])");
    sub->add_flag("--json", f->json, "JSON output");
    sub->callback([a, f, &selected] { selected = [a, f] { return audit_main(a, *f); }; });
  }
}

}  // namespace kandil::app
