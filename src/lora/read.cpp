// Reading LoRA adapters: GGUF files as llama.cpp writes them and PEFT folders.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include "kandil/gguf.h"
#include "kandil/safetensors.h"
#include "lora/adapter_impl.h"
#include "ops/quant.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace kandil::lora {
namespace {

constexpr LoraTarget kAllTargets[] = {LoraTarget::q,   LoraTarget::k,    LoraTarget::v,
                                      LoraTarget::o,   LoraTarget::gate, LoraTarget::up,
                                      LoraTarget::down};
constexpr int64_t kMaxRank = 1 << 16;
constexpr int64_t kMaxDim = 1 << 20;

// Converts n elements of a tensor type to floats (row by row for block types).
Result<std::vector<float>> to_floats(TensorType type, const uint8_t* data, int64_t rows,
                                     int64_t cols, const std::string& what) {
  const ops::TypeTraits* tr = ops::type_traits(type);
  if (tr == nullptr || tr->to_float == nullptr) {
    return Error{
        fmt::format("{}: tensor type {} cannot be read (expected F32, F16, BF16 or a "
                    "quantized type this build supports)",
                    what, tensor_type_name(type))};
  }
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const size_t row_bytes = tensor_row_bytes(type, cols);
  // Rows are copied to an aligned buffer first: file offsets need not suit the element type.
  std::vector<uint64_t> aligned((row_bytes + 7) / 8);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(aligned.data(), data + static_cast<size_t>(r) * row_bytes, row_bytes);
    tr->to_float(reinterpret_cast<const uint8_t*>(aligned.data()), out.data() + r * cols, cols);
  }
  for (float v : out) {
    if (!std::isfinite(v)) return Error{what + ": holds a non-finite value"};
  }
  return out;
}

void fill_info(RawAdapter& r) {
  LoraInfo& info = r.info;
  std::sort(r.pairs.begin(), r.pairs.end(), [](const RawPair& x, const RawPair& y) {
    return x.layer != y.layer ? x.layer < y.layer : x.target < y.target;
  });
  bool seen[kNumLoraTargets] = {};
  info.rank_min = info.rank_max = 0;
  for (const RawPair& p : r.pairs) {
    seen[static_cast<int>(p.target)] = true;
    const auto rank = static_cast<int32_t>(p.rank);
    info.rank_min = info.rank_min == 0 ? rank : std::min(info.rank_min, rank);
    info.rank_max = std::max(info.rank_max, rank);
    info.n_layers = std::max(info.n_layers, p.layer + 1);
    info.n_params += p.rank * (p.n_in + p.n_out);
  }
  info.n_pairs = static_cast<int64_t>(r.pairs.size());
  for (LoraTarget t : kAllTargets) {
    if (seen[static_cast<int>(t)]) info.targets.emplace_back(lora_target_peft_name(t));
  }
}

// Pairs A and B halves collected by (layer, target); both must be present with matching ranks.
struct Halves {
  std::optional<RawPair> a, b;  // a: rank, n_in, a; b: rank, n_out, b
};

// Files one tensor (A or B, as `is_a` says) of a pair; a second A or B is an error.
Result<void> store_half(Halves& h, bool is_a, RawPair half, std::vector<float> values, int64_t rows,
                        int64_t cols, const std::string& where) {
  std::optional<RawPair>& slot = is_a ? h.a : h.b;
  if (slot) return Error{where + ": duplicate tensor"};
  if (is_a) {
    half.n_in = cols;
    half.a = std::move(values);
  } else {
    half.n_out = rows;
    half.b = std::move(values);
  }
  slot = std::move(half);
  return {};
}

