// The built-in engine as a provider: the prompt is the model's chat template rendered over the
// conversation (GGUF tokenizer.chat_template), or a plain fallback format when it has none.
#include <chrono>
#include <random>

#include "kandil/chat_template.h"
#include "kandil/generate.h"
#include "kandil/lora.h"
#include "kandil/model.h"
#include "platform/providers/provider.h"

namespace kandil::platform {
namespace {

using Clock = std::chrono::steady_clock;

class EngineProvider : public Provider {
 public:
  EngineProvider(std::string path, std::shared_ptr<const Model> model, std::unique_ptr<Context> ctx,
                 std::optional<ChatTemplate> tpl, ChatTemplateInfo info)
      : path_(std::move(path)),
        model_(std::move(model)),
        ctx_(std::move(ctx)),
        tpl_(std::move(tpl)),
        info_(std::move(info)) {}

  std::string name() const override { return "builtin"; }
  std::string model() const override { return path_; }
  int64_t context_window() const override { return ctx_->n_ctx(); }

  Result<void> apply_lora(const std::string& path, float scale) override {
    for (auto& [p, a, s] : adapters_) {
      if (p != path) continue;
      KANDIL_CHECK_OK(apply_adapter(*ctx_, a, scale));
      s = scale;
      return {};
    }
    auto adapter = LoraAdapter::load(path, *model_);
    if (!adapter.ok()) return adapter.error();
    KANDIL_CHECK_OK(apply_adapter(*ctx_, *adapter, scale));
    adapters_.push_back({path, *adapter, scale});
    return {};
  }
  void clear_lora() override {
    (void)set_adapters(*ctx_, nullptr);
    adapters_.clear();
  }
  std::vector<std::string> active_lora() const override {
    std::vector<std::string> out;
    for (const auto& a : adapters_)
      out.push_back(a.path + " (scale " + std::to_string(a.scale) + ")");
    return out;
  }

  int64_t count_tokens(const std::vector<Message>& messages) const override {
    auto p = prompt_tokens(messages);
    return p.ok() ? static_cast<int64_t>(p->size()) : estimate_tokens(messages);
  }

  Result<Usage> chat(const std::vector<Message>& messages, const ChatOptions& o,
                     const TokenFn& on_token) override {
    const auto t0 = Clock::now();
    auto ids = prompt_tokens(messages);
    if (!ids.ok()) return ids.error();
    if (ids->empty()) return Error{"the prompt is empty"};
    const int64_t room = ctx_->n_ctx() - static_cast<int64_t>(ids->size());
    if (room <= 0) {
      return Error{"the conversation (" + std::to_string(ids->size()) +
                   " tokens) does not fit the context window (" + std::to_string(ctx_->n_ctx()) +
                   ")"};
    }
    ctx_->clear();
    SamplingParams sp;
    sp.temperature = static_cast<float>(o.temperature);
    sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
    Sampler sampler(sp, model_->config().n_vocab);
    GenerateOptions g;
    g.n_predict = static_cast<int32_t>(std::min<int64_t>(o.max_tokens, room));
    if (!tpl_) g.stop = {"\nUser:", "\nSystem:"};
    Usage u;
    bool first = true, stopped = false;
    auto r = generate(*ctx_, sampler, *ids, g, [&](std::string_view text) {
      if (first) {
        u.ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        first = false;
      }
      if ((o.cancel && o.cancel->load()) || (on_token && !on_token(text))) {
        stopped = true;
        return false;
      }
      return true;
    });
    if (!r.ok()) return r.error();
    u.prompt_tokens = static_cast<int64_t>(ids->size());
    u.completion_tokens = static_cast<int64_t>(r->tokens.size());
    u.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    u.stop_reason = stopped ? "cancelled" : std::string(stop_reason_name(r->stop_reason));
    return u;
  }

 private:
  Result<std::vector<TokenId>> prompt_tokens(const std::vector<Message>& messages) const {
    const Tokenizer& tok = model_->tokenizer();
    if (tpl_) {
      nlohmann::json msgs = nlohmann::json::array();
      for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
      nlohmann::json vars = {{"messages", msgs},
                             {"add_generation_prompt", true},
                             {"bos_token", info_.bos_token},
                             {"eos_token", info_.eos_token}};
      auto text = tpl_->render(vars);
      if (!text.ok()) return text.error().with_context("chat template");
      // Templates usually write the BOS text themselves; add it only when they do not.
      const bool has_bos = !info_.bos_token.empty() && text->rfind(info_.bos_token, 0) == 0;
      return tok.encode(*text, !has_bos, true);
    }
    return tok.encode(fallback_prompt(messages), true, false);
  }

  struct Loaded {
    std::string path;
    std::shared_ptr<const LoraAdapter> adapter;
    float scale;
  };
  std::vector<Loaded> adapters_;
  std::string path_;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Context> ctx_;
  std::optional<ChatTemplate> tpl_;
  ChatTemplateInfo info_;
};

}  // namespace

std::string fallback_prompt(const std::vector<Message>& messages) {
  std::string out;
  for (const auto& m : messages) {
    const std::string who = m.role == "system" ? "System" : m.role == "user" ? "User" : "Assistant";
    out += who + ": " + m.content + "\n\n";
  }
  return out + "Assistant:";
}

Result<std::unique_ptr<Provider>> make_engine_provider(const ProviderSettings& s) {
  if (s.model.empty()) {
    return Error{
        "no model: give -m MODEL.gguf, set KANDIL_MODEL, or `kandil config set model PATH`"};
  }
  auto model = Model::load(s.model);
  if (!model.ok()) return model.error();
  ContextParams p;
  p.n_ctx = s.ctx;
  p.n_threads = s.threads;
  auto ctx = Context::create(*model, p);
  if (!ctx.ok()) return ctx.error();
  auto info = chat_template_info_from_gguf((*model)->gguf());
  if (!info.ok()) return info.error().with_context(s.model);
  std::optional<ChatTemplate> tpl;
  if (info->chat_template) {
    auto t = ChatTemplate::parse(*info->chat_template, s.model);
    if (!t.ok()) return t.error();
    tpl = std::move(*t);
  }
  return std::unique_ptr<Provider>(std::make_unique<EngineProvider>(
      s.model, std::move(*model), std::move(*ctx), std::move(tpl), std::move(*info)));
}

}  // namespace kandil::platform
