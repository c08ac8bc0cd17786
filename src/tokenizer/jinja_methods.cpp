// String and mapping methods of the Jinja-subset interpreter, and the text helpers filters share
// (Python-like split / replace / startswith, JavaScript parseInt / parseFloat, indent, strftime),
// all with @huggingface/jinja's behaviour.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "tokenizer/jinja_eval.h"

namespace kandil::jinja {
namespace {

[[noreturn]] void fail(const std::string& message) { throw JinjaError(message, 0); }

std::string type_str(const Value& v) { return type_name(v.type); }

}  // namespace

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

}  // namespace kandil::jinja
