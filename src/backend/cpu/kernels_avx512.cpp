// AVX-512 kernels (placeholder until written): none yet, dispatch falls back to AVX2.
#include "backend/cpu/kernels.h"

namespace kandil::cpu::detail {

ops::VecDotFn avx512_vec_dot(TensorType, bool& needs_vnni) {
  needs_vnni = false;
  return nullptr;
}
ops::FromFloatFn avx512_from_float(TensorType) { return nullptr; }

}  // namespace kandil::cpu::detail
