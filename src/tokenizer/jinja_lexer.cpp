// Lexer of the Jinja-subset interpreter. It follows @huggingface/jinja's tokenizer with
// trim_blocks and lstrip_blocks on (as Hugging Face renders chat templates): the same
// preprocessing (one trailing newline dropped, lstrip/trim of block tags, {% generation %} tags
// removed), the same whitespace control ({%- -%} {{- -}} {#- -#}) and the same token rules, so
// the output matches byte for byte. Lines are tracked through the preprocessing for errors.
#include <cstring>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace kandil::jinja {

const char* tok_name(Tok t) {
  static const char* const names[] = {"text",       "number",
                                      "string",     "identifier",
                                      "'='",        "'('",
                                      "')'",        "'{%'",
                                      "'%}'",       "'{{'",
                                      "'}}'",       "'['",
                                      "']'",        "'{'",
                                      "'}'",        "','",
                                      "'.'",        "':'",
                                      "'|'",        "operator",
                                      "operator",   "'**'",
                                      "comparison", "unary operator",
                                      "comment",    "end of template"};
  return names[static_cast<int>(t)];
}

namespace {

// Text with the source line of every byte.
struct Src {
  std::string s;
  std::vector<int> line;
  void push(char c, int l) {
    s += c;
    line.push_back(l);
  }
};

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
std::string sign_and(char sign, const std::string& num) {
  std::string out(1, sign);
  out.append(num);
  return out;
}

bool is_tag_char(char c) { return c == '#' || c == '%' || c == '-'; }
bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}

