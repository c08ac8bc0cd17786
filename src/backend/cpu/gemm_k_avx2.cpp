// AVX2 GEMM tiles (see GemmFn in kernels.h) for K-quant weights (Q2_K .. Q6_K) x Q8_K
// activations; the scheme (rows in lanes, packed panels, exact integer sums) is in gemm_k_tile.h.
// Here a panel is 8 weight rows (the int32 lanes of a ymm) and a micro-tile 8 rows x 4 tokens.
// Without VNNI the products go through vpmaddubsw (unsigned weight x signed activation, pairs
// summed to int16): consecutive steps of one sub-block are summed in int16 as long as they cannot
// overflow (kGroup below), then one vpmaddwd with the sub-block scale widens to int32 -- the
// reference's integer sums, exactly.
//
// Only these functions are compiled for AVX2 + FMA + F16C (target attributes); dispatch
// (kernels.cpp) calls them only on CPUs that have all three.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstring>

#include "backend/cpu/gemm_k_tile.h"

#define KANDIL_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace kandil::cpu {
namespace {

using gemm_k::kActBsums;
using gemm_k::kActBytes;
using gemm_k::kActQs;
using gemm_k::Kind;

constexpr int kP = 8;  // weight rows per panel

// One super-block of an 8-row panel (layout: gemm_k_tile.h).
struct alignas(64) Panel {
  uint8_t q[64][32];    // q[k] lane r: elements 4k..4k+3 of row r, unsigned
  int32_t sc[16][kP];   // sub-block scales as int16 pairs (scale, scale), for vpmaddwd
  int32_t pair[8][kP];  // int16 pairs against bsums dword p
  float d[kP];          // fp16 d of each row
  float dmin[kP];       // fp16 dmin (types with mins)
};

KANDIL_AVX2 inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
KANDIL_AVX2 inline float load_f32(const void* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 16 bytes at offset `off` of each of the 8 rows, transposed: v[t] lane r = dword t of row
// r's window. v[q] starts with rows q, q + 4 in its 128-bit lanes; a 4x4 dword transpose inside
// each 128-bit lane then leaves rows 0..7 in order.
KANDIL_AVX2 inline void window(const uint8_t* const r[kP], size_t off, __m256i v[4]) {
  for (int q = 0; q < 4; ++q) {
    v[q] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(r[q + 4] + off),
                               reinterpret_cast<const __m128i*>(r[q] + off));
  }
  const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]);
  const __m256i t1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]);
  const __m256i t3 = _mm256_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm256_unpacklo_epi64(t0, t2);
  v[1] = _mm256_unpackhi_epi64(t0, t2);
  v[2] = _mm256_unpacklo_epi64(t1, t3);
  v[3] = _mm256_unpackhi_epi64(t1, t3);
}

// Moves bit field `from` of every byte to bit `to` (a 32-bit shift; bits crossing into a
// neighbour byte land outside the field and are masked off by the caller).
KANDIL_AVX2 inline __m256i move_bits(__m256i x, int from, int to) {
  if (from > to) return _mm256_srli_epi32(x, from - to);
  if (from < to) return _mm256_slli_epi32(x, to - from);
  return x;
}

KANDIL_AVX2 inline __m256i bytes(int b) { return _mm256_set1_epi8(static_cast<char>(b)); }
KANDIL_AVX2 inline __m256i or_masked(__m256i lo, __m256i hi, __m256i mask) {
  return _mm256_or_si256(lo, _mm256_and_si256(hi, mask));
}
KANDIL_AVX2 inline void store(void* p, __m256i v) {
  _mm256_store_si256(static_cast<__m256i*>(p), v);
}

