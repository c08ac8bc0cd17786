// Attention (backend/cpu/attention.h): the SIMD flash kernels against the scalar reference, and the
// reference against a naive float64 two-pass softmax, on fresh random inputs of odd shapes; then
// model-level checks of the KV cache types.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "base/cpu_features.h"
#include "base/fp16.h"
#include "kandil/model.h"
#include "kandil/synth.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"
#include "test_util.h"

namespace kandil {
namespace {

using cpu::AttentionArgs;
using cpu::AttentionScratch;
using cpu::AttentionShape;
using cpu::KernelChoice;

// A layer's cache of n_ctx rows and n_tokens queries, all random.
struct Data {
  AttentionShape shape;
  int32_t n_ctx = 0, n_tokens = 0;
  int32_t window = 0;  // sliding window (0: none)
  size_t row_bytes = 0;
  std::vector<uint8_t> k, v;
  std::vector<float> q;
};

Data make_data(const AttentionShape& shape, int32_t n_ctx, int32_t n_tokens, uint32_t seed) {
  Data d;
  d.shape = shape;
  d.n_ctx = n_ctx;
  d.n_tokens = n_tokens;
  const int64_t kv_dim = int64_t{shape.n_head_kv} * shape.head_dim;
  d.row_bytes = cpu::kv_row_bytes(shape.kv_type, kv_dim);
  d.k.resize(d.row_bytes * static_cast<size_t>(n_ctx));
  d.v.resize(d.k.size());
  const std::vector<float> kf = kandil::testing::random_row(kv_dim * n_ctx, seed);
  const std::vector<float> vf = kandil::testing::random_row(kv_dim * n_ctx, seed + 1);
  for (int32_t j = 0; j < n_ctx; ++j) {
    cpu::kv_store_row(shape.kv_type, kf.data() + j * kv_dim, &d.k[j * d.row_bytes], kv_dim);
    cpu::kv_store_row(shape.kv_type, vf.data() + j * kv_dim, &d.v[j * d.row_bytes], kv_dim);
  }
  // Queries with sigma 2: scores spread over several units, so the softmax is far from uniform
  // and the running max changes between tiles.
  d.q = kandil::testing::random_row(int64_t{n_tokens} * shape.n_head * shape.head_dim, seed + 2,
                                    2.0f);
  return d;
}

AttentionArgs args_for(const Data& d, int32_t pos0, std::vector<float>& out) {
  const int64_t q_dim = int64_t{d.shape.n_head} * d.shape.head_dim;
  out.assign(static_cast<size_t>(d.n_tokens * q_dim), std::nanf(""));
  AttentionArgs a;
  a.q = d.q.data();
  a.q_stride = q_dim;
  a.n_tokens = d.n_tokens;
  a.pos0 = pos0;
  a.k = d.k.data();
  a.v = d.v.data();
  a.row_bytes = d.row_bytes;
  a.out = out.data();
  a.out_stride = q_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(d.shape.head_dim));
  a.window = d.window;
  return a;
}

// Thread pools of 1, 2 and 3 threads, created once (a pool per call would dominate the run time).
ThreadPool& pool_of(int threads) {
  static ThreadPool p1(1), p2(2), p3(3);
  return threads == 1 ? p1 : threads == 2 ? p2 : p3;
}

std::vector<float> run_reference(const Data& d, int32_t pos0) {
  ThreadPool& pool = pool_of(1);
  AttentionScratch scratch(d.shape, 1);
  std::vector<float> out;
  cpu::attention_reference(pool, args_for(d, pos0, out), scratch);
  return out;
}

std::vector<float> run_kernel(const Data& d, int32_t pos0, int threads, KernelChoice choice,
                              int32_t min_split_keys) {
  ThreadPool& pool = pool_of(threads);
  AttentionScratch scratch(d.shape, threads);
  scratch.min_split_keys = min_split_keys;
  std::vector<float> out;
  cpu::attention(pool, args_for(d, pos0, out), scratch, choice);
  return out;
}

// The float64 textbook computation from the cache's values (dequantized) and the query as the
// cache type rounds it: scores, max, exp, normalize, weighted sum of V.
std::vector<double> naive(const Data& d, int32_t pos0) {
  const AttentionShape& s = d.shape;
  const int hd = s.head_dim, group = s.n_head / s.n_head_kv;
  const int64_t kv_dim = int64_t{s.n_head_kv} * hd, q_dim = int64_t{s.n_head} * hd;
  const ops::TypeTraits* tr = ops::type_traits(s.kv_type);
  std::vector<float> kf(static_cast<size_t>(kv_dim)), vf(kf.size()), qr(static_cast<size_t>(hd));
  std::vector<double> out(static_cast<size_t>(d.n_tokens * q_dim));
  std::vector<ops::BlockQ8_0> q8(static_cast<size_t>(hd / ops::kQK + 1));
  for (int t = 0; t < d.n_tokens; ++t) {
    for (int h = 0; h < s.n_head; ++h) {
      const float* q = d.q.data() + t * q_dim + h * hd;
      for (int i = 0; i < hd; ++i) {
        qr[static_cast<size_t>(i)] =
            s.kv_type == TensorType::F16 ? fp16_to_f32(f32_to_fp16(q[i])) : q[i];
      }
      if (s.kv_type == TensorType::Q8_0) {
        tr->from_float(q, q8.data(), hd);
        tr->to_float(q8.data(), qr.data(), hd);
      }
      const int n_kv = pos0 + t + 1;
      // Sliding window: only keys with query position - key position < window.
      const int j0 = d.window > 0 ? std::max(0, n_kv - d.window) : 0;
      std::vector<double> sc(static_cast<size_t>(n_kv));
      double mx = -1e300;
      for (int j = j0; j < n_kv; ++j) {
        tr->to_float(&d.k[static_cast<size_t>(j) * d.row_bytes], kf.data(), kv_dim);
        double dot = 0;
        for (int i = 0; i < hd; ++i) {
          dot += double{qr[static_cast<size_t>(i)]} * kf[static_cast<size_t>(h / group * hd + i)];
        }
        sc[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, sc[static_cast<size_t>(j)]);
      }
      double sum = 0;
      for (int j = j0; j < n_kv; ++j) {
        sum += (sc[static_cast<size_t>(j)] = std::exp(sc[static_cast<size_t>(j)] - mx));
      }
      double* o = out.data() + t * q_dim + h * hd;
      for (int j = j0; j < n_kv; ++j) {
        tr->to_float(&d.v[static_cast<size_t>(j) * d.row_bytes], vf.data(), kv_dim);
        for (int i = 0; i < hd; ++i) {
          o[i] += sc[static_cast<size_t>(j)] / sum * vf[static_cast<size_t>(h / group * hd + i)];
        }
      }
    }
  }
  return out;
}

template <class A, class B>
double max_diff(const A& a, const B& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(d <= m)) m = d;  // NaN (an output never written) becomes the maximum
  }
  return m;
}

