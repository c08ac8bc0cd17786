// Hugging Face folders: random-weight models the suite writes (safetensors + config.json + a
// byte-level BPE tokenizer.json) for llama (LLaMA 3 rope), mistral (sliding window), qwen2
// (biases) and qwen3 (q/k norm); loaded directly and after `convert`, checked against an
// independent float64 forward pass with HF semantics (tests/hf_test_util.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hf_test_util.h"
#include "kandil/gguf.h"
#include "kandil/hf.h"
#include "kandil/model.h"
#include "test_util.h"

namespace kandil {
namespace {

using testing::HfSpec;

const std::vector<TokenId> kTokens = {256, 17, 270, 72, 101, 299, 259, 33, 44, 260, 5, 99};

double max_abs_diff(const float* a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < b.size(); ++i) d = std::max(d, std::abs(double(a[i]) - b[i]));
  return d;
}
double max_abs_diff(const float* a, const float* b, int n) {
  double d = 0;
  for (int i = 0; i < n; ++i) d = std::max(d, std::abs(double(a[i]) - double(b[i])));
  return d;
}

std::shared_ptr<const Model> load(const std::string& path) {
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : nullptr;
}

std::unique_ptr<Context> context(std::shared_ptr<const Model> m, int batch = 64,
                                 KvCacheType cache = KvCacheType::f32) {
  ContextParams p;
  p.n_ctx = 64;
  p.n_batch = batch;
  p.n_threads = 2;
  p.cache_type = cache;
  auto c = Context::create(std::move(m), p);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? std::move(*c) : nullptr;
}

// All positions' logits: one batch of the whole sequence.
std::vector<std::vector<float>> batch_logits(std::shared_ptr<const Model> m,
                                             KvCacheType cache = KvCacheType::f32) {
  auto ctx = context(m, 64, cache);
  auto r = ctx->decode(kTokens, true);
  EXPECT_TRUE(r.ok()) << r.error().message;
  std::vector<std::vector<float>> out;
  for (size_t t = 0; t < kTokens.size(); ++t) {
    const float* l = ctx->logits(static_cast<int32_t>(t));
    out.emplace_back(l, l + m->config().n_vocab);
  }
  return out;
}

// Token by token (one decode call per token).
std::vector<std::vector<float>> incremental_logits(std::shared_ptr<const Model> m) {
  auto ctx = context(m, 1);
  std::vector<std::vector<float>> out;
  for (TokenId t : kTokens) {
    EXPECT_TRUE(ctx->decode(&t, 1).ok());
    const float* l = ctx->logits();
    out.emplace_back(l, l + m->config().n_vocab);
  }
  return out;
}

void expect_close(const std::vector<std::vector<float>>& a,
                  const std::vector<std::vector<float>>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t t = 0; t < a.size(); ++t) {
    ASSERT_EQ(a[t].size(), b[t].size());
    EXPECT_LT(max_abs_diff(a[t].data(), b[t].data(), int(a[t].size())), tol)
        << what << ", position " << t;
  }
}

