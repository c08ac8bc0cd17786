// Parsing tokenizer.json (and tokenizer_config.json) into the components of hf_tokenizer.h, with
// strict validation: every error names the file and the JSON path of the value at fault.
#include <fmt/core.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "tokenizer/hf_tokenizer.h"

namespace kandil::tok::hf {
namespace {

using json = nlohmann::json;

// Largest id accepted: a guard against absurd allocations from bad input.
constexpr int64_t kMaxId = 16 * 1024 * 1024;

class Parser {
 public:
  explicit Parser(const std::string& name) : name_(name) {}

  Error err(const std::string& path, const std::string& what) const {
    return Error{fmt::format("{}: {}: {}", name_, path, what)};
  }

  static const char* type_name(const json& j) { return j.type_name(); }

  Result<const json*> field(const json& obj, const std::string& path, const char* key,
                            bool required) const {
    if (!obj.is_object())
      return err(path, fmt::format("expected an object, found {}", type_name(obj)));
    auto it = obj.find(key);
    if (it == obj.end() || (it->is_null() && !required)) {
      if (required) return err(path, fmt::format("missing \"{}\"", key));
      return static_cast<const json*>(nullptr);
    }
    return &*it;
  }

  Result<std::string> str(const json& obj, const std::string& path, const char* key,
                          const std::string& def, bool required = false) const {
    auto f = field(obj, path, key, required);
    if (!f.ok()) return f.error();
    if (!*f) return def;
    if (!(*f)->is_string()) {
      return err(path + "." + key, fmt::format("expected a string, found {}", type_name(**f)));
    }
    return (*f)->get<std::string>();
  }

  Result<bool> boolean(const json& obj, const std::string& path, const char* key, bool def) const {
    auto f = field(obj, path, key, false);
    if (!f.ok()) return f.error();
    if (!*f) return def;
    if (!(*f)->is_boolean()) {
      return err(path + "." + key, fmt::format("expected true or false, found {}", type_name(**f)));
    }
    return (*f)->get<bool>();
  }

  Result<int64_t> integer(const json& obj, const std::string& path, const char* key, int64_t def,
                          int64_t lo, int64_t hi) const {
    auto f = field(obj, path, key, false);
    if (!f.ok()) return f.error();
    if (!*f) return def;
    if (!(*f)->is_number_integer()) {
      return err(path + "." + key, fmt::format("expected an integer, found {}", type_name(**f)));
    }
    const int64_t v =
        (*f)->is_number_unsigned()
            ? static_cast<int64_t>(std::min<uint64_t>((*f)->get<uint64_t>(), uint64_t{1} << 62))
            : (*f)->get<int64_t>();
    if (v < lo || v > hi) {
      return err(path + "." + key, fmt::format("{} is out of range [{}, {}]", v, lo, hi));
    }
    return v;
  }

  Result<std::string> type(const json& obj, const std::string& path) const {
    return str(obj, path, "type", "", true);
  }

  Result<Pattern> pattern(const json& obj, const std::string& path) const {
    auto f = field(obj, path, "pattern", true);
    if (!f.ok()) return f.error();
    const json& p = **f;
    const std::string pp = path + ".pattern";
    Pattern out;
    if (p.is_object() && p.contains("String") && p["String"].is_string()) {
      out.literal = p["String"].get<std::string>();
      return out;
    }
    if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
      auto r = Regex::compile(p["Regex"].get<std::string>());
      if (!r.ok()) return err(pp + ".Regex", r.error().message);
      out.is_regex = true;
      out.regex = std::move(*r);
      return out;
    }
    return err(pp, "expected {\"String\": ...} or {\"Regex\": ...}");
  }

  Result<std::vector<const json*>> list(const json& obj, const std::string& path,
                                        const char* key) const {
    auto f = field(obj, path, key, true);
    if (!f.ok()) return f.error();
    if (!(*f)->is_array()) {
      return err(path + "." + key, fmt::format("expected an array, found {}", type_name(**f)));
    }
    std::vector<const json*> out;
    for (const json& e : **f) out.push_back(&e);
    return out;
  }

