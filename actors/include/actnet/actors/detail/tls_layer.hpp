// tls_layer: TLS (OpenSSL 3 through memory BIOs) as a byte layer, and the contexts that make
// its sessions: one per listener, shared by its loops and replaced by engine::reload_tls, and
// one per dial, which keeps the last session for the next connection. OpenSSL stays inside
// actors/src/tls.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "actnet/actors/detail/byte_layer.hpp"
#include "actnet/actors/tls.hpp"
#include "actnet/reactor/address.hpp"

namespace spdlog {
class logger;
}

namespace actnet {
class connection;
}

namespace actnet::detail {

/// An SSL_CTX made from tls_options (and, for a server, one per SNI entry). Thread-safe: the
/// loops make sessions from it at once.
class tls_context;

/// Handshakes done and failed through the contexts of one listener or dial (a reload keeps
/// counting in the same one). Thread-safe.
struct tls_counters {
  std::atomic<std::uint64_t> handshakes{0};
  std::atomic<std::uint64_t> failures{0};
};

/// Throws std::invalid_argument naming the option or file that is wrong (a file that cannot be
/// read, a key that does not match its certificate, a cipher list OpenSSL refuses).
std::shared_ptr<tls_context> make_tls_server(const tls_options& options,
                                             std::shared_ptr<spdlog::logger> log,
                                             std::shared_ptr<tls_counters> counters);
/// `host`: the dial URL's host, the default name to check and to send as SNI.
std::shared_ptr<tls_context> make_tls_client(const tls_options& options, std::string_view host,
                                             std::shared_ptr<spdlog::logger> log,
                                             std::shared_ptr<tls_counters> counters);

/// A TLS session over one connection, from `context`.
std::unique_ptr<byte_layer> make_tls_layer(const std::shared_ptr<tls_context>& context);

/// A url whose scheme asks for TLS (tls://, tls4://, tls6://, tls+unix://, without case): the
/// url with the plain scheme (tcp, tcp4, tcp6, unix) and the host as written. nullopt: another
/// scheme.
struct tls_url {
  std::string plain;
  std::string host;
};
std::optional<tls_url> parse_tls_url(std::string_view url);

/// `make`, each of whose connections reads and writes through a TLS client session to `to`
/// (options.server_name, else `to`'s IP address, is the name checked). Throws
/// std::invalid_argument as make_tls_client.
std::function<std::unique_ptr<connection>()> tls_client_factory(
    std::function<std::unique_ptr<connection>()> make, const tls_options& options,
    const address& to, std::shared_ptr<spdlog::logger> log);

/// A listener's context: read by its loops as each connection is accepted, replaced whole by
/// engine::reload_tls (the connections already open keep the one they were made with).
class tls_listener_context {
 public:
  explicit tls_listener_context(std::shared_ptr<tls_context> first) : current_(std::move(first)) {}
  [[nodiscard]] std::shared_ptr<tls_context> current() const {
    const std::lock_guard lock(mutex_);
    return current_;
  }
  void replace(std::shared_ptr<tls_context> next) {
    const std::lock_guard lock(mutex_);
    current_.swap(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<tls_context> current_;
};

}  // namespace actnet::detail
