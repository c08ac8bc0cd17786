// Causal grouped-query attention over the KV cache, flash-attention style.
//
// For each query token and KV head, the n_head / n_head_kv query heads that share that KV head are
// processed together: the keys are walked in tiles, each K / V tile is read once for the whole
// group, and the softmax is computed online (running max, running sum, accumulator rescaled when
// the max grows), so no per-thread buffer grows with the context. Work items (token, KV head) are
// spread over the thread pool; when there are too few of them for the threads (decoding one token
// with few KV heads), each item's key range is also split and the partial (max, sum, accumulator)
// results are merged afterwards.
//
// Cache layout (per layer): row j (position j) holds all KV heads, kv_dim = n_head_kv * head_dim
// values, as F32, F16 (IEEE half bits) or Q8_0 blocks (head_dim % 32 == 0, so blocks never straddle
// heads). Numerics follow llama.cpp's CPU backend: with an F16 cache the query is rounded to F16
// before Q.K and the *normalized* attention weights are rounded to F16 before they multiply V (its
// non-flash path, which the reference fixtures were made with). Those weights need the final max
// and sum, so the F16 path walks the keys twice (max and sum first, then V) instead of rescaling
// an accumulator; it still keeps only a tile of scores. With a Q8_0 cache the query is quantized
// to Q8_0 and Q.K uses integer sums per block; V is dequantized.
//
// attention_reference() is the plain scalar oracle (one key at a time); the SIMD kernels
// (attention_avx2.cpp, attention_avx512.cpp) equal it up to float rounding (and, for F16, up to an
// occasional weight rounded to the neighbouring half).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cpu/kernels.h"
#include "base/thread_pool.h"
#include "kandil/tensor_type.h"

namespace kandil::cpu {

struct AttentionShape {
  int32_t n_head = 0;
  int32_t n_head_kv = 0;  // divides n_head
  int32_t head_dim = 0;
  TensorType kv_type = TensorType::F16;  // F32, F16 or Q8_0
};

// Whether the cache type / shape combination is supported (Q8_0 needs head_dim % 32 == 0).
bool attention_supported(const AttentionShape& shape);
// Bytes of one cache row (kv_dim values of `type`).
size_t kv_row_bytes(TensorType type, int64_t kv_dim);
// Stores kv_dim floats as one cache row of `type` (fast converters where the CPU has them; the
// bytes equal the reference conversion's).
void kv_store_row(TensorType type, const float* src, void* dst, int64_t kv_dim);

// One call: n_tokens queries at positions pos0 .. pos0 + n_tokens - 1; token t sees cache rows
// 0 .. pos0 + t (those rows must already hold its own key and value), or with a sliding window
// W > 0 only the last W of them, rows pos0 + t - W + 1 .. pos0 + t (Mistral; HF's and llama.cpp's
// masks both keep query position - key position < W).
struct AttentionArgs {
  const float* q = nullptr;  // token t, head h: q + t * q_stride + h * head_dim
  int64_t q_stride = 0;
  int32_t n_tokens = 0;
  int32_t pos0 = 0;
  const void* k = nullptr;  // row 0 of this layer's keys; row j at k + j * row_bytes
  const void* v = nullptr;
  size_t row_bytes = 0;
  float* out = nullptr;  // token t, head h: out + t * out_stride + h * head_dim
  int64_t out_stride = 0;
  float scale = 1.0f;  // applied to Q.K
  int32_t window = 0;  // sliding window in positions; 0: none
};

// First cache row that a query at position `pos` sees.
inline int32_t attention_first_key(const AttentionArgs& a, int32_t pos) {
  return a.window > 0 && pos >= a.window ? pos - a.window + 1 : 0;
}

// Buffers for one shape and thread count, allocated once (a Context holds one): per-thread query
// conversions, one score tile per head of a group, and the partial results of split key ranges.
class AttentionScratch {
 public:
  static constexpr int kTile = 64;  // keys per tile
  // Most tasks a call may create per thread when splitting key ranges.
  static constexpr int kMaxTasksPerThread = 8;

