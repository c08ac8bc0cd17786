// kandil lora info / convert / merge and run --lora, end to end through the binary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kandil/lora.h"
#include "kandil/model.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::run_kandil;
using testing::temp_dir;

nlohmann::json parse_json(const testing::CommandResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << r.out << "\n" << r.err;
    return {};
  }
}

std::vector<int> run_tokens(const std::string& args) {
  auto j = parse_json(
      run_kandil("run -p 'hello world' -n 10 --temp 0 --ignore-eos -t 1 --json " + args));
  return j.contains("tokens") ? j["tokens"].get<std::vector<int>>() : std::vector<int>{};
}

TEST(LoraCli, ConvertInfoRunAndMerge) {
  const std::string dir = temp_dir();
  const std::string base = dir + "/base.gguf";
  ASSERT_EQ(run_kandil("synth -o " + base + " --json").exit_code, 0);
  auto model = Model::load(base);
  ASSERT_TRUE(model.ok());
  LoraSynthSpec spec;
  spec.rank = 4;
  spec.b_stddev = 0.5f;
  ASSERT_TRUE(write_synthetic_peft_adapter((*model)->config(), spec, dir + "/peft").ok());

  auto conv = parse_json(
      run_kandil("lora convert " + dir + "/peft -m " + base + " -o " + dir + "/a.gguf --json"));
  EXPECT_EQ(conv["n_pairs"], 2 * 7);
  EXPECT_EQ(conv["format"], "gguf");
  auto info = parse_json(run_kandil("lora info " + dir + "/a.gguf --json"));
  EXPECT_EQ(info["rank_max"], 4);
  EXPECT_EQ(info["alpha"], 32.0);
  EXPECT_EQ(info["targets"].size(), 7u);
  auto text = run_kandil("lora info " + dir + "/peft");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("rank:     4"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("q_proj, k_proj"), std::string::npos) << text.out;

  const auto plain = run_tokens("-m " + base);
  const auto with_gguf = run_tokens("-m " + base + " --lora " + dir + "/a.gguf");
  const auto with_peft = run_tokens("-m " + base + " --lora-scaled " + dir + "/peft:1");
  const auto zero = run_tokens("-m " + base + " --lora-scaled " + dir + "/a.gguf:0");
  ASSERT_EQ(plain.size(), 10u);
  EXPECT_EQ(with_gguf, with_peft);
  EXPECT_NE(with_gguf, plain);
  EXPECT_EQ(zero, plain);

  auto merged = parse_json(run_kandil("lora merge -m " + base + " --lora " + dir + "/a.gguf:1 -o " +
                                      dir + "/merged.gguf --json"));
  EXPECT_EQ(merged["adapters"].size(), 1u);
  EXPECT_EQ(run_tokens("-m " + dir + "/merged.gguf"), with_gguf);
}

TEST(LoraCli, ErrorsAreClear) {
  const std::string dir = temp_dir();
  const std::string base = dir + "/base.gguf";
  ASSERT_EQ(run_kandil("synth -o " + base + " --type q8_0").exit_code, 0);
  auto r = run_kandil("lora info " + base);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a LoRA adapter"), std::string::npos) << r.err;
  r = run_kandil("run -m " + base + " -p hi -n 1 --lora-scaled x.gguf:abc");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a finite number"), std::string::npos) << r.err;
  r = run_kandil("run -m " + base + " -p hi -n 1 --lora " + dir + "/missing.gguf");
  EXPECT_EQ(r.exit_code, 1);
  auto model = Model::load(base);
  ASSERT_TRUE(model.ok());
  LoraSynthSpec spec;
  spec.targets = {LoraTarget::v};
  ASSERT_TRUE(write_synthetic_peft_adapter((*model)->config(), spec, dir + "/peft").ok());
  ASSERT_EQ(run_kandil("lora convert " + dir + "/peft -o " + dir + "/v.gguf").exit_code, 0);
  r = run_kandil("lora merge -m " + base + " --lora " + dir + "/v.gguf -o " + dir + "/m.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("F32, F16 or BF16"), std::string::npos) << r.err;
  // Quantized bases run adapters unmerged.
  EXPECT_EQ(run_kandil("run -m " + base + " -p hi -n 2 --lora " + dir + "/v.gguf").exit_code, 0);
}

TEST(LoraCli, BenchReportsSwapLoadAndDecode) {
  const std::string dir = temp_dir();
  ASSERT_EQ(run_kandil("synth -o " + dir + "/base.gguf").exit_code, 0);
  auto j = parse_json(
      run_kandil("lora bench -m " + dir + "/base.gguf --rank 4 --swaps 200 -n 4 -r 1 -t 1 --json"));
  EXPECT_GT(j["swap_publish_us"]["median"].get<double>(), 0.0);
  EXPECT_GE(j["swap_publish_us"]["p99"].get<double>(),
            j["swap_publish_us"]["median"].get<double>());
  EXPECT_GT(j["decode_tps"]["four"].get<double>(), 0.0);
  EXPECT_GT(j["load_gguf_s"].get<double>(), 0.0);
}

}  // namespace
}  // namespace kandil
