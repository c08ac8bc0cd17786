// End-to-end tests of `kandil template`: exact output (no added newline), --json, bare message
// arrays, GGUF and Hugging Face model sources, and errors with a non-zero exit.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "kandil/gguf.h"
#include "test_util.h"

namespace {

using kandil::testing::run_kandil;

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(TemplateCli, PrintsThePromptExactly) {
  const std::string dir = kandil::testing::temp_dir();
  const std::string tpl = write(dir + "/t.jinja",
                                "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
                                "{% if add_generation_prompt %}<assistant>{% endif %}\n");
  const std::string msgs =
      write(dir + "/m.json", R"({"messages": [{"role": "user", "content": "hi"}]})");
  auto r = run_kandil("template --template " + tpl + " --messages " + msgs);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<user>hi\n");
  r = run_kandil("template --template " + tpl + " --messages " + msgs + " --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<user>hi\n<assistant>");
  // A bare array of messages, and --json.
  const std::string arr = write(dir + "/a.json", R"([{"role": "user", "content": "x\"y"}])");
  r = run_kandil("template --json --template " + tpl + " --messages " + arr);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["prompt"], "<user>x\"y\n");
}

TEST(TemplateCli, ReadsTheTemplateAndTokensOfAGgufModel) {
  const std::string dir = kandil::testing::temp_dir();
  kandil::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.chat_template",
               "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}");
  w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<|begin|>", "<|end|>"});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  ASSERT_TRUE(w.write_file(dir + "/m.gguf").ok());
  const std::string msgs = write(dir + "/m.json", R"([{"role": "user", "content": "hi"}])");
  auto r = run_kandil("template -m " + dir + "/m.gguf --messages " + msgs);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|begin|>hi<|end|>");
  // Variables from the file override the model's.
  const std::string over =
      write(dir + "/o.json", R"({"bos_token": "B", "messages": [{"content": "x"}]})");
  r = run_kandil("template -m " + dir + "/m.gguf --messages " + over);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Bx<|end|>");
  r = run_kandil("template -m " + dir + "/m.gguf --name tool_use --messages " + msgs);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no chat template named 'tool_use'"), std::string::npos) << r.err;
}

TEST(TemplateCli, ReadsAHuggingFaceFolder) {
  const std::string dir = kandil::testing::temp_dir();
  write(dir + "/tokenizer_config.json",
        R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>",
            "chat_template": "{{ bos_token }}[{{ messages[0].content }}]{{ eos_token }}"})");
  const std::string msgs = write(dir + "/m.json", R"([{"role": "user", "content": "q"}])");
  auto r = run_kandil("template -m " + dir + " --messages " + msgs);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s>[q]</s>");
}

TEST(TemplateCli, BadInputFailsWithAClearMessage) {
  const std::string dir = kandil::testing::temp_dir();
  const std::string msgs = write(dir + "/m.json", R"([{"role": "user", "content": "q"}])");
  const std::string bad = write(dir + "/bad.jinja", "ok\n{% for x in messages %}\n{{ x|nope }}");
  auto r = run_kandil("template --template " + bad + " --messages " + msgs);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.jinja:3: unexpected end of template: 'for' block opened on line 2"),
            std::string::npos)
      << r.err;
  const std::string raise =
      write(dir + "/raise.jinja", "{{ raise_exception('System role not supported') }}");
  r = run_kandil("template --template " + raise + " --messages " + msgs);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("raise.jinja:1: raise_exception: System role not supported"),
            std::string::npos)
      << r.err;
  const std::string notjson = write(dir + "/n.json", "{");
  r = run_kandil("template --template " + raise + " --messages " + notjson);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  r = run_kandil("template --template " + raise + " --messages " + dir + "/missing.json");
  EXPECT_EQ(r.exit_code, 1);
  r = run_kandil("template -m " + dir + "/missing.gguf --messages " + msgs);
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
