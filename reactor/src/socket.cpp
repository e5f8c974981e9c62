// socket: listeners, accept and socket options over the Linux socket API.
#include "actnet/reactor/socket.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <exception>
#include <string_view>

#include "actnet/reactor/syscalls.hpp"

namespace actnet {
namespace {

std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}

std::error_code invalid() noexcept {
  return std::make_error_code(std::errc::invalid_argument);
}

std::error_code set_int(int fd, int level, int name, int value) noexcept {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return last_error();
  }
  return {};
}

// Seconds as the int the kernel takes; values past INT_MAX are clamped and left for the kernel
// to refuse, rather than wrapped into something it would accept.
int seconds_as_int(std::chrono::seconds s) noexcept {
  return static_cast<int>(std::min<std::chrono::seconds::rep>(s.count(), INT_MAX));
}

// Before binding a unix path: clear away a socket file a dead process left behind, but never
// another kind of file, and never a socket somebody still listens on.
std::error_code clear_stale_socket_file(const address& a) noexcept {
  const auto* un = reinterpret_cast<const sockaddr_un*>(a.data());
  struct stat st {};
  if (::lstat(un->sun_path, &st) != 0) {
    return errno == ENOENT ? std::error_code{} : last_error();
  }
  if (!S_ISSOCK(st.st_mode)) {
    return std::make_error_code(std::errc::file_exists);
  }
  const unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe) {
    return last_error();
  }
  if (::connect(probe.get(), a.data(), a.size()) == 0) {
    return std::make_error_code(std::errc::address_in_use);
  }
  switch (errno) {
    case ECONNREFUSED:  // nobody listens: stale
      break;
    case EAGAIN:      // a listener with a full queue
    case EPROTOTYPE:  // a live socket of another type
      return std::make_error_code(std::errc::address_in_use);
    case ENOENT:  // removed since the lstat
      return {};
    default:
      return last_error();
  }
  if (::unlink(un->sun_path) != 0 && errno != ENOENT) {
    return last_error();
  }
  return {};
}

std::error_code set_multicast_interface(int fd, int family, unsigned index) noexcept {
  if (family == AF_INET6) {
    return set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(index));
  }
  ip_mreqn req{};
  req.imr_ifindex = static_cast<int>(index);
  if (::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &req, sizeof req) != 0) {
    return last_error();
  }
  return {};
}

std::error_code join_group(int fd, const address& group, unsigned index) noexcept {
  if (group.family() == AF_INET6) {
    ipv6_mreq req{};
    req.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(group.data())->sin6_addr;
    req.ipv6mr_interface =
        index != 0 ? index : reinterpret_cast<const sockaddr_in6*>(group.data())->sin6_scope_id;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &req, sizeof req) != 0) {
      return last_error();
    }
    return {};
  }
  ip_mreqn req{};
  req.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(group.data())->sin_addr;
  req.imr_ifindex = static_cast<int>(index);
  if (::setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &req, sizeof req) != 0) {
    return last_error();
  }
  return {};
}

std::error_code apply_options(int fd, const address& a, const socket_options& o) noexcept {
  std::error_code ec;
  if (a.family() == AF_INET6) {
    ec = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, a.v6_only() ? 1 : 0);
  }
  // Not on unicast UDP: two UDP sockets with SO_REUSEADDR may bind one port, and a second
  // server on it would start without an error and take a share of the datagrams.
  // (SO_REUSEPORT, which actnet's own per-loop sockets use, must be asked for by both.)
  const bool unicast_udp = a.transport() == transport::udp && !a.multicast();
  if (!ec && o.reuse_addr && !unicast_udp) {
    ec = set_reuse_addr(fd, true);
  }
  // A unix socket has no port to share.
  if (!ec && o.reuse_port && a.family() != AF_UNIX) {
    ec = set_reuse_port(fd, true);
  }
  if (a.transport() == transport::tcp) {
    if (!ec) {
      ec = set_nodelay(fd, o.tcp_nodelay);
    }
    if (!ec && o.keepalive.enabled) {
      ec = set_keepalive(fd, o.keepalive);
    }
  }
  if (a.transport() == transport::udp) {
    if (!ec && o.broadcast && a.family() == AF_INET) {
      ec = set_int(fd, SOL_SOCKET, SO_BROADCAST, 1);
    }
    if (!ec && o.multicast_interface != 0) {
      ec = set_multicast_interface(fd, a.family(), o.multicast_interface);
    }
  }
  if (!ec && !o.bind_device.empty()) {
    ec = set_bind_device(fd, o.bind_device);
  }
  if (!ec && o.recv_buffer > 0) {
    ec = set_recv_buffer(fd, o.recv_buffer);
  }
  if (!ec && o.send_buffer > 0) {
    ec = set_send_buffer(fd, o.send_buffer);
  }
  return ec;
}

