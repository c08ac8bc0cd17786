// Parser of the Jinja-subset interpreter: recursive descent with @huggingface/jinja's grammar and
// precedence (or < and < not < comparison/in < + - ~ < * / // % < ** < is-tests < |filters <
// unary sign < call/member < primary). Nesting is limited so hostile input cannot exhaust the
// stack; errors name the line and what was expected.
#include <cstdlib>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace kandil::jinja {
namespace {

constexpr int kMaxDepth = 200;

NodePtr make(NodeKind kind, int line) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  n->line = line;
  return n;
}

// Marks which of kwargs / varargs a macro body mentions (they then become arguments).
void scan_specials(const Node* n, Node* macro) {
  if (!n) return;
  if (n->kind == NodeKind::Identifier) {
    if (n->str == "kwargs") macro->uses_kwargs = true;
    if (n->str == "varargs") macro->uses_varargs = true;
    if (n->str == "caller") macro->uses_caller = true;
  }
  scan_specials(n->x.get(), macro);
  scan_specials(n->y.get(), macro);
  scan_specials(n->z.get(), macro);
  for (const auto& c : n->a) scan_specials(c.get(), macro);
  for (const auto& c : n->b) scan_specials(c.get(), macro);
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Program run() {
    Program p;
    while (peek().type != Tok::End) p.body.push_back(parse_any());
    return p;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : parser(p) {
      if (++parser->depth_ > kMaxDepth) {
        throw JinjaError(
            "template nests too deeply (more than " + std::to_string(kMaxDepth) + " levels)",
            parser->peek().line);
      }
    }
    ~DepthGuard() { --parser->depth_; }
    Parser* parser;
  };

  const Token& peek(size_t ahead = 0) const {
    const size_t k = cur_ + ahead;
    return k < t_.size() ? t_[k] : t_.back();
  }
  const Token& next() {
    const Token& t = peek();
    if (cur_ < t_.size() - 1) ++cur_;
    return t;
  }
  bool is(Tok type) const { return peek().type == type; }
  bool is_ident(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == Tok::Identifier && peek(ahead).value == name;
  }
  bool is_statement(std::initializer_list<const char*> names) const {
    if (peek().type != Tok::OpenStatement || peek(1).type != Tok::Identifier) return false;
    for (const char* n : names) {
      if (peek(1).value == n) return true;
    }
    return false;
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw JinjaError(message, peek().line);
  }
  std::string describe(const Token& t) const {
    if (t.type == Tok::End) return "end of template";
    if (t.type == Tok::Text) return "text";
    return "'" + t.value + "'";
  }
  const Token& expect(Tok type, const char* what) {
    if (!is(type)) fail(std::string("expected ") + what + ", got " + describe(peek()));
    return next();
  }
  void expect_end_tag(const char* name) {
    expect(Tok::OpenStatement, (std::string("'{% ") + name + " %}'").c_str());
    if (!is_ident(name)) fail(std::string("expected '") + name + "', got " + describe(peek()));
    next();
    expect(Tok::CloseStatement, "'%}'");
  }
  // Body of a block until one of `ends` (not consumed).
  void parse_body(NodeList& out, std::initializer_list<const char*> ends, const char* block,
                  int open_line) {
    while (!is_statement(ends)) {
      if (is(Tok::End)) {
        throw JinjaError(std::string("unexpected end of template: '") + block +
                             "' block opened on line " + std::to_string(open_line) +
                             " is never closed",
                         peek().line);
      }
      out.push_back(parse_any());
    }
  }

  NodePtr parse_any() {
    DepthGuard guard(this);
    const Token& t = peek();
    switch (t.type) {
      case Tok::Comment: {
        next();
        return make(NodeKind::Comment, t.line);
      }
      case Tok::Text: {
        auto n = make(NodeKind::Text, t.line);
        n->str = next().value;
        return n;
      }
      case Tok::OpenStatement:
        return parse_statement();
      case Tok::OpenExpression: {
        next();
        auto e = parse_expression();
        expect(Tok::CloseExpression, "'}}'");
        return e;
      }
      default:
        fail("unexpected " + describe(t));
    }
  }

  NodePtr parse_statement() {
    const int line = next().line;  // {%
    if (!is(Tok::Identifier)) fail("expected a statement name after '{%', got " + describe(peek()));
    const std::string name = next().value;
    if (name == "set") return parse_set(line);
    if (name == "if") {
      auto n = parse_if(line);
      expect_end_tag("endif");
      return n;
    }
    if (name == "for") {
      auto n = parse_for(line);
      expect_end_tag("endfor");
      return n;
    }
    if (name == "macro") {
      auto n = parse_macro(line);
      expect_end_tag("endmacro");
      return n;
    }
    if (name == "break" || name == "continue") {
      expect(Tok::CloseStatement, "'%}'");
      return make(name == "break" ? NodeKind::Break : NodeKind::Continue, line);
    }
    if (name == "filter") {
      auto n = make(NodeKind::FilterBlock, line);
      auto filter = parse_primary();
      if (filter->kind == NodeKind::Identifier && is(Tok::OpenParen)) {
        filter = parse_call(std::move(filter));
      }
      n->x = std::move(filter);
      expect(Tok::CloseStatement, "'%}'");
      parse_body(n->a, {"endfilter"}, "filter", line);
      expect_end_tag("endfilter");
      return n;
    }
    if (name == "call") {
      auto n = make(NodeKind::CallBlock, line);
      if (is(Tok::OpenParen)) n->a = parse_args(true);
      auto callee = parse_primary();
      if (callee->kind != NodeKind::Identifier) fail("expected a macro name after 'call'");
      auto call = make(NodeKind::Call, line);
      call->x = std::move(callee);
      call->a = parse_args(false);
      n->x = std::move(call);
      expect(Tok::CloseStatement, "'%}'");
      parse_body(n->b, {"endcall"}, "call", line);
      expect_end_tag("endcall");
      for (const auto& p : n->a) scan_specials(p->x.get(), n.get());
      for (const auto& b : n->b) scan_specials(b.get(), n.get());
      return n;
    }
    throw JinjaError("unsupported statement '" + name + "'", line);
  }

  NodePtr parse_set(int line) {
    auto n = make(NodeKind::Set, line);
    n->x = parse_expression_sequence(false);
    if (is(Tok::Equals)) {
      next();
      n->y = parse_expression_sequence(false);
    } else {
      expect(Tok::CloseStatement, "'=' or '%}'");
      parse_body(n->a, {"endset"}, "set", line);
      expect(Tok::OpenStatement, "'{%'");
      next();  // endset
    }
    expect(Tok::CloseStatement, "'%}'");
    return n;
  }

  NodePtr parse_if(int line) {
    auto n = make(NodeKind::If, line);
    n->x = parse_expression();
    expect(Tok::CloseStatement, "'%}'");
    parse_body(n->a, {"elif", "else", "endif"}, "if", line);
    if (is_statement({"elif"})) {
      const int l = peek().line;
      next();
      next();
      n->b.push_back(parse_if(l));
    } else if (is_statement({"else"})) {
      next();
      next();
      expect(Tok::CloseStatement, "'%}'");
      parse_body(n->b, {"endif"}, "if", line);
    }
    return n;
  }

  NodePtr parse_for(int line) {
    auto n = make(NodeKind::For, line);
    n->x = parse_expression_sequence(true);
    if (n->x->kind != NodeKind::Identifier && n->x->kind != NodeKind::TupleLit) {
      fail("expected a loop variable name or tuple after 'for'");
    }
    if (!is_ident("in")) fail("expected 'in' after the loop variable, got " + describe(peek()));
    next();
    auto iter = parse_expression();
    if (iter->kind == NodeKind::Select) {
      n->y = std::move(iter->x);
      n->z = std::move(iter->y);
    } else {
      n->y = std::move(iter);
    }
    expect(Tok::CloseStatement, "'%}'");
    parse_body(n->a, {"endfor", "else"}, "for", line);
    if (is_statement({"else"})) {
      next();
      next();
      expect(Tok::CloseStatement, "'%}'");
      parse_body(n->b, {"endfor"}, "for", line);
    }
    return n;
  }

  NodePtr parse_macro(int line) {
    auto n = make(NodeKind::Macro, line);
    auto name = parse_primary();
    if (name->kind != NodeKind::Identifier) fail("expected a macro name");
    n->str = name->str;
    n->a = parse_args(true);
    expect(Tok::CloseStatement, "'%}'");
    parse_body(n->b, {"endmacro"}, "macro", line);
    for (const auto& p : n->a) scan_specials(p->x.get(), n.get());
    for (const auto& s : n->b) scan_specials(s.get(), n.get());
    return n;
  }

  NodePtr parse_expression_sequence(bool primary) {
    const int line = peek().line;
    auto first = primary ? parse_primary() : parse_expression();
    if (!is(Tok::Comma)) return first;
    auto tuple = make(NodeKind::TupleLit, line);
    tuple->a.push_back(std::move(first));
    while (is(Tok::Comma)) {
      next();
      tuple->a.push_back(primary ? parse_primary() : parse_expression());
    }
    return tuple;
  }

  NodePtr parse_expression() {
    DepthGuard guard(this);
    auto a = parse_or();
    if (is_ident("if")) {
      const int line = next().line;
      auto test = parse_or();
      if (is_ident("else")) {
        next();
        auto n = make(NodeKind::Ternary, line);
        n->x = std::move(test);
        n->y = std::move(a);
        n->z = parse_expression();
        return n;
      }
      auto n = make(NodeKind::Select, line);
      n->x = std::move(a);
      n->y = std::move(test);
      return n;
    }
    return a;
  }

  NodePtr binary(std::string op, NodePtr l, NodePtr r, int line) {
    auto n = make(NodeKind::Binary, line);
    n->str = std::move(op);
    n->x = std::move(l);
    n->y = std::move(r);
    return n;
  }

  NodePtr parse_or() {
    auto left = parse_and();
    while (is_ident("or")) {
      const int line = next().line;
      left = binary("or", std::move(left), parse_and(), line);
    }
    return left;
  }
  NodePtr parse_and() {
    auto left = parse_not();
    while (is_ident("and")) {
      const int line = next().line;
      left = binary("and", std::move(left), parse_not(), line);
    }
    return left;
  }
  NodePtr parse_not() {
    if (is_ident("not")) {
      DepthGuard guard(this);
      auto n = make(NodeKind::Unary, next().line);
      n->str = "not";
      n->x = parse_not();
      return n;
    }
    return parse_comparison();
  }
  NodePtr parse_comparison() {
    auto left = parse_additive();
    while (true) {
      std::string op;
      const int line = peek().line;
      if (is_ident("not") && is_ident("in", 1)) {
        op = "not in";
        next();
        next();
      } else if (is_ident("in")) {
        op = "in";
        next();
      } else if (is(Tok::Comparison)) {
        op = next().value;
      } else {
        break;
      }
      left = binary(op, std::move(left), parse_additive(), line);
    }
    return left;
  }
  NodePtr parse_additive() {
    auto left = parse_multiplicative();
    while (is(Tok::Additive)) {
      const Token& op = next();
      left = binary(op.value, std::move(left), parse_multiplicative(), op.line);
    }
    return left;
  }
  NodePtr parse_multiplicative() {
    auto left = parse_power();
    while (is(Tok::Multiplicative)) {
      const Token& op = next();
      left = binary(op.value, std::move(left), parse_power(), op.line);
    }
    return left;
  }
  NodePtr parse_power() {
    auto left = parse_test();
    while (is(Tok::Power)) {
      const Token& op = next();
      left = binary(op.value, std::move(left), parse_test(), op.line);
    }
    return left;
  }
  NodePtr parse_test() {
    auto operand = parse_filter();
    while (is_ident("is")) {
      const int line = next().line;
      auto n = make(NodeKind::Test, line);
      if (is_ident("not")) {
        next();
        n->flag = true;
      }
      auto test = parse_primary();
      if (test->kind != NodeKind::Identifier) fail("expected a test name after 'is'");
      n->str = test->str;
      n->x = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr parse_filter() {
    auto operand = parse_unary_sign();
    while (is(Tok::Pipe)) {
      const int line = next().line;
      auto filter = parse_primary();
      if (filter->kind != NodeKind::Identifier) fail("expected a filter name after '|'");
      if (is(Tok::OpenParen)) filter = parse_call(std::move(filter));
      auto n = make(NodeKind::Filter, line);
      n->x = std::move(operand);
      n->y = std::move(filter);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr parse_unary_sign() {
    const Token& t = peek();
    if ((t.type == Tok::Unary || t.type == Tok::Additive) && (t.value == "-" || t.value == "+")) {
      DepthGuard guard(this);
      auto n = make(NodeKind::Unary, t.line);
      n->str = next().value;
      n->x = parse_unary_sign();
      return n;
    }
    auto member = parse_member(parse_primary());
    if (is(Tok::OpenParen)) return parse_call(std::move(member));
    return member;
  }
  NodePtr parse_call(NodePtr callee) {
    DepthGuard guard(this);
    auto n = make(NodeKind::Call, peek().line);
    n->x = std::move(callee);
    n->a = parse_args(false);
    NodePtr e = parse_member(std::move(n));
    if (is(Tok::OpenParen)) e = parse_call(std::move(e));
    return e;
  }
  NodeList parse_args(bool parameters) {
    expect(Tok::OpenParen, "'('");
    NodeList args;
    bool saw_keyword = false, saw_spread = false;
    while (!is(Tok::CloseParen)) {
      if (is(Tok::End)) fail("expected ')' to close the argument list");
      const bool kw_spread = is(Tok::Power);
      const bool spread = is(Tok::Multiplicative) && peek().value == "*";
      if (parameters && (kw_spread || spread)) {
        fail("argument unpacking is not allowed in parameter declarations");
      }
      const int line = peek().line;
      if (kw_spread) {
        next();
        auto n = make(NodeKind::KwSpread, line);
        n->x = parse_expression();
        args.push_back(std::move(n));
        if (is(Tok::Comma)) next();
        if (!is(Tok::CloseParen)) fail("'**' must be applied to the final argument");
        break;
      }
      NodePtr arg;
      if (spread) {
        if (saw_spread) fail("only one '*' argument unpacking is allowed");
        saw_spread = true;
        next();
        arg = make(NodeKind::Spread, line);
        arg->x = parse_expression();
      } else {
        arg = parse_expression();
        if (is(Tok::Equals)) {
          next();
          if (arg->kind != NodeKind::Identifier) fail("expected an identifier before '='");
          auto kw = make(NodeKind::KwArg, line);
          kw->str = arg->str;
          kw->x = parse_expression();
          arg = std::move(kw);
        }
        if (parameters) {
          if (arg->kind != NodeKind::Identifier && arg->kind != NodeKind::KwArg) {
            fail("expected a parameter name");
          }
          for (const auto& p : args) {
            if (p->str == arg->str) fail("duplicate parameter name: " + arg->str);
          }
        }
        if (arg->kind == NodeKind::KwArg) {
          saw_keyword = true;
        } else if (saw_keyword) {
          fail(parameters ? "non-default argument follows default argument"
                          : "positional arguments must come before keyword arguments");
        } else if (saw_spread) {
          fail("positional arguments must not follow '*' argument unpacking");
        }
      }
      args.push_back(std::move(arg));
      if (is(Tok::Comma)) next();
    }
    next();  // )
    return args;
  }
  NodePtr parse_member(NodePtr object) {
    while (is(Tok::Dot) || is(Tok::OpenSquare)) {
      DepthGuard guard(this);
      const Token& op = next();
      auto n = make(NodeKind::Member, op.line);
      n->x = std::move(object);
      if (op.type == Tok::OpenSquare) {
        n->flag = true;
        n->y = parse_subscript();
        expect(Tok::CloseSquare, "']'");
      } else {
        n->y = parse_primary();
        if (n->y->kind != NodeKind::Identifier && n->y->kind != NodeKind::IntLit) {
          fail("expected an attribute name or integer after '.'");
        }
      }
      object = std::move(n);
    }
    return object;
  }
  NodePtr parse_subscript() {
    const int line = peek().line;
    std::vector<NodePtr> parts;
    bool slice = false;
    while (!is(Tok::CloseSquare)) {
      if (is(Tok::End)) fail("expected ']'");
      if (is(Tok::Colon)) {
        parts.push_back(nullptr);
        next();
        slice = true;
      } else {
        parts.push_back(parse_expression());
        if (is(Tok::Colon)) {
          next();
          slice = true;
        }
      }
    }
    if (parts.empty()) fail("expected an index or slice inside '[]'");
    if (!slice) return std::move(parts[0]);
    if (parts.size() > 3) fail("a slice takes at most three parts");
    auto n = make(NodeKind::Slice, line);
    n->x = std::move(parts[0]);
    if (parts.size() > 1) n->y = std::move(parts[1]);
    if (parts.size() > 2) n->z = std::move(parts[2]);
    return n;
  }

  NodePtr parse_primary() {
    DepthGuard guard(this);
    const Token& t = next();
    switch (t.type) {
      case Tok::Number: {
        if (t.value.find('.') != std::string::npos) {
          auto n = make(NodeKind::FloatLit, t.line);
          n->f = std::strtod(t.value.c_str(), nullptr);
          return n;
        }
        const double d = std::strtod(t.value.c_str(), nullptr);
        if (d > 9.007199254740992e15 || d < -9.007199254740992e15) {
          throw JinjaError("integer literal out of range: " + t.value, t.line);
        }
        auto n = make(NodeKind::IntLit, t.line);
        n->i = static_cast<int64_t>(d);
        return n;
      }
      case Tok::String: {
        auto n = make(NodeKind::StringLit, t.line);
        n->str = t.value;
        while (is(Tok::String)) n->str += next().value;
        return n;
      }
      case Tok::Identifier: {
        auto n = make(NodeKind::Identifier, t.line);
        n->str = t.value;
        return n;
      }
      case Tok::OpenParen: {
        auto e = parse_expression_sequence(false);
        expect(Tok::CloseParen, "')'");
        return e;
      }
      case Tok::OpenSquare: {
        auto n = make(NodeKind::ArrayLit, t.line);
        while (!is(Tok::CloseSquare)) {
          if (is(Tok::End)) fail("expected ']' to close the list");
          n->a.push_back(parse_expression());
          if (is(Tok::Comma)) next();
        }
        next();
        return n;
      }
      case Tok::OpenCurly: {
        auto n = make(NodeKind::ObjectLit, t.line);
        while (!is(Tok::CloseCurly)) {
          if (is(Tok::End)) fail("expected '}' to close the mapping");
          n->a.push_back(parse_expression());
          expect(Tok::Colon, "':' between key and value");
          n->b.push_back(parse_expression());
          if (is(Tok::Comma)) next();
        }
        next();
        return n;
      }
      default:
        throw JinjaError("unexpected " + describe(t) + " in an expression", t.line);
    }
  }

  const std::vector<Token>& t_;
  size_t cur_ = 0;
  int depth_ = 0;
};

}  // namespace

Program parse_tokens(const std::vector<Token>& tokens) { return Parser(tokens).run(); }

}  // namespace kandil::jinja
