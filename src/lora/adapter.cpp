// LoRA adapters bound to a model, adapter sets, the atomic hot-swap and the registry.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "lora/adapter_impl.h"
#include "model/adapter_delta.h"
#include "ops/quant.h"

namespace kandil {

std::string_view lora_target_peft_name(LoraTarget t) {
  constexpr std::string_view names[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                        "gate_proj", "up_proj", "down_proj"};
  return names[static_cast<int>(t)];
}

std::string_view lora_target_gguf_name(LoraTarget t) {
  constexpr std::string_view names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
  return names[static_cast<int>(t)];
}

LoraAdapter::LoraAdapter() : impl_(std::make_unique<Impl>()) {}
LoraAdapter::~LoraAdapter() = default;
const LoraInfo& LoraAdapter::info() const { return impl_->info; }
uint64_t LoraAdapter::bytes() const { return impl_->bytes; }

Result<LoraInfo> LoraAdapter::inspect(const std::string& path) {
  auto raw = lora::read_adapter(path);
  if (!raw.ok()) return raw.error();
  return raw->info;
}

namespace {

// A view of a float matrix as a weight of `type` (rows of n_in), converted into `store` unless the
// type is F32 or the row length does not fit the type's blocks (then F16).
cpu::Weight pack(const std::vector<float>& m, int64_t n_in, int64_t n_out, TensorType type,
                 std::vector<std::vector<uint8_t>>& store) {
  if (type != TensorType::F32) {
    const auto info = tensor_type_info(static_cast<uint32_t>(type));
    if (!info || n_in % info->block_size != 0) type = TensorType::F16;
  }
  const size_t row = tensor_row_bytes(type, n_in);
  if (type == TensorType::F32) {
    return {type, n_in, n_out, reinterpret_cast<const uint8_t*>(m.data()), row};
  }
  const ops::TypeTraits* tr = ops::type_traits(type);
  std::vector<uint8_t> bytes(row * static_cast<size_t>(n_out));
  for (int64_t r = 0; r < n_out; ++r) {
    tr->from_float(m.data() + r * n_in, bytes.data() + static_cast<size_t>(r) * row, n_in);
  }
  store.push_back(std::move(bytes));
  return {type, n_in, n_out, store.back().data(), row};
}

}  // namespace

Result<std::shared_ptr<const LoraAdapter>> LoraAdapter::load(const std::string& path,
                                                             const Model& model,
                                                             LoraLoadOptions options) {
  if (options.storage != TensorType::F32 && options.storage != TensorType::F16 &&
      options.storage != TensorType::Q8_0) {
    return Error{fmt::format("LoRA storage type {} is not supported (f32, f16 or q8_0)",
                             tensor_type_name(options.storage))};
  }
  auto raw = lora::read_adapter(path);
  if (!raw.ok()) return raw.error();
  const ModelConfig& c = model.config();
  std::shared_ptr<LoraAdapter> adapter(new LoraAdapter());
  Impl& a = *adapter->impl_;
  a.info = raw->info;
  a.shape = lora::ShapeKey::of(c);
  const bool permute = raw->hf_row_order && c.rope_layout == RopeLayout::adjacent_pairs;
  for (lora::RawPair& p : raw->pairs) {
    const std::string where =
        fmt::format("{}: layer {} {}", path, p.layer, lora_target_peft_name(p.target));
    if (p.layer >= c.n_layer) {
      return Error{fmt::format("{}: the base model has only {} layers", where, c.n_layer)};
    }
    const auto [n_in, n_out] = lora::target_dims(c, p.target);
    if (p.n_in != n_in || p.n_out != n_out) {
      return Error{fmt::format(
          "{}: A is [{}, {}] and B is [{}, {}] (rank, in / out, rank), but the base weight is "
          "[{} out, {} in]{}",
          where, p.rank, p.n_in, p.n_out, p.rank, n_out, n_in,
          p.target == LoraTarget::k || p.target == LoraTarget::v
              ? fmt::format(" ({} KV heads x head dim {} under grouped-query attention)",
                            c.n_head_kv, c.head_dim)
              : "")};
    }
    if (permute && (p.target == LoraTarget::q || p.target == LoraTarget::k)) {
      if (c.n_rot != c.head_dim) {
        return Error{
            fmt::format("{}: cannot reorder a Hugging Face q/k adapter for partial "
                        "rotary dimensions ({} of {})",
                        where, c.n_rot, c.head_dim)};
      }
      lora::permute_rows_for_adjacent_rope(p.b, p.n_out, p.rank, c.head_dim);
    }
    a.factors.push_back(lora::alpha_factor(a.info.alpha, a.info.rslora, p.rank));
    a.pairs.push_back(std::move(p));
  }
  // Views are taken once the pair vector no longer moves.
  a.packed.reserve(2 * a.pairs.size());
  for (const lora::RawPair& p : a.pairs) {
    a.a.push_back(pack(p.a, p.n_in, p.rank, options.storage, a.packed));
    a.b.push_back(pack(p.b, p.rank, p.n_out, options.storage, a.packed));
    a.bytes += a.a.back().row_bytes * static_cast<size_t>(p.rank) +
               a.b.back().row_bytes * static_cast<size_t>(p.n_out);
  }
  return std::shared_ptr<const LoraAdapter>(std::move(adapter));
}

AdapterSet::AdapterSet() : impl_(std::make_unique<Impl>()) {}
AdapterSet::~AdapterSet() = default;
const std::vector<ActiveAdapter>& AdapterSet::adapters() const { return impl_->adapters; }
bool AdapterSet::contains(const LoraAdapter& a) const {
  for (const ActiveAdapter& x : impl_->adapters) {
    if (x.adapter.get() == &a) return true;
  }
  return false;
}

Result<std::shared_ptr<const AdapterSet>> AdapterSet::create(const Model& model,
                                                             std::vector<ActiveAdapter> adapters) {
  const ModelConfig& c = model.config();
  std::shared_ptr<AdapterSet> set(new AdapterSet());
  Impl& s = *set->impl_;
  s.shape = lora::ShapeKey::of(c);
  s.deltas.layers.resize(static_cast<size_t>(c.n_layer));
  for (size_t i = 0; i < adapters.size(); ++i) {
    const ActiveAdapter& x = adapters[i];
    if (!x.adapter) return Error{fmt::format("adapter set: entry {} has no adapter", i)};
    if (!std::isfinite(x.scale)) {
      return Error{
          fmt::format("adapter set: {}: scale {} is not finite", x.adapter->info().path, x.scale)};
    }
    if (!(x.adapter->impl().shape == s.shape)) {
      return Error{fmt::format("adapter set: {} was loaded for a model of another shape",
                               x.adapter->info().path)};
    }
    for (size_t j = 0; j < i; ++j) {
      if (adapters[j].adapter == x.adapter) {
        return Error{
            fmt::format("adapter set: {} is listed twice (give one entry a combined scale)",
                        x.adapter->info().path)};
      }
    }
    const LoraAdapter::Impl& a = x.adapter->impl();
    for (size_t k = 0; k < a.pairs.size(); ++k) {
      const lora::RawPair& p = a.pairs[k];
      LowRankDelta d;
      d.a = a.a[k];
      d.b = a.b[k];
      d.scale = x.scale * a.factors[k];
      s.deltas.layers[static_cast<size_t>(p.layer)][static_cast<size_t>(p.target)].push_back(d);
    }
  }
  s.adapters = std::move(adapters);
  s.deltas.owner = set.get();
  return std::shared_ptr<const AdapterSet>(std::move(set));
}

namespace {

// The deltas of a set as a pointer that shares the set's ownership (aliasing constructor).
std::shared_ptr<const AdapterDeltas> deltas_of(const std::shared_ptr<const AdapterSet>& set) {
  if (!set) return nullptr;
  return std::shared_ptr<const AdapterDeltas>(set, &set->impl().deltas);
}

std::shared_ptr<const AdapterSet> set_of(const std::shared_ptr<const AdapterDeltas>& d) {
  if (!d) return nullptr;
  return std::shared_ptr<const AdapterSet>(d, static_cast<const AdapterSet*>(d->owner));
}

// Read-copy-update of ctx's set: edit(current adapters) gives the new list (nullopt: no change).
template <class Edit>
Result<bool> update_set(Context& ctx, Edit&& edit) {
  std::shared_ptr<const AdapterDeltas> expected = context_published_deltas(ctx);
  for (;;) {
    const std::shared_ptr<const AdapterSet> current = set_of(expected);
    std::vector<ActiveAdapter> list;
    if (current) list = current->adapters();
    if (!edit(list)) return false;
    auto next = AdapterSet::create(ctx.model(), std::move(list));
    if (!next.ok()) return next.error();
    if (context_exchange_deltas(ctx, expected, deltas_of(*next))) return true;
  }
}

}  // namespace

Result<const AdapterDeltas*> adapter_set_deltas(const AdapterSet& set, const Model& model) {
  if (!(set.impl().shape == lora::ShapeKey::of(model.config()))) {
    return Error{"the adapter set was made for a model of another shape"};
  }
  return &set.impl().deltas;
}

Result<void> set_adapters(Context& ctx, std::shared_ptr<const AdapterSet> set) {
  if (set && !(set->impl().shape == lora::ShapeKey::of(ctx.model().config()))) {
    return Error{"set_adapters: the adapter set was made for a model of another shape"};
  }
  context_publish_deltas(ctx, deltas_of(set));
  return {};
}

std::shared_ptr<const AdapterSet> active_adapters(const Context& ctx) {
  return set_of(context_published_deltas(ctx));
}

Result<void> apply_adapter(Context& ctx, std::shared_ptr<const LoraAdapter> adapter, float scale) {
  if (!adapter) return Error{"apply_adapter: no adapter given"};
  auto r = update_set(ctx, [&](std::vector<ActiveAdapter>& list) {
    for (ActiveAdapter& x : list) {
      if (x.adapter == adapter) {
        x.scale = scale;
        return true;
      }
    }
    list.push_back({adapter, scale});
    return true;
  });
  if (!r.ok()) return r.error();
  return {};
}

bool remove_adapter(Context& ctx, const LoraAdapter& adapter) {
  auto r = update_set(ctx, [&](std::vector<ActiveAdapter>& list) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const ActiveAdapter& x) { return x.adapter.get() == &adapter; });
    if (it == list.end()) return false;
    list.erase(it);
    return true;
  });
  return r.ok() && *r;
}

