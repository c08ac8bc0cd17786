// Shared helpers for the test suite.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace kandil::testing {

// Fixture folder: $KANDIL_FIXTURES, else ../shared/fixtures beside the source tree.
inline std::string fixtures_dir() {
  if (const char* env = std::getenv("KANDIL_FIXTURES"); env && *env) return env;
  return std::string(KANDIL_SOURCE_DIR) + "/../shared/fixtures";
}

inline std::string fixture(const std::string& relative) { return fixtures_dir() + "/" + relative; }

inline bool has_fixture(const std::string& relative) {
  return std::filesystem::exists(fixture(relative));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A per-test scratch directory under the system temp dir.
inline std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("kandil-test-") + info->test_suite_name() + "-" + info->name() + "-" +
              std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Normal(0, sigma) values, never exactly zero: kernels are tested on fresh random inputs.
inline std::vector<float> random_row(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    do {
      x = dist(rng);
    } while (x == 0.0f);
  }
  return v;
}

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the `kandil` binary with `args` (shell syntax), capturing stdout, stderr and the exit code.
// kandil's own default model in this checkout (models/; may be absent in a partial clone).
inline std::string bundled_model() {
  return std::string(KANDIL_SOURCE_DIR) + "/models/kandil-code-12m-q8_0.gguf";
}

inline CommandResult run_kandil(const std::string& args) {
  const std::string err_file = temp_dir() + "/stderr.txt";
  const std::string cmd = std::string(KANDIL_BINARY) + " " + args + " 2>" + err_file;
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_file);
  return r;
}

}  // namespace kandil::testing

// Skips the current test with a visible message when a fixture is absent.
#define KANDIL_REQUIRE_FIXTURE(relative)                                                \
  do {                                                                                  \
    if (!::kandil::testing::has_fixture(relative)) {                                    \
      GTEST_SKIP() << "fixture " << ::kandil::testing::fixture(relative)                \
                   << " not found (set KANDIL_FIXTURES to the shared fixtures folder)"; \
    }                                                                                   \
  } while (0)
