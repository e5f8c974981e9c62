// address: URL parsing (with getaddrinfo for names), sockaddr normalisation and printing.
#include "actnet/reactor/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace actnet {
namespace {

struct scheme_info {
  std::string_view name;
  actnet::transport transport;
  int family;  // what names resolve to: AF_UNSPEC (IPv4 first), AF_INET, AF_INET6 or AF_UNIX
};

constexpr std::array<scheme_info, 7> schemes{{
    {"tcp", transport::tcp, AF_UNSPEC},
    {"tcp4", transport::tcp, AF_INET},
    {"tcp6", transport::tcp, AF_INET6},
    {"udp", transport::udp, AF_UNSPEC},
    {"udp4", transport::udp, AF_INET},
    {"udp6", transport::udp, AF_INET6},
    {"unix", transport::unix_stream, AF_UNIX},
}};

// The generic scheme of each transport, for addresses the kernel reports.
std::string_view generic_scheme(actnet::transport t) noexcept {
  switch (t) {
    case transport::tcp:
      return schemes[0].name;
    case transport::udp:
      return schemes[3].name;
    case transport::unix_stream:
      return schemes[6].name;
  }
  return {};
}

constexpr std::size_t sun_path_offset = offsetof(sockaddr_un, sun_path);
// The longest path or abstract name that fits: a path keeps room for its terminating NUL, an
// abstract name for its leading one.
constexpr std::size_t max_unix_name = sizeof(sockaddr_un::sun_path) - 1;

// Whether `len` is a length the kernel reports for a unix address: at most a sockaddr_un, or
// one byte more for a path that fills sun_path, which Linux reports counting the NUL it keeps
// after it (an abstract name has no NUL).
bool unix_length_fits(const sockaddr* sa, socklen_t len) noexcept {
  const bool abstract =
      len > sun_path_offset && reinterpret_cast<const sockaddr_un*>(sa)->sun_path[0] == '\0';
  return len <= socklen_t{sizeof(sockaddr_un)} + (abstract ? 0U : 1U);
}

bool is_control_or_space(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

// The address as it appears in messages: control characters escaped, so a stray newline shows
// as \n instead of breaking the log line.
std::string printable(std::string_view text) {
  static constexpr std::string_view hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += hex[u >> 4U];
      out += hex[u & 0xfU];
    } else {
      out += c;
    }
  }
  return out;
}

[[noreturn]] void fail(std::string_view url, std::string_view problem) {
  std::string message = "actnet: address '";
  message += printable(url);
  message += "': ";
  message += problem;
  throw std::invalid_argument(message);
}

