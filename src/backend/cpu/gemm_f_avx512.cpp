// AVX-512 GEMM tiles (see GemmFn in kernels.h) for F32, F16 and BF16 weights x F32 / F16 / BF16
// activations (the weight type's vec_dot_type).
//
// Layout: "dot" register tiles. A micro-tile is kRM weight rows x kRN activation rows; each of its
// kRM * kRN accumulators is a zmm of 16 partial sums along n, reduced to one float at the end. Per
// step of 16 elements, the kRM weight vectors are loaded (and converted to F32) once and serve the
// kRN tokens; each activation vector serves the kRM rows. With 4 x 6: 24 accumulators + 4 weights
// + 1 activation = 29 of the 32 zmm registers, and 24 FMAs per 4 conversions + 10 loads, so the two
// FMA pipes are the bottleneck (the weights need no repacking: they are read row-major as given).
// 4 x 6 measured best on Zen 5 (3 x 8, 6 x 4, 5 x 5, 2 x 12 were 4-25% slower): ~88% of the FMA
// peak on a warm 128 x 128 x 1024 tile for F16 and F32. Every accumulator is reduced by the same
// sequence of adds whichever tile and slot it sits in, so an output does not depend on the tiling.
//
// F16 / BF16 activations are converted to F32 once per call into a small panel on the stack (kRN
// rows x kKc elements, 24 KiB: stays in L1 while the weight rows stream through it from L2), so
// the inner loop converts only the weights. n is walked in blocks of kKc so the panel stays
// L1-sized for any n; partial sums of later blocks are added to the outputs (a different float
// summation order only). F32 activations are read in place (no conversion needed).
//
// BF16 x BF16 uses vdpbf16ps where the CPU has avx512bf16: it multiplies pairs of BF16 values
// exactly in F32 and adds them into F32 lanes, like the reference (exact BF16 products, F32 sums;
// only the order differs), as llama.cpp does. Unlike the scalar reference it treats denormal BF16
// inputs (|x| < 1.2e-38) and results as zero, a difference far below the float rounding of any
// realistic dot. Both operands stay BF16: no conversion at all, 32 elements per instruction, twice
// the FMA path's FLOPs per cycle.
//
// Only these functions are compiled for AVX-512 (target attributes); dispatch (kernels.cpp) calls
// them only where the CPU has avx512f/bw/vl (+ avx512bf16 for the vdpbf16ps path, checked here).
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

#include <algorithm>
#include <cstdint>
#include <utility>

#include "base/cpu_features.h"

#define KANDIL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define KANDIL_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

enum class Fmt { F32, F16, BF16 };

constexpr int kRM = 4;         // weight rows per micro-tile
constexpr int kRN = 6;         // activation rows (tokens) per micro-tile
constexpr int64_t kKc = 1024;  // elements of n per pass (a multiple of 32: BF16 pairs stay whole)
// Panel row stride (floats): one cache line more than kKc, so the panel rows do not all map to the
// same L1 sets.
constexpr int64_t kPanelStride = kKc + 16;

template <Fmt F>
constexpr size_t kElemBytes = F == Fmt::F32 ? 4 : 2;

