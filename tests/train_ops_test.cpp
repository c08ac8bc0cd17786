// Grad mode of the training ops (src/train/ops_backward.h): each backward against central finite
// differences of L = sum(r * op(x)) for a fixed random r, on fresh random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "kandil/tensor_type.h"
#include "ops/ops.h"
#include "ops/quant.h"
#include "test_util.h"
#include "train/ops_backward.h"

namespace kandil::train {
namespace {

using kandil::testing::random_row;

double weighted_sum(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0.0;
  for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

// Central differences of f at every element of x (restored afterwards).
std::vector<double> numeric_grad(std::vector<float>& x, const std::function<double()>& f,
                                 float eps = 1e-3f) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double up = f();
    x[i] = keep - eps;
    const double down = f();
    x[i] = keep;
    g[i] = (up - down) / (2.0 * static_cast<double>(eps));
  }
  return g;
}

// Every element within abs + rel * |numeric|; also the analytic gradient must not be all zero.
void expect_grad_near(const std::vector<float>& analytic, const std::vector<double>& numeric,
                      const char* what, double abs_tol = 2e-3, double rel_tol = 1e-2) {
  ASSERT_EQ(analytic.size(), numeric.size()) << what;
  double norm = 0.0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    EXPECT_NEAR(analytic[i], numeric[i], abs_tol + rel_tol * std::fabs(numeric[i]))
        << what << " element " << i;
    norm += std::fabs(analytic[i]);
  }
  EXPECT_GT(norm, 1e-3) << what << ": gradient is all zero";
}

TEST(TrainOps, RmsnormGrad) {
  const int64_t n = 37;
  auto x = random_row(n, 1), w = random_row(n, 2), r = random_row(n, 3);
  auto f = [&] {
    std::vector<float> y(n);
    rmsnorm_forward(x.data(), w.data(), y.data(), n, 1e-5f);
    return weighted_sum(y, r);
  };
  std::vector<float> y(n), dx(n, 0.0f), dw(n, 0.0f);
  const float rstd = rmsnorm_forward(x.data(), w.data(), y.data(), n, 1e-5f);
  rmsnorm_backward(x.data(), w.data(), rstd, r.data(), dx.data(), dw.data(), n);
  // Matches the inference kernel.
  std::vector<float> ref(n);
  ops::rmsnorm(x.data(), w.data(), ref.data(), n, 1e-5f);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], ref[i], 1e-5f);
  expect_grad_near(dx, numeric_grad(x, f), "dx");
  expect_grad_near(dw, numeric_grad(w, f), "dw");
}

void rope_grad_case(RopeLayout layout, bool factors) {
  ModelConfig c;
  c.head_dim = 12;
  c.n_rot = 8;  // partial rotary: the last 4 dims pass through
  c.rope_freq_base = 500.0f;
  c.rope_freq_scale = 0.75f;
  c.rope_layout = layout;
  if (factors) c.rope_freq_factors = {1.0f, 2.5f, 4.0f, 8.0f};
  const int32_t heads = 3, pos = 7;
  const int64_t n = heads * c.head_dim;
  auto x = random_row(n, 11), r = random_row(n, 12);
  auto f = [&] {
    std::vector<float> y = x;
    rope_forward(y.data(), heads, c, pos);
    return weighted_sum(y, r);
  };
  std::vector<float> dx = r;
  rope_backward(dx.data(), heads, c, pos);
  expect_grad_near(dx, numeric_grad(x, f), "rope dx");
}

TEST(TrainOps, RopeGradBothLayoutsAndFactors) {
  rope_grad_case(RopeLayout::adjacent_pairs, false);
  rope_grad_case(RopeLayout::split_half, false);
  rope_grad_case(RopeLayout::adjacent_pairs, true);
  rope_grad_case(RopeLayout::split_half, true);
}

