// measure_read_bandwidth(): see kandil/system.h.
#include <algorithm>
#include <chrono>
#include <vector>

#include "backend/cpu/kernels.h"
#include "base/thread_pool.h"
#include "kandil/system.h"

namespace kandil {

double measure_read_bandwidth(int n_threads, size_t bytes, int reps) {
  if (n_threads <= 0) n_threads = ThreadPool::hardware_threads();
  ThreadPool pool(n_threads);
  const int64_t n = static_cast<int64_t>(bytes / sizeof(float));
  std::vector<float> buf(static_cast<size_t>(n));
  // Touch every page from the thread that will read it, with non-trivial values.
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<float>(i & 1023);
  });
  const ops::VecDotFn dot = cpu::dot_kernels(TensorType::F32).vec_dot;
  std::vector<float> sink(static_cast<size_t>(n_threads));
  double best = 0.0;
  for (int r = 0; r <= std::max(reps, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    // x . x reads each cache line once.
    pool.run([&](int ith, int nth) {
      const int64_t per = (n + nth - 1) / nth, b = per * ith, e = std::min(n, b + per);
      if (b < e) sink[static_cast<size_t>(ith)] = dot(e - b, buf.data() + b, buf.data() + b);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::max(best, static_cast<double>(bytes) / s / 1e9);
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

}  // namespace kandil
