// kandil finetune -m BASE --data FILE [--val FILE] [--lora-r R --lora-alpha A --targets LIST |
// --full] [--steps N | --epochs E] [--lr] [--batch] [--grad-accum] [--ctx] [--seed] -o DIR
// [--resume]: reads JSONL examples, trains LoRA (or every weight) with the engine's Trainer, logs
// each optimizer step to DIR/log.jsonl, checkpoints atomically, and exports the result.
// See docs/training.md ("kandil finetune").
#include <fmt/core.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "app/commands.h"
#include "app/common.h"
#include "app/finetune_state.h"
#include "app/util.h"
#include "kandil/chat_template.h"
#include "kandil/lora_export.h"
#include "kandil/train.h"
#include "kandil/train_data.h"

namespace kandil::app {
namespace {

struct FinetuneOptions {
  std::string model, data, val, out;
  double val_fraction = 0.0;
  int32_t lora_r = 8;
  float lora_alpha = 16.0f;
  std::string targets = "q,v";
  bool full = false, rslora = false;
  int64_t steps = 0;
  double epochs = 0.0;
  float lr = 1e-4f;
  int32_t batch = 4, grad_accum = 1, ctx = 256;
  uint64_t seed = 42;
  std::string schedule = "constant";
  int32_t warmup = 0;
  float weight_decay = 0.0f, max_grad_norm = 1.0f;
  int64_t checkpoint_every = 100, eval_every = 0;
  int32_t threads = 0;
  bool checkpoint_activations = false, resume = false, json = false;
};

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

// A float option as its shortest decimal (0.01, not 0.009999999776), for state.json.
double shortest(float f) { return std::stod(fmt::format("{}", f)); }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Result<std::vector<LoraTarget>> parse_targets(const std::string& list) {
  std::vector<LoraTarget> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    bool found = false;
    for (int t = 0; t < kNumLoraTargets && !found; ++t) {
      const auto tgt = static_cast<LoraTarget>(t);
      const std::string peft(lora_target_peft_name(tgt));
      if (item == peft || item == peft.substr(0, peft.find('_')) ||
          item == lora_target_gguf_name(tgt)) {
        out.push_back(tgt);
        found = true;
      }
    }
    if (!found) {
      return make_error("--targets: unknown module '" + item +
                        "' (expected q, k, v, o, gate, up, down or their q_proj/attn_q names)");
    }
  }
  if (out.empty()) return make_error("--targets: no module given");
  return out;
}

Result<LrSchedule> parse_schedule(const std::string& s) {
  if (s == "constant") return LrSchedule::constant;
  if (s == "linear") return LrSchedule::linear;
  if (s == "cosine") return LrSchedule::cosine;
  return make_error("--schedule: expected constant, linear or cosine, got '" + s + "'");
}

// Tokenized examples of a JSONL file (messages need the model's chat template).
Result<std::vector<TrainExample>> load_examples(const std::string& path, const Model& model) {
  auto raw = read_jsonl(path);
  if (!raw.ok()) return raw.error();
  if (raw->empty()) return make_error(path + ": no examples");
  std::optional<ChatTemplate> tpl;
  for (const RawExample& ex : *raw) {
    if (ex.format != ExampleFormat::messages) continue;
    auto src = chat_template_from_gguf(model.gguf());
    if (!src.ok()) return src.error();
    if (!*src) {
      return make_error(ex.source +
                        ": a \"messages\" example needs a chat template, and the model "
                        "has none (tokenizer.chat_template)");
    }
    auto parsed = ChatTemplate::parse(**src, "model");
    if (!parsed.ok()) return parsed.error();
    tpl = std::move(*parsed);
    break;
  }
  return tokenize_examples(*raw, model.tokenizer(), tpl ? &*tpl : nullptr);
}

// Mean loss over `seqs` in batches of `batch` (file order), weighted by counted targets.
Result<double> validation_loss(Trainer& trainer, const std::vector<PackedSequence>& seqs,
                               int32_t batch, int32_t ctx) {
  double sum = 0.0;
  int64_t count = 0;
  for (size_t i = 0; i < seqs.size(); i += static_cast<size_t>(batch)) {
    TrainBatch b;
    b.T = ctx;
    for (size_t k = i; k < std::min(seqs.size(), i + static_cast<size_t>(batch)); ++k) {
      b.tokens.insert(b.tokens.end(), seqs[k].tokens.begin(), seqs[k].tokens.end());
      b.targets.insert(b.targets.end(), seqs[k].targets.begin(), seqs[k].targets.end());
      ++b.B;
    }
    int64_t n = 0;
    for (int32_t t : b.targets) n += t >= 0 ? 1 : 0;
    if (n == 0) continue;
    auto loss = trainer.eval(b);
    if (!loss.ok()) return loss.error();
    sum += *loss * static_cast<double>(n);
    count += n;
  }
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

nlohmann::ordered_json make_fingerprint(const FinetuneOptions& o, const std::string& model_path,
                                        const Model& model, const std::string& data_hash,
                                        const std::string& val_hash) {
  nlohmann::ordered_json j;
  j["model"] = std::filesystem::path(model_path).filename().string();
  j["model_bytes"] = model.file_bytes();
  j["data"] = data_hash;
  j["val"] = val_hash;
  j["val_fraction"] = o.val_fraction;
  j["mode"] = o.full ? "full" : "lora";
  if (!o.full) {
    j["lora_r"] = o.lora_r;
    j["lora_alpha"] = shortest(o.lora_alpha);
    j["targets"] = o.targets;
    j["rslora"] = o.rslora;
  }
  j["lr"] = shortest(o.lr);
  j["batch"] = o.batch;
  j["grad_accum"] = o.grad_accum;
  j["ctx"] = o.ctx;
  j["seed"] = o.seed;
  j["schedule"] = o.schedule;
  j["warmup"] = o.warmup;
  j["weight_decay"] = shortest(o.weight_decay);
  j["max_grad_norm"] = shortest(o.max_grad_norm);
  j["checkpoint_activations"] = o.checkpoint_activations;
  return j;
}

struct Paths {
  std::string checkpoint, state, log, peft_dir, adapter_gguf, model_gguf;
  explicit Paths(const std::string& dir)
      : checkpoint(dir + "/checkpoint.safetensors"),
        state(dir + "/state.json"),
        log(dir + "/log.jsonl"),
        peft_dir(dir),
        adapter_gguf(dir + "/adapter.gguf"),
        model_gguf(dir + "/model.gguf") {}
};

Result<void> save_all(const Trainer& trainer, const Paths& paths, FinetuneState state) {
  if (auto r = trainer.save_checkpoint(paths.checkpoint); !r.ok()) return r.error();
  return write_text_atomic(paths.state, state_to_json(state).dump(2) + "\n");
}

Result<nlohmann::ordered_json> export_result(const Trainer& trainer, const Model& model,
                                             const FinetuneOptions& o,
                                             const std::string& model_path, const Paths& paths) {
  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  if (o.full) {
    NamedWeights weights;
    for (const TrainParam& p : trainer.params()) weights.emplace_back(p.name, p.value);
    if (auto r = export_full_gguf(model.gguf(), weights, paths.model_gguf); !r.ok()) {
      return r.error();
    }
    files["model"] = paths.model_gguf;
    return files;
  }
  auto pairs = lora_pairs_from_params(trainer.params());
  if (!pairs.ok()) return pairs.error();
  LoraExportSpec spec;
  spec.alpha = o.lora_alpha;
  spec.rslora = o.rslora;
  spec.base_model_name_or_path = model_path;
  spec.pairs = std::move(*pairs);
  if (auto r = export_lora_peft(model.config(), spec, paths.peft_dir); !r.ok()) return r.error();
  if (auto r = export_lora_gguf(model.config(), spec, paths.adapter_gguf); !r.ok()) {
    return r.error();
  }
  files["peft"] = paths.peft_dir;
  files["gguf"] = paths.adapter_gguf;
  return files;
}

int run_finetune(const FinetuneOptions& o) {
  if (o.steps > 0 && o.epochs > 0) return fail(make_error("give --steps or --epochs, not both"));
  if (!o.val.empty() && o.val_fraction > 0) {
    return fail(make_error("give --val or --val-fraction, not both"));
  }
  auto model_path = resolve_model_path(o.model);
  if (!model_path.ok()) return fail(model_path.error());
  auto schedule = parse_schedule(o.schedule);
  if (!schedule.ok()) return fail(schedule.error());

  TrainOptions topt;
  topt.mode = o.full ? TrainOptions::Mode::full : TrainOptions::Mode::lora;
  if (!o.full) {
    auto targets = parse_targets(o.targets);
    if (!targets.ok()) return fail(targets.error());
    topt.lora_targets = *targets;
  }
  topt.lora_rank = o.lora_r;
  topt.lora_alpha = o.lora_alpha;
  topt.rslora = o.rslora;
  topt.lr = o.lr;
  topt.weight_decay = o.weight_decay;
  topt.schedule = *schedule;
  topt.warmup_steps = o.warmup;
  topt.max_grad_norm = o.max_grad_norm;
  topt.grad_accum = o.grad_accum;
  topt.checkpoint_activations = o.checkpoint_activations;
  topt.n_threads = o.threads;
  topt.seed = o.seed;

  auto model = Model::load(*model_path);
  if (!model.ok()) return fail(model.error());

  // Data: train / validation examples, packed into ctx-token sequences.
  auto train_ex = load_examples(o.data, **model);
  if (!train_ex.ok()) return fail(train_ex.error());
  std::vector<TrainExample> val_ex;
  if (!o.val.empty()) {
    auto v = load_examples(o.val, **model);
    if (!v.ok()) return fail(v.error());
    val_ex = std::move(*v);
  } else if (o.val_fraction > 0) {
    DataSplit split = split_validation(std::move(*train_ex), o.val_fraction, o.seed);
    *train_ex = std::move(split.train);
    val_ex = std::move(split.valid);
  }
  std::vector<PackedSequence> train_seqs = pack_examples(*train_ex, o.ctx);
  std::vector<PackedSequence> val_seqs = pack_examples(val_ex, o.ctx);
  if (train_seqs.empty())
    return fail(make_error(o.data + ": no training targets after tokenizing"));
  const int64_t n_train_seqs = static_cast<int64_t>(train_seqs.size());
  BatchIterator batches(std::move(train_seqs), o.batch, o.seed);
  const int64_t per_epoch = batches.batches_per_epoch();

  int64_t total_steps = o.steps;
  if (total_steps <= 0) {
    const double epochs = o.epochs > 0 ? o.epochs : 1.0;
    total_steps = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(epochs * static_cast<double>(per_epoch) / o.grad_accum)));
  }
  topt.total_steps = static_cast<int32_t>(total_steps);

