// AVX-512 kernels (x86-64): the float dots need avx512f/bw/vl; the integer dots also need
// avx512vnni (vpdpbusd / vpdpwssd) and are only dispatched where the CPU has it (CPUs without it
// keep the AVX2 integer kernels). As in kernels_avx2.cpp, only these functions are compiled for
// the extensions (target attributes), the rest of the binary stays baseline x86-64.
//
// Integer sums are exact and equal to the reference's per block; only the float accumulation
// order differs. Activation quantization stays with the AVX2 versions (bit-exact, and cheap next
// to the dots).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

// GCC 12's AVX-512 headers pass `_mm512_undefined_*()` (a self-initialized variable) as the
// pass-through operand of unmasked intrinsics, which -Wmaybe-uninitialized flags once inlined
// (GCC bug 105593). The values are never read; silence the false positive for this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cstring>

#include "base/fp16.h"
#include "ops/quant_blocks.h"
#include "ops/quant_scales.h"

#define KANDIL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define KANDIL_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

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

KANDIL_AVX512 inline float hsum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

KANDIL_AVX512 inline float half_to_float(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

KANDIL_AVX512 inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
KANDIL_AVX512 inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }

// (lo, hi) -> one 512-bit vector.
KANDIL_AVX512 inline __m512i concat(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// 16-bit lanes: a in the low 256 bits, b in the high 256 bits.
KANDIL_AVX512 inline __m512i set2_epi16(int16_t a, int16_t b) {
  return concat(_mm256_set1_epi16(a), _mm256_set1_epi16(b));
}

// 8 float lanes of a then 8 of b.
KANDIL_AVX512 inline __m512 set2_ps(float a, float b) {
  return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b));
}

// ---- F32 / F16 / BF16 dots ----------------------------------------------------------------------
//
// One template for the three float formats and 1..4 activation rows per weight row; each row has
// its own 4 accumulators and the same reduction, so vec_dot_rows equals vec_dot bit for bit.

enum class Fmt { F32, F16, BF16 };

// 16 elements from p + i (only the first `left` when masked; the rest read as zero).
template <Fmt F>
KANDIL_AVX512 inline __m512 load16(const void* p, int64_t i) {
  if constexpr (F == Fmt::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(p) + i);
  } else if constexpr (F == Fmt::F16) {
    return _mm512_cvtph_ps(load256(static_cast<const uint16_t*>(p) + i));
  } else {
    const __m512i w = _mm512_cvtepu16_epi32(load256(static_cast<const uint16_t*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}
template <Fmt F>
KANDIL_AVX512 inline __m512 load16_masked(const void* p, int64_t i, __mmask16 m) {
  if constexpr (F == Fmt::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  } else if constexpr (F == Fmt::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  } else {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}

template <Fmt F, int R>
KANDIL_AVX512 inline void dot_float_rows(int64_t n, const void* x, const void* y, size_t y_stride,
                                         float* out) {
  const uint8_t* yb = static_cast<const uint8_t*>(y);
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      const __m512 w = load16<F>(x, i + 16 * k);
      for (int r = 0; r < R; ++r) {
        acc[r][k] = _mm512_fmadd_ps(w, load16<F>(yb + r * y_stride, i + 16 * k), acc[r][k]);
      }
    }
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 w = load16<F>(x, i);
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm512_fmadd_ps(w, load16<F>(yb + r * y_stride, i), acc[r][0]);
    }
  }
  if (i < n) {  // masked tail
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 w = load16_masked<F>(x, i, m);
    for (int r = 0; r < R; ++r) {
      acc[r][1] = _mm512_fmadd_ps(w, load16_masked<F>(yb + r * y_stride, i, m), acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    out[r] = hsum(
        _mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3])));
  }
}

template <Fmt F>
KANDIL_AVX512 float vec_dot_float(int64_t n, const void* x, const void* y) {
  float out;
  dot_float_rows<F, 1>(n, x, y, 0, &out);
  return out;
}

