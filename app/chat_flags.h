// Flags of `kandil chat`, shared with `kandil sessions resume`.
#pragma once

#include <map>
#include <string>

namespace kandil::app {

struct ChatFlags {
  std::string model, provider, system, prompt, resume;
  std::string max_tokens, temperature, seed, ctx, threads;  // "" = from config
  bool json = false;
};

// Runs a chat: one-shot with -p or piped stdin, else the REPL.
int run_chat(const ChatFlags& flags);

}  // namespace kandil::app
