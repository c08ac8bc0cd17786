// Fine-tuning: LoRA (QLoRA on a quantized base) or full fine-tuning of a loaded Model on the CPU.
//
// A Trainer holds the trainable parameters (F32), their gradients and AdamW moments; the base
// model stays untouched (LoRA) or is copied once to F32 master weights (full). One step() is one
// micro-batch: forward, softmax cross-entropy over the non-ignored targets, backward; every
// `grad_accum` micro-batches the optimizer clips the global gradient norm and updates.
// Same model + options + batches -> bit-identical losses (for a fixed thread count), and
// save_checkpoint()/load_checkpoint() resume the identical curve. See docs/training.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kandil/lora.h"
#include "kandil/model.h"
#include "kandil/result.h"
#include "kandil/tokenizer.h"

namespace kandil {

// B sequences of T tokens; targets[b*T + t] is the token expected after tokens[b*T + t], or
// kIgnoreTarget (any negative value) to leave that position out of the loss.
struct TrainBatch {
  static constexpr int32_t kIgnoreTarget = -100;
  int32_t B = 0, T = 0;
  std::vector<TokenId> tokens;
  std::vector<int32_t> targets;
};

enum class LrSchedule {
  constant,  // warm-up, then lr
  linear,    // warm-up, then linear decay to min_lr_ratio * lr at total_steps
  cosine,    // warm-up, then half-cosine decay to min_lr_ratio * lr at total_steps
};

// LoRA targets are kandil/lora.h's LoraTarget (PEFT names: lora_target_peft_name).

struct TrainOptions {
  enum class Mode { lora, full };
  Mode mode = Mode::lora;
  // LoRA
  int32_t lora_rank = 8;
  float lora_alpha = 16.0f;
  bool rslora = false;  // scale alpha / sqrt(r) instead of alpha / r
  std::vector<LoraTarget> lora_targets = {LoraTarget::q, LoraTarget::v};
  // AdamW
  float lr = 1e-4f;
  float beta1 = 0.9f, beta2 = 0.999f, adam_eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled; applied to matrices only (not norms or biases)
  // Schedule over optimizer steps
  LrSchedule schedule = LrSchedule::constant;
  int32_t warmup_steps = 0;
  int32_t total_steps = 0;  // linear / cosine: where the decay ends
  float min_lr_ratio = 0.0f;
  float max_grad_norm = 1.0f;           // global-norm clipping; <= 0: off
  int32_t grad_accum = 1;               // micro-batches per optimizer step
  bool checkpoint_activations = false;  // keep only layer inputs; recompute layers in backward
  int32_t n_threads = 0;                // 0: all hardware threads
  uint64_t seed = 42;                   // LoRA A initialisation
};

// Learning rate at optimizer step `step` (0-based) of the schedule (Hugging Face conventions:
// warm-up lr * step / warmup_steps).
float scheduled_lr(const TrainOptions& o, int64_t step);

struct StepStats {
  float loss = 0.0f;       // mean cross-entropy over the micro-batch's counted targets
  int64_t n_targets = 0;   // counted (non-ignored) targets
  bool updated = false;    // this micro-batch completed an optimizer step
  float grad_norm = 0.0f;  // before clipping (when updated)
  float lr = 0.0f;         // used for the update (when updated)
  int64_t step = 0;        // optimizer steps done after this call
};

// A trainable F32 tensor. Names: LoRA "base_model.model.model.layers.<l>.self_attn.q_proj.lora_A.
// weight" (PEFT's); full fine-tuning the GGUF tensor names ("blk.0.attn_q.weight").
struct TrainParam {
  std::string name;
  std::vector<int64_t> shape;  // row-major, outermost first
  std::vector<float> value;
  std::vector<float> grad;  // accumulated over the current optimizer step
  bool decay = true;        // AdamW weight decay applies
};

class Trainer {
 public:
  static Result<std::unique_ptr<Trainer>> create(std::shared_ptr<const Model> model,
                                                 const TrainOptions& options);
  ~Trainer();

  // One micro-batch: forward, loss, backward (gradients accumulate); every grad_accum calls, an
  // optimizer step. Fails on bad shapes or out-of-range ids and changes nothing then.
  Result<StepStats> step(const TrainBatch& batch);
  // Mean loss without touching gradients or state.
  Result<double> eval(const TrainBatch& batch);
  // Adds the gradient of this micro-batch's mean loss (times `scale`) to every param's grad;
  // returns the loss. step() is this plus the optimizer; tests use it for gradient checks.
  Result<double> accumulate_gradients(const TrainBatch& batch, float scale = 1.0f);
  void zero_grad();

  // Trainer state: parameters, AdamW moments, step counters, options fingerprint.
  Result<void> save_checkpoint(const std::string& path) const;
  Result<void> load_checkpoint(const std::string& path);

  std::span<TrainParam> params();
  std::span<const TrainParam> params() const;
  const TrainOptions& options() const;
  int64_t optimizer_step() const;
  float lora_scale() const;  // alpha / r (or alpha / sqrt(r))

  struct Impl;

 private:
  Trainer();
  std::unique_ptr<Impl> impl_;
};

}  // namespace kandil
