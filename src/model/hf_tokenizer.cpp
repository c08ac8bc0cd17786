// tokenizer.json (+ tokenizer_config.json) -> tokenizer.ggml.* metadata, as llama.cpp's
// converter writes it. One function serves `kandil convert` and the direct loading of a folder
// (which parses the metadata with Tokenizer::from_gguf), so a native tokenizer.json
// implementation can replace it in one place.
#include <fmt/core.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kandil/tokenizer.h"
#include "model/hf_internal.h"

namespace kandil::hf {
namespace {

using nlohmann::json;

// j[key] as a string / bool; `fallback` when absent or of another type (json::value() throws).
std::string str_of(const json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}
bool bool_of(const json& j, const char* key, bool fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

Result<json> read_json(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (required) return Error{path + ": cannot open"};
    return json();  // null: absent
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{path + ": not valid JSON"};
  if (!j.is_object()) return Error{path + ": expected a JSON object at the top level"};
  return j;
}

// Every Split regex of the pre-tokenizer (a single one or inside a Sequence), and whether a
// ByteLevel step splits with its own (GPT-2) regex.
void collect_pre(const json& p, std::vector<std::string>& regexes, bool& byte_level_regex,
                 bool& byte_level) {
  if (!p.is_object()) return;
  const std::string type = str_of(p, "type");
  if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    for (const auto& q : p["pretokenizers"]) collect_pre(q, regexes, byte_level_regex, byte_level);
  } else if (type == "Split" && p.contains("pattern") && p["pattern"].is_object()) {
    const json& pat = p["pattern"];
    if (pat.contains("Regex") && pat["Regex"].is_string()) regexes.push_back(pat["Regex"]);
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (bool_of(p, "use_regex", true)) byte_level_regex = true;
  }
}

// llama.cpp identifies a pre-tokenizer by hashing the tokens of a test text; without a Python
// tokenizer at hand, the regexes themselves tell the known families apart.
Result<std::string> pre_tokenizer_name(const json& tok, const std::string& file) {
  std::vector<std::string> regexes;
  bool byte_level_regex = false, byte_level = false;
  if (tok.contains("pre_tokenizer"))
    collect_pre(tok["pre_tokenizer"], regexes, byte_level_regex, byte_level);
  if (!byte_level) {
    return Error{file + ": pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)"};
  }
  if (regexes.empty() && byte_level_regex) return std::string("gpt-2");
  if (regexes.size() == 1) {
    const std::string& r = regexes[0];
    const bool letters = r.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+") != std::string::npos;
    if (letters && r.find("\\p{N}{1,3}") != std::string::npos) return std::string("llama-bpe");
    if (letters && r.find("\\p{L}+|\\p{N}|") != std::string::npos) return std::string("qwen2");
  }
  std::string list;
  for (const auto& r : regexes) list += (list.empty() ? "" : ", ") + r;
  return Error{fmt::format(
      "{}: the pre-tokenizer regex ({}) is not one of the known families (llama-bpe, qwen2, gpt-2)",
      file, list.empty() ? "none" : list)};
}

// tokenizer_config.json's "bos_token" etc.: a string or {"content": "..."}.
std::optional<std::string> special_text(const json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return std::nullopt;
}

// Whether the post-processor prepends a special token to a single sequence (LLaMA 3's BOS).
bool post_processor_adds_bos(const json& p) {
  if (!p.is_object()) return false;
  const std::string type = str_of(p, "type");
  if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const auto& q : p["processors"]) {
      if (post_processor_adds_bos(q)) return true;
    }
    return false;
  }
  if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array() ||
      p["single"].empty()) {
    return false;
  }
  return p["single"][0].is_object() && p["single"][0].contains("SpecialToken");
}

}  // namespace

