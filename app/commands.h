// Each `kandil` subcommand registers itself on the CLI11 app; main() runs the selected one.
// A command parses flags, calls the engine through include/kandil/*, and renders text or --json.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace kandil::app {

// Returned callbacks run after parsing and give the process exit code.
using CommandFn = std::function<int()>;

void register_info(CLI::App& app, CommandFn& selected);
void register_tokenize(CLI::App& app, CommandFn& selected);
void register_run(CLI::App& app, CommandFn& selected);
void register_perplexity(CLI::App& app, CommandFn& selected);
void register_quantize(CLI::App& app, CommandFn& selected);
void register_synth(CLI::App& app, CommandFn& selected);
void register_bench(CLI::App& app, CommandFn& selected);
void register_convert(CLI::App& app, CommandFn& selected);
void register_lora(CLI::App& app, CommandFn& selected);
void register_template(CLI::App& app, CommandFn& selected);
void register_chat(CLI::App& app, CommandFn& selected);
void register_sessions(CLI::App& app, CommandFn& selected);
void register_config(CLI::App& app, CommandFn& selected);
void register_audit(CLI::App& app, CommandFn& selected);
void register_doctor(CLI::App& app, CommandFn& selected);
void register_tokenizer_train(CLI::App& app, CommandFn& selected);
void register_serve(CLI::App& app, CommandFn& selected);
void register_finetune(CLI::App& app, CommandFn& selected);

}  // namespace kandil::app
