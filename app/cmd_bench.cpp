// kandil bench -m MODEL[,MODEL...] -p 128,512 -n 32,128 -t 2 -r 5 [--json]
// llama-bench semantics: "pp N" evaluates N prompt tokens in one batch from an empty cache;
// "tg N" runs N single-token decode steps from an empty cache. Each test runs once as a warm-up,
// then `-r` timed repetitions; t/s is reported as mean ± sample standard deviation.
#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include <sys/resource.h>

#include "app/commands.h"
#include "app/common.h"
#include "app/util.h"
#include "kandil/model.h"
#include "kandil/system.h"

namespace kandil::app {
namespace {

struct BenchOptions {
  std::string models;
  std::string prompts = "512";
  std::string gens = "128";
  int32_t threads = 0;
  int32_t reps = 5;
  std::string cache_type = "f16";
  bool json = false;
  bool bandwidth = false;
};

Result<std::vector<int32_t>> parse_list(const std::string& s, const char* flag) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int v = std::stoi(item, &used);
      if (used != item.size() || v < 0) throw std::invalid_argument(item);
      if (v > 0) out.push_back(v);
    } catch (const std::exception&) {
      return Error{
          fmt::format("{} '{}': expected a comma-separated list of token counts", flag, s)};
    }
  }
  return out;
}

