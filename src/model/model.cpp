// Model loading: architecture config from metadata, weight views with shape and type checks.
#include <fmt/core.h>

#include <cmath>
#include <filesystem>

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
    {"llama", RopeLayout::adjacent_pairs},  // also Mistral (+ attention.sliding_window)
    {"qwen2", RopeLayout::split_half},      // + blk.N.attn_{q,k,v}.bias
    {"qwen3", RopeLayout::split_half},      // + blk.N.attn_{q,k}_norm.weight
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
  KANDIL_ASSIGN(c.sliding_window, r.integer("attention.sliding_window", 0, 0, 1 << 24));
  return c;
}

namespace {

class WeightLoader {
 public:
  WeightLoader(const TensorSource& src, Model::Impl& m) : src_(src), m_(m) {}

  Result<std::optional<TensorView>> find(const std::string& name) { return src_.find(name); }

  Result<cpu::Weight> matrix(const std::string& name, int64_t n_in, int64_t n_out) {
    auto found = src_.find(name);
    if (!found.ok()) return found.error();
    const std::string shown = src_.display ? src_.display(name) : name;
    if (!found->has_value()) {
      return Error{fmt::format("{}: tensor '{}' is missing", src_.where, shown)};
    }
    const TensorView& t = **found;
    if (t.n_dims > 2 || t.ne[0] != n_in || t.ne[1] != n_out) {
      return Error{fmt::format("{}: tensor '{}' has shape {} but the config implies [{}, {}]",
                               src_.where, shown, shape(t), n_in, n_out)};
    }
    if (!tensor_type_supported(t.type)) {
      return Error{fmt::format("{}: tensor '{}' has type {}, which this build cannot compute with",
                               src_.where, shown, tensor_type_name(t.type))};
    }
    m_.weight_bytes += t.nbytes;
    m_.n_params += static_cast<uint64_t>(n_in * n_out);
    return cpu::Weight{t.type, n_in, n_out, t.data, tensor_row_bytes(t.type, n_in)};
  }

  Result<std::vector<float>> vector(const std::string& name, int64_t n) {
    auto m = matrix(name, n, 1);
    if (!m.ok()) return m.error();
    std::vector<float> out(static_cast<size_t>(n));
    cpu::dequantize_row(*m, 0, out.data());
    return out;
  }

  static std::string shape(const TensorView& t) {
    std::string s = "[";
    for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
  }

 private:
  const TensorSource& src_;
  Model::Impl& m_;
};

}  // namespace

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
const ModelConfig& Model::config() const { return impl_->config; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
const GgufFile& Model::gguf() const { return impl_->file; }
uint64_t Model::weight_bytes() const { return impl_->weight_bytes; }
uint64_t Model::n_params() const { return impl_->n_params; }
uint64_t Model::file_bytes() const { return impl_->file_bytes; }
uint64_t Model::token_embd_bytes() const {
  const cpu::Weight& e = impl_->token_embd;
  return tensor_row_bytes(e.type, e.n_in) * static_cast<uint64_t>(e.n_out);
}

TensorSource gguf_tensor_source(const GgufFile& f) {
  TensorSource src;
  src.where = f.name();
  src.find = [&f](std::string_view name) -> Result<std::optional<TensorView>> {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) return std::optional<TensorView>();
    return std::optional<TensorView>(TensorView::of(*t));
  };
  return src;
}

Result<std::shared_ptr<const Model>> Model::load(const std::string& path) {
  std::shared_ptr<Model> model(new Model());
  Impl& m = *model->impl_;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    if (auto r = load_hf_model(path, m); !r.ok()) return r.error();
    return std::shared_ptr<const Model>(std::move(model));
  }
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.error();
  m.file = std::move(*file);
  m.file_bytes = m.file.file_size();

  auto config = read_model_config(m.file);
  if (!config.ok()) return config.error();
  m.config = *config;
  auto tokenizer = Tokenizer::from_gguf(m.file);
  if (!tokenizer.ok()) return tokenizer.error();
  m.tokenizer = std::move(*tokenizer);

  for (const auto& t : m.file.tensors()) {
    if (t.name.find("_exps") != std::string_view::npos) {
      return Error{fmt::format("{}: tensor '{}': mixture-of-experts models are not supported yet",
                               path, t.name)};
    }
  }
  if (auto r = load_weights(m, gguf_tensor_source(m.file)); !r.ok()) return r.error();
  return std::shared_ptr<const Model>(std::move(model));
}

