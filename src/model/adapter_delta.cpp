#include "model/adapter_delta.h"

#include <algorithm>

#include "ops/ops.h"

namespace kandil {
namespace {

// Projections that share an input, as the forward pass groups them.
constexpr Projection kGroups[][3] = {{Projection::q, Projection::k, Projection::v},
                                     {Projection::o, Projection::o, Projection::o},
                                     {Projection::gate, Projection::up, Projection::up},
                                     {Projection::down, Projection::down, Projection::down}};
constexpr int kGroupSize[] = {3, 1, 2, 1};

}  // namespace

bool AdapterDeltas::empty() const {
  for (const auto& layer : layers) {
    for (const auto& p : layer) {
      if (!p.empty()) return false;
    }
  }
  return true;
}

void DeltaScratch::reserve(const AdapterDeltas& d, int64_t n_tokens) {
  int64_t rank_sum = 0, out = 0;
  size_t count = 0;
  for (const auto& layer : d.layers) {
    for (int g = 0; g < 4; ++g) {
      int64_t group_rank = 0;
      size_t group_count = 0;
      for (int i = 0; i < kGroupSize[g]; ++i) {
        for (const LowRankDelta& x : layer[static_cast<size_t>(kGroups[g][i])]) {
          group_rank += x.a.n_out;
          out = std::max(out, x.b.n_out);
          ++group_count;
        }
      }
      rank_sum = std::max(rank_sum, group_rank);
      count = std::max(count, group_count);
    }
  }
  const size_t need_t = static_cast<size_t>(rank_sum * n_tokens);
  const size_t need_u = static_cast<size_t>(out * n_tokens);
  if (t.size() < need_t) t.resize(need_t);
  if (u.size() < need_u) u.resize(need_u);
  if (targets.capacity() < count) targets.reserve(count);
}

void apply_deltas(ThreadPool& pool, std::span<const DeltaTarget> targets, const float* x,
                  int64_t n_tokens, DeltaScratch& s) {
  // t holds the A products of every delta of the group, one [n_tokens][rank] slice each.
  s.targets.clear();
  size_t used = 0;
  for (const DeltaTarget& target : targets) {
    for (const LowRankDelta& d : *target.deltas) {
      s.targets.push_back({&d.a, s.t.data() + used});
      used += static_cast<size_t>(d.a.n_out * n_tokens);
    }
  }
  cpu::matmul_shared_input(pool, s.targets, x, n_tokens, s.conv);
  used = 0;
  for (const DeltaTarget& target : targets) {
    for (const LowRankDelta& d : *target.deltas) {
      float* t = s.t.data() + used;
      const int64_t n_t = d.a.n_out * n_tokens;
      used += static_cast<size_t>(n_t);
      for (int64_t i = 0; i < n_t; ++i) t[i] *= d.scale;
      cpu::matmul(pool, d.b, t, n_tokens, s.u.data(), s.conv);
      ops::add(target.y, s.u.data(), d.b.n_out * n_tokens);
    }
  }
}

}  // namespace kandil
