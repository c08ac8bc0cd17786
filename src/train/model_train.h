// The training forward and backward of a LLaMA-family model over a batch [B][T]: reads the frozen
// base from a loaded Model (any weight type) and the trainable tensors (LoRA A/B or F32 master
// copies) from a TrainParam list, saves what the backward needs (or, with activation
// checkpointing, only each layer's input, recomputing the layer in the backward).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "base/thread_pool.h"
#include "kandil/train.h"
#include "model/model_impl.h"
#include "train/ops_backward.h"

namespace kandil::train {

constexpr int kNumProj = 7;  // LoraTarget order: q k v o gate up down

// Indices into the parameter list (-1: frozen, read from the base model).
struct LayerSlots {
  int attn_norm = -1, ffn_norm = -1, q_norm = -1, k_norm = -1;
  std::array<int, kNumProj> w{-1, -1, -1, -1, -1, -1, -1};
  std::array<int, 3> bias{-1, -1, -1};
  std::array<int, kNumProj> lora_a{-1, -1, -1, -1, -1, -1, -1};
  std::array<int, kNumProj> lora_b{-1, -1, -1, -1, -1, -1, -1};
};

struct NetSlots {
  std::vector<LayerSlots> layers;
  int token_embd = -1, output_norm = -1, output = -1;  // output == token_embd when tied (full)
  float lora_scale = 1.0f;
};

// Creates the trainable parameters for `o` (LoRA A ~ Kaiming-uniform(a = sqrt 5) like PEFT, B = 0;
// or F32 copies of every weight) and the slots that find them.
NetSlots make_params(const Model::Impl& m, const TrainOptions& o, uint64_t seed,
                     std::vector<TrainParam>& params);

// What one layer's backward needs.
struct LayerCache {
  std::vector<float> rstd1, xn1, q_pre, k_pre, rstd_q, rstd_k, q, k, v, probs, att, x_mid, rstd2,
      xn2, g, u, h;
  std::array<std::vector<float>, kNumProj> lora_u;  // x A^T per LoRA target
};

class TrainNet {
 public:
  TrainNet(const Model::Impl& m, NetSlots slots, bool checkpoint_activations)
      : m_(m), c_(m.config), s_(std::move(slots)), ckpt_(checkpoint_activations) {}

  // Mean cross-entropy over the counted targets of `b` (validated by the caller). With
  // `backward`, adds grad_scale * d(mean loss)/d(param) to every param's grad.
  double run(ThreadPool& pool, std::vector<TrainParam>& params, const TrainBatch& b, bool backward,
             float grad_scale, int64_t* n_counted);

 private:
  struct Proj {
    cpu::Weight w;
    float* dw = nullptr;  // null: frozen
    const float* a = nullptr;
    const float* bm = nullptr;
    float *da = nullptr, *db = nullptr;
    int64_t rank = 0;
  };
  Proj proj(std::vector<TrainParam>& p, int layer, int which) const;
  const float* vec(std::vector<TrainParam>& p, int slot, const std::vector<float>& base) const;
  float* grad(std::vector<TrainParam>& p, int slot) const;

  void project(ThreadPool& pool, const Proj& pr, const float* x, int64_t n, float* y,
               std::vector<float>& u);
  void project_backward(ThreadPool& pool, const Proj& pr, const float* x, const float* u,
                        const float* dy, int64_t n, float* dx);
  void forward_layer(ThreadPool& pool, std::vector<TrainParam>& p, int l, const TrainBatch& b,
                     const float* x_in, LayerCache& c, float* x_out);
  void backward_layer(ThreadPool& pool, std::vector<TrainParam>& p, int l, const TrainBatch& b,
                      const float* x_in, LayerCache& c, float* dx);

  const Model::Impl& m_;
  const ModelConfig& c_;
  NetSlots s_;
  bool ckpt_;
  std::vector<LayerCache> caches_;
  std::vector<std::vector<float>> xs_;  // input of each layer, then the final hidden state
  std::vector<float> xnf_, rstdf_, logits_, dlogits_, dx_, tmp_, tmp2_, tmp_out_;
  std::vector<uint8_t> scratch_;
};

}  // namespace kandil::train
