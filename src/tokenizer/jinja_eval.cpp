// Evaluator of the Jinja-subset interpreter: statements (text, if, for, set, macro, filter
// blocks) and expressions, with @huggingface/jinja's scoping (for loops and macro calls open a
// scope, if blocks do not) and operator semantics. Every node costs a step; steps, nesting,
// string and list sizes are bounded (Limits) so hostile templates end with an error.
#include "tokenizer/jinja_eval.h"

#include <cmath>

namespace kandil::jinja {
namespace {

struct BreakSignal {
  int line;
};
struct ContinueSignal {
  int line;
};

struct DepthGuard {
  DepthGuard(int& depth, int max, int line) : d(depth) {
    if (++d > max) {
      --d;
      throw JinjaError("template recursion is too deep (more than " + std::to_string(max) +
                           " nested evaluations)",
                       line);
    }
  }
  ~DepthGuard() { --d; }
  int& d;
};

[[noreturn]] void fail(const std::string& message, int line) { throw JinjaError(message, line); }

std::string type_str(const Value& v) { return type_name(v.type); }

}  // namespace

Interpreter::~Interpreter() {
  for (auto& w : namespaces_) {
    if (auto ns = w.lock()) ns->entries.clear();
  }
}

void Interpreter::step(int line) {
  if (++steps_ > limits_.max_steps) {
    fail("template exceeded the evaluation step limit (" + std::to_string(limits_.max_steps) + ")",
         line);
  }
}

Value Interpreter::make_string(std::string s, int line) const {
  if (s.size() > limits_.max_output) {
    fail("string of " + std::to_string(s.size()) + " bytes exceeds the size limit", line);
  }
  return Value::string(std::move(s));
}

Value Interpreter::make_array(Array a, int line) const {
  if (a.size() > limits_.max_items) {
    fail("list of " + std::to_string(a.size()) + " items exceeds the size limit", line);
  }
  return Value::array(std::move(a));
}

Value Interpreter::new_namespace() {
  Value v = Value::object();
  v.type = Type::Namespace;
  namespaces_.push_back(v.obj);
  return v;
}

std::string Interpreter::render(const Program& program, const Object& variables) {
  auto global = std::make_shared<Env>(nullptr);
  install_globals(*global);
  for (const auto& [k, v] : variables.entries) global->set(k, v);
  std::string out;
  try {
    render_block(program.body, global, out);
  } catch (const BreakSignal& b) {
    fail("'break' outside a loop", b.line);
  } catch (const ContinueSignal& c) {
    fail("'continue' outside a loop", c.line);
  }
  // Drop the scope's values now: macros refer to their scope weakly.
  global->vars.clear();
  return out;
}

void Interpreter::render_block(const NodeList& body, const EnvPtr& env, std::string& out) {
  for (const auto& n : body) {
    render_node(*n, env, out);
    if (out.size() > limits_.max_output) {
      fail("output exceeds " + std::to_string(limits_.max_output) + " bytes", n->line);
    }
  }
}

void Interpreter::render_node(const Node& n, const EnvPtr& env, std::string& out) {
  step(n.line);
  DepthGuard guard(depth_, limits_.max_depth, n.line);
  switch (n.kind) {
    case NodeKind::Text:
    case NodeKind::StringLit:
      out += n.str;
      return;
    case NodeKind::Comment:
      return;
    case NodeKind::If:
      render_block(eval(*n.x, env).truthy() ? n.a : n.b, env, out);
      return;
    case NodeKind::For:
      render_for(n, env, out);
      return;
    case NodeKind::Set:
      execute_set(n, env);
      return;
    case NodeKind::Macro:
      define_macro(n, env);
      return;
    case NodeKind::Break:
      throw BreakSignal{n.line};
    case NodeKind::Continue:
      throw ContinueSignal{n.line};
    case NodeKind::FilterBlock: {
      std::string body;
      render_block(n.a, env, body);
      out += to_output(apply_filter(make_string(std::move(body), n.line), *n.x, env));
      return;
    }
    default:
      out += to_output(eval(n, env));
  }
}

void Interpreter::execute_set(const Node& n, const EnvPtr& env) {
  Value rhs;
  if (n.y) {
    rhs = eval(*n.y, env);
  } else {
    std::string body;
    render_block(n.a, env, body);
    rhs = make_string(std::move(body), n.line);
  }
  const Node& target = *n.x;
  if (target.kind == NodeKind::Identifier) {
    env->set(target.str, std::move(rhs));
  } else if (target.kind == NodeKind::TupleLit) {
    if (!rhs.is_array()) fail("Cannot unpack non-iterable type in set: " + type_str(rhs), n.line);
    if (rhs.arr->size() != target.a.size()) {
      fail(std::string("Too ") + (target.a.size() > rhs.arr->size() ? "few" : "many") +
               " items to unpack in set",
           n.line);
    }
    for (size_t k = 0; k < target.a.size(); ++k) {
      if (target.a[k]->kind != NodeKind::Identifier) {
        fail("Cannot unpack to a non-identifier in set", n.line);
      }
      env->set(target.a[k]->str, (*rhs.arr)[k]);
    }
  } else if (target.kind == NodeKind::Member) {
    const Value object = eval(*target.x, env);
    if (object.type != Type::Namespace)
      fail("cannot assign attribute on non-namespace object", n.line);
    if (target.flag || target.y->kind != NodeKind::Identifier) {
      fail("Cannot assign to member with non-identifier property", n.line);
    }
    object.obj->set(target.y->str, std::move(rhs));
  } else {
    fail("invalid target of an assignment", n.line);
  }
}

namespace {

void bind_loop_variable(const Node& target, const Value& item, Env& scope, int line) {
  if (target.kind == NodeKind::Identifier) {
    scope.set(target.str, item);
    return;
  }
  for (size_t j = 0; j < target.a.size(); ++j) {
    if (target.a[j]->kind != NodeKind::Identifier) fail("Cannot unpack to a non-identifier", line);
    scope.set(target.a[j]->str,
              item.is_array() && j < item.arr->size() ? (*item.arr)[j] : Value::undefined());
  }
}

}  // namespace

void Interpreter::render_for(const Node& n, const EnvPtr& env, std::string& out) {
  auto scope = std::make_shared<Env>(env);
  Value iterable = eval(*n.y, scope);
  if (iterable.is_object()) {
    Array keys;
    for (const auto& [k, v] : iterable.obj->entries) keys.push_back(Value::string(k));
    iterable = Value::array(std::move(keys));
  } else if (!iterable.is_array()) {
    fail("Expected iterable or object type in for loop: got " + type_str(iterable), n.line);
  }
  const Node& target = *n.x;
  const Array& candidates = *iterable.arr;
  Array filtered;
  const bool plain = target.kind == NodeKind::Identifier && !n.z;
  if (!plain) {
    for (const Value& item : candidates) {
      step(n.line);
      if (target.kind == NodeKind::TupleLit) {
        if (!item.is_array()) fail("Cannot unpack non-iterable type: " + type_str(item), n.line);
        if (item.arr->size() != target.a.size()) {
          fail(std::string("Too ") + (target.a.size() > item.arr->size() ? "few" : "many") +
                   " items to unpack",
               n.line);
        }
      }
      if (n.z) {
        auto test_scope = std::make_shared<Env>(scope);
        bind_loop_variable(target, item, *test_scope, n.line);
        if (!eval(*n.z, test_scope).truthy()) continue;
      }
      filtered.push_back(item);
    }
  }
  const Array& list = plain ? candidates : filtered;
  bool no_iteration = true;
  const auto count = static_cast<int64_t>(list.size());
  for (int64_t k = 0; k < count; ++k) {
    step(n.line);
    Value loop = Value::object();
    auto& e = loop.obj->entries;
    e.emplace_back("index", Value::integer(k + 1));
    e.emplace_back("index0", Value::integer(k));
    e.emplace_back("revindex", Value::integer(count - k));
    e.emplace_back("revindex0", Value::integer(count - k - 1));
    e.emplace_back("first", Value::boolean(k == 0));
    e.emplace_back("last", Value::boolean(k == count - 1));
    e.emplace_back("length", Value::integer(count));
    e.emplace_back("previtem", k > 0 ? list[static_cast<size_t>(k - 1)] : Value::undefined());
    e.emplace_back("nextitem",
                   k + 1 < count ? list[static_cast<size_t>(k + 1)] : Value::undefined());
    scope->set("loop", std::move(loop));
    bind_loop_variable(target, list[static_cast<size_t>(k)], *scope, n.line);
    try {
      render_block(n.a, scope, out);
    } catch (const ContinueSignal&) {
      continue;
    } catch (const BreakSignal&) {
      break;
    }
    no_iteration = false;
  }
  if (no_iteration) render_block(n.b, scope, out);
  scope->vars.clear();
}

void Interpreter::define_macro(const Node& n, const EnvPtr& env) {
  env->set(n.str, macro_function(this, &n, env));
}

Value Interpreter::eval(const Node& n, const EnvPtr& env) {
  step(n.line);
  DepthGuard guard(depth_, limits_.max_depth, n.line);
  switch (n.kind) {
    case NodeKind::Identifier: {
      const Value* v = env->find(n.str);
      return v ? *v : Value::undefined();
    }
    case NodeKind::IntLit:
      return Value::integer(n.i);
    case NodeKind::FloatLit:
      return Value::number(n.f);
    case NodeKind::Text:
    case NodeKind::StringLit:
      return Value::string(n.str);
    case NodeKind::Binary:
      return eval_binary(n, env);
    case NodeKind::Unary:
      return eval_unary(n, env);
    case NodeKind::Member:
      return eval_member(n, env);
    case NodeKind::Call:
      return eval_call(n, env);
    case NodeKind::Filter:
      return apply_filter(eval(*n.x, env), *n.y, env);
    case NodeKind::Test:
      return Value::boolean(apply_test(n.str, eval(*n.x, env), nullptr, n.line) != n.flag);
    case NodeKind::Select:
      return eval(*n.y, env).truthy() ? eval(*n.x, env) : Value::undefined();
    case NodeKind::Ternary:
      return eval(*n.x, env).truthy() ? eval(*n.y, env) : eval(*n.z, env);
    case NodeKind::ArrayLit:
    case NodeKind::TupleLit: {
      Array items;
      for (const auto& c : n.a) items.push_back(eval(*c, env));
      return n.kind == NodeKind::ArrayLit ? Value::array(std::move(items))
                                          : Value::tuple(std::move(items));
    }
    case NodeKind::ObjectLit: {
      Value o = Value::object();
      for (size_t k = 0; k < n.a.size(); ++k) {
        const Value key = eval(*n.a[k], env);
        if (!key.is_string()) fail("Object keys must be strings: got " + type_str(key), n.line);
        o.obj->set(key.str(), eval(*n.b[k], env));
      }
      return o;
    }
    case NodeKind::CallBlock:
      return call_block(n, env);
    case NodeKind::If:
    case NodeKind::For:
    case NodeKind::FilterBlock: {
      std::string out;
      render_node(n, env, out);
      return make_string(std::move(out), n.line);
    }
    case NodeKind::Set:
      execute_set(n, env);
      return Value::null();
    case NodeKind::Macro:
      define_macro(n, env);
      return Value::null();
    case NodeKind::Comment:
      return Value::null();
    case NodeKind::Break:
      throw BreakSignal{n.line};
    case NodeKind::Continue:
      throw ContinueSignal{n.line};
    default:
      fail("unexpected expression", n.line);
  }
}

Value Interpreter::eval_unary(const Node& n, const EnvPtr& env) {
  const Value arg = eval(*n.x, env);
  if (n.str == "not") return Value::boolean(!arg.truthy());
  const int sign = n.str == "-" ? -1 : 1;
  if (arg.type == Type::Float) return Value::number(sign * arg.f);
  if (arg.type == Type::Int) return Value::integer(sign * arg.i);
  if (arg.type == Type::Bool) return Value::integer(sign * (arg.b ? 1 : 0));
  fail("Unknown operator \"" + n.str + "\" for " + type_str(arg), n.line);
}

Value Interpreter::eval_binary(const Node& n, const EnvPtr& env) {
  const std::string& op = n.str;
  const Value left = eval(*n.x, env);
  if (op == "and") return left.truthy() ? eval(*n.y, env) : left;
  if (op == "or") return left.truthy() ? left : eval(*n.y, env);
  const Value right = eval(*n.y, env);
  if (op == "==") return Value::boolean(loose_equals(left, right));
  if (op == "!=") return Value::boolean(!loose_equals(left, right));
  if (left.is_number() && right.is_number() && op != "~" && op != "**") {
    const double a = left.num(), b = right.num();
    const bool is_float = left.type == Type::Float || right.type == Type::Float;
    auto number = [&](double r) {
      if (is_float || !std::isfinite(r)) return Value::number(r);
      if (std::fabs(r) >= 9.2e18) fail("integer overflow", n.line);
      return Value::integer(static_cast<int64_t>(r));
    };
    if (op == "+") return number(a + b);
    if (op == "-") return number(a - b);
    if (op == "*") return number(a * b);
    if (op == "/") return Value::number(a / b);
    if (op == "//") return number(std::floor(a / b));
    if (op == "%") {
      if (b == 0 && !is_float) fail("integer modulo by zero", n.line);
      return number(std::fmod(a, b));
    }
    if (op == "<") return Value::boolean(a < b);
    if (op == ">") return Value::boolean(a > b);
    if (op == ">=") return Value::boolean(a >= b);
    if (op == "<=") return Value::boolean(a <= b);
  } else if (left.is_undefined() || right.is_undefined()) {
    if (right.is_undefined() && (op == "in" || op == "not in")) {
      return Value::boolean(op == "not in");
    }
    if (op == "~" && !left.is_null() && !right.is_null()) {
      return make_string((left.is_undefined() ? "" : js_string(left)) +
                             (right.is_undefined() ? "" : js_string(right)),
                         n.line);
    }
    fail("Cannot perform operation " + op + " on undefined values", n.line);
  } else if (left.is_null() || right.is_null()) {
    fail("Cannot perform operation " + op + " on null values", n.line);
  } else if (op == "~") {
    return make_string(js_string(left) + js_string(right), n.line);
  } else if (op == "**" && (left.is_number() || left.type == Type::Bool) &&
             (right.is_number() || right.type == Type::Bool)) {
    const double a = left.num(), b = right.num();
    if (a == 0 && b < 0) fail("0.0 cannot be raised to a negative power", n.line);
    const double r = std::pow(a, b);
    if (!std::isfinite(r)) fail("Exponentiation result is not a finite real number", n.line);
    if (left.type == Type::Float || right.type == Type::Float || b < 0) return Value::number(r);
    if (std::fabs(r) >= 9.2e18) fail("integer overflow", n.line);
    return Value::integer(static_cast<int64_t>(r));
  } else if (left.is_array() && right.is_array()) {
    if (op == "+") {
      Array joined = *left.arr;
      if (joined.size() + right.arr->size() > limits_.max_items) {
        fail("list exceeds the size limit", n.line);
      }
      joined.insert(joined.end(), right.arr->begin(), right.arr->end());
      return Value::array(std::move(joined));
    }
  } else if (right.is_array() && (op == "in" || op == "not in")) {
    bool member = false;
    for (const Value& x : *right.arr) {
      if (strict_equals(x, left)) {
        member = true;
        break;
      }
    }
    return Value::boolean(member == (op == "in"));
  }
  if ((left.is_string() || right.is_string()) && op == "+") {
    return make_string(js_string(left) + js_string(right), n.line);
  }
  if (left.is_string() && right.is_string() && (op == "in" || op == "not in")) {
    const bool found = right.str().find(left.str()) != std::string::npos;
    return Value::boolean(found == (op == "in"));
  }
  if (left.is_string() && right.is_object() && (op == "in" || op == "not in")) {
    const bool found = right.obj->find(left.str()) != nullptr;
    return Value::boolean(found == (op == "in"));
  }
  fail("Unknown operator \"" + op + "\" between " + type_str(left) + " and " + type_str(right),
       n.line);
}

Value Interpreter::eval_slice(const Value& object, const Node& s, const EnvPtr& env) {
  if (!object.is_array() && !object.is_string()) {
    fail("Slice object must be an array or string", s.line);
  }
  const Value start = s.x ? eval(*s.x, env) : Value::undefined();
  const Value stop = s.y ? eval(*s.y, env) : Value::undefined();
  const Value stepv = s.z ? eval(*s.z, env) : Value::undefined();
  for (const Value* v : {&start, &stop, &stepv}) {
    if (v->type != Type::Int && !v->is_undefined()) {
      fail("Slice indices must be integers or undefined", s.line);
    }
  }
  std::vector<std::string> chars;
  if (object.is_string()) chars = code_points(object.str());
  const auto len = static_cast<int64_t>(object.is_string() ? chars.size() : object.arr->size());
  const int64_t st = stepv.is_undefined() ? 1 : stepv.i;
  const int64_t dir = st > 0 ? 1 : st < 0 ? -1 : 0;
  int64_t b, e;
  if (dir >= 0) {
    b = start.is_undefined() ? 0
        : start.i < 0        ? std::max<int64_t>(len + start.i, 0)
                             : std::min(start.i, len);
    e = stop.is_undefined() ? len
        : stop.i < 0        ? std::max<int64_t>(len + stop.i, 0)
                            : std::min(stop.i, len);
  } else {
    b = start.is_undefined() ? len - 1
        : start.i < 0        ? std::max<int64_t>(len + start.i, -1)
                             : std::min(start.i, len - 1);
    e = stop.is_undefined() ? -1
        : stop.i < -1       ? std::max<int64_t>(len + stop.i, -1)
                            : std::min(stop.i, len - 1);
  }
  Array items;
  std::string text;
  for (int64_t k = b; dir * k < dir * e; k += st) {
    if (object.is_string()) {
      text += chars[static_cast<size_t>(k)];
    } else {
      items.push_back((*object.arr)[static_cast<size_t>(k)]);
    }
  }
  if (object.is_string()) return Value::string(std::move(text));
  return Value::array(std::move(items));
}

Value Interpreter::eval_member(const Node& n, const EnvPtr& env) {
  const Value object = eval(*n.x, env);
  Value property;
  if (n.flag) {
    if (n.y->kind == NodeKind::Slice) return eval_slice(object, *n.y, env);
    property = eval(*n.y, env);
  } else if (n.y->kind == NodeKind::IntLit) {
    property = Value::integer(n.y->i);
  } else {
    property = Value::string(n.y->str);
  }
  return member(object, property, n.line);
}

Args Interpreter::eval_call_args(const NodeList& args, const EnvPtr& env) {
  bool special = false;
  for (const auto& a : args) {
    special = special || a->kind == NodeKind::KwArg || a->kind == NodeKind::Spread ||
              a->kind == NodeKind::KwSpread;
  }
  Args out;
  if (!special) {
    for (const auto& a : args) out.push_back(eval(*a, env));
    return out;
  }
  Object kw;
  eval_args(args, env, out, kw);
  if (!kw.entries.empty()) {
    Value k = Value::object();
    k.is_kwargs = true;
    *k.obj = std::move(kw);
    out.push_back(std::move(k));
  }
  return out;
}

void Interpreter::eval_args(const NodeList& args, const EnvPtr& env, Args& positional,
                            Object& keyword) {
  for (const auto& a : args) {
    if (a->kind == NodeKind::Spread) {
      const Value v = eval(*a->x, env);
      if (!v.is_array()) fail("Cannot unpack non-iterable type: " + type_str(v), a->line);
      positional.insert(positional.end(), v.arr->begin(), v.arr->end());
    } else if (a->kind != NodeKind::KwArg && a->kind != NodeKind::KwSpread) {
      positional.push_back(eval(*a, env));
    }
  }
  auto add = [&](const std::string& key, Value v, int line) {
    if (keyword.find(key)) fail("Got multiple values for keyword argument '" + key + "'", line);
    keyword.entries.emplace_back(key, std::move(v));
  };
  for (const auto& a : args) {
    if (a->kind == NodeKind::KwArg) {
      add(a->str, eval(*a->x, env), a->line);
    } else if (a->kind == NodeKind::KwSpread) {
      const Value v = eval(*a->x, env);
      if (!v.is_object()) fail("Argument after ** must be a mapping, not " + type_str(v), a->line);
      for (const auto& [k, x] : v.obj->entries) add(k, x, a->line);
    }
  }
}

Value Interpreter::eval_call(const Node& n, const EnvPtr& env) {
  Args args = eval_call_args(n.a, env);
  const Value fn = eval(*n.x, env);
  if (fn.type != Type::Function) {
    fail("Cannot call something that is not a function: got " + type_str(fn), n.line);
  }
  try {
    return (*fn.fn)(args, env);
  } catch (JinjaError& e) {
    if (e.line == 0) e.line = n.line;
    throw;
  }
}

namespace {

void bind_macro_arguments(Interpreter* interp, const Node& macro, Args args, const EnvPtr& env,
                          const NodeList* defaults = nullptr) {
  Env& scope = *env;
  Object kwargs;
  if (!args.empty() && args.back().is_kwargs) {
    kwargs = *args.back().obj;
    args.pop_back();
  }
  std::vector<std::pair<std::string, const Node*>> pending;
  for (size_t k = 0; k < macro.a.size(); ++k) {
    const Node& p = *macro.a[k];
    const std::string& name = p.str;
    Value v = Value::undefined();
    bool given = false;
    if (k < args.size()) {
      v = args[k];
      given = true;
    } else if (const Value* kv = kwargs.find(name)) {
      v = *kv;
      kwargs.erase(name);
      given = true;
    }
    if (!given && p.kind == NodeKind::KwArg) {
      pending.emplace_back(name, defaults ? (*defaults)[k]->x.get() : p.x.get());
    }
    scope.set(name, std::move(v));
  }
  if (macro.uses_kwargs) {
    Value k = Value::object();
    *k.obj = std::move(kwargs);
    scope.set("kwargs", std::move(k));
  } else if (!kwargs.entries.empty()) {
    fail("macro '" + macro.str + "' takes no keyword argument '" + kwargs.entries[0].first + "'",
         macro.line);
  }
  if (macro.uses_varargs) {
    Array rest;
    for (size_t k = macro.a.size(); k < args.size(); ++k) rest.push_back(args[k]);
    scope.set("varargs", Value::array(std::move(rest)));
  } else if (args.size() > macro.a.size()) {
    fail("macro '" + macro.str + "' takes not more than " + std::to_string(macro.a.size()) +
             " argument(s)",
         macro.line);
  }
  for (const auto& [name, def] : pending) scope.set(name, interp->eval(*def, env));
}

}  // namespace

Value macro_function(Interpreter* interp, const Node* macro, const EnvPtr& scope) {
  std::weak_ptr<Env> weak = scope;
  return Value::function([interp, macro, weak](Args& args, const EnvPtr& call_site) -> Value {
    auto parent = weak.lock();
    if (!parent) fail("macro '" + macro->str + "' is called after its scope ended", macro->line);
    if (macro->uses_caller) {
      const Value* caller =
          call_site && call_site->call_block ? call_site->find("caller") : nullptr;
      parent = std::make_shared<Env>(parent);
      parent->set("caller", caller ? *caller : Value::undefined());
    }
    auto local = std::make_shared<Env>(parent);
    bind_macro_arguments(interp, *macro, args, local);
    std::string out;
    interp->render_block(macro->b, local, out);
    local->vars.clear();
    return interp->make_string(std::move(out), macro->line);
  });
}

Value Interpreter::call_block(const Node& n, const EnvPtr& env) {
  std::weak_ptr<Env> weak = env;
  const Node* block = &n;
  Interpreter* self = this;
  Value caller = Value::function([self, block, weak](Args& args, const EnvPtr&) -> Value {
    auto parent = weak.lock();
    if (!parent) fail("caller() is called after its block ended", block->line);
    auto local = std::make_shared<Env>(parent);
    Node params;  // the caller's parameters, bound like a macro's
    params.kind = NodeKind::Macro;
    params.line = block->line;
    params.str = "None";
    params.uses_kwargs = block->uses_kwargs;
    params.uses_varargs = block->uses_varargs;
    for (const auto& p : block->a) {
      auto copy = std::make_unique<Node>();
      copy->kind = p->kind;
      copy->line = p->line;
      copy->str = p->str;
      params.a.push_back(std::move(copy));
    }
    // Defaults are evaluated from the original nodes.
    bind_macro_arguments(self, params, args, local, &block->a);
    std::string out;
    self->render_block(block->b, local, out);
    local->vars.clear();
    return self->make_string(std::move(out), block->line);
  });
  const Node& call = *n.x;
  Args args;
  Object kw;
  eval_args(call.a, env, args, kw);
  Value k = Value::object();
  k.is_kwargs = true;
  *k.obj = std::move(kw);
  args.push_back(std::move(k));
  const Value fn = eval(*call.x, env);
  if (fn.type != Type::Function) {
    fail("Cannot call something that is not a function: got " + type_str(fn), n.line);
  }
  auto site = std::make_shared<Env>(env);
  site->call_block = true;
  site->set("caller", std::move(caller));
  Value result = (*fn.fn)(args, site);
  site->vars.clear();
  return result;
}

}  // namespace kandil::jinja
