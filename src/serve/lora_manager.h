// The adapters a server has loaded: numbered ids (llama.cpp's /lora-adapters), a global default
// scale per adapter, runtime load/unload, and one cached AdapterSet per distinct combination of
// (id, scale) so requests never build sets per step.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kandil/lora.h"
#include "kandil/result.h"

namespace kandil::serve {

struct LoraEntry {
  int32_t id = 0;
  std::string path;
  float scale = 1.0f;
  std::shared_ptr<const LoraAdapter> adapter;
};

struct ResolvedSet {
  std::shared_ptr<const AdapterSet> set;  // null: no adapter is active
  std::string key;                        // "" for the base model
};

class LoraManager {
 public:
  explicit LoraManager(std::shared_ptr<const Model> model) : model_(std::move(model)) {}
  // Loads an adapter with the next id.
  Result<int32_t> load(const std::string& path, float scale);
  bool unload(int32_t id);
  std::vector<LoraEntry> list() const;
  // Sets the global scales: listed ids get their scale, the others 0 (llama.cpp semantics).
  // Fails naming an unknown id.
  Result<void> set_global(const std::vector<std::pair<int32_t, float>>& scales);
  // The set for a request: its own [{id, scale}] list, else the global scales.
  Result<ResolvedSet> resolve(const std::optional<std::vector<std::pair<int32_t, float>>>& req);

 private:
  Result<ResolvedSet> make_set(std::vector<std::pair<int32_t, float>> scales);

  std::shared_ptr<const Model> model_;
  mutable std::mutex mutex_;
  std::map<int32_t, LoraEntry> entries_;
  int32_t next_id_ = 0;
  std::map<std::string, std::shared_ptr<const AdapterSet>> cache_;
};

}  // namespace kandil::serve
