// LoRA adapters at inference: load (PEFT folders, GGUF adapters), stack, hot-swap, merge.
//
// An adapter is a layer over the base weights, never a copy of them (ARCHITECTURE.md, principle
// 6): every targeted projection computes y = W·x + Σᵢ sᵢ·Bᵢ(Aᵢ·x) with W untouched (any weight
// type, quantized included), sᵢ = scale · alpha / r (rsLoRA: alpha / √r).
//
// Hot-swap: each Context has an active AdapterSet, published by set_adapters() (a pointer swap)
// from any thread while other threads decode. A Context::decode() call takes one snapshot for all
// its layers (no torn reads); generate() keeps the set it started with until the sequence ends. The
// base model is shared: adapters and sets are immutable and can be shared by many Contexts.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/model.h"
#include "kandil/result.h"
#include "kandil/tensor_type.h"

namespace kandil {

// The linear projections of a LLaMA block an adapter can target.
enum class LoraTarget : uint8_t { q, k, v, o, gate, up, down };
inline constexpr int kNumLoraTargets = 7;
// PEFT module name ("q_proj", ..., "down_proj") and GGUF weight name ("attn_q", ..., "ffn_down").
std::string_view lora_target_peft_name(LoraTarget t);
std::string_view lora_target_gguf_name(LoraTarget t);

struct LoraInfo {
  std::string path;
  std::string format;  // "gguf" or "peft"
  std::string arch;    // GGUF general.architecture / PEFT base_model_name_or_path (may be empty)
  float alpha = 0.0f;  // 0 in a GGUF adapter: no alpha, the scale is the user's scale alone
  bool rslora = false;
  int32_t rank_min = 0, rank_max = 0;
  int32_t n_layers = 0;              // 1 + the highest layer index with a delta
  std::vector<std::string> targets;  // PEFT module names present, in block order
  int64_t n_pairs = 0;               // (A, B) matrix pairs
  int64_t n_params = 0;
};

// How an adapter's A and B matrices are held for the unmerged forward pass. F32 is exact; F16
// halves the bytes each decode step reads; Q8_0 quarters them for matrices whose rows are a
// multiple of 32 (A: n_in; B: the rank) and uses F16 for the others. Merging always uses the
// F32 values from the file.
struct LoraLoadOptions {
  TensorType storage = TensorType::F32;
};

class LoraAdapter {
 public:
  // Loads a GGUF LoRA adapter (general.type = adapter, adapter.type = lora) or a PEFT folder
  // (adapter_config.json + adapter_model.safetensors) and validates every shape against `model`.
  // A PEFT adapter is in Hugging Face row order: for a base whose RoPE pairs adjacent dimensions
  // (LLaMA GGUF), B's rows of q and k are permuted as the base's rows were.
  static Result<std::shared_ptr<const LoraAdapter>> load(const std::string& path,
                                                         const Model& model,
                                                         LoraLoadOptions options = {});
  // Reads an adapter's config and shapes without a base model (kandil lora info).
  static Result<LoraInfo> inspect(const std::string& path);

