// connection: the base class of connection actors. Users subclass it and override the events;
// the loop that owns the socket creates one per connection and calls it on its own thread.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "actnet/actors/actor.hpp"
#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/detail/actor_base.hpp"
#include "actnet/actors/tls.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/buffers/byte_views.hpp"
#include "actnet/buffers/elastic_buffer.hpp"
#include "actnet/buffers/ring_buffer.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/address.hpp"
#include "actnet/reactor/kcp.hpp"
#include "actnet/reactor/socket.hpp"
#include "actnet/reactor/syscalls.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/result.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

namespace detail {
class dialer;
class datagram_sockets;
class loop_core;
}  // namespace detail

class engine;
class event_loop;
struct dial_options;

namespace detail {

// offload(): the result (or, empty, a skipped sequence number) travels to its loop.
void offload_result(const conn_ref& target, std::uint64_t seq, unique_function<void()> deliver);
// (run_offload: actor.hpp, included above)

struct datagram_endpoint;  // detail/connection_state.hpp
struct transport_state;
struct kcp_state;  // detail/kcp_state.hpp
struct conn_timing;
class byte_layer;

// Makes `c`, not yet open, read and write through `layer` (a stream only).
void attach_layer(connection& c, std::unique_ptr<byte_layer> layer);
// Makes `c`, not yet open, a KCP conversation `conv` over its datagrams (kcp_transport.cpp).
void attach_kcp(connection& c, std::uint32_t conv, const kcp_options& options);

}  // namespace detail

/// A stream or KCP connection's time limits (engine_options::timeouts, connection::set_timeouts);
/// 0 turns one off. Each closes the connection at once (buffered output dropped) with its
/// error as on_close's reason. They are checked to the millisecond, from the loop's clock.
struct timeouts {
  /// errc::idle_timeout: nothing read and nothing written for this long.
  std::chrono::milliseconds idle{0};
  /// errc::read_timeout: nothing read for this long (while reading is paused, the clock
  /// waits: it starts again at resume_reading).
  std::chrono::milliseconds read{0};
  /// errc::write_timeout: buffered output has waited this long without a byte going out (a
  /// peer that stopped reading; one that reads slowly keeps the connection).
  std::chrono::milliseconds write{0};

  [[nodiscard]] bool any() const noexcept {
    return idle.count() > 0 || read.count() > 0 || write.count() > 0;
  }
};

/// A connection actor. Every member function is loop-thread only (the loop that owns the
/// connection calls the events; call the rest from them, from timers, or through
/// conn_ref::tell) unless it says otherwise. Debug builds assert the thread.
///
/// Inbound bytes are what the peer sent and the handler has not consumed yet: the leftovers of
/// earlier reads (kept in a ring buffer) followed by this read's bytes (still in the loop's read
/// buffer, so consuming them is zero-copy). Outbound bytes the socket would not take at once wait
/// in an elastic buffer and go out as the socket drains.
///
/// Datagram (UDP) connections differ: on_data sees exactly one datagram, and what it leaves
/// unconsumed is dropped; each write sends one datagram (to the sender of the datagram being
/// handled, or to the session's peer) and is never buffered: one the kernel refuses (a full
/// send buffer: resource_unavailable_try_again) is dropped and its error returned, and the
/// connection stays open. An empty write sends an empty datagram; writev takes at most 64
/// parts (argument_list_too_long beyond). See engine::listen for socket actors and sessions.
class connection : public detail::actor_base, public detail::actor_awaits<connection> {
 public:
  connection();  // (out of line: what it keeps beyond the per-message fields is a detail)
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() override;

  // -- events: override what you need --

