// --lora FILE / --lora-scaled FILE:SCALE, shared by run and lora merge.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "kandil/lora.h"

namespace kandil::app {

struct LoraOptions {
  std::vector<std::string> lora;         // FILE (scale 1), or FILE:SCALE where accepted
  std::vector<std::string> lora_scaled;  // FILE:SCALE
  std::string type = "f32";              // storage of A and B for the unmerged forward pass
};

// Adds --lora (and --lora-scaled) to cmd.
void add_lora_options(CLI::App* cmd, LoraOptions& opt, bool scaled_flag = true);

// Splits "FILE:SCALE" at the last ':' (require_scale: the scale must be there; otherwise a path
// that exists as given is taken whole, scale 1).
Result<std::pair<std::string, float>> parse_lora_arg(const std::string& arg, bool require_scale);

// Loads every adapter named by the options, validated against the model, in order.
Result<std::vector<ActiveAdapter>> load_lora_options(const LoraOptions& opt, const Model& model);

}  // namespace kandil::app