  ~LoraAdapter();
  const LoraInfo& info() const;
  // Bytes of the A and B matrices one forward pass reads (in the storage type).
  uint64_t bytes() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  LoraAdapter();
  std::unique_ptr<Impl> impl_;
};

struct ActiveAdapter {
  std::shared_ptr<const LoraAdapter> adapter;
  float scale = 1.0f;  // the user's scale (multiplies alpha / r)
};

// An immutable list of adapters with their scales, ready to publish to Contexts of one model.
class AdapterSet {
 public:
  static Result<std::shared_ptr<const AdapterSet>> create(const Model& model,
                                                          std::vector<ActiveAdapter> adapters);
  ~AdapterSet();
  const std::vector<ActiveAdapter>& adapters() const;
  bool contains(const LoraAdapter& a) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  AdapterSet();
  std::unique_ptr<Impl> impl_;
};

// Atomically publishes ctx's active set (nullptr or an empty set: the base model alone). Any
// thread may call this while another decodes; the change applies from the next decode() call
// (generate(): from the next sequence). Fails if the set was made for a different model shape.
Result<void> set_adapters(Context& ctx, std::shared_ptr<const AdapterSet> set);
// The active set (nullptr when none was published).
std::shared_ptr<const AdapterSet> active_adapters(const Context& ctx);
// Read-copy-update helpers over set_adapters (the seed's ApplyAdapter / remove / has): add an
// adapter, or change its scale when it is already active; remove it; test for it. Concurrent
// callers on one Context are serialised by a compare-and-swap loop, so no update is lost.
Result<void> apply_adapter(Context& ctx, std::shared_ptr<const LoraAdapter> adapter,
                           float scale = 1.0f);
bool remove_adapter(Context& ctx, const LoraAdapter& adapter);
bool has_adapter(const Context& ctx, const LoraAdapter& adapter);

// Named adapters loaded for one model (thread-safe): load / unload / list. Unloading drops the
// registry's reference; sets still using the adapter keep it alive until they are replaced.
class AdapterRegistry {
 public:
  explicit AdapterRegistry(std::shared_ptr<const Model> model) : model_(std::move(model)) {}
  Result<std::shared_ptr<const LoraAdapter>> load(const std::string& name, const std::string& path);
  bool unload(const std::string& name);
  std::shared_ptr<const LoraAdapter> get(const std::string& name) const;
  std::vector<std::pair<std::string, LoraInfo>> list() const;

 private:
  std::shared_ptr<const Model> model_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const LoraAdapter>> adapters_;
};

// Writes a copy of the base model's GGUF file with the adapters baked into its weights
// (W' = W + Σ sᵢ·Bᵢ·Aᵢ). Targeted weights must be F32, F16 or BF16 (they keep their type); every
// other tensor and all metadata are copied as they are. The base file is only read.
Result<void> merge_adapters_to_gguf(const Model& base, const std::vector<ActiveAdapter>& adapters,
                                    const std::string& out_path, int n_threads = 0);

// Bakes adapters into F32 weight matrices in memory and takes them out again bit-exactly: the
// original value of every element the merge changes is kept (the delta alone cannot restore it
// exactly in floating point).
class MergedWeights {
 public:
  // weights[l][p]: the F32 matrix [n_out][n_in] of projection p of layer l (null: untouched).
  using Matrices = std::vector<std::array<float*, kNumLoraTargets>>;
  static Result<MergedWeights> merge(const Matrices& weights,
                                     const std::vector<ActiveAdapter>& adapters);
  // Restores every matrix to its value before merge().
  void unmerge();
  size_t saved_bytes() const;

 private:
  struct Saved {
    float* w;
    std::vector<float> original;
  };
  std::vector<Saved> saved_;
};

// Converts a PEFT folder to a GGUF LoRA adapter as llama.cpp reads it (F32 tensors,
// adapter.lora.alpha; rsLoRA folded into alpha). B's rows of q and k are permuted for the base's
// adjacent-pair RoPE layout when `base` is given and uses it; without a base, q/k targets need one.
Result<void> convert_peft_to_gguf(const std::string& peft_dir, const Model* base,
                                  const std::string& out_path);

// Random PEFT adapters for tests and benchmarks: A ~ N(0, 1/n_in), B ~ N(0, b_stddev²), F32, in
// Hugging Face row order, for a model of config c.
struct LoraSynthSpec {
  int32_t rank = 16;
  float alpha = 32.0f;
  bool rslora = false;
  std::vector<LoraTarget> targets = {LoraTarget::q,   LoraTarget::k,    LoraTarget::v,
                                     LoraTarget::o,   LoraTarget::gate, LoraTarget::up,
                                     LoraTarget::down};
  float b_stddev = 0.05f;
  uint64_t seed = 1;
};
Result<void> write_synthetic_peft_adapter(const ModelConfig& c, const LoraSynthSpec& spec,
                                          const std::string& dir);

}  // namespace kandil
