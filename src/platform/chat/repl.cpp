#include "platform/chat/repl.h"

#include <editline/readline.h>
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "platform/sessions/store.h"

namespace kandil::platform {
namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

const char* const kHelp =
    "Commands:\n"
    "  /help              this text\n"
    "  /model [NAME]      show the model, or switch to another (GGUF path or remote model id)\n"
    "  /system [TEXT]     show or set the system prompt\n"
    "  /reset             start a new conversation\n"
    "  /save [NAME]       save the conversation (named, to /load it by name)\n"
    "  /sessions          list saved sessions\n"
    "  /load ID|NAME      continue a saved session\n"
    "  /lora [PATH[:SCALE] | off]  list, add (or rescale) or drop LoRA adapters\n"
    "  /tokens            token counts and time to first token\n"
    "  /exit              leave (or Ctrl-D)\n"
    "Input: end a line with \\ to continue it; wrap multi-line text in \"\"\" lines.\n"
    "Ctrl-C stops the current answer.\n";

}  // namespace

std::optional<SlashCommand> parse_slash(const std::string& line) {
  std::string t = trim(line);
  if (t.size() < 2 || t[0] != '/' || t[1] == '/' || t[1] == ' ') return std::nullopt;
  size_t sp = t.find_first_of(" \t");
  SlashCommand c;
  c.name = t.substr(1, sp == std::string::npos ? std::string::npos : sp - 1);
  if (sp != std::string::npos) c.arg = trim(t.substr(sp));
  return c;
}

bool MultiLine::add(const std::string& line) {
  if (in_block_) {
    if (trim(line) == "\"\"\"") {
      in_block_ = false;
      return true;
    }
    text_ += line + "\n";
    return false;
  }
  if (!continued_ && trim(line) == "\"\"\"") {
    in_block_ = true;
    return false;
  }
  if (!line.empty() && line.back() == '\\') {
    text_ += line.substr(0, line.size() - 1) + "\n";
    continued_ = true;
    return false;
  }
  text_ += line;
  continued_ = false;
  return true;
}