std::string quoted(std::string_view text) {
  std::string out = "'";
  out += printable(text);
  out += '\'';
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

bool all_digits(std::string_view text) noexcept {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::uint16_t parse_port(std::string_view url, std::string_view text) {
  if (text.empty()) {
    fail(url, "missing port");
  }
  // Five digits at most, so the sum below cannot overflow before the range check.
  if (!all_digits(text) || text.size() > 5) {
    fail(url, "bad port " + quoted(text) + " (expected a number from 0 to 65535)");
  }
  unsigned value = 0;
  for (const char c : text) {
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) {
    fail(url, "bad port " + quoted(text) + " (expected a number from 0 to 65535)");
  }
  return static_cast<std::uint16_t>(value);
}

// "fe80::1%eth0" or "fe80::1%2": the interface is what makes a link-local address usable.
sockaddr_in6 parse_ipv6(std::string_view url, std::string_view text) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  const auto percent = text.find('%');
  const std::string ip(text.substr(0, percent));
  if (::inet_pton(AF_INET6, ip.c_str(), &sa.sin6_addr) != 1) {
    fail(url, quoted(text) + " in brackets is not an IPv6 address");
  }
  if (percent != std::string_view::npos) {
    const std::string_view zone = text.substr(percent + 1);
    if (zone.empty()) {
      fail(url, "empty zone after '%' in " + quoted(text));
    }
    if (all_digits(zone) && zone.size() <= 9) {
      sa.sin6_scope_id = static_cast<std::uint32_t>(std::stoul(std::string(zone)));
    } else {
      sa.sin6_scope_id = ::if_nametoindex(std::string(zone).c_str());
      if (sa.sin6_scope_id == 0) {
        fail(url, "unknown network interface " + quoted(zone) + " in zone");
      }
    }
  }
  return sa;
}

std::string_view family_name(int family) noexcept {
  return family == AF_INET ? "IPv4" : "IPv6";
}

// Looks `host` up and keeps the first result of the wanted family (IPv4 before IPv6 for
// AF_UNSPEC), so the choice does not depend on the resolver's ordering rules.
sockaddr_storage resolve(std::string_view url, const std::string& host, const scheme_info& s) {
  addrinfo hints{};
  hints.ai_family = s.family;
  hints.ai_socktype = s.transport == transport::udp ? SOCK_DGRAM : SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    std::string problem = "cannot resolve host " + quoted(host);
    if (s.family != AF_UNSPEC) {
      problem += " to an ";
      problem += family_name(s.family);
      problem += " address";
    }
    problem += ": ";
    problem += rc == EAI_SYSTEM ? std::system_category().message(errno) : ::gai_strerror(rc);
    fail(url, problem);
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, &::freeaddrinfo);
  const addrinfo* pick = nullptr;
  for (const int family : {AF_INET, AF_INET6}) {
    if (s.family != AF_UNSPEC && s.family != family) {
      continue;
    }
    for (const addrinfo* ai = found; ai != nullptr && pick == nullptr; ai = ai->ai_next) {
      if (ai->ai_family == family && ai->ai_addrlen <= sizeof(sockaddr_storage)) {
        pick = ai;
      }
    }
    if (pick != nullptr) {
      break;
    }
  }
  if (pick == nullptr) {
    const std::string_view wanted = s.family == AF_UNSPEC ? "IP" : family_name(s.family);
    fail(url, "host " + quoted(host) + " has no " + std::string(wanted) + " address");
  }
  sockaddr_storage out{};
  std::memcpy(&out, pick->ai_addr, pick->ai_addrlen);
  return out;
}

}  // namespace

