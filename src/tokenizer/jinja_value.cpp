// Values of the Jinja-subset interpreter: printing, JSON, equality and ordering the way
// @huggingface/jinja does them (see jinja_value.h).
#include "tokenizer/jinja_value.h"

#include "base/utf8.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace kandil::jinja {

Value Value::null() {
  Value v;
  v.type = Type::Null;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.type = Type::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.type = Type::Int;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.type = Type::Float;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  Value v;
  v.type = Type::String;
  v.s = std::make_shared<const std::string>(std::move(x));
  return v;
}
Value Value::array(Array x) {
  Value v;
  v.type = Type::Array;
  v.arr = std::make_shared<Array>(std::move(x));
  return v;
}
Value Value::tuple(Array x) {
  Value v = array(std::move(x));
  v.type = Type::Tuple;
  return v;
}
Value Value::object() {
  Value v;
  v.type = Type::Object;
  v.obj = std::make_shared<Object>();
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.type = Type::Function;
  v.fn = std::make_shared<const Function>(std::move(f));
  return v;
}

bool Value::truthy() const {
  switch (type) {
    case Type::Undefined:
    case Type::Null:
      return false;
    case Type::Bool:
      return b;
    case Type::Int:
      return i != 0;
    case Type::Float:
      return f != 0.0 && !std::isnan(f);
    case Type::String:
      return !s->empty();
    case Type::Array:
    case Type::Tuple:
      return !arr->empty();
    case Type::Object:
      return !obj->entries.empty();
    case Type::Namespace:
    case Type::Function:
      return true;
  }
  return false;
}

const Value* Object::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, old] : entries) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  entries.emplace_back(key, std::move(v));
}

bool Object::erase(std::string_view key) {
  for (size_t k = 0; k < entries.size(); ++k) {
    if (entries[k].first == key) {
      entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(k));
      return true;
    }
  }
  return false;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::Undefined:
      return "UndefinedValue";
    case Type::Null:
      return "NullValue";
    case Type::Bool:
      return "BooleanValue";
    case Type::Int:
      return "IntegerValue";
    case Type::Float:
      return "FloatValue";
    case Type::String:
      return "StringValue";
    case Type::Array:
      return "ArrayValue";
    case Type::Tuple:
      return "TupleValue";
    case Type::Object:
      return "ObjectValue";
    case Type::Namespace:
      return "NamespaceValue";
    case Type::Function:
      return "FunctionValue";
  }
  return "?";
}

std::string js_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return "0";
  // Shortest round-trip digits, then ECMAScript Number::toString's layout.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;
  std::string out;
  if (k <= n && n <= 21) {
    out = digits + std::string(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out = digits.substr(0, static_cast<size_t>(n)) + "." + digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out = "0." + std::string(static_cast<size_t>(-n), '0') + digits;
  } else {
    out = digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += (n - 1 >= 0 ? "e+" : "e-") + std::to_string(std::abs(n - 1));
  }
  return sign + out;
}

namespace {

// Array.prototype.toString of runtime values: each element's own toString, comma-joined.
std::string js_array_string(const Array& a) {
  std::string out;
  for (size_t k = 0; k < a.size(); ++k) {
    if (k) out += ',';
    out += (a[k].is_null() || a[k].is_undefined()) ? "undefined" : to_output(a[k]);
  }
  return out;
}

}  // namespace

std::string js_string(const Value& v) {
  switch (v.type) {
    case Type::Undefined:
      return "undefined";
    case Type::Null:
      return "undefined";  // NullValue holds no JS value
    case Type::Bool:
      return v.b ? "true" : "false";
    case Type::Int:
      return std::to_string(v.i);
    case Type::Float:
      return js_number(v.f);
    case Type::String:
      return *v.s;
    case Type::Array:
    case Type::Tuple:
      return js_array_string(*v.arr);
    case Type::Object:
    case Type::Namespace:
      return "[object Map]";
    case Type::Function:
      return "[function]";
  }
  return "";
}

