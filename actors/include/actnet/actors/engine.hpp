// engine: the server. N loop actors, its listeners, and how connections reach the loops.
#pragma once

#include <spdlog/common.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "actnet/actors/actor.hpp"
#include "actnet/actors/connection.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/actors/metrics.hpp"
#include "actnet/actors/tls.hpp"
#include "actnet/actors/worker_pool.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/defaults.hpp"
#include "actnet/reactor/address.hpp"
#include "actnet/reactor/kcp.hpp"
#include "actnet/reactor/socket.hpp"
#include "actnet/reactor/unique_fd.hpp"

namespace spdlog {
class logger;
}

namespace actnet {

namespace detail {
class dialer;
class loop_core;
class tls_listener_context;
struct tls_counters;
class accepting;
class datagram_sockets;
}  // namespace detail

class engine;

/// Engine settings. Every field has a documented default; engine's constructor rejects a bad
/// value with std::invalid_argument naming the option and the value.
/// The back end every loop of an engine runs on (the README's "Back ends" compares them).
enum class io_backend : std::uint8_t {
  epoll,     // readiness: epoll_wait, then a read or a send call per event
  io_uring,  // completions: one ring per loop, bytes received into the loop's buffer ring
  automatic  // io_uring where this kernel can run it, epoll otherwise (logged once)
};

struct engine_options {
  /// epoll (the default), io_uring, or automatic. Asking for io_uring where the kernel cannot
  /// run it (disabled by sysctl, refused by seccomp, a feature missing) fails at start with an
  /// error naming what is missing. On io_uring, edge_triggered does not apply.
  io_backend backend = io_backend::epoll;
  /// io_uring: each loop's provided-buffer ring, `uring_buffers` buffers (a power of two) of
  /// `uring_buffer_size` bytes, shared by the loop's streams: one completion carries at most
  /// one buffer, and an idle connection holds none. Mapped at start, touched as used.
  std::size_t uring_buffer_size = defaults::uring_buffer_size;
  unsigned uring_buffers = defaults::uring_buffers;
  /// Loop actors (threads); 0 means one per hardware thread.
  std::size_t loops = 0;
  /// false: loop 0 accepts and hands each connection to the loop the balancer picks (gnet's
  /// main reactor). true: every loop has its own SO_REUSEPORT listener and the kernel balances.
  bool reuse_port = false;
  /// Main-reactor mode: which loop gets each accepted connection (round-robin by default,
  /// source_addr_hash: one loop per client IP, least_connections: the loop holding fewest).
  load_balancing balancing = load_balancing::round_robin;
  /// A strategy of one's own instead: called once with the number of loops; overrides
  /// `balancing` when set. Its pick() runs on the accepting loop's thread.
  std::function<std::unique_ptr<balancer>(std::size_t loops)> custom_balancer;
  /// Edge-triggered epoll: each wake-up reads until the socket is empty or
  /// edge_triggered_chunk bytes were read (then the connection continues next iteration).
  bool edge_triggered = false;
  std::size_t edge_triggered_chunk = defaults::edge_triggered_chunk;
  /// Each loop's read buffer: the most one read takes.
  std::size_t read_buffer_size = defaults::read_buffer_size;
  /// Unconsumed inbound bytes a connection may hold before it is closed (capacity_exceeded).
  std::size_t inbound_cap = defaults::inbound_cap;
  /// Outbound: bytes kept in the ring before spilling to the list, and the hard cap (past it a
  /// write fails and the connection closes with capacity_exceeded, logged).
  std::size_t outbound_ring_threshold = defaults::elastic_ring_threshold;
  std::size_t outbound_cap = defaults::elastic_max_size;
  /// Outbound watermarks: a connection's on_writable_changed(false) runs when its buffered
  /// output reaches the high one, (true) when it falls back to the low one; by default it
  /// stops reading in between (backpressure). A high watermark at or above outbound_cap never
  /// fires: the cap closes first.
  std::size_t outbound_high_watermark = defaults::outbound_high_watermark;
  std::size_t outbound_low_watermark = defaults::outbound_low_watermark;
  /// Every stream and KCP connection's idle, read and write timeouts (set_timeouts changes
  /// one connection's). None by default.
  timeouts connection_timeouts{};
  /// close() sends the buffered output first: a connection whose output has not gone out
  /// after this long is cut off (reset) with on_close(drain_timeout). 0: no limit.
  std::chrono::milliseconds drain_timeout{defaults::drain_timeout_ms};
  /// stop(): the loops first deliver the messages already in their mailboxes (async writes
  /// included), then close every connection after its buffered output, for at most this long;
  /// what is still unsent then is dropped. on_close gets engine_stopped either way. 0: one try.
  std::chrono::milliseconds shutdown_timeout{defaults::shutdown_timeout_ms};
  /// Accepted connections the engine holds at once, over all its loops and listeners; one more
  /// is accepted and closed at once (logged once a second at most, counted in
  /// engine::refused_connections()). 0: no limit but the process's fd limit. Dialed and enrolled
  /// connections are not limited.
  std::size_t max_connections = 0;
  /// Before a loop blocks in epoll_wait it keeps polling without blocking for this long, so a
  /// request that comes within it is taken without the loop going to sleep and its sender
  /// paying for the wake-up (Netty's busy-wait strategy, bounded); between two polls of I/O it
  /// watches its mailbox for a microsecond, so mail is not held up by a system call in
  /// progress (I/O readiness may then be seen up to a microsecond later). It trades a core's idle
  /// time for latency and for the cost of sleeping and waking: for a loop that has its own core. 0
  /// (the default): no polling; at most one second.
  std::chrono::microseconds busy_poll{0};
  /// After an iteration that took mail from other threads, a loop watches its mailbox for up
  /// to this long before it sleeps, looking once a microsecond (no system call; I/O and timers
  /// wait for it): an answer or the next message that comes meanwhile is taken without the
  /// loop sleeping and its sender paying for the wake-up. Costs at most this much of a core
  /// per such iteration; a loop that gets no mail from other threads never lingers, and no
  /// loop lingers when the engine has more loops than CPUs to run them on (cpu_affinity's, or
  /// the process's), where it would spin on a core another loop waits for. 0: sleep at once;
  /// at most a millisecond. busy_poll, when set, polls in its place.
  std::chrono::microseconds mail_linger{defaults::mail_linger_us};
  /// The stall detector: a loop iteration whose handlers ran longer than this (a handler that
  /// blocks, or loops over far too much) is a stall, counted in loop_metrics::stalls and logged
  /// (at most once a second a loop) with how long it took and the class of the actor whose
  /// handler ran, as a watchdog thread saw it. The watchdog also names a loop still stuck after
  /// four thresholds, while it is stuck. 0: no detection and no watchdog thread.
  std::chrono::milliseconds stall_threshold{defaults::stall_threshold_ms};
  /// Counts each stream's bytes and system calls in loop_metrics (bytes_in, bytes_out, reads,
  /// writes). Off by default: it takes connections off the inlined per-message path, at a cost
  /// the README gives in instructions per message.
  bool count_io = false;
  /// Mailbox messages handled per loop iteration.
  std::size_t mailbox_budget = defaults::mailbox_budget;
  /// Messages a loop's mailbox may hold: past it, the sends users make (tell, async_write,
  /// post, ask, broadcast) return errc::queue_full and queue nothing, counted in
  /// event_loop::refused_messages(). Approximate: each sending thread looks at the count once
  /// every 256 messages (and at every message once it was full), so it overshoots by at most 256
  /// messages per sending thread. close(), wake(), replies to asks and offload results are
  /// never refused. 0: unbounded.
  std::size_t mailbox_cap = defaults::mailbox_cap;
  /// CPUs to pin the loop threads to: loop i runs on cpu_affinity[i % size()] (so {0, 1} with 4
  /// loops gives 0, 1, 0, 1). Empty (the default): no pinning. On epoll loop 0 runs on the
  /// thread that calls run(), which keeps the pinning afterwards. A CPU this process may not use
  /// is rejected.
  std::vector<int> cpu_affinity;
  /// Listener and connection socket options (TCP_NODELAY on by default).
  socket_options socket{};
  /// A loop whose last connection closed gives its memory back after this long without a new
  /// one (its slot table and event array, its thread's block cache, free heap pages to the
  /// OS); 0 never does. It
  /// runs on the loop's thread, between events, and takes about a millisecond. After a burst of
  /// connections, the server returns to its idle size.
  std::chrono::milliseconds idle_release{defaults::idle_release_ms};
  /// The worker pool (connection::offload): threads, 0 = one per hardware thread; they start
  /// with the first job. And how many jobs may wait before offload reports queue_full.
  std::size_t workers = 0;
  std::size_t worker_queue_cap = defaults::worker_queue_cap;
  /// Where this engine logs: this spdlog logger, or (null, the default) actnet's own: "actnet"
  /// on stderr, at the level ACTNET_LOG names, warnings and errors otherwise.
  std::shared_ptr<spdlog::logger> logger;
  /// This engine's log level. With no logger given, the engine logs through a copy of actnet's
  /// at this level, so other engines keep theirs; with one, that logger's level is set.
  std::optional<spdlog::level::level_enum> log_level;
};

/// Opt-in reconnection of a dialed connection (dial_options::reconnect): exponential backoff
/// with jitter. The n-th consecutive failed dial waits a random time in [d/2, d] before the
/// next, d = min(max_delay, initial_delay * multiplier^n); a connection that opened and then
/// closed is dialed again after about initial_delay.
struct reconnect_policy {
  std::chrono::milliseconds initial_delay{defaults::reconnect_initial_ms};
  std::chrono::milliseconds max_delay{defaults::reconnect_max_ms};
  double multiplier = 2.0;
  /// Consecutive failed dials after which it gives up; 0: never.
  std::size_t max_attempts = 0;
};

/// Settings of one outbound connection (engine::dial).
struct dial_options {
  /// A connect that has not completed by then fails with std::errc::timed_out; 0: no limit.
  std::chrono::milliseconds timeout{defaults::dial_timeout_ms};
  /// Set: the engine dials again, with backoff, after a failed dial and after the connection
  /// closes for any reason but its own close() / abort() or the engine stopping. Each
  /// connection is a new object of the class (its on_open runs again). `done` then hears of
  /// every attempt: each connection that opened and each failure, until max_attempts
  /// consecutive failures, a local close() or the engine's stop (engine_stopped, once).
  std::optional<reconnect_policy> reconnect;
  /// TLS over the connection (a tls:// url without it takes tls_options' defaults: the
  /// server's certificate checked against the system's CA store and the url's host). `done`
  /// then hears of the connection at the end of its handshake, and of a failed handshake as a
  /// failed dial (errc::tls_*).
  std::optional<tls_options> tls;
  /// KCP's tuning for a kcp:// dial (unset: kcp_options' defaults; only for kcp://).
  std::optional<kcp_options> kcp;
};

/// What a dial ends with: the new connection's address (on_open has run), or why it failed.
/// Runs on the connection's loop, once; or, when the engine stops first, with
/// errc::engine_stopped on the thread that stops it.
using dial_done = std::function<void(result<conn_ref>)>;

namespace detail {
/// A reconnecting dial (dial_options::reconnect): what each attempt needs, and how many have
/// failed in a row. Shared by the attempt in flight, the open connection or the retry timer,
/// one at a time, each on its loop's thread.
struct redial {
  address to;
  std::function<std::unique_ptr<connection>()> make;
  dial_options options;
  dial_done done;
  std::size_t failures = 0;
  std::size_t loop = SIZE_MAX;  // connection::dial: every attempt on this loop
};
}  // namespace detail

/// Settings of one listener (engine::listen's optional first argument).
struct listen_options {
  /// UDP only. false (the default): each loop's socket is one connection actor, whose on_data
  /// gets every datagram, write() replying to its sender. true: a connection actor per peer
  /// address (a session): on_open at its first datagram, on_data for each of its datagrams,
  /// write() to it, and on_close(timed_out) after session_idle_timeout without a datagram from
  /// it (or on close() / engine stop).
  bool udp_sessions = false;
  std::chrono::milliseconds session_idle_timeout{defaults::udp_session_idle_ms};
  /// Sessions per socket (so per loop); datagrams from further new peers are dropped, counted in
  /// event_loop::datagrams_dropped() and logged once a second at most.
  std::size_t max_sessions = defaults::udp_max_sessions;
  /// TLS: required by (and only for) tls:// tls4:// tls6:// tls+unix:// addresses. One
  /// context per listener, shared by its loops; engine::reload_tls replaces it.
  std::optional<tls_options> tls;
  /// KCP's tuning for a kcp:// kcp4:// kcp6:// address (unset: kcp_options' defaults; only for
  /// those). Each conversation (a peer address and a conversation id) is a connection actor;
  /// kcp_options::idle_timeout and max_conversations bound them (session_idle_timeout and
  /// max_sessions are UDP sessions').
  std::optional<kcp_options> kcp;
};

/// A server: listen() on one or more addresses, then run() until stop().
///
/// Threads: run() uses the calling thread for loop 0 and starts one thread per other loop. On
/// io_uring loop 0 has a thread of its own too, which run() waits for: tearing a ring down
/// leaves kernel work for the thread that made it, which would interrupt the caller's next
/// blocking call after run() with EINTR.
/// stop(), count_connections() and the loops' thread-safe members may be called from any
/// thread, including handlers. SIGPIPE is ignored process-wide from construction on, so a
/// write to a closed peer is an error code, not a signal.
class engine {
 public:
  using factory = std::function<std::unique_ptr<connection>()>;

