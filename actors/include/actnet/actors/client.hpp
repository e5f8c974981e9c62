// client: outbound connections as actors, on loops of their own (gnet's Client).
#pragma once

#include <future>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>

#include "actnet/actors/engine.hpp"

namespace actnet {

/// An engine without listeners whose loops run on threads of their own: start(), then dial or
/// enroll connections of any connection actor class (the same classes servers use), stop().
/// Connections are spread over the loops by least connections unless the options say
/// otherwise. Everything but start() and stop() is thread-safe.
class client {
 public:
  /// Throws std::invalid_argument for a bad option, as engine's constructor.
  explicit client(engine_options options = default_options());
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  /// Stops (every connection is closed, on_close once each) and joins.
  ~client();

  /// Starts the loops on threads of their own; returns at once. Once: a second call throws
  /// std::logic_error.
  void start();
  /// Closes every connection (on_close(engine_stopped)), fails pending dials with
  /// errc::engine_stopped, joins the threads. Idempotent; the client cannot start again. From
  /// one of the client's own handlers it only asks the loops to stop (they cannot be joined
  /// from themselves); the destructor then joins them.
  void stop() noexcept;

  /// Connects to `url` (tcp, tcp4, tcp6, unix) without blocking, as engine::dial: `done` gets
  /// the connection's conn_ref after its on_open, or the error (the kernel's, timed_out,
  /// engine_stopped), once, on the connection's loop.
  template <class Conn, class... Args>
  void dial(std::string_view url, const dial_options& options, dial_done done, Args... args) {
    engine_.dial<Conn>(url, options, std::move(done), args...);
  }
  /// Connects and waits (gnet's Dial): the conn_ref once on_open has run, or the error. From a
  /// loop thread of this client it would wait for itself: it returns
  /// std::errc::resource_deadlock_would_occur instead; before start() or after stop(),
  /// errc::engine_stopped.
  template <class Conn, class... Args>
  result<conn_ref> dial_and_wait(std::string_view url, const dial_options& options = {},
                                 Args... args) {
    std::promise<result<conn_ref>> outcome;
    std::future<result<conn_ref>> ready = outcome.get_future();
    {
      // Under the lock, so that stop() cannot slip in between the check and the dial: a dial
      // sent before stop() is answered by the time stop() returns.
      const std::lock_guard lock(mutex_);
      if (const std::error_code ec = can_wait(); ec) {
        return ec;
      }
      engine_.dial<Conn>(
          url, options, [&outcome](result<conn_ref> r) { outcome.set_value(r); }, args...);
    }
    return ready.get();  // done runs exactly once
  }
  /// Takes over `fd`, a connected stream socket, as a connection of class Conn (gnet's
  /// Enroll); see engine::enroll.
  template <class Conn, class... Args>
  std::error_code enroll(int fd, Args... args) {
    return engine_.enroll<Conn>(fd, args...);
  }

  /// The engine underneath: its loops, counts, worker pool, broadcast.
  [[nodiscard]] engine& underlying() noexcept { return engine_; }
  [[nodiscard]] std::size_t count_connections() const noexcept {
    return engine_.count_connections();
  }
  /// Thread-safe: the loops' metrics, as engine::metrics().
  [[nodiscard]] engine_metrics metrics() const { return engine_.metrics(); }

  /// The defaults for a client: one loop, least-connections balancing.
  static engine_options default_options() {
    engine_options o;
    o.loops = 1;
    o.balancing = load_balancing::least_connections;
    return o;
  }

 private:
  [[nodiscard]] std::error_code can_wait() const noexcept;  // mutex_ held

  engine engine_;
  std::mutex mutex_;
  std::thread runner_;  // runs engine_.run(): loop 0 on it, the others on the engine's threads
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace actnet
