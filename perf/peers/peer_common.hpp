// What the C++ peer servers share that is harness plumbing, not the server being measured:
// their command line (--listen tcp://HOST:PORT, --loops N), errors, and the descriptor limit.
#pragma once

#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
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

}  // namespace peers
