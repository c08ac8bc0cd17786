// Built-ins of the Jinja-subset interpreter, as @huggingface/jinja defines them: filters (by
// operand type), tests, string methods (upper, strip, split, replace, startswith, ...), mapping
// methods (get, items, keys, values, dictsort), attribute / index access and the globals
// (namespace, range, raise_exception, strftime_now, true/false/none).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "tokenizer/jinja_eval.h"

namespace kandil::jinja {
namespace {

[[noreturn]] void fail(const std::string& message, int line = 0) {
  throw JinjaError(message, line);
}

std::string type_str(const Value& v) { return type_name(v.type); }

// Splits trailing keyword arguments off a call's arguments.
Object take_kwargs(Args& args) {
  Object kw;
  if (!args.empty() && args.back().is_kwargs) {
    kw = *args.back().obj;
    args.pop_back();
  }
  return kw;
}

// args[k], else kwargs[name], else fallback.
Value arg_or(const Args& args, size_t k, const Object& kw, const char* name, Value fallback) {
  if (k < args.size()) return args[k];
  if (name) {
    if (const Value* v = kw.find(name)) return *v;
  }
  return fallback;
}

// Array.prototype.join of the raw values.
std::string join_values(const Array& items, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += sep;
    if (!items[k].is_null() && !items[k].is_undefined()) out += js_string(items[k]);
  }
  return out;
}

std::string title_case(const std::string& s) {
  std::string out = s;
  auto is_w = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  for (size_t k = 0; k < out.size(); ++k) {
    if (is_w(out[k]) && (k == 0 || !is_w(out[k - 1])) && out[k] >= 'a' && out[k] <= 'z') {
      out[k] = static_cast<char>(out[k] - 'a' + 'A');
    }
  }
  return out;
}

std::string capitalize(const std::string& s) {
  if (s.empty()) return s;
  return ascii_upper(s.substr(0, 1)) + s.substr(1);
}

// parseInt(s, 10) / parseFloat(s): a numeric prefix after leading whitespace, else NaN.
double parse_int_prefix(const std::string& s) {
  const std::string t = js_trim(s, true, false);
  size_t k = 0;
  if (k < t.size() && (t[k] == '+' || t[k] == '-')) ++k;
  const size_t digits = k;
  while (k < t.size() && t[k] >= '0' && t[k] <= '9') ++k;
  if (k == digits) return std::nan("");
  return std::strtod(t.substr(0, k).c_str(), nullptr);
}

double parse_float_prefix(const std::string& s) {
  const std::string t = js_trim(s, true, false);
  if (t.rfind("Infinity", 0) == 0 || t.rfind("+Infinity", 0) == 0) return INFINITY;
  if (t.rfind("-Infinity", 0) == 0) return -INFINITY;
  size_t k = 0;
  if (k < t.size() && (t[k] == '+' || t[k] == '-')) ++k;
  size_t mant = 0;
  while (k < t.size() && t[k] >= '0' && t[k] <= '9') ++k, ++mant;
  if (k < t.size() && t[k] == '.') {
    ++k;
    while (k < t.size() && t[k] >= '0' && t[k] <= '9') ++k, ++mant;
  }
  if (mant == 0) return std::nan("");
  if (k < t.size() && (t[k] == 'e' || t[k] == 'E')) {
    size_t j = k + 1;
    if (j < t.size() && (t[j] == '+' || t[j] == '-')) ++j;
    const size_t exp_digits = j;
    while (j < t.size() && t[j] >= '0' && t[j] <= '9') ++j;
    if (j > exp_digits) k = j;
  }
  return std::strtod(t.substr(0, k).c_str(), nullptr);
}

Value number_value(double d, bool as_int) {
  if (as_int) {
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return Value::number(d);
    return Value::integer(static_cast<int64_t>(d));
  }
  return Value::number(d);
}

// Python's str.replace with @huggingface/jinja's count handling (count < 0 or none: all).
std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  if (count == 0) return s;
  int64_t remaining = count < 0 ? INT64_MAX : count;
  std::string out;
  if (from.empty()) {
    for (const std::string& cp : code_points(s)) {
      if (remaining > 0) {
        out += to;
        --remaining;
      }
      out += cp;
    }
    if (remaining > 0) out += to;
    return out;
  }
  size_t pos = 0;
  while (remaining > 0) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    --remaining;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Value split_string(const std::string& s, Args& args) {
  const Value sep = args.size() > 0 ? args[0] : Value::null();
  if (!sep.is_string() && !sep.is_null()) fail("sep argument must be a string or null");
  const Value maxv = args.size() > 1 ? args[1] : Value::integer(-1);
  if (maxv.type != Type::Int) fail("maxsplit argument must be a number");
  const int64_t maxsplit = maxv.i;
  Array parts;
  if (sep.is_null()) {
    const std::string text = js_trim(s, true, false);
    size_t k = 0;
    while (k < text.size()) {
      while (k < text.size() && js_space_at(text, k)) k += js_space_at(text, k);
      if (k >= text.size()) break;
      size_t e = k;
      while (e < text.size() && !js_space_at(text, e)) ++e;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(Value::string(text.substr(k)));
        break;
      }
      parts.push_back(Value::string(text.substr(k, e - k)));
      k = e;
    }
  } else {
    const std::string& d = sep.str();
    if (d.empty()) fail("empty separator");
    std::vector<std::string> pieces;
    size_t pos = 0;
    while (true) {
      const size_t hit = s.find(d, pos);
      if (hit == std::string::npos) break;
      pieces.push_back(s.substr(pos, hit - pos));
      pos = hit + d.size();
    }
    pieces.push_back(s.substr(pos));
    if (maxsplit >= 0 && static_cast<int64_t>(pieces.size()) > maxsplit) {
      std::string rest;
      for (size_t k = static_cast<size_t>(maxsplit); k < pieces.size(); ++k) {
        if (k > static_cast<size_t>(maxsplit)) rest += d;
        rest += pieces[k];
      }
      pieces.resize(static_cast<size_t>(maxsplit));
      pieces.push_back(rest);
    }
    for (auto& p : pieces) parts.push_back(Value::string(std::move(p)));
  }
  return Value::array(std::move(parts));
}

