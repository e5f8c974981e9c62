// tls_idle: holds N idle TLS connections to an HTTPS server, for measuring what the server keeps
// per idle TLS connection. Each connection does a full TLS 1.3 handshake (no resumption), sends
// one GET and reads its response (so the server has served it, as after a real request), then
// stays open doing nothing. Prints "idle: N connections ready" once all are, then holds them
// until its stdin closes (or --hold seconds pass). Exits non-zero if a connection fails.
//   tls_idle --port P [--host 127.0.0.1] [--conns N] [--path /plaintext] [--hold S]
// Standalone: OpenSSL only, no actnet, so the load owes nothing to the code it measures.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct settings {
  std::string host = "127.0.0.1";
  int port = 0;
  long conns = 1000;
  std::string path = "/plaintext";
  long hold_s = 120;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "tls_idle: %s\n", what.c_str());
  std::exit(1);
}

// One blocking connection: connect, handshake, GET, read the response's head and body.
SSL* open_one(SSL_CTX* ctx, const settings& s, const sockaddr_in& to) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    fail(std::string("connect: ") + std::strerror(errno));
  }
  const timeval limit{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    std::array<char, 256> text{};
    ERR_error_string_n(ERR_get_error(), text.data(), text.size());
    fail(std::string("handshake: ") + text.data());
  }
  const std::string request = "GET " + s.path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) <= 0) {
    fail("write failed");
  }
  std::string got;
  for (;;) {
    char chunk[4096];
    const int n = SSL_read(ssl, chunk, sizeof chunk);
    if (n <= 0) {
      fail("the response did not come");
    }
    got.append(chunk, static_cast<std::size_t>(n));
    const std::size_t head = got.find("\r\n\r\n");
    if (head == std::string::npos) {
      continue;
    }
    const std::size_t at = got.find("Content-Length: ");
    const std::size_t length = at < head ? std::strtoul(got.c_str() + at + 16, nullptr, 10) : 0;
    if (got.size() >= head + 4 + length) {
      break;
    }
  }
  return ssl;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--host") {
      s.host = value;
    } else if (flag == "--port") {
      s.port = std::atoi(value);
    } else if (flag == "--conns") {
      s.conns = std::atol(value);
    } else if (flag == "--path") {
      s.path = value;
    } else if (flag == "--hold") {
      s.hold_s = std::atol(value);
    } else {
      fail("unknown flag " + std::string(flag));
    }
  }
  if (s.port <= 0 || s.conns <= 0) {
    fail("usage: tls_idle --port P [--host H] [--conns N] [--path P] [--hold S]");
  }
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(s.port));
  if (::inet_pton(AF_INET, s.host.c_str(), &to.sin_addr) != 1) {
    fail("--host: not an IPv4 address: " + s.host);
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  std::vector<SSL*> open;
  open.reserve(static_cast<std::size_t>(s.conns));
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < s.conns; ++i) {
    open.push_back(open_one(ctx, s, to));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("idle: %ld connections ready (%.1f s)\n", s.conns, seconds);
  std::fflush(stdout);
  pollfd in{STDIN_FILENO, POLLIN, 0};
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(s.hold_s);
  while (std::chrono::steady_clock::now() < until) {
    if (::poll(&in, 1, 200) > 0) {
      char c = 0;
      if (::read(STDIN_FILENO, &c, 1) <= 0) {
        break;  // the holder closed our stdin
      }
    }
  }
  for (SSL* ssl : open) {
    ::close(SSL_get_fd(ssl));
    SSL_free(ssl);
  }
  SSL_CTX_free(ctx);
  return 0;
}
