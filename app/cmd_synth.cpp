// kandil synth -o OUT.gguf [--preset tiny|250m|1.1b] [shape flags] [--type T] [--seed S]
//              [--init test|train] [--tokenizer VOCAB.gguf] [--name NAME] [--json]
// Writes a random-weight LLaMA-shaped model for tests and benchmarks, or the starting point of a
// model trained from scratch (--init train with a trained tokenizer, docs/default-model.md).
#include <fmt/core.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/gguf.h"
#include "kandil/lora.h"
#include "kandil/synth.h"

namespace kandil::app {
namespace {

struct SynthOptions {
  std::string out, preset = "tiny", type = "f32", fallback = "q8_0", lora_out, init = "test";
  std::string tokenizer, name;
  std::optional<int32_t> layers, dim, ffn, heads, kv_heads, vocab, ctx;
  uint64_t seed = 1234;
  bool tied = false, json = false;
};

int run_synth(const SynthOptions& opt) {
  SynthSpec s;
  if (opt.preset == "250m") {
    s.n_layer = 16, s.n_embd = 1024, s.n_ff = 2816, s.n_head = 16, s.n_head_kv = 4,
    s.n_vocab = 32000;
    s.n_ctx = 4096;
  } else if (opt.preset == "1.1b") {
    s.n_layer = 22, s.n_embd = 2048, s.n_ff = 5632, s.n_head = 32, s.n_head_kv = 4,
    s.n_vocab = 32000;
    s.n_ctx = 4096;
  }
  if (opt.layers) s.n_layer = *opt.layers;
  if (opt.dim) s.n_embd = *opt.dim;
  if (opt.ffn) s.n_ff = *opt.ffn;
  if (opt.heads) s.n_head = *opt.heads;
  if (opt.kv_heads) s.n_head_kv = *opt.kv_heads;
  if (opt.vocab) s.n_vocab = *opt.vocab;
  if (opt.ctx) s.n_ctx = *opt.ctx;
  auto type = tensor_type_from_name(opt.type);
  auto fallback = tensor_type_from_name(opt.fallback);
  if (!type) return fail(Error{fmt::format("--type '{}': unknown tensor type", opt.type)});
  if (!fallback)
    return fail(Error{fmt::format("--fallback-type '{}': unknown tensor type", opt.fallback)});
  s.type = *type;
  s.fallback_type = *fallback;
  s.seed = opt.seed;
  s.tied_embeddings = opt.tied;
  s.name = opt.name.empty() ? fmt::format("kandil-synth-{}-{}", opt.preset, opt.type) : opt.name;
  s.init = opt.init == "train" ? SynthInit::train : SynthInit::test;
  s.tokenizer_gguf = opt.tokenizer;

  Progress bar("synth", 2 + 9 * s.n_layer + (s.tied_embeddings ? 0 : 1), "tensors");
  auto r = write_synthetic_model(s, opt.out, [&](int done, int) { bar.update(done); });
  bar.finish();
  if (!r.ok()) return fail(r.error());
  if (!opt.lora_out.empty()) {  // a random all-linear PEFT adapter for this model (tests)
    auto model = Model::load(opt.out);
    if (!model.ok()) return fail(model.error());
    LoraSynthSpec ls;
    ls.rank = 8;
    ls.b_stddev = 0.5f;
    ls.seed = opt.seed + 1;
    auto w = write_synthetic_peft_adapter((*model)->config(), ls, opt.lora_out);
    if (!w.ok()) return fail(w.error());
  }
  if (!opt.tokenizer.empty()) {  // the vocabulary size came from the tokenizer file
    auto f = GgufFile::open(opt.out);
    if (!f.ok()) return fail(f.error());
    auto n = f->get_int("llama.vocab_size");
    if (n.ok() && *n) s.n_vocab = static_cast<int32_t>(**n);
  }
  const auto bytes = std::filesystem::file_size(opt.out);
  if (opt.json) {
    fmt::print("{}\n", nlohmann::json{{"file", opt.out},
                                      {"bytes", bytes},
                                      {"type", tensor_type_name(s.type)},
                                      {"n_layer", s.n_layer},
                                      {"n_embd", s.n_embd},
                                      {"n_ff", s.n_ff},
                                      {"n_head", s.n_head},
                                      {"n_head_kv", s.n_head_kv},
                                      {"n_vocab", s.n_vocab},
                                      {"seed", s.seed}}
                           .dump());
  } else {
    fmt::print("wrote {} ({:.1f} MiB): {} layers, dim {}, ffn {}, {}/{} heads, vocab {}, {}\n",
               opt.out, static_cast<double>(bytes) / (1024.0 * 1024.0), s.n_layer, s.n_embd, s.n_ff,
               s.n_head, s.n_head_kv, s.n_vocab, tensor_type_name(s.type));
  }
  return 0;
}

}  // namespace

void register_synth(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<SynthOptions>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a random-weight LLaMA-shaped GGUF model");
  cmd->add_option("-o,--output", opt->out, "Output GGUF file")->required();
  cmd->add_option("--preset", opt->preset, "Shape: tiny, 250m or 1.1b")
      ->check(CLI::IsMember({"tiny", "250m", "1.1b"}))
      ->capture_default_str();
  cmd->add_option("--layers", opt->layers, "Blocks");
  cmd->add_option("--dim", opt->dim, "Embedding width");
  cmd->add_option("--ffn", opt->ffn, "Feed-forward width");
  cmd->add_option("--heads", opt->heads, "Attention heads");
  cmd->add_option("--kv-heads", opt->kv_heads, "KV heads");
  cmd->add_option("--vocab", opt->vocab, "Vocabulary size (>= 259)");
  cmd->add_option("--ctx", opt->ctx, "Training context length (metadata)");
  cmd->add_option("--type", opt->type, "Matrix type (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k, ...)")
      ->capture_default_str();
  cmd->add_option("--fallback-type", opt->fallback, "Type for rows not divisible by the block size")
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Random seed")->capture_default_str();
  cmd->add_option("--lora-out", opt->lora_out,
                  "Also write a random rank-8 PEFT adapter for the model to this folder");
  cmd->add_option(
         "--init", opt->init,
         "Weights: test (realistic activations) or train (N(0, 0.02), to train from scratch)")
      ->check(CLI::IsMember({"test", "train"}))
      ->capture_default_str();
  cmd->add_option("--tokenizer", opt->tokenizer,
                  "GGUF whose tokenizer.* metadata to use (sets the vocabulary size)");
  cmd->add_option("--name", opt->name, "general.name of the model");
  cmd->add_flag("--tied", opt->tied, "Tie the output projection to the token embeddings");
  cmd->add_flag("--json", opt->json, "Print one JSON object");
  cmd->callback([opt, &selected] { selected = [opt] { return run_synth(*opt); }; });
}

}  // namespace kandil::app
