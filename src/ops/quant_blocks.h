// Block layouts of the quantized tensor types, bit-exact with GGUF / ggml, plus the reference
// kernels of the K-quants (implemented in quant_k.cpp) so quant.cpp can list them in its table.
//
// Half-precision fields are stored as raw IEEE binary16 bits (uint16_t); convert with base/fp16.h.
// All structs are naturally packed (no padding): the static_asserts pin the sizes to GGUF's.
#pragma once

#include <cmath>
#include <cstdint>

namespace kandil::ops {

inline constexpr int kQK = 32;           // elements per block of the legacy types (Q4_0 ... Q8_1)
inline constexpr int kQKK = 256;         // elements per super-block of the K-quants
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales + mins of Q4_K / Q5_K (and Q3_K)

// Q4_0: x = d * (q - 8), q in [0, 15]. qs[j] holds element j in its low nibble, j + 16 in its high.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// Q4_1: x = d * q + m, q in [0, 15]; nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// Q5_0: x = d * (q - 16), q in [0, 31]. Low 4 bits as Q4_0; bit 4 of element j is bit j of qh
// (qh read as a little-endian uint32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// Q5_1: x = d * q + m, q in [0, 31]; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// Q8_0: x = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// Q8_1: x = d * q; s = d * sum(q) (computed with the unrounded d, then rounded to half).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};

// Q2_K: 16 sub-blocks of 16. scales[i]: low nibble = scale, high nibble = min of sub-block i;
// x = d * scale * q - dmin * min, q in [0, 3]. Element e: 2 bits at shift 2*((e%128)/32) of
// qs[32*(e/128) + e%32].
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
// Q3_K: 16 sub-blocks of 16 with 6-bit scales stored offset by 32; x = d * (scale - 32) * (q - 4),
// q in [0, 7]. Low 2 bits of element e as in Q2_K; bit 2 is bit (e/32) of hmask[e%32].
// Scale i: low nibble in scales[i%8] (nibble i/8), high 2 bits at shift 2*(i/4) of scales[8 + i%4].
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[kKScaleBytes];
  uint16_t d;
};
// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins; x = d * scale * q - dmin * min, q in [0,
// 15]. Element e: qs[32*(e/64) + e%32], low nibble if e%64 < 32 else high nibble. Scale/min packing
// of sub-block j: for j < 4, scales[j] and scales[j+4] (low 6 bits); for j >= 4, low 4 bits in the
// low / high nibble of scales[j+4], high 2 bits in the top bits of scales[j-4] / scales[j].
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};
// Q5_K: as Q4_K with a fifth bit: bit 4 of element e is bit (e/32) of qh[e%32]; q in [0, 31].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * scale * (q - 32), q in [0, 63].
// Element e (h = e/128, g = (e%128)/32, l = e%32): low 4 bits in ql[64h + 32*(g%2) + l]
// (low nibble for g < 2, high nibble otherwise), high 2 bits at shift 2g of qh[32h + l].
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
// Q8_K (activations of the K-quant dots): x = d * q with a float d; bsums[i] = sum of
// qs[16i..16i+15].
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Round to nearest, ties to even (the rounding ggml's K-quant quantizers use).
inline int nearest_int(float f) { return static_cast<int>(std::nearbyint(f)); }

// Scale (sc) and min (m) of sub-block j of a Q4_K / Q5_K block's packed 12 scale bytes.
inline void unpack_scale_min_k4(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Signed scale (already minus 32) of sub-block i of a Q3_K block.
inline int unpack_scale_q3_k(const uint8_t* s, int i) {
  const int lo = (s[i % 8] >> (4 * (i / 8))) & 0x0F;
  const int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 0x03;
  return (lo | (hi << 4)) - 32;
}

// K-quant reference kernels (quant_k.cpp). n is a multiple of 256.
void dequantize_q2_k(const void* src, float* dst, int64_t n);
void dequantize_q3_k(const void* src, float* dst, int64_t n);
void dequantize_q4_k(const void* src, float* dst, int64_t n);
void dequantize_q5_k(const void* src, float* dst, int64_t n);
void dequantize_q6_k(const void* src, float* dst, int64_t n);
void dequantize_q8_k(const void* src, float* dst, int64_t n);

void quantize_q2_k(const float* src, void* dst, int64_t n);
void quantize_q3_k(const float* src, void* dst, int64_t n);
void quantize_q4_k(const float* src, void* dst, int64_t n);
void quantize_q5_k(const float* src, void* dst, int64_t n);
void quantize_q6_k(const float* src, void* dst, int64_t n);
void quantize_q8_k(const float* src, void* dst, int64_t n);

float vec_dot_q2_k_q8_k(int64_t n, const void* x, const void* y);
float vec_dot_q3_k_q8_k(int64_t n, const void* x, const void* y);
float vec_dot_q4_k_q8_k(int64_t n, const void* x, const void* y);
float vec_dot_q5_k_q8_k(int64_t n, const void* x, const void* y);
float vec_dot_q6_k_q8_k(int64_t n, const void* x, const void* y);

}  // namespace kandil::ops
