// connection_timeouts: a stream connection's idle, read and write timeouts and close()'s
// drain deadline: one lazily re-armed timer per connection that has any.
#include <spdlog/logger.h>

#include <algorithm>
#include <stdexcept>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"

namespace actnet {

// -- timeouts --

detail::conn_timing& connection::timing() {
  if (timing_ == nullptr) {
    timing_ = std::make_unique<detail::conn_timing>();
  }
  return *timing_;
}

void connection::note_sent() noexcept {
  timing_->last_write = timer_clock::now();
}

void connection::note_read() noexcept {
  timing_->last_read = timer_clock::now();
}

timeouts connection::current_timeouts() const noexcept {
  return timing_ != nullptr ? timing_->limits : timeouts{};
}

void connection::set_timeouts(const timeouts& limits) {
  assert_in_loop_thread();
  if (limits.idle.count() < 0 || limits.read.count() < 0 || limits.write.count() < 0) {
    throw std::invalid_argument("actnet: set_timeouts: a timeout must not be negative (0: none)");
  }
  if ((dgram() != nullptr && kcp() == nullptr) || state_ == state::closed) {
    return;  // streams and KCP only (UDP sessions have session_idle_timeout)
  }
  if (!limits.any() && timing_ == nullptr) {
    return;
  }
  detail::conn_timing& t = timing();
  t.limits = limits;
  t.last_read = t.last_write = timer_clock::now();
  if (t.check != 0) {
    (void)loop_->cancel(t.check);
    t.check = 0;
  }
  if (limits.any()) {
    check_timeouts();  // arms the first check
  }
}

void connection::arm_timeouts(timer_clock::time_point at) {
  detail::conn_timing& t = *timing_;
  if (t.check != 0) {
    if (t.check_at <= at) {
      return;  // an earlier check is pending; it re-arms for this one
    }
    (void)loop_->cancel(t.check);
  }
  event_loop* loop = loop_;
  t.check_at = at;
  t.check = loop_->after(at - timer_clock::now(), [loop, slot = slot_, generation = generation_] {
    if (connection* c = loop->find(slot, generation);
        c != nullptr && c->is_open() && c->timing_ != nullptr) {
      c->timing_->check = 0;
      c->check_timeouts();
    }
  });
}

void connection::check_timeouts() {
  const timer_clock::time_point now = timer_clock::now();
  const timeouts& limits = timing_->limits;
  timer_clock::time_point next = timer_clock::time_point::max();
  // True when the limit counted from `since` has passed (the connection then closes).
  const auto expired = [&](timer_clock::time_point since, std::chrono::milliseconds limit) {
    if (limit.count() <= 0) {
      return false;
    }
    const timer_clock::time_point deadline = since + limit;
    if (deadline <= now) {
      return true;
    }
    next = std::min(next, deadline);
    return false;
  };
  if (expired(std::max(timing_->last_read, timing_->last_write), limits.idle)) {
    fail(errc::idle_timeout);
  } else if (!read_paused() && expired(timing_->last_read, limits.read)) {
    fail(errc::read_timeout);
  } else if (output_waiting() && expired(timing_->last_write, limits.write)) {
    fail(errc::write_timeout);
  } else if (next != timer_clock::time_point::max()) {
    arm_timeouts(next);
  } else if (limits.read.count() > 0) {
    arm_timeouts(now + limits.read);  // paused: look again then
  }
  // Otherwise only a write timeout is set and nothing waits: after_buffering arms it.
}

void connection::arm_drain_deadline() {
  const std::chrono::milliseconds limit = loop_->options_.drain_timeout;
  if (limit.count() <= 0) {
    return;
  }
  event_loop* loop = loop_;
  timing().drain = loop_->after(limit, [loop, slot = slot_, generation = generation_] {
    if (connection* c = loop->find(slot, generation); c != nullptr && c->state_ == state::closing) {
      c->timing_->drain = 0;
      c->out_.clear();
      (void)actnet::set_linger(c->fd_, std::chrono::seconds(0));  // the peer sees it cut off
      loop->schedule_close(*c, make_error_code(errc::drain_timeout));
    }
  });
}

void connection::cancel_timers() noexcept {
  if (timing_->check != 0) {
    (void)loop_->cancel(timing_->check);
  }
  if (timing_->drain != 0) {
    (void)loop_->cancel(timing_->drain);
  }
}

}  // namespace actnet
