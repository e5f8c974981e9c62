// layered_stream: a stream connection whose bytes pass through a byte layer (TLS, KCP): wire
// bytes from the socket decoded for on_data, plain writes encoded into the outbound buffer.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <system_error>
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/byte_layer.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/detail/kcp_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"
#include "guarded.hpp"

namespace actnet {

namespace detail {

transport_state::transport_state() = default;
transport_state::~transport_state() = default;

void attach_layer(connection& c, std::unique_ptr<byte_layer> layer) {
  if (c.xport_ == nullptr) {
    c.xport_ = std::make_unique<transport_state>();
    c.path_ |= connection::not_plain;
  }
  c.xport_->layer = std::move(layer);
}

std::function<std::unique_ptr<connection>()> layered(
    std::function<std::unique_ptr<connection>()> make, layer_maker layer) {
  return [make = std::move(make), layer = std::move(layer)] {
    std::unique_ptr<connection> c = make();
    if (c != nullptr) {  // (none: the loop logs the factory's failure)
      attach_layer(*c, layer());
    }
    return c;
  };
}

}  // namespace detail

void connection::set_datagram(std::unique_ptr<detail::datagram_endpoint> endpoint) {
  if (xport_ == nullptr) {
    xport_ = std::make_unique<detail::transport_state>();
    path_ |= not_plain;
  }
  xport_->datagram = std::move(endpoint);
}

std::error_code connection::write_special(std::span<const std::span<const std::byte>> parts) {
  if (xport_->kcp != nullptr) {
    return write_kcp(parts);
  }
  if (xport_->datagram != nullptr) {
    return send_datagram(parts);
  }
  return write_layered(parts);
}

std::error_code connection::write_layered(std::span<const std::span<const std::byte>> parts) {
  const bool was_empty = out_.empty();
  for (const std::span<const std::byte> part : parts) {
    if (part.empty()) {
      continue;
    }
    std::error_code ec;
    if (!detail::guarded(*loop_, "a byte layer's encode",
                         [&] { ec = xport_->layer->encode(part, out_); })) {
      ec = std::make_error_code(std::errc::state_not_recoverable);
    }
    if (ec) {
      return fail(ec);
    }
  }
  return send_buffered(was_empty);
}

std::error_code connection::send_buffered(bool was_empty) {
  if (out_.empty()) {
    return {};
  }
  if (!was_empty) {
    after_buffering(false);  // behind the waiting output, which the loop's "may send" drains
    return {};
  }
  if (const std::error_code ec = drain_output()) {
    return ec;
  }
  if (!out_.empty() && state_ != state::closed) {
    after_buffering(true);  // the rest when the socket may send
  }
  return {};
}

std::error_code connection::end_layer() noexcept {
  if (xport_ == nullptr || xport_->layer == nullptr || xport_->layer_ended) {
    return {};
  }
  xport_->layer_ended = true;
  std::error_code ec;
  if (!detail::guarded(*loop_, "a byte layer's encode_end",
                       [&] { ec = xport_->layer->encode_end(out_); })) {
    ec = std::make_error_code(std::errc::state_not_recoverable);
  }
  return ec ? fail(ec) : std::error_code{};
}

void detail::loop_core::begin_handshake(connection& c, detail::byte_layer& layer) {
  c.xport_->handshaking = true;
  if (const std::chrono::milliseconds limit = layer.handshake_timeout(); limit.count() > 0) {
    try {
      c.xport_->handshake_deadline =
          timers_.add(timer_clock::now() + limit, [this, slot = c.slot_, gen = c.generation_] {
            connection* late = slots_.find(slot, gen);
            if (late != nullptr && late->xport_->handshaking) {
              late->xport_->handshake_deadline = 0;
              schedule_close(*late, make_error_code(errc::tls_handshake_timeout));
              reap();
            }
          });
    } catch (const std::bad_alloc&) {
      schedule_close(c, std::make_error_code(std::errc::not_enough_memory));
      return;
    }
  }
  std::error_code ec;
  if (!detail::guarded(*this, "a byte layer's start", [&] { ec = layer.start(c.out_); })) {
    ec = std::make_error_code(std::errc::state_not_recoverable);
  }
  if (ec) {
    schedule_close(c, ec);
    return;
  }
  (void)c.send_buffered(true);  // a client's hello
}

void detail::loop_core::handshake_done(connection& c) {
  c.xport_->handshaking = false;
  meter_.tls_handshakes.add();
  if (c.xport_->handshake_deadline != 0) {
    (void)timers_.cancel(std::exchange(c.xport_->handshake_deadline, 0));
  }
  open(c);
  if (auto told = std::exchange(c.xport_->opened, nullptr)) {
    const conn_ref self = c.ref();
    (void)detail::guarded(*this, "a dial's completion", [&] { told(self); });
  }
}

void detail::loop_core::handshake_ended(connection& c, std::error_code reason) noexcept {
  meter_.tls_failures.add();
  if (c.xport_->handshake_deadline != 0) {
    (void)timers_.cancel(std::exchange(c.xport_->handshake_deadline, 0));
  }
  if (auto told = std::exchange(c.xport_->opened, nullptr)) {
    (void)detail::guarded(*this, "a dial's completion", [&] { told(reason); });
  }
}

bool detail::loop_core::handshaking(const connection& c) noexcept {
  return c.xport_ != nullptr && c.xport_->handshaking;
}

bool detail::loop_core::defer_opened(connection& c, std::function<void(result<conn_ref>)>& done) {
  if (c.xport_ == nullptr || !c.xport_->handshaking) {  // (closed in it: told at the reap)
    return false;
  }
  c.xport_->opened = std::move(done);
  return true;
}

bool detail::loop_core::decode_and_deliver(connection& c, std::span<const std::byte> wire) {
  detail::byte_layer& layer = *c.xport_->layer;
  bool first = true;
  // Each round decodes what fits the plain buffer and hands it to on_data; the layer holds the
  // rest while reading is paused (resume_reading brings the connection back here).
  while (first || layer.holds_plain()) {
    first = false;
    const std::size_t output_before = c.out_.size();
    result<std::size_t> plain = std::size_t{0};
    if (!detail::guarded(*this, "a byte layer's decode", [&] {
          plain = layer.decode(wire, {plain_buffer_.data(), plain_buffer_.size()}, c.out_);
        })) {
      plain = std::make_error_code(std::errc::state_not_recoverable);
    }
    wire = {};
    const bool layer_wrote = c.out_.size() != output_before;
    if (plain && c.xport_->handshaking && layer.ready() && c.state_ == connection::state::open) {
      // on_open, before the first plain byte and before the layer's last handshake bytes go:
      // a peer gone by then closes a connection that opened, as a reset after accept does.
      handshake_done(c);
    }
    if (layer_wrote && c.state_ != connection::state::closed) {
      // The layer's own wire bytes (a handshake's, or an alert that says why it failed).
      (void)c.send_buffered(output_before == 0);
    }
    if (!plain) {
      schedule_close(c, plain.error());
      return false;
    }
    if (c.state_ != connection::state::open) {
      return false;
    }
    if (*plain > 0) {
      c.fresh_ = std::span<const std::byte>(plain_buffer_.data(), *plain);
      deliver_now(c);
    }
    if (c.state_ != connection::state::open || c.read_paused()) {
      return false;
    }
    if (layer.peer_ended() && !layer.holds_plain()) {
      peer_shut_down(c);  // close_notify: as a FIN
      return false;
    }
  }
  return true;
}

}  // namespace actnet
