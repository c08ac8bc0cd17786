#include "train/model_train.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "ops/ops.h"

namespace kandil::train {

namespace {

const cpu::Weight& base_weight(const LayerWeights& w, int which) {
  switch (which) {
    case 0:
      return w.wq;
    case 1:
      return w.wk;
    case 2:
      return w.wv;
    case 3:
      return w.wo;
    case 4:
      return w.w_gate;
    case 5:
      return w.w_up;
    default:
      return w.w_down;
  }
}

const char* gguf_proj_name(int which) {
  static const char* names[kNumProj] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
  return names[which];
}

std::vector<float> dequantize(const cpu::Weight& w) {
  std::vector<float> out(static_cast<size_t>(w.n_out * w.n_in));
  for (int64_t r = 0; r < w.n_out; ++r) cpu::dequantize_row(w, r, &out[r * w.n_in]);
  return out;
}

int add_param(std::vector<TrainParam>& params, std::string name, std::vector<int64_t> shape,
              std::vector<float> value, bool decay) {
  TrainParam p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.value = std::move(value);
  p.grad.assign(p.value.size(), 0.0f);
  p.decay = decay;
  params.push_back(std::move(p));
  return static_cast<int>(params.size()) - 1;
}

void zero(std::vector<float>& v, size_t n) { v.assign(n, 0.0f); }

}  // namespace

NetSlots make_params(const Model::Impl& m, const TrainOptions& o, uint64_t seed,
                     std::vector<TrainParam>& params) {
  const ModelConfig& c = m.config;
  NetSlots s;
  s.layers.resize(static_cast<size_t>(c.n_layer));
  if (o.mode == TrainOptions::Mode::lora) {
    const float r = static_cast<float>(o.lora_rank);
    s.lora_scale = o.rslora ? o.lora_alpha / std::sqrt(r) : o.lora_alpha / r;
    std::mt19937_64 rng(seed);
    for (int32_t l = 0; l < c.n_layer; ++l) {
      for (int which = 0; which < kNumProj; ++which) {
        const auto target = static_cast<LoraTarget>(which);
        if (std::find(o.lora_targets.begin(), o.lora_targets.end(), target) ==
            o.lora_targets.end()) {
          continue;
        }
        const cpu::Weight& w = base_weight(m.layers[static_cast<size_t>(l)], which);
        // PEFT: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)); B = 0.
        const double bound = 1.0 / std::sqrt(static_cast<double>(w.n_in));
        std::uniform_real_distribution<double> dist(-bound, bound);
        std::vector<float> a(static_cast<size_t>(o.lora_rank * w.n_in));
        for (float& x : a) x = static_cast<float>(dist(rng));
        const std::string base = "base_model.model.model.layers." + std::to_string(l) +
                                 (which < 4 ? ".self_attn." : ".mlp.") +
                                 std::string(lora_target_peft_name(target));
        LayerSlots& ls = s.layers[static_cast<size_t>(l)];
        ls.lora_a[static_cast<size_t>(which)] =
            add_param(params, base + ".lora_A.weight", {o.lora_rank, w.n_in}, std::move(a), true);
        ls.lora_b[static_cast<size_t>(which)] =
            add_param(params, base + ".lora_B.weight", {w.n_out, o.lora_rank},
                      std::vector<float>(static_cast<size_t>(w.n_out * o.lora_rank), 0.0f), true);
      }
    }
    return s;
  }
  // Full fine-tuning: F32 master copies of every weight.
  s.token_embd =
      add_param(params, "token_embd.weight", {c.n_vocab, c.n_embd}, dequantize(m.token_embd), true);
  for (int32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = m.layers[static_cast<size_t>(l)];
    LayerSlots& ls = s.layers[static_cast<size_t>(l)];
    const std::string blk = "blk." + std::to_string(l) + ".";
    const int64_t D = c.head_dim;
    ls.attn_norm = add_param(params, blk + "attn_norm.weight", {c.n_embd}, w.attn_norm, false);
    for (int which = 0; which < kNumProj; ++which) {
      const cpu::Weight& bw = base_weight(w, which);
      ls.w[static_cast<size_t>(which)] = add_param(params, blk + gguf_proj_name(which) + ".weight",
                                                   {bw.n_out, bw.n_in}, dequantize(bw), true);
    }
    if (c.qkv_bias) {
      const std::vector<float>* b[3] = {&w.bq, &w.bk, &w.bv};
      for (int i = 0; i < 3; ++i) {
        ls.bias[static_cast<size_t>(i)] =
            add_param(params, blk + gguf_proj_name(i) + ".bias",
                      {static_cast<int64_t>(b[i]->size())}, *b[i], false);
      }
    }
    if (c.qk_norm) {
      ls.q_norm = add_param(params, blk + "attn_q_norm.weight", {D}, w.q_norm, false);
      ls.k_norm = add_param(params, blk + "attn_k_norm.weight", {D}, w.k_norm, false);
    }
    ls.ffn_norm = add_param(params, blk + "ffn_norm.weight", {c.n_embd}, w.ffn_norm, false);
  }
  s.output_norm = add_param(params, "output_norm.weight", {c.n_embd}, m.output_norm, false);
  s.output = c.tied_embeddings ? s.token_embd
                               : add_param(params, "output.weight", {c.n_vocab, c.n_embd},
                                           dequantize(m.output), true);
  return s;
}

TrainNet::Proj TrainNet::proj(std::vector<TrainParam>& p, int layer, int which) const {
  const LayerSlots& ls = s_.layers[static_cast<size_t>(layer)];
  const auto i = static_cast<size_t>(which);
  Proj pr;
  const cpu::Weight& bw = base_weight(m_.layers[static_cast<size_t>(layer)], which);
  if (ls.w[i] >= 0) {
    TrainParam& t = p[static_cast<size_t>(ls.w[i])];
    pr.w = f32_weight(t.value.data(), bw.n_out, bw.n_in);
    pr.dw = t.grad.data();
  } else {
    pr.w = bw;
  }
  if (ls.lora_a[i] >= 0) {
    TrainParam& a = p[static_cast<size_t>(ls.lora_a[i])];
    TrainParam& b = p[static_cast<size_t>(ls.lora_b[i])];
    pr.a = a.value.data();
    pr.da = a.grad.data();
    pr.bm = b.value.data();
    pr.db = b.grad.data();
    pr.rank = a.shape[0];
  }
  return pr;
}

const float* TrainNet::vec(std::vector<TrainParam>& p, int slot,
                           const std::vector<float>& base) const {
  return slot >= 0 ? p[static_cast<size_t>(slot)].value.data() : base.data();
}

float* TrainNet::grad(std::vector<TrainParam>& p, int slot) const {
  return slot >= 0 ? p[static_cast<size_t>(slot)].grad.data() : nullptr;
}

void TrainNet::project(ThreadPool& pool, const Proj& pr, const float* x, int64_t n, float* y,
                       std::vector<float>& u) {
  linear_forward(pool, pr.w, x, n, y, scratch_);
  if (!pr.a) return;
  // y += scale * B (A x)
  const int64_t n_out = pr.w.n_out;
  u.resize(static_cast<size_t>(n * pr.rank));
  linear_forward(pool, f32_weight(pr.a, pr.rank, pr.w.n_in), x, n, u.data(), scratch_);
  tmp2_.resize(static_cast<size_t>(n * n_out));
  linear_forward(pool, f32_weight(pr.bm, n_out, pr.rank), u.data(), n, tmp2_.data(), scratch_);
  for (int64_t i = 0; i < n * n_out; ++i) y[i] += s_.lora_scale * tmp2_[static_cast<size_t>(i)];
}

void TrainNet::project_backward(ThreadPool& pool, const Proj& pr, const float* x, const float* u,
                                const float* dy, int64_t n, float* dx) {
  const int64_t n_in = pr.w.n_in, n_out = pr.w.n_out;
  linear_backward_input(pool, pr.w, dy, n, dx);
  if (pr.dw) linear_backward_weight(pool, dy, x, n, n_out, n_in, pr.dw);
  if (!pr.a) return;
  std::vector<float> sdy(dy, dy + n * n_out);
  for (float& g : sdy) g *= s_.lora_scale;
  linear_backward_weight(pool, sdy.data(), u, n, n_out, pr.rank, pr.db);
  std::vector<float> du(static_cast<size_t>(n * pr.rank), 0.0f);
  linear_backward_input(pool, f32_weight(pr.bm, n_out, pr.rank), sdy.data(), n, du.data());
  linear_backward_weight(pool, du.data(), x, n, pr.rank, n_in, pr.da);
  linear_backward_input(pool, f32_weight(pr.a, pr.rank, n_in), du.data(), n, dx);
}

namespace {

AttentionShape attention_shape(const ModelConfig& c, const TrainBatch& b) {
  AttentionShape s;
  s.n_seq = b.B;
  s.n_tokens = b.T;
  s.n_head = c.n_head;
  s.n_head_kv = c.n_head_kv;
  s.head_dim = c.head_dim;
  s.window = c.sliding_window;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return s;
}

}  // namespace

void TrainNet::forward_layer(ThreadPool& pool, std::vector<TrainParam>& p, int l,
                             const TrainBatch& b, const float* x_in, LayerCache& c, float* x_out) {
  const LayerWeights& w = m_.layers[static_cast<size_t>(l)];
  const LayerSlots& ls = s_.layers[static_cast<size_t>(l)];
  const int64_t N = int64_t{b.B} * b.T, E = c_.n_embd, D = c_.head_dim, F = c_.n_ff;
  const int64_t H = c_.n_head, Hkv = c_.n_head_kv, qd = H * D, kvd = Hkv * D;
  const auto n = static_cast<size_t>(N);
  c.rstd1.resize(n);
  c.xn1.resize(n * E);
  const float* attn_norm = vec(p, ls.attn_norm, w.attn_norm);
  for (int64_t t = 0; t < N; ++t) {
    c.rstd1[t] = rmsnorm_forward(x_in + t * E, attn_norm, &c.xn1[t * E], E, c_.norm_eps);
  }
  c.q.resize(n * qd);
  c.k.resize(n * kvd);
  c.v.resize(n * kvd);
  project(pool, proj(p, l, 0), c.xn1.data(), N, c.q.data(), c.lora_u[0]);
  project(pool, proj(p, l, 1), c.xn1.data(), N, c.k.data(), c.lora_u[1]);
  project(pool, proj(p, l, 2), c.xn1.data(), N, c.v.data(), c.lora_u[2]);
  if (c_.qkv_bias) {
    const float* bq = vec(p, ls.bias[0], w.bq);
    const float* bk = vec(p, ls.bias[1], w.bk);
    const float* bv = vec(p, ls.bias[2], w.bv);
    for (int64_t t = 0; t < N; ++t) {
      ops::add(&c.q[t * qd], bq, qd);
      ops::add(&c.k[t * kvd], bk, kvd);
      ops::add(&c.v[t * kvd], bv, kvd);
    }
  }
  if (c_.qk_norm) {
    c.q_pre = c.q;
    c.k_pre = c.k;
    c.rstd_q.resize(n * H);
    c.rstd_k.resize(n * Hkv);
    const float* qn = vec(p, ls.q_norm, w.q_norm);
    const float* kn = vec(p, ls.k_norm, w.k_norm);
    for (int64_t t = 0; t < N; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t at = t * qd + h * D;
        c.rstd_q[t * H + h] = rmsnorm_forward(&c.q_pre[at], qn, &c.q[at], D, c_.norm_eps);
      }
      for (int64_t h = 0; h < Hkv; ++h) {
        const int64_t at = t * kvd + h * D;
        c.rstd_k[t * Hkv + h] = rmsnorm_forward(&c.k_pre[at], kn, &c.k[at], D, c_.norm_eps);
      }
    }
  }
  for (int64_t t = 0; t < N; ++t) {
    const auto pos = static_cast<int32_t>(t % b.T);
    rope_forward(&c.q[t * qd], c_.n_head, c_, pos);
    rope_forward(&c.k[t * kvd], c_.n_head_kv, c_, pos);
  }
  const AttentionShape sh = attention_shape(c_, b);
  c.probs.resize(sh.probs_size());
  c.att.resize(n * qd);
  attention_forward(pool, sh, c.q.data(), c.k.data(), c.v.data(), c.probs.data(), c.att.data());
  tmp_.resize(n * E);
  project(pool, proj(p, l, 3), c.att.data(), N, tmp_.data(), c.lora_u[3]);
  c.x_mid.resize(n * E);
  for (size_t i = 0; i < n * E; ++i) c.x_mid[i] = x_in[i] + tmp_[i];
  c.rstd2.resize(n);
  c.xn2.resize(n * E);
  const float* ffn_norm = vec(p, ls.ffn_norm, w.ffn_norm);
  for (int64_t t = 0; t < N; ++t) {
    c.rstd2[t] = rmsnorm_forward(&c.x_mid[t * E], ffn_norm, &c.xn2[t * E], E, c_.norm_eps);
  }
  c.g.resize(n * F);
  c.u.resize(n * F);
  c.h.resize(n * F);
  project(pool, proj(p, l, 4), c.xn2.data(), N, c.g.data(), c.lora_u[4]);
  project(pool, proj(p, l, 5), c.xn2.data(), N, c.u.data(), c.lora_u[5]);
  swiglu_forward(c.g.data(), c.u.data(), c.h.data(), N * F);
  project(pool, proj(p, l, 6), c.h.data(), N, tmp_.data(), c.lora_u[6]);
  for (size_t i = 0; i < n * E; ++i) x_out[i] = c.x_mid[i] + tmp_[i];
}

