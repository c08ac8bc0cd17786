// Plain scalar reference implementations of the element-wise and row ops of a transformer block.
// They are the oracle for optimized kernels and, until those exist, the kernels themselves.
#pragma once

#include <cstdint>

#include "kandil/model.h"

namespace kandil::ops {

// y = x / sqrt(mean(x^2) + eps) * w   (y may alias x)
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);

// Rotates the first n_rot dims of each of n_heads heads (stride head_dim) of one token at `pos`.
// theta_i = pos * freq_scale * base^(-2i/n_rot).
void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int32_t pos, float freq_base,
          float freq_scale, RopeLayout layout);
// The same with per-pair frequency factors (LLaMA 3 rope scaling; llama.cpp's rope_freqs tensor):
// theta_i = pos * freq_scale * base^(-2i/n_rot) / freq_factors[i]; null means all ones.
void rope(float* x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int32_t pos, float freq_base,
          float freq_scale, RopeLayout layout, const float* freq_factors);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int64_t n);

// y[i] += x[i]
void add(float* y, const float* x, int64_t n);

}  // namespace kandil::ops
