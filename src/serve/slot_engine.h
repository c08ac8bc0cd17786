// The scheduler's view of the engine: N sequences ("slots") with their own KV positions, one
// batched forward pass over any subset of them (Context::decode_batch), per-slot truncate/clear.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kandil/lora.h"
#include "kandil/model.h"
#include "kandil/result.h"

namespace kandil::serve {

struct SlotEntry {
  int32_t slot = 0;
  const TokenId* tokens = nullptr;
  int32_t n = 0;
  bool logits = true;
  std::shared_ptr<const AdapterSet> adapters;  // null: the base model
};

class SlotEngine {
 public:
  static Result<std::unique_ptr<SlotEngine>> create(std::shared_ptr<const Model> model,
                                                    ContextParams params);
  ~SlotEngine();
  int32_t n_slots() const;
  int32_t n_ctx() const;
  int32_t n_past(int32_t slot) const;
  // Keeps the first n cached positions of the slot (<= n_past).
  void truncate(int32_t slot, int32_t n);
  void clear(int32_t slot);
  // One forward pass over all entries (distinct slots).
  Result<void> decode(std::span<const SlotEntry> entries);
  // Logits of entry i's last token after decode() (the entry had logits set).
  const float* logits(size_t i) const;

 private:
  SlotEngine() = default;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Context> ctx_;
  std::vector<SeqBatch> batch_;
};

}  // namespace kandil::serve
