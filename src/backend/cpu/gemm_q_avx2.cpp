// AVX2 GEMM tiles (see GemmFn in kernels.h) for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights x Q8_0 /
// Q8_1 activations. Layout and integer tricks: gemm_q_tile.h. Here a panel is 8 weight rows (the
// int32 lanes of a ymm) and a micro-tile 8 rows x kRN tokens.
//
// AVX2 has no vpdpbusd: a step is vpmaddubsw (u8 x s8 -> pairs summed to int16, saturating) and
// vpmaddwd by ones (-> int32). The int16 pair sums of several steps are added before widening as
// long as they cannot overflow: |a| <= 127 (Q8 activations) and 4-bit quants give pairs of at most
// 2 * 15 * 127 = 3810, so all 8 steps of a block fit (30480); 5-bit ones 7874, 4 steps at a time;
// Q8_0 weights use |w| x sign(a, w) (as the AVX2 dots, no offset), one step at a time. The integer
// block sums are exactly the reference's.
//
// Floor (two 256-bit multiply pipes): a vpmaddubsw is 64 flop, so 128 flop/cycle at best; with the
// vpmaddwd / vmulps / vfmadd of each (block, 8 rows, token) Q4 reaches ~93 flop/cycle at most, Q8_0
// (vpmaddubsw + vpmaddwd per step) 64.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "backend/cpu/gemm_q_tile.h"

#define KANDIL_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

using gemm_q::ActBlock;
using gemm_q::Bits;

constexpr int kP = 8;                 // weight rows per panel (int32 lanes of a ymm)
constexpr int kSteps = ops::kQK / 4;  // 4-byte steps per block

// Bytes of one block of a packed panel: 8 quad vectors, the 8 scales, the 8 mins (if any).
template <class T>
constexpr size_t kPanelBlock = (kSteps + 1 + (T::has_min ? 1 : 0)) * 32;

// Steps whose int16 pair sums can be added before widening (see the top of the file).
template <class T>
constexpr int kGroup = T::bits == Bits::Q4   ? 8
                       : T::bits == Bits::Q5 ? 4
                                             : 1;

// Tokens per micro-tile (measured best; 16 ymm registers hold RN int16 group sums, RN int32 block
// sums, RN float accumulators and the operands).
template <class T>
constexpr int kRN = T::bits == Bits::Q4   ? 4
                    : T::bits == Bits::Q5 ? 3
                                          : 5;

// An empty asm that claims to modify v: without it GCC re-associates a group's chain of int16
// adds into a tree and hoists all its vpmaddubsw above it, which needs more than 16 registers and
// spills (measured 1.7x slower).
KANDIL_AVX2 inline void keep_in_register(__m256i& v) { __asm__("" : "+x"(v)); }

KANDIL_AVX2 inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Two 16-byte rows in the two 128-bit lanes.
KANDIL_AVX2 inline __m256i load2x128(const void* p0, const void* p1) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p0))),
      _mm_loadu_si128(static_cast<const __m128i*>(p1)), 1);
}

// 4x4 transpose of the dwords within each 128-bit lane: with v[q] holding rows q and q + 4, v[t]
// ends up holding dword t of rows 0..7 in order.
KANDIL_AVX2 inline void transpose4(__m256i v[4]) {
  const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]);
  const __m256i t1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]);
  const __m256i t3 = _mm256_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm256_unpacklo_epi64(t0, t2);
  v[1] = _mm256_unpackhi_epi64(t0, t2);
  v[2] = _mm256_unpacklo_epi64(t1, t3);
  v[3] = _mm256_unpackhi_epi64(t1, t3);
}

// Adds 16 (the fifth bit) to byte i of lane r of step k where bit 4k + i of row r's qh is set
// (qh: lane r = row r's 32 high bits).
KANDIL_AVX2 inline __m256i add_fifth_bit(__m256i q, __m256i qh, int k) {
  const int s = (k / 2) * 0x01010101;  // the qh byte holding bits 4k..4k+3, in all 4 bytes
  const __m256i spread =
      _mm256_shuffle_epi8(qh, _mm256_setr_epi32(s, 0x04040404 + s, 0x08080808 + s, 0x0C0C0C0C + s,
                                                s, 0x04040404 + s, 0x08080808 + s, 0x0C0C0C0C + s));
  const __m256i bit = _mm256_set1_epi32(static_cast<int>(0x08040201u << (4 * (k % 2))));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

// Scales (or mins) of the 8 rows as floats, zero in the lanes of missing rows.
KANDIL_AVX2 inline __m256 load_halves(const uint16_t* h, __m256 live) {
  return _mm256_and_ps(_mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h))), live);
}

