// Reference kernels of the K-quants (Q2_K ... Q6_K) and of Q8_K, their dot-product partner.
// Layouts: quant_blocks.h.
//
// Every kernel reads a quant through a small per-element accessor (`q4k_quant(b, e)`, ...) that
// spells out the bit layout once, so dequantization, dots and the hand-written tests agree on it.
//
// Quantizers follow ggml's reference scheme: each sub-block gets a least-squares (scale, min) or
// scale found by a small search over candidate scales; the sub-block scales are then quantized
// against the block's largest one (6 bits for Q3_K/Q4_K/Q5_K, 4 bits for Q2_K, 8 bits for Q6_K) and
// the values re-quantized with the rounded scales that the dequantizer will actually use.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "ops/quant_blocks.h"

namespace kandil::ops {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // sub-blocks with a smaller |x| are all-zero

int64_t num_super_blocks(int64_t n) {
  assert(n % kQKK == 0);
  return n / kQKK;
}

// ---- per-element accessors ----------------------------------------------------------------------

// 2-bit field of element e (0..255) in a Q2_K / Q3_K qs array.
inline int q2_bits(const uint8_t* qs, int e) {
  return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}
// 4-bit field of element e in a Q4_K / Q5_K qs array.
inline int q4_bits(const uint8_t* qs, int e) {
  const uint8_t byte = qs[32 * (e / 64) + e % 32];
  return (e % 64) < 32 ? (byte & 0x0F) : (byte >> 4);
}

inline int q2k_quant(const BlockQ2_K& b, int e) { return q2_bits(b.qs, e); }
// Signed quant in [-4, 3]: the high bit set means "no offset".
inline int q3k_quant(const BlockQ3_K& b, int e) {
  const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
  return q2_bits(b.qs, e) - (high ? 0 : 4);
}
inline int q4k_quant(const BlockQ4_K& b, int e) { return q4_bits(b.qs, e); }
inline int q5k_quant(const BlockQ5_K& b, int e) {
  return q4_bits(b.qs, e) | (((b.qh[e % 32] >> (e / 32)) & 1) << 4);
}
// Signed quant in [-32, 31].
inline int q6k_quant(const BlockQ6_K& b, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const uint8_t lo_byte = b.ql[64 * h + 32 * (g % 2) + l];
  const int lo = g < 2 ? (lo_byte & 0x0F) : (lo_byte >> 4);
  const int hi = (b.qh[32 * h + l] >> (2 * g)) & 3;
  return (lo | (hi << 4)) - 32;
}

// ---- scale searches -----------------------------------------------------------------------------

// Fits x ~ scale * L - min_out with integer L in [0, nmax] (weights w), minimizing the weighted
// squared error (or absolute error when use_mad). Starts from the plain min/max grid, then tries
// nstep + 1 grids with nmax + rmin + rdelta * k steps over [min, max], refitting (scale, min) by
// weighted least squares on each grid's L and keeping the best. The min is never positive (x >= 0
// fits with min = 0).
// Returns the scale; *min_out receives -min (>= 0).
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                    float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *min_out = -min;
    return 0.0f;
  }
  auto error_of = [&](float scale, float offset, const uint8_t* q) {
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      float diff = scale * q[i] + offset - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    return err;
  };
  auto quantize_grid = [&](float iscale, uint8_t* q) {
    for (int i = 0; i < n; ++i) {
      q[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
    }
  };

  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  quantize_grid(iscale, L);
  float best_error = error_of(scale, min, L);

  // Note: an improved fit also moves `min`, which shifts the later grids (as in ggml).
  uint8_t Laux[32];
  assert(n <= 32);
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * step + nmax) / (max - min);
    quantize_grid(iscale, Laux);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Laux[i];
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    const float err = error_of(this_scale, this_min, Laux);
    if (err < best_error) {
      std::copy(Laux, Laux + n, L);
      best_error = err;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

// Fits x ~ scale * (L - nmax) with L - nmax in [-nmax, nmax - 1], weighting each element by x^2.
// Tries 19 grids around the one that maps the value of largest magnitude to -nmax and keeps the
// best least-squares fit. Returns the (signed) scale; L receives the offset quants in [0, 2 nmax).
float fit_symmetric_scale(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  auto quant = [&](float iscale, int i) {
    return std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
  };
  // Weighted sums of x*l and l*l for the grid iscale (weights x^2).
  auto sums = [&](float iscale, float& sumlx, float& suml2) {
    sumlx = 0;
    suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = quant(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
  };
  auto take = [&](float iscale) {
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + quant(iscale, i));
  };

  float iscale = -nmax / max;
  float sumlx, suml2;
  sums(iscale, sumlx, suml2);
  take(iscale);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(nmax + 0.1f * k) / max;
    sums(iscale, sumlx, suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      take(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's sub-block fit: L - nmax in [-nmax, nmax - 1], weights x^2, starting from the grid that
// maps the value of largest magnitude to -nmax, then a few passes that move single quants to their
// best value given the rest while that improves the fit. Returns the scale; L as above.
float fit_q3_scale(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx <= 0) continue;
      float sl2 = suml2 - w * L[i] * L[i];
      const int l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (l == L[i]) continue;
      slx += w * x[i] * l;
      sl2 += w * l * l;
      // Better when slx^2 / sl2 (the explained energy) grows.
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<int8_t>(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sumlx / suml2;
}

// Packs 2-bit quants L[0..255] (each < 4) into a Q2_K / Q3_K qs array.
void pack_q2_bits(const uint8_t* L, uint8_t* qs) {
  std::memset(qs, 0, kQKK / 4);
  for (int e = 0; e < kQKK; ++e) {
    qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(L[e] << (2 * ((e % 128) / 32)));
  }
}
// Packs 4-bit quants L[0..255] (each < 16) into a Q4_K / Q5_K qs array.
void pack_q4_bits(const uint8_t* L, uint8_t* qs) {
  std::memset(qs, 0, kQKK / 2);
  for (int e = 0; e < kQKK; ++e) {
    qs[32 * (e / 64) + e % 32] |= static_cast<uint8_t>((e % 64) < 32 ? L[e] : L[e] << 4);
  }
}

// Packs the 6-bit scales and mins of Q4_K / Q5_K's 8 sub-blocks (see BlockQ4_K).
void pack_scale_min_k4(const uint8_t* sc, const uint8_t* m, uint8_t* s) {
  std::memset(s, 0, kKScaleBytes);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] |= sc[j];
      s[j + 4] |= m[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((sc[j] & 0x0F) | ((m[j] & 0x0F) << 4));
      s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
}

// Shared quantizer of Q4_K (nmax 15) and Q5_K (nmax 31): per-sub-block affine fits, 6-bit scales
// and mins relative to the block's largest, then requantization with the rounded values.
// Writes d, dmin, scales and the quants L[0..255].
void quantize_k4_super_block(const float* x, int nmax, float rmin, int nstep, uint16_t& d_out,
                             uint16_t& dmin_out, uint8_t* scales_out, uint8_t* L) {
  constexpr int kSub = 32;
  float scales[8], mins[8], w[kSub];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + kSub * j;
    float sum_x2 = 0;
    for (int l = 0; l < kSub; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / kSub);
    for (int l = 0; l < kSub; ++l) w[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(kSub, nmax, xs, w, L + kSub * j, &mins[j], rmin, 0.1f, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::clamp(nearest_int(inv_scale * scales[j]), 0, 63));
    lm[j] = static_cast<uint8_t>(std::clamp(nearest_int(inv_min * mins[j]), 0, 63));
  }
  pack_scale_min_k4(ls, lm, scales_out);
  d_out = f32_to_fp16(max_scale / 63.f);
  dmin_out = f32_to_fp16(max_min / 63.f);

  const float d_all = fp16_to_f32(d_out);
  const float dmin_all = fp16_to_f32(dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float d = d_all * ls[j];
    if (d == 0.0f) continue;  // keep the fit's quants: they multiply a zero scale anyway
    const float dm = dmin_all * lm[j];
    for (int l = 0; l < kSub; ++l) {
      L[kSub * j + l] =
          static_cast<uint8_t>(std::clamp(nearest_int((x[kSub * j + l] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace

// ---- Q2_K ---------------------------------------------------------------------------------------

void dequantize_q2_k(const void* src, float* dst, int64_t n) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(src);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float dmin = fp16_to_f32(x[b].dmin);
    for (int e = 0; e < kQKK; ++e) {
      const uint8_t s = x[b].scales[e / 16];
      dst[b * kQKK + e] = d * (s & 0x0F) * q2k_quant(x[b], e) - dmin * (s >> 4);
    }
  }
}

void quantize_q2_k(const float* src, void* dst, int64_t n) {
  BlockQ2_K* y = static_cast<BlockQ2_K*>(dst);
  constexpr int kSub = 16;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float* x = src + b * kQKK;
    uint8_t L[kQKK];
    float scales[16], mins[16], w[kSub];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < kSub; ++l) w[l] = std::fabs(x[kSub * j + l]);
      scales[j] =
          fit_scale_min(kSub, 3, x + kSub * j, w, L + kSub * j, &mins[j], -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // 4-bit scales (low nibble) and mins (high nibble) relative to the largest of each.
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    y[b].d = f32_to_fp16(0.0f);
    y[b].dmin = f32_to_fp16(0.0f);
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        y[b].scales[j] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * scales[j]), 0, 15));
      }
      y[b].d = f32_to_fp16(max_scale / 15.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) {
        y[b].scales[j] |=
            static_cast<uint8_t>(std::clamp(nearest_int(iscale * mins[j]), 0, 15) << 4);
      }
      y[b].dmin = f32_to_fp16(max_min / 15.f);
    }
    const float d_all = fp16_to_f32(y[b].d);
    const float dmin_all = fp16_to_f32(y[b].dmin);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * (y[b].scales[j] & 0x0F);
      if (d == 0.0f) continue;
      const float dm = dmin_all * (y[b].scales[j] >> 4);
      for (int l = 0; l < kSub; ++l) {
        L[kSub * j + l] =
            static_cast<uint8_t>(std::clamp(nearest_int((x[kSub * j + l] + dm) / d), 0, 3));
      }
    }
    pack_q2_bits(L, y[b].qs);
  }
}

float vec_dot_q2_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    int32_t sum_q = 0;  // sum over sub-blocks of scale * sum(q2 * q8)
    for (int j = 0; j < 16; ++j) {
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += q2k_quant(x[b], 16 * j + l) * y[b].qs[16 * j + l];
      sum_q += (x[b].scales[j] & 0x0F) * s;
    }
    int32_t sum_m = 0;  // sum over sub-blocks of min * sum(q8)
    for (int j = 0; j < 16; ++j) sum_m += (x[b].scales[j] >> 4) * y[b].bsums[j];
    const float dall = y[b].d * fp16_to_f32(x[b].d);
    const float dmin = y[b].d * fp16_to_f32(x[b].dmin);
    sum += dall * static_cast<float>(sum_q) - dmin * static_cast<float>(sum_m);
  }
  return sum;
}

