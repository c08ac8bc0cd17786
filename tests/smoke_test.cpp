#include <gtest/gtest.h>

#include "base/fp16.h"
#include "base/utf8.h"

TEST(Base, Fp16RoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t x = static_cast<uint16_t>(h);
    if ((x & 0x7c00) == 0x7c00 && (x & 0x3ff)) continue;  // NaN
    EXPECT_EQ(kandil::f32_to_fp16(kandil::fp16_to_f32(x)), x) << h;
  }
}
