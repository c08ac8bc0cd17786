// The chat-platform commands end to end: config precedence through the binary, init, audit of
// config changes and tamper detection, one-shot chat (--json, piped stdin), sessions, doctor,
// and that an API key never lands in any file kandil writes.
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "loopback_http.h"
#include "test_util.h"

namespace kandil::platform {
namespace {

using kandil::testing::CommandResult;
using kandil::testing::Conn;
using kandil::testing::HttpRequestSeen;
using kandil::testing::LoopbackServer;
using kandil::testing::read_file;

// Runs kandil in `cwd` with XDG dirs under `home` and extra environment assignments.
CommandResult kandil_in(const std::string& cwd, const std::string& home, const std::string& env,
                        const std::string& args, const std::string& stdin_text = "") {
  const std::string err = home + "/stderr.txt";
  std::string cmd = "cd '" + cwd + "' && env -u KANDIL_MODEL XDG_DATA_HOME='" + home +
                    "/data' XDG_CONFIG_HOME='" + home + "/config' " + env + " " + KANDIL_BINARY +
                    " " + args + " 2>'" + err + "'";
  if (!stdin_text.empty()) {
    std::ofstream(home + "/stdin.txt") << stdin_text;
    cmd += " <'" + home + "/stdin.txt'";
  } else {
    cmd += " </dev/null";
  }
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err);
  return r;
}

void stream_answer(const HttpRequestSeen&, Conn& c) {
  c.start(200, "text/event-stream");
  c.sse("", R"({"choices":[{"index":0,"delta":{"content":"Four."}}]})");
  c.sse("", R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}})");
  c.sse("", "[DONE]");
}

// Without -m, KANDIL_MODEL or a configured model, chat answers with kandil's own model.
TEST(PlatformCli, ChatUsesTheBundledModelByDefault) {
  if (!std::filesystem::exists(kandil::testing::bundled_model())) {
    GTEST_SKIP() << kandil::testing::bundled_model() << " is not in this checkout";
  }
  const std::string home = kandil::testing::temp_dir();
  auto r = kandil_in(home, home, "", "chat -p 'def main():' --max-tokens 8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NE(j["model"].get<std::string>().find("kandil-code-12m"), std::string::npos) << r.out;
  std::filesystem::remove_all(home);
}

TEST(PlatformCli, ConfigPrecedenceThroughTheBinary) {
  const std::string home = kandil::testing::temp_dir();
  const std::string proj = home + "/proj";
  std::filesystem::create_directories(proj);
  auto r = kandil_in(proj, home, "", "config set max_tokens 111");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = kandil_in(proj, home, "", "config get max_tokens --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["value"], "111");
  r = kandil_in(proj, home, "", "config set --project max_tokens 222");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(proj + "/.kandil/config.toml"));
  r = kandil_in(proj, home, "", "config get max_tokens --json");
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["value"], "222");
  EXPECT_EQ(j["source"], ".kandil/config.toml");
  r = kandil_in(home, home, "", "config get max_tokens");  // another folder: user layer only
  EXPECT_EQ(r.out, "111\n");
  r = kandil_in(proj, home, "KANDIL_MAX_TOKENS=333", "config get max_tokens --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["value"], "333");
  r = kandil_in(proj, home, "KANDIL_MAX_TOKENS=333", "config list --json");
  bool found = false;
  for (const auto& k : nlohmann::json::parse(r.out)) {
    if (k["key"] == "max_tokens") {
      found = true;
      EXPECT_EQ(k["source"], "env KANDIL_MAX_TOKENS");
    }
  }
  EXPECT_TRUE(found);
  r = kandil_in(proj, home, "", "config set max_tokens lots");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("expects an integer"), std::string::npos);
  r = kandil_in(proj, home, "", "config get nope");
  EXPECT_NE(r.exit_code, 0);
  r = kandil_in(proj, home, "", "config unset --project max_tokens");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(kandil_in(proj, home, "", "config get max_tokens").out, "111\n");

  // Every change is in the audit log; tampering is caught and named.
  r = kandil_in(proj, home, "", "audit show --json");
  auto entries = nlohmann::json::parse(r.out);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0]["event"], "config_set");
  EXPECT_EQ(entries[2]["event"], "config_unset");
  r = kandil_in(proj, home, "", "audit verify --json");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out)["ok"], true);
  std::string file;
  for (const auto& e : std::filesystem::directory_iterator(home + "/data/kandil/audit")) {
    if (e.path().extension() == ".jsonl") file = e.path().string();
  }
  std::string text = read_file(file);
  text.replace(text.find("111"), 3, "999");
  std::ofstream(file) << text;
  r = kandil_in(proj, home, "", "audit verify");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find(std::filesystem::path(file).filename().string() + ":1"), std::string::npos)
      << r.out;
}