// ---- Q3_K ---------------------------------------------------------------------------------------

void dequantize_q3_k(const void* src, float* dst, int64_t n) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(src);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int e = 0; e < kQKK; ++e) {
      const float dl = d * static_cast<float>(unpack_scale_q3_k(x[b].scales, e / 16));
      dst[b * kQKK + e] = dl * static_cast<float>(q3k_quant(x[b], e));
    }
  }
}

void quantize_q3_k(const float* src, void* dst, int64_t n) {
  BlockQ3_K* y = static_cast<BlockQ3_K*>(dst);
  constexpr int kSub = 16;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float* x = src + b * kQKK;
    int8_t L[kQKK];
    float scales[16];
    float amax = 0.0f, max_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_q3_scale(kSub, 4, x + kSub * j, L + kSub * j);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    // 6-bit signed scales (stored + 32) relative to the one of largest magnitude, which maps to
    // -32.
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    y[b].d = f32_to_fp16(0.0f);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        const int l = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
        y[b].scales[j % 8] |= static_cast<uint8_t>((l & 0x0F) << (4 * (j / 8)));
        y[b].scales[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      y[b].d = f32_to_fp16(1 / iscale);
    }
    const float d_all = fp16_to_f32(y[b].d);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(unpack_scale_q3_k(y[b].scales, j));
      if (d == 0.0f) continue;
      for (int l = 0; l < kSub; ++l) {
        L[kSub * j + l] =
            static_cast<int8_t>(std::clamp(nearest_int(x[kSub * j + l] / d), -4, 3) + 4);
      }
    }
    // Bit 2 goes to hmask (bit e/32 of hmask[e%32]); the low 2 bits to qs.
    uint8_t low[kQKK];
    std::memset(y[b].hmask, 0, sizeof(y[b].hmask));
    for (int e = 0; e < kQKK; ++e) {
      if (L[e] > 3) y[b].hmask[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
      low[e] = static_cast<uint8_t>(L[e] & 3);
    }
    pack_q2_bits(low, y[b].qs);
  }
}

