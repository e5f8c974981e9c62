// poller: epoll behind a small interface, with an eventfd so other threads can wake it.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "actnet/reactor/unique_fd.hpp"
#include "actnet/result.hpp"

namespace actnet {

/// What a registration waits for, and what a wait reports. The values are epoll's own bits,
/// so a report is used as the kernel wrote it, without a translation per event.
namespace io {
inline constexpr std::uint32_t readable = EPOLLIN;
inline constexpr std::uint32_t writable = EPOLLOUT;
/// Registration only: report readiness once per change (edge-triggered) instead of for as
/// long as it lasts (level-triggered, the default).
inline constexpr std::uint32_t edge = EPOLLET;
/// Reported only: the peer closed its side or the socket failed (read to find out which).
inline constexpr std::uint32_t hangup = EPOLLHUP | EPOLLRDHUP;
/// Reported only: both directions are shut (a reset, typically); part of hangup.
inline constexpr std::uint32_t hangup_both = EPOLLHUP;
inline constexpr std::uint32_t error = EPOLLERR;
}  // namespace io

/// One readiness report: `events` holds io:: flags, `data.u64` what was registered with the fd.
using poll_event = epoll_event;

/// One epoll instance. Loop-thread only, except wake(), which is thread-safe.
class poller {
 public:
  static constexpr std::size_t initial_events = 128;
  static constexpr std::size_t max_events = 4096;
  /// The data of the report a wake() makes; register no fd with it.
  static constexpr std::uint64_t wake_key = ~std::uint64_t{0};

  /// Throws std::system_error when the kernel refuses an epoll instance or an eventfd.
  poller();

  [[nodiscard]] std::error_code add(int fd, std::uint32_t interest, std::uint64_t data) noexcept;
  [[nodiscard]] std::error_code modify(int fd, std::uint32_t interest, std::uint64_t data) noexcept;
  [[nodiscard]] std::error_code remove(int fd) noexcept;

  /// Waits up to `timeout_ms` (-1: no limit, 0: do not block) and returns the ready fds, valid
  /// until the next wait. The reports are the kernel's, not copied: a wake() shows up among them
  /// as one with data.u64 == wake_key, and the caller calls consume_wake() for it. The event
  /// array doubles (up to max_events) whenever a wait fills it. EINTR is an empty result, not
  /// an error.
  [[nodiscard]] result<std::span<const poll_event>> wait(int timeout_ms);

  /// Thread-safe: ends the current wait(), or makes the next one return at once.
  void wake() noexcept;
  /// Resets the wake-up after a report with wake_key (edge-triggered: one report per batch of
  /// wake() calls, until this is called).
  void consume_wake() noexcept;

  /// Shrinks the event array back to initial_events (for an idle loop; not during a wait's
  /// reports, which live in it). Keeps the larger array if the smaller cannot be allocated.
  void shrink() noexcept;
  /// The current size of the event array.
  [[nodiscard]] std::size_t capacity() const noexcept { return events_.size(); }

 private:
  unique_fd epoll_;
  unique_fd wake_;
  std::vector<epoll_event> events_;
  bool grow_ = false;  // the last wait filled the array: double it before the next one
};

}  // namespace actnet
