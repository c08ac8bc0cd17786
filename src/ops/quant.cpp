// Reference kernels of the plain float types and the legacy 32-element quants (Q4_0 ... Q8_1), and
// the table of type traits. The K-quants live in quant_k.cpp. Layouts: quant_blocks.h.
//
// These are deliberately plain scalar loops: they are the oracle the optimized kernels are tested
// against. Quantizers reproduce ggml's reference (round-to-nearest) schemes; dots accumulate
// integer products inside a block and scale once per block, as ggml's CPU backend does.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"

namespace kandil::ops {
namespace {

// ---- plain float types --------------------------------------------------------------------------

void f32_to_float(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void f32_from_float(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
float vec_dot_f32(int64_t n, const void* vx, const void* vy) {
  const float* x = static_cast<const float*>(vx);
  const float* y = static_cast<const float*>(vy);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

void f16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(x[i]);
}
void f16_from_float(const float* src, void* dst, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(src[i]);
}
float vec_dot_f16(int64_t n, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  const uint16_t* y = static_cast<const uint16_t*>(vy);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_f32(x[i]) * fp16_to_f32(y[i]));
  return static_cast<float>(sum);
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(x[i]);
}
void bf16_from_float(const float* src, void* dst, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(src[i]);
}
float vec_dot_bf16(int64_t n, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  const uint16_t* y = static_cast<const uint16_t*>(vy);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_f32(x[i]) * bf16_to_f32(y[i]));
  return static_cast<float>(sum);
}

// ---- helpers of the legacy quants ---------------------------------------------------------------

int64_t num_blocks(int64_t n, int block) {
  assert(n % block == 0);
  return n / block;
}

// The value of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

// Element j of a 32-element block stored as nibbles: j < 16 in the low nibble of qs[j],
// j >= 16 in the high nibble of qs[j - 16].
inline int nibble(const uint8_t* qs, int j) {
  return j < kQK / 2 ? (qs[j] & 0x0F) : (qs[j - kQK / 2] >> 4);
}

inline uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline void store_u32(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

// The 5-bit quant j of a Q5_0 / Q5_1 block.
inline int quant5(const uint8_t* qs, uint32_t qh, int j) {
  return nibble(qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
}

// ---- Q4_0 ---------------------------------------------------------------------------------------

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = static_cast<float>(nibble(x[b].qs, j) - 8) * d;
  }
}

// The value of largest magnitude maps to -8; everything else rounds to nearest in [0, 15].
void quantize_q4_0(const float* src, void* dst, int64_t n) {
  BlockQ4_0* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float* x = src + b * kQK;
    const float d = signed_absmax(x, kQK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(x[j + kQK / 2] * id + 8.5f));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

float vec_dot_q4_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    int32_t sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += (nibble(x[b].qs, j) - 8) * y[b].qs[j];
    sum += static_cast<float>(sumi) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d);
  }
  return sum;
}

// ---- Q4_1 ---------------------------------------------------------------------------------------

void dequantize_q4_1(const void* src, float* dst, int64_t n) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float m = fp16_to_f32(x[b].m);
    for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = static_cast<float>(nibble(x[b].qs, j)) * d + m;
  }
}

// min maps to 0 and max to 15.
void quantize_q4_1(const float* src, void* dst, int64_t n) {
  BlockQ4_1* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float* x = src + b * kQK;
    const auto [mn, mx] = std::minmax_element(x, x + kQK);
    const float min = *mn;
    const float d = (*mx - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    y[b].m = f32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, static_cast<int>((x[j] - min) * id + 0.5f));
      const int hi = std::min(15, static_cast<int>((x[j + kQK / 2] - min) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

float vec_dot_q4_1_q8_1(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    int32_t sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += nibble(x[b].qs, j) * y[b].qs[j];
    sum += (fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d)) * static_cast<float>(sumi) +
           fp16_to_f32(x[b].m) * fp16_to_f32(y[b].s);
  }
  return sum;
}

// ---- Q5_0 ---------------------------------------------------------------------------------------

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint32_t qh = load_u32(x[b].qh);
    for (int j = 0; j < kQK; ++j) {
      dst[b * kQK + j] = static_cast<float>(quant5(x[b].qs, qh, j) - 16) * d;
    }
  }
}

// The value of largest magnitude maps to -16; everything else rounds to nearest in [0, 31].
void quantize_q5_0(const float* src, void* dst, int64_t n) {
  BlockQ5_0* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float* x = src + b * kQK;
    const float d = signed_absmax(x, kQK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(31, static_cast<int>(x[j] * id + 16.5f));
      const int hi = std::min(31, static_cast<int>(x[j + kQK / 2] * id + 16.5f));
      y[b].qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + kQK / 2);
    }
    store_u32(y[b].qh, qh);
  }
}

float vec_dot_q5_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const uint32_t qh = load_u32(x[b].qh);
    int32_t sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += (quant5(x[b].qs, qh, j) - 16) * y[b].qs[j];
    sum += static_cast<float>(sumi) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d);
  }
  return sum;
}

// ---- Q5_1 ---------------------------------------------------------------------------------------

