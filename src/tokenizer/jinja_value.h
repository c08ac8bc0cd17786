// Runtime values of the Jinja-subset interpreter behind chat templates (chat_template.h).
// The semantics follow @huggingface/jinja, the reference chat templates are checked against:
// JavaScript-flavoured numbers (one number type printed the JS way, integers kept apart only to
// print "1.0" for floats), insertion-ordered mappings, shared (reference) arrays and objects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kandil::jinja {

// Internal error: the message plus the template line it arose on (0 = unknown). Caught at the
// API boundary (chat_template.cpp) and turned into a Result error naming the template.
struct JinjaError : std::runtime_error {
  JinjaError(const std::string& message, int line_) : std::runtime_error(message), line(line_) {}
  int line;
};

class Env;
struct Value;
using Array = std::vector<Value>;
struct Object;
// Positional arguments; a trailing kwargs object (Value::is_kwargs) carries keyword arguments.
using Args = std::vector<Value>;
using Function = std::function<Value(Args& args, const std::shared_ptr<Env>& call_site)>;

enum class Type : uint8_t {
  Undefined,
  Null,
  Bool,
  Int,
  Float,
  String,
  Array,
  Tuple,
  Object,
  Namespace,
  Function
};

struct Value {
  Type type = Type::Undefined;
  bool b = false;
  bool is_kwargs = false;  // an Object holding keyword arguments
  int64_t i = 0;
  double f = 0.0;
  std::shared_ptr<const std::string> s;
  std::shared_ptr<Array> arr;   // Array, Tuple
  std::shared_ptr<Object> obj;  // Object, Namespace
  std::shared_ptr<const Function> fn;

  static Value undefined() { return Value{}; }
  static Value null();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value array(Array v = {});
  static Value tuple(Array v);
  static Value object();
  static Value function(Function f);

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_null() const { return type == Type::Null; }
  bool is_string() const { return type == Type::String; }
  bool is_array() const { return type == Type::Array || type == Type::Tuple; }
  bool is_object() const { return type == Type::Object; }
  bool is_container() const { return type == Type::Object || type == Type::Namespace; }
  bool is_number() const { return type == Type::Int || type == Type::Float; }
  const std::string& str() const { return *s; }
  double num() const {
    return type == Type::Int ? static_cast<double>(i) : type == Type::Bool ? b : f;
  }

  bool truthy() const;
};

// Insertion-ordered string-keyed mapping (JavaScript Map semantics).
struct Object {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
  bool erase(std::string_view key);
};

const char* type_name(Type t);

// String(value.value) in JavaScript: numbers the JS way (1.0 -> "1"), booleans "true"/"false".
std::string js_string(const Value& v);
// A JS number as Number.prototype.toString prints it.
std::string js_number(double v);
// How the interpreter prints a value into the output ("1.0" for integral floats, JSON for arrays).
std::string to_output(const Value& v);

struct JsonOptions {
  int indent = 0;  // 0 / negative: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool has_separators = false;
  std::string item_separator, key_separator;
};
// JSON the way @huggingface/jinja's tojson writes it (", " / ": " separators on one line).
std::string to_json(const Value& v, const JsonOptions& opt, bool undefined_as_null = true,
                    int depth = 0);
// JSON.stringify of a string.
std::string json_quote(std::string_view s);

// JavaScript loose equality of the underlying values (==), and strict (===) for `in`.
bool loose_equals(const Value& a, const Value& b);
bool strict_equals(const Value& a, const Value& b);
// Ordering for sort / dictsort (numbers, strings; throws for others).
int compare_values(const Value& a, const Value& b, bool case_sensitive);

// UTF-8 helpers (JS whitespace set, code point iteration).
std::string js_trim(std::string_view s, bool left, bool right);
// Length in bytes of the JS whitespace code point at s[k], 0 if there is none.
size_t js_space_at(std::string_view s, size_t k);
// Appends code point cp as UTF-8.
void append_utf8(std::string& out, uint32_t cp);
std::vector<std::string> code_points(std::string_view s);
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);

}  // namespace kandil::jinja
