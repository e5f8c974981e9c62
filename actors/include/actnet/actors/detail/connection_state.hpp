// connection_state: what a connection keeps beyond the per-message fields, allocated only when
// it needs it: its datagram endpoint or byte layer, its timeouts. Not part of the documented API.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/byte_layer.hpp"
#include "actnet/reactor/timer_queue.hpp"

namespace actnet {
namespace detail {

/// Where a datagram connection's writes go: for a UDP socket actor the sender of the datagram
/// on_data is handling, for a UDP session its peer.
struct datagram_endpoint {
  sockaddr_storage peer{};
  socklen_t peer_length = 0;
  connection* socket = nullptr;         // a session: the socket actor that routes to it
  bool routes = false;                  // a socket actor that hands datagrams to sessions
  bool connected = false;               // a dialed (connected) socket: peer is fixed
  std::size_t listener = 0;             // a socket actor: its engine listener
  timer_clock::time_point last_seen{};  // a session: its latest datagram
  // io_uring: datagrams that completed after a pause_reading, before the receive's cancel took
  // effect (one batch at most), in order, with their senders: on_data gets them at the resume.
  struct held_datagram {
    std::vector<std::byte> bytes;
    sockaddr_storage from{};
    socklen_t from_length = 0;
  };
  std::vector<held_datagram> held;
};

class byte_layer;
struct kcp_state;

/// What a connection that is not a plain stream keeps: its datagram endpoint (UDP socket actors
/// and sessions) or its byte layer (detail/byte_layer.hpp).
struct transport_state {
  transport_state();
  transport_state(const transport_state&) = delete;
  transport_state& operator=(const transport_state&) = delete;
  ~transport_state();
  std::unique_ptr<datagram_endpoint> datagram;
  std::unique_ptr<byte_layer> layer;
  std::unique_ptr<kcp_state> kcp;  // a KCP conversation over the datagram endpoint
  bool layer_ended = false;        // encode_end has run
  // A layer with a handshake (TLS): on_open waits for it, and on_close runs only after on_open.
  bool handshaking = false;
  timer_id handshake_deadline = 0;
  // A dial's completion, told at the end of the handshake (or of the connection, if first).
  std::function<void(result<conn_ref>)> opened;
  // io_uring: wire bytes that completed while reading was paused, decoded at the resume.
  std::vector<std::byte> held_wire;
};

/// What a connection with timeouts or a bounded close keeps (allocated only for those).
struct conn_timing {
  timeouts limits;
  timer_clock::time_point last_read{};
  timer_clock::time_point last_write{};  // a byte went out, or output started to wait
  timer_id check = 0;                    // the pending timeout check
  timer_clock::time_point check_at{};    // when it runs
  timer_id drain = 0;                    // the pending drain deadline of close()
};

}  // namespace detail

inline detail::datagram_endpoint* connection::dgram() const noexcept {
  return xport_ == nullptr ? nullptr : xport_->datagram.get();
}

inline detail::byte_layer* connection::layer() const noexcept {
  return xport_ == nullptr ? nullptr : xport_->layer.get();
}

inline detail::kcp_state* connection::kcp() const noexcept {
  return xport_ == nullptr ? nullptr : xport_->kcp.get();
}

}  // namespace actnet
