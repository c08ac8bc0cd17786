#include "platform/doctor/doctor.h"

#include <fmt/core.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "platform/config/config.h"
#include "platform/config/secrets.h"
#include "platform/providers/http.h"

namespace kandil::platform {
namespace {

int64_t meminfo(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string k;
  int64_t v = 0;
  std::string unit;
  while (in >> k >> v >> unit) {
    if (k == key + ":") return v * 1024;
  }
  return 0;
}

std::string human_bytes(int64_t b) {
  return fmt::format("{:.1f} GiB", static_cast<double>(b) / (1u << 30));
}

}  // namespace

std::vector<std::string> cpu_features() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::vector<std::string> out;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0 && line.rfind("Features", 0) != 0) continue;
    std::istringstream ss(line.substr(line.find(':') + 1));
    std::string f;
    while (ss >> f) {
      for (const char* want :
           {"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
            "avx512_bf16", "avx_vnni", "amx_tile", "asimd", "asimddp", "sve", "i8mm"}) {
        if (f == want) out.push_back(f);
      }
    }
    break;
  }
  return out;
}

int64_t memory_total_bytes() { return meminfo("MemTotal"); }
int64_t memory_available_bytes() { return meminfo("MemAvailable"); }

std::string gpu_summary() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line;
  if (in && std::getline(in, line)) return "NVIDIA driver: " + line.substr(0, 120);
  struct stat st {};
  if (::stat("/dev/nvidia0", &st) == 0) return "NVIDIA device /dev/nvidia0";
  if (::stat("/dev/kfd", &st) == 0) return "AMD ROCm device /dev/kfd";
  return "";
}

Check check_model_file(const std::string& path) {
  if (path.empty()) return {"model", "warn", "no model configured (kandil config set model PATH)"};
  std::ifstream in(path, std::ios::binary);
  if (!in) return {"model", "fail", path + ": cannot open"};
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() != 4 || std::string(magic, 4) != "GGUF") {
    return {"model", "fail", path + ": not a GGUF file (no GGUF magic)"};
  }
  in.seekg(0, std::ios::end);
  return {"model", "ok",
          fmt::format("{} ({})", path, human_bytes(static_cast<int64_t>(in.tellg())))};
}

std::vector<Check> run_doctor(const Config& config) {
  std::vector<Check> out;
  auto feats = cpu_features();
  std::string f;
  for (const auto& x : feats) f += (f.empty() ? "" : " ") + x;
  out.push_back({"cpu", feats.empty() ? "warn" : "ok", f.empty() ? "no SIMD features found" : f});
  out.push_back({"threads", "info", std::to_string(std::thread::hardware_concurrency())});
  out.push_back({"memory", "info",
                 fmt::format("{} total, {} available", human_bytes(memory_total_bytes()),
                             human_bytes(memory_available_bytes()))});
  std::string gpu = gpu_summary();
  out.push_back({"gpu", "info", gpu.empty() ? "none found (CPU inference)" : gpu});
  out.push_back(check_model_file(config.str("model")));
  for (const std::string p : {"openai", "anthropic"}) {
    const std::string base = config.str(p + ".base_url");
    const bool chosen = config.str("provider") == p;
    auto key = find_api_key(p);
    std::string keynote = !key.ok() ? "key: " + key.error().message
                          : *key    ? "key from " + (*key)->source
                                    : "no key";
    std::vector<std::string> headers;
    if (key.ok() && *key) {
      headers.push_back(p == "openai" ? "Authorization: Bearer " + (*key)->value
                                      : "x-api-key: " + (*key)->value);
    }
    if (p == "anthropic") headers.push_back("anthropic-version: 2023-06-01");
    if (!chosen) {
      out.push_back({p, "info", base + " (not the active provider; " + keynote + ")"});
      continue;
    }
    std::string url = base;
    while (!url.empty() && url.back() == '/') url.pop_back();
    url += p == "openai" ? "/models" : "/v1/models";
    auto st = http_get_status(url, headers,
                              std::min<int64_t>(config.integer("net.connect_timeout_s"), 5));
    if (!st.ok()) {
      out.push_back({p, "fail", "unreachable: " + st.error().message});
    } else {
      const bool good = *st >= 200 && *st < 300;
      out.push_back(
          {p, good ? "ok" : "warn", fmt::format("{} answered HTTP {} ({})", url, *st, keynote)});
    }
  }
  return out;
}

nlohmann::json checks_json(const std::vector<Check>& checks) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& c : checks)
    j.push_back({{"name", c.name}, {"status", c.status}, {"detail", c.detail}});
  return j;
}

}  // namespace kandil::platform
