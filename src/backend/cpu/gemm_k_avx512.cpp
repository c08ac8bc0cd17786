// AVX-512 VNNI GEMM tiles (see GemmFn in kernels.h) for K-quant weights (Q2_K .. Q6_K) x Q8_K
// activations; the scheme (rows in lanes, packed panels, exact integer sums) is in gemm_k_tile.h.
// Here a panel is 16 weight rows (the int32 lanes of a zmm) and a micro-tile 16 rows x 8 tokens:
// per sub-block and token, vpdpbusd (packed weight vector x 4 activation bytes broadcast to all
// lanes) gives the 16 rows' exact sums, one vpmulld applies the 16 sub-block scales, and the 8
// vpdpwssd of the pair vectors with the Q8_K bsums give the mins (or the offset correction).
// Floor per 16 rows x token x super-block: 64 vpdpbusd + 8 (Q4_K/Q5_K) or 16 (Q6_K, Q2_K, Q3_K)
// vpmulld + 8 vpdpwssd, plus a few adds and float ops.
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

#include <cstring>

#include "backend/cpu/gemm_k_tile.h"

#define KANDIL_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

using gemm_k::kActBsums;
using gemm_k::kActBytes;
using gemm_k::kActQs;
using gemm_k::Kind;

constexpr int kP = 16;  // weight rows per panel

// One super-block of a 16-row panel (layout: gemm_k_tile.h).
struct alignas(64) Panel {
  uint8_t q[64][64];    // q[k] lane r: elements 4k..4k+3 of row r, unsigned
  int32_t sc[16][kP];   // sub-block scales (8 used by Q4_K / Q5_K)
  int32_t pair[8][kP];  // int16 pairs against bsums dword p
  float d[kP];          // fp16 d of each row
  float dmin[kP];       // fp16 dmin (types with mins)
};

KANDIL_VNNI inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
KANDIL_VNNI inline float load_f32(const void* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

KANDIL_VNNI inline __m512i load128x4(const uint8_t* p0, const uint8_t* p1, const uint8_t* p2,
                                     const uint8_t* p3) {
  const auto ld = [](const uint8_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  };
  const __m512i lo = _mm512_inserti32x4(_mm512_castsi128_si512(ld(p0)), ld(p1), 1);
  return _mm512_inserti32x4(_mm512_inserti32x4(lo, ld(p2), 2), ld(p3), 3);
}

// The 16 bytes at offset `off` of each of the 16 rows, transposed: v[t] lane r = dword t of row
// r's window. v[q] starts with rows q, q + 4, q + 8, q + 12 in its 128-bit lanes; a 4x4 dword
// transpose inside each 128-bit lane then leaves rows 0..15 in order.
KANDIL_VNNI inline void window(const uint8_t* const r[kP], size_t off, __m512i v[4]) {
  for (int q = 0; q < 4; ++q)
    v[q] = load128x4(r[q] + off, r[q + 4] + off, r[q + 8] + off, r[q + 12] + off);
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm512_unpacklo_epi64(t0, t2);
  v[1] = _mm512_unpackhi_epi64(t0, t2);
  v[2] = _mm512_unpacklo_epi64(t1, t3);
  v[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Moves bit field `from` of every byte to bit `to` (a 32-bit shift; bits crossing into a
// neighbour byte land outside the field and are masked off by the caller).
KANDIL_VNNI inline __m512i move_bits(__m512i x, int from, int to) {
  if (from > to) return _mm512_srli_epi32(x, static_cast<unsigned>(from - to));
  if (from < to) return _mm512_slli_epi32(x, static_cast<unsigned>(to - from));
  return x;
}

KANDIL_VNNI inline __m512i bytes(int b) { return _mm512_set1_epi8(static_cast<char>(b)); }
// lo | (hi & mask) in one vpternlogd.
KANDIL_VNNI inline __m512i or_masked(__m512i lo, __m512i hi, __m512i mask) {
  return _mm512_ternarylogic_epi32(lo, hi, mask, 0xF8);  // a | (b & c)
}
KANDIL_VNNI inline void store(void* p, __m512i v) { _mm512_store_si512(p, v); }

// The fp16 at offset `off` of each row, as floats.
KANDIL_VNNI inline __m512 load_halves(const uint8_t* const r[kP], size_t off) {
  alignas(32) uint16_t h[kP];
  for (int i = 0; i < kP; ++i) std::memcpy(&h[i], r[i] + off, 2);
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(h)));
}

// Int32 lanes (lo, hi) -> int16 pairs (lo, hi).
KANDIL_VNNI inline __m512i pair16(__m512i lo, __m512i hi) {
  return _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(0xFFFF)),
                         _mm512_slli_epi32(hi, 16));
}

