// acceptor: takes every pending connection from a listening socket, and survives running out
// of file descriptors (muduo's Acceptor, with its spare fd).
#pragma once

#include <sys/socket.h>

#include <string_view>
#include <system_error>

#include "actnet/reactor/unique_fd.hpp"
#include "actnet/unique_function.hpp"

namespace actnet::detail {

/// One per loop, for each listener that loop accepts from. Loop-thread only.
class acceptor {
 public:
  /// An accepted connection, with its peer's address.
  using sink =
      unique_function<void(unique_fd fd, const sockaddr_storage& peer, socklen_t peer_length)>;
  /// A connection taken and closed at once for want of an fd: why.
  using dropped = unique_function<void(std::string_view why)>;

  /// Opens the spare fd (a /dev/null read end). Throws std::system_error when it cannot.
  acceptor();

  /// Accepts until the listener has nothing more, handing each connection to `take`: then {}.
  /// Out of fds (EMFILE, ENFILE), a connection would stay queued and the listener readable for
  /// ever: the spare fd is given up, the connection accepted and closed (the peer sees it end),
  /// `drop` told, and the spare taken again. An error means the listener keeps failing (even
  /// the spare fd did not help, or accept itself fails): stop watching it for a moment, or the
  /// loop spins on it.
  [[nodiscard]] std::error_code accept_from(int listen_fd, sink& take, dropped& drop);

 private:
  unique_fd spare_;
};

}  // namespace actnet::detail
