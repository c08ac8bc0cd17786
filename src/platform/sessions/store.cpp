#include "platform/sessions/store.h"

#include <sqlite3.h>

#include <functional>

#include "platform/common/paths.h"

namespace kandil::platform {
namespace {

// Each entry moves the schema from version i to i+1, inside one transaction.
const char* const kMigrations[] = {
    // 1: sessions and their messages.
    "CREATE TABLE sessions ("
    "  id TEXT PRIMARY KEY,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  system TEXT NOT NULL DEFAULT '',"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE messages ("
    "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),"
    "  content TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  PRIMARY KEY (session_id, seq));",
    // 2: sessions can be named (/save NAME), and listed by recency quickly.
    "ALTER TABLE sessions ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX sessions_updated ON sessions(updated_at);",
};
constexpr int kSchemaVersion = static_cast<int>(sizeof kMigrations / sizeof kMigrations[0]);

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr); }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  int step() { return sqlite3_step(st_); }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(st_, col); }

 private:
  sqlite3_stmt* st_ = nullptr;
  int rc_;
};

Error db_error(sqlite3* db, const std::string& what) {
  return Error{"sessions database: " + what + ": " + sqlite3_errmsg(db)};
}

SessionInfo read_info(const Stmt& s) {
  SessionInfo i;
  i.id = s.text(0);
  i.name = s.text(1);
  i.provider = s.text(2);
  i.model = s.text(3);
  i.system = s.text(4);
  i.created_at = s.text(5);
  i.updated_at = s.text(6);
  i.prompt_tokens = s.integer(7);
  i.completion_tokens = s.integer(8);
  i.n_messages = s.integer(9);
  return i;
}

const char* const kInfoSelect =
    "SELECT id, name, provider, model, system, created_at, updated_at, prompt_tokens, "
    "completion_tokens, (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) "
    "FROM sessions s ";

}  // namespace

Result<std::unique_ptr<SessionStore>> SessionStore::open(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    auto d = make_dirs(path.substr(0, slash));
    if (!d.ok()) return d.error();
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = path + ": cannot open database: " + (db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return Error{msg};
  }
  std::unique_ptr<SessionStore> store(new SessionStore(db));
  sqlite3_busy_timeout(db, 5000);
  // Every commit is already durable in the WAL; closing leaves the WAL for the next open (or the
  // automatic checkpoint) to fold in, so leaving `kandil chat` never waits on the disk's fsync.
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  // WAL + synchronous=FULL: a committed transaction survives a crash of the process or machine.
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    auto r = store->exec(pragma);
    if (!r.ok()) return Error{path + ": " + r.error().message};
  }
  int version = store->schema_version();
  if (version > kSchemaVersion) {
    return Error{path + ": schema version " + std::to_string(version) +
                 " is newer than this kandil understands (" + std::to_string(kSchemaVersion) + ")"};
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kMigrations[v] +
                      "PRAGMA user_version=" + std::to_string(v + 1) + ";COMMIT;";
    auto r = store->exec(sql);
    if (!r.ok()) {
      (void)store->exec("ROLLBACK");
      return Error{path + ": migration to version " + std::to_string(v + 1) +
                   " failed: " + r.error().message};
    }
  }
  return store;
}

SessionStore::~SessionStore() { sqlite3_close(db_); }

int SessionStore::schema_version() const {
  Stmt s(db_, "PRAGMA user_version");
  return s.ok() && s.step() == SQLITE_ROW ? static_cast<int>(s.integer(0)) : 0;
}

Result<void> SessionStore::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return Error{"sessions database: " + msg};
  }
  return {};
}

namespace {
// Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back on any error.
template <class F>
Result<void> transaction(sqlite3* db, F&& body) {
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return db_error(db, "begin");
  }
  Result<void> r = body();
  if (r.ok() && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    r = db_error(db, "commit");
  }
  if (!r.ok()) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return r;
}
}  // namespace

Result<std::string> SessionStore::create(const std::string& provider, const std::string& model,
                                         const std::string& system) {
  const std::string id = random_hex(6);
  const std::string now = now_iso8601();
  auto r = transaction(db_, [&]() -> Result<void> {
    Stmt s(db_,
           "INSERT INTO sessions (id, provider, model, system, created_at, updated_at) "
           "VALUES (?, ?, ?, ?, ?, ?)");
    s.bind(1, id).bind(2, provider).bind(3, model).bind(4, system).bind(5, now).bind(6, now);
    if (!s.ok() || s.step() != SQLITE_DONE) return db_error(db_, "create session");
    return {};
  });
  if (!r.ok()) return r.error();
  return id;
}

Result<void> SessionStore::append(const std::string& id, const std::vector<StoredMessage>& messages,
                                  int64_t prompt_tokens, int64_t completion_tokens) {
  return transaction(db_, [&]() -> Result<void> {
    Stmt next(db_, "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE session_id = ?");
    next.bind(1, id);
    if (!next.ok() || next.step() != SQLITE_ROW) return db_error(db_, "append");
    int64_t seq = next.integer(0);
    const std::string now = now_iso8601();
    Stmt ins(db_,
             "INSERT INTO messages (session_id, seq, role, content, created_at) "
             "VALUES (?, ?, ?, ?, ?)");
    for (const auto& m : messages) {
      ins.bind(1, id).bind(2, seq++).bind(3, m.role).bind(4, m.content).bind(5, now);
      if (ins.step() != SQLITE_DONE) return db_error(db_, "append message");
      ins.reset();
    }
    Stmt up(db_,
            "UPDATE sessions SET updated_at = ?, prompt_tokens = prompt_tokens + ?, "
            "completion_tokens = completion_tokens + ? WHERE id = ?");
    up.bind(1, now).bind(2, prompt_tokens).bind(3, completion_tokens).bind(4, id);
    if (up.step() != SQLITE_DONE) return db_error(db_, "update session");
    if (sqlite3_changes(db_) != 1) return Error{"sessions database: no session '" + id + "'"};
    return {};
  });
}