  explicit engine(engine_options options = {});
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  /// Stops (if running elsewhere, waits for run() to return).
  ~engine();

  /// Listens on `url` with connections of class Conn (made with `args...`, copied). Returns
  /// the bound address (the real port when port 0 was asked). Before run() only; call it once
  /// per address, each with its own class (tcp, udp and unix may be mixed). Throws
  /// std::invalid_argument for a bad address or option and std::system_error when it cannot
  /// listen, both naming the address.
  ///
  /// UDP (udp://, udp4://, udp6://): every loop gets its own socket on the address
  /// (SO_REUSEPORT; the kernel spreads peers over them by address), read level-triggered in
  /// batches, whatever edge_triggered says. Each socket is a connection actor (on_open when the
  /// loop starts, on_close at stop or close(); not counted in count_connections), or, with
  /// listen_options::udp_sessions, hands each peer its own actor (counted). A multicast group
  /// address is joined (on socket.multicast_interface) and served by loop 0 alone, which gets
  /// each datagram once.
  ///
  /// TLS (tls://, tls4://, tls6://, tls+unix://, with listen_options::tls): TCP or a unix
  /// socket whose connections speak TLS. A connection opens (on_open) when its handshake is
  /// done; one whose handshake fails or times out never opens, and closes without on_close
  /// (counted in tls_stats_of, logged once a second at most). The returned address is the
  /// socket's (tcp:// or unix://).
  template <class Conn, class... Args>
  address listen(std::string_view url, Args... args) {
    return listen<Conn>(listen_options{}, url, args...);
  }
  template <class Conn, class... Args>
  address listen(const listen_options& options, std::string_view url, Args... args) {
    static_assert(std::is_base_of_v<connection, Conn>, "Conn must derive from actnet::connection");
    return listen(url, factory([args...] { return std::make_unique<Conn>(args...); }), options);
  }
  address listen(std::string_view url, factory make, const listen_options& options = {});

