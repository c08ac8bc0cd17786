// Hugging Face folders inside the engine: config.json -> architecture metadata, tokenizer.json ->
// tokenizer metadata, and the tensor-name map between the two conventions. Both forms end up as
// GGUF metadata (llama.cpp's keys), so one reader (read_model_config, Tokenizer::from_gguf) serves
// GGUF files and HF folders alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/result.h"

namespace kandil::hf {

// The fields of config.json the engine uses, validated.
struct HfConfig {
  std::string hf_arch;  // architectures[0], e.g. "Qwen2ForCausalLM"
  std::string arch;     // GGUF architecture: llama, qwen2 or qwen3
  std::string name;     // _name_or_path, or the folder name
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  bool explicit_head_dim = false;  // head_dim given and != hidden / heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::string rope_type;  // "" (none), "linear" or "llama3"
  double rope_factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  bool tie_word_embeddings = false;
  int64_t sliding_window = 0;  // 0: none
  bool attention_bias = false;
  bool qk_norm = false;
  std::optional<int64_t> bos_token_id, eos_token_id;
};

// Parses config.json text; errors name `file` and the key.
Result<HfConfig> parse_config(std::string_view json_text, const std::string& file);
Result<HfConfig> read_config(const std::string& dir);

// LLaMA 3 rope scaling as per-pair frequency divisors (llama.cpp's rope_freqs.weight): 1 for
// short wavelengths, `factor` for long ones, a smooth blend between.
std::vector<float> llama3_rope_factors(const HfConfig& c);

// general.* and <arch>.* keys as llama.cpp's converter writes them (plus rope_freqs.weight for
// LLaMA 3 scaling).
Result<void> write_arch_metadata(const HfConfig& c, GgufWriter& w);

// tokenizer.json (+ tokenizer_config.json) -> tokenizer.ggml.* keys. The vocabulary is padded
// to `vocab_size` (the embedding rows) with unused [PADi] tokens as llama.cpp does.
Result<void> write_tokenizer_metadata(const std::string& dir, const HfConfig& c, GgufWriter& w);

// Tensor names: GGUF (blk.N.attn_q.weight) <-> HF (model.layers.N.self_attn.q_proj.weight).
std::optional<std::string> hf_name_of(std::string_view gguf_name);
std::optional<std::string> gguf_name_of(std::string_view hf_name);

}  // namespace kandil::hf
