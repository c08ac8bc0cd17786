// Inference context: KV cache, activation buffers and the LLaMA-family block forward.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "backend/cpu/attention.h"
#include "backend/cpu/matmul.h"
#include "base/thread_pool.h"
#include "kandil/model.h"
#include "model/adapter_delta.h"
#include "model/model_impl.h"
#include "ops/ops.h"

namespace kandil {
namespace {

// The published adapter set of a Context. The critical section is a pointer copy or swap plus a
// reference-count update (tens of nanoseconds), and an old set is released outside it. (libstdc++
// 12's std::atomic<std::shared_ptr> unlocks with relaxed order in load(), which ThreadSanitizer
// rightly reports as a race with store(); a mutex gives the same publish semantics, checked.)
class PublishedDeltas {
 public:
  std::shared_ptr<const AdapterDeltas> load() const {
    std::lock_guard lock(mutex_);
    return ptr_;
  }
  void store(std::shared_ptr<const AdapterDeltas> p) {
    {
      std::lock_guard lock(mutex_);
      ptr_.swap(p);
    }
    // p (the previous set) is released here, outside the lock.
  }
  bool compare_exchange(std::shared_ptr<const AdapterDeltas>& expected,
                        std::shared_ptr<const AdapterDeltas> desired) {
    std::shared_ptr<const AdapterDeltas> old;
    std::lock_guard lock(mutex_);
    if (ptr_ != expected) {
      expected = ptr_;
      return false;
    }
    old = std::move(ptr_);
    ptr_ = std::move(desired);
    return true;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const AdapterDeltas> ptr_;
};

}  // namespace

struct Context::Impl {
  std::shared_ptr<const Model> model;
  const Model::Impl* m = nullptr;
  ContextParams params;
  ThreadPool pool;
  std::vector<int32_t> past;  // per sequence: cached positions

  // One forward pass is a list of segments: consecutive tokens of one sequence, their adapters.
  struct Segment {
    int32_t seq = 0;
    int32_t row = 0;  // first token's row in the pass
    int32_t n = 0;
    int32_t pos0 = 0;
    const AdapterDeltas* deltas = nullptr;
    bool logits = false;  // keep the last token's logits
  };
  std::vector<int32_t> tok_pos, tok_seq;  // per row of a pass

  // KV cache: per layer, [n_ctx][kv_dim] keys and values as rows of the cache type (F32, F16 bits
  // or Q8_0 blocks; backend/cpu/attention.h).
  TensorType kv_type = TensorType::F16;
  size_t kv_row = 0;  // bytes per position
  // Allocated without being written: a sequence's pages are only committed when it uses them, so
  // idle slots of a many-sequence context cost address space, not memory.
  std::unique_ptr<uint8_t[]> k_cache, v_cache;

  // Activations for up to n_batch tokens; allocated once.
  std::vector<float> x, xb, q, k, v, attn, tmp, gate, up;
  std::unique_ptr<cpu::AttentionScratch> attn_scratch;  // per-thread tiles, split partials
  std::vector<uint8_t> scratch;
  std::vector<float> logits;  // [n_logits][n_vocab]
  int32_t n_logits = 0;

  // Adapter deltas (model/adapter_delta.h): published by any thread, snapshotted per decode().
  PublishedDeltas published_deltas;
  std::shared_ptr<const AdapterDeltas> pinned_deltas;
  bool deltas_pinned = false;
  DeltaScratch delta_scratch;

  // decode_batch results: logits of the entries that asked for them, and where each entry's are.
  std::vector<float> batch_out;
  std::vector<int64_t> batch_row;  // per entry: row in batch_out, -1 if none

  // A projection output to correct: its rows and their width.
  struct DeltaOut {
    Projection p;
    float* y;
    int64_t width;
  };

