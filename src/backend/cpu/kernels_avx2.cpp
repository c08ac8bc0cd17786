// AVX2 + FMA + F16C kernels (x86-64). Only the functions of this file are compiled for those
// extensions (target attributes), so the rest of the binary stays baseline x86-64; dispatch
// (kernels.cpp) calls them only on CPUs that have all three.
//
// Dots of the quantized types multiply int8 quants with _mm256_maddubs_epi16 (u8 x s8 -> pairs
// summed to s16) and widen with _mm256_madd_epi16, so the per-block integer sums are exactly the
// reference's; only the order of the final float accumulation differs. The activation quantizers
// reproduce the reference's rounding bit for bit (roundf for Q8_0 / Q8_1, nearest-even for Q8_K).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstring>

#include "base/fp16.h"
#include "ops/quant_blocks.h"
#include "ops/quant_scales.h"

#define KANDIL_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

using ops::BlockQ4_0;
using ops::BlockQ4_1;
using ops::BlockQ4_K;
using ops::BlockQ5_0;
using ops::BlockQ5_1;
using ops::BlockQ5_K;
using ops::BlockQ6_K;
using ops::BlockQ8_0;
using ops::BlockQ8_1;
using ops::BlockQ8_K;
using ops::kQK;
using ops::kQKK;

// ---- helpers ------------------------------------------------------------------------------------

KANDIL_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

KANDIL_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

KANDIL_AVX2 inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

KANDIL_AVX2 inline float half_to_float(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

KANDIL_AVX2 inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

KANDIL_AVX2 inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Sum of the signed products x[i] * y[i] of 32 int8 pairs, as 8 int32 partial sums.
KANDIL_AVX2 inline __m256i dot_s8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);  // |x| (as unsigned)
  const __m256i sy = _mm256_sign_epi8(y, x);  // y with x's sign (0 where x is 0)
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

// Sum of the products x[i] * y[i] of 32 pairs with x unsigned (< 128), y signed, as 8 int32.
KANDIL_AVX2 inline __m256i dot_u8s8(__m256i x, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

// The 32 nibbles of 16 bytes in element order: the low nibbles (elements 0..15) in the low half,
// the high nibbles (16..31) in the high half.
KANDIL_AVX2 inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 0xFF in byte j where bit j of the 32-bit mask is set, else 0.
KANDIL_AVX2 inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                          _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                           2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i select = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // x86 is little-endian, as the format
}

// Packs 4 x 8 int32 (each in int8 range) into 32 int8 in order.
KANDIL_AVX2 inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);  // per lane: a0-3 b0-3 | a4-7 b4-7
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i abcd = _mm256_packs_epi16(ab, cd);  // dwords: a0 b0 c0 d0 | a1 b1 c1 d1
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// roundf (half away from zero) of every lane, exactly: trunc(|v|) + (frac >= 0.5), with v's sign.
// (floor(|v| + 0.5) would round 0.49999997 up.)
KANDIL_AVX2 inline __m256 round_half_away(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign, v);
  __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
  return _mm256_or_ps(t, _mm256_and_ps(sign, v));
}

// ---- F32 / F16 / BF16 dots ----------------------------------------------------------------------
//
// One template for the three float formats and for 1..4 activation rows per weight row: every row
// gets its own 4 accumulators and the same reduction, so a dot's result does not depend on how
// many rows were computed together (vec_dot_rows == vec_dot, bit for bit).

enum class Fmt { F32, F16, BF16 };

