// Training ops: the forward of each op of a LLaMA-family block with the state its backward needs,
// and the backward itself (llm.c style: forward and backward side by side). Gradients named d*
// are *accumulated* (+=) unless a function says it overwrites; see docs/training.md for the math.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/matmul.h"
#include "base/thread_pool.h"
#include "kandil/model.h"
#include "kandil/tokenizer.h"

namespace kandil::train {

// ---- embedding -------------------------------------------------------------------------------
// dE[tokens[t]] += dy[t] for t < n (rows of width n_embd).
void embedding_backward(const TokenId* tokens, int64_t n, const float* dy, float* dE,
                        int64_t n_embd);

// ---- RMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) ------------------------------
// Returns rstd (saved for the backward).
float rmsnorm_forward(const float* x, const float* w, float* y, int64_t n, float eps);
// dx += d/dx, dw += d/dw (dw may be null: frozen weight).
void rmsnorm_backward(const float* x, const float* w, float rstd, const float* dy, float* dx,
                      float* dw, int64_t n);

// ---- RoPE -----------------------------------------------------------------------------------
// The forward is ops::rope; the backward rotates the gradient by -theta (the rotation's transpose),
// in place, for one token at `pos`.
void rope_backward(float* dx, int32_t n_heads, const ModelConfig& c, int32_t pos);
void rope_forward(float* x, int32_t n_heads, const ModelConfig& c, int32_t pos);

// ---- causal grouped-query attention over one batch of sequences ------------------------------
struct AttentionShape {
  int32_t n_seq = 1;  // B sequences of T tokens each; token (b, t) is row b * T + t
  int32_t n_tokens = 1;
  int32_t n_head = 1;
  int32_t n_head_kv = 1;
  int32_t head_dim = 1;
  int32_t window = 0;  // sliding window (key j visible from i iff i - window < j <= i); 0: none
  float scale = 1.0f;
  int64_t q_dim() const { return int64_t{n_head} * head_dim; }
  int64_t kv_dim() const { return int64_t{n_head_kv} * head_dim; }
  size_t probs_size() const { return static_cast<size_t>(n_seq) * n_head * n_tokens * n_tokens; }
};
// out [B*T][q_dim] = softmax(scale q k^T + mask) v per head; probs [B][H][T][T] keeps the softmax.
void attention_forward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k,
                       const float* v, float* probs, float* out);
// dq, dk, dv are overwritten.
void attention_backward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k,
                        const float* v, const float* probs, const float* dout, float* dq, float* dk,
                        float* dv);

// ---- SwiGLU: h = silu(g) * u -----------------------------------------------------------------
void swiglu_forward(const float* g, const float* u, float* h, int64_t n);
// dg, du are overwritten.
void swiglu_backward(const float* g, const float* u, const float* dh, float* dg, float* du,
                     int64_t n);

// ---- linear y = x W^T (W [n_out][n_in] of any weight type) -----------------------------------
void linear_forward(ThreadPool& pool, const cpu::Weight& w, const float* x, int64_t n, float* y,
                    std::vector<uint8_t>& scratch);
// dx [n][n_in] += dy [n][n_out] W. Quantized weights are dequantized row by row.
void linear_backward_input(ThreadPool& pool, const cpu::Weight& w, const float* dy, int64_t n,
                           float* dx);
// dW [n_out][n_in] += dy^T x (F32 trainable weights).
void linear_backward_weight(ThreadPool& pool, const float* dy, const float* x, int64_t n,
                            int64_t n_out, int64_t n_in, float* dw);
// A cpu::Weight view of F32 rows.
cpu::Weight f32_weight(const float* data, int64_t n_out, int64_t n_in);

// ---- softmax cross-entropy with an ignore index ---------------------------------------------
// Targets < 0 are ignored. Returns the summed loss over the counted targets (in double) and
// writes dlogits = grad_scale * (softmax - onehot) for counted rows, 0 for ignored rows.
double cross_entropy(ThreadPool& pool, const float* logits, const int32_t* targets, int64_t n,
                     int64_t n_vocab, float grad_scale, float* dlogits);

}  // namespace kandil::train