// The SIMD levels (Auto picks the best of these; a level the CPU lacks falls back to the next
// lower one, down to the reference).
std::vector<KernelChoice> choices() {
  std::vector<KernelChoice> c = {KernelChoice::Avx2};
  if (cpu_features().avx512f) c.push_back(KernelChoice::Avx512);
  return c;
}

std::string type_name(TensorType t) { return std::string(tensor_type_name(t)); }

struct Shape {
  int hd, n_head, n_head_kv;
};

// Odd shapes: group sizes 1, 2, 4, 8 (also 3 and 5, which leave partial row blocks), head dims
// 32 / 64 / 128 for every type, 80 and 40 (AVX2 only: not a multiple of 16) and 20 (no SIMD
// path: reference fallback) for the float caches.
std::vector<Shape> shapes_for(TensorType type) {
  std::vector<Shape> s = {{32, 1, 1},  {64, 2, 1}, {128, 8, 2}, {64, 16, 4},
                          {32, 24, 3}, {64, 5, 1}, {128, 3, 3}, {32, 8, 1}};
  if (type != TensorType::Q8_0) {
    s.push_back({80, 6, 2});
    s.push_back({40, 4, 1});
    s.push_back({20, 2, 2});
  }
  return s;
}

constexpr TensorType kTypes[] = {TensorType::F32, TensorType::F16, TensorType::Q8_0};

