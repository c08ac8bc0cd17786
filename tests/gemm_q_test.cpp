// Tests of the legacy-quant GEMM tiles (gemm_q_avx512.cpp, gemm_q_avx2.cpp), called directly for
// every ISA the CPU has, beyond tests/gemm_test.cpp: shapes that cover every panel / micro-tile
// edge case (a lone last panel, partial panels, every tail width), longer rows, raw Q8_0 quants of
// -128, extremes that stay finite for Q8_1's half-precision sums, and results that do not depend
// on where an output falls in the tiling (so matmul does not depend on the thread count).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
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

const TensorType kTypes[] = {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                             TensorType::Q8_0};

struct Isa {
  const char* name;
  GemmFn (*get)(TensorType);
};

// The ISAs this CPU can run (the AVX-512 integer tiles need VNNI, as dispatch requires).
std::vector<Isa> isas() {
  const kandil::CpuFeatures& f = kandil::cpu_features();
  std::vector<Isa> out;
  if (f.avx2 && f.fma && f.f16c) {
    out.push_back({"avx2", kandil::cpu::detail::gemm_q_avx2});
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) {
      out.push_back({"avx512", kandil::cpu::detail::gemm_q_avx512});
    }
  }
  return out;
}

// `count` rows (stride padded by `pad` bytes, so rows may be misaligned) of `type`, quantized by
// the reference from rows made by make(i, e) (or random), with aligned copies for the reference
// dot (which reads the blocks' fields in place) and the dequantized values for the error scale.
struct Rows {
  std::vector<uint8_t> bytes;
  size_t stride = 0;
  std::vector<std::vector<uint8_t>> aligned;  // operator new: aligned for any block type
  std::vector<std::vector<float>> values;
  const uint8_t* row(int64_t i) const { return bytes.data() + static_cast<size_t>(i) * stride; }
};

template <class F>
Rows make_rows(TensorType type, int64_t n, int64_t count, size_t pad, F&& make) {
  const kandil::ops::TypeTraits* t = kandil::ops::type_traits(type);
  Rows r;
  r.stride = kandil::tensor_row_bytes(type, n) + pad;
  r.bytes.assign(r.stride * static_cast<size_t>(count), 0x5A);
  for (int64_t i = 0; i < count; ++i) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t e = 0; e < n; ++e) x[static_cast<size_t>(e)] = make(i, e);
    std::vector<uint8_t> q(kandil::tensor_row_bytes(type, n));
    t->from_float(x.data(), q.data(), n);
    std::copy(q.begin(), q.end(), r.bytes.begin() + static_cast<ptrdiff_t>(i) * r.stride);
    std::vector<float> back(static_cast<size_t>(n));
    t->to_float(q.data(), back.data(), n);
    r.aligned.push_back(std::move(q));
    r.values.push_back(std::move(back));
  }
  return r;
}

Rows random_rows(TensorType type, int64_t n, int64_t count, size_t pad, uint32_t seed,
                 float sigma) {
  std::vector<std::vector<float>> src;
  for (int64_t i = 0; i < count; ++i) {
    src.push_back(kandil::testing::random_row(n, seed + static_cast<uint32_t>(i) * 7919u, sigma));
  }
  return make_rows(type, n, count, pad, [&](int64_t i, int64_t e) {
    return src[static_cast<size_t>(i)][static_cast<size_t>(e)];
  });
}

// Runs the tile and checks every output against the reference dot (relative to sum |w * a|) and
// that nothing outside the tile was written.
void check(const Isa& isa, TensorType type, GemmFn gemm, int64_t n, const Rows& w, int64_t rows,
           const Rows& a, int64_t cols, double rel) {
  const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(type);
  const int64_t out_stride = rows + 2;
  const float sentinel = -777.0f;
  std::vector<float> out(static_cast<size_t>(out_stride * cols), sentinel);
  gemm(n, w.bytes.data(), w.stride, rows, a.bytes.data(), a.stride, cols, out.data(), out_stride);
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t i = 0; i < out_stride; ++i) {
      const float got = out[static_cast<size_t>(j * out_stride + i)];
      if (i >= rows) {
        ASSERT_EQ(got, sentinel) << "wrote outside the tile at (" << i << "," << j << ")";
        continue;
      }
      const float want = wt->vec_dot(n, w.aligned[static_cast<size_t>(i)].data(),
                                     a.aligned[static_cast<size_t>(j)].data());
      double mag = 0.0;
      for (int64_t e = 0; e < n; ++e) {
        mag += std::fabs(static_cast<double>(w.values[static_cast<size_t>(i)][e]) *
                         a.values[static_cast<size_t>(j)][e]);
      }
      ASSERT_NEAR(got, want, rel * mag + 1e-30)
          << kandil::tensor_type_name(type) << " " << isa.name << " n=" << n << " rows=" << rows
          << " cols=" << cols << " at (" << i << "," << j << ")";
    }
  }
}