bool affix_test(const std::string& s, Args& args, bool prefix, const char* name) {
  if (args.empty()) fail(std::string(name) + "() requires at least one argument");
  auto check = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return prefix ? s.compare(0, p.size(), p) == 0
                  : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  const Value& pattern = args[0];
  if (pattern.is_string()) return check(pattern.str());
  if (pattern.is_array()) {
    for (const Value& item : *pattern.arr) {
      if (!item.is_string()) fail(std::string(name) + "() tuple elements must be strings");
      if (check(item.str())) return true;
    }
    return false;
  }
  fail(std::string(name) + "() argument must be a string or tuple of strings");
}

Value string_replace(const std::string& s, Args& args) {
  if (args.size() < 2) fail("replace() requires at least two arguments");
  if (!args[0].is_string() || !args[1].is_string()) fail("replace() arguments must be strings");
  Value count = Value::null();
  if (args.size() > 2) {
    if (args[2].is_kwargs) {
      const Value* c = args[2].obj->find("count");
      count = c ? *c : Value::null();
    } else {
      count = args[2];
    }
  }
  if (count.type != Type::Int && !count.is_null()) {
    fail("replace() count argument must be a number or null");
  }
  return Value::string(
      replace_all(s, args[0].str(), args[1].str(), count.is_null() ? -1 : count.i));
}