// Kernel vs reference (and reference vs float64): float rounding only, except that the F16 path
// rounds the normalized weights to F16 (llama.cpp's numerics) and a weight whose exp / sum
// differs in the last float bit may round to the neighbouring half (2^-12 relative near 0.5).
double tolerance(TensorType type) { return type == TensorType::F16 ? 2e-3 : 2e-5; }

TEST(Attention, ReferenceMatchesNaiveFloat64) {
  for (TensorType type : kTypes) {
    for (const Shape& sh : shapes_for(type)) {
      const AttentionShape shape{sh.n_head, sh.n_head_kv, sh.hd, type};
      // A causal prefill batch of 5 queries after 40 cached positions.
      const Data d = make_data(shape, 45, 5, 11u * static_cast<uint32_t>(sh.hd + sh.n_head));
      EXPECT_LT(max_diff(run_reference(d, 40), naive(d, 40)), tolerance(type))
          << type_name(type) << " hd " << sh.hd << " heads " << sh.n_head << "/" << sh.n_head_kv;
    }
  }
}

// Decode (one query) over contexts of 1 .. 1100 keys: partial tiles, several tiles, and key
// ranges split across 1-3 threads (min_split_keys lowered so short contexts split too).
TEST(Attention, DecodeMatchesReference) {
  for (TensorType type : kTypes) {
    for (const Shape& sh : shapes_for(type)) {
      const AttentionShape shape{sh.n_head, sh.n_head_kv, sh.hd, type};
      for (int32_t n_kv : {1, 7, 33, 300, 1100}) {
        const Data d = make_data(shape, n_kv, 1, static_cast<uint32_t>(n_kv * 7 + sh.hd));
        const std::vector<float> ref = run_reference(d, n_kv - 1);
        for (KernelChoice choice : choices()) {
          for (int threads : {1, 2, 3}) {
            for (int32_t split_keys : {128, 8}) {
              if (split_keys == 128 && n_kv < 256) continue;  // would not split: as threads = 1
              const auto out = run_kernel(d, n_kv - 1, threads, choice, split_keys);
              EXPECT_LT(max_diff(out, ref), tolerance(type))
                  << type_name(type) << " hd " << sh.hd << " heads " << sh.n_head << "/"
                  << sh.n_head_kv << " n_kv " << n_kv << " threads " << threads << " isa "
                  << cpu::attention_isa(shape, choice) << " split keys " << split_keys;
            }
          }
        }
      }
    }
  }
}

// Prefill batches with the causal mask: from an empty cache and after cached positions; also a
// batch small enough (2 tokens, 1 KV head, 3 threads) that key ranges are split and some rows'
// chunks are empty.
TEST(Attention, PrefillMatchesReference) {
  struct Batch {
    int32_t pos0, n_tokens;
  };
  for (TensorType type : kTypes) {
    for (const Shape& sh : shapes_for(type)) {
      const AttentionShape shape{sh.n_head, sh.n_head_kv, sh.hd, type};
      for (Batch b : {Batch{0, 1}, Batch{0, 37}, Batch{283, 17}, Batch{0, 2}, Batch{70, 3}}) {
        const Data d = make_data(shape, b.pos0 + b.n_tokens, b.n_tokens,
                                 static_cast<uint32_t>(b.pos0 * 3 + b.n_tokens + sh.n_head));
        const std::vector<float> ref = run_reference(d, b.pos0);
        for (KernelChoice choice : choices()) {
          for (int threads : {1, 3}) {
            const auto out = run_kernel(d, b.pos0, threads, choice, 4);
            EXPECT_LT(max_diff(out, ref), tolerance(type))
                << type_name(type) << " hd " << sh.hd << " heads " << sh.n_head << "/"
                << sh.n_head_kv << " pos0 " << b.pos0 << " tokens " << b.n_tokens << " isa "
                << cpu::attention_isa(shape, choice);
          }
        }
      }
    }
  }
}

