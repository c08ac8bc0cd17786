// AVX-512 flash-attention kernels (avx512f/bw/vl + f16c + fma): 16 floats per vector. The kernel
// body is shared with AVX2 (attention_kernel.h); this file supplies the vector operations.
#include "backend/cpu/attention.h"

#if defined(__x86_64__) || defined(__i386__)

// GCC 12's AVX-512 headers pass `_mm512_undefined_*()` as the pass-through operand of unmasked
// intrinsics, which -Wmaybe-uninitialized flags once inlined (GCC bug 105593); see
// kernels_avx512.cpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/quant_blocks.h"

#define KANDIL_ATTN_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

struct Simd {
  using F = __m512;
  static constexpr int W = 16;
  static constexpr int kCh = 4;  // 4 query rows x 4 vectors = 16 accumulators of 32 registers

  KANDIL_ATTN_TARGET static F zero() { return _mm512_setzero_ps(); }
  KANDIL_ATTN_TARGET static F set1(float x) { return _mm512_set1_ps(x); }
  KANDIL_ATTN_TARGET static F load(const float* p) { return _mm512_loadu_ps(p); }
  KANDIL_ATTN_TARGET static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  KANDIL_ATTN_TARGET static F add(F a, F b) { return _mm512_add_ps(a, b); }
  KANDIL_ATTN_TARGET static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  KANDIL_ATTN_TARGET static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  KANDIL_ATTN_TARGET static F max(F a, F b) { return _mm512_max_ps(a, b); }
  KANDIL_ATTN_TARGET static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  KANDIL_ATTN_TARGET static float hsum(F v) { return _mm512_reduce_add_ps(v); }
  KANDIL_ATTN_TARGET static float hmax(F v) { return _mm512_reduce_max_ps(v); }
  KANDIL_ATTN_TARGET static F load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  // Round to the nearest F16 value (ties to even, as f32_to_fp16) and back.
  KANDIL_ATTN_TARGET static F round_f16(F v) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  KANDIL_ATTN_TARGET static F load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // exp(x) for the softmax (x <= 0 there): Cephes' expf (range reduction by ln 2 in two parts,
  // degree-6 polynomial; ~1 ulp). Below -87.3 (where 2^n would leave the normal range) the result
  // is 0, which also turns the -inf padding of a partial tile into zero weights.
  KANDIL_ATTN_TARGET static F exp(F x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.3762626f));
    const F n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    F p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const F y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(keep, y, _mm512_castsi512_ps(e));
  }
};

#include "backend/cpu/attention_kernel.h"

}  // namespace

namespace detail {
FlashFn avx512_flash(TensorType kv_type) { return flash_for(kv_type); }
}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
FlashFn avx512_flash(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
