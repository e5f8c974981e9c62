// connection_output: writes that try the socket first and buffer the rest, the one drain of the
// outbound buffer, the watermarks, and datagram sends.
#include <spdlog/logger.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "guarded.hpp"
#include "log.hpp"

namespace actnet {
namespace {

// A send that took nothing now: the socket is full, or a signal came first. Either way the
// rest is buffered and goes out when the socket may send.
bool send_later(int e) noexcept {
  return detail::would_block(e) || e == EINTR;
}

}  // namespace

// -- outbound --

void connection::count_send(ssize_t sent) noexcept {
  if ((path_ & metered) != 0) {
    detail::io_tally& t = loop_->tally_;
    ++t.writes;
    t.bytes_out += sent > 0 ? static_cast<std::size_t>(sent) : 0;
  }
}

std::error_code connection::fail(std::error_code ec) noexcept {
  close_cause cause = detail::cause_of(ec);
  if (ec == errc::capacity_exceeded) {
    cause = close_cause::outbound_cap;
    // Once per connection: it closes now, with a reset, so the peer cannot take the cut-off
    // output for a whole reply.
    owner().logger().warn("loop {}: resetting a connection: outbound cap ({} bytes) exceeded",
                          loop_->index(), out_.max_size());
    (void)actnet::set_linger(fd_, std::chrono::seconds(0));
  }
  loop_->schedule_close(*this, ec, cause);
  return ec;
}

void connection::want_write(bool on) noexcept {
  if ((path_ & not_plain) != 0 && kcp() != nullptr) {
    return;  // KCP's acks drain the output (drain_kcp), not the socket's readiness
  }
  if ((path_ & ring_sends) != 0) {
    // io_uring: queued to go out before the loop's next wait (and kept queued while a send is
    // in flight: its completion drains on).
    if (on && !writing_ && state_ != state::closed) {
      writing_ = true;
      loop_->queue_ring_send(*this);
    } else if (!on) {
      writing_ = false;
    }
    return;
  }
  if (loop_->options_.edge_triggered || writing_ == on || state_ == state::closed) {
    return;
  }
  writing_ = on;
  loop_->update_interest(*this);
}

std::error_code connection::buffer_rest(std::span<const std::byte> rest) {
  if (rest.empty()) {
    return detail::no_error();
  }
  const bool was_empty = out_.empty();
  if (const std::error_code ec = out_.write(rest)) {
    return fail(ec);
  }
  after_buffering(was_empty);
  return {};
}

void connection::start_write_clock() {
  timing_->last_write = timer_clock::now();  // the write timeout counts from here
  if (timing_->limits.write.count() > 0) {
    arm_timeouts(timing_->last_write + timing_->limits.write);
  }
}

void connection::after_buffering(bool was_empty) {
  if (timing_ != nullptr && was_empty) {
    start_write_clock();
  }
  want_write(true);
  if (!above_high_ && out_.size() >= loop_->options_.outbound_high_watermark) [[unlikely]] {
    writable_changed(false);
  }
}

void connection::after_draining(bool progressed) {
  if (progressed && timing_ != nullptr) {
    note_sent();
  }
  if (above_high_ && out_.size() <= loop_->options_.outbound_low_watermark) {
    writable_changed(true);
  }
}

void connection::writable_changed(bool writable) {
  above_high_ = !writable;
  if (state_ != state::open) {
    return;
  }
  if (!detail::guarded(*loop_, "on_writable_changed", [&] { on_writable_changed(writable); })) {
    loop_->schedule_close(*this, std::make_error_code(std::errc::state_not_recoverable));
  }
}

std::error_code connection::write_partial(std::span<const std::byte> bytes, ssize_t sent) {
  if (sent < 0) {
    if (write_end_ != write_end::open) {
      return errc::connection_closed;  // (EPIPE: shutdown_write's FIN has gone)
    }
    if (!send_later(errno)) {
      return fail({errno, std::system_category()});
    }
    sent = 0;
  }
  if (sent > 0 && timing_ != nullptr) {
    note_sent();
  }
  return buffer_rest(bytes.subspan(static_cast<std::size_t>(sent)));
}

[[gnu::always_inline]] bool connection::stage(std::span<const std::byte> bytes) {
  using staged = detail::uring_backend::staged;
  const staged how = loop_->backend_.uring().stage(fd_, bytes, defaults::ring_send_chunk);
  if (how == staged::first && timing_ != nullptr) [[unlikely]] {
    // The output's first bytes: the write timeout counts from here. The ring sends them with
    // the loop's next wait, so the connection is not queued for a flush (want_write). The
    // watermarks count the buffered output, empty while bytes are staged.
    timing_->last_write = timer_clock::now();
    if (timing_->limits.write.count() > 0) {
      arm_timeouts(timing_->last_write + timing_->limits.write);
    }
  }
  return how != staged::refused;
}

std::error_code connection::write_queued(std::span<const std::byte> bytes) {
  if (state_ != state::open || write_end_ != write_end::open) {
    return errc::connection_closed;
  }
  if ((path_ & (ring_sends | not_plain)) == ring_sends && out_.empty() && !bytes.empty()) {
    if (bytes.size() >= defaults::ring_direct_send && sends_now(bytes.size())) [[unlikely]] {
      const ssize_t n = detail::sys_send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      count_send(n);
      return write_partial(bytes, n);
    }
    // io_uring's per-message path: copied once into the ring's send buffer, which goes out
    // before the loop's next wait, with whatever else is written until then.
    if (stage(bytes)) [[likely]] {
      return detail::no_error();  // (error_code{} calls system_category() out of line)
    }
  }
  if (xport_ != nullptr) {
    const std::array parts{bytes};
    return write_special(parts);
  }
  if ((path_ & (metered | ring_sends)) == metered && out_.empty() && !bytes.empty()) {
    // write()'s inline send, counted (count_io).
    const ssize_t n = detail::sys_send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    count_send(n);
    if (static_cast<std::size_t>(n) == bytes.size()) {
      if (timing_ != nullptr) {
        note_sent();
      }
      return detail::no_error();
    }
    return write_partial(bytes, n);
  }
  return buffer_rest(bytes);  // behind the waiting output (or nothing to write)
}

bool connection::sends_now(std::size_t bytes) const noexcept {
  return bytes >= defaults::ring_direct_send && out_.empty() &&
         !loop_->backend_.uring().sending(fd_);
}

std::error_code connection::send_datagram(std::span<const std::span<const std::byte>> parts,
                                          const sockaddr* to, socklen_t to_length) {
  if (state_ == state::closed) {  // (closing: a KCP conversation still sends what it owes)
    return errc::connection_closed;
  }
  if (to == nullptr) {
    if (dgram()->peer_length == 0) {
      return std::make_error_code(std::errc::destination_address_required);
    }
    to = reinterpret_cast<const sockaddr*>(&dgram()->peer);  // NOLINT
    to_length = dgram()->peer_length;
  }
  std::array<iovec, 64> iov;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  if (parts.size() > iov.size()) {
    return std::make_error_code(std::errc::argument_list_too_long);
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    iov[i] = {const_cast<std::byte*>(parts[i].data()), parts[i].size()};  // NOLINT
  }
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  msg.msg_namelen = to_length;
  msg.msg_iov = iov.data();
  msg.msg_iovlen = parts.size();
  if (loop_->backend_.is_uring() &&
      loop_->backend_.uring().send_datagram(fd_, std::span<const iovec>(iov.data(), parts.size()),
                                            to, to_length)) {
    return detail::no_error();  // out with the ring's next submission
  }
  for (;;) {
    if (detail::sys_sendmsg(fd_, &msg, MSG_NOSIGNAL) >= 0) {
      return {};
    }
    if (errno != EINTR) {
      return {errno, std::system_category()};  // the datagram is dropped; the socket serves on
    }
  }
}

std::error_code connection::send_to(const address& to, std::span<const std::byte> bytes) {
  assert_in_loop_thread();
  if (dgram() == nullptr) {
    return std::make_error_code(std::errc::operation_not_supported);
  }
  if (!to.valid() || to.transport() != transport::udp) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  const std::array parts{bytes};
  return send_datagram(parts, to.data(), to.size());
}

std::error_code connection::writev(std::span<const std::span<const std::byte>> parts) {
  assert_in_loop_thread();
  if (state_ != state::open || write_end_ != write_end::open) {
    return errc::connection_closed;
  }
  if (xport_ != nullptr) {
    return write_special(parts);
  }
  std::size_t first_unsent = 0;
  std::size_t sent = 0;
  bool send_now = out_.empty() && (path_ & ring_sends) == 0;
  if (out_.empty() && (path_ & ring_sends) != 0) {
    std::size_t total = 0;
    for (const std::span<const std::byte> part : parts) {
      total += part.size();
    }
    send_now = sends_now(total);
    // Otherwise each part is staged in turn (one copy); the first that does not fit and those
    // after it are buffered behind them.
    while (!send_now && first_unsent < parts.size() &&
           (parts[first_unsent].empty() || stage(parts[first_unsent]))) {
      ++first_unsent;
    }
  }
  if (send_now) {
    // Only the entries used are written: zeroing the whole array cost more than the rest of
    // the echo path (callgrind).
    std::array<iovec, 64> iov;  // NOLINT(cppcoreguidelines-pro-type-member-init)
    std::size_t count = 0;
    for (std::size_t i = 0; i < parts.size() && count < iov.size(); ++i) {
      if (!parts[i].empty()) {
        iov[count++] = {const_cast<std::byte*>(parts[i].data()), parts[i].size()};  // NOLINT
      }
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const ssize_t n = detail::sys_sendmsg(fd_, &msg, MSG_NOSIGNAL);
    count_send(n);
    if (n < 0 && !send_later(errno)) {
      return fail({errno, std::system_category()});
    }
    sent = n < 0 ? 0 : static_cast<std::size_t>(n);
    if (sent > 0 && timing_ != nullptr) {
      note_sent();
    }
    while (first_unsent < parts.size() && sent >= parts[first_unsent].size()) {
      sent -= parts[first_unsent++].size();
    }
  }
  for (std::size_t i = first_unsent; i < parts.size(); ++i) {
    const std::span<const std::byte> rest = i == first_unsent ? parts[i].subspan(sent) : parts[i];
    if (const std::error_code ec = buffer_rest(rest)) {
      return ec;
    }
  }
  return {};
}

std::error_code connection::write_two(const byte_views& bytes) {
  const std::array parts{bytes.first, bytes.second};
  return writev(parts);
}

std::error_code connection::write(block payload) {
  assert_in_loop_thread();
  if (state_ != state::open || write_end_ != write_end::open) {
    return errc::connection_closed;
  }
  if (xport_ != nullptr) {
    const std::array parts{std::span<const std::byte>(payload.data())};
    return write_special(parts);
  }
  if (!out_.empty() || ((path_ & ring_sends) != 0 && !sends_now(payload.size()))) {
    const bool was_empty = out_.empty();
    if (const std::error_code ec = out_.append(std::move(payload))) {
      return fail(ec);
    }
    after_buffering(was_empty);
    return {};
  }
  const std::span<const std::byte> bytes = payload.data();
  const ssize_t n =
      bytes.empty() ? 0 : detail::sys_send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (!bytes.empty()) {
    count_send(n);
  }
  if (n < 0 && !send_later(errno)) {
    return fail({errno, std::system_category()});
  }
  const auto sent = n < 0 ? std::size_t{0} : static_cast<std::size_t>(n);
  if (sent > 0 && timing_ != nullptr) {
    note_sent();
  }
  if (sent == 0 && !bytes.empty()) {
    if (const std::error_code ec = out_.append(std::move(payload))) {  // no copy
      return fail(ec);
    }
    after_buffering(true);
    return {};
  }
  return buffer_rest(bytes.subspan(sent));
}

std::error_code connection::flush() {
  assert_in_loop_thread();
  if (state_ == state::closed) {
    return errc::connection_closed;
  }
  return drain_output();
}

bool connection::output_waiting() const noexcept {
  return !out_.empty() || ((path_ & ring_sends) != 0 && loop_->backend_.uring().sending(fd_)) ||
         ((path_ & not_plain) != 0 && kcp() != nullptr && kcp_unacknowledged());
}

std::error_code connection::drain_to_ring() {
  detail::uring_backend& ring = loop_->backend_.uring();
  if (ring.in_flight(fd_)) {
    return detail::no_error();  // its completion drains on
  }
  if (ring.sending(fd_)) {
    ring.submit(fd_);  // what was staged; the buffered output (after it) at its completion
    return detail::no_error();
  }
  if (!out_.empty()) {
    std::array<iovec, 64> iov;  // NOLINT(cppcoreguidelines-pro-type-member-init)
    const std::size_t n = out_.peek(iov, defaults::ring_send_chunk);
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) {
      bytes += iov[i].iov_len;
    }
    if (const std::error_code ec = ring.send(fd_, std::span<const iovec>(iov.data(), n))) {
      return fail(ec);
    }
    (void)out_.discard(bytes);
    after_draining(false);  // (the low watermark; the time of the send at its completion)
    return detail::no_error();
  }
  want_write(false);
  if (state_ == state::closing) {
    loop_->schedule_close(*this, closing_reason());
    return detail::no_error();
  }
  output_drained();
  return detail::no_error();
}

std::error_code connection::drain_output() {
  if ((path_ & not_plain) != 0 && kcp() != nullptr) {
    return drain_kcp();
  }
  if ((path_ & ring_sends) != 0) {
    return drain_to_ring();
  }
  bool progressed = false;
  while (!out_.empty()) {
    const result<std::size_t> sent = out_.drain_to(fd_);
    count_send(sent ? static_cast<ssize_t>(*sent) : -1);
    if (!sent) {
      const std::error_code ec = sent.error();
      if (ec == std::errc::interrupted) {
        continue;
      }
      if (ec == std::errc::resource_unavailable_try_again ||
          ec == std::errc::operation_would_block) {
        after_draining(progressed);  // the rest when the socket may send again
        return {};
      }
      return fail(ec);
    }
    progressed = progressed || *sent > 0;
  }
  want_write(false);
  if (state_ == state::closing) {
    loop_->schedule_close(*this, closing_reason());
    return {};
  }
  output_drained();
  after_draining(progressed);
  return {};
}

}  // namespace actnet