// ---- packing: one super-block of 16 rows (r[i] points at row i's block) -------------------------

// Q4_K / Q5_K header: d, dmin, the 8 scales and the 8 mins (pairs (m, m): a min multiplies both
// bsums of its 32-element sub-block).
KANDIL_VNNI inline void pack_k4_header(const uint8_t* const r[kP], Panel& p) {
  __m512i h[4];
  window(r, 0, h);
  _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h[0])));
  _mm512_store_ps(p.dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h[0], 16))));
  // As ops::unpack_k4_scale_bytes, on 16 rows at once: bytes of sc_lo / sc_hi = scales 0..3 / 4..7.
  const __m512i a = h[1], b = h[2], c = h[3];
  const __m512i sc_lo = _mm512_and_si512(a, bytes(0x3F));
  const __m512i m_lo = _mm512_and_si512(b, bytes(0x3F));
  const __m512i sc_hi =
      or_masked(_mm512_and_si512(c, bytes(0x0F)), _mm512_srli_epi32(a, 2), bytes(0x30));
  const __m512i m_hi = or_masked(_mm512_and_si512(_mm512_srli_epi32(c, 4), bytes(0x0F)),
                                 _mm512_srli_epi32(b, 2), bytes(0x30));
  const __m512i byte0 = _mm512_set1_epi32(0xFF);
  for (int s = 0; s < 4; ++s) {
    const unsigned sh = static_cast<unsigned>(8 * s);
    store(p.sc[s], _mm512_and_si512(_mm512_srli_epi32(sc_lo, sh), byte0));
    store(p.sc[s + 4], _mm512_and_si512(_mm512_srli_epi32(sc_hi, sh), byte0));
    const __m512i ml = _mm512_and_si512(_mm512_srli_epi32(m_lo, sh), byte0);
    const __m512i mh = _mm512_and_si512(_mm512_srli_epi32(m_hi, sh), byte0);
    store(p.pair[s], _mm512_or_si512(ml, _mm512_slli_epi32(ml, 16)));
    store(p.pair[s + 4], _mm512_or_si512(mh, _mm512_slli_epi32(mh, 16)));
  }
}

// Q4_K / Q5_K nibbles: qs dword D (c = D / 8, m = D % 8) holds elements 64c + 4m.. in its low
// nibbles (step 16c + m, sub-block 2c) and 64c + 32 + 4m.. in its high ones (step 16c + 8 + m,
// sub-block 2c + 1). Q5_K: the fifth bit of sub-block s is bit s of the qh dword m.
template <bool kQh>
KANDIL_VNNI inline void pack_k4_quants(const uint8_t* const r[kP], size_t qs_off, size_t qh_off,
                                       Panel& p) {
  __m512i qh[8];
  if constexpr (kQh) {
    window(r, qh_off, qh);
    window(r, qh_off + 16, qh + 4);
  }
  const __m512i low4 = bytes(0x0F), bit4 = bytes(0x10);
  for (int u = 0; u < 8; ++u) {
    __m512i v[4];
    window(r, qs_off + 16 * static_cast<size_t>(u), v);
    for (int t = 0; t < 4; ++t) {
      const int dw = 4 * u + t, c = dw / 8, m = dw % 8;
      __m512i lo = _mm512_and_si512(v[t], low4);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi32(v[t], 4), low4);
      if constexpr (kQh) {
        lo = or_masked(lo, move_bits(qh[m], 2 * c, 4), bit4);
        hi = or_masked(hi, move_bits(qh[m], 2 * c + 1, 4), bit4);
      }
      store(p.q[16 * c + m], lo);
      store(p.q[16 * c + 8 + m], hi);
    }
  }
}