  /// The connection is open and registered; writes work from here on.
  virtual void on_open() {}
  /// Bytes arrived (or wake() was called): consume what you can with next / read / discard;
  /// whatever is left stays buffered for the next call.
  virtual void on_data() {}
  /// The connection is gone: {} after a local close(), errc::end_of_stream when the peer closed
  /// (after the output waiting for it was sent), errc::engine_stopped at shutdown,
  /// errc::capacity_exceeded at a buffer cap, errc::idle_timeout / read_timeout /
  /// write_timeout (timeouts), errc::drain_timeout when close() could not send the buffered
  /// output in time, or the socket's error (a failed send included). Runs exactly once; the fd
  /// is still open during it (for addresses), writes no longer work.
  virtual void on_close(std::error_code /*reason*/) {}
  /// The peer sent its FIN: it sends nothing more, but may still read. Reading has stopped
  /// (on_data has had every byte before the FIN). The default closes after the buffered output
  /// (on_close(end_of_stream)), which is what most protocols want. Override it to keep writing
  /// to a peer that half-closed (a reply still being computed: an offload, an ask to another
  /// loop), then close(); until then the connection stays open, so give it a timeout
  /// (set_timeouts) in case the peer is gone for good.
  virtual void on_peer_shutdown() { close(); }
  /// The outbound buffer rose to the high watermark (writable false) or fell back to the low
  /// one (true): engine_options::outbound_high_watermark / outbound_low_watermark. It may run
  /// inside write() or flush(). The default pauses reading while not writable, so a peer that
  /// does not read what it asked for is not read from either, and the kernel's buffers push
  /// back on it; override it to throttle something else instead (a proxy pauses its other
  /// side), or to keep reading.
  virtual void on_writable_changed(bool writable) {
    if (writable) {
      resume_reading();
    } else {
      pause_reading();
    }
  }

  // -- inbound --

  /// Bytes buffered and not yet consumed.
  [[nodiscard]] std::size_t inbound_buffered() const noexcept { return in_.size() + fresh_.size(); }
  /// The first `n` bytes without consuming them (zero-copy when they are contiguous, else two
  /// spans); short_buffer if fewer are buffered. Valid until the next inbound call.
  [[nodiscard]] result<byte_views> peek(std::size_t n) {
    assert_in_loop_thread();
    if (in_.empty() && n <= fresh_.size()) {  // the common case: all in this read
      return byte_views{fresh_.first(n), {}};
    }
    return peek_slow(n);
  }
  /// Every buffered byte without consuming it. (Past the inbound cap, where joining two reads
  /// would overflow the ring, only the older bytes; the connection then closes with
  /// capacity_exceeded after on_data.)
  [[nodiscard]] byte_views peek_all();
  /// Consumes `n` bytes and returns views of them; short_buffer (nothing consumed) if fewer are
  /// buffered. The views stay valid until on_data() returns.
  [[nodiscard]] result<byte_views> next(std::size_t n) {
    assert_in_loop_thread();
    if (in_.empty() && n <= fresh_.size()) {  // the common case: all in this read
      const std::span<const std::byte> taken = fresh_.first(n);
      fresh_ = fresh_.subspan(n);
      return byte_views{taken, {}};
    }
    return next_slow(n);
  }
  /// Consumes and returns every buffered byte. (Past the inbound cap: nothing, as next().)
  [[nodiscard]] byte_views next_all() {
    assert_in_loop_thread();
    if (in_.empty()) {
      return {std::exchange(fresh_, {}), {}};
    }
    return next_all_slow();
  }
  /// Drops `n` bytes; short_buffer (nothing dropped) if fewer are buffered.
  [[nodiscard]] std::error_code discard(std::size_t n) noexcept;
  /// Copies exactly out.size() bytes out and consumes them; short_buffer otherwise.
  [[nodiscard]] std::error_code read(std::span<std::byte> out) noexcept;

  // -- outbound --

