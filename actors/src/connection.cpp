// connection: inbound views across the ring and the loop's read buffer, writes that try the
// socket first, half-close and closing.
#include "actnet/actors/connection.hpp"

#include <spdlog/logger.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <stdexcept>

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

connection::~connection() = default;

engine& connection::owner() const noexcept {
  return loop_->owner();
}

// -- inbound --

std::error_code connection::gather(std::size_t n) {
  const std::size_t need = n - in_.size();
  std::span<std::byte> retired;
  const std::error_code ec = in_.write_keeping_views(fresh_.first(need), retired, ring_views_);
  if (!retired.empty()) {
    loop_->retired_.push_back(retired);  // earlier next() views may point into it
  }
  if (ec) {
    return ec;
  }
  fresh_ = fresh_.subspan(need);
  return {};
}

std::error_code connection::keep_fresh_slow() {
  if (dgram_ != nullptr) {
    fresh_ = {};  // a datagram's unconsumed bytes end with it
    return {};
  }
  const std::error_code ec = in_.write(fresh_);
  fresh_ = {};
  return ec;
}

result<byte_views> connection::peek_slow(std::size_t n) {
  if (n > inbound_buffered()) {
    return errc::short_buffer;
  }
  if (in_.empty()) {
    return byte_views{fresh_.first(n), {}};
  }
  if (n > in_.size()) {
    if (const std::error_code ec = gather(n)) {
      return ec;
    }
  }
  return in_.peek(n);
}

byte_views connection::peek_all() {
  assert_in_loop_thread();
  const result<byte_views> all = peek(inbound_buffered());
  return all ? *all : in_.peek_all();  // gathering can fail only at the inbound cap
}

result<byte_views> connection::next_slow(std::size_t n) {
  if (n > inbound_buffered()) {
    return errc::short_buffer;
  }
  if (in_.empty()) {
    const std::span<const std::byte> taken = fresh_.first(n);
    fresh_ = fresh_.subspan(n);
    return byte_views{taken, {}};
  }
  if (n > in_.size()) {
    if (const std::error_code ec = gather(n)) {
      return ec;
    }
  }
  ring_views_ = true;  // a later gather in this on_data must not write where these point
  return in_.next(n);
}

byte_views connection::next_all_slow() {
  const result<byte_views> all = next_slow(inbound_buffered());
  return all ? *all : byte_views{};
}

std::error_code connection::discard(std::size_t n) noexcept {
  assert_in_loop_thread();
  if (n > inbound_buffered()) {
    return errc::short_buffer;
  }
  const std::size_t from_ring = std::min(n, in_.size());
  (void)in_.skip(from_ring);  // keeps the block for earlier next() views; trimmed after on_data
  fresh_ = fresh_.subspan(n - from_ring);
  return {};
}

std::error_code connection::read(std::span<std::byte> out) noexcept {
  assert_in_loop_thread();
  if (out.size() > inbound_buffered()) {
    return errc::short_buffer;
  }
  const std::size_t from_ring = std::min(out.size(), in_.size());
  if (from_ring > 0) {
    in_.peek(from_ring)->copy_to(out.first(from_ring));
    (void)in_.skip(from_ring);  // keeps the block for earlier next() views
  }
  const std::size_t rest = out.size() - from_ring;
  if (rest > 0) {
    std::memcpy(out.data() + from_ring, fresh_.data(), rest);
    fresh_ = fresh_.subspan(rest);
  }
  return {};
}

// -- outbound --

std::error_code connection::fail(std::error_code ec) noexcept {
  if (ec == errc::capacity_exceeded) {
    // Once per connection: it closes now, with a reset, so the peer cannot take the cut-off
    // output for a whole reply.
    owner().logger().warn("loop {}: resetting a connection: outbound cap ({} bytes) exceeded",
                          loop_->index(), out_.max_size());
    (void)actnet::set_linger(fd_, std::chrono::seconds(0));
  }
  loop_->finish(*this, ec);
  return ec;
}

