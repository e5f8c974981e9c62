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

/// What a registration waits for, and what a wait reports.
namespace io {
inline constexpr std::uint32_t readable = 1U << 0;
inline constexpr std::uint32_t writable = 1U << 1;
/// Registration only: report readiness once per change (edge-triggered) instead of for as
/// long as it lasts (level-triggered, the default).
inline constexpr std::uint32_t edge = 1U << 2;
/// Reported only: the peer closed its side or the socket failed (read to find out which).
inline constexpr std::uint32_t hangup = 1U << 3;
inline constexpr std::uint32_t error = 1U << 4;
}  // namespace io

struct poll_event {
  std::uint64_t data;    ///< what was registered with the fd
  std::uint32_t events;  ///< io:: flags
};

/// One epoll instance. Loop-thread only, except wake(), which is thread-safe.
class poller {
 public:
  static constexpr std::size_t initial_events = 128;
  static constexpr std::size_t max_events = 4096;

  /// Throws std::system_error when the kernel refuses an epoll instance or an eventfd.
  poller();

  [[nodiscard]] std::error_code add(int fd, std::uint32_t interest, std::uint64_t data) noexcept;
  [[nodiscard]] std::error_code modify(int fd, std::uint32_t interest, std::uint64_t data) noexcept;
  [[nodiscard]] std::error_code remove(int fd) noexcept;

  /// Waits up to `timeout_ms` (-1: no limit, 0: do not block) and returns the ready fds, valid
  /// until the next wait. A wake() ends the wait and is not reported. The event array doubles
  /// (up to max_events) whenever a wait fills it. EINTR is an empty result, not an error.
  [[nodiscard]] result<std::span<const poll_event>> wait(int timeout_ms);

  /// Thread-safe: ends the current wait(), or makes the next one return at once.
  void wake() noexcept;

  /// The current size of the event array.
  [[nodiscard]] std::size_t capacity() const noexcept { return events_.size(); }

 private:
  unique_fd epoll_;
  unique_fd wake_;
  std::vector<epoll_event> events_;
  std::vector<poll_event> ready_;
  bool grow_ = false;  // the last wait filled the array: double it before the next one
};

}  // namespace actnet
