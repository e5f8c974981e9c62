// timer_queue: one loop's timers (the ticker, per-connection timers) in a min-heap.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "actnet/unique_function.hpp"

namespace actnet {

using timer_clock = std::chrono::steady_clock;
using timer_id = std::uint64_t;

/// Timers ordered by deadline (ties: in the order they were added). Cancelling is O(1): the
/// heap entry stays until it surfaces and is then skipped. Loop-thread only.
class timer_queue {
 public:
  /// Schedules `fn` at `when`; returns an id for cancel(). Ids are never reused.
  timer_id add(timer_clock::time_point when, unique_function<void()> fn);
  /// Cancels a pending timer; false if it already ran, was cancelled or never existed.
  bool cancel(timer_id id) noexcept;

  /// Milliseconds until the next deadline, rounded up: -1 with no timers, 0 when one is due.
  [[nodiscard]] int next_timeout_ms(timer_clock::time_point now);
  /// Runs every timer due at `now`, earliest first (a timer added by one of them runs only if
  /// it is due too); returns how many ran.
  std::size_t run_due(timer_clock::time_point now);

  /// Drops every pending timer without running it (their closures are destroyed, which may
  /// report something: a closure that adds a timer while being destroyed is dropped too).
  void clear() noexcept;

  /// Pending (not cancelled, not yet run) timers.
  [[nodiscard]] std::size_t size() const noexcept { return callbacks_.size(); }
  [[nodiscard]] bool empty() const noexcept { return callbacks_.empty(); }

 private:
  struct entry {
    timer_clock::time_point when;
    timer_id id = 0;
  };
  static bool later(const entry& a, const entry& b) noexcept {
    return a.when != b.when ? a.when > b.when : a.id > b.id;
  }
  void drop_cancelled_top();

  std::vector<entry> heap_;
  std::unordered_map<timer_id, unique_function<void()>> callbacks_;
  timer_id next_id_ = 1;
  bool top_live_ = false;  // heap_.front() is a pending timer (not cancelled)
};

}  // namespace actnet
