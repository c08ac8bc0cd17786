// Prometheus text exposition (version 0.0.4) of the server's counters, histograms and gauges,
// all named kandil_*.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace kandil::serve {

struct Gauges {
  int32_t queue_depth = 0, slots_busy = 0, n_slots = 0;
  double kv_used_ratio = 0.0;
  int64_t steps = 0, reused_tokens = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0, cancelled = 0;
};

class Metrics {
 public:
  void request(const std::string& endpoint, int status);
  void latency(double seconds);
  void ttft(double seconds);
  std::string render(const Gauges& g) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,    2.5,   5,    10,  30,   60};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0.0;
    void observe(double v);
    void render(std::string& out, const std::string& name, const std::string& help) const;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram latency_, ttft_;
};

}  // namespace kandil::serve
