// config.json of a Hugging Face model folder -> HfConfig -> GGUF architecture metadata.
#include <fmt/core.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/hf_internal.h"

namespace kandil::hf {
namespace {

using nlohmann::json;

struct Arch {
  std::string_view hf;    // architectures[0]
  std::string_view gguf;  // general.architecture
};
constexpr Arch kArchs[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "llama"},
    {"Qwen2ForCausalLM", "qwen2"},
    {"Qwen3ForCausalLM", "qwen3"},
};

class Reader {
 public:
  Reader(const json& j, const std::string& file) : j_(j), file_(file) {}

  Error error(std::string_view key, std::string_view what) const {
    return Error{fmt::format("{}: key '{}' {}", file_, key, what)};
  }

  // An integer in [lo, hi]; `fallback` when absent or null (nullopt: required).
  Result<int64_t> integer(const char* key, std::optional<int64_t> fallback, int64_t lo,
                          int64_t hi) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (!fallback) return error(key, "is missing (required)");
      return *fallback;
    }
    if (!it->is_number_integer()) {
      return error(key, fmt::format("must be an integer, got {}", it->dump()));
    }
    const int64_t v = it->get<int64_t>();
    if (v < lo || v > hi) return error(key, fmt::format("is {} (expected {}..{})", v, lo, hi));
    return v;
  }

  Result<double> real(const char* key, double fallback, bool positive = true) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_number()) return error(key, fmt::format("must be a number, got {}", it->dump()));
    const double v = it->get<double>();
    if (!std::isfinite(v) || (positive && v <= 0)) {
      return error(key, fmt::format("is {} (expected a positive finite number)", it->dump()));
    }
    return v;
  }

  Result<bool> boolean(const char* key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean())
      return error(key, fmt::format("must be true or false, got {}", it->dump()));
    return it->get<bool>();
  }

 private:
  const json& j_;
  const std::string& file_;
};

#define KANDIL_TRY(lhs, expr)                      \
  do {                                             \
    auto kandil_v_ = (expr);                       \
    if (!kandil_v_.ok()) return kandil_v_.error(); \
    lhs = *kandil_v_;                              \
  } while (0)

Result<void> parse_rope_scaling(const json& j, const std::string& file, HfConfig& c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_object()) {
    return Error{fmt::format("{}: key 'rope_scaling' must be an object or null", file)};
  }
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    auto t = it->find(k);
    if (t != it->end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  const std::string sub = file + " (rope_scaling)";
  Reader r(*it, sub);
  if (type.empty() || type == "default") return {};
  if (type == "linear") {
    c.rope_type = "linear";
    KANDIL_TRY(c.rope_factor, r.real("factor", 1.0));
    return {};
  }
  if (type == "llama3") {
    c.rope_type = "llama3";
    KANDIL_TRY(c.rope_factor, r.real("factor", 8.0));
    KANDIL_TRY(c.low_freq_factor, r.real("low_freq_factor", 1.0));
    KANDIL_TRY(c.high_freq_factor, r.real("high_freq_factor", 4.0));
    KANDIL_TRY(c.original_max_position_embeddings,
               r.integer("original_max_position_embeddings", 8192, 1, int64_t{1} << 24));
    if (c.high_freq_factor <= c.low_freq_factor) {
      return Error{fmt::format("{}: high_freq_factor {} must exceed low_freq_factor {}", sub,
                               c.high_freq_factor, c.low_freq_factor)};
    }
    return {};
  }
  return Error{fmt::format(
      "{}: key 'rope_scaling' has type '{}', which is not supported (supported: linear, llama3)",
      file, type)};
}

}  // namespace

