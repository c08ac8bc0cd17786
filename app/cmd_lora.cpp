// kandil lora info FILE [--json]
// kandil lora merge -m BASE --lora FILE[:SCALE]... -o OUT.gguf [--json]
// kandil lora convert PEFT_DIR [-m BASE] -o OUT.gguf [--json]
// kandil lora bench -m MODEL [--rank R] [--swaps N] [-n TOKENS] [-r ROUNDS] [-t THREADS] [--json]
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include "app/commands.h"
#include "app/common.h"
#include "app/lora_options.h"
#include "app/util.h"
#include "kandil/lora.h"

namespace kandil::app {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

nlohmann::json info_json(const LoraInfo& i) {
  return {{"path", i.path},         {"format", i.format},     {"arch", i.arch},
          {"alpha", i.alpha},       {"rslora", i.rslora},     {"rank_min", i.rank_min},
          {"rank_max", i.rank_max}, {"n_layers", i.n_layers}, {"targets", i.targets},
          {"n_pairs", i.n_pairs},   {"n_params", i.n_params}};
}

int run_info(const std::string& path, bool json) {
  auto info = LoraAdapter::inspect(path);
  if (!info.ok()) return fail(info.error());
  if (json) {
    fmt::print("{}\n", info_json(*info).dump());
    return 0;
  }
  std::string targets;
  for (const auto& t : info->targets) targets += (targets.empty() ? "" : ", ") + t;
  fmt::print("adapter:  {} ({})\n", info->path, info->format);
  if (!info->arch.empty()) fmt::print("base:     {}\n", info->arch);
  fmt::print("rank:     {}{}\n", info->rank_max,
             info->rank_min != info->rank_max ? fmt::format(" (min {})", info->rank_min) : "");
  fmt::print("alpha:    {}{}\n", info->alpha, info->rslora ? " (rsLoRA: scale alpha/sqrt(r))" : "");
  fmt::print("targets:  {}\n", targets);
  fmt::print("layers:   {}\n", info->n_layers);
  fmt::print("pairs:    {} (A, B) matrices, {} parameters\n", info->n_pairs, info->n_params);
  return 0;
}

struct MergeOptions {
  std::string model, out;
  LoraOptions lora;
  int32_t threads = 0;
  bool json = false;
};

int run_merge(const MergeOptions& opt) {
  auto path = resolve_model_path(opt.model);
  if (!path.ok()) return fail(path.error());
  auto model = Model::load(*path);
  if (!model.ok()) return fail(model.error());
  if (opt.lora.lora.empty())
    return fail(Error{"lora merge: give at least one --lora FILE[:SCALE]"});
  auto adapters = load_lora_options(opt.lora, **model);
  if (!adapters.ok()) return fail(adapters.error());
  const auto t0 = Clock::now();
  auto r = merge_adapters_to_gguf(**model, *adapters, opt.out, opt.threads);
  if (!r.ok()) return fail(r.error());
  const double s = seconds_since(t0);
  if (opt.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& a : *adapters)
      list.push_back({{"path", a.adapter->info().path}, {"scale", a.scale}});
    fmt::print("{}\n", nlohmann::json{{"base", *path},
                                      {"out", opt.out},
                                      {"adapters", list},
                                      {"bytes", std::filesystem::file_size(opt.out)},
                                      {"seconds", s}}
                           .dump());
  } else {
    fmt::print("merged {} adapter(s) into {} -> {} ({:.2f} s)\n", adapters->size(), *path, opt.out,
               s);
  }
  return 0;
}

struct ConvertOptions {
  std::string dir, model, out;
  bool json = false;
};

