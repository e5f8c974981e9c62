// message: a mailbox message's ownership of an accepted fd.
#include "actnet/actors/detail/message.hpp"

#include <unistd.h>

#include <utility>

namespace actnet {

void detail::message::close_fd() noexcept {
  ::close(std::exchange(fd, -1));
}

detail::message& detail::message::operator=(message&& other) noexcept {
  if (this != &other) {
    if (fd >= 0) {
      ::close(fd);
    }
    what = other.what;
    admitted = std::exchange(other.admitted, false);
    slot = other.slot;
    generation = other.generation;
    fd = std::exchange(other.fd, -1);
    listener = other.listener;
    lease = std::move(other.lease);
    payload = std::move(other.payload);
    fn = std::move(other.fn);
  }
  return *this;
}

}  // namespace actnet
