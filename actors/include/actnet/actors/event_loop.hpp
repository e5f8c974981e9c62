// event_loop: the loop actor. One thread, one back end (epoll), one mailbox, its timers and the
// connection actors it owns (a slot table with generation counters).
#pragma once

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <thread>
#include <utility>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/actors/detail/loop_jobs.hpp"
#include "actnet/actors/detail/message.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

class connection;
class engine;
struct engine_options;
struct dial_options;
namespace detail {
class watchdog;
class actor_host;
}  // namespace detail

/// A loop actor. Its thread runs run(); everything it owns is touched by that thread only.
/// The thread-safe members say so; the others assert the loop thread in debug builds.
class event_loop : private detail::loop_core, private detail::loop_jobs {
 public:
  event_loop(engine& owner, std::size_t index, const engine_options& options);
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;
  ~event_loop();

  /// Thread-safe. This loop's position in its engine.
  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  /// Thread-safe.
  [[nodiscard]] engine& owner() const noexcept { return owner_; }
  /// The loop-thread check that every loop-only member of a loop and of its connections runs
  /// first (muduo's assertInLoopThread): debug builds abort when the caller is not the thread
  /// running this loop (before run(), any thread passes). Release builds leave it out; see the
  /// README for what it would cost per message.
  void assert_in_loop_thread() const noexcept {
    assert(thread_id_.load(std::memory_order_relaxed) == std::thread::id{} || in_loop_thread());
  }
  /// Thread-safe: whether the caller is this loop's thread.
  [[nodiscard]] bool in_loop_thread() const noexcept {
    return thread_id_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  /// Thread-safe: runs `fn(loop)` on this loop (a mailbox message, even from the loop itself).
  /// A message that arrives after the loop has stopped is dropped, and counted in
  /// dropped_messages() when the engine finishes. errc::queue_full (nothing sent) when the
  /// mailbox holds engine_options::mailbox_cap messages.
  template <class F>
  std::error_code post(F&& fn) {
    auto closure = [f = std::forward<F>(fn)](event_loop& l, connection*, std::error_code) mutable {
      f(l);
    };
    if (on_own_thread()) {  // a handler of this loop: its local queue, in line
      return post_local(std::move(closure));
    }
    return post_user(std::move(closure));
  }
  /// Thread-safe: asks loop `target` (this one included) for a value without blocking
  /// (seastar's submit_to): `fn(event_loop&)` runs on `target`, and `then(answer)` runs back on
  /// this loop. The answer is a result<R> for an `fn` returning R (std::error_code for one
  /// returning void): the value, or handler_failed when `fn` threw (logged). Questions one
  /// thread sends to one loop are answered in the order they were sent. Nothing is answered
  /// once the engine stops. (From a connection, connection::ask runs `then` as that actor.)
  /// errc::queue_full (nothing asked, `then` never runs) when `target`'s mailbox is full.
  template <class Fn, class Then>
  std::error_code ask(event_loop& target, Fn&& fn, Then&& then) {
    return detail::send_question(target, 0, 0,
                                 detail::make_question<event_loop>(
                                     std::forward<Fn>(fn), std::forward<Then>(then), {this, 0, 0}));
  }
  /// Thread-safe: asks connection `target` (of class Conn or derived): `fn(Conn&)` runs there
  /// as that actor, and `then(answer)` on this loop; connection_closed when it had gone.
  template <class Conn, class Fn, class Then>
  std::error_code ask(const conn_ref& target, Fn&& fn, Then&& then) {
    return detail::send_question(
        *target.loop_, target.slot_, target.generation_,
        detail::make_question<Conn>(std::forward<Fn>(fn), std::forward<Then>(then), {this, 0, 0}));
  }
  /// Loop-thread only: runs `fn(conn)` for each open connection of class Conn (or derived
  /// from it) on this loop, UDP socket actors and sessions included, in slot order. `fn` may
  /// write to and close them; one that opens during the walk may or may not be visited. (For
  /// every loop at once, from any thread: engine::broadcast.)
  template <class Conn, class Fn>
  void for_each(Fn&& fn) {
    assert_in_loop_thread();
    // By index, not iterator: should fn make the table grow, the walk stays valid.
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (auto* c = dynamic_cast<Conn*>(slots_.at(i)); c != nullptr && c->is_open()) {
        fn(*c);
      }
    }
  }
  /// Thread-safe: open connections on this loop.
  [[nodiscard]] std::size_t connection_count() const noexcept {
    return connections_.load(std::memory_order_relaxed);
  }
  /// Thread-safe: messages that found their connection gone (dropped, as documented).
  [[nodiscard]] std::uint64_t dropped_messages() const noexcept {
    return dropped_.load(std::memory_order_relaxed);
  }
  /// Loop-thread only: entries in the connection slot table (its high-water mark since the
  /// last idle release; 0 after one, unless a UDP socket actor holds a slot).
  [[nodiscard]] std::size_t slot_table_size() const noexcept { return slots_.size(); }
  /// Thread-safe: datagrams dropped: from a new peer when the socket had max_sessions sessions
  /// already, or longer than read_buffer_size (never delivered cut); on io_uring also longer
  /// than a ring buffer less 144 bytes, and replies whose send through the ring failed.
  [[nodiscard]] std::uint64_t datagrams_dropped() const noexcept {
    return datagrams_dropped_.load(std::memory_order_relaxed);
  }
  /// Thread-safe: messages refused with queue_full because the mailbox was full.
  [[nodiscard]] std::uint64_t refused_messages() const noexcept {
    return refused_.load(std::memory_order_relaxed);
  }
  /// Thread-safe: how often a sender had to wake this loop (coalesced wake-ups).
  [[nodiscard]] std::uint64_t wakeups() const noexcept { return mailbox_.wakeups(); }

  /// Runs `fn` on this loop after `delay`; returns an id for cancel().
  timer_id after(std::chrono::nanoseconds delay, unique_function<void()> fn);
  bool cancel(timer_id id) noexcept;

 private:
  friend class engine;
  friend class connection;
  friend class conn_ref;
  friend class detail::dialer;
  friend class detail::datagram_sockets;
  friend void detail::offload_result(const conn_ref& target, std::uint64_t seq,
                                     unique_function<void()> deliver);
  friend std::error_code detail::send_question(event_loop& loop, std::uint32_t slot,
                                               std::uint32_t generation,
                                               detail::message_fn question);
  friend void detail::send_reply(const detail::reply_address& to, unique_function<void()> reply);
  friend class detail::loop_core;
  friend class detail::accepting;
  friend class detail::offloads;
  friend class detail::watchdog;
  friend class detail::actor_host;
};

}  // namespace actnet
