// tokenizer.json: regex / literal patterns and the normalizers (NFC, NFD, NFKC, NFKD, Lowercase,
// StripAccents, Replace, Prepend, Strip, BertNormalizer, Precompiled, Sequence).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/core.h>
#include <pcre2.h>

#include "base/utf8.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/unicode.h"

namespace kandil::tok::hf {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

Result<Regex> Regex::compile(std::string_view pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return Error{fmt::format("regex does not compile at offset {}: {}", offset,
                             reinterpret_cast<const char*>(msg))};
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
  Regex r;
  r.impl_ = std::make_shared<Impl>();
  r.impl_->code = code;
  return r;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  if (!impl_) return;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc =
        pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no match (or a resource limit: treat the rest as unmatched)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    out.emplace_back(start, end - start);
    if (end > start) {
      pos = end;
    } else {  // empty match: step one character, as JavaScript's /gu does
      pos = end + (end < text.size() ? utf8::sequence_length(static_cast<uint8_t>(text[end])) : 1);
    }
  }
  pcre2_match_data_free(md);
}

void Pattern::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  if (is_regex) {
    regex.find_all(text, out);
    return;
  }
  if (literal.empty()) return;
  for (size_t p = text.find(literal); p != std::string_view::npos;
       p = text.find(literal, p + literal.size())) {
    out.emplace_back(p, literal.size());
  }
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::vector<std::pair<size_t, size_t>> matches;
  find_all(text, matches);
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (const auto& [off, len] : matches) {
    out.append(text.substr(prev, off - prev));
    out.append(content);
    prev = off + len;
  }
  out.append(text.substr(prev));
  return out;
}

namespace {

std::string remove_if(std::string_view s, bool (*pred)(uint32_t)) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const uint32_t cp = utf8::decode(s, i);
    if (!pred(cp)) uni::append(out, cp);
  }
  return out;
}

bool bert_is_control(uint32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return uni::is_control(cp) || uni::is_format(cp) || uni::is_private_use(cp) ||
         uni::is_surrogate(cp);
}

std::string bert_normalize(const Normalizer& n, std::string text) {
  if (n.clean_text) {
    std::string out;
    for (size_t i = 0; i < text.size();) {
      const uint32_t cp = utf8::decode(text, i);
      if (cp == 0 || cp == 0xFFFD || bert_is_control(cp)) continue;
      uni::append(out, uni::is_space(cp, true) ? ' ' : cp);
    }
    text = std::move(out);
  }
  if (n.handle_chinese_chars) {
    // tokenizers.js tests UTF-16 code units, so only the BMP ideograph blocks count.
    std::string out;
    for (size_t i = 0; i < text.size();) {
      const uint32_t cp = utf8::decode(text, i);
      const bool cjk = cp <= 0xFFFF && uni::is_chinese_char(cp);
      if (cjk) out += ' ';
      uni::append(out, cp);
      if (cjk) out += ' ';
    }
    text = std::move(out);
  }
  const bool strip = n.lowercase ? n.strip_accents != 0 : n.strip_accents == 1;
  if (n.lowercase) text = uni::to_lower(text);
  if (strip) text = remove_if(uni::normalize(text, uni::Form::nfd), uni::is_nonspacing_mark);
  return text;
}

// tokenizers.js's stand-in for SentencePiece's precompiled charsmap: drop some controls, map
// some spaces to " ", then NFKC (pieces around U+FF5E separately).
std::string precompiled_normalize(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const uint32_t cp = utf8::decode(text, i);
    if ((cp >= 0x01 && cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
        cp == 0x8F || cp == 0x9F) {
      continue;
    }
    const bool space = cp == 0x09 || cp == 0x0A || cp == 0x0C || cp == 0x0D || cp == 0xA0 ||
                       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || cp == 0x2028 ||
                       cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x2581 ||
                       cp == 0x3000 || cp == 0xFEFF || cp == 0xFFFD;
    uni::append(out, space ? ' ' : cp);
  }
  static const std::string kTilde = "\xef\xbd\x9e";  // U+FF5E
  std::string result;
  size_t prev = 0;
  for (size_t p = out.find(kTilde);; p = out.find(kTilde, prev)) {
    const size_t end = p == std::string::npos ? out.size() : p;
    result += uni::normalize(std::string_view(out).substr(prev, end - prev), uni::Form::nfkc);
    if (p == std::string::npos) break;
    result += kTilde;
    prev = p + kTilde.size();
  }
  return result;
}

std::string_view trim(std::string_view s) { return uni::trim_start(uni::trim_end(s)); }

}  // namespace

std::string Normalizer::apply(std::string text) const {
  switch (type) {
    case Type::nfc:
      return uni::normalize(text, uni::Form::nfc);
    case Type::nfd:
      return uni::normalize(text, uni::Form::nfd);
    case Type::nfkc:
      return uni::normalize(text, uni::Form::nfkc);
    case Type::nfkd:
      return uni::normalize(text, uni::Form::nfkd);
    case Type::lowercase:
      return uni::to_lower(text);
    case Type::strip_accents:
      return remove_if(text, uni::is_mark);
    case Type::replace:
      return pattern.replace_all(text, content);
    case Type::prepend:
      text.insert(0, content);
      return text;
    case Type::strip:
      if (left && right) return std::string(trim(text));
      if (left) return std::string(uni::trim_start(text));
      if (right) return std::string(uni::trim_end(text));
      return text;
    case Type::bert:
      return bert_normalize(*this, std::move(text));
    case Type::precompiled:
      return precompiled_normalize(text);
    case Type::sequence:
      for (const Normalizer& n : children) text = n.apply(std::move(text));
      return text;
  }
  return text;
}

const std::vector<uint32_t>& bytes_to_unicode() {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256, 0);
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t[b] = printable ? b : 256 + n++;
    }
    return t;
  }();
  return table;
}

int unicode_to_byte(uint32_t cp) {
  static const std::vector<int> inverse = [] {
    std::vector<int> inv(512, -1);
    const auto& t = bytes_to_unicode();
    for (int b = 0; b < 256; ++b) inv[t[static_cast<size_t>(b)]] = b;
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    std::string out;
    size_t prev = 0;
    for (size_t p = text.find(from); p != std::string::npos; p = text.find(from, prev)) {
      out.append(text, prev, p - prev);
      out.append(to);
      prev = p + from.size();
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }
  return text;
}

}  // namespace kandil::tok::hf
