// API keys: from the environment (KANDIL_<PROVIDER>_API_KEY, then the provider's usual variable
// such as OPENAI_API_KEY) or from config_dir()/credentials.toml, which must be mode 0600
// ([openai] api_key = "..."). Keys are never printed, logged, or stored in sessions or the audit
// log; redact() hides them in any text that is about to be shown.
#pragma once

#include <optional>
#include <string>

#include "kandil/result.h"

namespace kandil::platform {

struct Secret {
  std::string value;
  std::string source;  // "env NAME" or the credentials file path (never the value)
};

// `provider` is "openai" or "anthropic". nullopt when no key is configured; an error when the
// credentials file is unreadable, malformed or readable by others.
Result<std::optional<Secret>> find_api_key(const std::string& provider,
                                           const std::string& credentials_file = "");

// Replaces every occurrence of `secret` in `text` with "[redacted]".
std::string redact(std::string text, const std::string& secret);

}  // namespace kandil::platform
