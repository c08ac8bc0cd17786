#include "backend/cpu/matmul.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

#include "backend/cpu/kernels.h"
#include "ops/quant.h"

namespace kandil::cpu {
namespace {

// Working-set targets of the tiled loop (bytes): a tile of activation rows and a chunk of weight
// rows that together stay in a core's L2, so each weight row is read from memory once per token
// tile and each activation row once per weight chunk.
constexpr size_t kActivationTileBytes = 128 * 1024;
constexpr size_t kWeightChunkBytes = 128 * 1024;
// Below this many multiply-adds a matmul runs on the calling thread: waking the pool costs more
// than the work (tiny models, decode steps of small layers).
constexpr int64_t kMinParallelWork = 128 * 1024;
// GEMM path (prompt processing): a chunk of weight rows (reused from L2 for every token tile) times
// a tile of activation rows per call; the kernel register-tiles inside.
constexpr size_t kGemmWeightChunkBytes = 256 * 1024;
constexpr size_t kGemmActivationTileBytes = 256 * 1024;
constexpr int64_t kGemmRowQuantum = 32;
constexpr int64_t kGemmMinRows = 64;
constexpr int64_t kGemmMinTokens = 64;
// Activation rows per vec_dot_rows call (its results equal vec_dot's bit for bit, so this only
// affects speed).
constexpr int64_t kRowsPerCall = 64;

// Runs fn(begin, end) over [0, n) on the pool, or inline when the work is too small to share.
template <class F>
void maybe_parallel(ThreadPool& pool, bool parallel, int64_t n, F&& fn) {
  if (parallel) {
    pool.parallel_for(n, fn);
  } else if (n > 0) {
    fn(int64_t{0}, n);
  }
}

}  // namespace

size_t matmul_scratch_bytes(const Weight& w, int64_t n_tokens) {
  const ops::TypeTraits* t = ops::type_traits(w.type);
  if (t == nullptr || t->vec_dot_type == TensorType::F32) return 0;
  return tensor_row_bytes(t->vec_dot_type, w.n_in) * static_cast<size_t>(n_tokens);
}

namespace {

// Converts n_tokens activation rows to the dot type of k into scratch (or uses x as is for F32
// dots); returns the rows and their stride in bytes.
std::pair<const uint8_t*, size_t> convert_activations(ThreadPool& pool, bool parallel,
                                                      const DotKernels& k, const float* x,
                                                      int64_t n_in, int64_t n_tokens,
                                                      std::vector<uint8_t>& scratch) {
  if (k.vec_dot_type == TensorType::F32) {
    return {reinterpret_cast<const uint8_t*>(x), static_cast<size_t>(n_in) * sizeof(float)};
  }
  const size_t xq_row = tensor_row_bytes(k.vec_dot_type, n_in);
  if (scratch.size() < xq_row * static_cast<size_t>(n_tokens)) {
    scratch.resize(xq_row * static_cast<size_t>(n_tokens));
  }
  uint8_t* dst = scratch.data();
  maybe_parallel(pool, parallel && n_tokens > 1, n_tokens, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      k.quantize_activation(x + i * n_in, dst + static_cast<size_t>(i) * xq_row, n_in);
    }
  });
  return {scratch.data(), xq_row};
}

