// kandil quantize: type mixes (llama-quantize's rules), logits of quantized synthetic models, the
// fixture model against llama-quantize's own files, and the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "kandil/generate.h"
#include "kandil/gguf.h"
#include "kandil/model.h"
#include "kandil/quantize.h"
#include "kandil/synth.h"
#include "test_util.h"

namespace kandil {
namespace {

SynthSpec quant_spec(int32_t n_layer = 8, int32_t n_ff = 512) {
  SynthSpec s;
  s.n_layer = n_layer;
  s.n_embd = 256;
  s.n_ff = n_ff;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 320;
  s.n_ctx = 128;
  return s;
}

// Logits of every position of a short prompt.
std::vector<float> prompt_logits(const std::string& path) {
  auto model = Model::load(path);
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return {};
  ContextParams p;
  p.n_ctx = 64;
  p.n_threads = 2;
  auto ctx = Context::create(*model, p);
  EXPECT_TRUE(ctx.ok());
  if (!ctx.ok()) return {};
  const std::vector<TokenId> tokens = {1, 300, 17, 260, 99, 311, 42, 5};
  auto r = (*ctx)->decode(tokens, true);
  EXPECT_TRUE(r.ok()) << r.error().message;
  const int32_t n_vocab = (*model)->config().n_vocab;
  std::vector<float> out;
  for (int32_t i = 0; i < static_cast<int32_t>(tokens.size()); ++i) {
    const float* l = (*ctx)->logits(i);
    out.insert(out.end(), l, l + n_vocab);
  }
  return out;
}

// ||a - b|| / ||b||
double relative_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
    num += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
    den += static_cast<double>(b[k]) * b[k];
  }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

std::map<std::string, TensorType> tensor_types(const std::string& path) {
  std::map<std::string, TensorType> m;
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << f.error().message;
  if (!f.ok()) return m;
  for (const auto& t : f->tensors()) m[std::string(t.name)] = t.type;
  return m;
}

int64_t file_type_of(const std::string& path) {
  auto f = GgufFile::open(path);
  if (!f.ok()) return -1;
  auto v = f->get_int("general.file_type");
  return v.ok() && v->has_value() ? **v : -1;
}

// The type llama-quantize gives `name` in an n_layer-block model (written out per rule, not via
// quantize_tensor_type, so the two are checked against each other).
TensorType expected_type(QuantizeTarget target, const std::string& name, int32_t n_layer) {
  if (name.find("_norm") != std::string::npos) return TensorType::F32;
  const int32_t layer = tensor_layer_index(name);
  const bool more_bits = layer >= 0 && (layer < n_layer / 8 || layer >= 7 * n_layer / 8 ||
                                        (layer - n_layer / 8) % 3 == 2);
  const bool v_or_down =
      name.find("attn_v.") != std::string::npos || name.find("ffn_down.") != std::string::npos;
  switch (target) {
    case QuantizeTarget::F16:
      return TensorType::F16;
    case QuantizeTarget::BF16:
      return TensorType::BF16;
    case QuantizeTarget::Q8_0:
      return TensorType::Q8_0;
    case QuantizeTarget::Q4_0:
      return name == "output.weight" ? TensorType::Q6_K : TensorType::Q4_0;
    case QuantizeTarget::Q6_K:
      return TensorType::Q6_K;
    case QuantizeTarget::Q4_K_M:
    case QuantizeTarget::Q5_K_M: {
      if (name == "output.weight" || (v_or_down && more_bits)) return TensorType::Q6_K;
      return target == QuantizeTarget::Q4_K_M ? TensorType::Q4_K : TensorType::Q5_K;
    }
    case QuantizeTarget::Q4_K_S:
      if (name == "output.weight") return TensorType::Q6_K;
      if (name.find("attn_v.") != std::string::npos && layer < 4) return TensorType::Q5_K;
      if (name.find("ffn_down.") != std::string::npos && layer < n_layer / 8)
        return TensorType::Q5_K;
      return TensorType::Q4_K;
    case QuantizeTarget::Q5_K_S:
      return name == "output.weight" ? TensorType::Q6_K : TensorType::Q5_K;
  }
  return TensorType::F32;
}

TEST(Quantize, TargetNames) {
  EXPECT_EQ(quantize_target_from_name("q4_k_m"), QuantizeTarget::Q4_K_M);
  EXPECT_EQ(quantize_target_from_name("Q8_0"), QuantizeTarget::Q8_0);
  EXPECT_EQ(quantize_target_from_name("bf16"), QuantizeTarget::BF16);
  EXPECT_FALSE(quantize_target_from_name("Q3_X").has_value());
  EXPECT_FALSE(quantize_target_from_name("").has_value());
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::F16), 1u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q4_0), 2u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q8_0), 7u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q4_K_S), 14u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q4_K_M), 15u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q5_K_S), 16u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q5_K_M), 17u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::Q6_K), 18u);
  EXPECT_EQ(quantize_target_file_type(QuantizeTarget::BF16), 32u);
  EXPECT_EQ(tensor_layer_index("blk.12.attn_v.weight"), 12);
  EXPECT_EQ(tensor_layer_index("token_embd.weight"), -1);
  EXPECT_EQ(tensor_layer_index("blk.x.attn_v.weight"), -1);
}