namespace {
Result<HfConfig> parse_config_impl(std::string_view text, const std::string& file) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{file + ": not valid JSON"};
  if (!j.is_object()) return Error{file + ": expected a JSON object at the top level"};
  HfConfig c;
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return Error{file + ": key 'architectures' must be a non-empty list of names"};
  }
  c.hf_arch = (*archs)[0].get<std::string>();
  for (const auto& a : kArchs) {
    if (a.hf == c.hf_arch) c.arch = std::string(a.gguf);
  }
  if (c.arch.empty()) {
    std::string list;
    for (const auto& a : kArchs) list += (list.empty() ? "" : ", ") + std::string(a.hf);
    return Error{fmt::format("{}: architecture '{}' is not supported (supported: {})", file,
                             c.hf_arch, list)};
  }
  if (auto n = j.find("_name_or_path"); n != j.end() && n->is_string()) {
    c.name = n->get<std::string>();
  }

  Reader r(j, file);
  constexpr int64_t kMaxDim = 1 << 20;
  KANDIL_TRY(c.vocab_size, r.integer("vocab_size", std::nullopt, 1, 1 << 24));
  KANDIL_TRY(c.hidden_size, r.integer("hidden_size", std::nullopt, 1, kMaxDim));
  KANDIL_TRY(c.intermediate_size, r.integer("intermediate_size", std::nullopt, 1, kMaxDim));
  KANDIL_TRY(c.n_layer, r.integer("num_hidden_layers", std::nullopt, 1, 4096));
  KANDIL_TRY(c.n_head, r.integer("num_attention_heads", std::nullopt, 1, 4096));
  KANDIL_TRY(c.n_head_kv, r.integer("num_key_value_heads", c.n_head, 1, c.n_head));
  if (c.n_head % c.n_head_kv != 0) {
    return Error{
        fmt::format("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", file,
                    c.n_head, c.n_head_kv)};
  }
  // Qwen3's config class defaults head_dim to 128; the others derive it.
  std::optional<int64_t> default_head_dim;
  if (c.arch == "qwen3") {
    default_head_dim = 128;
  } else if (c.hidden_size % c.n_head == 0) {
    default_head_dim = c.hidden_size / c.n_head;
  }
  KANDIL_TRY(c.head_dim, r.integer("head_dim", default_head_dim, 2, 65536));
  if (c.head_dim % 2 != 0) return r.error("head_dim", "must be even (RoPE rotates pairs)");
  c.explicit_head_dim = c.head_dim * c.n_head != c.hidden_size;
  KANDIL_TRY(c.max_position_embeddings,
             r.integer("max_position_embeddings", 2048, 1, int64_t{1} << 24));
  KANDIL_TRY(c.rms_norm_eps, r.real("rms_norm_eps", 1e-6));
  KANDIL_TRY(c.rope_theta, r.real("rope_theta", 10000.0));
  KANDIL_TRY(c.tie_word_embeddings, r.boolean("tie_word_embeddings", false));
  if (auto v = parse_rope_scaling(j, file, c); !v.ok()) return v.error();

  if (c.hf_arch == "MistralForCausalLM") {
    KANDIL_TRY(c.sliding_window, r.integer("sliding_window", 0, 0, int64_t{1} << 24));
  } else if (c.arch == "qwen2" || c.arch == "qwen3") {
    bool use_swa = false;
    KANDIL_TRY(use_swa, r.boolean("use_sliding_window", false));
    if (use_swa) {
      return r.error("use_sliding_window",
                     "is true: Qwen's per-layer sliding window (max_window_layers) is not "
                     "supported");
    }
  }
  if (c.arch == "qwen2") {
    c.attention_bias = true;  // Qwen2's q/k/v projections always have a bias
  } else {
    KANDIL_TRY(c.attention_bias, r.boolean("attention_bias", false));
  }
  c.qk_norm = c.arch == "qwen3";
  // Fallbacks for tokenizer_config.json's special tokens; lists and ids outside the vocabulary
  // (seen in the wild) are left to the tokenizer files.
  for (const char* key : {"bos_token_id", "eos_token_id"}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) continue;
    const int64_t id = it->get<int64_t>();
    if (id < 0 || id >= c.vocab_size) continue;
    (std::string_view(key) == "bos_token_id" ? c.bos_token_id : c.eos_token_id) = id;
  }
  return c;
}

}  // namespace

Result<HfConfig> parse_config(std::string_view text, const std::string& file) {
  try {
    return parse_config_impl(text, file);
  } catch (const nlohmann::json::exception& e) {  // defensive: every access is checked
    return Error{fmt::format("{}: {}", file, e.what())};
  }
}

Result<HfConfig> read_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open (a Hugging Face model folder needs config.json)"};
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str(), path);
  if (c.ok() && c->name.empty()) {
    c->name = std::filesystem::path(dir).lexically_normal().filename().string();
    if (c->name.empty()) c->name = std::filesystem::path(dir).parent_path().filename().string();
  }
  return c;
}

std::vector<float> llama3_rope_factors(const HfConfig& c) {
  const double low_wavelen =
      static_cast<double>(c.original_max_position_embeddings) / c.low_freq_factor;
  const double high_wavelen =
      static_cast<double>(c.original_max_position_embeddings) / c.high_freq_factor;
  std::vector<float> factors;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const double freq =
        1.0 / std::pow(c.rope_theta, static_cast<double>(i) / static_cast<double>(c.head_dim));
    const double wavelen = 2.0 * M_PI / freq;
    double f = 1.0;
    if (wavelen > low_wavelen) {
      f = c.rope_factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth =
          (static_cast<double>(c.original_max_position_embeddings) / wavelen - c.low_freq_factor) /
          (c.high_freq_factor - c.low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / c.rope_factor + smooth);
    }
    factors.push_back(static_cast<float>(f));
  }
  return factors;
}

Result<void> write_arch_metadata(const HfConfig& c, GgufWriter& w) {
  const std::string a = c.arch + ".";
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.set_string("general.architecture", c.arch);
  w.set_string("general.name", c.name);
  w.set_u32(a + "vocab_size", u32(c.vocab_size));
  w.set_u32(a + "context_length", u32(c.max_position_embeddings));
  w.set_u32(a + "embedding_length", u32(c.hidden_size));
  w.set_u32(a + "block_count", u32(c.n_layer));
  w.set_u32(a + "feed_forward_length", u32(c.intermediate_size));
  w.set_u32(a + "rope.dimension_count", u32(c.head_dim));
  w.set_u32(a + "attention.head_count", u32(c.n_head));
  w.set_u32(a + "attention.head_count_kv", u32(c.n_head_kv));
  w.set_f32(a + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (c.explicit_head_dim || c.arch == "qwen3") {
    w.set_u32(a + "attention.key_length", u32(c.head_dim));
    w.set_u32(a + "attention.value_length", u32(c.head_dim));
  }
  if (c.sliding_window > 0) w.set_u32(a + "attention.sliding_window", u32(c.sliding_window));
  if (c.rope_type == "linear") {
    w.set_string(a + "rope.scaling.type", "linear");
    w.set_f32(a + "rope.scaling.factor", static_cast<float>(c.rope_factor));
  } else if (c.rope_type == "llama3") {
    const std::vector<float> f = llama3_rope_factors(c);
    auto r = w.add_tensor("rope_freqs.weight", TensorType::F32, {static_cast<int64_t>(f.size())},
                          f.data(), f.size() * sizeof(float));
    if (!r.ok()) return r.error();
  }
  return {};
}

}  // namespace kandil::hf
