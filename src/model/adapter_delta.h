// Low-rank weight deltas applied on top of a model's projections during the forward pass (the
// mechanism beneath LoRA adapters, src/lora/). The base weights are never written:
//   y = W·x + Σᵢ Bᵢ·(sᵢ · Aᵢ·x)
// A Context holds the published delta set as a shared pointer swapped under a tiny lock; a
// decode() call takes one snapshot and uses it for every layer of that call, and generate() pins
// one snapshot for a whole sequence (see docs/lora.md).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/cpu/matmul.h"
#include "base/thread_pool.h"
#include "kandil/model.h"

namespace kandil {

// The seven linear projections of a LLaMA block, in forward order.
enum class Projection : uint8_t { q, k, v, o, gate, up, down };
inline constexpr int kNumProjections = 7;

// One adapter's delta on one projection: a is [rank][n_in] (n_out = rank), b is [n_out][rank].
struct LowRankDelta {
  cpu::Weight a;
  cpu::Weight b;
  float scale = 1.0f;
};

// An immutable set of deltas: layers[l][p] lists the deltas on projection p of layer l.
struct AdapterDeltas {
  std::vector<std::array<std::vector<LowRankDelta>, kNumProjections>> layers;
  // Set by the owner (lora/AdapterSet) so an aliasing shared_ptr can recover it.
  const void* owner = nullptr;
  bool empty() const;
};

// Scratch for applying deltas, grown only when a new set needs more (never per token).
struct DeltaScratch {
  std::vector<float> t;  // [n_tokens][Σ ranks of one projection group]
  std::vector<float> u;  // [n_tokens][n_out]
  std::vector<uint8_t> conv;
  std::vector<cpu::MatmulTarget> targets;
  void reserve(const AdapterDeltas& d, int64_t n_tokens);
};

// One projection output to correct: its deltas and y ([n_tokens][n_out] floats).
struct DeltaTarget {
  const std::vector<LowRankDelta>* deltas;
  float* y;
};

// y += Σ B·(s·A·x) for every target sharing the input x ([n_tokens][n_in]): the A products of all
// targets run as one shared-input matmul, then one B product per delta, all batched over tokens.
void apply_deltas(ThreadPool& pool, std::span<const DeltaTarget> targets, const float* x,
                  int64_t n_tokens, DeltaScratch& scratch);

// Publishes the deltas a Context applies from its next decode() call (nullptr: none). Safe to
// call from any thread while another thread decodes.
void context_publish_deltas(Context& ctx, std::shared_ptr<const AdapterDeltas> deltas);
std::shared_ptr<const AdapterDeltas> context_published_deltas(const Context& ctx);
// Publishes `desired` only if `expected` is still the published set (else loads the current one
// into `expected` and returns false): read-copy-update without lost updates.
bool context_exchange_deltas(Context& ctx, std::shared_ptr<const AdapterDeltas>& expected,
                             std::shared_ptr<const AdapterDeltas> desired);
// Pins the currently published deltas for the decoding thread's following decode() calls until
// unpinned (generate() keeps one set for a whole sequence). Only the decoding thread calls these.
void context_pin_deltas(Context& ctx);
void context_unpin_deltas(Context& ctx);

// The deltas of an adapter set (kandil/lora.h; defined in src/lora/ — the model layer sees sets
// only through this), checked to fit `model`'s shape.
Result<const AdapterDeltas*> adapter_set_deltas(const AdapterSet& set, const Model& model);

}  // namespace kandil
