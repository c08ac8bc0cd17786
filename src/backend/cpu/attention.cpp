// Attention: cache-row conversion, the scalar reference, and the scheduling of the SIMD kernels
// (tasks, key-range splits and their merge). See attention.h.
#include "backend/cpu/attention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/cpu_features.h"
#include "base/fp16.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"

namespace kandil::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Floats rounded up to a multiple of 16 (64 bytes), so per-thread / per-task regions do not share
// cache lines.
size_t pad16(size_t n) { return (n + 15) / 16 * 16; }

bool has_avx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool has_avx512(const CpuFeatures& f) {
  return has_avx2(f) && f.avx512f && f.avx512bw && f.avx512vl;
}

// Bytes of one head inside a cache row.
size_t head_bytes(TensorType type, int32_t head_dim) { return kv_row_bytes(type, head_dim); }

detail::FlashFn pick_kernel(const AttentionShape& s, KernelChoice choice, const char** isa) {
  *isa = "reference";
  if (!attention_supported(s) || choice == KernelChoice::Reference) return nullptr;
  const CpuFeatures& f = cpu_features();
  const bool allow512 = choice == KernelChoice::Auto || choice == KernelChoice::Avx512;
  if (allow512 && has_avx512(f) && s.head_dim % 16 == 0) {
    if (detail::FlashFn fn = detail::avx512_flash(s.kv_type)) {
      *isa = "avx512";
      return fn;
    }
  }
  if (has_avx2(f) && s.head_dim % 8 == 0) {
    if (detail::FlashFn fn = detail::avx2_flash(s.kv_type)) {
      *isa = "avx2";
      return fn;
    }
  }
  return nullptr;
}

using Phase = detail::FlashTask::Phase;

// Everything one call's threads share; the pool's task captures only a pointer to it, which keeps
// the std::function within its small-object buffer (no allocation per call).
struct Job {
  const AttentionArgs* args;
  AttentionScratch* scratch;
  detail::FlashFn fn;
  ops::FromFloatFn quantize_q8_0;
  int32_t rows;  // query heads per KV head
  int32_t n_split;
  int64_t n_tasks;
  Phase phase;  // of the current pool run
};

// One (token, KV head, key chunk) task of the SIMD path.
void run_task(const Job& job, int ith, int64_t task) {
  const AttentionArgs& a = *job.args;
  const AttentionShape& s = job.scratch->shape();
  const int32_t hd = s.head_dim, rows = job.rows;
  const int64_t item = task / job.n_split;
  const int32_t part = static_cast<int32_t>(task % job.n_split);
  const int32_t t = static_cast<int32_t>(item / s.n_head_kv);
  const int32_t g = static_cast<int32_t>(item % s.n_head_kv);
  const int32_t n_kv = a.pos0 + t + 1;
  const int32_t first = attention_first_key(a, a.pos0 + t);
  const int32_t chunk = (n_kv - first + job.n_split - 1) / job.n_split;
  const int32_t j0 = std::min(n_kv, first + part * chunk), j1 = std::min(n_kv, j0 + chunk);

  float* buf = job.scratch->thread_buffer(ith);
  const size_t q_floats = pad16(static_cast<size_t>(rows) * static_cast<size_t>(hd));
  const size_t s_floats = static_cast<size_t>(rows) * AttentionScratch::kTile;
  detail::FlashTask ft;
  ft.phase = job.phase;
  ft.q = a.q + t * a.q_stride + int64_t{g} * rows * hd;
  const size_t hb = head_bytes(s.kv_type, hd) * static_cast<size_t>(g);
  ft.k = static_cast<const uint8_t*>(a.k) + hb;
  ft.v = static_cast<const uint8_t*>(a.v) + hb;
  ft.row_bytes = a.row_bytes;
  ft.rows = rows;
  ft.head_dim = hd;
  ft.j0 = j0;
  ft.j1 = j1;
  ft.scale = a.scale;
  ft.quantize_q8_0 = job.quantize_q8_0;
  ft.qbuf = buf;
  ft.scores = buf + q_floats;
  const size_t acc_floats = static_cast<size_t>(rows) * static_cast<size_t>(hd);
  if (job.n_split == 1) {
    // Accumulate straight into the output (the group's heads are adjacent there).
    ft.acc = a.out + t * a.out_stride + int64_t{g} * rows * hd;
    ft.m = ft.scores + s_floats;
    ft.l = ft.m + rows;
    job.fn(ft);
    if (job.phase == Phase::online) {  // normalize (stats_weighted already did)
      for (int32_t r = 0; r < rows; ++r) {
        const float inv = 1.0f / ft.l[r];
        float* o = ft.acc + static_cast<size_t>(r) * static_cast<size_t>(hd);
        for (int32_t d = 0; d < hd; ++d) o[d] *= inv;
      }
    }
    return;
  }
  // Split: keep the partial result (and m, l) in the task's slot for the merge.
  ft.acc = job.scratch->partial(task);
  ft.m = ft.acc + acc_floats;
  ft.l = ft.m + rows;
  if (j0 < j1) {
    job.fn(ft);
    return;
  }
  // An empty chunk (a short row of a prefill batch): no keys, no weight.
  if (job.phase != Phase::stats) std::fill(ft.acc, ft.acc + acc_floats, 0.0f);
  if (job.phase != Phase::weighted) {
    std::fill(ft.m, ft.m + rows, kNegInf);
    std::fill(ft.l, ft.l + rows, 0.0f);
  }
}

