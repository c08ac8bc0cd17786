// Trainer: options and batch validation, the micro-batch / optimizer-step loop.
#include <random>
#include <sstream>

#include "kandil/train.h"
#include "train/model_train.h"
#include "train/optim.h"
#include "train/trainer_impl.h"

namespace kandil {

namespace {

Result<void> check_options(const TrainOptions& o) {
  auto bad = [](const std::string& what) { return make_error("train options: " + what); };
  if (o.mode == TrainOptions::Mode::lora) {
    if (o.lora_rank <= 0) return bad("lora_rank must be > 0");
    if (o.lora_targets.empty()) return bad("lora_targets is empty");
    if (!(o.lora_alpha > 0.0f)) return bad("lora_alpha must be > 0");
  }
  if (!(o.lr >= 0.0f)) return bad("lr must be >= 0");
  if (!(o.beta1 >= 0.0f && o.beta1 < 1.0f) || !(o.beta2 >= 0.0f && o.beta2 < 1.0f)) {
    return bad("beta1 and beta2 must be in [0, 1)");
  }
  if (!(o.adam_eps > 0.0f)) return bad("adam_eps must be > 0");
  if (!(o.weight_decay >= 0.0f)) return bad("weight_decay must be >= 0");
  if (o.grad_accum < 1) return bad("grad_accum must be >= 1");
  if (o.warmup_steps < 0 || o.total_steps < 0) return bad("warmup/total steps must be >= 0");
  if (!(o.min_lr_ratio >= 0.0f && o.min_lr_ratio <= 1.0f)) return bad("min_lr_ratio not in [0,1]");
  if (o.n_threads < 0) return bad("n_threads must be >= 0");
  return {};
}

}  // namespace

Result<void> Trainer::Impl::check_batch(const TrainBatch& b) const {
  const ModelConfig& c = model->config();
  auto bad = [](const std::string& what) { return make_error("train batch: " + what); };
  if (b.B <= 0 || b.T <= 0) return bad("B and T must be > 0");
  const size_t n = static_cast<size_t>(b.B) * static_cast<size_t>(b.T);
  if (b.tokens.size() != n || b.targets.size() != n) {
    return bad("expected " + std::to_string(n) + " tokens and targets (B*T), got " +
               std::to_string(b.tokens.size()) + " and " + std::to_string(b.targets.size()));
  }
  for (size_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= c.n_vocab) {
      return bad("token " + std::to_string(b.tokens[i]) + " at index " + std::to_string(i) +
                 " is outside the vocabulary [0, " + std::to_string(c.n_vocab) + ")");
    }
    if (b.targets[i] >= c.n_vocab) {
      return bad("target " + std::to_string(b.targets[i]) + " at index " + std::to_string(i) +
                 " is outside the vocabulary (negative values are ignored)");
    }
  }
  return {};
}

Trainer::Trainer() = default;
Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::create(std::shared_ptr<const Model> model,
                                                 const TrainOptions& options) {
  if (!model) return make_error("train: no model");
  KANDIL_CHECK_OK(check_options(options));
  std::unique_ptr<Trainer> t(new Trainer());
  auto im = std::make_unique<Impl>();
  im->model = std::move(model);
  im->opt = options;
  const int nth = options.n_threads > 0 ? options.n_threads : ThreadPool::hardware_threads();
  im->pool = std::make_unique<ThreadPool>(nth);
  im->rng.seed(options.seed);
  train::NetSlots slots = train::make_params(im->model->impl(), options, im->rng(), im->params);
  im->lora_scale = slots.lora_scale;
  im->net = std::make_unique<train::TrainNet>(im->model->impl(), std::move(slots),
                                              options.checkpoint_activations);
  im->adam.resize(im->params.size());
  for (size_t i = 0; i < im->params.size(); ++i) {
    im->adam[i].m.assign(im->params[i].value.size(), 0.0f);
    im->adam[i].v.assign(im->params[i].value.size(), 0.0f);
  }
  t->impl_ = std::move(im);
  return t;
}

Result<double> Trainer::accumulate_gradients(const TrainBatch& batch, float scale) {
  KANDIL_CHECK_OK(impl_->check_batch(batch));
  return impl_->net->run(*impl_->pool, impl_->params, batch, true, scale, nullptr);
}

Result<double> Trainer::eval(const TrainBatch& batch) {
  KANDIL_CHECK_OK(impl_->check_batch(batch));
  return impl_->net->run(*impl_->pool, impl_->params, batch, false, 0.0f, nullptr);
}

void Trainer::zero_grad() {
  for (TrainParam& p : impl_->params) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
}

Result<StepStats> Trainer::step(const TrainBatch& batch) {
  Impl& im = *impl_;
  KANDIL_CHECK_OK(im.check_batch(batch));
  StepStats st;
  const float micro_scale = 1.0f / static_cast<float>(im.opt.grad_accum);
  st.loss =
      static_cast<float>(im.net->run(*im.pool, im.params, batch, true, micro_scale, &st.n_targets));
  if (++im.micro >= im.opt.grad_accum) {
    const double norm = train::global_grad_norm(im.params);
    train::clip_grad_norm(im.params, norm, im.opt.max_grad_norm);
    train::AdamHyper h;
    h.lr = scheduled_lr(im.opt, im.opt_step);
    h.beta1 = im.opt.beta1;
    h.beta2 = im.opt.beta2;
    h.eps = im.opt.adam_eps;
    h.weight_decay = im.opt.weight_decay;
    ++im.opt_step;
    for (size_t i = 0; i < im.params.size(); ++i) {
      TrainParam& p = im.params[i];
      train::adamw_update(p.value, p.grad, im.adam[i], h, im.opt_step, p.decay);
    }
    zero_grad();
    im.micro = 0;
    st.updated = true;
    st.grad_norm = static_cast<float>(norm);
    st.lr = h.lr;
  }
  st.step = im.opt_step;
  return st;
}

std::span<TrainParam> Trainer::params() { return impl_->params; }
std::span<const TrainParam> Trainer::params() const { return impl_->params; }
const TrainOptions& Trainer::options() const { return impl_->opt; }
int64_t Trainer::optimizer_step() const { return impl_->opt_step; }
float Trainer::lora_scale() const { return impl_->lora_scale; }

}  // namespace kandil
