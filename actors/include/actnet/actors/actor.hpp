// actor: service actors, which live on a loop like connections but own no socket, and
// actor_ref, their address. engine::spawn makes one; see the README's "Service actors".
#pragma once

#include <cassert>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/detail/actor_base.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

class actor;
class engine;
class event_loop;
template <class A>
class actor_ref;

namespace detail {

/// Where an actor lives on its loop: made by the loop's actor_host, never freed before the
/// loop, and used again by the next actor once its own has stopped (the generation then
/// changes, so an actor_ref to the old one finds nothing). `generation` is written by the
/// loop's thread, under the host's lock, and read by any; the rest is the loop's only.
struct actor_cell {
  std::atomic<std::uint32_t> generation{1};
  actor* resident = nullptr;  // the actor, from on_start until it is freed
  bool running = false;       // on_start has run, stop has not been asked
  bool pending = false;       // spawned, on_start not yet run: mail waits in `early`
  // Its loop's record of the actor whose handler runs (the stall detector's).
  std::atomic<const actor_base*>* running_now = nullptr;
  std::vector<unique_function<void(actor*)>> early;  // mail that came before on_start
  // watch(): what runs when this actor stops, each on its watcher's loop as the watcher.
  struct watcher {
    reply_address to;
    unique_function<void()> fn;
  };
  std::vector<watcher> watchers;
};

/// An actor's place: what an actor_ref holds.
struct actor_cell_ref {
  event_loop* loop = nullptr;
  actor_cell* cell = nullptr;
  std::uint32_t generation = 0;
};

/// What a message for (cell, generation) finds on the loop: the running actor (noted as the one
/// running, for the stall detector), or null when it has not started or has stopped.
/// Loop-thread only. (In line below, once actor is complete.)
actor* enter_actor(actor_cell& cell, std::uint32_t generation) noexcept;
/// `fn(actor*)` to run once the pending actor has started (null if it never does).
void defer_to_start(actor_cell& cell, unique_function<void(actor*)> fn);
/// Whether (cell, generation) is spawned but not started yet. Loop-thread only.
[[nodiscard]] inline bool starting(const actor_cell& cell, std::uint32_t generation) noexcept {
  return cell.pending && cell.generation.load(std::memory_order_relaxed) == generation;
}
/// event_loop::post (a bounded mailbox message: queue_full when it is full), where event_loop
/// is complete (a template, so this header need not include event_loop.hpp).
template <class Loop, class Fn>
std::error_code post_to_actor(Loop& loop, Fn&& fn) {
  return loop.post(std::forward<Fn>(fn));
}
/// Counts a message that found its actor stopped (event_loop::dropped_messages()).
void count_dropped(event_loop& loop) noexcept;

/// A message for an actor of class A at (cell, generation): runs `fn(A*)` as the actor (after
/// its on_start, when that has not run yet), or `fn(nullptr)` when the actor has stopped (the
/// message is then counted as dropped).
template <class A, class Fn>
auto actor_message(actor_cell* cell, std::uint32_t generation, Fn&& fn) {
  return [cell, generation, f = std::forward<Fn>(fn)](event_loop& loop) mutable {
    if (actor* a = enter_actor(*cell, generation); a != nullptr) [[likely]] {
      assert(dynamic_cast<A*>(a) != nullptr && "actor_ref<A>: the actor is not an A");
      f(static_cast<A*>(a));
    } else if (starting(*cell, generation)) {
      defer_to_start(*cell,
                     [f = std::move(f)](actor* started) mutable { f(static_cast<A*>(started)); });
    } else {
      count_dropped(loop);
      f(nullptr);
    }
  };
}

/// Asks the actor at (cell, generation) on `loop`: `fn(A&)` there, `then(answer)` back at
/// `back`; errc::actor_stopped when it has stopped.
template <class A, class Fn, class Then>
std::error_code ask_actor(event_loop& loop, actor_cell* cell, std::uint32_t generation, Fn&& fn,
                          Then&& then, reply_address back) {
  return post_to_actor(
      loop, actor_message<A>(
                cell, generation,
                [l = &loop, q = make_answer<A>(std::forward<Fn>(fn), std::forward<Then>(then),
                                               back)](A* a) mutable {
                  q(*l, a, a != nullptr ? std::error_code{} : make_error_code(errc::actor_stopped));
                }));
}

/// Where actor_ref::ask's answer goes: the calling loop when called on one, else `target`.
[[nodiscard]] reply_address reply_here(event_loop& target) noexcept;

void watch_actor(event_loop& loop, actor_cell* cell, std::uint32_t generation, reply_address to,
                 unique_function<void()> fn);
void stop_actor(event_loop& loop, actor_cell* cell, std::uint32_t generation);

}  // namespace detail

