// Hugging Face model folders: config.json + tokenizer.json (+ tokenizer_config.json) +
// model.safetensors or its shards (model.safetensors.index.json).
//
// Model::load accepts such a folder wherever it accepts a GGUF file: weights stay views into the
// mapped safetensors files (F32 / F16 / BF16), the config and tokenizer are translated to the GGUF
// metadata llama.cpp's converter writes. convert_hf_to_gguf writes that GGUF file.
// Supported: LlamaForCausalLM (incl. LLaMA 3 rope scaling), MistralForCausalLM (sliding window),
// Qwen2ForCausalLM, Qwen3ForCausalLM, with byte-level BPE tokenizers. See docs/hf-models.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "kandil/result.h"
#include "kandil/tensor_type.h"
#include "kandil/tokenizer.h"

namespace kandil {

// Whether `path` is a folder holding config.json.
bool is_hf_model_dir(const std::string& path);

// The tokenizer of an HF folder (tokenizer.json + tokenizer_config.json; config.json for the
// vocabulary size), without the weights.
Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& dir);

struct HfConvertOptions {
  // Matrices: F32, F16, BF16 or Q8_0 (a matrix whose rows do not split into Q8_0 blocks falls
  // back to F16, as llama.cpp does). Norms, biases and rope factors stay F32.
  TensorType type = TensorType::F16;
  // Called after each tensor is written.
  std::function<void(int done, int total, std::string_view name)> progress;
};

struct HfConvertResult {
  std::string input, output;
  std::string hf_arch;  // e.g. Qwen2ForCausalLM
  std::string arch;     // general.architecture written
  TensorType type = TensorType::F16;
  int n_tensors = 0;
  uint64_t input_bytes = 0, output_bytes = 0;
  bool permuted_qk = false;  // Q/K rows reordered for llama.cpp's adjacent-pair RoPE
};

// Writes an HF folder as a GGUF file with llama.cpp's tensor names and metadata keys. Holds one
// tensor's converted data at a time; the output appears atomically.
Result<HfConvertResult> convert_hf_to_gguf(const std::string& dir, const std::string& output,
                                           const HfConvertOptions& options = {});

}  // namespace kandil
