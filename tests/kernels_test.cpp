// Tests of the optimized CPU kernels (src/backend/cpu/kernels*.cpp) against the scalar references
// of ops/quant.h, on fresh random inputs:
//  - vec_dot equals the reference up to float rounding (relative to sum |w_i * x_i|);
//  - quantize_activation produces exactly the reference's bytes;
//  - dispatch: KANDIL_KERNELS-style choices, reference fallback, the summary.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "base/cpu_features.h"
#include "base/fp16.h"
#include "base/thread_pool.h"
#include "kandil/tensor_type.h"
#include "ops/quant.h"
#include "test_util.h"

namespace {

using kandil::TensorType;
using kandil::cpu::dot_kernels;
using kandil::cpu::DotKernels;
using kandil::cpu::KernelChoice;

using kandil::testing::random_row;

const kandil::ops::TypeTraits& traits(TensorType t) {
  const kandil::ops::TypeTraits* tt = kandil::ops::type_traits(t);
  EXPECT_NE(tt, nullptr);
  return *tt;
}

std::vector<uint8_t> convert(kandil::ops::FromFloatFn fn, TensorType t,
                             const std::vector<float>& x) {
  std::vector<uint8_t> q(kandil::tensor_row_bytes(t, static_cast<int64_t>(x.size())));
  fn(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> to_float(TensorType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  traits(t).to_float(q.data(), y.data(), n);
  return y;
}

bool has_avx2() {
  const kandil::CpuFeatures& f = kandil::cpu_features();
  return f.avx2 && f.fma && f.f16c;
}
bool has_avx512() {
  const kandil::CpuFeatures& f = kandil::cpu_features();
  return has_avx2() && f.avx512f && f.avx512bw && f.avx512vl;
}

#define REQUIRE_AVX2()                                                                   \
  do {                                                                                   \
    if (!has_avx2()) GTEST_SKIP() << "CPU lacks AVX2/FMA/F16C: no fast kernels to test"; \
  } while (0)

const TensorType kWeightTypes[] = {
    TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1,
    TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K, TensorType::Q3_K,
    TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

// The fast implementation under test, for each ISA level the CPU has (each compared separately).
std::vector<KernelChoice> fast_choices() {
  std::vector<KernelChoice> c;
  if (has_avx2()) c.push_back(KernelChoice::Avx2);
  if (has_avx512()) c.push_back(KernelChoice::Avx512);
#if defined(__aarch64__)
  c.push_back(KernelChoice::Neon);
#endif
  return c;
}

const char* choice_name(KernelChoice c) {
  switch (c) {
    case KernelChoice::Auto:
      return "auto";
    case KernelChoice::Avx512:
      return "avx512";
    case KernelChoice::Avx2:
      return "avx2";
    case KernelChoice::Reference:
      return "reference";
    case KernelChoice::Neon:
      return "neon";
  }
  return "?";
}

// ---- vec_dot ------------------------------------------------------------------------------------

TEST(Kernels, VecDotMatchesReference) {
  REQUIRE_AVX2();
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kWeightTypes) {
      const DotKernels& fast = dot_kernels(type, choice);
      const DotKernels& ref = dot_kernels(type, KernelChoice::Reference);
      ASSERT_NE(ref.vec_dot, nullptr) << kandil::tensor_type_name(type);
      if (fast.vec_dot == ref.vec_dot) continue;  // no fast kernel for this type
      const auto& wt = traits(type);
      const auto& dt = traits(wt.vec_dot_type);
      // Odd block counts; the plain types (block 1) also get lengths with SIMD tails.
      std::vector<int64_t> lengths;
      for (int64_t blocks : {1, 3, 7, 33}) lengths.push_back(blocks * wt.block_size);
      if (wt.block_size == 1) {
        for (int64_t n : {5, 31, 257, 1000, 4099}) lengths.push_back(n);
      }
      for (int64_t n : lengths) {
        for (uint32_t seed = 1; seed <= 4; ++seed) {
          const uint32_t s =
              seed * 7919u + static_cast<uint32_t>(n) * 31u + static_cast<uint32_t>(type) * 104729u;
          const std::vector<float> wf = random_row(n, s, 0.5f);
          const std::vector<float> xf = random_row(n, s + 1, 2.0f);
          // Weight row quantized with the reference; activations with the reference too, so both
          // dots see the very same bytes.
          const std::vector<uint8_t> wq = convert(wt.from_float, type, wf);
          const std::vector<uint8_t> xq = convert(dt.from_float, wt.vec_dot_type, xf);
          const float r = ref.vec_dot(n, wq.data(), xq.data());
          const float f = fast.vec_dot(n, wq.data(), xq.data());
          // Scale of the rounding error: sum |w_i * x_i| of the operands as the dot sees them.
          const std::vector<float> wd = to_float(type, wq, n);
          const std::vector<float> xd = to_float(wt.vec_dot_type, xq, n);
          double mag = 0.0;
          for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wd[i]) * xd[i]);
          EXPECT_NEAR(f, r, 1e-5 * mag + 1e-30) << kandil::tensor_type_name(type) << " " << fast.isa
                                                << " n=" << n << " seed=" << seed;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// vec_dot_rows (several activation rows per weight row) must equal vec_dot bit for bit, for any
// count and stride, so that results never depend on how a batch is grouped.
TEST(Kernels, VecDotRowsEqualsVecDotExactly) {
  REQUIRE_AVX2();
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kWeightTypes) {
      const DotKernels& fast = dot_kernels(type, choice);
      if (fast.vec_dot_rows == nullptr) continue;
      const auto& wt = traits(type);
      const auto& dt = traits(wt.vec_dot_type);
      for (int64_t blocks : {1, 3, 7, 33, 77}) {
        const int64_t n = blocks * wt.block_size * (wt.block_size == 1 ? 3 : 1);
        const std::vector<uint8_t> wq = convert(wt.from_float, type, random_row(n, 11, 0.5f));
        const size_t row = kandil::tensor_row_bytes(wt.vec_dot_type, n);
        const size_t stride = row + 64;  // rows need not be contiguous
        for (int64_t count : {1, 2, 3, 4, 5, 7, 9}) {
          std::vector<uint8_t> ys(stride * static_cast<size_t>(count));
          for (int64_t j = 0; j < count; ++j) {
            const auto q = convert(dt.from_float, wt.vec_dot_type,
                                   random_row(n, 100u + static_cast<uint32_t>(j), 2.0f));
            std::memcpy(ys.data() + static_cast<size_t>(j) * stride, q.data(), row);
          }
          std::vector<float> out(static_cast<size_t>(count), -1.0f);
          fast.vec_dot_rows(n, wq.data(), ys.data(), stride, count, out.data());
          for (int64_t j = 0; j < count; ++j) {
            const float one =
                fast.vec_dot(n, wq.data(), ys.data() + static_cast<size_t>(j) * stride);
            EXPECT_EQ(kandil::f32_to_bits(out[static_cast<size_t>(j)]), kandil::f32_to_bits(one))
                << kandil::tensor_type_name(type) << " " << fast.isa << " n=" << n
                << " count=" << count << " j=" << j;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// Zero-filled and extreme-scale blocks must not break the integer paths (e.g. all-zero Q8_K
// activations, the largest quants).
TEST(Kernels, VecDotEdgeValues) {
  REQUIRE_AVX2();
  for (KernelChoice choice : fast_choices()) {
    for (TensorType type : kWeightTypes) {
      const DotKernels& fast = dot_kernels(type, choice);
      const DotKernels& ref = dot_kernels(type, KernelChoice::Reference);
      if (fast.vec_dot == ref.vec_dot) continue;
      const auto& wt = traits(type);
      const auto& dt = traits(wt.vec_dot_type);
      const int64_t n = 3 * std::max<int64_t>(wt.block_size, 32);
      std::vector<float> wf = random_row(n, 5, 1.0f), xf = random_row(n, 6, 1.0f);
      // First block of activations all zero, a spike in the second, saturating weights.
      for (int64_t i = 0; i < n / 3; ++i) xf[static_cast<size_t>(i)] = 0.0f;
      xf[static_cast<size_t>(n / 3 + 1)] = 1e4f;
      wf[static_cast<size_t>(n - 1)] = -50.0f;
      const std::vector<uint8_t> wq = convert(wt.from_float, type, wf);
      const std::vector<uint8_t> xq = convert(dt.from_float, wt.vec_dot_type, xf);
      const float r = ref.vec_dot(n, wq.data(), xq.data());
      const float f = fast.vec_dot(n, wq.data(), xq.data());
      const std::vector<float> wd = to_float(type, wq, n), xd = to_float(wt.vec_dot_type, xq, n);
      double mag = 0.0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wd[i]) * xd[i]);
      EXPECT_NEAR(f, r, 1e-5 * mag + 1e-30) << kandil::tensor_type_name(type) << " " << fast.isa;
    }
  }
}

// ---- activation quantization --------------------------------------------------------------------

void expect_same_bytes(KernelChoice choice, TensorType weight_type, const std::vector<float>& x,
                       const std::string& what) {
  const DotKernels& fast = dot_kernels(weight_type, choice);
  const DotKernels& ref = dot_kernels(weight_type, KernelChoice::Reference);
  const TensorType dt = ref.vec_dot_type;
  const std::vector<uint8_t> a = convert(fast.quantize_activation, dt, x);
  const std::vector<uint8_t> b = convert(ref.quantize_activation, dt, x);
  ASSERT_EQ(a.size(), b.size());
  size_t first = a.size();
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      first = i;
      break;
    }
  }
  EXPECT_EQ(first, a.size()) << kandil::tensor_type_name(dt) << " (" << fast.quantize_isa
                             << ") differs from the reference at byte " << first << " of "
                             << a.size() << ": " << what;
}

// One weight type per activation type.
const TensorType kActivationOf[] = {TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                                    TensorType::Q4_1, TensorType::Q4_K};

TEST(Kernels, QuantizeActivationBytesMatchReference) {
  REQUIRE_AVX2();
  int checked = 0;
  for (KernelChoice choice : fast_choices()) {
    for (TensorType wtype : kActivationOf) {
      const DotKernels& fast = dot_kernels(wtype, choice);
      const DotKernels& ref = dot_kernels(wtype, KernelChoice::Reference);
      if (fast.quantize_activation == ref.quantize_activation) continue;
      const int64_t block = traits(ref.vec_dot_type).block_size;
      std::vector<int64_t> lengths;
      for (int64_t blocks : {1, 3, 7, 33}) lengths.push_back(blocks * block);
      if (block == 1) {
        for (int64_t n : {5, 31, 257, 4099}) lengths.push_back(n);
      }
      for (int64_t n : lengths) {
        for (uint32_t seed = 1; seed <= 6; ++seed) {
          const float sigma = seed % 3 == 0 ? 1e-3f : (seed % 3 == 1 ? 1.0f : 300.0f);
          expect_same_bytes(choice, wtype,
                            random_row(n, seed * 131u + static_cast<uint32_t>(n), sigma),
                            "random n=" + std::to_string(n) + " seed=" + std::to_string(seed));
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// Values on rounding boundaries: x * (1/d) landing exactly on k + 0.5 (roundf rounds away from
// zero, nearbyint to even), ties of |max| with both signs, zero blocks, tiny and huge values.
TEST(Kernels, QuantizeActivationRoundingEdges) {
  REQUIRE_AVX2();
  for (KernelChoice choice : fast_choices()) {
    for (TensorType wtype : kActivationOf) {
      const int64_t block =
          traits(dot_kernels(wtype, KernelChoice::Reference).vec_dot_type).block_size;
      const int64_t n = 4 * std::max<int64_t>(block, 256);
      std::vector<float> x(static_cast<size_t>(n));
      // Half-integers against amax = 127: x * id is k + 0.5 (up to the rounding of id).
      for (int64_t i = 0; i < n; ++i) {
        x[static_cast<size_t>(i)] = static_cast<float>((i % 255) - 127) + 0.5f;
      }
      for (int64_t i = 0; i < n; i += 32) x[static_cast<size_t>(i)] = 127.0f;
      expect_same_bytes(choice, wtype, x, "half-integers");
      // Signed ties of the largest magnitude: the first one decides the sign (Q8_K).
      for (int64_t i = 0; i < n; ++i) {
        x[static_cast<size_t>(i)] = (i % 7 == 3) ? -2.0f : ((i % 7 == 5) ? 2.0f : 0.37f * (i % 5));
      }
      expect_same_bytes(choice, wtype, x, "signed ties");
      std::fill(x.begin(), x.end(), 0.0f);
      expect_same_bytes(choice, wtype, x, "zeros");
      x[static_cast<size_t>(n / 2)] = -0.0f;
      x[static_cast<size_t>(n / 2 + 1)] = 1e-30f;  // F16 underflow, denormal F32 fine
      x[static_cast<size_t>(n / 2 + 2)] = 6e-8f;   // F16 subnormal boundary
      x[static_cast<size_t>(n / 2 + 3)] = 65519.0f;
      x[static_cast<size_t>(n / 2 + 4)] = 65520.0f;  // rounds to F16 infinity
      x[static_cast<size_t>(n / 2 + 5)] = -1e30f;
      expect_same_bytes(choice, wtype, x, "extremes");
      // One ulp either side of the ties k + 0.5, with amax = 127 so that the scale is exactly 1
      // (catches floor(|x| + 0.5), which rounds 0.49999997 up).
      for (int64_t i = 0; i < n; ++i) {
        const float tie = static_cast<float>(i % 64) * 0.5f;
        const float dir = (i & 64) ? 100.0f : -100.0f;
        x[static_cast<size_t>(i)] = (i % 32 == 0) ? 127.0f : std::nextafter(tie, dir);
      }
      expect_same_bytes(choice, wtype, x, "near ties");
    }
  }
}

// F32 -> F16 over many random bit patterns (all exponents, subnormals, infinities, NaNs) must equal
// f32_to_fp16 bit for bit; likewise F32 -> BF16.
TEST(Kernels, HalfConversionsBitExact) {
  REQUIRE_AVX2();
  std::mt19937 rng(12345);
  const int64_t n = 1 << 18;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = kandil::bits_to_f32(static_cast<uint32_t>(rng()));
  // Plus every value around the F16 rounding boundaries of a few exponents.
  for (uint32_t e = 100; e < 145; ++e) {
    for (uint32_t m = 0; m < 64; ++m) {
      x[static_cast<size_t>(e * 64 + m)] = kandil::bits_to_f32((e << 23) | (m << 12) | 0xfffu);
    }
  }
  for (KernelChoice choice : fast_choices()) {
    expect_same_bytes(choice, TensorType::F16, x, "random bits");
    expect_same_bytes(choice, TensorType::BF16, x, "random bits");
  }
}

// ---- dispatch -----------------------------------------------------------------------------------

TEST(KernelDispatch, ParseChoice) {
  using kandil::cpu::parse_kernel_choice;
  EXPECT_EQ(parse_kernel_choice(nullptr), KernelChoice::Auto);
  EXPECT_EQ(parse_kernel_choice(""), KernelChoice::Auto);
  EXPECT_EQ(parse_kernel_choice("auto"), KernelChoice::Auto);
  EXPECT_EQ(parse_kernel_choice("reference"), KernelChoice::Reference);
  EXPECT_EQ(parse_kernel_choice("REF"), KernelChoice::Reference);
  EXPECT_EQ(parse_kernel_choice("scalar"), KernelChoice::Reference);
  EXPECT_EQ(parse_kernel_choice("AVX2"), KernelChoice::Avx2);
  EXPECT_EQ(parse_kernel_choice("avx512"), KernelChoice::Avx512);
  EXPECT_EQ(parse_kernel_choice("Neon"), KernelChoice::Neon);
  EXPECT_FALSE(parse_kernel_choice("sse9").has_value());
}

TEST(KernelDispatch, ReferenceChoiceGivesTheReferenceTraits) {
  for (TensorType type : kWeightTypes) {
    const auto& wt = traits(type);
    const DotKernels& k = dot_kernels(type, KernelChoice::Reference);
    EXPECT_EQ(k.vec_dot, wt.vec_dot) << kandil::tensor_type_name(type);
    EXPECT_EQ(k.vec_dot_rows, nullptr);
    EXPECT_EQ(k.quantize_activation, traits(wt.vec_dot_type).from_float);
    EXPECT_EQ(k.vec_dot_type, wt.vec_dot_type);
    EXPECT_STREQ(k.isa, "reference");
    EXPECT_STREQ(k.quantize_isa, "reference");
  }
}

TEST(KernelDispatch, TypesWithoutDotHaveNoKernels) {
  for (TensorType type :
       {TensorType::Q8_1, TensorType::Q8_K, TensorType::I32, TensorType::IQ2_XXS}) {
    for (KernelChoice c : {KernelChoice::Auto, KernelChoice::Reference}) {
      EXPECT_EQ(dot_kernels(type, c).vec_dot, nullptr) << kandil::tensor_type_name(type);
    }
  }
  EXPECT_EQ(dot_kernels(static_cast<TensorType>(1000)).vec_dot, nullptr);
}

TEST(KernelDispatch, AutoPicksTheBestAvailable) {
  const DotKernels& f16 = dot_kernels(TensorType::F16, KernelChoice::Auto);
  if (!has_avx2()) {
    EXPECT_STREQ(f16.isa, "reference");
    return;
  }
  EXPECT_STRNE(f16.isa, "reference");
  EXPECT_STRNE(f16.quantize_isa, "reference");
  // A capped choice never exceeds its level.
  for (TensorType type : kWeightTypes) {
    EXPECT_STRNE(dot_kernels(type, KernelChoice::Avx2).isa, "avx512");
  }
  // The active choice is one of the tables (KANDIL_KERNELS unset in the test environment -> auto).
  const KernelChoice active = kandil::cpu::active_kernel_choice();
  EXPECT_EQ(&dot_kernels(TensorType::Q4_0), &dot_kernels(TensorType::Q4_0, active))
      << choice_name(active);
}

TEST(KernelDispatch, SummaryListsEveryDotType) {
  const auto summary = kandil::cpu::kernel_summary();
  EXPECT_GE(summary.size(), std::size(kWeightTypes));
  const std::string s = kandil::cpu::kernel_summary_string();
  EXPECT_NE(s.find("F16: vec_dot "), std::string::npos) << s;
  EXPECT_NE(s.find("Q4_K: vec_dot "), std::string::npos) << s;
}

// KANDIL_KERNELS=reference really forces the reference kernels. The variable is read once per
// process, so this runs in a fresh process (death-test "threadsafe" style re-executes the binary
// for just this test) that sets it before the first dispatch.
TEST(KernelDispatchDeathTest, EnvironmentForcesReference) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("KANDIL_KERNELS", "reference", 1);
        bool ok = kandil::cpu::active_kernel_choice() == KernelChoice::Reference;
        for (TensorType type : kWeightTypes) {
          const DotKernels& k = dot_kernels(type);
          ok = ok && k.vec_dot == traits(type).vec_dot && std::string(k.isa) == "reference";
        }
        for (const auto& info : kandil::cpu::kernel_summary()) {
          ok = ok && std::string(info.vec_dot_isa) == "reference" &&
               std::string(info.quantize_isa) == "reference";
        }
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// The forced reference: running a model-like matmul with the reference kernels and with the fast
// ones gives the same outputs up to rounding, and the reference table really is scalar (checked
// above); here through the whole matmul path (activation conversion + dots + threading).
TEST(KernelDispatch, MatmulFastEqualsReferenceKernels) {
  REQUIRE_AVX2();
  kandil::ThreadPool pool(3);
  for (TensorType type : {TensorType::F16, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q6_K}) {
    const auto& wt = traits(type);
    const int64_t n_in = 512, n_out = 37, n_tokens = 5;
    std::vector<uint8_t> wbytes;
    const size_t row_bytes = kandil::tensor_row_bytes(type, n_in);
    for (int64_t r = 0; r < n_out; ++r) {
      const auto q =
          convert(wt.from_float, type, random_row(n_in, 1000u + static_cast<uint32_t>(r)));
      wbytes.insert(wbytes.end(), q.begin(), q.end());
    }
    kandil::cpu::Weight w;
    w.type = type;
    w.n_in = n_in;
    w.n_out = n_out;
    w.data = wbytes.data();
    w.row_bytes = row_bytes;
    const std::vector<float> x = random_row(n_in * n_tokens, 77);
    std::vector<float> y(static_cast<size_t>(n_out * n_tokens));
    std::vector<uint8_t> scratch;
    kandil::cpu::matmul(pool, w, x.data(), n_tokens, y.data(), scratch);

    // Same with the reference kernels, by hand.
    const DotKernels& ref = dot_kernels(type, KernelChoice::Reference);
    const size_t xq_row = kandil::tensor_row_bytes(ref.vec_dot_type, n_in);
    std::vector<uint8_t> xq(xq_row * static_cast<size_t>(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t) {
      ref.quantize_activation(x.data() + t * n_in, xq.data() + static_cast<size_t>(t) * xq_row,
                              n_in);
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < n_out; ++r) {
        const float want = ref.vec_dot(n_in, w.row(r), xq.data() + static_cast<size_t>(t) * xq_row);
        EXPECT_NEAR(y[static_cast<size_t>(t * n_out + r)], want, 1e-4f * (1.0f + std::fabs(want)))
            << kandil::tensor_type_name(type) << " t=" << t << " r=" << r;
      }
    }
  }
}

}  // namespace
