// Sessions database (migrations, transactions, crash safety) and the audit hash chain.
#include <signal.h>
#include <sqlite3.h>

#include <fstream>

#include "platform/audit/audit.h"
#include "platform/sessions/store.h"
#include "test_util.h"

namespace kandil::platform {
namespace {

using kandil::testing::temp_dir;

TEST(PlatformSessions, CreateAppendListLoadRenameRemove) {
  const std::string db = temp_dir() + "/data/kandil.db";
  auto store = SessionStore::open(db);
  ASSERT_TRUE(store.ok()) << store.error().message;
  SessionStore& s = **store;
  EXPECT_EQ(s.schema_version(), 2);
  auto a = s.create("builtin", "m.gguf", "be brief");
  ASSERT_TRUE(a.ok());
  auto b = s.create("openai", "gpt", "");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(s.append(*a, {{"user", "hi"}, {"assistant", "hello"}}, 10, 2).ok());
  ASSERT_TRUE(s.append(*a, {{"user", "more"}, {"assistant", "sure"}}, 20, 3).ok());
  EXPECT_FALSE(s.append("nope", {}, 1, 1).ok());
  EXPECT_FALSE(s.append(*a, {{"robot", "x"}}, 0, 0).ok());  // role CHECK; nothing is written
  auto loaded = s.load(*a);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->info.system, "be brief");
  EXPECT_EQ(loaded->info.prompt_tokens, 30);
  EXPECT_EQ(loaded->info.completion_tokens, 5);
  ASSERT_EQ(loaded->messages.size(), 4u);
  EXPECT_EQ(loaded->messages[2].content, "more");
  EXPECT_EQ(loaded->messages[3].role, "assistant");

  ASSERT_TRUE(s.rename(*a, "proj").ok());
  EXPECT_FALSE(s.rename(*b, "proj").ok());  // names are unique
  EXPECT_EQ(s.load("proj")->info.id, *a);
  EXPECT_EQ(s.load(a->substr(0, 8))->info.id, *a);  // id prefix
  auto missing = s.load("zzz");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("zzz"), std::string::npos);

  ASSERT_TRUE(s.replace_messages(*a, {{"user", "only"}}).ok());
  EXPECT_EQ(s.load(*a)->messages.size(), 1u);
  ASSERT_TRUE(s.set_system(*a, "new").ok());
  EXPECT_EQ(s.load(*a)->info.system, "new");

  auto list = s.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, *a);  // most recently updated first
  EXPECT_EQ((*list)[0].n_messages, 1);
  ASSERT_TRUE(s.remove(*b).ok());
  EXPECT_EQ(s.list()->size(), 1u);
  EXPECT_FALSE(s.remove(*b).ok());
  EXPECT_EQ(*s.integrity_check(), "ok");
}

TEST(PlatformSessions, MigratesAnOldDatabaseAndRejectsANewerOne) {
  const std::string db = temp_dir() + "/kandil.db";
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    // A version-1 database written by an older kandil.
    const char* v1 =
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL,"
        " system TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
        " prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,"
        " content TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (session_id, seq));"
        "INSERT INTO sessions VALUES ('abc', 'builtin', 'm', '', 't', 't', 1, 2);"
        "INSERT INTO messages VALUES ('abc', 0, 'user', 'old', 't');"
        "PRAGMA user_version=1;";
    ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  auto store = SessionStore::open(db);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), 2);
  auto s = (*store)->load("abc");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->info.name, "");
  EXPECT_EQ(s->messages[0].content, "old");
  store->reset();
  {
    sqlite3* raw = nullptr;
    sqlite3_open(db.c_str(), &raw);
    sqlite3_exec(raw, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(raw);
  }
  auto newer = SessionStore::open(db);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.error().message.find("newer"), std::string::npos);
  // Not a database at all.
  const std::string junk = temp_dir() + "/junk.db";
  std::ofstream(junk) << std::string(4096, 'x');
  EXPECT_FALSE(SessionStore::open(junk).ok());
}

// A child process writes sessions as fast as it can, reporting each committed one on a pipe;
// the parent kills it with SIGKILL mid-write and checks the database.
TEST(PlatformSessions, KillNineDuringWritesNeverCorrupts) {
  const std::string db = temp_dir() + "/kandil.db";
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto store = SessionStore::open(db);
      if (!store.ok()) ::_exit(3);
      for (int i = 0;; ++i) {
        auto id = (*store)->create("builtin", "m", "sys");
        if (!id.ok()) ::_exit(4);
        std::vector<StoredMessage> msgs;
        for (int k = 0; k < 6; ++k) {
          msgs.push_back({k % 2 ? "assistant" : "user", std::string(2000 + k * 100, 'a' + k)});
        }
        if (!(*store)->append(*id, msgs, 100, 50).ok()) ::_exit(5);
        const std::string line = *id + "\n";
        if (::write(fds[1], line.data(), line.size()) < 0) ::_exit(6);
      }
    }
    ::close(fds[1]);
    // Let it commit a few sessions, then kill it wherever it is.
    std::string got;
    char buf[256];
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300 + 150 * round);
    while (std::chrono::steady_clock::now() < until) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);

    auto store = SessionStore::open(db);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ(*(*store)->integrity_check(), "ok");
    std::istringstream ids(got);
    std::string id;
    int committed = 0;
    while (std::getline(ids, id)) {
      auto s = (*store)->load(id);
      ASSERT_TRUE(s.ok()) << "committed session " << id << " is missing";
      ASSERT_EQ(s->messages.size(), 6u);
      EXPECT_EQ(s->messages[5].content, std::string(2500, 'f'));
      EXPECT_EQ(s->info.prompt_tokens, 100);
      ++committed;
    }
    EXPECT_GT(committed, 0);
    // Sessions may exist without their messages only if the kill fell between the two
    // transactions; never half of a message batch.
    auto all = (*store)->list();
    ASSERT_TRUE(all.ok());
    for (const auto& info : *all) {
      EXPECT_TRUE(info.n_messages == 0 || info.n_messages == 6) << info.id;
    }
  }
}