TEST(Quantize, MixRulesForFallbacksAndTiedEmbeddings) {
  std::string note;
  // Tied embeddings: token_embd takes the output rule.
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q4_K_M, "token_embd.weight", 2, 256,
                                 TensorType::F32, -1, 4, false),
            TensorType::Q6_K);
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q4_K_M, "token_embd.weight", 2, 256,
                                 TensorType::F32, -1, 4, true),
            TensorType::Q4_K);
  // Output rows not a multiple of 256: Q8_0.
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q4_0, "output.weight", 2, 288, TensorType::F32, -1,
                                 4, true),
            TensorType::Q8_0);
  // K-quant fallbacks, as llama-quantize.
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q4_K_M, "blk.0.ffn_up.weight", 2, 288,
                                 TensorType::F32, 0, 4, true, &note),
            TensorType::Q5_0);
  EXPECT_NE(note.find("not a multiple"), std::string::npos) << note;
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q5_K_S, "blk.0.ffn_up.weight", 2, 288,
                                 TensorType::F32, 0, 4, true),
            TensorType::Q5_1);
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q6_K, "blk.0.ffn_up.weight", 2, 288,
                                 TensorType::F32, 0, 4, true),
            TensorType::Q8_0);
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q8_0, "blk.0.ffn_up.weight", 2, 100,
                                 TensorType::F32, 0, 4, true),
            TensorType::F16);
  // Norms keep their type.
  EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q4_0, "blk.0.attn_norm.weight", 1, 256,
                                 TensorType::F32, 0, 4, true),
            TensorType::F32);
  // The fixture's 4-layer table: Q6_K for attn_v/ffn_down of blk.2 and blk.3 only.
  for (int32_t l = 0; l < 4; ++l) {
    const auto want = l >= 2 ? TensorType::Q6_K : TensorType::Q4_K;
    EXPECT_EQ(
        quantize_tensor_type(QuantizeTarget::Q4_K_M, "blk." + std::to_string(l) + ".attn_v.weight",
                             2, 256, TensorType::F32, l, 4, true),
        want);
    EXPECT_EQ(quantize_tensor_type(QuantizeTarget::Q4_K_M,
                                   "blk." + std::to_string(l) + ".ffn_down.weight", 2, 768,
                                   TensorType::F32, l, 4, true),
              want);
  }
}

struct TargetCase {
  QuantizeTarget target;
  double max_rel_rms;  // logits vs the F32 model
};

class QuantizeSynth : public ::testing::TestWithParam<TargetCase> {};

TEST_P(QuantizeSynth, TypesFileTypeAndLogits) {
  const auto [target, tol] = GetParam();
  const std::string dir = kandil::testing::temp_dir();
  const std::string f32 = dir + "/f32.gguf", out = dir + "/out.gguf";
  const SynthSpec spec = quant_spec();
  ASSERT_TRUE(write_synthetic_model(spec, f32).ok());
  int calls = 0;
  auto r = quantize_model(f32, out, target, 2, [&](int done, int total, std::string_view) {
    ++calls;
    EXPECT_EQ(done, calls);
    EXPECT_EQ(total, 3 + 9 * spec.n_layer);
  });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(calls, 3 + 9 * spec.n_layer);
  EXPECT_TRUE(r->notes.empty());
  EXPECT_GT(r->output_bytes, 0u);

  EXPECT_EQ(file_type_of(out), quantize_target_file_type(target));
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok());
  auto qv = f->get_int("general.quantization_version");
  ASSERT_TRUE(qv.ok());
  const bool quantized = target != QuantizeTarget::F16 && target != QuantizeTarget::BF16;
  EXPECT_EQ(qv->has_value(), quantized);
  if (quantized) {
    EXPECT_EQ(**qv, 2);
  }
  // Metadata copied.
  auto name = f->get_string("general.name");
  ASSERT_TRUE(name.ok() && name->has_value());
  EXPECT_EQ(**name, spec.name);

  const auto types = tensor_types(out);
  EXPECT_EQ(types.size(), static_cast<size_t>(3 + 9 * spec.n_layer));
  int counted = 0;
  for (const auto& [n, t] : types) {
    EXPECT_EQ(t, expected_type(target, n, spec.n_layer))
        << n << " is " << tensor_type_name(t) << " for " << quantize_target_name(target);
    ++counted;
  }
  for (const auto& [type, count] : r->type_counts) counted -= count;
  EXPECT_EQ(counted, 0);

  const auto ref = prompt_logits(f32);
  const auto got = prompt_logits(out);
  ASSERT_EQ(ref.size(), got.size());
  const double e = relative_rms(got, ref);
  std::printf("  %s: relative RMS logit error %.5f (limit %.3f)\n",
              std::string(quantize_target_name(target)).c_str(), e, tol);
  EXPECT_LT(e, tol);
}