  Result<Normalizer> normalizer(const json& j, const std::string& path, int depth) const {
    if (depth > 32) return err(path, "nested too deeply");
    auto t = type(j, path);
    if (!t.ok()) return t.error();
    using T = Normalizer::Type;
    Normalizer n;
    const std::string& ty = *t;
    if (ty == "NFC")
      n.type = T::nfc;
    else if (ty == "NFD")
      n.type = T::nfd;
    else if (ty == "NFKC")
      n.type = T::nfkc;
    else if (ty == "NFKD")
      n.type = T::nfkd;
    else if (ty == "Lowercase")
      n.type = T::lowercase;
    else if (ty == "StripAccents")
      n.type = T::strip_accents;
    else if (ty == "Precompiled")
      n.type = T::precompiled;
    else if (ty == "Replace") {
      n.type = T::replace;
      auto p = pattern(j, path);
      if (!p.ok()) return p.error();
      n.pattern = std::move(*p);
      auto c = str(j, path, "content", "", true);
      if (!c.ok()) return c.error();
      n.content = *c;
    } else if (ty == "Prepend") {
      n.type = T::prepend;
      auto c = str(j, path, "prepend", "", true);
      if (!c.ok()) return c.error();
      n.content = *c;
    } else if (ty == "Strip") {
      n.type = T::strip;
      auto l = boolean(j, path, "strip_left", false);
      if (!l.ok()) return l.error();
      auto r = boolean(j, path, "strip_right", false);
      if (!r.ok()) return r.error();
      n.left = *l;
      n.right = *r;
    } else if (ty == "BertNormalizer") {
      n.type = T::bert;
      for (auto [key, dst] : {std::pair<const char*, bool*>{"clean_text", &n.clean_text},
                              {"handle_chinese_chars", &n.handle_chinese_chars},
                              {"lowercase", &n.lowercase}}) {
        auto b = boolean(j, path, key, true);
        if (!b.ok()) return b.error();
        *dst = *b;
      }
      if (j.contains("strip_accents") && !j["strip_accents"].is_null()) {
        auto b = boolean(j, path, "strip_accents", false);
        if (!b.ok()) return b.error();
        n.strip_accents = *b ? 1 : 0;
      }
    } else if (ty == "Sequence") {
      n.type = T::sequence;
      auto l = list(j, path, "normalizers");
      if (!l.ok()) return l.error();
      for (size_t i = 0; i < l->size(); ++i) {
        auto c = normalizer(*(*l)[i], fmt::format("{}.normalizers[{}]", path, i), depth + 1);
        if (!c.ok()) return c.error();
        n.children.push_back(std::move(*c));
      }
    } else {
      return err(path + ".type", fmt::format("unknown normalizer type '{}'", ty));
    }
    return n;
  }

