// The tokenizer.json Tokenizer: added-token splitting, the encode pipeline (normalizer,
// pre-tokenizer, model, post-processor), decoding, pieces for streaming, and the entry points
// Tokenizer::from_tokenizer_json / from_hf_dir. Mirrors tokenizers.js (used by
// @huggingface/transformers); see docs/tokenizers.md for the mapping of encode's flags.
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/utf8.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/unicode.h"

namespace kandil {
namespace tok::hf {
namespace {

// Leftmost-longest matching of added-token texts (tokenizers.js DictionarySplitter), on bytes.
class Splitter {
 public:
  void insert(std::string_view text, size_t value) {
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
    nodes_[node].value = static_cast<int64_t>(value);
  }
  bool empty() const { return nodes_[0].children.empty(); }

  // Pieces of text: (offset, length, value or -1 for plain text).
  void split(std::string_view text, std::vector<std::tuple<size_t, size_t, int64_t>>& out) const {
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      uint32_t node = 0;
      int64_t match = -1;
      size_t match_len = 0;
      for (size_t j = i; j < text.size(); ++j) {
        node = child(node, static_cast<unsigned char>(text[j]));
        if (node == 0) break;
        if (nodes_[node].value >= 0) {
          match = nodes_[node].value;
          match_len = j + 1 - i;
        }
      }
      if (match >= 0) {
        if (i > start) out.emplace_back(start, i - start, -1);
        out.emplace_back(i, match_len, match);
        i += match_len;
        start = i;
      } else {
        ++i;
      }
    }
    if (start < text.size()) out.emplace_back(start, text.size() - start, -1);
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, uint32_t>> children;
    int64_t value = -1;
  };
  uint32_t child(uint32_t node, unsigned char c) const {
    for (const auto& [ch, next] : nodes_[node].children) {
      if (ch == c) return next;
    }
    return 0;
  }
  std::vector<Node> nodes_ = std::vector<Node>(1);
};

constexpr std::string_view kEogTexts[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|eom_id|>", "<EOT>"};

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(std::unique_ptr<Spec> spec) : spec_(std::move(spec)) {
    Model& m = spec_->model;
    // Ids: the model's vocab, then added tokens (their text, and their normalized text).
    ids_ = m.vocab;
    for (size_t i = 0; i < spec_->added.size(); ++i) {
      const AddedToken& t = spec_->added[i];
      ids_[t.content] = t.id;
      m.vocab[t.content] = t.id;
      added_ids_[t.content] = t.id;
    }
    for (size_t i = 0; i < spec_->added.size(); ++i) {
      const AddedToken& t = spec_->added[i];
      if (t.normalized && spec_->normalizer) {
        const std::string norm = spec_->normalizer->apply(t.content);
        if (norm.empty()) continue;
        added_by_text_[norm] = i;
        ids_[norm] = t.id;
        normalized_all_.insert(norm, i);
        if (!t.special) normalized_plain_.insert(norm, i);
      } else {
        unnormalized_all_.insert(t.content, i);
        if (!t.special) unnormalized_plain_.insert(t.content, i);
      }
      added_by_text_[t.content] = i;
    }

    // texts_ / kinds_.
    TokenId max_id = -1;
    for (const auto& [text, id] : ids_) max_id = std::max(max_id, id);
    texts_.assign(static_cast<size_t>(max_id + 1), std::string());
    kinds_.assign(texts_.size(), TokenKind::unused);
    scores_.assign(texts_.size(), 0.0f);
    auto set = [&](const std::string& text, TokenId id, TokenKind kind) {
      if (id < 0 || static_cast<size_t>(id) >= texts_.size()) return;
      texts_[static_cast<size_t>(id)] = text;
      kinds_[static_cast<size_t>(id)] = kind;
    };
    if (m.type == Model::Type::unigram) {
      for (size_t i = 0; i < m.pieces.size(); ++i) {
        set(m.pieces[i], static_cast<TokenId>(i), TokenKind::normal);
        scores_[i] = static_cast<float>(m.scores[i]);
      }
    } else {
      for (const auto& [text, id] : spec_->model.vocab) {
        if (added_ids_.count(text)) continue;
        const bool byte = m.byte_fallback && text.size() == 6 && text.compare(0, 3, "<0x") == 0;
        set(text, id, byte ? TokenKind::byte : TokenKind::normal);
      }
    }
    if (m.has_unk) {
      auto it = ids_.find(m.unk_token);
      if (it != ids_.end()) {
        unk_ = it->second;
        set(m.unk_token, unk_, TokenKind::unknown);
      }
    }
    for (const AddedToken& t : spec_->added) {
      set(t.content, t.id, t.special ? TokenKind::control : TokenKind::user_defined);
    }

    // BOS / EOS: tokenizer_config.json, else what the post-processor adds.
    auto id_of = [&](const std::string& s) {
      auto it = ids_.find(s);
      return it == ids_.end() ? TokenId{-1} : it->second;
    };
    if (!spec_->bos_token.empty()) bos_ = id_of(spec_->bos_token);
    if (!spec_->eos_token.empty()) eos_ = id_of(spec_->eos_token);
    const std::vector<TokenId> empty_special = encode("", true, false);
    if (!empty_special.empty()) {
      if (bos_ < 0) bos_ = empty_special.front();
      if (eos_ < 0 && empty_special.size() > 1) eos_ = empty_special.back();
      add_bos_ = empty_special.front() == bos_;
      add_eos_ = empty_special.size() > (add_bos_ ? 1u : 0u) && empty_special.back() == eos_;
    }

    // End of generation.
    for (const AddedToken& t : spec_->added) {
      if (std::find(std::begin(kEogTexts), std::end(kEogTexts), t.content) != std::end(kEogTexts)) {
        eog_ids_.push_back(t.id);
      }
    }
    if (eos_ >= 0) eog_ids_.push_back(eos_);
    for (TokenId id : spec_->extra_eog) {
      if (valid(id)) eog_ids_.push_back(id);
    }
    std::sort(eog_ids_.begin(), eog_ids_.end());
    eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());

    pre_ = "hf";
    build_pieces();
  }