address address::parse(std::string_view url) {
  for (std::size_t i = 0; i < url.size(); ++i) {
    if (is_control_or_space(url[i])) {
      fail(url, "control character or whitespace at offset " + std::to_string(i));
    }
  }
  const auto separator = url.find("://");
  if (separator == std::string_view::npos || separator == 0) {
    fail(url, "missing scheme (expected e.g. tcp://127.0.0.1:8080)");
  }
  const std::string_view given_scheme = url.substr(0, separator);
  const std::string scheme = lower(given_scheme);
  const auto* s = std::find_if(schemes.begin(), schemes.end(),
                               [&](const scheme_info& i) { return i.name == scheme; });
  if (s == schemes.end()) {
    fail(url, "unsupported protocol " + quoted(given_scheme) +
                  " (use tcp, tcp4, tcp6, udp, udp4, udp6 or unix)");
  }
  const std::string_view rest = url.substr(separator + 3);

  address a;
  a.transport_ = s->transport;
  a.scheme_ = s->name;

  if (s->transport == transport::unix_stream) {
    auto& un = reinterpret_cast<sockaddr_un&>(a.storage_);
    un.sun_family = AF_UNIX;
    if (rest.empty()) {
      fail(url, "empty unix path");
    }
    const bool is_abstract = rest.front() == '@';
    const std::string_view name = is_abstract ? rest.substr(1) : rest;
    if (name.empty()) {
      fail(url, "empty abstract socket name");
    }
    if (name.size() > max_unix_name) {
      fail(url, std::string(is_abstract ? "abstract socket name" : "unix path") + " is " +
                    std::to_string(name.size()) + " bytes, longer than the " +
                    std::to_string(max_unix_name) + " a unix socket address holds");
    }
    // An abstract name starts with a NUL and its length is part of it: no terminator.
    std::memcpy(un.sun_path + (is_abstract ? 1 : 0), name.data(), name.size());
    a.size_ = static_cast<socklen_t>(sun_path_offset + 1 + name.size());
    return a;
  }

  if (rest.empty()) {
    fail(url, "missing host");
  }
  const auto slash = rest.find('/');
  if (slash != std::string_view::npos) {
    fail(url, "unexpected path " + quoted(rest.substr(slash)));
  }
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  if (rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      fail(url, "missing ']' after the IPv6 address");
    }
    bracketed = true;
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (after.empty()) {
      fail(url, "missing port");
    }
    if (after.front() != ':') {
      fail(url, "unexpected " + quoted(after) + " after ']' (expected :port)");
    }
    port_text = after.substr(1);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      fail(url, "missing port");
    }
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      fail(url, "IPv6 address " + quoted(host) + " needs brackets (e.g. tcp6://[::1]:8080)");
    }
  }
  const std::uint16_t port = parse_port(url, port_text);

  if (bracketed) {
    if (s->family == AF_INET) {
      fail(url, quoted(host) + " is an IPv6 address but " + scheme + " needs IPv4");
    }
    const sockaddr_in6 sa = parse_ipv6(url, host);
    std::memcpy(&a.storage_, &sa, sizeof sa);
  } else if (host.empty()) {
    // Every local address: zero-filled storage is already INADDR_ANY / in6addr_any.
    a.storage_.ss_family = static_cast<sa_family_t>(s->family == AF_INET6 ? AF_INET6 : AF_INET);
  } else {
    const std::string name(host);
    in_addr v4{};
    if (::inet_pton(AF_INET, name.c_str(), &v4) == 1) {
      if (s->family == AF_INET6) {
        fail(url, quoted(host) + " is an IPv4 address but " + scheme + " needs IPv6");
      }
      auto& in = reinterpret_cast<sockaddr_in&>(a.storage_);
      in.sin_family = AF_INET;
      in.sin_addr = v4;
    } else {
      const sockaddr_storage found = resolve(url, name, *s);
      // Keep only the fields that identify the endpoint, so equal addresses compare equal.
      if (found.ss_family == AF_INET) {
        auto& in = reinterpret_cast<sockaddr_in&>(a.storage_);
        in.sin_family = AF_INET;
        in.sin_addr = reinterpret_cast<const sockaddr_in&>(found).sin_addr;
      } else {
        const auto& from = reinterpret_cast<const sockaddr_in6&>(found);
        auto& in6 = reinterpret_cast<sockaddr_in6&>(a.storage_);
        in6.sin6_family = AF_INET6;
        in6.sin6_addr = from.sin6_addr;
        in6.sin6_scope_id = from.sin6_scope_id;
      }
    }
  }
  a.size_ = a.storage_.ss_family == AF_INET ? socklen_t{sizeof(sockaddr_in)}
                                            : socklen_t{sizeof(sockaddr_in6)};
  a.v6_only_ = s->family == AF_INET6;
  return a.with_port(port);
}

address address::from_sockaddr(actnet::transport t, const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < socklen_t{sizeof(sa_family_t)}) {
    throw std::invalid_argument("actnet: address::from_sockaddr: no address given");
  }
  address a;
  a.transport_ = t;
  a.scheme_ = generic_scheme(t);
  const bool wants_unix = t == transport::unix_stream;
  if (sa->sa_family == AF_INET && !wants_unix && len >= socklen_t{sizeof(sockaddr_in)}) {
    const auto* from = reinterpret_cast<const sockaddr_in*>(sa);
    auto& in = reinterpret_cast<sockaddr_in&>(a.storage_);
    in.sin_family = AF_INET;
    in.sin_port = from->sin_port;
    in.sin_addr = from->sin_addr;
    a.size_ = sizeof(sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && !wants_unix && len >= socklen_t{sizeof(sockaddr_in6)}) {
    const auto* from = reinterpret_cast<const sockaddr_in6*>(sa);
    auto& in6 = reinterpret_cast<sockaddr_in6&>(a.storage_);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = from->sin6_port;
    in6.sin6_flowinfo = from->sin6_flowinfo;
    in6.sin6_addr = from->sin6_addr;
    in6.sin6_scope_id = from->sin6_scope_id;
    a.size_ = sizeof(sockaddr_in6);
  } else if (sa->sa_family == AF_UNIX && wants_unix && unix_length_fits(sa, len)) {
    const auto* from = reinterpret_cast<const sockaddr_un*>(sa);
    auto& un = reinterpret_cast<sockaddr_un&>(a.storage_);
    un.sun_family = AF_UNIX;
    const std::size_t bytes =
        std::min(len > sun_path_offset ? len - sun_path_offset : 0, sizeof un.sun_path);
    std::size_t name_size = 0;
    if (bytes > 0 && from->sun_path[0] == '\0') {
      name_size = bytes;  // abstract: the length is the name's, NULs and all
    } else if (bytes > 0) {
      // The kernel may or may not count the path's NUL: measure the path, then count one NUL
      // if it fits. A path that fills sun_path goes without, as bind and connect take no
      // more than a sockaddr_un.
      name_size = std::min(::strnlen(from->sun_path, bytes) + 1, sizeof un.sun_path);
    }
    std::memcpy(un.sun_path, from->sun_path, std::min(bytes, name_size));
    a.size_ = static_cast<socklen_t>(sun_path_offset + name_size);
  } else {
    throw std::invalid_argument("actnet: address::from_sockaddr: family " +
                                std::to_string(sa->sa_family) + " with length " +
                                std::to_string(len) + " does not fit the transport");
  }
  return a;
}

