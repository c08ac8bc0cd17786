// measure_read_bandwidth(): a positive, finite rate for any thread count (no timing asserted).
#include <gtest/gtest.h>

#include <cmath>

#include "kandil/system.h"

TEST(System, ReadBandwidthIsPositiveAndFinite) {
  for (int threads : {1, 3}) {
    const double gbps = kandil::measure_read_bandwidth(threads, size_t{8} << 20, 1);
    EXPECT_GT(gbps, 0.0);
    EXPECT_TRUE(std::isfinite(gbps));
  }
}
