// log_limiter: counts a recurring event and says when to log it, so a storm of them (fd
// exhaustion, a datagram flood) is one line a second, not one line each.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

#include "actnet/reactor/timer_queue.hpp"

namespace actnet::detail {

/// Loop-thread only.
class log_limiter {
 public:
  /// Counts one event at `now`; returns how many to report in a line now (every event since
  /// the last line, this one included), or 0 while a line was written less than a second ago.
  std::uint64_t note(timer_clock::time_point now) noexcept {
    ++unlogged_;
    if (now - last_ < std::chrono::seconds(1)) {
      return 0;
    }
    last_ = now;
    return std::exchange(unlogged_, 0);
  }

 private:
  std::uint64_t unlogged_ = 0;
  timer_clock::time_point last_{};
};

}  // namespace actnet::detail
