// Model loading: architecture config from metadata, weight views with shape and type checks.
#include <fmt/core.h>

#include <cmath>

#include "kandil/model.h"
#include "model/model_impl.h"
#include "ops/quant.h"

namespace kandil {
namespace {

// Architectures this engine runs, as data: all of them use the LLaMA block today.
struct ArchSpec {
  std::string_view name;
  RopeLayout rope_layout;
};
constexpr ArchSpec kArchitectures[] = {
    {"llama", RopeLayout::adjacent_pairs},
};

const ArchSpec* find_arch(std::string_view name) {
  for (const auto& a : kArchitectures) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::string supported_arch_list() {
  std::string s;
  for (const auto& a : kArchitectures) s += (s.empty() ? "" : ", ") + std::string(a.name);
  return s;
}

class ConfigReader {
 public:
  ConfigReader(const GgufFile& f, std::string prefix) : f_(f), prefix_(std::move(prefix)) {}

  // Reads "<arch>.<key>" as a positive int within [lo, hi].
  Result<int32_t> integer(const std::string& key, std::optional<int64_t> fallback, int64_t lo,
                          int64_t hi) const {
    std::string full = prefix_ + key;
    auto v = f_.get_int(full);
    if (!v.ok()) return v.error();
    if (!v->has_value()) {
      if (!fallback) return Error{fmt::format("{}: required key '{}' is missing", f_.name(), full)};
      return static_cast<int32_t>(*fallback);
    }
    int64_t x = **v;
    if (x < lo || x > hi) {
      return Error{fmt::format("{}: key '{}' is {} (expected {}..{})", f_.name(), full, x, lo, hi)};
    }
    return static_cast<int32_t>(x);
  }

  Result<float> real(const std::string& key, float fallback) const {
    auto v = f_.get_float(prefix_ + key);
    if (!v.ok()) return v.error();
    if (!v->has_value()) return fallback;
    double x = **v;
    if (!std::isfinite(x)) {
      return Error{fmt::format("{}: key '{}{}' is not a finite number", f_.name(), prefix_, key)};
    }
    return static_cast<float>(x);
  }

 private:
  const GgufFile& f_;
  std::string prefix_;
};

#define KANDIL_ASSIGN(lhs, expr)                   \
  do {                                             \
    auto kandil_v_ = (expr);                       \
    if (!kandil_v_.ok()) return kandil_v_.error(); \
    lhs = *kandil_v_;                              \
  } while (0)

}  // namespace

Result<ModelConfig> read_model_config(const GgufFile& f) {
  ModelConfig c;
  auto arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.error();
  if (!arch->has_value()) return Error{f.name() + ": general.architecture is missing"};
  c.arch = std::string(**arch);
  const ArchSpec* spec = find_arch(c.arch);
  if (!spec) {
    return Error{fmt::format("{}: unknown architecture '{}' (supported: {})", f.name(), c.arch,
                             supported_arch_list())};
  }
  if (auto name = f.get_string("general.name"); name.ok() && name->has_value()) c.name = **name;

  ConfigReader r(f, c.arch + ".");
  constexpr int64_t kMaxDim = 1 << 20;
  KANDIL_ASSIGN(c.n_embd, r.integer("embedding_length", std::nullopt, 1, kMaxDim));
  KANDIL_ASSIGN(c.n_layer, r.integer("block_count", std::nullopt, 1, 4096));
  KANDIL_ASSIGN(c.n_ff, r.integer("feed_forward_length", std::nullopt, 1, kMaxDim));
  KANDIL_ASSIGN(c.n_head, r.integer("attention.head_count", std::nullopt, 1, 4096));
  KANDIL_ASSIGN(c.n_head_kv, r.integer("attention.head_count_kv", c.n_head, 1, c.n_head));
  KANDIL_ASSIGN(c.n_ctx_train, r.integer("context_length", 2048, 1, 1 << 24));
  if (c.n_head % c.n_head_kv != 0) {
    return Error{fmt::format("{}: {} attention heads cannot be grouped over {} KV heads", f.name(),
                             c.n_head, c.n_head_kv)};
  }
  std::optional<int64_t> default_head_dim;
  if (c.n_embd % c.n_head == 0) default_head_dim = c.n_embd / c.n_head;
  KANDIL_ASSIGN(c.head_dim, r.integer("attention.key_length", default_head_dim, 1, 65536));
  int32_t value_length = 0;
  KANDIL_ASSIGN(value_length, r.integer("attention.value_length", c.head_dim, 1, 65536));
  if (value_length != c.head_dim) {
    return Error{fmt::format("{}: key_length {} != value_length {} is not supported", f.name(),
                             c.head_dim, value_length)};
  }
  KANDIL_ASSIGN(c.n_rot, r.integer("rope.dimension_count", c.head_dim, 2, c.head_dim));
  if (c.n_rot % 2 != 0)
    return Error{fmt::format("{}: rope.dimension_count {} is odd", f.name(), c.n_rot)};
  KANDIL_ASSIGN(c.norm_eps, r.real("attention.layer_norm_rms_epsilon", 1e-5f));
  KANDIL_ASSIGN(c.rope_freq_base, r.real("rope.freq_base", 10000.0f));
  if (c.rope_freq_base <= 0) return Error{f.name() + ": rope.freq_base must be positive"};
  c.rope_layout = spec->rope_layout;

  // RoPE scaling: "linear" divides positions by the factor; older files use rope.scale_linear.
  float factor = 1.0f;
  auto scaling_type = f.get_string(c.arch + ".rope.scaling.type");
  if (!scaling_type.ok()) return scaling_type.error();
  if (scaling_type->has_value() && **scaling_type != "none") {
    if (**scaling_type != "linear") {
      return Error{fmt::format("{}: rope scaling type '{}' is not supported (supported: linear)",
                               f.name(), **scaling_type)};
    }
    KANDIL_ASSIGN(factor, r.real("rope.scaling.factor", 1.0f));
  } else {
    KANDIL_ASSIGN(factor, r.real("rope.scale_linear", 1.0f));
  }
  if (factor <= 0) return Error{f.name() + ": rope scaling factor must be positive"};
  c.rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
  return c;
}

namespace {

class WeightLoader {
 public:
  WeightLoader(const GgufFile& f, uint64_t& bytes) : f_(f), bytes_(bytes) {}