// Q6_K: element 4k (h = k / 32, g = k % 32 / 8, l = k % 8): low 4 bits from ql dword
// 16h + 8(g % 2) + l (low nibble for g < 2), high 2 bits at 2g of qh dword 8h + l. Scales int8;
// pairs -32 * scale (the quant's offset of 32, folded into T).
KANDIL_VNNI inline void pack_q6_k(const uint8_t* const r[kP], Panel& p) {
  const __m512i low4 = bytes(0x0F), high2 = bytes(0x30);
  for (int h = 0; h < 2; ++h) {
    for (int u = 0; u < 2; ++u) {
      __m512i qh[4];
      window(r, 128 + 32 * static_cast<size_t>(h) + 16 * static_cast<size_t>(u), qh);
      for (int gp = 0; gp < 2; ++gp) {
        __m512i ql[4];
        window(r,
               64 * static_cast<size_t>(h) + 32 * static_cast<size_t>(gp) +
                   16 * static_cast<size_t>(u),
               ql);
        for (int t = 0; t < 4; ++t) {
          const int l = 4 * u + t;
          store(p.q[32 * h + 8 * gp + l],
                or_masked(_mm512_and_si512(ql[t], low4), move_bits(qh[t], 2 * gp, 4), high2));
          store(p.q[32 * h + 8 * (gp + 2) + l],
                or_masked(_mm512_and_si512(_mm512_srli_epi32(ql[t], 4), low4),
                          move_bits(qh[t], 2 * (gp + 2), 4), high2));
        }
      }
    }
  }
  __m512i s[4];
  window(r, offsetof(ops::BlockQ6_K, scales), s);
  __m512i sc[16];
  for (int i = 0; i < 16; ++i) {
    sc[i] =
        _mm512_srai_epi32(_mm512_slli_epi32(s[i / 4], static_cast<unsigned>(24 - 8 * (i % 4))), 24);
    store(p.sc[i], sc[i]);
  }
  for (int i = 0; i < 8; ++i) {
    store(p.pair[i], pair16(_mm512_mullo_epi32(sc[2 * i], _mm512_set1_epi32(-32)),
                            _mm512_mullo_epi32(sc[2 * i + 1], _mm512_set1_epi32(-32))));
  }
  _mm512_store_ps(p.d, load_halves(r, offsetof(ops::BlockQ6_K, d)));
}

// Q2_K / Q3_K low bits: element 4k (h = k / 32, g = k % 32 / 8, l = k % 8) at shift 2g of qs
// dword 8h + l. Q3_K: bit 2 is bit 4h + g of hmask dword l (q + 4 in [0, 7]).
template <bool kQ3>
KANDIL_VNNI inline void pack_q2_bits(const uint8_t* const r[kP], size_t qs_off, Panel& p) {
  __m512i hm[8];
  if constexpr (kQ3) {
    window(r, 0, hm);
    window(r, 16, hm + 4);
  }
  const __m512i low2 = bytes(0x03), bit2 = bytes(0x04);
  for (int u = 0; u < 4; ++u) {
    __m512i v[4];
    window(r, qs_off + 16 * static_cast<size_t>(u), v);
    for (int t = 0; t < 4; ++t) {
      const int dw = 4 * u + t, h = dw / 8, l = dw % 8;
      for (int g = 0; g < 4; ++g) {
        __m512i q = _mm512_and_si512(move_bits(v[t], 2 * g, 0), low2);
        if constexpr (kQ3) q = or_masked(q, move_bits(hm[l], 4 * h + g, 2), bit2);
        store(p.q[32 * h + 8 * g + l], q);
      }
    }
  }
}

