// Writing trained weights: LoRA adapters as a PEFT folder (adapter_config.json +
// adapter_model.safetensors, Hugging Face row order) and as a GGUF adapter (llama.cpp's form),
// and a full model as a GGUF copy of its base with replaced F32 weights. Every file is written
// atomically (a temporary file renamed into place). See docs/lora-export.md.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/lora.h"
#include "kandil/model.h"
#include "kandil/result.h"

namespace kandil {

// One trained (A, B) pair in kandil's GGUF row order: a is [rank][n_in], b is [n_out][rank]
// (n_in, n_out of the target's weight in the base), F32.
struct LoraMatrices {
  int32_t layer = 0;
  LoraTarget target = LoraTarget::q;
  int32_t rank = 0;
  std::vector<float> a, b;
};

struct LoraExportSpec {
  float alpha = 16.0f;  // scale alpha / rank (rsLoRA: alpha / √rank)
  bool rslora = false;
  std::string base_model_name_or_path;  // PEFT config field (e.g. the base model's name)
  std::vector<LoraMatrices> pairs;
};

// PEFT folder `dir` (created if needed). For a base whose RoPE pairs adjacent dimensions (LLaMA
// GGUF), B's q/k rows are put back into Hugging Face's split-half order, the inverse of what
// LoraAdapter::load does, so the folder loads in PEFT and back in kandil with the same result.
Result<void> export_lora_peft(const ModelConfig& base, const LoraExportSpec& spec,
                              const std::string& dir);
// GGUF adapter file: general.type = adapter, adapter.type = lora, adapter.lora.alpha (rsLoRA
// folded in: alpha·√r, one rank needed), blk.N.<weight>.weight.lora_a [n_in, r] / lora_b [r,
// n_out] F32 in the base's row order.
Result<void> export_lora_gguf(const ModelConfig& base, const LoraExportSpec& spec,
                              const std::string& path);

// Full-model export: a copy of `base` (metadata, tensor order, alignment) where each named
// tensor is replaced by the given F32 values (same element count; written as F32). Every name
// must exist in the base; tensors not named are copied as they are.
using NamedWeights = std::vector<std::pair<std::string, std::vector<float>>>;
Result<void> export_full_gguf(const GgufFile& base, const NamedWeights& weights,
                              const std::string& out_path);

}  // namespace kandil
