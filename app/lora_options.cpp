#include "app/lora_options.h"

#include <fmt/core.h>

#include <cmath>
#include <filesystem>

namespace kandil::app {

void add_lora_options(CLI::App* cmd, LoraOptions& opt, bool scaled_flag) {
  cmd->add_option("--lora", opt.lora,
                  scaled_flag ? "LoRA adapter: GGUF file or PEFT folder (repeatable; scale 1)"
                              : "LoRA adapter FILE[:SCALE]: GGUF file or PEFT folder "
                                "(repeatable)");
  cmd->add_option("--lora-type", opt.type,
                  "Storage of the adapters' matrices at inference: f32 (exact), f16 or q8_0 "
                  "(fewer bytes per token)")
      ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
      ->capture_default_str();
  if (scaled_flag) {
    cmd->add_option("--lora-scaled", opt.lora_scaled,
                    "LoRA adapter with a scale, FILE:SCALE (repeatable)");
  }
}

Result<std::pair<std::string, float>> parse_lora_arg(const std::string& arg, bool require_scale) {
  std::error_code ec;
  if (!require_scale && std::filesystem::exists(arg, ec)) return std::pair{arg, 1.0f};
  const size_t colon = arg.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    if (!require_scale) return std::pair{arg, 1.0f};
    return Error{fmt::format("'{}': expected FILE:SCALE, e.g. style.gguf:0.5", arg)};
  }
  const std::string scale_text = arg.substr(colon + 1);
  try {
    size_t used = 0;
    const float scale = std::stof(scale_text, &used);
    if (used != scale_text.size() || !std::isfinite(scale)) throw std::invalid_argument(arg);
    return std::pair{arg.substr(0, colon), scale};
  } catch (const std::exception&) {
    return Error{fmt::format("'{}': the scale '{}' is not a finite number (expected FILE:SCALE)",
                             arg, scale_text)};
  }
}

Result<std::vector<ActiveAdapter>> load_lora_options(const LoraOptions& opt, const Model& model) {
  std::vector<std::pair<std::string, float>> specs;
  for (const std::string& a : opt.lora) {
    auto p = parse_lora_arg(a, false);
    if (!p.ok()) return p.error();
    specs.push_back(*p);
  }
  for (const std::string& a : opt.lora_scaled) {
    auto p = parse_lora_arg(a, true);
    if (!p.ok()) return p.error().with_context("--lora-scaled");
    specs.push_back(*p);
  }
  LoraLoadOptions load;
  if (auto t = tensor_type_from_name(opt.type)) load.storage = *t;
  std::vector<ActiveAdapter> out;
  for (const auto& [path, scale] : specs) {
    auto adapter = LoraAdapter::load(path, model, load);
    if (!adapter.ok()) return adapter.error();
    out.push_back({*adapter, scale});
  }
  return out;
}

}  // namespace kandil::app
