// The actnet logger.
#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <memory>
#include <string>

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

}  // namespace actnet::detail
