// guarded: runs a user's handler on a loop so that an exception it throws is logged, not
// carried across the loop.
#pragma once

#include <spdlog/logger.h>

#include <cstddef>
#include <exception>

namespace actnet::detail {

/// Runs `fn()`. If it throws, logs "loop N: <what> threw: <reason>" as an error and returns
/// false; true otherwise. Logging that fails in turn is ignored.
template <class F>
bool guarded(spdlog::logger& log, std::size_t loop, const char* what, F&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    try {
      log.error("loop {}: {} threw: {}", loop, what, e.what());
    } catch (...) {  // NOLINT(bugprone-empty-catch): nothing more to do
    }
  } catch (...) {
    try {
      log.error("loop {}: {} threw", loop, what);
    } catch (...) {  // NOLINT(bugprone-empty-catch): nothing more to do
    }
  }
  return false;
}

}  // namespace actnet::detail
