// One conversation: the messages, the provider answering them, the database row they are saved
// to after every turn, and the audit log every turn is appended to.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/providers/provider.h"

namespace kandil::platform {

class SessionStore;
class AuditLog;

// Drops the oldest user/assistant turns (never system messages, never the last message) until
// the prompt plus `reserve` answer tokens fits the provider's window. Returns how many messages
// were dropped; an error when even the last message alone does not fit.
Result<size_t> fit_context(std::vector<Message>& messages, const Provider& provider,
                           int64_t reserve);

struct TurnResult {
  std::string answer;
  Usage usage;
  size_t dropped = 0;  // messages dropped to fit the context window
};

struct SessionTotals {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t turns = 0;
  std::optional<Usage> last;
};

class ChatSession {
 public:
  // `store` and `audit` may be null (nothing persisted / audited).
  ChatSession(std::unique_ptr<Provider> provider, SessionStore* store, AuditLog* audit,
              ChatOptions options);

  // Starts a fresh conversation with this system prompt ("" = none).
  void reset(const std::string& system);
  // Replaces the conversation with a stored session (continues appending to it).
  Result<void> load(const std::string& id_or_name);
  // Names the current session (persisting it first if it has no row yet).
  Result<std::string> save(const std::string& name);
  void set_system(const std::string& system);
  void set_provider(std::unique_ptr<Provider> provider);

  // Sends one user message, streams the answer, persists and audits the turn. A cancelled
  // answer is kept as far as it got (usage.stop_reason == "cancelled").
  Result<TurnResult> turn(const std::string& user_text, const TokenFn& on_token);

  const std::vector<Message>& messages() const { return messages_; }
  const std::string& id() const { return id_; }
  const Provider& provider() const { return *provider_; }
  Provider& provider() { return *provider_; }
  const SessionTotals& totals() const { return totals_; }
  ChatOptions& options() { return options_; }

 private:
  Result<void> ensure_row();
  std::unique_ptr<Provider> provider_;
  SessionStore* store_;
  AuditLog* audit_;
  ChatOptions options_;
  std::vector<Message> messages_;
  std::string id_;  // "" until the first turn is saved
  SessionTotals totals_;
};

}  // namespace kandil::platform
