// kandil finetune end to end through the binary, on a tiny synthesized model: the loss falls,
// resume continues the identical curve, the PEFT adapter and its GGUF twin give the same logits,
// bad data lines name file:line, and --full writes a loadable GGUF.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kandil/lora.h"
#include "kandil/model.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::run_kandil;
using testing::temp_dir;

// 2 layers, width 32: each step takes milliseconds.
std::string make_base(const std::string& dir) {
  const std::string base = dir + "/base.gguf";
  auto r = run_kandil("synth -o " + base +
                      " --layers 2 --dim 32 --ffn 64 --heads 4 --kv-heads 2 --vocab 320");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return base;
}

std::string make_data(const std::string& dir) {
  const std::string path = dir + "/data.jsonl";
  std::ofstream out(path);
  const char* lines[] = {"the quick brown fox jumps over the lazy dog",
                         "a b c d e f g h i j k l m n o p",
                         "one two three four five six seven eight"};
  for (int i = 0; i < 24; ++i) {
    if (i % 3 == 2) {
      out << nlohmann::json{{"prompt", "count: "}, {"completion", lines[i % 3]}}.dump() << "\n";
    } else {
      out << nlohmann::json{{"text", lines[i % 3]}}.dump() << "\n";
    }
  }
  return path;
}

const std::string kCommon = " --ctx 32 --batch 4 --lr 0.01 --lora-r 4 -t 1 ";

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<float> logits_with(std::shared_ptr<const Model> model,
                               std::shared_ptr<const LoraAdapter> adapter,
                               const std::vector<TokenId>& tokens) {
  ContextParams p;
  p.n_ctx = 64;
  p.n_threads = 1;
  p.cache_type = KvCacheType::f32;
  auto ctx = Context::create(model, p);
  EXPECT_TRUE(ctx.ok());
  if (adapter) {
    EXPECT_TRUE(apply_adapter(**ctx, adapter, 1.0f).ok());
  }
  EXPECT_TRUE((*ctx)->decode(tokens).ok());
  const float* l = (*ctx)->logits();
  return std::vector<float>(l, l + model->config().n_vocab);
}

TEST(FinetuneCli, LoraLossFallsAndAdaptersAgree) {
  const std::string dir = temp_dir();
  const std::string base = make_base(dir);
  const std::string data = make_data(dir);
  auto r = run_kandil("finetune -m " + base + " --data " + data + " -o " + dir + "/out" + kCommon +
                      "--steps 30 --targets q,k,v,o,gate,up,down --val-fraction 0.2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["steps"], 30);
  EXPECT_TRUE(summary["val_loss"].is_number());

  auto log = read_log(dir + "/out/log.jsonl");
  ASSERT_EQ(log.size(), 30u);
  // Steadily: every window of 5 steps averages below the one before it.
  double prev = 1e30;
  for (size_t w = 0; w < 6; ++w) {
    double mean = 0;
    for (size_t i = 0; i < 5; ++i) mean += log[w * 5 + i]["loss"].get<double>() / 5;
    EXPECT_LT(mean, prev) << "window " << w;
    prev = mean;
  }
  EXPECT_LT(log.back()["loss"].get<double>(), 0.7 * log.front()["loss"].get<double>());
  for (const auto& l : log) {
    EXPECT_TRUE(l.contains("lr") && l.contains("grad_norm") && l.contains("tokens_per_s"));
  }
  EXPECT_TRUE(log.back().contains("val_loss"));

  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "adapter.gguf",
                        "checkpoint.safetensors", "state.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/" + f)) << f;
  }
  auto model = Model::load(base);
  ASSERT_TRUE(model.ok());
  auto peft = LoraAdapter::load(dir + "/out", **model);
  ASSERT_TRUE(peft.ok()) << peft.error().message;
  auto gguf = LoraAdapter::load(dir + "/out/adapter.gguf", **model);
  ASSERT_TRUE(gguf.ok()) << gguf.error().message;
  EXPECT_EQ((*peft)->info().rank_max, 4);
  EXPECT_EQ((*peft)->info().targets.size(), 7u);
  const std::vector<TokenId> tokens = (*model)->tokenizer().encode("the quick brown", true, false);
  const auto plain = logits_with(*model, nullptr, tokens);
  const auto a = logits_with(*model, *peft, tokens);
  const auto b = logits_with(*model, *gguf, tokens);
  double max_diff = 0, max_change = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
    max_change = std::max(max_change, static_cast<double>(std::fabs(a[i] - plain[i])));
  }
  EXPECT_LT(max_diff, 1e-4);
  EXPECT_GT(max_change, 1e-2);  // the adapter learned something
}

