// kandil template (-m MODEL | --template FILE.jinja) --messages FILE.json
//                 [--add-generation-prompt] [--name NAME] [--now SECONDS] [--json]
// Renders a chat template and prints the prompt exactly (no newline added). FILE.json is an
// object with "messages" (and optionally "tools" and any other template variables such as
// bos_token, eos_token, date_string) or a bare array of messages. MODEL is a GGUF file (only its
// metadata is read) or a Hugging Face folder (tokenizer_config.json); its bos/eos token texts are
// defaults that the JSON file overrides.
#include <fmt/core.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/chat_template.h"
#include "kandil/gguf.h"

namespace kandil::app {
namespace {

struct TemplateOptions {
  std::string model, template_file, messages, name;
  bool add_generation_prompt = false, json = false;
  int64_t now = -1;
};

Result<ChatTemplateInfo> model_templates(const std::string& flag) {
  auto path = resolve_model_path(flag);
  if (!path.ok()) return path.error();
  if (std::filesystem::is_directory(*path)) return chat_template_info_from_hf_dir(*path);
  auto file = GgufFile::open(*path);
  if (!file.ok()) return file.error();
  return chat_template_info_from_gguf(*file);
}

int run_template(const TemplateOptions& opt) {
  ChatTemplateInfo info;
  std::string source, name;
  if (!opt.model.empty() || opt.template_file.empty()) {
    auto m = model_templates(opt.model);
    if (!m.ok()) return fail(m.error());
    info = std::move(*m);
  }
  if (!opt.template_file.empty()) {
    auto t = read_text_file(opt.template_file);
    if (!t.ok()) return fail(t.error());
    source = std::move(*t);
    name = opt.template_file;
  } else {
    auto t = info.find(opt.name);
    if (!t) {
      return fail(make_error(opt.name.empty()
                                 ? "the model has no chat template"
                                 : "the model has no chat template named '" + opt.name + "'"));
    }
    source = std::move(*t);
    name = opt.name.empty() ? "chat_template" : opt.name;
  }
  auto text = read_text_file(opt.messages);
  if (!text.ok()) return fail(text.error());
  auto input = nlohmann::ordered_json::parse(*text, nullptr, false);
  if (input.is_discarded()) return fail(make_error(opt.messages + ": not valid JSON"));
  if (!input.is_object() && !input.is_array()) {
    return fail(make_error(opt.messages + ": expected an object with \"messages\" or an array"));
  }
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  if (!opt.model.empty()) {
    vars["bos_token"] = info.bos_token;
    vars["eos_token"] = info.eos_token;
  }
  vars["add_generation_prompt"] = opt.add_generation_prompt;
  if (input.is_array()) {
    vars["messages"] = input;
  } else {
    for (auto it = input.begin(); it != input.end(); ++it) vars[it.key()] = it.value();
  }
  if (opt.add_generation_prompt) vars["add_generation_prompt"] = true;
  auto tpl = ChatTemplate::parse(std::move(source), name);
  if (!tpl.ok()) return fail(tpl.error());
  ChatTemplateLimits limits;
  limits.now = opt.now;
  auto prompt = tpl->render(vars, limits);
  if (!prompt.ok()) return fail(prompt.error());
  if (opt.json) {
    fmt::print("{}\n", nlohmann::json{{"prompt", safe_utf8(*prompt)}}.dump());
  } else {
    std::fwrite(prompt->data(), 1, prompt->size(), stdout);
  }
  return 0;
}

}  // namespace

void register_template(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<TemplateOptions>();
  CLI::App* cmd = app.add_subcommand("template", "Render a chat template for a conversation");
  auto* model = cmd->add_option("-m,--model", opt->model,
                                "GGUF file or Hugging Face folder (default: $KANDIL_MODEL)");
  auto* file = cmd->add_option("--template", opt->template_file, "Jinja template file to render");
  (void)model;
  (void)file;
  cmd->add_option("--messages", opt->messages,
                  "JSON file: {\"messages\": [...], \"tools\": [...], ...} or [messages]")
      ->required();
  cmd->add_flag("--add-generation-prompt", opt->add_generation_prompt,
                "Set add_generation_prompt (end with the assistant's turn header)");
  cmd->add_option("--name", opt->name, "Named template of the model (e.g. tool_use)");
  cmd->add_option("--now", opt->now, "Clock for strftime_now() in Unix seconds (default: now)");
  cmd->add_flag("--json", opt->json, "Print {\"prompt\": ...}");
  cmd->callback([opt, &selected] { selected = [opt] { return run_template(*opt); }; });
}

}  // namespace kandil::app
