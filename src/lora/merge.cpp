// Baking adapters into base weights (GGUF export, in-memory merge / exact unmerge) and converting
// PEFT folders to GGUF adapters.
#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <map>

#include "base/thread_pool.h"
#include "kandil/gguf.h"
#include "lora/adapter_impl.h"
#include "ops/quant.h"

namespace kandil {
namespace lora {

void add_delta(const RawPair& p, float scale, float* w, int64_t row_begin, int64_t row_end) {
  for (int64_t o = row_begin; o < row_end; ++o) {
    float* row = w + o * p.n_in;
    for (int64_t r = 0; r < p.rank; ++r) {
      const float c = scale * p.b[static_cast<size_t>(o * p.rank + r)];
      if (c == 0.0f) continue;
      const float* a = p.a.data() + r * p.n_in;
      for (int64_t i = 0; i < p.n_in; ++i) row[i] += c * a[i];
    }
  }
}

}  // namespace lora

namespace {

struct Contribution {
  const lora::RawPair* pair;
  float scale;
};
using ContributionMap = std::map<std::pair<int32_t, int>, std::vector<Contribution>>;

ContributionMap collect(const std::vector<ActiveAdapter>& adapters) {
  ContributionMap out;
  for (const ActiveAdapter& x : adapters) {
    const LoraAdapter::Impl& a = x.adapter->impl();
    for (size_t k = 0; k < a.pairs.size(); ++k) {
      const lora::RawPair& p = a.pairs[k];
      out[{p.layer, static_cast<int>(p.target)}].push_back({&p, x.scale * a.factors[k]});
    }
  }
  return out;
}

// "blk.N.<gguf target name>.weight" -> (N, target).
std::optional<std::pair<int32_t, int>> parse_weight_name(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return std::nullopt;
  name.remove_prefix(4);
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 6) return std::nullopt;
  int32_t layer = 0;
  for (char ch : name.substr(0, dot)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    layer = layer * 10 + (ch - '0');
  }
  name.remove_prefix(dot + 1);
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (name == std::string(lora_target_gguf_name(static_cast<LoraTarget>(t))) + ".weight") {
      return std::pair{layer, t};
    }
  }
  return std::nullopt;
}

Result<void> check_adapters(const Model& base, const std::vector<ActiveAdapter>& adapters) {
  // AdapterSet::create validates shapes, scales and duplicates.
  auto set = AdapterSet::create(base, adapters);
  if (!set.ok()) return set.error();
  return {};
}

}  // namespace

Result<void> merge_adapters_to_gguf(const Model& base, const std::vector<ActiveAdapter>& adapters,
                                    const std::string& out_path, int n_threads) {
  KANDIL_CHECK_OK(check_adapters(base, adapters));
  const ContributionMap contributions = collect(adapters);
  const GgufFile& f = base.gguf();
  GgufWriter w;
  w.set_alignment(f.alignment());
  for (const GgufKV& kv : f.metadata()) w.set_value(std::string(kv.key), kv.value);
  ThreadPool pool(n_threads > 0 ? n_threads : ThreadPool::hardware_threads());
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  for (const GgufTensorInfo& t : f.tensors()) {
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    const auto key = parse_weight_name(t.name);
    const auto it = key ? contributions.find(*key) : contributions.end();
    if (it == contributions.end()) {
      KANDIL_CHECK_OK(w.add_tensor(std::string(t.name), t.type, shape, t.data, t.nbytes));
      continue;
    }
    if (t.type != TensorType::F32 && t.type != TensorType::F16 && t.type != TensorType::BF16) {
      return Error{fmt::format(
          "{}: tensor '{}' is {}: adapters can be merged into F32, F16 or BF16 weights only "
          "(convert the base to F16 first, or apply the adapter unmerged with run --lora)",
          f.name(), t.name, tensor_type_name(t.type))};
    }
    const ops::TypeTraits* tr = ops::type_traits(t.type);
    const int64_t n_in = t.ne[0], n_out = t.ne[1];
    values.resize(static_cast<size_t>(n_in * n_out));
    bytes.resize(t.nbytes);
    const size_t row_bytes = tensor_row_bytes(t.type, n_in);
    pool.parallel_for(n_out, [&](int64_t b, int64_t e) {
      std::vector<uint64_t> aligned((row_bytes + 7) / 8);
      for (int64_t r = b; r < e; ++r) {
        std::memcpy(aligned.data(), t.data + static_cast<size_t>(r) * row_bytes, row_bytes);
        tr->to_float(reinterpret_cast<const uint8_t*>(aligned.data()), values.data() + r * n_in,
                     n_in);
      }
      for (const Contribution& c : it->second)
        lora::add_delta(*c.pair, c.scale, values.data(), b, e);
      for (int64_t r = b; r < e; ++r) {
        tr->from_float(values.data() + r * n_in, reinterpret_cast<uint8_t*>(aligned.data()), n_in);
        std::memcpy(bytes.data() + static_cast<size_t>(r) * row_bytes, aligned.data(), row_bytes);
      }
    });
    KANDIL_CHECK_OK(w.add_tensor(std::string(t.name), t.type, shape, bytes.data(), bytes.size()));
  }
  return w.write_file(out_path);
}

