// actor: service actors, which live on a loop like connections but own no socket, and
// actor_ref, their address. engine::spawn makes one; see the README's "Service actors".
#pragma once

#include <array>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/detail/actor_base.hpp"
#include "actnet/actors/task.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/result.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

class actor;
class engine;
class event_loop;
template <class A>
class actor_ref;

namespace detail {

template <class Self>
class actor_awaits;  // below: the co_await forms connection and actor share

/// Where an actor lives on its loop: made by the loop's actor_host, never freed before the
/// loop, and used again by the next actor once its own has stopped (the generation then
/// changes, so an actor_ref to the old one finds nothing). `generation` is written by the
/// loop's thread, under the host's lock, and read by any; `pending` is set by spawn, under that
/// lock, before the ref is given out; the rest is the loop's only.
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
  // The generation first: `pending` is written by the spawning thread when the cell is taken
  // again, and read here only for the generation that spawn published (the message carrying
  // it came after).
  return cell.generation.load(std::memory_order_relaxed) == generation && cell.pending;
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
/// The loop whose thread calls (null on any other thread).
[[nodiscard]] event_loop* loop_of_this_thread() noexcept;

/// actor::offload's parts: the next sequence number for a result of the actor in `cell`;
/// `job` queued on the engine's worker pool (worker_pool::submit's errors, the number taken
/// back then); and, from the worker, the result (empty: the work threw, and its turn passes),
/// run on `loop` as the actor in submission order: the engine's own message, never refused.
[[nodiscard]] std::uint64_t actor_offload_begin(event_loop& loop, actor_cell& cell);
std::error_code actor_offload_submit(event_loop& loop, actor_cell& cell, std::uint64_t seq,
                                     unique_function<void()> job);
void actor_offload_result(event_loop& loop, actor_cell* cell, std::uint32_t generation,
                          std::uint64_t seq, unique_function<void()> deliver);
void log_offload_failure(const char* what) noexcept;
/// An offload's job on the worker (connection::offload, actor::offload): runs `work` and makes
/// the delivery of its value to `then`, or nothing when `work` threw (logged: its turn passes).
template <class Work, class Then>
unique_function<void()> run_offload(Work& work, Then& then) {
  using value = std::decay_t<decltype(work())>;
  std::optional<value> made;
  try {
    made.emplace(work());
  } catch (const std::exception& e) {
    log_offload_failure(e.what());
  } catch (...) {
    log_offload_failure("unknown exception");
  }
  if (!made) {
    return {};
  }
  return [t = std::move(then), v = std::move(*made)]() mutable { t(std::move(v)); };
}

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
  template <class>
  friend class sharded_ref;
  friend class actor;
  friend class engine;
  friend class connection;
  template <class>
  friend class detail::actor_awaits;
  actor_ref(event_loop* loop, detail::actor_cell* cell, std::uint32_t generation) noexcept
      : loop_(loop), cell_(cell), generation_(generation) {}

  event_loop* loop_ = nullptr;
  detail::actor_cell* cell_ = nullptr;
  std::uint32_t generation_ = 0;
};

namespace detail {

/// What connection and actor share (CRTP: Self is the class deriving from it): the coroutine
/// forms of ask, offload and sleep, for a handler that returns actnet::task (task.hpp), and
/// watch(). Each resumes (or runs) on Self's loop, as that actor; if it has gone by then
/// (closed, stopped), the coroutine is destroyed instead (the callback does not run).
template <class Self>
class actor_awaits {
 public:
  /// `co_await ask(target, fn)`: as ask(target, fn, then), resumed here with the answer
  /// (result<R>, or std::error_code for an `fn` returning void). Targets as ask: a service
  /// actor, a connection of class Conn, or a loop.
  template <class A, class Fn>
  [[nodiscard]] auto ask(const actor_ref<A>& target, Fn fn) {
    using answer = typename answer_of<std::invoke_result_t<Fn&, A&>>::type;
    return awaiting<answer>([s = &self(), target, f = std::move(fn)](auto then) mutable {
      return s->ask(target, std::move(f), std::move(then));
    });
  }
  template <class Conn, class Fn>
  [[nodiscard]] auto ask(const conn_ref& target, Fn fn) {
    using answer = typename answer_of<std::invoke_result_t<Fn&, Conn&>>::type;
    return awaiting<answer>([s = &self(), target, f = std::move(fn)](auto then) mutable {
      return s->template ask<Conn>(target, std::move(f), std::move(then));
    });
  }
  template <class Fn>
  [[nodiscard]] auto ask(event_loop& target, Fn fn) {
    using answer = typename answer_of<std::invoke_result_t<Fn&, event_loop&>>::type;
    return awaiting<answer>([s = &self(), t = &target, f = std::move(fn)](auto then) mutable {
      return s->ask(*t, std::move(f), std::move(then));
    });
  }
  /// `co_await offload(work)`: `work()` on a worker, resumed here with result<T> (an
  /// std::error_code for void work): the value, or why it did not run (queue_full,
  /// engine_stopped, connection_closed); an exception `work` throws is rethrown here.
  template <class Work>
  [[nodiscard]] auto offload(Work work) {
    using value = std::invoke_result_t<Work&>;
    return awaiting_offload<value>([s = &self(), w = catching(std::move(work))](auto then) mutable {
      return s->offload(std::move(w), [t = std::move(then)](outcome<value> o) mutable {
        t(offload_answer<value>(std::move(o)));
      });
    });
  }
  /// `co_await sleep(d)`: resumed here after `d` (never, and destroyed, if this actor closes or
  /// stops first).
  [[nodiscard]] auto sleep(std::chrono::nanoseconds d) {
    return awaiting<std::error_code>([s = &self(), d](auto then) {
      (void)s->after(d, [t = std::move(then)](auto&) mutable { t(std::error_code{}); });
      return std::error_code{};
    });
  }

