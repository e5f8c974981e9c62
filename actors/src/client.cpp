// client: an engine without listeners, run on a thread of its own.
#include "actnet/actors/client.hpp"

#include <stdexcept>

namespace actnet {

client::client(engine_options options) : engine_(std::move(options)) {}

client::~client() {
  stop();
}

void client::start() {
  const std::lock_guard lock(mutex_);
  if (started_ || stopped_) {
    throw std::logic_error("actnet: client::start() called twice, or after stop()");
  }
  started_ = true;
  runner_ = std::thread([this] { engine_.run(); });
}

void client::stop() noexcept {
  {
    const std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  engine_.stop();
  for (std::size_t i = 0; i < engine_.loop_count(); ++i) {
    if (engine_.loop(i).in_loop_thread()) {
      return;  // from a handler: the loops stop when it returns; the destructor joins
    }
  }
  if (runner_.joinable()) {
    runner_.join();
  }
}

std::error_code client::can_wait() const noexcept {
  if (!started_ || stopped_) {
    return make_error_code(errc::engine_stopped);
  }
  for (std::size_t i = 0; i < engine_.loop_count(); ++i) {
    if (engine_.loop(i).in_loop_thread()) {
      return std::make_error_code(std::errc::resource_deadlock_would_occur);
    }
  }
  return {};
}

}  // namespace actnet
