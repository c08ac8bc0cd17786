#include "app/util.h"

#include "kandil/text.h"

namespace kandil::app {
std::string safe_utf8(std::string_view s) { return utf8_sanitize(s); }
}  // namespace kandil::app