// 16 elements at p as F32 (F16: vcvtph2ps, exact; BF16: the 16 bits shifted into the high half).
template <Fmt F>
KANDIL_AVX512 inline __m512 load16(const uint8_t* p) {
  if constexpr (F == Fmt::F32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (F == Fmt::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}

// The first elements of p selected by m (the others read as zero, and are not touched in memory).
template <Fmt F>
KANDIL_AVX512 inline __m512 load16_masked(const uint8_t* p, __mmask16 m) {
  if constexpr (F == Fmt::F32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (F == Fmt::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}

// The sums of the 16 lanes of a, b, c and d, as (sum a, sum b, sum c, sum d): 13 shuffles / adds
// for four reductions instead of 7 each plus the inserts. Each input goes through the same adds
// (the same summation order) whichever slot it takes.
KANDIL_AVX512 inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3), same for c, d.
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  // Per 128-bit lane: (a, b, c, d) partial sums.
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Reduces the accumulators acc[i][j] (i < RM, j < RN) and stores their sums at
// out[j * out_stride + i], adding to what is there when `add` (later passes over n). Groups of four
// accumulators share one reduce4.
template <int RM, int RN>
KANDIL_AVX512 inline void store_tile(const __m512 (&acc)[RM][RN], float* out, int64_t out_stride,
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
    __m512 flat[4 * kGroups];  // zero past the end
    for (int q = 0; q < 4 * kGroups; ++q) {
      flat[q] = q < kCount ? acc[q % RM][q / RM] : _mm512_setzero_ps();
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
// activation rows (format A at a, a + a_stride, ... bytes), both converted to F32.
template <Fmt W, Fmt A, int RM, int RN>
KANDIL_AVX512 void tile_fma(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* a,
                            size_t a_stride, float* out, int64_t out_stride, bool add) {
  __m512 acc[RM][RN];
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t e = 0;
  for (; e + 16 <= k; e += 16) {
    __m512 wv[RM];
    for (int i = 0; i < RM; ++i) wv[i] = load16<W>(w + i * w_stride + e * kElemBytes<W>);
    for (int j = 0; j < RN; ++j) {
      const __m512 av = load16<A>(a + j * a_stride + e * kElemBytes<A>);
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
    }
  }
  if (e < k) {  // masked tail: zeros beyond n on both sides
    const __mmask16 m = static_cast<__mmask16>((1u << (k - e)) - 1);
    __m512 wv[RM];
    for (int i = 0; i < RM; ++i) wv[i] = load16_masked<W>(w + i * w_stride + e * kElemBytes<W>, m);
    for (int j = 0; j < RN; ++j) {
      const __m512 av = load16_masked<A>(a + j * a_stride + e * kElemBytes<A>, m);
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
    }
  }
  store_tile<RM, RN>(acc, out, out_stride, add);
}

// BF16 x BF16 micro-tile with vdpbf16ps: 32 elements per step, both operands as stored.
template <int RM, int RN>
KANDIL_AVX512_BF16 void tile_bf16_dp(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* a,
                                     size_t a_stride, float* out, int64_t out_stride, bool add) {
  __m512 acc[RM][RN];
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t e = 0;
  for (; e + 32 <= k; e += 32) {
    __m512bh wv[RM];
    for (int i = 0; i < RM; ++i) wv[i] = (__m512bh)_mm512_loadu_si512(w + i * w_stride + 2 * e);
    for (int j = 0; j < RN; ++j) {
      const __m512bh av = (__m512bh)_mm512_loadu_si512(a + j * a_stride + 2 * e);
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[i], av);
    }
  }
  if (e < k) {  // masked tail: zero pairs beyond n
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (k - e)) - 1);
    __m512bh wv[RM];
    for (int i = 0; i < RM; ++i) {
      wv[i] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + i * w_stride + 2 * e);
    }
    for (int j = 0; j < RN; ++j) {
      const __m512bh av = (__m512bh)_mm512_maskz_loadu_epi16(m, a + j * a_stride + 2 * e);
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[i], av);
    }
  }
  store_tile<RM, RN>(acc, out, out_stride, add);
}

// Converts kc elements of rn activation rows (format W at src, src + stride, ...) to F32 rows of
// the panel.
template <Fmt W>
KANDIL_AVX512 void pack_panel(const uint8_t* src, size_t stride, int64_t rn, int64_t kc,
                              float* panel) {
  for (int64_t j = 0; j < rn; ++j) {
    const uint8_t* s = src + j * stride;
    float* d = panel + j * kPanelStride;
    int64_t e = 0;
    for (; e + 16 <= kc; e += 16) _mm512_storeu_ps(d + e, load16<W>(s + e * kElemBytes<W>));
    if (e < kc) {
      const __mmask16 m = static_cast<__mmask16>((1u << (kc - e)) - 1);
      _mm512_mask_storeu_ps(d + e, m, load16_masked<W>(s + e * kElemBytes<W>, m));
    }
  }
}

