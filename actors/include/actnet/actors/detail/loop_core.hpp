// loop_core: the inside of a loop actor: its back end, mailbox, timers, slot table, the stream
// per-message path and a connection's life (install, open, close schedule). The jobs above it
// (detail/loop_jobs.hpp) register with it; it knows them only by the interfaces below. Not part
// of the documented API: event_loop (event_loop.hpp) is.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "actnet/actors/conn_ref.hpp"
#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/io_key.hpp"
#include "actnet/actors/detail/local_queue.hpp"
#include "actnet/actors/detail/log_limiter.hpp"
#include "actnet/actors/detail/loop_backend.hpp"
#include "actnet/actors/detail/loop_meter.hpp"
#include "actnet/actors/detail/mailbox.hpp"
#include "actnet/actors/detail/message.hpp"
#include "actnet/actors/detail/slot_table.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/reactor/address.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/reactor/unique_fd.hpp"
#include "actnet/result.hpp"
#include "actnet/unique_function.hpp"

namespace actnet {

class connection;
class engine;
class event_loop;
struct engine_options;

namespace detail {

struct redial;

class loop_core;
// The loop whose thread this is (null on any other): its sends go to its local queue, and
// count in its messages_sent.
inline thread_local loop_core* this_thread_loop = nullptr;

struct backend_waker {
  loop_backend* target;
  void operator()() const noexcept { target->wake(); }
};

/// What a job registers for the sources of one io_kind it watches (listener, dial, datagram):
/// the core's dispatch hands it each of their events. Streams are the core's own: their events
/// are the per-message path, kept in line.
class io_job {
 public:
  virtual void on_io(io_key key, std::uint32_t events) = 0;
  /// A connection a completion back end accepted for the source `key` (a listener): the job
  /// owns `fd` now. By default it closes.
  virtual void on_accepted(io_key /*key*/, unique_fd /*fd*/) {}
  /// A connect a completion back end made for the source `key` ended: 0 or -errno.
  virtual void on_connected(io_key key, int res) {
    on_io(key, res < 0 ? io_event::error : io_event::writable);
  }
  /// A datagram a completion back end received for the source `key` (a datagram socket), with
  /// its sender; `truncated`: it was longer than the back end's buffer, and `bytes` is empty.
  virtual void on_datagram(io_key /*key*/, std::span<const std::byte> /*bytes*/,
                           const sockaddr* /*from*/, socklen_t /*from_length*/,
                           bool /*truncated*/) {}
  /// The source's receive failed: -errno.
  virtual void on_datagram_failed(io_key /*key*/, int /*res*/) {}
  /// A datagram the source sent through a completion back end failed: -errno.
  virtual void on_datagram_send_failed(io_key /*key*/, int /*res*/) {}
  /// c's reading resumed (on a completion back end): what was held for it.
  virtual void on_resumed(connection& /*c*/) {}

 protected:
  io_job() = default;
  io_job(const io_job&) = default;
  io_job& operator=(const io_job&) = default;
  ~io_job() = default;
};

/// What a job that keeps state per connection, or has work in flight, hears of the core's
/// lifecycle: only what it registered for (loop_core::observe), so that a close costs a call
/// per job that needs it.
class lifecycle_observer {
 public:
  /// A close is due; false puts it behind the others scheduled (a UDP socket actor waits for
  /// its sessions).
  virtual bool ready_to_close(connection& /*c*/, std::error_code /*reason*/) noexcept {
    return true;
  }
  /// After c's on_close, before it is freed.
  virtual void closed(connection& /*c*/, std::error_code /*reason*/, bool /*stopping*/) noexcept {}
  /// The loop stops: nothing new starts; what is in flight ends.
  virtual void stopping() noexcept {}
  /// The loop has stopped: every connection has closed (and at the loop's destruction).
  virtual void stopped() noexcept {}

  /// Whether the job may hold state for some connection: the core asks it of a close only
  /// then, so a close costs no call to a job that has nothing (a plain server's usual case).
  [[nodiscard]] bool tracking() const noexcept { return tracking_; }

 protected:
  bool tracking_ = false;  // kept by the job: true from its first state until it has none
  lifecycle_observer() = default;
  lifecycle_observer(const lifecycle_observer&) = default;
  lifecycle_observer& operator=(const lifecycle_observer&) = default;
  ~lifecycle_observer() = default;
};

/// The inside of one event_loop, which derives from it privately: the loop's own code, its
/// engine, and the jobs that are its friends reach these members; a user cannot.
// The mailbox keeps its producer-written flag on a cache line of its own: that padding is chosen.
class loop_core {  // NOLINT(clang-analyzer-optin.performance.Padding)
 public:
  // `self`: the event_loop being made of this core (bound now, used once it is made).
  loop_core(event_loop& self, engine& owner, std::size_t index, const engine_options& options);
  loop_core(const loop_core&) = delete;
  loop_core& operator=(const loop_core&) = delete;
  ~loop_core() = default;