Src preprocess(const std::string& source) {
  Src in;
  int line = 1;
  for (char c : source) {
    in.push(c, line);
    if (c == '\n') ++line;
  }
  if (!in.s.empty() && in.s.back() == '\n') {
    in.s.pop_back();
    in.line.pop_back();
  }
  // lstrip_blocks: spaces and tabs before a block tag at the start of a line go.
  Src a;
  for (size_t k = 0; k < in.s.size();) {
    if (k == 0 || in.s[k - 1] == '\n' || in.s[k - 1] == '\r') {
      size_t j = k;
      while (j < in.s.size() && (in.s[j] == ' ' || in.s[j] == '\t')) ++j;
      if (j + 1 < in.s.size() && in.s[j] == '{' && is_tag_char(in.s[j + 1]) && j > k) {
        k = j;
      }
    }
    a.push(in.s[k], in.line[k]);
    ++k;
  }
  // trim_blocks: the newline right after a block tag goes.
  Src b;
  for (size_t k = 0; k < a.s.size(); ++k) {
    if (a.s[k] == '\n' && k >= 2 && a.s[k - 1] == '}' && is_tag_char(a.s[k - 2])) {
      continue;
    }
    b.push(a.s[k], a.line[k]);
  }
  // {% generation %} / {% endgeneration %} tags are dropped (with their whitespace control).
  Src out;
  const std::string& s = b.s;
  size_t last = 0;
  auto copy = [&](size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) out.push(s[k], b.line[k]);
  };
  for (size_t p = s.find("{%"); p != std::string::npos; p = s.find("{%", p + 1)) {
    size_t q = p + 2;
    const bool lstrip = q < s.size() && s[q] == '-';
    if (lstrip) ++q;
    while (q < s.size() && is_ascii_space(s[q])) ++q;
    if (s.compare(q, 3, "end") == 0 && s.compare(q + 3, 10, "generation") == 0) q += 3;
    if (s.compare(q, 10, "generation") != 0) continue;
    q += 10;
    while (q < s.size() && is_ascii_space(s[q])) ++q;
    const bool rstrip = q < s.size() && s[q] == '-';
    if (rstrip) ++q;
    if (s.compare(q, 2, "%}") != 0) continue;
    q += 2;
    size_t after_end = q;
    while (after_end < s.size() && is_ascii_space(s[after_end])) ++after_end;
    size_t end = p;
    while (lstrip && end > last && is_ascii_space(s[end - 1])) --end;
    copy(last, end);
    if (!rstrip) copy(q, after_end);
    last = after_end;
    p = after_end - 1;
  }
  copy(last, s.size());
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& source) : src_(preprocess(source)), n_(src_.s.size()) {}

  std::vector<Token> run() {
    const std::string& s = src_.s;
    while (pos_ < n_) {
      const bool none = tokens_.empty();
      const Tok last = none ? Tok::End : tokens_.back().type;
      if (none || last == Tok::CloseStatement || last == Tok::CloseExpression ||
          last == Tok::Comment) {
        size_t end = pos_;
        while (true) {
          end = s.find('{', end);
          if (end == std::string::npos) {
            end = n_;
            break;
          }
          const char next = at(end + 1);
          if (next == '%' || next == '{' || next == '#') break;
          ++end;
        }
        if (end > pos_) {
          push(Tok::Text, s.substr(pos_, end - pos_));
          pos_ = end;
          continue;
        }
      }
      if (s[pos_] == '{') {
        const char next = at(pos_ + 1);
        if (next == '#') {
          lex_comment();
          continue;
        }
        if (at(pos_ + 2) == '-' && (next == '%' || next == '{')) {
          strip_trailing_whitespace();
          push(next == '%' ? Tok::OpenStatement : Tok::OpenExpression, next == '%' ? "{%" : "{{");
          if (next == '{') curly_depth_ = 0;
          pos_ += 3;
          continue;
        }
      }
      consume_while(is_ascii_space);
      const char c = s[pos_];
      if (c == '-' && at(pos_ + 2) == '}' && (at(pos_ + 1) == '%' || at(pos_ + 1) == '}')) {
        const bool stmt = at(pos_ + 1) == '%';
        push(stmt ? Tok::CloseStatement : Tok::CloseExpression, stmt ? "%}" : "}}");
        pos_ += 3;
        skip_leading_whitespace();
        continue;
      }
      if (c == '-' || c == '+') {
        if (none || last == Tok::Text) fail(std::string("Unexpected character: ") + c);
        if (last != Tok::Identifier && last != Tok::Number && last != Tok::String &&
            last != Tok::CloseParen && last != Tok::CloseSquare) {
          const size_t start = pos_;
          ++pos_;
          std::string num = consume_while(is_digit);
          if (!num.empty() && at(pos_) == '.' && is_digit(at(pos_ + 1))) {
            ++pos_;
            num += '.';
            num += consume_while(is_digit);
          }
          tokens_.push_back(
              Token{num.empty() ? Tok::Unary : Tok::Number, sign_and(c, num), line_at(start)});
          continue;
        }
      }
      if (lex_operator()) continue;
      if (c == '\'' || c == '"') {
        const size_t start = pos_;
        ++pos_;
        std::string str = consume_string(c);
        tokens_.push_back(Token{Tok::String, std::move(str), line_at(start)});
        ++pos_;
        continue;
      }
      if (is_digit(c)) {
        const size_t start = pos_;
        std::string num = consume_while(is_digit);
        if (last != Tok::Dot && at(pos_) == '.' && is_digit(at(pos_ + 1))) {
          ++pos_;
          num += '.';
          num += consume_while(is_digit);
        }
        tokens_.push_back(Token{Tok::Number, std::move(num), line_at(start)});
        continue;
      }
      if (is_word(c)) {
        const size_t start = pos_;
        std::string word = consume_while(is_word);
        tokens_.push_back(Token{Tok::Identifier, std::move(word), line_at(start)});
        continue;
      }
      fail(std::string("Unexpected character: ") + c);
    }
    tokens_.push_back(Token{Tok::End, "", line_at(n_)});
    return std::move(tokens_);
  }

 private:
  char at(size_t k) const { return k < n_ ? src_.s[k] : '\0'; }
  int line_at(size_t k) const {
    if (src_.line.empty()) return 1;
    return k < n_ ? src_.line[k] : src_.line.back();
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw JinjaError(message, line_at(pos_));
  }
  void push(Tok t, std::string v) { tokens_.push_back(Token{t, std::move(v), line_at(pos_)}); }

  template <class Pred>
  std::string consume_while(Pred pred) {
    const size_t start = pos_;
    while (pos_ < n_ && pred(src_.s[pos_])) {
      if (++pos_ >= n_) fail("Unexpected end of input");
    }
    return src_.s.substr(start, pos_ - start);
  }

  std::string consume_string(char quote) {
    std::string out;
    while (true) {
      if (pos_ >= n_) fail("Unexpected end of input (unterminated string)");
      const char c = src_.s[pos_];
      if (c == quote) break;
      ++pos_;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= n_) fail("Unexpected end of input (unterminated string)");
      const char e = src_.s[pos_++];
      if (e == 'x' || e == 'u') {
        const size_t len = e == 'x' ? 2 : 4;
        uint32_t cp = 0;
        if (pos_ + len > n_) fail(std::string("Invalid hexadecimal escape sequence: \\") + e);
        for (size_t k = 0; k < len; ++k) {
          const char h = src_.s[pos_ + k];
          const int d = is_digit(h)              ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
          if (d < 0) fail(std::string("Invalid hexadecimal escape sequence: \\") + e);
          cp = cp * 16 + static_cast<uint32_t>(d);
        }
        append_utf8(out, cp);
        pos_ += len;
        continue;
      }
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\'':
        case '"':
        case '\\':
          out += e;
          break;
        default:
          fail(std::string("Unexpected escaped character: ") + e);
      }
    }
    return out;
  }

  void strip_trailing_whitespace() {
    if (!tokens_.empty() && tokens_.back().type == Tok::Text) {
      tokens_.back().value = js_trim(tokens_.back().value, false, true);
      if (tokens_.back().value.empty()) tokens_.pop_back();
    }
  }

  void skip_leading_whitespace() {
    while (size_t len = js_space_at(src_.s, pos_)) pos_ += len;
  }

  void lex_comment() {
    pos_ += 2;
    const bool strip_before = at(pos_) == '-';
    if (strip_before) ++pos_;
    const size_t end = src_.s.find("#}", pos_);
    if (end == std::string::npos) fail("Missing end of comment tag");
    std::string comment = src_.s.substr(pos_, end - pos_);
    const bool strip_after = !comment.empty() && comment.back() == '-';
    if (strip_after) comment.pop_back();
    if (strip_before) strip_trailing_whitespace();
    push(Tok::Comment, std::move(comment));
    pos_ = end + 2;
    if (strip_after) skip_leading_whitespace();
  }

  bool lex_operator() {
    static const struct {
      const char* seq;
      Tok type;
    } table[] = {
        {"{%", Tok::OpenStatement},  {"%}", Tok::CloseStatement},
        {"{{", Tok::OpenExpression}, {"}}", Tok::CloseExpression},
        {"(", Tok::OpenParen},       {")", Tok::CloseParen},
        {"{", Tok::OpenCurly},       {"}", Tok::CloseCurly},
        {"[", Tok::OpenSquare},      {"]", Tok::CloseSquare},
        {",", Tok::Comma},           {".", Tok::Dot},
        {":", Tok::Colon},           {"|", Tok::Pipe},
        {"<=", Tok::Comparison},     {">=", Tok::Comparison},
        {"==", Tok::Comparison},     {"!=", Tok::Comparison},
        {"<", Tok::Comparison},      {">", Tok::Comparison},
        {"+", Tok::Additive},        {"-", Tok::Additive},
        {"~", Tok::Additive},        {"**", Tok::Power},
        {"*", Tok::Multiplicative},  {"//", Tok::Multiplicative},
        {"/", Tok::Multiplicative},  {"%", Tok::Multiplicative},
        {"=", Tok::Equals},
    };
    for (const auto& rule : table) {
      if (rule.type == Tok::CloseExpression && curly_depth_ > 0) continue;
      const size_t len = std::strlen(rule.seq);
      if (src_.s.compare(pos_, len, rule.seq) != 0) continue;
      push(rule.type, rule.seq);
      if (rule.type == Tok::OpenExpression) {
        curly_depth_ = 0;
      } else if (rule.type == Tok::OpenCurly) {
        ++curly_depth_;
      } else if (rule.type == Tok::CloseCurly) {
        --curly_depth_;
      }
      pos_ += len;
      return true;
    }
    return false;
  }

  Src src_;
  size_t n_;
  size_t pos_ = 0;
  int curly_depth_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

}  // namespace kandil::jinja