// Output rows [r_begin, r_end) of y = W x for converted activations xq: one thread's share.
void matmul_rows(const DotKernels& k, const Weight& w, const uint8_t* xq, size_t xq_row,
                 int64_t n_tokens, float* y, int64_t r_begin, int64_t r_end) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const size_t w_row = std::max<size_t>(w.row_bytes, 1);
  if (k.gemm != nullptr && n_tokens > 1) {
    // Tiles repack their operands once per call, so calls must stay large even for wide rows:
    // whole register panels (multiples of 32 rows), at least 64 rows x 64 tokens.
    const int64_t rows_per_chunk = std::max<int64_t>(
        static_cast<int64_t>(kGemmWeightChunkBytes / w_row) / kGemmRowQuantum * kGemmRowQuantum,
        kGemmMinRows);
    const int64_t token_tile = std::clamp<int64_t>(
        static_cast<int64_t>(kGemmActivationTileBytes / std::max<size_t>(xq_row, 1)),
        std::min<int64_t>(kGemmMinTokens, n_tokens), n_tokens);
    for (int64_t r0 = r_begin; r0 < r_end; r0 += rows_per_chunk) {
      const int64_t rows = std::min(rows_per_chunk, r_end - r0);
      for (int64_t t0 = 0; t0 < n_tokens; t0 += token_tile) {
        const int64_t cols = std::min(token_tile, n_tokens - t0);
        k.gemm(n_in, w.row(r0), w_row, rows, xq + static_cast<size_t>(t0) * xq_row, xq_row, cols,
               y + t0 * n_out + r0, n_out);
      }
    }
    return;
  }

  const ops::VecDotFn dot = k.vec_dot;
  const VecDotRowsFn dot_rows = k.vec_dot_rows;
  const int64_t token_tile = std::clamp<int64_t>(
      static_cast<int64_t>(kActivationTileBytes / std::max<size_t>(xq_row, 1)), 1, n_tokens);
  const int64_t row_chunk = std::max<int64_t>(static_cast<int64_t>(kWeightChunkBytes / w_row), 1);
  // Chunks of rows x tiles of tokens; each weight row is reused for all tokens of a tile while it
  // sits in L1. Every output is one dot (vec_dot, or vec_dot_rows which equals it bit for bit).
  for (int64_t r0 = r_begin; r0 < r_end; r0 += row_chunk) {
    const int64_t r1 = std::min(r0 + row_chunk, r_end);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += token_tile) {
      const int64_t t1 = std::min(t0 + token_tile, n_tokens);
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wr = w.row(r);
        if (dot_rows != nullptr) {
          // Several tokens per call: the kernel loads / converts the weight row once for them.
          float out[kRowsPerCall];
          for (int64_t i0 = t0; i0 < t1; i0 += kRowsPerCall) {
            const int64_t count = std::min<int64_t>(kRowsPerCall, t1 - i0);
            dot_rows(n_in, wr, xq + static_cast<size_t>(i0) * xq_row, xq_row, count, out);
            for (int64_t i = 0; i < count; ++i) y[(i0 + i) * n_out + r] = out[i];
          }
        } else {
          for (int64_t i = t0; i < t1; ++i) {
            y[i * n_out + r] = dot(n_in, wr, xq + static_cast<size_t>(i) * xq_row);
          }
        }
      }
    }
  }
}

}  // namespace

void matmul(ThreadPool& pool, const Weight& w, const float* x, int64_t n_tokens, float* y,
            std::vector<uint8_t>& scratch) {
  const MatmulTarget target{&w, y};
  matmul_shared_input(pool, std::span(&target, 1), x, n_tokens, scratch);
}

void matmul_shared_input(ThreadPool& pool, std::span<const MatmulTarget> targets, const float* x,
                         int64_t n_tokens, std::vector<uint8_t>& scratch) {
  if (n_tokens <= 0 || targets.empty()) return;
  const Weight& first = *targets[0].w;
  const DotKernels& k0 = dot_kernels(first.type);
  assert(k0.vec_dot != nullptr);
  int64_t total_rows = 0;
  bool shared = true;  // one activation conversion serves every weight
  for (const MatmulTarget& t : targets) {
    total_rows += t.w->n_out;
    const DotKernels& k = dot_kernels(t.w->type);
    assert(k.vec_dot != nullptr);
    shared = shared && t.w->n_in == first.n_in && k.vec_dot_type == k0.vec_dot_type &&
             k.quantize_activation == k0.quantize_activation;
  }
  if (!shared) {
    for (const MatmulTarget& t : targets) matmul(pool, *t.w, x, n_tokens, t.y, scratch);
    return;
  }
  if (total_rows <= 0) return;
  const bool parallel = pool.size() > 1 && first.n_in * total_rows * n_tokens >= kMinParallelWork;
  // (Not a structured binding: clang 14 cannot capture those in the lambda below.)
  const std::pair<const uint8_t*, size_t> converted =
      convert_activations(pool, parallel, k0, x, first.n_in, n_tokens, scratch);
  const uint8_t* xq = converted.first;
  const size_t xq_row = converted.second;

  // Threads take contiguous ranges of the weights' rows laid end to end, so every weight row is
  // read by one thread and one parallel region (one barrier) serves all the products.
  maybe_parallel(pool, parallel, total_rows, [&](int64_t b, int64_t e) {
    int64_t base = 0;
    for (const MatmulTarget& t : targets) {
      const int64_t lo = std::max(b, base), hi = std::min(e, base + t.w->n_out);
      if (lo < hi) {
        matmul_rows(dot_kernels(t.w->type), *t.w, xq, xq_row, n_tokens, t.y, lo - base, hi - base);
      }
      base += t.w->n_out;
    }
  });
}

void dequantize_row(const Weight& w, int64_t r, float* out) {
  const ops::TypeTraits* t = ops::type_traits(w.type);
  assert(t != nullptr);
  t->to_float(w.row(r), out, w.n_in);
}

}  // namespace kandil::cpu