  void send(detail::message&& m);  // thread-safe; unbounded (the engine's own messages)
  // Thread-safe: a user's message, refused with queue_full when the mailbox is full.
  [[nodiscard]] std::error_code send_bounded(detail::message&& m);
  [[nodiscard, gnu::cold]] std::error_code refuse_message() noexcept;  // counts, says queue_full
  // The local queue holds mailbox_cap messages: a handler that sends to its own loop without
  // end is refused as any other sender would be.
  [[nodiscard]] bool local_full() const noexcept { return local_mail_.size() >= local_cap_; }
  // Whether the calling thread is this loop's (then its sends are local).
  [[nodiscard]] bool on_own_thread() const noexcept { return this_thread_loop == this; }
  // A send from the loop's own thread: the message `make()` returns, made in its place in the
  // local queue; refused with queue_full past mailbox_cap when `bounded` (a user's send).
  template <class Make>
  [[gnu::always_inline]] std::error_code queue_local(Make&& make, bool bounded) {
    if (bounded && local_full()) [[unlikely]] {
      return refuse_message();
    }
    local_mail_.emplace_with(std::forward<Make>(make));
    meter_.messages_sent.add();
    return detail::no_error();
  }
  // post() from the loop's own thread, in line, with `closure` built into its message.
  template <class Closure>
  [[gnu::always_inline]] std::error_code post_local(Closure&& closure) {
    return queue_local(
        [&closure] {
          return detail::message(detail::message::kind::closure, std::forward<Closure>(closure));
        },
        true);
  }
  void post_fn(detail::message_fn fn);                             // the engine's own
  [[nodiscard]] std::error_code post_user(detail::message_fn fn);  // post(): bounded
  void run();                       // the loop: its phases, in order, until stop
  void shut_down() noexcept;        // at the loop's destruction: close, drain the mailbox
  [[nodiscard]] bool wait_phase();  // false: the back end failed (logged; the engine stops)
  void io_phase();
  void resume_phase();
  void mail_phase();
  void timer_phase();
  void stop_phase();
  // Waits for events: polls for up to busy_poll first, then blocks for at most `timeout` ms
  // (-1: no limit; 0: does not block) unless the mailbox has mail. How many came.
  [[nodiscard]] result<std::size_t> wait_for_events(int timeout);
  void drain_stopped();  // after run(): fail or drop whatever is still in the mailbox
  // Hands up to `budget` messages of the local queue to `handle`, oldest first, each where it
  // lies (a handler may send more meanwhile); how many.
  template <class Handler>
  std::size_t drain_local(Handler&& handle, std::size_t budget) {
    std::size_t done = 0;
    while (done < budget && !local_mail_.empty()) {
      handle(std::move(local_mail_.front()));
      local_mail_.pop();
      ++done;
    }
    return done;
  }
  // Runs up to `budget` messages, the local queue's and the mailbox's in turns of a batch
  // each (the local queue's first), while `go_on()` says so (asked after each turn); how many.
  template <class GoOn>
  std::size_t run_mail(std::size_t budget, GoOn&& go_on);
  void handle(detail::message&& m) noexcept;  // guarded: what a handler throws is logged
  void handle_unguarded(detail::message&& m);
  void run_timers(timer_clock::time_point now);
  // Makes the connection (`make` may throw: logged, the fd closed) and registers it.
  void adopt(unique_fd fd, const std::function<std::unique_ptr<connection>()>& make,
             balancer_lease lease, bool admitted = false);
  std::unique_ptr<connection> make_connection(
      const std::function<std::unique_ptr<connection>()>& make);  // null (logged) on failure
  // How install() registers a connection's fd with the back end: as a stream, as a datagram
  // socket (a UDP socket actor, a dialed UDP socket), or not (a UDP session shares its socket).
  enum class watch : std::uint8_t { stream, datagram, none };
  // Gives `c` a slot and registers fd with the back end as `how`. Null (logged, fd left open)
  // on failure.
  connection* install(std::unique_ptr<connection> c, int fd, watch how, bool counted);
  void open(connection& c);  // on_open (a layer with a handshake: once it is done)
  // A layered stream's handshake (TLS): begun at open, with its deadline; done, on_open and
  // the dial's completion; ended by a close first, the completion told why (no on_close).
  void begin_handshake(connection& c, detail::byte_layer& layer);
  void handshake_done(connection& c);
  void handshake_ended(connection& c, std::error_code reason) noexcept;
  // A dial's completion that waits for the connection's handshake (false: none to wait for).
  static bool defer_opened(connection& c, std::function<void(result<conn_ref>)>& done);
  // Whether c is in its layer's handshake (not open yet; closed in it: never opened).
  static bool handshaking(const connection& c) noexcept;
  // The job that watches sources of `kind` (not stream): it gets their events.
  void handle_kind(io_kind kind, io_job& handler) noexcept {
    handlers_.at(static_cast<std::size_t>(kind)) = &handler;
  }
  // What a job hears (in the order the jobs registered): whether a close may run now, each
  // close, the stop.
  enum hears : std::uint8_t { close_gate = 1, closes = 2, stop = 4 };
  void observe(lifecycle_observer& observer, std::uint8_t what);
  // An I/O event for the source `key` names: a stream's in line, the others' to their job.
  void dispatch(detail::io_key key, std::uint32_t events);
  void on_io(connection& c, std::uint32_t events);
  void paused_hangup(connection& c);             // a paused connection's socket failed or hung up
  void peer_shut_down(connection& c);            // the peer's FIN: on_peer_shutdown
  void update_interest(connection& c) noexcept;  // readable unless paused, writable if writing
  void read_from(connection& c);                 // a stream is readable: read_plain or read_layered
  template <bool Metered>
  [[gnu::always_inline]] void read_plain(
      connection& c);                // a plain stream: the per-message path, in line
  void read_layered(connection& c);  // a stream with a byte layer
  [[nodiscard]] bool make_plain_buffer(connection& c);  // a layer's, at its first use
  // The io_uring back end's completions, handed on as the epoll back end's events are:
  // readiness to dispatch(), a stream's bytes to received(), its receive's end (0: the FIN,
  // otherwise -errno) to receive_ended(). streams_only: while stopping.
  struct completions {
    loop_core& core;
    bool streams_only = false;
    void operator()(io_key key, std::uint32_t events) const;
    void received(io_key key, std::span<const std::byte> bytes) const;
    void receive_ended(io_key key, int res) const;
    void sent(io_key key, int res) const;
    void accepted(io_key key, int fd) const;
    void connected(io_key key, int res) const;
    void datagram(io_key key, std::span<const std::byte> bytes, const sockaddr* from,
                  socklen_t from_length, bool truncated) const;
    void datagram_failed(io_key key, int res) const;
    void datagram_send_failed(io_key key, int res) const;
  };
  // io_uring: c's output goes out through the ring before the next wait (flush_ring_sends).
  void queue_ring_send(connection& c);
  void flush_ring_sends();
  void sent(io_key key, int res);  // a ring send ended: the next part, or the end of output
  void received(io_key key, std::span<const std::byte> bytes);  // the per-message path
  void received_slow(connection& c, std::span<const std::byte> bytes);
  void receive_ended(io_key key, int res);
  // Bytes that completed for a connection whose reading is paused: kept for the resume.
  void hold(connection& c, std::span<const std::byte> bytes);
  void read_held(connection& c);  // io_uring: at the resume, what was held
  // The read loop of every stream: take(n) hands on the n bytes read into the read buffer.
  // Metered: engine_options::count_io counts the reads and their bytes.
  template <bool Metered, class Take>
  void read_stream(connection& c, Take&& take);
  // Decodes `wire` (empty: what the layer holds) and delivers the plain bytes; false when c
  // closed or paused reading.
  bool decode_and_deliver(connection& c, std::span<const std::byte> wire);
  void deliver(connection& c);      // on_data, then keep the unconsumed bytes
  void deliver_now(connection& c);  // deliver(), out of line (for the datagram side)
  // c closes with `reason` at the next reap, between handlers (its state is closed from now).
  void schedule_close(connection& c, std::error_code reason) noexcept {
    schedule_close(c, reason, cause_of(reason));
  }
  void schedule_close(connection& c, std::error_code reason, close_cause cause) noexcept;
  void reap() noexcept {  // run scheduled closes
    if (!scheduled_closes_.empty()) [[unlikely]] {
      reap_scheduled();
    }
  }
  void reap_scheduled() noexcept;
  // Frees the ring blocks that on_data calls retired: none of their views outlives its on_data,
  // so at the end of each phase that runs on_data.
  void release_retired() noexcept {
    if (!retired_.empty()) [[unlikely]] {
      release_retired_blocks();
    }
  }
  void release_retired_blocks() noexcept;
  void close_all(std::error_code reason) noexcept;
  // stop() with a shutdown_timeout: runs what is in the mailbox, then closes each connection
  // after its buffered output, until `deadline`.
  void drain_for_stop(timer_clock::time_point deadline);
  void schedule_idle_release();
  void release_idle_memory() noexcept;
  // Metrics: the actor whose handler runs next (for the stall reports), the end of an
  // iteration's busy part and the start of its wait (`now`: the steady clock's ns), the
  // wake-up after it, and a stall's report.
  void note_running(const actor_base& c) noexcept {
    // Release (a plain store on x86-64): what made the actor happens before the watchdog's look.
    meter_.running.store(&c, std::memory_order_release);
  }
  void end_busy(std::int64_t now) noexcept;
  void begin_busy(std::int64_t now) noexcept;
  [[gnu::cold]] void report_stall(std::int64_t busy_ns) noexcept;
  // Frees the connections closed during the iteration that is ending, once the watchdog is
  // not looking (the loop_meter's busy_since_ns / inspecting handshake).
  [[gnu::cold]] void bury() noexcept;
  [[nodiscard]] loop_metrics read_metrics() const noexcept;  // any thread
  // run() enters this loop's thread (and leaves it): sends from it count as this loop's.
  void enter_thread(bool entering) noexcept;
  // The loop whose thread calls (null on other threads).
  [[nodiscard]] static event_loop* current() noexcept;
  [[nodiscard]] connection* find(std::uint32_t slot, std::uint32_t generation) const noexcept;
  // What c is registered with in the back end.
  [[nodiscard]] static std::uint64_t key_of(const connection& c) noexcept;
  // c's id where the loop keeps things by connection (offload order, reconnects).
  [[nodiscard]] static std::uint64_t id_of(const connection& c) noexcept;

