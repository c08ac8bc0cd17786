// kandil convert HF_DIR -o OUT.gguf [--type f32|f16|bf16|q8_0] [--json]: a Hugging Face model
// folder as a GGUF file with llama.cpp's tensor names and metadata keys.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/hf.h"

namespace kandil::app {
namespace {

struct ConvertOptions {
  std::string input, output, type = "f16";
  bool json = false;
};

Result<TensorType> parse_type(const std::string& name) {
  if (name == "f32") return TensorType::F32;
  if (name == "f16") return TensorType::F16;
  if (name == "bf16") return TensorType::BF16;
  if (name == "q8_0") return TensorType::Q8_0;
  return Error{fmt::format("unknown output type '{}' (expected f32, f16, bf16 or q8_0)", name)};
}

int run_convert(const ConvertOptions& opt) {
  auto type = parse_type(opt.type);
  if (!type.ok()) return fail(type.error());
  if (!is_hf_model_dir(opt.input)) {
    return fail(make_error(opt.input + ": not a Hugging Face model folder (no config.json)"));
  }
  HfConvertOptions o;
  o.type = *type;
  Progress bar("convert", 0, "tensors");
  bool started = false;
  o.progress = [&](int done, int total, std::string_view name) {
    if (!started) {
      bar = Progress("convert", total, "tensors");
      started = true;
    }
    bar.update(done, std::string(name));
  };
  auto r = convert_hf_to_gguf(opt.input, opt.output, o);
  if (started) bar.finish();
  if (!r.ok()) return fail(r.error());
  if (opt.json) {
    nlohmann::json j{{"input", r->input},
                     {"output", r->output},
                     {"hf_architecture", r->hf_arch},
                     {"architecture", r->arch},
                     {"type", opt.type},
                     {"tensors", r->n_tensors},
                     {"permuted_qk", r->permuted_qk},
                     {"input_bytes", r->input_bytes},
                     {"output_bytes", r->output_bytes}};
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("{} ({}) -> {} (arch {}, {})\n", r->input, r->hf_arch, r->output, r->arch, opt.type);
  fmt::print("{} tensors{}, {:.2f} MiB -> {:.2f} MiB\n", r->n_tensors,
             r->permuted_qk ? ", Q/K rows permuted for llama.cpp's RoPE layout" : "",
             static_cast<double>(r->input_bytes) / (1024.0 * 1024.0),
             static_cast<double>(r->output_bytes) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace

void register_convert(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face model folder (safetensors + config.json) to GGUF");
  cmd->add_option("input", opt->input, "Hugging Face model folder")->required();
  cmd->add_option("-o,--output", opt->output, "Output GGUF file")->required();
  cmd->add_option("--type", opt->type, "Matrix type: f32, f16, bf16 or q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
      ->capture_default_str();
  cmd->add_flag("--json", opt->json, "Print a JSON report");
  cmd->callback([opt, &selected] { selected = [opt] { return run_convert(*opt); }; });
}

}  // namespace kandil::app
