#include "app/common.h"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kandil::app {

void add_model_options(CLI::App* cmd, ModelOptions& opt) {
  cmd->add_option("-m,--model", opt.model,
                  "GGUF model file or Hugging Face model folder (default: $KANDIL_MODEL)");
  cmd->add_option("-t,--threads", opt.threads, "Threads (default: all cores)");
  cmd->add_option("-c,--ctx-size", opt.ctx, "Context size in tokens (default: model's, max 4096)");
  cmd->add_option("-b,--batch-size", opt.batch, "Tokens per forward pass")->capture_default_str();
  cmd->add_option("--cache-type", opt.cache_type, kCacheTypeHelp)
      ->check(CLI::IsMember(cache_type_names()))
      ->capture_default_str();
}

const std::vector<std::string>& cache_type_names() {
  static const std::vector<std::string> names = {"f16", "f32", "q8_0"};
  return names;
}

const char* const kCacheTypeHelp =
    "KV cache type: f16 (llama.cpp's default numerics), f32, or q8_0 (about half of f16's "
    "memory; needs a head dimension that is a multiple of 32)";

Result<KvCacheType> parse_cache_type(const std::string& name) {
  if (name == "f16") return KvCacheType::f16;
  if (name == "f32") return KvCacheType::f32;
  if (name == "q8_0") return KvCacheType::q8_0;
  return Error{fmt::format("unknown KV cache type '{}' (expected f16, f32 or q8_0)", name)};
}

std::optional<std::string> bundled_model_path() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  const std::filesystem::path dir = exe.parent_path();
  // build/<preset>/kandil in a checkout; <prefix>/bin/kandil when installed.
  for (const std::filesystem::path& candidate :
       {dir / "../../models" / kBundledModelFile,
        dir / "../share/kandil/models" / kBundledModelFile}) {
    if (std::filesystem::is_regular_file(candidate, ec)) {
      return std::filesystem::weakly_canonical(candidate, ec).string();
    }
  }
  return std::nullopt;
}

Result<std::string> resolve_model_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("KANDIL_MODEL"); env && *env) return std::string(env);
  if (auto bundled = bundled_model_path()) return *bundled;
  return Error{fmt::format(
      "no model given: pass -m MODEL.gguf or set KANDIL_MODEL (any LLaMA-family GGUF works, e.g. "
      "TinyLlama or Llama-2 in Q4_K_M / Q8_0 / F16); kandil's own models/{} was not found beside "
      "this binary",
      kBundledModelFile)};
}

Result<Loaded> load_model(const ModelOptions& opt) {
  auto path = resolve_model_path(opt.model);
  if (!path.ok()) return path.error();
  auto model = Model::load(*path);
  if (!model.ok()) return model.error();
  ContextParams p;
  p.n_ctx = opt.ctx;
  p.n_batch = opt.batch;
  p.n_threads = opt.threads;
  auto cache_type = parse_cache_type(opt.cache_type);
  if (!cache_type.ok()) return cache_type.error();
  p.cache_type = *cache_type;
  auto ctx = Context::create(*model, p);
  if (!ctx.ok()) return ctx.error();
  return Loaded{std::move(*model), std::move(*ctx)};
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open"};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{path + ": read failed"};
  return ss.str();
}

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_(now_s()),
      tty_(isatty(STDERR_FILENO) != 0) {}

void Progress::update(int64_t done, const std::string& extra) {
  const double elapsed = now_s() - start_;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
  const int percent = total_ > 0 ? static_cast<int>(100 * done / total_) : 100;
  if (!tty_ && percent / 10 == last_percent_ / 10 && done != total_) return;  // log every 10 %
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  fmt::print(stderr, "{}{} [{}{}] {}/{} {:.1f} {}/s ETA {:.0f}s {}{}", tty_ ? "\r" : "", label_,
             std::string(static_cast<size_t>(filled), '#'),
             std::string(static_cast<size_t>(kWidth - filled), '.'), done, total_, rate, unit_, eta,
             extra, tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_) fmt::print(stderr, "\n");
}

}  // namespace kandil::app