INSTANTIATE_TEST_SUITE_P(
    Targets, QuantizeSynth,
    // Measured on this 8-layer random model (whose logits amplify weight noise): F16 0.0011,
    // BF16 0.0084, Q8_0 0.025, Q6_K 0.066, Q5_K_* 0.13-0.14, Q4_K_* 0.24, Q4_0 0.29.
    ::testing::Values(
        TargetCase{QuantizeTarget::F16, 0.003}, TargetCase{QuantizeTarget::BF16, 0.02},
        TargetCase{QuantizeTarget::Q8_0, 0.04}, TargetCase{QuantizeTarget::Q6_K, 0.1},
        TargetCase{QuantizeTarget::Q5_K_S, 0.2}, TargetCase{QuantizeTarget::Q5_K_M, 0.2},
        TargetCase{QuantizeTarget::Q4_K_S, 0.35}, TargetCase{QuantizeTarget::Q4_K_M, 0.35},
        TargetCase{QuantizeTarget::Q4_0, 0.45}),
    [](const auto& info) { return std::string(quantize_target_name(info.param.target)); });

TEST(Quantize, RowLengthFallbackAndRequantizedInput) {
  const std::string dir = kandil::testing::temp_dir();
  const std::string f32 = dir + "/f32.gguf", q8 = dir + "/q8.gguf", out = dir + "/out.gguf";
  ASSERT_TRUE(write_synthetic_model(quant_spec(2, 288), f32).ok());  // ffn_down rows of 288
  auto r8 = quantize_model(f32, q8, QuantizeTarget::Q8_0, 2);
  ASSERT_TRUE(r8.ok()) << r8.error().message;
  // Q8_0 input: dequantized, then quantized to the mix.
  auto r = quantize_model(q8, out, QuantizeTarget::Q4_K_M, 2);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->notes.size(), 2u);  // both ffn_down tensors
  const auto types = tensor_types(out);
  EXPECT_EQ(types.at("blk.0.ffn_down.weight"), TensorType::Q5_0);  // Q4_K -> Q5_0
  EXPECT_EQ(types.at("blk.1.ffn_down.weight"), TensorType::Q8_0);  // Q6_K (more bits) -> Q8_0
  EXPECT_EQ(types.at("blk.0.ffn_up.weight"), TensorType::Q4_K);
  EXPECT_EQ(types.at("blk.0.attn_norm.weight"), TensorType::F32);
  const auto ref = prompt_logits(f32);
  const auto got = prompt_logits(out);
  ASSERT_EQ(ref.size(), got.size());
  EXPECT_LT(relative_rms(got, ref), 0.3);  // measured 0.16

  // Same type in and out: tensors are copied unchanged.
  const std::string again = dir + "/again.gguf";
  auto same = quantize_model(q8, again, QuantizeTarget::Q8_0, 1);
  ASSERT_TRUE(same.ok());
  auto a = GgufFile::open(q8), b = GgufFile::open(again);
  ASSERT_TRUE(a.ok() && b.ok());
  for (const auto& t : a->tensors()) {
    const auto* u = b->find_tensor(t.name);
    ASSERT_NE(u, nullptr);
    ASSERT_EQ(t.nbytes, u->nbytes);
    EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0) << t.name;
  }
}

TEST(Quantize, ErrorsAreClear) {
  const std::string dir = kandil::testing::temp_dir();
  auto r = quantize_model(dir + "/missing.gguf", dir + "/out.gguf", QuantizeTarget::Q8_0, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("missing.gguf"), std::string::npos) << r.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.gguf"));

  // A weight type kandil cannot dequantize is named in the error.
  const auto info = tensor_type_info(static_cast<uint32_t>(TensorType::IQ2_XXS));
  ASSERT_TRUE(info.has_value());
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  std::vector<uint8_t> data(info->block_bytes * 2, 0);
  ASSERT_TRUE(w.add_tensor("blk.0.attn_q.weight", TensorType::IQ2_XXS, {info->block_size, 2},
                           data.data(), data.size())
                  .ok());
  ASSERT_TRUE(w.write_file(dir + "/iq.gguf").ok());
  auto iq = quantize_model(dir + "/iq.gguf", dir + "/out.gguf", QuantizeTarget::Q4_0, 1);
  ASSERT_FALSE(iq.ok());
  EXPECT_NE(iq.error().message.find("'blk.0.attn_q.weight' has type IQ2_XXS"), std::string::npos)
      << iq.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.gguf"));
}