float vec_dot_q3_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    int32_t sum_q = 0;
    for (int j = 0; j < 16; ++j) {
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += q3k_quant(x[b], 16 * j + l) * y[b].qs[16 * j + l];
      sum_q += unpack_scale_q3_k(x[b].scales, j) * s;
    }
    sum += (fp16_to_f32(x[b].d) * y[b].d) * static_cast<float>(sum_q);
  }
  return sum;
}

// ---- Q4_K ---------------------------------------------------------------------------------------

void dequantize_q4_k(const void* src, float* dst, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float dmin = fp16_to_f32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min_k4(x[b].scales, j, sc, m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int e = 32 * j + l;
        dst[b * kQKK + e] = d1 * static_cast<float>(q4k_quant(x[b], e)) - m1;
      }
    }
  }
}

void quantize_q4_k(const float* src, void* dst, int64_t n) {
  BlockQ4_K* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    uint8_t L[kQKK];
    quantize_k4_super_block(src + b * kQKK, 15, -1.0f, 20, y[b].d, y[b].dmin, y[b].scales, L);
    pack_q4_bits(L, y[b].qs);
  }
}

float vec_dot_q4_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    int32_t sum_q = 0, sum_m = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min_k4(x[b].scales, j, sc, m);
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) s += q4k_quant(x[b], 32 * j + l) * y[b].qs[32 * j + l];
      sum_q += sc * s;
      sum_m += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    sum += (fp16_to_f32(x[b].d) * y[b].d) * static_cast<float>(sum_q) -
           (fp16_to_f32(x[b].dmin) * y[b].d) * static_cast<float>(sum_m);
  }
  return sum;
}