void TrainNet::backward_layer(ThreadPool& pool, std::vector<TrainParam>& p, int l,
                              const TrainBatch& b, const float* x_in, LayerCache& c, float* dx) {
  const LayerWeights& w = m_.layers[static_cast<size_t>(l)];
  const LayerSlots& ls = s_.layers[static_cast<size_t>(l)];
  const int64_t N = int64_t{b.B} * b.T, E = c_.n_embd, D = c_.head_dim, F = c_.n_ff;
  const int64_t H = c_.n_head, Hkv = c_.n_head_kv, qd = H * D, kvd = Hkv * D;
  const auto n = static_cast<size_t>(N);
  // Feed-forward block: x_out = x_mid + down(swiglu(gate(xn2), up(xn2))); dx holds d x_out.
  std::vector<float> dh, dg(n * F), du(n * F), dxn(n * E, 0.0f);
  zero(dh, n * F);
  project_backward(pool, proj(p, l, 6), c.h.data(), c.lora_u[6].data(), dx, N, dh.data());
  swiglu_backward(c.g.data(), c.u.data(), dh.data(), dg.data(), du.data(), N * F);
  project_backward(pool, proj(p, l, 4), c.xn2.data(), c.lora_u[4].data(), dg.data(), N, dxn.data());
  project_backward(pool, proj(p, l, 5), c.xn2.data(), c.lora_u[5].data(), du.data(), N, dxn.data());
  const float* ffn_norm = vec(p, ls.ffn_norm, w.ffn_norm);
  float* d_ffn_norm = grad(p, ls.ffn_norm);
  for (int64_t t = 0; t < N; ++t) {
    rmsnorm_backward(&c.x_mid[t * E], ffn_norm, c.rstd2[t], &dxn[t * E], dx + t * E, d_ffn_norm, E);
  }
  // Attention block: dx now holds d x_mid.
  std::vector<float> datt(n * qd, 0.0f), dq(n * qd), dk(n * kvd), dv(n * kvd);
  project_backward(pool, proj(p, l, 3), c.att.data(), c.lora_u[3].data(), dx, N, datt.data());
  const AttentionShape sh = attention_shape(c_, b);
  attention_backward(pool, sh, c.q.data(), c.k.data(), c.v.data(), c.probs.data(), datt.data(),
                     dq.data(), dk.data(), dv.data());
  for (int64_t t = 0; t < N; ++t) {
    const auto pos = static_cast<int32_t>(t % b.T);
    rope_backward(&dq[t * qd], c_.n_head, c_, pos);
    rope_backward(&dk[t * kvd], c_.n_head_kv, c_, pos);
  }
  if (c_.qk_norm) {
    std::vector<float> dq_pre(n * qd, 0.0f), dk_pre(n * kvd, 0.0f);
    const float* qn = vec(p, ls.q_norm, w.q_norm);
    const float* kn = vec(p, ls.k_norm, w.k_norm);
    float* dqn = grad(p, ls.q_norm);
    float* dkn = grad(p, ls.k_norm);
    for (int64_t t = 0; t < N; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t at = t * qd + h * D;
        rmsnorm_backward(&c.q_pre[at], qn, c.rstd_q[t * H + h], &dq[at], &dq_pre[at], dqn, D);
      }
      for (int64_t h = 0; h < Hkv; ++h) {
        const int64_t at = t * kvd + h * D;
        rmsnorm_backward(&c.k_pre[at], kn, c.rstd_k[t * Hkv + h], &dk[at], &dk_pre[at], dkn, D);
      }
    }
    dq.swap(dq_pre);
    dk.swap(dk_pre);
  }
  if (c_.qkv_bias) {
    const std::vector<float>* d[3] = {&dq, &dk, &dv};
    for (int i = 0; i < 3; ++i) {
      float* db = grad(p, ls.bias[static_cast<size_t>(i)]);
      if (!db) continue;
      const int64_t width = i == 0 ? qd : kvd;
      for (int64_t t = 0; t < N; ++t) ops::add(db, &(*d[i])[t * width], width);
    }
  }
  std::fill(dxn.begin(), dxn.end(), 0.0f);
  project_backward(pool, proj(p, l, 0), c.xn1.data(), c.lora_u[0].data(), dq.data(), N, dxn.data());
  project_backward(pool, proj(p, l, 1), c.xn1.data(), c.lora_u[1].data(), dk.data(), N, dxn.data());
  project_backward(pool, proj(p, l, 2), c.xn1.data(), c.lora_u[2].data(), dv.data(), N, dxn.data());
  const float* attn_norm = vec(p, ls.attn_norm, w.attn_norm);
  float* d_attn_norm = grad(p, ls.attn_norm);
  for (int64_t t = 0; t < N; ++t) {
    rmsnorm_backward(x_in + t * E, attn_norm, c.rstd1[t], &dxn[t * E], dx + t * E, d_attn_norm, E);
  }
}