  TokenizerKind kind() const override {
    switch (spec_->model.type) {
      case Model::Type::bpe:
        return TokenizerKind::hf_bpe;
      case Model::Type::wordpiece:
        return TokenizerKind::hf_wordpiece;
      case Model::Type::unigram:
        return TokenizerKind::hf_unigram;
    }
    return TokenizerKind::hf_bpe;
  }

  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special) const override {
    const std::string valid_text = utf8::sanitize(text);
    Pieces tokens = encode_text(valid_text, parse_special);
    if (spec_->post_processor) spec_->post_processor->apply(tokens, add_special);
    std::vector<TokenId> ids;
    ids.reserve(tokens.size());
    for (const std::string& t : tokens) {
      auto it = ids_.find(t);
      if (it != ids_.end()) {
        ids.push_back(it->second);
      } else if (unk_ >= 0) {
        ids.push_back(unk_);
      }
    }
    return ids;
  }

  std::string token_to_piece(TokenId id, bool special) const override {
    if (!valid(id)) return {};
    const TokenKind k = token_kind(id);
    if (!special && (k == TokenKind::control || k == TokenKind::unknown)) return {};
    return pieces_[static_cast<size_t>(id)];
  }

  std::string decode(const std::vector<TokenId>& ids, bool special) const override {
    Pieces tokens;
    for (TokenId id : ids) {
      if (!valid(id)) {
        if (spec_->model.has_unk) tokens.push_back(spec_->model.unk_token);
        continue;
      }
      if (!special && token_kind(id) == TokenKind::control) continue;
      tokens.push_back(token_text(id));
    }
    std::string out;
    if (spec_->decoder) {
      spec_->decoder->apply(tokens, added_ids_);
      for (const std::string& t : tokens) out += t;
    } else {
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (i) out += ' ';
        out += tokens[i];
      }
    }
    const std::string& eow = spec_->model.end_of_word_suffix;
    if (spec_->decoder && !eow.empty()) {
      Pattern p;
      p.literal = eow;
      out = p.replace_all(out, " ");
      if (!special) out = std::string(uni::trim_start(uni::trim_end(out)));
    }
    if (spec_->clean_up_tokenization_spaces) out = clean_up_tokenization(std::move(out));
    return out;
  }

 private:
  // tokenizers.js Tokenizer.encode_text.
  Pieces encode_text(const std::string& text, bool parse_special) const {
    Pieces out;
    const Splitter& outer = parse_special ? unnormalized_all_ : unnormalized_plain_;
    const Splitter& inner = parse_special ? normalized_all_ : normalized_plain_;
    std::vector<std::tuple<size_t, size_t, int64_t>> parts;
    outer.split(text, parts);
    Pieces sections;
    std::vector<int64_t> which;
    for (const auto& [off, len, v] : parts) {
      sections.push_back(text.substr(off, len));
      which.push_back(v);
    }
    strip_around(sections, which);
    for (size_t si = 0; si < sections.size(); ++si) {
      std::string s = std::move(sections[si]);
      if (s.empty()) continue;
      if (which[si] >= 0 || is_added(s, parse_special)) {
        out.push_back(std::move(s));
        continue;
      }
      if (spec_->remove_space) s = collapse_spaces(s);
      if (spec_->do_lowercase_and_remove_accent) {
        Normalizer strip;
        strip.type = Normalizer::Type::strip_accents;
        s = strip.apply(uni::to_lower(s));
      }
      if (spec_->normalizer) s = spec_->normalizer->apply(std::move(s));
      if (s.empty()) continue;
      std::vector<std::tuple<size_t, size_t, int64_t>> sub;
      inner.split(s, sub);
      Pieces subs;
      std::vector<int64_t> sub_which;
      for (const auto& [off, len, v] : sub) {
        subs.push_back(s.substr(off, len));
        sub_which.push_back(v);
      }
      strip_around(subs, sub_which);
      for (size_t j = 0; j < subs.size(); ++j) {
        if (subs[j].empty()) continue;
        if (sub_which[j] >= 0 || is_added(subs[j], parse_special)) {
          out.push_back(std::move(subs[j]));
          continue;
        }
        Pieces words{std::move(subs[j])};
        if (spec_->pre_tokenizer) spec_->pre_tokenizer->apply(words, si);
        spec_->model.encode(words, out);
      }
    }
    return out;
  }

  bool is_added(const std::string& s, bool parse_special) const {
    auto it = added_by_text_.find(s);
    return it != added_by_text_.end() && (parse_special || !spec_->added[it->second].special);
  }

  // lstrip / rstrip of added tokens trim the whitespace of their neighbours.
  void strip_around(Pieces& parts, const std::vector<int64_t>& which) const {
    for (size_t i = 0; i < parts.size(); ++i) {
      if (which[i] < 0) continue;
      const AddedToken& t = spec_->added[static_cast<size_t>(which[i])];
      if (t.lstrip && i > 0) parts[i - 1] = std::string(uni::trim_end(parts[i - 1]));
      if (t.rstrip && i + 1 < parts.size()) {
        parts[i + 1] = std::string(uni::trim_start(parts[i + 1]));
      }
    }
  }

  static std::string collapse_spaces(const std::string& s) {
    std::string out;
    const std::string_view t = uni::trim_start(uni::trim_end(s));
    bool space = false;
    for (size_t i = 0; i < t.size();) {
      const size_t start = i;
      const uint32_t cp = utf8::decode(t, i);
      if (uni::is_space(cp, true)) {
        space = true;
        continue;
      }
      if (space) out += ' ';
      space = false;
      out.append(t.substr(start, i - start));
    }
    return out;
  }

  // A token's bytes on its own: the decoder chain's per-token transforms (byte-level and byte
  // fallback give raw bytes; "▁" gives a space; WordPiece continuations lose their prefix and
  // other words get a leading space), without the whole-sequence steps (Strip, Fuse).
  std::string piece(const std::string& token) const {
    if (!spec_->decoder) return token;
    return piece_with(*spec_->decoder, token);
  }
  std::string piece_with(const Decoder& d, const std::string& t) const {
    using T = Decoder::Type;
    switch (d.type) {
      case T::byte_level: {
        std::string out;
        for (size_t i = 0; i < t.size();) {
          const int b = unicode_to_byte(utf8::decode(t, i));
          out += static_cast<char>(b < 0 ? 0 : b);
        }
        return out;
      }
      case T::byte_fallback: {
        auto hex = [](char c) {
          return c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : -1;
        };
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) >= 0 &&
            hex(t[4]) >= 0) {
          return std::string(1, static_cast<char>(hex(t[3]) * 16 + hex(t[4])));
        }
        return t;
      }
      case T::metaspace: {
        Pattern p;
        p.literal = d.replacement;
        return p.replace_all(t, " ");
      }
      case T::replace:
        return d.pattern.replace_all(t, d.content);
      case T::word_piece:
        if (!d.prefix.empty() && t.compare(0, d.prefix.size(), d.prefix) == 0) {
          return t.substr(d.prefix.size());
        }
        {
          std::string s(1, ' ');
          s += t;
          return s;
        }
      case T::bpe: {
        Pattern p;
        p.literal = d.suffix;
        return p.replace_all(t, " ");
      }
      case T::sequence: {
        std::string s = t;
        for (const Decoder& c : d.children) s = piece_with(c, s);
        return s;
      }
      default:
        return t;
    }
  }

  void build_pieces() {
    pieces_.resize(texts_.size());
    for (size_t i = 0; i < texts_.size(); ++i) {
      const TokenKind k = kinds_[i];
      if (k == TokenKind::control || k == TokenKind::user_defined || k == TokenKind::unknown) {
        pieces_[i] = texts_[i];
      } else if (k != TokenKind::unused) {
        pieces_[i] = piece(texts_[i]);
      }
    }
  }

  std::unique_ptr<Spec> spec_;
  std::unordered_map<std::string, TokenId> ids_;
  std::unordered_map<std::string, TokenId> added_ids_;     // added-token text -> id
  std::unordered_map<std::string, size_t> added_by_text_;  // text / normalized text -> index
  Splitter unnormalized_all_, unnormalized_plain_, normalized_all_, normalized_plain_;
  std::vector<std::string> pieces_;
};

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("{}: cannot open", path.string())};
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{fmt::format("{}: read error", path.string())};
  return ss.str();
}