Result<std::vector<RawPair>> join_halves(std::map<std::pair<int32_t, int>, Halves>& halves,
                                         const std::string& file) {
  std::vector<RawPair> pairs;
  for (auto& [key, h] : halves) {
    const std::string where =
        fmt::format("{}: layer {} {}", file, key.first,
                    lora_target_peft_name(static_cast<LoraTarget>(key.second)));
    if (!h.a) return Error{where + ": lora_B has no matching lora_A"};
    if (!h.b) return Error{where + ": lora_A has no matching lora_B"};
    if (h.a->rank != h.b->rank) {
      return Error{fmt::format("{}: lora_A has rank {} but lora_B has rank {}", where, h.a->rank,
                               h.b->rank)};
    }
    RawPair p = std::move(*h.a);
    p.n_out = h.b->n_out;
    p.b = std::move(h.b->b);
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) return Error{file + ": the adapter has no LoRA tensors"};
  return pairs;
}

std::optional<LoraTarget> target_from_gguf(std::string_view name) {
  for (LoraTarget t : kAllTargets) {
    if (lora_target_gguf_name(t) == name) return t;
  }
  return std::nullopt;
}

std::optional<LoraTarget> target_from_peft(std::string_view name) {
  for (LoraTarget t : kAllTargets) {
    if (lora_target_peft_name(t) == name) return t;
  }
  return std::nullopt;
}

// Parses a decimal layer index at the start of s (advancing it); nullopt if none or too large.
std::optional<int32_t> parse_index(std::string_view& s) {
  int64_t v = 0;
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 7) v = v * 10 + (s[i++] - '0');
  if (i == 0 || (i < s.size() && s[i] >= '0' && s[i] <= '9')) return std::nullopt;
  s.remove_prefix(i);
  return static_cast<int32_t>(v);
}

