// metrics: the loops' counters read into loop_metrics, the causes closes count under, and the
// stall reports (the loop's own, when an iteration ends past the threshold).
#include "actnet/actors/metrics.hpp"

#include <cxxabi.h>
#include <spdlog/logger.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <typeinfo>

#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/error.hpp"

namespace actnet {

std::string_view to_string(close_cause c) noexcept {
  switch (c) {
    case close_cause::local:
      return "local";
    case close_cause::end_of_stream:
      return "end_of_stream";
    case close_cause::reset:
      return "reset";
    case close_cause::idle_timeout:
      return "idle_timeout";
    case close_cause::read_timeout:
      return "read_timeout";
    case close_cause::write_timeout:
      return "write_timeout";
    case close_cause::drain_timeout:
      return "drain_timeout";
    case close_cause::inbound_cap:
      return "inbound_cap";
    case close_cause::outbound_cap:
      return "outbound_cap";
    case close_cause::engine_stopped:
      return "engine_stopped";
    case close_cause::tls:
      return "tls";
    case close_cause::other:
      break;
  }
  return "other";
}

double iteration_bucket_bound(std::size_t i) noexcept {
  if (i + 1 >= iteration_buckets) {
    return std::numeric_limits<double>::infinity();
  }
  return std::ldexp(1e-6, static_cast<int>(i));
}

loop_metrics& loop_metrics::operator+=(const loop_metrics& o) noexcept {
  accepted += o.accepted;
  refused += o.refused;
  opened += o.opened;
  closed += o.closed;
  for (std::size_t i = 0; i < closed_by.size(); ++i) {
    closed_by[i] += o.closed_by[i];
  }
  open += o.open;
  paused += o.paused;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  reads += o.reads;
  writes += o.writes;
  messages += o.messages;
  messages_sent += o.messages_sent;
  mailbox_depth += o.mailbox_depth;
  mailbox_high += o.mailbox_high;
  messages_refused += o.messages_refused;
  messages_dropped += o.messages_dropped;
  offloads_in_flight += o.offloads_in_flight;
  timers += o.timers;
  datagrams_dropped += o.datagrams_dropped;
  tls_handshakes += o.tls_handshakes;
  tls_failures += o.tls_failures;
  iterations += o.iterations;
  busy_ns += o.busy_ns;
  wait_ns += o.wait_ns;
  for (std::size_t i = 0; i < iteration_time.size(); ++i) {
    iteration_time[i] += o.iteration_time[i];
  }
  stalls += o.stalls;
  return *this;
}

namespace detail {

close_cause cause_of(std::error_code reason) noexcept {
  if (!reason) {
    return close_cause::local;
  }
  if (reason.category() == error_category()) {
    switch (static_cast<errc>(reason.value())) {
      case errc::end_of_stream:
        return close_cause::end_of_stream;
      case errc::idle_timeout:
        return close_cause::idle_timeout;
      case errc::read_timeout:
        return close_cause::read_timeout;
      case errc::write_timeout:
        return close_cause::write_timeout;
      case errc::drain_timeout:
        return close_cause::drain_timeout;
      case errc::capacity_exceeded:
        return close_cause::inbound_cap;  // (the outbound cap's close says so: connection::fail)
      case errc::engine_stopped:
        return close_cause::engine_stopped;
      case errc::tls_truncated:
      case errc::tls_protocol_error:
        return close_cause::tls;
      default:
        return close_cause::other;
    }
  }
  if (reason.category() == std::system_category() &&
      (reason.value() == ECONNRESET || reason.value() == EPIPE)) {
    return close_cause::reset;
  }
  return close_cause::other;
}

/// A class's readable name ("echo_conn"), or `fallback` for none.
std::string class_name(const std::type_info* type, const char* fallback) {
  if (type == nullptr) {
    return fallback;
  }
  int status = 0;
  const std::unique_ptr<char, decltype(&std::free)> plain(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), &std::free);
  return status == 0 && plain != nullptr ? std::string(plain.get()) : std::string(type->name());
}

const char* phase_name(loop_phase p) noexcept {
  switch (p) {
    case loop_phase::io:
      return "an I/O handler (on_data, on_open, on_close, ...)";
    case loop_phase::mail:
      return "a message (tell, ask, async_write, offload result)";
    case loop_phase::timers:
      return "a timer";
    case loop_phase::waiting:
    case loop_phase::other:
      break;
  }
  return "the loop's own work";
}

void loop_core::report_stall(std::int64_t busy_ns) noexcept {
  meter_.stalls.add();
  const std::uint64_t n = stall_log_.note(timer_clock::now());
  if (n == 0) {
    return;
  }
  // The watchdog's sighting in this iteration names the handler; without one (a stall shorter
  // than its period), the last handler of the iteration is the likeliest.
  const bool seen = meter_.seen_iteration_start_ns.load(std::memory_order_acquire) == busy_began_;
  const actor_base* last = meter_.running.load(std::memory_order_relaxed);  // (not freed yet)
  const std::type_info* type = seen              ? meter_.seen_type.load(std::memory_order_relaxed)
                               : last != nullptr ? &typeid(*last)
                                                 : nullptr;
  const loop_phase phase = seen ? meter_.seen_phase.load(std::memory_order_relaxed)
                                : meter_.phase.load(std::memory_order_relaxed);
  try {
    owner_.logger().warn(
        "loop {}: stall: one iteration held the loop for {:.1f} ms (threshold {} ms), in {} of "
        "{}{}; {} stall(s) since the last report",
        index_, static_cast<double>(busy_ns) / 1e6, options_.stall_threshold.count(),
        phase_name(phase), class_name(type, "no actor"),
        seen ? "" : " (the iteration's last handler; the watchdog did not see it)", n);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a log line that fails is not worth more
  }
}

void loop_core::bury() noexcept {
  // The watchdog reads `running` only while busy_since_ns still names the iteration it saw,
  // with `inspecting` up; the loop frees only after busy_since_ns has changed with
  // `inspecting` down. Both sides write, then read the other's flag, in one total order
  // (seq_cst): one of them sees the other, and never is a connection freed under a look.
  meter_.busy_since_ns.store(0, std::memory_order_seq_cst);
  while (meter_.inspecting.load(std::memory_order_seq_cst)) {
    std::this_thread::yield();  // (a look is a few loads)
  }
  for (actor_base* c : graveyard_) {
    delete c;
  }
  graveyard_.clear();
}

loop_metrics loop_core::read_metrics() const noexcept {
  loop_metrics m;
  // `closed` first, acquiring what the loop wrote before it: so opened >= closed and the causes
  // add up to at least `closed` in every snapshot, though counters run on while it is read.
  m.closed = meter_.closed.get_acquire();
  for (std::size_t i = 0; i < m.closed_by.size(); ++i) {
    m.closed_by[i] = meter_.closed_by[i].get();
  }
  m.opened = meter_.opened.get();
  m.accepted = meter_.accepted.get();
  m.refused = meter_.refused.get();
  m.open = m.opened >= m.closed ? m.opened - m.closed : 0;
  m.paused = meter_.paused.get();
  m.bytes_in = meter_.bytes_in.get();
  m.bytes_out = meter_.bytes_out.get();
  m.reads = meter_.reads.get();
  m.writes = meter_.writes.get();
  m.messages = meter_.messages.get();
  m.messages_sent = meter_.messages_sent.get();
  m.mailbox_depth = mailbox_.size_approx() + local_depth_.load(std::memory_order_relaxed);
  m.mailbox_high = std::max(meter_.mailbox_high.get(), m.mailbox_depth);
  m.messages_refused = refused_.load(std::memory_order_relaxed);
  m.messages_dropped = dropped_.load(std::memory_order_relaxed);
  m.offloads_in_flight = meter_.offloads_in_flight.load(std::memory_order_relaxed);
  m.timers = meter_.timers.get();
  m.datagrams_dropped = datagrams_dropped_.load(std::memory_order_relaxed);
  m.tls_handshakes = meter_.tls_handshakes.get();
  m.tls_failures = meter_.tls_failures.get();
  m.iterations = meter_.iterations.get();
  m.busy_ns = meter_.busy_ns.get();
  m.wait_ns = meter_.wait_ns.get();
  for (std::size_t i = 0; i < m.iteration_time.size(); ++i) {
    m.iteration_time[i] = meter_.iteration_time[i].get();
  }
  m.stalls = meter_.stalls.get();
  return m;
}

}  // namespace detail
}  // namespace actnet
