// Whole-file writes that never leave a half-written file behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kandil/result.h"

namespace kandil {

// Writes `size` bytes to a temporary file beside `path`, flushes it to disk, and renames it into
// place: readers see the old file or the new one, never a mix.
Result<void> write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace kandil
