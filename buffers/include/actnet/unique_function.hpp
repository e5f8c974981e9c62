// unique_function: a move-only callable with inline storage, so mailbox messages and timers
// carrying small closures allocate nothing (std::move_only_function is C++23).
#pragma once

#include <cstddef>
#include <cstring>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace actnet {

template <class Signature>
class unique_function;

/// Holds any move-only callable. Callables up to inline_size bytes (and nothrow-movable) live
/// inside the object; larger ones are put on the heap.
template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  static constexpr std::size_t inline_size = 48;

  unique_function() noexcept = default;
  unique_function(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)

  template <class F, class D = std::decay_t<F>,
            class = std::enable_if_t<!std::is_same_v<D, unique_function> &&
                                     std::is_invocable_r_v<R, D&, Args...>>>
  unique_function(F&& f) {  // NOLINT(google-explicit-constructor)
    if constexpr (stored_inline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      invoke_ = [](void* s, Args&&... args) -> R {
        return call<R>(*static_cast<D*>(s), std::forward<Args>(args)...);
      };
      // A closure of pointers and numbers (the usual message) has no manager: it moves as
      // bytes and needs no destruction, so a move or a reset calls nothing.
      if constexpr (!trivially_relocatable<D>) {
        manage_ = [](void* self, void* to) noexcept {
          auto* d = static_cast<D*>(self);
          if (to != nullptr) {
            ::new (to) D(std::move(*d));
          }
          d->~D();
        };
      }
    } else {
      *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
      invoke_ = [](void* s, Args&&... args) -> R {
        return call<R>(**static_cast<D**>(s), std::forward<Args>(args)...);
      };
      manage_ = [](void* self, void* to) noexcept {
        D*& d = *static_cast<D**>(self);
        if (to != nullptr) {
          *static_cast<D**>(to) = d;
        } else {
          delete d;
        }
        d = nullptr;
      };
    }
  }

  unique_function(unique_function&& other) noexcept { take(other); }
  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  unique_function& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;
  // reset() deletes a heap-stored callable through manage_, a function pointer that
  // clang-analyzer does not follow: it reports a leak that ASan's leak checker never sees.
  ~unique_function() { reset(); }  // NOLINT(clang-analyzer-cplusplus.NewDeleteLeaks)

  explicit operator bool() const noexcept { return invoke_ != nullptr; }

  R operator()(Args... args) { return invoke_(storage_, std::forward<Args>(args)...); }

  /// Whether a callable of type F is stored without a heap allocation.
  // NOLINTBEGIN(misc-redundant-expression): a constant per F, true for some and not others
  template <class F>
  static constexpr bool stored_inline =
      sizeof(F) <= inline_size &&
      alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;
  // NOLINTEND(misc-redundant-expression)
  /// Whether an inline F is moved by copying its bytes (and never destroyed).
  template <class F>
  static constexpr bool trivially_relocatable =
      std::is_trivially_copyable_v<F>&& std::is_trivially_destructible_v<F>;

 private:
  // Calls `f`; a void signature discards whatever f returns.
  template <class Ret, class F, class... A>
  static Ret call(F& f, A&&... args) {
    if constexpr (std::is_void_v<Ret>) {
      std::invoke(f, std::forward<A>(args)...);
    } else {
      return std::invoke(f, std::forward<A>(args)...);
    }
  }

  void take(unique_function& other) noexcept {
    if (other.manage_ != nullptr) {
      other.manage_(other.storage_, storage_);
    } else {
      std::memcpy(storage_, other.storage_, inline_size);  // trivially relocatable, or empty
    }
    invoke_ = std::exchange(other.invoke_, nullptr);
    manage_ = std::exchange(other.manage_, nullptr);
  }
  void reset() noexcept {
    if (manage_ != nullptr) {
      manage_(storage_, nullptr);
    }
    invoke_ = nullptr;
    manage_ = nullptr;
  }

  // Zeroed (three vector stores), so that a move may copy all of it as bytes whatever the
  // callable wrote of it.
  alignas(std::max_align_t) std::byte storage_[inline_size]{};
  R (*invoke_)(void*, Args&&...) = nullptr;
  void (*manage_)(void* self, void* to) noexcept = nullptr;
};

}  // namespace actnet
