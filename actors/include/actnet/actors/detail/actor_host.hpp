// actor_host: a loop's service actors (actor.hpp): the cells they live in, their start and stop,
// and their end at the engine's stop, after the connections. A job of the loop (loop_jobs).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "actnet/actors/actor.hpp"
#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/actors/detail/offload_order.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

class event_loop;

namespace detail {

class actor_host final : public lifecycle_observer {
 public:
  explicit actor_host(event_loop& loop);
  actor_host(const actor_host&) = delete;
  actor_host& operator=(const actor_host&) = delete;
  ~actor_host();  // frees the actors still here (their loop never ran, or never stopped)

  /// Any thread: a cell for a new actor, and the generation its refs carry.
  [[nodiscard]] std::pair<actor_cell*, std::uint32_t> allocate();
  /// Loop thread: spawned actor `a` arrives: on_start, then the mail that came before it.
  void start(std::unique_ptr<actor> a) noexcept;
  /// Loop thread: `a` stops (actor::stop): on_stop from the mailbox, then it goes.
  void stop(actor& a) noexcept;
  /// Loop thread: on_stop, the watchers told, the early mail failed, the actor freed.
  void finish(actor& a) noexcept;
  /// Loop thread: registers a watcher of (cell, generation), or runs it now (as a message) if
  /// that actor has stopped.
  void watch(actor_cell& cell, std::uint32_t generation, reply_address to,
             unique_function<void()> fn);
  /// The engine stops: every running actor, after the connections.
  void stopped() noexcept override;

  /// Loop thread: actor::offload's order (offload_order, as a connection's): the next
  /// sequence number of the actor in `cell`, and a result that came back (run as the actor
  /// when its turn comes; dropped and counted once it stopped).
  [[nodiscard]] std::uint64_t offload_next(actor_cell& cell) { return offloads_.next(id_of(cell)); }
  /// Loop thread: queues an offload's job (the number taken back if the pool refuses it).
  std::error_code offload_submit(actor_cell& cell, std::uint64_t seq, unique_function<void()> job);
  /// Any thread (the worker's): the job has run.
  static void offload_ran(event_loop& loop) noexcept;
  void offload_arrived(actor_cell& cell, std::uint32_t generation, std::uint64_t seq,
                       unique_function<void()> deliver);

  /// Any thread: the actors living on this loop (spawned and not yet stopped).
  [[nodiscard]] std::size_t count() const noexcept { return live_.load(std::memory_order_relaxed); }
  void dropped() noexcept;                     // a message found its actor stopped
  void note_running(const actor& a) noexcept;  // for the stall detector

  // The loop's: its host, the calling thread's loop (null on others), and mailbox sends.
  [[nodiscard]] static actor_host& of(event_loop& loop) noexcept;
  [[nodiscard]] static event_loop* current_loop() noexcept;
  static void post_unbounded(event_loop& loop, message_fn fn);

 private:
  void release(actor_cell& cell) noexcept;  // the actor has gone: the cell is free again
  // An actor's key in offloads_: its cell, whose entry is forgotten when the actor finishes
  // (before the cell can take another).
  static std::uint64_t id_of(const actor_cell& cell) noexcept {
    return reinterpret_cast<std::uintptr_t>(&cell);
  }

  event_loop& loop_;
  std::mutex mutex_;               // cells_ and free_: spawn runs on any thread
  std::deque<actor_cell> cells_;   // never moved: refs point into it
  std::vector<actor_cell*> free_;  // cells whose actor has gone
  std::atomic<std::size_t> live_{0};
  offload_order offloads_;  // loop thread only
};

}  // namespace detail
}  // namespace actnet