std::string MultiLine::take() {
  std::string out = std::move(text_);
  text_.clear();
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool run_slash(ChatSession& session, const SlashCommand& cmd, const ReplOptions& options,
               std::FILE* out) {
  const std::string& n = cmd.name;
  if (n == "exit" || n == "quit") return false;
  if (n == "help") {
    fmt::print(out, "{}", kHelp);
  } else if (n == "model") {
    if (cmd.arg.empty() || !options.switch_model) {
      fmt::print(out, "provider: {}  model: {}  context window: {} tokens\n",
                 session.provider().name(), session.provider().model(),
                 session.provider().context_window());
      if (!cmd.arg.empty()) fmt::print(out, "switching models is not possible here\n");
    } else {
      auto p = options.switch_model(cmd.arg);
      if (!p.ok()) {
        fmt::print(out, "error: {}\n", p.error().message);
      } else {
        session.set_provider(std::move(*p));
        fmt::print(out, "now using {} ({})\n", session.provider().model(),
                   session.provider().name());
      }
    }
  } else if (n == "system") {
    if (cmd.arg.empty()) {
      const auto& m = session.messages();
      fmt::print(out, "system: {}\n",
                 !m.empty() && m[0].role == "system" ? m[0].content : std::string("(none)"));
    } else {
      session.set_system(cmd.arg);
      fmt::print(out, "system prompt set\n");
    }
  } else if (n == "reset") {
    const auto& m = session.messages();
    session.reset(!m.empty() && m[0].role == "system" ? m[0].content : std::string());
    fmt::print(out, "new conversation\n");
  } else if (n == "save") {
    auto id = session.save(cmd.arg);
    if (!id.ok()) {
      fmt::print(out, "error: {}\n", id.error().message);
    } else {
      fmt::print(out, "saved session {}{}\n", *id, cmd.arg.empty() ? "" : " as '" + cmd.arg + "'");
    }
  } else if (n == "sessions") {
    if (!options.store) {
      fmt::print(out, "no sessions database\n");
    } else if (auto list = options.store->list(); !list.ok()) {
      fmt::print(out, "error: {}\n", list.error().message);
    } else if (list->empty()) {
      fmt::print(out, "no saved sessions\n");
    } else {
      for (const auto& s : *list) {
        fmt::print(out, "{}  {:<16} {:>3} messages  {}  {}\n", s.id, s.name, s.n_messages,
                   s.updated_at, s.model);
      }
    }
  } else if (n == "load") {
    if (cmd.arg.empty()) {
      fmt::print(out, "usage: /load ID|NAME (see /sessions)\n");
    } else if (auto r = session.load(cmd.arg); !r.ok()) {
      fmt::print(out, "error: {}\n", r.error().message);
    } else {
      size_t turns = 0;
      for (const auto& m : session.messages()) turns += m.role == "user";
      fmt::print(out, "loaded session {} ({} turns)\n", session.id(), turns);
      for (const auto& m : session.messages()) {
        if (m.role != "system") fmt::print(out, "{}: {}\n", m.role, m.content);
      }
    }
  } else if (n == "lora") {
    Provider& p = session.provider();
    if (cmd.arg.empty()) {
      const auto active = p.active_lora();
      if (active.empty()) fmt::print(out, "no LoRA adapters active\n");
      for (const auto& a : active) fmt::print(out, "lora: {}\n", a);
    } else if (cmd.arg == "off") {
      p.clear_lora();
      fmt::print(out, "LoRA adapters off\n");
    } else {
      // PATH or PATH:SCALE (a colon followed by a number).
      std::string path = cmd.arg;
      float scale = 1.0f;
      if (const size_t colon = path.rfind(':'); colon != std::string::npos) {
        char* end = nullptr;
        const std::string tail = path.substr(colon + 1);
        const float v = std::strtof(tail.c_str(), &end);
        if (!tail.empty() && end && *end == '\0') {
          scale = v;
          path.resize(colon);
        }
      }
      if (auto r = p.apply_lora(path, scale); !r.ok()) {
        fmt::print(out, "error: {}\n", r.error().message);
      } else {
        fmt::print(out, "lora: {} active (scale {})\n", path, scale);
      }
    }
  } else if (n == "tokens") {
    const auto& t = session.totals();
    fmt::print(out, "session: {} prompt + {} completion tokens over {} turns\n", t.prompt_tokens,
               t.completion_tokens, t.turns);
    if (t.last) {
      const double gen_ms = t.last->total_ms - t.last->ttft_ms;
      fmt::print(
          out,
          "last answer: {} prompt + {} completion tokens{}, time to first token {:.1f} "
          "ms, total {:.1f} ms ({:.1f} tokens/s)\n",
          t.last->prompt_tokens, t.last->completion_tokens, t.last->estimated ? " (estimated)" : "",
          t.last->ttft_ms, t.last->total_ms,
          gen_ms > 0 ? 1000.0 * static_cast<double>(t.last->completion_tokens) / gen_ms : 0.0);
    }
    fmt::print(out, "context window: {} tokens, conversation now {} tokens\n",
               session.provider().context_window(),
               session.provider().count_tokens(session.messages()));
  } else {
    fmt::print(out, "unknown command /{} (try /help)\n", n);
  }
  return true;
}

int run_repl(ChatSession& session, const ReplOptions& options) {
  using_history();
  stifle_history(2000);
  if (!options.history_file.empty()) read_history(options.history_file.c_str());
  struct sigaction sa {
  }, old{};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns so the answer stops promptly
  sigaction(SIGINT, &sa, &old);
  fmt::print("kandil chat: {} ({}). /help for commands, Ctrl-D to leave.\n",
             session.provider().model(), session.provider().name());
  std::fflush(stdout);
  MultiLine ml;
  int code = 0;
  for (;;) {
    g_interrupted.store(false);
    char* raw = readline(ml.pending() ? "... " : "> ");
    if (!raw) {
      if (g_interrupted.load()) {  // Ctrl-C at the prompt: drop the line, keep going
        ml.take();
        fmt::print("\n");
        continue;
      }
      fmt::print("\n");
      break;  // Ctrl-D
    }
    std::string line = raw;
    std::free(raw);
    if (!trim(line).empty()) {
      add_history(line.c_str());
      if (!options.history_file.empty()) write_history(options.history_file.c_str());
    }
    if (!ml.pending()) {
      if (auto cmd = parse_slash(line)) {
        if (!run_slash(session, *cmd, options, stdout)) break;
        std::fflush(stdout);
        continue;
      }
    }
    if (!ml.add(line)) continue;
    std::string text = ml.take();
    if (trim(text).empty()) continue;
    g_interrupted.store(false);
    auto r = session.turn(text, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return !g_interrupted.load();
    });
    if (!r.ok()) {
      fmt::print(stderr, "\nerror: {}\n", r.error().message);
      std::fflush(stderr);
      continue;
    }
    if (r->dropped > 0) {
      fmt::print(stderr,
                 "[note: {} oldest messages were dropped to fit the context window of {} "
                 "tokens]\n",
                 r->dropped, session.provider().context_window());
    }
    fmt::print("\n");
    if (r->usage.stop_reason == "cancelled") fmt::print("[answer stopped]\n");
    std::fflush(stdout);
  }
  sigaction(SIGINT, &old, nullptr);
  return code;
}

}  // namespace kandil::platform
