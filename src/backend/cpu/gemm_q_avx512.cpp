// AVX-512 VNNI GEMM tiles (see GemmFn in kernels.h) for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights x
// Q8_0 / Q8_1 activations. Layout and integer tricks: gemm_q_tile.h. Here a panel is 16 weight
// rows (the int32 lanes of a zmm) and a micro-tile 2 panels x 4 tokens: per block and step, two
// weight vectors and one broadcast activation word per token feed 8 vpdpbusd; after the 8 steps
// the 2 x 4 accumulators hold the 32 rows' exact integer block sums for the 4 tokens, which are
// converted, scaled (d_w * d_a) and accumulated in float (8 accumulators). 32 zmm hold the 8 int
// sums, 8 float sums and the operands.
//
// Floor (Zen 5, ~3.3 GHz): 2 vpdpbusd of 64 byte products per cycle = 256 flop/cycle (845
// GFLOP/s). Per (block, 16 rows, token) the scheme needs 8 vpdpbusd + 1 vmulps + 1 vfmadd, all
// on the two multiply pipes, so ~80% of that (~675 GFLOP/s) is its ceiling; the packing of the
// weights (once per call and 16 rows) and of the activations (once per call) come on top.
// Measured in isolation ~600 GFLOP/s for 1024 x 2816 x 128 tokens on one core.
//
// Only these functions are compiled for AVX-512 + VNNI (target attributes); dispatch
// (kernels.cpp) uses them only where the CPU has avx512vnni, as for the integer dots.
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
#include <cstddef>
#include <cstring>
#include <vector>

#include "backend/cpu/gemm_q_tile.h"

#define KANDIL_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

using gemm_q::ActBlock;
using gemm_q::Bits;

constexpr int kP = 16;   // weight rows per panel (int32 lanes of a zmm)
constexpr int kMV = 2;   // panels per micro-tile (16 * kMV weight rows)
constexpr int kRN = 4;   // tokens per micro-tile (measured: 4 to 6 are within noise)
constexpr int kRN1 = 8;  // tokens per micro-tile of a lone panel (the last rows of a call)
constexpr int kSteps = ops::kQK / 4;  // 4-byte steps per block

// Bytes of one block of a packed panel: 8 quad vectors, the 16 scales, the 16 mins (if any).
template <class T>
constexpr size_t kPanelBlock = (kSteps + 1 + (T::has_min ? 1 : 0)) * 64;

// Offset of T's unsigned quants here: Q8_0 quants are stored as q + 128 (vpdpbusd needs unsigned
// weights; the integer sum stays exact).
template <class T>
constexpr int kOffset = T::bits == Bits::Q8 ? 128 : T::offset;

KANDIL_VNNI inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Four 16-byte rows in the four 128-bit lanes.
KANDIL_VNNI inline __m512i load4x128(const void* p0, const void* p1, const void* p2,
                                     const void* p3) {
  const auto ld = [](const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); };
  const __m512i lo = _mm512_inserti32x4(_mm512_castsi128_si512(ld(p0)), ld(p1), 1);
  return _mm512_inserti32x4(_mm512_inserti32x4(lo, ld(p2), 2), ld(p3), 3);
}

