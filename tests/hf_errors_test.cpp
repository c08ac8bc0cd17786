// Hugging Face folders: malformed config.json / tokenizer.json, missing or misshapen tensors,
// unsupported dtypes: clear errors naming the file and the key or tensor, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "hf_test_util.h"
#include "kandil/gguf.h"
#include "kandil/hf.h"
#include "kandil/model.h"
#include "model/hf_internal.h"
#include "test_util.h"

namespace kandil {
namespace {

using nlohmann::json;
using testing::HfSpec;

std::string make_folder(const HfSpec& s = {}) {
  const std::string dir = testing::temp_dir() + "/hf";
  std::filesystem::create_directories(dir);
  testing::write_hf_model(dir, s);
  return dir;
}

void expect_load_error(const std::string& dir, const std::vector<std::string>& parts) {
  auto m = Model::load(dir);
  ASSERT_FALSE(m.ok()) << "loaded";
  for (const auto& p : parts) {
    EXPECT_NE(m.error().message.find(p), std::string::npos)
        << "'" << p << "' not in: " << m.error().message;
  }
  auto c = convert_hf_to_gguf(dir, dir + "/../out.gguf");
  EXPECT_FALSE(c.ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/../out.gguf"));
}

void edit_config(const std::string& dir, const std::function<void(json&)>& f) {
  json c = json::parse(testing::read_file(dir + "/config.json"));
  f(c);
  std::ofstream(dir + "/config.json") << c.dump();
}

TEST(HfErrors, ConfigJson) {
  struct Case {
    std::function<void(json&)> edit;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {[](json& c) { c.erase("hidden_size"); }, {"config.json", "'hidden_size'", "missing"}},
      {[](json& c) { c["num_hidden_layers"] = "two"; }, {"'num_hidden_layers'", "integer"}},
      {[](json& c) { c["num_attention_heads"] = -4; }, {"'num_attention_heads'", "-4"}},
      {[](json& c) { c["num_key_value_heads"] = 3; }, {"num_key_value_heads 3"}},
      {[](json& c) { c["architectures"] = json::array({"GPT2LMHeadModel"}); },
       {"GPT2LMHeadModel", "not supported", "Qwen3ForCausalLM"}},
      {[](json& c) { c.erase("architectures"); }, {"'architectures'"}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "yarn"}, {"factor", 4}};
       },
       {"rope_scaling", "yarn"}},
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8},
                              {"low_freq_factor", 4},
                              {"high_freq_factor", 1}};
       },
       {"high_freq_factor"}},
      {[](json& c) { c["rms_norm_eps"] = -1; }, {"'rms_norm_eps'"}},
      {[](json& c) { c["tie_word_embeddings"] = 1; }, {"'tie_word_embeddings'", "true or false"}},
      {[](json& c) { c["head_dim"] = 15; }, {"head_dim"}},
      {[](json& c) { c["vocab_size"] = 200; }, {"outside the model's vocab_size 200"}},
      {[](json& c) { c["hidden_size"] = 32; }, {"model.embed_tokens.weight", "shape"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    const std::string dir = make_folder();
    edit_config(dir, cases[i].edit);
    expect_load_error(dir, cases[i].parts);
    std::filesystem::remove_all(dir);
  }
}

TEST(HfErrors, QwenSlidingWindowAndNotJson) {
  HfSpec s;
  s.arch = "Qwen2ForCausalLM";
  s.bias = true;
  std::string dir = make_folder(s);
  edit_config(dir, [](json& c) { c["use_sliding_window"] = true; });
  expect_load_error(dir, {"use_sliding_window"});
  std::ofstream(dir + "/config.json") << "{\"architectures\": [";
  expect_load_error(dir, {"config.json", "not valid JSON"});
  std::ofstream(dir + "/config.json") << "[1, 2]";
  expect_load_error(dir, {"config.json", "object"});
  std::filesystem::remove(dir + "/config.json");
  expect_load_error(dir, {"config.json", "cannot open"});
}

