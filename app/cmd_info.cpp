// kandil info MODEL [--json]: metadata, tensors and totals of a GGUF file.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/util.h"
#include "kandil/gguf.h"
#include "kandil/hf.h"
#include "kandil/model.h"

namespace kandil::app {
namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
  size_t max_items = 8;
};

nlohmann::json value_json(const GgufValue& v, size_t max_items) {
  switch (v.type) {
    case GgufValueType::STRING:
      return safe_utf8(v.str);
    case GgufValueType::BOOL:
      return v.b;
    case GgufValueType::FLOAT32:
      return static_cast<float>(v.f);
    case GgufValueType::FLOAT64:
      return v.f;
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64:
      return v.u;
    case GgufValueType::ARRAY: {
      // Long arrays are summarised: type, count and the first items.
      nlohmann::json items = nlohmann::json::array();
      size_t shown = static_cast<size_t>(v.count < max_items ? v.count : max_items);
      for (size_t k = 0; k < shown; ++k) {
        if (v.elem_type == GgufValueType::STRING) {
          items.push_back(safe_utf8(v.strings[k]));
        } else if (v.elem_type == GgufValueType::ARRAY) {
          items.push_back(value_json(v.arrays[k], max_items));
        } else if (v.elem_type == GgufValueType::FLOAT32 || v.elem_type == GgufValueType::FLOAT64) {
          items.push_back(v.array_f64(k));
        } else {
          items.push_back(v.array_i64(k));
        }
      }
      return {{"type", "array"},
              {"element_type", gguf_value_type_name(v.elem_type)},
              {"count", v.count},
              {"items", items},
              {"truncated", shown < v.count}};
    }
    default:
      return v.i;
  }
}

int run_info(const InfoOptions& opt) {
  // A Hugging Face folder shows the GGUF metadata it translates to (what `convert` writes).
  std::shared_ptr<const Model> hf_model;
  GgufFile gguf_file;
  if (is_hf_model_dir(opt.model)) {
    auto m = Model::load(opt.model);
    if (!m.ok()) return fail(m.error());
    hf_model = *m;
  } else {
    auto file = GgufFile::open(opt.model);
    if (!file.ok()) return fail(file.error());
    gguf_file = std::move(*file);
  }
  const GgufFile& f = hf_model ? hf_model->gguf() : gguf_file;

  uint64_t total_bytes = 0, total_params = 0;
  for (const auto& t : f.tensors()) {
    total_bytes += t.nbytes;
    total_params += static_cast<uint64_t>(t.n_elements());
  }

  if (opt.json) {
    nlohmann::json j;
    j["file"] = opt.model;
    j["version"] = f.version();
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    j["file_size"] = hf_model ? hf_model->file_bytes() : f.file_size();
    if (hf_model) j["format"] = "hf";
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& kv : f.metadata())
      meta[safe_utf8(kv.key)] = value_json(kv.value, opt.max_items);
    j["metadata"] = meta;
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : f.tensors()) {
      nlohmann::json shape = nlohmann::json::array();
      for (uint32_t d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
      tensors.push_back({{"name", safe_utf8(t.name)},
                         {"type", tensor_type_name(t.type)},
                         {"shape", shape},
                         {"bytes", t.nbytes},
                         {"offset", f.data_offset() + t.offset},
                         {"supported", tensor_type_supported(t.type)}});
    }
    j["tensors"] = tensors;
    j["totals"] = {{"tensors", f.tensors().size()},
                   {"parameters", total_params},
                   {"tensor_bytes", total_bytes},
                   {"metadata_entries", f.metadata().size()}};
    fmt::print("{}\n", j.dump(2));
    return 0;
  }

  if (hf_model) {
    fmt::print("folder: {} (Hugging Face; metadata as `kandil convert` writes it)\n", opt.model);
    fmt::print("weights: {} parameters ({:.2f} M), {} bytes of safetensors\n\n",
               hf_model->n_params(), static_cast<double>(hf_model->n_params()) / 1e6,
               hf_model->file_bytes());
  } else {
    fmt::print("file: {}\nGGUF version {}, alignment {}, data offset {}, {} bytes\n\n", opt.model,
               f.version(), f.alignment(), f.data_offset(), f.file_size());
  }
  fmt::print("metadata ({} entries):\n", f.metadata().size());
  for (const auto& kv : f.metadata()) {
    fmt::print("  {:<44} {:<5} {}\n", safe_utf8(kv.key), gguf_value_type_name(kv.value.type),
               safe_utf8(kv.value.to_string(opt.max_items)));
  }
  fmt::print("\ntensors ({}):\n", f.tensors().size());
  for (const auto& t : f.tensors()) {
    std::string shape;
    for (uint32_t d = 0; d < t.n_dims; ++d) shape += (d ? " x " : "") + std::to_string(t.ne[d]);
    fmt::print("  {:<36} {:<6} {:<20} {:>12} bytes{}\n", safe_utf8(t.name),
               tensor_type_name(t.type), "[" + shape + "]", t.nbytes,
               tensor_type_supported(t.type) ? "" : "  (type not supported for compute)");
  }
  fmt::print("\ntotals: {} tensors, {} parameters ({:.2f} M), {} tensor bytes ({:.2f} MiB)\n",
             f.tensors().size(), total_params, static_cast<double>(total_params) / 1e6, total_bytes,
             static_cast<double>(total_bytes) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace

void register_info(CLI::App& app, CommandFn& selected) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Show a GGUF file's (or HF folder's) metadata, tensors and totals");
  cmd->add_option("model", opt->model, "GGUF file or Hugging Face model folder")->required();
  cmd->add_flag("--json", opt->json, "Print one JSON object");
  cmd->add_option("--max-items", opt->max_items, "Array items shown before summarising")
      ->capture_default_str();
  cmd->callback([opt, &selected] { selected = [opt] { return run_info(*opt); }; });
}

}  // namespace kandil::app