  /// Thread-safe: takes over `fd`, a connected stream socket made elsewhere (TCP or unix), as a
  /// connection of class Conn on the loop the balancer picks (gnet's Enroll). The fd is set
  /// non-blocking and close-on-exec, and TCP_NODELAY as the listeners' options say. Returns at
  /// once: an error (the fd is closed) when it is not a connected stream socket; otherwise
  /// on_open runs on that loop soon (once run() runs; if the engine stops first, the fd is
  /// closed and the message counted as dropped).
  template <class Conn, class... Args>
  std::error_code enroll(int fd, Args... args) {
    static_assert(std::is_base_of_v<connection, Conn>, "Conn must derive from actnet::connection");
    return enroll(fd, factory([args...] { return std::make_unique<Conn>(args...); }));
  }
  std::error_code enroll(int fd, factory make);

  /// Thread-safe: connects to `url` (tcp, tcp4, tcp6, unix, udp) without blocking, from the loop
  /// the balancer picks for that address (gnet's Register with an address). On success the
  /// socket becomes a connection of class Conn there (made with `args...`), with the listeners'
  /// socket options; `done` then gets its conn_ref. On failure `done` gets the error: the
  /// kernel's (connection_refused...), timed_out after options.timeout, or errc::engine_stopped
  /// (at once when the engine has been stopped: a `done` that dials again after every failure
  /// must stop at engine_stopped). A bad url throws std::invalid_argument at once.
  ///
  /// udp: a connected UDP socket, open at once (there is no handshake), read level-triggered
  /// like the listeners' sockets: on_data gets one datagram from the peer, write() sends one to
  /// it, remote_address() is the peer. A datagram the peer's host refuses (its port closed, an
  /// ICMP reply) closes the connection with std::errc::connection_refused; other send and
  /// receive errors drop that datagram, as for UDP listeners.
  ///
  /// tls:// tls4:// tls6:// tls+unix://: a TLS client (dial_options::tls).
  template <class Conn, class... Args>
  void dial(std::string_view url, const dial_options& options, dial_done done, Args... args) {
    static_assert(std::is_base_of_v<connection, Conn>, "Conn must derive from actnet::connection");
    dial(url, factory([args...] { return std::make_unique<Conn>(args...); }), options,
         std::move(done));
  }
  void dial(std::string_view url, factory make, const dial_options& options, dial_done done);
  void dial(const address& to, factory make, const dial_options& options, dial_done done);

