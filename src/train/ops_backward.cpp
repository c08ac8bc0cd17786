#include "train/ops_backward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/ops.h"

namespace kandil::train {

namespace {

// y[i] += a * x[i]
inline void axpy(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// y[i] += a0 x0[i] + a1 x1[i] + a2 x2[i] + a3 x3[i]: one pass over y for four rows.
inline void axpy4(float* __restrict y, const float* __restrict x0, const float* __restrict x1,
                  const float* __restrict x2, const float* __restrict x3, float a0, float a1,
                  float a2, float a3, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
}

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void embedding_backward(const TokenId* tokens, int64_t n, const float* dy, float* dE,
                        int64_t n_embd) {
  for (int64_t t = 0; t < n; ++t) {
    axpy(dE + static_cast<int64_t>(tokens[t]) * n_embd, dy + t * n_embd, 1.0f, n_embd);
  }
}

float rmsnorm_forward(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float rstd = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * rstd * w[i];
  return rstd;
}

void rmsnorm_backward(const float* x, const float* w, float rstd, const float* dy, float* dx,
                      float* dw, int64_t n) {
  // y_i = x_i r w_i with r = (mean(x^2) + eps)^(-1/2), dr/dx_j = -r^3 x_j / n.
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(dy[i]) * w[i] * x[i];
  const float c = static_cast<float>(s / static_cast<double>(n)) * rstd * rstd;
  for (int64_t i = 0; i < n; ++i) dx[i] += rstd * (dy[i] * w[i] - x[i] * c);
  if (dw) {
    for (int64_t i = 0; i < n; ++i) dw[i] += dy[i] * x[i] * rstd;
  }
}

void rope_forward(float* x, int32_t n_heads, const ModelConfig& c, int32_t pos) {
  ops::rope(x, n_heads, c.head_dim, c.n_rot, pos, c.rope_freq_base, c.rope_freq_scale,
            c.rope_layout, c.rope_freq_factors.empty() ? nullptr : c.rope_freq_factors.data());
}

void rope_backward(float* dx, int32_t n_heads, const ModelConfig& c, int32_t pos) {
  // Each pair is rotated by R(theta); the gradient goes back through R(theta)^T = R(-theta), and
  // every angle of ops::rope is linear in pos.
  rope_forward(dx, n_heads, c, -pos);
}

void attention_forward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k,
                       const float* v, float* probs, float* out) {
  const int64_t T = s.n_tokens, D = s.head_dim, qd = s.q_dim(), kvd = s.kv_dim();
  const int32_t group = s.n_head / s.n_head_kv;
  pool.parallel_for(int64_t{s.n_seq} * s.n_head, [&](int64_t b0, int64_t e0) {
    for (int64_t task = b0; task < e0; ++task) {
      const int64_t b = task / s.n_head, h = task % s.n_head, g = h / group;
      for (int64_t i = 0; i < T; ++i) {
        float* p = probs + ((b * s.n_head + h) * T + i) * T;
        std::fill(p, p + T, 0.0f);
        const int64_t j0 = s.window > 0 ? std::max<int64_t>(0, i - s.window + 1) : 0;
        const float* qi = q + (b * T + i) * qd + h * D;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = j0; j <= i; ++j) {
          p[j] = s.scale * dot(qi, k + (b * T + j) * kvd + g * D, D);
          mx = std::max(mx, p[j]);
        }
        double sum = 0.0;
        for (int64_t j = j0; j <= i; ++j) {
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        float* o = out + (b * T + i) * qd + h * D;
        std::fill(o, o + D, 0.0f);
        for (int64_t j = j0; j <= i; ++j) {
          p[j] *= inv;
          axpy(o, v + (b * T + j) * kvd + g * D, p[j], D);
        }
      }
    }
  });
}

void attention_backward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k,
                        const float* v, const float* probs, const float* dout, float* dq, float* dk,
                        float* dv) {
  const int64_t T = s.n_tokens, D = s.head_dim, qd = s.q_dim(), kvd = s.kv_dim();
  const int32_t group = s.n_head / s.n_head_kv;
  // One task per (sequence, KV head): it alone writes that KV head's dK/dV rows and the dQ slices
  // of the query heads sharing it, so the result does not depend on the thread count.
  pool.parallel_for(int64_t{s.n_seq} * s.n_head_kv, [&](int64_t b0, int64_t e0) {
    std::vector<float> dp(static_cast<size_t>(T));
    for (int64_t task = b0; task < e0; ++task) {
      const int64_t b = task / s.n_head_kv, g = task % s.n_head_kv;
      for (int64_t t = 0; t < T; ++t) {
        std::fill_n(dk + (b * T + t) * kvd + g * D, D, 0.0f);
        std::fill_n(dv + (b * T + t) * kvd + g * D, D, 0.0f);
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t i = 0; i < T; ++i) {
          const float* p = probs + ((b * s.n_head + h) * T + i) * T;
          const int64_t j0 = s.window > 0 ? std::max<int64_t>(0, i - s.window + 1) : 0;
          const float* doi = dout + (b * T + i) * qd + h * D;
          const float* qi = q + (b * T + i) * qd + h * D;
          float* dqi = dq + (b * T + i) * qd + h * D;
          std::fill(dqi, dqi + D, 0.0f);
          double pdp = 0.0;
          for (int64_t j = j0; j <= i; ++j) {
            dp[static_cast<size_t>(j)] = dot(doi, v + (b * T + j) * kvd + g * D, D);
            pdp += static_cast<double>(p[j]) * dp[static_cast<size_t>(j)];
            axpy(dv + (b * T + j) * kvd + g * D, doi, p[j], D);
          }
          for (int64_t j = j0; j <= i; ++j) {
            // d score_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij'); score = scale q_i . k_j
            const float ds =
                s.scale * p[j] * (dp[static_cast<size_t>(j)] - static_cast<float>(pdp));
            axpy(dqi, k + (b * T + j) * kvd + g * D, ds, D);
            axpy(dk + (b * T + j) * kvd + g * D, qi, ds, D);
          }
        }
      }
    }
  });
}

