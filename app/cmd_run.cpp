// kandil run -m MODEL -p PROMPT [-n N] [sampling flags] [--n-probs K] [--lora FILE]
// [--lora-scaled FILE:SCALE] [--json]
#include <fmt/core.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "app/commands.h"
#include "app/common.h"
#include "app/lora_options.h"
#include "app/util.h"
#include "kandil/generate.h"

namespace kandil::app {
namespace {

struct RunOptions {
  ModelOptions model;
  LoraOptions lora;
  std::string prompt, prompt_file;
  int32_t n_predict = 128;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> logit_bias;  // "ID:BIAS"
  std::vector<std::string> stop;
  int32_t n_probs = 0;
  bool json = false, no_bos = false, parse_special = false, ignore_eos = false;
};

Result<std::vector<std::pair<TokenId, float>>> parse_logit_bias(const std::vector<std::string>& in,
                                                                int32_t n_vocab) {
  std::vector<std::pair<TokenId, float>> out;
  for (const auto& s : in) {
    auto colon = s.find(':');
    try {
      if (colon == std::string::npos) throw std::invalid_argument(s);
      size_t used = 0;
      long id = std::stol(s.substr(0, colon), &used);
      if (used != colon) throw std::invalid_argument(s);
      std::string b = s.substr(colon + 1);
      float bias = (b == "-inf" || b == "-INF") ? -INFINITY : std::stof(b, &used);
      if (!std::isinf(bias) && used != b.size()) throw std::invalid_argument(s);
      if (id < 0 || id >= n_vocab) {
        return Error{
            fmt::format("--logit-bias '{}': token id {} is outside 0..{}", s, id, n_vocab - 1)};
      }
      out.emplace_back(static_cast<TokenId>(id), bias);
    } catch (const std::exception&) {
      return Error{
          fmt::format("--logit-bias '{}': expected TOKEN_ID:BIAS, e.g. 15043:-5 or 2:-inf", s)};
    }
  }
  return out;
}

int run_run(RunOptions& opt) {
  auto loaded = load_model(opt.model);
  if (!loaded.ok()) return fail(loaded.error());
  Context& ctx = *loaded->ctx;
  auto adapters = load_lora_options(opt.lora, *loaded->model);
  if (!adapters.ok()) return fail(adapters.error());
  if (!adapters->empty()) {
    auto set = AdapterSet::create(*loaded->model, *adapters);
    if (!set.ok()) return fail(set.error());
    if (auto r = set_adapters(ctx, *set); !r.ok()) return fail(r.error());
  }
  const Tokenizer& tok = loaded->model->tokenizer();

  std::string prompt = opt.prompt;
  if (!opt.prompt_file.empty()) {
    auto t = read_text_file(opt.prompt_file);
    if (!t.ok()) return fail(t.error());
    prompt = *t;
  }
  std::vector<TokenId> ids = tok.encode(prompt, !opt.no_bos, opt.parse_special);
  if (ids.empty()) return fail(Error{"the prompt is empty (give -p TEXT or -f FILE)"});

  auto bias = parse_logit_bias(opt.logit_bias, loaded->model->config().n_vocab);
  if (!bias.ok()) return fail(bias.error());
  opt.sampling.logit_bias = *bias;
  opt.sampling.seed = opt.seed ? *opt.seed : std::random_device{}();
  Sampler sampler(opt.sampling, loaded->model->config().n_vocab);

  GenerateOptions g;
  g.n_predict = opt.n_predict;
  g.stop = opt.stop;
  g.n_probs = opt.n_probs;
  g.ignore_eog = opt.ignore_eos;
  TextCallback stream;
  if (!opt.json) {
    stream = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  auto r = generate(ctx, sampler, ids, g, stream);
  if (!r.ok()) return fail(r.error());

  const double pp_tps =
      r->prompt_ms > 0 ? 1000.0 * static_cast<double>(ids.size()) / r->prompt_ms : 0;
  // The first generated token comes from the prompt's logits; the rest each cost one decode step.
  const size_t n_steps = r->tokens.empty() ? 0 : r->tokens.size() - 1;
  const double tg_tps =
      r->generation_ms > 0 ? 1000.0 * static_cast<double>(n_steps) / r->generation_ms : 0;
  if (opt.json) {
    nlohmann::json j;
    j["prompt_tokens"] = r->prompt_tokens;
    j["tokens"] = r->tokens;
    j["text"] = safe_utf8(r->text);
    j["stop_reason"] = stop_reason_name(r->stop_reason);
    j["seed"] = opt.sampling.seed;
    if (opt.n_probs > 0) {
      nlohmann::json steps = nlohmann::json::array();
      for (size_t i = 0; i < r->probs.size(); ++i) {
        nlohmann::json top = nlohmann::json::array();
        for (const auto& p : r->probs[i]) top.push_back({{"id", p.id}, {"prob", p.prob}});
        steps.push_back({{"token", r->tokens[i]}, {"top", top}});
      }
      j["probs"] = steps;
    }
    j["timings"] = {{"prompt_ms", r->prompt_ms},         {"prompt_tokens_per_second", pp_tps},
                    {"generation_ms", r->generation_ms}, {"generated_tokens", r->tokens.size()},
                    {"tokens_per_second", tg_tps},       {"threads", ctx.n_threads()}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("\n");
  }
  std::fflush(stdout);
  fmt::print(stderr,
             "prompt: {} tokens in {:.1f} ms ({:.1f} t/s) | generation: {} tokens in {:.1f} ms "
             "({:.1f} t/s) | stop: {}\n",
             ids.size(), r->prompt_ms, pp_tps, r->tokens.size(), r->generation_ms, tg_tps,
             stop_reason_name(r->stop_reason));
  return 0;
}

}  // namespace

void register_run(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt, streaming it to stdout");
  add_model_options(cmd, opt->model);
  add_lora_options(cmd, opt->lora);
  auto* p = cmd->add_option("-p,--prompt", opt->prompt, "Prompt text");
  auto* f = cmd->add_option("-f,--file", opt->prompt_file, "Read the prompt from a file");
  p->excludes(f);
  cmd->add_option("-n,--n-predict", opt->n_predict, "Tokens to generate (-1: until end of text)")
      ->capture_default_str();
  SamplingParams& s = opt->sampling;
  cmd->add_option("--temp", s.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "Top-p (1: off)")->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "Min-p (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "Tokens the penalties look back")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty, "Presence penalty")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty")
      ->capture_default_str();
  cmd->add_option("--logit-bias", opt->logit_bias, "TOKEN_ID:BIAS (repeatable; -inf bans)");
  cmd->add_option("-s,--seed", opt->seed, "Random seed (default: random)");
  cmd->add_option("--stop", opt->stop, "Stop string (repeatable)");
  cmd->add_option("--n-probs", opt->n_probs, "Report the top-K probabilities per step (--json)");
  cmd->add_flag("--no-bos", opt->no_bos, "Do not add BOS to the prompt");
  cmd->add_flag("--parse-special", opt->parse_special, "Parse special-token text in the prompt");
  cmd->add_flag("--ignore-eos", opt->ignore_eos, "Do not stop at end-of-generation tokens");
  cmd->add_flag("--json", opt->json, "Print one JSON object at the end instead of streaming");
  cmd->callback([opt, &selected] { selected = [opt] { return run_run(*opt); }; });
}

}  // namespace kandil::app