void run_tasks(ThreadPool& pool, Job& job, Phase phase) {
  job.phase = phase;
  job.scratch->next_task.store(0, std::memory_order_relaxed);
  // Tasks are taken from a shared counter: causal rows differ in length, and other processes may
  // hold some of the cores.
  pool.run([&job](int ith, int) {
    for (;;) {
      const int64_t task = job.scratch->next_task.fetch_add(1, std::memory_order_relaxed);
      if (task >= job.n_tasks) break;
      run_task(job, ith, task);
    }
  });
}

// The split parts of one item's row r: the largest partial max M and the sum rescaled to it,
// L = sum_i l_i * exp(m_i - M).
struct Stats {
  float m, l;
};
Stats merged_stats(const Job& job, int64_t item, int32_t r, size_t acc_floats) {
  float mx = kNegInf, sum = 0.0f;
  for (int32_t p = 0; p < job.n_split; ++p) {
    mx = std::max(mx, job.scratch->partial(item * job.n_split + p)[acc_floats + r]);
  }
  for (int32_t p = 0; p < job.n_split; ++p) {
    const float* part = job.scratch->partial(item * job.n_split + p);
    const float l = part[acc_floats + static_cast<size_t>(job.rows + r)];
    if (l != 0.0f) sum += l * std::exp(part[acc_floats + r] - mx);  // l == 0: empty chunk
  }
  return {mx, sum};
}

// After the split runs: the output of every item from its parts' slots. Online parts are combined
// as out = sum_i acc_i * exp(m_i - M) / L; weighted parts (F16) are already normalized and add up.
void merge_partials(const Job& job) {
  const AttentionArgs& a = *job.args;
  const AttentionShape& s = job.scratch->shape();
  const int32_t hd = s.head_dim, rows = job.rows;
  const size_t acc_floats = static_cast<size_t>(rows) * static_cast<size_t>(hd);
  const int64_t n_items = job.n_tasks / job.n_split;
  for (int64_t item = 0; item < n_items; ++item) {
    const int32_t t = static_cast<int32_t>(item / s.n_head_kv);
    const int32_t g = static_cast<int32_t>(item % s.n_head_kv);
    float* out = a.out + t * a.out_stride + int64_t{g} * rows * hd;
    for (int32_t r = 0; r < rows; ++r) {
      const Stats st =
          job.phase == Phase::online ? merged_stats(job, item, r, acc_floats) : Stats{0.0f, 1.0f};
      float* o = out + static_cast<size_t>(r) * static_cast<size_t>(hd);
      std::fill(o, o + hd, 0.0f);
      for (int32_t p = 0; p < job.n_split; ++p) {
        const float* part = job.scratch->partial(item * job.n_split + p);
        float w = 1.0f;
        if (job.phase == Phase::online) {
          if (part[acc_floats + static_cast<size_t>(rows + r)] == 0.0f) continue;  // empty
          w = std::exp(part[acc_floats + r] - st.m) / st.l;
        }
        const float* acc = part + static_cast<size_t>(r) * static_cast<size_t>(hd);
        for (int32_t d = 0; d < hd; ++d) o[d] += acc[d] * w;
      }
    }
  }
}

// Between the two split runs of the F16 path: every part of an item gets the item's final max
// and 1 / sum in its m, l slots.
void share_stats(const Job& job) {
  const size_t acc_floats =
      static_cast<size_t>(job.rows) * static_cast<size_t>(job.scratch->shape().head_dim);
  for (int64_t item = 0; item < job.n_tasks / job.n_split; ++item) {
    for (int32_t r = 0; r < job.rows; ++r) {
      const Stats st = merged_stats(job, item, r, acc_floats);
      for (int32_t p = 0; p < job.n_split; ++p) {
        float* part = job.scratch->partial(item * job.n_split + p);
        part[acc_floats + r] = st.m;
        part[acc_floats + static_cast<size_t>(job.rows + r)] = 1.0f / st.l;
      }
    }
  }
}

