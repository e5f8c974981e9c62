// conn_ref: the address of a connection actor, safe to copy and use from any thread.
#pragma once

#include <cassert>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "actnet/buffers/block.hpp"
#include "actnet/error.hpp"
#include "actnet/result.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

namespace detail {
class dialer;
class loop_core;
class datagram_sockets;
}  // namespace detail

class actor;
class connection;
class event_loop;

namespace detail {
/// What a mailbox message runs on its loop: the loop, the target connection (null when there
/// is none or it has gone) and an error for completions.
using message_fn = unique_function<void(event_loop&, connection*, std::error_code)>;
/// The kinds of mailbox message (see detail::message in event_loop.hpp).
enum class message_kind : std::uint8_t {
  none,
  closure,
  tell,
  ask,
  async_write,
  close,
  wake,
  adopt,
  stop
};
}  // namespace detail

/// The default completion of an async write: none.
struct no_callback {
  void operator()(std::error_code /*unused*/) const noexcept {}
};

class conn_ref;
namespace detail {
void offload_result(const conn_ref& target, std::uint64_t seq, unique_function<void()> deliver);

// -- ask: a question to a loop or a connection, and its reply to the asker --

struct actor_cell;

/// Where a reply goes: the asking connection (slot and generation), the asking service actor
/// (`cell` and generation), or, with generation 0, the asking loop itself.
struct reply_address {
  event_loop* loop = nullptr;
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  actor_cell* cell = nullptr;
};

/// Sends `question` to `loop`: it runs there with the connection (slot, generation), or with
/// none when generation is 0 (a question for the loop); with (nullptr, connection_closed) when
/// that connection has gone.
std::error_code send_question(event_loop& loop, std::uint32_t slot, std::uint32_t generation,
                              message_fn question);  // bounded: queue_full
/// Runs `reply` on the asker's loop: as the asking connection (dropped and counted when it has
/// gone, like a tell) or as a closure on the asking loop.
void send_reply(const reply_address& to, unique_function<void()> reply);
void log_ask_failure(event_loop& loop, const char* what) noexcept;  // on its engine's logger

/// What an asker's `then` receives: the answer, or why there is none. A question whose handler
/// returns nothing is answered with an error code ({} when it ran).
template <class R>
struct answer_of {
  static_assert(std::is_default_constructible_v<R> && std::is_nothrow_move_constructible_v<R>,
                "ask: the answer must be default-constructible and nothrow-movable (wrap it in "
                "std::optional or std::unique_ptr otherwise)");
  using type = result<R>;
};
template <>
struct answer_of<void> {
  using type = std::error_code;
};

/// The answer of an ask: `answer(loop, target, ec)` runs `fn(*target)` on the target's loop
/// (unless `ec`, which is then the answer) and sends `then(answer)` back. A handler that throws
/// is logged and answered with errc::handler_failed.
template <class Target, class Fn, class Then>
auto make_answer(Fn&& fn, Then&& then, reply_address back) {
  return [f = std::forward<Fn>(fn), t = std::forward<Then>(then), back](
             event_loop& loop, Target* target, std::error_code ec) mutable {
    using value = std::invoke_result_t<std::decay_t<Fn>&, Target&>;
    using answer = typename answer_of<value>::type;
    static_assert(std::is_invocable_v<std::decay_t<Then>&, answer>,
                  "ask: `then` must take the answer: result<R> for a handler returning R, "
                  "std::error_code for one returning void");
    answer a = [&]() -> answer {
      if (ec) {
        return answer(ec);
      }
      try {
        if constexpr (std::is_void_v<value>) {
          f(*target);
          return std::error_code{};
        } else {
          return answer(f(*target));
        }
      } catch (const std::exception& e) {
        log_ask_failure(loop, e.what());
      } catch (...) {
        log_ask_failure(loop, "unknown exception");
      }
      return answer(make_error_code(errc::handler_failed));
    }();
    send_reply(back, [t = std::move(t), a = std::move(a)]() mutable { t(std::move(a)); });
  };
}

/// The question of an ask: runs `fn(target)` on the target's loop (Target is event_loop for a
/// loop, else the connection class) and sends `then(answer)` back, as make_answer.
template <class Target, class Fn, class Then>
message_fn make_question(Fn&& fn, Then&& then, reply_address back) {
  return [a = make_answer<Target>(std::forward<Fn>(fn), std::forward<Then>(then), back)](
             event_loop& loop, connection* c, std::error_code ec) mutable {
    if constexpr (std::is_same_v<Target, event_loop>) {
      a(loop, &loop, ec);
    } else {
      assert((ec || dynamic_cast<Target*>(c) != nullptr) &&
             "ask<Conn>: the connection is not a Conn");
      a(loop, static_cast<Target*>(c), ec);
    }
  };
}

}  // namespace detail