double TrainNet::run(ThreadPool& pool, std::vector<TrainParam>& p, const TrainBatch& b,
                     bool backward, float grad_scale, int64_t* n_counted) {
  const int64_t N = int64_t{b.B} * b.T, E = c_.n_embd, V = c_.n_vocab;
  const int L = c_.n_layer;
  const auto n = static_cast<size_t>(N);
  xs_.resize(static_cast<size_t>(L) + 1);
  for (auto& x : xs_) x.resize(n * E);
  caches_.resize(ckpt_ ? 1 : static_cast<size_t>(L));

  const cpu::Weight embd =
      s_.token_embd >= 0 ? f32_weight(p[static_cast<size_t>(s_.token_embd)].value.data(), V, E)
                         : m_.token_embd;
  for (int64_t t = 0; t < N; ++t) {
    cpu::dequantize_row(embd, b.tokens[static_cast<size_t>(t)], &xs_[0][t * E]);
  }
  for (int l = 0; l < L; ++l) {
    LayerCache& c = caches_[ckpt_ ? 0 : static_cast<size_t>(l)];
    forward_layer(pool, p, l, b, xs_[static_cast<size_t>(l)].data(), c,
                  xs_[static_cast<size_t>(l) + 1].data());
  }
  // Head: logits = output(rmsnorm(x)).
  const float* onorm = vec(p, s_.output_norm, m_.output_norm);
  const std::vector<float>& xf = xs_[static_cast<size_t>(L)];
  xnf_.resize(n * E);
  rstdf_.resize(n);
  for (int64_t t = 0; t < N; ++t) {
    rstdf_[t] = rmsnorm_forward(&xf[t * E], onorm, &xnf_[t * E], E, c_.norm_eps);
  }
  const cpu::Weight out =
      s_.output >= 0 ? f32_weight(p[static_cast<size_t>(s_.output)].value.data(), V, E) : m_.output;
  logits_.resize(n * V);
  dlogits_.resize(n * V);
  linear_forward(pool, out, xnf_.data(), N, logits_.data(), scratch_);
  int64_t count = 0;
  for (int32_t t : b.targets) count += t >= 0 ? 1 : 0;
  if (n_counted) *n_counted = count;
  const float scale = count > 0 ? grad_scale / static_cast<float>(count) : 0.0f;
  const double loss_sum =
      cross_entropy(pool, logits_.data(), b.targets.data(), N, V, scale, dlogits_.data());
  const double loss = count > 0 ? loss_sum / static_cast<double>(count) : 0.0;
  if (!backward || count == 0) return loss;

  std::vector<float> dxnf(n * E, 0.0f);
  linear_backward_input(pool, out, dlogits_.data(), N, dxnf.data());
  if (s_.output >= 0) {
    linear_backward_weight(pool, dlogits_.data(), xnf_.data(), N, V, E,
                           p[static_cast<size_t>(s_.output)].grad.data());
  }
  dx_.assign(n * E, 0.0f);
  float* d_onorm = grad(p, s_.output_norm);
  for (int64_t t = 0; t < N; ++t) {
    rmsnorm_backward(&xf[t * E], onorm, rstdf_[t], &dxnf[t * E], &dx_[t * E], d_onorm, E);
  }
  for (int l = L - 1; l >= 0; --l) {
    LayerCache& c = caches_[ckpt_ ? 0 : static_cast<size_t>(l)];
    const float* x_in = xs_[static_cast<size_t>(l)].data();
    if (ckpt_) {
      tmp_out_.resize(n * E);
      forward_layer(pool, p, l, b, x_in, c, tmp_out_.data());
    }
    backward_layer(pool, p, l, b, x_in, c, dx_.data());
  }
  if (s_.token_embd >= 0) {
    embedding_backward(b.tokens.data(), N, dx_.data(),
                       p[static_cast<size_t>(s_.token_embd)].grad.data(), E);
  }
  return loss;
}

}  // namespace kandil::train