// The whole round: direct load vs reference, batch vs token by token, convert to f32 and f16
// GGUF and back, tokenizer equality.
void check_architecture(const HfSpec& spec, const std::string& expect_arch) {
  const std::string dir = testing::temp_dir() + "/hf";
  std::filesystem::create_directories(dir);
  const testing::HfWeights w = testing::write_hf_model(dir, spec);
  auto ref = testing::hf_reference_logits(w, kTokens);

  auto direct = load(dir);
  ASSERT_TRUE(direct);
  EXPECT_EQ(direct->config().arch, expect_arch);
  EXPECT_EQ(direct->config().source_format, "hf");
  EXPECT_EQ(direct->config().head_dim, spec.D);
  EXPECT_EQ(direct->config().sliding_window, spec.window);
  EXPECT_EQ(direct->config().qkv_bias, spec.bias);
  EXPECT_EQ(direct->config().qk_norm, spec.qk_norm);
  EXPECT_EQ(direct->config().tied_embeddings, spec.tied);
  EXPECT_EQ(direct->config().rope_freq_factors.empty(), spec.rope_type != "llama3");
  auto logits = batch_logits(direct);
  for (size_t t = 0; t < kTokens.size(); ++t) {
    EXPECT_LT(max_abs_diff(logits[t].data(), ref[t]), 2e-3) << "direct vs reference, pos " << t;
  }
  expect_close(logits, incremental_logits(direct), 1e-4, "batch vs token by token");
  // The default F16 cache stays close too.
  expect_close(logits, batch_logits(direct, KvCacheType::f16), 5e-2, "f16 cache");

  for (TensorType type : {TensorType::F32, TensorType::F16}) {
    const std::string out = dir + "/../model-" + std::string(tensor_type_name(type)) + ".gguf";
    int calls = 0;
    HfConvertOptions opt;
    opt.type = type;
    opt.progress = [&](int done, int total, std::string_view) {
      ++calls;
      EXPECT_LE(done, total);
    };
    auto r = convert_hf_to_gguf(dir, out, opt);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->arch, expect_arch);
    EXPECT_EQ(calls, r->n_tensors);
    EXPECT_EQ(r->permuted_qk, expect_arch == "llama");
    auto converted = load(out);
    ASSERT_TRUE(converted);
    EXPECT_EQ(converted->config().source_format, "gguf");
    EXPECT_EQ(converted->config().rope_layout,
              expect_arch == "llama" ? RopeLayout::adjacent_pairs : RopeLayout::split_half);
    EXPECT_EQ(converted->config().sliding_window, spec.window);
    EXPECT_EQ(converted->config().qkv_bias, spec.bias);
    EXPECT_EQ(converted->config().qk_norm, spec.qk_norm);
    auto conv_logits = batch_logits(converted);
    const double tol = type == TensorType::F32 ? 1e-3 : 3e-2;
    expect_close(logits, conv_logits, tol, "converted " + std::string(tensor_type_name(type)));
    // F16 weights: a batch's GEMM and a single token's dot round the activations differently.
    expect_close(conv_logits, incremental_logits(converted), tol,
                 "converted, batch vs token by token");

    // Same tokenizer either way.
    for (const char* text : {"hello the world in a tree", "Hello, wörld 12345!\n\n x"}) {
      EXPECT_EQ(direct->tokenizer().encode(text, true, true),
                converted->tokenizer().encode(text, true, true));
    }
    auto f = GgufFile::open(out);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(**f->get_string("general.architecture"), expect_arch);
    EXPECT_TRUE(f->find("tokenizer.chat_template"));
    EXPECT_EQ(**f->get_string("tokenizer.ggml.pre"), spec.qwen_pre ? "qwen2" : "llama-bpe");
  }
}

TEST(HfModel, LlamaWithLlama3RopeScaling) {
  HfSpec s;
  s.rope_type = "llama3";
  s.rope_factor = 8.0;
  s.theta = 500000.0;
  check_architecture(s, "llama");
}

TEST(HfModel, LlamaLinearRopeTiedEmbeddingsBiasFullHeads) {
  HfSpec s;
  s.rope_type = "linear";
  s.rope_factor = 2.0;
  s.tied = true;
  s.bias = true;  // attention_bias: the biases are permuted with the rows on convert
  s.KV = 4;
  check_architecture(s, "llama");
}

TEST(HfModel, MistralSlidingWindowShorterThanTheSequence) {
  HfSpec s;
  s.arch = "MistralForCausalLM";
  s.window = 5;  // the 12-token sequence must mask older keys
  check_architecture(s, "llama");
}

TEST(HfModel, Qwen2Biases) {
  HfSpec s;
  s.arch = "Qwen2ForCausalLM";
  s.bias = true;
  s.qwen_pre = true;
  s.theta = 1000000.0;
  check_architecture(s, "qwen2");
}

TEST(HfModel, Qwen3QkNormExplicitHeadDim) {
  HfSpec s;
  s.arch = "Qwen3ForCausalLM";
  s.qk_norm = true;
  s.D = 32;  // 4 heads x 32 != hidden 64
  s.explicit_head_dim = true;
  s.qwen_pre = true;
  s.tied = true;
  check_architecture(s, "qwen3");
}