TEST(FinetuneCli, ResumeContinuesTheIdenticalCurve) {
  const std::string dir = temp_dir();
  const std::string base = make_base(dir);
  const std::string data = make_data(dir);
  const std::string args = "finetune -m " + base + " --data " + data + kCommon + "--grad-accum 2 ";
  auto whole = run_kandil(args + "-o " + dir + "/a --steps 10");
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  auto half = run_kandil(args + "-o " + dir + "/b --steps 5");
  ASSERT_EQ(half.exit_code, 0) << half.err;
  auto rest = run_kandil(args + "-o " + dir + "/b --steps 10 --resume");
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_NE(rest.err.find("resuming at step 5"), std::string::npos) << rest.err;
  auto la = read_log(dir + "/a/log.jsonl");
  auto lb = read_log(dir + "/b/log.jsonl");
  ASSERT_EQ(la.size(), 10u);
  ASSERT_EQ(lb.size(), 10u);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i]["step"], lb[i]["step"]);
    EXPECT_EQ(la[i]["loss"], lb[i]["loss"]) << "step " << i + 1;
    EXPECT_EQ(la[i]["grad_norm"], lb[i]["grad_norm"]) << "step " << i + 1;
  }
  EXPECT_EQ(testing::read_file(dir + "/a/adapter_model.safetensors"),
            testing::read_file(dir + "/b/adapter_model.safetensors"));

  // Same seed + data -> the same curve; resume with other options is refused, naming them.
  auto again = run_kandil(args + "-o " + dir + "/c --steps 10");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto lc = read_log(dir + "/c/log.jsonl");
  ASSERT_EQ(lc.size(), 10u);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i]["loss"], lc[i]["loss"]);
  auto other = run_kandil("finetune -m " + base + " --data " + data +
                          " --ctx 32 --batch 4 --lr 0.02 --lora-r 4 -t 1 --grad-accum 2 -o " + dir +
                          "/b --steps 12 --resume");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("lr (checkpoint"), std::string::npos) << other.err;
  auto none = run_kandil(args + "-o " + dir + "/empty --steps 2 --resume");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("state.json"), std::string::npos) << none.err;
}

TEST(FinetuneCli, BadDataLineNamesFileAndLine) {
  const std::string dir = temp_dir();
  const std::string base = make_base(dir);
  const std::string data = dir + "/bad.jsonl";
  {
    std::ofstream out(data);
    out << "{\"text\": \"fine\"}\n\n{\"text\": 3}\n";
  }
  auto r = run_kandil("finetune -m " + base + " --data " + data + " -o " + dir + "/out --steps 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(data + ":3:"), std::string::npos) << r.err;
  auto t = run_kandil("finetune -m " + base + " --data " + make_data(dir) + " -o " + dir +
                      "/out --steps 2 --targets q,nope");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.err.find("nope"), std::string::npos) << t.err;
}

TEST(FinetuneCli, FullWritesALoadableGguf) {
  const std::string dir = temp_dir();
  const std::string base = make_base(dir);
  auto r = run_kandil("finetune -m " + base + " --data " + make_data(dir) + " -o " + dir +
                      "/full --full --steps 3 --ctx 32 --batch 2 --lr 0.001 -t 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto model = Model::load(dir + "/full/model.gguf");
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto orig = Model::load(base);
  ASSERT_TRUE(orig.ok());
  const std::vector<TokenId> tokens = (*orig)->tokenizer().encode("the quick", true, false);
  const auto a = logits_with(*orig, nullptr, tokens);
  const auto b = logits_with(*model, nullptr, tokens);
  double change = 0;
  for (size_t i = 0; i < a.size(); ++i) change = std::max(change, double(std::fabs(a[i] - b[i])));
  EXPECT_GT(change, 1e-4);
}

TEST(FinetuneCli, SigintWritesACheckpointAndExits130) {
  const std::string dir = temp_dir();
  const std::string base = make_base(dir);
  const std::string out = dir + "/run";
  // Interrupt once the first step is logged (the handler is installed by then).
  const std::string cmd = std::string(KANDIL_BINARY) + " finetune -m " + base + " --data " +
                          make_data(dir) + " -o " + out + kCommon + "--steps 100000000 2>" + dir +
                          "/err.txt & p=$!; while [ ! -s " + out +
                          "/log.jsonl ]; do sleep 0.05; done; kill -INT $p; wait $p; exit $?";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  const std::string err = testing::read_file(dir + "/err.txt");
  EXPECT_NE(err.find("--resume"), std::string::npos) << err;
  EXPECT_TRUE(std::filesystem::exists(out + "/checkpoint.safetensors"));
  auto log = read_log(out + "/log.jsonl");
  ASSERT_FALSE(log.empty());
  const int64_t step = log.back()["step"].get<int64_t>();
  auto state = nlohmann::json::parse(testing::read_file(out + "/state.json"));
  EXPECT_EQ(state["step"].get<int64_t>(), step);
  auto resumed = run_kandil("finetune -m " + base + " --data " + dir + "/data.jsonl -o " + out +
                            kCommon + "--steps " + std::to_string(step + 2) + " --resume");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_log(out + "/log.jsonl").size(), static_cast<size_t>(step + 2));
}

}  // namespace
}  // namespace kandil