// ---- Q5_K ---------------------------------------------------------------------------------------

void dequantize_q5_k(const void* src, float* dst, int64_t n) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(src);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float dmin = fp16_to_f32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min_k4(x[b].scales, j, sc, m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int e = 32 * j + l;
        dst[b * kQKK + e] = d1 * static_cast<float>(q5k_quant(x[b], e)) - m1;
      }
    }
  }
}

void quantize_q5_k(const float* src, void* dst, int64_t n) {
  BlockQ5_K* y = static_cast<BlockQ5_K*>(dst);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    uint8_t L[kQKK];
    quantize_k4_super_block(src + b * kQKK, 31, -0.5f, 15, y[b].d, y[b].dmin, y[b].scales, L);
    uint8_t low[kQKK];
    std::memset(y[b].qh, 0, sizeof(y[b].qh));
    for (int e = 0; e < kQKK; ++e) {
      if (L[e] > 15) y[b].qh[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
      low[e] = static_cast<uint8_t>(L[e] & 0x0F);
    }
    pack_q4_bits(low, y[b].qs);
  }
}

float vec_dot_q5_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    int32_t sum_q = 0, sum_m = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min_k4(x[b].scales, j, sc, m);
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) s += q5k_quant(x[b], 32 * j + l) * y[b].qs[32 * j + l];
      sum_q += sc * s;
      sum_m += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    sum += (fp16_to_f32(x[b].d) * y[b].d) * static_cast<float>(sum_q) -
           (fp16_to_f32(x[b].dmin) * y[b].d) * static_cast<float>(sum_m);
  }
  return sum;
}