// Packs `rows` (1..8) weight rows of nb blocks into the quad layout of gemm_q_tile.h. Missing rows
// repeat row 0 with zero scales and mins, so their lanes compute zeros (never stored).
template <class T>
KANDIL_AVX2 void pack_panel(const uint8_t* w, size_t w_stride, int rows, int64_t nb,
                            uint8_t* panel) {
  using W = typename T::W;
  const uint8_t* r[kP];
  for (int i = 0; i < kP; ++i) r[i] = w + static_cast<size_t>(i < rows ? i : 0) * w_stride;
  // Field f of block b of row i.
  const auto at = [&r](int i, int64_t b, size_t f) { return gemm_q::block_at<W>(r[i], b) + f; };
  constexpr size_t qs = offsetof(W, qs);
  const __m256 live = _mm256_castsi256_ps(
      _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* p = panel + static_cast<size_t>(b) * kPanelBlock<T>;
    __m256i v[4];
    if constexpr (T::bits == Bits::Q8) {
      for (int h = 0; h < 2; ++h) {  // bytes 16h..16h+15 of each row: steps 4h..4h+3
        for (int q = 0; q < 4; ++q) {
          v[q] = load2x128(at(q, b, qs + 16 * h), at(q + 4, b, qs + 16 * h));
        }
        transpose4(v);
        for (int t = 0; t < 4; ++t) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(p + 32 * (4 * h + t)), v[t]);
        }
      }
    } else {
      // qs dword t of a row: low nibbles = elements 4t..4t+3 (step t), high = 16+4t.. (step t+4).
      for (int q = 0; q < 4; ++q) v[q] = load2x128(at(q, b, qs), at(q + 4, b, qs));
      transpose4(v);
      __m256i qh = _mm256_setzero_si256();
      if constexpr (T::bits == Bits::Q5) {
        alignas(32) uint32_t h[kP];
        for (int i = 0; i < kP; ++i) std::memcpy(&h[i], at(i, b, offsetof(W, qh)), 4);
        qh = _mm256_load_si256(reinterpret_cast<const __m256i*>(h));
      }
      for (int t = 0; t < 4; ++t) {
        __m256i lo = _mm256_and_si256(v[t], low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v[t], 4), low4);
        if constexpr (T::bits == Bits::Q5) {
          lo = add_fifth_bit(lo, qh, t);
          hi = add_fifth_bit(hi, qh, t + 4);
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(p + 32 * t), lo);
        _mm256_store_si256(reinterpret_cast<__m256i*>(p + 32 * (t + 4)), hi);
      }
    }
    alignas(16) uint16_t d[kP];
    for (int i = 0; i < kP; ++i) d[i] = gemm_q::load_u16(at(i, b, offsetof(W, d)));
    _mm256_store_ps(reinterpret_cast<float*>(p + 32 * kSteps), load_halves(d, live));
    if constexpr (T::has_min) {
      for (int i = 0; i < kP; ++i) d[i] = gemm_q::load_u16(at(i, b, offsetof(W, m)));
      _mm256_store_ps(reinterpret_cast<float*>(p + 32 * (kSteps + 1)), load_halves(d, live));
    }
  }
}

