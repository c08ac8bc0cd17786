// Tests of the GEMM tiles (GemmFn in src/backend/cpu/kernels.h, gemm_*.cpp) against the scalar
// reference dot on fresh random inputs of odd shapes: every output equals the reference vec_dot
// of its weight row and activation row up to float rounding, outputs outside the tile are left
// alone, and strided inputs / outputs work.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "base/cpu_features.h"
#include "kandil/tensor_type.h"
#include "ops/quant.h"
#include "test_util.h"

namespace {

using kandil::TensorType;
using kandil::cpu::dot_kernels;
using kandil::cpu::DotKernels;
using kandil::cpu::KernelChoice;
using kandil::testing::random_row;

const TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
                             TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                             TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                             TensorType::Q6_K};

std::vector<KernelChoice> fast_choices() {
  const kandil::CpuFeatures& f = kandil::cpu_features();
  std::vector<KernelChoice> c;
  if (f.avx2 && f.fma && f.f16c) {
    c.push_back(KernelChoice::Avx2);
    if (f.avx512f && f.avx512bw && f.avx512vl) c.push_back(KernelChoice::Avx512);
  }
  return c;
}

// `count` rows of n values quantized to `type` by the reference, back to back (row stride padded
// by `pad` bytes so kernels cannot assume packed rows).
struct Rows {
  std::vector<uint8_t> bytes;
  size_t stride = 0;
  std::vector<std::vector<float>> values;  // dequantized, for the error scale
};

Rows make_rows(TensorType type, int64_t n, int64_t count, size_t pad, uint32_t seed, float sigma) {
  const kandil::ops::TypeTraits* t = kandil::ops::type_traits(type);
  Rows r;
  const size_t row = kandil::tensor_row_bytes(type, n);
  r.stride = row + pad;
  r.bytes.assign(r.stride * static_cast<size_t>(count), 0xA5);
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<float> x = random_row(n, seed + static_cast<uint32_t>(i) * 7919u, sigma);
    uint8_t* dst = r.bytes.data() + static_cast<size_t>(i) * r.stride;
    t->from_float(x.data(), dst, n);
    std::vector<float> back(static_cast<size_t>(n));
    t->to_float(dst, back.data(), n);
    r.values.push_back(std::move(back));
  }
  return r;
}

void check_tile(TensorType type, const DotKernels& fast, int64_t n, int64_t rows, int64_t cols,
                uint32_t seed) {
  const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(type);
  const TensorType at = wt->vec_dot_type;
  const Rows w = make_rows(type, n, rows, 4 * (seed % 5), seed, 0.5f);
  const Rows a = make_rows(at, n, cols, 8 * (seed % 3), seed + 1, 2.0f);
  const int64_t out_stride = rows + 3;  // outputs of other rows sit between tile columns
  const float sentinel = -12345.0f;
  std::vector<float> out(static_cast<size_t>(out_stride * cols + 5), sentinel);
  fast.gemm(n, w.bytes.data(), w.stride, rows, a.bytes.data(), a.stride, cols, out.data(),
            out_stride);
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t i = 0; i < out_stride; ++i) {
      const float got = out[static_cast<size_t>(j * out_stride + i)];
      if (i >= rows) {
        ASSERT_EQ(got, sentinel) << "gemm wrote outside its tile at row " << i << " col " << j;
        continue;
      }
      const float want = wt->vec_dot(n, w.bytes.data() + static_cast<size_t>(i) * w.stride,
                                     a.bytes.data() + static_cast<size_t>(j) * a.stride);
      double mag = 0.0;
      for (int64_t e = 0; e < n; ++e) {
        mag += std::fabs(static_cast<double>(w.values[static_cast<size_t>(i)][e]) *
                         a.values[static_cast<size_t>(j)][e]);
      }
      ASSERT_NEAR(got, want, 1e-5 * mag + 1e-30)
          << kandil::tensor_type_name(type) << " " << fast.gemm_isa << " n=" << n
          << " rows=" << rows << " cols=" << cols << " at (" << i << "," << j << ")";
    }
  }
}

TEST(Gemm, TilesMatchReferenceDots) {
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kTypes) {
      const DotKernels& fast = dot_kernels(type, choice);
      if (fast.gemm == nullptr) continue;
      const int64_t bs = kandil::ops::type_traits(type)->block_size;
      std::vector<int64_t> lengths = {bs, 3 * bs, 9 * bs};
      if (bs == 1) lengths = {1, 7, 16, 33, 250, 1029};
      uint32_t seed = 1;
      for (int64_t n : lengths) {
        for (int64_t rows : {1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 33}) {
          for (int64_t cols : {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 19}) {
            check_tile(type, fast, n, rows, cols, seed++);
            if (::testing::Test::HasFatalFailure()) return;
            ++checked;
          }
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "no GEMM kernels on this CPU";
}

// Large values and every-lane-saturating quantized inputs (e.g. Q8 values of -128 / 127) must not
// overflow the integer accumulators.
TEST(Gemm, ExtremeValuesDoNotOverflow) {
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kTypes) {
      const DotKernels& fast = dot_kernels(type, choice);
      if (fast.gemm == nullptr) continue;
      const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(type);
      const kandil::ops::TypeTraits* dt = kandil::ops::type_traits(wt->vec_dot_type);
      const int64_t n = 8 * 256, rows = 5, cols = 6;
      // Constant-magnitude rows with alternating sign patterns: every block hits its extremes.
      std::vector<uint8_t> wq, aq;
      const size_t w_row = kandil::tensor_row_bytes(type, n);
      const size_t a_row = kandil::tensor_row_bytes(wt->vec_dot_type, n);
      for (int64_t i = 0; i < rows; ++i) {
        std::vector<float> x(static_cast<size_t>(n));
        for (int64_t e = 0; e < n; ++e) x[e] = (((e >> i) & 1) ? -1.0f : 1.0f) * 3.0e3f;
        wq.resize(w_row * static_cast<size_t>(i + 1));
        wt->from_float(x.data(), wq.data() + w_row * static_cast<size_t>(i), n);
      }
      for (int64_t j = 0; j < cols; ++j) {
        std::vector<float> x(static_cast<size_t>(n));
        // Q8_1 keeps d * sum(q) as a half: 1e3-sized activations keep it finite.
        for (int64_t e = 0; e < n; ++e) x[e] = (((e >> j) & 1) ? 1.0f : -1.0f) * 1.0e3f;
        aq.resize(a_row * static_cast<size_t>(j + 1));
        dt->from_float(x.data(), aq.data() + a_row * static_cast<size_t>(j), n);
      }
      std::vector<float> out(static_cast<size_t>(rows * cols));
      fast.gemm(n, wq.data(), w_row, rows, aq.data(), a_row, cols, out.data(), rows);
      for (int64_t j = 0; j < cols; ++j) {
        for (int64_t i = 0; i < rows; ++i) {
          const float want = wt->vec_dot(n, wq.data() + w_row * static_cast<size_t>(i),
                                         aq.data() + a_row * static_cast<size_t>(j));
          EXPECT_NEAR(out[static_cast<size_t>(j * rows + i)], want,
                      1e-5 * 3.0e3 * 1.0e3 * static_cast<double>(n))
              << kandil::tensor_type_name(type) << " " << fast.gemm_isa;
          ++checked;
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "no GEMM kernels on this CPU";
}

}  // namespace