int run_convert(const ConvertOptions& opt) {
  std::shared_ptr<const Model> base;
  if (!opt.model.empty()) {
    auto m = Model::load(opt.model);
    if (!m.ok()) return fail(m.error());
    base = *m;
  }
  auto r = convert_peft_to_gguf(opt.dir, base.get(), opt.out);
  if (!r.ok()) return fail(r.error());
  auto info = LoraAdapter::inspect(opt.out);
  if (!info.ok()) return fail(info.error());
  if (opt.json) {
    fmt::print("{}\n", info_json(*info).dump());
  } else {
    fmt::print("wrote {}: {} pairs, rank {}, alpha {}{}\n", opt.out, info->n_pairs, info->rank_max,
               info->alpha, base ? "" : " (no base given: q/k rows not reordered)");
  }
  return 0;
}

// ---- bench ----------------------------------------------------------------------------------

struct LoraBenchOptions {
  std::string model;
  int32_t rank = 16, swaps = 10000, tokens = 32, rounds = 5, threads = 0;
  std::string type = "f32";
  bool json = false;
};

struct Stats {
  double median = 0, p99 = 0, mean = 0;
};
Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.median = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  return s;
}

int run_lora_bench(const LoraBenchOptions& opt) {
  ModelOptions mo;
  mo.model = opt.model;
  mo.threads = opt.threads;
  mo.ctx = opt.tokens + 8;
  auto loaded = load_model(mo);
  if (!loaded.ok()) return fail(loaded.error());
  const Model& model = *loaded->model;
  Context& ctx = *loaded->ctx;
  const ModelConfig& c = model.config();
  const std::string dir =
      (std::filesystem::temp_directory_path() / fmt::format("kandil-lora-bench-{}", ::getpid()))
          .string();
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};

  // Four random r=R all-linear adapters, written as PEFT folders and converted to GGUF.
  std::vector<std::shared_ptr<const LoraAdapter>> adapters;
  std::vector<double> load_gguf_s, load_peft_s;
  for (int i = 0; i < 4; ++i) {
    LoraSynthSpec spec;
    spec.rank = opt.rank;
    spec.seed = 100 + static_cast<uint64_t>(i);
    spec.b_stddev = 0.01f;
    const std::string peft = fmt::format("{}/peft{}", dir, i), gguf = peft + ".gguf";
    if (auto r = write_synthetic_peft_adapter(c, spec, peft); !r.ok()) return fail(r.error());
    if (auto r = convert_peft_to_gguf(peft, &model, gguf); !r.ok()) return fail(r.error());
    auto t0 = Clock::now();
    auto a = LoraAdapter::load(gguf, model, {*tensor_type_from_name(opt.type)});
    load_gguf_s.push_back(seconds_since(t0));
    if (!a.ok()) return fail(a.error());
    t0 = Clock::now();
    auto p = LoraAdapter::load(peft, model);
    load_peft_s.push_back(seconds_since(t0));
    if (!p.ok()) return fail(p.error());
    adapters.push_back(*a);
  }
  const uint64_t adapter_bytes = adapters[0]->bytes();
  const int64_t adapter_params = adapters[0]->info().n_params;

  // Swap latency: publishing a prepared set (the hot path) and building + publishing a new one.
  auto s1 = AdapterSet::create(model, {{adapters[0], 1.0f}});
  auto s2 = AdapterSet::create(model, {{adapters[1], 1.0f}});
  if (!s1.ok() || !s2.ok()) return fail(s1.ok() ? s2.error() : s1.error());
  std::vector<double> publish_us, rebuild_us;
  publish_us.reserve(static_cast<size_t>(opt.swaps));
  rebuild_us.reserve(static_cast<size_t>(opt.swaps));
  for (int i = 0; i < opt.swaps; ++i) {
    const auto t0 = Clock::now();
    (void)set_adapters(ctx, i % 2 ? *s1 : *s2);
    publish_us.push_back(seconds_since(t0) * 1e6);
  }
  for (int i = 0; i < opt.swaps; ++i) {
    const auto t0 = Clock::now();
    auto set = AdapterSet::create(model, {{adapters[static_cast<size_t>(i % 2)], 1.0f}});
    if (set.ok()) (void)set_adapters(ctx, *set);
    rebuild_us.push_back(seconds_since(t0) * 1e6);
  }
  const Stats publish = stats_of(publish_us), rebuild = stats_of(rebuild_us);

  // Decode overhead: none / 1 / 4 active adapters, interleaved rounds of `tokens` decode steps.
  std::vector<std::shared_ptr<const AdapterSet>> configs = {nullptr, *s1};
  auto s4 = AdapterSet::create(
      model, {{adapters[0], 1.0f}, {adapters[1], 1.0f}, {adapters[2], 1.0f}, {adapters[3], 1.0f}});
  if (!s4.ok()) return fail(s4.error());
  configs.push_back(*s4);
  const char* names[] = {"none", "1 adapter", "4 adapters"};
  std::vector<std::vector<double>> tps(3);
  for (int round = 0; round <= opt.rounds; ++round) {
    for (size_t k = 0; k < configs.size(); ++k) {
      (void)set_adapters(ctx, configs[k]);
      ctx.clear();
      TokenId tok = 1;
      if (auto r = ctx.decode(&tok, 1); !r.ok()) return fail(r.error());
      const auto t0 = Clock::now();
      for (int i = 0; i < opt.tokens; ++i) {
        tok = static_cast<TokenId>(3 + (i * 7) % (c.n_vocab - 3));
        if (auto r = ctx.decode(&tok, 1); !r.ok()) return fail(r.error());
      }
      if (round > 0) tps[k].push_back(opt.tokens / seconds_since(t0));  // round 0: warm-up
    }
  }
  std::vector<double> med(3);
  for (size_t k = 0; k < 3; ++k) med[k] = stats_of(tps[k]).median;
  const double base_bytes = static_cast<double>(model.weight_bytes());

  if (opt.json) {
    nlohmann::json j;
    j["model"] = *resolve_model_path(opt.model);
    j["threads"] = ctx.n_threads();
    j["rank"] = opt.rank;
    j["lora_type"] = opt.type;
    j["adapter_params"] = adapter_params;
    j["adapter_bytes"] = adapter_bytes;
    j["base_weight_bytes"] = model.weight_bytes();
    j["load_gguf_s"] = stats_of(load_gguf_s).median;
    j["load_peft_s"] = stats_of(load_peft_s).median;
    j["swap_publish_us"] = {{"median", publish.median}, {"p99", publish.p99}, {"n", opt.swaps}};
    j["swap_rebuild_us"] = {{"median", rebuild.median}, {"p99", rebuild.p99}, {"n", opt.swaps}};
    j["decode_tps"] = {{"none", med[0]}, {"one", med[1]}, {"four", med[2]}};
    j["decode_overhead_pct"] = {{"one", 100 * (med[0] / med[1] - 1)},
                                {"four", 100 * (med[0] / med[2] - 1)}};
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("model: {} ({} threads), adapters: r={} all-linear, {} params, {:.1f} MiB {} each\n",
             *resolve_model_path(opt.model), ctx.n_threads(), opt.rank, adapter_params,
             static_cast<double>(adapter_bytes) / (1 << 20), opt.type);
  fmt::print("load (median of 4): GGUF {:.1f} ms, PEFT {:.1f} ms\n",
             1e3 * stats_of(load_gguf_s).median, 1e3 * stats_of(load_peft_s).median);
  fmt::print("swap, publish a prepared set ({} swaps): median {:.3f} us, p99 {:.3f} us\n",
             opt.swaps, publish.median, publish.p99);
  fmt::print("swap, build + publish a new set ({} swaps): median {:.1f} us, p99 {:.1f} us\n",
             opt.swaps, rebuild.median, rebuild.p99);
  for (size_t k = 0; k < 3; ++k) {
    fmt::print("decode {:<10} {:8.2f} t/s{}\n", names[k], med[k],
               k == 0 ? "" : fmt::format("  overhead {:+.1f} %", 100 * (med[0] / med[k] - 1)));
  }
  fmt::print(
      "floor: +{:.1f} % bytes per token per adapter ({:.1f} MiB over {:.1f} MiB of weights)\n",
      100.0 * static_cast<double>(adapter_bytes) / base_bytes,
      static_cast<double>(adapter_bytes) / (1 << 20), base_bytes / (1 << 20));
  return 0;
}

}  // namespace

