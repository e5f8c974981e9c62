// dialer: connects in progress, their completion into connection actors, and the reconnect
// schedule.
#include "actnet/actors/detail/dialer.hpp"

#include <spdlog/logger.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "actnet/actors/connection.hpp"
#include "actnet/actors/detail/connection_state.hpp"
#include "actnet/actors/detail/datagram_sockets.hpp"
#include "actnet/actors/engine.hpp"
#include "actnet/actors/event_loop.hpp"
#include "actnet/error.hpp"
#include "actnet/reactor/socket.hpp"
#include "guarded.hpp"

namespace actnet::detail {

std::chrono::microseconds reconnect_delay(const reconnect_policy& policy, std::size_t failures,
                                          double unit) noexcept {
  auto delay_ms = static_cast<double>(policy.initial_delay.count());
  const auto longest = static_cast<double>(policy.max_delay.count());
  for (std::size_t i = 1; i < failures && delay_ms < longest; ++i) {
    delay_ms *= policy.multiplier;
  }
  delay_ms = std::min(delay_ms, longest);
  delay_ms *= 0.5 + 0.5 * unit;
  return std::chrono::microseconds(static_cast<std::int64_t>(delay_ms * 1000));
}

dialer::dialer(event_loop& loop) : loop_(loop) {
  loop.handle_kind(io_kind::dial, *this);
  loop.observe(*this, loop_core::closes | loop_core::stop);
}

dialer::~dialer() = default;

void dialer::on_io(io_key key, std::uint32_t /*events*/) {
  connected(key.slot(), {});
}

void dialer::on_connected(io_key key, int res) {
  connected(key.slot(), res < 0 ? std::error_code(-res, std::system_category()) : std::error_code{},
            true);
}

void dialer::closed(connection& c, std::error_code reason, bool stopping) noexcept {
  if (redials_.empty()) {
    return;
  }
  // A connection closed in its handshake (TLS) never opened: a failed dial, for the backoff and
  // max_attempts.
  const bool never_opened = loop_core::handshaking(c);
  (void)guarded(loop_, "scheduling a reconnect",
                [&] { redial_after_close(loop_core::id_of(c), reason, stopping, never_opened); });
}

void dialer::stopping() noexcept {
  fail_all(make_error_code(errc::engine_stopped));
}

void dialer::report(const completion& done, result<conn_ref> outcome) noexcept {
  (void)guarded(loop_, "a dial's completion", [&] { done(outcome); });
}

void dialer::start(const address& to, factory make, const dial_options& options, completion done,
                   balancer_lease lease, std::shared_ptr<redial> again) {
  const auto failed = [this, &done, &again](std::error_code ec) {
    report(done, ec);
    if (again) {
      schedule_redial(std::move(again), true);
    }
  };
  const int type = to.transport() == transport::udp ? SOCK_DGRAM : SOCK_STREAM;
  unique_fd fd(::socket(to.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    failed({errno, std::system_category()});
    return;
  }
  const socket_options& socket = loop_.options_.socket;
  if (to.transport() == transport::tcp && socket.tcp_nodelay) {
    (void)set_nodelay(fd.get(), true);
  }
  if (to.transport() == transport::tcp && socket.keepalive.enabled) {
    (void)set_keepalive(fd.get(), socket.keepalive);
  }
  // On io_uring a stream connects through the ring (no connect call, no poll for its end).
  const bool by_ring = loop_.backend_.is_uring() && type == SOCK_STREAM;
  int rc = -1;
  if (!by_ring) {
    do {
      rc = ::connect(fd.get(), to.data(), to.size());
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno != EINPROGRESS) {
      failed({errno, std::system_category()});  // refused at once, or a full unix backlog
      return;
    }
  }
  const std::uint32_t id = next_id_++;
  const int raw = fd.get();
  auto [it, inserted] =
      dials_.emplace(id, pending{std::move(fd), std::move(make), std::move(done), std::move(lease),
                                 to.transport(), to, timer_id{}, false, std::move(again)});
  if (rc == 0) {  // connected at once (unix sockets, usually)
    connected(id, {});
    return;
  }
  const io_key key(io_kind::dial, id);
  if (const std::error_code ec = by_ring ? loop_.backend_.uring().connect(
                                               raw, key, it->second.to.data(), it->second.to.size())
                                         : loop_.backend_.watch_connect(raw, key)) {
    connected(id, ec, true);
    return;
  }
  if (options.timeout.count() > 0) {
    it->second.timed = true;
    it->second.timer = loop_.after(options.timeout, [this, id] {
      connected(id, std::make_error_code(std::errc::timed_out));
      loop_.reap();
    });
  }
}

void dialer::start_here(const address& to, factory make, const dial_options& options,
                        completion done) {
  std::shared_ptr<redial> again = engine::prepare_dial(to, make, options, done);
  if (again) {
    again->loop = loop_.index();
  }
  if (loop_.stopping_) {
    done(make_error_code(errc::engine_stopped));
    return;
  }
  start(to, std::move(make), options, std::move(done),
        std::move(loop_.owner().balancer_->assign_to(loop_.index()).lease), std::move(again));
}

void dialer::connected(std::uint32_t id, std::error_code failure, bool settled) {
  const auto it = dials_.find(id);
  if (it == dials_.end()) {
    return;  // finished already (a late event or timer)
  }
  pending d = std::move(it->second);
  dials_.erase(it);
  (void)loop_.backend_.unwatch(d.fd.get());
  if (d.timed) {
    (void)loop_.cancel(d.timer);
  }
  if (!failure && !settled) {
    failure = pending_error(d.fd.get());
  }
  conn_ref opened;
  connection* made = nullptr;
  if (!failure) {
    // The factory or the back end can still fail (logged): the dial then reports this.
    failure = std::make_error_code(std::errc::state_not_recoverable);
    if (std::unique_ptr<connection> c = loop_.make_connection(d.make)) {
      c->lease_ = std::move(d.lease);
      detail::loop_core::watch how = detail::loop_core::watch::stream;
      if (d.kind == transport::udp) {
        // A connected UDP socket: a datagram connection whose peer is fixed, read
        // level-triggered in batches like the listeners' sockets.
        auto endpoint = std::make_unique<datagram_endpoint>();
        endpoint->connected = true;
        std::memcpy(&endpoint->peer, d.to.data(), d.to.size());
        endpoint->peer_length = d.to.size();
        c->set_datagram(std::move(endpoint));
        how = detail::loop_core::watch::datagram;
      }
      if (connection* conn = loop_.install(std::move(c), d.fd.get(), how, true)) {
        (void)d.fd.release();
        opened = conn->ref();
        failure = {};
        made = conn;
        if (conn->kcp() != nullptr) {  // its idle timeout starts (kcp_transport.cpp)
          static_cast<datagram_sockets*>(
              loop_.handlers_[static_cast<std::size_t>(io_kind::datagram)])
              ->kcp_dialed(*conn);
        }
        loop_.open(*conn);
      }
    }
  }
  // A TLS connection's dial is done at the end of its handshake (or of the connection): only
  // then does a reconnecting dial count as a success.
  const bool handshake = !failure && loop_core::handshaking(*made);
  if (d.again && !failure) {
    // Dialed again when it closes (closed() decides by the reason). It is in the slot table
    // until then, even if on_open closed it already.
    if (!handshake) {
      d.again->failures = 0;
    }
    redials_.emplace(io_key(io_kind::stream, opened.slot_, opened.generation_).bits(), d.again);
    tracking_ = true;
  }
  if (handshake) {
    completion told = std::move(d.done);
    if (d.again) {
      told = [again = d.again, done = std::move(told)](result<conn_ref> r) {
        if (r) {
          again->failures = 0;
        }
        done(r);
      };
    }
    (void)loop_core::defer_opened(*made, told);
  } else {
    report(d.done, failure ? result<conn_ref>(failure) : result<conn_ref>(opened));
  }
  if (d.again && failure && failure != errc::engine_stopped) {
    schedule_redial(std::move(d.again), true);
  }
}

void dialer::fail_all(std::error_code reason) noexcept {
  while (!dials_.empty()) {
    connected(dials_.begin()->first, reason);
  }
}

void dialer::redial_after_close(std::uint64_t id, std::error_code reason, bool stopping,
                                bool never_opened) {
  if (redials_.empty()) {
    return;
  }
  const auto it = redials_.find(id);
  if (it == redials_.end()) {
    return;
  }
  std::shared_ptr<redial> again = std::move(it->second);
  redials_.erase(it);
  tracking_ = !redials_.empty();
  // Not after its own close() or abort() ({}) nor at stop: the peer or the network ended it.
  if (reason && reason != errc::engine_stopped && !stopping) {
    schedule_redial(std::move(again), never_opened);
  }
}

void dialer::schedule_redial(std::shared_ptr<redial> again, bool after_failure) {
  const reconnect_policy& policy = *again->options.reconnect;
  if (loop_.stopping_) {  // no retry past stop: the dial's last word is engine_stopped
    report(again->done, make_error_code(errc::engine_stopped));
    return;
  }
  if (after_failure) {
    ++again->failures;
  }
  if (policy.max_attempts != 0 && again->failures >= policy.max_attempts) {
    loop_.owner().logger().info("loop {}: giving up on {} after {} failed dials", loop_.index(),
                                again->to.to_string(), again->failures);
    return;
  }
  const std::chrono::microseconds delay =
      reconnect_delay(policy, again->failures, std::generate_canonical<double, 32>(jitter_));
  // The timer owns the dial until it fires; destroyed unfired (the engine stopped), it says so.
  struct pending_retry {
    std::shared_ptr<redial> again;
    explicit pending_retry(std::shared_ptr<redial> a) : again(std::move(a)) {}
    pending_retry(pending_retry&& other) noexcept = default;
    pending_retry& operator=(pending_retry&&) = delete;
    pending_retry(const pending_retry&) = delete;
    pending_retry& operator=(const pending_retry&) = delete;
    ~pending_retry() {
      if (again && again->done) {
        try {
          again->done(make_error_code(errc::engine_stopped));
        } catch (...) {  // NOLINT(bugprone-empty-catch): a completion that throws at shutdown
        }
      }
    }
  };
  engine& owner = loop_.owner();
  loop_.after(delay, [&owner, retry = pending_retry(std::move(again))]() mutable {
    std::shared_ptr<redial> r = std::exchange(retry.again, nullptr);  // fired
    const redial& d = *r;
    owner.post_dial(d.to, d.make, d.options, d.done, std::move(r));
  });
}

}  // namespace actnet::detail