// 8 packed rows x RN tokens (act: token 0 of the tile, blocks `cols` apart). Stores the rows
// selected by `live` (all-ones lanes) of out[j * out_stride + i].
template <class T, int RN>
KANDIL_AVX2 void tile(int64_t nb, const uint8_t* panel, const ActBlock* act, int64_t cols,
                      float* out, int64_t out_stride, __m256i live) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[RN];
  for (int j = 0; j < RN; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = panel + static_cast<size_t>(b) * kPanelBlock<T>;
    const ActBlock* ab = act + b * cols;
    __m256i sum[RN];
    for (int j = 0; j < RN; ++j) {
      sum[j] = T::offset != 0 ? _mm256_set1_epi32(ab[j].bias) : _mm256_setzero_si256();
    }
    for (int k0 = 0; k0 < kSteps; k0 += kGroup<T>) {
      __m256i pairs[RN];  // int16 pair sums of the group's steps (zeroed: the compiler folds
      for (int j = 0; j < RN; ++j) pairs[j] = _mm256_setzero_si256();  // the first add away)
      for (int k = k0; k < k0 + kGroup<T>; ++k) {
        const __m256i wq = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32 * k));
        for (int j = 0; j < RN; ++j) {
          const __m256i av = _mm256_set1_epi32(load_i32(ab[j].qs + 4 * k));
          __m256i prod;
          if constexpr (T::bits == Bits::Q8) {
            prod = _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(av, wq));
          } else {
            prod = _mm256_maddubs_epi16(wq, av);
          }
          pairs[j] = _mm256_add_epi16(pairs[j], prod);
          keep_in_register(pairs[j]);
        }
      }
      for (int j = 0; j < RN; ++j)
        sum[j] = _mm256_add_epi32(sum[j], _mm256_madd_epi16(pairs[j], ones));
    }
    const __m256 dw = _mm256_load_ps(reinterpret_cast<const float*>(p + 32 * kSteps));
    for (int j = 0; j < RN; ++j) {
      acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[j]),
                               _mm256_mul_ps(dw, _mm256_set1_ps(ab[j].d)), acc[j]);
    }
    if constexpr (T::has_min) {
      const __m256 mw = _mm256_load_ps(reinterpret_cast<const float*>(p + 32 * (kSteps + 1)));
      for (int j = 0; j < RN; ++j) acc[j] = _mm256_fmadd_ps(mw, _mm256_set1_ps(ab[j].s), acc[j]);
    }
  }
  for (int j = 0; j < RN; ++j) _mm256_maskstore_ps(out + j * out_stride, live, acc[j]);
}

// The last `left` (< RN) tokens of a panel, with the tile of exactly that width.
template <class T, int RN>
KANDIL_AVX2 void tile_tail(int64_t left, int64_t nb, const uint8_t* panel, const ActBlock* act,
                           int64_t cols, float* out, int64_t out_stride, __m256i live) {
  if constexpr (RN > 0) {
    if (left == RN) {
      tile<T, RN>(nb, panel, act, cols, out, out_stride, live);
    } else {
      tile_tail<T, RN - 1>(left, nb, panel, act, cols, out, out_stride, live);
    }
  }
}

template <class T, int RN = kRN<T>>
KANDIL_AVX2 void gemm(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a,
                      size_t a_stride, int64_t cols, float* out, int64_t out_stride) {
  const int64_t nb = n / ops::kQK;
  // Per-thread scratch, grown to the largest shape seen (matmul's tiles bound it).
  thread_local std::vector<gemm_q::Line> act_buf, panel_buf;
  auto* act = static_cast<ActBlock*>(
      gemm_q::scratch(act_buf, static_cast<size_t>(cols * nb) * sizeof(ActBlock)));
  gemm_q::repack_activations<T>(a, a_stride, cols, nb, T::offset, act);
  auto* panel =
      static_cast<uint8_t*>(gemm_q::scratch(panel_buf, static_cast<size_t>(nb) * kPanelBlock<T>));
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  for (int64_t i0 = 0; i0 < rows; i0 += kP) {
    const int live_rows = static_cast<int>(std::min<int64_t>(kP, rows - i0));
    const __m256i live =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(live_rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    pack_panel<T>(wb + static_cast<size_t>(i0) * w_stride, w_stride, live_rows, nb, panel);
    int64_t j = 0;
    for (; j + RN <= cols; j += RN) {
      tile<T, RN>(nb, panel, act + j, cols, out + j * out_stride + i0, out_stride, live);
    }
    if (j < cols) {
      tile_tail<T, RN - 1>(cols - j, nb, panel, act + j, cols, out + j * out_stride + i0,
                           out_stride, live);
    }
  }
}

}  // namespace

namespace detail {

GemmFn gemm_q_avx2(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::Q4_0:
      return gemm<gemm_q::Q4_0>;
    case TensorType::Q4_1:
      return gemm<gemm_q::Q4_1>;
    case TensorType::Q5_0:
      return gemm<gemm_q::Q5_0>;
    case TensorType::Q5_1:
      return gemm<gemm_q::Q5_1>;
    case TensorType::Q8_0:
      return gemm<gemm_q::Q8_0>;
    default:
      return nullptr;
  }
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
GemmFn gemm_q_avx2(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
