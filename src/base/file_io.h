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

// The same for a file written piece by piece (converters that never hold the whole output):
// bytes go to "<path>.tmp"; commit() flushes it to disk and renames it into place. Without a
// successful commit() the temporary file is removed.
class AtomicFileWriter {
 public:
  static Result<AtomicFileWriter> create(const std::string& path);
  AtomicFileWriter(AtomicFileWriter&& o) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  ~AtomicFileWriter();

  Result<void> write(const void* data, size_t size);
  uint64_t written() const { return written_; }
  Result<void> commit();

 private:
  AtomicFileWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

}  // namespace kandil
