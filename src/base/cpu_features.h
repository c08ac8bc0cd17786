// Runtime CPU feature detection (x86 CPUID + XGETBV; NEON on aarch64).
#pragma once

#include <string>

namespace kandil {

struct CpuFeatures {
  bool sse3 = false, ssse3 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avx_vnni = false;
  bool neon = false;

  // Space-separated list of the features present, e.g. "avx2 fma f16c".
  std::string to_string() const;
};

const CpuFeatures& cpu_features();

}  // namespace kandil
