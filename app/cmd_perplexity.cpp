// kandil perplexity -m MODEL -f FILE -c CTX [--json]   (llama.cpp's method)
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/generate.h"

namespace kandil::app {
namespace {

struct PerplexityOptions {
  ModelOptions model;
  std::string file;
  bool json = false;
};

int run_perplexity(PerplexityOptions& opt) {
  if (opt.model.ctx <= 0) opt.model.ctx = 512;
  opt.model.batch = std::max(opt.model.batch, opt.model.ctx);  // one pass per chunk, as llama.cpp
  auto loaded = load_model(opt.model);
  if (!loaded.ok()) return fail(loaded.error());
  auto text = read_text_file(opt.file);
  if (!text.ok()) return fail(text.error());
  std::string t = std::move(*text);
  if (!t.empty() && t.back() == '\n') t.pop_back();  // as llama-perplexity does
  std::vector<TokenId> tokens = loaded->model->tokenizer().encode(t, true, false);

  Progress bar("perplexity", 0, "chunks");
  bool bar_started = false;
  std::vector<double> running;
  auto r = perplexity(*loaded->ctx, tokens, opt.model.ctx, [&](int32_t done, int32_t total) {
    if (!bar_started) {
      bar = Progress("perplexity", total, "chunks");
      bar_started = true;
    }
    bar.update(done);
  });
  bar.finish();
  if (!r.ok()) return fail(r.error());
  if (opt.json) {
    nlohmann::json j{{"file", opt.file},
                     {"n_tokens", r->n_tokens},
                     {"n_ctx", r->n_ctx},
                     {"n_chunks", r->n_chunks},
                     {"n_scored", r->n_scored},
                     {"ppl", r->ppl},
                     {"ppl_stderr", r->ppl_stderr},
                     {"chunk_ppl", r->chunk_ppl},
                     {"running_ppl", r->running_ppl},
                     {"seconds", r->seconds}};
    fmt::print("{}\n", j.dump());
  } else {
    std::string line;
    for (size_t k = 0; k < r->running_ppl.size(); ++k)
      line += fmt::format("[{}]{:.4f},", k + 1, r->running_ppl[k]);
    fmt::print("{}\n", line);
    fmt::print("Final estimate: PPL = {:.4f} +/- {:.5f}  ({} tokens, {} chunks of {}, {:.2f} s)\n",
               r->ppl, r->ppl_stderr, r->n_tokens, r->n_chunks, r->n_ctx, r->seconds);
  }
  return 0;
}

}  // namespace

void register_perplexity(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<PerplexityOptions>();
  CLI::App* cmd =
      app.add_subcommand("perplexity", "Perplexity of a text file (llama.cpp's method)");
  add_model_options(cmd, opt->model);
  cmd->add_option("-f,--file", opt->file, "Text file")->required();
  cmd->add_flag("--json", opt->json, "Print one JSON object");
  cmd->callback([opt, &selected] { selected = [opt] { return run_perplexity(*opt); }; });
}

}  // namespace kandil::app
