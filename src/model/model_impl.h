// Internal representation of a loaded model: config + weight views into the mapped file.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "backend/cpu/matmul.h"
#include "kandil/gguf.h"
#include "kandil/model.h"
#include "kandil/safetensors.h"
#include "kandil/tokenizer.h"

namespace kandil {

struct LayerWeights {
  std::vector<float> attn_norm;  // norm vectors are tiny: kept as F32 copies
  cpu::Weight wq, wk, wv, wo;
  std::vector<float> bq, bk, bv;      // biases (empty unless config.qkv_bias)
  std::vector<float> q_norm, k_norm;  // head_dim weights (empty unless config.qk_norm)
  std::vector<float> ffn_norm;
  cpu::Weight w_gate, w_up, w_down;
};

struct Model::Impl {
  GgufFile file;
  std::vector<uint8_t> metadata;  // HF folder: the bytes `file` parses (translated metadata)
  SafetensorsSet hf_weights;      // HF folder: the mapped safetensors files
  // HF folder: copies of the (rare) tensors whose offset is not a multiple of their element size;
  // the kernels read every other weight in place.
  std::vector<std::vector<float>> realigned;
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  cpu::Weight token_embd;
  std::vector<float> output_norm;
  cpu::Weight output;  // == token_embd when embeddings are tied
  std::vector<LayerWeights> layers;
  uint64_t weight_bytes = 0;
  uint64_t n_params = 0;
  uint64_t file_bytes = 0;
};

// Reads the architecture config from GGUF metadata (general.architecture + "<arch>.*" keys).
Result<ModelConfig> read_model_config(const GgufFile& file);

// A tensor as the loader sees it, in GGUF terms (ne[0] is the row length).
struct TensorView {
  TensorType type = TensorType::F32;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  static TensorView of(const GgufTensorInfo& t) {
    TensorView v;
    v.type = t.type;
    v.n_dims = t.n_dims;
    for (int d = 0; d < 4; ++d) v.ne[d] = t.ne[d];
    v.data = t.data;
    v.nbytes = t.nbytes;
    return v;
  }
};

// Where the loader finds tensors by their GGUF names: the GGUF file itself, or (a Hugging Face
// folder) the safetensors set through the name map. `where` names the source in errors.
struct TensorSource {
  std::string where;
  std::function<Result<std::optional<TensorView>>(std::string_view gguf_name)> find;
  std::function<std::string(std::string_view gguf_name)> display;  // name in errors (optional)
};

// Loads config, tokenizer-independent checks and every weight of m (m.file and m.tokenizer set).
Result<void> load_weights(Model::Impl& m, const TensorSource& src);
TensorSource gguf_tensor_source(const GgufFile& f);
// The Hugging Face folder form of Model::load (src/model/hf_model.cpp).
Result<void> load_hf_model(const std::string& dir, Model::Impl& m);

}  // namespace kandil
