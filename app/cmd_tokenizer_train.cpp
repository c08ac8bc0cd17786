// kandil tokenizer train --input FILE... --vocab-size N [--special TOKENS] [--bos T] [--eos T]
//                        [--no-add-bos] [--min-frequency N] -o tokenizer.json [--gguf FILE]
//                        [--json]
// Trains a byte-level BPE tokenizer and writes tokenizer.json + tokenizer_config.json beside it
// (and optionally a vocab-only GGUF with the tokenizer.ggml.* metadata).
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/util.h"
#include "kandil/bpe_train.h"
#include "kandil/gguf.h"

namespace kandil::app {
namespace {

struct TrainOptions {
  std::vector<std::string> inputs;
  int32_t vocab_size = 8192;
  std::string special = "<|bos|>,<|eos|>,<|im_start|>,<|im_end|>";
  std::string bos = "<|bos|>", eos = "<|eos|>";
  bool no_add_bos = false, json = false;
  int64_t min_frequency = 2;
  std::string output, gguf;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    if (end > pos) out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

int run_tokenizer_train(const TrainOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  BpeTrainOptions o;
  o.vocab_size = opt.vocab_size;
  o.special_tokens = split_commas(opt.special);
  o.bos_token = opt.bos;
  o.eos_token = opt.eos;
  o.add_bos = !opt.no_add_bos;
  o.min_frequency = opt.min_frequency;
  o.progress_every = 500;
  o.progress = [&opt](int64_t done, int64_t wanted) {
    if (opt.json) return;
    std::fprintf(stderr, "\rmerges %lld / %lld", static_cast<long long>(done),
                 static_cast<long long>(wanted));
    std::fflush(stderr);
  };
  BpeTrainer trainer(o);
  for (size_t i = 0; i < opt.inputs.size(); ++i) {
    if (!opt.json) {
      std::fprintf(stderr, "\rreading %zu / %zu files", i + 1, opt.inputs.size());
      std::fflush(stderr);
    }
    if (auto r = trainer.add_file(opt.inputs[i]); !r.ok()) return fail(r.error());
  }
  if (!opt.json) std::fprintf(stderr, "\n");
  auto model = trainer.train();
  if (!opt.json) std::fprintf(stderr, "\n");
  if (!model.ok()) return fail(model.error());
  if (auto r = write_bpe_tokenizer(*model, opt.output); !r.ok()) return fail(r.error());
  if (!opt.gguf.empty()) {
    std::error_code ec;
    const auto parent = std::filesystem::path(opt.gguf).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.type", "vocab");
    w.set_string("general.name", "kandil-bpe");
    add_bpe_gguf_metadata(*model, w);
    if (auto r = w.write_file(opt.gguf); !r.ok()) return fail(r.error());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (opt.json) {
    nlohmann::json j = {{"output", opt.output},           {"vocab_size", model->tokens.size()},
                        {"merges", model->merges.size()}, {"special_tokens", model->n_special},
                        {"pieces", model->n_pieces},      {"distinct_pieces", model->n_distinct},
                        {"bytes", model->n_bytes},        {"seconds", secs}};
    if (!opt.gguf.empty()) j["gguf"] = opt.gguf;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("wrote {} ({} tokens: {} special, 256 bytes, {} merges) from {} bytes in {:.1f} s\n",
               opt.output, model->tokens.size(), model->n_special, model->merges.size(),
               model->n_bytes, secs);
  }
  return 0;
}

}  // namespace

void register_tokenizer_train(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<TrainOptions>();
  CLI::App* group = app.add_subcommand("tokenizer", "Tokenizer tools");
  group->require_subcommand(1);
  CLI::App* cmd = group->add_subcommand("train", "Train a byte-level BPE tokenizer on text files");
  cmd->add_option("--input", opt->inputs, "Text files to train on")->required()->expected(1, -1);
  cmd->add_option("--vocab-size", opt->vocab_size, "Vocabulary size (specials + 256 + merges)")
      ->check(CLI::Range(1, 1 << 22));
  cmd->add_option("--special", opt->special, "Special tokens, comma-separated (ids 0..n-1)");
  cmd->add_option("--bos", opt->bos, "The BOS token (one of the specials; empty: none)");
  cmd->add_option("--eos", opt->eos, "The EOS token (one of the specials; empty: none)");
  cmd->add_flag("--no-add-bos", opt->no_add_bos, "Do not prepend BOS when encoding");
  cmd->add_option("--min-frequency", opt->min_frequency, "Never merge pairs seen fewer times");
  cmd->add_option("-o,--output", opt->output,
                  "tokenizer.json to write (tokenizer_config.json "
                  "is written beside it)")
      ->required();
  cmd->add_option("--gguf", opt->gguf, "Also write a vocab-only GGUF with the tokenizer");
  cmd->add_flag("--json", opt->json, "Print a JSON summary (no progress line)");
  cmd->callback([opt, &selected] { selected = [opt] { return run_tokenizer_train(*opt); }; });
}

}  // namespace kandil::app