std::uint16_t address::port() const noexcept {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in&>(storage_).sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6&>(storage_).sin6_port);
    default:
      return 0;
  }
}

address address::with_port(std::uint16_t port) const noexcept {
  address a = *this;
  switch (family()) {
    case AF_INET:
      reinterpret_cast<sockaddr_in&>(a.storage_).sin_port = htons(port);
      break;
    case AF_INET6:
      reinterpret_cast<sockaddr_in6&>(a.storage_).sin6_port = htons(port);
      break;
    default:
      break;
  }
  return a;
}

bool address::abstract() const noexcept {
  return family() == AF_UNIX && size_ > sun_path_offset &&
         reinterpret_cast<const sockaddr_un&>(storage_).sun_path[0] == '\0';
}

bool address::multicast() const noexcept {
  if (family() == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(storage_);
    return IN_MULTICAST(ntohl(in.sin_addr.s_addr));
  }
  if (family() == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage_);
    return IN6_IS_ADDR_MULTICAST(&in6.sin6_addr);
  }
  return false;
}

std::string address::to_string() const {
  if (!valid()) {
    return {};
  }
  std::string out(scheme_);
  out += "://";
  switch (family()) {
    case AF_INET: {
      std::array<char, INET_ADDRSTRLEN> text{};
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(storage_).sin_addr, text.data(),
                  text.size());
      out += text.data();
      break;
    }
    case AF_INET6: {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage_);
      std::array<char, INET6_ADDRSTRLEN> text{};
      ::inet_ntop(AF_INET6, &in6.sin6_addr, text.data(), text.size());
      out += '[';
      out += text.data();
      if (in6.sin6_scope_id != 0) {
        std::array<char, IF_NAMESIZE> name{};
        out += '%';
        out += ::if_indextoname(in6.sin6_scope_id, name.data()) != nullptr
                   ? std::string(name.data())
                   : std::to_string(in6.sin6_scope_id);
      }
      out += ']';
      break;
    }
    case AF_UNIX: {
      // The size bounds the name: an abstract one has no NUL, nor has a path filling sun_path.
      const char* path = reinterpret_cast<const char*>(&storage_) + sun_path_offset;
      const std::size_t bytes = size_ - sun_path_offset;
      if (abstract()) {
        out += '@';
        out.append(path + 1, bytes - 1);
      } else if (bytes > 0) {
        // A relative path starting with '@' (one the kernel reports; parse() never makes it)
        // would read back as an abstract name: "./" keeps it a path to the same file.
        if (path[0] == '@') {
          out += "./";
        }
        out.append(path, ::strnlen(path, bytes));
      }
      return out;
    }
    default:
      return out;
  }
  out += ':';
  out += std::to_string(port());
  return out;
}

bool operator==(const address& a, const address& b) noexcept {
  return a.size_ == b.size_ && a.transport_ == b.transport_ && a.v6_only_ == b.v6_only_ &&
         a.scheme_ == b.scheme_ && std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
}

}  // namespace actnet
