// The stream transports a behaviour test runs over (TCP, TLS, and KCP where the case makes
// sense for it), so one test body covers them all: the server's listener for each, and its
// clients' ends (stream_end), with the test certificates made once per process.
#pragma once

#include <openssl/ssl.h>

#include <actnet/actors/engine.hpp>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "actors/kcp_test_util.hpp"
#include "actors/stream_end.hpp"
#include "actors/test_util.hpp"
#include "actors/tls_certs.hpp"

namespace actnet::test {

/// KCP (fast mode) opens a conversation at the client's first data and has no end of stream:
/// only cases where the client speaks first and nothing waits for the server's close run on it.
enum class over : std::uint8_t { tcp, tls, kcp };

inline const char* name_of(over o) {
  return o == over::tls ? "tls" : o == over::kcp ? "kcp" : "tcp";
}
inline void PrintTo(over o, std::ostream* out) {  // names the parameter in gtest's output
  *out << name_of(o);
}

/// A CA, a server certificate for localhost it signs, and a client context that trusts it.
struct tls_setup {
  test_pki pki;
  test_pki::files server = pki.issue("server", "localhost", {"localhost"});
  tls_client_context client{pki.ca_file()};
};
inline tls_setup& shared_tls() {
  static tls_setup setup;
  return setup;
}

/// Where a test server listens, and the client context its clients shake hands with (null:
/// plain TCP), or that it is KCP.
struct target {
  address at;
  SSL_CTX* tls = nullptr;
  bool kcp = false;
};

/// Listens for `Conn` (made with `args`) on 127.0.0.1 over `o`.
template <class Conn, class... Args>
target listen_over(engine& e, over o, Args&&... args) {
  if (o == over::tcp) {
    return {e.listen<Conn>("tcp://127.0.0.1:0", std::forward<Args>(args)...), nullptr};
  }
  if (o == over::kcp) {
    listen_options lo;
    lo.kcp = kcp_mode(true);
    return {e.listen<Conn>(lo, "kcp://127.0.0.1:0", std::forward<Args>(args)...), nullptr, true};
  }
  listen_options lo;
  lo.tls = tls_options{};
  lo.tls->cert_file = shared_tls().server.cert;
  lo.tls->key_file = shared_tls().server.key;
  return {e.listen<Conn>(lo, "tls://127.0.0.1:0", std::forward<Args>(args)...),
          shared_tls().client.get()};
}

/// A blocking client end connected to `t`, its handshake done on TLS; !ok() on failure.
inline stream_end open_end(const target& t) {
  if (t.kcp) {
    return stream_end(std::make_unique<kcp_end>(t.at));
  }
  return stream_end(connect_to(t.at), t.tls);
}

/// Reads until the peer's clean end (TLS: its close_notify), an error or the socket's receive
/// timeout; what came.
inline std::string read_to_end(stream_end& end) {
  std::string all;
  char chunk[65536];
  for (;;) {
    const ssize_t n = end.recv_some(chunk, sizeof chunk);
    if (n <= 0) {
      return all;
    }
    all.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace actnet::test