// A string method bound to its string.
Value string_method(const Value& str, const std::string& name) {
  const std::string& s = str.str();
  auto bind = [str](Value (*f)(const std::string&, Args&)) {
    return Value::function([str, f](Args& args, const EnvPtr&) { return f(str.str(), args); });
  };
  if (name == "length") return Value::integer(static_cast<int64_t>(code_points(s).size()));
  if (name == "upper")
    return bind([](const std::string& x, Args&) { return Value::string(ascii_upper(x)); });
  if (name == "lower")
    return bind([](const std::string& x, Args&) { return Value::string(ascii_lower(x)); });
  if (name == "strip")
    return bind([](const std::string& x, Args&) { return Value::string(js_trim(x, true, true)); });
  if (name == "lstrip")
    return bind([](const std::string& x, Args&) { return Value::string(js_trim(x, true, false)); });
  if (name == "rstrip")
    return bind([](const std::string& x, Args&) { return Value::string(js_trim(x, false, true)); });
  if (name == "title")
    return bind([](const std::string& x, Args&) { return Value::string(title_case(x)); });
  if (name == "capitalize")
    return bind([](const std::string& x, Args&) { return Value::string(capitalize(x)); });
  if (name == "startswith") {
    return bind([](const std::string& x, Args& a) {
      return Value::boolean(affix_test(x, a, true, "startswith"));
    });
  }
  if (name == "endswith") {
    return bind([](const std::string& x, Args& a) {
      return Value::boolean(affix_test(x, a, false, "endswith"));
    });
  }
  if (name == "split") return bind(split_string);
  if (name == "replace") return bind(string_replace);
  return Value::undefined();
}

Value pair(const std::string& k, const Value& v) { return Value::array({Value::string(k), v}); }

Value dictsort(const Value& obj, Args args) {
  const Object kw = take_kwargs(args);
  const Value cs = arg_or(args, 0, kw, "case_sensitive", Value::boolean(false));
  if (cs.type != Type::Bool) fail("case_sensitive must be a boolean");
  const Value by = arg_or(args, 1, kw, "by", Value::string("key"));
  if (!by.is_string()) fail("by must be a string");
  if (by.str() != "key" && by.str() != "value") fail("by must be either 'key' or 'value'");
  const Value rev = arg_or(args, 2, kw, "reverse", Value::boolean(false));
  if (rev.type != Type::Bool) fail("reverse must be a boolean");
  Array items;
  for (const auto& [k, v] : obj.obj->entries) items.push_back(pair(k, v));
  const size_t index = by.str() == "key" ? 0 : 1;
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    const int r = compare_values((*a.arr)[index], (*b.arr)[index], cs.b);
    return rev.b ? r > 0 : r < 0;
  });
  return Value::array(std::move(items));
}

// A mapping method bound to its mapping.
Value object_method(const Value& obj, const std::string& name) {
  if (name == "get") {
    return Value::function([obj](Args& args, const EnvPtr&) {
      if (args.empty() || !args[0].is_string()) {
        fail("Object key must be a string: got " +
             (args.empty() ? std::string("UndefinedValue") : type_str(args[0])));
      }
      if (const Value* v = obj.obj->find(args[0].str())) return *v;
      return args.size() > 1 ? args[1] : Value::null();
    });
  }
  if (name == "items") {
    return Value::function([obj](Args&, const EnvPtr&) {
      Array items;
      for (const auto& [k, v] : obj.obj->entries) items.push_back(pair(k, v));
      return Value::array(std::move(items));
    });
  }
  if (name == "keys") {
    return Value::function([obj](Args&, const EnvPtr&) {
      Array items;
      for (const auto& [k, v] : obj.obj->entries) items.push_back(Value::string(k));
      return Value::array(std::move(items));
    });
  }
  if (name == "values") {
    return Value::function([obj](Args&, const EnvPtr&) {
      Array items;
      for (const auto& [k, v] : obj.obj->entries) items.push_back(v);
      return Value::array(std::move(items));
    });
  }
  if (name == "dictsort") {
    return Value::function([obj](Args& args, const EnvPtr&) { return dictsort(obj, args); });
  }
  return Value::undefined();
}

