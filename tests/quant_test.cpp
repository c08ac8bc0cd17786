// Tests of the reference kernels of every tensor type (src/ops/quant.*):
//  - traits table consistent with the GGUF layouts;
//  - F16 / BF16 conversions;
//  - quantize -> dequantize error within per-type bounds on random rows;
//  - vec_dot against a double-precision dot of the dequantized operands;
//  - hand-built blocks (bytes written from the format definitions) -> known values;
//  - real llama.cpp files (fixtures): quantized tensors dequantize close to the F16 file's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "base/fp16.h"
#include "kandil/gguf.h"
#include "kandil/tensor_type.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"
#include "test_util.h"

namespace {

using kandil::TensorType;
using kandil::ops::type_traits;
using kandil::ops::TypeTraits;

// ---- helpers ------------------------------------------------------------------------------------

using kandil::testing::random_row;

const TypeTraits& traits(TensorType t) {
  const TypeTraits* tt = type_traits(t);
  EXPECT_NE(tt, nullptr) << kandil::tensor_type_name(t);
  return *tt;
}

std::vector<uint8_t> quantize(TensorType t, const std::vector<float>& x) {
  const TypeTraits& tt = traits(t);
  std::vector<uint8_t> q(kandil::tensor_row_bytes(t, static_cast<int64_t>(x.size())));
  tt.from_float(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> dequantize(TensorType t, const void* q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  traits(t).to_float(q, y.data(), n);
  return y;
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

std::string type_name(TensorType t) { return std::string(kandil::tensor_type_name(t)); }

// Every type the reference kernels cover.
const std::vector<TensorType> kAllTypes = {
    TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1,
    TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0, TensorType::Q8_1, TensorType::Q2_K,
    TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K,
};

struct Bounds {
  TensorType vec_dot_type;  // expected partner type (self for activation-only types)
  bool has_vec_dot;
  // Max |error| relative to the amax of each block (of block_size elements; 256 for K-quants).
  double max_err;
  // RMS error relative to the RMS of the row (N(0, 1) data).
  double rms_err;
};

// Bounds are set ~10-30% above what a correct kernel reaches on N(0, 1) data; any mix-up of the
// layout (nibble order, scale packing, sign) produces errors of the order of the values themselves.
const std::map<TensorType, Bounds>& bounds() {
  static const std::map<TensorType, Bounds> b = {
      {TensorType::F32, {TensorType::F32, true, 0.0, 0.0}},
      {TensorType::F16, {TensorType::F16, true, 1.0 / 2048, 3.0e-4}},
      {TensorType::BF16, {TensorType::BF16, true, 1.0 / 256, 2.5e-3}},
      {TensorType::Q4_0, {TensorType::Q8_0, true, 1.0 / 8 + 1e-3, 0.11}},
      {TensorType::Q4_1, {TensorType::Q8_1, true, 1.0 / 15 + 3e-3, 0.095}},
      {TensorType::Q5_0, {TensorType::Q8_0, true, 1.0 / 16 + 1e-3, 0.055}},
      {TensorType::Q5_1, {TensorType::Q8_1, true, 1.0 / 31 + 2e-3, 0.048}},
      {TensorType::Q8_0, {TensorType::Q8_0, true, 0.5 / 127 + 1.0 / 2048, 7e-3}},
      {TensorType::Q8_1, {TensorType::Q8_1, false, 0.5 / 127 + 1.0 / 2048, 7e-3}},
      {TensorType::Q2_K, {TensorType::Q8_K, true, 0.42, 0.36}},
      {TensorType::Q3_K, {TensorType::Q8_K, true, 0.21, 0.18}},
      {TensorType::Q4_K, {TensorType::Q8_K, true, 0.10, 0.09}},
      {TensorType::Q5_K, {TensorType::Q8_K, true, 0.045, 0.047}},
      {TensorType::Q6_K, {TensorType::Q8_K, true, 0.022, 0.022}},
      {TensorType::Q8_K, {TensorType::Q8_K, false, 0.5 / 127 + 1e-6, 0.01}},
  };
  return b;
}

// ---- traits -------------------------------------------------------------------------------------

TEST(QuantTraits, TableMatchesGgufLayouts) {
  for (TensorType t : kAllTypes) {
    SCOPED_TRACE(type_name(t));
    const TypeTraits* tt = type_traits(t);
    ASSERT_NE(tt, nullptr);
    EXPECT_EQ(tt->type, t);
    auto info = kandil::tensor_type_info(static_cast<uint32_t>(t));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(tt->block_size, info->block_size);
    EXPECT_EQ(tt->block_bytes, info->block_bytes);
    EXPECT_NE(tt->to_float, nullptr);
    EXPECT_NE(tt->from_float, nullptr);
    const Bounds& b = bounds().at(t);
    EXPECT_EQ(tt->vec_dot != nullptr, b.has_vec_dot);
    EXPECT_EQ(tt->vec_dot_type, b.vec_dot_type);
    EXPECT_EQ(kandil::tensor_type_supported(t), b.has_vec_dot);
    // The partner type must itself be quantizable (activations are converted at run time).
    const TypeTraits* vt = type_traits(tt->vec_dot_type);
    ASSERT_NE(vt, nullptr);
    EXPECT_NE(vt->from_float, nullptr);
  }
  EXPECT_EQ(type_traits(TensorType::IQ2_XXS), nullptr);
  EXPECT_EQ(type_traits(TensorType::I32), nullptr);
}

// ---- F16 / BF16 ---------------------------------------------------------------------------------

TEST(QuantFp16, F16RoundTripsEveryHalf) {
  const TypeTraits& tt = traits(TensorType::F16);
  std::vector<uint16_t> all;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaN payloads need not survive
    all.push_back(static_cast<uint16_t>(h));
  }
  const int64_t n = static_cast<int64_t>(all.size());
  std::vector<float> f(all.size());
  tt.to_float(all.data(), f.data(), n);
  std::vector<uint16_t> back(all.size());
  tt.from_float(f.data(), back.data(), n);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(back[i], all[i]) << std::hex << all[i];
}

TEST(QuantFp16, Bf16RoundTripsEveryBfloat) {
  const TypeTraits& tt = traits(TensorType::BF16);
  std::vector<uint16_t> all;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;  // NaN
    all.push_back(static_cast<uint16_t>(h));
  }
  const int64_t n = static_cast<int64_t>(all.size());
  std::vector<float> f(all.size());
  tt.to_float(all.data(), f.data(), n);
  std::vector<uint16_t> back(all.size());
  tt.from_float(f.data(), back.data(), n);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(back[i], all[i]) << std::hex << all[i];
}

TEST(QuantFp16, KnownConversions) {
  EXPECT_EQ(kandil::f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(kandil::f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(kandil::f32_to_fp16(0.5f), 0x3800);
  EXPECT_EQ(kandil::f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(kandil::f32_to_fp16(1e6f), 0x7C00);                              // overflow -> inf
  EXPECT_EQ(kandil::f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);             // smallest subnormal
  EXPECT_EQ(kandil::f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even
  EXPECT_EQ(kandil::f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even
  EXPECT_EQ(kandil::fp16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(kandil::f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(kandil::f32_to_bf16(-3.0f), 0xC040);
  EXPECT_EQ(kandil::f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie -> even
  EXPECT_EQ(kandil::f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even
  EXPECT_EQ(kandil::bf16_to_f32(0x4049), 3.140625f);
}

TEST(QuantFp16, RandomFloatsRoundWithinHalfUlp) {
  const std::vector<float> x = random_row(4096, 7, 100.0f);
  const std::vector<float> h =
      dequantize(TensorType::F16, quantize(TensorType::F16, x).data(), 4096);
  const std::vector<float> b =
      dequantize(TensorType::BF16, quantize(TensorType::BF16, x).data(), 4096);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(x[i]) >= std::ldexp(1.0f, -14)) {  // normal half range
      EXPECT_LE(std::fabs(h[i] - x[i]), std::ldexp(std::fabs(x[i]), -11)) << x[i];
    }
    EXPECT_LE(std::fabs(b[i] - x[i]), std::ldexp(std::fabs(x[i]), -8)) << x[i];
  }
}

// ---- per-type random tests ----------------------------------------------------------------------

class QuantTypeTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(QuantTypeTest, RoundTripErrorWithinBounds) {
  const TensorType t = GetParam();
  const TypeTraits& tt = traits(t);
  const Bounds& b = bounds().at(t);
  const int64_t bs = tt.block_size == 1 ? 32 : tt.block_size;
  uint32_t seed = 100;
  double worst_max = 0, worst_rms = 0;
  for (int64_t blocks : {1, 3, 7, 33}) {
    const int64_t n = blocks * bs;
    const std::vector<float> x = random_row(n, seed++);
    const std::vector<uint8_t> q = quantize(t, x);
    ASSERT_EQ(q.size(), static_cast<size_t>(n / tt.block_size) * tt.block_bytes);
    const std::vector<float> y = dequantize(t, q.data(), n);
    std::vector<float> err(y.size());
    for (int64_t blk = 0; blk < blocks; ++blk) {
      float amax = 0;
      for (int64_t j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(x[blk * bs + j]));
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t i = blk * bs + j;
        ASSERT_TRUE(std::isfinite(y[i]));
        err[i] = y[i] - x[i];
        const double rel = std::fabs(err[i]) / amax;
        worst_max = std::max(worst_max, rel);
        ASSERT_LE(rel, b.max_err) << type_name(t) << " n=" << n << " element " << i
                                  << ": x=" << x[i] << " y=" << y[i] << " block amax=" << amax;
      }
    }
    const double rel_rms = rms(err) / rms(x);
    worst_rms = std::max(worst_rms, rel_rms);
    EXPECT_LE(rel_rms, b.rms_err) << type_name(t) << " n=" << n;
  }
  // Recorded for tuning the bounds (see --gtest_output=xml).
  RecordProperty("worst_max_err", std::to_string(worst_max));
  RecordProperty("worst_rms_err", std::to_string(worst_rms));
}

TEST_P(QuantTypeTest, ZeroRowQuantizesToZeros) {
  const TensorType t = GetParam();
  const int64_t n = 3 * std::max<int64_t>(traits(t).block_size, 32);
  const std::vector<float> x(static_cast<size_t>(n), 0.0f);
  const std::vector<float> y = dequantize(t, quantize(t, x).data(), n);
  for (float v : y) ASSERT_EQ(v, 0.0f);
}

TEST_P(QuantTypeTest, QuantizationIsScaleInvariant) {
  // Scaling the input by a power of two only scales the output (up to half-precision range):
  // catches quantizers that depend on absolute magnitudes.
  const TensorType t = GetParam();
  const int64_t n = 3 * std::max<int64_t>(traits(t).block_size, 32);
  const std::vector<float> x = random_row(n, 77);
  std::vector<float> x4(x);
  for (float& v : x4) v *= 4.0f;
  const std::vector<float> y = dequantize(t, quantize(t, x).data(), n);
  const std::vector<float> y4 = dequantize(t, quantize(t, x4).data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y4[i], 4.0f * y[i]) << type_name(t) << " element " << i;
}

// The dot of the dequantized operands, in double. For Q8_1 partners the dot uses the stored block
// sum s (rounded to half) instead of d * sum(q); the reference uses it too.
double reference_dot(TensorType t, const std::vector<uint8_t>& w, const std::vector<uint8_t>& a,
                     int64_t n, double* abs_sum) {
  const TypeTraits& tt = traits(t);
  const std::vector<float> dw = dequantize(t, w.data(), n);
  const std::vector<float> da = dequantize(tt.vec_dot_type, a.data(), n);
  double dot = 0;
  *abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    dot += static_cast<double>(dw[i]) * da[i];
    *abs_sum += std::fabs(static_cast<double>(dw[i]) * da[i]);
  }
  if (tt.vec_dot_type == TensorType::Q8_1) {
    const auto* ya = reinterpret_cast<const kandil::ops::BlockQ8_1*>(a.data());
    for (int64_t blk = 0; blk < n / 32; ++blk) {
      // Q4_1 and Q5_1 both start with d, m.
      uint16_t m_bits;
      std::memcpy(&m_bits, w.data() + blk * tt.block_bytes + 2, 2);
      int sum_q = 0;
      for (int j = 0; j < 32; ++j) sum_q += ya[blk].qs[j];
      const double exact_s = static_cast<double>(kandil::fp16_to_f32(ya[blk].d)) * sum_q;
      dot += kandil::fp16_to_f32(m_bits) * (kandil::fp16_to_f32(ya[blk].s) - exact_s);
    }
  }
  return dot;
}

// Types with a dot product (all but the activation-only Q8_1 and Q8_K).
class QuantDotTest : public ::testing::TestWithParam<TensorType> {};

std::vector<TensorType> dot_types() {
  std::vector<TensorType> v;
  for (TensorType t : kAllTypes) {
    if (bounds().at(t).has_vec_dot) v.push_back(t);
  }
  return v;
}

TEST_P(QuantDotTest, VecDotMatchesDequantizedDot) {
  const TensorType t = GetParam();
  const TypeTraits& tt = traits(t);
  ASSERT_NE(tt.vec_dot, nullptr);
  const int64_t bs = tt.block_size == 1 ? 32 : tt.block_size;
  uint32_t seed = 1000;
  for (int64_t blocks : {1, 3, 7}) {
    for (int rep = 0; rep < 4; ++rep) {
      const int64_t n = blocks * bs;
      const std::vector<float> wf = random_row(n, seed++, 0.05f);
      const std::vector<float> af = random_row(n, seed++, 3.0f);
      const std::vector<uint8_t> w = quantize(t, wf);
      const std::vector<uint8_t> a = quantize(tt.vec_dot_type, af);
      const float got = tt.vec_dot(n, w.data(), a.data());
      double abs_sum = 0;
      const double want = reference_dot(t, w, a, n, &abs_sum);
      EXPECT_NEAR(got, want, 1e-5 * abs_sum + 1e-30)
          << type_name(t) << " n=" << n << " rep=" << rep;
    }
  }
}

TEST_P(QuantDotTest, VecDotApproximatesFloatDot) {
  // End to end: quantized weights times quantized activations stay close to the float dot.
  const TensorType t = GetParam();
  const TypeTraits& tt = traits(t);
  ASSERT_NE(tt.vec_dot, nullptr);
  const int64_t n = 7 * std::max<int64_t>(tt.block_size, 32);
  const std::vector<float> wf = random_row(n, 5);
  const std::vector<float> af = random_row(n, 6);
  double dot = 0, abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    dot += static_cast<double>(wf[i]) * af[i];
    abs_sum += std::fabs(static_cast<double>(wf[i]) * af[i]);
  }
  const float got = tt.vec_dot(n, quantize(t, wf).data(), quantize(tt.vec_dot_type, af).data());
  // Error of a sum of n products with independent relative errors ~ rms_err.
  const double tol = 4 * (bounds().at(t).rms_err + 5e-3) * std::sqrt(static_cast<double>(n)) + 1e-3;
  EXPECT_NEAR(got, dot, tol) << type_name(t) << " abs_sum=" << abs_sum;
}

std::string param_name(const ::testing::TestParamInfo<TensorType>& info) {
  return type_name(info.param);
}
INSTANTIATE_TEST_SUITE_P(Quant, QuantTypeTest, ::testing::ValuesIn(kAllTypes), param_name);
INSTANTIATE_TEST_SUITE_P(Quant, QuantDotTest, ::testing::ValuesIn(dot_types()), param_name);

TEST(QuantQ8K, BlockSumsMatchQuants) {
  const std::vector<float> x = random_row(3 * 256, 11);
  const std::vector<uint8_t> q = quantize(TensorType::Q8_K, x);
  const auto* b = reinterpret_cast<const kandil::ops::BlockQ8_K*>(q.data());
  for (int blk = 0; blk < 3; ++blk) {
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += b[blk].qs[16 * g + l];
      EXPECT_EQ(b[blk].bsums[g], s);
    }
    for (int e = 0; e < 256; ++e) EXPECT_GE(b[blk].qs[e], -127);
  }
}

TEST(QuantQ8_1, BlockSumIsScaledQuantSum) {
  const std::vector<float> x = random_row(7 * 32, 12);
  const std::vector<uint8_t> q = quantize(TensorType::Q8_1, x);
  const auto* b = reinterpret_cast<const kandil::ops::BlockQ8_1*>(q.data());
  for (int blk = 0; blk < 7; ++blk) {
    int s = 0;
    for (int l = 0; l < 32; ++l) s += b[blk].qs[l];
    const float want = kandil::fp16_to_f32(b[blk].d) * static_cast<float>(s);
    EXPECT_NEAR(kandil::fp16_to_f32(b[blk].s), want, std::fabs(want) * 2e-3 + 1e-6);
  }
}

// ---- hand-built blocks --------------------------------------------------------------------------
// Bytes are written at the offsets of the GGUF definitions (not through the block structs).

void put_half(std::vector<uint8_t>& b, size_t off, float v) {
  const uint16_t h = kandil::f32_to_fp16(v);
  b[off] = static_cast<uint8_t>(h & 0xFF);
  b[off + 1] = static_cast<uint8_t>(h >> 8);
}

TEST(QuantHandBuilt, Q4_0) {
  // d = 0.5; byte j = (low nibble j) | (high nibble 15 - j)  -> x[j] = (j - 8) d, x[16 + j] = (7 -
  // j) d.
  std::vector<uint8_t> b(18);
  b[0] = 0x00;
  b[1] = 0x38;  // 0.5 as half
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequantize(TensorType::Q4_0, b.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(y[16 + j], 0.5f * static_cast<float>(7 - j)) << j;
  }
  // And quantizing those values gives back the same bytes (-4 = -8 d is the signed max).
  EXPECT_EQ(quantize(TensorType::Q4_0, y), b);
}

TEST(QuantHandBuilt, Q4_1) {
  // d = 0.25, m = -1; byte j = j | (j ^ 0xF) << 4.
  std::vector<uint8_t> b(20);
  put_half(b, 0, 0.25f);
  put_half(b, 2, -1.0f);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | ((j ^ 0xF) << 4));
  const std::vector<float> y = dequantize(TensorType::Q4_1, b.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * static_cast<float>(j) - 1.0f) << j;
    EXPECT_EQ(y[16 + j], 0.25f * static_cast<float>(j ^ 0xF) - 1.0f) << j;
  }
}

TEST(QuantHandBuilt, Q5_0) {
  // d = 2; nibbles as Q4_0 (low = j, high = 15 - j); qh (little-endian u32) = 0xA5A5F00F:
  // element i has bit 4 set iff bit i of qh is.
  std::vector<uint8_t> b(22);
  put_half(b, 0, 2.0f);
  const uint32_t qh = 0xA5A5F00Fu;
  b[2] = 0x0F;
  b[3] = 0xF0;
  b[4] = 0xA5;
  b[5] = 0xA5;
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequantize(TensorType::Q5_0, b.data(), 32);
  for (int i = 0; i < 32; ++i) {
    const int low = i < 16 ? i : 15 - (i - 16);
    const int q = low | static_cast<int>(((qh >> i) & 1) << 4);
    EXPECT_EQ(y[i], 2.0f * static_cast<float>(q - 16)) << i;
  }
}

TEST(QuantHandBuilt, Q5_1) {
  // d = 0.5, m = 3; low nibbles = i % 16 for every element; qh = 0x0000FFFF (first half +16).
  std::vector<uint8_t> b(24);
  put_half(b, 0, 0.5f);
  put_half(b, 2, 3.0f);
  b[4] = 0xFF;
  b[5] = 0xFF;
  b[6] = 0x00;
  b[7] = 0x00;
  for (int j = 0; j < 16; ++j) b[8 + j] = static_cast<uint8_t>(j | (j << 4));
  const std::vector<float> y = dequantize(TensorType::Q5_1, b.data(), 32);
  for (int i = 0; i < 32; ++i) {
    const int q = (i % 16) + (i < 16 ? 16 : 0);
    EXPECT_EQ(y[i], 0.5f * static_cast<float>(q) + 3.0f) << i;
  }
}

TEST(QuantHandBuilt, Q8_0AndQ8_1) {
  // Q8_0: d = 0.125, qs[i] = i * 8 - 128 (as int8).
  std::vector<uint8_t> b(34);
  put_half(b, 0, 0.125f);
  for (int i = 0; i < 32; ++i) b[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i * 8 - 128));
  const std::vector<float> y = dequantize(TensorType::Q8_0, b.data(), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.125f * static_cast<float>(i * 8 - 128)) << i;

  // Q8_1: d at offset 0, s at 2 (ignored by dequantization), qs from offset 4.
  std::vector<uint8_t> c(36);
  put_half(c, 0, 0.25f);
  put_half(c, 2, 1000.0f);
  for (int i = 0; i < 32; ++i) c[4 + i] = static_cast<uint8_t>(static_cast<int8_t>(100 - 7 * i));
  const std::vector<float> z = dequantize(TensorType::Q8_1, c.data(), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(z[i], 0.25f * static_cast<float>(100 - 7 * i)) << i;

  // Q8_0 self-dot with known integers: sum (i*8-128)^2 * d^2.
  double want = 0;
  for (int i = 0; i < 32; ++i) want += (i * 8.0 - 128) * (i * 8.0 - 128) * 0.125 * 0.125;
  EXPECT_EQ(traits(TensorType::Q8_0).vec_dot(32, b.data(), b.data()), static_cast<float>(want));
}

// Scales / mins of the 8 sub-blocks used by the Q4_K / Q5_K hand-built blocks (6 bits each, some
// with the high bits set to exercise the split packing).
constexpr int kK4Scales[8] = {1, 2, 3, 63, 17, 33, 50, 5};
constexpr int kK4Mins[8] = {0, 5, 10, 20, 40, 63, 16, 7};

// The 12 packed bytes, written out from the format: bytes 0-3: scale j (j < 4) in bits 0-5 and
// bits 4-5 of scale j+4 in bits 6-7; bytes 4-7: min j in bits 0-5 and bits 4-5 of min j+4 in
// bits 6-7; bytes 8-11: low 4 bits of scale j+4 | low 4 bits of min j+4 << 4.
std::vector<uint8_t> k4_scale_bytes() {
  // scales 17 = 0b01'0001, 33 = 0b10'0001, 50 = 0b11'0010, 5 = 0b00'0101
  // mins   40 = 0b10'1000, 63 = 0b11'1111, 16 = 0b01'0000, 7 = 0b00'0111
  return {
      static_cast<uint8_t>(1 | (1 << 6)),     static_cast<uint8_t>(2 | (2 << 6)),
      static_cast<uint8_t>(3 | (3 << 6)),     static_cast<uint8_t>(63 | (0 << 6)),
      static_cast<uint8_t>(0 | (2 << 6)),     static_cast<uint8_t>(5 | (3 << 6)),
      static_cast<uint8_t>(10 | (1 << 6)),    static_cast<uint8_t>(20 | (0 << 6)),
      static_cast<uint8_t>(0x1 | (0x8 << 4)), static_cast<uint8_t>(0x1 | (0xF << 4)),
      static_cast<uint8_t>(0x2 | (0x0 << 4)), static_cast<uint8_t>(0x5 | (0x7 << 4)),
  };
}

TEST(QuantHandBuilt, Q4_K) {
  // Layout: d (half), dmin (half), 12 scale bytes, 128 quant bytes. Element e sits in byte
  // 32*(e/64) + e%32, low nibble for e%64 < 32, high nibble otherwise; sub-block = e/32.
  std::vector<uint8_t> b(144);
  put_half(b, 0, 0.5f);
  put_half(b, 2, 0.25f);
  const std::vector<uint8_t> sb = k4_scale_bytes();
  std::copy(sb.begin(), sb.end(), b.begin() + 4);
  for (int i = 0; i < 128; ++i) b[16 + i] = static_cast<uint8_t>((i * 37 + 11) & 0xFF);
  const std::vector<float> y = dequantize(TensorType::Q4_K, b.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const uint8_t byte = b[16 + 32 * (e / 64) + e % 32];
    const int q = (e % 64) < 32 ? (byte & 0xF) : (byte >> 4);
    const int j = e / 32;
    const float want = 0.5f * kK4Scales[j] * q - 0.25f * kK4Mins[j];
    EXPECT_EQ(y[e], want) << e;
  }
}

TEST(QuantHandBuilt, Q5_K) {
  // As Q4_K plus 32 qh bytes after the scales: bit 4 of element e is bit e/32 of qh[e%32].
  std::vector<uint8_t> b(176);
  put_half(b, 0, 0.5f);
  put_half(b, 2, 0.25f);
  const std::vector<uint8_t> sb = k4_scale_bytes();
  std::copy(sb.begin(), sb.end(), b.begin() + 4);
  for (int i = 0; i < 32; ++i) b[16 + i] = static_cast<uint8_t>((i * 73 + 5) & 0xFF);
  for (int i = 0; i < 128; ++i) b[48 + i] = static_cast<uint8_t>((i * 37 + 11) & 0xFF);
  const std::vector<float> y = dequantize(TensorType::Q5_K, b.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const uint8_t byte = b[48 + 32 * (e / 64) + e % 32];
    const int low = (e % 64) < 32 ? (byte & 0xF) : (byte >> 4);
    const int q = low + (((b[16 + e % 32] >> (e / 32)) & 1) ? 16 : 0);
    const int j = e / 32;
    EXPECT_EQ(y[e], 0.5f * kK4Scales[j] * q - 0.25f * kK4Mins[j]) << e;
  }
}

TEST(QuantHandBuilt, Q6_K) {
  // Layout: ql[128], qh[64], int8 scales[16], d (half). For element e: h = e/128, g = (e%128)/32,
  // l = e%32; low 4 bits in ql[64h + 32(g%2) + l] (low nibble for g < 2), high 2 bits at shift 2g
  // of qh[32h + l]; value = d * scales[e/16] * (q - 32).
  std::vector<uint8_t> b(210);
  for (int i = 0; i < 128; ++i) b[i] = static_cast<uint8_t>((i * 29 + 3) & 0xFF);
  for (int i = 0; i < 64; ++i) b[128 + i] = static_cast<uint8_t>((i * 53 + 17) & 0xFF);
  const int8_t scales[16] = {-128, 127, 1, -1, 5, -7, 64, -64, 2, 3, 100, -100, 9, -33, 0, 45};
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(scales[i]);
  put_half(b, 208, 0.0625f);
  const std::vector<float> y = dequantize(TensorType::Q6_K, b.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t lb = b[64 * h + 32 * (g % 2) + l];
    const int low = g < 2 ? (lb & 0xF) : (lb >> 4);
    const int high = (b[128 + 32 * h + l] >> (2 * g)) & 3;
    const int q = (low | (high << 4)) - 32;
    EXPECT_EQ(y[e], 0.0625f * scales[e / 16] * q) << e;
  }
  // Spot checks written out by hand: element 0 = ql[0] low (3), qh[0] bits 0-1 (17 = 0b10001 -> 1):
  // q = 3 + 16 - 32 = -13, scale -128 -> 0.0625 * -128 * -13 = 104.
  EXPECT_EQ(y[0], 104.0f);
  // Element 64 (h 0, g 2, l 0): ql[0] high nibble (0), qh[0] bits 4-5 (1): q = 16 - 32 = -16;
  // scale[4] = 5 -> -5.
  EXPECT_EQ(y[64], -5.0f);
}

TEST(QuantHandBuilt, Q2_K) {
  // Layout: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin (halves). Element e:
  // 2 bits at shift 2*((e%128)/32) of qs[32*(e/128) + e%32]; x = d*sc*q - dmin*m, sub-block e/16.
  std::vector<uint8_t> b(84);
  for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(((i * 5 + 1) & 0xF) | ((15 - i) << 4));
  for (int i = 0; i < 64; ++i) b[16 + i] = static_cast<uint8_t>((i * 97 + 13) & 0xFF);
  put_half(b, 80, 0.5f);
  put_half(b, 82, 0.125f);
  const std::vector<float> y = dequantize(TensorType::Q2_K, b.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int q = (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const uint8_t s = b[e / 16];
    EXPECT_EQ(y[e], 0.5f * (s & 0xF) * q - 0.125f * (s >> 4)) << e;
  }
}

TEST(QuantHandBuilt, Q3_K) {
  // Layout: hmask[32], qs[64], scales[12], d (half). Low 2 bits as Q2_K; bit 2 is bit e/32 of
  // hmask[e%32] (set: q = low, clear: q = low - 4). Scale i (6 bits, minus 32): low 4 bits in
  // scales[i%8] (low nibble for i < 8), high 2 bits at shift 2*(i/4) of scales[8 + i%4].
  std::vector<uint8_t> b(110);
  for (int i = 0; i < 32; ++i) b[i] = static_cast<uint8_t>((i * 41 + 7) & 0xFF);
  for (int i = 0; i < 64; ++i) b[32 + i] = static_cast<uint8_t>((i * 97 + 13) & 0xFF);
  const int sc6[16] = {0, 63, 32, 31, 1, 62, 17, 48, 5, 40, 20, 33, 60, 2, 45, 11};
  for (int i = 0; i < 16; ++i) {
    b[96 + i % 8] |= static_cast<uint8_t>((sc6[i] & 0xF) << (i < 8 ? 0 : 4));
    b[96 + 8 + i % 4] |= static_cast<uint8_t>((sc6[i] >> 4) << (2 * (i / 4)));
  }
  put_half(b, 108, 0.25f);
  const std::vector<float> y = dequantize(TensorType::Q3_K, b.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int low = (b[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const bool high = (b[e % 32] >> (e / 32)) & 1;
    const int q = low - (high ? 0 : 4);
    EXPECT_EQ(y[e], 0.25f * (sc6[e / 16] - 32) * q) << e;
  }
  // Byte 96 holds scale 0 (low nibble 0) and scale 8 (low nibble 5): 0x50; byte 104 holds the high
  // bits of scales 0, 4, 8, 12: 0 | 0 << 2 | 0 << 4 | 3 << 6.
  EXPECT_EQ(b[96], 0x50);
  EXPECT_EQ(b[104], 0xC0);
}

TEST(QuantHandBuilt, Q8_K) {
  // Layout: float d, int8 qs[256], int16 bsums[16] (bsums are not used by dequantization).
  std::vector<uint8_t> b(292);
  const float d = 0.75f;
  std::memcpy(b.data(), &d, 4);
  for (int i = 0; i < 256; ++i)
    b[4 + i] = static_cast<uint8_t>(static_cast<int8_t>((i * 7) % 255 - 127));
  const std::vector<float> y = dequantize(TensorType::Q8_K, b.data(), 256);
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(y[i], 0.75f * static_cast<float>((i * 7) % 255 - 127)) << i;
}

TEST(QuantHandBuilt, Q4_KDotWithQ8_K) {
  // Hand-built Q4_K block times a Q8_K block of ones (d = 1): the dot is the sum of the
  // dequantized weights (bsums carry the min terms).
  std::vector<uint8_t> w(144);
  put_half(w, 0, 0.5f);
  put_half(w, 2, 0.25f);
  const std::vector<uint8_t> sb = k4_scale_bytes();
  std::copy(sb.begin(), sb.end(), w.begin() + 4);
  for (int i = 0; i < 128; ++i) w[16 + i] = static_cast<uint8_t>((i * 37 + 11) & 0xFF);
  std::vector<uint8_t> a(292);
  const float one = 1.0f;
  std::memcpy(a.data(), &one, 4);
  for (int i = 0; i < 256; ++i) a[4 + i] = 1;
  for (int g = 0; g < 16; ++g) {
    a[260 + 2 * g] = 16;  // int16 16, little endian
    a[261 + 2 * g] = 0;
  }
  const std::vector<float> y = dequantize(TensorType::Q4_K, w.data(), 256);
  double want = 0;
  for (float v : y) want += v;
  EXPECT_FLOAT_EQ(traits(TensorType::Q4_K).vec_dot(256, w.data(), a.data()),
                  static_cast<float>(want));
}

// ---- fixtures: real llama.cpp files -------------------------------------------------------------

struct FixtureCase {
  const char* file;
  // Bound on the RMS error relative to the F16 file's tensor, per tensor type found in the file.
  std::map<TensorType, double> max_rel_rms;
};

// Over the requantized part of each tensor (its first kRequantElements elements).
struct TypeTotals {
  double ref2 = 0;       // sum of squares of the F16 values
  double file_err2 = 0;  // llama.cpp's quantization vs F16
  double mine_err2 = 0;  // our quantizer applied to the F16 values vs F16
  size_t blocks = 0;
  size_t same_blocks = 0;  // our blocks bit-identical to llama.cpp's
};
// Bounds the time spent in our quantizer (the embedding tables have 8M elements).
constexpr int64_t kRequantElements = int64_t{1} << 18;

// The same random weights were written as F16 and as each quantized type by llama.cpp. Checks:
//  - every quantized tensor dequantizes close to the F16 tensor (proves the layouts);
//  - vec_dot over llama.cpp's blocks agrees with the dequantized dot (a few rows per tensor);
//  - our quantizer, run on the F16 values, is as accurate as llama.cpp's and mostly reproduces its
//    blocks bit for bit (the files were quantized from higher-precision weights, so not all).
void check_against_f16(const FixtureCase& fc) {
  auto quant = kandil::GgufFile::open(kandil::testing::fixture(std::string("models/") + fc.file));
  ASSERT_TRUE(quant.ok()) << quant.error().message;
  auto ref = kandil::GgufFile::open(kandil::testing::fixture("models/small-f16.gguf"));
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  std::map<TensorType, TypeTotals> totals;
  uint32_t seed = 4242;
  for (const kandil::GgufTensorInfo& t : quant->tensors()) {
    if (t.type == TensorType::F32) continue;  // norms: stored unquantized in every file
    SCOPED_TRACE(std::string(fc.file) + ": " + std::string(t.name) + " (" + type_name(t.type) +
                 ")");
    const kandil::GgufTensorInfo* r = ref->find_tensor(t.name);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->n_elements(), t.n_elements());
    ASSERT_EQ(r->ne[0], t.ne[0]);
    auto bound = fc.max_rel_rms.find(t.type);
    ASSERT_NE(bound, fc.max_rel_rms.end()) << "unexpected type";
    const TypeTraits& tt = traits(t.type);
    const int64_t n = t.n_elements();
    const std::vector<float> got = dequantize(t.type, t.data, n);
    const std::vector<float> want = dequantize(r->type, r->data, n);
    double err2 = 0, ref2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = static_cast<double>(got[i]) - want[i];
      err2 += e * e;
      ref2 += static_cast<double>(want[i]) * want[i];
    }
    ASSERT_GT(ref2, 0.0);
    EXPECT_LE(std::sqrt(err2 / ref2), bound->second);

    // Our quantizer on (the start of) the same F16 values.
    const int64_t nq = std::min(n, kRequantElements);  // a multiple of every block size
    const size_t nq_bytes = kandil::tensor_row_bytes(t.type, nq);
    std::vector<uint8_t> mine(nq_bytes);
    tt.from_float(want.data(), mine.data(), nq);
    const std::vector<float> mine_f = dequantize(t.type, mine.data(), nq);
    TypeTotals& tot = totals[t.type];
    for (int64_t i = 0; i < nq; ++i) {
      const double e = static_cast<double>(got[i]) - want[i];
      const double m = static_cast<double>(mine_f[i]) - want[i];
      tot.file_err2 += e * e;
      tot.mine_err2 += m * m;
      tot.ref2 += static_cast<double>(want[i]) * want[i];
    }
    for (size_t off = 0; off < nq_bytes; off += tt.block_bytes) {
      ++tot.blocks;
      tot.same_blocks += std::memcmp(mine.data() + off, t.data + off, tt.block_bytes) == 0;
    }

    // vec_dot over the file's own blocks: first, middle and last rows.
    const int64_t ncols = t.ne[0];
    const size_t row_bytes = kandil::tensor_row_bytes(t.type, ncols);
    const std::vector<float> act = random_row(ncols, seed++);
    const std::vector<uint8_t> qa = quantize(tt.vec_dot_type, act);
    for (int64_t row : {int64_t{0}, t.n_rows() / 2, t.n_rows() - 1}) {
      const std::vector<uint8_t> w(t.data + row * row_bytes, t.data + (row + 1) * row_bytes);
      double abs_sum = 0;
      const double want_dot = reference_dot(t.type, w, qa, ncols, &abs_sum);
      EXPECT_NEAR(tt.vec_dot(ncols, w.data(), qa.data()), want_dot, 1e-5 * abs_sum)
          << "row " << row;
    }
  }
  ASSERT_FALSE(totals.empty());
  for (const auto& [type, tot] : totals) {
    const double file_rel = std::sqrt(tot.file_err2 / tot.ref2);
    const double mine_rel = std::sqrt(tot.mine_err2 / tot.ref2);
    const double same = static_cast<double>(tot.same_blocks) / static_cast<double>(tot.blocks);
    ::testing::Test::RecordProperty(type_name(type) + "_file_rel_rms", std::to_string(file_rel));
    ::testing::Test::RecordProperty(type_name(type) + "_mine_rel_rms", std::to_string(mine_rel));
    ::testing::Test::RecordProperty(type_name(type) + "_identical_blocks", std::to_string(same));
    EXPECT_LE(mine_rel, file_rel * 1.01) << type_name(type) << ": our quantizer is less accurate";
    EXPECT_GE(same, 0.3) << type_name(type)
                         << ": our quantizer rarely reproduces llama.cpp's blocks";
  }
}

TEST(QuantFixtures, Q8_0MatchesF16) {
  KANDIL_REQUIRE_FIXTURE("models/small-Q8_0.gguf");
  KANDIL_REQUIRE_FIXTURE("models/small-f16.gguf");
  check_against_f16({"small-Q8_0.gguf", {{TensorType::Q8_0, 0.01}}});
}

TEST(QuantFixtures, Q4_0MatchesF16) {
  KANDIL_REQUIRE_FIXTURE("models/small-Q4_0.gguf");
  KANDIL_REQUIRE_FIXTURE("models/small-f16.gguf");
  check_against_f16({"small-Q4_0.gguf", {{TensorType::Q4_0, 0.10}, {TensorType::Q6_K, 0.022}}});
}

TEST(QuantFixtures, Q4_K_MMatchesF16) {
  KANDIL_REQUIRE_FIXTURE("models/small-Q4_K_M.gguf");
  KANDIL_REQUIRE_FIXTURE("models/small-f16.gguf");
  check_against_f16({"small-Q4_K_M.gguf", {{TensorType::Q4_K, 0.085}, {TensorType::Q6_K, 0.022}}});
}

TEST(QuantFixtures, Q6_KMatchesF16) {
  KANDIL_REQUIRE_FIXTURE("models/small-Q6_K.gguf");
  KANDIL_REQUIRE_FIXTURE("models/small-f16.gguf");
  check_against_f16({"small-Q6_K.gguf", {{TensorType::Q6_K, 0.022}}});
}

}  // namespace