  /// Writes `bytes`: straight to the socket when nothing is waiting, buffering what it does not
  /// take; behind the buffered bytes otherwise. Errors: connection_closed after close or
  /// shutdown_write, capacity_exceeded past the outbound cap (the connection is then closed with
  /// that error).
  std::error_code write(std::span<const std::byte> bytes) {
    assert_in_loop_thread();
    if ((path_ & (not_open | not_plain | ring_sends | metered)) == 0 && out_.empty() &&
        !bytes.empty()) [[likely]] {
      // Inline, the per-message path: one system call, and done when the socket takes it all.
      const ssize_t n = detail::sys_send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (static_cast<std::size_t>(n) == bytes.size()) [[likely]] {
        if (timing_ != nullptr) [[unlikely]] {
          note_sent();
        }
        return detail::no_error();
      }
      return write_partial(bytes, n);
    }
    return write_queued(bytes);
  }
  std::error_code write(std::string_view text) {
    return write(std::as_bytes(std::span(text.data(), text.size())));
  }
  /// Writes views from peek()/next() (one or two spans) with one system call.
  std::error_code write(const byte_views& bytes) {
    return bytes.second.empty() ? write(bytes.first) : write_two(bytes);
  }
  /// Writes several spans in order with one system call when nothing is waiting (a datagram
  /// connection: as one datagram).
  std::error_code writev(std::span<const std::span<const std::byte>> parts);
  /// Writes a pooled block; buffered without a copy when the socket does not take it all.
  std::error_code write(block payload);
  /// A datagram connection: sends `bytes` as one datagram to `to` (a udp address, any host).
  /// Errors: operation_not_supported on a stream, invalid_argument for an address that is not
  /// udp, connection_closed after close, else the kernel's (the datagram is then dropped).
  std::error_code send_to(const address& to, std::span<const std::byte> bytes);
  std::error_code send_to(const address& to, std::string_view text) {
    return send_to(to, std::as_bytes(std::span(text.data(), text.size())));
  }
  /// Tries to send what is buffered now; errors as write().
  std::error_code flush();
  /// Bytes waiting to be sent.
  [[nodiscard]] std::size_t outbound_buffered() const noexcept { return out_.size(); }
  /// false from the time the outbound buffer reaches the high watermark until it falls to the
  /// low one (see on_writable_changed).
  [[nodiscard]] bool writable() const noexcept { return !above_high_; }

  // -- blocking work --

  /// Runs `work()` on the engine's worker pool (engine::workers()) and then `then(result)` back
  /// on this loop, as this actor: `then` may use `this`. Results of one connection's offloads
  /// run in the order they were submitted, whatever the worker that finished first. If the
  /// connection has closed by then, `then` does not run and the result is dropped (counted in
  /// event_loop::dropped_messages()). Errors: errc::queue_full when the pool's queue is full
  /// (nothing runs; try later), engine_stopped once the engine stops, connection_closed after
  /// close. A `work` that throws is logged and its `then` skipped; a `then` that throws is
  /// logged; either way the others still run, in order. Jobs not started when the engine stops are
  /// cancelled: their `then` never runs.
  template <class Work, class Then>
  std::error_code offload(Work&& work, Then&& then);
  /// offload() whose result is bytes (std::string, std::vector<std::byte>, block, or anything
  /// write() takes) written to this connection, in order.
  template <class Work>
  std::error_code offload_write(Work&& work) {
    return offload(std::forward<Work>(work), [this](auto&& bytes) {
      (void)this->write(std::forward<decltype(bytes)>(bytes));
    });
  }

  // -- asking other actors --

  /// Asks connection `target` (of class Conn, or derived from it; on any loop, this one
  /// included) for a value without blocking: `fn(Conn&)` runs there as that actor, and
  /// `then(answer)` runs back here, as this actor (`then` may use `this`). The answer is a
  /// result<R> for an `fn` returning R (std::error_code for one returning void): the value, or
  /// connection_closed when the target had gone, or handler_failed when `fn` threw (logged).
  /// Questions one actor asks one loop are answered in the order they were asked. If this
  /// connection has closed when the answer comes, `then` does not run (the reply is dropped
  /// and counted, as a tell). Nothing is answered once the engine stops. errc::queue_full
  /// (nothing asked, `then` never runs) when the target loop's mailbox is full.
  template <class Conn, class Fn, class Then>
  std::error_code ask(const conn_ref& target, Fn&& fn, Then&& then) {
    static_assert(std::is_base_of_v<connection, Conn>, "ask<Conn>: Conn must be a connection");
    assert_in_loop_thread();
    return detail::send_question(
        *target.loop_, target.slot_, target.generation_,
        detail::make_question<Conn>(std::forward<Fn>(fn), std::forward<Then>(then),
                                    reply_address()));
  }
  /// Asks service actor `target` (actor.hpp): `fn(A&)` runs there as that actor and
  /// `then(answer)` back here, as this connection; errc::actor_stopped when it had stopped.
  /// Otherwise as above.
  template <class A, class Fn, class Then>
  std::error_code ask(const actor_ref<A>& target, Fn&& fn, Then&& then) {
    assert_in_loop_thread();
    return detail::ask_actor<A>(*target.loop_, target.cell_, target.generation_,
                                std::forward<Fn>(fn), std::forward<Then>(then), reply_address());
  }
  /// Asks loop `target` (seastar's submit_to): `fn(event_loop&)` runs on that loop and
  /// `then(answer)` back here, as this actor; as above.
  template <class Fn, class Then>
  std::error_code ask(event_loop& target, Fn&& fn, Then&& then) {
    assert_in_loop_thread();
    return detail::send_question(
        target, 0, 0,
        detail::make_question<event_loop>(std::forward<Fn>(fn), std::forward<Then>(then),
                                          reply_address()));
  }