void swiglu_forward(const float* g, const float* u, float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void swiglu_backward(const float* g, const float* u, const float* dh, float* dg, float* du,
                     int64_t n) {
  // silu(g) = g sig(g); silu'(g) = sig(g) (1 + g (1 - sig(g)))
  for (int64_t i = 0; i < n; ++i) {
    const float sg = 1.0f / (1.0f + std::exp(-g[i]));
    du[i] = dh[i] * g[i] * sg;
    dg[i] = dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
  }
}

cpu::Weight f32_weight(const float* data, int64_t n_out, int64_t n_in) {
  cpu::Weight w;
  w.type = TensorType::F32;
  w.n_in = n_in;
  w.n_out = n_out;
  w.data = reinterpret_cast<const uint8_t*>(data);
  w.row_bytes = static_cast<size_t>(n_in) * sizeof(float);
  return w;
}

void linear_forward(ThreadPool& pool, const cpu::Weight& w, const float* x, int64_t n, float* y,
                    std::vector<uint8_t>& scratch) {
  cpu::matmul(pool, w, x, n, y, scratch);
}

void linear_backward_input(ThreadPool& pool, const cpu::Weight& w, const float* dy, int64_t n,
                           float* dx) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const bool f32 = w.type == TensorType::F32;
  // Split over tokens; each thread walks the weight rows once (dequantizing a tile of rows at a
  // time for quantized types) and adds dy[t][r] * W[r] into its own tokens' dx rows.
  constexpr int64_t kTile = 16;
  pool.parallel_for(n, [&](int64_t tb, int64_t te) {
    std::vector<float> tile(f32 ? 0 : static_cast<size_t>(kTile * n_in));
    for (int64_t r0 = 0; r0 < n_out; r0 += kTile) {
      const int64_t r1 = std::min(n_out, r0 + kTile);
      if (!f32) {
        for (int64_t r = r0; r < r1; ++r) cpu::dequantize_row(w, r, &tile[(r - r0) * n_in]);
      }
      auto row = [&](int64_t r) {
        return f32 ? reinterpret_cast<const float*>(w.row(r)) : &tile[(r - r0) * n_in];
      };
      for (int64_t t = tb; t < te; ++t) {
        float* dxt = dx + t * n_in;
        const float* g = dy + t * n_out;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
          axpy4(dxt, row(r), row(r + 1), row(r + 2), row(r + 3), g[r], g[r + 1], g[r + 2], g[r + 3],
                n_in);
        }
        for (; r < r1; ++r) axpy(dxt, row(r), g[r], n_in);
      }
    }
  });
}

void linear_backward_weight(ThreadPool& pool, const float* dy, const float* x, int64_t n,
                            int64_t n_out, int64_t n_in, float* dw) {
  constexpr int64_t kTile = 8;
  const int64_t n_tiles = (n_out + kTile - 1) / kTile;
  pool.parallel_for(n_tiles, [&](int64_t b, int64_t e) {
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t r0 = tile * kTile, r1 = std::min(n_out, r0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        float* dwr = dw + r * n_in;
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) {
          axpy4(dwr, x + t * n_in, x + (t + 1) * n_in, x + (t + 2) * n_in, x + (t + 3) * n_in,
                dy[t * n_out + r], dy[(t + 1) * n_out + r], dy[(t + 2) * n_out + r],
                dy[(t + 3) * n_out + r], n_in);
        }
        for (; t < n; ++t) axpy(dwr, x + t * n_in, dy[t * n_out + r], n_in);
      }
    }
  });
}

double cross_entropy(ThreadPool& pool, const float* logits, const int32_t* targets, int64_t n,
                     int64_t n_vocab, float grad_scale, float* dlogits) {
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* z = logits + t * n_vocab;
      float* dz = dlogits + t * n_vocab;
      if (targets[t] < 0) {
        std::fill(dz, dz + n_vocab, 0.0f);
        continue;
      }
      const float mx = *std::max_element(z, z + n_vocab);
      double sum = 0.0;
      for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(z[i] - mx));
      const double lse = std::log(sum) + mx;
      row_loss[static_cast<size_t>(t)] = lse - z[targets[t]];
      for (int64_t i = 0; i < n_vocab; ++i) {
        dz[i] = grad_scale * static_cast<float>(std::exp(static_cast<double>(z[i]) - lse));
      }
      dz[targets[t]] -= grad_scale;
    }
  });
  double total = 0.0;
  for (double l : row_loss) total += l;
  return total;
}

}  // namespace kandil::train
