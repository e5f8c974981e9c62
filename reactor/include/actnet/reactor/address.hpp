// address: a listen or peer address ("tcp://127.0.0.1:8080", "unix:///run/app.sock") parsed once
// at start-up into the sockaddr the kernel wants, and printed back the same way.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace actnet {

/// The kind of socket an address is for.
enum class transport : std::uint8_t { tcp, udp, unix_stream };

/// An endpoint: a transport plus a sockaddr (IPv4, IPv6 or unix). A plain value: copyable,
/// comparable, no resources, so every member is safe to call from any thread on its own copy.
class address {
 public:
  /// Empty: valid() is false, family() is AF_UNSPEC, to_string() is "".
  address() = default;

  /// Parses "tcp://host:port", "tcp4://host:port", "tcp6://[v6]:port" (zone ids such as
  /// [fe80::1%eth0] are accepted), the same for udp, udp4 and udp6, "unix:///abs/path",
  /// "unix://rel/path" and "unix://@abstract-name". Schemes are case-insensitive.
  ///
  /// host is an IP literal (IPv6 in brackets) or a name resolved with getaddrinfo within the
  /// scheme's family: tcp/udp take the first IPv4 result, else the first IPv6 one; tcp4/udp4
  /// only IPv4; tcp6/udp6 only IPv6. An empty host ("tcp://:9000") means every local address
  /// of the family (0.0.0.0, or [::] for tcp6/udp6). Port 0 asks the kernel to pick one.
  ///
  /// Meant for start-up configuration: resolving a name may block, and any mistake throws
  /// std::invalid_argument whose what() quotes the address (control characters escaped) and
  /// names the problem, e.g. "actnet: address 'tcp://': missing host".
  static address parse(std::string_view url);

  /// Wraps what the kernel reported (getsockname, getpeername, recvfrom). The scheme is the
  /// transport's generic one ("tcp", "udp", "unix"). Throws std::invalid_argument if `sa` is
  /// null, `len` is too short or too long for its family, or the family does not fit `t`
  /// (tcp and udp need AF_INET or AF_INET6, unix_stream needs AF_UNIX). A unix socket without a
  /// name (an unbound client) gives a valid address whose to_string() is "unix://". A path
  /// that fills sun_path with no NUL (Linux allows it; `len` may then count the NUL the kernel
  /// keeps after it) is kept whole, though its to_string() does not parse: parse() keeps room
  /// for the NUL.
  static address from_sockaddr(actnet::transport t, const sockaddr* sa, socklen_t len);

  [[nodiscard]] bool valid() const noexcept { return size_ != 0; }
  /// Meaningful only when valid().
  [[nodiscard]] actnet::transport transport() const noexcept { return transport_; }
  /// Lower case, as written: "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6" or "unix".
  [[nodiscard]] std::string_view scheme() const noexcept { return scheme_; }
  /// AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC when empty.
  [[nodiscard]] int family() const noexcept { return storage_.ss_family; }
  /// For bind() and connect(): data() and size() together.
  [[nodiscard]] const sockaddr* data() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  [[nodiscard]] socklen_t size() const noexcept { return size_; }
  /// The port in host byte order; 0 for unix addresses and for an empty one.
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The same address with another port, e.g. to report the one the kernel picked for port 0.
  /// Unix and empty addresses have no port and come back unchanged.
  [[nodiscard]] address with_port(std::uint16_t port) const noexcept;
  /// tcp6/udp6: the socket must not accept IPv4 peers (IPV6_V6ONLY).
  [[nodiscard]] bool v6_only() const noexcept { return v6_only_; }
  /// A unix abstract name (unix://@name), which lives in no file system.
  [[nodiscard]] bool abstract() const noexcept;
  /// An IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast group.
  [[nodiscard]] bool multicast() const noexcept;
  /// The form parse() reads back into an equal address: "tcp://127.0.0.1:8080",
  /// "tcp6://[::1]:8080", "udp://[fe80::1%eth0]:53", "unix:///tmp/s.sock", "unix://@name".
  /// A relative unix path starting with '@', which only from_sockaddr gives, prints as
  /// "unix://./@path" so that it does not read back as an abstract name.
  [[nodiscard]] std::string to_string() const;

  /// Equal when scheme and endpoint are equal, so tcp://127.0.0.1:80 differs from
  /// tcp4://127.0.0.1:80 just as their to_string() does.
  friend bool operator==(const address& a, const address& b) noexcept;

 private:
  sockaddr_storage storage_{};  // zero-filled, so padding compares equal
  socklen_t size_ = 0;
  actnet::transport transport_ = actnet::transport::tcp;
  bool v6_only_ = false;
  std::string_view scheme_;  // always one of the static scheme literals
};

}  // namespace actnet