  event_loop& self_;  // the event_loop this is the core of: what handlers are given
  engine& owner_;
  const engine_options& options_;
  std::size_t index_;
  std::atomic<std::thread::id> thread_id_{};
  detail::loop_backend backend_;
  mailbox<detail::message, detail::backend_waker> mailbox_;
  local_queue<detail::message> local_mail_;  // sends from the loop's own thread
  std::atomic<std::size_t> local_depth_{0};  // its size at the end of each busy part (metrics)
  // engine_options::mailbox_cap, the largest size_t for its 0 (unbounded): one comparison a
  // local send.
  std::size_t local_cap_;
  timer_queue timers_;
  // Its generations run on through releases, so a conn_ref names one connection even after
  // the table was released and grown again.
  // A connection keeps its own generation: the table holds a pointer a slot.
  struct generation_of {
    std::uint32_t operator()(const connection& c) const noexcept { return c.generation_; }
  };
  detail::slot_table<connection, generation_of> slots_;
  bool idle_release_pending_ = false;
  struct scheduled_close {
    connection* conn = nullptr;
    std::error_code reason;
    close_cause cause = close_cause::other;  // what the metrics count it as
  };
  std::vector<scheduled_close> scheduled_closes_;  // run by reap(), between handlers
  std::vector<conn_ref> continue_reading_;         // edge-triggered reads cut off by the chunk
  std::vector<conn_ref> ring_sends_;               // io_uring: output to send before the wait
  std::vector<conn_ref> flushing_;                 // (ring_sends_ while it is worked through)
  // The most one read takes (engine_options::read_buffer_size): a pointer and a size, one load
  // each on the per-message path.
  struct read_buffer {
    std::unique_ptr<std::byte[]> bytes;  // NOLINT(cppcoreguidelines-avoid-c-arrays)
    std::size_t length;
    [[nodiscard]] std::byte* data() const noexcept { return bytes.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return length; }
  };
  read_buffer read_buffer_;
  read_buffer plain_buffer_{nullptr, 0};       // a layer's decoded bytes (made at the first use)
  std::vector<std::span<std::byte>> retired_;  // ring blocks freed once on_data returns
  std::array<io_job*, 4> handlers_{};          // by io_kind: the jobs' (none for streams)
  // The jobs by what they hear.
  struct observers {
    std::array<lifecycle_observer*, 4> jobs{};
    std::size_t count = 0;
    void add(lifecycle_observer& o) { jobs.at(count++) = &o; }
  };
  observers close_gates_;
  observers close_observers_;
  observers stop_observers_;
  bool stopping_ = false;
  bool timers_read_ = false;  // timers_read_at_ is this iteration's timer-phase clock reading
  timer_clock::time_point timers_read_at_{};
  // The engine's buffer limits are the defaults a connection's buffers are made with.
  bool default_buffers_ = true;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> datagrams_dropped_{0};
  // Metrics (metrics.hpp): the loop's counters, this iteration's per-message tallies (folded
  // into them before each wait), and when the iteration's busy part and its wait began.
  loop_meter meter_;
  io_tally tally_;
  std::int64_t busy_began_ = 0;
  std::int64_t wait_began_ = 0;
  std::int64_t stall_threshold_ns_ = 0;
  std::int64_t mail_linger_ns_ = 0;  // engine_options::mail_linger
  bool took_mail_ = false;           // this iteration took mail from the mailbox (not local)
  log_limiter stall_log_;
  std::vector<actor_base*> graveyard_;  // closed or stopped this iteration, freed by bury()
};

}  // namespace detail
}  // namespace actnet
