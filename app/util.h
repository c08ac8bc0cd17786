// Small helpers shared by commands.
#pragma once

#include <fmt/core.h>

#include <string>
#include <string_view>

#include "kandil/result.h"

namespace kandil::app {

// Prints "error: <message>" to stderr and returns the exit code for failures.
inline int fail(const Error& e) {
  fmt::print(stderr, "error: {}\n", e.message);
  return 1;
}

// Replaces invalid UTF-8 with U+FFFD so text can go into JSON.
std::string safe_utf8(std::string_view s);

}  // namespace kandil::app
