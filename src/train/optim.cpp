#include "train/optim.h"

#include <cmath>
#include <numbers>

namespace kandil {

float scheduled_lr(const TrainOptions& o, int64_t step) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    return o.lr * static_cast<float>(step) / static_cast<float>(o.warmup_steps);
  }
  if (o.schedule == LrSchedule::constant) return o.lr;
  const int64_t span = int64_t{o.total_steps} - o.warmup_steps;
  double progress =
      span > 0 ? static_cast<double>(step - o.warmup_steps) / static_cast<double>(span) : 1.0;
  progress = std::min(1.0, std::max(0.0, progress));
  const double decay = o.schedule == LrSchedule::linear
                           ? 1.0 - progress
                           : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  const double floor = o.min_lr_ratio;
  return static_cast<float>(o.lr * (floor + (1.0 - floor) * decay));
}

}  // namespace kandil

namespace kandil::train {

void adamw_update(std::span<float> w, std::span<const float> g, AdamState& s, const AdamHyper& h,
                  int64_t t, bool decay) {
  if (s.m.size() != w.size()) s.m.assign(w.size(), 0.0f);
  if (s.v.size() != w.size()) s.v.assign(w.size(), 0.0f);
  const double td = static_cast<double>(t);
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), td));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta2), td));
  const float wd = decay ? h.lr * h.weight_decay : 0.0f;
  for (size_t i = 0; i < w.size(); ++i) {
    s.m[i] = h.beta1 * s.m[i] + (1.0f - h.beta1) * g[i];
    s.v[i] = h.beta2 * s.v[i] + (1.0f - h.beta2) * g[i] * g[i];
    const float mhat = s.m[i] / bc1;
    const float vhat = s.v[i] / bc2;
    w[i] -= wd * w[i];
    w[i] -= h.lr * mhat / (std::sqrt(vhat) + h.eps);
  }
}

double global_grad_norm(std::span<const TrainParam> params) {
  double ss = 0.0;
  for (const TrainParam& p : params) {
    for (float x : p.grad) ss += static_cast<double>(x) * x;
  }
  return std::sqrt(ss);
}

float clip_grad_norm(std::span<TrainParam> params, double norm, float max_norm) {
  if (max_norm <= 0.0f || norm <= max_norm) return 1.0f;
  const float f = static_cast<float>(max_norm / (norm + 1e-6));
  for (TrainParam& p : params) {
    for (float& x : p.grad) x *= f;
  }
  return f;
}

}  // namespace kandil::train
