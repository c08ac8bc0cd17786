// Random PEFT adapters (tests, benchmarks).
#include <fmt/core.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "base/file_io.h"
#include "kandil/safetensors.h"
#include "lora/adapter_impl.h"

namespace kandil {

Result<void> write_synthetic_peft_adapter(const ModelConfig& c, const LoraSynthSpec& spec,
                                          const std::string& dir) {
  if (spec.rank < 1 || spec.rank > 4096) return Error{"synth lora: rank must be in 1..4096"};
  if (spec.targets.empty()) return Error{"synth lora: no targets"};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{fmt::format("{}: cannot create folder: {}", dir, ec.message())};
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  SafetensorsWriter w;
  nlohmann::json modules = nlohmann::json::array();
  for (LoraTarget t : spec.targets) modules.push_back(std::string(lora_target_peft_name(t)));
  std::vector<float> a, b;
  for (int32_t l = 0; l < c.n_layer; ++l) {
    for (LoraTarget t : spec.targets) {
      const auto [n_in, n_out] = lora::target_dims(c, t);
      a.resize(static_cast<size_t>(spec.rank * n_in));
      b.resize(static_cast<size_t>(n_out * spec.rank));
      const float sa = 1.0f / std::sqrt(static_cast<float>(n_in));
      for (float& v : a) v = sa * normal(rng);
      for (float& v : b) v = spec.b_stddev * normal(rng);
      const std::string name =
          fmt::format("base_model.model.model.layers.{}.{}.{}", l,
                      t <= LoraTarget::o ? "self_attn" : "mlp", lora_target_peft_name(t));
      KANDIL_CHECK_OK(w.add(name + ".lora_A.weight", SafetensorsDType::F32, {spec.rank, n_in},
                            a.data(), a.size() * sizeof(float)));
      KANDIL_CHECK_OK(w.add(name + ".lora_B.weight", SafetensorsDType::F32, {n_out, spec.rank},
                            b.data(), b.size() * sizeof(float)));
    }
  }
  w.set_metadata("format", "pt");
  KANDIL_CHECK_OK(
      w.write_file((std::filesystem::path(dir) / "adapter_model.safetensors").string()));
  const nlohmann::json cfg = {{"peft_type", "LORA"},
                              {"task_type", "CAUSAL_LM"},
                              {"r", spec.rank},
                              {"lora_alpha", spec.alpha},
                              {"use_rslora", spec.rslora},
                              {"fan_in_fan_out", false},
                              {"bias", "none"},
                              {"use_dora", false},
                              {"modules_to_save", nullptr},
                              {"target_modules", modules},
                              {"base_model_name_or_path", c.name}};
  const std::string text = cfg.dump(2);
  return write_file_atomic((std::filesystem::path(dir) / "adapter_config.json").string(),
                           text.data(), text.size());
}

}  // namespace kandil
