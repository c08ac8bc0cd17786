#include "app/finetune_state.h"

#include <fmt/core.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "kandil/lora.h"

namespace kandil::app {

Result<std::string> file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open");
  uint64_t h = 14695981039346656037ull;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    const std::streamsize n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) {
      h ^= static_cast<uint8_t>(buf[i]);
      h *= 1099511628211ull;
    }
  }
  if (in.bad()) return make_error(path + ": read failed");
  return fmt::format("{:016x}", h);
}

Result<void> write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error(tmp + ": cannot create");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) return make_error(tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(path + ": cannot rename into place: " + ec.message());
  return {};
}

nlohmann::ordered_json state_to_json(const FinetuneState& s) {
  nlohmann::ordered_json j;
  j["format"] = "kandil-finetune-state-1";
  j["step"] = s.step;
  j["micro"] = s.micro;
  j["epoch"] = s.epoch;
  j["fingerprint"] = s.fingerprint;
  return j;
}

Result<FinetuneState> read_state(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open (no checkpoint to resume from?)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(path + ": not a JSON object");
  if (j.value("format", "") != "kandil-finetune-state-1") {
    return make_error(path + ": expected \"format\": \"kandil-finetune-state-1\"");
  }
  FinetuneState s;
  for (const char* key : {"step", "micro", "epoch"}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0) {
      return make_error(fmt::format("{}: expected a non-negative integer \"{}\"", path, key));
    }
  }
  s.step = j["step"].get<int64_t>();
  s.micro = j["micro"].get<int64_t>();
  s.epoch = j["epoch"].get<int64_t>();
  if (!j.contains("fingerprint") || !j["fingerprint"].is_object()) {
    return make_error(path + ": expected an object \"fingerprint\"");
  }
  s.fingerprint = j["fingerprint"];
  return s;
}

std::string fingerprint_differences(const nlohmann::ordered_json& saved,
                                    const nlohmann::ordered_json& now) {
  std::string out;
  auto add = [&](const std::string& key, const std::string& was, const std::string& is) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} (checkpoint {}, now {})", key, was, is);
  };
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!saved.contains(it.key())) {
      add(it.key(), "absent", it.value().dump());
    } else if (saved[it.key()] != it.value()) {
      add(it.key(), saved[it.key()].dump(), it.value().dump());
    }
  }
  for (auto it = saved.begin(); it != saved.end(); ++it) {
    if (!now.contains(it.key())) add(it.key(), it.value().dump(), "absent");
  }
  return out;
}

Result<void> truncate_log(const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string kept, line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step) {
      kept += line + "\n";
    }
  }
  in.close();
  return write_text_atomic(path, kept);
}

namespace {

// "base_model.model.model.layers.<L>.<self_attn|mlp>.<module>.lora_<A|B>.weight"
bool parse_lora_name(const std::string& name, int32_t& layer, LoraTarget& target, bool& is_a) {
  static const std::string kPrefix = "base_model.model.model.layers.";
  if (name.rfind(kPrefix, 0) != 0) return false;
  size_t pos = kPrefix.size();
  const size_t dot = name.find('.', pos);
  if (dot == std::string::npos || dot == pos) return false;
  try {
    layer = std::stoi(name.substr(pos, dot - pos));
  } catch (const std::exception&) {
    return false;
  }
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const auto tgt = static_cast<LoraTarget>(t);
    const std::string peft(lora_target_peft_name(tgt));
    for (const char* group : {"self_attn.", "mlp."}) {
      const std::string mid = std::string(group) + peft + ".lora_";
      if (name.compare(dot + 1, mid.size(), mid) != 0) continue;
      const std::string tail = name.substr(dot + 1 + mid.size());
      if (tail != "A.weight" && tail != "B.weight") return false;
      target = tgt;
      is_a = tail[0] == 'A';
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::vector<LoraMatrices>> lora_pairs_from_params(std::span<const TrainParam> params) {
  std::map<std::tuple<int32_t, int>, LoraMatrices> pairs;
  std::map<std::tuple<int32_t, int>, int> seen;
  for (const TrainParam& p : params) {
    int32_t layer = 0;
    LoraTarget target = LoraTarget::q;
    bool is_a = false;
    if (!parse_lora_name(p.name, layer, target, is_a) || p.shape.size() != 2) {
      return make_error("trainer parameter '" + p.name + "' is not a LoRA A/B matrix");
    }
    const auto key = std::make_tuple(layer, static_cast<int>(target));
    LoraMatrices& m = pairs[key];
    m.layer = layer;
    m.target = target;
    if (is_a) {
      m.rank = static_cast<int32_t>(p.shape[0]);
      m.a = p.value;
    } else {
      m.b = p.value;
    }
    seen[key] |= is_a ? 1 : 2;
  }
  std::vector<LoraMatrices> out;
  for (auto& [key, m] : pairs) {
    if (seen[key] != 3) {
      return make_error(fmt::format("layer {} {}: LoRA pair without its {} matrix", m.layer,
                                    lora_target_peft_name(m.target), seen[key] == 1 ? "B" : "A"));
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace kandil::app