// 4x4 transpose of the dwords within each 128-bit lane: v[t] lane (c, q) <- v[q] lane (c, t).
// With v[q] holding rows q, q + 4, q + 8, q + 12 in its 128-bit lanes, v[t] ends up holding
// dword t of rows 0..15 in order.
KANDIL_VNNI inline void transpose4(__m512i v[4]) {
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm512_unpacklo_epi64(t0, t2);
  v[1] = _mm512_unpackhi_epi64(t0, t2);
  v[2] = _mm512_unpacklo_epi64(t1, t3);
  v[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Adds 16 (the fifth bit) to byte i of lane r of step k where bit 4k + i of row r's qh is set
// (qh: lane r = row r's 32 high bits).
KANDIL_VNNI inline __m512i add_fifth_bit(__m512i q, __m512i qh, int k) {
  const int s = (k / 2) * 0x01010101;  // the qh byte holding bits 4k..4k+3, in all 4 bytes
  const __m512i spread =
      _mm512_shuffle_epi8(qh, _mm512_set4_epi32(0x0C0C0C0C + s, 0x08080808 + s, 0x04040404 + s, s));
  const __m512i bit = _mm512_set1_epi32(static_cast<int>(0x08040201u << (4 * (k % 2))));
  return _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(spread, bit), q, _mm512_set1_epi8(16));
}

// Packs `rows` (1..16) weight rows of nb blocks into the quad layout of gemm_q_tile.h. Missing
// rows repeat row 0 with zero scales and mins, so their lanes compute zeros (never stored).
template <class T>
KANDIL_VNNI void pack_panel(const uint8_t* w, size_t w_stride, int rows, int64_t nb,
                            uint8_t* panel) {
  using W = typename T::W;
  const uint8_t* r[kP];
  for (int i = 0; i < kP; ++i) r[i] = w + static_cast<size_t>(i < rows ? i : 0) * w_stride;
  // Field f of block b of row i.
  const auto at = [&r](int i, int64_t b, size_t f) { return gemm_q::block_at<W>(r[i], b) + f; };
  constexpr size_t qs = offsetof(W, qs);
  const __mmask16 live = static_cast<__mmask16>((1u << rows) - 1);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* p = panel + static_cast<size_t>(b) * kPanelBlock<T>;
    __m512i v[4];
    if constexpr (T::bits == Bits::Q8) {
      for (int h = 0; h < 2; ++h) {  // bytes 16h..16h+15 of each row: steps 4h..4h+3
        for (int q = 0; q < 4; ++q) {
          v[q] = load4x128(at(q, b, qs + 16 * h), at(q + 4, b, qs + 16 * h),
                           at(q + 8, b, qs + 16 * h), at(q + 12, b, qs + 16 * h));
        }
        transpose4(v);
        for (int t = 0; t < 4; ++t) {
          _mm512_store_si512(p + 64 * (4 * h + t),
                             _mm512_xor_si512(v[t], _mm512_set1_epi8(static_cast<char>(0x80))));
        }
      }
    } else {
      // qs dword t of a row: low nibbles = elements 4t..4t+3 (step t), high = 16+4t.. (step t+4).
      for (int q = 0; q < 4; ++q) {
        v[q] = load4x128(at(q, b, qs), at(q + 4, b, qs), at(q + 8, b, qs), at(q + 12, b, qs));
      }
      transpose4(v);
      __m512i qh = _mm512_setzero_si512();
      if constexpr (T::bits == Bits::Q5) {
        alignas(64) uint32_t h[kP];
        for (int i = 0; i < kP; ++i) std::memcpy(&h[i], at(i, b, offsetof(W, qh)), 4);
        qh = _mm512_load_si512(h);
      }
      for (int t = 0; t < 4; ++t) {
        __m512i lo = _mm512_and_si512(v[t], low4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v[t], 4), low4);
        if constexpr (T::bits == Bits::Q5) {
          lo = add_fifth_bit(lo, qh, t);
          hi = add_fifth_bit(hi, qh, t + 4);
        }
        _mm512_store_si512(p + 64 * t, lo);
        _mm512_store_si512(p + 64 * (t + 4), hi);
      }
    }
    alignas(32) uint16_t d[kP];
    for (int i = 0; i < kP; ++i) d[i] = gemm_q::load_u16(at(i, b, offsetof(W, d)));
    _mm512_store_ps(
        p + 64 * kSteps,
        _mm512_maskz_mov_ps(
            live, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d)))));
    if constexpr (T::has_min) {
      for (int i = 0; i < kP; ++i) d[i] = gemm_q::load_u16(at(i, b, offsetof(W, m)));
      _mm512_store_ps(
          p + 64 * (kSteps + 1),
          _mm512_maskz_mov_ps(
              live, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d)))));
    }
  }
}