// ---- Q6_K ---------------------------------------------------------------------------------------

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int e = 0; e < kQKK; ++e) {
      dst[b * kQKK + e] =
          d * static_cast<float>(x[b].scales[e / 16]) * static_cast<float>(q6k_quant(x[b], e));
    }
  }
}

void quantize_q6_k(const float* src, void* dst, int64_t n) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(dst);
  constexpr int kSub = 16;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float* x = src + b * kQKK;
    int8_t L[kQKK];
    float scales[16];
    float max_abs_scale = 0.0f, max_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_symmetric_scale(kSub, 32, x + kSub * j, L + kSub * j);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(&y[b], 0, sizeof(BlockQ6_K));
    if (max_abs_scale < kGroupMaxEps) continue;  // all zero

    // 8-bit scales relative to the one of largest magnitude, which maps to -128.
    const float iscale = -128.f / max_scale;
    y[b].d = f32_to_fp16(1 / iscale);
    for (int j = 0; j < 16; ++j) {
      y[b].scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    }
    const float d_all = fp16_to_f32(y[b].d);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * y[b].scales[j];
      if (d == 0.0f) continue;
      for (int l = 0; l < kSub; ++l) {
        L[kSub * j + l] =
            static_cast<int8_t>(std::clamp(nearest_int(x[kSub * j + l] / d), -32, 31) + 32);
      }
    }
    for (int e = 0; e < kQKK; ++e) {
      const int h = e / 128, g = (e % 128) / 32, l = e % 32;
      const int q = L[e];
      y[b].ql[64 * h + 32 * (g % 2) + l] |= static_cast<uint8_t>((q & 0x0F) << (g < 2 ? 0 : 4));
      y[b].qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * g));
    }
  }
}

float vec_dot_q6_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    int32_t sum_q = 0;
    for (int j = 0; j < 16; ++j) {
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += q6k_quant(x[b], 16 * j + l) * y[b].qs[16 * j + l];
      sum_q += x[b].scales[j] * s;
    }
    sum += (fp16_to_f32(x[b].d) * y[b].d) * static_cast<float>(sum_q);
  }
  return sum;
}

// ---- Q8_K ---------------------------------------------------------------------------------------

void dequantize_q8_k(const void* src, float* dst, int64_t n) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    for (int e = 0; e < kQKK; ++e) dst[b * kQKK + e] = x[b].d * static_cast<float>(x[b].qs[e]);
  }
}

// The value of largest magnitude maps to -127 (so every quant is in [-127, 127]); float scale.
void quantize_q8_k(const float* src, void* dst, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < num_super_blocks(n); ++b) {
    const float* x = src + b * kQKK;
    float amax = 0.0f, max = 0.0f;
    for (int e = 0; e < kQKK; ++e) {
      if (std::fabs(x[e]) > amax) {
        amax = std::fabs(x[e]);
        max = x[e];
      }
    }
    std::memset(&y[b], 0, sizeof(BlockQ8_K));
    if (amax == 0.0f) continue;
    const float iscale = -127.f / max;
    for (int e = 0; e < kQKK; ++e) {
      y[b].qs[e] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[e])));
    }
    for (int j = 0; j < kQKK / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[b].qs[16 * j + l];
      y[b].bsums[j] = static_cast<int16_t>(sum);
    }
    y[b].d = 1 / iscale;
  }
}

}  // namespace kandil::ops
