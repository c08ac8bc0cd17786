// Tests of the K-quant GEMM tiles (gemm_k_avx2.cpp, gemm_k_avx512.cpp) beyond tests/gemm_test.cpp:
// every ISA's tile is called directly (dispatch may not pick the AVX-512 Q2_K / Q3_K ones), on
// lengths spanning several packed chunks, and on raw blocks with arbitrary bits: every quant and
// scale pattern, activations of -128 / 127 (the AVX2 tile sums vpmaddubsw results in int16, which
// must not overflow). Every output must equal the reference vec_dot up to float rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/kernels.h"
#include "base/cpu_features.h"
#include "base/fp16.h"
#include "kandil/tensor_type.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"
#include "test_util.h"

namespace {

using kandil::TensorType;
using kandil::cpu::GemmFn;

const TensorType kTypes[] = {TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                             TensorType::Q6_K};

struct Isa {
  const char* name;
  GemmFn (*get)(TensorType);
};

// The ISAs this CPU can run, with their K-quant tile getters.
std::vector<Isa> isas() {
  const kandil::CpuFeatures& f = kandil::cpu_features();
  std::vector<Isa> v;
  if (f.avx2 && f.fma && f.f16c) {
    v.push_back({"avx2", kandil::cpu::detail::gemm_k_avx2});
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) {
      v.push_back({"avx512", kandil::cpu::detail::gemm_k_avx512});
    }
  }
  return v;
}

// Rows of a type, back to back with a stride of row bytes + pad (even: the blocks hold 16-bit
// fields; a multiple of 4 for Q8_K), and their dequantized values.
struct Rows {
  std::vector<uint8_t> bytes;
  size_t stride = 0;
  std::vector<std::vector<float>> values;
};

void dequantize_all(TensorType type, int64_t n, int64_t count, Rows& r) {
  const kandil::ops::TypeTraits* t = kandil::ops::type_traits(type);
  r.values.clear();
  for (int64_t i = 0; i < count; ++i) {
    std::vector<float> v(static_cast<size_t>(n));
    t->to_float(r.bytes.data() + static_cast<size_t>(i) * r.stride, v.data(), n);
    r.values.push_back(std::move(v));
  }
}

Rows quantized_rows(TensorType type, int64_t n, int64_t count, size_t pad, uint32_t seed,
                    float sigma) {
  const kandil::ops::TypeTraits* t = kandil::ops::type_traits(type);
  Rows r;
  r.stride = kandil::tensor_row_bytes(type, n) + pad;
  r.bytes.assign(r.stride * static_cast<size_t>(count), 0x5A);
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<float> x =
        kandil::testing::random_row(n, seed + static_cast<uint32_t>(i) * 7919u, sigma);
    t->from_float(x.data(), r.bytes.data() + static_cast<size_t>(i) * r.stride, n);
  }
  dequantize_all(type, n, count, r);
  return r;
}

// Where a K-quant block keeps its quant bits and its fp16 d / dmin (dmin_off < 0: none).
struct BlockFields {
  size_t q_begin, q_end;
  int d_off, dmin_off;
};
BlockFields fields(TensorType type) {
  switch (type) {
    case TensorType::Q2_K:  // scales[16], qs[64], d, dmin
      return {16, 80, 80, 82};
    case TensorType::Q3_K:  // hmask[32], qs[64], scales[12], d
      return {0, 96, 108, -1};
    case TensorType::Q4_K:  // d, dmin, scales[12], qs[128]
      return {16, 144, 0, 2};
    case TensorType::Q5_K:  // d, dmin, scales[12], qh[32], qs[128]
      return {16, 176, 0, 2};
    default:  // Q6_K: ql[128], qh[64], scales[16], d
      return {0, 192, 208, -1};
  }
}

// Weight rows of random bytes (every quant and scale bit pattern) with small finite d / dmin.
// `saturate`: all quant bits set (the largest unsigned quants), scales still random.
Rows random_weight_rows(TensorType type, int64_t n, int64_t count, uint32_t seed, bool saturate) {
  const size_t block = kandil::ops::type_traits(type)->block_bytes;
  const int64_t nb = n / kandil::ops::kQKK;
  const BlockFields f = fields(type);
  Rows r;
  r.stride = kandil::tensor_row_bytes(type, n);
  r.bytes.resize(r.stride * static_cast<size_t>(count));
  std::mt19937 rng(seed);
  for (auto& b : r.bytes) b = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < count * nb; ++i) {
    uint8_t* blk = r.bytes.data() + static_cast<size_t>(i) * block;
    if (saturate) std::memset(blk + f.q_begin, 0xFF, f.q_end - f.q_begin);
    const uint16_t d = kandil::f32_to_fp16(0.01f + 0.001f * static_cast<float>(rng() % 50));
    const uint16_t dmin = kandil::f32_to_fp16(0.02f + 0.001f * static_cast<float>(rng() % 50));
    std::memcpy(blk + f.d_off, &d, 2);
    if (f.dmin_off >= 0) std::memcpy(blk + f.dmin_off, &dmin, 2);
  }
  dequantize_all(type, n, count, r);
  return r;
}

