#include "platform/common/paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace kandil::platform {
namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string xdg_dir(const char* var, const char* fallback) {
  std::string base = env_or_empty(var);
  if (base.empty()) {
    std::string home = env_or_empty("HOME");
    if (home.empty()) home = "/tmp";
    base = home + "/" + fallback;
  }
  return base + "/kandil";
}

}  // namespace

std::string config_dir() { return xdg_dir("XDG_CONFIG_HOME", ".config"); }
std::string data_dir() { return xdg_dir("XDG_DATA_HOME", ".local/share"); }
std::string database_path() { return data_dir() + "/kandil.db"; }
std::string history_path() { return data_dir() + "/history"; }
std::string audit_dir() { return data_dir() + "/audit"; }

Result<void> make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Error{path + ": cannot create directory: " + ec.message()};
  return {};
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open: " + std::strerror(errno)};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> write_file_atomic(const std::string& path, const std::string& data, int mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{tmp + ": cannot create: " + std::strerror(errno)};
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string msg = tmp + ": write failed: " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error{msg};
    }
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, static_cast<mode_t>(mode));
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Error{tmp + ": cannot flush: " + std::strerror(errno)};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = path + ": cannot replace: " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return Error{msg};
  }
  return {};
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso8601_from_ms(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string now_iso8601() { return iso8601_from_ms(now_unix_ms()); }

std::string random_hex(size_t bytes) {
  std::random_device rd;
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xffu;
    out += digits[v >> 4];
    out += digits[v & 15];
  }
  return out;
}

}  // namespace kandil::platform
