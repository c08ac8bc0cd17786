// SentencePiece BPE ("llama" vocabs), with llama.cpp's semantics: spaces become U+2581, the text
// is split into UTF-8 characters, and the adjacent pair whose concatenation is the token with the
// highest score is merged until no pair is a token (ties: leftmost). Characters that are not
// tokens fall back to byte tokens <0xXX>.
#include <algorithm>
#include <array>

#include "tokenizer/tokenizer_impl.h"

namespace kandil::tok {
namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

struct Symbol {
  size_t offset;  // into the escaped text
  size_t size;    // 0 once merged into its left neighbour
  int prev, next;
};

struct Bigram {
  float score;
  int left;       // the right symbol is symbols[left].next
  uint32_t size;  // bytes of the merged text, to detect pairs made stale by other merges
};

// std heap functions keep the "largest" on top: highest score, then leftmost.
struct Worse {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

bool is_space_at(std::string_view s, size_t offset) {
  return s.compare(offset, kSpace.size(), kSpace) == 0;
}

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(VocabData&& data) : VocabTokenizer(std::move(data)) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      TokenId id = find(std::string_view(name, sizeof(name)));
      if (id < 0) id = find(std::string(1, static_cast<char>(b)));  // vocab with raw byte tokens
      byte_ids_[static_cast<size_t>(b)] = id >= 0 ? id : unk_;
    }
    // Merging is greedy over the whole text, but when no token has a "▁" right after something
    // other than "▁", no merge can cross the start of a run of "▁": the text can then be merged
    // run by run with the same result, which keeps the work queue small on long inputs.
    split_at_spaces_ = true;
    for (TokenId id = 0; id < n_vocab() && split_at_spaces_; ++id) {
      const std::string& t = token_text(id);
      for (size_t p = t.find(kSpace, 1); p != std::string::npos; p = t.find(kSpace, p + 1)) {
        if (p < kSpace.size() || !is_space_at(t, p - kSpace.size())) {
          split_at_spaces_ = false;
          break;
        }
      }
    }
    build_pieces();
  }

  TokenizerKind kind() const override { return TokenizerKind::spm; }

 protected:
  void encode_text(std::string_view text, bool after_special,
                   std::vector<TokenId>& out) const override;

  std::string normal_piece(TokenId id) const override {
    const std::string& t = token_text(id);
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      if (is_space_at(t, i)) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += t[i++];
      }
    }
    return out;
  }

  std::string byte_piece(TokenId id) const override {
    const std::string& t = token_text(id);
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
      const int hi = hex_value(t[3]), lo = hex_value(t[4]);
      if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
    }
    return t;  // not of the <0xXX> form: its text
  }

 private:
  void merge(std::string_view s, std::vector<Symbol>& symbols, std::vector<Bigram>& heap,
             std::vector<TokenId>& out) const;

  std::array<TokenId, 256> byte_ids_{};  // byte -> <0xXX> token (or unk, or -1)
  bool split_at_spaces_ = false;
};

void SpmTokenizer::encode_text(std::string_view text, bool after_special,
                               std::vector<TokenId>& out) const {
  std::string s;
  s.reserve(text.size() + kSpace.size() * 4);
  if (add_space_prefix_ && after_special) s += kSpace;
  for (char c : text) {
    if (c == ' ') {
      s += kSpace;
    } else {
      s += c;
    }
  }

  // Split into characters (llama.cpp counts bytes by the lead byte only), merging segment by
  // segment where that is exact (see split_at_spaces_).
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;
  for (size_t offset = 0; offset < s.size();) {
    const size_t len = std::min(utf8_len(static_cast<uint8_t>(s[offset])), s.size() - offset);
    const bool run_start = len == kSpace.size() && is_space_at(s, offset) &&
                           !(offset >= kSpace.size() && is_space_at(s, offset - kSpace.size()));
    if (split_at_spaces_ && run_start && !symbols.empty()) {
      merge(s, symbols, heap, out);
      symbols.clear();
    }
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({offset, len, index - 1, index + 1});
    offset += len;
  }
  if (!symbols.empty()) merge(s, symbols, heap, out);
}

void SpmTokenizer::merge(std::string_view s, std::vector<Symbol>& symbols,
                         std::vector<Bigram>& heap, std::vector<TokenId>& out) const {
  symbols.back().next = -1;
  heap.clear();
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    if (l.size + r.size > max_token_len_) return;
    const TokenId id = find(s.substr(l.offset, l.size + r.size));
    if (id < 0) return;
    const auto size = static_cast<uint32_t>(l.size + r.size);
    heap.push_back({scores_[static_cast<size_t>(id)], left, size});
    std::push_heap(heap.begin(), heap.end(), Worse{});
  };
  for (size_t i = 1; i < symbols.size(); ++i) {
    try_add(static_cast<int>(i - 1), static_cast<int>(i));
  }

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Worse{});
    const Bigram b = heap.back();
    heap.pop_back();
    Symbol& l = symbols[static_cast<size_t>(b.left)];
    if (l.size == 0 || l.next < 0) continue;
    Symbol& r = symbols[static_cast<size_t>(l.next)];
    if (l.size + r.size != b.size) continue;  // stale: one side has changed since
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // Every merged symbol is a token (llama.cpp's re-segmentation through its merge history never
  // applies); a single character that is not a token becomes byte tokens.
  for (int i = 0; i != -1; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& sym = symbols[static_cast<size_t>(i)];
    const std::string_view piece = s.substr(sym.offset, sym.size);
    const TokenId id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const TokenId byte_id = byte_ids_[static_cast<uint8_t>(c)];
      if (byte_id >= 0) out.push_back(byte_id);
    }
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData&& data) {
  return std::make_unique<SpmTokenizer>(std::move(data));
}

}  // namespace kandil::tok
