// One interface for every model kandil chats with: the built-in engine, OpenAI-compatible HTTP
// servers and the Anthropic Messages API (ARCHITECTURE.md principle 7):
//   chat(messages, options, on_token) -> usage
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kandil/result.h"

namespace kandil::platform {

class Config;

struct Message {
  std::string role;  // system | user | assistant
  std::string content;
};

struct ChatOptions {
  int32_t max_tokens = 512;
  double temperature = 0.7;
  int64_t seed = -1;                          // -1: random (built-in engine only)
  const std::atomic<bool>* cancel = nullptr;  // set -> stop as soon as possible
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double ttft_ms = 0;  // request start to first streamed text
  double total_ms = 0;
  std::string stop_reason;  // e.g. "stop", "length", "cancelled"
  bool estimated = false;   // token counts estimated (the server reported none)
};

// Receives streamed text; return false to cancel.
using TokenFn = std::function<bool(std::string_view)>;

class Provider {
 public:
  virtual ~Provider() = default;
  virtual Result<Usage> chat(const std::vector<Message>& messages, const ChatOptions& options,
                             const TokenFn& on_token) = 0;
  // "builtin", "openai", "anthropic".
  virtual std::string name() const = 0;
  // The model as shown to users (file name or remote model id).
  virtual std::string model() const = 0;
  // Tokens the model can attend to (prompt + answer).
  virtual int64_t context_window() const = 0;
  // Tokens `messages` take as a prompt (exact for the built-in engine, estimated remotely).
  virtual int64_t count_tokens(const std::vector<Message>& messages) const = 0;

  // LoRA adapters (the built-in engine only): add one (or change its scale) from a GGUF adapter
  // file or a PEFT folder; drop them all; list the active ones as "path (scale S)".
  virtual Result<void> apply_lora(const std::string& path, float scale);
  virtual void clear_lora() {}
  virtual std::vector<std::string> active_lora() const { return {}; }
};

// Rough token count for text sent to a remote model: bytes / 4, at least 1 per message.
int64_t estimate_tokens(const std::vector<Message>& messages);

struct ProviderSettings {
  std::string provider = "builtin";  // builtin | openai | anthropic
  std::string model;                 // GGUF path (builtin) or remote model id
  std::string base_url;
  std::string api_key;  // never logged
  int32_t ctx = 0, threads = 0;
  int64_t context_window = 8192;
  int64_t timeout_s = 120, connect_timeout_s = 10, retries = 3, backoff_ms = 500;
};

// Settings from the effective configuration (API key from secrets.h).
Result<ProviderSettings> provider_settings(const Config& config);
Result<std::unique_ptr<Provider>> make_provider(const ProviderSettings& settings);

// Loads the model now (errors name the file).
Result<std::unique_ptr<Provider>> make_engine_provider(const ProviderSettings& s);
std::unique_ptr<Provider> make_openai_provider(const ProviderSettings& s);
std::unique_ptr<Provider> make_anthropic_provider(const ProviderSettings& s);

}  // namespace kandil::platform

namespace kandil::platform {
// The built-in engine's prompt for models without a chat template:
//   "System: ...\n\nUser: ...\n\nAssistant: ...\n\nUser: ...\n\nAssistant:"
// (generation stops at "\nUser:").
std::string fallback_prompt(const std::vector<Message>& messages);
}  // namespace kandil::platform
