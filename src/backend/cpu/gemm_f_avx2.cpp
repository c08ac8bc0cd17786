// AVX2 GEMM tiles (see GemmFn in kernels.h) for F32, F16 and BF16 weights x F32 / F16 / BF16
// activations (the weight type's vec_dot_type). Same design as gemm_f_avx512.cpp, in 8-float ymm
// registers (16 of them):
//
// A micro-tile is kRM weight rows x kRN activation rows with one ymm accumulator per pair, reduced
// at the end. Per step of 8 elements the kRM weight vectors are loaded / converted once for the kRN
// tokens and each activation vector serves the kRM rows: 3 x 4 uses 12 accumulators + 3 weights +
// 1 activation = all 16 registers, 12 FMAs per 3 conversions + 4 loads. (4 x 3 has no register
// left for the activation and measured half as fast; 2 x 6 / 2 x 4 / 4 x 2 ~15-25% slower.)
//
// F16 / BF16 activations are converted once per call to F32 into a panel on the stack (kRN rows x
// kKc, zero-padded to whole vectors), so the inner loop converts only the weights; F32 activations
// are read in place. n is walked in blocks of kKc (later blocks add to the outputs).
//
// Only these functions are compiled for AVX2 + FMA + F16C (target attributes); dispatch
// (kernels.cpp) calls them only on CPUs that have all three.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#define KANDIL_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

enum class Fmt { F32, F16, BF16 };

constexpr int kRM = 3;         // weight rows per micro-tile
constexpr int kRN = 4;         // activation rows (tokens) per micro-tile
constexpr int64_t kKc = 1024;  // elements of n per pass (a multiple of 8)
// Panel row stride (floats): one cache line more than kKc, so the panel rows do not all map to
// the same L1 sets.
constexpr int64_t kPanelStride = kKc + 16;

template <Fmt F>
constexpr size_t kElemBytes = F == Fmt::F32 ? 4 : 2;

// 8 elements at p as F32 (F16: vcvtph2ps, exact; BF16: the 16 bits shifted into the high half).
template <Fmt F>
KANDIL_AVX2 inline __m256 load8(const uint8_t* p) {
  if constexpr (F == Fmt::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (F == Fmt::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
}

// The first `left` (< 8) elements at p, zeros after them; reads only those elements.
template <Fmt F>
KANDIL_AVX2 inline __m256 load8_tail(const uint8_t* p, int64_t left) {
  alignas(32) uint8_t buf[8 * kElemBytes<F>] = {};
  std::memcpy(buf, p, static_cast<size_t>(left) * kElemBytes<F>);
  return load8<F>(buf);
}

// The sums of the 8 lanes of a, b, c and d, as (sum a, sum b, sum c, sum d).
KANDIL_AVX2 inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  // Per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3), same for c, d.
  const __m256 ab = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
  const __m256 cd = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
  // Per 128-bit lane: (a, b, c, d) partial sums.
  const __m256 s = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// Reduces the accumulators acc[i][j] (i < RM, j < RN) and stores their sums at
// out[j * out_stride + i], adding to what is there when `add` (later passes over n).
template <int RM, int RN>
KANDIL_AVX2 inline void store_tile(const __m256 (&acc)[RM][RN], float* out, int64_t out_stride,
                                   bool add) {
  if constexpr (RM % 4 == 0) {  // four consecutive outputs of one token per reduce4
    for (int j = 0; j < RN; ++j) {
      for (int i = 0; i < RM; i += 4) {
        float* o = out + j * out_stride + i;
        __m128 s = reduce4(acc[i][j], acc[i + 1][j], acc[i + 2][j], acc[i + 3][j]);
        if (add) s = _mm_add_ps(s, _mm_loadu_ps(o));
        _mm_storeu_ps(o, s);
      }
    }
  } else {  // edge tiles: reduce in (j, i) order, store one by one
    constexpr int kCount = RM * RN, kGroups = (kCount + 3) / 4;
    __m256 flat[4 * kGroups];  // zero past the end
    for (int q = 0; q < 4 * kGroups; ++q) {
      flat[q] = q < kCount ? acc[q % RM][q / RM] : _mm256_setzero_ps();
    }
    float sums[4 * kGroups];
    for (int g = 0; g < kGroups; ++g) {
      _mm_storeu_ps(sums + 4 * g,
                    reduce4(flat[4 * g], flat[4 * g + 1], flat[4 * g + 2], flat[4 * g + 3]));
    }
    for (int j = 0; j < RN; ++j) {
      float* o = out + j * out_stride;
      for (int i = 0; i < RM; ++i) o[i] = add ? o[i] + sums[j * RM + i] : sums[j * RM + i];
    }
  }
}

// One micro-tile over k elements: RM weight rows (format W at w, w + w_stride, ... bytes) x RN
// activation rows (format A at a, a + a_stride, ... bytes), converted to F32. With A = F32 from
// the panel, the rows are zero-padded to whole vectors (pad_a): only the weights need a tail.
template <Fmt W, Fmt A, bool pad_a, int RM, int RN>
KANDIL_AVX2 void tile_fma(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* a,
                          size_t a_stride, float* out, int64_t out_stride, bool add) {
  __m256 acc[RM][RN];
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  int64_t e = 0;
  for (; e + 8 <= k; e += 8) {
    __m256 wv[RM];
    for (int i = 0; i < RM; ++i) wv[i] = load8<W>(w + i * w_stride + e * kElemBytes<W>);
    for (int j = 0; j < RN; ++j) {
      for (int i = 0; i < RM; ++i) {
        acc[i][j] =
            _mm256_fmadd_ps(wv[i], load8<A>(a + j * a_stride + e * kElemBytes<A>), acc[i][j]);
      }
    }
  }
  if (e < k) {  // tail: zeros beyond n on both sides
    __m256 wv[RM];
    for (int i = 0; i < RM; ++i) wv[i] = load8_tail<W>(w + i * w_stride + e * kElemBytes<W>, k - e);
    for (int j = 0; j < RN; ++j) {
      const uint8_t* ap = a + j * a_stride + e * kElemBytes<A>;
      const __m256 av = pad_a ? load8<A>(ap) : load8_tail<A>(ap, k - e);
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], av, acc[i][j]);
    }
  }
  store_tile<RM, RN>(acc, out, out_stride, add);
}

