// Append-only audit log: JSONL files audit-YYYY-MM-DD.jsonl (UTC day of the entry) under one
// folder, one entry per line:
//   {"seq":N, "ts":"...", "event":"chat_turn", "data":{...}, "prev_hash":"<hex>", "hash":"<hex>"}
// hash = SHA-256(prev_hash + canonical JSON of the entry without "hash"), chained across files
// (the first entry's prev_hash is 64 zeros). A `head` file records the last seq and hash so that
// removing entries from the end is detected too. Appends hold an flock on `lock`.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kandil/result.h"

namespace kandil::platform {

// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256_hex(const std::string& data);

struct AuditEntry {
  int64_t seq = 0;
  std::string ts;
  std::string event;
  nlohmann::json data;
  std::string file;  // where it was read from (basename)
  int64_t line = 0;
};

struct AuditVerifyResult {
  bool ok = true;
  int64_t entries = 0;
  int files = 0;
  std::string first_bad;  // "audit-2026-12-03.jsonl:4" when !ok
  std::string problem;    // what is wrong there
};

class AuditLog {
 public:
  // `clock_ms` returns Unix milliseconds (tests move it across days).
  explicit AuditLog(std::string dir, std::function<int64_t()> clock_ms = {});

  // Appends one entry; returns its seq.
  Result<int64_t> append(const std::string& event, const nlohmann::json& data);
  // Checks every file in order: JSON, seq continuity, prev_hash links, hashes, the head record.
  Result<AuditVerifyResult> verify() const;
  // Entries with ts >= since (ISO-8601 prefix compare; "" = all), oldest first.
  Result<std::vector<AuditEntry>> read(const std::string& since = "") const;

  const std::string& dir() const { return dir_; }

 private:
  std::vector<std::string> files() const;  // sorted basenames
  std::string dir_;
  std::function<int64_t()> clock_ms_;
};

}  // namespace kandil::platform