void attention_grad_case(int32_t window) {
  ThreadPool pool(3);
  AttentionShape s;
  s.n_seq = 2;
  s.n_tokens = 5;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 6;
  s.window = window;
  s.scale = 1.0f / std::sqrt(6.0f);
  const int64_t N = int64_t{s.n_seq} * s.n_tokens;
  auto q = random_row(N * s.q_dim(), 21), k = random_row(N * s.kv_dim(), 22),
       v = random_row(N * s.kv_dim(), 23), r = random_row(N * s.q_dim(), 24);
  std::vector<float> probs(s.probs_size()), out(static_cast<size_t>(N * s.q_dim()));
  auto f = [&] {
    attention_forward(pool, s, q.data(), k.data(), v.data(), probs.data(), out.data());
    return weighted_sum(out, r);
  };
  f();
  // Causality: the first token of each sequence attends only to itself.
  for (int32_t b = 0; b < s.n_seq; ++b) {
    for (int64_t d = 0; d < s.head_dim; ++d) {
      EXPECT_NEAR(out[(b * s.n_tokens) * s.q_dim() + d], v[(b * s.n_tokens) * s.kv_dim() + d],
                  1e-5f);
    }
  }
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  attention_backward(pool, s, q.data(), k.data(), v.data(), probs.data(), r.data(), dq.data(),
                     dk.data(), dv.data());
  expect_grad_near(dq, numeric_grad(q, f), "dq");
  expect_grad_near(dk, numeric_grad(k, f), "dk");
  expect_grad_near(dv, numeric_grad(v, f), "dv");
}

TEST(TrainOps, AttentionGradCausalGqa) { attention_grad_case(0); }
TEST(TrainOps, AttentionGradSlidingWindow) { attention_grad_case(3); }

TEST(TrainOps, SwigluGrad) {
  const int64_t n = 41;
  auto g = random_row(n, 31, 2.0f), u = random_row(n, 32), r = random_row(n, 33);
  auto f = [&] {
    std::vector<float> h(n);
    swiglu_forward(g.data(), u.data(), h.data(), n);
    return weighted_sum(h, r);
  };
  std::vector<float> h(n), ref = g, dg(n), du(n);
  swiglu_forward(g.data(), u.data(), h.data(), n);
  ops::swiglu(ref.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(h[i], ref[i], 1e-5f);
  swiglu_backward(g.data(), u.data(), r.data(), dg.data(), du.data(), n);
  expect_grad_near(dg, numeric_grad(g, f), "dgate");
  expect_grad_near(du, numeric_grad(u, f), "dup");
}

TEST(TrainOps, LinearGradF32) {
  ThreadPool pool(2);
  const int64_t n = 5, n_in = 19, n_out = 13;
  auto x = random_row(n * n_in, 41), w = random_row(n_out * n_in, 42),
       r = random_row(n * n_out, 43);
  std::vector<uint8_t> scratch;
  auto f = [&] {
    std::vector<float> y(static_cast<size_t>(n * n_out));
    linear_forward(pool, f32_weight(w.data(), n_out, n_in), x.data(), n, y.data(), scratch);
    return weighted_sum(y, r);
  };
  std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  linear_backward_input(pool, f32_weight(w.data(), n_out, n_in), r.data(), n, dx.data());
  linear_backward_weight(pool, r.data(), x.data(), n, n_out, n_in, dw.data());
  expect_grad_near(dx, numeric_grad(x, f), "dx");
  expect_grad_near(dw, numeric_grad(w, f), "dW");
}

// The GEMM-based backward products against plain double loops, on shapes that exercise the
// register tiles, their edges and several threads; both accumulate into what is already there.
TEST(TrainOps, LinearBackwardGemmMatchesScalarReference) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    const int64_t n = 70, n_in = 301, n_out = 133;
    auto w = random_row(n_out * n_in, 71), x = random_row(n * n_in, 72),
         dy = random_row(n * n_out, 73);
    auto dx = random_row(n * n_in, 74), dw = random_row(n_out * n_in, 75);
    std::vector<double> dx_ref(dx.begin(), dx.end()), dw_ref(dw.begin(), dw.end());
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < n_out; ++r) {
        const double g = dy[t * n_out + r];
        for (int64_t c = 0; c < n_in; ++c) {
          dx_ref[t * n_in + c] += g * w[r * n_in + c];
          dw_ref[r * n_in + c] += g * x[t * n_in + c];
        }
      }
    }
    linear_backward_input(pool, f32_weight(w.data(), n_out, n_in), dy.data(), n, dx.data());
    linear_backward_weight(pool, dy.data(), x.data(), n, n_out, n_in, dw.data());
    for (size_t i = 0; i < dx.size(); ++i) ASSERT_NEAR(dx[i], dx_ref[i], 1e-4) << "dx " << i;
    for (size_t i = 0; i < dw.size(); ++i) ASSERT_NEAR(dw[i], dw_ref[i], 1e-4) << "dW " << i;
  }
}