// Calls f(std::integral_constant<int, r>{}) for a runtime 1 <= r <= N: picks the micro-tile
// instantiation for the edge tiles.
template <int N, class F>
inline void with_count(int64_t r, F&& f) {
  if constexpr (N > 1) {
    if (r < N) return with_count<N - 1>(r, f);
  }
  f(std::integral_constant<int, N>{});
}

template <Fmt W>
KANDIL_AVX2 void gemm_float(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a,
                            size_t a_stride, int64_t cols, float* out, int64_t out_stride) {
  // On the stack (16 KiB; no allocation, and no per-thread storage for threads that never pack).
  alignas(32) float panel[W == Fmt::F32 ? 1 : kRN * kPanelStride];
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  constexpr bool in_place = W == Fmt::F32;  // F32 activations need no conversion
  for (int64_t j0 = 0; j0 < cols; j0 += kRN) {
    const int64_t rn = std::min<int64_t>(kRN, cols - j0);
    for (int64_t k0 = 0; k0 < n; k0 += kKc) {
      const int64_t kc = std::min(kKc, n - k0);
      const uint8_t* at = ab + j0 * a_stride + k0 * kElemBytes<W>;
      size_t at_stride = a_stride;
      if constexpr (!in_place) {
        for (int64_t j = 0; j < rn; ++j) {
          const uint8_t* src = at + j * a_stride;
          float* dst = panel + j * kPanelStride;
          int64_t e = 0;
          for (; e + 8 <= kc; e += 8) _mm256_storeu_ps(dst + e, load8<W>(src + e * kElemBytes<W>));
          if (e < kc) _mm256_storeu_ps(dst + e, load8_tail<W>(src + e * kElemBytes<W>, kc - e));
        }
        at = reinterpret_cast<const uint8_t*>(panel);
        at_stride = kPanelStride * sizeof(float);
      }
      for (int64_t i0 = 0; i0 < rows; i0 += kRM) {
        const int64_t rm = std::min<int64_t>(kRM, rows - i0);
        const uint8_t* wt = wb + i0 * w_stride + k0 * kElemBytes<W>;
        float* o = out + j0 * out_stride + i0;
        with_count<kRM>(rm, [&](auto RM) {
          with_count<kRN>(rn, [&](auto RN) {
            constexpr int kM = decltype(RM)::value, kN = decltype(RN)::value;
            tile_fma<W, Fmt::F32, !in_place, kM, kN>(kc, wt, w_stride, at, at_stride, o, out_stride,
                                                     k0 > 0);
          });
        });
      }
    }
  }
}

}  // namespace

namespace detail {

GemmFn gemm_f_avx2(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::F32:
      return gemm_float<Fmt::F32>;
    case TensorType::F16:
      return gemm_float<Fmt::F16>;
    case TensorType::BF16:
      return gemm_float<Fmt::BF16>;
    default:
      return nullptr;
  }
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
GemmFn gemm_f_avx2(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
