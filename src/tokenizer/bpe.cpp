// Byte-level BPE ("gpt2" vocabs), with llama.cpp's semantics: the text is split by the
// pre-tokenizer regexes, each piece's bytes are mapped to characters (GPT-2 bytes_to_unicode),
// and within a piece the adjacent pair with the lowest merge rank is merged until no pair has a
// rank (ties: leftmost).
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <functional>

#include "base/utf8.h"
#include "tokenizer/tokenizer_impl.h"

namespace kandil::tok {
namespace {

// GPT-2's bytes_to_unicode: bytes that are printable Latin-1 map to the same code point, the
// other 68 to U+0100, U+0101, ... in byte order.
struct ByteMap {
  std::array<std::string, 256> encoded;  // byte -> UTF-8 of its character
  std::array<int16_t, 324> decoded;      // code point -> byte, -1 if not a mapped character

  ByteMap() {
    decoded.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
      const uint32_t cp = printable ? b : next++;
      utf8::append(encoded[b], cp);
      decoded[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The merge rules by token pair: a flat open-addressing table (the lookup is the inner loop).
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    TokenId merged = -1;
  };

  void reserve(size_t n) {
    size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    entries_.assign(capacity, Entry{});
    mask_ = capacity - 1;
  }

  // Keeps the first rank of a repeated pair (the list is in rank order).
  void insert(TokenId left, TokenId right, int32_t rank, TokenId merged) {
    const uint64_t key = pair_key(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (entries_[i].key == key) return;
      if (entries_[i].key == kEmpty) {
        entries_[i] = {key, rank, merged};
        return;
      }
    }
  }

  const Entry* find(TokenId left, TokenId right) const {
    if (left < 0 || right < 0 || entries_.empty()) return nullptr;
    const uint64_t key = pair_key(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (entries_[i].key == key) return &entries_[i];
      if (entries_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^31: no real key
  size_t slot(uint64_t key) const {
    return static_cast<size_t>((key * 0x9e3779b97f4a7c15ull) >> 32) & mask_;
  }
  std::vector<Entry> entries_;
  size_t mask_ = 0;
};

struct Symbol {
  TokenId id;  // -1: a character that is not a token (it can take part in no merge)
  int prev, next;
  uint8_t byte;  // the input byte, for the fallback of characters that are not tokens
  bool alive;
};

// Merge candidates are (rank << 32 | left symbol) in a min-heap: lowest rank, then leftmost.
// The right symbol is symbols[left].next; a candidate is stale when the pair there no longer
// has this rank (ranks identify pairs).
uint64_t candidate(int32_t rank, int left) {
  return (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(left);
}

class BpeTokenizer final : public VocabTokenizer {
 public:
  BpeTokenizer(VocabData&& data, RegexSplitter splitter, bool ignore_merges)
      : VocabTokenizer(std::move(data)),
        splitter_(std::move(splitter)),
        ignore_merges_(ignore_merges) {
    const ByteMap& map = byte_map();
    for (size_t b = 0; b < 256; ++b) {
      char_ids_[b] = find(map.encoded[b]);
      // llama.cpp's fallback for a character that is not a token: the tokens of its single
      // UTF-8 bytes, where those exist.
      for (char c : map.encoded[b]) {
        if (TokenId id = find(std::string_view(&c, 1)); id >= 0) fallback_[b].push_back(id);
      }
    }
    build_pieces();
  }

  Result<void> load_merges(const std::vector<std::string_view>& merges) {
    merges_.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string_view m = merges[i];
      auto fail = [&](const std::string& why) {
        return make_error(
            fmt::format("{}: tokenizer.ggml.merges[{}] = '{}': {}", file_, i, m, why));
      };
      const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (space == std::string_view::npos) return fail("expected two tokens separated by a space");
      const std::string_view left = m.substr(0, space), right = m.substr(space + 1);
      const TokenId left_id = find(left), right_id = find(right);
      if (left_id < 0) return fail(fmt::format("'{}' is not a token", left));
      if (right_id < 0) return fail(fmt::format("'{}' is not a token", right));
      const std::string merged = std::string(left) + std::string(right);
      const TokenId merged_id = find(merged);
      if (merged_id < 0) return fail(fmt::format("the merged text '{}' is not a token", merged));
      merges_.insert(left_id, right_id, static_cast<int32_t>(i), merged_id);
    }
    return {};
  }

  TokenizerKind kind() const override { return TokenizerKind::bpe; }

 protected:
  void encode_text(std::string_view text, bool after_special,
                   std::vector<TokenId>& out) const override;

  std::string normal_piece(TokenId id) const override {
    const ByteMap& map = byte_map();
    const std::string& t = token_text(id);
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      const size_t start = i;
      const uint32_t cp = utf8::decode(t, i);
      if (cp < map.decoded.size() && map.decoded[cp] >= 0) {
        out += static_cast<char>(map.decoded[cp]);
      } else {
        out.append(t, start, i - start);  // not a byte character: keep it as it is
      }
    }
    return out;
  }

  // llama.cpp renders byte-type tokens of BPE vocabs as nothing.
  std::string byte_piece(TokenId) const override { return {}; }

 private:
  void merge_word(std::string_view word, std::vector<Symbol>& symbols, std::vector<uint64_t>& heap,
                  std::vector<TokenId>& out) const;

  RegexSplitter splitter_;
  bool ignore_merges_;
  MergeTable merges_;
  std::array<TokenId, 256> char_ids_{};  // byte -> token of its character
  std::array<std::vector<TokenId>, 256> fallback_;
};

void BpeTokenizer::encode_text(std::string_view text, bool /*after_special*/,
                               std::vector<TokenId>& out) const {
  // llama.cpp works on code points: invalid UTF-8 bytes become U+FFFD before anything else.
  const std::string normalized = to_valid_utf8(text);
  std::vector<std::pair<size_t, size_t>> pieces;
  splitter_.split(normalized, pieces);

  const ByteMap& map = byte_map();
  std::string encoded;
  std::vector<Symbol> symbols;
  std::vector<uint64_t> heap;
  for (const auto& [offset, length] : pieces) {
    const std::string_view word(normalized.data() + offset, length);
    if (ignore_merges_) {
      encoded.clear();
      for (char c : word) encoded += map.encoded[static_cast<uint8_t>(c)];
      if (TokenId id = find(encoded); id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    merge_word(word, symbols, heap, out);
  }
}

void BpeTokenizer::merge_word(std::string_view word, std::vector<Symbol>& symbols,
                              std::vector<uint64_t>& heap, std::vector<TokenId>& out) const {
  symbols.clear();
  heap.clear();
  const int n = static_cast<int>(word.size());
  for (int i = 0; i < n; ++i) {
    const auto b = static_cast<uint8_t>(word[static_cast<size_t>(i)]);
    symbols.push_back({char_ids_[b], i - 1, i + 1 < n ? i + 1 : -1, b, true});
  }
  const auto at = [&](int i) -> Symbol& { return symbols[static_cast<size_t>(i)]; };
  const std::greater<uint64_t> later;

  for (int i = 1; i < n; ++i) {
    if (const auto* m = merges_.find(at(i - 1).id, at(i).id))
      heap.push_back(candidate(m->rank, i - 1));
  }
  std::make_heap(heap.begin(), heap.end(), later);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    if (const auto* m = merges_.find(at(left).id, at(right).id)) {
      heap.push_back(candidate(m->rank, left));
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const uint64_t c = heap.back();
    heap.pop_back();
    const auto rank = static_cast<int32_t>(c >> 32);
    const auto left = static_cast<int>(c & 0xffffffffu);
    Symbol& l = at(left);
    if (!l.alive || l.next < 0) continue;
    Symbol& r = at(l.next);
    const MergeTable::Entry* m = merges_.find(l.id, r.id);
    if (!m || m->rank != rank) continue;  // stale: a side has merged since
    l.id = m->merged;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) at(r.next).prev = left;
    try_add(l.prev, left);
    try_add(left, l.next);
  }

  for (int i = n > 0 ? 0 : -1; i != -1; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    if (s.id >= 0) {
      out.push_back(s.id);
    } else {
      out.insert(out.end(), fallback_[s.byte].begin(), fallback_[s.byte].end());
    }
  }
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(VocabData&& data,
                                                      const std::vector<std::string_view>& merges,
                                                      const PreTokenizerSpec& spec) {
  const std::string file = data.file;
  auto splitter = RegexSplitter::compile(spec.patterns);
  if (!splitter.ok()) {
    return splitter.error().with_context(file + ": tokenizer.ggml.pre = '" + data.pre + "'");
  }
  auto tokenizer =
      std::make_unique<BpeTokenizer>(std::move(data), std::move(*splitter), spec.ignore_merges);
  KANDIL_CHECK_OK(tokenizer->load_merges(merges));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace kandil::tok