template <Fmt F>
KANDIL_AVX2 inline __m256 load8(const void* p, int64_t i) {
  if constexpr (F == Fmt::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else if constexpr (F == Fmt::F16) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  } else {
    const __m256i w = _mm256_cvtepu16_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
}

template <Fmt F>
KANDIL_AVX2 inline float load1(const void* p, int64_t i) {
  if constexpr (F == Fmt::F32) {
    return static_cast<const float*>(p)[i];
  } else if constexpr (F == Fmt::F16) {
    return half_to_float(static_cast<const uint16_t*>(p)[i]);
  } else {
    return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
}

template <Fmt F, int R>
KANDIL_AVX2 inline void dot_float_rows(int64_t n, const void* x, const void* y, size_t y_stride,
                                       float* out) {
  const uint8_t* yb = static_cast<const uint8_t*>(y);
  __m256 acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < 4; ++k) acc[r][k] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      const __m256 w = load8<F>(x, i + 8 * k);
      for (int r = 0; r < R; ++r) {
        acc[r][k] = _mm256_fmadd_ps(w, load8<F>(yb + r * y_stride, i + 8 * k), acc[r][k]);
      }
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 w = load8<F>(x, i);
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm256_fmadd_ps(w, load8<F>(yb + r * y_stride, i), acc[r][0]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float sum = hsum(
        _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
    for (int64_t t = i; t < n; ++t) sum += load1<F>(x, t) * load1<F>(yb + r * y_stride, t);
    out[r] = sum;
  }
}

template <Fmt F>
KANDIL_AVX2 float vec_dot_float(int64_t n, const void* x, const void* y) {
  float out;
  dot_float_rows<F, 1>(n, x, y, 0, &out);
  return out;
}

// Two rows at a time: 8 accumulators + operands fit the 16 ymm registers.
template <Fmt F>
KANDIL_AVX2 void vec_dot_float_rows(int64_t n, const void* x, const void* y, size_t y_stride,
                                    int64_t count, float* out) {
  const uint8_t* yb = static_cast<const uint8_t*>(y);
  int64_t j = 0;
  for (; j + 2 <= count; j += 2) dot_float_rows<F, 2>(n, x, yb + j * y_stride, y_stride, out + j);
  if (j < count) dot_float_rows<F, 1>(n, x, yb + j * y_stride, y_stride, out + j);
}

// F32 -> F16, round to nearest even (F16C), NaNs mapped as f32_to_fp16 does (sign | 0x7e00).
KANDIL_AVX2 void from_float_f16(const float* x, void* vy, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(vy);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    v = _mm256_blendv_ps(v, _mm256_or_ps(qnan, _mm256_and_ps(v, sign)), nan);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

// F32 -> BF16 exactly as f32_to_bf16: round to nearest even, NaN -> quiet NaN (high half | 64).
KANDIL_AVX2 void from_float_bf16(const float* x, void* vy, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(vy);
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i r[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * h));
      const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
      const __m256i rounded = _mm256_srli_epi32(
          _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)), 16);
      const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
      r[h] = _mm256_blendv_epi8(rounded, quiet, nan);
    }
    // Values are < 65536: unsigned-saturating pack keeps them; then undo the lane interleave.
    const __m256i packed =
        _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), _MM_SHUFFLE(3, 1, 2, 0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), packed);
  }
  for (; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

// ---- Q8_0 / Q8_1 activations ------------------------------------------------------------------

// Quantizes one 32-element block as the reference: d = amax / 127, q = roundf(x / d) (computed as
// x * (1 / d)). Returns d; *qsum receives the sum of the quants.
KANDIL_AVX2 inline float quantize_block_q8(const float* x, int8_t* qs, int32_t* qsum) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    amax = _mm256_max_ps(abs_ps(v[k]), amax);  // NaN lanes keep amax, as std::max(amax, NaN)
  }
  const float d = hmax(amax) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], idv)));
  }
  if (qsum != nullptr) {
    *qsum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
  return d;
}

KANDIL_AVX2 void from_float_q8_0(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b) {
    y[b].d = f32_to_fp16(quantize_block_q8(x + b * kQK, y[b].qs, nullptr));
  }
}

KANDIL_AVX2 void from_float_q8_1(const float* x, void* vy, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t sum = 0;
    const float d = quantize_block_q8(x + b * kQK, y[b].qs, &sum);
    y[b].d = f32_to_fp16(d);
    y[b].s = f32_to_fp16(static_cast<float>(sum) * d);
  }
}

// ---- Q8_K activations ---------------------------------------------------------------------------