Result<void> load_weights(Model::Impl& m, const TensorSource& src) {
  ModelConfig& c = m.config;
  const std::string& path = src.where;
  WeightLoader load(src, m);
  auto embd = load.find("token_embd.weight");
  if (!embd.ok()) return embd.error();
  if (!embd->has_value()) return Error{path + ": tensor 'token_embd.weight' is missing"};
  const int64_t rows = (*embd)->ne[1];
  if (rows < 1 || rows > (1 << 24)) {
    return Error{fmt::format("{}: token_embd.weight has {} rows", path, rows)};
  }
  c.n_vocab = static_cast<int32_t>(rows);
  if (m.tokenizer->n_vocab() != c.n_vocab) {
    return Error{fmt::format("{}: the tokenizer has {} tokens but token_embd.weight has {} rows",
                             path, m.tokenizer->n_vocab(), c.n_vocab)};
  }

  const int64_t q_dim = int64_t{c.n_head} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_head_kv} * c.head_dim;
#define KANDIL_LOAD(lhs, expr)                     \
  do {                                             \
    auto kandil_w_ = (expr);                       \
    if (!kandil_w_.ok()) return kandil_w_.error(); \
    lhs = std::move(*kandil_w_);                   \
  } while (0)
  // Optional tensors decide the flags: the first layer's presence stands for all layers.
  auto present = [&](const std::string& name) -> Result<bool> {
    auto t = load.find(name);
    if (!t.ok()) return t.error();
    return t->has_value();
  };
  bool has = false;
  KANDIL_LOAD(has, present("rope_freqs.weight"));
  if (has) KANDIL_LOAD(c.rope_freq_factors, load.vector("rope_freqs.weight", c.n_rot / 2));
  for (float f : c.rope_freq_factors) {
    if (!(f > 0.0f) || !std::isfinite(f)) {
      return Error{path + ": rope_freqs.weight holds a factor that is not a positive number"};
    }
  }
  KANDIL_LOAD(c.qkv_bias, present("blk.0.attn_q.bias"));
  KANDIL_LOAD(c.qk_norm, present("blk.0.attn_q_norm.weight"));
  if (c.arch == "qwen2" && !c.qkv_bias) {
    return Error{path + ": tensor 'blk.0.attn_q.bias' is missing (qwen2 has Q/K/V biases)"};
  }
  if (c.arch == "qwen3" && !c.qk_norm) {
    return Error{path + ": tensor 'blk.0.attn_q_norm.weight' is missing (qwen3 normalizes Q/K)"};
  }

  KANDIL_LOAD(m.token_embd, load.matrix("token_embd.weight", c.n_embd, c.n_vocab));
  KANDIL_LOAD(m.output_norm, load.vector("output_norm.weight", c.n_embd));
  KANDIL_LOAD(has, present("output.weight"));
  c.tied_embeddings = !has;
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
    if (c.qkv_bias) {
      KANDIL_LOAD(l.bq, load.vector(p + "attn_q.bias", q_dim));
      KANDIL_LOAD(l.bk, load.vector(p + "attn_k.bias", kv_dim));
      KANDIL_LOAD(l.bv, load.vector(p + "attn_v.bias", kv_dim));
    }
    if (c.qk_norm) {
      KANDIL_LOAD(l.q_norm, load.vector(p + "attn_q_norm.weight", c.head_dim));
      KANDIL_LOAD(l.k_norm, load.vector(p + "attn_k_norm.weight", c.head_dim));
    }
    KANDIL_LOAD(l.wo, load.matrix(p + "attn_output.weight", q_dim, c.n_embd));
    KANDIL_LOAD(l.ffn_norm, load.vector(p + "ffn_norm.weight", c.n_embd));
    KANDIL_LOAD(l.w_gate, load.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff));
    KANDIL_LOAD(l.w_up, load.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff));
    KANDIL_LOAD(l.w_down, load.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd));
  }
#undef KANDIL_LOAD
  return {};
}

}  // namespace kandil
