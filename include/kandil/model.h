// Models and inference contexts.
//
// A Model is immutable once loaded (weights are views into the mapped GGUF file) and can be shared
// by many Contexts. A Context owns the per-sequence state: KV cache, activation buffers and the
// thread pool, all allocated up front; decoding a token allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/result.h"
#include "kandil/tokenizer.h"

namespace kandil {

class AdapterSet;  // kandil/lora.h

// How RoPE pairs the dimensions of a head: (x[2i], x[2i+1]) for LLaMA's GGUF layout ("norm" in
// llama.cpp) or (x[i], x[i + n_rot/2]) for the split-half layout of GPT-NeoX / Qwen ("neox").
enum class RopeLayout { adjacent_pairs, split_half };

// Everything that distinguishes one architecture from another is data here (ARCHITECTURE.md,
// principle 3): one block forward reads these flags.
struct ModelConfig {
  std::string arch;  // GGUF general.architecture
  std::string name;  // general.name
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  int32_t n_ff = 0;
  int32_t n_rot = 0;  // rotary dimensions per head (<= head_dim)
  float norm_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // linear scaling: positions are multiplied by this
  RopeLayout rope_layout = RopeLayout::adjacent_pairs;
  bool tied_embeddings = false;  // output projection reuses token_embd (no output.weight)
  // Per-pair RoPE frequency divisors (n_rot / 2 values; LLaMA 3 rope scaling, the GGUF's
  // rope_freqs.weight); empty: none.
  std::vector<float> rope_freq_factors;
  bool qkv_bias = false;       // Q/K/V projections add a bias (Qwen2)
  bool qk_norm = false;        // per-head RMSNorm of Q and K before RoPE (Qwen3)
  int32_t sliding_window = 0;  // attention sees the last this-many positions (Mistral); 0: all
  std::string source_format = "gguf";  // "gguf" or "hf" (a Hugging Face folder)
};

class Model {
 public:
  // Loads a GGUF model file, or a Hugging Face model folder (config.json, tokenizer.json and
  // model.safetensors or its shards; see include/kandil/hf.h): validates the architecture, every
  // tensor's presence, shape and type.
  static Result<std::shared_ptr<const Model>> load(const std::string& path);

  ~Model();
  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  // The GGUF file; for a Hugging Face folder, the metadata it was translated to (no tensors).
  const GgufFile& gguf() const;
  // Parameters of all weight tensors, and the bytes of the model's file(s) on disk.
  uint64_t n_params() const;
  uint64_t file_bytes() const;
  uint64_t token_embd_bytes() const;
  // Bytes of all weight tensors (what one decode step reads, plus the embedding table).
  uint64_t weight_bytes() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  Model();
  std::unique_ptr<Impl> impl_;
};

// KV cache element type. f16 (default) matches llama.cpp's default numerics; q8_0 stores each
// head's keys and values as 32-element Q8_0 blocks (about half of f16's memory; needs
// head_dim % 32 == 0).
enum class KvCacheType { f32, f16, q8_0 };

struct ContextParams {
  int32_t n_ctx = 0;      // 0: the model's training context, capped at 4096
  int32_t n_batch = 512;  // largest number of tokens evaluated in one forward pass
  int32_t n_threads = 0;  // 0: all hardware threads
  KvCacheType cache_type = KvCacheType::f16;
  // Independent sequences (a server's slots), each with its own n_ctx positions of KV cache.
  int32_t n_seq = 1;
};

// One sequence's share of a batched forward pass (Context::decode_batch).
struct SeqBatch {
  int32_t seq = 0;                  // 0 .. n_seq - 1
  const TokenId* tokens = nullptr;  // evaluated at positions n_past(seq) .. n_past(seq) + n - 1
  int32_t n = 0;
  bool logits = true;  // keep the logits of this entry's last token (batch_logits)
  // This entry's LoRA adapters (null: the base model alone), made for this model; the caller
  // keeps it alive during the call. Entries with different sets share the base matmuls.
  const AdapterSet* adapters = nullptr;
};

class Context {
 public:
  static Result<std::unique_ptr<Context>> create(std::shared_ptr<const Model> model,
                                                 ContextParams params);
  ~Context();

  // Evaluates tokens at positions n_past() .. n_past()+n-1 (longer inputs are split into
  // n_batch-sized passes). Logits are kept for the last token, or for every token when
  // all_logits is set (perplexity). Fails if the context would overflow or an id is invalid.
  Result<void> decode(const TokenId* tokens, int32_t n, bool all_logits = false);
  Result<void> decode(const std::vector<TokenId>& tokens, bool all_logits = false) {
    return decode(tokens.data(), static_cast<int32_t>(tokens.size()), all_logits);
  }

  // Logits (n_vocab floats) of token i of the last decode() call; i = -1: the last token.
  const float* logits(int32_t i = -1) const;
  int32_t n_logits() const;

  // Continuous batching: evaluates several sequences in shared forward passes, so each weight
  // matrix is read once per pass for all their tokens. Entries name distinct sequences; an entry
  // may be a whole prompt (split over passes of at most n_batch tokens in all) or one token.
  // Each token's result does not depend on what else is in the batch. decode() and generate()
  // work on sequence 0 with the adapters published by set_adapters(); decode_batch uses each
  // entry's own adapters. Validates everything before evaluating anything.
  Result<void> decode_batch(std::span<const SeqBatch> batch);
  // Logits of entry i's last token after decode_batch (entry i must have had logits set).
  const float* batch_logits(size_t i) const;

  int32_t n_past() const;  // sequence 0
  int32_t n_past(int32_t seq) const;
  int32_t n_ctx() const;  // positions per sequence
  int32_t n_seq() const;
  int32_t n_threads() const;
  // Forgets every cached sequence (positions restart at 0).
  void clear();
  void clear(int32_t seq);
  // Keeps the first n (<= n_past(seq)) cached positions of seq; the next tokens continue from
  // position n (prefix reuse: a new prompt sharing those tokens skips re-evaluating them).
  void truncate(int32_t seq, int32_t n);

  const Model& model() const;

  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }

 private:
  Context();
  std::unique_ptr<Impl> impl_;
};

}  // namespace kandil
