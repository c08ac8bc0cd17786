#include "platform/config/secrets.h"

#include <sys/stat.h>

#include <toml++/toml.h>
#include <cstdlib>
#include <filesystem>

#include "platform/common/paths.h"

namespace kandil::platform {

Result<std::optional<Secret>> find_api_key(const std::string& provider,
                                           const std::string& credentials_file) {
  std::string upper;
  for (char c : provider) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& name : {"KANDIL_" + upper + "_API_KEY", upper + "_API_KEY"}) {
    const char* v = std::getenv(name.c_str());
    if (v && *v) return std::optional<Secret>(Secret{v, "env " + name});
  }
  const std::string file =
      credentials_file.empty() ? config_dir() + "/credentials.toml" : credentials_file;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::optional<Secret>();
  if ((st.st_mode & 077) != 0) {
    return Error{file + ": credentials file must not be readable by others (chmod 600 " + file +
                 ")"};
  }
  toml::table tbl;
  try {
    tbl = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    // The parser's message may quote the offending text, which could be a key: give the line only.
    return Error{file + ":" + std::to_string(e.source().begin.line) + ": invalid TOML"};
  }
  if (auto key = tbl[provider]["api_key"].value<std::string>(); key && !key->empty()) {
    return std::optional<Secret>(Secret{*key, file});
  }
  return std::optional<Secret>();
}

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  size_t pos = 0;
  while ((pos = text.find(secret, pos)) != std::string::npos) {
    text.replace(pos, secret.size(), "[redacted]");
    pos += 10;
  }
  return text;
}

}  // namespace kandil::platform
