// The interactive chat loop: libedit line editing and persistent history, multi-line input
// (end a line with '\' or wrap text in """ lines), streamed answers, Ctrl-C cancels the current
// answer (not the program), Ctrl-D or /exit leaves. Slash commands: /help /model /system /reset
// /save /sessions /load /lora /tokens /exit.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "platform/chat/session.h"

namespace kandil::platform {

class SessionStore;

struct SlashCommand {
  std::string name;  // without the slash, e.g. "load"
  std::string arg;   // the rest of the line, trimmed
};
// "/load abc" -> {"load", "abc"}; nullopt when the line is not a slash command.
std::optional<SlashCommand> parse_slash(const std::string& line);

// Accumulates input lines into one message: returns true when `line` completes it.
class MultiLine {
 public:
  bool add(const std::string& line);
  std::string take();
  bool pending() const { return in_block_ || continued_; }

 private:
  std::string text_;
  bool in_block_ = false, continued_ = false;
};

struct ReplOptions {
  std::string history_file;  // "" = no history
  SessionStore* store = nullptr;
  // Switches the model (/model NAME); may be empty (then /model only shows the current one).
  std::function<Result<std::unique_ptr<Provider>>(const std::string&)> switch_model;
};

// Runs until Ctrl-D or /exit; returns the exit code.
int run_repl(ChatSession& session, const ReplOptions& options);

// Runs one slash command, writing to `out`; returns false for /exit.
bool run_slash(ChatSession& session, const SlashCommand& cmd, const ReplOptions& options,
               std::FILE* out);

}  // namespace kandil::platform