/// Names a connection actor by (loop, slot, generation). Every operation is a mailbox message
/// to the owning loop, so all are thread-safe and none blocks; a message that reaches a
/// connection that has gone is dropped and counted (event_loop::dropped_messages()), never a
/// crash (an async write's completion gets connection_closed). Messages one thread sends to
/// one loop (to any of its connections, or the loop itself) are handled in the order they were
/// sent; there is no order among different senders. Closures of up to 48 bytes travel without
/// a heap allocation. A conn_ref must not be used after its engine is destroyed.
class conn_ref {
 public:
  conn_ref() noexcept = default;

  [[nodiscard]] bool valid() const noexcept { return loop_ != nullptr; }
  [[nodiscard]] event_loop* loop() const noexcept { return loop_; }

  /// Copies `bytes` into a pooled block and writes it on the owning loop. `done(error_code)`
  /// runs there once the bytes are written or buffered ({}), or with errc::connection_closed /
  /// errc::engine_stopped when they could not be: connection_closed also when this write
  /// failed and closed the connection (a socket error, the outbound cap), whose on_close gets
  /// the reason. It must not block. Returns errc::queue_full (nothing sent, `done` never runs)
  /// when the loop's mailbox is full (engine_options::mailbox_cap); so does tell().
  template <class Done = no_callback>
  std::error_code async_write(std::span<const std::byte> bytes, Done done = {}) const {
    return send_write(block::copy_of(bytes), completion(std::move(done)));
  }
  template <class Done = no_callback>
  std::error_code async_write(std::string_view text, Done done = {}) const {
    return async_write(std::as_bytes(std::span(text.data(), text.size())), std::move(done));
  }
  /// Writes a caller-filled block without copying it.
  template <class Done = no_callback>
  std::error_code async_write(block payload, Done done = {}) const {
    return send_write(std::move(payload), completion(std::move(done)));
  }
  /// Writes `parts` back to back as one message (copied into one block).
  template <class Done = no_callback>
  std::error_code async_writev(std::span<const std::span<const std::byte>> parts,
                               Done done = {}) const {
    return send_write(gather(parts), completion(std::move(done)));
  }
  /// Closes the connection after its pending output is flushed.
  void close() const;
  /// Runs on_data() again with whatever is buffered inbound (gnet's Wake).
  void wake() const;
  /// Runs `fn(conn)` on the owning loop as the connection actor, if it still exists. `Conn`
  /// must be the connection's class or one of its bases.
  template <class Conn, class F>
  std::error_code tell(F&& fn) const {
    return send_user_tell(
        [fn = std::forward<F>(fn)](event_loop&, connection* c, std::error_code) mutable {
          assert(dynamic_cast<Conn*>(c) != nullptr && "tell<Conn>: the connection is not a Conn");
          fn(static_cast<Conn&>(*c));
        });
  }

  friend bool operator==(const conn_ref&, const conn_ref&) = default;

 private:
  friend class actor;
  friend class connection;
  friend class event_loop;
  friend class detail::loop_core;
  friend class detail::dialer;
  friend class detail::datagram_sockets;
  friend void detail::offload_result(const conn_ref& target, std::uint64_t seq,
                                     unique_function<void()> deliver);
  friend void detail::send_reply(const detail::reply_address& to, unique_function<void()> reply);
  conn_ref(event_loop* loop, std::uint32_t slot, std::uint32_t generation) noexcept
      : loop_(loop), slot_(slot), generation_(generation) {}

  template <class Done>
  static detail::message_fn completion(Done&& done) {
    if constexpr (std::is_same_v<std::decay_t<Done>, no_callback>) {
      return nullptr;
    } else {
      return [d = std::forward<Done>(done)](event_loop&, connection*, std::error_code ec) mutable {
        d(ec);
      };
    }
  }
  static block gather(std::span<const std::span<const std::byte>> parts);
  void send(detail::message_kind kind, block payload, detail::message_fn fn) const;
  [[nodiscard]] std::error_code send_write(block payload, detail::message_fn done) const;
  void send_tell(detail::message_fn fn) const;  // the engine's own: never refused
  [[nodiscard]] std::error_code send_user_tell(detail::message_fn fn) const;  // bounded

  event_loop* loop_ = nullptr;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
};

}  // namespace actnet
