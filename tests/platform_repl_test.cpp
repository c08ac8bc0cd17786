// The chat REPL driven through a pseudo-terminal (forkpty): streamed text shows before the
// answer ends, Ctrl-C stops an answer and the REPL goes on, multi-line input, history persists
// across runs (recalled with the up arrow), /save + /load restore a session.
#include <poll.h>
#include <pty.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "loopback_http.h"
#include "test_util.h"

namespace kandil::platform {
namespace {

using kandil::testing::Conn;
using kandil::testing::HttpRequestSeen;
using kandil::testing::LoopbackServer;
using Clock = std::chrono::steady_clock;

std::string chunk(const std::string& text) {
  return nlohmann::json{{"choices", {{{"index", 0}, {"delta", {{"content", text}}}}}}}.dump();
}

class Pty {
 public:
  Pty(const std::vector<std::string>& env) {
    winsize ws{};
    ws.ws_row = 24;
    ws.ws_col = 100;
    pid_ = ::forkpty(&fd_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      ::execl(KANDIL_BINARY, KANDIL_BINARY, "chat", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Pty() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  void send(const std::string& s) {
    ASSERT_EQ(::write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  // Reads until `what` appears after the current mark (returns false after `seconds`).
  bool expect(const std::string& what, double seconds = 30) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
      size_t at = out_.find(what, mark_);
      if (at != std::string::npos) {
        mark_ = at + what.size();
        return true;
      }
      if (Clock::now() > until) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        char buf[4096];
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) return false;
        out_.append(buf, static_cast<size_t>(n));
      }
    }
  }
  int wait_exit(double seconds = 60) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (Clock::now() < until) {
      char buf[4096];
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n > 0) out_.append(buf, static_cast<size_t>(n));
      }
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
    }
    return -2;
  }
  // Where each thread of a process that has not exited is waiting (kernel function and system
  // call), so a hang reported by CI says what it waited on.
  std::string where() const {
    const std::string proc = "/proc/" + std::to_string(pid_);
    std::error_code ec;
    if (!std::filesystem::exists(proc, ec)) return "process " + std::to_string(pid_) + " is gone\n";
    auto field = [](const std::string& path) {
      std::string v = kandil::testing::read_file(path);
      while (!v.empty() && (v.back() == '\n' || v.back() == '\0')) v.pop_back();
      return v;
    };
    std::string s = "stat: " + field(proc + "/stat") + "\n";
    for (const auto& t : std::filesystem::directory_iterator(proc + "/task", ec)) {
      const std::string dir = t.path().string() + "/";
      s += "thread " + t.path().filename().string() + ": wchan=" + field(dir + "wchan") +
           " syscall=" + field(dir + "syscall") + "\n" + field(dir + "stack") + "\n";
    }
    return s;
  }
  const std::string& output() const { return out_; }
  std::string since_mark() const { return out_.substr(mark_); }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string out_;
  size_t mark_ = 0;
};