  // The co_await forms of ask, offload and sleep, and watch(): detail::actor_awaits
  // (actor.hpp).
  using detail::actor_awaits<connection>::ask;
  using detail::actor_awaits<connection>::offload;

  // -- outbound connections --

  /// Connects to `url` from this connection's loop, as engine::dial (options and `done` the
  /// same, reconnects included), but the new connection of class Conn lives on this loop: the
  /// two may then hold pointers to each other (a proxy's two sides), each clearing its own in
  /// on_close. `done` runs on this loop. A bad url or option throws std::invalid_argument.
  template <class Conn, class... Args>
  void dial(std::string_view url, const dial_options& options,
            const std::function<void(result<conn_ref>)>& done, Args... args) {
    static_assert(std::is_base_of_v<connection, Conn>, "dial<Conn>: Conn must be a connection");
    dial_here(
        url, [args...] { return std::unique_ptr<connection>(std::make_unique<Conn>(args...)); },
        options, done);
  }

  // -- control --

  /// Closes after the buffered output is sent (reading stops at once). on_close({}) follows.
  void close() noexcept;
  /// Closes at once, dropping buffered output, with a reset (SO_LINGER 0) the peer sees.
  void abort() noexcept;
  /// Runs on_data() again soon (from the mailbox) with whatever is buffered.
  void wake() noexcept;
  /// Stops reading from the socket (what the peer sends waits in the kernel, which then pushes
  /// back on the peer) until resume_reading(); buffered inbound bytes stay, and wake() still
  /// delivers them. A reset from the peer still closes the connection. Not for UDP sessions,
  /// which share their socket (a no-op there).
  void pause_reading() noexcept;
  void resume_reading() noexcept;
  [[nodiscard]] bool reading_paused() const noexcept { return pause_asked_; }
  /// Whether the peer has sent its FIN (on_peer_shutdown has run).
  [[nodiscard]] bool peer_shut_down() const noexcept { return peer_closed_; }
  /// Half-closes this side: once the buffered output has gone, the peer gets a FIN
  /// (shutdown(SHUT_WR)) while reading goes on; the way a client marks the end of its request,
  /// or a proxy passes a FIN on. From now on writes fail with connection_closed. The connection
  /// stays open until close(), an error or a timeout, or the peer's FIN (the default
  /// on_peer_shutdown then closes it; with both directions shut, the connection closes with
  /// end_of_stream even when it is overridden; while reading is paused, the peer's last bytes
  /// and its FIN wait for the resume). The write timeout still watches the output
  /// waiting to go. Errors: connection_closed after close, operation_not_supported for a
  /// datagram connection; a shutdown the socket refuses closes the connection with its error.
  /// A second call does nothing.
  std::error_code shutdown_write();
  /// Whether shutdown_write() has been called (the FIN may still wait behind the output).
  [[nodiscard]] bool write_shut_down() const noexcept { return write_end_ != write_end::open; }
  /// This connection's time limits, replacing engine_options::timeouts (all 0: none). Counted
  /// from now.
  void set_timeouts(const timeouts& limits);
  [[nodiscard]] timeouts current_timeouts() const noexcept;
  /// Stops the whole engine, as engine::stop() (gnet's Shutdown action).
  void shutdown_engine() noexcept;
  /// Runs `fn(*this)` on this loop after `delay`, unless the connection has closed by then.
  /// (A timer's closure is heap-allocated; it is freed when the timer fires or is cancelled.)
  timer_id after(std::chrono::nanoseconds delay, unique_function<void(connection&)> fn);
  /// Cancels a timer from after(); false if it ran or was cancelled already.
  bool cancel_timer(timer_id id) noexcept;