// dx through a quantized weight equals dx through its dequantized F32 copy.
TEST(TrainOps, LinearBackwardInputQuantizedEqualsDequantized) {
  ThreadPool pool(3);
  for (TensorType type :
       {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K, TensorType::F16}) {
    const ops::TypeTraits* t = ops::type_traits(type);
    ASSERT_NE(t, nullptr);
    const int64_t n = 7, n_in = 256, n_out = 21;
    const size_t row_bytes = tensor_row_bytes(type, n_in);
    std::vector<uint8_t> q(row_bytes * static_cast<size_t>(n_out));
    std::vector<float> deq(static_cast<size_t>(n_out * n_in));
    for (int64_t r = 0; r < n_out; ++r) {
      auto row = random_row(n_in, 50 + static_cast<uint32_t>(r));
      t->from_float(row.data(), q.data() + r * row_bytes, n_in);
      t->to_float(q.data() + r * row_bytes, &deq[r * n_in], n_in);
    }
    cpu::Weight wq{type, n_in, n_out, q.data(), row_bytes};
    auto dy = random_row(n * n_out, 60);
    std::vector<float> dx_q(static_cast<size_t>(n * n_in), 0.5f), dx_f(dx_q);
    linear_backward_input(pool, wq, dy.data(), n, dx_q.data());
    linear_backward_input(pool, f32_weight(deq.data(), n_out, n_in), dy.data(), n, dx_f.data());
    for (size_t i = 0; i < dx_q.size(); ++i) {
      ASSERT_NEAR(dx_q[i], dx_f[i], 1e-4f) << tensor_type_name(type) << " at " << i;
    }
  }
}

TEST(TrainOps, CrossEntropyGradWithIgnoreIndex) {
  ThreadPool pool(2);
  const int64_t n = 6, V = 11;
  auto z = random_row(n * V, 71, 2.0f);
  const std::vector<int32_t> targets = {3, -100, 0, 10, -100, 7};
  const float scale = 1.0f / 4.0f;  // mean over the 4 counted targets
  std::vector<float> dz(z.size(), 9.0f);
  auto f = [&] {
    std::vector<float> tmp(z.size());
    return cross_entropy(pool, z.data(), targets.data(), n, V, 1.0f, tmp.data()) / 4.0;
  };
  const double loss = cross_entropy(pool, z.data(), targets.data(), n, V, scale, dz.data()) / 4.0;
  // Hand-computed loss of row 0.
  double s = 0.0;
  for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(z[i]));
  const double row0 = std::log(s) - z[3];
  EXPECT_GT(loss, 0.0);
  EXPECT_NEAR(row0, cross_entropy(pool, z.data(), targets.data(), 1, V, 1.0f, dz.data()), 1e-5);
  cross_entropy(pool, z.data(), targets.data(), n, V, scale, dz.data());
  for (int64_t i = 0; i < V; ++i) {
    EXPECT_EQ(dz[1 * V + i], 0.0f);
    EXPECT_EQ(dz[4 * V + i], 0.0f);
  }
  expect_grad_near(dz, numeric_grad(z, f), "dlogits", 1e-3, 1e-2);
}

TEST(TrainOps, EmbeddingBackwardScatterAdds) {
  const int64_t E = 3;
  const std::vector<TokenId> tok = {2, 0, 2};
  const std::vector<float> dy = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> dE(4 * E, 1.0f);
  embedding_backward(tok.data(), 3, dy.data(), dE.data(), E);
  const std::vector<float> want = {5, 6, 7, 1, 1, 1, 9, 11, 13, 1, 1, 1};
  EXPECT_EQ(dE, want);
}

}  // namespace
}  // namespace kandil::train
