// dialer: a loop's outgoing connects (engine::dial, connection::dial), their timeouts, and
// reconnecting with backoff (muduo's Connector).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <system_error>
#include <unordered_map>

#include "actnet/actors/detail/loop_core.hpp"
#include "actnet/balancer/balancer.hpp"
#include "actnet/reactor/address.hpp"
#include "actnet/reactor/timer_queue.hpp"
#include "actnet/reactor/unique_fd.hpp"
#include "actnet/result.hpp"

namespace actnet {

class connection;
class conn_ref;
class event_loop;
struct dial_options;
struct reconnect_policy;

namespace detail {

struct redial;

/// How long to wait before dial number `failures` + 1 of a reconnecting dial: the policy's
/// initial delay after a close or the first failure, times its multiplier for each failure
/// after that, at most its max_delay; then jittered to a point in [d/2, d] by `unit` (a
/// number in [0, 1)), so that clients that lost one server do not return in step.
std::chrono::microseconds reconnect_delay(const reconnect_policy& policy, std::size_t failures,
                                          double unit) noexcept;

/// One per loop, registered for io_kind::dial. Loop-thread only.
class dialer final : public io_job, public lifecycle_observer {
 public:
  using factory = std::function<std::unique_ptr<connection>()>;
  using completion = std::function<void(result<conn_ref>)>;

  explicit dialer(event_loop& loop);
  dialer(const dialer&) = delete;
  dialer& operator=(const dialer&) = delete;
  ~dialer();

  /// A non-blocking connect to `to`, watched by the back end, with options.timeout; `done`
  /// hears how it ended. `again` (dial_options::reconnect) dials again after a failure, and
  /// after the connection closes for a reason other than its own close() or the stop.
  void start(const address& to, factory make, const dial_options& options, completion done,
             balancer_lease lease, std::shared_ptr<redial> again);
  /// connection::dial: a dial from this loop whose connection lives here too (its reconnects
  /// as well).
  void start_here(const address& to, factory make, const dial_options& options, completion done);
  /// The back end's word that connect `id` finished; `failure` {} means: ask the socket.
  // Dial `id` ended, with `failure` or not; `settled`: the back end says how (io_uring's
  // connect), else the socket's pending error does.
  void connected(std::uint32_t id, std::error_code failure, bool settled = false);
  /// Ends every connect in progress with `reason` (the loop stops).
  void fail_all(std::error_code reason) noexcept;

  void on_io(io_key key, std::uint32_t events) override;  // a connect finished
  void on_connected(io_key key, int res) override;        // io_uring's connect finished
  /// A connection closed: one this loop dialed with reconnect is dialed again, unless the
  /// close was its own or the engine's.
  void closed(connection& c, std::error_code reason, bool stopping) noexcept override;
  void stopping() noexcept override;  // every connect in progress ends with engine_stopped

 private:
  struct pending {
    unique_fd fd;
    factory make;
    completion done;
    balancer_lease lease;
    transport kind = transport::tcp;
    address to;  // UDP: the connected socket's peer
    timer_id timer{};
    bool timed = false;
    std::shared_ptr<redial> again;
  };
  // A reconnecting dial failed (after_failure) or its connection closed: dial again after
  // reconnect_delay, unless max_attempts dials in a row have failed.
  void schedule_redial(std::shared_ptr<redial> again, bool after_failure);
  void report(const completion& done, result<conn_ref> outcome) noexcept;  // done, guarded
  void redial_after_close(std::uint64_t id, std::error_code reason, bool stopping,
                          bool never_opened);

  event_loop& loop_;
  std::unordered_map<std::uint32_t, pending> dials_;
  // Open connections whose dial reconnects, by slot-and-generation.
  std::unordered_map<std::uint64_t, std::shared_ptr<redial>> redials_;
  std::uint32_t next_id_ = 0;
  std::minstd_rand jitter_{std::random_device{}()};
};

}  // namespace detail
}  // namespace actnet