  // -- identity and socket --

  /// The loop-thread check every loop-only member runs first: event_loop::assert_in_loop_thread
  /// of this connection's loop (debug builds only).
  void assert_in_loop_thread() const noexcept {
#ifndef NDEBUG
    loop_thread_check();
#endif
  }
  /// This connection's address, for other threads and actors. Thread-safe to use.
  [[nodiscard]] conn_ref ref() const noexcept {
    return {loop_, slot_, generation_};
  }
  [[nodiscard]] int fd() const noexcept {
    return fd_;
  }
  [[nodiscard]] bool is_open() const noexcept {
    return state_ == state::open;
  }
  /// A UDP socket actor or session (a KCP conversation is a stream: false).
  [[nodiscard]] bool is_datagram() const noexcept;
  /// A TLS connection's protocol version, cipher, ALPN protocol, SNI name and peer certificate
  /// subject; empty() on a plain one.
  [[nodiscard]] tls_info tls() const;
  [[nodiscard]] result<address> local_address() const;
  /// The peer. A UDP socket actor has one only during on_data (the datagram's sender);
  /// elsewhere not_connected.
  [[nodiscard]] result<address> remote_address() const;
  [[nodiscard]] event_loop& loop() const noexcept {
    return *loop_;
  }
  [[nodiscard]] engine& owner() const noexcept;

  std::error_code set_nodelay(bool on) noexcept {
    return actnet::set_nodelay(fd_, on);
  }
  std::error_code set_keepalive(const keepalive& k) noexcept {
    return actnet::set_keepalive(fd_, k);
  }
  std::error_code set_linger(std::optional<std::chrono::seconds> s) noexcept {
    return actnet::set_linger(fd_, s);
  }
  std::error_code set_recv_buffer(int bytes) noexcept {
    return actnet::set_recv_buffer(fd_, bytes);
  }
  std::error_code set_send_buffer(int bytes) noexcept {
    return actnet::set_send_buffer(fd_, bytes);
  }

 private:
  friend class event_loop;
  friend class detail::loop_core;
  friend class detail::dialer;
  friend class detail::datagram_sockets;
  friend class detail::actor_awaits<connection>;
  friend void detail::attach_layer(connection& c, std::unique_ptr<detail::byte_layer> layer);
  friend void detail::attach_kcp(connection& c, std::uint32_t conv, const kcp_options& options);
  enum class state : std::uint8_t { open, closing, closed };
  // What keeps a connection off the per-message path, whose one test is path_ == 0 (reading)
  // or path_ without paused == 0 (writing).
  enum path_bit : std::uint8_t {
    not_open = 1,    // state_ is closing or closed
    paused = 2,      // not reading: pause_reading(), or the peer's FIN
    not_plain = 4,   // xport_: a datagram or a layered stream
    ring_sends = 8,  // io_uring: writes leave through the loop's ring, never by a send call
    metered = 16,    // engine_options::count_io: bytes and system calls counted, off the path
  };
  void set_state(state s) noexcept {
    state_ = s;
    path_ = static_cast<std::uint8_t>(s == state::open ? path_ & ~not_open : path_ | not_open);
  }
  [[nodiscard]] bool read_paused() const noexcept {
    return (path_ & paused) != 0;
  }
  void set_read_paused(bool on) noexcept {
    path_ = static_cast<std::uint8_t>(on ? path_ | paused : path_ & ~paused);
  }
  // Output not yet sent: buffered, or (io_uring) in the ring's send in flight.
  [[nodiscard]] bool output_waiting() const noexcept;
  // io_uring: the buffered output's next part into the ring (one send in flight), or, when all
  // has gone, what drain_output does then.
  std::error_code drain_to_ring();
  // This side's writing: open, shut after the buffered output (shutdown_write), or shut.
  enum class write_end : std::uint8_t { open, draining, shut };