/// The address of a service actor of class A (or of a class derived from it): copyable,
/// thread-safe to use, valid until its engine is destroyed. Every operation is a message to
/// the actor's loop; one that reaches an actor that has stopped is dropped and counted
/// (event_loop::dropped_messages()). Messages one thread sends to one loop run in the order they
/// were sent, those to actors and connections alike; there is no order among senders. A message
/// that arrives before the actor's on_start has run waits for it.
template <class A>
class actor_ref {
 public:
  actor_ref() noexcept = default;
  /// An address of an A as one of its bases.
  template <class D>
  requires std::is_base_of_v<A, D> actor_ref(const actor_ref<D>& other)
  noexcept  // NOLINT(google-explicit-constructor)
      : loop_(other.loop_), cell_(other.cell_), generation_(other.generation_) {}

  [[nodiscard]] bool valid() const noexcept { return loop_ != nullptr; }
  /// The loop it lives on.
  [[nodiscard]] event_loop* loop() const noexcept { return loop_; }

  /// Runs `fn(A&)` on the actor's loop as the actor, if it is still running. errc::queue_full
  /// (nothing sent) when that loop's mailbox is full (engine_options::mailbox_cap).
  template <class F>
  std::error_code tell(F&& fn) const {
    return detail::post_to_actor(
        *loop_,
        detail::actor_message<A>(cell_, generation_, [f = std::forward<F>(fn)](A* a) mutable {
          if (a != nullptr) {
            f(*a);
          }
        }));
  }
  /// Asks the actor for a value without blocking: `fn(A&)` runs there as the actor, and
  /// `then(answer)` runs on the calling loop when called from one (as a closure on it; from an
  /// actor's handler use its own ask, which runs `then` as that actor), else on the actor's
  /// loop. The answer is a result<R> for an `fn` returning R (an error_code
  /// for one returning void): the value, errc::actor_stopped when the actor had stopped, or
  /// handler_failed when `fn` threw (logged). queue_full as tell().
  template <class Fn, class Then>
  std::error_code ask(Fn&& fn, Then&& then) const;
  /// Stops the actor (its on_stop runs once, on its loop) unless it has stopped already.
  void stop() const { detail::stop_actor(*loop_, cell_, generation_); }

  friend bool operator==(const actor_ref&, const actor_ref&) = default;

 private:
  template <class>
  friend class actor_ref;
  friend class actor;
  friend class engine;
  friend class connection;
  actor_ref(event_loop* loop, detail::actor_cell* cell, std::uint32_t generation) noexcept
      : loop_(loop), cell_(cell), generation_(generation) {}

  event_loop* loop_ = nullptr;
  detail::actor_cell* cell_ = nullptr;
  std::uint32_t generation_ = 0;
};

/// A service actor: state and behaviour that belong to no connection (a directory, a cache, a
/// rate limiter), living on one loop and reached by message through actor_ref. Derive from it,
/// override what you need, and make one with engine::spawn. The constructor runs on the
/// spawning thread; every other member runs on the actor's loop (its handlers, timers, and the
/// messages sent to it), one at a time, so an actor needs no lock for its own state. Debug
/// builds assert the thread.
class actor : public detail::actor_base {
 public:
  actor() = default;
  actor(const actor&) = delete;
  actor& operator=(const actor&) = delete;
  ~actor() override;

  /// The actor is on its loop: messages sent to it run from now on (those that came earlier
  /// run right after this, in the order they came).
  virtual void on_start() {}
  /// The actor stops: after stop(), actor_ref::stop(), or at the engine's stop (after every
  /// connection has closed). Runs exactly once, for every actor whose on_start ran; messages
  /// that come later are dropped and counted, timers no longer run, and watchers hear of it.
  virtual void on_stop() {}

