// Shared parts of the legacy-quant GEMM tiles (gemm_q_avx512.cpp, gemm_q_avx2.cpp): the per-type
// descriptions and the activation repacking. x86 only: included inside those files' x86 sections.
//
// Design (both ISAs). A tile multiplies a *panel* of P weight rows (P = the int32 lanes of one
// vector: 16 for AVX-512, 8 for AVX2) by RN activation rows at a time. The panel is repacked once
// per gemm call into "quad" layout: for block b and step k = 0..7, one vector whose lane r holds
// elements 4k..4k+3 of row r as unsigned bytes, followed by the P row scales (and mins). A step is
// then one u8 x s8 multiply-accumulate (vpdpbusd; maddubs + madd on AVX2) of that vector with
// four activation bytes broadcast to every lane: after 8 steps lane r holds row r's *complete*
// integer block sum, so the float work (convert, scale, accumulate) is one vector op each per
// (block, P rows, token) instead of per (block, row, token), and no horizontal reduction is left
// at the end. Each weight vector is loaded once per RN tokens, each activation word once per
// micro-tile (P or 2P rows).
//
// Unsigned weights: Q4_0 / Q5_0 use the raw nibble / 5-bit value q and Q8_0 (AVX-512) q + 128; the
// offset is removed exactly in integer arithmetic by starting the block's accumulator at
// bias = -offset * sum(activation block) (computed once per activation block, shared by all rows).
// Q4_1 / Q5_1 need no offset; their min term m * s is one more FMA per (block, token).
#pragma once

#include <cstddef>  // offsetof
#include <cstdint>
#include <cstring>
#include <vector>

#include <immintrin.h>

#include "ops/quant_blocks.h"

namespace kandil::cpu::gemm_q {

enum class Bits { Q4, Q5, Q8 };

// One legacy weight type: its block, its activation block (Q8_0 or Q8_1), how its quants are
// stored, whether it has a min (x = d * q + m) and the offset of its unsigned quants (x = d * (q -
// offset)).
template <class WBlock, class ABlock, Bits B, bool Min, int Offset>
struct QType {
  using W = WBlock;
  using A = ABlock;
  static constexpr Bits bits = B;
  static constexpr bool has_min = Min;
  static constexpr int offset = Offset;
};

using Q4_0 = QType<ops::BlockQ4_0, ops::BlockQ8_0, Bits::Q4, false, 8>;
using Q4_1 = QType<ops::BlockQ4_1, ops::BlockQ8_1, Bits::Q4, true, 0>;
using Q5_0 = QType<ops::BlockQ5_0, ops::BlockQ8_0, Bits::Q5, false, 16>;
using Q5_1 = QType<ops::BlockQ5_1, ops::BlockQ8_1, Bits::Q5, true, 0>;
using Q8_0 = QType<ops::BlockQ8_0, ops::BlockQ8_0, Bits::Q8, false, 0>;  // offset: per ISA

// One activation block, repacked: the 32 quants, the float scale, and either the integer start
// value of the block sum (types with an offset) or the float s = d * sum(q) (Q8_1, for the min
// term). Stored block-major ([block][token]) so a tile reads its RN tokens at fixed displacements
// from one pointer.
struct ActBlock {
  int8_t qs[ops::kQK];
  float d;
  union {
    int32_t bias;
    float s;
  };
};
static_assert(sizeof(ActBlock) == 40);

// A 64-byte aligned, grow-only scratch buffer per thread (panels and repacked activations): no
// allocation per call once it has reached the size the shapes need.
struct alignas(64) Line {
  uint8_t bytes[64];
};
inline void* scratch(std::vector<Line>& buf, size_t bytes) {
  const size_t lines = (bytes + sizeof(Line) - 1) / sizeof(Line);
  if (buf.size() < lines) buf.resize(lines);
  return buf.data();
}

// Blocks are read through byte pointers (field = block + offsetof(Block, field)) and memcpy: rows
// need not be aligned for the blocks' 2-byte fields.
template <class Block>
inline const uint8_t* block_at(const uint8_t* row, int64_t b) {
  return row + static_cast<size_t>(b) * sizeof(Block);
}
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Repacks `cols` activation rows of nb blocks into out[b * cols + j]; `offset` is the weight
// quants' offset (0: store s for the min term instead of a bias). Runs once per gemm call, and
// matmul makes a call per chunk of weight rows, so it is vectorized (AVX2 + F16C, which both
// tile ISAs include).
template <class T>
__attribute__((target("avx2,fma,f16c"))) void repack_activations(const void* a, size_t a_stride,
                                                                 int64_t cols, int64_t nb,
                                                                 int offset, ActBlock* out) {
  using A = typename T::A;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t j = 0; j < cols; ++j) {
    const uint8_t* row = static_cast<const uint8_t*>(a) + static_cast<size_t>(j) * a_stride;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = block_at<A>(row, b);
      ActBlock& o = out[b * cols + j];
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(A, qs)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs), q);
      o.d = _cvtsh_ss(load_u16(blk + offsetof(A, d)));
      if constexpr (T::has_min) {
        o.s = _cvtsh_ss(load_u16(blk + offsetof(A, s)));
      } else {
        // vpsadbw against zero sums each 8 bytes of q + 128 (as unsigned).
        const __m256i s4 = _mm256_sad_epu8(_mm256_xor_si256(q, flip), _mm256_setzero_si256());
        const __m128i s2 =
            _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        const int32_t sum =
            _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2))) - ops::kQK * 128;
        o.bias = -offset * sum;
      }
    }
  }
}

}  // namespace kandil::cpu::gemm_q
