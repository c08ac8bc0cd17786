// Byte-level BPE training (docs/bpe-train.md).
//
// Pieces from the GPT-2 regex are counted once per distinct text. Every distinct piece is a
// "word" of symbol ids (0..255 the bytes, 256 + k the k-th merge) with its frequency. Pair
// counts (weighted by frequency) live in a hash map, each pair keeps the list of words that
// contain it, and a max-heap holds (count, pair) entries; entries whose count is no longer
// current are skipped when popped (every change pushes the new count). A merge rewrites only the
// words that contain its pair and updates the counts of the pairs around each occurrence, so a
// merge costs time proportional to the occurrences it touches, not to the corpus.
#include "kandil/bpe_train.h"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "base/file_io.h"
#include "base/utf8.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/pretokenize.h"

namespace kandil {

namespace {

// The GPT-2 pre-tokenizer regex (Hugging Face ByteLevel with use_regex).
constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

constexpr uint64_t kMaxFileBytes = uint64_t{1} << 31;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string byte_level_text(std::string_view bytes) {
  const auto& table = tok::hf::bytes_to_unicode();
  std::string out;
  for (char c : bytes) utf8::append(out, table[static_cast<uint8_t>(c)]);
  return out;
}

struct HeapEntry {
  int64_t count;
  int32_t a, b;
  // Max-heap on count; ties: the smaller (a, b) first, so training is deterministic.
  bool operator<(const HeapEntry& o) const {
    if (count != o.count) return count < o.count;
    if (a != o.a) return a > o.a;
    return b > o.b;
  }
};

}  // namespace

struct BpeTrainer::Impl {
  BpeTrainOptions options;
  tok::RegexSplitter splitter;
  std::string split_error;
  std::unordered_map<std::string, int64_t> pieces;
  int64_t n_pieces = 0, n_bytes = 0;
};

BpeTrainer::BpeTrainer(BpeTrainOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  auto s = tok::RegexSplitter::compile({kGpt2Regex});
  if (s.ok()) {
    impl_->splitter = std::move(*s);
  } else {
    impl_->split_error = s.error().message;
  }
}
BpeTrainer::~BpeTrainer() = default;
BpeTrainer::BpeTrainer(BpeTrainer&&) noexcept = default;
BpeTrainer& BpeTrainer::operator=(BpeTrainer&&) noexcept = default;

Result<void> BpeTrainer::add_text(std::string_view text) {
  if (!impl_->split_error.empty()) return Error{"bpe train: " + impl_->split_error};
  const std::string valid = tok::to_valid_utf8(text);
  std::vector<std::pair<size_t, size_t>> spans;
  impl_->splitter.split(valid, spans);
  for (const auto& [off, len] : spans) {
    if (len == 0) continue;
    ++impl_->pieces[valid.substr(off, len)];
    ++impl_->n_pieces;
  }
  impl_->n_bytes += static_cast<int64_t>(text.size());
  return {};
}

Result<void> BpeTrainer::add_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open the file"};
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  if (size > kMaxFileBytes) {
    return Error{fmt::format("{}: {} bytes, more than the {} bytes one input file may have", path,
                             size, kMaxFileBytes)};
  }
  in.seekg(0);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (!in) return Error{path + ": read error"};
  return add_text(text);
}

