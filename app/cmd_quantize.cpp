// kandil quantize IN.gguf OUT.gguf TYPE [-t N] [--json]: llama-quantize-compatible conversion.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/quantize.h"

namespace kandil::app {
namespace {

struct QuantizeOptions {
  std::string input, output, type;
  int32_t threads = 0;
  bool json = false;
};

int run_quantize(const QuantizeOptions& opt) {
  auto target = quantize_target_from_name(opt.type);
  if (!target) {
    return fail(make_error(fmt::format("unsupported quantization type '{}' (expected one of: {})",
                                       opt.type, quantize_target_names())));
  }
  if (opt.input == opt.output) {
    return fail(make_error("the output file must differ from the input file"));
  }
  Progress bar("quantize", 0, "tensors");
  bool started = false;
  auto r = quantize_model(opt.input, opt.output, *target, opt.threads,
                          [&](int done, int total, std::string_view name) {
                            if (!started) {
                              bar = Progress("quantize", total, "tensors");
                              started = true;
                            }
                            bar.update(done, std::string(name));
                          });
  if (started) bar.finish();
  if (!r.ok()) return fail(r.error());
  for (const auto& note : r->notes) fmt::print(stderr, "note: {}\n", note);

  if (opt.json) {
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [type, n] : r->type_counts) counts[type] = n;
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : r->tensors) {
      tensors.push_back({{"name", safe_utf8(t.name)},
                         {"from", tensor_type_name(t.from)},
                         {"to", tensor_type_name(t.to)},
                         {"bytes_in", t.bytes_in},
                         {"bytes_out", t.bytes_out}});
    }
    nlohmann::json j{{"input", r->input},
                     {"output", r->output},
                     {"type", quantize_target_name(r->target)},
                     {"file_type", r->file_type},
                     {"input_bytes", r->input_bytes},
                     {"output_bytes", r->output_bytes},
                     {"type_counts", counts},
                     {"tensors", tensors},
                     {"notes", r->notes},
                     {"threads", r->threads},
                     {"seconds", r->seconds}};
    fmt::print("{}\n", j.dump());
    return 0;
  }
  std::string counts;
  for (const auto& [type, n] : r->type_counts) counts += fmt::format(" {} x {},", n, type);
  if (!counts.empty()) counts.pop_back();
  fmt::print("{} -> {} ({})\n", r->input, r->output, quantize_target_name(r->target));
  fmt::print("tensors:{}\n", counts);
  fmt::print("size: {:.2f} MiB -> {:.2f} MiB, {:.2f} s on {} threads\n",
             static_cast<double>(r->input_bytes) / (1024.0 * 1024.0),
             static_cast<double>(r->output_bytes) / (1024.0 * 1024.0), r->seconds, r->threads);
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Convert a GGUF model to another weight type (llama-quantize's mixes)");
  cmd->add_option("input", opt->input, "Input GGUF model")->required();
  cmd->add_option("output", opt->output, "Output GGUF file")->required();
  cmd->add_option("type", opt->type, "Target type: " + quantize_target_names())->required();
  cmd->add_option("-t,--threads", opt->threads, "Threads (0: all)")->capture_default_str();
  cmd->add_flag("--json", opt->json, "Print a JSON report");
  cmd->callback([opt, &selected] { selected = [opt] { return run_quantize(*opt); }; });
}

}  // namespace kandil::app
