// tokenizer.json pre-tokenizers: ByteLevel, Split, Metaspace, BertPreTokenizer, Whitespace,
// WhitespaceSplit, Digits, Punctuation, Replace, FixedLength, Sequence (tokenizers.js semantics).
#include "base/utf8.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/unicode.h"

namespace kandil::tok::hf {
namespace {

bool js_space(uint32_t cp) { return uni::is_space(cp, true); }

// tokenizers.js's PUNCTUATION_REGEX: \p{P} and all ASCII punctuation/symbols.
bool is_punct(uint32_t cp) {
  return uni::is_punctuation(cp) || (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
         (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
}

bool is_word(uint32_t cp) {  // JavaScript \w without the u flag
  return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
         cp == '_';
}

// Splits text into runs of code points of the same class (class 0 = dropped); `single`: a class
// whose code points each form their own piece.
template <class ClassFn>
void runs(std::string_view text, ClassFn cls, int single, Pieces& out) {
  int cur = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const int c = cls(utf8::decode(text, i));
    if (c != cur || c == single) {
      if (cur != 0) out.emplace_back(text.substr(start, at - start));
      cur = c;
      start = at;
    }
  }
  if (cur != 0) out.emplace_back(text.substr(start));
}

const Regex& gpt2_regex() {
  static const Regex r =
      Regex::compile(
          R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)")
          .value();
  return r;
}

std::string byte_level_map(std::string_view s) {
  const auto& table = bytes_to_unicode();
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) uni::append(out, table[static_cast<uint8_t>(c)]);
  return out;
}

void apply_one(const PreTokenizer& p, const std::string& text, size_t section, Pieces& out) {
  using T = PreTokenizer::Type;
  std::vector<std::pair<size_t, size_t>> m;
  switch (p.type) {
    case T::byte_level: {
      std::string t = text;
      if (p.add_prefix_space && (t.empty() || t[0] != ' ')) t.insert(t.begin(), ' ');
      if (p.use_regex) {
        gpt2_regex().find_all(t, m);
        for (const auto& [off, len] : m) {
          if (len > 0) out.push_back(byte_level_map(std::string_view(t).substr(off, len)));
        }
      } else {
        out.push_back(byte_level_map(t));
      }
      return;
    }
    case T::split: {
      p.pattern.find_all(text, m);
      if (p.invert) {
        for (const auto& [off, len] : m) {
          if (len > 0) out.push_back(text.substr(off, len));
        }
        return;
      }
      size_t prev = 0;
      for (const auto& [off, len] : m) {
        if (len == 0 && p.removed) continue;
        if (off > prev) out.push_back(text.substr(prev, off - prev));
        if (len > 0 && !p.removed) out.push_back(text.substr(off, len));
        prev = off + len;
      }
      if (prev < text.size()) out.push_back(text.substr(prev));
      return;
    }
    case T::metaspace: {
      Pattern space;
      space.literal = " ";
      std::string t = space.replace_all(text, p.replacement);
      const bool first = p.prepend_scheme == "first" && section == 0;
      if (t.compare(0, p.replacement.size(), p.replacement) != 0 &&
          (p.prepend_scheme == "always" || first)) {
        t.insert(0, p.replacement);
      }
      out.push_back(std::move(t));
      return;
    }
    case T::bert: {
      const std::string_view t = uni::trim_start(uni::trim_end(text));
      runs(
          t, [](uint32_t cp) { return js_space(cp)   ? 0
                                      : is_punct(cp) ? 2
                                                     : 1; }, 2, out);
      return;
    }
    case T::whitespace:
      runs(
          text, [](uint32_t cp) { return is_word(cp)    ? 1
                                         : js_space(cp) ? 0
                                                        : 2; }, -1, out);
      return;
    case T::whitespace_split:
      runs(
          text, [](uint32_t cp) { return js_space(cp) ? 0 : 1; }, -1, out);
      return;
    case T::digits:
      runs(
          text, [](uint32_t cp) { return cp >= '0' && cp <= '9' ? 2 : 1; },
          p.individual_digits ? 2 : -1, out);
      return;
    case T::punctuation:
      runs(
          text, [](uint32_t cp) { return is_punct(cp) ? 2 : 1; }, -1, out);
      return;
    case T::replace:
      out.push_back(p.pattern.replace_all(text, p.content));
      return;
    case T::fixed_length: {
      const size_t n = p.length == 0 ? 1 : p.length;
      size_t start = 0, count = 0;
      for (size_t i = 0; i < text.size();) {
        utf8::decode(text, i);
        if (++count == n) {
          out.push_back(text.substr(start, i - start));
          start = i;
          count = 0;
        }
      }
      if (start < text.size()) out.push_back(text.substr(start));
      return;
    }
    case T::sequence: {
      Pieces cur{text};
      for (const PreTokenizer& c : p.children) c.apply(cur, section);
      for (std::string& s : cur) out.push_back(std::move(s));
      return;
    }
  }
}

}  // namespace

void PreTokenizer::apply(Pieces& pieces, size_t section) const {
  Pieces out;
  out.reserve(pieces.size());
  for (const std::string& piece : pieces) apply_one(*this, piece, section, out);
  pieces.swap(out);
}

}  // namespace kandil::tok::hf