// Q2_K scales: low nibble = scale, high nibble = min of sub-block i (of 16).
KANDIL_VNNI inline void pack_q2_k(const uint8_t* const r[kP], Panel& p) {
  pack_q2_bits<false>(r, offsetof(ops::BlockQ2_K, qs), p);
  __m512i s[4];
  window(r, 0, s);
  const __m512i nib = _mm512_set1_epi32(0x0F);
  __m512i m[16];
  for (int i = 0; i < 16; ++i) {
    const __m512i b = _mm512_srli_epi32(s[i / 4], static_cast<unsigned>(8 * (i % 4)));
    store(p.sc[i], _mm512_and_si512(b, nib));
    m[i] = _mm512_and_si512(_mm512_srli_epi32(b, 4), nib);
  }
  for (int i = 0; i < 8; ++i) store(p.pair[i], pair16(m[2 * i], m[2 * i + 1]));
  _mm512_store_ps(p.d, load_halves(r, offsetof(ops::BlockQ2_K, d)));
  _mm512_store_ps(p.dmin, load_halves(r, offsetof(ops::BlockQ2_K, dmin)));
}

// Q3_K scales (as ops::unpack_scale_q3_k): low nibble of scale i in scales[i % 8] (nibble i / 8),
// high 2 bits at 2 * (i / 4) of scales[8 + i % 4]; minus 32. Pairs -4 * scale (q - 4).
KANDIL_VNNI inline void pack_q3_k(const uint8_t* const r[kP], Panel& p) {
  pack_q2_bits<true>(r, offsetof(ops::BlockQ3_K, qs), p);
  __m512i s[4];  // window at scales - 4: s[1..3] = scale bytes 0..3, 4..7, 8..11
  window(r, offsetof(ops::BlockQ3_K, scales) - 4, s);
  const __m512i nib = _mm512_set1_epi32(0x0F), two = _mm512_set1_epi32(0x03);
  __m512i sc[16];
  for (int i = 0; i < 16; ++i) {
    const __m512i lo = _mm512_and_si512(
        _mm512_srli_epi32(s[1 + (i % 8) / 4], static_cast<unsigned>(8 * (i % 4) + 4 * (i / 8))),
        nib);
    const __m512i hi = _mm512_and_si512(
        _mm512_srli_epi32(s[3], static_cast<unsigned>(8 * (i % 4) + 2 * (i / 4))), two);
    sc[i] = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
    store(p.sc[i], sc[i]);
  }
  for (int i = 0; i < 8; ++i) {
    const __m512i zero = _mm512_setzero_si512();
    store(p.pair[i], pair16(_mm512_sub_epi32(zero, _mm512_slli_epi32(sc[2 * i], 2)),
                            _mm512_sub_epi32(zero, _mm512_slli_epi32(sc[2 * i + 1], 2))));
  }
  _mm512_store_ps(p.d, load_halves(r, offsetof(ops::BlockQ3_K, d)));
}

// ---- the tile -----------------------------------------------------------------------------------

template <Kind T>
struct Avx512K {
  static constexpr gemm_k::Spec kSpec = gemm_k::spec(T);
  static constexpr int kRows = kP;
  static constexpr int kCols = 8;   // tokens per micro-tile: 3 x 8 accumulators + operands
  static constexpr int kChunk = 4;  // super-blocks per packed chunk: 4 x 5.8 KiB stays in L1
  static constexpr size_t kBlockBytes = kSpec.block_bytes;
  using Packed = Panel;

  KANDIL_VNNI static void pack(const uint8_t* w, size_t w_stride, int live, int kc, Panel* out) {
    const uint8_t* r[kP];
    for (int b = 0; b < kc; ++b) {
      // Rows past `live` re-read row 0: their lanes compute finite garbage that is never stored.
      for (int i = 0; i < kP; ++i) {
        r[i] = w + static_cast<size_t>(i < live ? i : 0) * w_stride +
               static_cast<size_t>(b) * kBlockBytes;
      }
      Panel& p = out[b];
      if constexpr (T == Kind::Q4_K) {
        pack_k4_header(r, p);
        pack_k4_quants<false>(r, offsetof(ops::BlockQ4_K, qs), 0, p);
      } else if constexpr (T == Kind::Q5_K) {
        pack_k4_header(r, p);
        pack_k4_quants<true>(r, offsetof(ops::BlockQ5_K, qs), offsetof(ops::BlockQ5_K, qh), p);
      } else if constexpr (T == Kind::Q6_K) {
        pack_q6_k(r, p);
      } else if constexpr (T == Kind::Q2_K) {
        pack_q2_k(r, p);
      } else {
        pack_q3_k(r, p);
      }
    }
  }

