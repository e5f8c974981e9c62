// What the C++ peer servers share that is harness plumbing, not the server being measured:
// their command line (--listen tcp://HOST:PORT, --loops N), errors, and the descriptor limit.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace peers {

inline constexpr long max_loops = 256;

/// "<program>: <what>" on stderr, exit status 1.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::exit(1);
}

struct args {
  std::string url;  ///< --listen
  long loops = 1;   ///< --loops, 1..max_loops
};

/// Parses --listen URL (or --listen=URL) and --loops N (or --loops=N); prints `usage` and exits
/// with status 2 on anything else or without --listen; dies on a bad loop count.
inline args parse_args(int argc, char** argv, const char* usage) {
  args a;
  std::string loops_text = "1";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      a.url = argv[++i];
    } else if (arg.starts_with("--listen=")) {
      a.url = std::string(arg.substr(9));
    } else if (arg == "--loops" && i + 1 < argc) {
      loops_text = argv[++i];
    } else if (arg.starts_with("--loops=")) {
      loops_text = std::string(arg.substr(8));
    } else {
      std::fprintf(stderr, "%s", usage);
      std::exit(2);
    }
  }
  if (a.url.empty()) {
    std::fprintf(stderr, "%s", usage);
    std::exit(2);
  }
  char* end = nullptr;
  a.loops = std::strtol(loops_text.c_str(), &end, 10);
  if (loops_text.empty() || *end != '\0' || a.loops < 1 || a.loops > max_loops) {
    die("--loops: expected 1.." + std::to_string(max_loops) + ", got '" + loops_text + "'");
  }
  return a;
}

struct host_port {
  std::string host;  ///< an IP literal, IPv6 without its brackets
  int port = 0;
};

/// Splits "tcp://HOST:PORT" ([v6] in brackets); dies on anything else.
inline host_port split_tcp_url(std::string_view url) {
  if (!url.starts_with("tcp://")) {
    die("--listen: expected tcp://HOST:PORT, got " + std::string(url));
  }
  const std::string_view hostport = url.substr(6);
  const auto colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    die("--listen: missing port in " + std::string(url));
  }
  std::string host(hostport.substr(0, colon));
  const std::string port_text(hostport.substr(colon + 1));
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    die("--listen: bad port in " + std::string(url));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, static_cast<int>(port)};
}

/// Descriptors are the only per-connection limit; the default soft limit (often 1024) is far
/// below what a load run opens.
inline void raise_nofile_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// The listener both raw peers open: tcp://HOST:PORT or unix://PATH, bound and listening.
[[noreturn]] inline void die_errno(const std::string& what, int error = errno) {
  die(what + ": " + std::strerror(error));
}

struct listen_address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool is_tcp = true;
  std::string unix_path;
};

inline listen_address parse_listen(std::string_view url) {
  listen_address a;
  if (url.starts_with("unix://")) {
    a.is_tcp = false;
    a.unix_path = std::string(url.substr(7));
    sockaddr_un un{};
    if (a.unix_path.empty() || a.unix_path.size() >= sizeof un.sun_path) {
      die("--listen: bad unix socket path: " + std::string(url));
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, a.unix_path.data(), a.unix_path.size());
    std::memcpy(&a.storage, &un, sizeof un);
    a.length = sizeof un;
    return a;
  }
  const auto [host, port] = peers::split_tcp_url(url);
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&a.storage, &v4, sizeof v4);
    a.length = sizeof v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&a.storage, &v6, sizeof v6);
    a.length = sizeof v6;
  } else {
    die("--listen: '" + host + "' is not an IPv4 or IPv6 literal");
  }
  return a;
}

// The URL with the port the kernel actually chose, so a caller that asked for port 0 can connect.
inline std::string bound_url(int fd, const listen_address& a) {
  if (!a.is_tcp) {
    return "unix://" + a.unix_path;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    die_errno("getsockname");
  }
  std::array<char, INET6_ADDRSTRLEN> host{};
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &v4->sin_addr, host.data(), host.size());
    return "tcp://" + std::string(host.data()) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &v6->sin6_addr, host.data(), host.size());
  return "tcp://[" + std::string(host.data()) + "]:" + std::to_string(ntohs(v6->sin6_port));
}

inline int open_listener(const listen_address& a, bool reuse_port) {
  // Non-blocking only for the accept4 that drops a connection when descriptors run out: the
  // ring's accept waits for readiness either way.
  const int fd = ::socket(a.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    die_errno("socket");
  }
  if (a.is_tcp) {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      die_errno("SO_REUSEPORT");
    }
  } else {
    // A socket file left by a previous run that died would make bind fail; anything that is not
    // a socket is left alone.
    struct stat st {};
    if (::stat(a.unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(a.unix_path.c_str());
    }
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a.storage), a.length) != 0) {
    die_errno("bind");
  }
  if (::listen(fd, SOMAXCONN) != 0) {
    die_errno("listen");
  }
  return fd;
}

}  // namespace peers
