// ARM NEON kernels (AArch64, where Advanced SIMD is part of the baseline): float dots (F32, F16)
// and the integer dots of Q4_0 / Q8_0 weights against Q8_0 activations. Only baseline AArch64
// instructions are used (widening multiplies, no dotprod extension), so every AArch64 CPU runs
// them. As on x86, integer block sums equal the reference's; only float summation order differs.
// Checked against the scalar reference by tests/kernels_test.cpp when built on AArch64; the x86 CI
// compiles this file with an AArch64 cross-compiler (scripts/test.sh) so it keeps building.
#include "backend/cpu/kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#include "base/fp16.h"
#include "ops/quant_blocks.h"

namespace kandil::cpu {
namespace {

using ops::BlockQ4_0;
using ops::BlockQ8_0;
using ops::kQK;

float vec_dot_f32(int64_t n, const void* vx, const void* vy) {
  const float* x = static_cast<const float*>(vx);
  const float* y = static_cast<const float*>(vy);
  float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 4; ++k)
      acc[k] = vfmaq_f32(acc[k], vld1q_f32(x + i + 4 * k), vld1q_f32(y + i + 4 * k));
  }
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float vec_dot_f16(int64_t n, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  const uint16_t* y = static_cast<const uint16_t*>(vy);
  float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t xh = vreinterpretq_f16_u16(vld1q_u16(x + i));
    const float16x8_t yh = vreinterpretq_f16_u16(vld1q_u16(y + i));
    acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(xh)), vcvt_f32_f16(vget_low_f16(yh)));
    acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(xh), vcvt_high_f32_f16(yh));
  }
  float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) sum += fp16_to_f32(x[i]) * fp16_to_f32(y[i]);
  return sum;
}

// Sum of the 16 products of two int8x16 vectors, exact in int32.
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vpadalq_s16(vpadalq_s16(acc, lo), hi);
}

float vec_dot_q8_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32x4_t acc = vdupq_n_s32(0);
    acc = dot16(acc, vld1q_s8(x[b].qs), vld1q_s8(y[b].qs));
    acc = dot16(acc, vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs + 16));
    sum += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) * static_cast<float>(vaddvq_s32(acc));
  }
  return sum;
}

float vec_dot_q4_0_q8_0(int64_t n, const void* vx, const void* vy) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const uint8x16_t low_mask = vdupq_n_u8(0x0F);
  const int8x16_t eight = vdupq_n_s8(8);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint8x16_t q = vld1q_u8(x[b].qs);
    // Low nibbles are elements 0..15, high nibbles 16..31; both offset by 8.
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, low_mask)), eight);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    int32x4_t acc = vdupq_n_s32(0);
    acc = dot16(acc, lo, vld1q_s8(y[b].qs));
    acc = dot16(acc, hi, vld1q_s8(y[b].qs + 16));
    sum += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) * static_cast<float>(vaddvq_s32(acc));
  }
  return sum;
}

}  // namespace

namespace detail {

IsaDot neon_dot(TensorType weight_type) {
  IsaDot d;
  switch (weight_type) {
    case TensorType::F32:
      d.vec_dot = vec_dot_f32;
      break;
    case TensorType::F16:
      d.vec_dot = vec_dot_f16;
      break;
    case TensorType::Q4_0:
      d.vec_dot = vec_dot_q4_0_q8_0;
      break;
    case TensorType::Q8_0:
      d.vec_dot = vec_dot_q8_0_q8_0;
      break;
    default:
      break;
  }
  return d;
}

}  // namespace detail
}  // namespace kandil::cpu

#else  // not AArch64

namespace kandil::cpu::detail {
IsaDot neon_dot(TensorType) { return {}; }
}  // namespace kandil::cpu::detail

#endif
