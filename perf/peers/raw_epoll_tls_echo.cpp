// raw_epoll_tls_echo: the limit of the epoll + OpenSSL model for the perf harness's TLS rows:
// what a skilled engineer writes with bare epoll and OpenSSL on the socket (SSL_set_fd), one
// thread, level-triggered, read-ahead on. Each readable event: SSL_read into the loop's 64 KiB
// buffer until OpenSSL holds nothing more, and
// SSL_write of the same bytes (what the socket does not take waits in the connection's own
// buffer, reading pauses until it has gone). The handshake is non-blocking (SSL_accept until
// done). SSL_MODE_RELEASE_BUFFERS, as actnet and nginx.
//   raw_epoll_tls_echo --listen tcp://HOST:PORT --cert FILE --key FILE [--ciphersuites LIST]
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "peer_common.hpp"

namespace {

using peers::die;
using peers::die_errno;

constexpr std::size_t read_buffer_size = 64 * 1024;

struct conn {
  int fd = -1;
  SSL* ssl = nullptr;
  bool open = false;          // the handshake is done
  std::vector<char> pending;  // echo bytes SSL_write has not taken yet
  bool want_out = false;      // EPOLLOUT armed
};

class server {
 public:
  server(int listener, SSL_CTX* ctx, int signal_fd)
      : listener_(listener), ctx_(ctx), signal_fd_(signal_fd), ep_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (ep_ < 0) {
      die_errno("epoll_create1");
    }
    add(listener_, EPOLLIN);
    add(signal_fd_, EPOLLIN);
  }

  void run() {
    std::array<epoll_event, 256> events{};
    for (;;) {
      const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        die_errno("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == signal_fd_) {
          return;
        }
        if (fd == listener_) {
          accept_all();
          continue;
        }
        auto it = conns_.find(fd);
        if (it == conns_.end()) {
          continue;
        }
        serve(*it->second, events[i].events);
      }
    }
  }

 private:
  void add(int fd, std::uint32_t what) {
    epoll_event ev{};
    ev.events = what;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      die_errno("epoll_ctl add");
    }
  }
  void modify(conn& c, std::uint32_t what) {
    epoll_event ev{};
    ev.events = what;
    ev.data.fd = c.fd;
    (void)::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        return;  // EAGAIN, or out of fds (the next event tries again)
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<conn>();
      c->fd = fd;
      c->ssl = SSL_new(ctx_);
      SSL_set_fd(c->ssl, fd);
      SSL_set_accept_state(c->ssl);
      add(fd, EPOLLIN);
      conns_.emplace(fd, std::move(c));
    }
  }

  void close_conn(conn& c) {
    (void)::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    SSL_free(c.ssl);
    ::close(c.fd);
    conns_.erase(c.fd);  // (c is gone from here)
  }

  // false: the connection failed (closed here).
  bool flush(conn& c) {
    while (!c.pending.empty()) {
      ERR_clear_error();
      const int w = SSL_write(c.ssl, c.pending.data(), static_cast<int>(c.pending.size()));
      if (w > 0) {
        c.pending.erase(c.pending.begin(), c.pending.begin() + w);
        continue;
      }
      const int e = SSL_get_error(c.ssl, w);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        break;
      }
      close_conn(c);
      return false;
    }
    const bool want = !c.pending.empty();
    if (want != c.want_out) {
      c.want_out = want;
      modify(c, want ? EPOLLOUT : EPOLLIN);  // reading pauses while the echo waits
    }
    return true;
  }

  void serve(conn& c, std::uint32_t events) {
    if (!c.open) {
      ERR_clear_error();
      const int r = SSL_do_handshake(c.ssl);
      if (r != 1) {
        const int e = SSL_get_error(c.ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          close_conn(c);
        }
        return;
      }
      c.open = true;
    }
    if ((events & EPOLLOUT) != 0 && !flush(c)) {
      return;
    }
    if (c.want_out) {
      return;
    }
    for (;;) {
      ERR_clear_error();
      const int n = SSL_read(c.ssl, buffer_.data(), static_cast<int>(buffer_.size()));
      if (n <= 0) {
        const int e = SSL_get_error(c.ssl, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          close_conn(c);  // close_notify, a FIN or an error
        }
        return;
      }
      c.pending.assign(buffer_.data(), buffer_.data() + n);
      if (!flush(c) || c.want_out) {
        return;
      }
      if (SSL_has_pending(c.ssl) == 0) {
        return;  // level-triggered: the rest of the socket comes with the next event
      }
    }
  }

  int listener_;
  SSL_CTX* ctx_;
  int signal_fd_;
  int ep_;
  std::array<char, read_buffer_size> buffer_{};
  std::unordered_map<int, std::unique_ptr<conn>> conns_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  std::string cert;
  std::string key;
  std::string suites;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--listen") {
      url = argv[i + 1];
    } else if (flag == "--cert") {
      cert = argv[i + 1];
    } else if (flag == "--key") {
      key = argv[i + 1];
    } else if (flag == "--ciphersuites") {
      suites = argv[i + 1];
    } else {
      die("unknown flag " + std::string(flag));
    }
  }
  if (url.empty() || cert.empty() || key.empty()) {
    die("usage: raw_epoll_tls_echo --listen tcp://HOST:PORT --cert FILE --key FILE "
        "[--ciphersuites LIST]");
  }
  peers::raise_nofile_limit();
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  ::signal(SIGPIPE, SIG_IGN);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    die_errno("sigprocmask");
  }
  const int signal_fd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Whole socket reads into OpenSSL's buffer rather than a header and a body per record (as
  // nginx does): the fewest system calls this model allows.
  SSL_CTX_set_read_ahead(ctx, 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      (!suites.empty() && SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1)) {
    die("cannot use the certificate, key or suites");
  }
  const peers::listen_address a = peers::parse_listen(url);
  const int listener = peers::open_listener(a, false);
  std::printf("listening on %s\n", peers::bound_url(listener, a).c_str());
  std::fflush(stdout);
  server s(listener, ctx, signal_fd);
  s.run();
  SSL_CTX_free(ctx);
  return 0;
}
