// Errors as values: every fallible operation at the engine's edges returns Result<T>.
// The message names the file / offset / field and what was expected (ARCHITECTURE.md, principle 5).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace kandil {

struct Error {
  std::string message;

  // Prefixes context ("file.gguf: ") so errors read outermost-first.
  Error with_context(const std::string& context) const { return Error{context + ": " + message}; }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error)
      : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

}  // namespace kandil

// Propagates an error from an expression returning Result<...>.
#define KANDIL_CHECK_OK(expr)                                \
  do {                                                       \
    auto kandil_result_ = (expr);                            \
    if (!kandil_result_.ok()) return kandil_result_.error(); \
  } while (0)
