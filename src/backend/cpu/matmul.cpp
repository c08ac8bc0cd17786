#include "backend/cpu/matmul.h"

#include <cassert>
#include <cstring>

#include "ops/quant.h"

namespace kandil::cpu {

size_t matmul_scratch_bytes(const Weight& w, int64_t n_tokens) {
  const ops::TypeTraits* t = ops::type_traits(w.type);
  if (t == nullptr || t->vec_dot_type == TensorType::F32) return 0;
  return tensor_row_bytes(t->vec_dot_type, w.n_in) * static_cast<size_t>(n_tokens);
}

void matmul(ThreadPool& pool, const Weight& w, const float* x, int64_t n_tokens, float* y,
            std::vector<uint8_t>& scratch) {
  const ops::TypeTraits* t = ops::type_traits(w.type);
  assert(t != nullptr && t->vec_dot != nullptr);
  const ops::TypeTraits* dt = ops::type_traits(t->vec_dot_type);
  const int64_t n_in = w.n_in, n_out = w.n_out;

  // Activations in the dot type, one row per token.
  const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);
  size_t xq_row = static_cast<size_t>(n_in) * sizeof(float);
  if (t->vec_dot_type != TensorType::F32) {
    xq_row = tensor_row_bytes(t->vec_dot_type, n_in);
    if (scratch.size() < xq_row * static_cast<size_t>(n_tokens)) {
      scratch.resize(xq_row * static_cast<size_t>(n_tokens));
    }
    pool.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        dt->from_float(x + i * n_in, scratch.data() + static_cast<size_t>(i) * xq_row, n_in);
      }
    });
    xq = scratch.data();
  }

  // Each thread takes a contiguous range of output rows; each weight row is read once for all
  // tokens of the batch.
  pool.parallel_for(n_out, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = w.row(r);
      for (int64_t i = 0; i < n_tokens; ++i) {
        y[i * n_out + r] = t->vec_dot(n_in, wr, xq + static_cast<size_t>(i) * xq_row);
      }
    }
  });
}

void dequantize_row(const Weight& w, int64_t r, float* out) {
  const ops::TypeTraits* t = ops::type_traits(w.type);
  assert(t != nullptr);
  t->to_float(w.row(r), out, w.n_in);
}

}  // namespace kandil::cpu
