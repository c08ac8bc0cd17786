// Matrix multiplication over quantized / float weights on the CPU, split over the thread pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "kandil/tensor_type.h"

namespace kandil::cpu {

// A weight matrix as stored: n_out rows of n_in elements of `type`, a view into the model file.
struct Weight {
  TensorType type = TensorType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;

  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

// Bytes of scratch matmul() needs to convert n_tokens activation rows of width n_in.
size_t matmul_scratch_bytes(const Weight& w, int64_t n_tokens);

// y[t][r] = dot(W.row(r), x[t]) for t < n_tokens, r < n_out. x is [n_tokens][n_in] floats; y is
// [n_tokens][n_out]. Activations are first converted to the weight type's dot type (as llama.cpp
// does), into `scratch` (at least matmul_scratch_bytes()).
void matmul(ThreadPool& pool, const Weight& w, const float* x, int64_t n_tokens, float* y,
            std::vector<uint8_t>& scratch);

// Several weights applied to the same input x (Q/K/V, gate/up): y_i = W_i x for every target.
// When the weights share n_in and activation format, x is converted once and all products run in
// one parallel region; otherwise this is one matmul() per target.
struct MatmulTarget {
  const Weight* w;
  float* y;
};
void matmul_shared_input(ThreadPool& pool, std::span<const MatmulTarget> targets, const float* x,
                         int64_t n_tokens, std::vector<uint8_t>& scratch);

// Dequantizes row r of w into out (n_in floats): embedding lookup.
void dequantize_row(const Weight& w, int64_t r, float* out);

}  // namespace kandil::cpu
