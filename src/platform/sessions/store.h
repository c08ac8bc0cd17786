// Chat sessions in one SQLite database (WAL, schema migrations via PRAGMA user_version, every
// write one transaction). A session is its metadata plus an ordered list of messages.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kandil/result.h"

struct sqlite3;

namespace kandil::platform {

struct StoredMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

struct SessionInfo {
  std::string id;
  std::string name;  // set by /save NAME ("" until then)
  std::string provider, model, system;
  std::string created_at, updated_at;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t n_messages = 0;
};

struct Session {
  SessionInfo info;
  std::vector<StoredMessage> messages;
};

class SessionStore {
 public:
  // Opens (creating) the database and migrates it to the current schema.
  static Result<std::unique_ptr<SessionStore>> open(const std::string& path);
  ~SessionStore();
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // The schema version after migration.
  int schema_version() const;

  // Creates an empty session; returns its id.
  Result<std::string> create(const std::string& provider, const std::string& model,
                             const std::string& system);
  // Appends messages and adds token counts, atomically.
  Result<void> append(const std::string& id, const std::vector<StoredMessage>& messages,
                      int64_t prompt_tokens, int64_t completion_tokens);
  // Replaces all messages (after condensing) atomically.
  Result<void> replace_messages(const std::string& id, const std::vector<StoredMessage>& messages);
  Result<void> rename(const std::string& id, const std::string& name);
  Result<void> set_system(const std::string& id, const std::string& system);
  // Most recently updated first.
  Result<std::vector<SessionInfo>> list();
  // By id, unique id prefix, or name; an error naming what was looked for when absent.
  Result<Session> load(const std::string& id_or_name);
  Result<void> remove(const std::string& id_or_name);
  // "ok" when PRAGMA integrity_check passes, else its report.
  Result<std::string> integrity_check();

 private:
  explicit SessionStore(sqlite3* db) : db_(db) {}
  Result<void> exec(const std::string& sql);
  Result<std::string> resolve(const std::string& id_or_name);
  sqlite3* db_;
};

}  // namespace kandil::platform