std::string to_output(const Value& v) {
  switch (v.type) {
    case Type::Undefined:
    case Type::Null:
      return "";
    case Type::Float:
      if (v.f == 0 && std::signbit(v.f)) return "-0.0";
      if (std::isfinite(v.f) && std::fmod(v.f, 1.0) == 0 && std::fabs(v.f) < 1e21) {
        return js_number(v.f) + ".0";
      }
      return js_number(v.f);
    case Type::Array:
    case Type::Tuple:
    case Type::Object:
    case Type::Namespace:
      return to_json(v, JsonOptions{}, false);
    default:
      return js_string(v);
  }
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

namespace {

// Decodes one UTF-8 sequence at s[k] (invalid bytes decode as themselves, one byte long).
uint32_t decode_utf8(std::string_view s, size_t k, size_t* len) {
  const auto c = static_cast<unsigned char>(s[k]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (k + static_cast<size_t>(n) > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
  for (int j = 1; j < n; ++j) {
    const auto cc = static_cast<unsigned char>(s[k + static_cast<size_t>(j)]);
    if ((cc & 0xc0) != 0x80) {
      *len = 1;
      return c;
    }
    cp = (cp << 6) | (cc & 0x3f);
  }
  *len = static_cast<size_t>(n);
  return cp;
}

// Code points to \uXXXX (UTF-16 units), as makeAsciiSafe does for ensure_ascii.
std::string ascii_safe(std::string_view s) {
  std::string out;
  for (size_t k = 0; k < s.size();) {
    size_t len = 1;
    const uint32_t cp = decode_utf8(s, k, &len);
    if (cp < 0x7f) {
      out += s[k];
    } else {
      char buf[16];
      if (cp <= 0xffff) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      } else {
        const uint32_t u = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff));
      }
      out += buf;
    }
    k += len;
  }
  return out;
}

bool is_js_space(uint32_t cp) {
  if (cp <= 32) return cp == 32 || (cp >= 9 && cp <= 13);
  return cp == 160 || cp == 5760 || (cp >= 8192 && cp <= 8202) || cp == 8232 || cp == 8233 ||
         cp == 8239 || cp == 8287 || cp == 12288 || cp == 65279;
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& opt, bool undefined_as_null, int depth) {
  std::string item_sep = opt.indent > 0 ? "," : ", ";
  std::string key_sep = ": ";
  if (opt.has_separators) {
    item_sep = opt.item_separator;
    key_sep = opt.key_separator;
  }
  switch (v.type) {
    case Type::Null:
      return "null";
    case Type::Undefined:
      return undefined_as_null ? "null" : "undefined";
    case Type::Int:
      return std::to_string(v.i);
    case Type::Float:
      return std::isfinite(v.f) ? js_number(v.f) : "null";
    case Type::Bool:
      return v.b ? "true" : "false";
    case Type::String: {
      std::string q = json_quote(*v.s);
      return opt.ensure_ascii ? ascii_safe(q) : q;
    }
    case Type::Tuple:
      // The reference's JSON writer has no case for tuples.
      throw JinjaError("Cannot convert to JSON: TupleValue", 0);
    case Type::Array:
    case Type::Object:
    case Type::Namespace: {
      const std::string pad_unit =
          opt.indent > 0 ? std::string(static_cast<size_t>(opt.indent), ' ') : "";
      std::string base = "\n";
      for (int d = 0; d < depth; ++d) base += pad_unit;
      const std::string child = base + pad_unit;
      std::vector<std::string> core;
      if (v.is_array()) {
        for (const auto& x : *v.arr) core.push_back(to_json(x, opt, undefined_as_null, depth + 1));
        std::string out = "[";
        if (opt.indent > 0 && !core.empty()) {
          out += child;
          for (size_t k = 0; k < core.size(); ++k) {
            if (k) out += item_sep + child;
            out += core[k];
          }
          out += base;
        } else {
          for (size_t k = 0; k < core.size(); ++k) {
            if (k) out += item_sep;
            out += core[k];
          }
        }
        return out + "]";
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.obj->entries) entries.push_back(&e);
      if (opt.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      std::string out = "{";
      for (size_t k = 0; k < entries.size(); ++k) {
        std::string key = json_quote(entries[k]->first);
        if (opt.ensure_ascii) key = ascii_safe(key);
        std::string item =
            key + key_sep + to_json(entries[k]->second, opt, undefined_as_null, depth + 1);
        if (k) out += item_sep;
        if (opt.indent > 0) out += child;
        out += item;
      }
      if (opt.indent > 0 && !entries.empty()) out += base;
      return out + "}";
    }
    case Type::Function:
      throw JinjaError("Cannot convert to JSON: FunctionValue", 0);
  }
  return "null";
}

namespace {

// Number(str) in JavaScript (whitespace-trimmed; "" -> 0; invalid -> NaN).
double js_to_number(const std::string& s) {
  const std::string t = js_trim(s, true, true);
  if (t.empty()) return 0.0;
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nan("");
  return d;
}

bool numeric_like(const Value& v) { return v.is_number() || v.type == Type::Bool; }

bool no_js_value(const Value& v) { return v.is_null() || v.is_undefined(); }

}  // namespace

bool loose_equals(const Value& a, const Value& b) {
  if (no_js_value(a) || no_js_value(b)) return no_js_value(a) && no_js_value(b);
  if (numeric_like(a) && numeric_like(b)) return a.num() == b.num();
  if (a.is_string() && b.is_string()) return a.str() == b.str();
  if (a.is_string() && numeric_like(b)) return js_to_number(a.str()) == b.num();
  if (numeric_like(a) && b.is_string()) return a.num() == js_to_number(b.str());
  if (a.is_array() && b.is_array()) return a.arr == b.arr;
  if (a.is_container() && b.is_container()) return a.obj == b.obj;
  if (a.type == Type::Function && b.type == Type::Function) return a.fn == b.fn;
  return false;
}

bool strict_equals(const Value& a, const Value& b) {
  if (no_js_value(a) || no_js_value(b)) return no_js_value(a) && no_js_value(b);
  if (a.is_number() && b.is_number()) return a.num() == b.num();
  if (a.type == Type::Bool && b.type == Type::Bool) return a.b == b.b;
  if (a.is_string() && b.is_string()) return a.str() == b.str();
  if (a.is_array() && b.is_array()) return a.arr == b.arr;
  if (a.is_container() && b.is_container()) return a.obj == b.obj;
  if (a.type == Type::Function && b.type == Type::Function) return a.fn == b.fn;
  return false;
}

int compare_values(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_null() && b.is_null()) return 0;
  if (a.is_null() || b.is_null() || a.is_undefined() != b.is_undefined()) {
    throw JinjaError(
        std::string("Cannot compare ") + type_name(a.type) + " with " + type_name(b.type), 0);
  }
  if (a.is_undefined()) return 0;
  if (numeric_like(a) && numeric_like(b)) {
    return a.num() < b.num() ? -1 : a.num() > b.num() ? 1 : 0;
  }
  if (a.type != b.type) {
    throw JinjaError(std::string("Cannot compare different types: ") + type_name(a.type) + " and " +
                         type_name(b.type),
                     0);
  }
  if (a.is_string()) {
    std::string x = a.str(), y = b.str();
    if (!case_sensitive) {
      x = ascii_lower(x);
      y = ascii_lower(y);
    }
    return x < y ? -1 : x > y ? 1 : 0;
  }
  throw JinjaError(std::string("Cannot compare type: ") + type_name(a.type), 0);
}

std::string js_trim(std::string_view s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      size_t len = 1;
      const uint32_t cp = decode_utf8(s, begin, &len);
      if (!is_js_space(cp)) break;
      begin += len;
    }
  }
  if (right) {
    while (end > begin) {
      // Step back to the start of the last sequence.
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80 &&
             end - start < 4) {
        --start;
      }
      size_t len = 1;
      const uint32_t cp = decode_utf8(s, start, &len);
      if (start + len != end) {
        start = end - 1;
        if (!is_js_space(static_cast<unsigned char>(s[start]))) break;
      } else if (!is_js_space(cp)) {
        break;
      }
      end = start;
    }
  }
  return std::string(s.substr(begin, end - begin));
}

size_t js_space_at(std::string_view s, size_t k) {
  if (k >= s.size()) return 0;
  size_t len = 1;
  const uint32_t cp = decode_utf8(s, k, &len);
  return is_js_space(cp) ? len : 0;
}

void append_utf8(std::string& out, uint32_t cp) { utf8::append(out, cp); }

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for (size_t k = 0; k < s.size();) {
    size_t len = 1;
    (void)decode_utf8(s, k, &len);
    out.emplace_back(s.substr(k, len));
    k += len;
  }
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace kandil::jinja
