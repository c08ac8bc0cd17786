// Facts about the machine that benchmarks report next to their numbers.
#pragma once

#include <cstddef>

namespace kandil {

// Memory read bandwidth in GB/s (1e9 bytes/s) with n_threads threads (0: all cores), measured by
// streaming a buffer of `bytes` (far larger than the caches) through the fastest F32 dot kernel:
// the best of `reps` passes after one warm-up pass. It is the ceiling of a decode step, which
// reads every weight once.
double measure_read_bandwidth(int n_threads, size_t bytes = size_t{1} << 30, int reps = 5);

}  // namespace kandil
