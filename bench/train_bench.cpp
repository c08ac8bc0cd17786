// Training throughput: tokens/s of Trainer::step on a model (a GGUF path, or a synthesized
// LLaMA-shaped model), for a LoRA or full fine-tuning configuration, batch and context.
//
//   kandil_train_bench [--model PATH | --synth-embd N --synth-layers L --synth-ff F]
//                      [--mode lora|full] [--rank R] [--targets qkvo|all] [--batch B] [--ctx T]
//                      [--steps S] [--threads N] [--checkpoint]
//
// bench/train_torch.py runs the same shape in PyTorch (synth defaults = its defaults: 8 heads,
// 2 KV heads, vocab 4096).
//
// The first step is a warm-up (page faults, allocation); the rest are timed. See
// docs/training.md for how to compare with PyTorch on the same CPU.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "kandil/synth.h"
#include "kandil/train.h"

using namespace kandil;

int main(int argc, char** argv) {
  std::string model_path, mode = "lora", targets = "all";
  int rank = 8, B = 4, T = 128, steps = 5, threads = 0;
  int synth_embd = 256, synth_layers = 4, synth_ff = 768;
  bool ckpt = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    const std::string a = argv[i];
    if (a == "--model")
      model_path = next("--model");
    else if (a == "--mode")
      mode = next("--mode");
    else if (a == "--rank")
      rank = std::atoi(next("--rank"));
    else if (a == "--targets")
      targets = next("--targets");
    else if (a == "--batch")
      B = std::atoi(next("--batch"));
    else if (a == "--ctx")
      T = std::atoi(next("--ctx"));
    else if (a == "--steps")
      steps = std::atoi(next("--steps"));
    else if (a == "--threads")
      threads = std::atoi(next("--threads"));
    else if (a == "--synth-embd")
      synth_embd = std::atoi(next("--synth-embd"));
    else if (a == "--synth-layers")
      synth_layers = std::atoi(next("--synth-layers"));
    else if (a == "--synth-ff")
      synth_ff = std::atoi(next("--synth-ff"));
    else if (a == "--checkpoint")
      ckpt = true;
    else {
      std::fprintf(stderr, "unknown flag %s (see the comment at the top of train_bench.cpp)\n",
                   a.c_str());
      return 2;
    }
  }
  if (model_path.empty()) {
    SynthSpec s;
    s.n_embd = synth_embd;
    s.n_layer = synth_layers;
    s.n_ff = synth_ff;
    s.n_head = synth_embd / 32;
    s.n_head_kv = std::max(1, s.n_head / 4);
    s.n_vocab = 4096;
    s.n_ctx = std::max(512, T);
    model_path = (std::filesystem::temp_directory_path() / "kandil-train-bench.gguf").string();
    auto w = write_synthetic_model(s, model_path);
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.error().message.c_str());
      return 1;
    }
  }
  auto model = Model::load(model_path);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  TrainOptions o;
  o.mode = mode == "full" ? TrainOptions::Mode::full : TrainOptions::Mode::lora;
  o.lora_rank = rank;
  if (targets == "qkvo") {
    o.lora_targets = {LoraTarget::q, LoraTarget::k, LoraTarget::v, LoraTarget::o};
  } else {
    o.lora_targets = {LoraTarget::q,    LoraTarget::k,  LoraTarget::v,   LoraTarget::o,
                      LoraTarget::gate, LoraTarget::up, LoraTarget::down};
  }
  o.n_threads = threads;
  o.checkpoint_activations = ckpt;
  auto tr = Trainer::create(*model, o);
  if (!tr.ok()) {
    std::fprintf(stderr, "%s\n", tr.error().message.c_str());
    return 1;
  }
  const int32_t V = (*model)->config().n_vocab;
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> tok(0, V - 1);
  TrainBatch b;
  b.B = B;
  b.T = T;
  for (int i = 0; i < B * T; ++i) b.tokens.push_back(tok(rng));
  for (int i = 0; i < B * T; ++i) b.targets.push_back(i % T + 1 < T ? b.tokens[i + 1] : -100);
  double total = 0.0;
  for (int s = 0; s <= steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    auto st = (*tr)->step(b);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.error().message.c_str());
      return 1;
    }
    std::printf("step %d loss %.4f %.3f s%s\n", s, st->loss, dt, s == 0 ? " (warm-up)" : "");
    if (s > 0) total += dt;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%s %s rank %d B %d T %d threads %d: %.1f tokens/s, peak RSS %.0f MiB\n",
              model_path.c_str(), mode.c_str(), rank, B, T, threads,
              steps > 0 ? B * T * steps / total : 0.0,
              static_cast<double>(usage.ru_maxrss) / 1024.0);
  return 0;
}