// The fp16 at offset `off` of each row, as floats.
KANDIL_AVX2 inline __m256 load_halves(const uint8_t* const r[kP], size_t off) {
  alignas(16) uint16_t h[kP];
  for (int i = 0; i < kP; ++i) std::memcpy(&h[i], r[i] + off, 2);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

// Int32 lanes (lo, hi) -> int16 pairs (lo, hi).
KANDIL_AVX2 inline __m256i pair16(__m256i lo, __m256i hi) {
  return _mm256_blend_epi16(lo, _mm256_slli_epi32(hi, 16), 0xAA);
}
KANDIL_AVX2 inline void store_scale(int32_t* p, __m256i sc) { store(p, pair16(sc, sc)); }

// ---- packing: one super-block of 8 rows (r[i] points at row i's block) --------------------------

// Q4_K / Q5_K header: d, dmin, the 8 scales and the 8 mins (pairs (m, m): a min multiplies both
// bsums of its 32-element sub-block).
KANDIL_AVX2 inline void pack_k4_header(const uint8_t* const r[kP], Panel& p) {
  __m256i h[4];
  window(r, 0, h);
  _mm256_store_ps(p.d, load_halves(r, 0));
  _mm256_store_ps(p.dmin, load_halves(r, 2));
  // As ops::unpack_k4_scale_bytes, on 8 rows at once: bytes of sc_lo / sc_hi = scales 0..3 / 4..7.
  const __m256i a = h[1], b = h[2], c = h[3];
  const __m256i sc_lo = _mm256_and_si256(a, bytes(0x3F));
  const __m256i m_lo = _mm256_and_si256(b, bytes(0x3F));
  const __m256i sc_hi =
      or_masked(_mm256_and_si256(c, bytes(0x0F)), _mm256_srli_epi32(a, 2), bytes(0x30));
  const __m256i m_hi = or_masked(_mm256_and_si256(_mm256_srli_epi32(c, 4), bytes(0x0F)),
                                 _mm256_srli_epi32(b, 2), bytes(0x30));
  const __m256i byte0 = _mm256_set1_epi32(0xFF);
  for (int s = 0; s < 4; ++s) {
    store_scale(p.sc[s], _mm256_and_si256(_mm256_srli_epi32(sc_lo, 8 * s), byte0));
    store_scale(p.sc[s + 4], _mm256_and_si256(_mm256_srli_epi32(sc_hi, 8 * s), byte0));
    const __m256i ml = _mm256_and_si256(_mm256_srli_epi32(m_lo, 8 * s), byte0);
    const __m256i mh = _mm256_and_si256(_mm256_srli_epi32(m_hi, 8 * s), byte0);
    store(p.pair[s], pair16(ml, ml));
    store(p.pair[s + 4], pair16(mh, mh));
  }
}

// Q4_K / Q5_K nibbles: qs dword D (c = D / 8, m = D % 8) holds elements 64c + 4m.. in its low
// nibbles (step 16c + m, sub-block 2c) and 64c + 32 + 4m.. in its high ones (step 16c + 8 + m,
// sub-block 2c + 1). Q5_K: the fifth bit of sub-block s is bit s of the qh dword m.
template <bool kQh>
KANDIL_AVX2 inline void pack_k4_quants(const uint8_t* const r[kP], size_t qs_off, size_t qh_off,
                                       Panel& p) {
  __m256i qh[8];
  if constexpr (kQh) {
    window(r, qh_off, qh);
    window(r, qh_off + 16, qh + 4);
  }
  const __m256i low4 = bytes(0x0F), bit4 = bytes(0x10);
  for (int u = 0; u < 8; ++u) {
    __m256i v[4];
    window(r, qs_off + 16 * static_cast<size_t>(u), v);
    for (int t = 0; t < 4; ++t) {
      const int dw = 4 * u + t, c = dw / 8, m = dw % 8;
      __m256i lo = _mm256_and_si256(v[t], low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi32(v[t], 4), low4);
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
KANDIL_AVX2 inline void pack_q6_k(const uint8_t* const r[kP], Panel& p) {
  const __m256i low4 = bytes(0x0F), high2 = bytes(0x30);
  for (int h = 0; h < 2; ++h) {
    for (int u = 0; u < 2; ++u) {
      __m256i qh[4];
      window(r, 128 + 32 * static_cast<size_t>(h) + 16 * static_cast<size_t>(u), qh);
      for (int gp = 0; gp < 2; ++gp) {
        __m256i ql[4];
        window(r,
               64 * static_cast<size_t>(h) + 32 * static_cast<size_t>(gp) +
                   16 * static_cast<size_t>(u),
               ql);
        for (int t = 0; t < 4; ++t) {
          const int l = 4 * u + t;
          store(p.q[32 * h + 8 * gp + l],
                or_masked(_mm256_and_si256(ql[t], low4), move_bits(qh[t], 2 * gp, 4), high2));
          store(p.q[32 * h + 8 * (gp + 2) + l],
                or_masked(_mm256_and_si256(_mm256_srli_epi32(ql[t], 4), low4),
                          move_bits(qh[t], 2 * (gp + 2), 4), high2));
        }
      }
    }
  }
  __m256i s[4];
  window(r, offsetof(ops::BlockQ6_K, scales), s);
  __m256i sc[16];
  for (int i = 0; i < 16; ++i) {
    sc[i] = _mm256_srai_epi32(_mm256_slli_epi32(s[i / 4], 24 - 8 * (i % 4)), 24);
    store_scale(p.sc[i], sc[i]);
  }
  for (int i = 0; i < 8; ++i) {
    store(p.pair[i], pair16(_mm256_mullo_epi32(sc[2 * i], _mm256_set1_epi32(-32)),
                            _mm256_mullo_epi32(sc[2 * i + 1], _mm256_set1_epi32(-32))));
  }
  _mm256_store_ps(p.d, load_halves(r, offsetof(ops::BlockQ6_K, d)));
}

// Q2_K / Q3_K low bits: element 4k (h = k / 32, g = k % 32 / 8, l = k % 8) at shift 2g of qs
// dword 8h + l. Q3_K: bit 2 is bit 4h + g of hmask dword l (q + 4 in [0, 7]).
template <bool kQ3>
KANDIL_AVX2 inline void pack_q2_bits(const uint8_t* const r[kP], size_t qs_off, Panel& p) {
  __m256i hm[8];
  if constexpr (kQ3) {
    window(r, 0, hm);
    window(r, 16, hm + 4);
  }
  const __m256i low2 = bytes(0x03), bit2 = bytes(0x04);
  for (int u = 0; u < 4; ++u) {
    __m256i v[4];
    window(r, qs_off + 16 * static_cast<size_t>(u), v);
    for (int t = 0; t < 4; ++t) {
      const int dw = 4 * u + t, h = dw / 8, l = dw % 8;
      for (int g = 0; g < 4; ++g) {
        __m256i q = _mm256_and_si256(move_bits(v[t], 2 * g, 0), low2);
        if constexpr (kQ3) q = or_masked(q, move_bits(hm[l], 4 * h + g, 2), bit2);
        store(p.q[32 * h + 8 * g + l], q);
      }
    }
  }
}

// Q2_K scales: low nibble = scale, high nibble = min of sub-block i (of 16).
KANDIL_AVX2 inline void pack_q2_k(const uint8_t* const r[kP], Panel& p) {
  pack_q2_bits<false>(r, offsetof(ops::BlockQ2_K, qs), p);
  __m256i s[4];
  window(r, 0, s);
  const __m256i nib = _mm256_set1_epi32(0x0F);
  __m256i m[16];
  for (int i = 0; i < 16; ++i) {
    const __m256i b = _mm256_srli_epi32(s[i / 4], 8 * (i % 4));
    store_scale(p.sc[i], _mm256_and_si256(b, nib));
    m[i] = _mm256_and_si256(_mm256_srli_epi32(b, 4), nib);
  }
  for (int i = 0; i < 8; ++i) store(p.pair[i], pair16(m[2 * i], m[2 * i + 1]));
  _mm256_store_ps(p.d, load_halves(r, offsetof(ops::BlockQ2_K, d)));
  _mm256_store_ps(p.dmin, load_halves(r, offsetof(ops::BlockQ2_K, dmin)));
}

// Q3_K scales (as ops::unpack_scale_q3_k): low nibble of scale i in scales[i % 8] (nibble i / 8),
// high 2 bits at 2 * (i / 4) of scales[8 + i % 4]; minus 32. Pairs -4 * scale (q - 4).
KANDIL_AVX2 inline void pack_q3_k(const uint8_t* const r[kP], Panel& p) {
  pack_q2_bits<true>(r, offsetof(ops::BlockQ3_K, qs), p);
  __m256i s[4];  // window at scales - 4: s[1..3] = scale bytes 0..3, 4..7, 8..11
  window(r, offsetof(ops::BlockQ3_K, scales) - 4, s);
  const __m256i nib = _mm256_set1_epi32(0x0F), two = _mm256_set1_epi32(0x03);
  __m256i sc[16];
  for (int i = 0; i < 16; ++i) {
    const __m256i lo =
        _mm256_and_si256(_mm256_srli_epi32(s[1 + (i % 8) / 4], 8 * (i % 4) + 4 * (i / 8)), nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(s[3], 8 * (i % 4) + 2 * (i / 4)), two);
    sc[i] = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    store_scale(p.sc[i], sc[i]);
  }
  const __m256i zero = _mm256_setzero_si256();
  for (int i = 0; i < 8; ++i) {
    store(p.pair[i], pair16(_mm256_sub_epi32(zero, _mm256_slli_epi32(sc[2 * i], 2)),
                            _mm256_sub_epi32(zero, _mm256_slli_epi32(sc[2 * i + 1], 2))));
  }
  _mm256_store_ps(p.d, load_halves(r, offsetof(ops::BlockQ3_K, d)));
}

// ---- the tile -----------------------------------------------------------------------------------

template <Kind T>
struct Avx2K {
  static constexpr gemm_k::Spec kSpec = gemm_k::spec(T);
  static constexpr int kRows = kP;
  static constexpr int kCols = 4;   // tokens per micro-tile: 3 x 4 accumulators + operands
  static constexpr int kChunk = 8;  // super-blocks per packed chunk: 8 x 2.9 KiB stays in L1
  static constexpr size_t kBlockBytes = kSpec.block_bytes;
  using Packed = Panel;

  static constexpr int kSub = kSpec.sub_blocks;
  static constexpr int kSteps = 64 / kSub;  // 4-element steps per sub-block
  // Steps summed in int16 before widening: each vpmaddubsw lane is at most 2 * qmax * 128, and
  // kGroup of them must stay below 2^15 (Q4_K: 8, Q5_K: 4, Q6_K: 2; Q2_K / Q3_K: a sub-block).
  // The sums use the saturating vpaddsw (equal to vpaddw here, as nothing overflows): the
  // compiler may not reassociate it, which with vpaddw it did into a tree of all kGroup x RN
  // products at once, spilling most of them.
  static constexpr int group() {
    int g = kSteps;
    while (g * 2 * kSpec.qmax * 128 > 32767) g /= 2;
    return g;
  }
  static constexpr int kGroup = group();
  static_assert(kGroup >= 1 && kSteps % kGroup == 0);

  KANDIL_AVX2 static void pack(const uint8_t* w, size_t w_stride, int live, int kc, Panel* out) {
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

  // 8 packed rows x RN tokens over kc super-blocks: a = token 0's first block, out = its 8
  // outputs (only the `live` first stored; added to when `accumulate`).
  template <int RN>
  KANDIL_AVX2 static void tile(const Panel* panel, int kc, const uint8_t* a, size_t a_stride,
                               float* out, int64_t out_stride, int live, bool accumulate) {
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc[RN];
    for (int j = 0; j < RN; ++j) {
      acc[j] = accumulate ? _mm256_maskload_ps(out + j * out_stride, mask) : _mm256_setzero_ps();
    }
    for (int b = 0; b < kc; ++b) {
      const Panel& p = panel[b];
      const uint8_t* ab = a + static_cast<size_t>(b) * kActBytes;
      __m256i t[RN];
      for (int j = 0; j < RN; ++j) t[j] = _mm256_setzero_si256();
      for (int s = 0; s < kSub; ++s) {
        const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.sc[s]));
        for (int g = 0; g < kSteps; g += kGroup) {
          __m256i sum16[RN];
          for (int k = 0; k < kGroup; ++k) {
            const int step = s * kSteps + g + k;
            const __m256i wq = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[step]));
            const size_t off = kActQs + 4 * static_cast<size_t>(step);
            for (int j = 0; j < RN; ++j) {
              const __m256i prod =
                  _mm256_maddubs_epi16(wq, _mm256_set1_epi32(load_i32(ab + j * a_stride + off)));
              sum16[j] = k == 0 ? prod : _mm256_adds_epi16(sum16[j], prod);
            }
          }
          for (int j = 0; j < RN; ++j)
            t[j] = _mm256_add_epi32(t[j], _mm256_madd_epi16(sum16[j], sc));
        }
      }
      __m256i m[RN];
      for (int j = 0; j < RN; ++j) m[j] = kSpec.has_min ? _mm256_setzero_si256() : t[j];
        // Kept a loop: unrolled, the compiler computes all 8 x RN products before adding any.
#pragma GCC unroll 1
      for (int i = 0; i < 8; ++i) {
        const __m256i pv = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.pair[i]));
        const size_t off = kActBsums + 4 * static_cast<size_t>(i);
        for (int j = 0; j < RN; ++j) {
          m[j] = _mm256_add_epi32(
              m[j], _mm256_madd_epi16(pv, _mm256_set1_epi32(load_i32(ab + j * a_stride + off))));
        }
      }
      const __m256 dw = _mm256_load_ps(p.d);
      for (int j = 0; j < RN; ++j) {
        const __m256 da = _mm256_set1_ps(load_f32(ab + j * a_stride));
        if constexpr (kSpec.has_min) {
          acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[j]), _mm256_mul_ps(dw, da), acc[j]);
          acc[j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m[j]),
                                    _mm256_mul_ps(_mm256_load_ps(p.dmin), da), acc[j]);
        } else {
          acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m[j]), _mm256_mul_ps(dw, da), acc[j]);
        }
      }
    }
    for (int j = 0; j < RN; ++j) _mm256_maskstore_ps(out + j * out_stride, mask, acc[j]);
  }
};

template <Kind T>
void gemm(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a, size_t a_stride,
          int64_t cols, float* out, int64_t out_stride) {
  gemm_k::run<Avx2K<T>>(n, w, w_stride, rows, a, a_stride, cols, out, out_stride);
}

}  // namespace

namespace detail {

GemmFn gemm_k_avx2(TensorType weight_type) {
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
GemmFn gemm_k_avx2(TensorType) { return nullptr; }
}  // namespace kandil::cpu::detail

#endif