  /// Thread-safe: the TLS listener `index` (listen() order) makes its new connections with
  /// `options` from now on; the open ones keep theirs. A bad file or option throws
  /// std::invalid_argument naming it, and the listener keeps its current settings;
  /// std::out_of_range for an index that is not a TLS listener.
  void reload_tls(std::size_t index, const tls_options& options);
  /// Handshakes done and failed on TLS listener `index` (std::out_of_range otherwise).
  [[nodiscard]] tls_stats tls_stats_of(std::size_t index) const;

  /// A duplicate of listener `index`'s socket (listen() order), close-on-exec, for
  /// handing the port over to another process or engine (gnet's Dup). It keeps listening after
  /// this engine stops. Thread-safe. Errors: invalid_argument for an unknown index,
  /// bad_file_descriptor once the listener is closed (at stop, or for UDP once loop 0's socket
  /// actor has closed), or dup's error.
  [[nodiscard]] result<unique_fd> dup_listener(std::size_t index) const;

  /// Blocks until stop() (or a handler's shutdown_engine()): on_boot, the loops, and at the end
  /// every connection closed (on_close once each), every thread joined, on_shutdown. An engine
  /// runs once: a second run() throws std::logic_error. stop() before run() makes run() return
  /// at once.
  void run();
  /// Thread-safe and idempotent: stop accepting, close every connection, return from run().
  void stop() noexcept;

