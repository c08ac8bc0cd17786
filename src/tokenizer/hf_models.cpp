// tokenizer.json models: BPE (merge ranks, byte fallback, ignore_merges, end-of-word and
// continuing-subword suffixes), WordPiece (greedy longest match) and Unigram (Viterbi over the
// piece lattice). They turn pre-tokenized words into token strings.
#include <algorithm>
#include <optional>
#include <queue>
#include <tuple>

#include "base/utf8.h"
#include "tokenizer/hf_tokenizer.h"

namespace kandil::tok::hf {
namespace {

// The code points of s, each as its UTF-8 string.
std::vector<std::string> chars_of(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    utf8::decode(s, i);
    out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

constexpr size_t kCacheMaxWord = 256, kCacheMaxEntries = 10000;

}  // namespace

int32_t Model::intern(const std::string& s) {
  auto [it, inserted] = symbols.emplace(s, static_cast<int32_t>(symbol_text.size()));
  if (inserted) symbol_text.push_back(s);
  return it->second;
}

void Model::bpe(const std::string& word, Pieces& out) const {
  if (word.empty()) return;
  if (word.size() < kCacheMaxWord) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::string> chars = chars_of(word);
  if (!end_of_word_suffix.empty()) chars.back() += end_of_word_suffix;
  struct Sym {
    int32_t id;  // -1: not a symbol (cannot merge)
    int prev, next;
    std::string text;  // only for id == -1
  };
  std::vector<Sym> syms(chars.size());
  for (size_t i = 0; i < chars.size(); ++i) {
    auto it = symbols.find(chars[i]);
    syms[i].id = it == symbols.end() ? -1 : it->second;
    if (syms[i].id < 0) syms[i].text = std::move(chars[i]);
    syms[i].prev = static_cast<int>(i) - 1;
    syms[i].next = i + 1 < chars.size() ? static_cast<int>(i) + 1 : -1;
  }
  // (rank, left position, left id, right id); smallest rank, then leftmost, first.
  using Item = std::tuple<uint32_t, int, int32_t, int32_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
  auto push = [&](int left) {
    const int right = syms[static_cast<size_t>(left)].next;
    if (right < 0) return;
    const int32_t a = syms[static_cast<size_t>(left)].id, b = syms[static_cast<size_t>(right)].id;
    if (a < 0 || b < 0) return;
    auto it = merges.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    if (it != merges.end()) queue.emplace(it->second.first, left, a, b);
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) push(static_cast<int>(i));
  while (!queue.empty()) {
    const auto [rank, left, a, b] = queue.top();
    queue.pop();
    Sym& l = syms[static_cast<size_t>(left)];
    if (l.id != a || l.next < 0) continue;  // stale
    Sym& r = syms[static_cast<size_t>(l.next)];
    if (r.id != b) continue;
    const auto it = merges.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    l.id = it->second.second;
    r.id = -2;  // dead
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = left;
    if (l.prev >= 0) push(l.prev);
    push(left);
  }
  Pieces result;
  for (int i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    const Sym& s = syms[static_cast<size_t>(i)];
    result.push_back(s.id >= 0 ? symbol_text[static_cast<size_t>(s.id)] : s.text);
  }
  if (!continuing_subword_suffix.empty()) {
    for (size_t i = 0; i + 1 < result.size(); ++i) result[i] += continuing_subword_suffix;
  }
  out.insert(out.end(), result.begin(), result.end());
  if (word.size() < kCacheMaxWord) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kCacheMaxEntries) cache.clear();
    cache.emplace(word, std::move(result));
  }
}

void Model::wordpiece(const std::string& word, Pieces& out) const {
  const std::vector<std::string> chars = chars_of(word);
  if (chars.size() > max_input_chars_per_word) {
    out.push_back(unk_token);
    return;
  }
  Pieces sub;
  for (size_t start = 0; start < chars.size();) {
    size_t end = chars.size();
    std::string found;
    bool ok = false;
    for (; end > start; --end) {
      std::string s = start > 0 ? continuing_subword_prefix : std::string();
      for (size_t i = start; i < end; ++i) s += chars[i];
      if (vocab.count(s)) {
        found = std::move(s);
        ok = true;
        break;
      }
    }
    if (!ok) {
      out.push_back(unk_token);
      return;
    }
    sub.push_back(std::move(found));
    start = end;
  }
  out.insert(out.end(), sub.begin(), sub.end());
}

