// Chat templates: a Jinja-subset interpreter that renders a conversation into a model's prompt
// text the way Hugging Face does (@huggingface/jinja semantics, trim_blocks + lstrip_blocks),
// and readers for the templates stored in GGUF metadata and in HF tokenizer_config.json.
//
//   auto tpl = ChatTemplate::parse(source, "Qwen2.5");
//   auto prompt = tpl->render({{"messages", msgs}, {"add_generation_prompt", true},
//                              {"bos_token", "<s>"}, {"eos_token", "</s>"}});
//
// Parse once, render many times (render is const and thread-safe). Errors name the template and
// the line: "Qwen2.5:12: unknown filter ...". Rendering is bounded (steps, nesting, sizes) so a
// hostile template ends with an error instead of hanging or exhausting memory.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kandil/gguf.h"
#include "kandil/result.h"

namespace kandil {

namespace jinja {
struct Program;
}

struct ChatTemplateLimits {
  int64_t max_steps = 20'000'000;  // evaluated nodes, loop iterations included
  size_t max_output = 64u << 20;   // bytes of output (and of any one string)
  size_t max_items = 1u << 20;     // items of any one list
  int max_depth = 400;             // nested evaluation, macro recursion included
  int64_t now = -1;                // clock of strftime_now() in Unix seconds; -1: real time
};

class ChatTemplate {
 public:
  // Parses a template; `name` is used in error messages.
  static Result<ChatTemplate> parse(std::string source, std::string name = "template");

  // Renders with these variables (an object: messages, tools, add_generation_prompt, bos_token,
  // eos_token, ...). Key order of mappings is kept (tools render as given).
  Result<std::string> render(const nlohmann::ordered_json& variables,
                             const ChatTemplateLimits& limits = {}) const;
  Result<std::string> render(const nlohmann::json& variables,
                             const ChatTemplateLimits& limits = {}) const;

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }

 private:
  std::string name_, source_;
  std::shared_ptr<const jinja::Program> program_;
};

// What a model ships for chat formatting.
struct ChatTemplateInfo {
  std::optional<std::string> chat_template;  // the default template
  // Further named templates (GGUF tokenizer.chat_template.<name>; tokenizer_config.json's list
  // form, e.g. "tool_use", "rag").
  std::vector<std::pair<std::string, std::string>> named;
  std::string bos_token, eos_token;  // token texts ("" when the model has none)

  // The template called `name` ("default" or "" = the default one), nullopt when absent.
  std::optional<std::string> find(const std::string& name) const;
};

// tokenizer.chat_template of a GGUF file (nullopt when absent).
Result<std::optional<std::string>> chat_template_from_gguf(const GgufFile& file);
// Templates plus bos/eos texts (tokenizer.ggml.bos_token_id / eos_token_id into the vocabulary).
Result<ChatTemplateInfo> chat_template_info_from_gguf(const GgufFile& file);
// The same from a Hugging Face model folder's tokenizer_config.json (chat_template as a string
// or a list of {name, template}; bos_token / eos_token as strings or {"content": ...});
// a chat_template.jinja / chat_template.json beside it is used when the config has none.
Result<ChatTemplateInfo> chat_template_info_from_hf_dir(const std::string& dir);

}  // namespace kandil
