// The binary with Hugging Face folders: `kandil convert`, and -m DIR for run / tokenize / info /
// perplexity / bench.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "hf_test_util.h"
#include "test_util.h"

namespace kandil {
namespace {

using kandil::testing::run_kandil;

std::string make_folder() {
  const std::string dir = kandil::testing::temp_dir() + "/hf";
  std::filesystem::create_directories(dir);
  kandil::testing::HfSpec s;
  s.arch = "Qwen2ForCausalLM";
  s.bias = true;
  s.qwen_pre = true;
  kandil::testing::write_hf_model(dir, s);
  return dir;
}

TEST(HfCli, ConvertJsonAndTheConvertedFileRuns) {
  const std::string dir = make_folder();
  const std::string out = dir + "/../out.gguf";
  auto r = run_kandil("convert " + dir + " -o " + out + " --type q8_0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "qwen2");
  EXPECT_EQ(j["hf_architecture"], "Qwen2ForCausalLM");
  EXPECT_EQ(j["type"], "q8_0");
  EXPECT_EQ(j["permuted_qk"], false);
  EXPECT_EQ(j["tensors"], 3 + 2 * 12);
  EXPECT_NE(r.err.find("convert ["), std::string::npos) << r.err;  // progress bar
  // Direct and converted: greedy generations from the same prompt.
  auto a = run_kandil("run -m " + dir + " -p 'hello the world' -n 6 --temp 0 --json -t 2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_kandil("run -m " + out + " -p 'hello the world' -n 6 --temp 0 --json -t 2");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["n_prompt"], jb["n_prompt"]);

  auto text = run_kandil("convert " + dir + " -o " + dir + "/../f16.gguf");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("arch qwen2"), std::string::npos) << text.out;
}

TEST(HfCli, ModelDirForTokenizeInfoPerplexityBench) {
  const std::string dir = make_folder();
  auto t = run_kandil("tokenize -m " + dir + " --json 'hello the world'");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto ids = nlohmann::json::parse(t.out)["ids"].get<std::vector<int>>();
  EXPECT_FALSE(ids.empty());

  auto i = run_kandil("info --json " + dir);
  ASSERT_EQ(i.exit_code, 0) << i.err;
  auto ji = nlohmann::json::parse(i.out);
  EXPECT_EQ(ji["format"], "hf");
  EXPECT_EQ(ji["metadata"]["general.architecture"], "qwen2");
  auto it = run_kandil("info " + dir);
  ASSERT_EQ(it.exit_code, 0) << it.err;
  EXPECT_NE(it.out.find("Hugging Face"), std::string::npos);

  std::ofstream(dir + "/../text.txt") << "hello the world in a tree, hello world again and again";
  auto p = run_kandil("perplexity -m " + dir + " -f " + dir + "/../text.txt -c 8 -t 2");
  EXPECT_EQ(p.exit_code, 0) << p.err;

  auto b = run_kandil("bench -m " + dir + " -p 8 -n 2 -r 1 -t 1 --json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto jb = nlohmann::json::parse(b.out);
  ASSERT_TRUE(jb.is_array() && !jb.empty()) << b.out;
  EXPECT_GT(jb[0]["params"].get<uint64_t>(), 0u);
  EXPECT_GT(jb[0]["model_bytes"].get<uint64_t>(), 0u);
}

TEST(HfCli, ErrorsAreReported) {
  const std::string dir = make_folder();
  std::ofstream(dir + "/config.json") << "{}";
  auto r = run_kandil("convert " + dir + " -o " + dir + "/../x.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
  auto m = run_kandil("run -m " + dir + " -p hi -n 1");
  EXPECT_NE(m.exit_code, 0);
  EXPECT_NE(m.err.find("architectures"), std::string::npos) << m.err;
  auto n = run_kandil("convert " + kandil::testing::temp_dir() + " -o x.gguf");
  EXPECT_EQ(n.exit_code, 1);
  EXPECT_NE(n.err.find("not a Hugging Face model folder"), std::string::npos) << n.err;
}

}  // namespace
}  // namespace kandil
