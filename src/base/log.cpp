#include "kandil/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace kandil::log {
namespace {
std::atomic<Level> g_level{Level::warn};
std::mutex g_mutex;
const char* level_name(Level l) {
  switch (l) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "?";
}
}  // namespace

void set_level(Level level) { g_level.store(level, std::memory_order_relaxed); }
Level level() { return g_level.load(std::memory_order_relaxed); }

void init_from_env() {
  const char* v = std::getenv("KANDIL_LOG");
  if (!v) return;
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    if (std::strcmp(v, level_name(l)) == 0) set_level(l);
  }
}

void write(Level level, std::string_view message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "kandil %s: %.*s\n", level_name(level), static_cast<int>(message.size()),
               message.data());
}

}  // namespace kandil::log