Result<void> SessionStore::replace_messages(const std::string& id,
                                            const std::vector<StoredMessage>& messages) {
  return transaction(db_, [&]() -> Result<void> {
    Stmt del(db_, "DELETE FROM messages WHERE session_id = ?");
    del.bind(1, id);
    if (del.step() != SQLITE_DONE) return db_error(db_, "replace messages");
    const std::string now = now_iso8601();
    Stmt ins(db_,
             "INSERT INTO messages (session_id, seq, role, content, created_at) "
             "VALUES (?, ?, ?, ?, ?)");
    int64_t seq = 0;
    for (const auto& m : messages) {
      ins.bind(1, id).bind(2, seq++).bind(3, m.role).bind(4, m.content).bind(5, now);
      if (ins.step() != SQLITE_DONE) return db_error(db_, "replace messages");
      ins.reset();
    }
    Stmt up(db_, "UPDATE sessions SET updated_at = ? WHERE id = ?");
    up.bind(1, now).bind(2, id);
    if (up.step() != SQLITE_DONE) return db_error(db_, "update session");
    return {};
  });
}

Result<void> SessionStore::rename(const std::string& id, const std::string& name) {
  return transaction(db_, [&]() -> Result<void> {
    Stmt clash(db_, "SELECT id FROM sessions WHERE name = ? AND id != ?");
    clash.bind(1, name).bind(2, id);
    if (clash.step() == SQLITE_ROW) {
      return Error{"a session named '" + name + "' already exists (" + clash.text(0) + ")"};
    }
    Stmt up(db_, "UPDATE sessions SET name = ?, updated_at = ? WHERE id = ?");
    up.bind(1, name).bind(2, now_iso8601()).bind(3, id);
    if (up.step() != SQLITE_DONE) return db_error(db_, "rename session");
    if (sqlite3_changes(db_) != 1) return Error{"no session '" + id + "'"};
    return {};
  });
}

Result<void> SessionStore::set_system(const std::string& id, const std::string& system) {
  return transaction(db_, [&]() -> Result<void> {
    Stmt up(db_, "UPDATE sessions SET system = ?, updated_at = ? WHERE id = ?");
    up.bind(1, system).bind(2, now_iso8601()).bind(3, id);
    if (up.step() != SQLITE_DONE) return db_error(db_, "set system prompt");
    return {};
  });
}

Result<std::vector<SessionInfo>> SessionStore::list() {
  Stmt s(db_, (std::string(kInfoSelect) + "ORDER BY updated_at DESC, rowid DESC").c_str());
  if (!s.ok()) return db_error(db_, "list");
  std::vector<SessionInfo> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_info(s));
  if (rc != SQLITE_DONE) return db_error(db_, "list");
  return out;
}

Result<std::string> SessionStore::resolve(const std::string& key) {
  if (key.empty()) return Error{"no session given"};
  Stmt s(db_, "SELECT id FROM sessions WHERE id = ?1 OR name = ?1");
  s.bind(1, key);
  if (s.step() == SQLITE_ROW) return s.text(0);
  Stmt p(db_, "SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1");
  p.bind(1, key);
  std::vector<std::string> ids;
  while (p.step() == SQLITE_ROW) ids.push_back(p.text(0));
  if (ids.size() == 1) return ids[0];
  if (ids.empty()) return Error{"no session '" + key + "' (see `kandil sessions list`)"};
  return Error{"'" + key + "' matches " + std::to_string(ids.size()) +
               " sessions; give more of the id"};
}

Result<Session> SessionStore::load(const std::string& key) {
  auto id = resolve(key);
  if (!id.ok()) return id.error();
  Session out;
  Stmt s(db_, (std::string(kInfoSelect) + "WHERE id = ?").c_str());
  s.bind(1, *id);
  if (s.step() != SQLITE_ROW) return db_error(db_, "load session");
  out.info = read_info(s);
  Stmt m(db_, "SELECT role, content FROM messages WHERE session_id = ? ORDER BY seq");
  m.bind(1, *id);
  int rc;
  while ((rc = m.step()) == SQLITE_ROW) out.messages.push_back({m.text(0), m.text(1)});
  if (rc != SQLITE_DONE) return db_error(db_, "load messages");
  return out;
}

Result<void> SessionStore::remove(const std::string& key) {
  auto id = resolve(key);
  if (!id.ok()) return id.error();
  return transaction(db_, [&]() -> Result<void> {
    Stmt d(db_, "DELETE FROM sessions WHERE id = ?");
    d.bind(1, *id);
    if (d.step() != SQLITE_DONE) return db_error(db_, "remove session");
    return {};
  });
}

Result<std::string> SessionStore::integrity_check() {
  Stmt s(db_, "PRAGMA integrity_check");
  std::string out;
  while (s.step() == SQLITE_ROW) {
    if (!out.empty()) out += "\n";
    out += s.text(0);
  }
  if (out.empty()) return db_error(db_, "integrity_check");
  return out;
}

}  // namespace kandil::platform
