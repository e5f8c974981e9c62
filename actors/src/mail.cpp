// mail: a loop's mailbox from both ends: sending into it (bounded for users, unbounded for the
// engine), each kind of message handled on the loop, and what is left in it after the stop.
#include <cstdint>
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"
#include "guarded.hpp"

namespace actnet {

namespace {
// A message sent from a loop's thread counts in that loop's messages_sent, written by that
// thread only.
[[gnu::always_inline]] inline void count_sent() noexcept {
  if (detail::loop_core* from = detail::this_thread_loop) {
    from->meter_.messages_sent.add();
  }
}
}  // namespace

void detail::loop_core::enter_thread(bool entering) noexcept {
  detail::this_thread_loop = entering ? this : nullptr;
}

event_loop* detail::loop_core::current() noexcept {
  return detail::this_thread_loop != nullptr ? &detail::this_thread_loop->self_ : nullptr;
}

// A send from the loop's own thread (a handler messaging an actor of its loop, or the loop
// itself) goes to its local queue: no atomic, no shared queue, and still not run inside the
// sender's handler. Every other thread's goes through the mailbox.
void detail::loop_core::send(detail::message&& m) {
  if (on_own_thread()) {
    (void)queue_local([&m] { return std::move(m); }, false);
    return;
  }
  mailbox_.post(std::move(m));
  count_sent();
}

std::error_code detail::loop_core::refuse_message() noexcept {
  refused_.fetch_add(1, std::memory_order_relaxed);
  return make_error_code(errc::queue_full);
}

std::error_code detail::loop_core::send_bounded(detail::message&& m) {
  if (on_own_thread()) {
    return queue_local([&m] { return std::move(m); }, true);
  }
  if (mailbox_.full(options_.mailbox_cap)) [[unlikely]] {
    return refuse_message();
  }
  mailbox_.post(std::move(m));
  count_sent();
  return detail::no_error();
}

// send_bounded's steps in line rather than a call to it: post() is the busiest bounded send,
// and the call cost it about a tenth of its instructions (callgrind, actors_bench mailbox/1to1).
std::error_code detail::loop_core::post_user(detail::message_fn fn) {
  if (on_own_thread()) {
    return queue_local([&fn] { return detail::message::closure(std::move(fn)); }, true);
  }
  if (mailbox_.full(options_.mailbox_cap)) [[unlikely]] {
    return refuse_message();
  }
  mailbox_.post(detail::message::closure(std::move(fn)));
  count_sent();
  return detail::no_error();
}

void detail::loop_core::post_fn(detail::message_fn fn) {
  send(detail::message::closure(std::move(fn)));
}

void detail::loop_core::handle(detail::message&& m) noexcept {
  // User code runs here (closures, tells, completions): an exception must not cross the loop.
  (void)detail::guarded(*this, "a message handler", [&] { handle_unguarded(std::move(m)); });
}

void detail::loop_core::handle_unguarded(detail::message&& m) {
  using kind = detail::message::kind;
  switch (m.what) {
    case kind::none:
      return;
    case kind::closure:
      meter_.running.store(nullptr, std::memory_order_relaxed);
      m.fn(self_, nullptr, detail::no_error());
      return;
    case kind::adopt:
      adopt(unique_fd(std::exchange(m.fd, -1)), owner_.listeners_[m.listener].make,
            std::move(m.lease), std::exchange(m.admitted, false));
      return;
    case kind::stop:
      stopping_ = true;
      return;
    case kind::ask:
      if (m.generation == 0) {  // a question for the loop itself
        meter_.running.store(nullptr, std::memory_order_relaxed);
        m.fn(self_, nullptr, {});
        return;
      }
      break;
    case kind::tell:
    case kind::async_write:
    case kind::close:
    case kind::wake:
      break;
  }
  connection* c = find(m.slot, m.generation);
  if (c == nullptr || !c->is_open()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    if ((m.what == kind::async_write || m.what == kind::ask) && m.fn) {
      m.fn(self_, nullptr, make_error_code(errc::connection_closed));  // the sender hears of it
    }
    return;
  }
  note_running(*c);
  switch (m.what) {
    case kind::tell:
    case kind::ask:
      m.fn(self_, c, {});
      return;
    case kind::async_write: {
      const std::error_code ec = c->write(std::move(m.payload));
      if (m.fn) {
        // A write that fails closes the connection (a socket error, or the outbound cap); the
        // reason goes to on_close, and the sender hears what async_write promises: the bytes
        // could not be written because the connection is closed. (A datagram connection stays
        // open when the kernel refuses one datagram: that error is passed on as it is.)
        m.fn(self_, c, ec && !c->is_open() ? make_error_code(errc::connection_closed) : ec);
      }
      return;
    }
    case kind::close:
      c->close();
      return;
    case kind::wake:
      deliver_now(*c);
      return;
    default:
      return;
  }
}

void detail::loop_core::drain_stopped() {
  const auto fail_or_drop = [this](detail::message&& m) noexcept {
    if (m.admitted) {
      owner_.release_admission();  // an accepted connection no loop took
    }
    if (m.what == detail::message::kind::async_write && m.fn) {
      (void)detail::guarded(*this, "an async_write completion",
                            [&] { m.fn(self_, nullptr, make_error_code(errc::engine_stopped)); });
    } else if (m.what != detail::message::kind::adopt && m.what != detail::message::kind::stop) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  };
  // A completion run here may send to this loop again: drained too, from either queue.
  while (mailbox_.drain(fail_or_drop, SIZE_MAX) + drain_local(fail_or_drop, SIZE_MAX) != 0) {
  }
}

}  // namespace actnet