// As the reference: the value of largest magnitude (the first one on ties) maps to -127,
// q = min(127, nearbyint(x * iscale)), d = 1 / iscale, bsums of 16; all-zero blocks are all zero.
KANDIL_AVX2 void from_float_q8_k(const float* src, void* vy, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(vy);
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const float* x = src + b * kQKK;
    __m256 amaxv = _mm256_setzero_ps();
    for (int k = 0; k < kQKK; k += 8) amaxv = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + k)), amaxv);
    const float amax = hmax(amaxv);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    // First element whose magnitude is amax.
    float max = amax;
    const __m256 target = _mm256_set1_ps(amax);
    for (int k = 0; k < kQKK; k += 8) {
      const int mask =
          _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + k)), target, _CMP_EQ_OQ));
      if (mask != 0) {
        max = x[k + __builtin_ctz(static_cast<unsigned>(mask))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i q_max = _mm256_set1_epi32(127);
    for (int k = 0; k < kQKK; k += 64) {
      __m256i q[8];
      for (int j = 0; j < 8; ++j) {
        // cvtps rounds with the current mode (nearest-even), as nearbyint.
        q[j] = _mm256_min_epi32(
            _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), is)), q_max);
      }
      // Sums of the 4 groups of 16 in these 64 quants.
      const __m256i g0 = _mm256_add_epi32(q[0], q[1]), g1 = _mm256_add_epi32(q[2], q[3]);
      const __m256i g2 = _mm256_add_epi32(q[4], q[5]), g3 = _mm256_add_epi32(q[6], q[7]);
      const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(g0, g1), _mm256_hadd_epi32(g2, g3));
      const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y[b].bsums + k / 16),
                       _mm_packs_epi32(sums, sums));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + k),
                          pack_i32_to_i8(q[0], q[1], q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + k + 32),
                          pack_i32_to_i8(q[4], q[5], q[6], q[7]));
    }
    y[b].d = 1 / iscale;
  }
}

// ---- legacy quants: Q8_0 / Q4_0 / Q5_0 . Q8_0, Q4_1 / Q5_1 . Q8_1 -------------------------------
//
// One loop for all: each Op gives the 8 int32 partial sums of one block pair (exactly the block's
// integer dot, split over lanes). The block scales dx * dy (and for Q4_1 / Q5_1 the min terms
// m * s) are converted 8 blocks at a time instead of one scalar F16 conversion per block.

// The 8 halves at p, p + stride, ..., p + 7 * stride (as F16 bits).
KANDIL_AVX2 inline __m256 load_halves8(const void* p, size_t stride) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint16_t h[8];
  for (int k = 0; k < 8; ++k) std::memcpy(&h[k], b + k * stride, 2);
  return _mm256_cvtph_ps(_mm_setr_epi16(static_cast<int16_t>(h[0]), static_cast<int16_t>(h[1]),
                                        static_cast<int16_t>(h[2]), static_cast<int16_t>(h[3]),
                                        static_cast<int16_t>(h[4]), static_cast<int16_t>(h[5]),
                                        static_cast<int16_t>(h[6]), static_cast<int16_t>(h[7])));
}

KANDIL_AVX2 inline __m256 lane_broadcast(__m256 v, int k) {
  return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(k));
}

struct OpQ8_0 {
  using XB = BlockQ8_0;
  using YB = BlockQ8_0;
  static constexpr bool kHasMin = false;
  KANDIL_AVX2 static __m256i dot(const XB& x, const YB& y) {
    return dot_s8(load256(x.qs), load256(y.qs));
  }
};

struct OpQ4_0 {
  using XB = BlockQ4_0;
  using YB = BlockQ8_0;
  static constexpr bool kHasMin = false;
  KANDIL_AVX2 static __m256i dot(const XB& x, const YB& y) {
    return dot_s8(_mm256_sub_epi8(unpack_nibbles(x.qs), _mm256_set1_epi8(8)), load256(y.qs));
  }
};

struct OpQ5_0 {
  using XB = BlockQ5_0;
  using YB = BlockQ8_0;
  static constexpr bool kHasMin = false;
  // q - 16 = nibble - 16 where bit 4 is clear (the int8 nibble | 0xF0), the nibble where set.
  KANDIL_AVX2 static __m256i dot(const XB& x, const YB& y) {
    const __m256i hb = bits_to_bytes(load_u32(x.qh));
    const __m256i q = _mm256_or_si256(
        unpack_nibbles(x.qs), _mm256_andnot_si256(hb, _mm256_set1_epi8(static_cast<char>(0xF0))));
    return dot_s8(q, load256(y.qs));
  }
};

struct OpQ4_1 {
  using XB = BlockQ4_1;
  using YB = BlockQ8_1;
  static constexpr bool kHasMin = true;
  KANDIL_AVX2 static __m256i dot(const XB& x, const YB& y) {
    return dot_u8s8(unpack_nibbles(x.qs), load256(y.qs));
  }
};

