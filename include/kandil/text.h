// Text helpers the platform needs from the engine.
#pragma once

#include <string>
#include <string_view>

namespace kandil {

// Replaces invalid UTF-8 sequences with U+FFFD.
std::string utf8_sanitize(std::string_view s);

}  // namespace kandil