Result<BpeModel> BpeTrainer::train() const {
  const BpeTrainOptions& opt = impl_->options;
  BpeModel m;
  m.bos_token = opt.bos_token;
  m.eos_token = opt.eos_token;
  m.add_bos = opt.add_bos && !opt.bos_token.empty();
  m.n_pieces = impl_->n_pieces;
  m.n_distinct = static_cast<int64_t>(impl_->pieces.size());
  m.n_bytes = impl_->n_bytes;
  std::unordered_set<std::string> special_set;
  for (const std::string& s : opt.special_tokens) {
    if (s.empty()) return Error{"bpe train: a special token is empty"};
    if (!special_set.insert(s).second) {
      return Error{fmt::format("bpe train: special token '{}' is given twice", s)};
    }
    m.tokens.push_back(s);
  }
  for (const std::string* named : {&opt.bos_token, &opt.eos_token}) {
    if (!named->empty() && special_set.count(*named) == 0) {
      return Error{fmt::format("bpe train: '{}' is not one of the special tokens", *named)};
    }
  }
  m.n_special = static_cast<int32_t>(m.tokens.size());
  const int64_t n_base = m.n_special + 256;
  if (opt.vocab_size < n_base) {
    return Error{fmt::format("bpe train: vocab size {} is smaller than the {} specials + 256 bytes",
                             opt.vocab_size, m.n_special)};
  }
  std::vector<std::string> sym_bytes(256);
  for (int b = 0; b < 256; ++b) {
    sym_bytes[static_cast<size_t>(b)] = std::string(1, static_cast<char>(b));
    m.tokens.push_back(byte_level_text(sym_bytes[static_cast<size_t>(b)]));
  }
  for (const std::string& t : m.tokens) special_set.insert(t);  // every text taken so far

  // Words in a fixed order (sorted texts) so nothing depends on hash-map iteration.
  std::vector<std::pair<std::string, int64_t>> sorted(impl_->pieces.begin(), impl_->pieces.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> freq(sorted.size());
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (size_t w = 0; w < sorted.size(); ++w) {
    freq[w] = sorted[w].second;
    for (char c : sorted[w].first) words[w].push_back(static_cast<uint8_t>(c));
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      count[k] += freq[w];
      auto& list = where[k];
      if (list.empty() || list.back() != w) list.push_back(static_cast<uint32_t>(w));
    }
  }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [k, c] : count) {
    heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xffffffffu)});
  }

  const int64_t wanted = opt.vocab_size - n_base;
  std::vector<uint32_t> stamp(words.size(), 0);
  uint32_t iter = 0;
  std::unordered_map<uint64_t, int64_t> delta;
  std::vector<int32_t> merged;
  while (static_cast<int64_t>(m.merges.size()) < wanted && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    const uint64_t key = pair_key(top.a, top.b);
    auto it = count.find(key);
    if (it == count.end() || it->second != top.count) continue;  // stale entry
    if (top.count < std::max<int64_t>(opt.min_frequency, 1)) break;
    std::string text =
        sym_bytes[static_cast<size_t>(top.a)] + sym_bytes[static_cast<size_t>(top.b)];
    std::string token = byte_level_text(text);
    if (special_set.count(token) != 0) {  // would duplicate a special token's text: never merge
      count.erase(it);
      continue;
    }
    const auto new_id = static_cast<int32_t>(sym_bytes.size());
    m.merges.emplace_back(m.tokens[static_cast<size_t>(n_base - 256 + top.a)],
                          m.tokens[static_cast<size_t>(n_base - 256 + top.b)]);
    sym_bytes.push_back(std::move(text));
    special_set.insert(token);
    m.tokens.push_back(std::move(token));
    ++iter;
    delta.clear();
    std::vector<uint32_t> affected = std::move(where[key]);
    where.erase(key);
    for (uint32_t w : affected) {
      if (stamp[w] == iter) continue;
      stamp[w] = iter;
      std::vector<int32_t>& s = words[w];
      const int64_t f = freq[w];
      bool found = false;
      for (size_t i = 0; i + 1 < s.size() && !found; ++i)
        found = s[i] == top.a && s[i + 1] == top.b;
      if (!found) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[pair_key(s[i], s[i + 1])] -= f;
      merged.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == top.a && s[i + 1] == top.b) {
          merged.push_back(new_id);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      s.swap(merged);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        delta[k] += f;
        if (s[i] == new_id || s[i + 1] == new_id) {
          auto& list = where[k];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& c = count[k];
      c += d;
      if (c <= 0) {
        count.erase(k);
      } else {
        heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xffffffffu)});
      }
    }
    count.erase(key);
    if (opt.progress && opt.progress_every > 0 &&
        static_cast<int64_t>(m.merges.size()) % opt.progress_every == 0) {
      opt.progress(static_cast<int64_t>(m.merges.size()), wanted);
    }
  }
  if (opt.progress) opt.progress(static_cast<int64_t>(m.merges.size()), wanted);
  return m;
}