// Sliding window (Mistral): decode and prefill batches whose rows start inside and outside the
// window, split key ranges included; the reference against float64, the kernels against it.
TEST(Attention, SlidingWindowMatchesReference) {
  struct Batch {
    int32_t pos0, n_tokens, window;
  };
  for (TensorType type : kTypes) {
    for (const Shape& sh : shapes_for(type)) {
      const AttentionShape shape{sh.n_head, sh.n_head_kv, sh.hd, type};
      for (Batch b : {Batch{0, 12, 5}, Batch{299, 1, 64}, Batch{40, 9, 16}, Batch{3, 2, 100},
                      Batch{500, 1, 1}}) {
        Data d = make_data(shape, b.pos0 + b.n_tokens, b.n_tokens,
                           static_cast<uint32_t>(b.pos0 + b.window + sh.hd));
        d.window = b.window;
        const std::vector<float> ref = run_reference(d, b.pos0);
        EXPECT_LT(max_diff(ref, naive(d, b.pos0)), tolerance(type)) << type_name(type);
        Data full = d;
        full.window = 0;
        if (b.pos0 + b.n_tokens > b.window) {  // the window must matter
          EXPECT_GT(max_diff(run_reference(full, b.pos0), naive(d, b.pos0)), 1e-3);
        }
        for (KernelChoice choice : choices()) {
          for (int threads : {1, 3}) {
            const auto out = run_kernel(d, b.pos0, threads, choice, 4);
            EXPECT_LT(max_diff(out, ref), tolerance(type))
                << type_name(type) << " hd " << sh.hd << " pos0 " << b.pos0 << " tokens "
                << b.n_tokens << " window " << b.window << " isa "
                << cpu::attention_isa(shape, choice) << " threads " << threads;
          }
        }
      }
    }
  }
}

TEST(Attention, DispatchHonoursTheChoice) {
  const AttentionShape f16{8, 2, 64, TensorType::F16};
  EXPECT_STREQ(cpu::attention_isa(f16, KernelChoice::Reference), "reference");
  const CpuFeatures& f = cpu_features();
  if (f.avx2 && f.fma && f.f16c) {
    EXPECT_STREQ(cpu::attention_isa(f16, KernelChoice::Avx2), "avx2");
    if (f.avx512f && f.avx512bw && f.avx512vl) {
      EXPECT_STREQ(cpu::attention_isa(f16, KernelChoice::Auto), "avx512");
      // 40 is not a multiple of 16 lanes: the AVX2 kernel takes it.
      EXPECT_STREQ(cpu::attention_isa({4, 1, 40, TensorType::F32}, KernelChoice::Auto), "avx2");
    }
  }
  EXPECT_STREQ(cpu::attention_isa({4, 1, 20, TensorType::F32}, KernelChoice::Auto), "reference");
  EXPECT_FALSE(cpu::attention_supported({4, 1, 48, TensorType::Q8_0}));
  EXPECT_FALSE(cpu::attention_supported({6, 4, 64, TensorType::F16}));
}

TEST(Attention, CacheRowsMatchReferenceConversion) {
  const int64_t n = 256;
  const std::vector<float> x = kandil::testing::random_row(n, 5);
  for (TensorType type : kTypes) {
    const ops::TypeTraits* tr = ops::type_traits(type);
    std::vector<uint8_t> fast(cpu::kv_row_bytes(type, n)), ref(fast.size());
    cpu::kv_store_row(type, x.data(), fast.data(), n);
    tr->from_float(x.data(), ref.data(), n);
    EXPECT_EQ(fast, ref) << type_name(type);
  }
}

// ---- model level ------------------------------------------------------------------------------

std::shared_ptr<const Model> synth_model(const SynthSpec& spec) {
  const std::string path = kandil::testing::temp_dir() + "/model.gguf";
  EXPECT_TRUE(write_synthetic_model(spec, path).ok());
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : nullptr;
}

std::unique_ptr<Context> context(const std::shared_ptr<const Model>& m, KvCacheType cache,
                                 int32_t n_ctx, int threads, int32_t batch = 512) {
  ContextParams p;
  p.n_ctx = n_ctx;
  p.n_threads = threads;
  p.n_batch = batch;
  p.cache_type = cache;
  auto c = Context::create(m, p);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? std::move(*c) : nullptr;
}

std::vector<TokenId> token_sequence(int n, int n_vocab) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (i * 37 + 11) % n_vocab;
  return t;
}

// head_dim 32, 2 query heads per KV head.
SynthSpec spec_hd32() {
  SynthSpec spec;
  spec.n_embd = 128;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.n_ff = 256;
  spec.n_ctx = 1024;
  return spec;
}

