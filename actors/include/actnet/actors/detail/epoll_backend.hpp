// epoll_backend: the readiness back end. Interest by meaning turned into epoll's bits, and
// each wait's events handed to the loop's handler by key, without a copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

#include "actnet/actors/detail/backend.hpp"
#include "actnet/actors/detail/io_key.hpp"
#include "actnet/reactor/poller.hpp"
#include "actnet/result.hpp"

namespace actnet::detail {

static_assert(io_event::readable == io::readable && io_event::writable == io::writable &&
                  io_event::error == io::error && io_event::hangup == io::hangup &&
                  io_event::hangup_both == io::hangup_both,
              "epoll_backend hands epoll's bits on as they are");

/// Level-triggered by default; edge-triggered streams (engine_options::edge_triggered) are
/// registered for both directions once and for good. Listeners, connects and datagram
/// sockets are level-triggered either way. Loop-thread only, but wake().
class epoll_backend {
 public:
  /// Throws std::system_error when the kernel refuses an epoll instance or an eventfd.
  explicit epoll_backend(bool edge_triggered) : edge_(edge_triggered) {}

  [[nodiscard]] std::error_code watch_listener(int fd, io_key key) noexcept {
    return poller_.add(fd, io::readable, key.bits());
  }
  [[nodiscard]] std::error_code watch_stream(int fd, io_key key, stream_interest want) noexcept {
    return poller_.add(fd, edge_ ? io::readable | io::writable | io::edge : bits_of(want),
                       key.bits());
  }
  /// Edge-triggered: nothing to change (a paused connection's reads are skipped instead).
  [[nodiscard]] std::error_code change_stream(int fd, io_key key, stream_interest want) noexcept {
    return edge_ ? std::error_code{} : poller_.modify(fd, bits_of(want), key.bits());
  }
  [[nodiscard]] std::error_code watch_connect(int fd, io_key key) noexcept {
    return poller_.add(fd, io::writable, key.bits());
  }
  [[nodiscard]] std::error_code watch_datagram(int fd, io_key key) noexcept {
    return poller_.add(fd, io::readable, key.bits());
  }
  /// A datagram socket's reading paused (receive false) or resumed.
  [[nodiscard]] std::error_code change_datagram(int fd, io_key key, bool receive) noexcept {
    return poller_.modify(fd, receive ? io::readable : 0U, key.bits());
  }
  [[nodiscard]] std::error_code unwatch(int fd) noexcept { return poller_.remove(fd); }

  /// Waits up to `timeout_ms` (-1: no limit, 0: not at all); how many events came (the
  /// wake-up among them). EINTR is 0 events, not an error.
  [[nodiscard]] result<std::size_t> wait(int timeout_ms) {
    result<std::span<const poll_event>> ready = poller_.wait(timeout_ms);
    if (!ready) {
      return ready.error();
    }
    ready_ = *ready;
    return ready_.size();
  }
  /// Hands each event of the last wait to `handle(key, flags)`, but the wake-up, which it
  /// consumes. `handle` may register and unregister sources.
  template <io_handler Handler>
  void dispatch(Handler&& handle) {
    for (const poll_event& ev : ready_) {
      const io_key key = io_key::from_bits(ev.data.u64);
      // A stream key is never the wake-up's: the per-message path tests the kind once (the
      // handler's own stream test folds into this one).
      if (!key.is_stream() && key.bits() == io_key::wake().bits()) [[unlikely]] {
        poller_.consume_wake();
        continue;
      }
      handle(key, ev.events);  // one call site: in line once
    }
    ready_ = {};
  }
  /// Thread-safe: ends the current wait, or makes the next one return at once.
  void wake() noexcept { poller_.wake(); }
  /// Gives back the event array an idle loop no longer needs.
  void shrink() noexcept { poller_.shrink(); }
  [[nodiscard]] bool edge_triggered() const noexcept { return edge_; }

 private:
  static std::uint32_t bits_of(stream_interest want) noexcept {
    return (want.receive ? io::readable : 0U) | (want.send ? io::writable : 0U);
  }
  poller poller_;
  std::span<const poll_event> ready_;
  bool edge_;
};

static_assert(backend<epoll_backend>);

}  // namespace actnet::detail
