#include "kandil/synth.h"

#include <fmt/core.h>

#include <cmath>
#include <random>

#include "kandil/gguf.h"
#include "ops/quant.h"

namespace kandil {
namespace {

// A byte-fallback SentencePiece vocab: specials, 256 byte tokens, "▁", letters, then "▁"+pairs.
void add_vocab(GgufWriter& w, int32_t n_vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    types.push_back(6);
  }
  const std::string space = "\xe2\x96\x81";  // U+2581
  std::vector<std::string> pieces = {space};
  for (char c = 'a'; c <= 'z'; ++c) pieces.emplace_back(1, c);
  for (char c = 'a'; c <= 'z'; ++c) pieces.push_back(space + c);
  for (char a = 'a'; a <= 'z'; ++a) {
    for (char b = 'a'; b <= 'z'; ++b) pieces.push_back(std::string{a, b});
  }
  for (size_t i = 0; static_cast<int32_t>(tokens.size()) < n_vocab; ++i) {
    tokens.push_back(i < pieces.size() ? pieces[i] : fmt::format("<extra_{}>", i));
    types.push_back(i < pieces.size() ? 1 : 5);
  }
  std::vector<float> scores(tokens.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = i < 259 ? 0.0f : -static_cast<float>(i);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_f32s("tokenizer.ggml.scores", scores);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
}

// Copies every tokenizer.* key of the GGUF at `path` into w; returns the vocab size.
Result<int32_t> copy_tokenizer(GgufWriter& w, const std::string& path) {
  auto f = GgufFile::open(path);
  if (!f.ok()) return f.error();
  auto tokens = f->get_array("tokenizer.ggml.tokens", GgufValueType::STRING);
  if (!tokens.ok()) return tokens.error();
  if (*tokens == nullptr) return Error{path + ": no tokenizer.ggml.tokens array"};
  for (const GgufKV& kv : f->metadata()) {
    if (kv.key.starts_with("tokenizer.")) w.set_value(std::string(kv.key), kv.value);
  }
  return static_cast<int32_t>((*tokens)->count);
}

}  // namespace

Result<void> write_synthetic_model(const SynthSpec& spec, const std::string& path,
                                   const std::function<void(int, int)>& progress) {
  SynthSpec s = spec;
  GgufWriter w;
  if (!s.tokenizer_gguf.empty()) {
    auto n = copy_tokenizer(w, s.tokenizer_gguf);
    if (!n.ok()) return Error{"synth: " + n.error().message};
    s.n_vocab = *n;
  } else if (s.n_vocab < 259) {
    return Error{fmt::format("synth: vocab {} < 259 (specials + bytes)", s.n_vocab)};
  } else {
    add_vocab(w, s.n_vocab);
  }
  if (s.n_head <= 0 || s.n_head_kv <= 0 || s.n_head % s.n_head_kv != 0 ||
      s.n_embd % s.n_head != 0) {
    return Error{"synth: heads must divide n_embd and be a multiple of kv heads"};
  }
  for (TensorType t : {s.type, s.fallback_type}) {
    const ops::TypeTraits* tr = ops::type_traits(t);
    if (!tr || !tr->from_float)
      return Error{fmt::format("synth: cannot write type {}", tensor_type_name(t))};
  }
  const int32_t head_dim = s.n_embd / s.n_head;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", s.name);
  w.set_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32("llama.block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.set_f32("llama.rope.freq_base", s.rope_freq_base);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(s.n_vocab));

  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  const int total = 2 + 9 * s.n_layer + (s.tied_embeddings ? 0 : 1);
  int done = 0;
  auto add = [&](const std::string& name, int64_t n_in, int64_t n_out, float stddev, float mean,
                 bool is_norm) -> Result<void> {
    values.resize(static_cast<size_t>(n_in * n_out));
    for (float& v : values) v = mean + stddev * normal(rng);
    TensorType t = is_norm ? TensorType::F32 : s.type;
    auto info = tensor_type_info(static_cast<uint32_t>(t));
    if (n_in % info->block_size != 0) t = s.fallback_type;
    const ops::TypeTraits* tr = ops::type_traits(t);
    const size_t row = tensor_row_bytes(t, n_in);
    bytes.resize(row * static_cast<size_t>(n_out));
    for (int64_t r = 0; r < n_out; ++r) {
      tr->from_float(values.data() + r * n_in, bytes.data() + static_cast<size_t>(r) * row, n_in);
    }
    std::vector<int64_t> shape =
        is_norm ? std::vector<int64_t>{n_in} : std::vector<int64_t>{n_in, n_out};
    auto added = w.add_tensor(name, t, shape, bytes.data(), bytes.size());
    if (progress) progress(++done, total);
    return added;
  };
  const int64_t E = s.n_embd, q = int64_t{s.n_head} * head_dim,
                kv = int64_t{s.n_head_kv} * head_dim;
  const bool train = s.init == SynthInit::train;
  // Standard deviations: of a projection with n inputs, of one writing into the residual stream,
  // of the embeddings, and of the norm weights around 1.
  auto lin = [&](int64_t n) { return train ? 0.02f : 1.0f / std::sqrt(static_cast<float>(n)); };
  auto resid = [&](int64_t n) {
    return train ? 0.02f / std::sqrt(2.0f * static_cast<float>(s.n_layer)) : lin(n);
  };
  const float embd_std = train ? 0.02f : 1.0f, norm_std = train ? 0.0f : 0.1f;
  KANDIL_CHECK_OK(add("token_embd.weight", E, s.n_vocab, embd_std, 0.0f, false));
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    KANDIL_CHECK_OK(add(p + "attn_norm.weight", E, 1, norm_std, 1.0f, true));
    KANDIL_CHECK_OK(add(p + "attn_q.weight", E, q, lin(E), 0.0f, false));
    KANDIL_CHECK_OK(add(p + "attn_k.weight", E, kv, lin(E), 0.0f, false));
    KANDIL_CHECK_OK(add(p + "attn_v.weight", E, kv, lin(E), 0.0f, false));
    KANDIL_CHECK_OK(add(p + "attn_output.weight", q, E, resid(q), 0.0f, false));
    KANDIL_CHECK_OK(add(p + "ffn_norm.weight", E, 1, norm_std, 1.0f, true));
    KANDIL_CHECK_OK(add(p + "ffn_gate.weight", E, s.n_ff, lin(E), 0.0f, false));
    KANDIL_CHECK_OK(add(p + "ffn_up.weight", E, s.n_ff, lin(E), 0.0f, false));
    KANDIL_CHECK_OK(add(p + "ffn_down.weight", s.n_ff, E, resid(s.n_ff), 0.0f, false));
  }
  KANDIL_CHECK_OK(add("output_norm.weight", E, 1, norm_std, 1.0f, true));
  if (!s.tied_embeddings) KANDIL_CHECK_OK(add("output.weight", E, s.n_vocab, lin(E), 0.0f, false));
  return w.write_file(path);
}

}  // namespace kandil