TEST(PlatformCli, InitWritesACommentedConfig) {
  const std::string home = kandil::testing::temp_dir();
  auto r = kandil_in(home, home, "", "init");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = read_file(home + "/.kandil/config.toml");
  EXPECT_NE(text.find("# provider = \"builtin\""), std::string::npos);
  EXPECT_NE(text.find("[openai]"), std::string::npos);
  r = kandil_in(home, home, "", "init");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already exists"), std::string::npos);
  EXPECT_EQ(kandil_in(home, home, "", "init --force").exit_code, 0);
  EXPECT_EQ(kandil_in(home, home, "", "config list").exit_code, 0);
}

TEST(PlatformCli, OneShotChatSessionsAndNoSecretInAnyFile) {
  LoopbackServer server(stream_answer);
  const std::string home = kandil::testing::temp_dir();
  const std::string secret = "sk-very-secret-4242";
  const std::string env = "KANDIL_PROVIDER=openai KANDIL_OPENAI_BASE_URL=" + server.url() +
                          " KANDIL_OPENAI_MODEL=m OPENAI_API_KEY=" + secret;
  auto r = kandil_in(home, home, env, "chat -p 'two plus two?' --json --system 'be terse'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["text"], "Four.");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 9);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  EXPECT_TRUE(j.contains("ttft_ms"));
  EXPECT_EQ(j["provider"], "openai");
  const std::string id = j["session"];

  r = kandil_in(home, home, env, "chat", "piped question\n");  // stdin not a TTY: one-shot
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Four.\n");
  r = kandil_in(home, home, env, "chat --resume " + id + " -p again");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto body = nlohmann::json::parse(server.seen().back().body);
  EXPECT_EQ(body["messages"].size(), 4u);  // system, question, answer, again
  EXPECT_EQ(body["messages"][0]["content"], "be terse");

  r = kandil_in(home, home, "", "sessions list --json");
  auto list = nlohmann::json::parse(r.out);
  ASSERT_EQ(list.size(), 2u);
  r = kandil_in(home, home, "", "sessions show " + id + " --json");
  auto shown = nlohmann::json::parse(r.out);
  ASSERT_EQ(shown["messages"].size(), 4u);
  EXPECT_EQ(shown["messages"][3]["content"], "Four.");
  EXPECT_EQ(shown["prompt_tokens"], 18);
  r = kandil_in(home, home, "", "sessions show " + id);
  EXPECT_NE(r.out.find("user: two plus two?"), std::string::npos);
  EXPECT_EQ(kandil_in(home, home, "", "sessions list").exit_code, 0);
  EXPECT_EQ(kandil_in(home, home, "", "sessions rm " + id).exit_code, 0);
  EXPECT_NE(kandil_in(home, home, "", "sessions show " + id).exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(kandil_in(home, home, "", "sessions list --json").out).size(),
            1u);
  r = kandil_in(home, home, "", "audit show");
  EXPECT_NE(r.out.find("chat_turn"), std::string::npos);

  // A rejected key: the error says so without echoing it.
  LoopbackServer denied([](const HttpRequestSeen&, Conn& c) {
    c.respond(401, "application/json", R"({"error":{"message":"bad key"}})");
  });
  r = kandil_in(home, home,
                "KANDIL_PROVIDER=openai KANDIL_OPENAI_BASE_URL=" + denied.url() +
                    " KANDIL_OPENAI_MODEL=m OPENAI_API_KEY=" + secret,
                "chat -p hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
  EXPECT_EQ((r.out + r.err).find(secret), std::string::npos);
  r = kandil_in(
      home, home,
      "KANDIL_PROVIDER=openai OPENAI_API_KEY=" + secret + " KANDIL_OPENAI_BASE_URL=" + server.url(),
      "doctor --json");
  EXPECT_EQ(r.out.find(secret), std::string::npos);

  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(home)) {
    if (!e.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(read_file(e.path().string()).find(secret), std::string::npos) << e.path();
  }
  EXPECT_GE(files, 3);  // database, audit log, head
}

TEST(PlatformCli, DoctorReportsMachineModelAndProvider) {
  LoopbackServer server([](const HttpRequestSeen& r, Conn& c) {
    c.respond(r.path == "/v1/models" ? 200 : 404, "application/json", R"({"data":[]})");
  });
  const std::string home = kandil::testing::temp_dir();
  std::ofstream(home + "/fake.gguf") << "GGUF....";
  auto r = kandil_in(
      home, home,
      "KANDIL_MODEL=" + home +
          "/fake.gguf KANDIL_PROVIDER=openai KANDIL_OPENAI_BASE_URL=" + server.url() + "/v1",
      "doctor --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, std::string> status;
  for (const auto& c : nlohmann::json::parse(r.out)) status[c["name"]] = c["status"];
  for (const char* k : {"cpu", "threads", "memory", "gpu", "model", "openai", "anthropic"}) {
    EXPECT_TRUE(status.count(k)) << k;
  }
  EXPECT_EQ(status["model"], "ok");
  EXPECT_EQ(status["openai"], "ok");

  std::ofstream(home + "/bad.gguf") << "nope";
  int dead_port;
  {
    LoopbackServer gone([](const HttpRequestSeen&, Conn&) {});
    dead_port = gone.port();
  }
  r = kandil_in(home, home,
                "KANDIL_MODEL=" + home +
                    "/bad.gguf KANDIL_PROVIDER=openai "
                    "KANDIL_OPENAI_BASE_URL=http://127.0.0.1:" +
                    std::to_string(dead_port),
                "doctor");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("not a GGUF file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unreachable"), std::string::npos) << r.out;
}

// The OpenAI-compatible provider against a live `kandil serve` on loopback.
TEST(PlatformCli, OpenAiProviderAgainstKandilServe) {
  const std::string home = kandil::testing::temp_dir();
  auto help = kandil_in(home, home, "", "serve --help");
  if (help.exit_code != 0 || help.out.find("kandil serve") == std::string::npos) {
    GTEST_SKIP() << "`kandil serve` is not built yet (another issue); the OpenAI-compatible "
                    "provider is tested against a loopback SSE server instead";
  }
  KANDIL_REQUIRE_FIXTURE("models/stories260K.gguf");
  const int port = 20000 + (::getpid() % 20000);
  const std::string model = kandil::testing::fixture("models/stories260K.gguf");
  pid_t pid = ::fork();
  if (pid == 0) {
    const std::string p = std::to_string(port);
    ::execl(KANDIL_BINARY, KANDIL_BINARY, "serve", "-m", model.c_str(), "--host", "127.0.0.1",
            "--port", p.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  CommandResult r;
  for (int i = 0; i < 100; ++i) {
    r = kandil_in(
        home, home,
        "KANDIL_PROVIDER=openai KANDIL_OPENAI_MODEL=stories KANDIL_OPENAI_BASE_URL=" + url,
        "chat -p 'Once upon a time' -n 16 --json");
    if (r.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["text"].get<std::string>().empty());
  EXPECT_GT(j["usage"]["completion_tokens"].get<int>(), 0);
}

}  // namespace
}  // namespace kandil::platform