// Q8_K activation rows with the given quant pattern (consistent bsums).
Rows q8k_rows(int64_t n, int64_t count, uint32_t seed, int mode) {
  namespace ops = kandil::ops;
  Rows r;
  r.stride = kandil::tensor_row_bytes(TensorType::Q8_K, n);
  r.bytes.resize(r.stride * static_cast<size_t>(count));
  std::mt19937 rng(seed);
  const int64_t nb = n / ops::kQKK;
  for (int64_t i = 0; i < count * nb; ++i) {
    ops::BlockQ8_K blk{};
    blk.d = 0.003f + 0.0001f * static_cast<float>(rng() % 20);
    for (int e = 0; e < ops::kQKK; ++e) {
      const int v = mode == 0   ? static_cast<int>(rng() % 256) - 128  // anything
                    : mode == 1 ? -128                                 // most negative
                                : ((rng() & 1) ? 127 : -128);          // extremes mixed
      blk.qs[e] = static_cast<int8_t>(v);
    }
    for (int g = 0; g < ops::kQKK / 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += blk.qs[16 * g + l];
      blk.bsums[g] = static_cast<int16_t>(s);
    }
    std::memcpy(r.bytes.data() + static_cast<size_t>(i) * sizeof(blk), &blk, sizeof(blk));
  }
  dequantize_all(TensorType::Q8_K, n, count, r);
  return r;
}

// Runs the tile on w x a and compares every output with the reference vec_dot, within float
// rounding of sum |w_e * a_e|; outputs outside the tile must stay untouched.
void check(const Isa& isa, TensorType type, int64_t n, const Rows& w, int64_t rows, const Rows& a,
           int64_t cols) {
  const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(type);
  const GemmFn gemm = isa.get(type);
  ASSERT_NE(gemm, nullptr) << kandil::tensor_type_name(type) << " " << isa.name;
  const int64_t out_stride = rows + 2;
  const float sentinel = -777.0f;
  std::vector<float> out(static_cast<size_t>(out_stride * cols), sentinel);
  gemm(n, w.bytes.data(), w.stride, rows, a.bytes.data(), a.stride, cols, out.data(), out_stride);
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t i = 0; i < out_stride; ++i) {
      const float got = out[static_cast<size_t>(j * out_stride + i)];
      if (i >= rows) {
        ASSERT_EQ(got, sentinel) << "wrote outside the tile at " << i << "," << j;
        continue;
      }
      const float want = wt->vec_dot(n, w.bytes.data() + static_cast<size_t>(i) * w.stride,
                                     a.bytes.data() + static_cast<size_t>(j) * a.stride);
      double mag = 0.0;
      for (int64_t e = 0; e < n; ++e) {
        mag += std::fabs(static_cast<double>(w.values[static_cast<size_t>(i)][e]) *
                         a.values[static_cast<size_t>(j)][e]);
      }
      ASSERT_NEAR(got, want, 2e-6 * mag + 1e-6)
          << kandil::tensor_type_name(type) << " " << isa.name << " n=" << n << " rows=" << rows
          << " cols=" << cols << " at (" << i << "," << j << ")";
    }
  }
}

// Lengths of many super-blocks: several packed chunks plus a partial one, accumulated in out.
TEST(GemmK, LongRowsAcrossChunks) {
  if (isas().empty()) GTEST_SKIP() << "no AVX2";
  for (const Isa& isa : isas()) {
    for (TensorType type : kTypes) {
      uint32_t seed = 11;
      // (super-blocks, rows, cols): chunks of 4 (AVX-512) / 8 (AVX2) super-blocks, full and
      // partial panels and micro-tiles.
      for (auto [blocks, rows, cols] :
           {std::tuple<int64_t, int64_t, int64_t>{9, 16, 8}, {9, 9, 4}, {21, 35, 13}}) {
        const int64_t n = blocks * 256;
        const Rows w = quantized_rows(type, n, rows, 6, seed, 0.5f);
        const Rows a = quantized_rows(TensorType::Q8_K, n, cols, 12, seed + 1, 2.0f);
        check(isa, type, n, w, rows, a, cols);
        if (HasFatalFailure()) return;
        seed += 2;
      }
    }
  }
}

// Arbitrary block bits and extreme activations: exact integer sums, no int16 / int32 overflow.
TEST(GemmK, ArbitraryBitsAndExtremeActivations) {
  if (isas().empty()) GTEST_SKIP() << "no AVX2";
  const int64_t n = 6 * 256;
  for (const Isa& isa : isas()) {
    for (TensorType type : kTypes) {
      for (bool saturate : {false, true}) {
        for (int mode : {0, 1, 2}) {
          const uint32_t seed = 100 + static_cast<uint32_t>(mode) + (saturate ? 10u : 0u);
          const Rows w = random_weight_rows(type, n, 19, seed, saturate);
          const Rows a = q8k_rows(n, 11, seed + 7, mode);
          check(isa, type, n, w, 19, a, 11);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

}  // namespace
