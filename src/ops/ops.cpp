#include "ops/ops.h"

#include <cmath>

namespace kandil::ops {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int32_t pos, float freq_base,
          float freq_scale, RopeLayout layout) {
  rope(x, n_heads, head_dim, n_rot, pos, freq_base, freq_scale, layout, nullptr);
}

void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int32_t pos, float freq_base,
          float freq_scale, RopeLayout layout, const float* freq_factors) {
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  const int32_t half = n_rot / 2;
  for (int32_t h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    float theta = static_cast<float>(pos) * freq_scale;
    for (int32_t i = 0; i < half; ++i) {
      const float angle = freq_factors ? theta / freq_factors[i] : theta;
      const float c = std::cos(angle), s = std::sin(angle);
      const int32_t a = layout == RopeLayout::adjacent_pairs ? 2 * i : i;
      const int32_t b = layout == RopeLayout::adjacent_pairs ? 2 * i + 1 : i + half;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
      theta *= theta_scale;
    }
  }
}

void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace kandil::ops