result<address> socket_address(int fd, actnet::transport t, bool peer) noexcept {
  sockaddr_storage storage{};
  auto len = socklen_t{sizeof storage};
  auto* sa = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0) {
    return last_error();
  }
  const bool fits = t == transport::unix_stream
                        ? storage.ss_family == AF_UNIX
                        : (storage.ss_family == AF_INET || storage.ss_family == AF_INET6);
  if (!fits) {
    return std::make_error_code(std::errc::address_family_not_supported);
  }
  try {
    return address::from_sockaddr(t, sa, std::min<socklen_t>(len, sizeof storage));
  } catch (const std::exception&) {
    // A length the family cannot have: only a kernel we do not understand reports that.
    return std::make_error_code(std::errc::address_family_not_supported);
  }
}

}  // namespace

int somaxconn() noexcept {
  constexpr int fallback = 4096;
  constexpr int cap = 65535;
  const unique_fd file(::open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC));
  if (!file) {
    return fallback;
  }
  std::array<char, 32> text{};
  const ssize_t n = ::read(file.get(), text.data(), text.size() - 1);
  if (n <= 0) {
    return fallback;
  }
  long value = 0;
  bool digits = false;
  for (const char c : std::string_view(text.data(), static_cast<std::size_t>(n))) {
    if (c < '0' || c > '9') {
      break;
    }
    digits = true;
    value = std::min<long>(value * 10 + (c - '0'), cap);
  }
  return digits && value > 0 ? static_cast<int>(value) : fallback;
}

result<unique_fd> open_listener(const address& a, const socket_options& o) {
  if (!a.valid() || o.recv_buffer < 0 || o.send_buffer < 0 || o.backlog < 0) {
    return invalid();
  }
  const int type = a.transport() == transport::udp ? SOCK_DGRAM : SOCK_STREAM;
  unique_fd fd(::socket(a.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    return last_error();
  }
  if (const auto ec = apply_options(fd.get(), a, o)) {
    return ec;
  }
  if (a.family() == AF_UNIX && !a.abstract()) {
    if (const auto ec = clear_stale_socket_file(a)) {
      return ec;
    }
  }
  if (::bind(fd.get(), a.data(), a.size()) != 0) {
    return last_error();
  }
  if (a.transport() == transport::udp && a.multicast()) {
    if (const auto ec = join_group(fd.get(), a, o.multicast_interface)) {
      return ec;
    }
  }
  if (type == SOCK_STREAM && ::listen(fd.get(), o.backlog > 0 ? o.backlog : somaxconn()) != 0) {
    return last_error();
  }
  return fd;
}

result<unique_fd> accept_connection(int listen_fd) noexcept {
  for (;;) {
    const int fd = detail::sys_accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      return unique_fd(fd);
    }
    if (errno != EINTR) {
      return last_error();
    }
  }
}

result<unique_fd> accept_connection(int listen_fd, sockaddr_storage& peer,
                                    socklen_t& length) noexcept {
  for (;;) {
    length = sizeof peer;
    const int fd = detail::sys_accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer),  // NOLINT
                                       &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      return unique_fd(fd);
    }
    if (errno != EINTR) {
      return last_error();
    }
  }
}

std::error_code set_nodelay(int fd, bool on) noexcept {
  return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

std::error_code set_keepalive(int fd, const keepalive& k) noexcept {
  using std::chrono::seconds;
  if (!k.enabled) {
    return set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
  }
  if (k.idle < seconds{1} || k.interval < seconds{1} || k.count < 1) {
    return invalid();
  }
  // Timings first, so a value the kernel refuses leaves keep-alive as it was.
  std::error_code ec = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, seconds_as_int(k.idle));
  if (!ec) {
    ec = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, seconds_as_int(k.interval));
  }
  if (!ec) {
    ec = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, k.count);
  }
  if (!ec) {
    ec = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  }
  return ec;
}

std::error_code set_recv_buffer(int fd, int bytes) noexcept {
  return bytes < 1 ? invalid() : set_int(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

std::error_code set_send_buffer(int fd, int bytes) noexcept {
  return bytes < 1 ? invalid() : set_int(fd, SOL_SOCKET, SO_SNDBUF, bytes);
}

std::error_code set_linger(int fd, std::optional<std::chrono::seconds> linger) noexcept {
  ::linger value{};
  if (linger) {
    if (linger->count() < 0) {
      return invalid();
    }
    value.l_onoff = 1;
    value.l_linger = seconds_as_int(*linger);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, sizeof value) != 0) {
    return last_error();
  }
  return {};
}

std::error_code set_reuse_addr(int fd, bool on) noexcept {
  return set_int(fd, SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0);
}

std::error_code set_bind_device(int fd, const std::string& name) noexcept {
  if (name.size() >= IFNAMSIZ) {
    return invalid();
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                   static_cast<socklen_t>(name.size())) != 0) {
    return last_error();
  }
  return {};
}

std::error_code set_reuse_port(int fd, bool on) noexcept {
  return set_int(fd, SOL_SOCKET, SO_REUSEPORT, on ? 1 : 0);
}

std::error_code pending_error(int fd) noexcept {
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
    error = errno;
  }
  return error != 0 ? std::error_code(error, std::system_category()) : std::error_code{};
}

result<address> local_address(int fd, actnet::transport t) noexcept {
  return socket_address(fd, t, false);
}

result<address> peer_address(int fd, actnet::transport t) noexcept {
  return socket_address(fd, t, true);
}

}  // namespace actnet
