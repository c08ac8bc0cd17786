// WordPiece from GGUF ("bert" vocabs), with llama.cpp's semantics: the text is NFD-normalized,
// accents (non-spacing marks) are dropped, the rest lowercased and split into words at whitespace,
// punctuation, ASCII symbols and CJK ideographs (control characters are dropped). Each word, with
// "▁" in front (GGUF bert vocabs store word-start tokens as "▁word" and continuations without
// "##"), is matched greedily longest-first against the vocab; a word with a part that matches
// nothing becomes the unknown token.
#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace kandil::tok {
namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581

bool is_other(uint32_t cp) {
  return uni::is_control(cp) || uni::is_format(cp) || uni::is_private_use(cp) ||
         uni::is_surrogate(cp) || uni::is_unassigned(cp);
}

class WpmTokenizer final : public VocabTokenizer {
 public:
  explicit WpmTokenizer(VocabData&& data) : VocabTokenizer(std::move(data)) { build_pieces(); }
  TokenizerKind kind() const override { return TokenizerKind::wordpiece; }

  // The words of a text (see the file comment).
  static std::vector<std::string> words(std::string_view text) {
    std::vector<std::string> out(1);
    const std::vector<uint32_t> cps = uni::decode(uni::normalize(text, uni::Form::nfd));
    for (uint32_t cp : cps) {
      if (uni::is_space(cp)) {
        if (!out.back().empty()) out.emplace_back();
        continue;
      }
      if (cp == 0 || cp == 0xFFFD || is_other(cp) || uni::is_nonspacing_mark(cp)) continue;
      std::string s;
      uni::append(s, uni::to_lower(cp));
      if (uni::is_punctuation(cp) || (cp < 0x7F && uni::is_symbol(cp)) ||
          uni::is_chinese_char(cp)) {
        if (!out.back().empty()) out.emplace_back();
        out.back() = std::move(s);
        out.emplace_back();
      } else {
        out.back() += s;
      }
    }
    if (out.back().empty()) out.pop_back();
    return out;
  }

 protected:
  void encode_text(std::string_view text, bool /*after_special*/,
                   std::vector<TokenId>& out) const override {
    for (const std::string& word : words(text)) {
      std::string w;
      w.reserve(kSpace.size() + word.size());
      w.append(kSpace);
      w.append(word);
      const size_t start_size = out.size();
      bool ok = true;
      for (size_t i = 0; i < w.size();) {
        size_t j = std::min(w.size(), i + max_token_len_);
        TokenId id = -1;
        for (; j > i; --j) {
          id = find(std::string_view(w).substr(i, j - i));
          if (id >= 0) break;
        }
        if (id < 0) {
          ok = false;
          break;
        }
        out.push_back(id);
        i = j;
      }
      if (!ok) out.resize(start_size);
      if (out.size() == start_size && unk_ >= 0) out.push_back(unk_);
    }
  }

  std::string normal_piece(TokenId id) const override {
    const std::string& t = token_text(id);
    if (t.compare(0, kSpace.size(), kSpace) != 0) return t;
    std::string out(1, ' ');
    out.append(t, kSpace.size(), std::string::npos);
    return out;
  }
  std::string byte_piece(TokenId id) const override { return token_text(id); }
};

}  // namespace

std::unique_ptr<Tokenizer> make_wpm_tokenizer(VocabData&& data) {
  return std::make_unique<WpmTokenizer>(std::move(data));
}

}  // namespace kandil::tok
