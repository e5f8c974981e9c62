// datagram_sockets: a loop's UDP side: each listener's socket actor, the datagrams read from
// it in batches, and the sessions they are routed to (one connection actor per peer).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/detail/log_limiter.hpp"
#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/reactor/unique_fd.hpp"

namespace actnet {

class connection;
class event_loop;

namespace detail {

struct peer_key;
class udp_router;

/// One per loop, registered for io_kind::datagram. Loop-thread only.
class datagram_sockets final : public io_job, public lifecycle_observer {
 public:
  explicit datagram_sockets(event_loop& loop);

  /// This loop's socket for UDP listener `listener`: a socket actor of the listener's class,
  /// or, with udp_sessions, a router that makes a session per peer.
  void open(std::size_t listener, unique_fd fd);
  /// Datagrams wait on a socket actor's (or a dialed UDP connection's) socket: a bounded batch
  /// of them, each handed whole to on_data.
  void readable(connection& socket);
  void on_io(io_key key, std::uint32_t events) override;  // a socket actor's socket is readable
  // io_uring: a datagram with its sender, a receive that failed, and the resume of a socket
  // actor that was paused with datagrams held.
  void on_datagram(io_key key, std::span<const std::byte> bytes, const sockaddr* from,
                   socklen_t from_length, bool truncated) override;
  void on_datagram_failed(io_key key, int res) override;
  // A reply that failed after write() returned: counted and logged as dropped, as write()'s
  // error would have been on epoll; a dialed socket refused by its peer closes.
  void on_datagram_send_failed(io_key key, int res) override;
  void on_resumed(connection& c) override;
  /// A close is due. false for a router with sessions: they write through its socket, so they
  /// are scheduled to close first, and it after them.
  [[nodiscard]] bool ready_to_close(connection& c, std::error_code reason) noexcept override;
  /// After a datagram connection's on_close: a session leaves its router; a socket actor whose
  /// socket the loop has closed leaves the port's SO_REUSEPORT group.
  void closed(connection& c, std::error_code reason, bool stopping) noexcept override;

  // -- KCP conversations (kcp_transport.cpp): one clock a loop drives them all --

  /// A datagram for KCP connection `c`: into its conversation (a bad one dropped and counted);
  /// then its output drained (acks may have opened the window), its received bytes to on_data,
  /// and its next update scheduled.
  void kcp_received(connection& c, std::span<const std::byte> datagram);
  /// c's received bytes to on_data, while it is open and not paused.
  void kcp_deliver(connection& c);
  /// c was written to: flushed once its handler is done (one flush for a batch of writes).
  void kcp_touch(connection& c);
  /// A dial's conversation is installed: its idle timeout (kcp_options::idle_timeout) starts.
  void kcp_dialed(connection& c);
  /// An entry of the clock: `who` is due for an update at `at` (kcp_clock_ms).
  struct kcp_due {
    std::uint64_t at = 0;
    conn_ref who;
  };

 private:
  // The dirty conversations flushed (a message to this loop, after the handlers that wrote).
  void kcp_flush();
  // c's next update put on the clock (or none: nothing to send, to ack or to wait for).
  void kcp_schedule(connection& c, std::uint64_t now);
  void kcp_tick();                   // the clock's timer: the updates that are due
  std::vector<kcp_due> kcp_heap_;    // earliest first (a heap); stale entries are skipped
  std::vector<conn_ref> kcp_dirty_;  // written to since their last flush
  timer_id kcp_timer_ = 0;
  std::uint64_t kcp_timer_at_ = 0;
  bool kcp_flush_posted_ = false;

  // null: logged. `conv`: a KCP listener's conversation (0 for UDP).
  connection* open_session(udp_router& router, const peer_key& key, std::uint32_t conv);
  // One datagram read from c's socket (its sender in c's endpoint): to c's on_data, or to its
  // session's. false: c closed.
  bool hand_on(connection& c, std::span<const std::byte> datagram);
  // A socket actor of this loop's for `key` that reads its own socket (not a session).
  connection* reader(io_key key);
  // Closes `session` (timed_out) once it has heard nothing for idle_limit; looks in `wait`.
  void watch_idle(conn_ref session, std::chrono::nanoseconds wait);
  // A session's session_idle_timeout, a KCP conversation's kcp_options::idle_timeout.
  [[nodiscard]] std::chrono::nanoseconds idle_limit(const connection& c) const;
  void note_dropped(const char* why);  // counted; logged once a second at most

  event_loop& loop_;
  log_limiter dropped_;
};

}  // namespace detail
}  // namespace actnet
