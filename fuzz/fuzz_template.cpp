// libFuzzer target for the chat-template interpreter: parses arbitrary bytes as a template and,
// when they parse, renders them with a small fixed conversation (system, user, assistant with a
// tool call, tool result) and a tool definition. Render errors are expected; crashes, hangs,
// sanitizer reports and errors that do not name the template are not.
//   cmake --preset fuzz && ninja -C build/fuzz fuzz_template
//   mkdir -p build/fuzz/corpus-template
//   build/fuzz/fuzz_template -max_total_time=60 -dict=fuzz/template.dict
//       build/fuzz/corpus-template fuzz/corpus/template
#include <cstddef>
#include <cstdint>
#include <string>

#include "kandil/chat_template.h"

namespace {

const nlohmann::ordered_json& variables() {
  static const nlohmann::ordered_json vars = nlohmann::ordered_json::parse(R"({
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true,
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather in Paris? 🙂"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "call1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
      {"role": "tool", "tool_call_id": "call1", "content": "{\"temp\": 21.5}"},
      {"role": "assistant", "content": "<think>ok</think>Sunny, 21.5 C."}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]}}}]
  })");
  return vars;
}

bool names_template(const std::string& message) { return message.rfind("fuzz.jinja", 0) == 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  auto tpl = kandil::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size),
                                         "fuzz.jinja");
  if (!tpl.ok()) {
    if (!names_template(tpl.error().message)) __builtin_trap();
    return 0;
  }
  // Small limits keep every input fast; exceeding them is an ordinary error.
  kandil::ChatTemplateLimits limits;
  limits.max_steps = 200000;
  limits.max_output = 1 << 20;
  limits.max_items = 1 << 16;
  limits.max_depth = 200;
  limits.now = 0;
  auto out = tpl->render(variables(), limits);
  if (!out.ok() && !names_template(out.error().message)) __builtin_trap();
  if (out.ok() && out->size() > limits.max_output) __builtin_trap();
  return 0;
}