  // y += the adapter deltas on projections `outs` of layer l (input `in`, rows of in_width), for
  // each run of consecutive segments that share one adapter set: one low-rank product per run.
  void add_deltas(int32_t l, std::initializer_list<DeltaOut> outs, const float* in,
                  int64_t in_width, std::span<const Segment> segs) {
    for (size_t i = 0; i < segs.size();) {
      const AdapterDeltas* d = segs[i].deltas;
      const int32_t row = segs[i].row;
      int32_t rows = 0;
      for (; i < segs.size() && segs[i].deltas == d; ++i) rows += segs[i].n;
      if (d == nullptr) continue;
      const auto& layer = d->layers[static_cast<size_t>(l)];
      DeltaTarget targets[3];
      size_t count = 0;
      for (const DeltaOut& o : outs) {
        const auto& list = layer[static_cast<size_t>(o.p)];
        if (!list.empty()) targets[count++] = {&list, o.y + row * o.width};
      }
      if (count > 0) {
        apply_deltas(pool, std::span(targets, count), in + row * in_width, rows, delta_scratch);
      }
    }
  }

  Impl(std::shared_ptr<const Model> mdl, ContextParams p)
      : model(std::move(mdl)), m(&model->impl()), params(p), pool(p.n_threads) {}

  int64_t kv_dim() const { return int64_t{m->config.n_head_kv} * m->config.head_dim; }
  // KV cache layout: [seq][layer][n_ctx] rows of kv_row bytes.
  size_t kv_offset(int32_t seq, int32_t layer, int32_t pos) const {
    const size_t layers = static_cast<size_t>(m->config.n_layer);
    return ((static_cast<size_t>(seq) * layers + static_cast<size_t>(layer)) *
                static_cast<size_t>(params.n_ctx) +
            static_cast<size_t>(pos)) *
           kv_row;
  }

  void store_kv(int32_t seq, int32_t layer, int32_t pos, const float* kr, const float* vr) {
    const size_t at = kv_offset(seq, layer, pos);
    cpu::kv_store_row(kv_type, kr, &k_cache[at], kv_dim());
    cpu::kv_store_row(kv_type, vr, &v_cache[at], kv_dim());
  }

  // Causal grouped-query attention of each segment's tokens over its own sequence's cache.
  void attention(int32_t layer, std::span<const Segment> segs) {
    const ModelConfig& c = m->config;
    const int64_t q_dim = int64_t{c.n_head} * c.head_dim;
    for (const Segment& g : segs) {
      cpu::AttentionArgs a;
      a.q = q.data() + g.row * q_dim;
      a.q_stride = q_dim;
      a.n_tokens = g.n;
      a.pos0 = g.pos0;
      a.k = &k_cache[kv_offset(g.seq, layer, 0)];
      a.v = &v_cache[kv_offset(g.seq, layer, 0)];
      a.row_bytes = kv_row;
      a.out = attn.data() + g.row * q_dim;
      a.out_stride = q_dim;
      a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      a.window = c.sliding_window;
      cpu::attention(pool, a, *attn_scratch);
    }
  }

