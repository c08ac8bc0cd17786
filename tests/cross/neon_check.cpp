// Cross-built check of the AArch64 NEON kernels (kernels_neon.cpp) against the scalar references,
// for machines without an ARM CPU: scripts/check_neon.sh builds this with an AArch64
// cross-compiler and runs it under qemu-user. Exits non-zero on any mismatch.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "kandil/tensor_type.h"
#include "ops/quant.h"

namespace {

std::vector<float> random_row(int64_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    do {
      x = dist(rng);
    } while (x == 0.0f);
  }
  return v;
}

}  // namespace

int main() {
  using kandil::TensorType;
  int failures = 0, checked = 0;
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::Q4_0, TensorType::Q8_0}) {
    const kandil::cpu::detail::IsaDot neon = kandil::cpu::detail::neon_dot(type);
    if (neon.vec_dot == nullptr) {
      std::printf("FAIL %s: no NEON kernel\n", std::string(kandil::tensor_type_name(type)).c_str());
      ++failures;
      continue;
    }
    const kandil::ops::TypeTraits* wt = kandil::ops::type_traits(type);
    const kandil::ops::TypeTraits* dt = kandil::ops::type_traits(wt->vec_dot_type);
    for (int64_t blocks : {1, 3, 7, 33}) {
      const int64_t n = blocks * (wt->block_size == 1 ? 37 : wt->block_size);
      for (uint32_t seed = 1; seed <= 4; ++seed) {
        const std::vector<float> w = random_row(n, seed * 31u + static_cast<uint32_t>(n), 0.5f);
        const std::vector<float> x = random_row(n, seed * 57u + static_cast<uint32_t>(n), 2.0f);
        std::vector<uint8_t> wq(kandil::tensor_row_bytes(type, n));
        std::vector<uint8_t> xq(kandil::tensor_row_bytes(wt->vec_dot_type, n));
        wt->from_float(w.data(), wq.data(), n);
        dt->from_float(x.data(), xq.data(), n);
        const float want = wt->vec_dot(n, wq.data(), xq.data());
        const float got = neon.vec_dot(n, wq.data(), xq.data());
        double mag = 0.0;
        for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(w[i]) * x[i]);
        ++checked;
        if (std::fabs(static_cast<double>(got) - want) > 1e-5 * mag + 1e-30) {
          std::printf("FAIL %s n=%lld seed=%u: neon %g, reference %g\n",
                      std::string(kandil::tensor_type_name(type)).c_str(),
                      static_cast<long long>(n), seed, got, want);
          ++failures;
        }
      }
    }
  }
  std::printf("neon_check: %d dots checked, %d failures\n", checked, failures);
  return failures == 0 ? 0 : 1;
}
