// The actnet error category: names for actnet::errc values.
#include "actnet/error.hpp"

#include <string>

namespace actnet {
namespace {

class category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "actnet"; }

  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::short_buffer:
        return "fewer bytes buffered than requested";
      case errc::capacity_exceeded:
        return "buffer capacity exceeded";
      case errc::end_of_stream:
        return "end of stream: the peer closed the connection";
      case errc::connection_closed:
        return "connection closed";
      case errc::engine_stopped:
        return "engine stopped";
      case errc::queue_full:
        return "queue full";
      case errc::handler_failed:
        return "the handler threw";
      case errc::idle_timeout:
        return "idle timeout: nothing read or written in time";
      case errc::read_timeout:
        return "read timeout: nothing read in time";
      case errc::write_timeout:
        return "write timeout: buffered output made no progress in time";
      case errc::drain_timeout:
        return "drain timeout: buffered output not sent in time";
      case errc::tls_handshake_failed:
        return "TLS handshake failed";
      case errc::tls_certificate_rejected:
        return "TLS: the peer's certificate was rejected";
      case errc::tls_handshake_timeout:
        return "TLS handshake timeout: not done in time";
      case errc::tls_truncated:
        return "TLS: the peer closed without close_notify (truncated)";
      case errc::tls_protocol_error:
        return "TLS protocol error";
      case errc::actor_stopped:
        return "actor stopped";
    }
    return "unknown actnet error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace actnet
