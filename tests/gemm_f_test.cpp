// Extra tests of the float GEMM tiles (F32 / F16 / BF16, src/backend/cpu/gemm_f_*.cpp) beyond
// tests/gemm_test.cpp: rows longer than one pass over n (the kernels walk n in blocks and add the
// later blocks' partial sums), tiles larger than one register tile in both directions, and
// independence of the result from the tiling (each output is reduced the same way wherever it
// sits in a tile, so matmul's results do not depend on its chunking or thread count).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

const TensorType kFloatTypes[] = {TensorType::F32, TensorType::F16, TensorType::BF16};

std::vector<KernelChoice> fast_choices() {
  const kandil::CpuFeatures& f = kandil::cpu_features();
  std::vector<KernelChoice> c;
  if (f.avx2 && f.fma && f.f16c) {
    c.push_back(KernelChoice::Avx2);
    if (f.avx512f && f.avx512bw && f.avx512vl) c.push_back(KernelChoice::Avx512);
  }
  return c;
}

// `count` random rows of n values in `type`, `stride` bytes apart (keep pad a multiple of 4: the
// reference F32 dot reads floats); `values` holds them as floats.
struct Rows {
  std::vector<uint8_t> bytes;
  size_t stride = 0;
  std::vector<float> values;  // count x n
};

Rows make_rows(TensorType type, int64_t n, int64_t count, size_t pad, uint32_t seed, float sigma) {
  const kandil::ops::TypeTraits* t = kandil::ops::type_traits(type);
  Rows r;
  r.stride = kandil::tensor_row_bytes(type, n) + pad;
  r.bytes.assign(r.stride * static_cast<size_t>(count), 0x5A);
  r.values.resize(static_cast<size_t>(n * count));
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<float> x =
        kandil::testing::random_row(n, seed + 31u * static_cast<uint32_t>(i), sigma);
    uint8_t* dst = r.bytes.data() + static_cast<size_t>(i) * r.stride;
    t->from_float(x.data(), dst, n);
    t->to_float(dst, r.values.data() + i * n, n);
  }
  return r;
}

TEST(GemmFloat, LongRowsAndLargeTilesMatchReference) {
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kFloatTypes) {
      const DotKernels& k = dot_kernels(type, choice);
      if (k.gemm == nullptr) continue;
      const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(type);
      for (int64_t n : {1024, 2048 + 33, 3000}) {
        const int64_t rows = 41, cols = 27;
        const Rows w = make_rows(type, n, rows, 8, static_cast<uint32_t>(n), 0.5f);
        const Rows a = make_rows(wt->vec_dot_type, n, cols, 16, static_cast<uint32_t>(n) + 7, 2.0f);
        std::vector<float> out(static_cast<size_t>(rows * cols));
        k.gemm(n, w.bytes.data(), w.stride, rows, a.bytes.data(), a.stride, cols, out.data(), rows);
        for (int64_t j = 0; j < cols; ++j) {
          for (int64_t i = 0; i < rows; ++i) {
            const float want = wt->vec_dot(n, w.bytes.data() + static_cast<size_t>(i) * w.stride,
                                           a.bytes.data() + static_cast<size_t>(j) * a.stride);
            double mag = 0.0;
            for (int64_t e = 0; e < n; ++e) {
              mag += std::fabs(static_cast<double>(w.values[i * n + e]) * a.values[j * n + e]);
            }
            ASSERT_NEAR(out[j * rows + i], want, 1e-5 * mag)
                << kandil::tensor_type_name(type) << " " << k.gemm_isa << " n=" << n << " at (" << i
                << "," << j << ")";
            ++checked;
          }
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "no float GEMM kernels on this CPU";
}

// One call over the whole tile and one call per output give the same bits.
TEST(GemmFloat, ResultDoesNotDependOnTiling) {
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kFloatTypes) {
      const DotKernels& k = dot_kernels(type, choice);
      if (k.gemm == nullptr) continue;
      const TensorType at = kandil::ops::type_traits(type)->vec_dot_type;
      const int64_t n = 1500, rows = 13, cols = 11;
      const Rows w = make_rows(type, n, rows, 0, 5, 1.0f);
      const Rows a = make_rows(at, n, cols, 0, 9, 1.0f);
      std::vector<float> whole(static_cast<size_t>(rows * cols));
      k.gemm(n, w.bytes.data(), w.stride, rows, a.bytes.data(), a.stride, cols, whole.data(), rows);
      for (int64_t j = 0; j < cols; ++j) {
        for (int64_t i = 0; i < rows; ++i) {
          float one = 0.0f;
          k.gemm(n, w.bytes.data() + static_cast<size_t>(i) * w.stride, w.stride, 1,
                 a.bytes.data() + static_cast<size_t>(j) * a.stride, a.stride, 1, &one, 1);
          ASSERT_EQ(std::memcmp(&one, &whole[static_cast<size_t>(j * rows + i)], sizeof(float)), 0)
              << kandil::tensor_type_name(type) << " " << k.gemm_isa << " at (" << i << "," << j
              << "): " << one << " vs " << whole[static_cast<size_t>(j * rows + i)];
          ++checked;
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "no float GEMM kernels on this CPU";
}

}  // namespace