// Four rows at a time: 16 accumulators + operands fit the 32 zmm registers.
template <Fmt F>
KANDIL_AVX512 void vec_dot_float_rows(int64_t n, const void* x, const void* y, size_t y_stride,
                                      int64_t count, float* out) {
  const uint8_t* yb = static_cast<const uint8_t*>(y);
  int64_t j = 0;
  for (; j + 4 <= count; j += 4) dot_float_rows<F, 4>(n, x, yb + j * y_stride, y_stride, out + j);
  switch (count - j) {
    case 3:
      dot_float_rows<F, 3>(n, x, yb + j * y_stride, y_stride, out + j);
      break;
    case 2:
      dot_float_rows<F, 2>(n, x, yb + j * y_stride, y_stride, out + j);
      break;
    case 1:
      dot_float_rows<F, 1>(n, x, yb + j * y_stride, y_stride, out + j);
      break;
    default:
      break;
  }
}

// F32 -> F16, round to nearest even, NaNs mapped as f32_to_fp16 does (sign | 0x7e00).
KANDIL_AVX512 void from_float_f16(const float* x, void* vy, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(vy);
  const __m512 qnan = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000));
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t left = n - i < 16 ? n - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512 canon = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(qnan), _mm512_and_si512(_mm512_castps_si512(v), sign)));
    v = _mm512_mask_blend_ps(nan, v, canon);
    _mm256_mask_storeu_epi16(y + i, m,
                             _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// ---- legacy quants (VNNI) -----------------------------------------------------------------------

// 16 int32 sums for 64 signed pairs. (AVX-512 has no vpsignb: negate y under x's sign mask; x = 0
// contributes 0 through |x| = 0.)
KANDIL_VNNI inline __m512i dot_s8(__m512i x, __m512i y) {
  const __m512i ax = _mm512_abs_epi8(x);
  const __m512i sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
}

// 32 nibbles of a legacy block in element order (low nibbles first), as bytes.
KANDIL_VNNI inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 0xFF in byte j where bit j of `bits` is set.
KANDIL_VNNI inline __m256i bits_to_bytes(uint32_t bits) {
  return _mm256_movm_epi8(static_cast<__mmask32>(bits));
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Two blocks per 512-bit step; an odd last block pairs with itself under a zero scale.
KANDIL_VNNI float vec_dot_q8_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / kQK;
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    const int64_t b1 = two ? b + 1 : b;
    const __m512i p = dot_s8(concat(load256(x[b].qs), load256(x[b1].qs)),
                             concat(load256(y[b].qs), load256(y[b1].qs)));
    const __m512 d = set2_ps(half_to_float(x[b].d) * half_to_float(y[b].d),
                             two ? half_to_float(x[b1].d) * half_to_float(y[b1].d) : 0.0f);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d, acc);
  }
  return hsum(acc);
}

// Q4_0 x Q8_0, four blocks per step (decode reads every weight once, so this loop is what keeps
// up with memory): 128-bit lane j of `lo` / `hi` holds the low / high nibbles (elements 0..15 /
// 16..31) of block j, next to the matching activation halves. vpdpbusd takes the nibbles as
// unsigned; the -8 offset comes off exactly as 8 * sum(a) per block (a second vpdpbusd). The
// eight half-precision scales of a step are converted in one instruction and broadcast per lane.
KANDIL_VNNI float vec_dot_q4_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / kQK;
  const __m512i low_mask = _mm512_set1_epi8(0x0F);
  const __m512i eights = _mm512_set1_epi8(8);
  const __m512i lane_of = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    __m512i q = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs)));
    __m512i a_lo =
        _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b].qs)));
    __m512i a_hi =
        _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b].qs + 16)));
    q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b + 1].qs)), 1);
    q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b + 2].qs)), 2);
    q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b + 3].qs)), 3);
    a_lo =
        _mm512_inserti32x4(a_lo, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b + 1].qs)), 1);
    a_lo =
        _mm512_inserti32x4(a_lo, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b + 2].qs)), 2);
    a_lo =
        _mm512_inserti32x4(a_lo, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b + 3].qs)), 3);
    a_hi = _mm512_inserti32x4(
        a_hi, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b + 1].qs + 16)), 1);
    a_hi = _mm512_inserti32x4(
        a_hi, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b + 2].qs + 16)), 2);
    a_hi = _mm512_inserti32x4(
        a_hi, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[b + 3].qs + 16)), 3);
    const __m512i lo = _mm512_and_si512(q, low_mask);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low_mask);
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, a_lo);
    p = _mm512_dpbusd_epi32(p, hi, a_hi);
    __m512i off = _mm512_dpbusd_epi32(_mm512_setzero_si512(), eights, a_lo);
    off = _mm512_dpbusd_epi32(off, eights, a_hi);
    // Scales: halves [dx0..dx3, dy0..dy3] -> floats, products per block, one per 128-bit lane.
    const __m128i h = _mm_setr_epi16(
        static_cast<short>(x[b].d), static_cast<short>(x[b + 1].d), static_cast<short>(x[b + 2].d),
        static_cast<short>(x[b + 3].d), static_cast<short>(y[b].d), static_cast<short>(y[b + 1].d),
        static_cast<short>(y[b + 2].d), static_cast<short>(y[b + 3].d));
    const __m256 f = _mm256_cvtph_ps(h);
    const __m128 d = _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    const __m512 dv = _mm512_permutexvar_ps(lane_of, _mm512_castps128_ps512(d));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(p, off)), dv, acc);
  }
  float tail = 0.0f;
  for (; b < nb; ++b) {
    const __m256i qv = _mm256_sub_epi8(unpack_nibbles(x[b].qs), _mm256_set1_epi8(8));
    const __m256i av = load256(y[b].qs);
    const __m256i ax = _mm256_sign_epi8(qv, qv);
    const __m256i sy = _mm256_sign_epi8(av, qv);
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    tail +=
        half_to_float(x[b].d) * half_to_float(y[b].d) * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
  return hsum(acc) + tail;
}

