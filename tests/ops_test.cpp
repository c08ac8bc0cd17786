// Reference row ops: checked against their mathematical definitions and invariants.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ops/ops.h"

namespace kandil {
namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Ops, RmsNormMatchesDefinition) {
  for (size_t n : {1u, 7u, 63u, 257u}) {
    auto x = random_vector(n, 1);
    auto w = random_vector(n, 2, 1.0f);
    std::vector<float> y(n);
    ops::rmsnorm(x.data(), w.data(), y.data(), static_cast<int64_t>(n), 1e-5f);
    double ss = 0;
    for (float v : x) ss += double{v} * v;
    const double s = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    for (size_t i = 0; i < n; ++i)
      EXPECT_NEAR(y[i], x[i] * s * w[i], 1e-5 * (1 + std::abs(x[i] * s * w[i])));
  }
}

TEST(Ops, SwigluMatchesDefinition) {
  auto g = random_vector(33, 4), u = random_vector(33, 5);
  auto out = g;
  ops::swiglu(out.data(), u.data(), 33);
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-6);
}

// Applies RoPE to one head and returns it.
std::vector<float> roped(std::vector<float> v, int pos, RopeLayout layout, float scale = 1.0f,
                         int n_rot = 0) {
  const int d = static_cast<int>(v.size());
  ops::rope(v.data(), 1, d, n_rot ? n_rot : d, pos, 10000.0f, scale, layout);
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double{a[i]} * b[i];
  return s;
}

TEST(Ops, RopeIsARotationThatEncodesRelativePosition) {
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::split_half}) {
    auto q = random_vector(16, 6), k = random_vector(16, 7);
    // Position 0 is the identity; norms are preserved.
    EXPECT_EQ(roped(q, 0, layout), q);
    EXPECT_NEAR(dot(roped(q, 37, layout), roped(q, 37, layout)), dot(q, q), 1e-4);
    // <rope(q, m), rope(k, n)> depends only on m - n.
    const double a = dot(roped(q, 10, layout), roped(k, 3, layout));
    const double b = dot(roped(q, 107, layout), roped(k, 100, layout));
    EXPECT_NEAR(a, b, 1e-3);
  }
}

TEST(Ops, RopeLayoutsDifferOnlyByDimensionOrder) {
  // split-half rotates (x[i], x[i + d/2]); adjacent-pair rotates (x[2i], x[2i+1]).
  const int d = 12;
  auto v = random_vector(d, 8);
  std::vector<float> interleaved(d);
  for (int i = 0; i < d / 2; ++i) {
    interleaved[2 * i] = v[i];
    interleaved[2 * i + 1] = v[i + d / 2];
  }
  auto a = roped(v, 5, RopeLayout::split_half);
  auto b = roped(interleaved, 5, RopeLayout::adjacent_pairs);
  for (int i = 0; i < d / 2; ++i) {
    EXPECT_FLOAT_EQ(a[i], b[2 * i]);
    EXPECT_FLOAT_EQ(a[i + d / 2], b[2 * i + 1]);
  }
}

TEST(Ops, RopeAngleFollowsFrequencyBaseAndLinearScaling) {
  std::vector<float> v(8, 0.0f);
  v[2] = 1.0f;  // pair i = 1: angle = pos * base^(-2/8)
  auto r = roped(v, 3, RopeLayout::adjacent_pairs);
  const double theta = 3 * std::pow(10000.0, -2.0 / 8);
  EXPECT_NEAR(r[2], std::cos(theta), 1e-6);
  EXPECT_NEAR(r[3], std::sin(theta), 1e-6);
  // Linear scaling by 1/4: position 12 behaves like position 3.
  auto s = roped(v, 12, RopeLayout::adjacent_pairs, 0.25f);
  EXPECT_NEAR(s[2], r[2], 1e-6);
  EXPECT_NEAR(s[3], r[3], 1e-6);
  // Partial rotary: dims past n_rot are untouched.
  auto p = random_vector(8, 9);
  auto pr = roped(p, 9, RopeLayout::adjacent_pairs, 1.0f, 4);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(pr[i], p[i]);
  EXPECT_NE(pr[0], p[0]);
}

TEST(Ops, RopeFrequencyFactorsDivideEachPairsAngle) {
  // LLaMA 3 scaling: theta_i = pos * base^(-2i/d) / factor_i, for both layouts.
  const int d = 8;
  const float factors[d / 2] = {1.0f, 2.0f, 4.5f, 8.0f};
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::split_half}) {
    for (int i = 0; i < d / 2; ++i) {
      std::vector<float> v(d, 0.0f);
      const int a = layout == RopeLayout::adjacent_pairs ? 2 * i : i;
      const int b = layout == RopeLayout::adjacent_pairs ? 2 * i + 1 : i + d / 2;
      v[static_cast<size_t>(a)] = 1.0f;
      ops::rope(v.data(), 1, d, d, 7, 10000.0f, 1.0f, layout, factors);
      const double theta = 7 * std::pow(10000.0, -2.0 * i / d) / factors[i];
      EXPECT_NEAR(v[static_cast<size_t>(a)], std::cos(theta), 1e-5) << i;
      EXPECT_NEAR(v[static_cast<size_t>(b)], std::sin(theta), 1e-5) << i;
    }
    // Null factors: the plain rotation.
    auto q = random_vector(d, 3);
    auto r = q;
    ops::rope(r.data(), 1, d, d, 5, 10000.0f, 1.0f, layout, nullptr);
    EXPECT_EQ(r, roped(q, 5, layout));
  }
}

}  // namespace
}  // namespace kandil
