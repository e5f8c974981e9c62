// connection: inbound views across the ring and the loop's read buffer, pausing reads,
// half-close and closing, identity. (Writes: connection_output.cpp.)
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

#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/detail/kcp_state.hpp"
#include "actnet/actors/detail/tls_layer.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "guarded.hpp"
#include "log.hpp"

namespace actnet {

connection::connection() = default;
connection::~connection() = default;

bool connection::is_datagram() const noexcept {
  return dgram() != nullptr && kcp() == nullptr;
}

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
  if (dgram() != nullptr && kcp() == nullptr) {
    fresh_ = {};  // a datagram's unconsumed bytes end with it (a KCP stream's are kept)
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

// -- pausing --

void connection::pause_reading() noexcept {
  assert_in_loop_thread();
  if (pause_asked_ || (dgram() != nullptr && dgram()->socket != nullptr && kcp() == nullptr)) {
    return;
  }
  pause_asked_ = true;
  loop_->meter_.paused.add();  // (and down at the resume, or the close)
  if (read_paused()) {
    return;  // the peer's FIN stopped reading already
  }
  set_read_paused(true);
  // (A KCP conversation keeps reading its datagrams, acks included: what it received waits in
  // KCP, whose window closes.)
  if (state_ == state::open && kcp() == nullptr) {
    loop_->update_interest(*this);
  }
}

void connection::resume_reading() noexcept {
  assert_in_loop_thread();
  if (!pause_asked_) {
    return;
  }
  pause_asked_ = false;
  loop_->meter_.paused.sub();
  if (peer_closed_) {
    return;  // nothing more to read
  }
  set_read_paused(false);
  if (state_ != state::open) {
    return;
  }
  if (timing_ != nullptr) {
    note_read();  // the read timeout waited while paused
  }
  const bool edge_triggered = loop_->options_.edge_triggered;
  if ((dgram() == nullptr &&
       (edge_triggered || layer() != nullptr || loop_->backend_.is_uring())) ||
      (dgram() != nullptr && (!dgram()->held.empty() || kcp() != nullptr))) {
    // Edge-triggered, the edge that announced what waits in the socket has passed; a layer may
    // hold plain bytes it decoded before the pause; on io_uring, bytes that completed before
    // the receive was cancelled wait in the connection. Each way: read next iteration.
    try {
      loop_->continue_reading_.push_back(ref());
    } catch (const std::bad_alloc&) {
      loop_->schedule_close(*this, std::make_error_code(std::errc::not_enough_memory));
      return;
    }
  }
  if ((!edge_triggered || dgram() != nullptr) && kcp() == nullptr) {
    loop_->update_interest(*this);
  }
}

void connection::loop_thread_check() const noexcept {
  loop_->assert_in_loop_thread();
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
  if (xport_ != nullptr) [[unlikely]] {
    (void)end_layer();  // (a layer's last wire bytes go before the close)
    if (state_ != state::open) {
      return;
    }
  }
  if (!output_waiting()) {  // nothing to send: it closes now (the common case, kept short)
    loop_->schedule_close(*this, closing_reason());
    return;
  }
  set_state(state::closing);
  (void)flush();  // finishes at once when everything goes out now
  if (state_ == state::closing) {
    writing_ = false;
    want_write(true);  // re-registers for writable only: reading has stopped
    try {
      arm_drain_deadline();
    } catch (const std::bad_alloc&) {
      loop_->schedule_close(*this, std::make_error_code(std::errc::not_enough_memory));
    }
  }
}

std::error_code connection::shutdown_write() {
  assert_in_loop_thread();
  if (dgram() != nullptr) {
    return std::make_error_code(std::errc::operation_not_supported);
  }
  if (state_ != state::open) {
    return errc::connection_closed;
  }
  if (write_end_ != write_end::open) {
    return {};
  }
  write_end_ = write_end::draining;
  const bool was_empty = !output_waiting();
  if (const std::error_code ec = end_layer()) {
    return ec;  // the connection closed with it
  }
  if (output_waiting()) {
    // The FIN follows the output (output_drained); the layer's last bytes are sent now when
    // nothing waited before them.
    return was_empty ? send_buffered(true) : std::error_code{};
  }
  return shut_writing();
}

std::error_code connection::shut_writing() noexcept {
  write_end_ = write_end::shut;
  // io_uring: the FIN goes with the ring's next submission (the output has all gone).
  const bool by_ring = (path_ & ring_sends) != 0 && !loop_->backend_.uring().shutdown_write(fd_);
  if (!by_ring && ::shutdown(fd_, SHUT_WR) != 0) {
    // (After a reset the socket says not_connected; the reset is the news.)
    const std::error_code refused(errno, std::system_category());
    const std::error_code pending = pending_error(fd_);
    return fail(pending ? pending : refused);
  }
  if (peer_closed_) {
    loop_->schedule_close(*this, make_error_code(errc::end_of_stream));  // both ways are shut
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
  if (dgram() == nullptr) {  // (a UDP session shares its socket: nothing to reset)
    (void)actnet::set_linger(fd_, std::chrono::seconds(0));
  }
  loop_->schedule_close(*this, {});
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
          loop->note_running(*c);
          f(*c);
        }
      });
}