TEST(GemmQ, EveryTileShapeMatchesReference) {
  const std::vector<Isa> all = isas();
  if (all.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  uint32_t seed = 100;
  for (const Isa& isa : all) {
    for (TensorType type : kTypes) {
      const GemmFn gemm = isa.get(type);
      ASSERT_NE(gemm, nullptr) << kandil::tensor_type_name(type) << " " << isa.name;
      const TensorType at = kandil::ops::type_traits(type)->vec_dot_type;
      for (int64_t n : {32, 160, 1024}) {
        // Rows around the 8 / 16 / 32-row panels; columns around the 3..8-token micro-tiles.
        const Rows w = random_rows(type, n, 71, 5, seed++, 0.5f);
        const Rows a = random_rows(at, n, 19, 11, seed++, 2.0f);
        for (int64_t rows : {1, 7, 8, 9, 16, 17, 31, 32, 33, 48, 49, 71}) {
          for (int64_t cols : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 19}) {
            check(isa, type, gemm, n, w, rows, a, cols, 1e-5);
            if (::testing::Test::HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// Constant-magnitude rows with alternating sign patterns: every block at its quantizer's
// extremes. Activations stay below 2048 so Q8_1's half-precision s = d * sum(q) is finite.
TEST(GemmQ, ExtremeValuesAreExact) {
  const std::vector<Isa> all = isas();
  if (all.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n = 4096, rows = 37, cols = 9;
  for (const Isa& isa : all) {
    for (TensorType type : kTypes) {
      const TensorType at = kandil::ops::type_traits(type)->vec_dot_type;
      const Rows w = make_rows(type, n, rows, 0, [](int64_t i, int64_t e) {
        return (((e >> (i % 7)) & 1) ? -1.0f : 1.0f) * 3.0e3f;
      });
      const Rows a = make_rows(at, n, cols, 0, [](int64_t j, int64_t e) {
        return (((e >> (j % 6)) & 1) ? 1.0f : -1.0f) * 1.5e3f;
      });
      check(isa, type, isa.get(type), n, w, rows, a, cols, 1e-5);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// Q8_0 files may hold quants of -128 (the reference quantizer never writes them): the integer
// sums must stay exact (AVX-512 stores q + 128, AVX2 multiplies |q| by sign(a, q)).
TEST(GemmQ, Q8_0RawMinus128IsExact) {
  const std::vector<Isa> all = isas();
  if (all.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  using kandil::ops::BlockQ8_0;
  const int64_t n = 256, nb = n / 32, rows = 19, cols = 6;
  std::vector<BlockQ8_0> w(static_cast<size_t>(rows * nb)), a(static_cast<size_t>(cols * nb));
  std::mt19937 rng(5);
  for (BlockQ8_0& b : w) {
    b.d = kandil::f32_to_fp16(0.25f);
    for (int8_t& q : b.qs)
      q = static_cast<int8_t>(rng() % 4 == 0 ? -128 : static_cast<int>(rng() % 255) - 127);
  }
  for (BlockQ8_0& b : a) {
    b.d = kandil::f32_to_fp16(0.5f);
    for (int8_t& q : b.qs) q = (rng() % 2) ? 127 : -127;
  }
  const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(TensorType::Q8_0);
  const size_t row = sizeof(BlockQ8_0) * nb;
  for (const Isa& isa : all) {
    std::vector<float> out(static_cast<size_t>(rows * cols));
    isa.get(TensorType::Q8_0)(n, w.data(), row, rows, a.data(), row, cols, out.data(), rows);
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t i = 0; i < rows; ++i) {
        // Every block sum is an integer times 0.125: exact in float, whatever the order.
        EXPECT_EQ(out[static_cast<size_t>(j * rows + i)],
                  wt->vec_dot(n, w.data() + i * nb, a.data() + j * nb))
            << isa.name << " at (" << i << "," << j << ")";
      }
    }
  }
}

// An output's value does not depend on which panel or micro-tile computed it: a 1x1 call gives
// the same bits as the full tile.
TEST(GemmQ, ResultsDoNotDependOnTiling) {
  const std::vector<Isa> all = isas();
  if (all.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n = 320, rows = 41, cols = 11;
  uint32_t seed = 900;
  for (const Isa& isa : all) {
    for (TensorType type : kTypes) {
      const GemmFn gemm = isa.get(type);
      const TensorType at = kandil::ops::type_traits(type)->vec_dot_type;
      const Rows w = random_rows(type, n, rows, 0, seed++, 1.0f);
      const Rows a = random_rows(at, n, cols, 0, seed++, 1.0f);
      std::vector<float> full(static_cast<size_t>(rows * cols));
      gemm(n, w.bytes.data(), w.stride, rows, a.bytes.data(), a.stride, cols, full.data(), rows);
      for (int64_t j = 0; j < cols; ++j) {
        for (int64_t i = 0; i < rows; ++i) {
          float one = 0.0f;
          gemm(n, w.row(i), w.stride, 1, a.row(j), a.stride, 1, &one, 1);
          ASSERT_EQ(std::memcmp(&one, &full[static_cast<size_t>(j * rows + i)], 4), 0)
              << kandil::tensor_type_name(type) << " " << isa.name << " at (" << i << "," << j
              << ")";
        }
      }
    }
  }
}

}  // namespace
