// result<T>: a value or a std::error_code, for hot paths that must not throw.
#pragma once

#include <cassert>
#include <system_error>
#include <type_traits>
#include <utility>

namespace actnet {

/// Holds either a T or the error that prevented it. A small stand-in for C++23 std::expected.
template <class T>
class [[nodiscard]] result {
  static_assert(std::is_nothrow_move_constructible_v<T>);
  static_assert(std::is_default_constructible_v<T>);

 public:
  result(T value) noexcept : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  result(std::error_code error) noexcept                  // NOLINT(google-explicit-constructor)
      : code_(error.value()), category_(&error.category()) {
    assert(code_ != 0 && "a result made from an error code needs a non-zero error");
  }
  template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
  result(E error) noexcept : result(std::error_code(make_error_code(error))) {}  // NOLINT

  [[nodiscard]] bool has_value() const noexcept { return code_ == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  [[nodiscard]] std::error_code error() const noexcept {
    return code_ == 0 ? std::error_code() : std::error_code(code_, *category_);
  }

  [[nodiscard]] T& value() & noexcept {
    assert(has_value());
    return value_;
  }
  [[nodiscard]] const T& value() const& noexcept {
    assert(has_value());
    return value_;
  }
  [[nodiscard]] T&& value() && noexcept {
    assert(has_value());
    return std::move(value_);
  }
  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }

 private:
  // The error is kept as its parts: a std::error_code member would call the out-of-line
  // std::system_category() on every successful result (callgrind: the echo path's hot spot).
  T value_{};
  int code_ = 0;
  const std::error_category* category_ = nullptr;
};

}  // namespace actnet