// eos_token_id in generation_config.json / config.json: an id or a list of ids.
Result<void> read_eos_ids(const std::filesystem::path& path, std::vector<TokenId>& out) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  auto text = read_file(path);
  if (!text.ok()) return text.error();
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{fmt::format("{}: invalid JSON (expected an object)", path.string())};
  }
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return {};
  const nlohmann::json& v = j["eos_token_id"];
  auto add = [&](const nlohmann::json& e) -> Result<void> {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX) {
      return Error{
          fmt::format("{}: eos_token_id: expected token ids, found {}", path.string(), e.dump())};
    }
    out.push_back(static_cast<TokenId>(e.get<int64_t>()));
    return {};
  };
  if (v.is_array()) {
    for (const auto& e : v) KANDIL_CHECK_OK(add(e));
    return {};
  }
  return add(v);
}

}  // namespace

std::unique_ptr<Tokenizer> make_hf_tokenizer(std::unique_ptr<Spec> spec) {
  return std::make_unique<HfTokenizer>(std::move(spec));
}

}  // namespace tok::hf

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_tokenizer_json_text(
    std::string_view tokenizer_json, std::string_view config_json, const std::string& name) {
  auto spec = tok::hf::parse(tokenizer_json, config_json, name);
  if (!spec.ok()) return spec.error();
  return tok::hf::make_hf_tokenizer(std::move(*spec));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_tokenizer_json(const std::string& path) {
  auto text = tok::hf::read_file(path);
  if (!text.ok()) return text.error();
  // A tokenizer_config.json beside it supplies bos/eos and decoding options.
  const auto config = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::string config_text;
  std::error_code ec;
  if (std::filesystem::exists(config, ec)) {
    auto c = tok::hf::read_file(config);
    if (!c.ok()) return c.error();
    config_text = std::move(*c);
  }
  return from_tokenizer_json_text(*text, config_text, path);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_dir(const std::string& dir) {
  const std::filesystem::path d(dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(d, ec)) {
    return Error{fmt::format("{}: not a directory", dir)};
  }
  const auto json_path = d / "tokenizer.json";
  if (!std::filesystem::exists(json_path, ec)) {
    return Error{
        fmt::format("{}: no tokenizer.json (only tokenizer.json folders are supported)", dir)};
  }
  auto text = tok::hf::read_file(json_path);
  if (!text.ok()) return text.error();
  std::string config_text;
  if (std::filesystem::exists(d / "tokenizer_config.json", ec)) {
    auto c = tok::hf::read_file(d / "tokenizer_config.json");
    if (!c.ok()) return c.error();
    config_text = std::move(*c);
  }
  auto spec = tok::hf::parse(*text, config_text, json_path.string());
  if (!spec.ok()) return spec.error();
  KANDIL_CHECK_OK(tok::hf::read_eos_ids(d / "generation_config.json", (*spec)->extra_eog));
  KANDIL_CHECK_OK(tok::hf::read_eos_ids(d / "config.json", (*spec)->extra_eog));
  return tok::hf::make_hf_tokenizer(std::move(*spec));
}

}  // namespace kandil
