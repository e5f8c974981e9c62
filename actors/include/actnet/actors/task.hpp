// task: C++20 coroutines in actor handlers. A handler that returns actnet::task may co_await
// what its actor (a connection or a service actor) offers: ask(target, fn), offload(work) and
// sleep(d). It resumes on the actor's loop, as the actor; if the actor has gone by then, the
// coroutine is destroyed there instead, without running further. See the README's "Awaiting
// answers".
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "actnet/result.hpp"

namespace actnet {

namespace detail {
void log_task_failure(const char* what) noexcept;  // on actnet's logger
}  // namespace detail

/// The return type of a coroutine handler: started at once (it runs in the calling handler up
/// to its first co_await), and freed when it ends. Nobody awaits a task: it is the actor's
/// own work, like a callback. An exception that leaves its body is logged and ends it.
class task {
 public:
  struct promise_type {
    task get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {
      try {
        throw;
      } catch (const std::exception& e) {
        detail::log_task_failure(e.what());
      } catch (...) {
        detail::log_task_failure("unknown exception");
      }
    }
  };
};

namespace detail {

/// Owns a suspended coroutine on behalf of the callback that will resume it: if that callback
/// is dropped without running (its actor had gone, the engine stopped), the coroutine is
/// destroyed with it. `armed` says the callback was accepted (until then, a callback dropped
/// by a refused send must leave the coroutine alone: it goes on without suspending).
class resumer {
 public:
  resumer(std::coroutine_handle<> h, const bool* armed) noexcept : h_(h), armed_(armed) {}
  resumer(resumer&& other) noexcept : h_(std::exchange(other.h_, nullptr)), armed_(other.armed_) {}
  resumer& operator=(resumer&&) = delete;
  resumer(const resumer&) = delete;
  resumer& operator=(const resumer&) = delete;
  ~resumer() {
    if (h_ && *armed_) {
      h_.destroy();
    }
  }
  void resume() { std::exchange(h_, nullptr).resume(); }

 private:
  std::coroutine_handle<> h_;
  const bool* armed_;
};

/// An awaitable over a callback API: `start(callback)` hands `callback(Answer)` to it and
/// returns an error_code ({}: it will call back). A refused start does not suspend: the answer
/// is then the error. Answer is a result<R> or an std::error_code.
template <class Answer, class Start>
class callback_awaitable {
 public:
  explicit callback_awaitable(Start start) : start_(std::move(start)) {}

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    const std::error_code refused =
        start_([slot = &answer_, r = resumer(h, &armed_)](Answer a) mutable {
          slot->emplace(std::move(a));
          r.resume();
        });
    if (refused) {
      answer_.emplace(refused);
      return false;  // not suspended: the coroutine goes on with the error
    }
    armed_ = true;
    return true;
  }
  Answer await_resume() { return std::move(*answer_); }

 private:
  Start start_;
  std::optional<Answer> answer_;
  bool armed_ = false;
};

template <class Answer, class Start>
auto awaiting(Start start) {
  return callback_awaitable<Answer, Start>(std::move(start));
}

/// What an awaited offload brings back: its value, or the exception its work threw.
template <class T>
struct outcome {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  std::variant<value_type, std::exception_ptr> v;
};

/// `work` wrapped so that it returns an outcome (an exception caught, not logged: the awaiting
/// code gets it).
template <class Work>
auto catching(Work work) {
  using T = std::invoke_result_t<Work&>;
  return [w = std::move(work)]() mutable -> outcome<T> {
    try {
      if constexpr (std::is_void_v<T>) {
        w();
        return {std::monostate{}};
      } else {
        return {w()};
      }
    } catch (...) {
      return {std::current_exception()};
    }
  };
}

/// The awaited offload's answer: result<T> (std::error_code for void), or the work's exception
/// rethrown in the awaiting code.
template <class T>
class offload_answer {
 public:
  using awaited = std::conditional_t<std::is_void_v<T>, std::error_code, result<T>>;
  offload_answer(std::error_code refused)
      : refused_(refused) {}  // NOLINT(google-explicit-constructor)
  offload_answer(outcome<T> done)
      : done_(std::move(done)) {}  // NOLINT(google-explicit-constructor)
  awaited take() {
    if (!done_) {
      return awaited(refused_);
    }
    if (auto* thrown = std::get_if<std::exception_ptr>(&done_->v)) {
      std::rethrow_exception(*thrown);
    }
    if constexpr (std::is_void_v<T>) {
      return std::error_code{};
    } else {
      return awaited(std::move(std::get<0>(done_->v)));
    }
  }

 private:
  std::error_code refused_;
  std::optional<outcome<T>> done_;
};

/// As callback_awaitable, for offload: the answer is unwrapped (or rethrown) on resumption.
template <class T, class Start>
class offload_awaitable {
 public:
  explicit offload_awaitable(Start start) : inner_(std::move(start)) {}
  [[nodiscard]] bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) { return inner_.await_suspend(h); }
  typename offload_answer<T>::awaited await_resume() { return inner_.await_resume().take(); }

 private:
  callback_awaitable<offload_answer<T>, Start> inner_;
};

template <class T, class Start>
auto awaiting_offload(Start start) {
  return offload_awaitable<T, Start>(std::move(start));
}

}  // namespace detail
}  // namespace actnet
