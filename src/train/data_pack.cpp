// Training data: packing, seeded shuffling, validation split, batches, loss (docs/train-data.md).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kandil/model.h"
#include "kandil/train_data.h"

namespace kandil {

std::vector<PackedSequence> pack_examples(const std::vector<TrainExample>& examples, int32_t ctx,
                                          TokenId pad) {
  std::vector<PackedSequence> out;
  if (ctx < 1) return out;
  // The stream: every token with its example index and target flag.
  std::vector<TokenId> tokens;
  std::vector<uint32_t> example;
  std::vector<uint8_t> mask;
  for (size_t e = 0; e < examples.size(); ++e) {
    const TrainExample& ex = examples[e];
    tokens.insert(tokens.end(), ex.tokens.begin(), ex.tokens.end());
    example.insert(example.end(), ex.tokens.size(), static_cast<uint32_t>(e));
    for (size_t i = 0; i < ex.tokens.size(); ++i)
      mask.push_back(i < ex.mask.size() ? ex.mask[i] : 0);
  }
  const size_t n = tokens.size(), T = static_cast<size_t>(ctx);
  for (size_t start = 0; start < n; start += T) {
    PackedSequence s;
    s.tokens.assign(T, pad);
    s.targets.assign(T, kIgnoreTarget);
    bool any = false;
    for (size_t t = 0; t < T && start + t < n; ++t) {
      const size_t p = start + t;
      s.tokens[t] = tokens[p];
      if (p + 1 < n && example[p + 1] == example[p] && mask[p + 1] != 0) {
        s.targets[t] = tokens[p + 1];
        any = true;
      }
    }
    if (any) out.push_back(std::move(s));
  }
  return out;
}

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  if (n <= 1) return 0;
  // Reject draws from the top partial copy of [0, n) so every value is equally likely.
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - (std::numeric_limits<uint64_t>::max() % n + 1) % n;
  for (;;) {
    const uint64_t x = rng();
    if (x <= limit) return x % n;
  }
}

std::vector<size_t> shuffled_order(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  seeded_shuffle(order, seed);
  return order;
}

DataSplit split_validation(std::vector<TrainExample> examples, double fraction, uint64_t seed) {
  DataSplit out;
  const size_t n = examples.size();
  size_t n_valid = 0;
  if (fraction > 0 && n > 1) {
    n_valid = static_cast<size_t>(std::ceil(std::min(fraction, 1.0) * static_cast<double>(n)));
    n_valid = std::clamp<size_t>(n_valid, 1, n - 1);
  }
  std::vector<uint8_t> is_valid(n, 0);
  const std::vector<size_t> order = shuffled_order(n, seed);
  for (size_t i = 0; i < n_valid; ++i) is_valid[order[i]] = 1;
  for (size_t i = 0; i < n; ++i) {
    (is_valid[i] ? out.valid : out.train).push_back(std::move(examples[i]));
  }
  return out;
}

BatchIterator::BatchIterator(std::vector<PackedSequence> sequences, int32_t batch_size,
                             uint64_t seed, bool shuffle)
    : sequences_(std::move(sequences)),
      batch_size_(std::max(batch_size, 1)),
      seed_(seed),
      shuffle_(shuffle) {
  start_epoch();
}

void BatchIterator::start_epoch() {
  const size_t n = sequences_.size();
  if (shuffle_) {
    order_ = shuffled_order(n, seed_ + static_cast<uint64_t>(epoch_));
  } else {
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), size_t{0});
  }
  pos_ = 0;
}

int64_t BatchIterator::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(sequences_.size());
  if (n == 0) return 0;
  return std::max<int64_t>(1, n / batch_size_);
}

bool BatchIterator::next(TrainBatch& batch) {
  const size_t n = sequences_.size(), B = static_cast<size_t>(batch_size_);
  const size_t remaining = n - pos_;
  // Full batches; a smaller one only when the whole epoch is smaller than one batch.
  const size_t take = remaining >= B ? B : (pos_ == 0 ? remaining : 0);
  if (take == 0) {
    ++epoch_;
    start_epoch();
    return false;
  }
  const size_t T = sequences_[order_[pos_]].tokens.size();
  batch.B = static_cast<int32_t>(take);
  batch.T = static_cast<int32_t>(T);
  batch.tokens.clear();
  batch.targets.clear();
  for (size_t i = 0; i < take; ++i) {
    const PackedSequence& s = sequences_[order_[pos_ + i]];
    batch.tokens.insert(batch.tokens.end(), s.tokens.begin(), s.tokens.end());
    batch.targets.insert(batch.targets.end(), s.targets.begin(), s.targets.end());
  }
  pos_ += take;
  if (take < B) pos_ = n;  // the single short batch ends the epoch
  return true;
}

double LossStats::perplexity() const { return std::exp(mean()); }

Result<void> accumulate_loss(const float* logits, int32_t n_vocab, const int32_t* targets,
                             int32_t n, LossStats& stats) {
  for (int32_t t = 0; t < n; ++t) {
    const int32_t y = targets[t];
    if (y == kIgnoreTarget) continue;
    if (y < 0 || y >= n_vocab) {
      return Error{fmt::format("loss: target {} at position {} is outside the vocabulary (0..{})",
                               y, t, n_vocab - 1)};
    }
    const float* row = logits + static_cast<size_t>(t) * static_cast<size_t>(n_vocab);
    double mx = row[0];
    for (int32_t v = 1; v < n_vocab; ++v) mx = std::max(mx, static_cast<double>(row[v]));
    double sum = 0.0;
    for (int32_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
    stats.sum_nll += mx + std::log(sum) - static_cast<double>(row[y]);
    ++stats.n_targets;
  }
  return {};
}

Result<LossStats> evaluate_loss(Context& ctx, const std::vector<PackedSequence>& sequences) {
  LossStats stats;
  const int32_t n_vocab = ctx.model().config().n_vocab;
  std::vector<float> logits;
  for (const PackedSequence& s : sequences) {
    ctx.clear();
    const auto n = static_cast<int32_t>(s.tokens.size());
    KANDIL_CHECK_OK(ctx.decode(s.tokens.data(), n, true));
    logits.resize(static_cast<size_t>(n) * static_cast<size_t>(n_vocab));
    for (int32_t t = 0; t < n; ++t) {
      std::copy_n(ctx.logits(t), n_vocab,
                  logits.data() + static_cast<size_t>(t) * static_cast<size_t>(n_vocab));
    }
    KANDIL_CHECK_OK(accumulate_loss(logits.data(), n_vocab, s.targets.data(), n, stats));
  }
  ctx.clear();
  return stats;
}

}  // namespace kandil
