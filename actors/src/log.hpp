// The actnet logger: spdlog, quiet by default (warnings and errors); ACTNET_LOG sets the level.
#pragma once

#include <spdlog/spdlog.h>

namespace actnet::detail {

/// The "actnet" logger, made on first use. ACTNET_LOG=trace|debug|info|warn|error|off.
spdlog::logger& log();

}  // namespace actnet::detail