// The reference for one (token, head). Same roundings as the kernels: the query to F16 / Q8_0 as
// the cache type asks, scores = dot * scale; plain sequential float sums otherwise.
//   F32 / Q8_0: one pass over the keys, rescaling the accumulator whenever the running max grows.
//   F16: as llama.cpp's non-flash path, the softmax is finished first (max and sum), then the
//        normalized weights are rounded to F16 and multiply V (a second pass over the keys).
void reference_row(const AttentionArgs& a, const AttentionShape& s, float* buf, int32_t t,
                   int32_t h) {
  const int32_t hd = s.head_dim, g = h / (s.n_head / s.n_head_kv);
  const int32_t n_kv = a.pos0 + t + 1;
  const int32_t first = attention_first_key(a, a.pos0 + t);
  const float* q = a.q + t * a.q_stride + int64_t{h} * hd;
  float* out = a.out + t * a.out_stride + int64_t{h} * hd;
  float* qf = buf;                                     // hd floats, or hd / 32 Q8_0 blocks
  float* vrow = buf + pad16(static_cast<size_t>(hd));  // hd floats
  const ops::TypeTraits* q8 = ops::type_traits(TensorType::Q8_0);
  switch (s.kv_type) {
    case TensorType::F16:
      for (int32_t d = 0; d < hd; ++d) qf[d] = fp16_to_f32(f32_to_fp16(q[d]));
      break;
    case TensorType::Q8_0:
      q8->from_float(q, qf, hd);
      break;
    default:
      std::memcpy(qf, q, static_cast<size_t>(hd) * sizeof(float));
      break;
  }
  const size_t hb = head_bytes(s.kv_type, hd) * static_cast<size_t>(g);
  const uint8_t* kbase = static_cast<const uint8_t*>(a.k) + hb;
  const uint8_t* vbase = static_cast<const uint8_t*>(a.v) + hb;
  auto score = [&](int32_t j) {
    const uint8_t* krow = kbase + static_cast<size_t>(j) * a.row_bytes;
    float dot = 0.0f;
    if (s.kv_type == TensorType::Q8_0) {
      dot = q8->vec_dot(hd, krow, qf);
    } else if (s.kv_type == TensorType::F16) {
      const uint16_t* k = reinterpret_cast<const uint16_t*>(krow);
      for (int32_t d = 0; d < hd; ++d) dot += qf[d] * fp16_to_f32(k[d]);
    } else {
      const float* k = reinterpret_cast<const float*>(krow);
      for (int32_t d = 0; d < hd; ++d) dot += qf[d] * k[d];
    }
    return dot * a.scale;
  };
  auto value = [&](int32_t j) -> const float* {
    const uint8_t* src = vbase + static_cast<size_t>(j) * a.row_bytes;
    if (s.kv_type == TensorType::F32) return reinterpret_cast<const float*>(src);
    ops::type_traits(s.kv_type)->to_float(src, vrow, hd);
    return vrow;
  };
  std::fill(out, out + hd, 0.0f);
  float m = kNegInf, l = 0.0f;
  if (s.kv_type == TensorType::F16) {
    for (int32_t j = first; j < n_kv; ++j) {
      const float sc = score(j);
      if (sc > m) {
        l *= std::exp(m - sc);  // 0 for the first key (m = -inf)
        m = sc;
      }
      l += std::exp(sc - m);
    }
    const float inv = 1.0f / l;
    for (int32_t j = first; j < n_kv; ++j) {
      const float w = fp16_to_f32(f32_to_fp16(std::exp(score(j) - m) * inv));
      const float* v = value(j);
      for (int32_t d = 0; d < hd; ++d) out[d] += w * v[d];
    }
    return;
  }
  for (int32_t j = first; j < n_kv; ++j) {
    const float sc = score(j);
    if (sc > m) {
      const float corr = std::exp(m - sc);  // 0 for the first key (m = -inf)
      l *= corr;
      for (int32_t d = 0; d < hd; ++d) out[d] *= corr;
      m = sc;
    }
    const float p = std::exp(sc - m);
    l += p;
    const float* v = value(j);
    for (int32_t d = 0; d < hd; ++d) out[d] += p * v[d];
  }
  const float inv = 1.0f / l;
  for (int32_t d = 0; d < hd; ++d) out[d] *= inv;
}

}  // namespace

bool attention_supported(const AttentionShape& s) {
  if (s.n_head <= 0 || s.n_head_kv <= 0 || s.head_dim <= 0 || s.n_head % s.n_head_kv != 0) {
    return false;
  }
  switch (s.kv_type) {
    case TensorType::F32:
    case TensorType::F16:
      return true;
    case TensorType::Q8_0:
      return s.head_dim % ops::kQK == 0;
    default:
      return false;
  }
}

