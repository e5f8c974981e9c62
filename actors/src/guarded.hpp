// guarded: runs a user's handler on a loop so that an exception it throws is logged, not
// carried across the loop.
#pragma once

namespace actnet {

namespace detail {

class loop_core;

/// Logs the exception being handled as "loop N: <what> threw: <reason>" (an error) on the
/// loop's engine's logger. Logging that fails in turn is ignored. Call it from a catch block.
[[gnu::cold]] void log_thrown(const loop_core& loop, const char* what) noexcept;

/// Runs `fn()`: true, or false when it threw (logged by log_thrown). Small enough to stay in
/// line on the per-message path, where on_data runs through it.
template <class F>
[[gnu::always_inline]] inline bool guarded(const loop_core& loop, const char* what,
                                           F&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (...) {
    log_thrown(loop, what);
    return false;
  }
}

}  // namespace detail
}  // namespace actnet