  // Runs fn(t) for every token t < n: split over the pool for prompt batches, inline for the
  // few tokens of a decode step (waking the pool costs more than these row operations).
  template <class F>
  void for_tokens(int32_t n, F&& fn) {
    if (n >= kParallelTokens && pool.size() > 1) {
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) fn(static_cast<int32_t>(t));
      });
    } else {
      for (int32_t t = 0; t < n; ++t) fn(t);
    }
  }
  static constexpr int32_t kParallelTokens = 4;

  // One forward pass over the segments' n <= n_batch tokens (`tokens`, in segment order). Logits
  // are kept for every token (all_logits) or for the last token of each segment that asks; they
  // land in `logits` in that order.
  void forward(const TokenId* tokens, std::span<const Segment> segs, bool all_logits) {
    const ModelConfig& c = m->config;
    const int64_t E = c.n_embd, q_dim = int64_t{c.n_head} * c.head_dim, kvd = kv_dim();
    const int64_t F = c.n_ff;
    int32_t n = 0;
    for (const Segment& g : segs) {
      for (int32_t i = 0; i < g.n; ++i) {
        tok_pos[static_cast<size_t>(g.row + i)] = g.pos0 + i;
        tok_seq[static_cast<size_t>(g.row + i)] = g.seq;
      }
      n += g.n;
    }
    for_tokens(n, [&](int32_t t) {
      cpu::dequantize_row(m->token_embd, tokens[t], x.data() + t * E);
      ops::rmsnorm(x.data() + t * E, m->layers[0].attn_norm.data(), xb.data() + t * E, E,
                   c.norm_eps);
    });

    for (int32_t l = 0; l < c.n_layer; ++l) {
      const LayerWeights& w = m->layers[static_cast<size_t>(l)];
      // Attention block; xb holds attn_norm(x).
      const cpu::MatmulTarget qkv[] = {{&w.wq, q.data()}, {&w.wk, k.data()}, {&w.wv, v.data()}};
      cpu::matmul_shared_input(pool, qkv, xb.data(), n, scratch);
      add_deltas(l,
                 {{Projection::q, q.data(), q_dim},
                  {Projection::k, k.data(), kvd},
                  {Projection::v, v.data(), kvd}},
                 xb.data(), E, segs);
      const float* freq_factors =
          c.rope_freq_factors.empty() ? nullptr : c.rope_freq_factors.data();
      for_tokens(n, [&](int32_t t) {
        const int32_t pos = tok_pos[static_cast<size_t>(t)];
        float* qt = q.data() + t * q_dim;
        float* kt = k.data() + t * kvd;
        if (c.qkv_bias) {
          ops::add(qt, w.bq.data(), q_dim);
          ops::add(kt, w.bk.data(), kvd);
          ops::add(v.data() + t * kvd, w.bv.data(), kvd);
        }
        if (c.qk_norm) {
          for (int32_t h = 0; h < c.n_head; ++h) {
            float* x_h = qt + int64_t{h} * c.head_dim;
            ops::rmsnorm(x_h, w.q_norm.data(), x_h, c.head_dim, c.norm_eps);
          }
          for (int32_t h = 0; h < c.n_head_kv; ++h) {
            float* x_h = kt + int64_t{h} * c.head_dim;
            ops::rmsnorm(x_h, w.k_norm.data(), x_h, c.head_dim, c.norm_eps);
          }
        }
        ops::rope(qt, c.n_head, c.head_dim, c.n_rot, pos, c.rope_freq_base, c.rope_freq_scale,
                  c.rope_layout, freq_factors);
        ops::rope(kt, c.n_head_kv, c.head_dim, c.n_rot, pos, c.rope_freq_base, c.rope_freq_scale,
                  c.rope_layout, freq_factors);
        store_kv(tok_seq[static_cast<size_t>(t)], l, pos, k.data() + t * kvd, v.data() + t * kvd);
      });
      attention(l, segs);
      cpu::matmul(pool, w.wo, attn.data(), n, tmp.data(), scratch);
      add_deltas(l, {{Projection::o, tmp.data(), E}}, attn.data(), q_dim, segs);
      // Residual add fused with the next norm: one pass over x per token.
      for_tokens(n, [&](int32_t t) {
        ops::add(x.data() + t * E, tmp.data() + t * E, E);
        ops::rmsnorm(x.data() + t * E, w.ffn_norm.data(), xb.data() + t * E, E, c.norm_eps);
      });

      // Feed-forward block (SwiGLU).
      const cpu::MatmulTarget gate_up[] = {{&w.w_gate, gate.data()}, {&w.w_up, up.data()}};
      cpu::matmul_shared_input(pool, gate_up, xb.data(), n, scratch);
      add_deltas(l, {{Projection::gate, gate.data(), F}, {Projection::up, up.data(), F}}, xb.data(),
                 E, segs);
      for_tokens(n, [&](int32_t t) { ops::swiglu(gate.data() + t * F, up.data() + t * F, F); });
      cpu::matmul(pool, w.w_down, gate.data(), n, tmp.data(), scratch);
      add_deltas(l, {{Projection::down, tmp.data(), E}}, gate.data(), F, segs);
      // Residual add, then the next layer's attention norm (or the output norm, below).
      const bool last = l + 1 == c.n_layer;
      for_tokens(n, [&](int32_t t) {
        ops::add(x.data() + t * E, tmp.data() + t * E, E);
        if (!last) {
          ops::rmsnorm(x.data() + t * E, m->layers[static_cast<size_t>(l) + 1].attn_norm.data(),
                       xb.data() + t * E, E, c.norm_eps);
        }
      });
    }

    // Output head: every position, or the last of each segment that asks.
    int32_t n_out = 0;
    auto head_row = [&](int32_t t) {
      ops::rmsnorm(x.data() + t * E, m->output_norm.data(), xb.data() + n_out * E, E, c.norm_eps);
      ++n_out;
    };
    if (all_logits) {
      for (int32_t t = 0; t < n; ++t) head_row(t);
    } else {
      for (const Segment& g : segs) {
        if (g.logits) head_row(g.row + g.n - 1);
      }
    }
    if (n_out > 0) {
      const size_t need = static_cast<size_t>(n_out) * static_cast<size_t>(c.n_vocab);
      if (logits.size() < need) logits.resize(need);
      cpu::matmul(pool, m->output, xb.data(), n_out, logits.data(), scratch);
    }
    n_logits = n_out;
    for (const Segment& g : segs) past[static_cast<size_t>(g.seq)] += g.n;
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
  if (p.n_seq <= 0 || p.n_seq > 1024) {
    return Error{fmt::format("sequence count must be 1..1024, got {}", p.n_seq)};
  }
  TensorType kv_type = TensorType::F16;
  switch (p.cache_type) {
    case KvCacheType::f32:
      kv_type = TensorType::F32;
      break;
    case KvCacheType::f16:
      kv_type = TensorType::F16;
      break;
    case KvCacheType::q8_0:
      kv_type = TensorType::Q8_0;
      break;
    default:
      return Error{fmt::format("unknown KV cache type {}", static_cast<int>(p.cache_type))};
  }
  const cpu::AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, kv_type};
  if (kv_type == TensorType::Q8_0 && c.head_dim % 32 != 0) {
    return Error{fmt::format(
        "KV cache type q8_0 needs a head dimension that is a multiple of 32 (Q8_0 blocks must not "
        "straddle heads); this model's is {}: use an f16 or f32 cache",
        c.head_dim)};
  }
  if (!cpu::attention_supported(shape)) {
    return Error{fmt::format("unsupported attention shape: {} heads, {} KV heads, head dim {}",
                             c.n_head, c.n_head_kv, c.head_dim)};
  }

  std::unique_ptr<Context> ctx(new Context());
  ctx->impl_ = std::make_unique<Impl>(std::move(model), p);
  Impl& s = *ctx->impl_;
  const size_t B = static_cast<size_t>(p.n_batch);
  const size_t E = static_cast<size_t>(c.n_embd);
  const size_t q_dim = static_cast<size_t>(c.n_head) * static_cast<size_t>(c.head_dim);
  const size_t kvd = static_cast<size_t>(s.kv_dim());
  s.kv_type = kv_type;
  s.kv_row = cpu::kv_row_bytes(kv_type, static_cast<int64_t>(kvd));
  const size_t cache = static_cast<size_t>(p.n_seq) * static_cast<size_t>(c.n_layer) *
                       static_cast<size_t>(p.n_ctx) * s.kv_row;
  s.k_cache.reset(new (std::nothrow) uint8_t[cache]);
  s.v_cache.reset(new (std::nothrow) uint8_t[cache]);
  if (!s.k_cache || !s.v_cache) {
    return Error{
        fmt::format("cannot allocate the KV cache: 2 x {} MiB ({} sequences x {} positions)",
                    cache >> 20, p.n_seq, p.n_ctx)};
  }
  s.past.assign(static_cast<size_t>(p.n_seq), 0);
  s.tok_pos.resize(B);
  s.tok_seq.resize(B);
  s.x.resize(B * E);
  s.xb.resize(B * E);
  s.tmp.resize(B * E);
  s.q.resize(B * q_dim);
  s.attn.resize(B * q_dim);
  s.k.resize(B * kvd);
  s.v.resize(B * kvd);
  s.gate.resize(B * static_cast<size_t>(c.n_ff));
  s.up.resize(B * static_cast<size_t>(c.n_ff));
  s.attn_scratch = std::make_unique<cpu::AttentionScratch>(shape, p.n_threads);
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

