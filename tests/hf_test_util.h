// Test helpers for Hugging Face folders: random-weight models written as safetensors +
// config.json + a small but real byte-level BPE tokenizer.json, and an independent float64
// forward pass with Hugging Face's semantics (split-half RoPE on unpermuted rows, q/k/v biases,
// per-head q/k RMSNorm, sliding-window mask, LLaMA 3 / linear rope scaling applied to inv_freq).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/fp16.h"
#include "kandil/safetensors.h"
#include "kandil/tokenizer.h"

namespace kandil::testing {

struct HfSpec {
  std::string arch = "LlamaForCausalLM";  // or MistralForCausalLM, Qwen2ForCausalLM, Qwen3...
  int E = 64, L = 2, F = 128, H = 4, KV = 2, D = 16, V = 300;
  bool explicit_head_dim = false;  // write head_dim (Qwen3 needs it: its default is 128)
  bool bias = false;               // q/k/v biases (Qwen2 always)
  bool qk_norm = false;            // Qwen3
  int window = 0;                  // Mistral sliding_window
  std::string rope_type;           // "", "linear", "llama3"
  double rope_factor = 1.0;
  double theta = 10000.0;
  double eps = 1e-6;
  bool tied = false;
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::optional<SafetensorsDType> vector_dtype;  // norms and biases (default: dtype)
  uint32_t seed = 7;
  bool qwen_pre = false;  // qwen2 pre-tokenizer regex instead of llama3's
};

struct HfWeights {
  using Mat = std::vector<double>;  // row-major [out][in], as stored
  HfSpec spec;
  Mat embd, norm, lm_head;
  struct Layer {
    Mat in_norm, wq, wk, wv, bq, bk, bv, qn, kn, wo, post_norm, wg, wu, wd;
  };
  std::vector<Layer> layers;
};

// GPT-2's byte -> unicode character map (printable bytes stand for themselves).
inline std::string byte_token(uint8_t b) {
  uint32_t cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; ++x) {
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

inline const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
inline const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// A byte-level BPE tokenizer.json: 256 byte tokens, a few merges, two special tokens. Returns
// the number of tokens (< V: the model pads the rest).
inline int write_tokenizer(const std::string& dir, bool qwen_pre) {
  using nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(static_cast<uint8_t>(b))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"},   {"l", "l"},  {"Ġ", "t"},    {"Ġt", "he"}, {"o", "r"}, {"Ġ", "w"},
      {"Ġw", "or"}, {"ll", "o"}, {"he", "llo"}, {"Ġ", "a"},   {"i", "n"}, {"Ġ", "in"}};
  int id = 256;
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
    merge_list.push_back(a + " " + b);
  }
  const int bos = id++, eos = id++;
  json tok = {
      {"version", "1.0"},
      {"added_tokens",
       json::array({{{"id", bos}, {"content", "<|begin_of_text|>"}, {"special", true}},
                    {{"id", eos}, {"content", "<|end_of_text|>"}, {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"},
                       {"pattern", {{"Regex", qwen_pre ? kQwen2Regex : kLlama3Regex}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      {{"type", "ByteLevel"},
                       {"add_prefix_space", false},
                       {"trim_offsets", true},
                       {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"byte_fallback", false},
        {"ignore_merges", true},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump(1);
  json cfg = {{"bos_token", "<|begin_of_text|>"},
              {"eos_token", "<|end_of_text|>"},
              {"chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}"}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump(1);
  return id;
}

inline nlohmann::json hf_config_json(const HfSpec& s) {
  nlohmann::json c = {{"architectures", {s.arch}},
                      {"hidden_size", s.E},
                      {"intermediate_size", s.F},
                      {"num_hidden_layers", s.L},
                      {"num_attention_heads", s.H},
                      {"num_key_value_heads", s.KV},
                      {"vocab_size", s.V},
                      {"max_position_embeddings", 256},
                      {"rms_norm_eps", s.eps},
                      {"rope_theta", s.theta},
                      {"tie_word_embeddings", s.tied},
                      {"torch_dtype", "float32"}};
  if (s.explicit_head_dim) c["head_dim"] = s.D;
  if (s.bias && s.arch != "Qwen2ForCausalLM") c["attention_bias"] = true;
  if (s.arch == "MistralForCausalLM") {
    c["sliding_window"] = s.window > 0 ? nlohmann::json(s.window) : nlohmann::json(nullptr);
  }
  if (s.arch == "Qwen2ForCausalLM" || s.arch == "Qwen3ForCausalLM") {
    c["use_sliding_window"] = false;
    c["sliding_window"] = 4096;
  }
  if (s.rope_type == "linear") {
    c["rope_scaling"] = {{"type", "linear"}, {"factor", s.rope_factor}};
  } else if (s.rope_type == "llama3") {
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", s.rope_factor},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 64}};
  }
  return c;
}

// Writes config.json, tokenizer files and model.safetensors; returns the weights (as stored,
// i.e. after rounding to spec.dtype) for the reference.
inline HfWeights write_hf_model(const std::string& dir, const HfSpec& s) {
  HfWeights w;
  w.spec = s;
  std::mt19937 rng(s.seed);
  SafetensorsWriter st;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double mean,
                 double sigma) -> HfWeights::Mat {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<float> dist(0.0f, static_cast<float>(sigma));
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(mean) + dist(rng);
    HfWeights::Mat out(v.size());
    const SafetensorsDType dtype = shape.size() == 1 && s.vector_dtype ? *s.vector_dtype : s.dtype;
    if (dtype == SafetensorsDType::F32) {
      EXPECT_TRUE(st.add(name, dtype, shape, v.data(), v.size() * 4).ok());
      for (size_t i = 0; i < v.size(); ++i) out[i] = v[i];
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        if (dtype == SafetensorsDType::F16) {
          h[i] = f32_to_fp16(v[i]);
          out[i] = fp16_to_f32(h[i]);
        } else {
          h[i] = f32_to_bf16(v[i]);
          out[i] = bf16_to_f32(h[i]);
        }
      }
      EXPECT_TRUE(st.add(name, dtype, shape, h.data(), h.size() * 2).ok());
    }
    return out;
  };
  const double se = 1.0 / std::sqrt(s.E), sf = 1.0 / std::sqrt(s.F),
               sq = 1.0 / std::sqrt(s.H * s.D);
  w.embd = add("model.embed_tokens.weight", {s.V, s.E}, 0, 1);
  for (int l = 0; l < s.L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    HfWeights::Layer y;
    y.in_norm = add(p + "input_layernorm.weight", {s.E}, 1, 0.1);
    y.wq = add(p + "self_attn.q_proj.weight", {s.H * s.D, s.E}, 0, se);
    y.wk = add(p + "self_attn.k_proj.weight", {s.KV * s.D, s.E}, 0, se);
    y.wv = add(p + "self_attn.v_proj.weight", {s.KV * s.D, s.E}, 0, se);
    if (s.bias) {
      y.bq = add(p + "self_attn.q_proj.bias", {s.H * s.D}, 0, 0.5);
      y.bk = add(p + "self_attn.k_proj.bias", {s.KV * s.D}, 0, 0.5);
      y.bv = add(p + "self_attn.v_proj.bias", {s.KV * s.D}, 0, 0.5);
    }
    if (s.qk_norm) {
      y.qn = add(p + "self_attn.q_norm.weight", {s.D}, 1, 0.2);
      y.kn = add(p + "self_attn.k_norm.weight", {s.D}, 1, 0.2);
    }
    y.wo = add(p + "self_attn.o_proj.weight", {s.E, s.H * s.D}, 0, sq);
    y.post_norm = add(p + "post_attention_layernorm.weight", {s.E}, 1, 0.1);
    y.wg = add(p + "mlp.gate_proj.weight", {s.F, s.E}, 0, se);
    y.wu = add(p + "mlp.up_proj.weight", {s.F, s.E}, 0, se);
    y.wd = add(p + "mlp.down_proj.weight", {s.E, s.F}, 0, sf);
    w.layers.push_back(y);
  }
  w.norm = add("model.norm.weight", {s.E}, 1, 0.1);
  w.lm_head = s.tied ? w.embd : add("lm_head.weight", {s.V, s.E}, 0, se);
  EXPECT_TRUE(st.write_file(dir + "/model.safetensors").ok());
  std::ofstream(dir + "/config.json") << hf_config_json(s).dump(1);
  write_tokenizer(dir, s.qwen_pre);
  return w;
}

// inv_freq of Hugging Face's rope initialisers (default, linear, llama3), computed here
// independently of the engine.
inline std::vector<double> hf_inv_freq(const HfSpec& s) {
  std::vector<double> inv;
  for (int i = 0; i < s.D; i += 2) inv.push_back(1.0 / std::pow(s.theta, double(i) / s.D));
  if (s.rope_type == "linear") {
    for (double& f : inv) f /= s.rope_factor;
  } else if (s.rope_type == "llama3") {
    const double old_ctx = 64, low = 1.0, high = 4.0;
    const double low_wl = old_ctx / low, high_wl = old_ctx / high;
    for (double& f : inv) {
      const double wl = 2 * M_PI / f;
      if (wl > low_wl) {
        f = f / s.rope_factor;
      } else if (wl >= high_wl) {
        const double smooth = (old_ctx / wl - low) / (high - low);
        f = (1 - smooth) * f / s.rope_factor + smooth * f;
      }
    }
  }
  return inv;
}

// Logits at every position, recomputing everything (no cache), in float64.
inline std::vector<std::vector<double>> hf_reference_logits(const HfWeights& w,
                                                            const std::vector<TokenId>& tokens) {
  const HfSpec& s = w.spec;
  using Vec = std::vector<double>;
  auto matvec = [](const HfWeights::Mat& m, const Vec& x, int n_out) {
    Vec y(static_cast<size_t>(n_out), 0.0);
    for (int r = 0; r < n_out; ++r)
      for (size_t i = 0; i < x.size(); ++i) y[size_t(r)] += m[size_t(r) * x.size() + i] * x[i];
    return y;
  };
  auto rmsnorm = [&](const double* x, const double* g, double* y, int n) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += x[i] * x[i];
    const double k = 1.0 / std::sqrt(ss / n + s.eps);
    for (int i = 0; i < n; ++i) y[i] = x[i] * k * g[i];
  };
  const Vec inv = hf_inv_freq(s);
  auto rope = [&](Vec& v, int heads, int pos) {
    const int half = s.D / 2;
    for (int h = 0; h < heads; ++h) {
      double* x = v.data() + size_t(h) * size_t(s.D);
      for (int i = 0; i < half; ++i) {
        const double a = pos * inv[size_t(i)], c = std::cos(a), sn = std::sin(a);
        const double x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c - x1 * sn;
        x[i + half] = x0 * sn + x1 * c;
      }
    }
  };
  const int T = static_cast<int>(tokens.size());
  std::vector<Vec> x(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    auto row = w.embd.begin() + long(tokens[size_t(t)]) * s.E;
    x[size_t(t)].assign(row, row + s.E);
  }
  for (const auto& l : w.layers) {
    std::vector<Vec> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)),
        v(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
      Vec h(size_t(s.E));
      rmsnorm(x[size_t(t)].data(), l.in_norm.data(), h.data(), s.E);
      q[size_t(t)] = matvec(l.wq, h, s.H * s.D);
      k[size_t(t)] = matvec(l.wk, h, s.KV * s.D);
      v[size_t(t)] = matvec(l.wv, h, s.KV * s.D);
      if (s.bias) {
        for (size_t i = 0; i < l.bq.size(); ++i) q[size_t(t)][i] += l.bq[i];
        for (size_t i = 0; i < l.bk.size(); ++i) k[size_t(t)][i] += l.bk[i];
        for (size_t i = 0; i < l.bv.size(); ++i) v[size_t(t)][i] += l.bv[i];
      }
      if (s.qk_norm) {
        for (int hh = 0; hh < s.H; ++hh) {
          double* p = q[size_t(t)].data() + hh * s.D;
          rmsnorm(p, l.qn.data(), p, s.D);
        }
        for (int hh = 0; hh < s.KV; ++hh) {
          double* p = k[size_t(t)].data() + hh * s.D;
          rmsnorm(p, l.kn.data(), p, s.D);
        }
      }
      rope(q[size_t(t)], s.H, t);
      rope(k[size_t(t)], s.KV, t);
    }
    for (int t = 0; t < T; ++t) {
      Vec att(size_t(s.H * s.D), 0.0);
      const int j0 = s.window > 0 ? std::max(0, t - s.window + 1) : 0;  // HF: t - j < window
      for (int hh = 0; hh < s.H; ++hh) {
        const int g = hh / (s.H / s.KV);
        Vec sc;
        double mx = -1e300;
        for (int j = j0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < s.D; ++i)
            d += q[size_t(t)][size_t(hh * s.D + i)] * k[size_t(j)][size_t(g * s.D + i)];
          sc.push_back(d / std::sqrt(double(s.D)));
          mx = std::max(mx, sc.back());
        }
        double sum = 0;
        for (double& e : sc) sum += (e = std::exp(e - mx));
        for (int j = j0; j <= t; ++j)
          for (int i = 0; i < s.D; ++i)
            att[size_t(hh * s.D + i)] +=
                sc[size_t(j - j0)] / sum * v[size_t(j)][size_t(g * s.D + i)];
      }
      Vec o = matvec(l.wo, att, s.E);
      for (int i = 0; i < s.E; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
    }
    for (int t = 0; t < T; ++t) {
      Vec h(size_t(s.E));
      rmsnorm(x[size_t(t)].data(), l.post_norm.data(), h.data(), s.E);
      Vec g = matvec(l.wg, h, s.F), u = matvec(l.wu, h, s.F);
      for (int i = 0; i < s.F; ++i) {
        const double a = g[size_t(i)];
        g[size_t(i)] = a / (1 + std::exp(-a)) * u[size_t(i)];
      }
      Vec d = matvec(l.wd, g, s.E);
      for (int i = 0; i < s.E; ++i) x[size_t(t)][size_t(i)] += d[size_t(i)];
    }
  }
  std::vector<Vec> logits;
  for (int t = 0; t < T; ++t) {
    Vec h(size_t(s.E));
    rmsnorm(x[size_t(t)].data(), w.norm.data(), h.data(), s.E);
    logits.push_back(matvec(w.lm_head, h, s.V));
  }
  return logits;
}

}  // namespace kandil::testing
