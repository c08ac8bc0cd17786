// Tokenizer::from_gguf (reading and validating tokenizer.ggml.*), the parts shared by all
// tokenizer kinds (special-token splitting, pieces, decode, end-of-generation) and StreamDecoder.
#include "kandil/tokenizer.h"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>

#include "base/utf8.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer_impl.h"

namespace kandil {
namespace tok {

// ---- VocabTokenizer ---------------------------------------------------------------------------

VocabTokenizer::VocabTokenizer(VocabData&& data)
    : file_(std::move(data.file)), add_space_prefix_(data.add_space_prefix) {
  texts_ = std::move(data.texts);
  scores_ = std::move(data.scores);
  kinds_ = std::move(data.kinds);
  eog_ids_ = std::move(data.eog_ids);
  strip_ = std::move(data.strip);
  bos_ = data.bos;
  eos_ = data.eos;
  unk_ = data.unk;
  add_bos_ = data.add_bos;
  add_eos_ = data.add_eos;
  pre_ = std::move(data.pre);

  // texts_ is final now, so views into it stay valid. The first of duplicate texts wins.
  ids_.reserve(texts_.size());
  for (size_t i = 0; i < texts_.size(); ++i) {
    ids_.emplace(texts_[i], static_cast<TokenId>(i));
    max_token_len_ = std::max(max_token_len_, texts_[i].size());
  }

  for (TokenId id = 0; id < n_vocab(); ++id) {
    const TokenKind k = token_kind(id);
    if (k == TokenKind::control || k == TokenKind::user_defined || k == TokenKind::unknown) {
      specials_.push_back(id);
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(), [&](TokenId a, TokenId b) {
    return token_text(a).size() > token_text(b).size();
  });
  for (size_t i = 0; i < specials_.size(); ++i) {
    special_trie_.insert(token_text(specials_[i]), static_cast<uint32_t>(i));
  }
}

void VocabTokenizer::SpecialTrie::insert(std::string_view text, uint32_t value) {
  uint32_t node = 0;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    uint32_t next = child(node, c);
    if (next == 0) {
      next = static_cast<uint32_t>(nodes_.size());
      nodes_[node].children.emplace_back(c, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  nodes_[node].values.push_back(value);
}

uint32_t VocabTokenizer::SpecialTrie::child(uint32_t node, unsigned char c) const {
  for (const auto& [ch, next] : nodes_[node].children) {
    if (ch == c) return next;
  }
  return 0;
}

void VocabTokenizer::SpecialTrie::find_all(std::string_view text,
                                           std::vector<char>& present) const {
  if (nodes_[0].children.empty()) return;
  std::array<uint32_t, 256> first{};  // the root's children, for the common case of no match
  for (const auto& [c, next] : nodes_[0].children) first[c] = next;
  for (size_t i = 0; i < text.size(); ++i) {
    uint32_t node = first[static_cast<unsigned char>(text[i])];
    for (size_t j = i + 1; node != 0; ++j) {
      for (uint32_t v : nodes_[node].values) present[v] = 1;
      if (j == text.size()) break;
      node = child(node, static_cast<unsigned char>(text[j]));
    }
  }
}

void VocabTokenizer::build_pieces() {
  pieces_.resize(texts_.size());
  for (TokenId id = 0; id < n_vocab(); ++id) {
    switch (token_kind(id)) {
      case TokenKind::control:
      case TokenKind::unknown:
      case TokenKind::user_defined:
        pieces_[static_cast<size_t>(id)] = token_text(id);
        break;
      case TokenKind::normal:
        pieces_[static_cast<size_t>(id)] = normal_piece(id);
        break;
      case TokenKind::byte:
        pieces_[static_cast<size_t>(id)] = byte_piece(id);
        break;
      default:
        break;  // unused / undefined tokens render as nothing, as in llama.cpp
    }
  }
}

std::string VocabTokenizer::token_to_piece(TokenId id, bool special) const {
  if (!valid(id)) return {};
  const TokenKind k = token_kind(id);
  if (!special && (k == TokenKind::control || k == TokenKind::unknown)) return {};
  return pieces_[static_cast<size_t>(id)];
}

namespace {
bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
}  // namespace

std::vector<Fragment> VocabTokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  // Only special tokens that occur in the whole text can occur in one of its fragments.
  std::vector<char> present(specials_.size(), 0);
  special_trie_.find_all(text, present);
  std::vector<Fragment> next;
  for (size_t i = 0; i < specials_.size(); ++i) {
    if (!present[i]) continue;
    const TokenId id = specials_[i];
    const TokenKind k = token_kind(id);
    if (!parse_special && (k == TokenKind::control || k == TokenKind::unknown)) continue;
    const std::string& special = token_text(id);
    const uint8_t strip = strip_[static_cast<size_t>(id)];
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t offset = f.offset, length = f.length;
      while (length > 0) {
        // Search inside the fragment only (searching the rest of the text would be quadratic).
        const size_t at = text.substr(offset, length).find(special);
        if (at == std::string_view::npos) break;
        size_t left = at;
        if (strip & kStripLeft) {
          while (left > 0 && is_ascii_space(text[offset + left - 1])) --left;
        }
        if (left > 0) next.push_back({-1, offset, left});
        next.push_back({id, 0, 0});
        offset += at + special.size();
        length -= at + special.size();
        if (strip & kStripRight) {
          while (length > 0 && is_ascii_space(text[offset])) ++offset, --length;
        }
      }
      if (length > 0) next.push_back({-1, offset, length});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<TokenId> VocabTokenizer::encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);
  bool after_special = true;
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode_text(text.substr(f.offset, f.length), after_special, out);
      after_special = false;
    }
  }
  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

// ---- reading GGUF -----------------------------------------------------------------------------

namespace {

constexpr std::string_view kPrefix = "tokenizer.ggml.";

std::string key_of(std::string_view name) { return std::string(kPrefix) + std::string(name); }

bool is_numeric(GgufValueType t) { return t != GgufValueType::STRING && t != GgufValueType::ARRAY; }

TokenKind kind_from_type(int64_t type) {
  return type >= 0 && type <= 6 ? static_cast<TokenKind>(type) : TokenKind::undefined;
}

// The token texts llama.cpp recognises as special when no id is given in the metadata.
// Indices into text_rules():
enum Rule : size_t { kEot, kEom, kFimPre, kFimSuf, kFimMid, kFimPad, kFimRep, kFimSep };
struct TextRule {
  const char* key;  // tokenizer.ggml.<key>
  std::vector<std::string_view> texts;
};

const std::vector<TextRule>& text_rules() {
  static const std::vector<TextRule> rules = {
      {"eot_token_id",
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
        "<｜end▁of▁sentence｜>"}},
      {"eom_token_id", {"<|eom_id|>"}},
      {"fim_pre_token_id", {"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"}},
      {"fim_suf_token_id", {"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"}},
      {"fim_mid_token_id", {"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"}},
      {"fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<PAD>"}},
      {"fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}},
      {"fim_sep_token_id", {"<|file_sep|>"}},
  };
  return rules;
}

// Texts that always end generation (llama.cpp's special_eog_ids).
constexpr std::string_view kEogTexts[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|eom_id|>", "<EOT>"};

class Reader {
 public:
  explicit Reader(const GgufFile& file) : file_(file) {}

  Error error(const std::string& message) const { return Error{file_.name() + ": " + message}; }

  // An optional token id key: absent keeps `id`; -1 / 0xFFFFFFFF ("none") keeps it too, as
  // llama.cpp does; any other value outside the vocab is an error.
  Result<void> read_id(std::string_view name, int64_t n_vocab, TokenId& id) const {
    const std::string key = key_of(name);
    auto v = file_.get_int(key);
    if (!v.ok()) return v.error();
    if (!*v) return {};
    const int64_t x = **v;
    if (x == -1 || x == 0xffffffffLL) return {};
    if (x < 0 || x >= n_vocab) {
      return error(
          fmt::format("{} = {} is out of range (the vocab has {} tokens)", key, x, n_vocab));
    }
    id = static_cast<TokenId>(x);
    return {};
  }

  Result<void> read_bool(std::string_view name, bool& value) const {
    auto v = file_.get_bool(key_of(name));
    if (!v.ok()) return v.error();
    if (*v) value = **v;
    return {};
  }

  // A numeric array with exactly n entries, or nullptr when absent.
  Result<const GgufValue*> numeric_array(std::string_view name, uint64_t n) const {
    const std::string key = key_of(name);
    const GgufValue* v = file_.find(key);
    if (!v) return static_cast<const GgufValue*>(nullptr);
    if (v->type != GgufValueType::ARRAY || !is_numeric(v->elem_type)) {
      return error(fmt::format("{}: expected an array of numbers, found {}", key,
                               gguf_value_type_name(v->type)));
    }
    if (v->count != n) {
      return error(
          fmt::format("{} has {} entries but tokenizer.ggml.tokens has {}", key, v->count, n));
    }
    return v;
  }

 private:
  const GgufFile& file_;
};

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// llama.cpp's per-model LSTRIP / RSTRIP attributes (they are not stored in GGUF).
void set_strip_flags(const GgufFile& file, VocabData& v) {
  auto find_text = [&](std::string_view text) -> TokenId {
    for (size_t i = 0; i < v.texts.size(); ++i) {
      if (v.texts[i] == text) return static_cast<TokenId>(i);
    }
    return -1;
  };
  std::string name;
  if (auto n = file.get_string("general.name"); n.ok() && *n) name = lowercase(**n);
  if (v.pre.find("jina-v2-de") != std::string::npos ||
      v.pre.find("jina-v2-es") != std::string::npos ||
      v.pre.find("jina-v2-code") != std::string::npos) {
    if (TokenId id = find_text("<mask>"); id >= 0) v.strip[static_cast<size_t>(id)] |= kStripLeft;
  } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (size_t i = 0; i < v.kinds.size(); ++i) {
      const TokenKind k = v.kinds[i];
      if (k == TokenKind::control || k == TokenKind::user_defined || k == TokenKind::unknown) {
        v.strip[i] |= kStripRight;
      }
    }
    if (TokenId id = find_text("</s>"); id >= 0) v.strip[static_cast<size_t>(id)] |= kStripRight;
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (TokenId id = find_text(t); id >= 0) {
        v.strip[static_cast<size_t>(id)] &= static_cast<uint8_t>(~kStripRight);
      }
    }
  }
}

}  // namespace
}  // namespace tok

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& file) {
  using namespace tok;
  Reader reader(file);

  auto model_r = file.get_string("tokenizer.ggml.model");
  if (!model_r.ok()) return model_r.error();
  if (!*model_r) return reader.error("tokenizer.ggml.model missing");
  const std::string model(**model_r);
  bool spm = false, wpm = false;
  if (model == "llama") {
    spm = true;
  } else if (model == "gpt2") {
    spm = false;
  } else if (model == "bert") {
    wpm = true;
  } else if (model == "t5") {
    return reader.error("tokenizer.ggml.model = 't5': Unigram not supported yet");
  } else if (model == "rwkv") {
    return reader.error("tokenizer.ggml.model = 'rwkv': the RWKV tokenizer is not supported yet");
  } else if (model == "none" || model == "no_vocab") {
    return reader.error(
        fmt::format("tokenizer.ggml.model = '{}': the file has no vocabulary", model));
  } else {
    return reader.error(fmt::format("tokenizer.ggml.model = '{}': unknown tokenizer", model));
  }

  VocabData v;
  v.file = file.name();
  auto pre_r = file.get_string("tokenizer.ggml.pre");
  if (!pre_r.ok()) return pre_r.error();
  if (*pre_r) v.pre = std::string(**pre_r);

  std::optional<PreTokenizerSpec> spec;
  if (!spm && !wpm) {
    spec = pre_tokenizer_spec(v.pre);
    if (!spec) {
      return reader.error(fmt::format("tokenizer.ggml.pre = '{}': unknown pre-tokenizer", v.pre));
    }
  }

  // Tokens, scores, types.
  auto tokens_r = file.get_array("tokenizer.ggml.tokens", GgufValueType::STRING);
  if (!tokens_r.ok()) return tokens_r.error();
  const GgufValue* tokens = *tokens_r;
  if (!tokens) return reader.error("tokenizer.ggml.tokens missing");
  const uint64_t n = tokens->strings.size();
  if (n == 0) return reader.error("tokenizer.ggml.tokens is empty");
  if (n > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    return reader.error(fmt::format("tokenizer.ggml.tokens: {} tokens is too many", n));
  }
  auto scores_r = reader.numeric_array("scores", n);
  if (!scores_r.ok()) return scores_r.error();
  auto types_r = reader.numeric_array("token_type", n);
  if (!types_r.ok()) return types_r.error();

  v.texts.resize(n);
  v.scores.assign(n, 0.0f);
  v.kinds.assign(n, TokenKind::normal);
  v.strip.assign(n, 0);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view t = tokens->strings[i];
    // llama.cpp renames empty tokens (an empty text would match everywhere).
    v.texts[i] = t.empty() ? fmt::format("[EMPTY_{}]", i) : std::string(t);
    if (*scores_r) v.scores[i] = static_cast<float>((*scores_r)->array_f64(i));
    if (*types_r) v.kinds[i] = kind_from_type((*types_r)->array_i64(i));
  }

  // Defaults as in llama.cpp, then the metadata.
  const auto n_vocab = static_cast<int64_t>(n);
  auto in_vocab = [&](TokenId id) { return id < n_vocab ? id : TokenId{-1}; };
  if (spm) {
    v.bos = in_vocab(1);
    v.eos = in_vocab(2);
    v.unk = 0;
    v.add_bos = true;
    v.add_space_prefix = true;
  } else if (wpm) {
    // llama.cpp: [CLS] text [SEP]; CLS 101, SEP 102, UNK 100 unless the metadata says otherwise.
    v.bos = in_vocab(101);
    v.eos = in_vocab(102);
    v.unk = in_vocab(100);
    v.add_bos = true;
    v.add_eos = true;
    KANDIL_CHECK_OK(reader.read_id("cls_token_id", n_vocab, v.bos));
    KANDIL_CHECK_OK(reader.read_id("seperator_token_id", n_vocab, v.eos));
  } else {
    v.bos = spec->no_bos ? -1 : in_vocab(11);
    v.eos = in_vocab(11);
    v.add_bos = spec->add_bos;
  }
  KANDIL_CHECK_OK(reader.read_id("bos_token_id", n_vocab, v.bos));
  KANDIL_CHECK_OK(reader.read_id("eos_token_id", n_vocab, v.eos));
  KANDIL_CHECK_OK(reader.read_id("unknown_token_id", n_vocab, v.unk));
  KANDIL_CHECK_OK(reader.read_bool("add_bos_token", v.add_bos));
  KANDIL_CHECK_OK(reader.read_bool("add_eos_token", v.add_eos));
  KANDIL_CHECK_OK(reader.read_bool("add_space_prefix", v.add_space_prefix));

  // EOT, EOM and FIM ids: from the metadata, else found by text (llama.cpp then forces the
  // token to be a control token).
  const auto& rules = text_rules();
  std::vector<TokenId> rule_ids(rules.size(), -1);
  for (size_t r = 0; r < rules.size(); ++r) {
    KANDIL_CHECK_OK(reader.read_id(rules[r].key, n_vocab, rule_ids[r]));
  }
  const std::pair<const char*, Rule> deprecated[] = {
      {"prefix_token_id", kFimPre}, {"suffix_token_id", kFimSuf}, {"middle_token_id", kFimMid}};
  for (const auto& [key, r] : deprecated) {
    KANDIL_CHECK_OK(reader.read_id(key, n_vocab, rule_ids[r]));
  }
  auto force_control = [&](size_t i) { v.kinds[i] = TokenKind::control; };
  for (size_t i = 0; i < n; ++i) {
    for (size_t r = 0; r < rules.size(); ++r) {
      if (rule_ids[r] >= 0) continue;
      const auto& texts = rules[r].texts;
      if (std::find(texts.begin(), texts.end(), v.texts[i]) != texts.end()) {
        rule_ids[r] = static_cast<TokenId>(i);
        force_control(i);
      }
    }
  }

  // End of generation: FIM pad/repo/sep, the usual end texts, EOS, EOT, EOM.
  for (Rule r : {kFimPad, kFimRep, kFimSep}) {
    if (rule_ids[r] >= 0) v.eog_ids.push_back(rule_ids[r]);
  }
  for (size_t i = 0; i < n; ++i) {
    if (std::find(std::begin(kEogTexts), std::end(kEogTexts), v.texts[i]) != std::end(kEogTexts)) {
      v.eog_ids.push_back(static_cast<TokenId>(i));
      force_control(i);
    }
  }
  for (TokenId id : {v.eos, rule_ids[kEot], rule_ids[kEom]}) {
    if (id >= 0) v.eog_ids.push_back(id);
  }
  std::sort(v.eog_ids.begin(), v.eog_ids.end());
  v.eog_ids.erase(std::unique(v.eog_ids.begin(), v.eog_ids.end()), v.eog_ids.end());

  set_strip_flags(file, v);

  if (spm) return make_spm_tokenizer(std::move(v));
  if (wpm) return make_wpm_tokenizer(std::move(v));
  auto merges_r = file.get_array("tokenizer.ggml.merges", GgufValueType::STRING);
  if (!merges_r.ok()) return merges_r.error();
  if (!*merges_r) return reader.error("tokenizer.ggml.merges missing (required for gpt2)");
  return make_bpe_tokenizer(std::move(v), (*merges_r)->strings, *spec);
}

// ---- Tokenizer / StreamDecoder ----------------------------------------------------------------

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool special) const {
  std::string out;
  for (TokenId id : ids) out += token_to_piece(id, special);
  return out;
}

bool Tokenizer::is_eog(TokenId id) const {
  return id >= 0 && std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

std::string StreamDecoder::push(TokenId id) {
  pending_ += tokenizer_.token_to_piece(id, special_);
  const size_t keep = utf8::incomplete_tail(pending_);
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace kandil
