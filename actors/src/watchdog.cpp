#include "watchdog.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <string>
#include <typeinfo>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/loop_meter.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"

namespace actnet::detail {

watchdog::watchdog(engine& e)
    : engine_(e),
      threshold_ns_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(e.options().stall_threshold)
              .count()),
      reported_(e.loop_count(), 0),
      thread_([this] { run(); }) {}

watchdog::~watchdog() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void watchdog::run() {
  const auto period = std::max(std::chrono::nanoseconds(threshold_ns_),
                               std::chrono::nanoseconds(std::chrono::milliseconds(1)));
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, period, [this] { return stop_; })) {
    look(steady_ns());
  }
}

void watchdog::look(std::int64_t now) {
  for (std::size_t i = 0; i < reported_.size(); ++i) {
    loop_meter& m = engine_.loop(i).meter_;
    const std::int64_t began = m.busy_since_ns.load(std::memory_order_relaxed);
    if (began == 0 || now - began <= threshold_ns_) {
      continue;
    }
    // The actor's class, read only while the loop cannot free it (loop_core::bury).
    m.inspecting.store(true, std::memory_order_seq_cst);
    const bool same = m.busy_since_ns.load(std::memory_order_seq_cst) == began;
    const actor_base* running = same ? m.running.load(std::memory_order_acquire) : nullptr;
    const std::type_info* type = running != nullptr ? &typeid(*running) : nullptr;
    m.inspecting.store(false, std::memory_order_seq_cst);
    const loop_phase phase = m.phase.load(std::memory_order_relaxed);
    if (!same) {
      continue;  // that iteration ended meanwhile
    }
    m.seen_type.store(type, std::memory_order_relaxed);
    m.seen_phase.store(phase, std::memory_order_relaxed);
    m.seen_iteration_start_ns.store(began, std::memory_order_release);
    if (now - began > 4 * threshold_ns_ && reported_[i] != began) {
      reported_[i] = began;
      try {
        engine_.logger().warn(
            "loop {} is stuck: its iteration has run for {} ms (stall threshold {} ms), in {} of "
            "{}",
            i, (now - began) / 1'000'000, threshold_ns_ / 1'000'000, phase_name(phase),
            class_name(type, "no actor"));
      } catch (...) {  // NOLINT(bugprone-empty-catch): a log line that fails is not worth more
      }
    }
  }
}

}  // namespace actnet::detail