std::string bpe_tokenizer_json(const BpeModel& m) {
  using json = nlohmann::ordered_json;
  json added = json::array();
  for (int32_t i = 0; i < m.n_special; ++i) {
    added.push_back({{"id", i},
                     {"content", m.tokens[static_cast<size_t>(i)]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json vocab = json::object();
  for (size_t i = 0; i < m.tokens.size(); ++i) vocab[m.tokens[i]] = i;
  json merges = json::array();
  for (const auto& [a, b] : m.merges) merges.push_back(json::array({a, b}));
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", true}};
  json post = nullptr;
  if (m.add_bos) {
    int64_t bos_id = -1;
    for (int32_t i = 0; i < m.n_special; ++i) {
      if (m.tokens[static_cast<size_t>(i)] == m.bos_token) bos_id = i;
    }
    auto special = [&](int type_id) {
      return json{{"SpecialToken", {{"id", m.bos_token}, {"type_id", type_id}}}};
    };
    auto seq = [](const char* id, int type_id) {
      return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
    };
    post = {{"type", "TemplateProcessing"},
            {"single", json::array({special(0), seq("A", 0)})},
            {"pair", json::array({special(0), seq("A", 0), special(1), seq("B", 1)})},
            {"special_tokens",
             {{m.bos_token,
               {{"id", m.bos_token},
                {"ids", json::array({bos_id})},
                {"tokens", json::array({m.bos_token})}}}}}};
  }
  const json tj = {{"version", "1.0"},
                   {"truncation", nullptr},
                   {"padding", nullptr},
                   {"added_tokens", added},
                   {"normalizer", nullptr},
                   {"pre_tokenizer", byte_level},
                   {"post_processor", post},
                   {"decoder", byte_level},
                   {"model",
                    {{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false},
                     {"byte_fallback", false},
                     {"ignore_merges", false},
                     {"vocab", vocab},
                     {"merges", merges}}}};
  return tj.dump(1) + "\n";
}

std::string bpe_tokenizer_config_json(const BpeModel& m) {
  using json = nlohmann::ordered_json;
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"add_bos_token", m.add_bos},
              {"add_eos_token", false},
              {"clean_up_tokenization_spaces", false},
              {"model_max_length", 1000000000}};
  cfg["bos_token"] = m.bos_token.empty() ? json(nullptr) : json(m.bos_token);
  cfg["eos_token"] = m.eos_token.empty() ? json(nullptr) : json(m.eos_token);
  return cfg.dump(2) + "\n";
}

Result<void> write_bpe_tokenizer(const BpeModel& m, const std::string& path) {
  const std::string tj = bpe_tokenizer_json(m), cfg = bpe_tokenizer_config_json(m);
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error{fmt::format("{}: cannot create folder: {}", dir.string(), ec.message())};
  }
  KANDIL_CHECK_OK(write_file_atomic(path, tj.data(), tj.size()));
  return write_file_atomic((dir / "tokenizer_config.json").string(), cfg.data(), cfg.size());
}

void add_bpe_gguf_metadata(const BpeModel& m, GgufWriter& w) {
  std::vector<int32_t> types(m.tokens.size(), 1);                               // normal
  for (int32_t i = 0; i < m.n_special; ++i) types[static_cast<size_t>(i)] = 3;  // control
  std::vector<std::string> merges;
  merges.reserve(m.merges.size());
  for (const auto& [a, b] : m.merges) merges.push_back(a + " " + b);
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt-2");
  w.set_strings("tokenizer.ggml.tokens", m.tokens);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_strings("tokenizer.ggml.merges", merges);
  for (int32_t i = 0; i < m.n_special; ++i) {
    const std::string& t = m.tokens[static_cast<size_t>(i)];
    if (t == m.bos_token) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(i));
    if (t == m.eos_token) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(i));
  }
  w.set_bool("tokenizer.ggml.add_bos_token", m.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
}

}  // namespace kandil