  auto data_hash = file_fingerprint(o.data);
  if (!data_hash.ok()) return fail(data_hash.error());
  std::string val_hash;
  if (!o.val.empty()) {
    auto h = file_fingerprint(o.val);
    if (!h.ok()) return fail(h.error());
    val_hash = *h;
  }
  FinetuneState state;
  state.fingerprint = make_fingerprint(o, *model_path, **model, *data_hash, val_hash);

  auto trainer = Trainer::create(*model, topt);
  if (!trainer.ok()) return fail(trainer.error());
  Trainer& tr = **trainer;

  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) return fail(make_error(o.out + ": cannot create: " + ec.message()));
  const Paths paths(o.out);

  int64_t micro_done = 0;
  if (o.resume) {
    auto saved = read_state(paths.state);
    if (!saved.ok()) return fail(saved.error());
    const std::string diff = fingerprint_differences(saved->fingerprint, state.fingerprint);
    if (!diff.empty()) {
      return fail(make_error("--resume: this run differs from the checkpoint in " + diff));
    }
    if (auto r = tr.load_checkpoint(paths.checkpoint); !r.ok()) return fail(r.error());
    if (tr.optimizer_step() != saved->step) {
      return fail(
          make_error(fmt::format("{}: step {} does not match {}'s step {}", paths.checkpoint,
                                 tr.optimizer_step(), paths.state, saved->step)));
    }
    micro_done = saved->micro;
    TrainBatch skip;
    for (int64_t i = 0; i < micro_done; ++i) {  // the data position: replay the batch order
      if (!batches.next(skip)) batches.next(skip);
    }
    if (auto r = truncate_log(paths.log, saved->step); !r.ok()) return fail(r.error());
    fmt::print(stderr, "resuming at step {} (epoch {})\n", saved->step, batches.epoch());
  } else {
    std::filesystem::remove(paths.log, ec);
  }
  std::ofstream log(paths.log, std::ios::app | std::ios::binary);
  if (!log) return fail(make_error(paths.log + ": cannot open for writing"));

  struct sigaction sa {};
  struct sigaction old_sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_sa);
  g_interrupted = 0;

  const int64_t first_step = tr.optimizer_step();
  // The bar counts this run's steps, so its rate and ETA hold after --resume too.
  Progress bar(first_step > 0 ? fmt::format("finetune (from step {})", first_step) : "finetune",
               total_steps - first_step, "steps");
  const double t_start = now_s();
  double t_step = t_start, loss_sum = 0.0, first_loss = -1.0, last_loss = 0.0;
  double last_val = std::nan("");
  int64_t micro_in_step = 0, tokens_in_step = 0, tokens_total = 0;
  bool interrupted = false;
  auto current_state = [&] {
    FinetuneState s = state;
    s.step = tr.optimizer_step();
    s.micro = micro_done;
    s.epoch = batches.epoch();
    return s;
  };

  while (tr.optimizer_step() < total_steps) {
    if (g_interrupted) {
      interrupted = true;
      break;
    }
    TrainBatch b;
    if (!batches.next(b) && !batches.next(b)) {
      return fail(make_error(o.data + ": the data gives no batch"));
    }
    auto st = tr.step(b);
    if (!st.ok()) return fail(st.error());
    ++micro_done;
    ++micro_in_step;
    loss_sum += st->loss;
    tokens_in_step += static_cast<int64_t>(b.B) * b.T;
    if (!st->updated) continue;

    const double t = now_s();
    const double loss = loss_sum / static_cast<double>(micro_in_step);
    const double tps = t > t_step ? static_cast<double>(tokens_in_step) / (t - t_step) : 0.0;
    tokens_total += tokens_in_step;
    if (first_loss < 0) first_loss = loss;
    last_loss = loss;
    nlohmann::ordered_json line;
    line["step"] = st->step;
    line["epoch"] = batches.epoch();
    line["loss"] = loss;
    line["lr"] = st->lr;
    line["grad_norm"] = st->grad_norm;
    line["tokens_per_s"] = std::round(tps * 10.0) / 10.0;
    if (!val_seqs.empty() &&
        ((o.eval_every > 0 && st->step % o.eval_every == 0) || st->step == total_steps)) {
      auto v = validation_loss(tr, val_seqs, o.batch, o.ctx);
      if (!v.ok()) return fail(v.error());
      last_val = *v;
      line["val_loss"] = *v;
    }
    log << line.dump() << "\n";
    log.flush();
    loss_sum = 0.0;
    micro_in_step = 0;
    tokens_in_step = 0;
    t_step = t;
    bar.update(st->step - first_step, fmt::format("loss {:.4f} {:.0f} tok/s", loss, tps));
    if (o.checkpoint_every > 0 && st->step % o.checkpoint_every == 0 && st->step < total_steps) {
      if (auto r = save_all(tr, paths, current_state()); !r.ok()) return fail(r.error());
    }
  }
  bar.finish();
  sigaction(SIGINT, &old_sa, nullptr);
  if (auto r = save_all(tr, paths, current_state()); !r.ok()) return fail(r.error());
  if (interrupted) {
    fmt::print(stderr,
               "interrupted at step {} of {}; checkpoint written to {}\nresume with the same "
               "command and --resume\n",
               tr.optimizer_step(), total_steps, paths.checkpoint);
    return 130;
  }

  auto files = export_result(tr, **model, o, *model_path, paths);
  if (!files.ok()) return fail(files.error());
  const double seconds = now_s() - t_start;
  nlohmann::ordered_json summary;
  summary["steps"] = tr.optimizer_step();
  summary["steps_this_run"] = tr.optimizer_step() - first_step;
  summary["epoch"] = batches.epoch();
  summary["train_sequences"] = n_train_seqs;
  summary["val_sequences"] = val_seqs.size();
  summary["first_loss"] =
      first_loss < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(first_loss);
  summary["final_loss"] = last_loss;
  summary["val_loss"] =
      std::isnan(last_val) ? nlohmann::ordered_json() : nlohmann::ordered_json(last_val);
  summary["tokens_per_s"] = seconds > 0 ? static_cast<double>(tokens_total) / seconds : 0.0;
  summary["seconds"] = seconds;
  summary["checkpoint"] = paths.checkpoint;
  summary["log"] = paths.log;
  summary["outputs"] = *files;
  if (o.json) {
    fmt::print("{}\n", summary.dump());
  } else {
    fmt::print("trained {} steps ({} this run), loss {:.4f} -> {:.4f}", tr.optimizer_step(),
               tr.optimizer_step() - first_step, first_loss, last_loss);
    if (!std::isnan(last_val)) fmt::print(", validation loss {:.4f}", last_val);
    fmt::print("\n");
    if (o.full) {
      fmt::print("model: {}\n", paths.model_gguf);
    } else {
      fmt::print("adapter: {}/adapter_config.json + adapter_model.safetensors, {}\n", o.out,
                 paths.adapter_gguf);
    }
  }
  return 0;
}

}  // namespace

