#include "platform/chat/session.h"

#include "platform/audit/audit.h"
#include "platform/sessions/store.h"

namespace kandil::platform {

Result<size_t> fit_context(std::vector<Message>& messages, const Provider& provider,
                           int64_t reserve) {
  const int64_t window = provider.context_window();
  size_t dropped = 0;
  while (provider.count_tokens(messages) + reserve > window) {
    // The oldest non-system message that is not the last one.
    size_t i = 0;
    while (i < messages.size() && messages[i].role == "system") ++i;
    if (i + 1 >= messages.size()) {
      return Error{"the message (" + std::to_string(provider.count_tokens(messages)) +
                   " tokens with the system prompt) plus " + std::to_string(reserve) +
                   " answer tokens does not fit the context window of " + std::to_string(window) +
                   " tokens"};
    }
    // Drop a whole turn (user + its answer) when possible, so roles keep alternating.
    size_t n = (messages[i].role == "user" && i + 2 < messages.size() &&
                messages[i + 1].role == "assistant")
                   ? 2
                   : 1;
    messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(i),
                   messages.begin() + static_cast<std::ptrdiff_t>(i + n));
    dropped += n;
  }
  return dropped;
}

ChatSession::ChatSession(std::unique_ptr<Provider> provider, SessionStore* store, AuditLog* audit,
                         ChatOptions options)
    : provider_(std::move(provider)), store_(store), audit_(audit), options_(options) {}

void ChatSession::reset(const std::string& system) {
  messages_.clear();
  id_.clear();
  totals_ = SessionTotals{};
  if (!system.empty()) messages_.push_back({"system", system});
}

void ChatSession::set_system(const std::string& system) {
  if (!messages_.empty() && messages_[0].role == "system") {
    if (system.empty()) {
      messages_.erase(messages_.begin());
    } else {
      messages_[0].content = system;
    }
  } else if (!system.empty()) {
    messages_.insert(messages_.begin(), {"system", system});
  }
  if (store_ && !id_.empty()) (void)store_->set_system(id_, system);
}

void ChatSession::set_provider(std::unique_ptr<Provider> provider) {
  provider_ = std::move(provider);
}

Result<void> ChatSession::load(const std::string& key) {
  if (!store_) return Error{"no sessions database"};
  auto s = store_->load(key);
  if (!s.ok()) return s.error();
  messages_.clear();
  if (!s->info.system.empty()) messages_.push_back({"system", s->info.system});
  for (const auto& m : s->messages) {
    if (m.role != "system") messages_.push_back({m.role, m.content});
  }
  id_ = s->info.id;
  totals_ = SessionTotals{};
  totals_.prompt_tokens = s->info.prompt_tokens;
  totals_.completion_tokens = s->info.completion_tokens;
  return {};
}

Result<void> ChatSession::ensure_row() {
  if (!store_ || !id_.empty()) return {};
  std::string system;
  if (!messages_.empty() && messages_[0].role == "system") system = messages_[0].content;
  auto id = store_->create(provider_->name(), provider_->model(), system);
  if (!id.ok()) return id.error();
  id_ = *id;
  std::vector<StoredMessage> rest;
  for (const auto& m : messages_) {
    if (m.role != "system") rest.push_back({m.role, m.content});
  }
  if (!rest.empty()) return store_->append(id_, rest, 0, 0);
  return {};
}

Result<std::string> ChatSession::save(const std::string& name) {
  if (!store_) return Error{"no sessions database"};
  auto r = ensure_row();
  if (!r.ok()) return r.error();
  if (!name.empty()) {
    auto n = store_->rename(id_, name);
    if (!n.ok()) return n.error();
  }
  return id_;
}

Result<TurnResult> ChatSession::turn(const std::string& user_text, const TokenFn& on_token) {
  TurnResult out;
  std::vector<Message> prompt = messages_;
  prompt.push_back({"user", user_text});
  auto fit = fit_context(prompt, *provider_, options_.max_tokens);
  if (!fit.ok()) return fit.error();
  out.dropped = *fit;
  auto usage = provider_->chat(prompt, options_, [&](std::string_view text) {
    out.answer.append(text);
    return on_token ? on_token(text) : true;
  });
  if (!usage.ok()) return usage.error();
  out.usage = *usage;
  // The conversation keeps what was dropped from the prompt out of the next prompts too.
  messages_ = std::move(prompt);
  messages_.push_back({"assistant", out.answer});
  totals_.prompt_tokens += usage->prompt_tokens;
  totals_.completion_tokens += usage->completion_tokens;
  totals_.turns += 1;
  totals_.last = *usage;
  if (store_) {
    const bool fresh = id_.empty();
    if (fresh) {
      // ensure_row() saves the whole conversation, this turn included.
      auto r = ensure_row();
      if (!r.ok()) return r.error();
    }
    if (out.dropped > 0) {
      std::vector<StoredMessage> all;
      for (const auto& m : messages_) {
        if (m.role != "system") all.push_back({m.role, m.content});
      }
      auto r = store_->replace_messages(id_, all);
      if (!r.ok()) return r.error();
      r = store_->append(id_, {}, usage->prompt_tokens, usage->completion_tokens);
      if (!r.ok()) return r.error();
    } else {
      std::vector<StoredMessage> add;
      if (!fresh) add = {{"user", user_text}, {"assistant", out.answer}};
      auto r = store_->append(id_, add, usage->prompt_tokens, usage->completion_tokens);
      if (!r.ok()) return r.error();
    }
  }
  if (audit_) {
    nlohmann::json data = {{"session", id_},
                           {"provider", provider_->name()},
                           {"model", provider_->model()},
                           {"user", user_text},
                           {"assistant", out.answer},
                           {"prompt_tokens", usage->prompt_tokens},
                           {"completion_tokens", usage->completion_tokens},
                           {"stop_reason", usage->stop_reason},
                           {"dropped_messages", out.dropped}};
    auto a = audit_->append("chat_turn", data);
    if (!a.ok()) return a.error();
  }
  return out;
}

}  // namespace kandil::platform