  Result<PreTokenizer> pre_tokenizer(const json& j, const std::string& path, int depth) const {
    if (depth > 32) return err(path, "nested too deeply");
    auto t = type(j, path);
    if (!t.ok()) return t.error();
    using T = PreTokenizer::Type;
    PreTokenizer p;
    const std::string& ty = *t;
    if (ty == "ByteLevel") {
      p.type = T::byte_level;
      auto a = boolean(j, path, "add_prefix_space", false);
      if (!a.ok()) return a.error();
      auto u = boolean(j, path, "use_regex", true);
      if (!u.ok()) return u.error();
      p.add_prefix_space = *a;
      p.use_regex = *u;
    } else if (ty == "Split") {
      p.type = T::split;
      auto pat = pattern(j, path);
      if (!pat.ok()) return pat.error();
      p.pattern = std::move(*pat);
      auto inv = boolean(j, path, "invert", false);
      if (!inv.ok()) return inv.error();
      p.invert = *inv;
      auto beh = str(j, path, "behavior", "Isolated");
      if (!beh.ok()) return beh.error();
      static const char* kBehaviors[] = {"Removed", "Isolated", "MergedWithPrevious",
                                         "MergedWithNext", "Contiguous"};
      if (std::find(std::begin(kBehaviors), std::end(kBehaviors), *beh) == std::end(kBehaviors)) {
        return err(path + ".behavior", fmt::format("unknown split behavior '{}'", *beh));
      }
      p.removed = *beh == "Removed";
    } else if (ty == "Metaspace") {
      p.type = T::metaspace;
      auto r = str(j, path, "replacement", "\xe2\x96\x81");
      if (!r.ok()) return r.error();
      p.replacement = *r;
      auto s = str(j, path, "prepend_scheme", "always");
      if (!s.ok()) return s.error();
      if (*s != "always" && *s != "first" && *s != "never") {
        return err(path + ".prepend_scheme", fmt::format("unknown prepend scheme '{}'", *s));
      }
      p.prepend_scheme = *s;
    } else if (ty == "BertPreTokenizer") {
      p.type = T::bert;
    } else if (ty == "Whitespace") {
      p.type = T::whitespace;
    } else if (ty == "WhitespaceSplit") {
      p.type = T::whitespace_split;
    } else if (ty == "Punctuation") {
      p.type = T::punctuation;
    } else if (ty == "Digits") {
      p.type = T::digits;
      auto d = boolean(j, path, "individual_digits", false);
      if (!d.ok()) return d.error();
      p.individual_digits = *d;
    } else if (ty == "Replace") {
      p.type = T::replace;
      auto pat = pattern(j, path);
      if (!pat.ok()) return pat.error();
      p.pattern = std::move(*pat);
      auto c = str(j, path, "content", "");
      if (!c.ok()) return c.error();
      p.content = *c;
    } else if (ty == "FixedLength") {
      p.type = T::fixed_length;
      auto l = integer(j, path, "length", 5, 1, 1 << 20);
      if (!l.ok()) return l.error();
      p.length = static_cast<size_t>(*l);
    } else if (ty == "Sequence") {
      p.type = T::sequence;
      auto l = list(j, path, "pretokenizers");
      if (!l.ok()) return l.error();
      for (size_t i = 0; i < l->size(); ++i) {
        auto c = pre_tokenizer(*(*l)[i], fmt::format("{}.pretokenizers[{}]", path, i), depth + 1);
        if (!c.ok()) return c.error();
        p.children.push_back(std::move(*c));
      }
    } else {
      return err(path + ".type", fmt::format("unknown pre-tokenizer type '{}'", ty));
    }
    return p;
  }

  // "cls": ["[CLS]", 101]
  Result<std::string> token_pair(const json& j, const std::string& path, const char* key) const {
    auto f = field(j, path, key, true);
    if (!f.ok()) return f.error();
    const json& v = **f;
    if (!v.is_array() || v.size() != 2 || !v[0].is_string()) {
      return err(path + "." + key, "expected [\"token\", id]");
    }
    return v[0].get<std::string>();
  }

