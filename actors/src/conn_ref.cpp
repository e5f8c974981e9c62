// conn_ref: a connection actor's address, and the messages sent through it: tells, async
// writes, closes and wake-ups; the questions and replies of ask; offload results.
#include "actnet/actors/conn_ref.hpp"

#include <spdlog/logger.h>

#include <cstring>
#include <utility>

#include "actnet/actors/actor.hpp"
#include "actnet/actors/connection.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "log.hpp"

namespace actnet {

void detail::offload_result(const conn_ref& target, std::uint64_t seq,
                            unique_function<void()> deliver) {
  target.loop_->meter_.offloads_in_flight.fetch_sub(1, std::memory_order_relaxed);
  target.send_tell(
      [seq, d = std::move(deliver)](event_loop& loop, connection* c, std::error_code) mutable {
        loop.offloads_.arrived(*c, seq, std::move(d));
      });
}

std::error_code detail::send_question(event_loop& loop, std::uint32_t slot,
                                      std::uint32_t generation, message_fn question) {
  return loop.send_bounded(
      detail::message::to_actor(message_kind::ask, slot, generation, std::move(question)));
}

void detail::send_reply(const reply_address& to, unique_function<void()> reply) {
  if (to.cell != nullptr) {  // a service actor: as it, if it still runs
    to.loop->post_fn([cell = to.cell, generation = to.generation, r = std::move(reply)](
                         event_loop& loop, connection*, std::error_code) mutable {
      if (enter_actor(*cell, generation) != nullptr) {
        r();
      } else {
        count_dropped(loop);
      }
    });
  } else if (to.generation == 0) {
    to.loop->post_fn(
        [r = std::move(reply)](event_loop&, connection*, std::error_code) mutable { r(); });
  } else {
    conn_ref(to.loop, to.slot, to.generation)
        .send_tell(
            [r = std::move(reply)](event_loop&, connection*, std::error_code) mutable { r(); });
  }
}

void detail::log_ask_failure(event_loop& loop, const char* what) noexcept {
  try {
    loop.owner().logger().error("loop {}: an ask's handler threw: {}; answered with handler_failed",
                                loop.index(), what);
  } catch (...) {
    // logging failed: nothing more to do
  }
}

void detail::log_offload_failure(const char* what) noexcept {
  try {
    detail::log().error("offload: a job threw: {}; its result is skipped", what);
  } catch (...) {
    // logging failed: nothing more to do
  }
}

// -- conn_ref --

block conn_ref::gather(std::span<const std::span<const std::byte>> parts) {
  std::size_t total = 0;
  for (const auto& p : parts) {
    total += p.size();
  }
  block b = block::allocate(total);
  for (const auto& p : parts) {
    if (!p.empty()) {
      std::memcpy(b.space().data(), p.data(), p.size());
      b.commit(p.size());
    }
  }
  return b;
}

void conn_ref::send(detail::message_kind kind, block payload, detail::message_fn fn) const {
  loop_->send(
      detail::message::to_actor(kind, slot_, generation_, std::move(fn), std::move(payload)));
}

std::error_code conn_ref::send_write(block payload, detail::message_fn done) const {
  return loop_->send_bounded(detail::message::to_actor(
      detail::message_kind::async_write, slot_, generation_, std::move(done), std::move(payload)));
}

void conn_ref::send_tell(detail::message_fn fn) const {
  send(detail::message_kind::tell, {}, std::move(fn));
}

std::error_code conn_ref::send_user_tell(detail::message_fn fn) const {
  return loop_->send_bounded(
      detail::message::to_actor(detail::message_kind::tell, slot_, generation_, std::move(fn)));
}

void conn_ref::close() const {
  send(detail::message_kind::close, {}, nullptr);
}

void conn_ref::wake() const {
  send(detail::message_kind::wake, {}, nullptr);
}

}  // namespace actnet
