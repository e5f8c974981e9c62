// tls: the settings of TLS listeners and dials (OpenSSL 3), and what a TLS connection reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "actnet/defaults.hpp"

namespace actnet {

/// The oldest protocol version a side accepts.
enum class tls_version : std::uint8_t { v1_2, v1_3 };

/// Whether a server asks its clients for a certificate (checked against tls_options::ca_file).
enum class client_auth : std::uint8_t {
  none,      // not asked for
  optional,  // asked for; a client without one is let in, one with a bad one is refused
  required,  // a client without a valid one is refused
};

/// A further certificate of a server, chosen by the name a client asks for (SNI).
struct tls_certificate {
  /// "api.example.com", or "*.example.com" for one label under it. Compared without case.
  std::string server_name;
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM: its private key
};

/// TLS on a listener (listen_options::tls, for tls:// tls4:// tls6:// tls+unix:// addresses)
/// or a dial (dial_options::tls; a tls:// dial without it takes these defaults). Files are read
/// when the listener or dial is made (and at engine::reload_tls): a bad one is refused then, with
/// an error naming it.
struct tls_options {
  /// The server's certificate chain and key (PEM files), used when no SNI entry matches; a
  /// client's own certificate, when its server asks for one (both empty: none).
  std::string cert_file;
  std::string key_file;
  /// Server: further certificates chosen by the name the client asks for.
  std::vector<tls_certificate> sni;
  /// PEM file of the certificate authorities to trust: a server's for client certificates, a
  /// client's for its server (empty: the system's store).
  std::string ca_file;
  tls_version min_version = tls_version::v1_2;
  /// OpenSSL's cipher list for TLS 1.2 (empty: actnet's default, forward-secret AEAD suites
  /// only) and the TLS 1.3 suites (empty: OpenSSL's default).
  std::string ciphers;
  std::string ciphersuites;
  /// ALPN protocols, most preferred first ("h2", "http/1.1"). A server picks the first of its
  /// own that the client offers (none in common: the handshake fails); a client offers these.
  std::vector<std::string> alpn;
  /// Server: whether clients must show a certificate.
  client_auth client_certificates = client_auth::none;
  /// Client: the server's certificate is checked (chain and name) unless this is false.
  bool verify_peer = true;
  /// Client: the name sent as SNI and checked against the certificate (empty: the host of the
  /// dial's URL; an IP address is checked as one and not sent as SNI).
  std::string server_name;
  /// A handshake not done by then closes the connection (errc::tls_handshake_timeout).
  std::chrono::milliseconds handshake_timeout{defaults::tls_handshake_timeout_ms};
  /// Server: TLS 1.3 tickets and a TLS 1.2 session cache; client: the session of the last
  /// connection of the same dial (reconnects included) offered again.
  bool session_resumption = true;
};

/// Handshakes of a TLS listener (engine::tls_stats_of): done, and failed (refused, timed out,
/// or closed before the end), since it was made.
struct tls_stats {
  std::uint64_t handshakes = 0;
  std::uint64_t failures = 0;
};

/// A TLS connection's negotiated state (connection::tls()); every field empty on a plain one.
struct tls_info {
  std::string version;       // "TLSv1.3"
  std::string cipher;        // "TLS_AES_256_GCM_SHA384"
  std::string alpn;          // the protocol both chose, or empty
  std::string server_name;   // the SNI name the client sent, or empty
  std::string peer_subject;  // the peer certificate's subject (RFC 2253), or empty
  bool resumed = false;      // the session was resumed

  [[nodiscard]] bool empty() const noexcept { return version.empty(); }
};

}  // namespace actnet
