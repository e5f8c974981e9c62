// timer_queue: the heap, lazy cancellation and the due-timer run.
#include "actnet/reactor/timer_queue.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace actnet {

timer_id timer_queue::add(timer_clock::time_point when, unique_function<void()> fn) {
  const timer_id id = next_id_++;
  callbacks_.emplace(id, std::move(fn));
  heap_.push_back({when, id});
  std::push_heap(heap_.begin(), heap_.end(), later);
  if (heap_.front().id == id) {
    top_live_ = true;  // the new top is this timer, which is live
  }
  return id;
}

bool timer_queue::cancel(timer_id id) noexcept {
  if (callbacks_.erase(id) == 0) {
    return false;
  }
  if (heap_.front().id == id) {
    top_live_ = false;
  }
  if (callbacks_.empty()) {
    heap_.clear();  // only cancelled entries are left: empty() means no work at all
    top_live_ = false;
  }
  return true;
}

void timer_queue::drop_cancelled_top() {
  if (top_live_) {
    return;  // checked since the top last changed: no table look-up every iteration
  }
  while (!heap_.empty() && !callbacks_.contains(heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
  top_live_ = !heap_.empty();
}

int timer_queue::next_timeout_ms(timer_clock::time_point now) {
  drop_cancelled_top();
  if (heap_.empty()) {
    return -1;
  }
  const auto left = heap_.front().when - now;
  if (left <= timer_clock::duration::zero()) {
    return 0;
  }
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<std::int64_t>(ms, std::numeric_limits<int>::max()));
}

void timer_queue::clear() noexcept {
  while (!callbacks_.empty()) {
    // Out of the table first: a destructor that adds a timer finds a consistent queue.
    auto dropped = std::move(callbacks_);
    callbacks_.clear();
    heap_.clear();
    dropped.clear();
  }
  heap_.clear();
  top_live_ = false;
}

std::size_t timer_queue::run_due(timer_clock::time_point now) {
  std::size_t ran = 0;
  for (;;) {
    drop_cancelled_top();
    if (heap_.empty() || heap_.front().when > now) {
      return ran;
    }
    const timer_id id = heap_.front().id;
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
    top_live_ = false;
    auto it = callbacks_.find(id);
    unique_function<void()> fn = std::move(it->second);
    callbacks_.erase(it);
    fn();  // may add or cancel timers
    ++ran;
  }
}

}  // namespace actnet