  Result<PostProcessor> post_processor(const json& j, const std::string& path, int depth) const {
    if (depth > 32) return err(path, "nested too deeply");
    auto t = type(j, path);
    if (!t.ok()) return t.error();
    using T = PostProcessor::Type;
    PostProcessor p;
    const std::string& ty = *t;
    if (ty == "TemplateProcessing") {
      p.type = T::template_processing;
      auto l = list(j, path, "single");
      if (!l.ok()) return l.error();
      for (size_t i = 0; i < l->size(); ++i) {
        const json& item = *(*l)[i];
        const std::string ip = fmt::format("{}.single[{}]", path, i);
        if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object() &&
            item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
          p.single.emplace_back(true, item["SpecialToken"]["id"].get<std::string>());
        } else if (item.is_object() && item.contains("Sequence") && item["Sequence"].is_object()) {
          auto id = str(item["Sequence"], ip + ".Sequence", "id", "A");
          if (!id.ok()) return id.error();
          if (*id != "A" && *id != "B") return err(ip + ".Sequence.id", "expected \"A\" or \"B\"");
          if (*id == "A") p.single.emplace_back(false, "");
        } else {
          return err(ip, "expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}");
        }
      }
    } else if (ty == "BertProcessing" || ty == "RobertaProcessing") {
      p.type = ty == "BertProcessing" ? T::bert : T::roberta;
      auto c = token_pair(j, path, "cls");
      if (!c.ok()) return c.error();
      auto s = token_pair(j, path, "sep");
      if (!s.ok()) return s.error();
      p.cls = *c;
      p.sep = *s;
    } else if (ty == "ByteLevel") {
      p.type = T::byte_level;
    } else if (ty == "Sequence") {
      p.type = T::sequence;
      auto l = list(j, path, "processors");
      if (!l.ok()) return l.error();
      for (size_t i = 0; i < l->size(); ++i) {
        auto c = post_processor(*(*l)[i], fmt::format("{}.processors[{}]", path, i), depth + 1);
        if (!c.ok()) return c.error();
        p.children.push_back(std::move(*c));
      }
    } else {
      return err(path + ".type", fmt::format("unknown post-processor type '{}'", ty));
    }
    return p;
  }

  Result<Decoder> decoder(const json& j, const std::string& path, int depth) const {
    if (depth > 32) return err(path, "nested too deeply");
    auto t = type(j, path);
    if (!t.ok()) return t.error();
    using T = Decoder::Type;
    Decoder d;
    const std::string& ty = *t;
    if (ty == "ByteLevel")
      d.type = T::byte_level;
    else if (ty == "Fuse")
      d.type = T::fuse;
    else if (ty == "ByteFallback")
      d.type = T::byte_fallback;
    else if (ty == "WordPiece") {
      d.type = T::word_piece;
      auto p = str(j, path, "prefix", "##");
      if (!p.ok()) return p.error();
      auto c = boolean(j, path, "cleanup", false);
      if (!c.ok()) return c.error();
      d.prefix = *p;
      d.cleanup = *c;
    } else if (ty == "Metaspace") {
      d.type = T::metaspace;
      auto r = str(j, path, "replacement", "\xe2\x96\x81");
      if (!r.ok()) return r.error();
      d.replacement = *r;
    } else if (ty == "BPEDecoder") {
      d.type = T::bpe;
      auto s = str(j, path, "suffix", "");
      if (!s.ok()) return s.error();
      d.suffix = *s;
    } else if (ty == "Replace") {
      d.type = T::replace;
      auto p = pattern(j, path);
      if (!p.ok()) return p.error();
      d.pattern = std::move(*p);
      auto c = str(j, path, "content", "");
      if (!c.ok()) return c.error();
      d.content = *c;
    } else if (ty == "Strip") {
      d.type = T::strip;
      auto c = str(j, path, "content", "");
      if (!c.ok()) return c.error();
      auto a = integer(j, path, "start", 0, 0, 1 << 20);
      if (!a.ok()) return a.error();
      auto b = integer(j, path, "stop", 0, 0, 1 << 20);
      if (!b.ok()) return b.error();
      d.content = *c;
      d.start = static_cast<size_t>(*a);
      d.stop = static_cast<size_t>(*b);
    } else if (ty == "CTC") {
      d.type = T::ctc;
      auto p = str(j, path, "pad_token", "");
      if (!p.ok()) return p.error();
      auto w = str(j, path, "word_delimiter_token", "");
      if (!w.ok()) return w.error();
      auto c = boolean(j, path, "cleanup", false);
      if (!c.ok()) return c.error();
      d.pad_token = *p;
      d.word_delimiter_token = *w;
      d.cleanup = *c;
    } else if (ty == "Sequence") {
      d.type = T::sequence;
      auto l = list(j, path, "decoders");
      if (!l.ok()) return l.error();
      for (size_t i = 0; i < l->size(); ++i) {
        auto c = decoder(*(*l)[i], fmt::format("{}.decoders[{}]", path, i), depth + 1);
        if (!c.ok()) return c.error();
        d.children.push_back(std::move(*c));
      }
    } else {
      return err(path + ".type", fmt::format("unknown decoder type '{}'", ty));
    }
    return d;
  }

