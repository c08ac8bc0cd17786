#include "serve/slot_engine.h"

namespace kandil::serve {

// Interim engine binding until Context::decode_batch lands: one single-sequence Context per slot
// (same results, no shared passes).
Result<std::unique_ptr<SlotEngine>> SlotEngine::create(std::shared_ptr<const Model> model,
                                                       ContextParams params) {
  std::unique_ptr<SlotEngine> e(new SlotEngine());
  const int32_t n = std::max<int32_t>(1, params.n_seq);
  params.n_seq = 1;
  for (int32_t i = 0; i < n; ++i) {
    auto ctx = Context::create(model, params);
    if (!ctx.ok()) return ctx.error();
    e->ctxs_.push_back(std::move(*ctx));
  }
  e->model_ = std::move(model);
  return e;
}

SlotEngine::~SlotEngine() = default;
int32_t SlotEngine::n_slots() const { return static_cast<int32_t>(ctxs_.size()); }
int32_t SlotEngine::n_ctx() const { return ctxs_[0]->n_ctx(); }
int32_t SlotEngine::n_past(int32_t slot) const {
  return ctxs_[static_cast<size_t>(slot)]->n_past();
}
void SlotEngine::truncate(int32_t slot, int32_t n) {
  if (n < n_past(slot)) clear(slot);
}
void SlotEngine::clear(int32_t slot) { ctxs_[static_cast<size_t>(slot)]->clear(); }

Result<void> SlotEngine::decode(std::span<const SlotEntry> entries) {
  const auto n_vocab = static_cast<size_t>(model_->config().n_vocab);
  logits_.resize(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const SlotEntry& e = entries[i];
    Context& ctx = *ctxs_[static_cast<size_t>(e.slot)];
    KANDIL_CHECK_OK(set_adapters(ctx, e.adapters));
    KANDIL_CHECK_OK(ctx.decode(e.tokens, e.n));
    if (e.logits) logits_[i].assign(ctx.logits(-1), ctx.logits(-1) + n_vocab);
  }
  return {};
}

const float* SlotEngine::logits(size_t i) const { return logits_[i].data(); }

}  // namespace kandil::serve