  /// Thread-safe: runs `fn(conn)` as each open connection of class Conn (or derived from it)
  /// on every loop (event_loop::for_each, sent to each loop as one message; `fn` is copied
  /// once per loop). Broadcasts one thread sends reach each connection in the order they were
  /// sent, and in order with that thread's other messages to the same loop; a connection sees
  /// a broadcast if it is open on its loop when the message is handled there. errc::queue_full
  /// when a loop's mailbox was full (that loop's connections miss it; the others get it).
  template <class Conn, class Fn>
  std::error_code broadcast(const Fn& fn) const {
    static_assert(std::is_base_of_v<connection, Conn>,
                  "broadcast<Conn>: Conn must be a connection");
    std::error_code refused;
    for (const auto& l : loops_) {
      if (const std::error_code ec =
              l->post([fn](event_loop& loop) mutable { loop.for_each<Conn>(fn); })) {
        refused = ec;
      }
    }
    return refused;
  }

  /// Thread-safe: makes a service actor of class A (actor.hpp) from `args` (constructed here,
  /// on the calling thread) on the loop the balancer picks, and returns its address at once.
  /// Its on_start runs on that loop (when the engine runs, if it does not yet); messages sent
  /// before then wait for it. It lives until it stops (actor::stop, actor_ref::stop) or the
  /// engine does, which ends every actor after its connections (on_stop once each). Spawned
  /// once the engine has stopped, it never starts and messages to it are dropped.
  template <class A, class... Args>
  actor_ref<A> spawn(Args&&... args) {
    static_assert(std::is_base_of_v<actor, A>, "spawn<A>: A must derive from actnet::actor");
    balancer_assignment where = balancer_->assign(nullptr, 0);
    return spawn_here<A>(where.target, std::move(where.lease), std::forward<Args>(args)...);
  }
  /// As spawn, on loop `loop` (std::out_of_range beyond the last).
  template <class A, class... Args>
  actor_ref<A> spawn_on(std::size_t loop, Args&&... args) {
    static_assert(std::is_base_of_v<actor, A>, "spawn_on<A>: A must derive from actnet::actor");
    return spawn_here<A>(loops_.at(loop)->index(), {}, std::forward<Args>(args)...);
  }
  /// Thread-safe: a sharded service (seastar's sharded<S>): one service actor of class S per
  /// loop, each made from a copy of `args` (instance i on loop i), returned as a sharded_ref
  /// at once. See spawn for the life of each.
  template <class S, class... Args>
  sharded_ref<S> spawn_sharded(const Args&... args) {
    static_assert(std::is_base_of_v<actor, S>, "spawn_sharded<S>: S must derive from actor");
    auto shards = std::make_shared<std::vector<actor_ref<S>>>();
    shards->reserve(loops_.size());
    for (std::size_t i = 0; i < loops_.size(); ++i) {
      shards->push_back(spawn_on<S>(i, args...));
    }
    return sharded_ref<S>(std::move(shards));
  }
  /// Thread-safe: open connections over all loops.
  [[nodiscard]] std::size_t count_connections() const noexcept;
  /// Thread-safe: service actors living over all loops (spawned, not yet stopped).
  [[nodiscard]] std::size_t count_actors() const noexcept;
  /// Thread-safe, and without stopping a loop: each loop's metrics (connections by what became
  /// of them, bytes, mail, timers, time busy and waiting, stalls), their totals, and the worker
  /// queue's depth. See metrics.hpp and the README's "Metrics".
  [[nodiscard]] engine_metrics metrics() const;
  /// The metrics in Prometheus's text exposition format (0.0.4): each loop's series with a
  /// `loop` label and the totals as loop="all". Thread-safe. The README's "Metrics" lists them.
  [[nodiscard]] std::string metrics_text() const;
  /// Serves metrics_text() at GET /metrics on `url` (tcp, unix, or tls with options.tls): a
  /// listener like listen()'s, whose connections are bounded as any other (max_connections, a
  /// request head of 8 KiB, 60 s idle) and keep alive. Before run(); returns the bound address.
  address serve_metrics(std::string_view url, const listen_options& options = {});
  /// Thread-safe: connections accepted and closed at once: over max_connections, or for want
  /// of a file descriptor (EMFILE, ENFILE).
  [[nodiscard]] std::uint64_t refused_connections() const noexcept {
    return refused_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::size_t loop_count() const noexcept { return loops_.size(); }
  /// Loop `i`'s handle (i < loop_count()), valid as long as the engine: thread-safe to post
  /// to, ask and broadcast through from anywhere.
  [[nodiscard]] event_loop& loop(std::size_t i) const { return *loops_.at(i); }
  [[nodiscard]] const engine_options& options() const noexcept { return options_; }
  /// The balancer that hands accepted connections to loops (main-reactor mode), with its
  /// per-loop connection counts. Thread-safe to read.
  [[nodiscard]] const balancer& load_balancer() const noexcept { return *balancer_; }
  /// The bound addresses, in listen() order.
  [[nodiscard]] std::vector<address> addresses() const;

  /// Thread-safe: the worker-pool actor group (engine_options::workers). Stopped by run() once
  /// the loops have stopped: running jobs finish, the rest are cancelled.
  [[nodiscard]] worker_pool& workers() const noexcept { return *workers_; }
  /// Thread-safe: the logger this engine writes to (engine_options::logger and log_level).
  [[nodiscard]] spdlog::logger& logger() const noexcept { return *logger_; }

  /// Runs on the run() thread before the loops start.
  void on_boot(std::function<void(engine&)> fn) { on_boot_ = std::move(fn); }
  /// Runs on the run() thread after every loop has stopped.
  void on_shutdown(std::function<void(engine&)> fn) { on_shutdown_ = std::move(fn); }
  /// A ticker on loop 0: runs at once, then after each returned delay; a negative delay stops it.
  void on_tick(std::function<std::chrono::nanoseconds(engine&)> fn) { on_tick_ = std::move(fn); }

 private:
  friend class connection;  // (dial_here: the engine's logger for a TLS dial)
  friend class event_loop;
  friend class detail::loop_core;
  friend class detail::accepting;
  friend class detail::dialer;
  friend class detail::datagram_sockets;
  struct listener {
    address bound;
    unique_fd fd;  // main-reactor mode: loop 0 accepts on it
    factory make;
    address requested;  // as parsed (keeps tcp6's IPv6-only), for SO_REUSEPORT siblings
    listen_options options;
    // UDP: the other loops' sockets, opened with the first so that the SO_REUSEPORT group is
    // whole before any datagram arrives (a group that grows moves peers between sockets).
    std::vector<unique_fd> siblings;
    std::shared_ptr<detail::tls_listener_context> tls;  // a TLS listener's context
    std::shared_ptr<detail::tls_counters> tls_counts;
  };
  void tick();
  template <class A, class... Args>
  actor_ref<A> spawn_here(std::size_t loop, balancer_lease lease, Args&&... args) {
    std::unique_ptr<actor> made = std::make_unique<A>(std::forward<Args>(args)...);
    const detail::actor_cell_ref at = place(loop, std::move(lease), std::move(made));
    return {at.loop, at.cell, at.generation};
  }
  // Gives `made` its cell on loop `loop` and sends it there to start.
  detail::actor_cell_ref place(std::size_t loop, balancer_lease lease, std::unique_ptr<actor> made);
  // dial()'s checks (throws invalid_argument); the reconnect state when options ask for it.
  static std::shared_ptr<detail::redial> prepare_dial(const address& to, const factory& make,
                                                      const dial_options& options,
                                                      const dial_done& done);
  // dial() after the checks; `again`: a reconnecting dial's state (null otherwise).
  void post_dial(const address& to, factory make, const dial_options& options, dial_done done,
                 std::shared_ptr<detail::redial> again);
  void close_listeners() noexcept;
  void open_datagram_sockets(std::size_t index);  // run(): post each loop its socket actor
  // A UDP socket actor closed before stop (loop thread): loop 0's socket leaves the port.
  void socket_actor_closed(std::size_t index, std::size_t loop) noexcept;
  void pin_thread(std::size_t loop) const noexcept;  // cpu_affinity, on the loop's thread
  // max_connections: takes a place for an accepted connection (false: none left), and gives
  // one back when it closes or no loop took it.
  bool admit() noexcept {
    if (admitted_.fetch_add(1, std::memory_order_relaxed) < options_.max_connections) {
      return true;
    }
    admitted_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void release_admission() noexcept { admitted_.fetch_sub(1, std::memory_order_relaxed); }

  engine_options options_;
  std::shared_ptr<spdlog::logger> logger_;
  // Before the loops: destroyed after them, since connections and pending adoptions still
  // hold leases on it while the loops are torn down.
  std::unique_ptr<balancer> balancer_;
  std::vector<std::unique_ptr<event_loop>> loops_;
  // After the loops: destroyed (stopped, joined) first, since its jobs message the loops.
  std::unique_ptr<worker_pool> workers_;
  std::vector<listener> listeners_;
  mutable std::mutex listener_fds_;  // listeners_[i].fd once run() has started
  std::function<void(engine&)> on_boot_;
  std::function<void(engine&)> on_shutdown_;
  std::function<std::chrono::nanoseconds(engine&)> on_tick_;
  std::atomic<std::size_t> admitted_{0};   // max_connections: accepted and not yet closed
  std::atomic<std::uint64_t> refused_{0};  // refused_connections()
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_requested_{false};
  std::mutex run_mutex_;
  std::condition_variable run_done_;
  bool run_finished_ = true;
};

}  // namespace actnet