  Result<void> model(const json& j, Model& m) const {
    const std::string path = "model";
    if (!j.is_object()) return err(path, fmt::format("expected an object, found {}", type_name(j)));
    auto vocab_f = field(j, path, "vocab", true);
    if (!vocab_f.ok()) return vocab_f.error();
    const json& vocab = **vocab_f;
    std::string ty;
    if (j.contains("type") && j["type"].is_string()) {
      ty = j["type"].get<std::string>();
    } else if (vocab.is_array()) {
      ty = "Unigram";
    } else if (j.contains("merges")) {
      ty = "BPE";
    } else {
      ty = "WordPiece";
    }
    auto unk = str(j, path, "unk_token", "");
    if (!unk.ok()) return unk.error();
    m.unk_token = *unk;
    m.has_unk = j.contains("unk_token") && j["unk_token"].is_string();
    auto fuse = boolean(j, path, "fuse_unk", false);
    if (!fuse.ok()) return fuse.error();
    m.fuse_unk = *fuse;
    if (ty == "Unigram") {
      m.type = Model::Type::unigram;
      if (!vocab.is_array()) return err("model.vocab", "expected an array of [piece, score]");
      if (vocab.empty()) return err("model.vocab", "is empty");
      if (static_cast<int64_t>(vocab.size()) > kMaxId) return err("model.vocab", "too many pieces");
      for (size_t i = 0; i < vocab.size(); ++i) {
        const json& e = vocab[i];
        if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
          return err(fmt::format("model.vocab[{}]", i), "expected [\"piece\", score]");
        }
        std::string piece = e[0].get<std::string>();
        m.max_piece_chars = std::max(m.max_piece_chars, piece.size());
        m.vocab[piece] = static_cast<TokenId>(i);  // the last of duplicates wins
        m.pieces.push_back(std::move(piece));
        m.scores.push_back(e[1].get<double>());
      }
      auto unk_id = integer(j, path, "unk_id", -1, -1, static_cast<int64_t>(vocab.size()) - 1);
      if (!unk_id.ok()) return unk_id.error();
      const double min_score = *std::min_element(m.scores.begin(), m.scores.end());
      m.unk_score = min_score - 10;
      if (*unk_id >= 0) {
        m.has_unk = true;
        m.unk_token = m.pieces[static_cast<size_t>(*unk_id)];
        m.scores[static_cast<size_t>(*unk_id)] = m.unk_score;
      } else {
        m.has_unk = false;
      }
      return {};
    }
    if (ty != "BPE" && ty != "WordPiece") {
      return err("model.type", fmt::format("unknown model type '{}'", ty));
    }
    if (!vocab.is_object()) return err("model.vocab", "expected an object {token: id}");
    m.vocab.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= kMaxId) {
        return err(fmt::format("model.vocab[\"{}\"]", it.key()),
                   fmt::format("expected an id in [0, {})", kMaxId));
      }
      m.vocab[it.key()] = static_cast<TokenId>(it->get<int64_t>());
    }
    if (ty == "WordPiece") {
      m.type = Model::Type::wordpiece;
      auto p = str(j, path, "continuing_subword_prefix", "##");
      if (!p.ok()) return p.error();
      m.continuing_subword_prefix = *p;
      auto mx = integer(j, path, "max_input_chars_per_word", 100, 0, int64_t{1} << 30);
      if (!mx.ok()) return mx.error();
      m.max_input_chars_per_word = static_cast<size_t>(*mx);
      return {};
    }
    m.type = Model::Type::bpe;
    for (auto [key, dst] : {std::pair<const char*, bool*>{"byte_fallback", &m.byte_fallback},
                            {"ignore_merges", &m.ignore_merges}}) {
      auto b = boolean(j, path, key, false);
      if (!b.ok()) return b.error();
      *dst = *b;
    }
    for (auto [key, dst] :
         {std::pair<const char*, std::string*>{"end_of_word_suffix", &m.end_of_word_suffix},
          {"continuing_subword_suffix", &m.continuing_subword_suffix}}) {
      auto s = str(j, path, key, "");
      if (!s.ok()) return s.error();
      *dst = *s;
    }
    auto merges = list(j, path, "merges");
    if (!merges.ok()) return merges.error();
    m.symbols.reserve(vocab.size() + merges->size() / 4 + 16);
    m.symbol_text.reserve(vocab.size() + merges->size() / 4 + 16);
    m.merges.reserve(merges->size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) m.intern(it.key());
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& e = *(*merges)[i];
      std::string a, b;
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) {
          return err(fmt::format("model.merges[{}]", i), "expected \"left right\"");
        }
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
        if (const size_t sp2 = b.find(' '); sp2 != std::string::npos) b.resize(sp2);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        return err(fmt::format("model.merges[{}]", i), "expected \"left right\" or [left, right]");
      }
      const int32_t ia = m.intern(a), ib = m.intern(b), ir = m.intern(a + b);
      // The first of duplicate merges keeps its rank.
      m.merges.emplace((static_cast<uint64_t>(ia) << 32) | static_cast<uint32_t>(ib),
                       std::make_pair(static_cast<uint32_t>(i), ir));
    }
    return {};
  }

  Result<void> added_tokens(const json& root, Spec& spec) const {
    auto f = field(root, "$", "added_tokens", false);
    if (!f.ok()) return f.error();
    if (!*f) return {};
    if (!(*f)->is_array()) return err("added_tokens", "expected an array");
    for (size_t i = 0; i < (*f)->size(); ++i) {
      const json& e = (**f)[i];
      const std::string path = fmt::format("added_tokens[{}]", i);
      AddedToken t;
      auto c = str(e, path, "content", "", true);
      if (!c.ok()) return c.error();
      if (c->empty()) return err(path + ".content", "is empty");
      t.content = *c;
      auto id = integer(e, path, "id", -1, 0, kMaxId - 1);
      if (!id.ok()) return id.error();
      if (!e.contains("id")) return err(path, "missing \"id\"");
      t.id = static_cast<TokenId>(*id);
      for (auto [key, dst] : {std::pair<const char*, bool*>{"single_word", &t.single_word},
                              {"lstrip", &t.lstrip},
                              {"rstrip", &t.rstrip},
                              {"special", &t.special}}) {
        auto b = boolean(e, path, key, false);
        if (!b.ok()) return b.error();
        *dst = *b;
      }
      auto n = boolean(e, path, "normalized", !t.special);
      if (!n.ok()) return n.error();
      t.normalized = *n;
      spec.added.push_back(std::move(t));
    }
    return {};
  }

  // tokenizer_config.json: "bos_token": "<s>" or {"content": "<s>", ...}.
  Result<std::string> config_token(const json& cfg, const char* key) const {
    if (!cfg.contains(key) || cfg[key].is_null()) return std::string();
    const json& v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      return v["content"].get<std::string>();
    }
    return err(std::string("tokenizer_config.json: ") + key,
               "expected a string or {\"content\": ...}");
  }

 private:
  std::string name_;
};

