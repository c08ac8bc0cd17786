// tokenizer.json post-processors (TemplateProcessing, BertProcessing, RobertaProcessing,
// ByteLevel, Sequence) and decoders (ByteLevel, WordPiece, Metaspace, BPEDecoder, Replace, Fuse,
// Strip, ByteFallback, CTC, Sequence), on token strings as in tokenizers.js.
#include "base/utf8.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/unicode.h"

namespace kandil::tok::hf {

void PostProcessor::apply(Pieces& tokens, bool add_special) const {
  switch (type) {
    case Type::template_processing: {
      Pieces out;
      for (const auto& [special, token] : single) {
        if (!special) {
          out.insert(out.end(), tokens.begin(), tokens.end());
        } else if (add_special) {
          out.push_back(token);
        }
      }
      tokens.swap(out);
      return;
    }
    case Type::bert:
    case Type::roberta:
      if (add_special) {
        tokens.insert(tokens.begin(), cls);
        tokens.push_back(sep);
      }
      return;
    case Type::byte_level:
      return;
    case Type::sequence:
      for (const PostProcessor& p : children) p.apply(tokens, add_special);
      return;
  }
}

namespace {

// <0xXX> -> the byte, else -1.
int byte_token(std::string_view t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// The bytes a byte-level token string stands for (characters outside the table become 0, as
// in tokenizers.js).
std::string byte_level_bytes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const int b = unicode_to_byte(utf8::decode(s, i));
    out += static_cast<char>(b < 0 ? 0 : b);
  }
  return out;
}

std::string replace_literal(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t prev = 0;
  for (size_t p = s.find(from); p != std::string_view::npos; p = s.find(from, prev)) {
    out.append(s.substr(prev, p - prev));
    out.append(to);
    prev = p + from.size();
  }
  out.append(s.substr(prev));
  return out;
}

}  // namespace

void Decoder::apply(Pieces& tokens, const std::unordered_map<std::string, TokenId>& added) const {
  switch (type) {
    case Type::byte_level: {
      Pieces out;
      std::string cur;
      bool have = false;
      for (const std::string& t : tokens) {
        if (added.count(t)) {
          if (have) out.push_back(utf8::sanitize(cur));
          cur.clear();
          have = false;
          out.push_back(t);
        } else {
          cur += byte_level_bytes(t);
          have = true;
        }
      }
      if (have) out.push_back(utf8::sanitize(cur));
      tokens.swap(out);
      return;
    }
    case Type::word_piece:
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string& t = tokens[i];
        if (i != 0) {
          if (!prefix.empty() && t.compare(0, prefix.size(), prefix) == 0) {
            t.erase(0, prefix.size());
          } else {
            t.insert(t.begin(), ' ');
          }
        }
        if (cleanup) t = clean_up_tokenization(std::move(t));
      }
      return;
    case Type::metaspace:
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_literal(tokens[i], replacement, " ");
        if (i == 0 && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
      }
      return;
    case Type::bpe:
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_literal(tokens[i], suffix, i + 1 == tokens.size() ? "" : " ");
      }
      return;
    case Type::replace:
      for (std::string& t : tokens) t = pattern.replace_all(t, content);
      return;
    case Type::fuse: {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens.assign(1, std::move(all));
      return;
    }
    case Type::strip:
      for (std::string& t : tokens) {
        const std::vector<uint32_t> cps = uni::decode(t);
        const std::vector<uint32_t> c = uni::decode(content);
        const bool single = c.size() == 1;
        size_t a = 0, b = cps.size();
        for (size_t i = 0; i < start && single && a < cps.size() && cps[a] == c[0]; ++i) ++a;
        for (size_t i = 0; i < stop && single && b > a && cps[b - 1] == c[0]; ++i) --b;
        t = uni::encode(std::vector<uint32_t>(cps.begin() + static_cast<std::ptrdiff_t>(a),
                                              cps.begin() + static_cast<std::ptrdiff_t>(b)));
      }
      return;
    case Type::byte_fallback: {
      Pieces out;
      std::string bytes;
      for (const std::string& t : tokens) {
        const int b = byte_token(t);
        if (b >= 0) {
          bytes += static_cast<char>(b);
          continue;
        }
        if (!bytes.empty()) out.push_back(utf8::sanitize(bytes));
        bytes.clear();
        out.push_back(t);
      }
      if (!bytes.empty()) out.push_back(utf8::sanitize(bytes));
      tokens.swap(out);
      return;
    }
    case Type::ctc: {
      std::string text;
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (i > 0 && tokens[i] == tokens[i - 1]) continue;
        if (tokens[i] != pad_token) text += tokens[i];
      }
      if (cleanup) {
        text = replace_literal(clean_up_tokenization(std::move(text)), word_delimiter_token, " ");
        text = std::string(uni::trim_start(uni::trim_end(text)));
      }
      tokens.assign(1, std::move(text));
      return;
    }
    case Type::sequence:
      for (const Decoder& d : children) d.apply(tokens, added);
      return;
  }
}

bool Decoder::contains(Type t) const {
  if (type == t) return true;
  for (const Decoder& d : children) {
    if (d.contains(t)) return true;
  }
  return false;
}

}  // namespace kandil::tok::hf
