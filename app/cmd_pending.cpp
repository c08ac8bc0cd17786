// TEMPORARY during bring-up: commands not yet written. Removed before the first landing.
#include "app/commands.h"
namespace kandil::app {
void register_tokenize(CLI::App&, CommandFn&) {}
void register_run(CLI::App&, CommandFn&) {}
void register_perplexity(CLI::App&, CommandFn&) {}
}  // namespace kandil::app
