// Evaluator of the Jinja-subset interpreter: scopes, statements and expressions
// (jinja_eval.cpp) and the built-in filters, tests, methods and globals (jinja_builtins.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace kandil::jinja {

struct Limits {
  int64_t max_steps = 20'000'000;  // evaluated nodes, all loops included
  size_t max_output = 64u << 20;   // bytes of output and of any one string
  size_t max_items = 1u << 20;     // elements of any one list (range(), +)
  int max_depth = 400;             // nested evaluation (macro recursion included)
  int64_t now = -1;                // strftime_now's clock (Unix seconds); -1: the real clock
};

// A scope. Lookups walk up to the template's global scope.
class Env {
 public:
  explicit Env(std::shared_ptr<Env> parent_) : parent(std::move(parent_)) {}
  const Value* find(const std::string& name) const {
    for (const Env* e = this; e; e = e->parent.get()) {
      auto it = e->vars.find(name);
      if (it != e->vars.end()) return &it->second;
    }
    return nullptr;
  }
  void set(const std::string& name, Value v) { vars[name] = std::move(v); }

  std::shared_ptr<Env> parent;
  std::unordered_map<std::string, Value> vars;
  bool call_block = false;  // the scope a {% call %} block calls its macro from
};
using EnvPtr = std::shared_ptr<Env>;

class Interpreter {
 public:
  explicit Interpreter(const Limits& limits) : limits_(limits) {}
  ~Interpreter();

  // Renders a program with these top-level variables.
  std::string render(const Program& program, const Object& variables);

  // -- used by jinja_builtins.cpp --
  Value eval(const Node& n, const EnvPtr& env);
  void render_block(const NodeList& body, const EnvPtr& env, std::string& out);
  Value apply_filter(const Value& operand, const Node& filter, const EnvPtr& env);
  bool apply_test(const std::string& name, const Value& operand, const Value* arg, int line);
  Value member(const Value& object, const Value& property, int line);
  // Positional arguments, then one kwargs object when there are keyword arguments.
  Args eval_call_args(const NodeList& args, const EnvPtr& env);
  void eval_args(const NodeList& args, const EnvPtr& env, Args& positional, Object& keyword);
  Value make_string(std::string s, int line) const;
  Value make_array(Array a, int line) const;
  Value new_namespace();
  void install_globals(Env& env);
  const Limits& limits() const { return limits_; }

 private:
  void step(int line);
  void render_node(const Node& n, const EnvPtr& env, std::string& out);
  void render_for(const Node& n, const EnvPtr& env, std::string& out);
  void execute_set(const Node& n, const EnvPtr& env);
  void define_macro(const Node& n, const EnvPtr& env);
  Value call_block(const Node& n, const EnvPtr& env);
  Value eval_binary(const Node& n, const EnvPtr& env);
  Value eval_unary(const Node& n, const EnvPtr& env);
  Value eval_member(const Node& n, const EnvPtr& env);
  Value eval_slice(const Value& object, const Node& slice, const EnvPtr& env);
  Value eval_call(const Node& n, const EnvPtr& env);

  Limits limits_;
  int64_t steps_ = 0;
  int depth_ = 0;
  // Namespaces are the only mutable containers; their entries are cleared after rendering so
  // reference cycles (a namespace holding itself) cannot leak.
  std::vector<std::weak_ptr<Object>> namespaces_;
};

// A macro's body, parameters and defining scope, called as a function.
Value macro_function(Interpreter* interp, const Node* macro, const EnvPtr& scope);

}  // namespace kandil::jinja