namespace {

Error token_error(TokenId id, int32_t i, int32_t n_vocab) {
  return Error{fmt::format("token id {} at position {} is outside the vocabulary (0..{})", id, i,
                           n_vocab - 1)};
}

}  // namespace

Result<void> Context::decode(const TokenId* tokens, int32_t n, bool all_logits) {
  Impl& s = *impl_;
  if (n <= 0) return Error{"decode: no tokens given"};
  const int32_t past = s.past[0];
  if (n > s.params.n_ctx - past) {
    return Error{fmt::format("context overflow: {} tokens cached + {} new > context size {}", past,
                             n, s.params.n_ctx)};
  }
  const int32_t n_vocab = s.m->config.n_vocab;
  for (int32_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) return token_error(tokens[i], i, n_vocab);
  }
  // One adapter snapshot for the whole call: every layer of every pass sees the same set, and the
  // reference keeps it alive even if another thread publishes a new one meanwhile.
  const std::shared_ptr<const AdapterDeltas> snapshot =
      s.deltas_pinned ? s.pinned_deltas : s.published_deltas.load();
  const AdapterDeltas* deltas = snapshot && !snapshot->empty() ? snapshot.get() : nullptr;
  if (deltas) s.delta_scratch.reserve(*deltas, std::min(n, s.params.n_batch));
  std::vector<float> all;  // every token's logits, when they span several passes
  for (int32_t i = 0; i < n; i += s.params.n_batch) {
    const int32_t len = std::min(s.params.n_batch, n - i);
    const Impl::Segment seg{0, 0, len, s.past[0], deltas, i + len == n};
    s.forward(tokens + i, std::span(&seg, 1), all_logits);
    if (all_logits && len < n) {
      all.insert(all.end(), s.logits.begin(), s.logits.begin() + int64_t{len} * n_vocab);
    }
  }
  if (all_logits && !all.empty()) {
    s.logits = std::move(all);
    s.n_logits = n;
  }
  return {};
}

