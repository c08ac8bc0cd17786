// Unicode helpers on libutf8proc (see unicode.h).
#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "base/utf8.h"

namespace kandil::tok::uni {

std::vector<uint32_t> decode(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(utf8::decode(s, i));
  return out;
}

void append(std::string& out, uint32_t cp) { utf8::append(out, cp); }

std::string encode(const std::vector<uint32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (uint32_t cp : cps) utf8::append(out, cp);
  return out;
}

std::string normalize(std::string_view s, Form form) {
  const std::string valid = utf8::sanitize(s);
  int options = UTF8PROC_STABLE;
  switch (form) {
    case Form::nfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case Form::nfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case Form::nfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case Form::nfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                                          static_cast<utf8proc_ssize_t>(valid.size()), &result,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) {  // cannot happen for valid UTF-8; keep the text as it is
    std::free(result);
    return valid;
  }
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

namespace {
utf8proc_category_t category(uint32_t cp) {
  if (cp > 0x10FFFF) return UTF8PROC_CATEGORY_CN;
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}
}  // namespace

bool is_space(uint32_t cp, bool js_trim) {
  switch (cp) {
    case 0x85:
      return !js_trim;
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    case 0xFEFF:
      return js_trim;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_mark(uint32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}
bool is_nonspacing_mark(uint32_t cp) { return category(cp) == UTF8PROC_CATEGORY_MN; }
bool is_punctuation(uint32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}
bool is_letter(uint32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}
bool is_number(uint32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}
bool is_decimal_digit(uint32_t cp) { return category(cp) == UTF8PROC_CATEGORY_ND; }
bool is_symbol(uint32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_SM && c <= UTF8PROC_CATEGORY_SO;
}
bool is_control(uint32_t cp) { return category(cp) == UTF8PROC_CATEGORY_CC; }
bool is_format(uint32_t cp) { return category(cp) == UTF8PROC_CATEGORY_CF; }
bool is_private_use(uint32_t cp) { return category(cp) == UTF8PROC_CATEGORY_CO; }
bool is_surrogate(uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }
bool is_unassigned(uint32_t cp) { return category(cp) == UTF8PROC_CATEGORY_CN; }

bool is_chinese_char(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

uint32_t to_lower(uint32_t cp) {
  if (cp > 0x10FFFF) return cp;
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

namespace {
bool is_cased(uint32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}
bool is_case_ignorable(uint32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
         c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK || cp == '\'' || cp == 0x2019 ||
         cp == '.' || cp == ':' || cp == 0xB7;
}
}  // namespace

std::string to_lower(std::string_view s) {
  const std::vector<uint32_t> cps = decode(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t cp = cps[i];
    if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT ABOVE
      append(out, 'i');
      append(out, 0x307);
      continue;
    }
    if (cp == 0x3A3) {  // GREEK CAPITAL SIGMA: final form at the end of a word
      bool before = false, after = false;
      for (size_t j = i; j-- > 0;) {
        if (is_case_ignorable(cps[j])) continue;
        before = is_cased(cps[j]);
        break;
      }
      for (size_t j = i + 1; j < cps.size(); ++j) {
        if (is_case_ignorable(cps[j])) continue;
        after = is_cased(cps[j]);
        break;
      }
      append(out, before && !after ? 0x3C2 : 0x3C3);
      continue;
    }
    append(out, to_lower(cp));
  }
  return out;
}

std::string_view trim_end(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    const uint32_t cp = utf8::decode(s, i);
    if (!is_space(cp, true)) break;
    end = start;
  }
  return s.substr(0, end);
}

std::string_view trim_start(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t next = i;
    const uint32_t cp = utf8::decode(s, next);
    if (!is_space(cp, true)) break;
    i = next;
  }
  return s.substr(i);
}

}  // namespace kandil::tok::uni