  // 16 packed rows x RN tokens over kc super-blocks: a = token 0's first block, out = its 16
  // outputs (only the `live` first stored; added to when `accumulate`).
  template <int RN>
  KANDIL_VNNI static void tile(const Panel* panel, int kc, const uint8_t* a, size_t a_stride,
                               float* out, int64_t out_stride, int live, bool accumulate) {
    constexpr int kSub = kSpec.sub_blocks;
    constexpr int kSteps = 64 / kSub;  // 4-element steps per sub-block
    const __mmask16 mask = static_cast<__mmask16>((1u << live) - 1);
    __m512 acc[RN];
    for (int j = 0; j < RN; ++j) {
      acc[j] = accumulate ? _mm512_maskz_loadu_ps(mask, out + j * out_stride) : _mm512_setzero_ps();
    }
    for (int b = 0; b < kc; ++b) {
      const Panel& p = panel[b];
      const uint8_t* ab = a + static_cast<size_t>(b) * kActBytes;
      __m512i t[RN];
      for (int j = 0; j < RN; ++j) t[j] = _mm512_setzero_si512();
      for (int s = 0; s < kSub; ++s) {
        __m512i isum[RN];
        for (int j = 0; j < RN; ++j) isum[j] = _mm512_setzero_si512();
        for (int k = 0; k < kSteps; ++k) {
          const __m512i wq = _mm512_load_si512(p.q[s * kSteps + k]);
          const size_t off = kActQs + 4 * static_cast<size_t>(s * kSteps + k);
          for (int j = 0; j < RN; ++j) {
            isum[j] = _mm512_dpbusd_epi32(isum[j], wq,
                                          _mm512_set1_epi32(load_i32(ab + j * a_stride + off)));
          }
        }
        const __m512i sc = _mm512_load_si512(p.sc[s]);
        for (int j = 0; j < RN; ++j) t[j] = _mm512_add_epi32(t[j], _mm512_mullo_epi32(isum[j], sc));
      }
      __m512i m[RN];
      for (int j = 0; j < RN; ++j) m[j] = kSpec.has_min ? _mm512_setzero_si512() : t[j];
      for (int i = 0; i < 8; ++i) {
        const __m512i pv = _mm512_load_si512(p.pair[i]);
        const size_t off = kActBsums + 4 * static_cast<size_t>(i);
        for (int j = 0; j < RN; ++j) {
          m[j] =
              _mm512_dpwssd_epi32(m[j], pv, _mm512_set1_epi32(load_i32(ab + j * a_stride + off)));
        }
      }
      const __m512 dw = _mm512_load_ps(p.d);
      for (int j = 0; j < RN; ++j) {
        const __m512 da = _mm512_set1_ps(load_f32(ab + j * a_stride));
        if constexpr (kSpec.has_min) {
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t[j]), _mm512_mul_ps(dw, da), acc[j]);
          acc[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m[j]),
                                    _mm512_mul_ps(_mm512_load_ps(p.dmin), da), acc[j]);
        } else {
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m[j]), _mm512_mul_ps(dw, da), acc[j]);
        }
      }
    }
    for (int j = 0; j < RN; ++j) _mm512_mask_storeu_ps(out + j * out_stride, mask, acc[j]);
  }
};

template <Kind T>
void gemm(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a, size_t a_stride,
          int64_t cols, float* out, int64_t out_stride) {
  gemm_k::run<Avx512K<T>>(n, w, w_stride, rows, a, a_stride, cols, out, out_stride);
}

}  // namespace

namespace detail {

GemmFn gemm_k_avx512(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::Q2_K:
      return gemm<Kind::Q2_K>;
    case TensorType::Q3_K:
      return gemm<Kind::Q3_K>;
    case TensorType::Q4_K:
      return gemm<Kind::Q4_K>;
    case TensorType::Q5_K:
      return gemm<Kind::Q5_K>;
    case TensorType::Q6_K:
      return gemm<Kind::Q6_K>;
    default:
      return nullptr;
  }
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not x86

namespace kandil::cpu::detail {
GemmFn gemm_k_avx512(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
