#include "serve/lora_manager.h"

#include <algorithm>
#include <cstdio>

namespace kandil::serve {

Result<int32_t> LoraManager::load(const std::string& path, float scale) {
  auto a = LoraAdapter::load(path, *model_);
  if (!a.ok()) return a.error();
  std::lock_guard<std::mutex> lock(mutex_);
  const int32_t id = next_id_++;
  entries_[id] = LoraEntry{id, path, scale, std::move(*a)};
  return id;
}

bool LoraManager::unload(int32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.erase(id) == 0) return false;
  // Sets holding it stay alive while requests use them; new requests cannot name it.
  cache_.clear();
  return true;
}

std::vector<LoraEntry> LoraManager::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<LoraEntry> out;
  for (const auto& [id, e] : entries_) out.push_back(e);
  return out;
}

Result<void> LoraManager::set_global(const std::vector<std::pair<int32_t, float>>& scales) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, scale] : scales) {
    if (!entries_.count(id)) return Error{"no LoRA adapter with id " + std::to_string(id)};
  }
  for (auto& [id, e] : entries_) e.scale = 0.0f;
  for (const auto& [id, scale] : scales) entries_[id].scale = scale;
  return {};
}

Result<ResolvedSet> LoraManager::resolve(
    const std::optional<std::vector<std::pair<int32_t, float>>>& req) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<int32_t, float>> scales;
  if (req) {
    for (const auto& [id, scale] : *req) {
      if (!entries_.count(id)) return Error{"no LoRA adapter with id " + std::to_string(id)};
      scales.emplace_back(id, scale);
    }
  } else {
    for (const auto& [id, e] : entries_) scales.emplace_back(id, e.scale);
  }
  return make_set(std::move(scales));
}

Result<ResolvedSet> LoraManager::make_set(std::vector<std::pair<int32_t, float>> scales) {
  // Canonical form: by id, the last scale given for an id wins, scale 0 = absent.
  std::map<int32_t, float> by_id;
  for (const auto& [id, s] : scales) by_id[id] = s;
  std::string key;
  std::vector<ActiveAdapter> active;
  for (const auto& [id, s] : by_id) {
    if (s == 0.0f) continue;
    char buf[48];
    std::snprintf(buf, sizeof buf, "%d:%.9g;", id, static_cast<double>(s));
    key += buf;
    active.push_back(ActiveAdapter{entries_.at(id).adapter, s});
  }
  if (active.empty()) return ResolvedSet{};
  auto it = cache_.find(key);
  if (it != cache_.end()) return ResolvedSet{it->second, key};
  auto set = AdapterSet::create(*model_, std::move(active));
  if (!set.ok()) return set.error();
  if (cache_.size() > 256) cache_.clear();  // bounded: combinations are client-chosen
  cache_[key] = *set;
  return ResolvedSet{*set, key};
}

}  // namespace kandil::serve
