// Flags and set-up shared by the commands that run a model.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kandil/model.h"

namespace kandil::app {

struct ModelOptions {
  std::string model;
  int32_t threads = 0;
  int32_t ctx = 0;
  int32_t batch = 512;
  std::string cache_type = "f16";
};

// -m/--model, -t/--threads, -c/--ctx-size, -b/--batch-size, --cache-type.
void add_model_options(CLI::App* cmd, ModelOptions& opt);

// --cache-type: the accepted names (checked by CLI11 at parse time), the help text, and the
// mapping to the engine's type (an error naming the accepted values for anything else).
const std::vector<std::string>& cache_type_names();
extern const char* const kCacheTypeHelp;
Result<KvCacheType> parse_cache_type(const std::string& name);

// kandil's own default model (docs/default-model.md), committed under models/.
inline constexpr const char* kBundledModelFile = "kandil-code-12m-q8_0.gguf";
// Its path when the file sits in the checkout this binary was built in (build/<preset>/kandil ->
// models/) or in an install tree (<prefix>/bin/kandil -> <prefix>/share/kandil/models/).
std::optional<std::string> bundled_model_path();

// The model named by -m, else $KANDIL_MODEL, else the bundled default model.
Result<std::string> resolve_model_path(const std::string& flag);

struct Loaded {
  std::shared_ptr<const Model> model;
  std::unique_ptr<Context> ctx;
};
Result<Loaded> load_model(const ModelOptions& opt);

// Reads a whole file (errors name the file).
Result<std::string> read_text_file(const std::string& path);

// A one-line progress bar on stderr: "label [#####.....] done/total rate ETA".
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  double start_;
  bool tty_;
  int last_percent_ = -1;
};

}  // namespace kandil::app