struct OpQ5_1 {
  using XB = BlockQ5_1;
  using YB = BlockQ8_1;
  static constexpr bool kHasMin = true;
  KANDIL_AVX2 static __m256i dot(const XB& x, const YB& y) {
    const __m256i hb = bits_to_bytes(load_u32(x.qh));
    const __m256i q =
        _mm256_or_si256(unpack_nibbles(x.qs), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
    return dot_u8s8(q, load256(y.qs));
  }
};

template <class Op>
KANDIL_AVX2 float vec_dot_legacy(int64_t n, const void* vx, const void* vy) {
  using XB = typename Op::XB;
  using YB = typename Op::YB;
  const XB* x = static_cast<const XB*>(vx);
  const YB* y = static_cast<const YB*>(vy);
  const int64_t nb = n / kQK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  float sum_min = 0.0f;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    const __m256 d =
        _mm256_mul_ps(load_halves8(&x[b].d, sizeof(XB)), load_halves8(&y[b].d, sizeof(YB)));
    if constexpr (Op::kHasMin) {
      acc_min = _mm256_fmadd_ps(load_halves8(&x[b].m, sizeof(XB)),
                                load_halves8(&y[b].s, sizeof(YB)), acc_min);
    }
    for (int u = 0; u < 8; u += 2) {
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Op::dot(x[b + u], y[b + u])), lane_broadcast(d, u),
                             acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Op::dot(x[b + u + 1], y[b + u + 1])),
                             lane_broadcast(d, u + 1), acc1);
    }
  }
  for (; b < nb; ++b) {
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Op::dot(x[b], y[b])),
                           _mm256_set1_ps(half_to_float(x[b].d) * half_to_float(y[b].d)), acc0);
    if constexpr (Op::kHasMin) sum_min += half_to_float(x[b].m) * half_to_float(y[b].s);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  if constexpr (Op::kHasMin) sum += hsum(acc_min) + sum_min;
  return sum;
}

// ---- K-quants -----------------------------------------------------------------------------------

// Scales as 8 16-bit lanes (sc0..sc7) and the mins as (m0, m0, m1, m1, ..., m7, m7) 16-bit lanes
// ready to multiply the 16 bsums.
KANDIL_AVX2 inline void unpack_k4_scales(const uint8_t* s, __m128i* sc16, __m256i* mins_pairs) {
  uint64_t sc, m;
  ops::unpack_k4_scale_bytes(s, &sc, &m);
  *sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc)));
  const __m128i mv = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m)));
  *mins_pairs = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(mv, mv)),
                                        _mm_unpackhi_epi16(mv, mv), 1);
}

// Word k (of the 8 in each 128-bit lane) of v in every 16-bit lane.
KANDIL_AVX2 inline __m256i broadcast_word(__m256i v, int k) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * k)));
}

KANDIL_AVX2 float vec_dot_q4_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const int64_t nb = n / kQKK;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m128i sc16;
    __m256i mins;
    unpack_k4_scales(x[b].scales, &sc16, &mins);
    const __m256i sc = _mm256_broadcastsi128_si256(sc16);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load256(x[b].qs + 32 * j);
      const __m256i lo = _mm256_and_si256(q, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(y[b].qs + 64 * j)),
                                             broadcast_word(sc, 2 * j));
      const __m256i p_hi = _mm256_madd_epi16(
          _mm256_maddubs_epi16(hi, load256(y[b].qs + 64 * j + 32)), broadcast_word(sc, 2 * j + 1));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    const __m256i summ = _mm256_madd_epi16(load256(y[b].bsums), mins);
    const float dy = y[b].d;
    acc =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(half_to_float(x[b].d) * dy), acc);
    acc_m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(half_to_float(x[b].dmin) * dy),
                            acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

KANDIL_AVX2 float vec_dot_q5_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const int64_t nb = n / kQKK;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i one = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m128i sc16;
    __m256i mins;
    unpack_k4_scales(x[b].scales, &sc16, &mins);
    const __m256i sc = _mm256_broadcastsi128_si256(sc16);
    // Bit 4 of sub-block s's element l is bit s of qh[l]: shift qh right once per sub-block.
    __m256i qh = load256(x[b].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load256(x[b].qs + 32 * j);
      const __m256i h_lo = _mm256_slli_epi16(_mm256_and_si256(qh, one), 4);
      qh = _mm256_srli_epi16(qh, 1);
      const __m256i h_hi = _mm256_slli_epi16(_mm256_and_si256(qh, one), 4);
      qh = _mm256_srli_epi16(qh, 1);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, low4), h_lo);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), h_hi);
      const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(y[b].qs + 64 * j)),
                                             broadcast_word(sc, 2 * j));
      const __m256i p_hi = _mm256_madd_epi16(
          _mm256_maddubs_epi16(hi, load256(y[b].qs + 64 * j + 32)), broadcast_word(sc, 2 * j + 1));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    const __m256i summ = _mm256_madd_epi16(load256(y[b].bsums), mins);
    const float dy = y[b].d;
    acc =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(half_to_float(x[b].d) * dy), acc);
    acc_m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(half_to_float(x[b].dmin) * dy),
                            acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

