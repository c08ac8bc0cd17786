// Hugging Face folders: the tensor-name map, direct loading (zero-copy views into the safetensors
// files) and conversion to GGUF.
#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "kandil/hf.h"
#include "kandil/model.h"
#include "kandil/safetensors.h"
#include "model/hf_internal.h"
#include "model/model_impl.h"
#include "ops/quant.h"

namespace kandil {
namespace hf {
namespace {

// GGUF per-layer suffix <-> HF per-layer suffix (after "blk.N." / "model.layers.N.").
constexpr std::pair<std::string_view, std::string_view> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
constexpr std::pair<std::string_view, std::string_view> kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// "<prefix><digits>.<rest>" -> (layer, rest).
std::optional<std::pair<int64_t, std::string_view>> split_layer(std::string_view name,
                                                                std::string_view prefix) {
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  name.remove_prefix(prefix.size());
  size_t i = 0;
  int64_t layer = 0;
  while (i < name.size() && i < 7 && name[i] >= '0' && name[i] <= '9') {
    layer = layer * 10 + (name[i] - '0');
    ++i;
  }
  if (i == 0 || i >= name.size() || name[i] != '.') return std::nullopt;
  return std::make_pair(layer, name.substr(i + 1));
}

}  // namespace

std::optional<std::string> hf_name_of(std::string_view gguf_name) {
  for (const auto& [g, h] : kGlobalNames) {
    if (g == gguf_name) return std::string(h);
  }
  if (auto l = split_layer(gguf_name, "blk.")) {
    for (const auto& [g, h] : kLayerNames) {
      if (g == l->second) return fmt::format("model.layers.{}.{}", l->first, h);
    }
  }
  return std::nullopt;
}

std::optional<std::string> gguf_name_of(std::string_view hf_name) {
  for (const auto& [g, h] : kGlobalNames) {
    if (h == hf_name) return std::string(g);
  }
  if (auto l = split_layer(hf_name, "model.layers.")) {
    for (const auto& [g, h] : kLayerNames) {
      if (h == l->second) return fmt::format("blk.{}.{}", l->first, g);
    }
  }
  return std::nullopt;
}

namespace {

// Tensors some checkpoints carry that the engine recomputes.
bool ignored_hf_tensor(std::string_view name) {
  return name.size() > 21 && name.substr(name.size() - 21) == ".rotary_emb.inv_freq";
}

Result<TensorView> view_of(const SafetensorsTensor& t, const std::string& dir) {
  auto type = safetensors_to_tensor_type(t.dtype);
  if (!type) {
    return Error{fmt::format("{}: tensor '{}' has dtype {} (supported: F32, F16, BF16)", dir,
                             t.name, safetensors_dtype_name(t.dtype))};
  }
  if (t.shape.empty() || t.shape.size() > 2) {
    return Error{fmt::format("{}: tensor '{}' has {} dimensions (expected 1 or 2)", dir, t.name,
                             t.shape.size())};
  }
  TensorView v;
  v.type = *type;
  v.n_dims = static_cast<uint32_t>(t.shape.size());
  // PyTorch [out, in] row-major == GGUF ne = {in, out}.
  v.ne[0] = t.shape.back();
  v.ne[1] = t.shape.size() == 2 ? t.shape[0] : 1;
  v.data = t.data;
  v.nbytes = t.nbytes;
  return v;
}

// Every tensor of the folder must be one the architecture uses.
Result<void> check_known_tensors(const SafetensorsSet& set, const std::string& dir) {
  for (const SafetensorsTensor* t : set.tensors()) {
    if (ignored_hf_tensor(t->name) || gguf_name_of(t->name)) continue;
    return Error{fmt::format(
        "{}: tensor '{}' is not part of a supported architecture (LLaMA / Mistral / Qwen2 / "
        "Qwen3 blocks)",
        dir, t->name)};
  }
  return {};
}

}  // namespace

// The one place that turns an HF folder's tokenizer into the engine's Tokenizer (through GGUF
// metadata); a native tokenizer.json implementation replaces this function.
Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const GgufFile& translated) {
  return Tokenizer::from_gguf(translated);
}

}  // namespace hf

bool is_hf_model_dir(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) &&
         std::filesystem::is_regular_file(path + "/config.json", ec);
}

Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& dir) {
  auto cfg = hf::read_config(dir);
  if (!cfg.ok()) return cfg.error();
  GgufWriter w;
  if (auto r = hf::write_tokenizer_metadata(dir, *cfg, w); !r.ok()) return r.error();
  const std::vector<uint8_t> bytes = w.serialize();
  auto file = GgufFile::parse(bytes.data(), bytes.size(), dir + "/tokenizer.json");
  if (!file.ok()) return file.error();
  return hf::load_hf_tokenizer(*file);
}

