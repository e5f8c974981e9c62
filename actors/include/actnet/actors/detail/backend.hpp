// backend: the seam between a loop and the kernel. A back end owns the kernel interest, the
// wait, and turning the kernel's events into the loop's: "a connection waits on listener L",
// "bytes for connection X", "X may send", "connect D finished", "X hung up or failed".
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "actnet/actors/detail/io_key.hpp"
#include "actnet/result.hpp"

namespace actnet::detail {

/// What a stream connection wants from the kernel now: its bytes (unless reading is paused
/// or over) and word when it may send (while output waits).
struct stream_interest {
  bool receive = true;
  bool send = false;
  friend bool operator==(stream_interest, stream_interest) noexcept = default;
};

/// What happened to a source: the flags an io_handler receives (epoll's own bits, so the
/// epoll back end reports without translating; a completion back end sets the same ones).
namespace io_event {
inline constexpr std::uint32_t readable = 0x001;         // EPOLLIN: bytes, a connection, a datagram
inline constexpr std::uint32_t writable = 0x004;         // EPOLLOUT: may send; a connect finished
inline constexpr std::uint32_t error = 0x008;            // EPOLLERR: the socket failed
inline constexpr std::uint32_t hangup_both = 0x010;      // EPOLLHUP: both directions shut
inline constexpr std::uint32_t hangup = 0x010 | 0x2000;  // EPOLLHUP | EPOLLRDHUP: a FIN or more
}  // namespace io_event

/// The loop's side of the seam: one handler for every event of a wait, by the key its source
/// was registered with. The back end never calls it for its own wake-up.
template <class H>
concept io_handler = requires(H& h, io_key key, std::uint32_t flags) {
  h(key, flags);
};

/// A back end: the interest of each kind of source (listener, stream, connect in progress,
/// datagram socket), registered with an io_key; the one blocking wait; its events handed to
/// the loop's handler; and a wake-up other threads may call. Every member is loop-thread only
/// but wake(). Registration is by meaning, not by kernel bits, so a completion back end can
/// fill the same calls (see the README's "Back ends"):
///   - watch_listener: epoll adds EPOLLIN; io_uring arms a multishot accept;
///   - watch_stream / change_stream: epoll sets EPOLLIN|EPOLLRDHUP and EPOLLOUT (or, edge-
///     triggered, both for good); io_uring arms a multishot receive into its buffer ring (or
///     cancels it for a paused connection) and has no "may send" (sends complete instead);
///   - watch_connect: epoll waits for EPOLLOUT; io_uring submits the connect;
///   - unwatch: epoll deletes the fd; io_uring cancels what is in flight for it, and its
///     completions after that are dropped by key (the slot's generation has moved on).
template <class B>
concept backend = requires(B& b, const B& cb, int fd, io_key key, stream_interest want,
                           int timeout_ms, void (*h)(io_key, std::uint32_t)) {
  { b.watch_listener(fd, key) } -> std::same_as<std::error_code>;
  { b.watch_stream(fd, key, want) } -> std::same_as<std::error_code>;
  { b.change_stream(fd, key, want) } -> std::same_as<std::error_code>;
  { b.watch_connect(fd, key) } -> std::same_as<std::error_code>;
  { b.watch_datagram(fd, key) } -> std::same_as<std::error_code>;
  { b.change_datagram(fd, key, want.receive) } -> std::same_as<std::error_code>;
  { b.unwatch(fd) } -> std::same_as<std::error_code>;
  { b.wait(timeout_ms) } -> std::same_as<result<std::size_t>>;
  b.dispatch(h);
  b.wake();
  b.shrink();
  { cb.edge_triggered() } -> std::same_as<bool>;
};

}  // namespace actnet::detail
