// Layered configuration: ~/.config/kandil/config.toml < ./.kandil/config.toml < KANDIL_* env <
// flags. Keys are dotted ("openai.base_url" is [openai] base_url in TOML and
// KANDIL_OPENAI_BASE_URL in the environment). Secrets are never configuration keys (see
// secrets.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kandil/result.h"

namespace kandil::platform {

enum class KeyType { string, integer, number, boolean };

struct KeyInfo {
  const char* key;
  KeyType type;
  const char* default_value;  // as text; "" = unset
  const char* help;
};

// Every key kandil knows, in documentation order.
const std::vector<KeyInfo>& config_keys();
const KeyInfo* find_key(const std::string& key);
// KANDIL_ + the key upper-cased with '.' -> '_'.
std::string env_name(const std::string& key);

struct Setting {
  std::string value;
  std::string source;  // "default", a file path, "env KANDIL_X", "flag"
};

struct ConfigPaths {
  std::string user_file;     // default: config_dir()/config.toml
  std::string project_file;  // default: ./.kandil/config.toml
};
ConfigPaths default_config_paths();

class Config {
 public:
  // Reads both files (missing files are fine), then the environment, then `flags`.
  // Errors name the file and line: unknown keys, wrong types, TOML syntax.
  static Result<Config> load(const ConfigPaths& paths,
                             const std::map<std::string, std::string>& flags = {});

  // The effective value (defaults included); nullopt for an unknown or unset key.
  std::optional<Setting> get(const std::string& key) const;
  std::string str(const std::string& key) const;  // "" when unset
  int64_t integer(const std::string& key) const;  // the key's default when unset
  double number(const std::string& key) const;
  const std::map<std::string, Setting>& all() const { return values_; }

 private:
  std::map<std::string, Setting> values_;
};

// Checks a value against the key's type; the normalized text on success.
Result<std::string> validate_value(const std::string& key, const std::string& value);

// Sets `key` in one TOML file (created if missing; parent directories too), keeping the other
// keys. Comments in that file are not kept.
Result<void> config_set(const std::string& file, const std::string& key, const std::string& value);
// Removes `key` from a file (no error when absent).
Result<void> config_unset(const std::string& file, const std::string& key);

// The commented config.toml that `kandil init` writes.
std::string commented_config();

}  // namespace kandil::platform