bool consume(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::pair<int64_t, int64_t> target_dims(const ModelConfig& c, LoraTarget t) {
  const int64_t E = c.n_embd, q = int64_t{c.n_head} * c.head_dim,
                kv = int64_t{c.n_head_kv} * c.head_dim;
  switch (t) {
    case LoraTarget::q:
      return {E, q};
    case LoraTarget::k:
    case LoraTarget::v:
      return {E, kv};
    case LoraTarget::o:
      return {q, E};
    case LoraTarget::gate:
    case LoraTarget::up:
      return {E, c.n_ff};
    case LoraTarget::down:
      return {c.n_ff, E};
  }
  return {0, 0};
}

void permute_rows_for_adjacent_rope(std::vector<float>& m, int64_t n_rows, int64_t cols,
                                    int64_t head_dim) {
  std::vector<float> out(m.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_rows / head_dim; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t dst = h * head_dim + 2 * j + s, src = h * head_dim + s * half + j;
        std::memcpy(out.data() + dst * cols, m.data() + src * cols,
                    static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
  m = std::move(out);
}

float alpha_factor(float alpha, bool rslora, int64_t rank) {
  if (alpha == 0.0f) return 1.0f;
  const auto r = static_cast<float>(rank);
  return rslora ? alpha / std::sqrt(r) : alpha / r;
}

Result<RawAdapter> read_gguf_adapter(const std::string& path) {
  auto opened = GgufFile::open(path);
  if (!opened.ok()) return opened.error();
  return read_gguf_adapter(*opened);
}

Result<RawAdapter> read_gguf_adapter(const GgufFile& f) {
  const std::string& path = f.name();
  RawAdapter r;
  r.info.path = path;
  r.info.format = "gguf";
  auto type = f.get_string("general.type");
  if (!type.ok()) return type.error();
  if (!type->has_value() || **type != "adapter") {
    return Error{
        fmt::format("{}: not a LoRA adapter (general.type is '{}', expected 'adapter'): "
                    "is this a base model?",
                    path, type->has_value() ? std::string(**type) : "absent")};
  }
  auto atype = f.get_string("adapter.type");
  if (!atype.ok()) return atype.error();
  if (!atype->has_value() || **atype != "lora") {
    return Error{fmt::format("{}: adapter.type is '{}'; only 'lora' adapters are supported", path,
                             atype->has_value() ? std::string(**atype) : "absent")};
  }
  if (auto arch = f.get_string("general.architecture"); arch.ok() && arch->has_value()) {
    r.info.arch = std::string(**arch);
  }
  auto alpha = f.get_float("adapter.lora.alpha");
  if (!alpha.ok()) return alpha.error();
  if (alpha->has_value()) {
    if (!std::isfinite(**alpha) || **alpha < 0) {
      return Error{fmt::format("{}: adapter.lora.alpha is {} (expected a finite number >= 0)", path,
                               **alpha)};
    }
    r.info.alpha = static_cast<float>(**alpha);
  }

  std::map<std::pair<int32_t, int>, Halves> halves;
  for (const GgufTensorInfo& t : f.tensors()) {
    std::string_view s = t.name;
    const std::string where = fmt::format("{}: tensor '{}'", path, t.name);
    std::optional<int32_t> layer;
    if (!consume(s, "blk.") || !(layer = parse_index(s)) || !consume(s, ".")) {
      return Error{where +
                   ": not a LoRA tensor of a block (expected blk.N.<weight>.weight.lora_a "
                   "or .lora_b); LoRA on embeddings or the output head is not supported"};
    }
    const size_t dot = s.find('.');
    const auto target = target_from_gguf(s.substr(0, dot));
    if (!target) {
      return Error{
          fmt::format("{}: LoRA on '{}' is not supported (supported: attn_q, attn_k, "
                      "attn_v, attn_output, ffn_gate, ffn_up, ffn_down)",
                      where, s.substr(0, dot))};
    }
    s.remove_prefix(dot == std::string_view::npos ? s.size() : dot);
    const bool is_a = s == ".weight.lora_a", is_b = s == ".weight.lora_b";
    if (!is_a && !is_b)
      return Error{where + ": expected a name ending in .weight.lora_a or .lora_b"};
    if (t.n_dims != 2) return Error{where + ": expected a 2-D tensor"};
    // ggml order: A is ne [n_in, rank], B is ne [rank, n_out].
    RawPair half;
    half.layer = *layer;
    half.target = *target;
    const int64_t rows = t.ne[1], cols = t.ne[0];
    half.rank = is_a ? rows : cols;
    if (half.rank < 1 || half.rank > kMaxRank || rows < 1 || cols < 1 || rows > kMaxDim ||
        cols > kMaxDim) {
      return Error{fmt::format("{}: shape [{}, {}] is out of range (rank 1..{})", where, cols, rows,
                               kMaxRank)};
    }
    auto values = to_floats(t.type, t.data, rows, cols, where);
    if (!values.ok()) return values.error();
    KANDIL_CHECK_OK(store_half(halves[{*layer, static_cast<int>(*target)}], is_a, std::move(half),
                               std::move(*values), rows, cols, where));
  }
  auto pairs = join_halves(halves, path);
  if (!pairs.ok()) return pairs.error();
  r.pairs = std::move(*pairs);
  fill_info(r);
  return r;
}

Result<RawAdapter> read_peft_adapter(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  auto text = read_text(config_path);
  if (!text.ok()) return text.error();
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    return Error{fmt::format("{}: invalid JSON: {}", config_path, e.what())};
  }
  if (!cfg.is_object()) return Error{config_path + ": expected a JSON object"};
  RawAdapter r;
  r.info.path = dir;
  r.info.format = "peft";
  r.hf_row_order = true;
  auto field_error = [&](const std::string& key, const std::string& expected) {
    return Error{fmt::format("{}: field '{}' {}", config_path, key, expected)};
  };
  // Features that change the math beyond y = Wx + s·B·A·x are rejected, not ignored.
  if (cfg.contains("peft_type") && cfg["peft_type"] != "LORA") {
    return field_error("peft_type", "is " + cfg["peft_type"].dump() + "; only LORA is supported");
  }
  if (cfg.contains("use_dora") && cfg["use_dora"] == true) {
    return field_error("use_dora", "is true: DoRA adapters are not supported");
  }
  if (cfg.contains("modules_to_save") && !cfg["modules_to_save"].is_null() &&
      !cfg["modules_to_save"].empty()) {
    return field_error("modules_to_save",
                       "lists fully trained modules (" + cfg["modules_to_save"].dump() +
                           "): adapters that replace whole modules are not supported");
  }
  if (cfg.contains("bias") && cfg["bias"] != "none") {
    return field_error("bias", "is " + cfg["bias"].dump() + ": trained biases are not supported");
  }
  if (cfg.contains("lora_bias") && cfg["lora_bias"] == true) {
    return field_error("lora_bias", "is true: LoRA biases are not supported");
  }
  if (cfg.contains("alpha_pattern") && cfg["alpha_pattern"].is_object() &&
      !cfg["alpha_pattern"].empty()) {
    return field_error("alpha_pattern", "is not empty: per-module alpha is not supported");
  }
  if (!cfg.contains("r") || !cfg["r"].is_number_integer() || cfg["r"].get<int64_t>() < 1 ||
      cfg["r"].get<int64_t>() > kMaxRank) {
    return field_error("r", fmt::format("must be an integer in 1..{}", kMaxRank));
  }
  if (!cfg.contains("lora_alpha") || !cfg["lora_alpha"].is_number() ||
      !std::isfinite(cfg["lora_alpha"].get<double>()) || cfg["lora_alpha"].get<double>() <= 0) {
    return field_error("lora_alpha", "must be a positive number");
  }
  r.info.alpha = cfg["lora_alpha"].get<float>();
  if (cfg.contains("use_rslora")) {
    if (!cfg["use_rslora"].is_boolean()) return field_error("use_rslora", "must be a boolean");
    r.info.rslora = cfg["use_rslora"].get<bool>();
  }
  if (cfg.contains("fan_in_fan_out") && !cfg["fan_in_fan_out"].is_boolean()) {
    return field_error("fan_in_fan_out", "must be a boolean");
  }
  if (cfg.contains("base_model_name_or_path") && cfg["base_model_name_or_path"].is_string()) {
    r.info.arch = cfg["base_model_name_or_path"].get<std::string>();
  }
  // target_modules: a list of module-name suffixes, "all-linear", or a regex (full match).
  std::vector<std::string> target_list;
  std::shared_ptr<pcre2_code> target_regex;
  bool all_linear = false;
  const nlohmann::json tm = cfg.contains("target_modules") ? cfg["target_modules"] : nullptr;
  {
    if (tm.is_string()) {
      if (tm == "all-linear") {
        all_linear = true;
      } else {
        // PEFT matches the string with Python's re.fullmatch; PCRE2 is the closer dialect.
        const std::string pattern = tm.get<std::string>();
        int code = 0;
        PCRE2_SIZE offset = 0;
        pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                       PCRE2_UTF, &code, &offset, nullptr);
        if (!re) {
          PCRE2_UCHAR msg[256];
          pcre2_get_error_message(code, msg, sizeof msg);
          return field_error("target_modules",
                             fmt::format("is not a valid regex (at {}: {})", offset,
                                         reinterpret_cast<const char*>(msg)));
        }
        target_regex.reset(re, pcre2_code_free);
      }
    } else if (tm.is_array()) {
      for (const auto& t : tm) {
        if (!t.is_string()) return field_error("target_modules", "must list strings");
        target_list.push_back(t.get<std::string>());
      }
    } else {
      return field_error("target_modules", "must be a list of module names or a regex string");
    }
  }
  auto targeted = [&](const std::string& module) {
    if (all_linear) return true;
    if (target_regex) {
      pcre2_match_data* md = pcre2_match_data_create_from_pattern(target_regex.get(), nullptr);
      const int rc = pcre2_match(target_regex.get(), reinterpret_cast<PCRE2_SPTR>(module.data()),
                                 module.size(), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, nullptr);
      pcre2_match_data_free(md);
      return rc >= 0;
    }
    for (const std::string& t : target_list) {
      if (module == t ||
          (module.size() > t.size() && module.compare(module.size() - t.size(), t.size(), t) == 0 &&
           module[module.size() - t.size() - 1] == '.')) {
        return true;
      }
    }
    return false;
  };

  const std::string weights_path = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(weights_path)) {
    if (fs::exists(fs::path(dir) / "adapter_model.bin")) {
      return Error{dir +
                   ": adapter_model.bin (PyTorch pickle) is not supported; save the adapter "
                   "with safe_serialization=True (adapter_model.safetensors)"};
    }
    return Error{weights_path + ": file not found"};
  }
  auto st = SafetensorsFile::open(weights_path);
  if (!st.ok()) return st.error();
  std::map<std::pair<int32_t, int>, Halves> halves;
  for (const SafetensorsTensor& t : st->tensors()) {
    std::string_view s = t.name;
    const std::string where = fmt::format("{}: tensor '{}'", weights_path, t.name);
    if (t.name.find("lora_magnitude_vector") != std::string::npos) {
      return Error{where + ": DoRA magnitude vectors are not supported"};
    }
    if (t.name.find("lora_embedding") != std::string::npos) {
      return Error{where + ": LoRA on embeddings is not supported"};
    }
    std::optional<int32_t> layer;
    if (!consume(s, "base_model.model.") || !consume(s, "model.layers.") ||
        !(layer = parse_index(s)) || !consume(s, ".")) {
      return Error{where +
                   ": not a LoRA tensor of a decoder layer (expected base_model.model."
                   "model.layers.N.{self_attn,mlp}.<x>_proj.lora_{A,B}.weight)"};
    }
    std::string_view block = consume(s, "self_attn.") ? "self_attn"
                             : consume(s, "mlp.")     ? "mlp"
                                                      : "";
    const size_t dot = s.find('.');
    const std::string_view module_name = s.substr(0, dot);
    const auto target = target_from_peft(module_name);
    const bool attn_target = target && *target <= LoraTarget::o;
    if (block.empty() || !target || attn_target != (block == "self_attn")) {
      return Error{
          fmt::format("{}: LoRA on module '{}' is not supported (supported: self_attn."
                      "{{q,k,v,o}}_proj, mlp.{{gate,up,down}}_proj)",
                      where, t.name)};
    }
    s.remove_prefix(dot == std::string_view::npos ? s.size() : dot);
    const bool is_a = s == ".lora_A.weight" || s == ".lora_A.default.weight";
    const bool is_b = s == ".lora_B.weight" || s == ".lora_B.default.weight";
    if (!is_a && !is_b) {
      return Error{where + ": expected a name ending in .lora_A.weight or .lora_B.weight"};
    }
    const std::string module = fmt::format("model.layers.{}.{}.{}", *layer, block, module_name);
    if (!targeted(module)) {
      return Error{
          fmt::format("{}: module '{}' is not in target_modules {}", where, module, tm.dump())};
    }
    if (t.shape.size() != 2) return Error{where + ": expected a 2-D tensor"};
    const auto tt = safetensors_to_tensor_type(t.dtype);
    if (!tt) {
      return Error{fmt::format("{}: dtype {} (expected F32, F16 or BF16)", where,
                               safetensors_dtype_name(t.dtype))};
    }
    // PyTorch order: A is [rank, n_in], B is [n_out, rank].
    const int64_t rows = t.shape[0], cols = t.shape[1];
    RawPair half;
    half.layer = *layer;
    half.target = *target;
    half.rank = is_a ? rows : cols;
    if (half.rank < 1 || half.rank > kMaxRank || rows < 1 || cols < 1 || rows > kMaxDim ||
        cols > kMaxDim) {
      return Error{fmt::format("{}: shape [{}, {}] is out of range", where, rows, cols)};
    }
    auto values = to_floats(*tt, t.data, rows, cols, where);
    if (!values.ok()) return values.error();
    KANDIL_CHECK_OK(store_half(halves[{*layer, static_cast<int>(*target)}], is_a, std::move(half),
                               std::move(*values), rows, cols, where));
  }
  auto pairs = join_halves(halves, weights_path);
  if (!pairs.ok()) return pairs.error();
  r.pairs = std::move(*pairs);
  fill_info(r);
  return r;
}

Result<RawAdapter> read_adapter(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return read_peft_adapter(path);
  return read_gguf_adapter(path);
}

}  // namespace kandil::lora
