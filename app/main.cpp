#include <cstdio>

#include "app/commands.h"
#include "kandil/log.h"

int main(int argc, char** argv) {
  kandil::log::init_from_env();
  CLI::App app{"kandil: local-first inference and fine-tuning engine"};
  app.set_version_flag("--version", std::string("kandil ") + KANDIL_VERSION);
  app.require_subcommand(1);
  kandil::app::CommandFn selected;
  kandil::app::register_info(app, selected);
  kandil::app::register_tokenize(app, selected);
  kandil::app::register_run(app, selected);
  kandil::app::register_perplexity(app, selected);
  kandil::app::register_quantize(app, selected);
  kandil::app::register_synth(app, selected);
  kandil::app::register_bench(app, selected);
  kandil::app::register_convert(app, selected);
  kandil::app::register_lora(app, selected);
  kandil::app::register_template(app, selected);
  kandil::app::register_chat(app, selected);
  kandil::app::register_sessions(app, selected);
  kandil::app::register_config(app, selected);
  kandil::app::register_audit(app, selected);
  kandil::app::register_doctor(app, selected);
  kandil::app::register_tokenizer_train(app, selected);
  kandil::app::register_serve(app, selected);
  kandil::app::register_finetune(app, selected);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return selected ? selected() : 1;
}
