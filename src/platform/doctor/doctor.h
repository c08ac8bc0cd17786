// What `kandil doctor` reports: CPU features, memory, threads, the configured model file,
// provider reachability and GPU presence. Each check is a value; nothing here aborts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kandil::platform {

class Config;

struct Check {
  std::string name;
  std::string status;  // ok | warn | fail | info
  std::string detail;
};

// CPU SIMD features of interest (from /proc/cpuinfo flags).
std::vector<std::string> cpu_features();
// MemTotal / MemAvailable from /proc/meminfo in bytes (0 when unknown).
int64_t memory_total_bytes();
int64_t memory_available_bytes();
// "NVIDIA driver <version>" when a GPU driver is present, else "".
std::string gpu_summary();
// Checks that a file starts with the GGUF magic.
Check check_model_file(const std::string& path);

std::vector<Check> run_doctor(const Config& config);
nlohmann::json checks_json(const std::vector<Check>& checks);

}  // namespace kandil::platform