Result<json> parse_json(std::string_view text, const std::string& name) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Find the error position with the exception-reporting parser (only on the error path).
    try {
      const json again = json::parse(text.begin(), text.end());
      (void)again;
    } catch (const json::parse_error& e) {
      return Error{fmt::format("{}: invalid JSON at byte {}: {}", name, e.byte, e.what())};
    } catch (const json::exception& e) {
      // out_of_range: a number too large for a double (1e999).
      return Error{fmt::format("{}: invalid JSON: {}", name, e.what())};
    }
    return Error{fmt::format("{}: invalid JSON", name)};
  }
  return j;
}

}  // namespace

Result<std::unique_ptr<Spec>> parse(std::string_view tokenizer_json, std::string_view config_json,
                                    const std::string& name) {
  auto root_r = parse_json(tokenizer_json, name);
  if (!root_r.ok()) return root_r.error();
  const json& root = *root_r;
  Parser p(name);
  if (!root.is_object()) return p.err("$", "expected a JSON object");
  auto spec = std::make_unique<Spec>();
  spec->name = name;
  if (!root.contains("model")) return p.err("$", "missing \"model\"");
  KANDIL_CHECK_OK(p.model(root["model"], spec->model));
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    auto n = p.normalizer(root["normalizer"], "normalizer", 0);
    if (!n.ok()) return n.error();
    spec->normalizer = std::make_unique<Normalizer>(std::move(*n));
  }
  if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null()) {
    auto n = p.pre_tokenizer(root["pre_tokenizer"], "pre_tokenizer", 0);
    if (!n.ok()) return n.error();
    spec->pre_tokenizer = std::make_unique<PreTokenizer>(std::move(*n));
  }
  if (root.contains("post_processor") && !root["post_processor"].is_null()) {
    auto n = p.post_processor(root["post_processor"], "post_processor", 0);
    if (!n.ok()) return n.error();
    spec->post_processor = std::make_unique<PostProcessor>(std::move(*n));
  }
  if (root.contains("decoder") && !root["decoder"].is_null()) {
    auto n = p.decoder(root["decoder"], "decoder", 0);
    if (!n.ok()) return n.error();
    spec->decoder = std::make_unique<Decoder>(std::move(*n));
  }
  KANDIL_CHECK_OK(p.added_tokens(root, *spec));
  // Ids index the token tables: they must be (roughly) dense, not scattered up to kMaxId.
  int64_t max_id = static_cast<int64_t>(spec->model.pieces.size()) - 1;
  for (const auto& [text, id] : spec->model.vocab) max_id = std::max<int64_t>(max_id, id);
  for (const AddedToken& t : spec->added) max_id = std::max<int64_t>(max_id, t.id);
  const auto n_tokens = static_cast<int64_t>(spec->model.vocab.size() + spec->model.pieces.size() +
                                             spec->added.size());
  if (max_id > 2 * n_tokens + 1024) {
    return p.err("model.vocab",
                 fmt::format("token ids are not dense: id {} for {} tokens", max_id, n_tokens));
  }

  if (!config_json.empty()) {
    const std::string cname = name + " (tokenizer_config.json)";
    auto cfg_r = parse_json(config_json, cname);
    if (!cfg_r.ok()) return cfg_r.error();
    const json& cfg = *cfg_r;
    Parser cp(cname);
    if (!cfg.is_object()) return cp.err("$", "expected a JSON object");
    auto bos = cp.config_token(cfg, "bos_token");
    if (!bos.ok()) return bos.error();
    auto eos = cp.config_token(cfg, "eos_token");
    if (!eos.ok()) return eos.error();
    spec->bos_token = *bos;
    spec->eos_token = *eos;
    auto clean = cp.boolean(cfg, "$", "clean_up_tokenization_spaces", true);
    if (!clean.ok()) return clean.error();
    spec->clean_up_tokenization_spaces = *clean;
    auto rs = cp.boolean(cfg, "$", "remove_space", false);
    if (!rs.ok()) return rs.error();
    spec->remove_space = *rs;
    auto lc = cp.boolean(cfg, "$", "do_lowercase_and_remove_accent", false);
    if (!lc.ok()) return lc.error();
    spec->do_lowercase_and_remove_accent = *lc;
  }
  return spec;
}

}  // namespace kandil::tok::hf