Result<MergedWeights> MergedWeights::merge(const Matrices& weights,
                                           const std::vector<ActiveAdapter>& adapters) {
  for (const ActiveAdapter& x : adapters) {
    if (!x.adapter) return Error{"merge: an entry has no adapter"};
    if (!std::isfinite(x.scale)) return Error{"merge: a scale is not finite"};
  }
  const ContributionMap contributions = collect(adapters);
  MergedWeights m;
  for (const auto& [key, list] : contributions) {
    const auto [layer, target] = key;
    float* w = static_cast<size_t>(layer) < weights.size()
                   ? weights[static_cast<size_t>(layer)][static_cast<size_t>(target)]
                   : nullptr;
    if (w == nullptr) {
      return Error{fmt::format("merge: no matrix given for layer {} {}", layer,
                               lora_target_peft_name(static_cast<LoraTarget>(target)))};
    }
    const lora::RawPair& p = *list.front().pair;
    m.saved_.push_back({w, std::vector<float>(w, w + p.n_in * p.n_out)});
  }
  for (const auto& [key, list] : contributions) {
    float* w = weights[static_cast<size_t>(key.first)][static_cast<size_t>(key.second)];
    for (const Contribution& c : list) lora::add_delta(*c.pair, c.scale, w, 0, c.pair->n_out);
  }
  return m;
}

void MergedWeights::unmerge() {
  for (Saved& s : saved_) std::memcpy(s.w, s.original.data(), s.original.size() * sizeof(float));
  saved_.clear();
}

size_t MergedWeights::saved_bytes() const {
  size_t n = 0;
  for (const Saved& s : saved_) n += s.original.size() * sizeof(float);
  return n;
}

Result<void> convert_peft_to_gguf(const std::string& peft_dir, const Model* base,
                                  const std::string& out_path) {
  std::vector<lora::RawPair> bound;
  LoraInfo info;
  std::shared_ptr<const LoraAdapter> adapter;
  const std::vector<lora::RawPair>* pairs = nullptr;
  auto raw = lora::read_peft_adapter(peft_dir);
  if (!raw.ok()) return raw.error();
  info = raw->info;
  if (base != nullptr) {
    auto loaded = LoraAdapter::load(peft_dir, *base);
    if (!loaded.ok()) return loaded.error();
    adapter = *loaded;
    pairs = &adapter->impl().pairs;
  } else {
    for (const lora::RawPair& p : raw->pairs) {
      if (p.target == LoraTarget::q || p.target == LoraTarget::k) {
        return Error{peft_dir +
                     ": the adapter targets q_proj/k_proj, whose rows must be reordered "
                     "for the base's RoPE layout: give the base model (-m BASE)"};
      }
    }
    pairs = &raw->pairs;
  }
  // GGUF adapters carry one alpha and the reader computes alpha / r: fold rsLoRA's alpha / √r in.
  float alpha = info.alpha;
  if (info.rslora) {
    if (info.rank_min != info.rank_max) {
      return Error{peft_dir +
                   ": rsLoRA with per-module ranks cannot be expressed with one GGUF "
                   "alpha"};
    }
    alpha = info.alpha * std::sqrt(static_cast<float>(info.rank_max));
  }
  GgufWriter w;
  w.set_string("general.architecture", base ? base->config().arch : "llama");
  w.set_string("general.type", "adapter");
  w.set_string("general.name", "kandil-converted-lora");
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", alpha);
  for (const lora::RawPair& p : *pairs) {
    const std::string name =
        fmt::format("blk.{}.{}.weight", p.layer, lora_target_gguf_name(p.target));
    KANDIL_CHECK_OK(w.add_tensor(name + ".lora_a", TensorType::F32, {p.n_in, p.rank}, p.a.data(),
                                 p.a.size() * sizeof(float)));
    KANDIL_CHECK_OK(w.add_tensor(name + ".lora_b", TensorType::F32, {p.rank, p.n_out}, p.b.data(),
                                 p.b.size() * sizeof(float)));
  }
  return w.write_file(out_path);
}

}  // namespace kandil
