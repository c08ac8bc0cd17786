// kandil quantize: GGUF -> GGUF of another weight type, with llama-quantize's type mixes.
#include "kandil/quantize.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "base/thread_pool.h"
#include "kandil/gguf.h"
#include "ops/quant.h"

namespace kandil {
namespace {

struct TargetInfo {
  QuantizeTarget target;
  std::string_view name;
  uint32_t file_type;  // LLAMA_FTYPE_*
  TensorType base;
};

constexpr TargetInfo kTargets[] = {
    {QuantizeTarget::F16, "F16", 1, TensorType::F16},
    {QuantizeTarget::BF16, "BF16", 32, TensorType::BF16},
    {QuantizeTarget::Q8_0, "Q8_0", 7, TensorType::Q8_0},
    {QuantizeTarget::Q4_0, "Q4_0", 2, TensorType::Q4_0},
    {QuantizeTarget::Q4_K_S, "Q4_K_S", 14, TensorType::Q4_K},
    {QuantizeTarget::Q4_K_M, "Q4_K_M", 15, TensorType::Q4_K},
    {QuantizeTarget::Q5_K_S, "Q5_K_S", 16, TensorType::Q5_K},
    {QuantizeTarget::Q5_K_M, "Q5_K_M", 17, TensorType::Q5_K},
    {QuantizeTarget::Q6_K, "Q6_K", 18, TensorType::Q6_K},
};

const TargetInfo& info_of(QuantizeTarget t) {
  for (const auto& i : kTargets) {
    if (i.target == t) return i;
  }
  return kTargets[0];
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third in between.
bool use_more_bits(int32_t i, int32_t n) {
  if (i < 0 || n <= 0) return false;
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// Weight matrices llama-quantize converts (it leaves norms, biases and a few special tensors).
bool is_quantizable(std::string_view name, uint32_t n_dims) {
  if (n_dims < 2 || !ends_with(name, "weight")) return false;
  return !contains(name, "_norm") && !contains(name, "ffn_gate_inp") &&
         !contains(name, "pos_embd") && !contains(name, "token_types");
}

bool is_quantized(TensorType t) {
  return t != TensorType::F32 && t != TensorType::F16 && t != TensorType::BF16;
}

int64_t block_of(TensorType t) {
  auto info = tensor_type_info(static_cast<uint32_t>(t));
  return info ? info->block_size : 1;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::optional<QuantizeTarget> quantize_target_from_name(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& i : kTargets) {
    if (i.name == upper) return i.target;
  }
  return std::nullopt;
}

std::string_view quantize_target_name(QuantizeTarget target) { return info_of(target).name; }

std::string quantize_target_names() {
  std::string s;
  for (const auto& i : kTargets) {
    if (!s.empty()) s += ", ";
    s += i.name;
  }
  return s;
}

uint32_t quantize_target_file_type(QuantizeTarget target) { return info_of(target).file_type; }

TensorType quantize_target_base_type(QuantizeTarget target) { return info_of(target).base; }

int32_t tensor_layer_index(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int32_t v = 0;
  size_t k = 4;
  if (k >= name.size() || !std::isdigit(static_cast<unsigned char>(name[k]))) return -1;
  for (; k < name.size() && std::isdigit(static_cast<unsigned char>(name[k])); ++k) {
    if (v > 100000000) return -1;
    v = v * 10 + (name[k] - '0');
  }
  return k < name.size() && name[k] == '.' ? v : -1;
}

TensorType quantize_tensor_type(QuantizeTarget target, std::string_view name, uint32_t n_dims,
                                int64_t row_length, TensorType current, int32_t layer,
                                int32_t n_layer, bool has_output, std::string* note) {
  if (!is_quantizable(name, n_dims)) return current;
  const TensorType base = quantize_target_base_type(target);
  TensorType t = base;
  if (is_quantized(base)) {
    const bool k_m = target == QuantizeTarget::Q4_K_M || target == QuantizeTarget::Q5_K_M;
    const bool is_output = name == "output.weight" || (!has_output && name == "token_embd.weight");
    if (is_output) {
      if (row_length % 256 != 0) {
        t = TensorType::Q8_0;
      } else if (t != TensorType::Q8_0) {
        t = TensorType::Q6_K;
      }
    } else if (contains(name, "attn_v.weight")) {
      if (k_m && use_more_bits(layer, n_layer)) {
        t = TensorType::Q6_K;
      } else if (target == QuantizeTarget::Q4_K_S && layer >= 0 && layer < 4) {
        t = TensorType::Q5_K;
      }
    } else if (contains(name, "ffn_down")) {
      if (k_m && use_more_bits(layer, n_layer)) {
        t = TensorType::Q6_K;
      } else if (target == QuantizeTarget::Q4_K_S && layer >= 0 && layer < n_layer / 8) {
        t = TensorType::Q5_K;
      }
    } else if (contains(name, "attn_qkv.weight")) {
      if (target == QuantizeTarget::Q4_K_M) t = TensorType::Q5_K;
      if (target == QuantizeTarget::Q5_K_M) t = TensorType::Q6_K;
    }
  }
  if (row_length % block_of(t) != 0) {
    const TensorType wanted = t;
    switch (t) {
      case TensorType::Q4_K:
        t = TensorType::Q5_0;
        break;
      case TensorType::Q5_K:
        t = TensorType::Q5_1;
        break;
      case TensorType::Q6_K:
        t = TensorType::Q8_0;
        break;
      default:
        t = TensorType::F16;
        break;
    }
    if (row_length % block_of(t) != 0) t = TensorType::F16;
    if (note) {
      *note =
          fmt::format("{}: row length {} is not a multiple of {}'s block size {}; using {}", name,
                      row_length, tensor_type_name(wanted), block_of(wanted), tensor_type_name(t));
    }
  }
  return t;
}

Result<QuantizeReport> quantize_model(const std::string& in, const std::string& out,
                                      QuantizeTarget target, int threads,
                                      const QuantizeProgress& progress) {
  const double start = now_s();
  auto opened = GgufFile::open(in);
  if (!opened.ok()) return opened.error();
  const GgufFile& f = *opened;

  QuantizeReport report;
  report.input = in;
  report.output = out;
  report.target = target;
  report.file_type = quantize_target_file_type(target);
  report.input_bytes = f.file_size();

  // Number of blocks: <arch>.block_count, else the highest "blk.N" + 1.
  int32_t n_layer = 0;
  auto arch = f.get_string("general.architecture");
  if (arch.ok() && arch->has_value()) {
    auto bc = f.get_int(fmt::format("{}.block_count", **arch));
    if (bc.ok() && bc->has_value()) n_layer = static_cast<int32_t>(**bc);
  }
  if (n_layer <= 0) {
    for (const auto& t : f.tensors()) n_layer = std::max(n_layer, tensor_layer_index(t.name) + 1);
  }
  const bool has_output = f.find_tensor("output.weight") != nullptr;

  // Plan every tensor first so unsupported inputs fail before any work is done.
  const auto& tensors = f.tensors();
  std::vector<TensorType> plan(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& t = tensors[k];
    std::string note;
    plan[k] = quantize_tensor_type(target, t.name, t.n_dims, t.ne[0], t.type,
                                   tensor_layer_index(t.name), n_layer, has_output, &note);
    if (!note.empty()) report.notes.push_back(note);
    if (plan[k] == t.type) continue;  // copied as is
    const ops::TypeTraits* src = ops::type_traits(t.type);
    if (src == nullptr || src->to_float == nullptr) {
      return Error{fmt::format("{}: tensor '{}' has type {}, which kandil cannot dequantize", in,
                               t.name, tensor_type_name(t.type))};
    }
    const ops::TypeTraits* dst = ops::type_traits(plan[k]);
    if (dst == nullptr || dst->from_float == nullptr) {
      return Error{fmt::format("tensor '{}': kandil has no quantizer for type {}", t.name,
                               tensor_type_name(plan[k]))};
    }
  }

  GgufWriter w;
  w.set_alignment(f.alignment());
  for (const auto& kv : f.metadata()) w.set_value(std::string(kv.key), kv.value);
  w.set_u32("general.file_type", report.file_type);
  if (is_quantized(quantize_target_base_type(target))) {
    w.set_u32("general.quantization_version", 2);
  }

  ThreadPool pool(threads > 0 ? threads : ThreadPool::hardware_threads());
  report.threads = pool.size();
  std::vector<uint8_t> buffer;
  const int total = static_cast<int>(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& t = tensors[k];
    const TensorType to = plan[k];
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    QuantizeTensorEntry entry{std::string(t.name), t.type, to, t.nbytes, t.nbytes};
    if (to == t.type) {
      KANDIL_CHECK_OK(w.add_tensor(std::string(t.name), to, shape, t.data, t.nbytes));
    } else {
      const ops::TypeTraits* src = ops::type_traits(t.type);
      const ops::TypeTraits* dst = ops::type_traits(to);
      const int64_t n = t.ne[0];
      const int64_t rows = t.n_rows();
      const size_t in_row = tensor_row_bytes(t.type, n);
      const size_t out_row = tensor_row_bytes(to, n);
      buffer.assign(out_row * static_cast<size_t>(rows), 0);
      uint8_t* out_data = buffer.data();
      pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
        std::vector<float> row(static_cast<size_t>(n));
        for (int64_t r = r0; r < r1; ++r) {
          src->to_float(t.data + static_cast<size_t>(r) * in_row, row.data(), n);
          dst->from_float(row.data(), out_data + static_cast<size_t>(r) * out_row, n);
        }
      });
      entry.bytes_out = buffer.size();
      KANDIL_CHECK_OK(w.add_tensor(std::string(t.name), to, shape, buffer.data(), buffer.size()));
    }
    report.type_counts[std::string(tensor_type_name(to))]++;
    report.tensors.push_back(std::move(entry));
    if (progress) progress(static_cast<int>(k + 1), total, t.name);
  }
  buffer.clear();
  buffer.shrink_to_fit();

  auto written = w.write_file(out);
  if (!written.ok()) return written.error();
  std::error_code ec;
  report.output_bytes = std::filesystem::file_size(out, ec);
  if (ec) report.output_bytes = 0;
  report.seconds = now_s() - start;
  return report;
}

}  // namespace kandil