  // Moves this read's unconsumed bytes into the ring so the loop's buffer can be reused.
  [[nodiscard]] std::error_code keep_fresh() {
    return fresh_.empty() ? std::error_code() : keep_fresh_slow();
  }
  [[nodiscard]] std::error_code keep_fresh_slow();
  // Makes the first `n` inbound bytes sit in the ring (a copy of fresh bytes, when needed).
  [[nodiscard]] std::error_code gather(std::size_t n);
  [[nodiscard]] result<byte_views> peek_slow(std::size_t n);
  [[nodiscard]] result<byte_views> next_slow(std::size_t n);
  [[nodiscard]] byte_views next_all_slow();
  std::error_code write_two(const byte_views& bytes);
  // write() after a send that took `sent` bytes (-1: failed, errno says why).
  std::error_code write_partial(std::span<const std::byte> bytes, ssize_t sent);
  // write() when it cannot try the socket first: closed, output waiting, or nothing to write.
  std::error_code write_queued(std::span<const std::byte> bytes);
  void count_send(ssize_t sent) noexcept;  // engine_options::count_io: a send system call
  // io_uring: whether a write of `bytes` goes out now by a send call (large, nothing ahead).
  [[nodiscard]] bool sends_now(std::size_t bytes) const noexcept;
  // io_uring: `bytes` copied into the ring's send buffer, behind what is staged. False: they
  // do not fit (or a send is in flight), and nothing was taken. (In line, the per-message path:
  // defined in connection_output.cpp, its only user.)
  inline bool stage(std::span<const std::byte> bytes);
  // One datagram of `parts` to `to` (the endpoint's peer when null).
  std::error_code send_datagram(std::span<const std::span<const std::byte>> parts,
                                const sockaddr* to = nullptr, socklen_t to_length = 0);
  void dial_here(std::string_view url, std::function<std::unique_ptr<connection>()> make,
                 const dial_options& options, std::function<void(result<conn_ref>)> done);
  [[nodiscard]] transport kind() const noexcept;  // of the socket: tcp, udp or unix_stream
  // offload(): the next sequence number for a result (or an error), and the submission.
  [[nodiscard]] result<std::uint64_t> offload_begin() noexcept;
  std::error_code offload_submit(std::uint64_t seq, unique_function<void()> job);
  [[nodiscard]] detail::reply_address reply_address() const noexcept {
    return {loop_, slot_, generation_};
  }
  void loop_thread_check() const noexcept;  // event_loop::assert_in_loop_thread(), out of line
  std::error_code buffer_rest(std::span<const std::byte> rest);
  // In line in detail/connection_state.hpp, which defines what they point to.
  [[nodiscard]] detail::datagram_endpoint* dgram() const noexcept;  // UDP only
  [[nodiscard]] detail::byte_layer* layer() const noexcept;         // a layered stream only
  [[nodiscard]] detail::kcp_state* kcp() const noexcept;            // a KCP conversation only
  void set_datagram(std::unique_ptr<detail::datagram_endpoint> endpoint);
  // A KCP conversation: `parts` to the output, then as much of the output into KCP as its
  // window allows (drain_kcp); the output then waits for KCP's acks, which drain on.
  std::error_code write_kcp(std::span<const std::span<const std::byte>> parts);
  std::error_code drain_kcp();
  [[nodiscard]] bool kcp_unacknowledged() const noexcept;  // sent into KCP, not yet acked
  // A write on a connection that is not a plain stream: one datagram, or through the layer.
  std::error_code write_special(std::span<const std::span<const std::byte>> parts);
  // A layered stream: `parts`' wire form to the output, sent at once when nothing waited.
  std::error_code write_layered(std::span<const std::span<const std::byte>> parts);
  // The layer's own wire bytes (or a write's) were buffered: try the socket now when nothing
  // waited before, else leave them behind the waiting output.
  std::error_code send_buffered(bool was_empty);
  // shutdown_write or close on a layered stream: the layer's last wire bytes, once.
  std::error_code end_layer() noexcept;  // an error: the connection closed with it
  // Sends the buffered output until it has gone or the socket takes no more: the one drain of
  // flush() and of the loop's "may send". A socket error closes the connection and is returned.
  std::error_code drain_output();
  // After output was buffered (`was_empty`: none waited before): the write timeout's clock, the
  // high watermark, and EPOLLOUT.
  void after_buffering(bool was_empty);
  void start_write_clock();  // output waits now (timing_ set): the write timeout counts from here
  // After buffered output went out (`progressed`: some did): the low watermark.
  void after_draining(bool progressed);
  void writable_changed(bool writable);
  void note_sent() noexcept;  // a byte went out: the idle and write timeouts' clock
  void note_read() noexcept;  // a byte came in: the idle and read timeouts' clock
  detail::conn_timing& timing();
  void arm_timeouts(timer_clock::time_point at);
  void check_timeouts();
  void arm_drain_deadline();
  void cancel_timers() noexcept;  // at reap
  std::error_code fail(std::error_code ec) noexcept;
  void want_write(bool on) noexcept;
  void begin_closing() noexcept;  // stop reading, flush, then finish
  // The output has all gone: shutdown_write()'s FIN, if it waits for that.
  void output_drained() noexcept {
    if (write_end_ == write_end::draining) [[unlikely]] {
      (void)shut_writing();
    }
  }
  std::error_code shut_writing() noexcept;  // shutdown(SHUT_WR) now
  // on_close's reason once the output has gone: end_of_stream after the peer's FIN,
  // engine_stopped at stop, {} after close().
  [[nodiscard]] std::error_code closing_reason() const noexcept;