// Dotted attribute path (map(attribute=...), sort(attribute=...)).
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part =
        path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (v.is_container()) {
      const Value* x = v.obj->find(part);
      v = x ? *x : Value::undefined();
    } else if (v.is_array()) {
      char* end = nullptr;
      const long idx = std::strtol(part.c_str(), &end, 10);
      if (end == part.c_str() || idx < 0 || static_cast<size_t>(idx) >= v.arr->size()) {
        return Value::undefined();
      }
      v = (*v.arr)[static_cast<size_t>(idx)];
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
}

std::string indent_lines(const std::string& s, const std::string& pad, bool first, bool blank) {
  std::string out;
  size_t pos = 0, line = 0;
  while (true) {
    const size_t nl = s.find('\n', pos);
    const std::string x = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (line) out += '\n';
    if ((!first && line == 0) || (!blank && x.empty())) {
      out += x;
    } else {
      out += pad + x;
    }
    ++line;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

std::string strftime_js(const std::string& fmt, int64_t now) {
  std::time_t t = now >= 0 ? static_cast<std::time_t>(now) : std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  static const char* const kLong[] = {"January",   "February", "March",    "April",
                                      "May",       "June",     "July",     "August",
                                      "September", "October",  "November", "December"};
  static const char* const kShort[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto pad2 = [](int n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%' || k + 1 >= fmt.size()) {
      out += fmt[k];
      continue;
    }
    const char c = fmt[k + 1];
    std::string rep;
    switch (c) {
      case 'Y':
        rep = std::to_string(tm.tm_year + 1900);
        break;
      case 'm':
        rep = pad2(tm.tm_mon + 1);
        break;
      case 'd':
        rep = pad2(tm.tm_mday);
        break;
      case 'b':
        rep = kShort[tm.tm_mon];
        break;
      case 'B':
        rep = kLong[tm.tm_mon];
        break;
      case 'H':
        rep = pad2(tm.tm_hour);
        break;
      case 'M':
        rep = pad2(tm.tm_min);
        break;
      case '%':
        rep = "%";
        break;
      default:
        out += fmt[k];
        continue;
    }
    out += rep;
    ++k;
  }
  return out;
}

}  // namespace

Value Interpreter::member(const Value& object, const Value& property, int line) {
  try {
    if (object.is_container()) {
      if (!property.is_string()) {
        fail("Cannot access property with non-string: got " + type_str(property));
      }
      if (const Value* v = object.obj->find(property.str())) return *v;
      if (object.is_object()) return object_method(object, property.str());
      return Value::undefined();
    }
    if (object.is_array() || object.is_string()) {
      if (property.type == Type::Int) {
        if (object.is_string()) {
          const auto cps = code_points(object.str());
          const auto n = static_cast<int64_t>(cps.size());
          const int64_t k = property.i < 0 ? n + property.i : property.i;
          if (k < 0 || k >= n) return Value::undefined();
          return Value::string(cps[static_cast<size_t>(k)]);
        }
        const auto n = static_cast<int64_t>(object.arr->size());
        const int64_t k = property.i < 0 ? n + property.i : property.i;
        if (k < 0 || k >= n) return Value::undefined();
        return (*object.arr)[static_cast<size_t>(k)];
      }
      if (property.is_string()) {
        if (object.is_string()) return string_method(object, property.str());
        if (property.str() == "length") {
          return Value::integer(static_cast<int64_t>(object.arr->size()));
        }
        return Value::undefined();
      }
      fail("Cannot access property with non-string/non-number: got " + type_str(property));
    }
    if (!property.is_string()) {
      fail("Cannot access property with non-string: got " + type_str(property));
    }
    return Value::undefined();
  } catch (JinjaError& e) {
    if (e.line == 0) e.line = line;
    throw;
  }
}

bool Interpreter::apply_test(const std::string& name, const Value& v, const Value* arg, int line) {
  const Type t = v.type;
  if (name == "boolean") return t == Type::Bool;
  if (name == "callable") return t == Type::Function;
  if (name == "odd" || name == "even") {
    if (t != Type::Int) fail("cannot " + name + " on " + type_str(v), line);
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "false") return t == Type::Bool && !v.b;
  if (name == "true") return t == Type::Bool && v.b;
  if (name == "none") return t == Type::Null;
  if (name == "string") return t == Type::String;
  if (name == "number") return v.is_number();
  if (name == "integer") return t == Type::Int;
  if (name == "iterable") return t == Type::Array || t == Type::String;
  if (name == "mapping") return t == Type::Object;
  if (name == "sequence") return v.is_array() || t == Type::Object || t == Type::String;
  if (name == "lower") return t == Type::String && v.str() == ascii_lower(v.str());
  if (name == "upper") return t == Type::String && v.str() == ascii_upper(v.str());
  if (name == "defined") return t != Type::Undefined;
  if (name == "undefined") return t == Type::Undefined;
  if (name == "equalto" || name == "eq") {
    return strict_equals(v, arg ? *arg : Value::undefined());
  }
  fail("Unknown test: " + name, line);
}

Value Interpreter::apply_filter(const Value& operand, const Node& filter, const EnvPtr& env) {
  const int line = filter.line;
  try {
    if (filter.kind == NodeKind::Identifier) {
      const std::string& name = filter.str;
      if (name == "safe") return operand;
      if (name == "tojson") return make_string(to_json(operand, JsonOptions{}), line);
      if (operand.is_array()) {
        const Array& a = *operand.arr;
        if (name == "list") return operand;
        if (name == "first") return a.empty() ? Value::undefined() : a.front();
        if (name == "last") return a.empty() ? Value::undefined() : a.back();
        if (name == "length") return Value::integer(static_cast<int64_t>(a.size()));
        if (name == "reverse") return Value::array(Array(a.rbegin(), a.rend()));
        if (name == "sort") {
          Array sorted = a;
          std::stable_sort(sorted.begin(), sorted.end(), [](const Value& x, const Value& y) {
            return compare_values(x, y, false) < 0;
          });
          return Value::array(std::move(sorted));
        }
        if (name == "join") return make_string(join_values(a, ""), line);
        if (name == "string") return make_string(to_json(operand, JsonOptions{}, false), line);
        if (name == "unique") {
          Array out;
          for (const Value& x : a) {
            bool seen = false;
            for (const Value& y : out) seen = seen || strict_equals(x, y);
            if (!seen) out.push_back(x);
          }
          return Value::array(std::move(out));
        }
        fail("Unknown ArrayValue filter: " + name);
      }
      if (operand.is_string()) {
        const std::string& s = operand.str();
        if (name == "length" || name == "upper" || name == "lower" || name == "title" ||
            name == "capitalize") {
          Value m = string_method(operand, name);
          if (m.type == Type::Int) return m;
          Args none;
          return (*m.fn)(none, env);
        }
        if (name == "trim") return Value::string(js_trim(s, true, true));
        if (name == "indent") return make_string(indent_lines(s, "    ", false, false), line);
        if (name == "join" || name == "string") return operand;
        if (name == "int") {
          const double d = parse_int_prefix(s);
          return std::isnan(d) ? Value::integer(0) : number_value(d, true);
        }
        if (name == "float") {
          const double d = parse_float_prefix(s);
          return Value::number(std::isnan(d) ? 0.0 : d);
        }
        fail("Unknown StringValue filter: " + name);
      }
      if (operand.is_number()) {
        if (name == "abs") {
          return operand.type == Type::Int ? Value::integer(operand.i < 0 ? -operand.i : operand.i)
                                           : Value::number(std::fabs(operand.f));
        }
        if (name == "int") return number_value(std::trunc(operand.num()), true);
        if (name == "float") return Value::number(operand.num());
        if (name == "string") return Value::string(to_output(operand));
        fail("Unknown NumericValue filter: " + name);
      }
      if (operand.is_object()) {
        if (name == "items") {
          Args none;
          return (*object_method(operand, "items").fn)(none, env);
        }
        if (name == "length") {
          return Value::integer(static_cast<int64_t>(operand.obj->entries.size()));
        }
        Value m = object_method(operand, name);
        if (m.type == Type::Function) {
          Args none;
          return (*m.fn)(none, env);
        }
        fail("Unknown ObjectValue filter: " + name);
      }
      if (operand.type == Type::Bool) {
        if (name == "bool") return operand;
        if (name == "int") return Value::integer(operand.b ? 1 : 0);
        if (name == "float") return Value::number(operand.b ? 1.0 : 0.0);
        if (name == "string") return Value::string(operand.b ? "true" : "false");
        fail("Unknown BooleanValue filter: " + name);
      }
      fail("Cannot apply filter \"" + name + "\" to type: " + type_str(operand));
    }
    if (filter.kind != NodeKind::Call || filter.x->kind != NodeKind::Identifier) {
      fail("Unknown filter");
    }
    const std::string& name = filter.x->str;
    const NodeList& fargs = filter.a;
    if (name == "tojson") {
      Args pos;
      Object kw;
      eval_args(fargs, env, pos, kw);
      JsonOptions opt;
      if (const Value* v = kw.find("indent")) {
        if (v->type != Type::Int && !v->is_null()) fail("If set, indent must be a number");
        if (v->type == Type::Int) opt.indent = static_cast<int>(std::min<int64_t>(v->i, 64));
      }
      if (const Value* v = kw.find("ensure_ascii")) {
        if (v->type != Type::Bool) fail("If set, ensure_ascii must be a boolean");
        opt.ensure_ascii = v->b;
      }
      if (const Value* v = kw.find("sort_keys")) {
        if (v->type != Type::Bool) fail("If set, sort_keys must be a boolean");
        opt.sort_keys = v->b;
      }
      if (const Value* v = kw.find("separators")) {
        if (v->is_array()) {
          if (v->arr->size() != 2 || !(*v->arr)[0].is_string() || !(*v->arr)[1].is_string()) {
            fail("separators must be a tuple of two strings");
          }
          opt.has_separators = true;
          opt.item_separator = (*v->arr)[0].str();
          opt.key_separator = (*v->arr)[1].str();
        } else if (!v->is_null()) {
          fail("If set, separators must be a tuple of two strings");
        }
      }
      return make_string(to_json(operand, opt), line);
    }
    if (name == "join") {
      Array values;
      if (operand.is_string()) {
        for (auto& cp : code_points(operand.str())) values.push_back(Value::string(cp));
      } else if (operand.is_array()) {
        values = *operand.arr;
      } else {
        fail("Cannot apply filter \"join\" to type: " + type_str(operand));
      }
      Args pos;
      Object kw;
      eval_args(fargs, env, pos, kw);
      const Value sep = arg_or(pos, 0, kw, "separator", Value::string(""));
      if (!sep.is_string()) fail("separator must be a string");
      return make_string(join_values(values, sep.str()), line);
    }
    if (name == "int" || name == "float") {
      Args pos;
      Object kw;
      eval_args(fargs, env, pos, kw);
      const bool is_int = name == "int";
      const Value def =
          arg_or(pos, 0, kw, "default", is_int ? Value::integer(0) : Value::number(0.0));
      if (operand.is_string()) {
        const double d =
            is_int ? parse_int_prefix(operand.str()) : parse_float_prefix(operand.str());
        if (std::isnan(d)) return def;
        return is_int ? number_value(d, true) : Value::number(d);
      }
      if (operand.is_number()) {
        return is_int ? number_value(std::trunc(operand.num()), true)
                      : Value::number(operand.num());
      }
      if (operand.type == Type::Bool) {
        return is_int ? Value::integer(operand.b) : Value::number(operand.b ? 1.0 : 0.0);
      }
      fail("Cannot apply filter \"" + name + "\" to type: " + type_str(operand));
    }
    if (name == "default" || name == "d") {
      Args pos;
      Object kw;
      eval_args(fargs, env, pos, kw);
      const Value def = pos.size() > 0 ? pos[0] : Value::string("");
      const Value flag = arg_or(pos, 1, kw, "boolean", Value::boolean(false));
      if (flag.type != Type::Bool) fail("`default` filter flag must be a boolean");
      if (operand.is_undefined() || (flag.b && !operand.truthy())) return def;
      return operand;
    }
    if (operand.is_array()) {
      const Array& a = *operand.arr;
      if (name == "sort") {
        Args pos;
        Object kw;
        eval_args(fargs, env, pos, kw);
        const Value rev = arg_or(pos, 0, kw, "reverse", Value::boolean(false));
        if (rev.type != Type::Bool) fail("reverse must be a boolean");
        const Value cs = arg_or(pos, 1, kw, "case_sensitive", Value::boolean(false));
        if (cs.type != Type::Bool) fail("case_sensitive must be a boolean");
        const Value attr = arg_or(pos, 2, kw, "attribute", Value::null());
        if (!attr.is_string() && attr.type != Type::Int && !attr.is_null()) {
          fail("attribute must be a string, integer, or null");
        }
        auto key = [&](const Value& item) {
          if (attr.is_null()) return item;
          return attribute_path(item, attr.is_string() ? attr.str() : std::to_string(attr.i));
        };
        Array sorted = a;
        std::stable_sort(sorted.begin(), sorted.end(), [&](const Value& x, const Value& y) {
          const int r = compare_values(key(x), key(y), cs.b);
          return rev.b ? r > 0 : r < 0;
        });
        return Value::array(std::move(sorted));
      }
      if (name == "selectattr" || name == "rejectattr") {
        const bool select = name == "selectattr";
        for (const Value& item : a) {
          if (!item.is_container()) fail("`" + name + "` can only be applied to array of objects");
        }
        for (const auto& x : fargs) {
          if (x->kind != NodeKind::StringLit) fail("arguments of `" + name + "` must be strings");
        }
        if (fargs.empty()) fail("`" + name + "` needs an attribute name");
        const std::string attr = fargs[0]->str;
        const std::string test = fargs.size() > 1 ? fargs[1]->str : "";
        const Value test_arg = fargs.size() > 2 ? Value::string(fargs[2]->str) : Value::undefined();
        Array out;
        for (const Value& item : a) {
          const Value* v = item.obj->find(attr);
          bool r = false;
          if (v) r = test.empty() ? v->truthy() : apply_test(test, *v, &test_arg, line);
          if (r == select) out.push_back(item);
        }
        return Value::array(std::move(out));
      }
      if (name == "map") {
        Args pos;
        Object kw;
        eval_args(fargs, env, pos, kw);
        const Value* attr = kw.find("attribute");
        if (!attr) fail("`map` expressions without `attribute` set are not currently supported.");
        if (!attr->is_string()) fail("attribute must be a string");
        const Value* def = kw.find("default");
        Array out;
        for (const Value& item : a) {
          if (!item.is_container()) fail("items in map must be an object");
          Value v = attribute_path(item, attr->str());
          out.push_back(v.is_undefined() && def ? *def : v);
        }
        return Value::array(std::move(out));
      }
      fail("Unknown ArrayValue filter: " + name);
    }
    if (operand.is_string()) {
      if (name == "indent") {
        Args pos;
        Object kw;
        eval_args(fargs, env, pos, kw);
        const Value width = arg_or(pos, 0, kw, "width", Value::integer(4));
        if (width.type != Type::Int && !width.is_string()) {
          fail("width must be an integer or a string");
        }
        const Value first = arg_or(pos, 1, kw, "first", Value::boolean(false));
        const Value blank = arg_or(pos, 2, kw, "blank", Value::boolean(false));
        const std::string pad =
            width.is_string()
                ? width.str()
                : std::string(static_cast<size_t>(std::clamp<int64_t>(width.i, 0, 256)), ' ');
        return make_string(indent_lines(operand.str(), pad, first.truthy(), blank.truthy()), line);
      }
      if (name == "replace") {
        Args pos;
        Object kw;
        eval_args(fargs, env, pos, kw);
        Value k = Value::object();
        k.is_kwargs = true;
        *k.obj = std::move(kw);
        pos.push_back(std::move(k));
        Value r = string_replace(operand.str(), pos);
        return make_string(r.str(), line);
      }
      fail("Unknown StringValue filter: " + name);
    }
    if (operand.is_object()) {
      Value m = object_method(operand, name);
      if (m.type == Type::Function) {
        Args args = eval_call_args(fargs, env);
        return (*m.fn)(args, env);
      }
      fail("Unknown ObjectValue filter: " + name);
    }
    fail("Cannot apply filter \"" + name + "\" to type: " + type_str(operand));
  } catch (JinjaError& e) {
    if (e.line == 0) e.line = line;
    throw;
  }
}

void Interpreter::install_globals(Env& env) {
  env.set("true", Value::boolean(true));
  env.set("false", Value::boolean(false));
  env.set("True", Value::boolean(true));
  env.set("False", Value::boolean(false));
  env.set("none", Value::null());
  env.set("None", Value::null());
  env.set("raise_exception", Value::function([](Args& args, const EnvPtr&) -> Value {
            std::string message;
            if (!args.empty() && !args[0].is_undefined() && !args[0].is_null()) {
              message = js_string(args[0]);
            }
            throw JinjaError("raise_exception: " + message, 0);
          }));
  Interpreter* self = this;
  env.set("namespace", Value::function([self](Args& args, const EnvPtr&) {
            Object kw = take_kwargs(args);
            if (args.size() > 1) {
              fail("namespace expected at most 1 argument, got " + std::to_string(args.size()));
            }
            Value ns = self->new_namespace();
            if (args.size() == 1) {
              const Value& src = args[0];
              if (src.is_object()) {
                for (const auto& [k, v] : src.obj->entries) ns.obj->set(k, v);
              } else if (src.is_array()) {
                for (const Value& p : *src.arr) {
                  if (!p.is_array() || p.arr->size() != 2) {
                    fail("namespace expected an object or an iterable of [key, value] pairs");
                  }
                  if (!(*p.arr)[0].is_string()) fail("namespace keys must be strings");
                  ns.obj->set((*p.arr)[0].str(), (*p.arr)[1]);
                }
              } else {
                fail("'" + type_str(src) + "' object is not iterable");
              }
            }
            for (const auto& [k, v] : kw.entries) ns.obj->set(k, v);
            return ns;
          }));
  env.set("range", Value::function([self](Args& args, const EnvPtr&) {
            auto num = [](const Value& v) {
              if (!v.is_number() && v.type != Type::Bool) fail("range() arguments must be numbers");
              return v.num();
            };
            if (args.empty()) fail("range expected at least 1 argument, got 0");
            double start = 0, stop = 0, step = 1;
            if (args.size() == 1) {
              stop = num(args[0]);
            } else {
              start = num(args[0]);
              stop = num(args[1]);
              if (args.size() > 2) step = num(args[2]);
            }
            if (step == 0) fail("range() step must not be zero");
            const double count = std::ceil((stop - start) / step);
            if (count > static_cast<double>(self->limits().max_items)) {
              fail("range() of more than " + std::to_string(self->limits().max_items) + " items");
            }
            Array out;
            if (step > 0) {
              for (double i = start; i < stop; i += step)
                out.push_back(number_value(i, std::fmod(i, 1) == 0));
            } else {
              for (double i = start; i > stop; i += step)
                out.push_back(number_value(i, std::fmod(i, 1) == 0));
            }
            return Value::array(std::move(out));
          }));
  env.set("strftime_now", Value::function([self](Args& args, const EnvPtr&) {
            if (args.empty() || !args[0].is_string())
              fail("strftime_now() expects a format string");
            return Value::string(strftime_js(args[0].str(), self->limits().now));
          }));
}

}  // namespace kandil::jinja
