// byte_layer: the place for a byte-transforming layer (TLS, KCP) between a stream socket and a
// connection's buffers: the socket carries wire bytes, the connection actor sees plain ones.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <system_error>

#include "actnet/actors/tls.hpp"
#include "actnet/buffers/elastic_buffer.hpp"
#include "actnet/result.hpp"

namespace actnet {

class connection;

namespace detail {

/// One connection's layer; the stream transport calls it on the loop thread only. Above it,
/// on_data, peek, next, read, write, writev, offload_write, the watermarks, timeouts and
/// half-close work as on a plain stream: they see plain bytes, and the outbound buffer (and so
/// outbound_buffered() and the watermarks) holds wire bytes waiting for the socket.
class byte_layer {
 public:
  byte_layer() = default;
  byte_layer(const byte_layer&) = delete;
  byte_layer& operator=(const byte_layer&) = delete;
  virtual ~byte_layer() = default;

  /// `wire` was read from the socket (empty: hand out plain bytes held back). Writes plain bytes
  /// into `plain` (at most its size) and returns how many; plain bytes that did not fit are held
  /// (holds_plain()) and a later call with empty `wire` gives them. Wire bytes the layer sends on
  /// its own (a handshake, an acknowledgement) are appended to `reply`. An error closes the
  /// connection with it.
  virtual result<std::size_t> decode(std::span<const std::byte> wire, std::span<std::byte> plain,
                                     elastic_buffer& reply) = 0;
  /// Whether plain bytes are held that did not fit the last decode's `plain`.
  [[nodiscard]] virtual bool holds_plain() const noexcept = 0;
  /// The connection writes `plain`: its wire form is appended to `wire`. An error (the outbound
  /// cap: capacity_exceeded) closes the connection with it.
  virtual std::error_code encode(std::span<const std::byte> plain, elastic_buffer& wire) = 0;
  /// This side writes no more (shutdown_write, close): the wire bytes that say so (TLS's
  /// close_notify), sent before the socket's FIN. Called at most once.
  virtual std::error_code encode_end(elastic_buffer& /*wire*/) { return {}; }

  // -- a layer with a handshake (TLS): the connection opens when it is done --

  /// The connection is installed: wire bytes this side sends first (a client's hello) are
  /// appended to `wire`. Called once, before any decode.
  virtual std::error_code start(elastic_buffer& /*wire*/) { return {}; }
  /// Whether the handshake is done: until then on_open waits, and so does every plain byte
  /// both ways (writes are held by the layer and encoded at the end of the handshake).
  [[nodiscard]] virtual bool ready() const noexcept { return true; }
  /// The peer said, in the layer's own terms, that it sends no more (TLS's close_notify): the
  /// connection goes on as after a FIN (on_peer_shutdown).
  [[nodiscard]] virtual bool peer_ended() const noexcept { return false; }
  /// The socket's FIN came: {} when that is a clean end (peer_ended() came first, or the layer
  /// has no such word), else the error to close with (TLS: truncation).
  [[nodiscard]] virtual std::error_code end_of_wire() const noexcept { return {}; }
  /// How long the handshake may take (0: no limit): past it the connection closes with
  /// errc::tls_handshake_timeout.
  [[nodiscard]] virtual std::chrono::milliseconds handshake_timeout() const noexcept {
    return std::chrono::milliseconds{0};
  }
  /// What connection::tls() reports (a TLS layer only).
  [[nodiscard]] virtual tls_info info() const { return {}; }
};

/// Makes the layer of one connection.
using layer_maker = std::function<std::unique_ptr<byte_layer>()>;

/// `make` (a listener's or a dial's factory), with each connection it makes reading and writing
/// through a layer from `layer`: the way a transport option (TLS, KCP) puts its layer in.
std::function<std::unique_ptr<connection>()> layered(
    std::function<std::unique_ptr<connection>()> make, layer_maker layer);

}  // namespace detail
}  // namespace actnet
