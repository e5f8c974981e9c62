// acceptor: takes every pending connection from a listening socket, and survives running out
// of file descriptors (muduo's Acceptor, with its spare fd).
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <string_view>
#include <system_error>

#include "actnet/reactor/syscalls.hpp"
#include "actnet/reactor/unique_fd.hpp"

namespace actnet::detail {

/// One per loop, for each listener that loop accepts from. Loop-thread only.
class acceptor {
 public:
  /// Opens the spare fd (a /dev/null read end). Throws std::system_error when it cannot.
  acceptor();

  /// Accepts until the listener has nothing more, handing each connection to
  /// `take(unique_fd, const sockaddr_storage& peer, socklen_t peer_length)`: then {}. Out of
  /// fds (EMFILE, ENFILE), a connection would stay queued and the listener readable for ever:
  /// the spare fd is given up, the connection accepted and closed (the peer sees it end),
  /// `drop(std::string_view why)` told, and the spare taken again. An error means the listener
  /// keeps failing (even the spare fd did not help, or accept itself fails): stop watching it
  /// for a moment, or the loop spins on it. In line, with errno compared as an int: the accept
  /// path runs once a connection.
  template <class Take, class Drop>
  [[nodiscard]] std::error_code accept_from(int listen_fd, Take&& take, Drop&& drop) {
    for (;;) {
      sockaddr_storage peer{};
      socklen_t length = sizeof peer;
      const int fd = sys_accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer),  // NOLINT
                                 &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        take(unique_fd(fd), peer, length);
        continue;
      }
      int e = errno;
      if (e == EMFILE || e == ENFILE) {
        const int refused = e;
        e = drop_with_spare(listen_fd);
        if (e == 0) {
          drop(std::generic_category().message(refused));
          continue;
        }
        if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR && e != ECONNABORTED) {
          e = refused;  // the listener keeps failing for want of fds
        }
      }
      if (e == EAGAIN || e == EWOULDBLOCK) {
        return {};
      }
      if (e != EINTR && e != ECONNABORTED) {
        return {e, std::system_category()};
      }
    }
  }

 private:
  // Gives the spare fd up, accepts one connection and closes it, takes the spare again: 0 when
  // a connection was dropped, else accept's errno. (The kernel takes an fd before it looks at
  // the queue: EMFILE comes whether a connection waits or not, and only this retry says.)
  int drop_with_spare(int listen_fd) noexcept;

  unique_fd spare_;
};

}  // namespace actnet::detail
