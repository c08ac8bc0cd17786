// AVX512 GEMM tiles (see GemmFn in kernels.h) for F32, F16 and BF16 weights x F32 / F16 / BF16
// activations. Not written yet: no type has a tile here, so matmul() falls back to the dot kernels.
#include "backend/cpu/kernels.h"

namespace kandil::cpu::detail {

GemmFn gemm_f_avx512(TensorType) { return nullptr; }

}  // namespace kandil::cpu::detail