// Q6_K: q in [0, 63] stored as 4 low bits (ql) + 2 high bits (qh); the value is q - 32. The dot is
// computed as sum(sc * q * y) - 32 * sum(sc * bsum), both exact in int32.
KANDIL_AVX2 float vec_dot_q6_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const int64_t nb = n / kQKK;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i low2 = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const __m256i sc_both = _mm256_broadcastsi128_si256(sc8);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load256(x[b].ql + 64 * h);
      const __m256i ql1 = load256(x[b].ql + 64 * h + 32);
      const __m256i qh = load256(x[b].qh + 32 * h);
      for (int g = 0; g < 4; ++g) {
        const __m256i ql = (g % 2 == 0) ? ql0 : ql1;
        const __m256i lo =
            g < 2 ? _mm256_and_si256(ql, low4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), low2);
        const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
        const int s = 8 * h + 2 * g;  // sub-blocks s (low half) and s + 1 (high half)
        // Scale s in every word of the low lane, s + 1 in the high lane: replicate the byte, then
        // sign-extend it from the high byte of each word.
        const __m256i pick =
            _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi8(static_cast<char>(s))),
                                    _mm_set1_epi8(static_cast<char>(s + 1)), 1);
        const __m256i scale = _mm256_srai_epi16(_mm256_shuffle_epi8(sc_both, pick), 8);
        const __m256i p =
            _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(y[b].qs + 128 * h + 32 * g)), scale);
        sumi = _mm256_add_epi32(sumi, p);
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const __m256i bias = _mm256_madd_epi16(sc16, load256(y[b].bsums));
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(bias, 5));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(half_to_float(x[b].d) * y[b].d),
                          acc);
  }
  return hsum(acc);
}

}  // namespace

namespace detail {

IsaDot avx2_dot(TensorType weight_type) {
  IsaDot d;
  switch (weight_type) {
    case TensorType::F32:
      d.vec_dot = vec_dot_float<Fmt::F32>;
      d.vec_dot_rows = vec_dot_float_rows<Fmt::F32>;
      break;
    case TensorType::F16:
      d.vec_dot = vec_dot_float<Fmt::F16>;
      d.vec_dot_rows = vec_dot_float_rows<Fmt::F16>;
      break;
    case TensorType::BF16:
      d.vec_dot = vec_dot_float<Fmt::BF16>;
      d.vec_dot_rows = vec_dot_float_rows<Fmt::BF16>;
      break;
    case TensorType::Q4_0:
      d.vec_dot = vec_dot_legacy<OpQ4_0>;
      break;
    case TensorType::Q4_1:
      d.vec_dot = vec_dot_legacy<OpQ4_1>;
      break;
    case TensorType::Q5_0:
      d.vec_dot = vec_dot_legacy<OpQ5_0>;
      break;
    case TensorType::Q5_1:
      d.vec_dot = vec_dot_legacy<OpQ5_1>;
      break;
    case TensorType::Q8_0:
      d.vec_dot = vec_dot_legacy<OpQ8_0>;
      break;
    case TensorType::Q4_K:
      d.vec_dot = vec_dot_q4_k_q8_k;
      break;
    case TensorType::Q5_K:
      d.vec_dot = vec_dot_q5_k_q8_k;
      break;
    case TensorType::Q6_K:
      d.vec_dot = vec_dot_q6_k_q8_k;
      break;
    default:
      break;
  }
  return d;
}

ops::FromFloatFn avx2_from_float(TensorType dot_type) {
  switch (dot_type) {
    case TensorType::F16:
      return from_float_f16;
    case TensorType::BF16:
      return from_float_bf16;
    case TensorType::Q8_0:
      return from_float_q8_0;
    case TensorType::Q8_1:
      return from_float_q8_1;
    case TensorType::Q8_K:
      return from_float_q8_k;
    default:
      return nullptr;
  }
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
IsaDot avx2_dot(TensorType) { return {}; }
ops::FromFloatFn avx2_from_float(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