namespace {
Result<void> write_tokenizer_metadata_impl(const std::string& dir, const HfConfig& c,
                                           GgufWriter& w) {
  const std::string file = dir + "/tokenizer.json";
  auto tok_r = read_json(file, true);
  if (!tok_r.ok()) return tok_r.error();
  const json& tok = *tok_r;
  auto cfg_r = read_json(dir + "/tokenizer_config.json", false);
  if (!cfg_r.ok()) return cfg_r.error();
  const json& cfg = *cfg_r;

  if (!tok.contains("model") || !tok["model"].is_object()) {
    return Error{file + ": key 'model' is missing or not an object"};
  }
  const json& model = tok["model"];
  const std::string type = str_of(model, "type");
  if (type != "BPE") {
    return Error{fmt::format("{}: model type '{}' is not supported (supported: byte-level BPE)",
                             file, type)};
  }
  if (bool_of(model, "byte_fallback", false)) {
    return Error{file +
                 ": SentencePiece-style BPE (byte_fallback) is not supported yet; only byte-level "
                 "BPE tokenizers convert"};
  }
  auto pre = pre_tokenizer_name(tok, file);
  if (!pre.ok()) return pre.error();

  // Vocabulary: model.vocab plus added_tokens, by id; holes and the padding up to the embedding
  // rows become unused [PADi] tokens.
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return Error{file + ": key 'model.vocab' is missing or not an object"};
  }
  const int64_t n_vocab = c.vocab_size;
  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int32_t> types(static_cast<size_t>(n_vocab), static_cast<int32_t>(TokenKind::unused));
  std::vector<bool> seen(static_cast<size_t>(n_vocab), false);
  auto place = [&](const std::string& text, const json& id_json, TokenKind kind) -> Result<void> {
    if (!id_json.is_number_integer()) {
      return Error{fmt::format("{}: token '{}' has a non-integer id", file, text)};
    }
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= n_vocab) {
      return Error{fmt::format("{}: token '{}' has id {}, outside the model's vocab_size {}", file,
                               text, id, n_vocab)};
    }
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = static_cast<int32_t>(kind);
    seen[static_cast<size_t>(id)] = true;
    return {};
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (auto r = place(text, id, TokenKind::normal); !r.ok()) return r;
  }
  std::map<std::string, int64_t> added;
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array()) {
    for (const auto& a : tok["added_tokens"]) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
          !a.contains("id")) {
        return Error{file + ": an entry of 'added_tokens' lacks 'content' or 'id'"};
      }
      const std::string text = a["content"];
      const TokenKind kind =
          bool_of(a, "special", false) ? TokenKind::control : TokenKind::user_defined;
      if (auto r = place(text, a["id"], kind); !r.ok()) return r;
      added[text] = a["id"].get<int64_t>();
    }
  }
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (!seen[static_cast<size_t>(i)]) tokens[static_cast<size_t>(i)] = fmt::format("[PAD{}]", i);
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs.
  std::vector<std::string> merges;
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return Error{file + ": key 'model.merges' is missing or not a list"};
  }
  for (const auto& m : model["merges"]) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return Error{
          fmt::format("{}: merge #{} is neither \"a b\" nor [\"a\", \"b\"]", file, merges.size())};
    }
  }

  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", *pre);
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_strings("tokenizer.ggml.merges", merges);

  // Special ids: tokenizer_config.json's texts, else config.json's ids.
  auto id_of = [&](const char* key) -> std::optional<int64_t> {
    auto text = special_text(cfg, key);
    if (!text) return std::nullopt;
    if (auto it = added.find(*text); it != added.end()) return it->second;
    if (model["vocab"].contains(*text) && model["vocab"][*text].is_number_integer()) {
      return model["vocab"][*text].get<int64_t>();
    }
    return std::nullopt;
  };
  std::optional<int64_t> bos = id_of("bos_token"), eos = id_of("eos_token"),
                         pad = id_of("pad_token");
  if (!bos) bos = c.bos_token_id;
  if (!eos) eos = c.eos_token_id;
  if (bos) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*bos));
  if (eos) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*eos));
  if (pad) w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*pad));
  bool add_bos = false;
  if (cfg.is_object() && cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    add_bos = cfg["add_bos_token"].get<bool>();
  } else if (tok.contains("post_processor")) {
    add_bos = post_processor_adds_bos(tok["post_processor"]);
  }
  w.set_bool("tokenizer.ggml.add_bos_token", add_bos && bos.has_value());
  if (cfg.is_object() && cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
    w.set_bool("tokenizer.ggml.add_eos_token", cfg["add_eos_token"].get<bool>());
  }
  if (cfg.is_object() && cfg.contains("chat_template")) {
    const json& t = cfg["chat_template"];
    if (t.is_string()) {
      w.set_string("tokenizer.chat_template", t.get<std::string>());
    } else if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const auto& e : t) {
        if (e.is_object() && str_of(e, "name") == "default" && e.contains("template") &&
            e["template"].is_string()) {
          w.set_string("tokenizer.chat_template", e["template"].get<std::string>());
        }
      }
    }
  }
  return {};
}

}  // namespace

Result<void> write_tokenizer_metadata(const std::string& dir, const HfConfig& c, GgufWriter& w) {
  try {
    return write_tokenizer_metadata_impl(dir, c, w);
  } catch (const nlohmann::json::exception& e) {  // defensive: every access above is checked
    return Error{fmt::format("{}/tokenizer.json: {}", dir, e.what())};
  }
}

}  // namespace kandil::hf