// ---- audit ---------------------------------------------------------------------------------

TEST(PlatformAudit, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

struct AuditFixture {
  std::string dir;
  int64_t now = 1764720000000;  // 2025-12-03T00:00:00Z
  std::unique_ptr<AuditLog> log;
  explicit AuditFixture(const std::string& d) : dir(d) {
    log = std::make_unique<AuditLog>(dir, [this] { return now; });
    // Six entries over three days.
    for (int i = 0; i < 6; ++i) {
      std::string user = "q";
      user += std::to_string(i);
      auto seq = log->append("chat_turn", {{"i", i}, {"user", user}});
      EXPECT_TRUE(seq.ok() && *seq == i + 1);
      if (i % 2 == 1) now += 86400000;
    }
  }
  std::string file(int day) const {
    return dir + "/audit-2025-12-0" + std::to_string(3 + day) + ".jsonl";
  }
  std::vector<std::string> lines(int day) const {
    std::ifstream in(file(day));
    std::vector<std::string> out;
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
  }
  void write_lines(int day, const std::vector<std::string>& ls) const {
    std::ofstream out(file(day), std::ios::trunc);
    for (const auto& l : ls) out << l << "\n";
  }
};

TEST(PlatformAudit, ChainsAcrossDailyFilesAndVerifies) {
  AuditFixture f(temp_dir());
  EXPECT_TRUE(std::filesystem::exists(f.file(0)));
  EXPECT_TRUE(std::filesystem::exists(f.file(2)));
  auto v = f.log->verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->first_bad << ": " << v->problem;
  EXPECT_EQ(v->entries, 6);
  EXPECT_EQ(v->files, 3);
  auto all = f.log->read();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 6u);
  EXPECT_EQ((*all)[3].data["user"], "q3");
  EXPECT_EQ((*all)[3].file, "audit-2025-12-04.jsonl");
  EXPECT_EQ((*all)[3].line, 2);
  auto since = f.log->read("2025-12-04");
  ASSERT_EQ(since->size(), 4u);
  EXPECT_EQ((*since)[0].seq, 3);
  // Invalid UTF-8 from a model is stored as U+FFFD and still verifies.
  ASSERT_TRUE(f.log->append("chat_turn", {{"assistant", std::string("bad \xff\xfe bytes")}}).ok());
  EXPECT_TRUE(f.log->verify()->ok);
}

TEST(PlatformAudit, EditIsDetected) {
  AuditFixture f(temp_dir());
  auto ls = f.lines(1);
  auto pos = ls[1].find("q3");
  ASSERT_NE(pos, std::string::npos);
  ls[1].replace(pos, 2, "q9");
  f.write_lines(1, ls);
  auto v = f.log->verify();
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(v->first_bad, "audit-2025-12-04.jsonl:2");
  EXPECT_NE(v->problem.find("edited"), std::string::npos);
}

TEST(PlatformAudit, EditWithRecomputedHashIsDetectedAtTheNextEntry) {
  AuditFixture f(temp_dir());
  auto ls = f.lines(0);
  nlohmann::json e = nlohmann::json::parse(ls[0]);
  e["data"]["user"] = "forged";
  e.erase("hash");
  e["hash"] = sha256_hex(e["prev_hash"].get<std::string>() + e.dump());
  ls[0] = e.dump();
  f.write_lines(0, ls);
  auto v = f.log->verify();
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(v->first_bad, "audit-2025-12-03.jsonl:2");
  EXPECT_NE(v->problem.find("prev_hash"), std::string::npos);
}

TEST(PlatformAudit, DeletionIsDetected) {
  {
    AuditFixture f(temp_dir() + "/mid");
    auto ls = f.lines(1);
    ls.erase(ls.begin());
    f.write_lines(1, ls);
    auto v = f.log->verify();
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->first_bad, "audit-2025-12-04.jsonl:1");
  }
  {
    AuditFixture f(temp_dir() + "/last");
    auto ls = f.lines(2);
    ls.pop_back();
    f.write_lines(2, ls);
    auto v = f.log->verify();
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->first_bad, "head");
  }
  {
    AuditFixture f(temp_dir() + "/file");
    std::filesystem::remove(f.file(1));
    auto v = f.log->verify();
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->first_bad, "audit-2025-12-05.jsonl:1");
  }
}

TEST(PlatformAudit, SwappedLinesAreDetected) {
  AuditFixture f(temp_dir());
  auto ls = f.lines(2);
  std::swap(ls[0], ls[1]);
  f.write_lines(2, ls);
  auto v = f.log->verify();
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(v->first_bad, "audit-2025-12-05.jsonl:1");
  // Garbage line.
  AuditFixture g(temp_dir() + "/g");
  auto gl = g.lines(0);
  gl[1] = "{not json";
  g.write_lines(0, gl);
  EXPECT_EQ(g.log->verify()->first_bad, "audit-2025-12-03.jsonl:2");
  EXPECT_FALSE(g.log->read().ok());
}

}  // namespace
}  // namespace kandil::platform
