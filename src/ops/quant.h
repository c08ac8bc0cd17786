// Per-type kernels for the engine's tensor types: the plain scalar *reference* implementations.
// Every optimized kernel (backend/cpu) is tested against these on random inputs.
//
// Dot products follow ggml's scheme: a weight row of type T is multiplied with an activation row
// first converted to T's `vec_dot_type` (F16 for F16, Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1,
// Q8_K for the K-quants), so results match llama.cpp's CPU backend to float rounding.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kandil/tensor_type.h"

namespace kandil::ops {

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Dot product of n elements: x in this type, y in the type's vec_dot_type.
using VecDotFn = float (*)(int64_t n, const void* x, const void* y);

struct TypeTraits {
  TensorType type;
  int64_t block_size;
  size_t block_bytes;
  ToFloatFn to_float;      // dequantize (reference)
  FromFloatFn from_float;  // quantize (reference, round-to-nearest); null if not implemented
  VecDotFn vec_dot;        // null for types only used as activations (Q8_1, Q8_K)
  TensorType vec_dot_type;
};

// Traits of a supported type; nullptr for unsupported ones.
const TypeTraits* type_traits(TensorType type);

}  // namespace kandil::ops