  Result<cpu::Weight> matrix(const std::string& name, int64_t n_in, int64_t n_out) {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) return Error{fmt::format("{}: tensor '{}' is missing", f_.name(), name)};
    if (t->n_dims > 2 || t->ne[0] != n_in || t->ne[1] != n_out) {
      return Error{fmt::format("{}: tensor '{}' has shape {} but the config implies [{}, {}]",
                               f_.name(), name, shape(*t), n_in, n_out)};
    }
    if (!tensor_type_supported(t->type)) {
      return Error{fmt::format("{}: tensor '{}' has type {}, which this build cannot compute with",
                               f_.name(), name, tensor_type_name(t->type))};
    }
    bytes_ += t->nbytes;
    return cpu::Weight{t->type, n_in, n_out, t->data, tensor_row_bytes(t->type, n_in)};
  }

  Result<std::vector<float>> vector(const std::string& name, int64_t n) {
    auto m = matrix(name, n, 1);
    if (!m.ok()) return m.error();
    std::vector<float> out(static_cast<size_t>(n));
    cpu::dequantize_row(*m, 0, out.data());
    return out;
  }

  static std::string shape(const GgufTensorInfo& t) {
    std::string s = "[";
    for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
  }

 private:
  const GgufFile& f_;
  uint64_t& bytes_;
};

}  // namespace

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
const ModelConfig& Model::config() const { return impl_->config; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
const GgufFile& Model::gguf() const { return impl_->file; }
uint64_t Model::weight_bytes() const { return impl_->weight_bytes; }

Result<std::shared_ptr<const Model>> Model::load(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.error();
  std::shared_ptr<Model> model(new Model());
  Impl& m = *model->impl_;
  m.file = std::move(*file);

  auto config = read_model_config(m.file);
  if (!config.ok()) return config.error();
  m.config = *config;
  ModelConfig& c = m.config;

  auto tokenizer = Tokenizer::from_gguf(m.file);
  if (!tokenizer.ok()) return tokenizer.error();
  m.tokenizer = std::move(*tokenizer);

  const GgufTensorInfo* embd = m.file.find_tensor("token_embd.weight");
  if (!embd) return Error{path + ": tensor 'token_embd.weight' is missing"};
  if (embd->ne[1] < 1 || embd->ne[1] > (1 << 24)) {
    return Error{fmt::format("{}: token_embd.weight has {} rows", path, embd->ne[1])};
  }
  c.n_vocab = static_cast<int32_t>(embd->ne[1]);
  if (m.tokenizer->n_vocab() != c.n_vocab) {
    return Error{fmt::format("{}: the tokenizer has {} tokens but token_embd.weight has {} rows",
                             path, m.tokenizer->n_vocab(), c.n_vocab)};
  }

  for (const auto& t : m.file.tensors()) {
    if (t.name.find("_exps") != std::string_view::npos) {
      return Error{fmt::format("{}: tensor '{}': mixture-of-experts models are not supported yet",
                               path, t.name)};
    }
  }

  WeightLoader load(m.file, m.weight_bytes);
  const int64_t q_dim = int64_t{c.n_head} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_head_kv} * c.head_dim;
#define KANDIL_LOAD(lhs, expr)                     \
  do {                                             \
    auto kandil_w_ = (expr);                       \
    if (!kandil_w_.ok()) return kandil_w_.error(); \
    lhs = std::move(*kandil_w_);                   \
  } while (0)
  KANDIL_LOAD(m.token_embd, load.matrix("token_embd.weight", c.n_embd, c.n_vocab));
  KANDIL_LOAD(m.output_norm, load.vector("output_norm.weight", c.n_embd));
  c.tied_embeddings = m.file.find_tensor("output.weight") == nullptr;
  if (c.tied_embeddings) {
    m.output = m.token_embd;
  } else {
    KANDIL_LOAD(m.output, load.matrix("output.weight", c.n_embd, c.n_vocab));
  }
  m.layers.resize(static_cast<size_t>(c.n_layer));
  for (int32_t i = 0; i < c.n_layer; ++i) {
    LayerWeights& l = m.layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("blk.{}.", i);
    KANDIL_LOAD(l.attn_norm, load.vector(p + "attn_norm.weight", c.n_embd));
    KANDIL_LOAD(l.wq, load.matrix(p + "attn_q.weight", c.n_embd, q_dim));
    KANDIL_LOAD(l.wk, load.matrix(p + "attn_k.weight", c.n_embd, kv_dim));
    KANDIL_LOAD(l.wv, load.matrix(p + "attn_v.weight", c.n_embd, kv_dim));
    KANDIL_LOAD(l.wo, load.matrix(p + "attn_output.weight", q_dim, c.n_embd));
    KANDIL_LOAD(l.ffn_norm, load.vector(p + "ffn_norm.weight", c.n_embd));
    KANDIL_LOAD(l.w_gate, load.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff));
    KANDIL_LOAD(l.w_up, load.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff));
    KANDIL_LOAD(l.w_down, load.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd));
  }
#undef KANDIL_LOAD
  return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace kandil
