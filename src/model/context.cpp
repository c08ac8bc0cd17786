// Inference context: KV cache, activation buffers and the LLaMA-family block forward.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/matmul.h"
#include "base/fp16.h"
#include "base/thread_pool.h"
#include "kandil/model.h"
#include "model/model_impl.h"
#include "ops/ops.h"

namespace kandil {

struct Context::Impl {
  std::shared_ptr<const Model> model;
  const Model::Impl* m = nullptr;
  ContextParams params;
  ThreadPool pool;
  int32_t n_past = 0;

  // KV cache: per layer, [n_ctx][kv_dim] keys and values, F32 or F16 (raw uint16 bits).
  std::vector<float> k_f32, v_f32;
  std::vector<uint16_t> k_f16, v_f16;

  // Activations for up to n_batch tokens; allocated once.
  std::vector<float> x, xb, q, k, v, attn, tmp, gate, up;
  std::vector<float> scores;  // [n_threads][n_ctx]
  std::vector<float> qh;      // [n_threads][head_dim]: query head rounded for an F16 cache
  std::vector<uint8_t> scratch;
  std::vector<float> logits;  // [n_logits][n_vocab]
  int32_t n_logits = 0;

  Impl(std::shared_ptr<const Model> mdl, ContextParams p)
      : model(std::move(mdl)), m(&model->impl()), params(p), pool(p.n_threads) {}

  int64_t kv_dim() const { return int64_t{m->config.n_head_kv} * m->config.head_dim; }
  size_t kv_index(int32_t layer, int32_t pos) const {
    return (static_cast<size_t>(layer) * static_cast<size_t>(params.n_ctx) +
            static_cast<size_t>(pos)) *
           static_cast<size_t>(kv_dim());
  }

  void store_kv(int32_t layer, int32_t pos, const float* kr, const float* vr) {
    const size_t at = kv_index(layer, pos);
    const int64_t n = kv_dim();
    if (params.cache_type == KvCacheType::f16) {
      for (int64_t i = 0; i < n; ++i) {
        k_f16[at + static_cast<size_t>(i)] = f32_to_fp16(kr[i]);
        v_f16[at + static_cast<size_t>(i)] = f32_to_fp16(vr[i]);
      }
    } else {
      std::memcpy(&k_f32[at], kr, static_cast<size_t>(n) * sizeof(float));
      std::memcpy(&v_f32[at], vr, static_cast<size_t>(n) * sizeof(float));
    }
  }

  // Causal grouped-query attention for n tokens at positions n_past..n_past+n-1 of `layer`.
  // With an F16 cache the query and the attention weights are rounded to F16 before their
  // products, as llama.cpp's CPU backend does.
  void attention(int32_t layer, int32_t n) {
    const ModelConfig& c = m->config;
    const int32_t hd = c.head_dim, group = c.n_head / c.n_head_kv;
    const int64_t q_dim = int64_t{c.n_head} * hd;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const bool f16 = params.cache_type == KvCacheType::f16;
    const int64_t n_items = int64_t{n} * c.n_head;
    pool.run([&](int ith, int nth) {
      float* s = scores.data() + static_cast<size_t>(ith) * static_cast<size_t>(params.n_ctx);
      float* qr = qh.data() + static_cast<size_t>(ith) * static_cast<size_t>(hd);
      for (int64_t item = ith; item < n_items; item += nth) {
        const int32_t t = static_cast<int32_t>(item / c.n_head),
                      h = static_cast<int32_t>(item % c.n_head);
        const int32_t g = h / group, n_kv = n_past + t + 1;
        const float* qv = q.data() + t * q_dim + int64_t{h} * hd;
        for (int32_t d = 0; d < hd; ++d) qr[d] = f16 ? fp16_to_f32(f32_to_fp16(qv[d])) : qv[d];
        for (int32_t j = 0; j < n_kv; ++j) {
          const size_t at = kv_index(layer, j) + static_cast<size_t>(g) * static_cast<size_t>(hd);
          float dot = 0.0f;
          if (f16) {
            for (int32_t d = 0; d < hd; ++d)
              dot += qr[d] * fp16_to_f32(k_f16[at + static_cast<size_t>(d)]);
          } else {
            for (int32_t d = 0; d < hd; ++d) dot += qr[d] * k_f32[at + static_cast<size_t>(d)];
          }
          s[j] = dot * scale;
        }
        ops::softmax(s, n_kv);
        float* out = attn.data() + t * q_dim + int64_t{h} * hd;
        std::fill(out, out + hd, 0.0f);
        for (int32_t j = 0; j < n_kv; ++j) {
          const size_t at = kv_index(layer, j) + static_cast<size_t>(g) * static_cast<size_t>(hd);
          if (f16) {
            const float w = fp16_to_f32(f32_to_fp16(s[j]));
            for (int32_t d = 0; d < hd; ++d)
              out[d] += w * fp16_to_f32(v_f16[at + static_cast<size_t>(d)]);
          } else {
            const float w = s[j];
            for (int32_t d = 0; d < hd; ++d) out[d] += w * v_f32[at + static_cast<size_t>(d)];
          }
        }
      }
    });
  }

