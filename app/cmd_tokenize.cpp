// kandil tokenize (-m MODEL | --tokenizer FILE.json|DIR) [--no-bos] [--parse-special]
//                 (TEXT | -f FILE) [--ids | --json]
#include <fmt/core.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/gguf.h"
#include "kandil/hf.h"
#include "kandil/tokenizer.h"

namespace kandil::app {
namespace {

struct TokenizeOptions {
  std::string model, tokenizer, text, file;
  bool no_bos = false, parse_special = false, json = false, ids_only = false;
};

Result<std::unique_ptr<Tokenizer>> load_tokenizer(const TokenizeOptions& opt) {
  if (!opt.tokenizer.empty()) {
    // A Hugging Face tokenizer without a model: tokenizer.json or a folder holding one.
    std::error_code ec;
    if (std::filesystem::is_directory(opt.tokenizer, ec)) {
      return Tokenizer::from_hf_dir(opt.tokenizer);
    }
    return Tokenizer::from_tokenizer_json(opt.tokenizer);
  }
  auto path = resolve_model_path(opt.model);
  if (!path.ok()) return path.error();
  // Only the vocabulary is needed: vocab-only GGUF files work too, and HF folders.
  if (is_hf_model_dir(*path)) return load_hf_tokenizer(*path);
  auto file = GgufFile::open(*path);
  if (!file.ok()) return file.error();
  return Tokenizer::from_gguf(*file);
}

int run_tokenize(const TokenizeOptions& opt) {
  auto tok = load_tokenizer(opt);
  if (!tok.ok()) return fail(tok.error());
  std::string text = opt.text;
  if (!opt.file.empty()) {
    auto t = read_text_file(opt.file);
    if (!t.ok()) return fail(t.error());
    text = *t;
  }
  std::vector<TokenId> ids = (*tok)->encode(text, !opt.no_bos, opt.parse_special);
  if (opt.json) {
    fmt::print("{}\n", nlohmann::json{{"ids", ids}}.dump());
  } else if (opt.ids_only) {
    std::string s;
    for (TokenId id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    fmt::print("{}\n", s);
  } else {
    for (TokenId id : ids) {
      fmt::print("{:>8} -> '{}'\n", id, safe_utf8((*tok)->token_to_piece(id, true)));
    }
  }
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* cmd =
      app.add_subcommand("tokenize", "Convert text to token ids with a model's tokenizer");
  auto* model = cmd->add_option("-m,--model", opt->model,
                                "GGUF model or vocab file, or HF model folder (default: $KANDIL_MODEL)");
  cmd->add_option("--tokenizer", opt->tokenizer,
                  "Hugging Face tokenizer.json, or a folder with tokenizer.json (no model needed)")
      ->excludes(model);
  auto* text = cmd->add_option("text", opt->text, "Text to tokenize");
  auto* file = cmd->add_option("-f,--file", opt->file, "Read the text from a file");
  text->excludes(file);
  cmd->add_flag("--no-bos", opt->no_bos, "Do not add BOS/EOS tokens");
  cmd->add_flag("--parse-special", opt->parse_special,
                "Turn special-token text into special tokens");
  cmd->add_flag("--ids", opt->ids_only, "Print only the ids, space-separated");
  cmd->add_flag("--json", opt->json, "Print {\"ids\": [...]}");
  cmd->callback([opt, &selected] { selected = [opt] { return run_tokenize(*opt); }; });
}

}  // namespace kandil::app