size_t kv_row_bytes(TensorType type, int64_t kv_dim) {
  switch (type) {
    case TensorType::F16:
      return static_cast<size_t>(kv_dim) * sizeof(uint16_t);
    case TensorType::Q8_0:
      return static_cast<size_t>(kv_dim / ops::kQK) * sizeof(ops::BlockQ8_0);
    default:
      return static_cast<size_t>(kv_dim) * sizeof(float);
  }
}

void kv_store_row(TensorType type, const float* src, void* dst, int64_t kv_dim) {
  if (type == TensorType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(kv_dim) * sizeof(float));
    return;
  }
  // F16 and Q8_0 are both their own activation ("vec_dot") type, so the matmul kernels' fast
  // converters apply; they produce the reference's bytes.
  dot_kernels(type).quantize_activation(src, dst, kv_dim);
}

AttentionScratch::AttentionScratch(const AttentionShape& shape, int n_threads)
    : shape_(shape), n_threads_(std::max(1, n_threads)) {
  assert(attention_supported(shape));
  const size_t hd = static_cast<size_t>(shape.head_dim);
  const size_t rows = static_cast<size_t>(shape.n_head / shape.n_head_kv);
  // Converted queries (a Q8_0 row is smaller than a float row), a score tile per row, m and l;
  // the reference uses the same room for one query row and one dequantized value row.
  per_thread_ = pad16(rows * hd) + pad16(rows * kTile + 2 * rows) + pad16(hd);
  per_task_ = pad16(rows * hd + 2 * rows);
  thread_.resize(per_thread_ * static_cast<size_t>(n_threads_));
  partials_.resize(per_task_ * static_cast<size_t>(kMaxTasksPerThread * n_threads_));
}

const char* attention_isa(const AttentionShape& shape, KernelChoice choice) {
  const char* isa = "reference";
  pick_kernel(shape, choice, &isa);
  return isa;
}

void attention_reference(ThreadPool& pool, const AttentionArgs& args, AttentionScratch& scratch) {
  struct RefJob {
    const AttentionArgs* args;
    AttentionScratch* scratch;
  } job{&args, &scratch};
  pool.run([&job](int ith, int nth) {
    const AttentionShape& s = job.scratch->shape();
    const int64_t n_items = int64_t{job.args->n_tokens} * s.n_head;
    float* buf = job.scratch->thread_buffer(ith);
    for (int64_t item = ith; item < n_items; item += nth) {
      reference_row(*job.args, s, buf, static_cast<int32_t>(item / s.n_head),
                    static_cast<int32_t>(item % s.n_head));
    }
  });
}

void attention(ThreadPool& pool, const AttentionArgs& args, AttentionScratch& scratch,
               KernelChoice choice) {
  assert(pool.size() <= scratch.n_threads());
  const AttentionShape& s = scratch.shape();
  const char* isa = nullptr;
  const detail::FlashFn fn = pick_kernel(s, choice, &isa);
  if (fn == nullptr || args.n_tokens <= 0) {
    if (args.n_tokens > 0) attention_reference(pool, args, scratch);
    return;
  }
  Job job{&args, &scratch, fn, nullptr, s.n_head / s.n_head_kv, 1, 0, Phase::online};
  if (s.kv_type == TensorType::Q8_0) {
    job.quantize_q8_0 = dot_kernels(TensorType::Q8_0, choice).quantize_activation;
  }
  // Too few (token, KV head) items to keep every thread busy (decoding with few KV heads): split
  // the key ranges too, aiming at 4 tasks per thread, but only into chunks of min_split_keys or
  // more, where the split's merge and per-task set-up stay negligible.
  const int nth = pool.size();
  const int64_t n_items = int64_t{args.n_tokens} * s.n_head_kv;
  if (nth > 1 && n_items < 4 * int64_t{nth}) {
    const int64_t want = (4 * int64_t{nth} + n_items - 1) / n_items;
    int64_t longest = int64_t{args.pos0} + args.n_tokens;
    if (args.window > 0) longest = std::min<int64_t>(longest, args.window);
    const int64_t room = int64_t{AttentionScratch::kMaxTasksPerThread} * nth / n_items;
    const int64_t split = std::min({want, longest / std::max(1, scratch.min_split_keys), room});
    job.n_split = static_cast<int32_t>(std::max<int64_t>(1, split));
  }
  job.n_tasks = n_items * job.n_split;
  if (s.kv_type != TensorType::F16) {
    run_tasks(pool, job, Phase::online);
    if (job.n_split > 1) merge_partials(job);
  } else if (job.n_split == 1) {
    run_tasks(pool, job, Phase::stats_weighted);
  } else {
    run_tasks(pool, job, Phase::stats);
    share_stats(job);
    run_tasks(pool, job, Phase::weighted);
    merge_partials(job);
  }
}

void attention(ThreadPool& pool, const AttentionArgs& args, AttentionScratch& scratch) {
  attention(pool, args, scratch, active_kernel_choice());
}

}  // namespace kandil::cpu
