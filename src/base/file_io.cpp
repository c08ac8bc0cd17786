#include "base/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kandil {

Result<void> write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(tmp + ": cannot create: " + std::strerror(errno));
  const auto* p = static_cast<const uint8_t*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      std::remove(tmp.c_str());
      return make_error(tmp + ": write failed: " + std::strerror(e));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error(tmp + ": write failed: " + std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error(path + ": cannot rename into place: " + std::strerror(e));
  }
  return {};
}

Result<AtomicFileWriter> AtomicFileWriter::create(const std::string& path) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(tmp + ": cannot create: " + std::strerror(errno));
  return AtomicFileWriter(path, fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), written_(o.written_) {
  o.fd_ = -1;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    std::remove((path_ + ".tmp").c_str());
  }
}

Result<void> AtomicFileWriter::write(const void* data, size_t size) {
  if (fd_ < 0) return make_error(path_ + ": already closed");
  const auto* p = static_cast<const uint8_t*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error(path_ + ".tmp: write failed: " + std::strerror(errno));
    p += n;
    left -= static_cast<size_t>(n);
  }
  written_ += size;
  return {};
}

Result<void> AtomicFileWriter::commit() {
  if (fd_ < 0) return make_error(path_ + ": already closed");
  const std::string tmp = path_ + ".tmp";
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error(tmp + ": write failed: " + std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error(path_ + ": cannot rename into place: " + std::strerror(e));
  }
  return {};
}

}  // namespace kandil