std::vector<std::string> split_models(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Peak resident set size of this process so far (bytes): the mapped model pages it touched, the
// KV cache and the buffers.
uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

// Bytes of the KV cache a context of n_ctx positions allocates.
uint64_t kv_cache_bytes(const ModelConfig& c, int32_t n_ctx, KvCacheType type) {
  const uint64_t elems = 2ull * static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(n_ctx) *
                         static_cast<uint64_t>(c.n_head_kv) * static_cast<uint64_t>(c.head_dim);
  switch (type) {
    case KvCacheType::f32:
      return elems * 4;
    case KvCacheType::f16:
      return elems * 2;
    case KvCacheType::q8_0:
      return elems / 32 * 34;
  }
  return 0;
}

struct Stats {
  double mean = 0, stdev = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stdev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

// Seconds for one run of a test (the context is cleared first).
Result<double> run_once(Context& ctx, const std::vector<TokenId>& tokens, bool prompt) {
  ctx.clear();
  auto t0 = std::chrono::steady_clock::now();
  if (prompt) {
    KANDIL_CHECK_OK(ctx.decode(tokens));
  } else {
    for (TokenId id : tokens) KANDIL_CHECK_OK(ctx.decode(&id, 1));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_bench(const BenchOptions& opt) {
  auto pp = parse_list(opt.prompts, "-p");
  if (!pp.ok()) return fail(pp.error());
  auto tg = parse_list(opt.gens, "-n");
  if (!tg.ok()) return fail(tg.error());
  if (opt.reps < 1) return fail(Error{"-r must be at least 1"});
  auto models = split_models(opt.models);
  if (models.empty()) {
    auto m = resolve_model_path("");
    if (!m.ok()) return fail(m.error());
    models.push_back(*m);
  }

  nlohmann::json results = nlohmann::json::array();
  if (!opt.json) {
    fmt::print("| model | size | params | threads | test | t/s | GB/s | peak RSS |\n");
    fmt::print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");
  }
  for (const std::string& path : models) {
    auto model = Model::load(path);
    if (!model.ok()) return fail(model.error());
    const Model& m = **model;
    const uint64_t params = m.n_params();
    // Bytes one decode step reads: every weight except the embedding table (one row of it is
    // read), unless the output projection reuses it.
    uint64_t step_bytes = m.weight_bytes();
    if (!m.config().tied_embeddings) step_bytes -= m.token_embd_bytes();
    int32_t max_tokens = 1;
    for (int32_t n : *pp) max_tokens = std::max(max_tokens, n);
    for (int32_t n : *tg) max_tokens = std::max(max_tokens, n);
    ContextParams p;
    p.n_ctx = max_tokens;
    p.n_batch = max_tokens;
    p.n_threads = opt.threads;
    auto cache_type = parse_cache_type(opt.cache_type);
    if (!cache_type.ok()) return fail(cache_type.error());
    p.cache_type = *cache_type;
    auto ctx = Context::create(*model, p);
    if (!ctx.ok()) return fail(ctx.error());

    const uint64_t kv_bytes = kv_cache_bytes(m.config(), p.n_ctx, p.cache_type);

    std::mt19937 rng(42);
    std::uniform_int_distribution<TokenId> any(0, m.config().n_vocab - 1);
    auto run_test = [&](int32_t n, bool prompt) -> int {
      std::vector<TokenId> tokens(static_cast<size_t>(n));
      for (TokenId& t : tokens) t = any(rng);
      std::vector<double> tps;
      for (int32_t r = 0; r <= opt.reps; ++r) {
        auto s = run_once(**ctx, tokens, prompt);
        if (!s.ok()) return fail(s.error());
        if (r > 0) tps.push_back(n / *s);  // repetition 0 is the warm-up
      }
      const Stats st = stats(tps);
      const std::string test = fmt::format("{}{}", prompt ? "pp" : "tg", n);
      nlohmann::json j{{"model", path},
                       {"model_bytes", m.file_bytes()},
                       {"params", params},
                       {"threads", (*ctx)->n_threads()},
                       {"test", test},
                       {"n_prompt", prompt ? n : 0},
                       {"n_gen", prompt ? 0 : n},
                       {"reps", opt.reps},
                       {"tokens_per_second", st.mean},
                       {"stdev", st.stdev},
                       {"samples", tps},
                       {"kv_cache_bytes", kv_bytes},
                       {"peak_rss_bytes", peak_rss_bytes()}};
      std::string gbps = "";
      if (!prompt) {
        const double g = static_cast<double>(step_bytes) * st.mean / 1e9;
        j["bytes_per_token"] = step_bytes;
        j["gb_per_second"] = g;
        gbps = fmt::format("{:.1f}", g);
      }
      results.push_back(j);
      if (!opt.json) {
        fmt::print("| {} | {:.1f} MiB | {:.1f} M | {} | {} | {:.2f} ± {:.2f} | {} | {:.1f} MiB |\n",
                   path, static_cast<double>(m.file_bytes()) / (1024.0 * 1024.0),
                   static_cast<double>(params) / 1e6, (*ctx)->n_threads(), test, st.mean, st.stdev,
                   gbps, static_cast<double>(peak_rss_bytes()) / (1024.0 * 1024.0));
        std::fflush(stdout);
      }
      return 0;
    };
    for (int32_t n : *pp) {
      if (int rc = run_test(n, true); rc != 0) return rc;
    }
    for (int32_t n : *tg) {
      if (int rc = run_test(n, false); rc != 0) return rc;
    }
  }
  // Last, so its buffer does not count in the tests' peak RSS.
  if (opt.bandwidth) {
    const int threads = opt.threads > 0 ? opt.threads : 0;
    const double gbps = measure_read_bandwidth(threads);
    results.push_back({{"test", "read_bandwidth"}, {"threads", threads}, {"gb_per_second", gbps}});
    if (!opt.json) {
      fmt::print("\nmemory read bandwidth: {:.1f} GB/s (best of 5 passes over 1 GiB)\n", gbps);
      for (const nlohmann::json& r : results) {
        if (!r.contains("bytes_per_token")) continue;
        fmt::print("  {} {}: {:.0f} % of it\n", r["model"].get<std::string>(),
                   r["test"].get<std::string>(), 100.0 * r["gb_per_second"].get<double>() / gbps);
      }
    }
  }
  if (opt.json) fmt::print("{}\n", results.dump(2));
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Prompt-processing and generation speed (llama-bench semantics)");
  cmd->add_option("-m,--model", opt->models,
                  "GGUF model(s) or HF folder(s), comma-separated (default: $KANDIL_MODEL)");
  cmd->add_option("-p,--n-prompt", opt->prompts, "Prompt sizes, comma-separated (0: none)")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", opt->gens, "Generation lengths, comma-separated (0: none)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", opt->threads, "Threads (default: all cores)");
  cmd->add_option("-r,--repetitions", opt->reps, "Timed repetitions per test")
      ->capture_default_str();
  cmd->add_option("--cache-type", opt->cache_type, kCacheTypeHelp)
      ->check(CLI::IsMember(cache_type_names()))
      ->capture_default_str();
  cmd->add_flag("--bandwidth", opt->bandwidth,
                "Also measure the memory read bandwidth (the decode roofline) at the end");
  cmd->add_flag("--json", opt->json, "Print a JSON array of results");
  cmd->callback([opt, &selected] { selected = [opt] { return run_bench(*opt); }; });
}

}  // namespace kandil::app
