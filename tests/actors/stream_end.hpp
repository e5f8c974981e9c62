// A test client's end of one stream connection: a socket, plain or with an OpenSSL client
// session over it, or a KCP conversation (kcp_end.hpp). The suites drive it with plain system
// calls' semantics (send and recv that may be partial, 0 at a clean end, -1 with errno), so one
// test body runs over TCP, TLS and KCP.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "actors/kcp_end.hpp"

namespace actnet::test {

/// A client SSL_CTX that verifies servers against `ca_file` (and nothing else), with partial
/// writes (so a write on a non-blocking socket can stop part way, as send() does) and idle
/// buffers released; `max_version` caps the protocol (0: none).
class tls_client_context {
 public:
  explicit tls_client_context(const std::string& ca_file, int max_version = 0)
      : ctx_(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    if (max_version != 0) {
      SSL_CTX_set_max_proto_version(ctx_, max_version);
    }
  }
  tls_client_context(const tls_client_context&) = delete;
  tls_client_context& operator=(const tls_client_context&) = delete;
  ~tls_client_context() { SSL_CTX_free(ctx_); }

  [[nodiscard]] SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_;
};

/// One connection's client end. It owns its socket; blocking or not as the socket is. On TLS,
/// a read or write that OpenSSL cannot finish without the socket (either way) is -1 with
/// EAGAIN, a close_notify reads as 0, and an end without one (truncation) or a protocol error
/// as -1 with EPROTO.
class stream_end {
 public:
  stream_end() = default;
  /// Takes the connected socket `fd`; with `tls`, shakes hands over it first (the socket
  /// blocking): if that fails, the socket is closed and ok() is false.
  stream_end(int fd, SSL_CTX* tls) : fd_(fd) {
    if (tls == nullptr || fd_ < 0) {
      return;
    }
    ssl_ = SSL_new(tls);
    SSL_set_fd(ssl_, fd_);
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) {
      ERR_clear_error();
      close();
    }
  }
  /// A KCP conversation's end (no end of stream: reads time out instead of reading 0).
  explicit stream_end(std::unique_ptr<kcp_end> kcp) : kcp_(std::move(kcp)) {}
  stream_end(stream_end&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        ssl_(std::exchange(other.ssl_, nullptr)),
        kcp_(std::move(other.kcp_)) {}
  stream_end& operator=(stream_end&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
      ssl_ = std::exchange(other.ssl_, nullptr);
      kcp_ = std::move(other.kcp_);
    }
    return *this;
  }
  stream_end(const stream_end&) = delete;
  stream_end& operator=(const stream_end&) = delete;
  ~stream_end() { close(); }

  [[nodiscard]] bool ok() const { return fd_ >= 0 || (kcp_ != nullptr && kcp_->ok()); }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] SSL* ssl() const { return ssl_; }

  /// As send(2): the bytes taken (some, on a non-blocking socket), or -1 with errno.
  ssize_t send_some(const void* data, std::size_t n) {
    if (kcp_ != nullptr) {
      return kcp_->send_some(data, n);
    }
    if (ssl_ == nullptr) {
      return ::send(fd_, data, n, MSG_NOSIGNAL);
    }
    ERR_clear_error();
    const int r = SSL_write(ssl_, data, static_cast<int>(n));
    return r > 0 ? r : failed(r);
  }
  /// As recv(2): the bytes read, 0 at a clean end, or -1 with errno.
  ssize_t recv_some(void* out, std::size_t n) {
    if (kcp_ != nullptr) {
      return kcp_->recv_some(out, n);
    }
    if (ssl_ == nullptr) {
      return ::recv(fd_, out, n, 0);
    }
    ERR_clear_error();
    const int r = SSL_read(ssl_, out, static_cast<int>(n));
    return r > 0 ? r : failed(r);
  }

  bool send_all(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = send_some(s.data(), s.size());
      if (n <= 0) {
        return false;
      }
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  /// Reads exactly `n` bytes (fewer if the peer ends, an error comes or the timeout passes).
  std::string recv_exact(std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = recv_some(out.data() + got, n - got);
      if (r <= 0) {
        break;
      }
      got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    return out;
  }
  /// True when the next read is the clean end (TLS: close_notify).
  bool peer_closed() {
    char c = 0;
    return recv_some(&c, 1) == 0;
  }
  /// Ends this side's sending: close_notify on TLS, then the FIN; reading goes on.
  bool shut_write() {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      if (SSL_shutdown(ssl_) < 0) {
        return false;
      }
    }
    return ::shutdown(fd_, SHUT_WR) == 0;
  }
  /// Makes close() send a reset (SO_LINGER of 0) rather than a FIN.
  void reset_on_close() const {
    const linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  /// Closes the socket; on TLS without a close_notify, as a crashed peer would.
  void close() {
    kcp_.reset();
    SSL_free(std::exchange(ssl_, nullptr));
    if (fd_ >= 0) {
      ::close(std::exchange(fd_, -1));
    }
  }

 private:
  ssize_t failed(int r) {
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_ZERO_RETURN:
        return 0;
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        break;
      case SSL_ERROR_SYSCALL:
        errno = errno != 0 ? errno : ECONNRESET;
        break;
      default:
        errno = EPROTO;
        break;
    }
    ERR_clear_error();
    return -1;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::unique_ptr<kcp_end> kcp_;
};

}  // namespace actnet::test
