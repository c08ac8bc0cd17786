#include "platform/config/config.h"

#include <sys/stat.h>

#include <toml++/toml.h>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "platform/common/paths.h"

namespace kandil::platform {
namespace {

const std::vector<KeyInfo> kKeys = {
    {"provider", KeyType::string, "builtin",
     "Which model answers: builtin (local GGUF), openai (OpenAI-compatible HTTP), anthropic"},
    {"model", KeyType::string, "", "GGUF model file for the built-in engine"},
    {"system", KeyType::string, "", "System prompt for new conversations"},
    {"max_tokens", KeyType::integer, "512", "Most tokens generated per answer"},
    {"temperature", KeyType::number, "0.7", "Sampling temperature (0: greedy)"},
    {"seed", KeyType::integer, "-1", "Sampling seed for the built-in engine (-1: random)"},
    {"ctx", KeyType::integer, "0",
     "Context size for the built-in engine (0: the model's, <= 4096)"},
    {"threads", KeyType::integer, "0", "Threads for the built-in engine (0: all)"},
    {"context_window", KeyType::integer, "8192",
     "Context window assumed for remote models (tokens, estimated as bytes / 4)"},
    {"openai.base_url", KeyType::string, "http://127.0.0.1:8080/v1",
     "OpenAI-compatible endpoint (Ollama: http://127.0.0.1:11434/v1)"},
    {"openai.model", KeyType::string, "", "Model name sent to the OpenAI-compatible endpoint"},
    {"anthropic.base_url", KeyType::string, "https://api.anthropic.com",
     "Anthropic Messages API endpoint"},
    {"anthropic.model", KeyType::string, "claude-sonnet-4-5", "Anthropic model name"},
    {"net.timeout_s", KeyType::integer, "120", "Whole-request timeout for remote providers"},
    {"net.connect_timeout_s", KeyType::integer, "10", "Connection timeout for remote providers"},
    {"net.retries", KeyType::integer, "3", "Retries on 429 / 5xx (with exponential backoff)"},
    {"net.backoff_ms", KeyType::integer, "500", "First retry delay; doubles on each retry"},
};

std::string node_to_text(const toml::node& n, bool& ok) {
  ok = true;
  if (auto s = n.value_exact<std::string>()) return *s;
  if (auto i = n.value_exact<int64_t>()) return std::to_string(*i);
  if (auto d = n.value_exact<double>()) {
    std::ostringstream os;
    os << *d;
    return os.str();
  }
  if (auto b = n.value_exact<bool>()) return *b ? "true" : "false";
  ok = false;
  return "";
}

Result<void> read_layer(const std::string& file, std::map<std::string, Setting>& out) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return {};
  toml::table tbl;
  try {
    tbl = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    return Error{file + ":" + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  }
  std::vector<std::pair<std::string, const toml::node*>> stack;
  for (auto it = tbl.begin(); it != tbl.end(); ++it) {
    stack.emplace_back(std::string(it->first.str()), &it->second);
  }
  for (size_t i = 0; i < stack.size(); ++i) {
    const std::string key = stack[i].first;
    const toml::node& node = *stack[i].second;
    const std::string where = file + ":" + std::to_string(node.source().begin.line);
    if (const toml::table* sub = node.as_table()) {
      for (auto it = sub->begin(); it != sub->end(); ++it) {
        stack.emplace_back(key + "." + std::string(it->first.str()), &it->second);
      }
      continue;
    }
    if (!find_key(key)) {
      return Error{where + ": unknown key '" + key + "' (see `kandil config list`)"};
    }
    bool ok = false;
    std::string text = node_to_text(node, ok);
    if (!ok) return Error{where + ": '" + key + "' must be a string, number or boolean"};
    auto v = validate_value(key, text);
    if (!v.ok()) return Error{where + ": " + v.error().message};
    out[key] = Setting{*v, file};
  }
  return {};
}

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

Result<toml::table> load_table(const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return toml::table{};
  try {
    return toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    return Error{file + ":" + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  }
}

Result<void> save_table(const std::string& file, const toml::table& tbl) {
  auto parent = std::filesystem::path(file).parent_path();
  if (!parent.empty()) {
    auto d = make_dirs(parent.string());
    if (!d.ok()) return d;
  }
  std::ostringstream os;
  os << tbl << "\n";
  return write_file_atomic(file, os.str());
}

}  // namespace

const std::vector<KeyInfo>& config_keys() { return kKeys; }

const KeyInfo* find_key(const std::string& key) {
  for (const auto& k : kKeys) {
    if (key == k.key) return &k;
  }
  return nullptr;
}

std::string env_name(const std::string& key) {
  std::string out = "KANDIL_";
  for (char c : key) {
    out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

ConfigPaths default_config_paths() {
  return ConfigPaths{config_dir() + "/config.toml", ".kandil/config.toml"};
}

Result<std::string> validate_value(const std::string& key, const std::string& value) {
  const KeyInfo* info = find_key(key);
  if (!info) return Error{"unknown key '" + key + "' (see `kandil config list`)"};
  switch (info->type) {
    case KeyType::string:
      return value;
    case KeyType::integer: {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno != 0) {
        return Error{"'" + key + "' expects an integer, got '" + value + "'"};
      }
      return std::to_string(v);
    }
    case KeyType::number: {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0') {
        return Error{"'" + key + "' expects a number, got '" + value + "'"};
      }
      std::ostringstream os;
      os << v;
      return os.str();
    }
    case KeyType::boolean:
      if (value == "true" || value == "1") return std::string("true");
      if (value == "false" || value == "0") return std::string("false");
      return Error{"'" + key + "' expects true or false, got '" + value + "'"};
  }
  return value;
}

Result<Config> Config::load(const ConfigPaths& paths,
                            const std::map<std::string, std::string>& flags) {
  Config c;
  for (const auto& k : kKeys) {
    if (*k.default_value) c.values_[k.key] = Setting{k.default_value, "default"};
  }
  for (const std::string* file : {&paths.user_file, &paths.project_file}) {
    if (file->empty()) continue;
    auto r = read_layer(*file, c.values_);
    if (!r.ok()) return r.error();
  }
  for (const auto& k : kKeys) {
    const std::string name = env_name(k.key);
    const char* v = std::getenv(name.c_str());
    if (!v) continue;
    auto norm = validate_value(k.key, v);
    if (!norm.ok()) return Error{"environment " + name + ": " + norm.error().message};
    c.values_[k.key] = Setting{*norm, "env " + name};
  }
  for (const auto& [key, value] : flags) {
    auto norm = validate_value(key, value);
    if (!norm.ok()) return Error{"flag: " + norm.error().message};
    c.values_[key] = Setting{*norm, "flag"};
  }
  return c;
}

std::optional<Setting> Config::get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Config::str(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string() : it->second.value;
}

int64_t Config::integer(const std::string& key) const {
  std::string v = str(key);
  if (v.empty()) {
    const KeyInfo* info = find_key(key);
    v = info ? info->default_value : "";
  }
  return v.empty() ? 0 : std::strtoll(v.c_str(), nullptr, 10);
}

double Config::number(const std::string& key) const {
  std::string v = str(key);
  if (v.empty()) {
    const KeyInfo* info = find_key(key);
    v = info ? info->default_value : "";
  }
  return v.empty() ? 0.0 : std::strtod(v.c_str(), nullptr);
}

Result<void> config_set(const std::string& file, const std::string& key, const std::string& value) {
  auto norm = validate_value(key, value);
  if (!norm.ok()) return norm.error();
  auto tbl = load_table(file);
  if (!tbl.ok()) return tbl.error();
  std::vector<std::string> parts = split_key(key);
  toml::table* t = &*tbl;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* n = t->get(parts[i]);
    if (!n || !n->is_table()) {
      t->insert_or_assign(parts[i], toml::table{});
      n = t->get(parts[i]);
    }
    t = n->as_table();
  }
  const std::string& leaf = parts.back();
  switch (find_key(key)->type) {
    case KeyType::string:
      t->insert_or_assign(leaf, *norm);
      break;
    case KeyType::integer:
      t->insert_or_assign(leaf, static_cast<int64_t>(std::strtoll(norm->c_str(), nullptr, 10)));
      break;
    case KeyType::number:
      t->insert_or_assign(leaf, std::strtod(norm->c_str(), nullptr));
      break;
    case KeyType::boolean:
      t->insert_or_assign(leaf, *norm == "true");
      break;
  }
  return save_table(file, *tbl);
}

Result<void> config_unset(const std::string& file, const std::string& key) {
  if (!find_key(key)) return Error{"unknown key '" + key + "' (see `kandil config list`)"};
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return {};
  auto tbl = load_table(file);
  if (!tbl.ok()) return tbl.error();
  std::vector<std::string> parts = split_key(key);
  toml::table* t = &*tbl;
  for (size_t i = 0; i + 1 < parts.size() && t; ++i) {
    toml::node* n = t->get(parts[i]);
    t = n ? n->as_table() : nullptr;
  }
  if (t) t->erase(parts.back());
  return save_table(file, *tbl);
}

std::string commented_config() {
  std::string out =
      "# kandil project configuration. Layers, lowest first:\n"
      "#   ~/.config/kandil/config.toml < ./.kandil/config.toml < KANDIL_* environment < flags\n"
      "# API keys do not belong here: use OPENAI_API_KEY / ANTHROPIC_API_KEY or\n"
      "# ~/.config/kandil/credentials.toml (mode 0600).\n";
  std::string section;
  for (const auto& k : kKeys) {
    std::string key = k.key;
    std::string sec, leaf = key;
    if (auto dot = key.find('.'); dot != std::string::npos) {
      sec = key.substr(0, dot);
      leaf = key.substr(dot + 1);
    }
    if (sec != section) {
      out += "\n[" + sec + "]\n";
      section = sec;
    } else {
      out += "\n";
    }
    out += "# " + std::string(k.help) + "\n";
    const std::string def = k.default_value;
    std::string value = k.type == KeyType::string ? "\"" + def + "\"" : def;
    out += "# " + leaf + " = " + value + "\n";
  }
  return out;
}

}  // namespace kandil::platform
