#include "platform/providers/provider.h"

#include "platform/config/config.h"
#include "platform/config/secrets.h"

namespace kandil::platform {

Result<void> Provider::apply_lora(const std::string& path, float) {
  return Error{"cannot apply " + path + ": the " + name() +
               " provider runs a remote model; LoRA adapters apply to the built-in engine"};
}

int64_t estimate_tokens(const std::vector<Message>& messages) {
  int64_t n = 0;
  for (const auto& m : messages) n += 1 + static_cast<int64_t>(m.content.size() + 3) / 4;
  return n;
}

Result<ProviderSettings> provider_settings(const Config& c) {
  ProviderSettings s;
  s.provider = c.str("provider");
  s.ctx = static_cast<int32_t>(c.integer("ctx"));
  s.threads = static_cast<int32_t>(c.integer("threads"));
  s.context_window = c.integer("context_window");
  s.timeout_s = c.integer("net.timeout_s");
  s.connect_timeout_s = c.integer("net.connect_timeout_s");
  s.retries = c.integer("net.retries");
  s.backoff_ms = c.integer("net.backoff_ms");
  if (s.provider == "builtin") {
    s.model = c.str("model");
    return s;
  }
  if (s.provider != "openai" && s.provider != "anthropic") {
    return Error{"unknown provider '" + s.provider + "' (expected builtin, openai or anthropic)"};
  }
  s.model = c.str(s.provider + ".model");
  s.base_url = c.str(s.provider + ".base_url");
  auto key = find_api_key(s.provider);
  if (!key.ok()) return key.error();
  if (*key) s.api_key = (*key)->value;
  if (s.provider == "anthropic" && s.api_key.empty()) {
    return Error{"anthropic: no API key (set ANTHROPIC_API_KEY or add [anthropic] api_key to " +
                 std::string("credentials.toml, mode 0600)")};
  }
  return s;
}

Result<std::unique_ptr<Provider>> make_provider(const ProviderSettings& s) {
  if (s.provider == "builtin") return make_engine_provider(s);
  if (s.provider == "openai") return make_openai_provider(s);
  if (s.provider == "anthropic") return make_anthropic_provider(s);
  return Error{"unknown provider '" + s.provider + "' (expected builtin, openai or anthropic)"};
}

}  // namespace kandil::platform