void register_finetune(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<FinetuneOptions>();
  CLI::App* cmd = app.add_subcommand("finetune", "Fine-tune a model (LoRA or full) on JSONL data");
  cmd->add_option("-m,--model", opt->model, "Base GGUF model (default: $KANDIL_MODEL)");
  cmd->add_option("--data", opt->data, "Training data (JSONL: text, prompt/completion or messages)")
      ->required();
  cmd->add_option("--val", opt->val, "Validation data (JSONL)");
  cmd->add_option("--val-fraction", opt->val_fraction, "Hold out this fraction of --data")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("-o,--output", opt->out, "Output folder")->required();
  cmd->add_option("--lora-r", opt->lora_r, "LoRA rank")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--lora-alpha", opt->lora_alpha, "LoRA alpha")->capture_default_str();
  cmd->add_option("--targets", opt->targets, "LoRA modules: q,k,v,o,gate,up,down")
      ->capture_default_str();
  cmd->add_flag("--rslora", opt->rslora, "Scale alpha / sqrt(r) (rsLoRA)");
  cmd->add_flag("--full", opt->full, "Train every weight instead of a LoRA adapter");
  auto* steps = cmd->add_option("--steps", opt->steps, "Optimizer steps")
                    ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--epochs", opt->epochs, "Epochs (default 1 when --steps is not given)")
      ->check(CLI::PositiveNumber)
      ->excludes(steps);
  cmd->add_option("--lr", opt->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--batch", opt->batch, "Sequences per micro-batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--grad-accum", opt->grad_accum, "Micro-batches per optimizer step")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--ctx", opt->ctx, "Tokens per packed sequence")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--seed", opt->seed, "Seed (LoRA init, shuffling, split)")->capture_default_str();
  cmd->add_option("--schedule", opt->schedule, "Learning-rate schedule")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}))
      ->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Warm-up steps")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--weight-decay", opt->weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--max-grad-norm", opt->max_grad_norm, "Gradient clipping (<= 0: off)")
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", opt->checkpoint_every, "Checkpoint every N steps (0: end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-every", opt->eval_every, "Validation loss every N steps (and at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-t,--threads", opt->threads, "Threads (default: all cores)");
  cmd->add_flag("--checkpoint-activations", opt->checkpoint_activations,
                "Recompute layer activations in backward (less memory)");
  cmd->add_flag("--resume", opt->resume, "Continue from DIR/checkpoint.safetensors");
  cmd->add_flag("--json", opt->json, "Print a final JSON summary (per-step lines: DIR/log.jsonl)");
  cmd->callback([opt, &selected] { selected = [opt] { return run_finetune(*opt); }; });
}

}  // namespace kandil::app