TEST(PlatformRepl, StreamsCancelsKeepsHistoryAndRestoresSessions) {
  std::atomic<int> slow_tokens_sent{0};
  LoopbackServer server([&](const HttpRequestSeen& r, Conn& c) {
    auto body = nlohmann::json::parse(r.body);
    const std::string last = body["messages"].back()["content"];
    c.start(200, "text/event-stream");
    if (last == "go slow") {
      for (int i = 0; i < 60; ++i) {
        if (!c.sse("", chunk("tok" + std::to_string(i) + " "))) return;
        ++slow_tokens_sent;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    } else {
      c.sse("", chunk("Hello"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      c.sse("", chunk(", world (" + std::to_string(body["messages"].size()) + " msgs)"));
    }
    c.sse("", "[DONE]");
  });
  const std::string dir = kandil::testing::temp_dir();
  const std::vector<std::string> env = {"XDG_DATA_HOME=" + dir + "/data",
                                        "XDG_CONFIG_HOME=" + dir + "/config",
                                        "TERM=xterm",
                                        "KANDIL_PROVIDER=openai",
                                        "KANDIL_OPENAI_BASE_URL=" + server.url() + "/v1",
                                        "KANDIL_OPENAI_MODEL=loopback",
                                        "OPENAI_API_KEY=sk-pty-secret-777"};
  {
    Pty pty(env);
    ASSERT_TRUE(pty.expect("/help for commands")) << pty.output();
    ASSERT_TRUE(pty.expect("> "));
    pty.send("say hi\r");
    ASSERT_TRUE(pty.expect("Hello, world (1 msgs)")) << pty.output();
    ASSERT_TRUE(pty.expect("> "));

    // Multi-line input: a trailing backslash continues the message.
    pty.send("line one\\\r");
    ASSERT_TRUE(pty.expect("... "));
    pty.send("line two\r");
    ASSERT_TRUE(pty.expect("Hello, world (3 msgs)")) << pty.output();

    // Ctrl-C stops the answer, not the program.
    pty.send("go slow\r");
    ASSERT_TRUE(pty.expect("tok2 ")) << pty.output();
    const auto t0 = Clock::now();
    pty.send("\x03");
    ASSERT_TRUE(pty.expect("[answer stopped]", 5)) << pty.output();
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 3.0);
    ASSERT_TRUE(pty.expect("> "));
    EXPECT_LT(slow_tokens_sent.load(), 40);

    // Each input waits for the next prompt: a key typed before libedit is back in its own
    // terminal mode may be flushed.
    pty.send("/save mysess\r");
    ASSERT_TRUE(pty.expect("saved session")) << pty.output();
    ASSERT_TRUE(pty.expect("> "));
    pty.send("/tokens\r");
    ASSERT_TRUE(pty.expect("time to first token")) << pty.output();
    ASSERT_TRUE(pty.expect("> "));
    pty.send("/frobnicate\r");
    ASSERT_TRUE(pty.expect("unknown command /frobnicate"));
    ASSERT_TRUE(pty.expect("> "));
    // Ctrl-D, again while the REPL has not exited (a second Ctrl-D at an empty prompt means the
    // same). Exiting closes the session database, whose fsync can wait many seconds behind other
    // processes' writeback on a busy disk: the limits here only bound a hang.
    int exit_code = -2;
    for (int attempt = 0; attempt < 3 && exit_code == -2; ++attempt) {
      pty.send("\x04");
      exit_code = pty.wait_exit(30);
    }
    EXPECT_EQ(exit_code, 0) << pty.output() << (exit_code == -2 ? pty.where() : "");
    EXPECT_EQ(pty.output().find("sk-pty-secret-777"), std::string::npos);
  }
  const std::string history = kandil::testing::read_file(dir + "/data/kandil/history");
  // libedit's history file encodes spaces as \040.
  EXPECT_TRUE(history.find("say hi") != std::string::npos ||
              history.find("say\\040hi") != std::string::npos)
      << history;
  EXPECT_TRUE(history.find("/tokens") != std::string::npos) << history;

  auto seen = server.seen();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(seen[1].body)["messages"].back()["content"],
            "line one\nline two");

  {
    Pty pty(env);
    ASSERT_TRUE(pty.expect("> ")) << pty.output();
    pty.send("/load mysess\r");
    ASSERT_TRUE(pty.expect("loaded session")) << pty.output();
    ASSERT_TRUE(pty.expect("assistant: Hello, world (1 msgs)")) << pty.output();
    ASSERT_TRUE(pty.expect("user: go slow"));
    ASSERT_TRUE(pty.expect("> "));
    // History from the previous run: up 3 times is "/load mysess", "/frobnicate", "/tokens".
    pty.send("\x1b[A\x1b[A\x1b[A\r");
    ASSERT_TRUE(pty.expect("completion tokens over 0 turns")) << pty.output();
    ASSERT_TRUE(pty.expect("> "));
    pty.send("and now?\r");
    // The restored conversation went to the server: 3 turns (6 messages) + this one.
    ASSERT_TRUE(pty.expect("Hello, world (7 msgs)")) << pty.output();
    ASSERT_TRUE(pty.expect("> "));
    pty.send("/exit\r");
    EXPECT_EQ(pty.wait_exit(), 0) << pty.output();
  }
}

}  // namespace
}  // namespace kandil::platform