  // One forward pass over n <= n_batch tokens.
  void forward(const TokenId* tokens, int32_t n, bool all_logits) {
    const ModelConfig& c = m->config;
    const int64_t E = c.n_embd, q_dim = int64_t{c.n_head} * c.head_dim, kvd = kv_dim();
    for (int32_t t = 0; t < n; ++t) cpu::dequantize_row(m->token_embd, tokens[t], x.data() + t * E);

    for (int32_t l = 0; l < c.n_layer; ++l) {
      const LayerWeights& w = m->layers[static_cast<size_t>(l)];
      // Attention block.
      for (int32_t t = 0; t < n; ++t) {
        ops::rmsnorm(x.data() + t * E, w.attn_norm.data(), xb.data() + t * E, E, c.norm_eps);
      }
      cpu::matmul(pool, w.wq, xb.data(), n, q.data(), scratch);
      cpu::matmul(pool, w.wk, xb.data(), n, k.data(), scratch);
      cpu::matmul(pool, w.wv, xb.data(), n, v.data(), scratch);
      for (int32_t t = 0; t < n; ++t) {
        const int32_t pos = n_past + t;
        ops::rope(q.data() + t * q_dim, c.n_head, c.head_dim, c.n_rot, pos, c.rope_freq_base,
                  c.rope_freq_scale, c.rope_layout);
        ops::rope(k.data() + t * kvd, c.n_head_kv, c.head_dim, c.n_rot, pos, c.rope_freq_base,
                  c.rope_freq_scale, c.rope_layout);
        store_kv(l, pos, k.data() + t * kvd, v.data() + t * kvd);
      }
      attention(l, n);
      cpu::matmul(pool, w.wo, attn.data(), n, tmp.data(), scratch);
      ops::add(x.data(), tmp.data(), int64_t{n} * E);

      // Feed-forward block (SwiGLU).
      for (int32_t t = 0; t < n; ++t) {
        ops::rmsnorm(x.data() + t * E, w.ffn_norm.data(), xb.data() + t * E, E, c.norm_eps);
      }
      cpu::matmul(pool, w.w_gate, xb.data(), n, gate.data(), scratch);
      cpu::matmul(pool, w.w_up, xb.data(), n, up.data(), scratch);
      ops::swiglu(gate.data(), up.data(), int64_t{n} * c.n_ff);
      cpu::matmul(pool, w.w_down, gate.data(), n, tmp.data(), scratch);
      ops::add(x.data(), tmp.data(), int64_t{n} * E);
    }

    // Output head: all positions or only the last.
    const int32_t first = all_logits ? 0 : n - 1;
    const int32_t n_out = n - first;
    for (int32_t t = first; t < n; ++t) {
      ops::rmsnorm(x.data() + t * E, m->output_norm.data(), xb.data() + (t - first) * E, E,
                   c.norm_eps);
    }
    const size_t need = static_cast<size_t>(n_out) * static_cast<size_t>(c.n_vocab);
    if (logits.size() < need) logits.resize(need);
    cpu::matmul(pool, m->output, xb.data(), n_out, logits.data(), scratch);
    n_logits = n_out;
    n_past += n;
  }
};

Context::Context() = default;
Context::~Context() = default;

Result<std::unique_ptr<Context>> Context::create(std::shared_ptr<const Model> model,
                                                 ContextParams p) {
  const ModelConfig& c = model->config();
  if (p.n_ctx <= 0) p.n_ctx = std::min(c.n_ctx_train, 4096);
  if (p.n_ctx > (1 << 22)) return Error{fmt::format("context size {} is too large", p.n_ctx)};
  if (p.n_batch <= 0) return Error{fmt::format("batch size must be positive, got {}", p.n_batch)};
  p.n_batch = std::min(p.n_batch, p.n_ctx);
  if (p.n_threads <= 0) p.n_threads = ThreadPool::hardware_threads();
  if (p.n_threads > 512) return Error{fmt::format("thread count {} is too large", p.n_threads)};

  std::unique_ptr<Context> ctx(new Context());
  ctx->impl_ = std::make_unique<Impl>(std::move(model), p);
  Impl& s = *ctx->impl_;
  const size_t B = static_cast<size_t>(p.n_batch);
  const size_t E = static_cast<size_t>(c.n_embd);
  const size_t q_dim = static_cast<size_t>(c.n_head) * static_cast<size_t>(c.head_dim);
  const size_t kvd = static_cast<size_t>(s.kv_dim());
  const size_t cache = static_cast<size_t>(c.n_layer) * static_cast<size_t>(p.n_ctx) * kvd;
  if (p.cache_type == KvCacheType::f16) {
    s.k_f16.resize(cache);
    s.v_f16.resize(cache);
  } else {
    s.k_f32.resize(cache);
    s.v_f32.resize(cache);
  }
  s.x.resize(B * E);
  s.xb.resize(B * E);
  s.tmp.resize(B * E);
  s.q.resize(B * q_dim);
  s.attn.resize(B * q_dim);
  s.k.resize(B * kvd);
  s.v.resize(B * kvd);
  s.gate.resize(B * static_cast<size_t>(c.n_ff));
  s.up.resize(B * static_cast<size_t>(c.n_ff));
  s.scores.resize(static_cast<size_t>(p.n_threads) * static_cast<size_t>(p.n_ctx));
  s.qh.resize(static_cast<size_t>(p.n_threads) * static_cast<size_t>(c.head_dim));
  s.logits.resize(static_cast<size_t>(c.n_vocab));
  // Matmul scratch for the widest activation conversion, so decoding never allocates.
  const Model::Impl& m = *s.m;
  size_t scratch = cpu::matmul_scratch_bytes(m.output, p.n_batch);
  for (const LayerWeights& l : m.layers) {
    for (const cpu::Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      scratch = std::max(scratch, cpu::matmul_scratch_bytes(*w, p.n_batch));
    }
  }
  s.scratch.resize(scratch);
  return ctx;
}

Result<void> Context::decode(const TokenId* tokens, int32_t n, bool all_logits) {
  Impl& s = *impl_;
  if (n <= 0) return Error{"decode: no tokens given"};
  if (n > s.params.n_ctx - s.n_past) {
    return Error{fmt::format("context overflow: {} tokens cached + {} new > context size {}",
                             s.n_past, n, s.params.n_ctx)};
  }
  const int32_t n_vocab = s.m->config.n_vocab;
  for (int32_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      return Error{fmt::format("token id {} at position {} is outside the vocabulary (0..{})",
                               tokens[i], i, n_vocab - 1)};
    }
  }
  if (!all_logits) {
    for (int32_t i = 0; i < n; i += s.params.n_batch) {
      s.forward(tokens + i, std::min(s.params.n_batch, n - i), false);
    }
    return {};
  }
  // Keep every token's logits: concatenate the passes' outputs.
  std::vector<float> all;
  for (int32_t i = 0; i < n; i += s.params.n_batch) {
    const int32_t len = std::min(s.params.n_batch, n - i);
    s.forward(tokens + i, len, true);
    if (len == n) return {};
    all.insert(all.end(), s.logits.begin(), s.logits.begin() + int64_t{len} * n_vocab);
  }
  s.logits = std::move(all);
  s.n_logits = n;
  return {};
}

const float* Context::logits(int32_t i) const {
  const Impl& s = *impl_;
  if (i < 0) i = s.n_logits - 1;
  return s.logits.data() + static_cast<size_t>(i) * static_cast<size_t>(s.m->config.n_vocab);
}
int32_t Context::n_logits() const { return impl_->n_logits; }
int32_t Context::n_past() const { return impl_->n_past; }
int32_t Context::n_ctx() const { return impl_->params.n_ctx; }
int32_t Context::n_threads() const { return impl_->params.n_threads; }
void Context::clear() {
  impl_->n_past = 0;
  impl_->n_logits = 0;
}
const Model& Context::model() const { return *impl_->model; }

}  // namespace kandil
