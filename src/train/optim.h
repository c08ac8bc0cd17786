// AdamW with decoupled weight decay and bias correction, global-norm gradient clipping, and the
// learning-rate schedules of include/kandil/train.h (scheduled_lr).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kandil/train.h"

namespace kandil::train {

struct AdamState {
  std::vector<float> m, v;  // first and second moments, one per parameter value
};

struct AdamHyper {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};

// One AdamW update of w with gradient g at optimizer step t (1-based, for bias correction):
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   w -= lr * wd * w   (decoupled decay, when `decay`)
//   w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
void adamw_update(std::span<float> w, std::span<const float> g, AdamState& s, const AdamHyper& h,
                  int64_t t, bool decay);

// sqrt(sum of squares) over every gradient (in double).
double global_grad_norm(std::span<const TrainParam> params);
// Scales every gradient by max_norm / (norm + 1e-6) when norm > max_norm (PyTorch's
// clip_grad_norm_); returns the factor applied (1 when none).
float clip_grad_norm(std::span<TrainParam> params, double norm, float max_norm);

}  // namespace kandil::train