  AttentionScratch(const AttentionShape& shape, int n_threads);
  AttentionScratch(const AttentionScratch&) = delete;
  AttentionScratch& operator=(const AttentionScratch&) = delete;

  const AttentionShape& shape() const { return shape_; }
  int n_threads() const { return n_threads_; }
  float* thread_buffer(int ith) { return thread_.data() + static_cast<size_t>(ith) * per_thread_; }
  float* partial(int64_t task) { return partials_.data() + static_cast<size_t>(task) * per_task_; }

  // A key range is only split into chunks of at least this many keys (tests lower it).
  int32_t min_split_keys = 128;
  std::atomic<int64_t> next_task{0};  // dynamic scheduling of the tasks of one call

 private:
  AttentionShape shape_;
  int n_threads_;
  size_t per_thread_ = 0, per_task_ = 0;
  std::vector<float> thread_, partials_;
};

// Optimized attention for the kernel choice in effect (KANDIL_KERNELS; `reference` runs
// attention_reference). Allocates nothing. pool.size() must not exceed scratch.n_threads().
void attention(ThreadPool& pool, const AttentionArgs& args, AttentionScratch& scratch);
// The same under an explicit choice (tests, benchmarks).
void attention(ThreadPool& pool, const AttentionArgs& args, AttentionScratch& scratch,
               KernelChoice choice);
// Plain scalar oracle: per (token, head) one pass over the keys with an online softmax.
void attention_reference(ThreadPool& pool, const AttentionArgs& args, AttentionScratch& scratch);

// Name of the implementation attention() uses for `shape` under `choice`: "avx512", "avx2" or
// "reference".
const char* attention_isa(const AttentionShape& shape, KernelChoice choice);

namespace detail {
// One task of the SIMD kernels: the query heads of one KV group (rows), one token, keys [j0, j1).
struct FlashTask {
  // online: one pass; writes the unnormalized accumulators acc[r * head_dim + d] and per row the
  //   max m[r] of the scores and the sum l[r] of exp(score - m) (F32 and Q8_0 caches).
  // The F16 cache rounds the *normalized* weights to F16 as llama.cpp does, so it needs the final
  // max and sum before touching V (two passes over K, still no per-key buffer):
  //   stats: only m[r] and l[r];
  //   weighted: acc = sum_j f16(exp(s_j - m[r]) * l[r]) * v_j, with m and l given as the final max
  //     and 1 / sum (inputs);
  //   stats_weighted: both in turn (acc then holds the normalized result).
  enum class Phase { online, stats, weighted, stats_weighted };
  Phase phase = Phase::online;
  const float* q = nullptr;    // row r at q + r * head_dim
  const uint8_t* k = nullptr;  // this KV head's slice of row 0
  const uint8_t* v = nullptr;
  size_t row_bytes = 0;
  int32_t rows = 0, head_dim = 0, j0 = 0, j1 = 0;
  float scale = 1.0f;
  ops::FromFloatFn quantize_q8_0 = nullptr;  // Q8_0 cache: query -> Q8_0 (bit-exact)
  void* qbuf = nullptr;     // rows * head_dim floats of room for the converted queries
  float* scores = nullptr;  // rows * AttentionScratch::kTile floats
  float* acc = nullptr;
  float* m = nullptr;
  float* l = nullptr;
};
using FlashFn = void (*)(const FlashTask& task);
// Per-ISA kernels for a cache type (null where unavailable, e.g. non-x86 builds). The caller
// checks the CPU features and head_dim % lanes (8 for AVX2, 16 for AVX-512).
FlashFn avx2_flash(TensorType kv_type);
FlashFn avx512_flash(TensorType kv_type);
}  // namespace detail

}  // namespace kandil::cpu
