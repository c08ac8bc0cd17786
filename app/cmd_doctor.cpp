// kandil doctor [--json]: CPU features, memory, threads, model file, providers, GPU.
#include <fmt/core.h>

#include "app/commands.h"
#include "app/util.h"
#include "platform/config/config.h"
#include "platform/doctor/doctor.h"

namespace kandil::app {

using namespace kandil::platform;

void register_doctor(CLI::App& app, CommandFn& selected) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("doctor", "Check the machine, the model and the providers");
  cmd->add_flag("--json", *json, "JSON output");
  cmd->callback([json, &selected] {
    selected = [json] {
      auto config = Config::load(default_config_paths());
      if (!config.ok()) return fail(config.error());
      auto checks = run_doctor(*config);
      bool failed = false;
      for (const auto& c : checks) failed |= c.status == "fail";
      if (*json) {
        fmt::print("{}\n", checks_json(checks).dump());
      } else {
        for (const auto& c : checks) fmt::print("{:<5} {:<10} {}\n", c.status, c.name, c.detail);
      }
      return failed ? 1 : 0;
    };
  });
}

}  // namespace kandil::app
