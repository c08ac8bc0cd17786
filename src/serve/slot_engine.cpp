#include "serve/slot_engine.h"

namespace kandil::serve {

Result<std::unique_ptr<SlotEngine>> SlotEngine::create(std::shared_ptr<const Model> model,
                                                       ContextParams params) {
  auto ctx = Context::create(model, params);
  if (!ctx.ok()) return ctx.error();
  std::unique_ptr<SlotEngine> e(new SlotEngine());
  e->model_ = std::move(model);
  e->ctx_ = std::move(*ctx);
  return e;
}

SlotEngine::~SlotEngine() = default;
int32_t SlotEngine::n_slots() const { return ctx_->n_seq(); }
int32_t SlotEngine::n_ctx() const { return ctx_->n_ctx(); }
int32_t SlotEngine::n_past(int32_t slot) const { return ctx_->n_past(slot); }
void SlotEngine::truncate(int32_t slot, int32_t n) { ctx_->truncate(slot, n); }
void SlotEngine::clear(int32_t slot) { ctx_->clear(slot); }

Result<void> SlotEngine::decode(std::span<const SlotEntry> entries) {
  batch_.clear();
  for (const auto& e : entries) {
    batch_.push_back(SeqBatch{e.slot, e.tokens, e.n, e.logits, e.adapters.get()});
  }
  return ctx_->decode_batch(batch_);
}

const float* SlotEngine::logits(size_t i) const { return ctx_->batch_logits(i); }

}  // namespace kandil::serve