Result<void> Context::decode_batch(std::span<const SeqBatch> batch) {
  Impl& s = *impl_;
  const int32_t n_vocab = s.m->config.n_vocab;
  // Validate everything first: a bad entry must not leave other sequences half-evaluated.
  std::vector<const AdapterDeltas*> deltas(batch.size(), nullptr);
  std::vector<bool> seen(static_cast<size_t>(s.params.n_seq), false);
  for (size_t e = 0; e < batch.size(); ++e) {
    const SeqBatch& b = batch[e];
    if (b.seq < 0 || b.seq >= s.params.n_seq) {
      return Error{fmt::format("decode_batch: entry {} names sequence {}; this context has 0..{}",
                               e, b.seq, s.params.n_seq - 1)};
    }
    if (seen[static_cast<size_t>(b.seq)]) {
      return Error{fmt::format("decode_batch: sequence {} appears twice", b.seq)};
    }
    seen[static_cast<size_t>(b.seq)] = true;
    if (b.n <= 0 || b.tokens == nullptr) {
      return Error{fmt::format("decode_batch: entry {} has no tokens", e)};
    }
    const int32_t past = s.past[static_cast<size_t>(b.seq)];
    if (b.n > s.params.n_ctx - past) {
      return Error{fmt::format(
          "context overflow in sequence {}: {} tokens cached + {} new > context size {}", b.seq,
          past, b.n, s.params.n_ctx)};
    }
    for (int32_t i = 0; i < b.n; ++i) {
      if (b.tokens[i] < 0 || b.tokens[i] >= n_vocab) return token_error(b.tokens[i], i, n_vocab);
    }
    if (b.adapters != nullptr) {
      auto d = adapter_set_deltas(*b.adapters, *s.model);
      if (!d.ok()) return Error{fmt::format("decode_batch: entry {}: {}", e, d.error().message)};
      if (!(*d)->empty()) {
        deltas[e] = *d;
        s.delta_scratch.reserve(**d, s.params.n_batch);
      }
    }
  }

  // Passes of at most n_batch tokens: each takes what fits of every unfinished entry, in order,
  // so single-token decode steps go first and long prompts are split (chunked prefill).
  s.batch_row.assign(batch.size(), -1);
  int64_t n_out = 0;
  for (const SeqBatch& b : batch) n_out += b.logits ? 1 : 0;
  s.batch_out.resize(static_cast<size_t>(n_out) * static_cast<size_t>(n_vocab));
  std::vector<int32_t> done(batch.size(), 0);
  std::vector<Impl::Segment> segs;
  std::vector<size_t> seg_entry;
  std::vector<TokenId> pass_tokens(static_cast<size_t>(s.params.n_batch));
  int64_t next_out = 0;
  for (size_t first = 0; first < batch.size();) {
    segs.clear();
    seg_entry.clear();
    int32_t rows = 0;
    for (size_t e = first; e < batch.size() && rows < s.params.n_batch; ++e) {
      const SeqBatch& b = batch[e];
      const int32_t len = std::min(b.n - done[e], s.params.n_batch - rows);
      if (len <= 0) continue;
      std::copy_n(b.tokens + done[e], len, pass_tokens.begin() + rows);
      const bool last_chunk = done[e] + len == b.n;
      segs.push_back({b.seq, rows, len, s.past[static_cast<size_t>(b.seq)], deltas[e],
                      b.logits && last_chunk});
      seg_entry.push_back(e);
      done[e] += len;
      rows += len;
    }
    s.forward(pass_tokens.data(), segs, false);
    int64_t out = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
      if (!segs[i].logits) continue;
      std::copy_n(s.logits.data() + out * n_vocab, n_vocab,
                  s.batch_out.data() + next_out * n_vocab);
      s.batch_row[seg_entry[i]] = next_out++;
      ++out;
    }
    while (first < batch.size() && done[first] == batch[first].n) ++first;
  }
  s.n_logits = 0;  // logits() belongs to decode(); batch results are read with batch_logits()
  return {};
}