// 300 tokens: several tiles, and (2 threads, 2 KV heads) the later single-token steps split their
// key ranges (AttentionScratch::min_split_keys = 128).
TEST(AttentionModel, CacheTypesAgreeAndBatchEqualsTokenByToken) {
  auto m = synth_model(spec_hd32());
  ASSERT_TRUE(m);
  const int n_vocab = m->config().n_vocab;
  const std::vector<TokenId> tokens = token_sequence(300, n_vocab);
  std::vector<std::vector<float>> last;  // per cache type: logits after every token
  for (KvCacheType cache : {KvCacheType::f32, KvCacheType::f16, KvCacheType::q8_0}) {
    SCOPED_TRACE(static_cast<int>(cache));
    // Whole prompt in one batch, every position's logits.
    auto batched = context(m, cache, 400, 2);
    ASSERT_TRUE(batched);
    ASSERT_TRUE(batched->decode(tokens, true).ok());
    // Token by token.
    auto single = context(m, cache, 400, 2);
    ASSERT_TRUE(single);
    double worst = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
      ASSERT_TRUE(single->decode(&tokens[i], 1).ok());
      const float* a = batched->logits(static_cast<int32_t>(i));
      const float* b = single->logits();
      for (int v = 0; v < n_vocab; ++v) worst = std::max(worst, double{std::abs(a[v] - b[v])});
    }
    EXPECT_LT(worst, 2e-3) << "batched vs token-by-token";
    std::printf("  cache %d: batched vs token-by-token max |dlogit| = %.2e\n",
                static_cast<int>(cache), worst);
    last.emplace_back(single->logits(), single->logits() + n_vocab);
  }
  // Against the F32 cache: F16 rounds K, V and Q; Q8_0 quantizes them (8 bits per value).
  std::printf("  after %zu tokens: max |dlogit| f16 vs f32 %.2e, q8_0 vs f32 %.2e\n", tokens.size(),
              max_diff(last[1], last[0]), max_diff(last[2], last[0]));
  EXPECT_LT(max_diff(last[1], last[0]), 1e-2) << "f16 vs f32";
  EXPECT_LT(max_diff(last[2], last[0]), 5e-2) << "q8_0 vs f32";
}

// Different thread counts (3 threads: uneven task counts and key splits) and batch sizes (prefill
// batches after cached positions), then single-token steps; both quantized cache types.
TEST(AttentionModel, ThreadCountsAndBatchSizesAgree) {
  auto m = synth_model(spec_hd32());
  ASSERT_TRUE(m);
  const int n_vocab = m->config().n_vocab;
  const std::vector<TokenId> tokens = token_sequence(260, n_vocab);
  const std::vector<TokenId> prompt(tokens.begin(), tokens.end() - 4);
  for (KvCacheType cache : {KvCacheType::f16, KvCacheType::q8_0}) {
    std::vector<float> base;
    for (auto [threads, batch] : {std::pair{1, 512}, std::pair{2, 512}, std::pair{3, 64}}) {
      auto ctx = context(m, cache, 300, threads, batch);
      ASSERT_TRUE(ctx);
      ASSERT_TRUE(ctx->decode(prompt).ok());
      for (size_t i = prompt.size(); i < tokens.size(); ++i) {
        ASSERT_TRUE(ctx->decode(&tokens[i], 1).ok());
      }
      std::vector<float> logits(ctx->logits(), ctx->logits() + n_vocab);
      if (base.empty()) {
        base = logits;
        continue;
      }
      EXPECT_LT(max_diff(logits, base), 2e-3)
          << static_cast<int>(cache) << ": " << threads << " threads, batch " << batch;
    }
  }
}

TEST(AttentionModel, Q8CacheNeedsHeadDimMultipleOf32) {
  SynthSpec spec;  // n_embd 64 / 4 heads: head_dim 16
  auto m = synth_model(spec);
  ASSERT_TRUE(m);
  ContextParams p;
  p.n_ctx = 32;
  p.n_threads = 1;
  p.cache_type = KvCacheType::q8_0;
  auto c = Context::create(m, p);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("multiple of 32"), std::string::npos) << c.error().message;
  p.cache_type = KvCacheType::f16;
  EXPECT_TRUE(Context::create(m, p).ok());
}

}  // namespace
}  // namespace kandil