// ---- fixtures: small-f16 against llama-quantize's files ----------------------------------------

double fixture_ppl(const std::string& path, const std::vector<TokenId>& tokens) {
  auto model = Model::load(path);
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return 0.0;
  ContextParams p;
  p.n_ctx = 128;
  p.n_batch = 128;
  p.n_threads = 0;
  auto ctx = Context::create(*model, p);
  EXPECT_TRUE(ctx.ok());
  if (!ctx.ok()) return 0.0;
  auto r = perplexity(**ctx, tokens, 128);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r->ppl : 0.0;
}

class QuantizeFixture : public ::testing::TestWithParam<QuantizeTarget> {};

TEST_P(QuantizeFixture, MatchesLlamaQuantizeTypesAndQuality) {
  const QuantizeTarget target = GetParam();
  const std::string type(quantize_target_name(target));
  KANDIL_REQUIRE_FIXTURE("models/small-f16.gguf");
  KANDIL_REQUIRE_FIXTURE("models/small-" + type + ".gguf");
  KANDIL_REQUIRE_FIXTURE("text/ppl.txt");
  const std::string ref_path = kandil::testing::fixture("models/small-" + type + ".gguf");
  const std::string out = kandil::testing::temp_dir() + "/small-" + type + ".gguf";
  auto r = quantize_model(kandil::testing::fixture("models/small-f16.gguf"), out, target, 0);
  ASSERT_TRUE(r.ok()) << r.error().message;

  const auto ours = tensor_types(out);
  const auto ref = tensor_types(ref_path);
  ASSERT_EQ(ours.size(), ref.size());
  for (const auto& [name, t] : ref) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_EQ(tensor_type_name(ours.at(name)), tensor_type_name(t)) << name;
  }
  EXPECT_EQ(file_type_of(out), file_type_of(ref_path));

  auto model = Model::load(out);
  ASSERT_TRUE(model.ok()) << model.error().message;
  std::string text = kandil::testing::read_file(kandil::testing::fixture("text/ppl.txt"));
  text.pop_back();  // one trailing newline removed, as llama-perplexity does
  const auto tokens = (*model)->tokenizer().encode(text, true, false);
  const double ppl_ours = fixture_ppl(out, tokens);
  const double ppl_ref = fixture_ppl(ref_path, tokens);
  std::printf("  %s: PPL ours %.4f, llama-quantize %.4f (ratio %.5f); %.2f MiB in %.2f s\n",
              type.c_str(), ppl_ours, ppl_ref, ppl_ours / ppl_ref,
              static_cast<double>(r->output_bytes) / (1024.0 * 1024.0), r->seconds);
  EXPECT_GT(ppl_ours, 0.0);
  EXPECT_LE(ppl_ours, 1.02 * ppl_ref);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantizeFixture,
                         ::testing::Values(QuantizeTarget::Q8_0, QuantizeTarget::Q4_0,
                                           QuantizeTarget::Q4_K_M, QuantizeTarget::Q6_K),
                         [](const auto& info) {
                           return std::string(quantize_target_name(info.param));
                         });

// ---- CLI ----------------------------------------------------------------------------------------

using kandil::testing::run_kandil;

TEST(QuantizeCli, JsonReportAndBadType) {
  const std::string dir = kandil::testing::temp_dir();
  const std::string f32 = dir + "/f32.gguf", out = dir + "/q.gguf";
  ASSERT_TRUE(write_synthetic_model(quant_spec(4), f32).ok());
  auto r = run_kandil("quantize " + f32 + " " + out + " q4_k_m --json -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["type"], "Q4_K_M");
  EXPECT_EQ(j["file_type"], 15);
  EXPECT_GT(j["input_bytes"].get<uint64_t>(), j["output_bytes"].get<uint64_t>());
  EXPECT_EQ(j["type_counts"]["F32"], 9);
  EXPECT_EQ(j["type_counts"]["Q6_K"], 5);  // output + attn_v, ffn_down of blk.2 and blk.3
  EXPECT_EQ(j["type_counts"]["Q4_K"], 25);
  EXPECT_EQ(j["tensors"].size(), 39u);
  EXPECT_GE(j["seconds"].get<double>(), 0.0);
  EXPECT_NE(r.err.find("tensors"), std::string::npos);  // progress bar
  EXPECT_TRUE(Model::load(out).ok());

  auto bad = run_kandil("quantize " + f32 + " " + dir + "/bad.gguf Q3_X");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("unsupported quantization type 'Q3_X'"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("Q4_K_M"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.gguf"));

  auto missing = run_kandil("quantize " + dir + "/nope.gguf " + dir + "/x.gguf Q8_0");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope.gguf"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace kandil