bool has_adapter(const Context& ctx, const LoraAdapter& adapter) {
  const auto set = active_adapters(ctx);
  return set && set->contains(adapter);
}

Result<std::shared_ptr<const LoraAdapter>> AdapterRegistry::load(const std::string& name,
                                                                 const std::string& path) {
  {
    std::lock_guard lock(mutex_);
    if (adapters_.count(name)) return Error{fmt::format("adapter '{}' is already loaded", name)};
  }
  // Loading runs outside the lock: other users keep listing and swapping meanwhile.
  auto adapter = LoraAdapter::load(path, *model_);
  if (!adapter.ok()) return adapter.error();
  std::lock_guard lock(mutex_);
  if (!adapters_.emplace(name, *adapter).second) {
    return Error{fmt::format("adapter '{}' is already loaded", name)};
  }
  return *adapter;
}

bool AdapterRegistry::unload(const std::string& name) {
  std::lock_guard lock(mutex_);
  return adapters_.erase(name) > 0;
}

std::shared_ptr<const LoraAdapter> AdapterRegistry::get(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : it->second;
}

std::vector<std::pair<std::string, LoraInfo>> AdapterRegistry::list() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, LoraInfo>> out;
  for (const auto& [name, a] : adapters_) out.emplace_back(name, a->info());
  return out;
}

}  // namespace kandil