// The micro-tile families, for gemm_tiles: kElem bytes per stored element; kPack: activations go
// through the F32 panel.
template <Fmt W>
struct FmaTiles {
  static constexpr size_t kElem = kElemBytes<W>;
  static constexpr bool kPack = W != Fmt::F32;
  static void pack(const uint8_t* src, size_t stride, int64_t rn, int64_t kc, float* panel) {
    pack_panel<W>(src, stride, rn, kc, panel);
  }
  template <int M, int N>
  static void run(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* o,
                  int64_t os, bool add) {
    tile_fma<W, kPack ? Fmt::F32 : W, M, N>(k, w, ws, a, as, o, os, add);
  }
};

struct Bf16DotTiles {
  static constexpr size_t kElem = 2;
  static constexpr bool kPack = false;
  static void pack(const uint8_t*, size_t, int64_t, int64_t, float*) {}
  template <int M, int N>
  static void run(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* o,
                  int64_t os, bool add) {
    tile_bf16_dp<M, N>(k, w, ws, a, as, o, os, add);
  }
};

// Calls f(std::integral_constant<int, r>{}) for a runtime 1 <= r <= N: picks the micro-tile
// instantiation for the edge tiles.
template <int N, class F>
inline void with_count(int64_t r, F&& f) {
  if constexpr (N > 1) {
    if (r < N) return with_count<N - 1>(r, f);
  }
  f(std::integral_constant<int, N>{});
}

// The GemmFn: token blocks of kRN outside, passes of kKc elements, then all weight rows in tiles of
// kRM, so the block's activations (panel or in place) stay in L1 while the weight rows stream from
// L2. (Weight-panel-outer orders with activations from L2, row blocks and software prefetching
// all measured slower on Zen 5.)
template <class Tiles>
void gemm_tiles(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a,
                size_t a_stride, int64_t cols, float* out, int64_t out_stride) {
  // On the stack (25 KiB; no allocation, and no per-thread storage for threads that never pack).
  alignas(64) float panel[Tiles::kPack ? kPanelStride * kRN : 1];
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  constexpr size_t kElem = Tiles::kElem;
  for (int64_t j0 = 0; j0 < cols; j0 += kRN) {
    const int64_t rn = std::min<int64_t>(kRN, cols - j0);
    for (int64_t k0 = 0; k0 < n; k0 += kKc) {
      const int64_t kc = std::min(kKc, n - k0);
      const uint8_t* at = ab + j0 * a_stride + k0 * kElem;
      size_t at_stride = a_stride;
      if constexpr (Tiles::kPack) {
        Tiles::pack(at, a_stride, rn, kc, panel);
        at = reinterpret_cast<const uint8_t*>(panel);
        at_stride = kPanelStride * sizeof(float);
      }
      for (int64_t i0 = 0; i0 < rows; i0 += kRM) {
        const uint8_t* wt = wb + i0 * w_stride + k0 * kElem;
        float* o = out + j0 * out_stride + i0;
        with_count<kRM>(std::min<int64_t>(kRM, rows - i0), [&](auto RM) {
          with_count<kRN>(rn, [&](auto RN) {
            Tiles::template run<decltype(RM)::value, decltype(RN)::value>(
                kc, wt, w_stride, at, at_stride, o, out_stride, k0 > 0);
          });
        });
      }
    }
  }
}

}  // namespace

namespace detail {

GemmFn gemm_f_avx512(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::F32:
      return gemm_tiles<FmaTiles<Fmt::F32>>;
    case TensorType::F16:
      return gemm_tiles<FmaTiles<Fmt::F16>>;
    case TensorType::BF16:
      return cpu_features().avx512bf16 ? gemm_tiles<Bf16DotTiles> : gemm_tiles<FmaTiles<Fmt::BF16>>;
    default:
      return nullptr;
  }
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
GemmFn gemm_f_avx512(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
