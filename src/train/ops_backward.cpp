#include "train/ops_backward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/cpu_features.h"
#include "ops/ops.h"

namespace kandil::train {

namespace {

// The attention loops below are compiled once per ISA (AVX-512, AVX2, baseline) from one body:
// the body and its helpers are always_inline, so each target-attributed wrapper gets its own copy
// compiled for that target, and attention_kernels() picks one at run time from the CPU features
// (the rest of the library stays baseline x86-64, as the engine's kernels do through their own
// dispatch). Not target_clones: its ifunc resolvers run before ThreadSanitizer's runtime is up.
#define KANDIL_ALWAYS_INLINE inline __attribute__((always_inline))

// y[i] += a * x[i]
KANDIL_ALWAYS_INLINE void axpy(float* __restrict y, const float* __restrict x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Sixteen independent partial sums: a fixed order the compiler can keep in one vector register
// (a single running sum is a dependency chain it may not reorder without -ffast-math).
KANDIL_ALWAYS_INLINE float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int l = 0; l < kLanes; ++l) s += acc[l];
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

namespace {

// Query head h of sequence b: probabilities and output rows.
KANDIL_ALWAYS_INLINE void attention_forward_head(const AttentionShape& s, const float* q,
                                                 const float* k, const float* v, float* probs,
                                                 float* out, int64_t b, int64_t h) {
  const int64_t T = s.n_tokens, D = s.head_dim, qd = s.q_dim(), kvd = s.kv_dim();
  const int64_t g = h / (s.n_head / s.n_head_kv);
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

// KV head g of sequence b and the query heads sharing it: overwrites their dK/dV rows and dQ
// slices. dp is scratch of T floats.
KANDIL_ALWAYS_INLINE void attention_backward_group(const AttentionShape& s, const float* q,
                                                   const float* k, const float* v,
                                                   const float* probs, const float* dout, float* dq,
                                                   float* dk, float* dv, int64_t b, int64_t g,
                                                   float* dp) {
  const int64_t T = s.n_tokens, D = s.head_dim, qd = s.q_dim(), kvd = s.kv_dim();
  const int64_t group = s.n_head / s.n_head_kv;
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
        dp[j] = dot(doi, v + (b * T + j) * kvd + g * D, D);
        pdp += static_cast<double>(p[j]) * dp[j];
        axpy(dv + (b * T + j) * kvd + g * D, doi, p[j], D);
      }
      for (int64_t j = j0; j <= i; ++j) {
        // d score_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij'); score = scale q_i . k_j
        const float ds = s.scale * p[j] * (dp[j] - static_cast<float>(pdp));
        axpy(dqi, k + (b * T + j) * kvd + g * D, ds, D);
        axpy(dk + (b * T + j) * kvd + g * D, qi, ds, D);
      }
    }
  }
}

using ForwardHeadFn = void (*)(const AttentionShape&, const float*, const float*, const float*,
                               float*, float*, int64_t, int64_t);
using BackwardGroupFn = void (*)(const AttentionShape&, const float*, const float*, const float*,
                                 const float*, const float*, float*, float*, float*, int64_t,
                                 int64_t, float*);

// One wrapper pair per target; ATTRS is empty for the baseline.
#define KANDIL_ATTENTION_KERNELS(SUFFIX, ATTRS)                                                    \
  ATTRS void attention_forward_head_##SUFFIX(const AttentionShape& s, const float* q,              \
                                             const float* k, const float* v, float* probs,         \
                                             float* out, int64_t b, int64_t h) {                   \
    attention_forward_head(s, q, k, v, probs, out, b, h);                                          \
  }                                                                                                \
  ATTRS void attention_backward_group_##SUFFIX(                                                    \
      const AttentionShape& s, const float* q, const float* k, const float* v, const float* probs, \
      const float* dout, float* dq, float* dk, float* dv, int64_t b, int64_t g, float* dp) {       \
    attention_backward_group(s, q, k, v, probs, dout, dq, dk, dv, b, g, dp);                       \
  }

KANDIL_ATTENTION_KERNELS(base, )
#if defined(__x86_64__) && defined(__GNUC__)
KANDIL_ATTENTION_KERNELS(avx2, __attribute__((target("avx2,fma"))))
KANDIL_ATTENTION_KERNELS(avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))))
#endif

struct AttentionKernels {
  ForwardHeadFn forward = attention_forward_head_base;
  BackwardGroupFn backward = attention_backward_group_base;
};

const AttentionKernels& attention_kernels() {
  static const AttentionKernels k = [] {
    AttentionKernels r;
#if defined(__x86_64__) && defined(__GNUC__)
    const CpuFeatures& f = cpu_features();
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma) {
      r = {attention_forward_head_avx512, attention_backward_group_avx512};
    } else if (f.avx2 && f.fma) {
      r = {attention_forward_head_avx2, attention_backward_group_avx2};
    }
#endif
    return r;
  }();
  return k;
}

}  // namespace

void attention_forward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k,
                       const float* v, float* probs, float* out) {
  const ForwardHeadFn kernel = attention_kernels().forward;
  pool.parallel_for(int64_t{s.n_seq} * s.n_head, [&](int64_t b0, int64_t e0) {
    for (int64_t task = b0; task < e0; ++task) {
      kernel(s, q, k, v, probs, out, task / s.n_head, task % s.n_head);
    }
  });
}

