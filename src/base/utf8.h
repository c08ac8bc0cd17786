// Small UTF-8 helpers used by tokenizers and streaming detokenization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kandil::utf8 {

// Length of the sequence that starts with lead byte c (1 for invalid lead bytes).
inline size_t sequence_length(uint8_t c) {
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) return 2;
  if ((c & 0xf0) == 0xe0) return 3;
  if ((c & 0xf8) == 0xf0) return 4;
  return 1;
}

// Number of bytes at the end of s that form an incomplete (but so far valid) UTF-8 sequence.
// Streaming output holds these back until the rest of the character arrives.
size_t incomplete_tail(std::string_view s);

// Appends the UTF-8 encoding of a code point.
void append(std::string& out, uint32_t cp);

// Decodes one code point at s[i], advancing i; invalid bytes decode as U+FFFD (one byte consumed).
uint32_t decode(std::string_view s, size_t& i);

// Replaces invalid sequences with U+FFFD so the result is valid UTF-8 (for JSON output).
std::string sanitize(std::string_view s);

}  // namespace kandil::utf8
