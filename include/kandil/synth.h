// Writes random-weight LLaMA-shaped GGUF models: for tests (a model the suite makes itself) and
// for benchmarks of real shapes without downloading anything.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "kandil/result.h"
#include "kandil/tensor_type.h"

namespace kandil {

// How the weights are drawn.
enum class SynthInit {
  // token_embd ~ N(0,1), linear ~ N(0, 1/fan_in), norms ~ 1 + N(0, 0.1^2): activations of a
  // realistic scale for tests and benchmarks.
  test,
  // A model to train from scratch (GPT-2 / LLaMA practice): embeddings and linear ~ N(0, 0.02^2),
  // the projections back into the residual stream (attn_output, ffn_down) ~ N(0, (0.02 /
  // sqrt(2 n_layer))^2), norms exactly 1.
  train,
};

struct SynthSpec {
  int32_t n_layer = 2;
  int32_t n_embd = 64;
  int32_t n_ff = 192;
  int32_t n_head = 4;
  int32_t n_head_kv = 2;
  int32_t n_vocab = 320;  // >= 259: <unk> <s> </s>, 256 byte tokens, then text pieces
  int32_t n_ctx = 512;
  float rope_freq_base = 10000.0f;
  TensorType type = TensorType::F32;  // matrices; norms stay F32
  // Matrices whose row length is not a multiple of `type`'s block size fall back to this.
  TensorType fallback_type = TensorType::F32;
  bool tied_embeddings = false;
  uint64_t seed = 1234;
  std::string name = "kandil-synth";
  SynthInit init = SynthInit::test;
  // A GGUF (e.g. the vocab-only file `kandil tokenizer train --gguf` writes) whose tokenizer.*
  // metadata replaces the built-in vocab; n_vocab becomes its token count.
  std::string tokenizer_gguf;
};

// Weights are drawn as spec.init says. progress(done, total) is called after each tensor.
Result<void> write_synthetic_model(const SynthSpec& spec, const std::string& path,
                                   const std::function<void(int, int)>& progress = {});

}  // namespace kandil
