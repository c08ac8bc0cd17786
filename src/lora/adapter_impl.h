// Internal representation of LoRA adapters: the file-level form (read.cpp) and the form bound to a
// model (adapter.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/lora.h"
#include "model/adapter_delta.h"

namespace kandil::lora {

// One (A, B) pair as stored in the file, converted to F32: a is [rank][n_in], b is [n_out][rank].
struct RawPair {
  int32_t layer = 0;
  LoraTarget target = LoraTarget::q;
  int64_t rank = 0, n_in = 0, n_out = 0;
  std::vector<float> a, b;
};

struct RawAdapter {
  LoraInfo info;
  bool hf_row_order = false;  // PEFT: q/k rows in Hugging Face order (split-half RoPE)
  std::vector<RawPair> pairs;
};

// Reads a GGUF adapter file or a PEFT folder (the path decides). Shapes are checked for internal
// consistency only; binding to a model checks them against it.
Result<RawAdapter> read_adapter(const std::string& path);
Result<RawAdapter> read_gguf_adapter(const std::string& path);
Result<RawAdapter> read_gguf_adapter(const GgufFile& file);
Result<RawAdapter> read_peft_adapter(const std::string& dir);

// The model dimensions an adapter was validated against.
struct ShapeKey {
  int32_t n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  RopeLayout rope = RopeLayout::adjacent_pairs;
  static ShapeKey of(const ModelConfig& c) {
    return {c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.rope_layout};
  }
  bool operator==(const ShapeKey&) const = default;
};

// Expected (n_in, n_out) of a target's weight in a model.
std::pair<int64_t, int64_t> target_dims(const ModelConfig& c, LoraTarget t);

// Reorders the rows of a [n_rows][cols] matrix from Hugging Face's split-half head layout to the
// adjacent-pair layout LLaMA GGUF files use: within each head of head_dim rows, row 2j + s takes
// the row s·head_dim/2 + j.
void permute_rows_for_adjacent_rope(std::vector<float>& m, int64_t n_rows, int64_t cols,
                                    int64_t head_dim);

// Scale factor alpha / r (rsLoRA: alpha / √r); 1 when alpha is 0 (a GGUF adapter without alpha).
float alpha_factor(float alpha, bool rslora, int64_t rank);

// Merge: the delta rows of one target, summed over the adapters: out[n_out][n_in] += s·B·A.
void add_delta(const RawPair& p, float scale, float* w, int64_t row_begin, int64_t row_end);

}  // namespace kandil::lora

namespace kandil {

struct LoraAdapter::Impl {
  LoraInfo info;
  lora::ShapeKey shape;
  std::vector<lora::RawPair> pairs;  // bound: rows in the model's order, F32
  std::vector<float> factors;        // per pair: alpha / r (or alpha / √r)
  // Per pair, the matrices the forward pass reads (views into `pairs` for F32 storage, into
  // `packed` otherwise).
  std::vector<cpu::Weight> a, b;
  std::vector<std::vector<uint8_t>> packed;
  uint64_t bytes = 0;
};

struct AdapterSet::Impl {
  std::vector<ActiveAdapter> adapters;
  lora::ShapeKey shape;
  AdapterDeltas deltas;
};

}  // namespace kandil
