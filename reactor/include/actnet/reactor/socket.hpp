// socket: opening listeners, accepting connections and setting socket options, with errors
// returned as error codes (errno values in std::system_category) rather than thrown.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>

#include "actnet/reactor/address.hpp"
#include "actnet/reactor/unique_fd.hpp"
#include "actnet/result.hpp"

// Every function here is a free function over a file descriptor: thread-safe in itself, with
// the usual rule that one thread must not close an fd while another still uses it.

namespace actnet {

/// TCP keep-alive probes: after `idle` without traffic, one probe every `interval`, and the
/// connection is dropped after `count` unanswered probes.
struct keepalive {
  bool enabled = false;
  std::chrono::seconds idle{0};
  std::chrono::seconds interval{0};
  int count = 0;
};

struct socket_options {
  /// SO_REUSEADDR: rebind at once while old connections linger (TCP), share a multicast port
  /// (UDP). Never set on unicast UDP, where it would let a second server bind the same port.
  bool reuse_addr = true;
  bool reuse_port = false;      ///< SO_REUSEPORT: several listeners share one port (not unix)
  bool tcp_nodelay = true;      ///< TCP_NODELAY (tcp only); accepted sockets inherit it
  actnet::keepalive keepalive;  ///< tcp only; accepted sockets inherit it
  int recv_buffer = 0;          ///< SO_RCVBUF in bytes; 0 keeps the OS default
  int send_buffer = 0;          ///< SO_SNDBUF in bytes; 0 keeps the OS default
  int backlog = 0;              ///< listen() backlog; 0 means somaxconn()
  /// SO_BINDTODEVICE: only traffic through this network interface ("lo", "eth0"); empty: any.
  std::string bind_device;
  /// UDP multicast: the interface (index, as if_nametoindex gives) to join groups on and send
  /// multicast from (IP_MULTICAST_IF / IPV6_MULTICAST_IF); 0 lets the routing table choose.
  unsigned multicast_interface = 0;
  bool broadcast = true;  ///< SO_BROADCAST on UDP IPv4 sockets: may send to broadcast addresses
};

/// The listen backlog the kernel allows: /proc/sys/net/core/somaxconn capped at 65535, or 4096
/// if that cannot be read. Read on every call, so a changed sysctl is seen by the next listener.
[[nodiscard]] int somaxconn() noexcept;

/// A non-blocking, close-on-exec socket listening on `a` (tcp, unix) or bound to it (udp), with
/// `o` applied before bind. A udp multicast address is bound (so only the group's datagrams
/// arrive) and its group joined on o.multicast_interface. IPv6 sockets get IPV6_V6ONLY set to
/// a.v6_only() either way, so tcp://[::]:port is dual-stack whatever the sysctl default. For a unix
/// path, a socket file nobody listens on (left by a crash) is removed before bind; a live one gives
/// address_in_use and any other kind of file gives file_exists: only sockets are ever deleted.
/// Finding out whether a socket file is live connects to it, so a live server sees one
/// connection open and close. Negative or invalid options give invalid_argument.
[[nodiscard]] result<unique_fd> open_listener(const address& a, const socket_options& o);

/// accept4() with SOCK_NONBLOCK | SOCK_CLOEXEC, retried on EINTR. An empty queue gives
/// resource_unavailable_try_again; other errors (ECONNABORTED, EMFILE...) come back as they are.
[[nodiscard]] result<unique_fd> accept_connection(int listen_fd) noexcept;
/// The same, and the peer's address into `peer` / `length` (length: the size on the way in).
[[nodiscard]] result<unique_fd> accept_connection(int listen_fd, sockaddr_storage& peer,
                                                  socklen_t& length) noexcept;

/// TCP_NODELAY: send small writes at once instead of waiting to coalesce them (Nagle).
[[nodiscard]] std::error_code set_nodelay(int fd, bool on) noexcept;
/// SO_KEEPALIVE, plus TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT when enabled. Enabled with
/// idle or interval under 1s, or count under 1, gives invalid_argument and changes nothing.
[[nodiscard]] std::error_code set_keepalive(int fd, const keepalive& k) noexcept;
/// SO_RCVBUF / SO_SNDBUF. The kernel doubles the value for its bookkeeping and caps it at
/// net.core.rmem_max / wmem_max; bytes < 1 gives invalid_argument.
[[nodiscard]] std::error_code set_recv_buffer(int fd, int bytes) noexcept;
[[nodiscard]] std::error_code set_send_buffer(int fd, int bytes) noexcept;
/// SO_LINGER. nullopt: close() returns at once and the kernel sends what is left (the default);
/// 0s: close() drops unsent data and resets the connection; n s: close() waits up to n s for
/// the data to go out. A negative duration gives invalid_argument.
[[nodiscard]] std::error_code set_linger(int fd,
                                         std::optional<std::chrono::seconds> linger) noexcept;
[[nodiscard]] std::error_code set_reuse_addr(int fd, bool on) noexcept;
[[nodiscard]] std::error_code set_reuse_port(int fd, bool on) noexcept;
/// SO_BINDTODEVICE to the interface `name`; an empty name unbinds. A name of IFNAMSIZ bytes or
/// more gives invalid_argument, an unknown one no_such_device.
[[nodiscard]] std::error_code set_bind_device(int fd, const std::string& name) noexcept;
/// The socket's pending error (SO_ERROR, which reading clears): how a non-blocking connect
/// ended, or why a socket failed; {} when there is none.
[[nodiscard]] std::error_code pending_error(int fd) noexcept;

/// getsockname() / getpeername() as an address of transport `t`. A socket whose family does
/// not fit `t` gives address_family_not_supported; an unconnected one has no peer (not_connected).
[[nodiscard]] result<address> local_address(int fd, actnet::transport t) noexcept;
[[nodiscard]] result<address> peer_address(int fd, actnet::transport t) noexcept;

}  // namespace actnet