bool connection::cancel_timer(timer_id id) noexcept {
  assert_in_loop_thread();
  return loop_->cancel(id);
}

transport connection::kind() const noexcept {
  if (dgram() != nullptr) {
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
  if (dgram() != nullptr) {
    if (dgram()->peer_length == 0) {
      return std::make_error_code(std::errc::not_connected);
    }
    return address::from_sockaddr(transport::udp,
                                  reinterpret_cast<const sockaddr*>(&dgram()->peer),  // NOLINT
                                  dgram()->peer_length);
  }
  return actnet::peer_address(fd_, kind());
}

// -- blocking work --

result<std::uint64_t> connection::offload_begin() noexcept {
  if (state_ != state::open) {
    return make_error_code(errc::connection_closed);
  }
  return loop_->offloads_.next(*this);
}

std::error_code connection::offload_submit(std::uint64_t seq, unique_function<void()> job) {
  // In flight until the worker has run it (detail::offload_result, on the worker's thread).
  std::atomic<std::uint64_t>& in_flight = loop_->meter_.offloads_in_flight;
  in_flight.fetch_add(1, std::memory_order_relaxed);
  const std::error_code ec = owner().workers().submit(std::move(job));
  if (ec) {
    in_flight.fetch_sub(1, std::memory_order_relaxed);
    loop_->offloads_.unused(*this, seq);
  }
  return ec;
}

void connection::dial_here(std::string_view url, std::function<std::unique_ptr<connection>()> make,
                           const dial_options& options,
                           std::function<void(result<conn_ref>)> done) {
  assert_in_loop_thread();
  const std::optional<detail::tls_url> secure = detail::parse_tls_url(url);
  const std::optional<std::string> kcp = detail::kcp_plain_url(url);
  const address to = address::parse(secure ? std::string_view(secure->plain)
                                    : kcp  ? std::string_view(*kcp)
                                           : url);
  if (kcp || options.kcp) {
    const kcp_options tuning = options.kcp.value_or(kcp_options{});
    if (to.transport() != transport::udp || to.multicast()) {
      throw std::invalid_argument("actnet: dial('" + std::string(url) + "'): KCP needs a udp peer");
    }
    try {
      detail::check_kcp_options(tuning, loop_->options_.read_buffer_size);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("actnet: dial('" + std::string(url) + "'): " + e.what());
    }
    make = detail::kcp_client_factory(std::move(make), tuning);
  }
  if (secure || options.tls) {
    tls_options tls = options.tls.value_or(tls_options{});
    if (secure && tls.server_name.empty()) {
      tls.server_name = secure->host;
    }
    if (to.transport() == transport::udp) {
      throw std::invalid_argument("actnet: dial('" + std::string(url) + "'): TLS over udp");
    }
    make = detail::tls_client_factory(std::move(make), tls, to, owner().logger_);
  }
  loop_->dialer_.start_here(to, std::move(make), options, std::move(done));
}

tls_info connection::tls() const {
  const detail::byte_layer* l = layer();
  return l == nullptr ? tls_info{} : l->info();
}

}  // namespace actnet
