// Trainer state shared by src/train/trainer.cpp and src/train/checkpoint.cpp.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kandil/train.h"
#include "train/model_train.h"
#include "train/optim.h"

namespace kandil {

struct Trainer::Impl {
  std::shared_ptr<const Model> model;
  TrainOptions opt;
  std::unique_ptr<ThreadPool> pool;
  std::vector<TrainParam> params;
  std::vector<train::AdamState> adam;  // one per param
  std::unique_ptr<train::TrainNet> net;
  int64_t opt_step = 0;  // optimizer steps done
  int32_t micro = 0;     // micro-batches accumulated toward the next step
  std::mt19937_64 rng;   // seeded from options.seed; saved in checkpoints
  float lora_scale = 1.0f;

  Result<void> check_batch(const TrainBatch& b) const;
};

}  // namespace kandil
