// LoRA adapter export (PEFT, GGUF) and full-model GGUF export (docs/lora-export.md).
#include "kandil/lora_export.h"

#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/file_io.h"
#include "kandil/safetensors.h"
#include "lora/adapter_impl.h"

namespace kandil {

namespace {

// The inverse of lora::permute_rows_for_adjacent_rope: adjacent-pair rows (GGUF) back to
// Hugging Face's split-half rows. Within each head, HF row s·head_dim/2 + j is GGUF row 2j + s.
std::vector<float> unpermute_rows(const std::vector<float>& m, int64_t n_rows, int64_t cols,
                                  int64_t head_dim) {
  std::vector<float> out(m.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_rows / head_dim; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t hf = h * head_dim + s * half + j, gg = h * head_dim + 2 * j + s;
        std::memcpy(out.data() + hf * cols, m.data() + gg * cols,
                    static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
  return out;
}

Result<void> check_spec(const ModelConfig& c, const LoraExportSpec& spec, const std::string& out) {
  if (spec.pairs.empty()) return Error{out + ": no LoRA matrices to export"};
  if (!std::isfinite(spec.alpha) || spec.alpha <= 0) {
    return Error{fmt::format("{}: alpha is {} (expected a positive number)", out, spec.alpha)};
  }
  std::set<std::pair<int32_t, int>> seen;
  for (const LoraMatrices& p : spec.pairs) {
    const std::string what =
        fmt::format("{}: layer {} {}", out, p.layer, lora_target_peft_name(p.target));
    if (p.layer < 0 || p.layer >= c.n_layer) {
      return Error{fmt::format("{}: layer outside the base's 0..{}", what, c.n_layer - 1)};
    }
    if (!seen.insert({p.layer, static_cast<int>(p.target)}).second) {
      return Error{what + ": given twice"};
    }
    const auto [n_in, n_out] = lora::target_dims(c, p.target);
    if (p.rank < 1) return Error{what + ": rank must be >= 1"};
    if (p.a.size() != static_cast<size_t>(p.rank * n_in) ||
        p.b.size() != static_cast<size_t>(n_out * p.rank)) {
      return Error{fmt::format("{}: expected A [{}][{}] and B [{}][{}], got {} and {} values", what,
                               p.rank, n_in, n_out, p.rank, p.a.size(), p.b.size())};
    }
  }
  return {};
}

}  // namespace

Result<void> export_lora_peft(const ModelConfig& c, const LoraExportSpec& spec,
                              const std::string& dir) {
  KANDIL_CHECK_OK(check_spec(c, spec, dir));
  const bool permuted = c.rope_layout == RopeLayout::adjacent_pairs;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{fmt::format("{}: cannot create folder: {}", dir, ec.message())};
  SafetensorsWriter w;
  std::vector<bool> used(kNumLoraTargets, false);
  int32_t rank_max = 0;
  std::map<std::string, int32_t> ranks;
  for (const LoraMatrices& p : spec.pairs) {
    const auto [n_in, n_out] = lora::target_dims(c, p.target);
    used[static_cast<size_t>(p.target)] = true;
    rank_max = std::max(rank_max, p.rank);
    const std::string name = fmt::format("base_model.model.model.layers.{}.{}.{}", p.layer,
                                         p.target <= LoraTarget::o ? "self_attn" : "mlp",
                                         lora_target_peft_name(p.target));
    ranks[fmt::format("model.layers.{}.{}.{}", p.layer,
                      p.target <= LoraTarget::o ? "self_attn" : "mlp",
                      lora_target_peft_name(p.target))] = p.rank;
    KANDIL_CHECK_OK(w.add(name + ".lora_A.weight", SafetensorsDType::F32, {p.rank, n_in},
                          p.a.data(), p.a.size() * sizeof(float)));
    const bool qk = p.target == LoraTarget::q || p.target == LoraTarget::k;
    if (permuted && qk) {
      if (c.n_rot != c.head_dim) {
        return Error{fmt::format(
            "{}: cannot write Hugging Face row order for partial rotary dimensions ({} of {})", dir,
            c.n_rot, c.head_dim)};
      }
      const std::vector<float> b = unpermute_rows(p.b, n_out, p.rank, c.head_dim);
      KANDIL_CHECK_OK(w.add(name + ".lora_B.weight", SafetensorsDType::F32, {n_out, p.rank},
                            b.data(), b.size() * sizeof(float)));
    } else {
      KANDIL_CHECK_OK(w.add(name + ".lora_B.weight", SafetensorsDType::F32, {n_out, p.rank},
                            p.b.data(), p.b.size() * sizeof(float)));
    }
  }
  w.set_metadata("format", "pt");
  KANDIL_CHECK_OK(
      w.write_file((std::filesystem::path(dir) / "adapter_model.safetensors").string()));
  nlohmann::ordered_json modules = nlohmann::ordered_json::array();
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (used[static_cast<size_t>(t)]) {
      modules.push_back(std::string(lora_target_peft_name(static_cast<LoraTarget>(t))));
    }
  }
  // PEFT's rank_pattern: per-module ranks that differ from r.
  nlohmann::ordered_json pattern = nlohmann::ordered_json::object();
  for (const auto& [name, r] : ranks) {
    if (r != rank_max) pattern[name] = r;
  }
  const nlohmann::ordered_json cfg = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", spec.base_model_name_or_path.empty()
                                      ? nlohmann::ordered_json(nullptr)
                                      : nlohmann::ordered_json(spec.base_model_name_or_path)},
      {"r", rank_max},
      {"lora_alpha", spec.alpha},
      {"use_rslora", spec.rslora},
      {"target_modules", modules},
      {"rank_pattern", pattern},
      {"alpha_pattern", nlohmann::ordered_json::object()},
      {"lora_dropout", 0.0},
      {"fan_in_fan_out", false},
      {"bias", "none"},
      {"use_dora", false},
      {"modules_to_save", nullptr},
      {"inference_mode", true}};
  const std::string text = cfg.dump(2) + "\n";
  return write_file_atomic((std::filesystem::path(dir) / "adapter_config.json").string(),
                           text.data(), text.size());
}

