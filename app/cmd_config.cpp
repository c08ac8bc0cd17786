// kandil config get|set|unset|list [--json], kandil init
#include <fmt/core.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/util.h"
#include "platform/audit/audit.h"
#include "platform/common/paths.h"
#include "platform/config/config.h"

namespace kandil::app {

using namespace kandil::platform;

namespace {

struct ConfigFlags {
  std::string key, value;
  bool json = false, project = false;
};

int config_main(const std::string& action, const ConfigFlags& f) {
  const ConfigPaths paths = default_config_paths();
  if (action == "set" || action == "unset") {
    const std::string file = f.project ? paths.project_file : paths.user_file;
    auto r = action == "set" ? config_set(file, f.key, f.value) : config_unset(file, f.key);
    if (!r.ok()) return fail(r.error());
    AuditLog audit(audit_dir());
    nlohmann::json data = {{"file", file}, {"key", f.key}};
    if (action == "set") data["value"] = f.value;
    auto a = audit.append(action == "set" ? "config_set" : "config_unset", data);
    if (!a.ok()) return fail(a.error());
    if (f.json) {
      fmt::print("{}\n", data.dump());
    } else {
      fmt::print("{} {} in {}\n", action == "set" ? "set" : "removed", f.key, file);
    }
    return 0;
  }
  auto config = Config::load(paths);
  if (!config.ok()) return fail(config.error());
  if (action == "get") {
    if (!find_key(f.key))
      return fail(Error{"unknown key '" + f.key + "' (see `kandil config list`)"});
    auto s = config->get(f.key);
    if (f.json) {
      nlohmann::json j = {{"key", f.key}};
      j["value"] = s ? nlohmann::json(s->value) : nlohmann::json(nullptr);
      j["source"] = s ? s->source : "unset";
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("{}\n", s ? s->value : "");
    }
    return s ? 0 : 1;
  }
  // list
  nlohmann::json j = nlohmann::json::array();
  for (const auto& k : config_keys()) {
    auto s = config->get(k.key);
    if (f.json) {
      j.push_back({{"key", k.key},
                   {"value", s ? nlohmann::json(s->value) : nlohmann::json(nullptr)},
                   {"source", s ? s->source : "unset"},
                   {"env", env_name(k.key)},
                   {"help", k.help}});
    } else {
      fmt::print("{:<22} = {:<28} ({})\n", k.key, s ? "\"" + s->value + "\"" : "(unset)",
                 s ? s->source : "unset");
    }
  }
  if (f.json) fmt::print("{}\n", j.dump());
  return 0;
}

int init_main(bool force) {
  const std::string dir = ".kandil";
  const std::string file = dir + "/config.toml";
  std::error_code ec;
  if (std::filesystem::exists(file, ec) && !force) {
    return fail(Error{file + " already exists (use --force to overwrite)"});
  }
  auto d = make_dirs(dir);
  if (!d.ok()) return fail(d.error());
  auto w = write_file_atomic(file, commented_config());
  if (!w.ok()) return fail(w.error());
  AuditLog audit(audit_dir());
  auto a = audit.append("init", {{"file", std::filesystem::absolute(file).string()}});
  if (!a.ok()) return fail(a.error());
  fmt::print("wrote {} (every setting commented out; see `kandil config list`)\n", file);
  return 0;
}

}  // namespace

void register_config(CLI::App& app, CommandFn& selected) {
  CLI::App* cmd = app.add_subcommand(
      "config",
      "Read and change settings (~/.config/kandil/config.toml < ./.kandil/config.toml "
      "< KANDIL_* env < flags)");
  cmd->require_subcommand(1);
  for (const char* action : {"get", "set", "unset", "list"}) {
    auto f = std::make_shared<ConfigFlags>();
    const std::string a = action;
    CLI::App* sub =
        cmd->add_subcommand(a, a == "get"     ? "Print a key's effective value"
                               : a == "set"   ? "Set a key in the user (or project) file"
                               : a == "unset" ? "Remove a key from the user (or project) file"
                                              : "Every key with its value and source");
    if (a != "list") sub->add_option("key", f->key, "Dotted key, e.g. openai.base_url")->required();
    if (a == "set") sub->add_option("value", f->value, "Value")->required();
    if (a == "set" || a == "unset") {
      sub->add_flag("--project", f->project,
                    "Write ./.kandil/config.toml instead of the user file");
    }
    sub->add_flag("--json", f->json, "JSON output");
    sub->callback([a, f, &selected] { selected = [a, f] { return config_main(a, *f); }; });
  }
  auto force = std::make_shared<bool>(false);
  CLI::App* init = app.add_subcommand("init", "Create .kandil/ with a commented config.toml");
  init->add_flag("--force", *force, "Overwrite an existing .kandil/config.toml");
  init->callback([force, &selected] { selected = [force] { return init_main(*force); }; });
}

}  // namespace kandil::app
