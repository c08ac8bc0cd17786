// Tokens and syntax tree of the Jinja-subset interpreter (lexer: jinja_lexer.cpp, parser:
// jinja_parser.cpp, evaluation: jinja_eval.cpp). Every token and node carries the line of the
// template it came from, for error messages.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kandil::jinja {

enum class Tok : uint8_t {
  Text,
  Number,
  String,
  Identifier,
  Equals,
  OpenParen,
  CloseParen,
  OpenStatement,
  CloseStatement,
  OpenExpression,
  CloseExpression,
  OpenSquare,
  CloseSquare,
  OpenCurly,
  CloseCurly,
  Comma,
  Dot,
  Colon,
  Pipe,
  Additive,        // + - ~
  Multiplicative,  // * / // %
  Power,           // **
  Comparison,      // < > <= >= == !=
  Unary,           // a sign with no number after it
  Comment,
  End,  // sentinel after the last token
};

const char* tok_name(Tok t);

struct Token {
  Tok type;
  std::string value;
  int line;
};

// Lexes a template the way @huggingface/jinja does with trim_blocks and lstrip_blocks on.
// Throws JinjaError (with the line) on bad input.
std::vector<Token> tokenize(const std::string& source);

enum class NodeKind : uint8_t {
  // statements
  Text,
  Comment,
  If,
  For,
  Set,
  Macro,
  Break,
  Continue,
  FilterBlock,
  CallBlock,
  // expressions
  Identifier,
  IntLit,
  FloatLit,
  StringLit,
  ArrayLit,
  TupleLit,
  ObjectLit,
  Member,
  Call,
  Binary,
  Unary,
  Filter,
  Test,
  Select,
  Ternary,
  Slice,
  KwArg,
  Spread,
  KwSpread,
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

// One node type for the whole tree; which fields a kind uses is listed beside each kind's parser.
//   Text/StringLit/Identifier: str.  IntLit: i.  FloatLit: f.
//   If: x test, a body, b alternate.  For: x target, y iterable, z filter test, a body, b else.
//   Set: x target, y value (or a body).  Macro: str name, a params, b body, specials.
//   FilterBlock: x filter, a body.  CallBlock: x call, a caller parameters, b body, specials.
//   ArrayLit/TupleLit: a.  ObjectLit: a keys, b values. Member: x object, y property, flag
//   computed.  Call: x callee, a args. Binary: str operator, x, y.  Unary: str operator, x. Filter:
//   x operand, y filter. Test: x operand, str test, flag negate.  Select: x value, y test. Ternary:
//   x condition, y if true, z if false.  Slice: x start, y stop, z step (nullable). KwArg: str
//   name, x value.  Spread/KwSpread: x.
struct Node {
  NodeKind kind;
  int line = 0;
  bool flag = false;
  int64_t i = 0;
  double f = 0.0;
  std::string str;
  NodePtr x, y, z;
  NodeList a, b;
  // Macro / CallBlock: which of caller / kwargs / varargs the body mentions.
  bool uses_kwargs = false, uses_varargs = false, uses_caller = false;
};

struct Program {
  NodeList body;
};

// Parses tokens into a program. Throws JinjaError (with the line) on bad syntax.
Program parse_tokens(const std::vector<Token>& tokens);

}  // namespace kandil::jinja