Result<void> load_hf_model(const std::string& dir, Model::Impl& m) {
  auto cfg = hf::read_config(dir);
  if (!cfg.ok()) return cfg.error();
  GgufWriter w;
  if (auto r = hf::write_arch_metadata(*cfg, w); !r.ok()) return r;
  if (auto r = hf::write_tokenizer_metadata(dir, *cfg, w); !r.ok()) return r;
  m.metadata = w.serialize();
  auto file = GgufFile::parse(m.metadata.data(), m.metadata.size(), dir + "/config.json");
  if (!file.ok()) return file.error();
  m.file = std::move(*file);
  auto config = read_model_config(m.file);
  if (!config.ok()) return config.error();
  m.config = *config;
  m.config.rope_layout = RopeLayout::split_half;  // HF q/k rows are not permuted
  m.config.source_format = "hf";
  auto tokenizer = hf::load_hf_tokenizer(m.file);
  if (!tokenizer.ok()) return tokenizer.error().with_context(dir + "/tokenizer.json");
  m.tokenizer = std::move(*tokenizer);

  auto set = SafetensorsSet::open_dir(dir);
  if (!set.ok()) return set.error();
  m.hf_weights = std::move(*set);
  m.file_bytes = m.hf_weights.total_bytes();
  if (auto r = hf::check_known_tensors(m.hf_weights, dir); !r.ok()) return r;

  TensorSource src;
  src.where = dir;
  const SafetensorsSet* weights = &m.hf_weights;
  const GgufFile* meta = &m.file;
  auto* realigned = &m.realigned;
  src.find = [weights, meta, realigned,
              dir](std::string_view name) -> Result<std::optional<TensorView>> {
    if (const GgufTensorInfo* t = meta->find_tensor(name)) {  // derived: rope_freqs.weight
      return std::optional<TensorView>(TensorView::of(*t));
    }
    auto hf_name = hf::hf_name_of(name);
    if (!hf_name) return std::optional<TensorView>();
    const SafetensorsTensor* t = weights->find(*hf_name);
    if (!t) return std::optional<TensorView>();
    auto v = hf::view_of(*t, dir);
    if (!v.ok()) return v.error();
    // safetensors packs tensors back to back: an odd-sized 16-bit tensor leaves the next one
    // misaligned. Such a tensor is copied once into aligned storage.
    const size_t elem = v->type == TensorType::F32 ? 4 : 2;
    if (reinterpret_cast<uintptr_t>(v->data) % elem != 0) {
      std::vector<float> copy((v->nbytes + sizeof(float) - 1) / sizeof(float));
      std::memcpy(copy.data(), v->data, v->nbytes);
      v->data = reinterpret_cast<const uint8_t*>(copy.data());
      realigned->push_back(std::move(copy));  // the buffer (not the vector) keeps its address
    }
    return std::optional<TensorView>(*v);
  };
  src.display = [](std::string_view name) {
    auto hf_name = hf::hf_name_of(name);
    return hf_name ? fmt::format("{} ({})", *hf_name, name) : std::string(name);
  };
  return load_weights(m, src);
}

namespace {

// llama.cpp's LLAMA_FTYPE_* of a conversion target.
uint32_t file_type_of(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return 0;
    case TensorType::F16:
      return 1;
    case TensorType::Q8_0:
      return 7;
    case TensorType::BF16:
      return 32;
    default:
      return 1;
  }
}

// Sort key: token_embd, the layers in order, then output_norm and output (llama.cpp's order).
std::pair<int64_t, std::string> order_key(const std::string& gguf_name) {
  if (gguf_name == "rope_freqs.weight") return {-2, gguf_name};
  if (gguf_name == "token_embd.weight") return {-1, gguf_name};
  if (auto l = std::string_view(gguf_name).substr(0, 4) == "blk." ? gguf_name.find('.', 4)
                                                                  : std::string::npos;
      l != std::string::npos) {
    return {std::stoll(gguf_name.substr(4, l - 4)), gguf_name};
  }
  return {int64_t{1} << 40, gguf_name};
}

// llama.cpp's rotary layout pairs dims (2i, 2i+1) of a head; HF pairs (i, i + d/2). Converting
// to arch llama reorders the rows of Q and K (and their biases) so the GGUF uses the former:
// new row h*d + 2i + j = old row h*d + j*d/2 + i.
int64_t permuted_source_row(int64_t row, int64_t head_dim) {
  const int64_t h = row / head_dim, r = row % head_dim;
  const int64_t i = r / 2, j = r % 2;
  return h * head_dim + j * (head_dim / 2) + i;
}

}  // namespace