KANDIL_VNNI float vec_dot_q4_1_q8_1(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(vy);
  const int64_t nb = n / kQK;
  __m512 acc = _mm512_setzero_ps();
  float sum_min = 0.0f;
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    const int64_t b1 = two ? b + 1 : b;
    const __m512i q = concat(unpack_nibbles(x[b].qs), unpack_nibbles(x[b1].qs));
    const __m512i p =
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, concat(load256(y[b].qs), load256(y[b1].qs)));
    const __m512 d = set2_ps(half_to_float(x[b].d) * half_to_float(y[b].d),
                             two ? half_to_float(x[b1].d) * half_to_float(y[b1].d) : 0.0f);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d, acc);
    sum_min += half_to_float(x[b].m) * half_to_float(y[b].s);
    if (two) sum_min += half_to_float(x[b1].m) * half_to_float(y[b1].s);
  }
  return hsum(acc) + sum_min;
}

KANDIL_VNNI float vec_dot_q5_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / kQK;
  const __m256i high_nibble = _mm256_set1_epi8(static_cast<char>(0xF0));
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    const int64_t b1 = two ? b + 1 : b;
    // q - 16: the nibble where bit 4 is set, the int8 (nibble | 0xF0) = nibble - 16 where clear.
    const __m256i q0 =
        _mm256_or_si256(unpack_nibbles(x[b].qs),
                        _mm256_andnot_si256(bits_to_bytes(load_u32(x[b].qh)), high_nibble));
    const __m256i q1 =
        _mm256_or_si256(unpack_nibbles(x[b1].qs),
                        _mm256_andnot_si256(bits_to_bytes(load_u32(x[b1].qh)), high_nibble));
    const __m512i p = dot_s8(concat(q0, q1), concat(load256(y[b].qs), load256(y[b1].qs)));
    const __m512 d = set2_ps(half_to_float(x[b].d) * half_to_float(y[b].d),
                             two ? half_to_float(x[b1].d) * half_to_float(y[b1].d) : 0.0f);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d, acc);
  }
  return hsum(acc);
}

KANDIL_VNNI float vec_dot_q5_1_q8_1(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(vx);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(vy);
  const int64_t nb = n / kQK;
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  __m512 acc = _mm512_setzero_ps();
  float sum_min = 0.0f;
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    const int64_t b1 = two ? b + 1 : b;
    const __m256i q0 = _mm256_or_si256(unpack_nibbles(x[b].qs),
                                       _mm256_and_si256(bits_to_bytes(load_u32(x[b].qh)), bit4));
    const __m256i q1 = _mm256_or_si256(unpack_nibbles(x[b1].qs),
                                       _mm256_and_si256(bits_to_bytes(load_u32(x[b1].qh)), bit4));
    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), concat(q0, q1),
                                          concat(load256(y[b].qs), load256(y[b1].qs)));
    const __m512 d = set2_ps(half_to_float(x[b].d) * half_to_float(y[b].d),
                             two ? half_to_float(x[b1].d) * half_to_float(y[b1].d) : 0.0f);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d, acc);
    sum_min += half_to_float(x[b].m) * half_to_float(y[b].s);
    if (two) sum_min += half_to_float(x[b1].m) * half_to_float(y[b1].s);
  }
  return hsum(acc) + sum_min;
}