void dequantize_q5_1(const void* src, float* dst, int64_t n) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float m = fp16_to_f32(x[b].m);
    const uint32_t qh = load_u32(x[b].qh);
    for (int j = 0; j < kQK; ++j) {
      dst[b * kQK + j] = static_cast<float>(quant5(x[b].qs, qh, j)) * d + m;
    }
  }
}

// min maps to 0 and max to 31.
void quantize_q5_1(const float* src, void* dst, int64_t n) {
  BlockQ5_1* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float* x = src + b * kQK;
    const auto [mn, mx] = std::minmax_element(x, x + kQK);
    const float min = *mn;
    const float d = (*mx - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    y[b].m = f32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(31, static_cast<int>((x[j] - min) * id + 0.5f));
      const int hi = std::min(31, static_cast<int>((x[j + kQK / 2] - min) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + kQK / 2);
    }
    store_u32(y[b].qh, qh);
  }
}

float vec_dot_q5_1_q8_1(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(vx);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const uint32_t qh = load_u32(x[b].qh);
    int32_t sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += quant5(x[b].qs, qh, j) * y[b].qs[j];
    sum += (fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d)) * static_cast<float>(sumi) +
           fp16_to_f32(x[b].m) * fp16_to_f32(y[b].s);
  }
  return sum;
}

// ---- Q8_0 ---------------------------------------------------------------------------------------

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// Symmetric: amax maps to 127; rounding is half away from zero (roundf), as in ggml.
void quantize_q8_0(const float* src, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float* x = src + b * kQK;
    const float d = absmax(x, kQK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

float vec_dot_q8_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    int32_t sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += x[b].qs[j] * y[b].qs[j];
    sum += static_cast<float>(sumi) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d);
  }
  return sum;
}

// ---- Q8_1 ---------------------------------------------------------------------------------------

void dequantize_q8_1(const void* src, float* dst, int64_t n) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(src);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// As Q8_0, plus s = d * sum(q) for the min terms of Q4_1 / Q5_1 dots.
void quantize_q8_1(const float* src, void* dst, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < num_blocks(n, kQK); ++b) {
    const float* x = src + b * kQK;
    const float d = absmax(x, kQK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].d = f32_to_fp16(d);
    y[b].s = f32_to_fp16(static_cast<float>(sum) * d);
  }
}

// ---- table --------------------------------------------------------------------------------------

constexpr TypeTraits kTraits[] = {
    {TensorType::F32, 1, 4, f32_to_float, f32_from_float, vec_dot_f32, TensorType::F32},
    {TensorType::F16, 1, 2, f16_to_float, f16_from_float, vec_dot_f16, TensorType::F16},
    {TensorType::BF16, 1, 2, bf16_to_float, bf16_from_float, vec_dot_bf16, TensorType::BF16},
    {TensorType::Q4_0, kQK, sizeof(BlockQ4_0), dequantize_q4_0, quantize_q4_0, vec_dot_q4_0_q8_0,
     TensorType::Q8_0},
    {TensorType::Q4_1, kQK, sizeof(BlockQ4_1), dequantize_q4_1, quantize_q4_1, vec_dot_q4_1_q8_1,
     TensorType::Q8_1},
    {TensorType::Q5_0, kQK, sizeof(BlockQ5_0), dequantize_q5_0, quantize_q5_0, vec_dot_q5_0_q8_0,
     TensorType::Q8_0},
    {TensorType::Q5_1, kQK, sizeof(BlockQ5_1), dequantize_q5_1, quantize_q5_1, vec_dot_q5_1_q8_1,
     TensorType::Q8_1},
    {TensorType::Q8_0, kQK, sizeof(BlockQ8_0), dequantize_q8_0, quantize_q8_0, vec_dot_q8_0_q8_0,
     TensorType::Q8_0},
    {TensorType::Q8_1, kQK, sizeof(BlockQ8_1), dequantize_q8_1, quantize_q8_1, nullptr,
     TensorType::Q8_1},
    {TensorType::Q2_K, kQKK, sizeof(BlockQ2_K), dequantize_q2_k, quantize_q2_k, vec_dot_q2_k_q8_k,
     TensorType::Q8_K},
    {TensorType::Q3_K, kQKK, sizeof(BlockQ3_K), dequantize_q3_k, quantize_q3_k, vec_dot_q3_k_q8_k,
     TensorType::Q8_K},
    {TensorType::Q4_K, kQKK, sizeof(BlockQ4_K), dequantize_q4_k, quantize_q4_k, vec_dot_q4_k_q8_k,
     TensorType::Q8_K},
    {TensorType::Q5_K, kQKK, sizeof(BlockQ5_K), dequantize_q5_k, quantize_q5_k, vec_dot_q5_k_q8_k,
     TensorType::Q8_K},
    {TensorType::Q6_K, kQKK, sizeof(BlockQ6_K), dequantize_q6_k, quantize_q6_k, vec_dot_q6_k_q8_k,
     TensorType::Q8_K},
    {TensorType::Q8_K, kQKK, sizeof(BlockQ8_K), dequantize_q8_k, quantize_q8_k, nullptr,
     TensorType::Q8_K},
};

}  // namespace

const TypeTraits* type_traits(TensorType type) {
  for (const TypeTraits& t : kTraits) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

}  // namespace kandil::ops