Result<HfConvertResult> convert_hf_to_gguf(const std::string& dir, const std::string& output,
                                           const HfConvertOptions& opt) {
  if (opt.type != TensorType::F32 && opt.type != TensorType::F16 && opt.type != TensorType::BF16 &&
      opt.type != TensorType::Q8_0) {
    return Error{fmt::format("convert: output type {} is not supported (f32, f16, bf16, q8_0)",
                             tensor_type_name(opt.type))};
  }
  if (!is_hf_model_dir(dir)) {
    return Error{dir + ": not a Hugging Face model folder (no config.json)"};
  }
  // Loading the folder first checks everything (config, tokenizer, every tensor's shape and
  // dtype) before a byte is written.
  auto model = Model::load(dir);
  if (!model.ok()) return model.error();
  const ModelConfig& mc = (*model)->config();
  auto cfg = hf::read_config(dir);
  if (!cfg.ok()) return cfg.error();
  auto set = SafetensorsSet::open_dir(dir);
  if (!set.ok()) return set.error();

  HfConvertResult res;
  res.input = dir;
  res.output = output;
  res.hf_arch = cfg->hf_arch;
  res.arch = cfg->arch;
  res.type = opt.type;
  res.input_bytes = set->total_bytes();
  res.permuted_qk = cfg->arch == "llama";

  GgufWriter w;
  if (auto r = hf::write_arch_metadata(*cfg, w); !r.ok()) return r.error();
  w.set_u32("general.file_type", file_type_of(opt.type));
  if (opt.type == TensorType::Q8_0) w.set_u32("general.quantization_version", 2);
  if (auto r = hf::write_tokenizer_metadata(dir, *cfg, w); !r.ok()) return r.error();

  struct Item {
    std::string gguf;
    const SafetensorsTensor* t;
  };
  std::vector<Item> items;
  for (const SafetensorsTensor* t : set->tensors()) {
    if (hf::ignored_hf_tensor(t->name)) continue;
    auto g = hf::gguf_name_of(t->name);
    if (!g) return Error{fmt::format("{}: tensor '{}' has no GGUF name", dir, t->name)};
    items.push_back({*g, t});
  }
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return order_key(a.gguf) < order_key(b.gguf); });

  const int total = static_cast<int>(items.size());
  int done = 0;
  for (const Item& it : items) {
    auto view = hf::view_of(*it.t, dir);
    if (!view.ok()) return view.error();
    const TensorView v = *view;
    const int64_t n_in = v.ne[0], rows = v.ne[1];
    TensorType out = v.n_dims == 1 ? TensorType::F32 : opt.type;
    if (out == TensorType::Q8_0 && n_in % 32 != 0) out = TensorType::F16;
    std::vector<int64_t> shape = {n_in};
    if (v.n_dims == 2) shape.push_back(rows);
    // Q/K rows (or bias elements) to permute, with the head size.
    const bool is_q = it.gguf.find(".attn_q.") != std::string::npos;
    const bool is_k = it.gguf.find(".attn_k.") != std::string::npos;
    const bool permute = res.permuted_qk && (is_q || is_k);
    const int64_t head_dim = mc.head_dim;
    const std::string name = it.gguf;
    auto fill = [v, out, permute, head_dim, name, &opt, &done,
                 total](uint8_t* dst) -> Result<void> {
      const ops::TypeTraits* src_t = ops::type_traits(v.type);
      const ops::TypeTraits* dst_t = ops::type_traits(out);
      const int64_t n_in = v.ne[0], rows = v.ne[1];
      const size_t src_row = tensor_row_bytes(v.type, n_in), dst_row = tensor_row_bytes(out, n_in);
      std::vector<float> tmp(static_cast<size_t>(n_in));
      if (v.n_dims == 1) {  // F32 vector (a bias may need its elements permuted)
        src_t->to_float(v.data, tmp.data(), n_in);
        float* o = reinterpret_cast<float*>(dst);
        for (int64_t i = 0; i < n_in; ++i) {
          o[i] = tmp[static_cast<size_t>(permute ? permuted_source_row(i, head_dim) : i)];
        }
      } else {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t from = permute ? permuted_source_row(r, head_dim) : r;
          const uint8_t* s = v.data + static_cast<size_t>(from) * src_row;
          uint8_t* d = dst + static_cast<size_t>(r) * dst_row;
          if (v.type == out) {
            std::memcpy(d, s, src_row);
            continue;
          }
          src_t->to_float(s, tmp.data(), n_in);
          dst_t->from_float(tmp.data(), d, n_in);
        }
      }
      ++done;
      if (opt.progress) opt.progress(done, total, name);
      return {};
    };
    if (auto r = w.add_tensor_deferred(it.gguf, out, shape, fill); !r.ok()) return r.error();
    ++res.n_tensors;
  }
  if (auto r = w.write_file(output); !r.ok()) return r.error();
  std::error_code ec;
  res.output_bytes = std::filesystem::file_size(output, ec);
  return res;
}

}  // namespace kandil
