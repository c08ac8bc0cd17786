// Model quantization: reads a GGUF model (F32/F16/BF16 or already-quantized weights, which are
// dequantized first) and writes a GGUF of another weight type that kandil and llama.cpp both load.
//
// Type mixes follow llama-quantize (llama.cpp): 1-D tensors (norms) keep their type, 2-D weight
// matrices get the target's type, output.weight gets Q6_K for every quantized target but Q8_0, and
// the *_K_M mixes give attn_v / ffn_down Q6_K on the layers where llama.cpp's `use_more_bits` holds
// (the first and last eighth of the layers and every third layer in between). A row length that the
// chosen type's block does not divide falls back to a compatible type (Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0, else F16), as llama-quantize does; each fallback is listed in the report's notes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/result.h"
#include "kandil/tensor_type.h"

namespace kandil {

enum class QuantizeTarget { F16, BF16, Q8_0, Q4_0, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K };

// "q4_k_m", "Q8_0", "f16", ... (case-insensitive); nullopt for unknown names.
std::optional<QuantizeTarget> quantize_target_from_name(std::string_view name);
std::string_view quantize_target_name(QuantizeTarget target);
// All target names, for help texts and error messages ("F16, BF16, Q8_0, ...").
std::string quantize_target_names();
// llama.cpp's LLAMA_FTYPE number written as general.file_type.
uint32_t quantize_target_file_type(QuantizeTarget target);
// The type most matrices get (Q4_K for Q4_K_M, ...).
TensorType quantize_target_base_type(QuantizeTarget target);

// What the mix rules give one tensor. `layer` is the block index parsed from "blk.N." (-1 if
// none), `n_layer` the model's number of blocks; without output.weight (`has_output` false, tied
// embeddings) token_embd.weight takes output.weight's rule. 1-D tensors and non-weights keep
// `current`. `note` (optional) receives a sentence when a fallback type was chosen.
TensorType quantize_tensor_type(QuantizeTarget target, std::string_view name, uint32_t n_dims,
                                int64_t row_length, TensorType current, int32_t layer,
                                int32_t n_layer, bool has_output, std::string* note = nullptr);

// Block index of a "blk.N.*" tensor name, else -1.
int32_t tensor_layer_index(std::string_view name);

struct QuantizeTensorEntry {
  std::string name;
  TensorType from = TensorType::F32;
  TensorType to = TensorType::F32;
  uint64_t bytes_in = 0, bytes_out = 0;
};

struct QuantizeReport {
  std::string input, output;
  QuantizeTarget target = QuantizeTarget::Q8_0;
  uint32_t file_type = 0;
  uint64_t input_bytes = 0, output_bytes = 0;  // file sizes
  std::vector<QuantizeTensorEntry> tensors;    // in file order
  std::map<std::string, int> type_counts;      // output type name -> tensors
  std::vector<std::string> notes;              // fallbacks and other remarks
  int threads = 0;
  double seconds = 0.0;
};

// progress(done, total, name) is called on the calling thread after each tensor is converted.
using QuantizeProgress = std::function<void(int done, int total, std::string_view tensor)>;

// Converts `in` to `out` (written to a temporary file and renamed into place). threads <= 0: all
// hardware threads. The whole output is assembled in memory before it is written.
Result<QuantizeReport> quantize_model(const std::string& in, const std::string& out,
                                      QuantizeTarget target, int threads = 0,
                                      const QuantizeProgress& progress = {});

}  // namespace kandil
