// Scalar helpers for unpacking packed K-quant scales, shared by the SIMD kernels of every ISA.
#pragma once

#include <cstdint>
#include <cstring>

namespace kandil::ops {

// The 8 six-bit scales and 8 mins of a Q4_K / Q5_K block (layout: BlockQ4_K), one per byte,
// computed on whole words: for j < 4, sc = s[j] & 63 and m = s[j + 4] & 63; for j >= 4, the low
// 4 bits come from s[j + 4] (low / high nibble) and the top 2 from bits 6-7 of s[j - 4] / s[j].
inline void unpack_k4_scale_bytes(const uint8_t* s, uint64_t* sc, uint64_t* m) {
  uint32_t a, b, c;
  std::memcpy(&a, s, 4);
  std::memcpy(&b, s + 4, 4);
  std::memcpy(&c, s + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
  const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
  const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *m = m_lo | (static_cast<uint64_t>(m_hi) << 32);
}

}  // namespace kandil::ops