TEST(HfModel, Bf16AndF16FoldersLoadZeroCopyAndConvert) {
  for (SafetensorsDType dt : {SafetensorsDType::BF16, SafetensorsDType::F16}) {
    HfSpec s;
    s.dtype = dt;
    const std::string dir = testing::temp_dir() + "/hf-" + std::string(safetensors_dtype_name(dt));
    std::filesystem::create_directories(dir);
    const testing::HfWeights w = testing::write_hf_model(dir, s);
    auto ref = testing::hf_reference_logits(w, kTokens);  // from the rounded weights
    auto direct = load(dir);
    ASSERT_TRUE(direct);
    auto logits = batch_logits(direct);
    // 16-bit weights multiply 16-bit-rounded activations (llama.cpp's numerics).
    for (size_t t = 0; t < kTokens.size(); ++t) {
      EXPECT_LT(max_abs_diff(logits[t].data(), ref[t]), 4e-2) << "pos " << t;
    }
    // Exact widening to F32, and the same type kept as is (memcpy of the rows).
    for (TensorType type :
         {TensorType::F32, dt == SafetensorsDType::BF16 ? TensorType::BF16 : TensorType::F16}) {
      HfConvertOptions opt;
      opt.type = type;
      const std::string out = dir + "/../out.gguf";
      auto r = convert_hf_to_gguf(dir, out, opt);
      ASSERT_TRUE(r.ok()) << r.error().message;
      auto conv = batch_logits(load(out));
      if (type == TensorType::F32) {  // exact widening: the reference's weights, F32 numerics
        for (size_t t = 0; t < kTokens.size(); ++t) {
          EXPECT_LT(max_abs_diff(conv[t].data(), ref[t]), 2e-3) << "F32, pos " << t;
        }
      } else {  // rows copied as they are: the direct load's numerics
        expect_close(logits, conv, 1e-4, std::string(tensor_type_name(type)));
      }
    }
  }
}

// An odd-length F16 norm (hidden size 33) leaves the next F32 matrix at an offset that is not a
// multiple of 4: the loader copies such tensors into aligned storage; results are unchanged.
TEST(HfModel, MisalignedTensorsAreRealigned) {
  HfSpec s;
  s.E = 33;
  s.explicit_head_dim = true;  // 4 heads x 16
  s.vector_dtype = SafetensorsDType::F16;
  const std::string dir = testing::temp_dir() + "/hf";
  std::filesystem::create_directories(dir);
  const testing::HfWeights w = testing::write_hf_model(dir, s);
  auto st = SafetensorsFile::open(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  bool misaligned = false;
  for (const auto& t : st->tensors()) {
    misaligned = misaligned ||
                 (t.dtype == SafetensorsDType::F32 && reinterpret_cast<uintptr_t>(t.data) % 4 != 0);
  }
  EXPECT_TRUE(misaligned) << "the test needs a misaligned F32 tensor";
  auto ref = testing::hf_reference_logits(w, kTokens);
  auto logits = batch_logits(load(dir));
  for (size_t t = 0; t < kTokens.size(); ++t) {
    EXPECT_LT(max_abs_diff(logits[t].data(), ref[t]), 2e-3) << "pos " << t;
  }
}

TEST(HfModel, ConvertQ8_0) {
  HfSpec s;
  const std::string dir = testing::temp_dir() + "/hf";
  std::filesystem::create_directories(dir);
  testing::write_hf_model(dir, s);
  HfConvertOptions opt;
  opt.type = TensorType::Q8_0;
  auto r = convert_hf_to_gguf(dir, dir + "/../q8.gguf", opt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto f = GgufFile::open(dir + "/../q8.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type, TensorType::Q8_0);
  EXPECT_EQ(f->find_tensor("blk.0.attn_norm.weight")->type, TensorType::F32);
  EXPECT_EQ(**f->get_int("general.file_type"), 7);
  expect_close(batch_logits(load(dir)), batch_logits(load(dir + "/../q8.gguf")), 0.15, "q8_0");
}

}  // namespace
}  // namespace kandil
