// metrics: what each loop has done and is doing, as engine::metrics() reads it. The loops keep
// their counters themselves (one writer each, no lock, no atomic read-modify-write), and any
// thread reads them without stopping a loop.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace actnet {

/// Why a connection closed, as loop_metrics counts them (from on_close's reason).
enum class close_cause : std::uint8_t {
  local,           // close() or abort() by the actor or its conn_ref, with no error
  end_of_stream,   // the peer ended the stream (FIN, or TLS's close_notify)
  reset,           // the peer reset the connection (ECONNRESET, EPIPE)
  idle_timeout,    // errc::idle_timeout
  read_timeout,    // errc::read_timeout
  write_timeout,   // errc::write_timeout
  drain_timeout,   // errc::drain_timeout: close() or stop could not send the rest in time
  inbound_cap,     // errc::capacity_exceeded: unread bytes past inbound_cap
  outbound_cap,    // errc::capacity_exceeded: a write past outbound_cap
  engine_stopped,  // the engine stopped
  tls,             // a TLS error after the handshake (truncation, a bad record, an alert)
  other,           // any other error (a socket's, a handler's exception)
};
inline constexpr std::size_t close_causes = 12;

/// The name of a close cause, as the metrics' labels spell it ("end_of_stream").
[[nodiscard]] std::string_view to_string(close_cause c) noexcept;

/// Loop iteration time (the busy part: from waking up to waiting again), in buckets whose
/// upper bounds are 1 µs × 2^i for i below iteration_buckets - 1, the last one unbounded.
inline constexpr std::size_t iteration_buckets = 24;  // 1 µs .. 4.2 s, then +Inf
/// Bucket i's upper bound in seconds (the last: infinity).
[[nodiscard]] double iteration_bucket_bound(std::size_t i) noexcept;

/// One loop's counters (since the engine started) and gauges (now). Read without stopping the
/// loop, so the fields are each current, not one instant together; a loop inside a handler
/// shows what it had when that iteration began for the bytes and system-call counts.
struct loop_metrics {
  // Connections.
  std::uint64_t accepted = 0;  // taken from a listener by this loop (then placed on any loop)
  std::uint64_t refused = 0;   // accepted and closed at once: max_connections, or no fd left
  std::uint64_t opened = 0;    // on_open ran here (accepted, dialed, enrolled, UDP sessions)
  std::uint64_t closed = 0;    // on_close ran here; by cause below
  std::array<std::uint64_t, close_causes> closed_by{};  // indexed by close_cause
  std::uint64_t open = 0;                               // gauge: opened and not yet closed
  std::uint64_t paused = 0;  // gauge: open connections whose reading is paused
  // Bytes and system calls of stream connections (io_uring: submissions carry them, so
  // `reads` counts receive completions and `writes` send submissions).
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t reads = 0;   // with engine_options::count_syscalls, else 0
  std::uint64_t writes = 0;  // with engine_options::count_syscalls, else 0
  // The mailbox.
  std::uint64_t messages = 0;          // messages handled
  std::uint64_t messages_sent = 0;     // messages this loop's handlers sent (to any loop)
  std::uint64_t mailbox_depth = 0;     // gauge: waiting now (approximate)
  std::uint64_t mailbox_high = 0;      // the most that waited at once, seen at a drain
  std::uint64_t messages_refused = 0;  // queue_full: the mailbox cap
  std::uint64_t messages_dropped = 0;  // for a connection or loop that was gone
  // Other work.
  std::uint64_t offloads_in_flight = 0;  // gauge: submitted, not yet run by a worker
  std::uint64_t timers = 0;              // gauge: timers pending, as of the last iteration
  std::uint64_t datagrams_dropped = 0;   // UDP: past max_sessions
  std::uint64_t tls_handshakes = 0;      // done on this loop (then opened)
  std::uint64_t tls_failures = 0;        // failed, timed out or cut short on this loop
  // Time.
  std::uint64_t iterations = 0;
  std::uint64_t busy_ns = 0;  // running handlers and I/O
  std::uint64_t wait_ns = 0;  // waiting in the back end for work
  std::array<std::uint64_t, iteration_buckets> iteration_time{};  // counts by bucket
  // Stalls: handlers that held the loop past engine_options::stall_threshold.
  std::uint64_t stalls = 0;

  /// busy / (busy + wait): how much of its time the loop works (0 before it ran).
  [[nodiscard]] double utilisation() const noexcept {
    const std::uint64_t all = busy_ns + wait_ns;
    return all == 0 ? 0.0 : static_cast<double>(busy_ns) / static_cast<double>(all);
  }
  /// Adds another loop's figures (counters and gauges alike): for totals.
  loop_metrics& operator+=(const loop_metrics& o) noexcept;
};

/// engine::metrics(): each loop's, their totals, and the engine's own.
struct engine_metrics {
  std::vector<loop_metrics> loops;
  loop_metrics total;
  std::uint64_t worker_queue = 0;  // gauge: jobs waiting for a worker thread
};

}  // namespace actnet