Result<void> export_lora_gguf(const ModelConfig& c, const LoraExportSpec& spec,
                              const std::string& path) {
  KANDIL_CHECK_OK(check_spec(c, spec, path));
  float alpha = spec.alpha;
  if (spec.rslora) {
    for (const LoraMatrices& p : spec.pairs) {
      if (p.rank != spec.pairs.front().rank) {
        return Error{path +
                     ": rsLoRA with per-module ranks cannot be expressed with one GGUF alpha"};
      }
    }
    alpha = spec.alpha * std::sqrt(static_cast<float>(spec.pairs.front().rank));
  }
  GgufWriter w;
  w.set_string("general.architecture", c.arch.empty() ? "llama" : c.arch);
  w.set_string("general.type", "adapter");
  w.set_string("general.name", spec.base_model_name_or_path.empty()
                                   ? std::string("kandil-lora")
                                   : "kandil-lora-" + spec.base_model_name_or_path);
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", alpha);
  for (const LoraMatrices& p : spec.pairs) {
    const auto [n_in, n_out] = lora::target_dims(c, p.target);
    const std::string name =
        fmt::format("blk.{}.{}.weight", p.layer, lora_target_gguf_name(p.target));
    KANDIL_CHECK_OK(w.add_tensor(name + ".lora_a", TensorType::F32, {n_in, p.rank}, p.a.data(),
                                 p.a.size() * sizeof(float)));
    KANDIL_CHECK_OK(w.add_tensor(name + ".lora_b", TensorType::F32, {p.rank, n_out}, p.b.data(),
                                 p.b.size() * sizeof(float)));
  }
  return w.write_file(path);
}

Result<void> export_full_gguf(const GgufFile& base, const NamedWeights& weights,
                              const std::string& out_path) {
  std::map<std::string, const std::vector<float>*> by_name;
  for (const auto& [name, values] : weights) {
    if (!by_name.emplace(name, &values).second) {
      return Error{fmt::format("{}: tensor '{}' is given twice", out_path, name)};
    }
  }
  GgufWriter w;
  w.set_alignment(base.alignment());
  for (const GgufKV& kv : base.metadata()) w.set_value(std::string(kv.key), kv.value);
  size_t replaced = 0;
  for (const GgufTensorInfo& t : base.tensors()) {
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    auto it = by_name.find(std::string(t.name));
    if (it == by_name.end()) {
      KANDIL_CHECK_OK(w.add_tensor(std::string(t.name), t.type, shape, t.data, t.nbytes));
      continue;
    }
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (static_cast<int64_t>(it->second->size()) != n) {
      return Error{fmt::format("{}: tensor '{}' has {} elements in the base, {} given", out_path,
                               t.name, n, it->second->size())};
    }
    KANDIL_CHECK_OK(w.add_tensor(std::string(t.name), TensorType::F32, shape, it->second->data(),
                                 it->second->size() * sizeof(float)));
    ++replaced;
  }
  if (replaced != by_name.size()) {
    for (const auto& [name, v] : by_name) {
      bool found = false;
      for (const GgufTensorInfo& t : base.tensors()) found = found || t.name == name;
      if (!found) {
        return Error{fmt::format("{}: tensor '{}' is not in the base model {}", out_path, name,
                                 base.name())};
      }
    }
  }
  return w.write_file(out_path);
}

}  // namespace kandil
