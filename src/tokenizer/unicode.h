// Unicode helpers for the WordPiece and tokenizer.json tokenizers, on top of libutf8proc:
// code point decoding, normalization forms, categories and case mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kandil::tok::uni {

// Decodes UTF-8 into code points; invalid bytes become U+FFFD (one byte each).
std::vector<uint32_t> decode(std::string_view s);
std::string encode(const std::vector<uint32_t>& cps);
void append(std::string& out, uint32_t cp);

enum class Form { nfc, nfd, nfkc, nfkd };
// Normalizes valid UTF-8 (invalid input is first made valid with U+FFFD).
std::string normalize(std::string_view s, Form form);

// Unicode White_Space; with `js_trim`, JavaScript's \s / trim() set instead (that one has U+FEFF
// and lacks U+0085).
bool is_space(uint32_t cp, bool js_trim = false);
bool is_mark(uint32_t cp);             // Mn, Mc, Me
bool is_nonspacing_mark(uint32_t cp);  // Mn
bool is_punctuation(uint32_t cp);      // P*
bool is_letter(uint32_t cp);           // L*
bool is_number(uint32_t cp);           // N*
bool is_decimal_digit(uint32_t cp);    // Nd
bool is_symbol(uint32_t cp);           // S*
bool is_control(uint32_t cp);          // Cc
bool is_format(uint32_t cp);           // Cf
bool is_private_use(uint32_t cp);      // Co
bool is_surrogate(uint32_t cp);        // Cs
bool is_unassigned(uint32_t cp);       // Cn
// The CJK ideograph blocks BERT puts spaces around.
bool is_chinese_char(uint32_t cp);

// Full lowercase of a string as JavaScript's toLowerCase does it for the common cases: simple
// case mapping, U+0130 -> "i̇" and final sigma.
std::string to_lower(std::string_view s);
uint32_t to_lower(uint32_t cp);

// Removes trailing / leading White_Space (JavaScript trimEnd / trimStart semantics).
std::string_view trim_end(std::string_view s);
std::string_view trim_start(std::string_view s);

}  // namespace kandil::tok::uni