void connection::want_write(bool on) noexcept {
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

void connection::after_buffering(bool was_empty) {
  if (timing_ != nullptr && was_empty) {
    timing().last_write = timer_clock::now();  // the write timeout counts from here
    if (timing_->limits.write.count() > 0) {
      arm_timeouts(timing_->last_write + timing_->limits.write);
    }
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
    loop_->finish(*this, std::make_error_code(std::errc::state_not_recoverable));
  }
}

void connection::pause_reading() noexcept {
  assert_in_loop_thread();
  if (pause_asked_ || (dgram_ != nullptr && dgram_->socket != nullptr)) {
    return;
  }
  pause_asked_ = true;
  if (read_paused_) {
    return;  // the peer's FIN stopped reading already
  }
  read_paused_ = true;
  if (state_ == state::open) {
    loop_->update_interest(*this);
  }
}

void connection::resume_reading() noexcept {
  assert_in_loop_thread();
  if (!pause_asked_) {
    return;
  }
  pause_asked_ = false;
  if (peer_closed_) {
    return;  // nothing more to read
  }
  read_paused_ = false;
  if (state_ != state::open) {
    return;
  }
  if (timing_ != nullptr) {
    note_read();  // the read timeout waited while paused
  }
  if (loop_->options_.edge_triggered && dgram_ == nullptr) {
    // The edge that announced what waits in the socket has passed: read it next iteration.
    try {
      loop_->continue_reading_.push_back(ref());
    } catch (const std::bad_alloc&) {
      loop_->finish(*this, std::make_error_code(std::errc::not_enough_memory));
    }
  } else {
    loop_->update_interest(*this);
  }
}

void connection::loop_thread_check() const noexcept {
  loop_->assert_in_loop_thread();
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

std::error_code connection::write_queued(std::span<const std::byte> bytes) {
  if (state_ != state::open || write_end_ != write_end::open) {
    return errc::connection_closed;
  }
  if (dgram_ != nullptr) {
    const std::array parts{bytes};
    return send_datagram(parts);
  }
  return buffer_rest(bytes);  // behind the waiting output (or nothing to write)
}

std::error_code connection::send_datagram(std::span<const std::span<const std::byte>> parts,
                                          const sockaddr* to, socklen_t to_length) {
  if (state_ != state::open) {
    return errc::connection_closed;
  }
  if (to == nullptr) {
    if (dgram_->peer_length == 0) {
      return std::make_error_code(std::errc::destination_address_required);
    }
    to = reinterpret_cast<const sockaddr*>(&dgram_->peer);  // NOLINT
    to_length = dgram_->peer_length;
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
  if (dgram_ == nullptr) {
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
  if (dgram_ != nullptr) {
    return send_datagram(parts);
  }
  std::size_t first_unsent = 0;
  std::size_t sent = 0;
  if (out_.empty()) {
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
  if (dgram_ != nullptr) {
    const std::array parts{std::span<const std::byte>(payload.data())};
    return send_datagram(parts);
  }
  if (!out_.empty()) {
    if (const std::error_code ec = out_.append(std::move(payload))) {
      return fail(ec);
    }
    after_buffering(false);
    return {};
  }
  const std::span<const std::byte> bytes = payload.data();
  const ssize_t n =
      bytes.empty() ? 0 : detail::sys_send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
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

std::error_code connection::drain_output() {
  bool progressed = false;
  while (!out_.empty()) {
    const result<std::size_t> sent = out_.drain_to(fd_);
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
    loop_->finish(*this, closing_reason());
    return {};
  }
  output_drained();
  after_draining(progressed);
  return {};
}

// -- control --

void connection::close() noexcept {
  assert_in_loop_thread();
  if (state_ != state::open) {
    return;
  }
  begin_closing();
}

void connection::begin_closing() noexcept {
  fresh_ = {};
  if (out_.empty()) {  // nothing to send: it closes now (the common case, kept short)
    loop_->finish(*this, closing_reason());
    return;
  }
  state_ = state::closing;
  (void)flush();  // finishes at once when everything goes out now
  if (state_ == state::closing) {
    writing_ = false;
    want_write(true);  // re-registers for writable only: reading has stopped
    try {
      arm_drain_deadline();
    } catch (const std::bad_alloc&) {
      loop_->finish(*this, std::make_error_code(std::errc::not_enough_memory));
    }
  }
}

std::error_code connection::shutdown_write() {
  assert_in_loop_thread();
  if (dgram_ != nullptr) {
    return std::make_error_code(std::errc::operation_not_supported);
  }
  if (state_ != state::open) {
    return errc::connection_closed;
  }
  if (write_end_ != write_end::open) {
    return {};
  }
  write_end_ = write_end::draining;
  return out_.empty() ? shut_writing() : std::error_code{};  // else when the output has gone
}

std::error_code connection::shut_writing() noexcept {
  write_end_ = write_end::shut;
  if (::shutdown(fd_, SHUT_WR) != 0) {
    // (After a reset the socket says not_connected; the reset is the news.)
    const std::error_code refused(errno, std::system_category());
    const std::error_code pending = pending_error(fd_);
    return fail(pending ? pending : refused);
  }
  if (peer_closed_) {
    loop_->finish(*this, make_error_code(errc::end_of_stream));  // both ways are shut
  }
  return {};
}

std::error_code connection::closing_reason() const noexcept {
  if (peer_closed_) {
    return make_error_code(errc::end_of_stream);
  }
  return loop_->stopping_ ? make_error_code(errc::engine_stopped) : std::error_code{};
}

void connection::abort() noexcept {
  assert_in_loop_thread();
  if (state_ == state::closed) {
    return;
  }
  out_.clear();
  if (dgram_ == nullptr) {  // (a UDP session shares its socket: nothing to reset)
    (void)actnet::set_linger(fd_, std::chrono::seconds(0));
  }
  loop_->finish(*this, {});
}

void connection::wake() noexcept {
  ref().wake();
}

void connection::shutdown_engine() noexcept {
  owner().stop();
}

timer_id connection::after(std::chrono::nanoseconds delay, unique_function<void(connection&)> fn) {
  assert_in_loop_thread();
  event_loop* loop = loop_;
  return loop_->after(
      delay, [loop, slot = slot_, generation = generation_, f = std::move(fn)]() mutable {
        if (connection* c = loop->find(slot, generation); c != nullptr && c->is_open()) {
          f(*c);
        }
      });
}

bool connection::cancel_timer(timer_id id) noexcept {
  assert_in_loop_thread();
  return loop_->cancel(id);
}

transport connection::kind() const noexcept {
  if (dgram_ != nullptr) {
    return transport::udp;
  }
  // A stream: tcp or unix, from the socket's family (asked when an address is, rather than
  // kept in every connection).
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  const bool unix_socket =
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length) == 0 &&  // NOLINT
      local.ss_family == AF_UNIX;
  return unix_socket ? transport::unix_stream : transport::tcp;
}

result<address> connection::local_address() const {
  return actnet::local_address(fd_, kind());
}

result<address> connection::remote_address() const {
  if (dgram_ != nullptr) {
    if (dgram_->peer_length == 0) {
      return std::make_error_code(std::errc::not_connected);
    }
    return address::from_sockaddr(transport::udp,
                                  reinterpret_cast<const sockaddr*>(&dgram_->peer),  // NOLINT
                                  dgram_->peer_length);
  }
  return actnet::peer_address(fd_, kind());
}

// -- blocking work --

result<std::uint64_t> connection::offload_begin() noexcept {
  if (state_ != state::open) {
    return make_error_code(errc::connection_closed);
  }
  return loop_->offload_next(*this);
}

std::error_code connection::offload_submit(std::uint64_t seq, unique_function<void()> job) {
  const std::error_code ec = owner().workers().submit(std::move(job));
  if (ec) {
    loop_->offload_unused(*this, seq);
  }
  return ec;
}

void connection::dial_here(const address& to, std::function<std::unique_ptr<connection>()> make,
                           const dial_options& options,
                           std::function<void(result<conn_ref>)> done) {
  assert_in_loop_thread();
  loop_->dialer_.start_here(to, std::move(make), options, std::move(done));
}

}  // namespace actnet
