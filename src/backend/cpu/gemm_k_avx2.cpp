// AVX2 GEMM tiles (see GemmFn in kernels.h) for K-quant weights (Q2_K..Q6_K) x Q8_K activations.
// Not written yet: no type has a tile here, so matmul() falls back to the dot kernels.
#include "backend/cpu/kernels.h"

namespace kandil::cpu::detail {

GemmFn gemm_k_avx2(TensorType) { return nullptr; }

}  // namespace kandil::cpu::detail