void register_lora(CLI::App& app, CommandFn& selected) {
  CLI::App* lora = app.add_subcommand("lora", "LoRA adapters: inspect, merge, convert, bench");
  lora->require_subcommand(1);

  auto info_path = std::make_shared<std::string>();
  auto info_json_flag = std::make_shared<bool>(false);
  CLI::App* info = lora->add_subcommand("info", "Show an adapter's rank, alpha and targets");
  info->add_option("file", *info_path, "GGUF adapter or PEFT folder")->required();
  info->add_flag("--json", *info_json_flag, "Print JSON");
  info->callback([info_path, info_json_flag, &selected] {
    selected = [info_path, info_json_flag] { return run_info(*info_path, *info_json_flag); };
  });

  auto mopt = std::make_shared<MergeOptions>();
  CLI::App* merge = lora->add_subcommand("merge", "Bake adapters into an F32/F16 base, write GGUF");
  merge->add_option("-m,--model", mopt->model, "Base GGUF model (default: $KANDIL_MODEL)");
  add_lora_options(merge, mopt->lora, /*scaled_flag=*/false);
  merge->add_option("-o,--output", mopt->out, "Output GGUF file")->required();
  merge->add_option("-t,--threads", mopt->threads, "Threads (default: all cores)");
  merge->add_flag("--json", mopt->json, "Print JSON");
  merge->callback([mopt, &selected] { selected = [mopt] { return run_merge(*mopt); }; });

  auto copt = std::make_shared<ConvertOptions>();
  CLI::App* convert = lora->add_subcommand("convert", "Convert a PEFT folder to a GGUF adapter");
  convert
      ->add_option("dir", copt->dir,
                   "PEFT folder (adapter_config.json + "
                   "adapter_model.safetensors)")
      ->required();
  convert->add_option("-m,--model", copt->model,
                      "Base GGUF model: validates shapes and reorders q/k rows for its RoPE "
                      "layout (required when q_proj/k_proj are targeted)");
  convert->add_option("-o,--output", copt->out, "Output GGUF file")->required();
  convert->add_flag("--json", copt->json, "Print JSON");
  convert->callback([copt, &selected] { selected = [copt] { return run_convert(*copt); }; });

  auto bopt = std::make_shared<LoraBenchOptions>();
  CLI::App* bench = lora->add_subcommand(
      "bench", "Swap latency, adapter load time and decode overhead of random adapters");
  bench->add_option("-m,--model", bopt->model, "GGUF model (default: $KANDIL_MODEL)");
  bench->add_option("--rank", bopt->rank, "Adapter rank")->capture_default_str();
  bench->add_option("--swaps", bopt->swaps, "Swaps to time")->capture_default_str();
  bench->add_option("-n,--tokens", bopt->tokens, "Decode steps per round")->capture_default_str();
  bench->add_option("-r,--rounds", bopt->rounds, "Interleaved rounds (after one warm-up)")
      ->capture_default_str();
  bench->add_option("-t,--threads", bopt->threads, "Threads (default: all cores)");
  bench->add_option("--lora-type", bopt->type, "Adapter storage: f32, f16 or q8_0")
      ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
      ->capture_default_str();
  bench->add_flag("--json", bopt->json, "Print JSON");
  bench->callback([bopt, &selected] { selected = [bopt] { return run_lora_bench(*bopt); }; });
}

}  // namespace kandil::app