  /// Stops this actor: on_stop runs next (from the loop's mailbox, not inside the calling
  /// handler), and the actor is then destroyed. A second call does nothing.
  void stop() noexcept;
  /// Whether on_start has run and stop has not been asked.
  [[nodiscard]] bool is_running() const noexcept;
  /// This actor's address, as A (its class or one of its bases).
  template <class A>
  [[nodiscard]] actor_ref<A> ref() const noexcept {
    static_assert(std::is_base_of_v<actor, A>, "ref<A>: A must be an actor");
    assert(dynamic_cast<const A*>(this) != nullptr && "ref<A>: this actor is not an A");
    return {loop_, cell_, generation_};
  }
  [[nodiscard]] event_loop& loop() const noexcept { return *loop_; }
  [[nodiscard]] engine& owner() const noexcept;

  /// Runs `fn(*this)` on this loop after `delay`, unless the actor has stopped by then (a
  /// timer's closure is freed when it fires or is cancelled).
  timer_id after(std::chrono::nanoseconds delay, unique_function<void(actor&)> fn);
  /// Cancels a timer from after(); false if it ran or was cancelled already.
  bool cancel_timer(timer_id id) noexcept;

  /// Asks service actor `target` (this one's loop or another's): `fn(A&)` runs there as that
  /// actor and `then(answer)` back here as this one (not at all once this one has stopped: the
  /// reply is then dropped and counted). Answers as actor_ref::ask; queue_full when the target's
  /// mailbox is full (nothing asked).
  template <class A, class Fn, class Then>
  std::error_code ask(const actor_ref<A>& target, Fn&& fn, Then&& then) {
    assert_in_loop_thread();
    return detail::ask_actor<A>(*target.loop_, target.cell_, target.generation_,
                                std::forward<Fn>(fn), std::forward<Then>(then), reply_address());
  }
  /// Asks connection `target` (of class Conn): as connection::ask, answered here as this actor.
  template <class Conn, class Fn, class Then>
  std::error_code ask(const conn_ref& target, Fn&& fn, Then&& then) {
    assert_in_loop_thread();
    return detail::send_question(
        *target.loop_, target.slot_, target.generation_,
        detail::make_question<Conn>(std::forward<Fn>(fn), std::forward<Then>(then),
                                    reply_address()));
  }
  /// Asks loop `target` (seastar's submit_to), answered here as this actor.
  template <class Fn, class Then>
  std::error_code ask(event_loop& target, Fn&& fn, Then&& then) {
    assert_in_loop_thread();
    return detail::send_question(
        target, 0, 0,
        detail::make_question<event_loop>(std::forward<Fn>(fn), std::forward<Then>(then),
                                          reply_address()));
  }
  /// Erlang's monitor: `fn()` runs here, as this actor, once `target` has stopped (at once, from
  /// the mailbox, if it has stopped already; not at all if this actor stops first).
  template <class A>
  void watch(const actor_ref<A>& target, unique_function<void()> fn) {
    assert_in_loop_thread();
    detail::watch_actor(*target.loop_, target.cell_, target.generation_, reply_address(),
                        std::move(fn));
  }

  /// Debug builds: aborts unless called on this actor's loop thread.
  void assert_in_loop_thread() const noexcept;

 private:
  friend class engine;
  friend class detail::actor_host;
  [[nodiscard]] detail::reply_address reply_address() const noexcept {
    return {loop_, 0, generation_, cell_};
  }

  event_loop* loop_ = nullptr;
  detail::actor_cell* cell_ = nullptr;
  std::uint32_t generation_ = 0;
  balancer_lease lease_;  // counts this actor on the engine's balancer while it lives
};

template <class A>
template <class Fn, class Then>
std::error_code actor_ref<A>::ask(Fn&& fn, Then&& then) const {
  return detail::ask_actor<A>(*loop_, cell_, generation_, std::forward<Fn>(fn),
                              std::forward<Then>(then), detail::reply_here(*loop_));
}

namespace detail {
inline actor* enter_actor(actor_cell& cell, std::uint32_t generation) noexcept {
  if (cell.running && cell.generation.load(std::memory_order_relaxed) == generation) [[likely]] {
    // Release (a plain store on x86-64): what made the actor happens before the watchdog's look.
    cell.running_now->store(cell.resident, std::memory_order_release);
    return cell.resident;
  }
  return nullptr;
}
}  // namespace detail

}  // namespace actnet