  /// Erlang's monitor: `fn()` runs here, as this actor, once service actor `target` has
  /// stopped (at once, from the mailbox, if it has stopped already; not at all if this actor
  /// closes or stops first).
  template <class A>
  void watch(const actor_ref<A>& target, unique_function<void()> fn) {
    self().assert_in_loop_thread();
    watch_actor(*target.loop_, target.cell_, target.generation_, self().reply_address(),
                std::move(fn));
  }

 private:
  Self& self() noexcept { return static_cast<Self&>(*this); }
};

}  // namespace detail

/// A service actor: state and behaviour that belong to no connection (a directory, a cache, a
/// rate limiter), living on one loop and reached by message through actor_ref. Derive from it,
/// override what you need, and make one with engine::spawn. The constructor runs on the
/// spawning thread; every other member runs on the actor's loop (its handlers, timers, and the
/// messages sent to it), one at a time, so an actor needs no lock for its own state. Debug
/// builds assert the thread.
class actor : public detail::actor_base, public detail::actor_awaits<actor> {
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
  /// Runs `work()` on the engine's worker pool, then `then(result)` back here as this actor
  /// (not at all if it has stopped by then: dropped and counted). Results come back in the
  /// order the work was submitted, whichever worker finishes first, as a connection's do.
  /// Errors as connection::offload (queue_full, engine_stopped); a `work` that throws is
  /// logged and its `then` skipped (the results behind it still come).
  template <class Work, class Then>
  std::error_code offload(Work&& work, Then&& then) {
    assert_in_loop_thread();
    const std::uint64_t seq = detail::actor_offload_begin(*loop_, *cell_);
    return detail::actor_offload_submit(
        *loop_, *cell_, seq,
        [loop = loop_, cell = cell_, generation = generation_, seq, w = std::forward<Work>(work),
         t = std::forward<Then>(then)]() mutable {
          detail::actor_offload_result(*loop, cell, generation, seq, detail::run_offload(w, t));
        });
  }

  // The co_await forms of ask, offload and sleep, and watch(): actor_awaits, above.
  using detail::actor_awaits<actor>::ask;
  using detail::actor_awaits<actor>::offload;

  /// Debug builds: aborts unless called on this actor's loop thread.
  void assert_in_loop_thread() const noexcept;