  event_loop* loop_ = nullptr;
  ring_buffer in_;
  elastic_buffer out_;
  std::span<const std::byte> fresh_;  // this read's unconsumed bytes, during on_data only
  int fd_ = -1;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
  // The state the per-message path reads has a byte each; the rest shares one, so that a
  // connection object is 128 bytes (the allocator's next size class is 160).
  state state_ = state::open;
  std::uint8_t path_ = 0;  // path_bit: 0 for an open plain stream that is reading
  write_end write_end_ = write_end::open;
  bool writing_ : 1 = false;      // level-triggered: EPOLLOUT armed
  bool peer_closed_ : 1 = false;  // the peer's FIN came: reading has stopped for good
  bool ring_views_ : 1 = false;   // next() returned views into the ring during this on_data
  bool pause_asked_ : 1 = false;  // pause_reading() without resume_reading() since
  bool above_high_ : 1 = false;   // outbound reached the high watermark, not yet back to the low
  bool unwatched_ : 1 = false;    // out of epoll: hung up both ways while paused (level-triggered)
  bool counted_ : 1 = false;  // in the loop's connection count (every connection but socket actors)
  bool admitted_ : 1 = false;  // accepted under engine_options::max_connections
  std::unique_ptr<detail::transport_state> xport_;  // null: a plain stream
  std::unique_ptr<detail::conn_timing> timing_;     // with timeouts or a pending close only
  balancer_lease lease_;  // counts this connection on the engine's balancer while it lives
};

template <class Work, class Then>
std::error_code connection::offload(Work&& work, Then&& then) {
  assert_in_loop_thread();
  const result<std::uint64_t> seq = offload_begin();
  if (!seq) {
    return seq.error();
  }
  // The worker runs `work`, then messages this connection's loop with the result; the loop
  // runs `then` in sequence order (event_loop::offload_arrived).
  return offload_submit(*seq, [self = ref(), n = *seq, w = std::forward<Work>(work),
                               t = std::forward<Then>(then)]() mutable {
    detail::offload_result(self, n, detail::run_offload(w, t));
  });
}

}  // namespace actnet
