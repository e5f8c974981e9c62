// Helpers for buffer tests: byte views of strings, a non-blocking socketpair, random bytes.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <actnet/buffers/block_pool.hpp>
#include <cerrno>
#include <cstddef>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace actnet::test {

inline std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

inline std::string string_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// A string of `n` pseudo-random letters from `rng`.
template <class Rng>
std::string random_text(Rng& rng, std::size_t n) {
  std::string s(n, '\0');
  std::uniform_int_distribution<int> letter('a', 'z');
  for (char& c : s) {
    c = static_cast<char>(letter(rng));
  }
  return s;
}

/// A connected, non-blocking AF_UNIX stream pair; closes both ends on destruction.
class socket_pair {
 public:
  socket_pair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_) != 0) {
      fds_[0] = fds_[1] = -1;
    }
  }
  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;
  ~socket_pair() {
    close_near();
    close_far();
  }

  [[nodiscard]] bool ok() const { return fds_[0] >= 0; }
  /// The end the buffer under test reads from or writes to.
  [[nodiscard]] int near() const { return fds_[0]; }
  /// The other end, driven by the test.
  [[nodiscard]] int far() const { return fds_[1]; }
  void close_near() { close_fd(fds_[0]); }
  void close_far() { close_fd(fds_[1]); }

  /// Writes all of `s` into the far end (the socket buffer must have room).
  [[nodiscard]] bool send(std::string_view s) const {
    while (!s.empty()) {
      const ssize_t n = ::write(fds_[1], s.data(), s.size());
      if (n <= 0) {
        return false;
      }
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Everything readable now at the far end.
  [[nodiscard]] std::string receive() const {
    std::string out;
    char chunk[65536];
    for (;;) {
      const ssize_t n = ::read(fds_[1], chunk, sizeof chunk);
      if (n <= 0) {
        return out;
      }
      out.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  static void close_fd(int& fd) {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }
  int fds_[2] = {-1, -1};
};

/// The first bytes of a buffer with an iovec peek (linked_list_buffer, elastic_buffer), as a
/// string: at most `max_bytes` of them, through as many iovecs as writev takes.
template <class Buffer>
std::string peeked(const Buffer& b, std::size_t max_bytes = SIZE_MAX) {
  std::vector<iovec> iov(1024);
  const std::size_t count = b.peek(iov, max_bytes);
  std::string s;
  for (std::size_t i = 0; i < count; ++i) {
    s.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  return s;
}

/// Pool bytes in use now, for "gives its memory back" checks against a baseline.
inline std::int64_t pool_in_use() {
  return block_pool::stats().bytes_in_use;
}

}  // namespace actnet::test