 private:
  friend class engine;
  friend class detail::actor_host;
  friend class detail::actor_awaits<actor>;
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

/// A hash of `key`'s bytes that is the same in every run, build and process (FNV-1a, 64 bits,
/// with a final mix): what sharded_ref::for_key places keys by.
[[nodiscard]] constexpr std::uint64_t stable_hash(std::string_view key) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : key) {
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  h ^= h >> 33;  // (FNV's low bits mix poorly; the modulus reads them)
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}
/// An integer key: its value's eight bytes, least significant first.
template <class K>
requires std::is_integral_v<K>
[[nodiscard]] constexpr std::uint64_t stable_hash(K key) noexcept {
  std::array<char, 8> bytes{};
  auto v = static_cast<std::uint64_t>(key);
  for (char& b : bytes) {
    b = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return stable_hash(std::string_view(bytes.data(), bytes.size()));
}

/// A sharded service (seastar's sharded<S>): one service actor of class S per loop, made by
/// engine::spawn_sharded. Copyable and thread-safe, like actor_ref; valid until its engine is
/// destroyed. Each instance is an actor like any other (ordering, life cycle, stop at the
/// engine's stop); the instances share nothing but what S shares itself.
template <class S>
class sharded_ref {
 public:
  sharded_ref() = default;

  /// How many instances: the engine's loops.
  [[nodiscard]] std::size_t size() const noexcept { return shards_ ? shards_->size() : 0; }
  /// Instance `i` (the one on loop i; std::out_of_range beyond the last).
  [[nodiscard]] const actor_ref<S>& on(std::size_t i) const { return shards_->at(i); }
  /// The instance of the calling loop, to use at once without a message: null when the caller
  /// is no loop's thread, or that instance has not started or has stopped. Loop-thread only;
  /// never keep the pointer past the handler.
  [[nodiscard]] S* local() const noexcept;
  /// The instance that owns `key`: stable_hash(key) modulo size(), so the same key lands on the
  /// same instance in every run with the same number of loops.
  template <class K>
  [[nodiscard]] const actor_ref<S>& for_key(const K& key) const {
    return (*shards_)[static_cast<std::size_t>(stable_hash(key) % shards_->size())];
  }
  /// Tells every instance `fn(S&)` (copied once per instance), in instance order. Each
  /// instance runs it as a tell; queue_full if a mailbox was full (that instance misses it).
  template <class Fn>
  std::error_code invoke_on_all(const Fn& fn) const {
    std::error_code refused;
    for (const actor_ref<S>& r : *shards_) {
      if (const std::error_code ec = r.tell(fn)) {
        refused = ec;
      }
    }
    return refused;
  }
  /// Asks every instance `fn(S&)` and folds the answers with `reduce(R, R) -> R` in instance
  /// order, then `then(result<R>)`: on the calling loop when called from one, else on instance
  /// 0's loop. The first error among the answers (actor_stopped, handler_failed) is the result.
  /// queue_full (nothing asked; `then` never runs) if a mailbox was full: check it first.
  template <class Fn, class Reduce, class Then>
  std::error_code map_reduce(Fn fn, Reduce reduce, Then then) const;
  /// Stops every instance.
  void stop() const {
    for (const actor_ref<S>& r : *shards_) {
      r.stop();
    }
  }

 private:
  friend class engine;
  explicit sharded_ref(std::shared_ptr<const std::vector<actor_ref<S>>> shards) noexcept
      : shards_(std::move(shards)) {}
  std::shared_ptr<const std::vector<actor_ref<S>>> shards_;
};

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

template <class S>
S* sharded_ref<S>::local() const noexcept {
  event_loop* here = detail::loop_of_this_thread();
  if (here == nullptr || shards_ == nullptr) {
    return nullptr;
  }
  for (const actor_ref<S>& r : *shards_) {  // (as many as loops: a few)
    if (r.loop_ == here) {
      actor* a = detail::enter_actor(*r.cell_, r.generation_);
      return a != nullptr ? static_cast<S*>(a) : nullptr;
    }
  }
  return nullptr;
}

template <class S>
template <class Fn, class Reduce, class Then>
std::error_code sharded_ref<S>::map_reduce(Fn fn, Reduce reduce, Then then) const {
  using value = std::invoke_result_t<Fn&, S&>;
  static_assert(!std::is_void_v<value>, "map_reduce: fn must return the value to reduce");
  // Every answer comes back to one loop (`back`), so the fold needs no lock.
  struct fold {
    Reduce reduce;
    Then then;
    std::vector<std::optional<result<value>>> answers;
    std::size_t left;
  };
  const std::size_t n = shards_->size();
  auto state = std::make_shared<fold>(
      fold{std::move(reduce), std::move(then), std::vector<std::optional<result<value>>>(n), n});
  event_loop* here = detail::loop_of_this_thread();
  const detail::reply_address back{here != nullptr ? here : (*shards_)[0].loop_, 0, 0, nullptr};
  for (std::size_t i = 0; i < n; ++i) {
    const actor_ref<S>& r = (*shards_)[i];
    if (const std::error_code ec = detail::ask_actor<S>(
            *r.loop_, r.cell_, r.generation_, fn,
            [state, i](result<value> answer) {
              state->answers[i].emplace(std::move(answer));
              if (--state->left != 0) {
                return;
              }
              result<value> folded = std::move(*state->answers[0]);
              for (std::size_t k = 1; k < state->answers.size() && folded; ++k) {
                result<value>& next = *state->answers[k];
                if (!next) {
                  folded = result<value>(next.error());
                } else {
                  folded = result<value>(state->reduce(std::move(*folded), std::move(*next)));
                }
              }
              state->then(std::move(folded));
            },
            back)) {
      return ec;  // (the instances asked already answer into a fold that never completes)
    }
  }
  return {};
}

}  // namespace actnet