// Rewrites model.safetensors with one tensor dropped, reshaped or retyped.
void rewrite_weights(const std::string& dir, const std::string& victim, const std::string& how) {
  auto f = SafetensorsFile::open(dir + "/model.safetensors");
  ASSERT_TRUE(f.ok());
  SafetensorsWriter w;
  for (const auto& t : f->tensors()) {
    if (t.name != victim) {
      ASSERT_TRUE(w.add(t.name, t.dtype, t.shape, t.data, t.nbytes).ok());
    } else if (how == "reshape") {
      std::vector<int64_t> shape = {t.shape[1], t.shape[0]};
      ASSERT_TRUE(w.add(t.name, t.dtype, shape, t.data, t.nbytes).ok());
    } else if (how == "i32") {
      ASSERT_TRUE(w.add(t.name, SafetensorsDType::I32, t.shape, t.data, t.nbytes).ok());
    } else if (how == "rename") {
      ASSERT_TRUE(
          w.add("model.layers.0.mlp.experts.0.w1", t.dtype, t.shape, t.data, t.nbytes).ok());
    }
  }
  auto f2 = std::move(*f);  // keep the mapping alive until the new file is written
  ASSERT_TRUE(w.write_file(dir + "/model.safetensors").ok());
}

TEST(HfErrors, Tensors) {
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  struct Case {
    std::string victim, how;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {q, "drop", {q, "missing"}},
      {"model.layers.1.self_attn.k_proj.weight", "reshape", {"k_proj.weight", "shape"}},
      {q, "i32", {q, "dtype I32"}},
      {"model.layers.0.mlp.up_proj.weight", "rename", {"experts", "not part of"}},
      {"lm_head.weight", "reshape", {"lm_head.weight", "shape"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.victim + " " + c.how);
    const std::string dir = make_folder();
    rewrite_weights(dir, c.victim, c.how);
    expect_load_error(dir, c.parts);
    std::filesystem::remove_all(dir);
  }
  // Qwen2 without its biases.
  HfSpec s;
  s.arch = "Qwen2ForCausalLM";
  s.bias = false;
  expect_load_error(make_folder(s), {"attn_q.bias", "missing"});
}

TEST(HfErrors, TokenizerJson) {
  struct Case {
    std::function<void(json&)> edit;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {[](json& t) { t["model"]["type"] = "Unigram"; }, {"tokenizer.json", "Unigram"}},
      {[](json& t) { t["model"]["byte_fallback"] = true; }, {"byte_fallback"}},
      {[](json& t) { t["model"].erase("merges"); }, {"model.merges"}},
      {[](json& t) { t["model"]["merges"][0] = 7; }, {"merge #0"}},
      {[](json& t) { t["model"]["vocab"]["x"] = 9999; }, {"9999", "vocab_size"}},
      {[](json& t) { t["pre_tokenizer"] = nullptr; }, {"ByteLevel"}},
      {[](json& t) { t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+"; },
       {"not one of the known families"}},
      {[](json& t) { t["added_tokens"][0].erase("content"); }, {"added_tokens"}},
      {[](json& t) { t["model"]["type"] = 5; }, {"model type"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    const std::string dir = make_folder();
    json t = json::parse(testing::read_file(dir + "/tokenizer.json"));
    cases[i].edit(t);
    std::ofstream(dir + "/tokenizer.json") << t.dump();
    expect_load_error(dir, cases[i].parts);
    std::filesystem::remove_all(dir);
  }
}

TEST(HfErrors, ConvertRejectsNonFolderAndBadType) {
  auto r = convert_hf_to_gguf(testing::temp_dir() + "/nope", testing::temp_dir() + "/o.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("config.json"), std::string::npos) << r.error().message;
  HfConvertOptions o;
  o.type = TensorType::Q4_0;
  r = convert_hf_to_gguf(make_folder(), testing::temp_dir() + "/o.gguf", o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not supported"), std::string::npos);
  EXPECT_FALSE(is_hf_model_dir(testing::temp_dir() + "/nope"));
}

// The streaming writer behind convert: deferred tensors give the same bytes as copied ones, and
// a failing fill leaves no file behind.
TEST(GgufWriterDeferred, StreamsTheSameBytesAndFailsCleanly) {
  std::vector<float> a(96), b(40);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = -static_cast<float>(i);
  GgufWriter copied, deferred;
  for (GgufWriter* w : {&copied, &deferred}) {
    w->set_string("general.architecture", "llama");
    w->set_alignment(64);
  }
  ASSERT_TRUE(copied.add_tensor("a", TensorType::F32, {32, 3}, a.data(), a.size() * 4).ok());
  ASSERT_TRUE(copied.add_tensor("b", TensorType::F32, {40}, b.data(), b.size() * 4).ok());
  auto fill_from = [](const std::vector<float>& v) {
    return [&v](uint8_t* dst) -> Result<void> {
      std::memcpy(dst, v.data(), v.size() * 4);
      return {};
    };
  };
  ASSERT_TRUE(deferred.add_tensor_deferred("a", TensorType::F32, {32, 3}, fill_from(a)).ok());
  ASSERT_TRUE(deferred.add_tensor_deferred("b", TensorType::F32, {40}, fill_from(b)).ok());
  EXPECT_FALSE(deferred.add_tensor_deferred("b", TensorType::F32, {40}, fill_from(b)).ok());
  EXPECT_FALSE(deferred.add_tensor_deferred("c", TensorType::Q8_0, {40}, fill_from(b)).ok());
  EXPECT_EQ(copied.serialize(), deferred.serialize());
  const std::string path = testing::temp_dir() + "/d.gguf";
  ASSERT_TRUE(deferred.write_file(path).ok());
  const std::vector<uint8_t> expect = copied.serialize();
  EXPECT_EQ(testing::read_file(path), std::string(expect.begin(), expect.end()));
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(reinterpret_cast<const float*>(f->find_tensor("b")->data)[3], -3.0f);

  GgufWriter failing;
  ASSERT_TRUE(failing
                  .add_tensor_deferred("x", TensorType::F32, {4},
                                       [](uint8_t*) -> Result<void> { return Error{"boom"}; })
                  .ok());
  const std::string bad = testing::temp_dir() + "/bad.gguf";
  auto r = failing.write_file(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("boom"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(bad));
  EXPECT_FALSE(std::filesystem::exists(bad + ".tmp"));
  EXPECT_TRUE(failing.serialize().empty());
  EXPECT_FALSE(failing.write_file(testing::temp_dir() + "/no/such/dir/x.gguf").ok());
}

TEST(HfNames, RoundTrip) {
  for (const char* g : {"token_embd.weight", "output.weight", "output_norm.weight",
                        "blk.0.attn_q.weight", "blk.12.attn_k.bias", "blk.3.attn_q_norm.weight",
                        "blk.7.ffn_down.weight", "blk.1.attn_output.weight"}) {
    auto h = hf::hf_name_of(g);
    ASSERT_TRUE(h) << g;
    EXPECT_EQ(hf::gguf_name_of(*h), std::string(g));
  }
  EXPECT_EQ(*hf::hf_name_of("blk.12.ffn_gate.weight"), "model.layers.12.mlp.gate_proj.weight");
  EXPECT_FALSE(hf::hf_name_of("blk.x.attn_q.weight"));
  EXPECT_FALSE(hf::hf_name_of("blk.1"));
  EXPECT_FALSE(hf::gguf_name_of("model.layers.1.mlp.experts.0.w1"));
  EXPECT_FALSE(hf::gguf_name_of("model.layers..mlp.up_proj.weight"));
}

TEST(HfConfig, Llama3FactorsFollowTheFormula) {
  hf::HfConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_factor = 8.0;
  c.low_freq_factor = 1.0;
  c.high_freq_factor = 4.0;
  c.original_max_position_embeddings = 8192;
  auto f = hf::llama3_rope_factors(c);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);   // high frequency: untouched
  EXPECT_FLOAT_EQ(f[63], 8.0f);  // low frequency: divided by the factor
  for (size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1]);  // smooth, monotone blend
  auto cfg = hf::parse_config(
      R"({"architectures":["Qwen3ForCausalLM"],"vocab_size":10,"hidden_size":8,
          "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2})",
      "x/config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  EXPECT_EQ(cfg->head_dim, 128);  // Qwen3's default
  EXPECT_TRUE(cfg->qk_norm);
  EXPECT_EQ(cfg->n_head_kv, 2);
}

}  // namespace
}  // namespace kandil
