// loop_meter: a loop's counters for engine::metrics() and the stall watchdog. The loop's thread
// is each counter's one writer: an add is a relaxed load and store (no locked instruction), and
// any thread may read. Not part of the documented API: metrics.hpp is.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <system_error>
#include <typeinfo>

#include "actnet/actors/detail/actor_base.hpp"
#include "actnet/actors/metrics.hpp"

namespace actnet::detail {

/// The steady clock (CLOCK_MONOTONIC, as std::chrono::steady_clock), in nanoseconds: the
/// meter's time, read twice a loop iteration (straight from the C library, without
/// steady_clock's extra layer).
[[nodiscard]] inline std::int64_t steady_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

/// A counter written by one thread and read by any.
class counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  /// As add, and a reader that sees the new value (get_acquire) sees every earlier write of
  /// this thread: `closed` is added so, and read before `opened`, so a snapshot never shows
  /// more connections closed than opened. (A plain store on x86 and ARM64's stlr.)
  void add_released(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  void sub(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  void set(std::uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
  void raise_to(std::uint64_t n) noexcept {
    if (n > v_.load(std::memory_order_relaxed)) {
      v_.store(n, std::memory_order_relaxed);
    }
  }
  [[nodiscard]] std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t get_acquire() const noexcept {
    return v_.load(std::memory_order_acquire);
  }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// What a loop's per-message path counts in plain fields during an iteration; the loop adds it
/// to its meter before it waits again, so a message costs an add to memory per field.
struct io_tally {
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
};

/// Where a loop is in its iteration, for the watchdog's report.
enum class loop_phase : std::uint8_t { waiting, io, mail, timers, other };

struct loop_meter {
  counter accepted;
  counter refused;
  counter opened;
  counter closed;
  std::array<counter, close_causes> closed_by;
  counter paused;
  counter bytes_in;
  counter bytes_out;
  counter reads;
  counter writes;
  counter messages;
  counter messages_sent;
  counter mailbox_high;
  counter timers;
  counter tls_handshakes;
  counter tls_failures;
  counter iterations;
  counter busy_ns;
  counter wait_ns;
  std::array<counter, iteration_buckets> iteration_time;
  counter stalls;
  // Written by the loop and the workers: an add and a subtraction per offload.
  std::atomic<std::uint64_t> offloads_in_flight{0};

  // For the watchdog: when the running iteration began (steady clock, ns; 0 while waiting),
  // which phase it is in, and the actor whose handler runs (null: none, or the loop's own
  // work; reset at each iteration's start). A connection closed during an iteration is freed
  // only once busy_since_ns has left that iteration, and not while the watchdog looks at it
  // (`inspecting`): so a pointer read within one iteration is never to freed memory.
  std::atomic<std::int64_t> busy_since_ns{0};
  std::atomic<loop_phase> phase{loop_phase::waiting};
  std::atomic<const actor_base*> running{nullptr};
  std::atomic<bool> inspecting{false};
  // The watchdog's last sighting of a handler past the threshold in the running iteration,
  // which the loop reports as the stall's cause when the iteration ends.
  std::atomic<std::int64_t> seen_iteration_start_ns{0};
  std::atomic<const std::type_info*> seen_type{nullptr};
  std::atomic<loop_phase> seen_phase{loop_phase::waiting};
};

/// For stall reports (metrics.cpp): a class's readable name ("echo_conn", `fallback` for none),
/// and what a loop does in a phase.
[[nodiscard]] std::string class_name(const std::type_info* type, const char* fallback);
[[nodiscard]] const char* phase_name(loop_phase p) noexcept;

/// The cause a close reason counts under.
[[nodiscard]] close_cause cause_of(std::error_code reason) noexcept;

/// Bucket of an iteration that took `ns`.
[[nodiscard]] inline std::size_t iteration_bucket(std::uint64_t ns) noexcept {
  const std::uint64_t above = ns <= 1000 ? 0 : std::bit_width((ns - 1) / 1000);
  return static_cast<std::size_t>(std::min<std::uint64_t>(above, iteration_buckets - 1));
}

}  // namespace actnet::detail
