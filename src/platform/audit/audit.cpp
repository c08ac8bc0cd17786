#include "platform/audit/audit.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "platform/common/paths.h"

namespace kandil::platform {
namespace {

const std::string kZeroHash(64, '0');

// Text that is not valid UTF-8 (a model may emit any bytes) is written as U+FFFD.
std::string canonical(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string hash_entry(const nlohmann::json& entry_without_hash) {
  const std::string prev = entry_without_hash.value("prev_hash", "");
  // nlohmann::json keeps object keys sorted: dump() is canonical for our entries.
  return sha256_hex(prev + canonical(entry_without_hash));
}

class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct Head {
  int64_t seq = 0;
  std::string hash = kZeroHash;
};

Result<Head> read_head(const std::string& dir) {
  Head h;
  std::ifstream in(dir + "/head");
  if (!in) return h;
  if (!(in >> h.seq >> h.hash) || h.hash.size() != 64) {
    return Error{dir + "/head: expected '<seq> <sha256>'"};
  }
  return h;
}

}  // namespace

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

AuditLog::AuditLog(std::string dir, std::function<int64_t()> clock_ms)
    : dir_(std::move(dir)),
      clock_ms_(clock_ms ? std::move(clock_ms) : [] { return now_unix_ms(); }) {}

std::vector<std::string> AuditLog::files() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() == 22 && name.rfind("audit-", 0) == 0 && name.ends_with(".jsonl")) {
      out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<int64_t> AuditLog::append(const std::string& event, const nlohmann::json& data) {
  auto d = make_dirs(dir_);
  if (!d.ok()) return d.error();
  FileLock lock(dir_ + "/lock");
  if (!lock.ok()) return Error{dir_ + "/lock: cannot lock: " + std::strerror(errno)};
  auto head = read_head(dir_);
  if (!head.ok()) return head.error();
  const int64_t ms = clock_ms_();
  nlohmann::json entry;
  entry["seq"] = head->seq + 1;
  entry["ts"] = iso8601_from_ms(ms);
  entry["event"] = event;
  entry["data"] = data;
  entry["prev_hash"] = head->hash;
  // Round-trip once so the stored entry is exactly what verify() will re-hash.
  entry = nlohmann::json::parse(canonical(entry));
  const std::string hash = hash_entry(entry);
  entry["hash"] = hash;
  const std::string file =
      dir_ + "/audit-" + entry["ts"].get<std::string>().substr(0, 10) + ".jsonl";
  const std::string line = canonical(entry) + "\n";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Error{file + ": cannot open: " + std::strerror(errno)};
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) return Error{file + ": write failed: " + std::strerror(errno)};
  auto w =
      write_file_atomic(dir_ + "/head", std::to_string(head->seq + 1) + " " + hash + "\n", 0600);
  if (!w.ok()) return w.error();
  return head->seq + 1;
}

Result<AuditVerifyResult> AuditLog::verify() const {
  AuditVerifyResult r;
  auto head = read_head(dir_);
  if (!head.ok()) return head.error();
  std::string prev = kZeroHash;
  int64_t expect_seq = 1;
  auto bad = [&r](const std::string& where, const std::string& problem) {
    r.ok = false;
    r.first_bad = where;
    r.problem = problem;
    return r;
  };
  for (const auto& name : files()) {
    ++r.files;
    std::ifstream in(dir_ + "/" + name, std::ios::binary);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      const std::string where = name + ":" + std::to_string(n);
      nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_discarded() || !e.is_object()) return bad(where, "not a JSON object");
      if (!e.contains("seq") || !e["seq"].is_number_integer() || !e.contains("hash") ||
          !e["hash"].is_string() || !e.contains("prev_hash") || !e["prev_hash"].is_string() ||
          !e.contains("ts") || !e["ts"].is_string()) {
        return bad(where, "missing seq, ts, prev_hash or hash");
      }
      const int64_t seq = e["seq"].get<int64_t>();
      if (seq != expect_seq) {
        return bad(where, "seq " + std::to_string(seq) + ", expected " +
                              std::to_string(expect_seq) + " (an entry was removed or moved)");
      }
      if (e["prev_hash"].get<std::string>() != prev) {
        return bad(where, "prev_hash does not match the previous entry's hash");
      }
      const std::string stated = e["hash"].get<std::string>();
      nlohmann::json body = e;
      body.erase("hash");
      if (hash_entry(body) != stated) return bad(where, "hash mismatch (the entry was edited)");
      const std::string day = e["ts"].get<std::string>().substr(0, 10);
      if (name != "audit-" + day + ".jsonl") {
        return bad(where, "entry dated " + day + " is in the wrong file");
      }
      prev = stated;
      ++expect_seq;
      ++r.entries;
    }
  }
  if (head->seq != r.entries || head->hash != prev) {
    return bad("head", "the log ends at seq " + std::to_string(r.entries) + " but the head says " +
                           std::to_string(head->seq) + " (entries were removed from the end)");
  }
  return r;
}

Result<std::vector<AuditEntry>> AuditLog::read(const std::string& since) const {
  std::vector<AuditEntry> out;
  for (const auto& name : files()) {
    std::ifstream in(dir_ + "/" + name, std::ios::binary);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_discarded() || !e.is_object()) {
        return Error{dir_ + "/" + name + ":" + std::to_string(n) + ": not a JSON object"};
      }
      AuditEntry a;
      a.seq = e.value("seq", int64_t{0});
      a.ts = e.value("ts", "");
      a.event = e.value("event", "");
      a.data = e.value("data", nlohmann::json::object());
      a.file = name;
      a.line = n;
      if (!since.empty() && a.ts < since) continue;
      out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace kandil::platform
