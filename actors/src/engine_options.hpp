// engine_options: checking the engine's options, before any loop is made.
#pragma once

#include "actnet/actors/engine.hpp"

namespace actnet::detail {

/// `o`, checked and completed; throws std::invalid_argument naming the first bad option.
engine_options checked_options(engine_options o);

}  // namespace actnet::detail
