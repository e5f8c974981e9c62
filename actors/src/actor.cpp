// actor: service actors on their loop: spawn's arrival, the messages that reach them, their
// timers, watchers and stop (actor_host), and the engine's end of them after the connections.
#include "actnet/actors/actor.hpp"

#include <cassert>
#include <utility>

#include "actnet/actors/detail/actor_host.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "guarded.hpp"
#include "log.hpp"

namespace actnet {

namespace detail {

namespace {
actor_host& host_of(event_loop& loop) noexcept {
  return actor_host::of(loop);
}
}  // namespace

void defer_to_start(actor_cell& cell, unique_function<void(actor*)> fn) {
  cell.early.push_back(std::move(fn));
}

std::uint64_t actor_offload_begin(event_loop& loop, actor_cell& cell) {
  return host_of(loop).offload_next(cell);
}

std::error_code actor_offload_submit(event_loop& loop, actor_cell& cell, std::uint64_t seq,
                                     unique_function<void()> job) {
  return host_of(loop).offload_submit(cell, seq, std::move(job));
}

void actor_offload_result(event_loop& loop, actor_cell* cell, std::uint32_t generation,
                          std::uint64_t seq, unique_function<void()> deliver) {
  actor_host::offload_ran(loop);
  actor_host::post_unbounded(loop, [cell, generation, seq, d = std::move(deliver)](
                                       event_loop& l, connection*, std::error_code) mutable {
    host_of(l).offload_arrived(*cell, generation, seq, std::move(d));
  });
}

void log_task_failure(const char* what) noexcept {
  try {
    log().error("a coroutine handler threw: {}; it ended there", what);
  } catch (...) {
    // logging failed: nothing more to do
  }
}

void count_dropped(event_loop& loop) noexcept {
  host_of(loop).dropped();
}

event_loop* loop_of_this_thread() noexcept {
  return actor_host::current_loop();
}

reply_address reply_here(event_loop& target) noexcept {
  event_loop* here = actor_host::current_loop();
  return {here != nullptr ? here : &target, 0, 0, nullptr};
}

void watch_actor(event_loop& loop, actor_cell* cell, std::uint32_t generation, reply_address to,
                 unique_function<void()> fn) {
  // The engine's own message: a watch is never refused (its answer would be lost).
  actor_host::post_unbounded(loop, [cell, generation, to, f = std::move(fn)](
                                       event_loop& l, connection*, std::error_code) mutable {
    host_of(l).watch(*cell, generation, to, std::move(f));
  });
}

void stop_actor(event_loop& loop, actor_cell* cell, std::uint32_t generation) {
  actor_host::post_unbounded(loop, [cell, generation](event_loop&, connection*, std::error_code) {
    if (actor* a = enter_actor(*cell, generation); a != nullptr) {
      a->stop();
    } else if (starting(*cell, generation)) {
      defer_to_start(*cell, [](actor* started) {
        if (started != nullptr) {
          started->stop();
        }
      });
    }
  });
}

// -- actor_host --

actor_host::actor_host(event_loop& loop) : loop_(loop) {
  loop.observe(*this, loop_core::stop);
}

actor_host::~actor_host() {
  for (actor_cell& cell : cells_) {
    delete cell.resident;  // only if the loop never stopped them (its run never ended)
  }
}

actor_host& actor_host::of(event_loop& loop) noexcept {
  return loop.actors_;
}

event_loop* actor_host::current_loop() noexcept {
  return loop_core::current();
}

void actor_host::post_unbounded(event_loop& loop, message_fn fn) {
  loop.post_fn(std::move(fn));
}

void actor_host::note_running(const actor& a) noexcept {
  loop_.note_running(a);
}

void actor_host::dropped() noexcept {
  loop_.dropped_.fetch_add(1, std::memory_order_relaxed);
}

std::pair<actor_cell*, std::uint32_t> actor_host::allocate() {
  const std::lock_guard lock(mutex_);
  actor_cell* cell = nullptr;
  if (!free_.empty()) {
    cell = free_.back();
    free_.pop_back();
  } else {
    cell = &cells_.emplace_back();
    cell->running_now = &loop_.meter_.running;  // (before any ref to it exists)
  }
  cell->pending = true;
  live_.fetch_add(1, std::memory_order_relaxed);
  return {cell, cell->generation.load(std::memory_order_relaxed)};
}

void actor_host::release(actor_cell& cell) noexcept {
  const std::lock_guard lock(mutex_);
  std::uint32_t next = cell.generation.load(std::memory_order_relaxed) + 1;
  cell.generation.store(next != 0 ? next : 1, std::memory_order_relaxed);
  cell.resident = nullptr;
  cell.running = false;
  cell.pending = false;
  try {
    free_.push_back(&cell);
  } catch (const std::bad_alloc&) {
    // the cell is not used again: no ref can reach it (its generation moved on)
  }
  live_.fetch_sub(1, std::memory_order_relaxed);
}

void actor_host::start(std::unique_ptr<actor> made) noexcept {
  actor& a = *made.release();
  actor_cell& cell = *a.cell_;
  cell.pending = false;
  cell.resident = &a;
  cell.running = true;
  loop_.note_running(a);
  (void)guarded(loop_, "on_start", [&] { a.on_start(); });
  // The mail that came before on_start, in the order it came (dropped once the actor stopped).
  std::vector<unique_function<void(actor*)>> early = std::exchange(cell.early, {});
  for (unique_function<void(actor*)>& fn : early) {
    actor* now = cell.running && cell.resident == &a ? &a : nullptr;
    if (now != nullptr) {
      loop_.note_running(a);
    } else {
      dropped();
    }
    (void)guarded(loop_, "a message handler", [&] { fn(now); });
  }
}

void actor_host::stop(actor& a) noexcept {
  actor_cell& cell = *a.cell_;
  cell.running = false;  // from now on, mail to it is dropped
  const std::uint32_t generation = cell.generation.load(std::memory_order_relaxed);
  // on_stop runs from the mailbox, never inside the handler that asked (whose actor it frees).
  // Should the message never run (the loop stops first), stopped() finishes the actor.
  loop_.post_fn([this, c = &cell, generation](event_loop&, connection*, std::error_code) {
    if (c->resident != nullptr && c->generation.load(std::memory_order_relaxed) == generation) {
      finish(*c->resident);
    }
  });
}

std::error_code actor_host::offload_submit(actor_cell& cell, std::uint64_t seq,
                                           unique_function<void()> job) {
  // In flight until the worker has run it (offload_ran, on the worker's thread).
  std::atomic<std::uint64_t>& in_flight = loop_.meter_.offloads_in_flight;
  in_flight.fetch_add(1, std::memory_order_relaxed);
  const std::error_code ec = loop_.owner().workers().submit(std::move(job));
  if (ec) {
    in_flight.fetch_sub(1, std::memory_order_relaxed);
    offloads_.unused(id_of(cell), seq);
  }
  return ec;
}

void actor_host::offload_ran(event_loop& loop) noexcept {
  loop.meter_.offloads_in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void actor_host::offload_arrived(actor_cell& cell, std::uint32_t generation, std::uint64_t seq,
                                 unique_function<void()> deliver) {
  actor* a = enter_actor(cell, generation);
  if (a == nullptr) {
    if (deliver) {
      dropped();  // it has stopped (its order went at finish, or goes then)
    }
    return;
  }
  // A continuation may offload again or stop the actor; one that throws is logged, and the
  // results queued behind it still run.
  offloads_.arrived(id_of(cell), seq, std::move(deliver), [&](unique_function<void()>& d) {
    loop_.note_running(*a);
    (void)guarded(loop_, "an offload's continuation", d);
    return cell.running && cell.resident == a;
  });
}

void actor_host::finish(actor& a) noexcept {
  actor_cell& cell = *a.cell_;
  offloads_.forget(id_of(cell));  // results still to come find no entry, and are dropped
  cell.running = false;
  loop_.note_running(a);
  (void)guarded(loop_, "on_stop", [&] { a.on_stop(); });
  for (actor_cell::watcher& w : cell.watchers) {
    (void)guarded(loop_, "watch", [&] { send_reply(w.to, std::move(w.fn)); });
  }
  cell.watchers.clear();
  release(cell);
  a.lease_.reset();
  if (loop_.stall_threshold_ns_ != 0) {
    try {
      loop_.graveyard_.push_back(&a);  // freed after the iteration: the watchdog may look at it
      return;
    } catch (const std::bad_alloc&) {
      // freed now: the watchdog reads only a name it has already taken
    }
  }
  delete &a;
}

void actor_host::watch(actor_cell& cell, std::uint32_t generation, reply_address to,
                       unique_function<void()> fn) {
  if (cell.generation.load(std::memory_order_relaxed) == generation &&
      (cell.resident != nullptr || cell.pending)) {
    cell.watchers.push_back({to, std::move(fn)});
  } else {
    send_reply(to, std::move(fn));  // it has stopped already: told at once
  }
}

void actor_host::stopped() noexcept {
  std::vector<actor*> residents;
  {
    const std::lock_guard lock(mutex_);
    for (actor_cell& cell : cells_) {
      if (cell.resident != nullptr) {
        try {
          residents.push_back(cell.resident);
        } catch (const std::bad_alloc&) {
          break;  // the rest are freed without on_stop by the destructor
        }
      }
    }
  }
  for (actor* a : residents) {
    finish(*a);
  }
}

}  // namespace detail

// -- engine --

detail::actor_cell_ref engine::place(std::size_t loop, balancer_lease lease,
                                     std::unique_ptr<actor> made) {
  event_loop& l = *loops_.at(loop);
  detail::actor_host& host = detail::actor_host::of(l);
  const auto [cell, generation] = host.allocate();
  made->loop_ = &l;
  made->cell_ = cell;
  made->generation_ = generation;
  made->lease_ = std::move(lease);
  detail::actor_host::post_unbounded(
      l, [a = std::move(made)](event_loop& on, connection*, std::error_code) mutable {
        detail::actor_host::of(on).start(std::move(a));
      });
  return {&l, cell, generation};
}

std::size_t engine::count_actors() const noexcept {
  std::size_t n = 0;
  for (const auto& l : loops_) {
    n += detail::actor_host::of(*l).count();
  }
  return n;
}

// -- actor --

actor::~actor() = default;

engine& actor::owner() const noexcept {
  return loop_->owner();
}

void actor::assert_in_loop_thread() const noexcept {
  if (loop_ != nullptr) {
    loop_->assert_in_loop_thread();
  }
}

void actor::stop() noexcept {
  assert_in_loop_thread();
  if (cell_ != nullptr && cell_->resident == this && cell_->running) {
    detail::actor_host::of(*loop_).stop(*this);
  }
}

bool actor::is_running() const noexcept {
  return cell_ != nullptr && cell_->resident == this && cell_->running;
}

timer_id actor::after(std::chrono::nanoseconds delay, unique_function<void(actor&)> fn) {
  assert_in_loop_thread();
  return loop_->after(delay, [cell = cell_, generation = generation_, f = std::move(fn)]() mutable {
    if (actor* a = detail::enter_actor(*cell, generation); a != nullptr) {
      f(*a);
    }
  });
}

bool actor::cancel_timer(timer_id id) noexcept {
  assert_in_loop_thread();
  return loop_->cancel(id);
}

}  // namespace actnet