// ---- K-quants (VNNI) ----------------------------------------------------------------------------
//
// Each step takes 64 consecutive elements (two 32-element sub-blocks, or four of 16 for Q6_K):
// maddubs multiplies the unsigned quants with the int8 activations into 16-bit pair sums (no
// saturation: quants < 64), and vpdpwssd multiplies those by the 16-bit sub-block scales and
// accumulates in int32 -- the reference's integer sum, exactly.

// Scales as 8 16-bit lanes (sc0..sc7) and the mins as (m0, m0, m1, m1, ..., m7, m7) 16-bit lanes
// ready to multiply the 16 bsums.
KANDIL_VNNI inline void unpack_k4_scales(const uint8_t* s, __m128i* sc16, __m256i* mins_pairs) {
  uint64_t sc, m;
  ops::unpack_k4_scale_bytes(s, &sc, &m);
  *sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc)));
  const __m128i mv = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m)));
  *mins_pairs = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(mv, mv)),
                                        _mm_unpackhi_epi16(mv, mv), 1);
}

// Scale 2j (of the 8 in the low words of sc) in every 16-bit lane of the low half, 2j + 1 in the
// high half: the scales of the 64 elements of step j.
KANDIL_VNNI inline __m512i scale_pair(__m512i sc, int j) {
  return _mm512_permutexvar_epi16(
      set2_epi16(static_cast<int16_t>(2 * j), static_cast<int16_t>(2 * j + 1)), sc);
}

KANDIL_VNNI inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

KANDIL_VNNI float vec_dot_q4_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const int64_t nb = n / kQKK;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  float sum_m = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    __m128i sc16;
    __m256i mins;
    unpack_k4_scales(x[b].scales, &sc16, &mins);
    const __m512i sc = _mm512_zextsi128_si512(sc16);
    __m512i sumi = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      // qs[32j..32j+31]: low nibbles = sub-block 2j, high = 2j+1 -> 64 consecutive elements.
      const __m256i q = load256(x[b].qs + 32 * j);
      const __m512i q2 = _mm512_and_si512(concat(q, _mm256_srli_epi16(q, 4)), low4);
      const __m512i p = _mm512_maddubs_epi16(q2, load512(y[b].qs + 64 * j));
      sumi = _mm512_dpwssd_epi32(sumi, p, scale_pair(sc, j));
    }
    const int32_t summ = hsum_i32(_mm256_madd_epi16(load256(y[b].bsums), mins));
    const float dy = y[b].d;
    acc =
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(half_to_float(x[b].d) * dy), acc);
    sum_m += (half_to_float(x[b].dmin) * dy) * static_cast<float>(summ);
  }
  return hsum(acc) - sum_m;
}

KANDIL_VNNI float vec_dot_q5_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const int64_t nb = n / kQKK;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i one = _mm512_set1_epi8(1);
  __m512 acc = _mm512_setzero_ps();
  float sum_m = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    __m128i sc16;
    __m256i mins;
    unpack_k4_scales(x[b].scales, &sc16, &mins);
    const __m512i sc = _mm512_zextsi128_si512(sc16);
    // Bit 4 of sub-block s is bit s of qh[l]: low half tracks the even sub-blocks, high half the
    // odd ones; shift both by 2 per step.
    const __m256i qh256 = load256(x[b].qh);
    __m512i qh = concat(qh256, _mm256_srli_epi16(qh256, 1));
    __m512i sumi = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load256(x[b].qs + 32 * j);
      const __m512i h = _mm512_slli_epi16(_mm512_and_si512(qh, one), 4);
      qh = _mm512_srli_epi16(qh, 2);
      const __m512i q2 =
          _mm512_or_si512(_mm512_and_si512(concat(q, _mm256_srli_epi16(q, 4)), low4), h);
      const __m512i p = _mm512_maddubs_epi16(q2, load512(y[b].qs + 64 * j));
      sumi = _mm512_dpwssd_epi32(sumi, p, scale_pair(sc, j));
    }
    const int32_t summ = hsum_i32(_mm256_madd_epi16(load256(y[b].bsums), mins));
    const float dy = y[b].d;
    acc =
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(half_to_float(x[b].d) * dy), acc);
    sum_m += (half_to_float(x[b].dmin) * dy) * static_cast<float>(summ);
  }
  return hsum(acc) - sum_m;
}