void attention_backward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k,
                        const float* v, const float* probs, const float* dout, float* dq, float* dk,
                        float* dv) {
  // One task per (sequence, KV head): it alone writes that KV head's dK/dV rows and the dQ slices
  // of the query heads sharing it, so the result does not depend on the thread count.
  const BackwardGroupFn kernel = attention_kernels().backward;
  pool.parallel_for(int64_t{s.n_seq} * s.n_head_kv, [&](int64_t b0, int64_t e0) {
    std::vector<float> dp(static_cast<size_t>(s.n_tokens));
    for (int64_t task = b0; task < e0; ++task) {
      kernel(s, q, k, v, probs, dout, dq, dk, dv, task / s.n_head_kv, task % s.n_head_kv,
             dp.data());
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

namespace {

// Reused buffers of the backward GEMMs (the trainer calls them from one thread; thread_local keeps
// concurrent trainers apart). Grown, never shrunk: a step reuses the previous step's memory.
struct GemmScratch {
  std::vector<float> a, b, out;
  std::vector<uint8_t> conv;
};
thread_local GemmScratch g_scratch;

float* sized(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

// dst [cols][rows] = src [rows][cols]^T, where row r of src is row(r) (any weight type, made F32
// by `load`). Blocks of 32 x 32 keep both sides in L1.
template <class LoadRows>
void transpose_rows(ThreadPool& pool, int64_t rows, int64_t cols, float* dst, bool convert,
                    LoadRows&& load) {
  constexpr int64_t kB = 32;
  pool.parallel_for((rows + kB - 1) / kB, [&](int64_t b0, int64_t b1) {
    std::vector<float> tile(convert ? static_cast<size_t>(kB * cols) : 0);  // F32 views: unused
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kB, r1 = std::min(rows, r0 + kB);
      const float* src = load(r0, r1, tile.data());  // rows [r0, r1), stride cols
      for (int64_t c0 = 0; c0 < cols; c0 += kB) {
        const int64_t c1 = std::min(cols, c0 + kB);
        for (int64_t c = c0; c < c1; ++c) {
          float* d = dst + c * rows;
          for (int64_t r = r0; r < r1; ++r) d[r] = src[(r - r0) * cols + c];
        }
      }
    }
  });
}

void transpose_f32(ThreadPool& pool, const float* src, int64_t rows, int64_t cols, float* dst) {
  transpose_rows(pool, rows, cols, dst, false,
                 [&](int64_t r0, int64_t, float*) { return src + r0 * cols; });
}

// y [n][m] += t [n][m]
void add_into(ThreadPool& pool, float* y, const float* t, int64_t n, int64_t m) {
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b * m; i < e * m; ++i) y[i] += t[i];
  });
}

}  // namespace

// Both backward products run on the engine's register-tiled GEMM (cpu::matmul, y = x W^T over
// rows that are contiguous along the reduced dimension) after transposing the operands whose
// reduced dimension is strided. A transpose moves O(rows x cols) floats, the product does
// O(n x rows x cols) FMAs: for a batch of n = B x T >= 64 tokens the transposes are a few per
// cent of the work. Every output is one GEMM accumulator, independent of the thread count.
void linear_backward_input(ThreadPool& pool, const cpu::Weight& w, const float* dy, int64_t n,
                           float* dx) {
  // dx [n][n_in] += dy [n][n_out] W = dy (W^T)^T: the GEMM's weight is W^T [n_in][n_out].
  const int64_t n_in = w.n_in, n_out = w.n_out;
  GemmScratch& s = g_scratch;
  float* wt = sized(s.a, n_in * n_out);
  if (w.type == TensorType::F32 && w.row_bytes == static_cast<size_t>(n_in) * sizeof(float)) {
    transpose_rows(pool, n_out, n_in, wt, false, [&](int64_t r0, int64_t, float*) {
      return reinterpret_cast<const float*>(w.row(r0));
    });
  } else {
    transpose_rows(pool, n_out, n_in, wt, true, [&](int64_t r0, int64_t r1, float* tile) {
      for (int64_t r = r0; r < r1; ++r) cpu::dequantize_row(w, r, tile + (r - r0) * n_in);
      return static_cast<const float*>(tile);
    });
  }
  float* out = sized(s.out, n * n_in);
  cpu::matmul(pool, f32_weight(wt, n_in, n_out), dy, n, out, s.conv);
  add_into(pool, dx, out, n, n_in);
}

void linear_backward_weight(ThreadPool& pool, const float* dy, const float* x, int64_t n,
                            int64_t n_out, int64_t n_in, float* dw) {
  // dW [n_out][n_in] += dy^T x: the GEMM's weight is x^T [n_in][n] and its activations dy^T
  // [n_out][n], both contiguous along the tokens being summed over.
  GemmScratch& s = g_scratch;
  float* xt = sized(s.a, n_in * n);
  float* dyt = sized(s.b, n_out * n);
  transpose_f32(pool, x, n, n_in, xt);
  transpose_f32(pool, dy, n, n_out, dyt);
  float* out = sized(s.out, n_out * n_in);
  cpu::matmul(pool, f32_weight(xt, n_in, n), dyt, n_out, out, s.conv);
  add_into(pool, dw, out, n_out, n_in);
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
