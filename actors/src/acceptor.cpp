// acceptor: the accept loop and its answer to fd exhaustion.
#include "actnet/actors/detail/acceptor.hpp"

#include <fcntl.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "actnet/reactor/socket.hpp"
#include "actnet/result.hpp"

namespace actnet::detail {
namespace {

unique_fd open_spare() {
  unique_fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!fd) {
    throw std::system_error(errno, std::system_category(), "actnet: cannot open a spare fd");
  }
  return fd;
}

}  // namespace

acceptor::acceptor() : spare_(open_spare()) {}

std::error_code acceptor::accept_from(int listen_fd, sink& take, dropped& drop) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t peer_length = 0;
    result<unique_fd> accepted = accept_connection(listen_fd, peer, peer_length);
    if (accepted) {
      take(std::move(*accepted), peer, peer_length);
      continue;
    }
    const std::error_code ec = accepted.error();
    if (ec == std::errc::resource_unavailable_try_again || ec == std::errc::operation_would_block) {
      return {};
    }
    if (ec == std::errc::interrupted || ec == std::errc::connection_aborted) {
      continue;
    }
    if (ec != std::errc::too_many_files_open && ec != std::errc::too_many_files_open_in_system) {
      return ec;
    }
    // The kernel takes an fd before it looks at the queue: EMFILE comes whether a connection
    // waits or not, and only the retry with the spare's fd says which.
    spare_.reset();
    const std::error_code again = accept_connection(listen_fd).error();  // closed at once
    spare_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!again) {
      drop(ec.message());
      continue;
    }
    if (again == std::errc::resource_unavailable_try_again ||
        again == std::errc::operation_would_block) {
      return {};
    }
    if (again != std::errc::interrupted && again != std::errc::connection_aborted) {
      return ec;
    }
  }
}

}  // namespace actnet::detail
