// The actnet logger, and the one way the loops log an exception a handler threw.
#include "log.hpp"

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "guarded.hpp"

namespace actnet::detail {

spdlog::logger& log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>(
        "actnet", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    // Read once, on first use, before any logging thread exists.
    const char* level = std::getenv("ACTNET_LOG");  // NOLINT(concurrency-mt-unsafe)
    l->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::warn);
    return l;
  }();
  return *logger;
}

void log_thrown(const loop_core& loop, const char* what) noexcept {
  try {
    spdlog::logger& log = loop.owner_.logger();
    try {
      throw;
    } catch (const std::exception& e) {
      log.error("loop {}: {} threw: {}", loop.index_, what, e.what());
    } catch (...) {
      log.error("loop {}: {} threw", loop.index_, what);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): logging failed, nothing more to do
  }
}

}  // namespace actnet::detail
