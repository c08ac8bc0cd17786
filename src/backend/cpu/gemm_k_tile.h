// Shared scheme of the K-quant GEMM tiles (gemm_k_avx512.cpp, gemm_k_avx2.cpp): K-quant weights
// (Q2_K .. Q6_K) x Q8_K activations, see GemmFn in kernels.h.
//
// Weight rows go into the int32 lanes of a vector (P = 16 rows for AVX-512, 8 for AVX2): a panel
// of P rows is repacked, one chunk of super-blocks at a time, into
//   - q[k], k < 64: lane r = elements 4k..4k+3 of row r as unsigned bytes (the quant with its
//     offset, e.g. Q6_K's q in [0, 63] rather than q - 32),
//   - per sub-block scales, per-row float d (and dmin), and 8 "pair" vectors of int16 pairs that
//     multiply the 16 int16 bsums of a Q8_K block (two per int32),
// so the inner loop is: multiply q[k] with the activation's 4 bytes 4k..4k+3 broadcast to every
// lane (vpdpbusd on AVX-512; maddubs on AVX2) and accumulate per sub-block, then scale by the
// sub-block's integer scale. One packed weight vector serves the RN tokens of a micro-tile, one
// broadcast activation dword the P rows. Every integer sum is the reference's exactly:
//   T = sum_s scale_s * sum_{e in s} q_e * y_e  (+ sum_p pair_p . bsums_p for the types whose
//       offset or negative part folds into the integer: Q3_K -4 * scale, Q6_K -32 * scale)
//   M = sum_p pair_p . bsums_p                 (Q2_K, Q4_K, Q5_K mins, with their own float dmin)
// and per super-block out += (d_w * d_a) * T - (dmin_w * d_a) * M in float, as the reference does.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ops/quant_blocks.h"

namespace kandil::cpu::gemm_k {

// Byte offsets inside a Q8_K block.
inline constexpr size_t kActQs = offsetof(ops::BlockQ8_K, qs);
inline constexpr size_t kActBsums = offsetof(ops::BlockQ8_K, bsums);
inline constexpr size_t kActBytes = sizeof(ops::BlockQ8_K);

enum class Kind { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };

// Per-type facts the tiles need: sub-blocks per super-block (8 of 32 elements or 16 of 16),
// whether the pair sums are mins with their own dmin (else they fold into T), the largest
// unsigned quant (bounds the int16 partial sums of the AVX2 tile), and the block size.
struct Spec {
  int sub_blocks;
  bool has_min;
  int qmax;
  size_t block_bytes;
};
constexpr Spec spec(Kind k) {
  switch (k) {
    case Kind::Q2_K:
      return {16, true, 3, sizeof(ops::BlockQ2_K)};
    case Kind::Q3_K:
      return {16, false, 7, sizeof(ops::BlockQ3_K)};
    case Kind::Q4_K:
      return {8, true, 15, sizeof(ops::BlockQ4_K)};
    case Kind::Q5_K:
      return {8, true, 31, sizeof(ops::BlockQ5_K)};
    case Kind::Q6_K:
      break;
  }
  return {16, false, 63, sizeof(ops::BlockQ6_K)};
}

// Calls K::tile<left>() for the last `left` (< RN + 1) tokens of a panel: the micro-tile of
// exactly that width, so edge tiles run the same code with fewer accumulators.
template <class K, int RN, class... Args>
inline void tile_tail(int left, Args... args) {
  if constexpr (RN > 0) {
    if (left == RN) {
      K::template tile<RN>(args...);
    } else {
      tile_tail<K, RN - 1>(left, args...);
    }
  }
}

// The loop nest shared by both ISAs. K provides:
//   kRows (panel rows P), kCols (micro-tile tokens RN), kChunk (super-blocks packed at a time),
//   Packed (one packed super-block of a panel, 64-byte aligned),
//   pack(w, w_stride, live_rows, n_blocks, Packed*)   -- rows >= live_rows are don't-cares,
//   tile<RN>(const Packed*, n_blocks, a, a_stride, out, out_stride, live_rows, accumulate).
// Panels of P rows (each weight super-block is unpacked once per gemm call), chunks of kChunk
// super-blocks (the packed chunk stays in L1 while every token of the tile streams past it: a
// fixed stack buffer, no allocation), micro-tiles of RN tokens. Chunks after the first add to
// out, so any n works with the same buffer.
template <class K>
void run(int64_t n, const void* w, size_t w_stride, int64_t rows, const void* a, size_t a_stride,
         int64_t cols, float* out, int64_t out_stride) {
  const int64_t nb = n / ops::kQKK;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  typename K::Packed packed[K::kChunk];
  for (int64_t i0 = 0; i0 < rows; i0 += K::kRows) {
    const int live = static_cast<int>(std::min<int64_t>(K::kRows, rows - i0));
    for (int64_t b0 = 0; b0 < nb; b0 += K::kChunk) {
      const int kc = static_cast<int>(std::min<int64_t>(K::kChunk, nb - b0));
      K::pack(wb + static_cast<size_t>(i0) * w_stride + static_cast<size_t>(b0) * K::kBlockBytes,
              w_stride, live, kc, packed);
      // While this chunk's tiles run, fetch the next panel's chunk into L2: packing reads P
      // rows at once, a pattern the hardware prefetchers follow poorly.
      if (i0 + K::kRows < rows) {
        const size_t bytes = static_cast<size_t>(kc) * K::kBlockBytes;
        const int next = static_cast<int>(std::min<int64_t>(K::kRows, rows - i0 - K::kRows));
        for (int r = 0; r < next; ++r) {
          const uint8_t* p = wb + static_cast<size_t>(i0 + K::kRows + r) * w_stride +
                             static_cast<size_t>(b0) * K::kBlockBytes;
          for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 2);
        }
      }
      const uint8_t* a0 = ab + static_cast<size_t>(b0) * kActBytes;
      float* o0 = out + i0;
      int64_t j = 0;
      for (; j + K::kCols <= cols; j += K::kCols) {
        K::template tile<K::kCols>(packed, kc, a0 + static_cast<size_t>(j) * a_stride, a_stride,
                                   o0 + j * out_stride, out_stride, live, b0 > 0);
      }
      if (j < cols) {
        tile_tail<K, K::kCols - 1>(static_cast<int>(cols - j),
                                   static_cast<const typename K::Packed*>(packed), kc,
                                   a0 + static_cast<size_t>(j) * a_stride, a_stride,
                                   o0 + j * out_stride, out_stride, live, b0 > 0);
      }
    }
  }
}

}  // namespace kandil::cpu::gemm_k