const float* Context::batch_logits(size_t i) const {
  const Impl& s = *impl_;
  if (i >= s.batch_row.size() || s.batch_row[i] < 0) return nullptr;
  return s.batch_out.data() + s.batch_row[i] * int64_t{s.m->config.n_vocab};
}

const float* Context::logits(int32_t i) const {
  const Impl& s = *impl_;
  if (i < 0) i = s.n_logits - 1;
  return s.logits.data() + static_cast<size_t>(i) * static_cast<size_t>(s.m->config.n_vocab);
}
int32_t Context::n_logits() const { return impl_->n_logits; }
int32_t Context::n_past() const { return impl_->past[0]; }
int32_t Context::n_past(int32_t seq) const {
  const Impl& s = *impl_;
  return seq >= 0 && seq < s.params.n_seq ? s.past[static_cast<size_t>(seq)] : 0;
}
int32_t Context::n_ctx() const { return impl_->params.n_ctx; }
int32_t Context::n_seq() const { return impl_->params.n_seq; }
int32_t Context::n_threads() const { return impl_->params.n_threads; }
void Context::clear() {
  std::fill(impl_->past.begin(), impl_->past.end(), 0);
  impl_->n_logits = 0;
}
void Context::clear(int32_t seq) { truncate(seq, 0); }
void Context::truncate(int32_t seq, int32_t n) {
  Impl& s = *impl_;
  if (seq < 0 || seq >= s.params.n_seq) return;
  int32_t& past = s.past[static_cast<size_t>(seq)];
  past = std::clamp(n, 0, past);
  if (seq == 0) s.n_logits = 0;
}
const Model& Context::model() const { return *impl_->model; }

void context_publish_deltas(Context& ctx, std::shared_ptr<const AdapterDeltas> deltas) {
  ctx.impl().published_deltas.store(std::move(deltas));
}
std::shared_ptr<const AdapterDeltas> context_published_deltas(const Context& ctx) {
  return ctx.impl().published_deltas.load();
}
bool context_exchange_deltas(Context& ctx, std::shared_ptr<const AdapterDeltas>& expected,
                             std::shared_ptr<const AdapterDeltas> desired) {
  return ctx.impl().published_deltas.compare_exchange(expected, std::move(desired));
}
void context_pin_deltas(Context& ctx) {
  Context::Impl& s = ctx.impl();
  s.pinned_deltas = s.published_deltas.load();
  s.deltas_pinned = true;
}
void context_unpin_deltas(Context& ctx) {
  Context::Impl& s = ctx.impl();
  s.pinned_deltas.reset();
  s.deltas_pinned = false;
}

}  // namespace kandil