KANDIL_VNNI float vec_dot_q6_k_q8_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const int64_t nb = n / kQKK;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i low2 = _mm512_set1_epi8(0x03);
  // Word k of 128-bit lane l selects scale l (+ a per-step base): one sub-block of 16 per lane.
  const __m512i lane_index =
      _mm512_cvtepu8_epi16(_mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i sc16 = _mm512_zextsi256_si512(
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales))));
    __m512i sumi = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      // Elements 128h + 0..63 (g = 0, 1) and 128h + 64..127 (g = 2, 3): low bits from the low /
      // high nibbles of ql[64h..64h+63], high bits from qh[32h..] at shifts 0, 2 / 4, 6.
      const __m512i ql = load512(x[b].ql + 64 * h);
      const __m256i qh256 = load256(x[b].qh + 32 * h);
      const __m512i qh = concat(qh256, _mm256_srli_epi16(qh256, 2));
      for (int half = 0; half < 2; ++half) {
        const __m512i lo = half == 0 ? _mm512_and_si512(ql, low4)
                                     : _mm512_and_si512(_mm512_srli_epi16(ql, 4), low4);
        const __m512i hi = half == 0 ? _mm512_and_si512(qh, low2)
                                     : _mm512_and_si512(_mm512_srli_epi16(qh, 4), low2);
        const __m512i q = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
        const __m512i p = _mm512_maddubs_epi16(q, load512(y[b].qs + 128 * h + 64 * half));
        const __m512i scales = _mm512_permutexvar_epi16(
            _mm512_add_epi16(lane_index, _mm512_set1_epi16(static_cast<int16_t>(8 * h + 4 * half))),
            sc16);
        sumi = _mm512_dpwssd_epi32(sumi, p, scales);
      }
    }
    // q - 32: subtract 32 * sum(sc * bsum).
    const __m256i bias = _mm256_madd_epi16(_mm512_castsi512_si256(sc16), load256(y[b].bsums));
    sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(bias, 5)));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(half_to_float(x[b].d) * y[b].d),
                          acc);
  }
  return hsum(acc);
}

}  // namespace

namespace detail {

IsaDot avx512_dot(TensorType weight_type) {
  IsaDot d;
  switch (weight_type) {
    case TensorType::F32:
      d.vec_dot = vec_dot_float<Fmt::F32>;
      d.vec_dot_rows = vec_dot_float_rows<Fmt::F32>;
      return d;
    case TensorType::F16:
      d.vec_dot = vec_dot_float<Fmt::F16>;
      d.vec_dot_rows = vec_dot_float_rows<Fmt::F16>;
      return d;
    case TensorType::BF16:
      d.vec_dot = vec_dot_float<Fmt::BF16>;
      d.vec_dot_rows = vec_dot_float_rows<Fmt::BF16>;
      return d;
    default:
      break;
  }
  d.needs_vnni = true;
  switch (weight_type) {
    case TensorType::Q4_0:
      d.vec_dot = vec_dot_q4_0_q8_0;
      break;
    case TensorType::Q4_1:
      d.vec_dot = vec_dot_q4_1_q8_1;
      break;
    case TensorType::Q5_0:
      d.vec_dot = vec_dot_q5_0_q8_0;
      break;
    case TensorType::Q5_1:
      d.vec_dot = vec_dot_q5_1_q8_1;
      break;
    case TensorType::Q8_0:
      d.vec_dot = vec_dot_q8_0_q8_0;
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

ops::FromFloatFn avx512_from_float(TensorType dot_type) {
  switch (dot_type) {
    case TensorType::F16:
      return from_float_f16;
    default:
      return nullptr;
  }
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
IsaDot avx512_dot(TensorType) { return {}; }
ops::FromFloatFn avx512_from_float(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
