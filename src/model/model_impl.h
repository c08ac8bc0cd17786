// Internal representation of a loaded model: config + weight views into the mapped file.
#pragma once

#include <memory>
#include <vector>

#include "backend/cpu/matmul.h"
#include "kandil/gguf.h"
#include "kandil/model.h"
#include "kandil/tokenizer.h"

namespace kandil {

struct LayerWeights {
  std::vector<float> attn_norm;  // norm vectors are tiny: kept as F32 copies
  cpu::Weight wq, wk, wv, wo;
  std::vector<float> ffn_norm;
  cpu::Weight w_gate, w_up, w_down;
};

struct Model::Impl {
  GgufFile file;
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  cpu::Weight token_embd;
  std::vector<float> output_norm;
  cpu::Weight output;  // == token_embd when embeddings are tied
  std::vector<LayerWeights> layers;
  uint64_t weight_bytes = 0;
};

// Reads the architecture config from GGUF metadata (general.architecture + "<arch>.*" keys).
Result<ModelConfig> read_model_config(const GgufFile& file);

}  // namespace kandil
