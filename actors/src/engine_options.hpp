// engine_options: checking the engine's options, before any loop is made.
#pragma once

#include <string>

#include "actnet/actors/engine.hpp"

namespace actnet::detail {

/// `o`, checked and completed; throws std::invalid_argument naming the first bad option.
engine_options checked_options(engine_options o);

/// Settles o.backend: io_uring stays when this kernel can run it (else std::system_error naming
/// what is missing), automatic becomes io_uring or epoll. Returns why automatic fell back to
/// epoll (empty: it did not). On io_uring, edge_triggered is cleared (it does not apply).
std::string resolve_backend(engine_options& o);

}  // namespace actnet::detail
