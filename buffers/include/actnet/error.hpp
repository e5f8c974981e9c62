// actnet's own error codes, as a std::error_category so they mix with system errors.
#pragma once

#include <system_error>

namespace actnet {

/// Errors raised by actnet itself (system call failures keep their errno).
enum class errc : int {
  short_buffer = 1,      ///< fewer bytes are buffered than were asked for; nothing was consumed
  capacity_exceeded,     ///< the operation would grow a buffer past its cap; nothing was written
  end_of_stream,         ///< the peer closed its side of the connection
  connection_closed,     ///< the connection is gone (closed, or never existed on that loop)
  engine_stopped,        ///< the engine stopped before the request could be carried out
  queue_full,            ///< a bounded queue is full: nothing was queued; try again later
  handler_failed,        ///< the handler asked to answer threw (the exception was logged)
  idle_timeout,          ///< nothing was read or written for the connection's idle timeout
  read_timeout,          ///< nothing was read for the connection's read timeout
  write_timeout,         ///< buffered output made no progress for the connection's write timeout
  drain_timeout,         ///< close() or stop could not send the buffered output in time
  tls_handshake_failed,  ///< the TLS handshake failed (not TLS, no common protocol, an alert)
  tls_certificate_rejected,  ///< the peer's certificate did not verify (or none was shown)
  tls_handshake_timeout,     ///< the TLS handshake was not done in time
  tls_truncated,             ///< the peer's FIN came without TLS's close_notify before it
  tls_protocol_error,        ///< a TLS record after the handshake was bad (or an alert came)
  actor_stopped,             ///< the service actor asked has stopped (or never existed there)
};

[[nodiscard]] const std::error_category& error_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

namespace detail {

/// std::system_category(), taken once at start-up: a plain load where the function is a call
/// into the C++ runtime and a function-local static a guard test.
inline const std::error_category* const system_category_at_start = &std::system_category();

/// std::error_code{}, without the call into the C++ runtime that its constructor makes for
/// std::system_category() (a measurable part of a per-message path; callgrind). A plain load, so
/// a result nobody reads costs nothing.
[[nodiscard]] inline std::error_code no_error() noexcept {
  const std::error_category* system = system_category_at_start;
  if (system == nullptr) [[unlikely]] {  // called by another static initializer, before ours
    return {};
  }
  return {0, *system};
}

}  // namespace detail

}  // namespace actnet

template <>
struct std::is_error_code_enum<actnet::errc> : std::true_type {};
