// ChatTemplate (include/kandil/chat_template.h): parse / render around the Jinja-subset
// interpreter, and the readers of templates in GGUF metadata and HF tokenizer_config.json.
#include "kandil/chat_template.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_eval.h"

namespace kandil {
namespace {

Error template_error(const std::string& name, const jinja::JinjaError& e) {
  std::string where = name;
  if (e.line > 0) {
    where += ':';
    where += std::to_string(e.line);
  }
  return make_error(where + ": " + e.what());
}

template <class Json>
jinja::Value to_value(const Json& j, int depth) {
  using jinja::Value;
  if (depth > 512) throw jinja::JinjaError("template variables nest too deeply", 0);
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return Value::null();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.template get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::number(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float: {
      // JavaScript has one number type: integral values are integers there.
      const double d = j.template get<double>();
      if (std::isfinite(d) && std::fmod(d, 1.0) == 0 && std::fabs(d) < 9.2e18) {
        return Value::integer(static_cast<int64_t>(d));
      }
      return Value::number(d);
    }
    case nlohmann::json::value_t::string:
      return Value::string(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      jinja::Array items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(to_value(x, depth + 1));
      return Value::array(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value o = Value::object();
      for (auto it = j.begin(); it != j.end(); ++it) {
        o.obj->set(it.key(), to_value(it.value(), depth + 1));
      }
      return o;
    }
    case nlohmann::json::value_t::binary:
      break;
  }
  return Value::undefined();
}

template <class Json>
Result<std::string> render_json(const std::string& name, const jinja::Program& program,
                                const Json& variables, const ChatTemplateLimits& limits) {
  if (!variables.is_object() && !variables.is_null()) {
    return make_error(name + ": template variables must be a JSON object");
  }
  jinja::Limits l;
  l.max_steps = limits.max_steps;
  l.max_output = limits.max_output;
  l.max_items = limits.max_items;
  l.max_depth = limits.max_depth;
  l.now = limits.now;
  try {
    jinja::Object vars;
    if (variables.is_object()) vars = *to_value(variables, 0).obj;
    jinja::Interpreter interp(l);
    return interp.render(program, vars);
  } catch (const jinja::JinjaError& e) {
    return template_error(name, e);
  } catch (const std::bad_alloc&) {
    return make_error(name + ": out of memory while rendering");
  }
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string source, std::string name) {
  try {
    auto tokens = jinja::tokenize(source);
    auto program = std::make_shared<jinja::Program>(jinja::parse_tokens(tokens));
    ChatTemplate t;
    t.name_ = std::move(name);
    t.source_ = std::move(source);
    t.program_ = std::move(program);
    return t;
  } catch (const jinja::JinjaError& e) {
    return template_error(name, e);
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& variables,
                                         const ChatTemplateLimits& limits) const {
  return render_json(name_, *program_, variables, limits);
}

Result<std::string> ChatTemplate::render(const nlohmann::json& variables,
                                         const ChatTemplateLimits& limits) const {
  return render_json(name_, *program_, variables, limits);
}

std::optional<std::string> ChatTemplateInfo::find(const std::string& name) const {
  if (name.empty() || name == "default") {
    if (chat_template) return chat_template;
  }
  for (const auto& [n, t] : named) {
    if (n == name || (name.empty() && n == "default")) return t;
  }
  return std::nullopt;
}

Result<std::optional<std::string>> chat_template_from_gguf(const GgufFile& file) {
  auto s = file.get_string("tokenizer.chat_template");
  if (!s.ok()) return s.error();
  if (!*s) return std::optional<std::string>{};
  return std::optional<std::string>{std::string(**s)};
}

Result<ChatTemplateInfo> chat_template_info_from_gguf(const GgufFile& file) {
  ChatTemplateInfo info;
  auto main = chat_template_from_gguf(file);
  if (!main.ok()) return main.error();
  info.chat_template = std::move(*main);
  const std::string prefix = "tokenizer.chat_template.";
  for (const auto& kv : file.metadata()) {
    if (kv.key.size() <= prefix.size() || kv.key.compare(0, prefix.size(), prefix) != 0) continue;
    if (kv.value.type != GgufValueType::STRING) continue;
    info.named.emplace_back(std::string(kv.key.substr(prefix.size())), std::string(kv.value.str));
  }
  auto tokens = file.get_array("tokenizer.ggml.tokens", GgufValueType::STRING);
  if (!tokens.ok()) return tokens.error();
  auto token_text = [&](const char* key, std::string& out) -> Result<void> {
    auto id = file.get_int(key);
    if (!id.ok()) return id.error();
    if (!*id || !*tokens) return {};
    const int64_t k = **id;
    if (k < 0 || static_cast<uint64_t>(k) >= (*tokens)->strings.size()) {
      return make_error(file.name() + ": " + key + " = " + std::to_string(k) +
                        " is outside the vocabulary");
    }
    out = std::string((*tokens)->strings[static_cast<size_t>(k)]);
    return {};
  };
  KANDIL_CHECK_OK(token_text("tokenizer.ggml.bos_token_id", info.bos_token));
  KANDIL_CHECK_OK(token_text("tokenizer.ggml.eos_token_id", info.eos_token));
  return info;
}

namespace {

Result<nlohmann::ordered_json> read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return make_error(path + ": not valid JSON");
  return j;
}

Result<std::string> token_field(const nlohmann::ordered_json& config, const char* key,
                                const std::string& path) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return make_error(path + ": " + key + " must be a string or an object with \"content\"");
}

}  // namespace

Result<ChatTemplateInfo> chat_template_info_from_hf_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(dir) / "tokenizer_config.json").string();
  ChatTemplateInfo info;
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  if (fs::exists(path)) {
    auto j = read_json(path);
    if (!j.ok()) return j.error();
    config = std::move(*j);
    if (!config.is_object()) return make_error(path + ": expected a JSON object");
  }
  auto bos = token_field(config, "bos_token", path);
  if (!bos.ok()) return bos.error();
  auto eos = token_field(config, "eos_token", path);
  if (!eos.ok()) return eos.error();
  info.bos_token = std::move(*bos);
  info.eos_token = std::move(*eos);
  auto read_templates = [&](const nlohmann::ordered_json& tpl,
                            const std::string& from) -> Result<void> {
    if (tpl.is_string()) {
      info.chat_template = tpl.get<std::string>();
      return {};
    }
    if (!tpl.is_array()) {
      return make_error(from + ": chat_template must be a string or a list of {name, template}");
    }
    for (const auto& item : tpl) {
      auto n = item.is_object() ? item.find("name") : item.end();
      auto t = item.is_object() ? item.find("template") : item.end();
      if (!item.is_object() || n == item.end() || t == item.end() || !n->is_string() ||
          !t->is_string()) {
        return make_error(from +
                          ": each chat_template entry needs string \"name\" and \"template\"");
      }
      if (n->get<std::string>() == "default") {
        info.chat_template = t->get<std::string>();
      } else {
        info.named.emplace_back(n->get<std::string>(), t->get<std::string>());
      }
    }
    return {};
  };
  if (auto it = config.find("chat_template"); it != config.end() && !it->is_null()) {
    KANDIL_CHECK_OK(read_templates(*it, path));
  }
  if (!info.chat_template) {
    const fs::path jinja_file = fs::path(dir) / "chat_template.jinja";
    const fs::path json_file = fs::path(dir) / "chat_template.json";
    if (fs::exists(jinja_file)) {
      std::ifstream in(jinja_file, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      info.chat_template = ss.str();
    } else if (fs::exists(json_file)) {
      auto j = read_json(json_file.string());
      if (!j.ok()) return j.error();
      if (j->is_object() && j->contains("chat_template")) {
        KANDIL_CHECK_OK(read_templates((*j)["chat_template"], json_file.string()));
      }
    }
  }
  if (!fs::exists(path) && !info.chat_template) {
    return make_error(dir + ": no tokenizer_config.json or chat_template.jinja");
  }
  return info;
}

}  // namespace kandil
