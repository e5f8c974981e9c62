// stream_transport: a stream connection's side of the back end's events that are not the
// per-message path (that one is in line in event_loop.cpp): the peer's FIN, a hang-up while
// reading is paused, and the interest that follows the connection's state.
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/socket.hpp"
#include "guarded.hpp"

namespace actnet {

void detail::loop_core::paused_hangup(connection& c) {
  // Reading is paused, but the socket failed (a reset) or hung up both ways: reported without
  // reading (the kernel would report it again and again).
  std::error_code failure = pending_error(c.fd_);
  if (!failure) {
    if (c.peer_closed_) {
      schedule_close(c, make_error_code(errc::end_of_stream));
      return;
    }
    if (c.write_end_ == connection::write_end::shut) {
      // This side's FIN (shutdown_write) and then the peer's: its last bytes and its FIN wait
      // to be read at the resume. Level-triggered, the hang-up would be reported again and
      // again, so the socket leaves epoll until then (update_interest brings it back).
      if (!options_.edge_triggered && !c.unwatched_) {
        (void)backend_.unwatch(c.fd_);
        c.unwatched_ = true;
      }
      return;
    }
    failure = std::make_error_code(std::errc::connection_reset);
  }
  schedule_close(c, failure);
}

void detail::loop_core::peer_shut_down(connection& c) {
  // The peer sends no more but may still read: reading stops for good (in level-triggered
  // mode its interest goes; edge-triggered reads are skipped), and the handler decides when to
  // close; the default closes after the buffered output, with end_of_stream.
  if (const detail::byte_layer* layer = c.layer(); layer != nullptr && !c.peer_closed_) {
    if (const std::error_code unclean = layer->end_of_wire()) {
      schedule_close(c, unclean);  // TLS: a FIN without close_notify (truncation)
      return;
    }
  }
  c.peer_closed_ = true;
  const bool was_reading = !c.read_paused();
  c.set_read_paused(true);
  if (!detail::guarded(*this, "on_peer_shutdown", [&] { c.on_peer_shutdown(); })) {
    schedule_close(c, std::make_error_code(std::errc::state_not_recoverable));
  }
  if (c.state_ == connection::state::open && c.write_end_ == connection::write_end::shut) {
    schedule_close(c,
                   make_error_code(errc::end_of_stream));  // both ways are shut: nothing can pass
    return;
  }
  // Only a connection kept open needs its interest changed: one closed at once (the default,
  // with nothing to send) costs no epoll_ctl.
  if (was_reading && c.state_ == connection::state::open) {
    update_interest(c);
  }
}

void detail::loop_core::update_interest(connection& c) noexcept {
  // (On io_uring, output leaves through ring sends, never on "may send".)
  const detail::stream_interest want{c.state_ == connection::state::open && !c.read_paused(),
                                     c.writing_ && (c.path_ & connection::ring_sends) == 0};
  const io_key key = io_key::from_bits(key_of(c));
  if (c.dgram() != nullptr) {
    (void)backend_.change_datagram(c.fd_, key, want.receive);
    return;
  }
  if (c.unwatched_) [[unlikely]] {  // out of the back end since a hang-up while paused
    if (!want.receive) {
      return;
    }
    c.unwatched_ = false;
    if (const std::error_code ec = backend_.watch_stream(c.fd_, key, want)) {
      schedule_close(c, ec);
    }
    return;
  }
  // (Edge-triggered, a stream is registered for both for good: a paused one's reads are
  // skipped instead.)
  (void)backend_.change_stream(c.fd_, key, want);
}

}  // namespace actnet
