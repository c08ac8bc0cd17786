// kandil finetune: the run's state.json (data position and the options a --resume must match),
// the log.jsonl it appends to, and the conversion of trained parameters into exportable form.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kandil/lora_export.h"
#include "kandil/result.h"
#include "kandil/train.h"

namespace kandil::app {

// 64-bit FNV-1a of a file's bytes as 16 hex digits (identifies the data a checkpoint was made on).
Result<std::string> file_fingerprint(const std::string& path);

// Writes `text` to `path` through a temporary file renamed into place.
Result<void> write_text_atomic(const std::string& path, const std::string& text);

// What state.json holds: how far the run got and what it was made from.
struct FinetuneState {
  int64_t step = 0;   // optimizer steps done
  int64_t micro = 0;  // micro-batches consumed from the data (the data position)
  int64_t epoch = 0;
  nlohmann::ordered_json fingerprint;  // options, data and model that --resume must match
};

nlohmann::ordered_json state_to_json(const FinetuneState& s);
Result<FinetuneState> read_state(const std::string& path);

// Empty when `now` equals `saved`; else "lr (checkpoint 0.01, now 0.02), data (...)" naming
// every key whose value differs.
std::string fingerprint_differences(const nlohmann::ordered_json& saved,
                                    const nlohmann::ordered_json& now);

// Keeps the lines of log.jsonl whose step is <= `step` (a resumed run rewrites what came after
// its checkpoint). A missing file is fine.
Result<void> truncate_log(const std::string& path, int64_t step);

// The trainer's LoRA parameters (PEFT names, kandil's GGUF row order) as export pairs.
Result<std::vector<LoraMatrices>> lora_pairs_from_params(std::span<const TrainParam> params);

}  // namespace kandil::app