void Model::unigram(const std::string& word, Pieces& out) const {
  const std::vector<std::string> chars = chars_of(word);
  const size_t n = chars.size();
  if (n == 0) return;
  struct Best {
    double score = 0;
    int begin = -1;  // -1: none yet
  };
  std::vector<Best> best(n + 1);
  best[0].begin = 0;                   // the BOS node
  std::vector<double> at(n + 1, 0.0);  // backtrace score of the best node ending at each position
  for (size_t b = 0; b < n; ++b) {
    if (best[b].begin < 0) continue;  // unreachable (cannot happen: every char has a node)
    const double base = at[b];
    std::string s;
    bool single = false;
    for (size_t len = 1; b + len <= n && len <= max_piece_chars; ++len) {
      s += chars[b + len - 1];
      auto it = vocab.find(s);
      if (it == vocab.end() || it->second < 0 || static_cast<size_t>(it->second) >= pieces.size() ||
          pieces[static_cast<size_t>(it->second)] != s) {
        continue;
      }
      if (len == 1) single = true;
      const double score = base + scores[static_cast<size_t>(it->second)];
      Best& e = best[b + len];
      if (e.begin < 0 || score > at[b + len]) {
        e.begin = static_cast<int>(b);
        at[b + len] = score;
      }
    }
    if (!single) {
      const double score = base + unk_score;
      Best& e = best[b + 1];
      if (e.begin < 0 || score > at[b + 1]) {
        e.begin = static_cast<int>(b);
        at[b + 1] = score;
      }
    }
  }
  Pieces result;
  for (size_t e = n; e > 0;) {
    const auto b = static_cast<size_t>(best[e].begin);
    std::string s;
    for (size_t i = b; i < e; ++i) s += chars[i];
    result.push_back(std::move(s));
    e = b;
  }
  std::reverse(result.begin(), result.end());
  out.insert(out.end(), result.begin(), result.end());
}

void Model::encode(const Pieces& words, Pieces& out) const {
  Pieces tokens;
  for (const std::string& w : words) {
    switch (type) {
      case Type::bpe: {
        if (ignore_merges && vocab.count(w)) {
          tokens.push_back(w);
          break;
        }
        Pieces parts;
        bpe(w, parts);
        for (std::string& t : parts) {
          if (vocab.count(t)) {
            tokens.push_back(std::move(t));
            continue;
          }
          if (byte_fallback) {
            Pieces bytes;
            bool all = true;
            for (char c : t) {
              static constexpr char kHex[] = "0123456789ABCDEF";
              const auto u = static_cast<uint8_t>(c);
              std::string b = {'<', '0', 'x', kHex[u >> 4], kHex[u & 15], '>'};
              if (!vocab.count(b)) all = false;
              bytes.push_back(std::move(b));
            }
            if (all) {
              for (std::string& b : bytes) tokens.push_back(std::move(b));
              continue;
            }
          }
          if (has_unk) tokens.push_back(unk_token);
        }
        break;
      }
      case Type::wordpiece:
        wordpiece(w, tokens);
        break;
      case Type::unigram:
        unigram(w, tokens);
        break;
    }
  }
  if (!fuse_unk && type != Type::unigram) {
    for (std::string& t : tokens) out.push_back(std::move(t));
    return;
  }
  // Consecutive unknown tokens fuse into one (tokenizers.js fuse_unk).
  auto id_of = [&](const std::string& t) -> std::optional<TokenId> {
    auto it = vocab.find(t);
    if (it == vocab.end()) return std::nullopt;
    return it->second;
  };
  const TokenId unk_id = has_unk && vocab.count(unk_token) ? vocab.at(unk_token) : -1;
  for (size_t i = 0; i < tokens.size();) {
    out.push_back(tokens[i]);
    if (id_of(tokens[i]).value_or(unk_id) != unk_id) {
      ++i;
      continue;
    }
    const size_t last = out.size() - 1;
    while (++i < tokens.size() && id_of(tokens[i]).value_or(unk_id) == unk_id) {
      const auto lid = id_of(out[last]);
      if (!lid || *lid != unk_id) out[last] += tokens[i];
    }
  }
}

}  // namespace kandil::tok::hf
