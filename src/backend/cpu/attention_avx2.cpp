// AVX2 flash-attention kernels (avx2 + fma + f16c): 8 floats per vector. The kernel body is shared
// with AVX-512 (attention_kernel.h); this file supplies the vector operations.
#include "backend/cpu/attention.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/quant_blocks.h"

#define KANDIL_ATTN_TARGET __attribute__((target("avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

struct Simd {
  using F = __m256;
  static constexpr int W = 8;
  static constexpr int kCh = 2;  // 4 query rows x 2 vectors = 8 accumulators of 16 registers

  KANDIL_ATTN_TARGET static F zero() { return _mm256_setzero_ps(); }
  KANDIL_ATTN_TARGET static F set1(float x) { return _mm256_set1_ps(x); }
  KANDIL_ATTN_TARGET static F load(const float* p) { return _mm256_loadu_ps(p); }
  KANDIL_ATTN_TARGET static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  KANDIL_ATTN_TARGET static F add(F a, F b) { return _mm256_add_ps(a, b); }
  KANDIL_ATTN_TARGET static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  KANDIL_ATTN_TARGET static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  KANDIL_ATTN_TARGET static F max(F a, F b) { return _mm256_max_ps(a, b); }
  KANDIL_ATTN_TARGET static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  KANDIL_ATTN_TARGET static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  KANDIL_ATTN_TARGET static float hmax(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  KANDIL_ATTN_TARGET static F load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // Round to the nearest F16 value (ties to even, as f32_to_fp16) and back.
  KANDIL_ATTN_TARGET static F round_f16(F v) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  KANDIL_ATTN_TARGET static F load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // exp(x) as in attention_avx512.cpp (Cephes expf; 0 below -87.3).
  KANDIL_ATTN_TARGET static F exp(F x) {
    const F keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.3762626f));
    const F n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    F p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const F y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
  }
};

#include "backend/cpu/attention_kernel.h"

}  // namespace

namespace detail {
FlashFn avx2_flash(TensorType kv_type) { return flash_for(kv_type); }
}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
FlashFn avx2_flash(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
