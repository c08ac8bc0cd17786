// AVX2 GEMM tiles (see GemmFn in kernels.h) for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights x Q8_0 /
// Q8_1 activations. Not written yet: no type has a tile here, so matmul() falls back to the dot
// kernels.
#include "backend/cpu/kernels.h"

namespace kandil::cpu::detail {

GemmFn gemm_q_avx2(TensorType) { return nullptr; }

}  // namespace kandil::cpu::detail