// MV panels of 16 packed rows (MV = 1 or 2 zmm of rows) x RN tokens (act: token 0 of the tile,
// blocks `cols` apart). With MV = 2 each broadcast activation word feeds two vpdpbusd, halving the
// loads per multiply. Stores the `live` rows of out[j * out_stride + 16 v + i].
template <class T, int MV, int RN>
KANDIL_VNNI void tile(int64_t nb, const uint8_t* const* panels, const ActBlock* act, int64_t cols,
                      float* out, int64_t out_stride, const __mmask16* live) {
  __m512 acc[MV][RN];
  for (int v = 0; v < MV; ++v) {
    for (int j = 0; j < RN; ++j) acc[v][j] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p[MV];
    for (int v = 0; v < MV; ++v) p[v] = panels[v] + static_cast<size_t>(b) * kPanelBlock<T>;
    const ActBlock* ab = act + b * cols;
    __m512i sum[MV][RN];
    for (int j = 0; j < RN; ++j) {
      const __m512i init = kOffset<T> != 0 ? _mm512_set1_epi32(ab[j].bias) : _mm512_setzero_si512();
      for (int v = 0; v < MV; ++v) sum[v][j] = init;
    }
    for (int k = 0; k < kSteps; ++k) {
      __m512i wq[MV];
      for (int v = 0; v < MV; ++v) wq[v] = _mm512_load_si512(p[v] + 64 * k);
      for (int j = 0; j < RN; ++j) {
        const __m512i av = _mm512_set1_epi32(load_i32(ab[j].qs + 4 * k));
        for (int v = 0; v < MV; ++v) sum[v][j] = _mm512_dpbusd_epi32(sum[v][j], wq[v], av);
      }
    }
    for (int v = 0; v < MV; ++v) {
      const __m512 dw = _mm512_load_ps(p[v] + 64 * kSteps);
      for (int j = 0; j < RN; ++j) {
        acc[v][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[v][j]),
                                    _mm512_mul_ps(dw, _mm512_set1_ps(ab[j].d)), acc[v][j]);
      }
      if constexpr (T::has_min) {
        const __m512 mw = _mm512_load_ps(p[v] + 64 * (kSteps + 1));
        for (int j = 0; j < RN; ++j) {
          acc[v][j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(ab[j].s), acc[v][j]);
        }
      }
    }
  }
  for (int v = 0; v < MV; ++v) {
    for (int j = 0; j < RN; ++j) {
      _mm512_mask_storeu_ps(out + j * out_stride + kP * v, live[v], acc[v][j]);
    }
  }
}

// The last `left` (< RN) tokens, with the tile of exactly that width.
template <class T, int MV, int RN>
KANDIL_VNNI void tile_tail(int64_t left, int64_t nb, const uint8_t* const* panels,
                           const ActBlock* act, int64_t cols, float* out, int64_t out_stride,
                           const __mmask16* live) {
  if constexpr (RN > 0) {
    if (left == RN) {
      tile<T, MV, RN>(nb, panels, act, cols, out, out_stride, live);
    } else {
      tile_tail<T, MV, RN - 1>(left, nb, panels, act, cols, out, out_stride, live);
    }
  }
}

// All `cols` tokens over MV packed panels.
template <class T, int MV, int RN>
KANDIL_VNNI void run_panels(int64_t nb, const uint8_t* const* panels, const ActBlock* act,
                            int64_t cols, float* out, int64_t out_stride, const __mmask16* live) {
  int64_t j = 0;
  for (; j + RN <= cols; j += RN) {
    tile<T, MV, RN>(nb, panels, act + j, cols, out + j * out_stride, out_stride, live);
  }
  if (j < cols) {
    tile_tail<T, MV, RN - 1>(cols - j, nb, panels, act + j, cols, out + j * out_stride, out_stride,
                             live);
  }
}

template <class T, int MV = kMV, int RN = kRN, int RN1 = kRN1>
KANDIL_VNNI void gemm(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a,
                      size_t a_stride, int64_t cols, float* out, int64_t out_stride) {
  const int64_t nb = n / ops::kQK;
  // Per-thread scratch, grown to the largest shape seen (matmul's tiles bound it).
  thread_local std::vector<gemm_q::Line> act_buf, panel_buf;
  auto* act = static_cast<ActBlock*>(
      gemm_q::scratch(act_buf, static_cast<size_t>(cols * nb) * sizeof(ActBlock)));
  gemm_q::repack_activations<T>(a, a_stride, cols, nb, kOffset<T>, act);
  const size_t panel_bytes = static_cast<size_t>(nb) * kPanelBlock<T>;
  auto* panel_base = static_cast<uint8_t*>(gemm_q::scratch(panel_buf, MV * panel_bytes));
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  for (int64_t i0 = 0; i0 < rows; i0 += MV * kP) {
    // Panels of this step: MV full-width ones, or as few as the rows left need.
    const uint8_t* panels[MV];
    __mmask16 live[MV];
    int used = 0;
    for (; used < MV && i0 + used * kP < rows; ++used) {
      const int64_t r0 = i0 + used * kP;
      const int n_rows = static_cast<int>(std::min<int64_t>(kP, rows - r0));
      uint8_t* panel = panel_base + used * panel_bytes;
      pack_panel<T>(wb + static_cast<size_t>(r0) * w_stride, w_stride, n_rows, nb, panel);
      panels[used] = panel;
      live[used] = static_cast<__mmask16>((1u << n_rows) - 1);
    }
    if (used == MV) {
      run_panels<T, MV, RN>(nb, panels, act, cols, out + i0, out_stride, live);
    } else {
      run_panels<T, 1, RN1>(nb, panels, act, cols, out + i0, out_stride, live);
    }
  }
}

}  // namespace

namespace detail {

GemmFn gemm_q_avx512(TensorType weight_type) {
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
GemmFn gemm_q_avx512(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
